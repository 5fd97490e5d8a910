"""Family D: sampling. Every mini-batch of a small data set is listed, so the
mean and the covariance of the mini-batch gradient are exact sums over the
listing, not estimates from random draws; the claims compare them with the
full-data gradient and with the variance formulas."""

from __future__ import annotations

from typing import Callable

import numpy as np
from hypothesis import strategies as st

from .. import numerics as nm
from ..reduction import take
from ..training import sampling as smp
from ..verdict import Verdict, combine
from ._common import Case, both, by_differences, by_rounding, grad, per_example, problems, verdict
from .registry import UNIVERSAL, Claim, Property, register

# The claims are about sampling: the network only has to give each example
# its own gradient. Small networks (at most 73 parameters) keep a case within
# the time budget, where N autograd passes and finite differences cost most,
# and the 4,096 batches of 4 drawn from 8 examples within a few megabytes.
NET = dict(max_depth=3, max_width=5)

F64 = np.dtype(np.float64)
TINY = float(np.finfo(F64).smallest_subnormal)


def _enumerations(N: int) -> list[tuple[int, bool]]:
    """Every batch size 1 <= M <= N, without and with replacement, whose
    enumeration fits in MAX_BATCHES: each case checks them all."""
    return [(M, replace) for replace in (False, True)
            for M in range(1, smp.largest_batch(N, replace=replace) + 1)]


def _data_sets() -> st.SearchStrategy[Case]:
    """A data set of N examples; one batch (M, replace, k), whose row of the
    enumeration is checked against that batch's own loss; one example i,
    whose gradient finite differences vouch for. N is one choice among
    1..8 drawn before the network: drawn inside the batch, it is 1 in most
    derandomized cases, where there is one batch and nothing to see."""
    @st.composite
    def build(draw: Callable) -> Case:
        N = draw(st.sampled_from(range(1, 9)))
        case = draw(problems(min_size=N, max_size=N, **NET))
        M, replace = draw(st.sampled_from(_enumerations(N)))
        k = draw(st.integers(0, smp.count(N, M, replace=replace) - 1))
        case.extra.update(M=M, replace=replace, k=k, i=draw(st.integers(0, N - 1)))
        return case
    return build()


def _examples(case: Case) -> np.ndarray:
    """The per-example gradients, one float64 row each: the data set of vectors
    the enumeration averages. (Computed wide, rounded once.)"""
    return np.array(per_example(case), dtype=np.float64)


def _listed(N: int) -> list[tuple[np.ndarray, bool]]:
    return [(smp.batches(N, M, replace=replace), replace) for M, replace in _enumerations(N)]


def _scheme(idx: np.ndarray, N: int, replace: bool) -> str:
    K, M = idx.shape
    what = "ordered draws with replacement" if replace else "subsets"
    return f"all {K} {what} of M={M} from N={N}"


def _every(N: int) -> str:
    top = smp.largest_batch(N, replace=True)
    upto = "every M" if top == N else f"M ≤ {top}"
    return (f"every M from 1 to N={N}, over all C(N, M) subsets and ({upto}) over all N^M "
            f"ordered draws")


# D1 -------------------------------------------------------------------------------

def _averages(case: Case, g: np.ndarray, idx: np.ndarray, replace: bool,
              full: tuple[np.ndarray, np.ndarray]) -> list[Verdict]:
    """The average over the batches of ∇L_mean and of (N/M)∇L_sum, against
    autograd's full-data gradients ``full`` (mean, sum). Each averaged entry
    is built from K·M rounded terms: a pairwise sum over the M positions,
    then one over the K batches (ceil(log2 M) + ceil(log2 K) additions per
    term), two divisions or a scaling. sum_rounding with count K·M allows
    log2(KM) + 1 + C_GRAD ulps of the summed |terms|; the C_GRAD part also
    covers rounding each per-example gradient and autograd's (wide) full
    gradient to float64."""
    N, (K, M) = len(g), idx.shape
    # Σ|terms| of the average, entry by entry: example i enters it
    # multiplicity_i times, each time divided by K·M.
    terms = smp.multiplicity(idx, N) @ np.abs(g) / (K * M)
    sums = smp.batch_sums(g, idx)
    what = _scheme(idx, N, replace)
    on_mean = by_rounding("D1", "unbiased mean", case.params, smp.mean(sums / M), full[0], terms, K * M,
                          f"{what}: the average of the mini-batch ∇L_mean is not ∇L_mean")
    on_sum = by_rounding("D1", "unbiased scaled sum", case.params, smp.mean(sums * (N / M)), full[1],
                         N * terms, K * M, f"{what}: the average of (N/M)·∇L_sum is not ∇L_sum")
    return [on_mean, on_sum]


