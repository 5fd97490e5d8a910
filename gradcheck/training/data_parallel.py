"""Reference data-parallel steps, run inside the ranks of a real gloo group.

Each step computes its rank's local gradient of a generated network with
autograd, does one all-reduce through ``torch.distributed``, and returns the
flat gradient the rank ends with. The claims of family E2 bind the network
with :func:`functools.partial` (module-level functions pickle by name, so the
spawned workers can import them) and compare every rank's result with the
full-batch gradient. ``padded_shards`` is the sampler that pads the last
shard by repeating examples, as a distributed sampler does to equalise shards.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._tree import tree_def
from ..nets import Network, loss_gradient

__all__ = ["allreduce_mean_of_means", "allreduce_sum_of_means", "global_count_averaged",
           "global_count_times_world", "padded_shards"]


def _local(net: Network, params: Any, x: np.ndarray, y: np.ndarray, reduction: str, w: Any = None) -> np.ndarray:
    g = loss_gradient(net, params, x, y, reduction=reduction, weights=w)
    return tree_def(g).flatten(g)


def _allreduce(v: np.ndarray, *, average: bool) -> np.ndarray:
    import torch
    import torch.distributed as dist

    t = torch.from_numpy(np.array(v, dtype=np.float64))
    dist.all_reduce(t)
    if average:
        t /= dist.get_world_size()
    return t.numpy()


def allreduce_mean_of_means(net: Network, params: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The usual data-parallel step: local ∇L_mean, averaged over ranks."""
    return _allreduce(_local(net, params, x, y, "mean"), average=True)


def allreduce_sum_of_means(net: Network, params: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The pitfall: local ∇L_mean, summed over ranks."""
    return _allreduce(_local(net, params, x, y, "mean"), average=False)


def _global_count(w: np.ndarray) -> float:
    return float(_allreduce(np.array([w.sum()]), average=False)[0])


def global_count_averaged(net: Network, params: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Token-weighted local sum over the global token count, then averaged over
    ranks as a framework averages gradients: W times too small."""
    local = _local(net, params, x, y, "sum", w) / _global_count(w)
    return _allreduce(local, average=True)


def global_count_times_world(net: Network, params: Any, x: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The same loss multiplied by W before the averaging all-reduce: right."""
    import torch.distributed as dist

    local = _local(net, params, x, y, "sum", w) / _global_count(w) * dist.get_world_size()
    return _allreduce(local, average=True)


def padded_shards(size: int, world: int) -> list[np.ndarray]:
    """Indices of each rank's shard when every shard is padded to ceil(B / W)
    examples by repeating examples from the start, strided over ranks."""
    per_rank = -(-size // world)
    order = np.arange(per_rank * world) % size
    return [order[r::world] for r in range(world)]
