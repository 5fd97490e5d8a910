"""Reference gradient-accumulation loops over micro-batches of a generated network.

Each loop takes the network, its parameters and a list of micro-batches
``(x, y)`` or ``(x, y, w)`` (w: per-example weights, e.g. token counts) and
returns the accumulated gradient, as the claims of family E and the docs use
them. ``accumulate_sums`` is the right loop; the others are the mistakes
people make, kept here so the claims can show exactly where they break.
"""

from __future__ import annotations

from typing import Any, Sequence

from ..nets import Network, loss_gradient

__all__ = ["accumulate_sums", "mean_of_means", "weights_of"]

Micro = Sequence[Any]


def weights_of(micro: Micro) -> Any:
    """The per-example weights of a micro-batch (None when unweighted)."""
    return micro[2] if len(micro) > 2 else None


def _total(micro_batches: Sequence[Micro]) -> float:
    return float(sum(len(m[0]) if weights_of(m) is None else weights_of(m).sum() for m in micro_batches))


def _scaled(net: Network, params: Any, micro: Micro, reduction: str, scale: float) -> Any:
    g = loss_gradient(net, params, micro[0], micro[1], reduction=reduction, weights=weights_of(micro))
    return _map(lambda a: a * scale, g)


def _map(fn: Any, tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _map(fn, v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_map(fn, v) for v in tree)
    return fn(tree)


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        return {k: _add(a[k], b[k]) for k in a}
    if isinstance(a, (list, tuple)):
        return type(a)(_add(x, y) for x, y in zip(a, b))
    return a + b


def _accumulate(parts: list[Any]) -> Any:
    total = parts[0]
    for p in parts[1:]:
        total = _add(total, p)
    return total


def accumulate_sums(net: Network, params: Any, micro_batches: Sequence[Micro]) -> Any:
    """Right for any split: each micro-batch's summed (weighted) loss, divided
    once by the total count (or total weight) of the whole batch."""
    n = _total(micro_batches)
    return _accumulate([_scaled(net, params, m, "sum", 1.0 / n) for m in micro_batches])


def mean_of_means(net: Network, params: Any, micro_batches: Sequence[Micro]) -> Any:
    """Right only when every micro-batch has the same count (or total weight):
    the plain mean of per-micro-batch means (token means, with weights)."""
    k = len(micro_batches)
    return _accumulate([_scaled(net, params, m, "mean", 1.0 / k) for m in micro_batches])
