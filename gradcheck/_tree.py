"""Parameter trees: nested lists, tuples and dicts of float arrays.

A tree is flattened once into a list of leaves with their paths, so the
numerical code works on one flat float64 vector and reports back in paths
such as ``params[0]['W'][2, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np

from .errors import GradcheckUsageError


@dataclass(frozen=True)
class Leaf:
    path: str  # e.g. "[0]['W']"; "" for a bare array
    shape: tuple[int, ...]
    dtype: np.dtype
    start: int  # offset in the flat vector
    size: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Read for every leaf of every call: computed once.
        object.__setattr__(self, "size", int(np.prod(self.shape, dtype=np.int64)))


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

    def flatten(self, tree: Any, out: np.ndarray | None = None) -> np.ndarray:
        """Concatenate the leaves of ``tree`` (same structure) into float64
        (into ``out``, a float64 vector of the total size, if given)."""
        if out is not None:
            start = 0
            for _, v in _walk(tree, ""):
                a = np.asarray(v)
                out[start:start + a.size] = a.reshape(-1)
                start += a.size
            return out
        parts = [np.asarray(v, dtype=np.float64).ravel() for _, v in _walk(tree, "")]
        return np.concatenate(parts) if parts else np.zeros(0)

    def unflatten(self, flat: np.ndarray, *, dtype: Any = None, views: bool = False) -> Any:
        """Rebuild a tree of fresh arrays from a flat vector (``views``: of
        views into ``flat`` where the dtype allows, for a vector made for the
        call and dropped after it)."""
        make = np.asarray if views else np.array
        pieces = [make(flat[leaf.start:leaf.start + leaf.size].reshape(leaf.shape), dtype=dtype or leaf.dtype)
                  for leaf in self.leaves]
        # Built without a closure over ``flat``: a recursive closure is a
        # reference cycle, and would keep the vector alive until the next
        # garbage collection (the loss oracle reuses a vector nobody holds).
        return _build(self.skeleton, pieces)

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


def _build(node: Any, pieces: list[Any]) -> Any:
    """The tree of ``node`` (a skeleton) with leaf i replaced by pieces[i]."""
    if isinstance(node, int):
        return pieces[node]
    if isinstance(node, dict):
        return {k: _build(v, pieces) for k, v in node.items()}
    if isinstance(node, tuple):
        return _same_tuple(node, [_build(v, pieces) for v in node])
    return [_build(v, pieces) for v in node]


def _same_tuple(like: tuple, items: list[Any]) -> tuple:
    # A namedtuple is rebuilt as itself, so functions that read p.W keep working.
    return type(like)(*items) if hasattr(like, "_fields") else tuple(items)


def tree_def(params: Any, *, argname: str = "params") -> TreeDef:
    """Validate ``params`` and record its structure.

    Leaves must be real floating arrays (or Python floats) with at least one
    entry; anything else cannot be perturbed by finite differences and is
    refused here, naming the leaf and the fix.
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
            return _same_tuple(node, out) if isinstance(node, tuple) else out
        arr = _param_leaf(node, argname, path)
        leaves.append(Leaf(path, tuple(arr.shape), np.dtype(arr.dtype), start))
        start += arr.size
        return len(leaves) - 1

    skeleton = skel(params, "")
    if not leaves:
        raise GradcheckUsageError(f"{argname}={params!r} has no arrays: nothing to differentiate; "
                                  f"pass the float arrays to check")
    return TreeDef(tuple(leaves), skeleton)


# What to do about a leaf of each kind of dtype that is not a real float.
_PARAM_FIX = {
    "i": "convert with .astype(np.float64)",
    "u": "convert with .astype(np.float64)",
    "b": "a bool array is not a parameter: keep it out of params (close over it in your "
         "functions), or convert with .astype(np.float64)",
    "c": "complex parameters are not supported: pass the real and imaginary parts as two "
         "float arrays",
}


