"""The error model: every tolerance in gradcheck is computed here.

Nothing is tuned per test. Each constant below is an allowance in units of
the machine epsilon of the dtype involved, or a shape of a measurement, with
the reason for its size.
"""

from __future__ import annotations

import numpy as np

# An evaluation of a loss (a forward pass and a batch reduction) is taken to
# be accurate to this many ulps of the largest magnitude it produced: each
# layer adds a few roundings, and dot products of length <= 64 add log2 terms.
# This is the floor of the loss noise; what the loss computed in between (a
# large intermediate that cancels) is measured, not modelled (LossOracle.noise).
C_EVAL = 16.0

# A gradient computed by someone's backward pass, in its own dtype, is taken
# to be accurate to this many ulps of the absolute sum of the terms compared
# (a forward and a backward pass, roughly twice the work of an evaluation).
# This is the floor of the gradient's allowance; the rounding of the terms
# summed into an entry is measured (GRAD_PATTERNS below).
C_GRAD = 32.0

# The reduction checkers hold a gradient entry to at least C_GRAD ulps of
# this unit: a gradient that is zero in exact arithmetic comes out as rounding
# noise of order-one intermediate values (a batch norm over equal inputs, a
# softmax at a tie), and nothing is learned by comparing noise.
# (check_gradient has no such floor: it measures the noise instead, so a loss
# of size 1e-8 is held to its own scale.)
GRAD_UNIT = 1.0

# Central differences on the ladder h, 2h, 4h extrapolated twice (Richardson)
# give R = (64 D(h) - 20 D(2h) + D(4h)) / 45; if each loss value carries an
# absolute error e, R carries at most (64 + 20/2 + 1/4) / 45 * e / h.
RICHARDSON_ROUNDING = (64.0 + 10.0 + 0.25) / 45.0

# The measured noise of a loss (the largest residual of a fit) is doubled:
# the largest of a few samples of rounding understates the largest possible.
# Simulated on pure noise with the oracle's own fits (uniform and Gaussian,
# 3 x 10^4 ladders each), a ladder held to twice the measured residual never
# exceeded its bound.
NOISE_SAFETY = 2.0

# Where the loss noise is measured, in units of the step h along one fixed
# direction. WIDE spans the ladder's own range [-4h, 4h], so it sees the
# rounding of a large intermediate term (1e8 + sum(sin x)) - 1e8: over a
# smaller range such a loss can stay inside one rounding cell and look exact.
# NARROW (within h/8) sees rounding alone, without the structure a function
# has on the scale of the step (an oscillation of period ~h is a cubic there),
# so it can test whether the ladder converges. Offsets are irregular and have no
# mirror pairs: on an even or arithmetic pattern a loss rounded to a grid
# can step by whole cells, or an even function repeat itself, and look exact.
# 16 + 10 points leave 10 and 5 residual degrees of freedom after the fits.
NOISE_WIDE = (-4.0, -3.55, -3.1, -2.6, -2.05, -1.45, -0.9, -0.4,
              0.3, 0.75, 1.3, 1.9, 2.4, 2.95, 3.4, 3.85)
NOISE_NARROW = (-0.125, -0.1, -0.075, -0.045, -0.015, 0.02, 0.05, 0.07, 0.095, 0.12)

# A loss that does not move at all over the wide range may still be rounded
# to a grid coarser than its change there: the range is widened this many
# times, by this factor each, to find the grid (16^2 * 4h ~ 6e-3 in float64,
# still far inside any scale on which a network's loss changes shape).
NOISE_WIDENINGS = 2
NOISE_WIDENING = 16.0

# check_reduction counts the grid of gradient values that no move changes as
# rounding only where each has at least GRID_BITS significant bits: a value
# rounded to the grid of a large term keeps many ((1e8 + 2/3) - 1e8 keeps 26
# of 53, (1e3 + 2/3) - 1e3 in float32 13 of 24), an exact level few (a mean
# of B <= 2^9 signs has at most 9). It widens its ladder for values of at
# least WIDEN_BITS: a coarser grid ((1e13 + 2/3) - 1e13 keeps 9) shows once
# the values move, and the residue of a term that cancels (2^-51, one bit)
# or a mean of a few signs does not call for it.
GRID_BITS = 10
WIDEN_BITS = 4

# A probe's ladder is quiet (LossOracle.quiet) where the two combinations of
# its seven values that no quartic moves, and half the cell of any grid they
# lie on, stay within QUIET_FRACTION of the modelled floor. check_gradient
# measures the loss's noise (26 evaluations) only where a ladder is not quiet,
# a comparison cannot be judged, or a verdict would rest on fewer than
# QUIET_LADDERS quiet ladders; elsewhere the floor is the noise. Simulated,
# 10^6 ladders per case, noise uniform or Gaussian from 1 to 100 times the
# floor: a bound fails to cover its ladder's error only where the noise is 5
# times the floor or more (the truncation estimate sees the rest), and there
# one ladder is quiet with probability at most 4e-3, so four ladders all are
# with at most 3e-10. (One ladder quiet and uncovered: up to 8e-5, at 10
# times the floor; hence no verdict on fewer than four.) Noise at the floor
# itself passes now and then, harmlessly: the bound assumes it.
QUIET_FRACTION = 0.25
QUIET_LADDERS = 4

