"""Mini-batch sampling, by exact enumeration over a small data set.

A mini-batch of M examples is drawn from a data set of N, either without
replacement (each of the C(N, M) subsets equally likely) or with replacement
(each of the N^M ordered draws equally likely). For a small data set every
possible batch can be listed, so the expectation and the covariance of the
mini-batch gradient are computed exactly, up to rounding, instead of being
estimated from samples. Claims D1 and D2 rest on this module.

Rows of ``g`` are per-example gradients (one flat vector per example); every
statistic is over the listed batches, each counted once.

>>> import numpy as np
>>> g = np.array([[1.0], [2.0], [6.0]])
>>> idx = batches(3, 2, replace=False)
>>> idx.tolist()
[[0, 1], [0, 2], [1, 2]]
>>> batch_means(g, idx).ravel().tolist()
[1.5, 3.5, 4.0]
>>> float(mean(batch_means(g, idx))[0]), float(mean(g)[0])
(3.0, 3.0)
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np

from ..errors import GradcheckUsageError

__all__ = ["MAX_BATCHES", "batch_means", "batch_sums", "batches", "count", "covariance_trace",
           "deviations", "finite_population_correction", "largest_batch", "mean", "multiplicity",
           "pairwise_sum", "predicted_trace"]

# The enumeration is exhaustive, so its cost is the number of batches. 5,000
# admits every M for N <= 5 with replacement (5^5 = 3,125) and M <= 4 up to
# N = 8 (8^4 = 4,096); 8^8 = 16.7 M ordered draws would take minutes.
MAX_BATCHES = 5000


def count(N: int, M: int, *, replace: bool) -> int:
    """How many equally likely batches there are: C(N, M), or N^M ordered draws.

    >>> count(8, 4, replace=False), count(8, 4, replace=True)
    (70, 4096)
    """
    _check_sizes(N, M, replace)
    return N**M if replace else math.comb(N, M)


def largest_batch(N: int, *, replace: bool, limit: int = MAX_BATCHES) -> int:
    """The largest M <= N whose enumeration has at most ``limit`` batches.

    >>> largest_batch(8, replace=True), largest_batch(5, replace=True), largest_batch(8, replace=False)
    (4, 5, 8)
    """
    fits = [M for M in range(1, N + 1) if count(N, M, replace=replace) <= limit]
    if not fits:
        raise GradcheckUsageError(f"limit={limit!r} admits no batch of a data set of N={N}.")
    return max(fits)


def batches(N: int, M: int, *, replace: bool) -> np.ndarray:
    """Every batch, one row of M example indices each, in lexicographic order.

    Without replacement the rows are the increasing M-subsets of range(N);
    with replacement they are all ordered draws, repeats included. The array
    is shared (cached) and read-only.

    >>> batches(2, 2, replace=True).tolist()
    [[0, 0], [0, 1], [1, 0], [1, 1]]
    """
    K = count(N, M, replace=replace)
    if K > MAX_BATCHES:
        raise GradcheckUsageError(
            f"N={N}, M={M}, replace={replace}: {K} batches exceed MAX_BATCHES={MAX_BATCHES}; "
            "the enumeration is exhaustive, so use a smaller N or M.")
    return _batches(N, M, replace)


@functools.lru_cache(maxsize=128)
def _batches(N: int, M: int, replace: bool) -> np.ndarray:
    if replace:
        idx = np.indices((N,) * M).reshape(M, -1).T  # row-major order is lexicographic
    else:
        idx = np.array(list(itertools.combinations(range(N), M)), dtype=np.intp).reshape(-1, M)
    idx = np.ascontiguousarray(idx, dtype=np.intp)
    idx.setflags(write=False)
    return idx


def multiplicity(idx: np.ndarray, N: int) -> np.ndarray:
    """How many times each example occurs over all the batches (repeats counted).

    >>> multiplicity(batches(4, 2, replace=False), 4).tolist()
    [3, 3, 3, 3]
    """
    return np.bincount(np.asarray(idx).ravel(), minlength=N)


def pairwise_sum(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """The sum along ``axis``, by halving: add the two halves, repeat.

    Each term passes through at most ceil(log2 n) additions, so the rounding
    is at most ceil(log2 n) units of roundoff times the sum of |terms|: the
    model ``numerics.sum_rounding`` assumes. ``np.sum`` does not promise it:
    along a non-contiguous axis it adds one row after another (n - 1
    roundings), and even along a contiguous one it accumulates blocks of up
    to 16 terms in turn.

    >>> pairwise_sum(np.arange(10.0)).item(), pairwise_sum(np.ones((3, 2)), axis=1).tolist()
    (45.0, [2.0, 2.0, 2.0])
    """
    a = np.moveaxis(np.asarray(a), axis, 0)
    if a.shape[0] == 0:
        return np.zeros(a.shape[1:], dtype=a.dtype)
    while a.shape[0] > 1:
        half = a.shape[0] // 2
        pairs = a[:half] + a[half:2 * half]
        a = pairs if a.shape[0] % 2 == 0 else np.concatenate([pairs, a[2 * half:]])
    return a[0]


def batch_sums(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Σ_{j in batch} g_j for every batch (row of ``idx``): shape (K, P)."""
    # Gathered position-major, (M, K, P), so each halving adds contiguous blocks.
    return pairwise_sum(np.asarray(g)[np.asarray(idx).T], axis=0)


