"""The one exception type for misuse.

A failed check is a :class:`~gradcheck.verdict.Verdict`, never an exception;
an exception means the call itself was wrong (bad argument, wrong structure).
"""

from __future__ import annotations

__all__ = ["GradcheckUsageError"]


class GradcheckUsageError(ValueError, TypeError):
    """Raised when a checker is called wrongly; the message names the argument.

    It subclasses both ValueError and TypeError so that callers catching
    either keep working.

    >>> import numpy as np, gradcheck
    >>> try:
    ...     gradcheck.check_reduction(lambda p, x: p, np.arange(3), np.ones(2))
    ... except gradcheck.GradcheckUsageError as e:
    ...     print(str(e)[:40])
    [gradcheck] params=int64 array at params
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"[gradcheck] {message}")