def _param_leaf(node: Any, argname: str, path: str) -> np.ndarray:
    """One leaf of params as an array; refused unless a non-empty real float array."""
    where = f"{argname}{path}"
    if node is None:
        fix = "remove it or give it a value" if path else "pass the parameters to check"
        raise GradcheckUsageError(f"{where}=None: every leaf of {argname} must be a float array; {fix}")
    arr = _read_array(node, f"{where}={type(node).__name__}",
                      "pass numpy float arrays (e.g. tensor.detach().numpy())")
    if not np.issubdtype(arr.dtype, np.floating):
        fix = _PARAM_FIX.get(arr.dtype.kind, "pass numbers, as a float array")
        raise GradcheckUsageError(
            f"{argname}={arr.dtype} array at {where}: parameters must be real floating arrays "
            f"(float16/32/64); {fix}")
    if arr.size == 0:
        raise GradcheckUsageError(f"{argname}={arr.dtype} array of shape {arr.shape} at {where}: "
                                  f"it has no entries to differentiate; remove it from {argname}")
    return arr


def _read_array(value: Any, what: str, fix: str) -> np.ndarray:
    """``value`` as an array; ``what`` starts the message if it cannot be one."""
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(value)
    except Exception as e:  # a ragged list, a tensor that requires grad, ...
        raise GradcheckUsageError(f"{what} cannot be read as a numpy array "
                                  f"({type(e).__name__}: {e}); {fix}") from e


def same_structure(td: TreeDef, tree: Any, *, argname: str, root: str = "params") -> None:
    """Raise naming ``argname`` unless ``tree`` has the structure and shapes of ``td``."""
    if tree is None:
        raise GradcheckUsageError(f"{argname} returned None; return the gradient, in the structure "
                                  f"of {root} (is a return statement missing?)")
    got = list(_walk(tree, ""))
    want_paths = [leaf.path for leaf in td.leaves]
    got_paths = [p for p, _ in got]
    if got_paths != want_paths:
        raise GradcheckUsageError(_structure_text(td, tree, want_paths, got_paths, argname, root))
    for leaf, (_, value) in zip(td.leaves, got):
        _gradient_leaf(leaf, value, argname, root)


def _structure_text(td: TreeDef, tree: Any, want: list[str], got: list[str], argname: str,
                    root: str) -> str:
    missing = [p for p in want if p not in got]
    extra = [p for p in got if p not in want]
    detail = []
    if missing:
        detail.append(f"missing {', '.join(root + p for p in missing[:5])}")
    if extra:
        detail.append(f"unexpected {', '.join(root + p if p else '(bare array)' for p in extra[:5])}")
    hint = _structure_hint(td, tree)
    return (f"{argname} returned a gradient whose structure differs from {root} "
            f"({'; '.join(detail) or 'different nesting'}){hint}; return one array per parameter, "
            f"in the structure of {root}")


def _structure_hint(td: TreeDef, tree: Any) -> str:
    if _looks_like_value_and_grad(td, tree):
        return " (it looks like (loss, gradient): return the gradient alone)"
    if [leaf.path for leaf in td.leaves] == [""] and isinstance(tree, (list, tuple)):
        return f" (a {type(tree).__name__} where params is one array: return np.asarray(...) of it)"
    return ""


def _looks_like_value_and_grad(td: TreeDef, tree: Any) -> bool:
    if not (isinstance(tree, (tuple, list)) and len(tree) == 2 and _children(tree[0]) is None):
        return False
    grad = list(_walk(tree[1], ""))
    return np.ndim(tree[0]) == 0 and [p for p, _ in grad] == [leaf.path for leaf in td.leaves] \
        and all(np.shape(v) == leaf.shape for (_, v), leaf in zip(grad, td.leaves))


