"""Parameter trees: nested lists, tuples and dicts of float arrays.

A tree is flattened once into a list of leaves with their paths, so the
numerical code works on one flat float64 vector and reports back in paths
such as ``params[0]['W'][2, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import GradcheckUsageError


@dataclass(frozen=True)
class Leaf:
    path: str  # e.g. "[0]['W']"; "" for a bare array
    shape: tuple[int, ...]
    dtype: np.dtype
    start: int  # offset in the flat vector

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


def _children(node: Any) -> Iterator[tuple[str, Any]] | None:
    if isinstance(node, dict):
        return ((f"[{k!r}]", node[k]) for k in _keys(node))
    if isinstance(node, (list, tuple)):
        return ((f"[{i}]", v) for i, v in enumerate(node))
    return None


def _keys(node: dict) -> list[Any]:
    # Dicts are read in sorted key order, so a gradient whose dict lists the
    # same keys in another order (as jax.grad returns them) lines up by key.
    return sorted(node, key=repr)


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    kids = _children(node)
    if kids is None:
        yield path, node
        return
    for suffix, child in kids:
        yield from _walk(child, path + suffix)


def leaves(tree: Any) -> list[Any]:
    """The leaves of a tree, in the order flatten() reads them."""
    return [value for _, value in _walk(tree, "")]


@dataclass(frozen=True)
class TreeDef:
    """The structure of a parameter tree: leaf paths, shapes and dtypes."""

    leaves: tuple[Leaf, ...]
    skeleton: Any  # the tree with leaves replaced by their index

    @property
    def size(self) -> int:
        return sum(leaf.size for leaf in self.leaves)

    @property
    def dtype(self) -> np.dtype:
        """The narrowest float dtype among the leaves (it limits precision)."""
        return min((leaf.dtype for leaf in self.leaves), key=lambda d: np.finfo(d).bits)

    def flatten(self, tree: Any) -> np.ndarray:
        """Concatenate the leaves of ``tree`` (same structure) into float64."""
        parts = [np.asarray(v, dtype=np.float64).ravel() for _, v in _walk(tree, "")]
        return np.concatenate(parts) if parts else np.zeros(0)

    def unflatten(self, flat: np.ndarray, *, dtype: Any = None) -> Any:
        """Rebuild a tree of fresh arrays from a flat vector."""
        def build(node: Any) -> Any:
            if isinstance(node, int):
                leaf = self.leaves[node]
                piece = flat[leaf.start:leaf.start + leaf.size].reshape(leaf.shape)
                return np.array(piece, dtype=dtype or leaf.dtype)
            if isinstance(node, dict):
                return {k: build(v) for k, v in node.items()}
            if isinstance(node, tuple):
                return tuple(build(v) for v in node)
            return [build(v) for v in node]
        return build(self.skeleton)

    def name(self, index: int, root: str = "params") -> str:
        """The path of one flat entry, e.g. ``params[0]['W'][2, 1]``."""
        for leaf in self.leaves:
            if leaf.start <= index < leaf.start + leaf.size:
                local = np.unravel_index(index - leaf.start, leaf.shape) if leaf.shape else ()
                where = f"[{', '.join(str(int(i)) for i in local)}]" if local else ""
                return f"{root}{leaf.path}{where}"
        raise IndexError(index)

    def leaf_of(self, index: int) -> Leaf:
        for leaf in self.leaves:
            if leaf.start <= index < leaf.start + leaf.size:
                return leaf
        raise IndexError(index)


def tree_def(params: Any, *, argname: str = "params") -> TreeDef:
    """Validate ``params`` and record its structure.

    Leaves must be real floating arrays (or Python floats); integers cannot be
    perturbed by finite differences and are refused here, naming the leaf.
    """
    leaves: list[Leaf] = []
    start = 0

    def skel(node: Any, path: str) -> Any:
        nonlocal start
        if isinstance(node, dict):
            built = {k: skel(node[k], f"{path}[{k!r}]") for k in _keys(node)}
            return {k: built[k] for k in node}  # leaves numbered by key, order kept
        if isinstance(node, (list, tuple)):
            out = [skel(v, f"{path}[{i}]") for i, v in enumerate(node)]
            return tuple(out) if isinstance(node, tuple) else out
        arr = np.asarray(node) if not isinstance(node, np.ndarray) else node
        if isinstance(node, float):
            arr = np.asarray(node, dtype=np.float64)
        if not np.issubdtype(arr.dtype, np.floating):
            raise GradcheckUsageError(
                f"{argname}={arr.dtype} array at {argname}{path}: parameters must be real "
                f"floating arrays (float16/32/64); convert with .astype(np.float64)")
        leaves.append(Leaf(path, tuple(arr.shape), np.dtype(arr.dtype), start))
        start += arr.size
        return len(leaves) - 1

    skeleton = skel(params, "")
    if not leaves:
        raise GradcheckUsageError(f"{argname} has no arrays: nothing to differentiate")
    return TreeDef(tuple(leaves), skeleton)


def same_structure(td: TreeDef, tree: Any, *, argname: str, root: str = "params") -> None:
    """Raise naming ``argname`` unless ``tree`` has the structure and shapes of ``td``."""
    got = list(_walk(tree, ""))
    want_paths = [leaf.path for leaf in td.leaves]
    got_paths = [p for p, _ in got]
    if got_paths != want_paths:
        missing = [p for p in want_paths if p not in got_paths]
        extra = [p for p in got_paths if p not in want_paths]
        detail = []
        if missing:
            detail.append(f"missing {', '.join(root + p for p in missing[:5])}")
        if extra:
            detail.append(f"unexpected {', '.join(root + p if p else '(bare array)' for p in extra[:5])}")
        raise GradcheckUsageError(
            f"{argname} returned a gradient whose structure differs from {root} "
            f"({'; '.join(detail) or 'different nesting'}); return one array per parameter, "
            f"in the structure of {root}")
    for leaf, (_, value) in zip(td.leaves, got):
        arr = np.asarray(value)
        if arr.shape != leaf.shape:
            raise GradcheckUsageError(
                f"{argname} returned shape {arr.shape} for {root}{leaf.path}, "
                f"which has shape {leaf.shape}")
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise GradcheckUsageError(
                f"{argname} returned dtype {arr.dtype} for {root}{leaf.path}; expected floats")


def as_batch(batch: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Validate that the batch arrays share axis 0; return them as arrays (no copy)."""
    if not batch:
        raise GradcheckUsageError("batch is empty: pass at least one array with the examples on axis 0")
    arrays = tuple(np.asarray(b) for b in batch)
    for i, arr in enumerate(arrays):
        if arr.ndim == 0:
            raise GradcheckUsageError(f"batch[{i}] is a scalar; every batch array needs the examples on axis 0")
    sizes = [arr.shape[0] for arr in arrays]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"batch[{i}]: {n}" for i, n in enumerate(sizes))
        raise GradcheckUsageError(
            f"batch arrays do not share axis 0 ({listed}); every array must hold one row per example")
    if sizes[0] == 0:
        raise GradcheckUsageError("batch has 0 examples")
    return arrays
