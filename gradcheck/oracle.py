"""The finite-difference oracle.

Central differences on a ladder of three steps (h, 2h, 4h) along a direction,
extrapolated twice (Richardson), with an error bound made of the estimated
truncation and the rounding of the loss values. The rounding is measured
once per point (:meth:`LossOracle.noise`), over the ladder's own range, so it
covers large intermediate terms that cancel; :mod:`gradcheck.numerics` holds
the floor it never goes below. The same loss values give the one-sided
differences that reveal a kink, and whether the ladder converges as the
step shrinks, which shows whether it can see the function at all.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from . import numerics as nm
from ._calls import loss_value, scratch

__all__ = ["Probe", "Noise", "LossOracle", "fd_gradient"]


@dataclass(frozen=True)
class Probe:
    """A finite-difference estimate of one directional derivative."""

    value: float  # Richardson estimate of <grad f, v>
    bound: float  # truncation estimate + rounding bound on ``value``
    forward: float  # one-sided differences at the smallest step
    backward: float
    kink: bool  # one-sided differences disagree and do not close as h shrinks
    finite: bool  # every loss value on the ladder was finite
    evaluations: int
    smooth: bool = True  # the ladder converges as h shrinks (not an oscillation faster than the step)
    resolved: bool = True  # the loss's change over the ladder's range stands out of its noise
    ladder: tuple[float, ...] = field(default=(), repr=False)  # f0, f(+h, +2h, +4h), f(-h, -2h, -4h)
    flat: bool = False  # every value on the ladder equals f0 exactly
    claimed_abs: float = field(default=0.0, repr=False)
    step: float = 0.0  # the ladder's smallest step (0: the oracle's own, LossOracle.h)


@dataclass(frozen=True)
class Noise:
    """The loss's rounding near the point, as measured (absolute, one value).

    ``level`` bounds the error of one loss value (the bound's rounding term);
    ``rounding`` is the part that is rounding alone, without structure of the
    function on the scale of the step (what the convergence test is held to);
    ``level`` is larger only where the wide range's residual (``shape``) is
    not far beyond it, and so may be rounding the narrow range did not show;
    ``resolved`` is False when the values over the ladder's range look like
    noise: the step cannot see how the loss changes there.
    """

    level: float
    rounding: float
    resolved: bool
    finite: bool = True
    flat: bool = False  # not one value differs from f0, even 4 h * NOISE_WIDENING^2 away
    spread: float = 0.0  # max - min of the loss over the ladder's range along the measured direction
    size: float = 0.0  # the largest |loss| seen there
    shape: float = 0.0  # the wide fit's largest residual, doubled: rounding, or kinks crossed


# The noise a probe is assessed under before any is measured: nothing beyond
# the modelled rounding (see LossOracle.quiet for when that is enough).
FLOOR = Noise(0.0, 0.0, True)


class LossOracle:
    """Evaluates a scalar loss of a flat float64 vector, counting calls.

    ``loss`` maps a flat vector to a number; ``x0`` is the point. The dtype of
    what the loss returns sets the precision of the model (float64 unless the
    function computes in a narrower type). ``floor_first``: assess probes
    under the modelled floor alone until :meth:`noise` is called.
    """

    def __init__(self, loss: Callable[[np.ndarray], Any], x0: np.ndarray, *,
                 argname: str = "loss_fn", floor_first: bool = False) -> None:
        self._loss = loss
        self._argname = argname
        self.x0 = np.array(x0, dtype=np.float64)
        self.evaluations = 0
        self._spare: np.ndarray | None = None  # a point's vector nothing refers to any more
        self._lent: np.ndarray | None = None  # the point last made by _point
        self._steps: np.ndarray | None = None  # h v, 2 h v and 4 h v for a ladder moving every entry
        self.precision = np.dtype(np.float64)
        self._lent = self.x0.copy()  # every call gets a vector of its own
        self.f0 = self(self._lent)
        self.eps = nm.eps(self.precision)
        self.h = nm.base_step(self.precision)
        # Each entry moves by h * max(1, |x_j|) per unit of the probe, so the
        # step is relative for large parameters and absolute near zero.
        self.scale = np.abs(self.x0)
        np.maximum(self.scale, 1.0, out=self.scale)
        self.unit_scale = float(np.max(self.scale, initial=1.0)) == 1.0  # then v * scale is v itself
        self._noise: Noise | None = None
        # With floor_first, probes are assessed under FLOOR until the noise is
        # asked for (noise()): check_gradient asks where a ladder is not quiet.
        self.measured = not floor_first
        self._avoided = np.zeros(self.x0.size, dtype=bool)

    def __call__(self, x: np.ndarray) -> float:
        """The loss at ``x``, a vector made for this call: the loss may be
        handed views of it."""
        self.evaluations += 1
        held = sys.getrefcount(x)
        with scratch(x) if x is self._lent else contextlib.nullcontext():
            out = self._loss(x)
        value, dt = loss_value(out, self._argname)
        if x is self._lent and sys.getrefcount(x) == held:
            # Nothing the loss kept refers to x (a view would): the next
            # point may reuse its memory. At 10^6 entries a fresh vector's
            # pages cost more to touch than the arithmetic that fills them.
            self._spare = x
        self._lent = None
        if np.issubdtype(dt, np.floating) and np.finfo(dt).bits < np.finfo(self.precision).bits:
            self.precision = np.dtype(dt)
        return value

    # ------------------------------------------------------------ noise

    def noise(self) -> Noise:
        """Measure the loss's rounding near x0, once (26 evaluations, more
        only if the loss does not move at all over the ladder's range).

        Along a fixed direction with weights of random sign and size
        (a pattern of equal-size signs can leave a symmetric loss exactly
        constant), the loss is sampled at irregular offsets over the ladder's
        range [-4h, 4h] and within h/8. Smooth fits leave the rounding as
        residuals: over the wide range a quartic with a hinge anywhere in it
        (so one kink or seam is no noise), over the narrow one a cubic with a
        kink at the point. A loss rounded to a grid (a large intermediate
        that cancels) shows the grid as the common binary step of its values,
        or as repeated levels; its values are off by up to half a cell."""
        self.measured = True
        if self._noise is None:
            self._noise = self._measure()
        return self._noise

    @property
    def current_noise(self) -> Noise:
        """The noise probes are assessed under: as measured, once it has
        been, else FLOOR."""
        return self.noise() if self.measured else FLOOR

    def quiet(self, probe: Probe) -> bool:
        """The probe's own seven values show no rounding beyond the modelled
        floor, and a change of the loss well above it: then the measured noise
        could not move its assessment, and need not be measured.

        A smooth function along the ladder is a quartic to far below rounding
        (the ladder spans 8 h); the odd values o_k = (f(kh) - f(-kh)) / 2 and
        the even ones f(kh) + f(-kh) - 2 f0 (k = 1, 2, 4) each leave one
        combination that no quartic moves, 16 o_1 - 10 o_2 + o_4 and
        64 s_1 - 20 s_2 + s_4, and in which noise of standard deviation
        sigma per value has standard deviation sigma once divided by the
        norms below. Both, and half the cell of any grid the values lie on
        (a large term that cancels rounds them to its grid), must stay within
        numerics.QUIET_FRACTION of the modelled floor; a flat or non-finite
        ladder is never quiet, nor one whose change over its range is not ten
        times the floor (a loss that barely moves is where a measurement
        finds whether the steps can see it)."""
        if not probe.finite or probe.flat or not probe.ladder:
            return False
        f0, *rest = probe.ladder
        plus, minus = np.array(rest[:3]), np.array(rest[3:])
        floor = nm.C_EVAL * self.eps * (float(np.max(np.abs(probe.ladder))) + probe.claimed_abs)
        odd = (plus - minus) / 2
        even = plus + minus - 2 * f0
        shown = max(abs(16 * odd[0] - 10 * odd[1] + odd[2]) / _ODD_NORM,
                    abs(64 * even[0] - 20 * even[1] + even[2]) / _EVEN_NORM,
                    _grid(np.array(rest) - f0) / 2)
        spread = float(np.ptp(probe.ladder))
        return bool(shown <= nm.QUIET_FRACTION * floor and spread * nm.UNRESOLVED_FRACTION >= floor)

    def avoid(self, entries: np.ndarray) -> None:
        """Measure the noise again, along a direction that leaves ``entries``
        still (those found on or near a kink): one kink anywhere in the
        measured range is part of the fit, but several at different places
        along one direction are not, and would pass for noise. Probes taken
        before are re-assessed with :meth:`assess`. Nothing happens unless
        some entries are avoided and some still move."""
        entries = np.asarray(entries, bool)
        if entries.any() and not entries.all() and not np.array_equal(entries, self._avoided):
            self._avoided = entries
            self._noise = None

    def _direction(self) -> np.ndarray:
        rng = np.random.default_rng(0)
        return np.where(self._avoided, 0.0, _weights(rng, self.x0.size) * self.scale)

    def _sample(self, u: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        return np.array([self(self._point(t * self.h, u)) for t in offsets])

    def _point(self, t: float, v: np.ndarray, span: tuple[int, int] | None = None) -> np.ndarray:
        """x0 + t v, in one new array (at 10^6 entries a second one costs as
        much as the arithmetic); v is read within ``span`` only, if given, and
        taken as zero elsewhere: the rest is a copy of x0 (x0_j + t 0 is x0_j)."""
        x = self._fresh()
        if span is None or span == (0, self.x0.size):
            np.multiply(v, t, out=x)
            x += self.x0
            return x
        lo, hi = span
        np.copyto(x, self.x0)
        x[lo:hi] += np.multiply(v[lo:hi], t)
        return x

    def _fresh(self) -> np.ndarray:
        """A vector for the next call: one nobody refers to any more, or a new one."""
        x, self._spare = (np.empty_like(self.x0) if self._spare is None else self._spare), None
        self._lent = x  # made for the call it is handed to, and for nothing else
        return x

    def _whole_ladder(self, v: np.ndarray, h: float) -> list[float]:
        """The loss at x0 + k h v for k = 1, 2, 4, -1, -2, -4, v moving every
        entry: h v is taken once and doubled, exactly (a power of two commutes
        with rounding: the same vectors as (k h) v), so each point is one pass
        over the entries, not two."""
        if self._steps is None:
            self._steps = np.empty((3, self.x0.size))
        u = self._steps
        np.multiply(v, h, out=u[0])
        np.add(u[0], u[0], out=u[1])
        np.add(u[1], u[1], out=u[2])
        return [self(op(self.x0, u[k], out=self._fresh())) for op in (np.add, np.subtract) for k in range(3)]

    def _measure(self) -> Noise:
        u = self._direction()
        wide_t = np.array([*nm.NOISE_WIDE, 0.0])
        narrow_t = np.array([*nm.NOISE_NARROW, 0.0])
        wide = np.append(self._sample(u, wide_t[:-1]), self.f0)
        narrow = np.append(self._sample(u, narrow_t[:-1]), self.f0)
        if not (np.all(np.isfinite(wide)) and np.all(np.isfinite(narrow))):
            return Noise(0.0, 0.0, True, finite=False)
        resolved, flat = True, False
        if np.all(wide == self.f0):
            # Flat over the whole ladder: either constant, or rounded to a grid
            # coarser than its change there. Widen to find out.
            resolved, grid_values = self._widen(u)
            flat = resolved
        else:
            grid_values = np.concatenate([wide, narrow])
        r_wide = _wide_residual(wide_t, wide)
        r_narrow = _residual(_narrow_basis(narrow_t * 8), narrow)
        spread = float(np.ptp(wide))
        if spread > 0 and r_wide > nm.UNRESOLVED_FRACTION * spread:
            resolved = False
        grid = _grid(grid_values - self.f0) / 2  # round to nearest: half a cell
        rounding = nm.NOISE_SAFETY * max(r_narrow, grid)
        shape = nm.NOISE_SAFETY * r_wide
        # A wide residual far beyond the rounding, where the wide fit still
        # follows the loss (resolved), is the loss's shape along u (kinks it
        # crosses), not noise of its values: each ladder's own truncation
        # bounds the shape it sees, and the rounding is all that every ladder
        # carries (see numerics.STRUCTURE_RATIO). Where the fit cannot follow
        # it (an oscillation faster than the step), the residual stays noise.
        structure = resolved and shape > nm.STRUCTURE_RATIO * rounding
        level = rounding if structure else max(shape, rounding)
        return Noise(level, rounding, resolved, flat=flat, spread=spread, size=float(np.max(np.abs(wide))),
                     shape=shape)

    def _widen(self, u: np.ndarray) -> tuple[bool, np.ndarray]:
        t = np.array(nm.NOISE_WIDE)
        for k in range(1, nm.NOISE_WIDENINGS + 1):
            values = self._sample(u, t * nm.NOISE_WIDENING ** k)
            finite = values[np.isfinite(values)]
            if np.any(finite != self.f0):
                # It moves, but not over the ladder's range: the ladder sees
                # less than one rounding cell of it.
                return False, np.append(finite, self.f0)
        # Constant along u as far as it was followed: constant, or rounded to
        # a grid so coarse that nothing shows (Noise.flat).
        return True, np.array([self.f0])

    # ------------------------------------------------------------ probes

    def probe(self, v: np.ndarray, *, claimed_abs: float = 0.0, span: tuple[int, int] | None = None,
              step: float = 0.0) -> Probe:
        """Directional derivative along ``v`` (already scaled by ``self.scale``;
        read within ``span`` only, if given, and taken as zero elsewhere), on
        a ladder from ``step`` (0: ``self.h``).

        ``claimed_abs`` is sum_j |g_j| |x_j| over the entries that move, for
        the gradient under test: the loss sees its inputs rounded, which moves
        the loss by up to eps times that amount.
        """
        h = step or self.h
        if span is None or span == (0, self.x0.size):
            ladder = self._whole_ladder(v, h)
            plus, minus = ladder[:3], ladder[3:]
        else:
            plus = [self(self._point(k * h, v, span)) for k in (1, 2, 4)]
            minus = [self(self._point(-k * h, v, span)) for k in (1, 2, 4)]
        return self.assess(Probe(np.nan, np.inf, np.nan, np.nan, False, False, 6, False,
                                 ladder=(self.f0, *plus, *minus), claimed_abs=claimed_abs, step=step))

    def assess(self, probe: Probe) -> Probe:
        """The probe's estimate and bound from its ladder, under the noise as
        now measured (no evaluations: see :meth:`avoid`)."""
        f0, *rest = probe.ladder
        plus, minus, h = rest[:3], rest[3:], probe.step or self.h
        if not np.all(np.isfinite(probe.ladder)):
            return replace(probe, value=np.nan, bound=np.inf, finite=False, smooth=False)
        measured = self.current_noise
        d, r2, second = _ladder_terms(probe.ladder, h)
        modelled = nm.C_EVAL * self.eps * (float(np.max(np.abs(probe.ladder))) + probe.claimed_abs)
        noise = max(modelled, measured.level)
        rounding = nm.RICHARDSON_ROUNDING * noise / h
        # A loss that does not change at all, here nor far along the noise
        # direction (Noise.flat), may be constant or rounded to a grid that hides
        # every change: its flat ladder says nothing about the slope.
        flat = all(f == f0 for f in probe.ladder)
        return replace(probe, value=r2, bound=_truncation(d, second, r2, h) + rounding,
                       forward=(plus[0] - f0) / h, backward=(f0 - minus[0]) / h,
                       kink=_is_kink(plus, minus, f0, h, noise), finite=True,
                       smooth=_is_smooth(second, d, h, max(modelled, measured.rounding)),
                       resolved=measured.resolved and measured.finite and not (flat and measured.flat),
                       flat=flat)


def _ladder_terms(ladder: tuple[float, ...], h: float) -> tuple[list[float], float, list[float]]:
    """A ladder's central differences D(kh), their extrapolation r2, and its
    second differences s(k) = f(+kh) + f(-kh) - 2 f0, k = 1, 2, 4."""
    f0, *rest = ladder
    plus, minus = rest[:3], rest[3:]
    d = [(p - m) / (2 * k * h) for p, m, k in zip(plus, minus, (1, 2, 4))]
    r2 = (64 * d[0] - 20 * d[1] + d[2]) / 45  # twice extrapolated: O(h^6) where f is smooth
    return d, r2, [p + m - 2 * f0 for p, m in zip(plus, minus)]


def truncation(probe: Probe, h: float) -> float:
    """The part of a finite ladder's bound that is its own truncation, not
    rounding (``h``: the oracle's step, unless the probe has its own)."""
    h = probe.step or h
    d, r2, second = _ladder_terms(probe.ladder, h)
    return _truncation(d, second, r2, h)


# The standard deviations, in units of that of one value's noise, of the two
# combinations LossOracle.quiet reads (independent noise in each value):
# o_k carries half the difference of two values, s_k two values and -2 f0.
_ODD_NORM = float(np.sqrt((16**2 + 10**2 + 1) / 2))
_EVEN_NORM = float(np.sqrt(2 * (64**2 + 20**2 + 1) + 4 * (64 - 20 + 1) ** 2))


def _weights(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random signs times magnitudes in numerics.PROBE_WEIGHTS."""
    lo, hi = nm.PROBE_WEIGHTS
    # The draws of rng.choice([-1.0, 1.0], size=n) (1 -> +, 0 -> -), without
    # its indexing, then the magnitudes; in the fewest passes over n entries.
    signs = rng.integers(0, 2, size=n).astype(np.float64)
    signs -= 0.5
    weights = rng.uniform(lo, hi, size=n)
    return np.copysign(weights, signs, out=weights)


def _wide_residual(t: np.ndarray, values: np.ndarray) -> float:
    """Largest residual of the best of several fits over the wide range: a
    quartic, plus a hinge in one gap between samples (H, t H and t^2 H, H
    the samples beyond the gap), for every gap with three samples or more
    on each side. One kink or seam anywhere in the range (a ReLU at 0, at
    2h, its square) is then part of the fit, not noise; so is one jump (H),
    which a loss rounded to two levels makes, and which _grid bounds. Pure
    noise still leaves residuals that cover it (numerics.NOISE_SAFETY)."""
    order = np.argsort(t)
    t, values = t[order], values[order]
    poly = [t**p for p in range(5)]
    best = np.inf
    for gap in range(2, t.size - 3):
        hinge = (np.arange(t.size) > gap).astype(float)
        basis = np.stack(poly + [hinge, t * hinge, t**2 * hinge], axis=1)
        best = min(best, _residual(basis, values, reference=values[t == 0][0]))
    return best


def _narrow_basis(t: np.ndarray) -> np.ndarray:
    # Within h/8 the quartic term of any function the ladder can follow is
    # far below rounding: a cubic, with a kink or seam at the point.
    return np.stack([t**0, t, t**2, t**3, np.abs(t), t * np.abs(t)], axis=1)


def _residual(basis: np.ndarray, values: np.ndarray, reference: float | None = None) -> float:
    """Largest residual of a least-squares fit (values taken relative to f0,
    ``reference`` or else their last entry, so the fit works on the small
    differences)."""
    y = values - (values[-1] if reference is None else reference)
    coef, *_ = np.linalg.lstsq(basis, y, rcond=None)
    return float(np.max(np.abs(y - basis @ coef)))


def _grid(diffs: np.ndarray) -> float:
    """The cell of a grid the values lie on: the largest power of two that
    divides every difference from f0, or the gap between levels when two or
    more levels repeat (a grid that is not binary). ~ulp(f) for a loss that is
    not quantized beyond its own rounding."""
    nonzero = np.abs(diffs[diffs != 0])
    if nonzero.size == 0:
        return 0.0
    mant, expo = np.frexp(nonzero)
    ints = (mant * 2.0**53).astype(np.int64)
    low = (ints & -ints).astype(np.float64)  # lowest set bit of each mantissa
    binary = float(np.min(np.ldexp(low, expo - 53)))
    levels, counts = np.unique(diffs, return_counts=True)
    repeated = np.sum(counts > 1)
    gap = float(np.min(np.diff(levels))) if repeated >= 2 else 0.0
    return max(binary, gap)


def _truncation(d: list[float], second: list[float], r2: float, h: float) -> float:
    """Error estimate for r2: twice its distance to d0, plus the first gap of
    the ladder (the error of d0 itself), plus how far the second differences
    s(k) = f(+kh) + f(-kh) - 2 f0 stray from growing as k^2.

    Where f is smooth this overstates the error of r2 by far. It is chosen
    over the gap between the last two extrapolation levels because a loss may
    be only once differentiable somewhere within 4h of the point (a ReLU
    squared, a Huber threshold): a seam where the second derivative jumps by
    J, at c steps from the point, moves D(kh) by J h (k - c)^2 / 4k for k > c,
    which Richardson's weights do not cancel. With one seam the first two
    terms bound that error twice over. Two seams (two residuals on a Huber
    threshold, for one probe moving many entries) can leave D(h), D(2h) and
    D(4h) nearly equal and all wrong: seams on opposite sides of the point,
    or jumps of opposite sign, make the ladder look converged. Their even
    part shows them: each seam adds J h^2 (k - c)^2 / 2 to s(k), and a
    smooth f gives s(k) / k^2 constant to O(h^4). The third term,
    |s(1) - s(2)/4| + |s(2)/4 - s(4)/16| over h, makes the sum cover any two
    seams with a margin of 1.5 (the worst ratio of error to estimate over
    all positions and jumps is 2/3; the first two terms alone allow any
    ratio). Three seams inside the ladder, or a smooth part that changes
    shape on the scale of h itself, can defeat any estimate read off seven
    values.
    """
    even = abs(second[0] - second[1] / 4) + abs(second[1] / 4 - second[2] / 16)
    return 2 * abs(r2 - d[0]) + abs(d[0] - d[1]) + even / h


def _is_smooth(second: list[float], d: list[float], h: float, noise: float) -> bool:
    """The ladder converges as the step shrinks, in its odd and its even part,
    at first order or better: then _truncation bounds its error.

    Where f is smooth, the central differences D(kh) = D1 + k^2 h^2 D3 / 6 +
    ... approach the derivative as h^2, so the gap D(h) - D(2h) is a quarter of
    D(2h) - D(4h); where f is only once differentiable within the ladder (a
    seam: a Huber threshold, a ReLU squared) the error is first order and the
    gap halves. Likewise the second differences s(k) = f(+kh) + f(-kh) - 2 f0
    shrink as k^2 (as k at a kink, which _is_kink names). Beyond 0.6 of the
    next gap (the same margin above one half as _is_kink's), plus twice what
    rounding can put into the gaps (D(kh) carries noise / kh: 1.5 + 0.6 x 0.75
    noise / h; each s carries 4 noise), the ladder does not converge: the loss
    oscillates faster than the step can follow (an oscillation that the steps
    alias moves the D(kh) at random), and no bound of its error can be read
    off the ladder.

    ``noise`` is rounding alone (Noise.rounding, or the modelled floor), not
    the wide-range measurement, which an oscillation within 4h would inflate
    until any ladder looked smooth.
    """
    odd = abs(d[0] - d[1]) <= 0.6 * abs(d[1] - d[2]) + 2 * (1.5 + 0.6 * 0.75) * noise / h
    even_allowance = 2 * (4 + 0.6 * 4) * noise
    even = all(abs(second[i]) <= 0.6 * abs(second[i + 1]) + even_allowance for i in (0, 1))
    return bool(odd and even)


def _is_kink(plus: list[float], minus: list[float], f0: float, h: float, noise: float) -> bool:
    """One-sided slopes differ by gap(k) = (f(+kh) + f(-kh) - 2 f0) / (kh).

    Where f is smooth, gap(k) = k h f'' + O(h^3): it halves with the step.
    At a kink it tends to the jump in slope and stays put. A kink is declared
    when the gap does not shrink with the step and, at the smallest step,
    exceeds 3 noise / h. That threshold is tied to the comparison, not to the
    worst-case rounding of the gap (4 noise / h): a central difference at a
    kink returns the mean of the one-sided slopes, so a gradient that takes one
    side is off by half the jump and fails against a bound of about
    1.65 noise / h once the jump passes 3.3 noise / h. Every jump that could
    fail a comparison must be seen as a kink first. (noise is itself an upper
    bound, doubled from a measurement, so rounding alone rarely reaches it.)
    The gap "stays" when each is more than numerics.KINK_STAYS of the next.
    """
    gaps = [abs(p + m - 2 * f0) / (k * h) for p, m, k in zip(plus, minus, (1, 2, 4))]
    significant = gaps[0] > 3 * noise / h
    stays = gaps[0] > nm.KINK_STAYS * gaps[1] and gaps[1] > nm.KINK_STAYS * gaps[2]
    return bool(significant and stays)


def fd_gradient(loss: Callable[[np.ndarray], Any], x0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every partial derivative of ``loss`` at ``x0`` by the oracle, with bounds.

    >>> g, b = fd_gradient(lambda x: float(np.sum(np.sin(x))), np.array([0.0, 1.0]))
    >>> bool(np.allclose(g, np.cos([0.0, 1.0]), atol=1e-10))
    True
    """
    oracle = LossOracle(loss, x0)
    grad, bound = np.empty(x0.size), np.empty(x0.size)
    for j in range(x0.size):
        v = np.zeros(x0.size)
        v[j] = oracle.scale[j]
        p = oracle.probe(v)
        grad[j], bound[j] = p.value / oracle.scale[j], p.bound / oracle.scale[j]
    return grad, bound
