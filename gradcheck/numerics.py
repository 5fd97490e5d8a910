"""The error model: every tolerance in gradcheck is computed here.

Nothing is tuned per test. Each constant below is an allowance in units of
the machine epsilon of the dtype involved, with the reason for its size.
"""

from __future__ import annotations

import numpy as np

# An evaluation of a loss (a forward pass and a batch reduction) is taken to
# be accurate to this many ulps of the largest magnitude it produced: each
# layer adds a few roundings, and dot products of length <= 64 add log2 terms.
C_EVAL = 16.0

# A gradient computed by someone's backward pass, in its own dtype, is taken
# to be accurate to this many ulps of the absolute sum of the terms compared
# (a forward and a backward pass, roughly twice the work of an evaluation).
C_GRAD = 32.0

# A loss value carries an absolute rounding error of at least C_EVAL ulps of
# this unit, however small the value: a small loss is usually a small
# difference of terms of order one (log(1 + x) of a confident softmax, the
# squared error of a near-perfect fit). It is to the loss what max(1, |x|)
# is to the step.
LOSS_UNIT = 1.0

# Likewise a gradient entry carries an absolute rounding error of at least
# C_GRAD ulps of this unit: a gradient that is zero in exact arithmetic comes
# out as rounding noise of order-one intermediate values (a batch norm over
# equal inputs, a softmax at a tie), and nothing is learned by comparing noise.
GRAD_UNIT = 1.0

# Central differences on the ladder h, 2h, 4h extrapolated twice (Richardson)
# give R = (64 D(h) - 20 D(2h) + D(4h)) / 45; if each loss value carries an
# absolute error e, R carries at most (64 + 20/2 + 1/4) / 45 * e / h.
RICHARDSON_ROUNDING = (64.0 + 10.0 + 0.25) / 45.0

# The measured noise of a loss (the largest of 8 residuals) is doubled: the
# largest of a few samples of rounding understates the largest possible.
NOISE_SAFETY = 2.0

# The resolution a check must reach to say "holds", unless the caller asks
# for another: the smallest relative error in a typical gradient entry (one of
# root-mean-square size) that the check must be able to catch. 1e-3 is the
# relative tolerance people already accept from a float32 gradient check (and
# torch.autograd.gradcheck's default rtol); float64 checks reach 1e-6 or far
# better, so the default only ever bites where precision is genuinely short.
DEFAULT_RESOLUTION = 1e-3

# A projection check is "precision-limited" (it cannot tell right from wrong)
# when its bound exceeds this fraction of the directional derivatives compared.
RESOLUTION_LIMIT = 0.5


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
