"""Data-parallel steps, right and wrong, for tests/test_distributed.py.

They live in a module of their own because the worker processes of
check_data_parallel import them by name. Each takes ``(params, x, y)`` for a
linear model with squared error and returns the gradient a rank ends with.
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist


def _local(w: np.ndarray, x: np.ndarray, y: np.ndarray, reduction: str) -> torch.Tensor:
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    per = (torch.as_tensor(x) @ wt - torch.as_tensor(y)) ** 2
    loss = per.mean() if reduction == "mean" else per.sum()
    (g,) = torch.autograd.grad(loss, wt)
    return g


def grad_mean(w, x, y):
    return 2 * x.T @ (x @ w - y) / len(x)


def grad_sum(w, x, y):
    return 2 * x.T @ (x @ w - y)


def weighted_allreduce(w, x, y):
    """Right for any shards: all-reduce the local sum and the local count."""
    g = _local(w, x, y, "sum")
    n = torch.tensor([float(len(x))], dtype=torch.float64)
    dist.all_reduce(g)
    dist.all_reduce(n)
    return g / n


def sum_of_sums(w, x, y):
    """Right for a summed loss: all-reduce the local sums."""
    g = _local(w, x, y, "sum")
    dist.all_reduce(g)
    return g


def mean_of_means(w, x, y):
    """Right for equal shards only: average the local means."""
    g = _local(w, x, y, "mean")
    dist.all_reduce(g)
    return g / dist.get_world_size()


def sum_of_means(w, x, y):
    """Wrong: all-reduce sum of local means, W times too large."""
    g = _local(w, x, y, "mean")
    dist.all_reduce(g)
    return g


def no_allreduce(w, x, y):
    """Wrong: each rank keeps its local mean."""
    return _local(w, x, y, "mean")


def global_count_averaged(w, x, y):
    """Wrong: local sum divided by the global count, then averaged over ranks."""
    n = torch.tensor([float(len(x))], dtype=torch.float64)
    dist.all_reduce(n)
    g = _local(w, x, y, "sum") / n
    dist.all_reduce(g)
    return g / dist.get_world_size()


def raises_on_rank_1(w, x, y):
    if dist.get_rank() == 1:
        raise ValueError("planted failure on rank 1")
    return weighted_allreduce(w, x, y)


def hangs(w, x, y):
    """Wrong: rank 0 waits in a collective that rank 1 never joins."""
    if dist.get_rank() == 0:
        g = _local(w, x, y, "sum")
        dist.all_reduce(g)
        return g
    time.sleep(3600)