def _one_batch(case: Case, g: np.ndarray) -> Verdict:
    """Row k of the enumeration is the gradient of that mini-batch's own
    L_mean (repeats included): the rows are real mini-batch gradients."""
    M, replace, k = (case.extra[key] for key in ("M", "replace", "k"))
    batch = smp.batches(len(g), M, replace=replace)[k]
    xs, ys = take((case.x, case.y), batch)
    row = smp.batch_means(g, batch[None, :])[0]
    return by_rounding("D1", "mini-batch gradient", case.params, row,
                       grad(case, xs, ys, reduction="mean").astype(F64),
                       np.mean(np.abs(g[batch]), axis=0), M,
                       f"the enumeration's row for batch {batch.tolist()} is not that batch's ∇L_mean")


def _unbiasedness(case: Case) -> Verdict:
    g = _examples(case)
    full = (grad(case, reduction="mean").astype(F64), grad(case, reduction="sum").astype(F64))
    laws = [v for idx, replace in _listed(len(g)) for v in _averages(case, g, idx, replace, full)]
    law = combine("D1", [*laws, _one_batch(case, g)])
    # The oracle vouches for the per-example gradients, through their mean:
    # the gradient of the full-data L_mean, by finite differences.
    fd = by_differences("D1", lambda p: case.net.total_loss(p, case.x, case.y, reduction="mean"),
                        case.params, smp.mean(g), case.seed)
    return both(law, [fd], f"for {_every(len(g))}, the mini-batch ∇L_mean averages to ∇L_mean "
                           f"and (N/M)·∇L_sum to ∇L_sum")


register(Claim(
    "D1", "Unbiasedness", UNIVERSAL,
    "Over all C(N, M) subsets of a data set of N examples, the mini-batch ∇L_mean averages to the "
    "full-data ∇L_mean, and (N/M)·∇L_sum to the full-data ∇L_sum; the same holds over all N^M "
    "ordered draws with replacement. A uniformly drawn mini-batch is an unbiased estimate for "
    "every batch size 1 ≤ M ≤ N, not only M = 1.",
    "Every batch equally likely (uniform sampling, with or without replacement), and each "
    "example's loss depending on that example alone (no batch statistics, see F2). The sum needs "
    "the factor N/M: unscaled, its average is (M/N)·∇L_sum, i.e. M·∇L_mean. Checked exactly, by "
    "listing every batch, for 1 ≤ M ≤ N ≤ 8 without replacement, and with replacement where "
    "N^M ≤ 5,000 (every M for N ≤ 5, M ≤ 4 for N = 6 to 8).",
    "Count, then use linearity twice. Without replacement, example i lies in C(N−1, M−1) of the "
    "C(N, M) subsets, the fraction M/N of them, the same for every i. A mini-batch's ∇L_mean is "
    "(1/M) Σ_{i∈S} g_i (the gradient is linear, A1), so averaging over the subsets weighs each "
    "g_i by (1/M)(M/N) = 1/N: the result is ∇L_mean. With replacement each of the M positions is "
    "uniform over the N examples, so each position's gradient averages to ∇L_mean, and so does "
    "their mean. Multiplying by N turns the mean statements into the sum statements. The "
    "expectation is a finite average with fixed weights, so exchanging it with the gradient needs "
    "no condition beyond each l_i being differentiable at θ.",
    holds_for=(Property("every M ≤ N, all subsets and all ordered draws, generated networks",
                        _data_sets, _unbiasedness),),
))


# D2 -------------------------------------------------------------------------------