def _gradient_leaf(leaf: Leaf, value: Any, argname: str, root: str) -> None:
    """One leaf of a returned gradient: real numbers of the leaf's shape."""
    where = f"{root}{leaf.path}"
    want = f"return a float array of shape {leaf.shape}"
    if value is None:
        raise GradcheckUsageError(f"{argname} returned None for {where}; {want} "
                                  f"(zeros if the loss does not depend on it)")
    if isinstance(value, (str, bytes)):
        raise GradcheckUsageError(f"{argname} returned the string {value!r} for {where}; {want}")
    arr = _read_array(value, f"{argname} returned a {type(value).__name__} for {where} that",
                      f"{want} (e.g. tensor.detach().numpy())")
    if arr.dtype.kind not in "fiu":
        raise GradcheckUsageError(f"{argname} returned dtype {arr.dtype} for {where}; "
                                  f"expected real numbers: {want}")
    if arr.shape != leaf.shape:
        raise GradcheckUsageError(f"{argname} returned shape {arr.shape} for {where}, which has shape "
                                  f"{leaf.shape}{_shape_hint(arr.shape, leaf.shape)}; {want}")


def _shape_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    if got == () and want != ():
        return " (a scalar: is this the loss rather than its gradient?)"
    if len(got) == len(want) + 1 and got[1:] == want:
        return (" (one row per example? reduce the per-example gradients over axis 0, "
                "with .mean(axis=0) or .sum(axis=0))")
    if len(got) > 1 and got == want[::-1]:
        return " (transposed?)"
    return ""


def nonfinite_entry(arr: np.ndarray) -> str | None:
    """Where ``arr`` first holds NaN or Inf, e.g. ``[0, 1]=nan (and 2 more entries)``."""
    if arr.dtype.kind not in "fc":
        return None
    finite = np.isfinite(arr)
    if finite.all():
        return None
    bad = np.argwhere(~finite)
    first = tuple(int(i) for i in bad[0])
    index = f"[{', '.join(map(str, first))}]" if first else ""
    more = f" (and {len(bad) - 1} more entries)" if len(bad) > 1 else ""
    return f"{index}={arr[first]}{more}"


def as_batch(batch: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Validate that the batch arrays share axis 0; return them as arrays (no copy)."""
    if not batch:
        raise GradcheckUsageError("batch is empty: pass at least one array with the examples on "
                                  "axis 0, after params")
    arrays = tuple(_batch_array(b, f"batch[{i}]") for i, b in enumerate(batch))
    sizes = [arr.shape[0] for arr in arrays]
    if len(set(sizes)) > 1:
        listed = ", ".join(f"batch[{i}]: {n}" for i, n in enumerate(sizes))
        raise GradcheckUsageError(
            f"batch arrays do not share axis 0 ({listed}); every array must hold one row per example")
    if sizes[0] == 0:
        raise GradcheckUsageError("batch has 0 examples (axis 0 has length 0); pass at least one example")
    return arrays


def _batch_array(value: Any, where: str) -> np.ndarray:
    if isinstance(value, (str, bytes)):
        raise GradcheckUsageError(
            f"{where}={value!r} is a string, not an array of examples; if it is an option of the "
            f"checker, pass it by keyword (e.g. reduction={value!r})")
    if value is None or isinstance(value, dict):
        shown = "=None" if value is None else " is a dict"
        raise GradcheckUsageError(
            f"{where}{shown}: batch arrays must be arrays of numbers with one row per example; "
            f"pass the batch arrays themselves, each as its own argument after params")
    if _packed(value):
        raise GradcheckUsageError(
            f"{where} is a {type(value).__name__} of {len(value)} arrays; pass the batch arrays as "
            f"separate arguments after params (unpack it: *batch), or np.stack them if they are the "
            f"rows of one array")
    arr = _read_array(value, f"{where}={type(value).__name__}", "pass numpy arrays, one row per example")
    if arr.dtype.kind not in "biufc":
        raise GradcheckUsageError(f"{where} has dtype {arr.dtype}; batch arrays must hold numbers "
                                  f"(bool, int, float), one row per example: encode it as numbers")
    if arr.ndim == 0:
        raise GradcheckUsageError(f"{where}={value!r} is a scalar; every batch array needs the examples "
                                  f"on axis 0: pass one value per example, or close over a constant "
                                  f"in your functions")
    return arr


def _packed(value: Any) -> bool:
    """A list or tuple of arrays: several batch arrays packed into one argument."""
    return isinstance(value, (list, tuple)) and any(len(getattr(v, "shape", ())) > 0 for v in value)
