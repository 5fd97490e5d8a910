"""The enumeration of mini-batches (gradcheck.training.sampling): the batches
themselves, their counts and multiplicities, a case small enough to check by
hand, the pairwise sum's rounding against exact sums, and misuse."""

from __future__ import annotations

import doctest
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradcheck.training.sampling as smp
from gradcheck.errors import GradcheckUsageError

SIZES = [(N, M, replace) for replace in (False, True) for N in range(1, 9)
         for M in range(1, smp.largest_batch(N, replace=replace) + 1)]
U = np.finfo(np.float64).eps / 2  # unit roundoff


def test_doctests():
    assert doctest.testmod(smp, optionflags=doctest.ELLIPSIS).failed == 0


# ---------------------------------------------------------------- the batches

@pytest.mark.parametrize("N, M, replace", SIZES)
def test_every_batch_listed_once(N, M, replace):
    idx = smp.batches(N, M, replace=replace)
    assert idx.shape == (smp.count(N, M, replace=replace), M)
    assert len(idx) == (N**M if replace else math.comb(N, M))
    assert len({tuple(row) for row in idx}) == len(idx), "a batch is listed twice"
    assert idx.min() >= 0 and idx.max() < N
    if not replace:  # subsets: each one once, as an increasing row
        assert np.all(np.diff(idx, axis=1) > 0)


@pytest.mark.parametrize("N, M, replace", SIZES)
def test_every_example_equally_often(N, M, replace):
    """The counting at the heart of D1: C(N−1, M−1) subsets hold a given
    example; over the ordered draws it occurs M·N^(M−1) times, N^(M−1) in
    each position."""
    idx = smp.batches(N, M, replace=replace)
    mult = smp.multiplicity(idx, N)
    if replace:
        assert np.all(mult == M * N ** (M - 1))
        for position in idx.T:
            assert np.all(np.bincount(position, minlength=N) == N ** (M - 1))
    else:
        assert np.all(mult == math.comb(N - 1, M - 1))


def test_largest_batch_respects_the_limit():
    assert [smp.largest_batch(N, replace=True) for N in range(1, 9)] == [1, 2, 3, 4, 5, 4, 4, 4]
    assert [smp.largest_batch(N, replace=False) for N in range(1, 9)] == list(range(1, 9))
    for N, M, replace in SIZES:
        assert smp.count(N, M, replace=replace) <= smp.MAX_BATCHES
    assert smp.largest_batch(8, replace=True, limit=8**5) == 5


def test_enumeration_beyond_the_limit_is_refused():
    with pytest.raises(GradcheckUsageError, match="N=8, M=5.*MAX_BATCHES"):
        smp.batches(8, 5, replace=True)


def test_batches_are_shared_read_only():
    idx = smp.batches(5, 2, replace=False)
    assert smp.batches(5, 2, replace=False) is idx
    with pytest.raises(ValueError):
        idx[0, 0] = 4


@pytest.mark.parametrize("call, text", [
    (lambda: smp.count(3, 4, replace=False), "M=4 is larger than N=3"),
    (lambda: smp.count(0, 1, replace=True), "N=0"),
    (lambda: smp.count(3, 0, replace=False), "M=0"),
    (lambda: smp.count(3, True, replace=False), "M=True"),
    (lambda: smp.batches(2.0, 1, replace=False), "N=2.0"),
    (lambda: smp.largest_batch(8, replace=True, limit=7), "limit=7"),
])
def test_misuse_names_the_argument(call, text):
    with pytest.raises(GradcheckUsageError, match=text.replace("(", r"\(")):
        call()


# ---------------------------------------------------------------- a case by hand

# Three one-parameter "gradients" 1, 2, 6: mean 3, σ² = (4 + 1 + 9)/3 = 14/3.
HAND_G = np.array([[1.0], [2.0], [6.0]])
# M = 2 without replacement: {1,2}, {1,6}, {2,6} have means 3/2, 7/2, 4;
# they average to 3, and (9/4 + 1/4 + 1)/3 = 7/6 = (14/3)/2 · (3−2)/(3−1).
HAND_SUBSETS = [(0, 1), (0, 2), (1, 2)]
# M = 2 with replacement: the 9 ordered pairs; means 1, 3/2, 7/2, 3/2, 2, 4,
# 7/2, 4, 6 sum to 27 (average 3), squared deviations to 21: 21/9 = 7/3 = (14/3)/2.
HAND_DRAWS = [(a, b) for a in range(3) for b in range(3)]