# The ladder cannot see the function when a smooth fit over the wide range
# leaves residuals of this fraction of the values' spread: values that are
# pure noise (rounding bigger than the change, or an oscillation faster than
# the step) leave at least 13 % (0.1 % quantile, 3 x 10^4 Gaussian draws), a fit
# that follows the function leaves far less, and one kink or seam anywhere
# in the range leaves nothing (a hinge is in the fit's basis).
UNRESOLVED_FRACTION = 0.1

# The wide range's residual is the loss's shape, not its rounding, where it
# is more than this many times what the values round by (the narrow fit's
# residual, or half their grid) and the fit still follows the loss (resolved):
# several kinks or seams along the one direction, which the fit's one hinge
# cannot follow. It is then left out of the noise every ladder is held to
# (each ladder's own truncation bounds the shape it crosses). On rounding
# alone the ratio stayed below 13 (20,000 draws of Gaussian, uniform and real
# cancellation noise, the oracle's own fits); kinks 1.5 h away made it 10^10
# (benchmarks/kinks.py, cases 32 and 40), and every bound 10^6 times too wide.
STRUCTURE_RATIO = 100.0

# A kink is where the one-sided slopes' gap does not shrink with the step
# (oracle._is_kink): each of the gaps at steps h, 2h, 4h must exceed this
# fraction of the next. A smooth function's gaps halve (0.5). A C^1 function
# whose second derivative drops to 0 on one side (relu^2, a Huber loss) at a
# distance c of the smallest step gives gaps in the ratio (1 + 2c - c^2) /
# (2 + 2c - c^2 / 2), which peaks at 0.601 near c = 0.76 (found by the dev
# profile: relu^2 at 1e-5, called a kink at 0.6). A kink at distance c gives
# (1 - c) / (1 - c / 2), above 0.63 for c up to 0.54; beyond that the ladder
# crosses it at every step, and its finite differences do not converge
# (oracle._is_smooth), which is undetermined too.
KINK_STAYS = 0.63

# A comparison that fails is judged again on a second ladder, from this
# fraction of the step (check_gradient's _Setup.compare), and stands only if
# the two estimates agree within their two bounds, as two valid estimates of
# one derivative must. A loss that oscillates faster than the step can alias
# into a ladder that shows the h^2 law by chance, and pass the noise
# measurement's fit too (found by the dev profile: sin(k x) / k with k h ~ 16
# left residuals of 9 % of the spread, and a ladder whose gaps shrank by 0.33
# and 0.36); the second ladder then lands elsewhere. The golden ratio's
# conjugate is the fraction that rationals approximate worst, so no
# oscillation aliases both ladders alike but by the same chance again. Below
# 1, the second ladder stays within the range the noise was measured over.
SECOND_STEP = (5 ** 0.5 - 1) / 2

# The rounding of a gradient entry is the rounding of the terms summed into
# it (per-example terms near a minimum are far larger than their sum), which
# no allowance in ulps of the entry covers. It is measured (check_gradient's
# _Setup.allowance) the first time a comparison does not hold within the
# modelled rounding (sum_rounding below; one that holds within that smaller
# bound needs no more), twice over: grad_fn is called at params and batch moved
# by GRAD_ULPS +- 1 cells of the gradient's dtype along GRAD_PATTERNS random
# sign patterns, where the second difference g(+) + g(-) - 2 g(0) cancels the
# smooth change (to O(ulp^2)) and leaves the jumps of roundings; and the
# first difference per cell moved, the reach of a one-cell error in every
# input, which a rounding (half a cell) stays under even where no jump shows
# (one rounding that dominates jumps unevenly in only a third of the
# patterns). The reach is the largest over those patterns wherever no input is
# held coarser than the gradient, and also along one more pattern of its own
# where some input is held in another dtype (params coarser than the gradient
# stay still there): one pattern alone can cancel by chance in the one value
# that carries the rounding (one example near a fit: with other seeds than
# these, an allowance 168 times too small; float64 inputs computed in float32,
# 1.51 times). With the largest over the patterns, none outside under any pair
# of seeds tried (six for 3,000 float32 and 1,000 float16 gradients near a
# minimum, seven for 5,000 of mixed dtypes), worst 0.65 of the allowance
# (benchmarks/allowance.py). A few cells
# move every intermediate value by more than its own rounding, so each call
# rounds anew; four patterns give a one-entry leaf, which has no neighbours to
# pool with, four samples. Each entry is held to twice what was seen.
GRAD_ULPS = 4
GRAD_PATTERNS = 4
GRAD_NOISE_SAFETY = 2.0

# Probe weights: random signs times magnitudes uniform in this range (times
# max(1, |x_j|)). A Gaussian probe gives some entries a weight near zero in
# every probe, so an error there is invisible; here every entry has a weight
# of at least 1/2 in every probe, while random magnitudes keep two errors from
# cancelling exactly (as +a and -a would under equal weights).
PROBE_WEIGHTS = (0.5, 1.5)

