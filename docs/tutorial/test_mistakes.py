"""Two common mistakes, which these tests are expected to catch (they fail)."""

import torch

from gradcheck.torch import functions
from training import ddp_step, make_batch, make_model, with_params

model = make_model()
x, y = make_batch()


def mean_of_means(params, microbatches):
    """Accumulation as often written: each micro-batch's mean loss divided by the number of steps."""
    net = with_params(model, params)
    for xb, yb in microbatches:
        loss = torch.nn.functional.cross_entropy(net(torch.as_tensor(xb)), torch.as_tensor(yb))
        (loss / len(microbatches)).backward()
    return {name: p.grad.numpy() for name, p in net.named_parameters()}


def test_accumulation_by_mean_of_means(gradcheck):
    _, grad_fn, params = functions(model, torch.nn.CrossEntropyLoss())
    gradcheck.assert_accumulation(mean_of_means, grad_fn, params, x, y, reduction="mean")


def test_data_parallel_step_on_unequal_shards(gradcheck):
    _, grad_fn, params = functions(model, torch.nn.CrossEntropyLoss())
    gradcheck.assert_data_parallel(ddp_step, grad_fn, params, x, y, world_size=2)
