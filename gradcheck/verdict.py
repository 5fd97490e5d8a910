"""Verdicts: the result of a check, with the numbers behind it.

A verdict has three outcomes: the law holds, it fails, or the check could not
decide (a kink, a non-finite loss, a bound too wide to resolve anything).
Checkers return verdicts; ``assert_*`` functions format and raise them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["Verdict", "HOLDS", "FAILS", "UNDETERMINED", "PRECISION_LIMITED", "NOT_DIFFERENTIABLE",
           "NON_FINITE_LOSS"]

HOLDS = "holds"
FAILS = "fails"
UNDETERMINED = "undetermined"

# Why a verdict is undetermined (its ``reason``).
PRECISION_LIMITED = "precision-limited"  # the check could not reach the resolution asked for
NOT_DIFFERENTIABLE = "not differentiable here"  # a kink at or near the point
NON_FINITE_LOSS = "non-finite loss"


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check, and the numbers it rests on.

    ``bool(verdict)`` is ``verdict.holds``; ``str(verdict)`` is a report a
    person can act on: which law, by how much, on what input, and what the
    implementation seems to do instead.

    ``resolution`` is the smallest relative error in a typical gradient entry
    (one of root-mean-square size) that the check would have caught; a verdict
    holds only where that is at most the resolution the caller asked for
    (``requested``), and is otherwise undetermined, "precision-limited".

    >>> v = Verdict(claim="check_reduction", law="duplication", outcome="holds",
    ...             error=0.0, tolerance=1e-14, message="ok")
    >>> bool(v), v.holds
    (True, True)
    """

    claim: str
    law: str
    outcome: str
    error: float
    tolerance: float
    message: str
    reason: str = ""  # why an undetermined verdict could not decide
    counterexample: Any = None
    step: float | None = None
    dtype: str | None = None
    evaluations: int = 0
    resolution: float = float("nan")  # smallest relative error in a typical entry it would have caught
    requested: float = float("nan")  # the resolution the caller asked for
    details: tuple["Verdict", ...] = field(default=(), repr=False)

    @property
    def holds(self) -> bool:
        return self.outcome == HOLDS

    @property
    def fails(self) -> bool:
        return self.outcome == FAILS

    @property
    def undetermined(self) -> bool:
        return self.outcome == UNDETERMINED

    def __bool__(self) -> bool:
        return self.holds

    def with_(self, **changes: Any) -> "Verdict":
        return replace(self, **changes)

    def numbers(self) -> str:
        """One line of figures: error against bound, resolution, step, dtype, evaluations."""
        rel = "<=" if self.error <= self.tolerance else ">"
        parts = [f"error {self.error:.3e} {rel} tolerance {self.tolerance:.3e}"]
        if self.resolution == self.resolution:  # not nan
            asked = f" (asked {self.requested:.1e})" if self.requested == self.requested else ""
            parts.append(f"resolution {self.resolution:.1e}{asked}")
        if self.step is not None:
            parts.append(f"step {self.step:.2e}")
        if self.dtype:
            parts.append(self.dtype)
        if self.evaluations:
            parts.append(f"{self.evaluations} evaluations")
        return ", ".join(parts)

    def __str__(self) -> str:
        head = {HOLDS: "holds", FAILS: "failed", UNDETERMINED: "undetermined"}[self.outcome]
        why = f" ({self.reason})" if self.reason and self.undetermined else ""
        lines = [f"[gradcheck] {self.claim} {head}{why}: {self.law} — {self.message}",
                 f"  {self.numbers()}"]
        if self.counterexample is not None:
            lines.append(f"  on input: {_short(self.counterexample)}")
        others = [d for d in self.details if d.law != self.law]
        if others:
            lines.append("  laws checked: " + "; ".join(f"{d.law}: {d.outcome}" for d in others))
        return "\n".join(lines)


def _short(value: Any, limit: int = 400) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + " …"


def combine(claim: str, verdicts: list[Verdict], evaluations: int | None = None) -> Verdict:
    """Fold sub-checks into one verdict: the first failure decides, else the
    first undetermined one, else the tightest holding one (largest error/bound).

    ``evaluations`` is the true number of calls behind the whole verdict. Sub-
    checks that share one function under test usually report a running total
    of its calls, and adding those up counts the same calls several times, so
    a caller that knows the count passes it; without it, the parts' counts are
    added, which is right only when each part counts its own calls alone.
    """
    if evaluations is None:
        evaluations = sum(d.evaluations for d in verdicts)
    for outcome in (FAILS, UNDETERMINED):
        for v in verdicts:
            if v.outcome == outcome:
                return v.with_(claim=claim, details=tuple(verdicts), evaluations=evaluations)
    worst = max(verdicts, key=lambda v: v.error / v.tolerance if v.tolerance > 0 else 0.0)
    return worst.with_(claim=claim, details=tuple(verdicts), evaluations=evaluations)
