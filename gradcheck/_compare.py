"""Comparing two gradients that should be equal up to rounding."""

from __future__ import annotations

import numpy as np

from . import numerics as nm
from ._tree import TreeDef
from .verdict import FAILS, HOLDS, Verdict


def compare_leaves(td: TreeDef, claim: str, law: str, got: np.ndarray, want: np.ndarray,
                   terms: np.ndarray, count: int, dtype: np.dtype, message: str = "",
                   evaluations: int = 0) -> Verdict:
    """Leaf by leaf, max |got - want| against the rounding of the terms that
    made them (``terms``: the absolute sum of the terms of ``want``, entry by
    entry; ``count``: how many terms were summed). Each leaf is held to its own
    largest magnitude, so a small bias is not hidden behind a large matrix,
    while a cancellation inside one entry is covered by its leaf's scale (and
    no leaf's scale is taken below GRAD_UNIT)."""
    worst = (0.0, 0.0, 0.0)
    for leaf in td.leaves:
        sl = slice(leaf.start, leaf.start + leaf.size)
        err = float(np.max(np.abs(got[sl] - want[sl]), initial=0.0))
        mag = max(float(np.max(terms[sl] + np.abs(got[sl]), initial=0.0)), nm.GRAD_UNIT)
        tol = float(nm.sum_rounding(mag, dtype, count))
        ratio = err / tol if tol > 0 else (np.inf if err > 0 else 0.0)
        if ratio >= worst[0]:
            worst = (ratio, err, tol)
    _, err, tol = worst
    if not np.all(np.isfinite(got)) or not np.all(np.isfinite(want)):
        err = np.inf
    outcome = HOLDS if err <= tol else FAILS
    return Verdict(claim, law, outcome, err, tol, message, dtype=f"gradient in {np.dtype(dtype).name}",
                   evaluations=evaluations)