def _trace_and_bound(rows: np.ndarray, terms: np.ndarray, count: int) -> tuple[float, float]:
    """trace Cov of ``rows`` over the enumeration, and a bound on its rounding.

    ``terms`` holds, entry by entry, the sum of |terms| that made each row
    from exact float64 data by ``count``-term sums (batch means of |g|).
    A deviation d = m − m̄ then errs by at most η = sum_rounding(terms of m,
    of m̄ and |d|, count): the row's sum, the mean's sum over the rows, the
    subtraction. The identity is exact for the stored gradients, so only
    this arithmetic rounds: no floor for the gradients' own accuracy.
    From the deviations, |Σ d̂² − Σ d²| ≤ Σ η(2|d̂| + η) since
    |d̂² − d²| = |d̂ − d|·|d̂ + d|; the squares and their pairwise sum over
    K·P non-negative terms add sum_rounding of the trace itself.

    Below the normal range rounding is absolute, not relative: a product
    or quotient there errs by up to half the smallest subnormal (sums are
    exact). So η gains one subnormal for its two divisions (by M, by K),
    and the trace P/2 + 1/2 for its K·P squares, then one division by K."""
    d = smp.deviations(rows)
    eta = nm.sum_rounding(terms + smp.mean(terms) + np.abs(d), F64, count) + TINY
    trace = float(smp.covariance_trace(rows))
    propagated = float(np.sum(eta * (2 * np.abs(d) + eta))) / len(d)
    underflow = TINY * (d.size / len(d) + 1) / 2
    return trace, propagated + float(nm.sum_rounding(trace, F64, d.size)) + underflow


def _variance_law(g: np.ndarray, idx: np.ndarray, replace: bool, sigma2: tuple[float, float]) -> Verdict:
    """trace Cov over the enumeration ``idx`` against the formula, from σ²
    and its bound (``sigma2``)."""
    (K, M), N = idx.shape, len(g)
    got, got_tol = _trace_and_bound(smp.batch_means(g, idx), smp.batch_means(np.abs(g), idx), K * M)
    want = smp.predicted_trace(sigma2[0], N, M, replace=replace)
    # The prediction is linear in σ², so it carries σ²'s bound times its
    # factor, plus three roundings of its own (the factor, ×, ÷): within one
    # sum_rounding of a single term.
    factor = smp.predicted_trace(1.0, N, M, replace=replace)
    tol = got_tol + sigma2[1] * factor + float(nm.sum_rounding(want, F64, 1))
    formula = "σ²/M" if replace else "(σ²/M)(N−M)/(N−1)"
    return verdict("D2", "variance", abs(got - want), tol,
                   f"over {_scheme(idx, N, replace)}, trace Cov = {got:.6g}, but {formula} = {want:.6g} "
                   f"with σ² = {sigma2[0]:.6g}")


def _variance(case: Case) -> Verdict:
    g = _examples(case)
    sigma2 = _trace_and_bound(g, np.abs(g), len(g))
    law = combine("D2", [_variance_law(g, idx, replace, sigma2) for idx, replace in _listed(len(g))])
    i = case.extra["i"]
    fd = by_differences("D2", lambda p: case.net.total_loss(p, case.x[i:i + 1], case.y[i:i + 1],
                                                             reduction="sum"), case.params, g[i], case.seed)
    return both(law, [fd], f"for {_every(len(g))}, trace Cov of the mini-batch ∇L_mean is (σ²/M)(N−M)/(N−1) "
                           f"without replacement and σ²/M with, σ² = {sigma2[0]:.6g}")


register(Claim(
    "D2", "Variance", UNIVERSAL,
    "The trace of the covariance of the mini-batch mean gradient is (σ²/M)(N−M)/(N−1) over all "
    "C(N, M) subsets (without replacement) and σ²/M over all N^M ordered draws (with "
    "replacement), where σ² = (1/N) Σ_i ‖g_i − ∇L_mean‖² is the per-example gradient variance "
    "over the data set. A larger batch gives a smoother gradient; without replacement the full "
    "batch (M = N) has no noise left.",
    "Uniform sampling; σ² is the population variance (divisor N) of the per-example gradients at "
    "the current θ, summed over the parameters. For N = 1 there is one batch and nothing varies. "
    "Checked exactly, by listing every batch, for 1 ≤ M ≤ N ≤ 8 without replacement and where "
    "N^M ≤ 5,000 with replacement. Quoting σ²/M for sampling without replacement overstates the "
    "noise by (N−1)/(N−M), without bound as M approaches N.",
    "With replacement the M draws are independent, each with covariance trace σ², so their mean "
    "has σ²/M. Without replacement two positions I ≠ J are negatively correlated: the deviations "
    "d_i = g_i − ∇L_mean sum to zero over the data set, so E⟨d_I, d_J⟩ = (‖Σ d_i‖² − Σ‖d_i‖²) / "
    "(N(N−1)) = −σ²/(N−1). The sum of the M draws then has variance Mσ² − M(M−1)σ²/(N−1) = "
    "Mσ²(N−M)/(N−1); dividing by M² gives (σ²/M) times the finite-population correction "
    "(N−M)/(N−1).",
    holds_for=(Property("every M ≤ N, all subsets and all ordered draws, generated networks",
                        _data_sets, _variance),),
))
