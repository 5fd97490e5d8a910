"""assert_* wrappers: run a checker, raise AssertionError(str(verdict)) unless it holds.

An undetermined verdict raises too: a test that could not check anything
should not pass silently.
"""

from __future__ import annotations

from typing import Any, Callable

from .accumulation import check_accumulation
from .distributed import check_data_parallel
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


def assert_accumulation(accumulate_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                        *batch: Any, **options: Any) -> None:
    """Raise ``AssertionError`` unless :func:`check_accumulation` holds.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
    >>> summed = lambda w, micro: sum(grad(w, x, y) * len(x) for x, y in micro) / sum(len(x) for x, _ in micro)
    >>> x, y = np.arange(8.0).reshape(4, 2), np.arange(4.0)
    >>> assert_accumulation(summed, grad, np.array([0.5, -0.5]), x, y)
    """
    _require(check_accumulation(accumulate_fn, grad_fn, params, *batch, **options))


def assert_data_parallel(step_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                         *batch: Any, **options: Any) -> None:
    """Raise ``AssertionError`` unless :func:`check_data_parallel` holds.

    >>> from gradcheck import assert_data_parallel          # doctest: +SKIP
    >>> assert_data_parallel(mymodule.step, mymodule.grad, w, x, y, world_size=2)  # doctest: +SKIP
    """
    _require(check_data_parallel(step_fn, grad_fn, params, *batch, **options))
