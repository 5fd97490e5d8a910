"""Checks of training.py with gradcheck's pytest plugin."""

from functools import partial

from torch.nn import CrossEntropyLoss

from gradcheck.torch import functions
from training import accumulate, ddp_step, make_batch, make_model

model = make_model()
x, y = make_batch()
_, grad_fn, params = functions(model, CrossEntropyLoss())


def test_the_loss_is_a_mean_with_a_right_gradient(gradcheck):
    # The gradient against finite differences, then the batch laws.
    gradcheck.assert_model(model, CrossEntropyLoss(), x, y, reduction="mean")


def test_accumulation_matches_the_full_batch(gradcheck):
    loop = partial(accumulate, model)
    gradcheck.assert_accumulation(loop, grad_fn, params, x, y)


def test_data_parallel_step_matches_the_full_batch(gradcheck):
    # DDP averages the ranks' means: right for equal shards, as declared.
    gradcheck.assert_data_parallel(ddp_step, grad_fn, params, x, y,
                                   world_size=2, shards="equal")
