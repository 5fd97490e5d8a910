"""gradcheck: what summing or averaging a loss over a mini-batch does to its
gradient, checked by property-based testing against finite differences.

>>> import numpy as np, gradcheck
>>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
>>> x, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 0.0, 2.0])
>>> gradcheck.infer_reduction(grad, np.array([1.0]), x, y)
'mean'
"""

from __future__ import annotations

from .accumulation import check_accumulation
from .asserts import assert_accumulation, assert_data_parallel, assert_gradient, assert_reduction
from .distributed import check_data_parallel
from .errors import GradcheckUsageError
from .gradient import check_gradient
from .optimizer import assert_optimizer, check_optimizer
from .reduction import check_reduction, infer_reduction
from .verdict import Verdict

__all__ = [
    "GradcheckUsageError",
    "Verdict",
    "assert_accumulation",
    "assert_data_parallel",
    "assert_gradient",
    "assert_optimizer",
    "assert_reduction",
    "check_accumulation",
    "check_data_parallel",
    "check_gradient",
    "check_optimizer",
    "check_reduction",
    "infer_reduction",
]


def _check_exports() -> None:
    # The public face is exactly __all__: every name listed exists and is documented.
    for name in __all__:
        obj = globals()[name]
        if not (obj.__doc__ or "").strip():
            raise ImportError(f"gradcheck.{name} has no docstring")


_check_exports()
__version__ = "0.1.0"
