"""Two common mistakes. These tests are meant to fail."""

import torch
from torch.nn import CrossEntropyLoss
from torch.nn.functional import cross_entropy

from gradcheck.torch import functions
from training import ddp_step, grads, make_batch, make_model, with_params

model = make_model()
x, y = make_batch()
_, grad_fn, params = functions(model, CrossEntropyLoss())


def mean_of_means(params, microbatches):
    """Each micro-batch's mean loss divided by the number of micro-batches."""
    net = with_params(model, params)
    for xb, yb in microbatches:
        loss = cross_entropy(net(torch.as_tensor(xb)), torch.as_tensor(yb))
        (loss / len(microbatches)).backward()
    return grads(net)


def test_accumulation_by_mean_of_means(gradcheck):
    gradcheck.assert_accumulation(mean_of_means, grad_fn, params, x, y)


def test_data_parallel_step_on_unequal_shards(gradcheck):
    gradcheck.assert_data_parallel(ddp_step, grad_fn, params, x, y,
                                   world_size=2)
