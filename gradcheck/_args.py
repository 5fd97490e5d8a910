"""Validation of the checkers' own options (seed, counts, choices, resolution).

Misuse raises :class:`~gradcheck.errors.GradcheckUsageError` in the form
``name=value`` followed by the fix, so the caller sees which argument to change.
"""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .errors import GradcheckUsageError


def seed(value: Any, *, name: str = "seed") -> int:
    """A seed for the probe directions: any integer >= 0 (numpy integers too, not bool)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise GradcheckUsageError(f"{name}={value!r} is not a non-negative integer; pass e.g. {name}=0")
    return int(value)


def count(name: str, value: Any, *, minimum: int = 1) -> int:
    """A whole number of something (probes, examples) of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise GradcheckUsageError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def choice(name: str, value: Any, options: Sequence[str]) -> str:
    """One of a few named options."""
    if not isinstance(value, str) or value not in options:
        listed = ", ".join(repr(o) for o in options)
        raise GradcheckUsageError(f"{name}={value!r} is not one of {listed}")
    return value


def resolution(value: Any) -> float:
    """A relative resolution in (0, 1): the smallest relative error a check must be able to catch."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    r = float(value) if ok else np.nan
    if not (0.0 < r < 1.0):
        raise GradcheckUsageError(f"resolution={value!r} must be a number between 0 and 1 "
                                  f"(a relative error, e.g. resolution=1e-3)")
    return r