def batch_means(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """The mini-batch mean gradient of every batch: batch sums over M, shape (K, P)."""
    return batch_sums(g, idx) / np.shape(idx)[1]


def mean(rows: np.ndarray) -> np.ndarray:
    """The mean of the rows, each counted once (every batch equally likely)."""
    return pairwise_sum(rows, axis=0) / len(rows)


def deviations(rows: np.ndarray) -> np.ndarray:
    """Each row minus the mean of the rows (two passes: no E[m²] - E[m]² cancellation)."""
    return np.asarray(rows) - mean(rows)


def covariance_trace(rows: np.ndarray) -> float:
    """trace Cov = mean over the rows of |row - mean|²: the population covariance,
    each row an equally likely outcome. On the per-example gradients it is σ².

    >>> float(covariance_trace(np.array([[1.0], [2.0], [6.0]])))  # (4 + 1 + 9) / 3
    4.666666666666667
    """
    d = deviations(rows)
    return pairwise_sum((d * d).ravel()) / len(d)


def finite_population_correction(N: int, M: int) -> float:
    """(N - M) / (N - 1): how much less a batch without replacement varies than one with.

    For N = 1 the only batch is the whole data set, so nothing varies: 0.

    >>> finite_population_correction(8, 1), finite_population_correction(8, 8)
    (1.0, 0.0)
    """
    _check_sizes(N, M, False)
    return (N - M) / (N - 1) if N > 1 else 0.0


def predicted_trace(sigma2: float, N: int, M: int, *, replace: bool) -> float:
    """The trace of Cov of the mini-batch mean gradient that D2 states:
    σ²/M with replacement, (σ²/M)(N - M)/(N - 1) without.

    >>> predicted_trace(14 / 3, 3, 2, replace=False), predicted_trace(14 / 3, 3, 2, replace=True)
    (1.1666666666666667, 2.3333333333333335)
    """
    _check_sizes(N, M, replace)
    return sigma2 / M * (1.0 if replace else finite_population_correction(N, M))


def _check_sizes(N: int, M: int, replace: bool) -> None:
    for name, v in (("N", N), ("M", M)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise GradcheckUsageError(f"{name}={v!r} must be an integer >= 1.")
    if not replace and M > N:
        raise GradcheckUsageError(f"M={M} is larger than N={N}: without replacement a batch "
                                  "holds at most N examples.")
