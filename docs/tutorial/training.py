"""The training code under test: a small PyTorch classifier, a gradient-accumulation
loop and a data-parallel step. This is the module a project would already have;
the tests in test_training.py check it with gradcheck's pytest plugin."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def make_batch(size: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(size, 4, generator=gen), torch.randint(0, 3, (size,), generator=gen)


def with_params(model: nn.Module, params: dict[str, np.ndarray]) -> nn.Module:
    """A copy of ``model`` holding ``params``: the checkers hand the loop numpy arrays."""
    net = copy.deepcopy(model)
    net.load_state_dict({name: torch.as_tensor(value) for name, value in params.items()})
    return net


def accumulate(model: nn.Module, params: dict, microbatches: list) -> dict[str, np.ndarray]:
    """Gradient accumulation done right: each micro-batch's summed loss, divided
    once by the number of examples in the whole batch, then backward."""
    net = with_params(model, params)
    total = sum(len(x) for x, _ in microbatches)
    for x, y in microbatches:
        loss = nn.functional.cross_entropy(net(torch.as_tensor(x)), torch.as_tensor(y), reduction="sum")
        (loss / total).backward()
    return {name: p.grad.numpy() for name, p in net.named_parameters()}


def ddp_step(params: dict, x: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """One data-parallel step on this rank: DistributedDataParallel averages the
    gradients of each rank's mean loss. Module-level, so worker processes can import it."""
    net = nn.parallel.DistributedDataParallel(with_params(make_model(), params))
    nn.functional.cross_entropy(net(torch.as_tensor(x)), torch.as_tensor(y)).backward()
    return {name.removeprefix("module."): p.grad.numpy() for name, p in net.named_parameters()}
