"""The finite-difference oracle.

Central differences on a ladder of three steps (h, 2h, 4h) along a direction,
extrapolated twice (Richardson), with an error bound made of the estimated
truncation (the gap between the last two extrapolation levels) and the
rounding of the loss values (see :mod:`gradcheck.numerics`). The same loss
values give the one-sided differences that reveal a kink.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import numerics as nm

__all__ = ["Probe", "LossOracle", "fd_gradient"]


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
    smooth: bool = True  # the second differences grow as h^2: no kink or seam within 4h


class LossOracle:
    """Evaluates a scalar loss of a flat float64 vector, counting calls.

    ``loss`` maps a flat vector to a number; ``x0`` is the point. The dtype of
    what the loss returns sets the precision of the model (float64 unless the
    function computes in a narrower type).
    """

    def __init__(self, loss: Callable[[np.ndarray], Any], x0: np.ndarray) -> None:
        self._loss = loss
        self.x0 = np.array(x0, dtype=np.float64)
        self.evaluations = 0
        self.precision = np.dtype(np.float64)
        self.f0 = self(self.x0)
        self.eps = nm.eps(self.precision)
        self.h = nm.base_step(self.precision)
        # Each entry moves by h * max(1, |x_j|) per unit of the probe, so the
        # step is relative for large parameters and absolute near zero.
        self.scale = np.maximum(1.0, np.abs(self.x0))
        self._noise: float | None = None

    def __call__(self, x: np.ndarray) -> float:
        self.evaluations += 1
        out = self._loss(x)
        dt = getattr(out, "dtype", None)
        if dt is not None and np.issubdtype(dt, np.floating) and np.finfo(dt).bits < np.finfo(self.precision).bits:
            self.precision = np.dtype(dt)
        return float(np.asarray(out, dtype=np.float64).reshape(()))

    def noise(self) -> float:
        """Measured rounding noise of the loss near x0: the largest residual of
        a parabola through f(x0 + j d v), nine j in [-4, 4], with d = h / 64 so small
        that the cubic term lies far below rounding. Measured once
        per check (8 evaluations), along a fixed Gaussian direction that moves
        every entry by a different amount (a pattern of equal-size signs can
        leave a symmetric loss exactly constant), it covers losses whose value
        is a small difference of large terms, which eps |f| alone would miss."""
        if self._noise is None:
            v = np.random.default_rng(0).standard_normal(self.x0.size) * self.scale
            d = self.h / 64
            # Irregular offsets: on an arithmetic progression a loss that is
            # rounded to a grid can step by whole grid cells and look exact.
            js = np.array([-4.0, -2.9, -1.7, -0.6, 0.0, 0.8, 1.9, 3.1, 3.7])
            fs = np.array([self.f0 if j == 0 else self(self.x0 + j * d * v) for j in js])
            if not np.all(np.isfinite(fs)):
                self._noise = 0.0
            else:
                fit = np.polyval(np.polyfit(js, fs, 2), js)
                self._noise = float(np.max(np.abs(fs - fit)))
        return self._noise

    def probe(self, v: np.ndarray, *, claimed_abs: float = 0.0) -> Probe:
        """Directional derivative along ``v`` (already scaled by ``self.scale``).

        ``claimed_abs`` is sum_j |g_j| |x_j| over the entries that move, for
        the gradient under test: the loss sees its inputs rounded, which moves
        the loss by up to eps times that amount.
        """
        h, f0 = self.h, self.f0
        plus = [self(self.x0 + k * h * v) for k in (1, 2, 4)]
        minus = [self(self.x0 - k * h * v) for k in (1, 2, 4)]
        evals = 6
        values = np.array([f0, *plus, *minus])
        if not np.all(np.isfinite(values)):
            return Probe(np.nan, np.inf, np.nan, np.nan, False, False, evals, False)
        d = [(p - m) / (2 * k * h) for p, m, k in zip(plus, minus, (1, 2, 4))]
        r2 = (64 * d[0] - 20 * d[1] + d[2]) / 45  # twice extrapolated: O(h^6) where f is smooth
        truncation = _truncation(d, r2)
        modelled = nm.C_EVAL * self.eps * (max(np.max(np.abs(values)), nm.LOSS_UNIT) + claimed_abs)
        noise = max(modelled, nm.NOISE_SAFETY * self.noise())
        rounding = nm.RICHARDSON_ROUNDING * noise / h
        fwd, bwd = (plus[0] - f0) / h, (f0 - minus[0]) / h
        kink = _is_kink(plus, minus, f0, h, noise)
        smooth = _is_smooth([p + m - 2 * f0 for p, m in zip(plus, minus)], noise)
        return Probe(r2, truncation + rounding, fwd, bwd, kink, True, evals, smooth)


def _truncation(d: list[float], r2: float) -> float:
    """Error estimate for r2: twice its distance to d0 plus the first gap of
    the ladder (the error of d0 itself).

    Where f is smooth this overstates the error of r2 by far. It is chosen
    over the gap between the last two extrapolation levels because a loss may
    be only once differentiable somewhere within 4h of the point (a ReLU
    squared, a Huber threshold), for one entry of the probe among many; the
    ladder then hides a seam that a narrow estimate would not cover, while this
    one does whenever the smallest step stays on one side.
    """
    return 2 * abs(r2 - d[0]) + abs(d[0] - d[1])


def _is_smooth(second: list[float], noise: float) -> bool:
    """Where f is smooth, the second differences s(k) = f(+kh) + f(-kh) - 2 f0
    are k^2 h^2 D2 + k^4 h^4 D4 / 12 + ... (Dn the n-th directional
    derivative), so s(4) = 16 s(1) up to 20 h^4 D4, far below rounding for any
    D4 a network produces. Each s carries at most 4 noise of rounding, so
    s(4) - 16 s(1) carries 68 noise; beyond twice that, a kink or a seam lies
    within 4h of the point."""
    return abs(second[2] - 16 * second[0]) <= 2 * 68 * noise


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
    """
    gaps = [abs(p + m - 2 * f0) / (k * h) for p, m, k in zip(plus, minus, (1, 2, 4))]
    significant = gaps[0] > 3 * noise / h
    stays = gaps[0] > 0.6 * gaps[1] and gaps[1] > 0.6 * gaps[2]
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
