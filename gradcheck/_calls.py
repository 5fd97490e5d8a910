"""Calling the functions under test: on copies, with validated results."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from ._tree import TreeDef, leaves, same_structure
from .errors import GradcheckUsageError


def copies(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    # The function under test gets its own arrays, so whatever it does to
    # them, the caller's arrays are never touched.
    return tuple(np.array(a, copy=True) for a in arrays)


class GradCaller:
    """Calls ``grad_fn`` and returns its gradient as one flat float64 vector."""

    def __init__(self, grad_fn: Callable[..., Any], params: Any, td: TreeDef) -> None:
        if not callable(grad_fn):
            raise TypeError(f"[gradcheck] grad_fn={grad_fn!r} is not callable")
        self.grad_fn = grad_fn
        self.params = params
        self.td = td
        self.dtype = np.dtype(np.float64)
        self.calls = 0

    def __call__(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        result = self.grad_fn(self.td.unflatten(self.td.flatten(self.params)), *copies(batch))
        same_structure(self.td, result, argname="grad_fn")
        self._note_dtype(result)
        return self.td.flatten(result)

    def _note_dtype(self, result: Any) -> None:
        for leaf in leaves(result):
            dt = np.asarray(leaf).dtype
            if np.issubdtype(dt, np.floating) and np.finfo(dt).bits < np.finfo(self.dtype).bits:
                self.dtype = np.dtype(dt)


def first_nonfinite(td: TreeDef, flat: np.ndarray, root: str = "params") -> str:
    """Describe where a flat gradient is not finite, e.g. ``nan at params['W'][0, 1]``."""
    bad = np.flatnonzero(~np.isfinite(flat))
    first = bad[0]
    kind = "nan" if np.isnan(flat[first]) else ("inf" if flat[first] > 0 else "-inf")
    more = f" (and {bad.size - 1} more entries)" if bad.size > 1 else ""
    return f"{kind} at {td.name(int(first), root)}{more}"


def loss_value(out: Any, argname: str = "loss_fn") -> tuple[float, np.dtype]:
    """The number a loss returned, and the float dtype it was computed in.

    A non-finite number is a finding for the verdict, not misuse; anything that
    is not one real number (None, a string, a per-example vector) is misuse.
    """
    if out is None or isinstance(out, (str, bytes)):
        raise GradcheckUsageError(f"{argname} returned {out!r}; it must return one real number, the loss")
    arr = np.asarray(out)
    if arr.size != 1:
        hint = (" (a per-example vector: reduce it with .mean() or .sum())" if arr.ndim == 1 else "")
        raise GradcheckUsageError(f"{argname} returned an array of shape {arr.shape}{hint}; "
                                  f"it must return one real number, the loss")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise GradcheckUsageError(f"{argname} returned {out!r} of dtype {arr.dtype}; "
                                  f"it must return one real number, the loss")
    dt = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.dtype(np.float64)
    return float(arr.reshape(())), np.dtype(dt)