@pytest.mark.parametrize("replace, listed, trace", [
    (False, HAND_SUBSETS, Fraction(7, 6)),
    (True, HAND_DRAWS, Fraction(7, 3)),
])
def test_hand_checkable_case(replace, listed, trace):
    """Every batch mean, sum and squared deviation here is a float exactly,
    so each result is the exact answer rounded once (the last division),
    and the prediction differs from σ² by powers of two only."""
    idx = smp.batches(3, 2, replace=replace)
    assert [tuple(r) for r in idx] == listed
    means = smp.batch_means(HAND_G, idx)
    assert smp.mean(means).tolist() == [3.0]
    assert smp.covariance_trace(means) == float(trace)
    sigma2 = smp.covariance_trace(HAND_G)
    assert sigma2 == float(Fraction(14, 3))
    assert smp.predicted_trace(sigma2, 3, 2, replace=replace) == float(trace)


def test_batch_means_are_the_listed_means():
    means = smp.batch_means(HAND_G, smp.batches(3, 2, replace=True)).ravel()
    assert means.tolist() == [1.0, 1.5, 3.5, 1.5, 2.0, 4.0, 3.5, 4.0, 6.0]


def test_full_batch_without_replacement_has_no_variance():
    g = np.array([[1.0, -2.0], [0.5, 3.0], [4.0, 0.0], [2.0, 2.0]])
    means = smp.batch_means(g, smp.batches(4, 4, replace=False))
    assert len(means) == 1 and smp.covariance_trace(means) == 0.0
    assert smp.finite_population_correction(4, 4) == 0.0
    assert smp.finite_population_correction(1, 1) == 0.0  # one example, one batch


# ---------------------------------------------------------------- sums and their rounding

def _exact_sum(values) -> Fraction:
    return sum((Fraction(float(v)) for v in values), Fraction(0))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@given(st.lists(finite, min_size=1, max_size=300))
def test_pairwise_sum_rounds_as_the_error_model_says(values):
    """Each term passes through at most k = ceil(log2 n) additions, so
    |error| <= γ_k Σ|x| (Higham, recursive summation of depth k)."""
    x = np.array(values)
    n = len(x)
    depth = Fraction(math.ceil(math.log2(n)) if n > 1 else 0)
    gamma = depth * Fraction(U) / (1 - depth * Fraction(U))  # γ_k = ku / (1 − ku)
    err = abs(Fraction(float(smp.pairwise_sum(x))) - _exact_sum(x))
    assert err <= gamma * _exact_sum(np.abs(x))


@given(st.integers(1, 40), st.integers(1, 4), st.integers(0, 2))
def test_pairwise_sum_along_any_axis(n, width, axis):
    a = np.arange(n * width * 3, dtype=np.float64).reshape((n, width, 3))
    assert np.array_equal(smp.pairwise_sum(a, axis=axis), a.sum(axis=axis))  # integers: exact


def test_pairwise_sum_of_nothing_is_zero():
    assert smp.pairwise_sum(np.zeros((0, 3))).tolist() == [0.0, 0.0, 0.0]


def test_two_pass_variance_survives_a_large_offset():
    """σ² of 1e8 + (1, 2, 6) is 14/3: the deviations are exact here. The
    naive E[g²] − E[g]² loses it to cancellation (the reason for two passes)."""
    g = 1e8 + HAND_G  # every value, the mean and the deviations are floats exactly
    assert smp.covariance_trace(g) == 14 / 3
    naive = float(np.mean(g**2) - np.mean(g) ** 2)
    assert abs(naive - 14 / 3) > 0.1


@given(st.integers(1, 6), st.data())
def test_enumeration_mean_is_the_data_mean_exactly_in_fractions(N, data):
    """D1 in exact arithmetic, independently of any tolerance: the batch means,
    recomputed as fractions from the listed rows, average to the data mean."""
    values = data.draw(st.lists(st.integers(-50, 50), min_size=N, max_size=N))
    M = data.draw(st.integers(1, smp.largest_batch(N, replace=True)))
    replace = data.draw(st.booleans())
    idx = smp.batches(N, M, replace=replace)
    means = [sum(Fraction(values[j]) for j in row) / M for row in idx]
    avg = sum(means) / len(means)
    assert avg == Fraction(sum(values), N)
    sigma2 = sum((Fraction(v) - avg) ** 2 for v in values) / N
    trace = sum((m - avg) ** 2 for m in means) / len(means)
    fpc = 1 if replace else (Fraction(N - M, N - 1) if N > 1 else 0)
    assert trace == sigma2 / M * fpc
