"""assert_* wrappers: run a checker, raise AssertionError(str(verdict)) unless it holds.

An undetermined verdict raises too: a test that could not check anything
should not pass silently.
"""

from __future__ import annotations

from typing import Any, Callable

from .gradient import check_gradient
from .reduction import check_reduction
from .verdict import Verdict


def _require(verdict: Verdict) -> None:
    if not verdict.holds:
        raise AssertionError(str(verdict))


def assert_gradient(loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                    *batch: Any, **options: Any) -> None:
    """Raise ``AssertionError`` unless :func:`check_gradient` holds.

    >>> import numpy as np
    >>> assert_gradient(lambda w: float(w @ w), lambda w: 2 * w, np.array([1.0, -2.0]))
    """
    _require(check_gradient(loss_fn, grad_fn, params, *batch, **options))


def assert_reduction(grad_fn: Callable[..., Any], params: Any, *batch: Any, **options: Any) -> None:
    """Raise ``AssertionError`` unless :func:`check_reduction` holds.

    >>> import numpy as np
    >>> grad = lambda w, x: np.sum(x, axis=0) * 0 + w * len(x)
    >>> try:
    ...     assert_reduction(grad, np.array([1.0]), np.ones((3, 1)), reduction="mean")
    ... except AssertionError as e:
    ...     print(str(e).splitlines()[0][:45])
    [gradcheck] check_reduction failed: sum = B ×
    """
    _require(check_reduction(grad_fn, params, *batch, **options))
