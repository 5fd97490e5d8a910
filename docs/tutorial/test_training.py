"""Checks of training.py with gradcheck's pytest plugin (the ``gradcheck`` fixture)."""

import torch

from gradcheck.torch import functions
from training import accumulate, ddp_step, make_batch, make_model

model = make_model()
x, y = make_batch()


def test_the_loss_is_a_mean_with_a_right_gradient(gradcheck):
    # Gradient against finite differences of a float64 copy, then the batch laws.
    gradcheck.assert_model(model, torch.nn.CrossEntropyLoss(), x, y, reduction="mean")


def test_accumulation_matches_the_full_batch(gradcheck):
    _, grad_fn, params = functions(model, torch.nn.CrossEntropyLoss())
    loop = lambda p, microbatches: accumulate(model, p, microbatches)  # noqa: E731
    gradcheck.assert_accumulation(loop, grad_fn, params, x, y, reduction="mean")


def test_data_parallel_step_matches_the_full_batch(gradcheck):
    # DDP averages local means: right for equal shards, which is what is declared.
    _, grad_fn, params = functions(model, torch.nn.CrossEntropyLoss())
    gradcheck.assert_data_parallel(ddp_step, grad_fn, params, x, y, world_size=2, shards="equal")