# A directional derivative <v, g> adds the roundings d_j of n gradient
# entries, each weighted by v_j. The probe's signs are drawn at random,
# independently of grad_fn, so sum_j v_j d_j is a sum of independent terms of
# random sign, each within |v_j| a_j (a_j: the entry's allowance), whatever
# the d_j are (all of one sign, as a float32 backward pass rounds them, too).
# Hoeffding's inequality puts it beyond RANDOM_SIGNS_Z times the root sum of
# squares of those bounds with probability at most 2 exp(-Z^2 / 2) = 1.4e-9
# per comparison; it is never held to more than their plain sum. Without this
# the allowance of a projection grows as n, and a float32 gradient of 10^6
# entries could not be checked to better than a few percent; with it, as sqrt(n).
RANDOM_SIGNS_Z = 6.5

# A probe along which several entries are wrong may see their errors cancel.
# An entry j is caught whatever the others do unless its own term v_j e_j
# lands within 2 bounds of minus the rest R. Its weight's magnitude u is
# uniform over an interval of length 1 (PROBE_WEIGHTS, times max(1, |x_j|)),
# and once |e_j| max(1, |x_j|) passes 4 bounds only the sign opposite to R's
# can land there: probability at most 1/2 x 4 bounds / (max(1, |x_j|) |e_j|)
# per probe, independently across probes. A projection states as its
# resolution the error in one entry that every pattern of errors elsewhere
# leaves uncaught with probability at most MISS_PROBABILITY over its probes
# (with 4 probes: 63 bounds, where one wrong entry alone is caught for
# certain at 2).
MISS_PROBABILITY = 1e-6

# The resolution a check must reach to say "holds", unless the caller asks
# for another: the smallest relative error in a typical gradient entry (one of
# root-mean-square size) that the check must be able to catch. 1e-3 is the
# relative tolerance people already accept from a float32 gradient check (and
# torch.autograd.gradcheck's default rtol); float64 checks reach 1e-6 or far
# better, so the default only ever bites where precision is genuinely short.
DEFAULT_RESOLUTION = 1e-3

# An error is caught for certain only when it exceeds twice a comparison's
# bound: the bound covers the finite-difference error and the gradient's
# rounding, and either may use its whole allowance against the error.
CATCH_FACTOR = 2.0


def eps(dtype: np.dtype | type) -> float:
    """Machine epsilon of a float dtype (float64 for anything non-float)."""
    dt = np.dtype(dtype)
    return float(np.finfo(dt if np.issubdtype(dt, np.floating) else np.float64).eps)


def base_step(dtype: np.dtype | type) -> float:
    """Central-difference step for unit scale: eps^(1/3) balances the h^2
    truncation of a central difference against its eps/h rounding."""
    return eps(dtype) ** (1.0 / 3.0)


def sum_rounding(terms_abs: np.ndarray, dtype: np.dtype | type, count: int) -> np.ndarray:
    """Bound on the rounding of a sum of ``count`` terms whose absolute values
    add up to ``terms_abs`` (pairwise summation: log2(count) + 1 roundings each),
    plus the C_GRAD allowance for how the terms themselves were computed."""
    return (C_GRAD + np.log2(max(count, 1)) + 1.0) * eps(dtype) * terms_abs


# -- check_reduction ---------------------------------------------------------------

def kink_move(dtype: np.dtype | type) -> float:
    """Relative move of the params (times |θ|, or their RMS size for an entry
    at 0; in the params' dtype) at which check_reduction re-checks a law that
    failed at the point given.
    sqrt(eps) puts the moved point some 1/sqrt(eps) roundings away from a kink
    at the point (1e8 in float64), so batched and single-example passes can no
    longer round to different sides of it, while it moves the point by only a
    relative sqrt(eps): a reduction that is wrong at the point is as wrong there."""
    return eps(dtype) ** 0.5


def fit_uncertainty(tolerance: float, size: int, smallest_singular_value: float) -> float:
    """How far rounding can move a coefficient fitted by least squares: an error
    of ``tolerance`` in each of ``size`` entries, through the fit's smallest
    singular value. check_reduction calls a fit degenerate (no diagnosis)
    where this reaches the largest coefficient, and tells fitted weights
    apart only where they differ by more than twice it."""
    return tolerance * np.sqrt(size) / smallest_singular_value if smallest_singular_value > 0 else np.inf


def random_sign_rounding(bounds: np.ndarray) -> float:
    """Bound on sum_j s_j d_j with |d_j| <= bounds[j] and signs s_j drawn at
    random, independently of the d_j (see RANDOM_SIGNS_Z): the smaller of
    the plain sum and Z times the root sum of squares.

    >>> random_sign_rounding(np.ones(4)), round(random_sign_rounding(np.ones(10**6)), 3)
    (4.0, 6500.0)
    """
    b = np.abs(np.asarray(bounds, dtype=np.float64))
    return float(min(np.sum(b), RANDOM_SIGNS_Z * np.sqrt(np.sum(b * b))))
