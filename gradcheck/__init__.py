"""gradcheck: what summing or averaging a loss over a mini-batch does to its
gradient, checked by property-based testing against finite differences."""

from __future__ import annotations

from .errors import GradcheckUsageError
from .gradient import check_gradient
from .reduction import check_reduction, infer_reduction
from .verdict import Verdict

__all__ = ["GradcheckUsageError", "Verdict", "check_gradient", "check_reduction", "infer_reduction"]
