"""Calling the functions under test: on copies, with validated results."""

from __future__ import annotations

import contextlib
import contextvars
import inspect
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ._tree import TreeDef, leaves, same_structure
from .errors import GradcheckUsageError


# The vector the oracle evaluates the loss at, while it does: made for that
# call and refilled for the next, so a write into it harms no one, and an
# adapter may compute on its memory instead of copying it (gradcheck.torch
# does; at 10^6 entries a copy per evaluation is a third of its cost).
_SCRATCH: contextvars.ContextVar[np.ndarray | None] = contextvars.ContextVar("scratch", default=None)


@contextlib.contextmanager
def scratch(x: np.ndarray) -> Iterator[None]:
    token = _SCRATCH.set(x)
    try:
        yield
    finally:
        _SCRATCH.reset(token)


def is_scratch(a: Any) -> bool:
    """Whether ``a`` is the oracle's scratch vector or a view of it."""
    x = _SCRATCH.get()
    return x is not None and isinstance(a, np.ndarray) and (a is x or a.base is x)


def copies(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
    # The function under test gets its own arrays, so whatever it does to
    # them, the caller's arrays are never touched.
    return tuple(np.array(a, copy=True) for a in arrays)


class GradCaller:
    """Calls ``grad_fn`` and returns its gradient as one flat float64 vector."""

    def __init__(self, grad_fn: Callable[..., Any], params: Any, td: TreeDef) -> None:
        require_callable(grad_fn, "grad_fn")
        self.grad_fn = grad_fn
        self.params = params
        self.td = td
        self.dtype = np.dtype(np.float64)
        self.calls = 0

    def __call__(self, batch: Sequence[np.ndarray]) -> np.ndarray:
        self.calls += 1
        flat = self.td.flatten(self.params)
        with scratch(flat):
            result = self.grad_fn(self.td.unflatten(flat, views=True), *copies(batch))
        same_structure(self.td, result, argname="grad_fn")
        self._note_dtype(result)
        return self.td.flatten(result)

    def at(self, flat: np.ndarray, batch: Sequence[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
        """grad_fn at ``flat``, a vector made for this call (the params handed
        over are views of it where their dtype allows), as one flat vector
        (``out``, if given)."""
        self.calls += 1
        with scratch(flat):
            result = self.grad_fn(self.td.unflatten(flat, views=True), *copies(batch))
        same_structure(self.td, result, argname="grad_fn")
        return self.td.flatten(result, out=out)

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


def require_callable(fn: Any, argname: str) -> None:
    """Refuse ``fn`` unless it can be called, saying what to pass instead."""
    if callable(fn):
        return
    hint = " (a value, not a function: pass the function that computes it)" \
        if isinstance(fn, (np.ndarray, float, int, list, tuple, dict)) else ""
    raise GradcheckUsageError(f"{argname}={_short(fn)} is not callable{hint}; pass a function "
                              f"called as {argname}(params, *batch)")


def require_signature(fn: Callable[..., Any], argname: str, n_batch: int, *,
                      call: str | None = None) -> None:
    """Refuse ``fn`` if its signature cannot take ``(params, *batch)`` with
    ``n_batch`` batch arrays (or the ``n_batch`` arguments after params that
    ``call`` spells out, e.g. "accumulate_fn(params, microbatches)");
    functions without a readable signature pass."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins and extension functions
        return
    try:
        sig.bind(*range(1 + n_batch))
    except TypeError as e:
        call = call or f"{argname}({', '.join(['params'] + [f'batch[{i}]' for i in range(n_batch)])})"
        raise GradcheckUsageError(
            f"{argname}={_name(fn)} cannot be called as {call}: {e}; pass the arguments it takes "
            f"(params first, then the batch arrays in order), or change its signature") from None


def _name(fn: Any) -> str:
    return getattr(fn, "__name__", None) or _short(fn)


def _short(value: Any) -> str:
    if isinstance(value, np.ndarray) and value.ndim > 0:
        return f"{value.dtype} array of shape {value.shape}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def loss_value(out: Any, argname: str = "loss_fn") -> tuple[float, np.dtype]:
    """The number a loss returned, and the float dtype it was computed in.

    A non-finite number is a finding for the verdict, not misuse; anything that
    is not one real number (None, a string, a list, a complex number, a
    per-example vector) is misuse.
    """
    fix = "it must return one real number, the loss"
    if out is None or isinstance(out, (str, bytes, list, tuple, dict)):
        what = f"a {type(out).__name__} " if isinstance(out, (list, tuple, dict)) else ""
        raise GradcheckUsageError(f"{argname} returned {what}{_short(out)}; {fix}"
                                  f"{_pair_hint(out) or _vector_hint(out)}")
    try:
        arr = np.asarray(out)
    except Exception as e:  # e.g. a tensor that requires grad
        raise GradcheckUsageError(f"{argname} returned a {type(out).__name__} that cannot be read as a "
                                  f"number ({type(e).__name__}: {e}); {fix}: return float(loss) or "
                                  f"loss.item()") from e
    if arr.size != 1:
        raise GradcheckUsageError(f"{argname} returned an array of shape {arr.shape}"
                                  f"{_vector_hint(arr)}; {fix}")
    if arr.dtype.kind not in "fiu":
        raise GradcheckUsageError(f"{argname} returned {_short(out)} of dtype {arr.dtype}; {fix}"
                                  f"{_complex_hint(arr)}")
    dt = arr.dtype if arr.dtype.kind == "f" else np.dtype(np.float64)
    return float(arr.reshape(())), np.dtype(dt)


def _pair_hint(out: Any) -> str:
    if isinstance(out, tuple) and len(out) == 2 and np.ndim(out[0]) == 0 and np.ndim(out[1]) > 0:
        return " (it looks like (loss, gradient): return the loss alone)"
    return ""


def _vector_hint(out: Any) -> str:
    if isinstance(out, (list, tuple)):
        vector = len(out) > 1
    else:
        vector = isinstance(out, np.ndarray) and out.ndim == 1 and out.size > 1
    if vector:
        return " (a per-example vector? reduce it with .mean() or .sum())"
    return ""


def _complex_hint(arr: np.ndarray) -> str:
    return " (a complex value: return its real part or its modulus)" if arr.dtype.kind == "c" else ""


def loss_scalar(out: Any, argname: str = "loss_fn") -> np.floating:
    """What a loss returned, checked, as a numpy scalar of its own float dtype."""
    value, dtype = loss_value(out, argname)
    return dtype.type(value)
