"""Comparing two gradients that should be equal up to rounding."""

from __future__ import annotations

import numpy as np

from . import numerics as nm
from ._tree import TreeDef
from .verdict import FAILS, HOLDS, Verdict


def compare_leaves(td: TreeDef, claim: str, law: str, got: np.ndarray, want: np.ndarray,
                   terms: np.ndarray, count: int, dtype: np.dtype, message: str = "",
                   evaluations: int = 0, size: float | None = None,
                   floor: float | None = nm.GRAD_UNIT) -> Verdict:
    """Leaf by leaf, max |got - want| against the rounding of the terms that
    made them (``terms``: the absolute sum of the terms of ``want``, entry by
    entry; ``count``: how many terms were summed).

    An entry's rounding comes from the intermediate values of the computation
    that made it, which the comparison does not see; ``floor`` says what is
    assumed of them. Each leaf is held to its own largest magnitude (so a small
    bias is not hidden behind a large matrix), and to no less than:

    - ``floor`` (default GRAD_UNIT): intermediate values of order one, as a
      softmax's probabilities are, whose rounding a small gradient carries.
      For callers that do not measure the rounding. It is conservative for
      small gradients: a gradient of 1e-8 is held to the rounding of 1, which
      its resolution (below) then shows, so it is never called right on an
      error it could not see;
    - ``floor=None``: the largest magnitude anywhere in the comparison. In a
      backward pass the intermediate values are shared (the errors propagated
      into a small leaf are of the size of the other leaves' gradients), so
      this bounds them, and it scales with the problem: a gradient of 1e-8 is
      held to the rounding of 1e-8. For callers that measure the rounding
      where this falls short (check_reduction: a saturated softmax).

    ``size``, if given, is the root-mean-square size of the gradient that a
    relative error would scale; the verdict's ``resolution`` is then the
    smallest relative error of a typical entry the comparison is certain to
    catch, CATCH_FACTOR × tolerance / size (inf for a gradient of size 0):
    rounding may use its whole allowance against the error.
    """
    finite = bool(np.all(np.isfinite(got)) and np.all(np.isfinite(want)))
    scale = terms + np.abs(got)
    lowest = float(np.max(scale, initial=0.0)) if floor is None else floor
    worst = (0.0, 0.0, 0.0)
    widest = 0.0
    for leaf in td.leaves:
        sl = slice(leaf.start, leaf.start + leaf.size)
        err = float(np.max(np.abs(got[sl] - want[sl]), initial=0.0)) if finite else np.inf
        tol = float(nm.sum_rounding(max(float(np.max(scale[sl], initial=0.0)), lowest), dtype, count))
        widest = max(widest, tol)
        ratio = np.inf if not finite else (err / tol if tol > 0 else (np.inf if err > 0 else 0.0))
        if ratio >= worst[0]:
            worst = (ratio, err, tol)
    _, err, tol = worst
    outcome = HOLDS if finite and err <= tol else FAILS
    resolution = np.nan if size is None else (nm.CATCH_FACTOR * widest / size if size > 0 else np.inf)
    return Verdict(claim, law, outcome, err, tol, message, dtype=f"gradient in {np.dtype(dtype).name}",
                   evaluations=evaluations, resolution=resolution)
