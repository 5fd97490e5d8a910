"""Validation of the checkers' arguments: their options (seed, counts,
choices, resolution, weights) and their inputs (functions, params, batch).

Misuse raises :class:`~gradcheck.errors.GradcheckUsageError` in the form
``name=value`` followed by the fix, so the caller sees which argument to change.
Everything here runs before any function under test is called.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from ._calls import require_callable, require_signature
from ._tree import as_batch, leaves, nonfinite_entry, tree_def
from .errors import GradcheckUsageError


def seed(value: Any, *, name: str = "seed") -> int:
    """A seed for the probe directions: any integer >= 0 (numpy integers too, not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise GradcheckUsageError(f"{name}={value!r} is not a non-negative integer; pass e.g. {name}=0")
    return int(value)


def count(name: str, value: Any, *, minimum: int = 1) -> int:
    """A whole number of something (probes, examples) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise GradcheckUsageError(f"{name}={value!r} must be an integer >= {minimum}; pass a whole number "
                                  f"(numpy integers are fine), e.g. {name}={minimum}")
    return int(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """One of a few named options."""
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise GradcheckUsageError(f"{name}={value!r} is not one of {listed}; pass one of these")
    return value


def resolution(value: Any) -> float:
    """A relative resolution in (0, 1): the smallest relative error a check must be able to catch."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    r = float(value) if ok else np.nan
    if not (0.0 < r < 1.0):
        raise GradcheckUsageError(f"resolution={value!r} must be a number between 0 and 1 "
                                  f"(a relative error, e.g. resolution=1e-3)")
    return r


def inputs(params: Any, batch: Sequence[Any], *, batch_required: bool = False,
           **functions: Any) -> None:
    """Validate a checker's call: each function callable, ``params`` a tree of
    finite float arrays, the batch arrays sharing axis 0 and finite, and each
    function able to take ``(params, *batch)``. NaN or Inf here is the
    caller's, so it is misuse, not a finding about the function under test."""
    for name, fn in functions.items():
        require_callable(fn, name)
    finite_params(params)
    if batch or batch_required:
        finite_batch(as_batch(batch))
    for name, fn in functions.items():
        require_signature(fn, name, len(batch))


def finite_params(params: Any) -> None:
    """Refuse params that are not a tree of float arrays, or hold NaN or Inf."""
    td = tree_def(params)
    for leaf, value in zip(td.leaves, leaves(params)):
        bad = nonfinite_entry(np.asarray(value))
        if bad is not None:
            raise GradcheckUsageError(
                f"params{leaf.path}{bad} in the params passed to the checker: the point to check "
                f"at must be finite (this is not the function under test's doing); pass finite params")


def finite_batch(arrays: Sequence[np.ndarray]) -> None:
    """Refuse batch arrays that hold NaN or Inf, naming the entry."""
    for i, arr in enumerate(arrays):
        bad = nonfinite_entry(arr)
        if bad is not None:
            raise GradcheckUsageError(
                f"batch[{i}]{bad} in the batch passed to the checker: the examples must be finite; "
                f"drop or fill the missing values before the check")


def weights(value: Any, size: int) -> np.ndarray | None:
    """Per-example weights: None, or ``size`` finite weights >= 0, not all zero
    (bool masks count as 0/1). Returned as a new float64 array."""
    if value is None:
        return None
    w = _weights_array(value, size).astype(np.float64)
    bad = nonfinite_entry(w)
    negative = np.flatnonzero(w < 0)
    if bad is not None or negative.size:
        where = f"weights{bad}" if bad is not None else f"weights[{negative[0]}]={w[negative[0]]}"
        raise GradcheckUsageError(f"{where}: weights must be finite and >= 0 (zero marks an ignored "
                                  f"example); fix that weight")
    if not np.any(w):
        raise GradcheckUsageError("weights are all zero: every example is ignored, so there is nothing to "
                                  "check (and a weighted mean is undefined); give at least one example "
                                  "a positive weight")
    return w


def _weights_array(value: Any, size: int) -> np.ndarray:
    """``value`` as an array of ``size`` real numbers (not yet checked for sign or NaN)."""
    try:
        w = np.asarray(value)
    except ValueError as e:  # a ragged list
        raise GradcheckUsageError(f"weights cannot be read as an array ({e}); pass one real "
                                  f"number per example") from e
    if w.dtype.kind not in "biuf":
        raise GradcheckUsageError(f"weights has dtype {w.dtype}; pass real numbers, one weight "
                                  f"per example")
    if w.shape != (size,):
        raise GradcheckUsageError(f"weights has shape {w.shape} but the batch has {size} examples; "
                                  f"pass one weight per example, shape ({size},), aligned with the batch")
    return w
