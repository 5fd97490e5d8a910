"""Claims D1 and D2: registered as the docs need them, checking every batch
size, holding on a fixed network, failing on the mistakes people make (the
with-replacement variance without replacement, σ² with N − 1, a batch left
out, a biased average, a wrong per-example gradient), and rounding bounds
that contain the exact error, computed in fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gradcheck.claims.sampling as cs
import gradcheck.training.sampling as smp
from gradcheck.claims import REGISTRY, UNIVERSAL
from gradcheck.claims._common import Case, by_rounding, grad
from gradcheck.nets import Network

F64 = np.float64


def _case(N: int, *, seed: int = 0, M: int = 2, replace: bool = False, k: int = 0, i: int = 0,
          activation: str = "tanh") -> Case:
    net = Network((2, 3, 2), activation=activation, loss="squared")
    rng = np.random.default_rng(seed)
    params = [{"W": rng.normal(size=l["W"].shape), "b": rng.normal(size=l["b"].shape)}
              for l in net.init(seed=seed)]
    return Case(net, params, rng.normal(size=(N, 2)), rng.normal(size=(N, 2)),
                extra=dict(M=M, replace=replace, k=k, i=i), seed=seed)


def _check(cid: str, case: Case):
    return REGISTRY[cid].holds_for[0].check(case)


# ---------------------------------------------------------------- the registry

def test_registered_with_what_the_docs_need():
    d1, d2 = REGISTRY["D1"], REGISTRY["D2"]
    assert d1.kind == d2.kind == UNIVERSAL
    assert "C(N−1, M−1)" in d1.proof and "M/N" in d1.proof  # the seed's open question, answered
    assert "(N/M)·∇L_sum" in d1.statement and "N^M ordered draws" in d1.statement
    assert "5,000" in d1.conditions and "5,000" in d2.conditions
    assert "(σ²/M)(N−M)/(N−1)" in d2.statement and "σ²/M" in d2.statement
    assert "finite-population correction" in d2.proof and "divisor N" in d2.conditions


def test_each_case_checks_every_batch_size():
    assert cs._enumerations(8) == [(M, False) for M in range(1, 9)] + [(M, True) for M in range(1, 5)]
    assert cs._enumerations(5) == [(M, r) for r in (False, True) for M in range(1, 6)]
    assert cs._enumerations(1) == [(1, False), (1, True)]


# ---------------------------------------------------------------- right

@pytest.mark.parametrize("cid", ["D1", "D2"])
@pytest.mark.parametrize("N", [1, 3, 8])
def test_holds_on_a_fixed_network(cid, N):
    v = _check(cid, _case(N, M=1, k=N - 1, replace=True))
    assert v.holds, str(v)
    assert f"every M from 1 to N={N}" in v.message
    assert 0 <= v.error <= v.tolerance


def test_unscaled_sum_averages_to_m_over_n_of_the_full_sum():
    """The condition D1 states: without N/M the sum's average is (M/N)·∇L_sum."""
    case = _case(6)
    g, full_sum = cs._examples(case), grad(case, reduction="sum").astype(F64)
    for M in (2, 3, 6):
        idx = smp.batches(6, M, replace=False)
        avg = smp.mean(smp.batch_sums(g, idx))
        terms = smp.multiplicity(idx, 6) @ np.abs(g) / len(idx)
        assert by_rounding("D1", "unscaled", case.params, avg, M / 6 * full_sum, terms, idx.size).holds
        if M < 6:
            assert np.abs(avg - full_sum).max() > 0.1 * np.abs(full_sum).max()


def test_variance_shrinks_with_the_batch_and_vanishes_at_the_full_batch():
    g = cs._examples(_case(6))
    traces = [smp.covariance_trace(smp.batch_means(g, smp.batches(6, M, replace=False)))
              for M in range(1, 7)]
    assert all(a > b for a, b in zip(traces, traces[1:]))
    assert traces[-1] == 0.0


# ---------------------------------------------------------------- wrong: each mistake is caught

def _with_replacement_formula(sigma2, N, M, *, replace):
    return sigma2 / M  # the finite-population correction forgotten


def _sample_variance(original):
    def predicted(sigma2, N, M, *, replace):
        return original(sigma2 * N / (N - 1), N, M, replace=replace)  # σ² with divisor N − 1
    return predicted


def test_with_replacement_formula_without_replacement_fails(monkeypatch):
    monkeypatch.setattr(smp, "predicted_trace", _with_replacement_formula)
    v = _check("D2", _case(5))
    assert v.fails and v.law == "variance", str(v)
    assert "subsets" in v.message and "M=1 " not in v.message
    assert v.error > 1e3 * v.tolerance


def test_sample_variance_for_sigma2_fails(monkeypatch):
    monkeypatch.setattr(smp, "predicted_trace", _sample_variance(smp.predicted_trace))
    v = _check("D2", _case(5))
    assert v.fails and v.law == "variance" and v.error > 1e3 * v.tolerance, str(v)


@pytest.mark.parametrize("cid, law", [("D1", "unbiased mean"), ("D2", "variance")])
def test_a_batch_left_out_fails(monkeypatch, cid, law):
    original = smp.batches

    def fewer(N, M, *, replace):
        idx = original(N, M, replace=replace)
        return idx[:-1] if len(idx) > 1 else idx
    monkeypatch.setattr(smp, "batches", fewer)
    v = _check(cid, _case(4, k=0))
    assert v.fails and v.law == law, str(v)


@pytest.mark.parametrize("cid", ["D1", "D2"])
def test_a_bias_of_one_part_in_a_billion_is_caught(monkeypatch, cid):
    """The bounds are rounding-sized: a relative bias of 1e-9 in every batch sum fails."""
    original = smp.batch_sums
    monkeypatch.setattr(smp, "batch_sums", lambda g, idx: original(g, idx) * (1 + 1e-9))
    v = _check(cid, _case(6))
    assert v.fails, str(v)


@pytest.mark.parametrize("cid", ["D1", "D2"])
def test_a_wrong_per_example_gradient_is_caught(monkeypatch, cid):
    """Example 0's gradient 1 % off: finite differences (D1 through the mean,
    D2 on example i = 0) or the law say so."""
    original = cs.per_example

    def off(case):
        g = original(case)
        return [g[0] * 1.01, *g[1:]]
    monkeypatch.setattr(cs, "per_example", off)
    v = _check(cid, _case(4, i=0))
    assert v.fails, str(v)


# ---------------------------------------------------------------- rounding bounds, against fractions

def _exact(a: np.ndarray) -> np.ndarray:
    return np.vectorize(Fraction, otypes=[object])(a)


def _exact_trace(rows: np.ndarray) -> Fraction:
    r = _exact(rows)
    d = r - r.sum(axis=0) / len(r)
    return (d * d).sum() / len(r)


@st.composite
def _adversarial(draw):
    """Small data sets of vectors: a shared offset (up to 1e8) plus a spread
    (down to 1e-8, or none), the cancellation that a variance suffers."""
    N, P = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    offset = draw(st.sampled_from([0.0, 1.0, -1e3, 1e8]))
    spread = draw(st.sampled_from([0.0, 1e-8, 1e-3, 1.0, 1e3]))
    z = np.array(draw(st.lists(st.floats(-1, 1), min_size=N * P, max_size=N * P))).reshape(N, P)
    M = draw(st.integers(1, min(N, 3)))
    return offset + spread * z, M, draw(st.booleans())


@given(_adversarial())
def test_trace_bound_contains_the_exact_error(data):
    g, M, replace = data
    idx = smp.batches(len(g), M, replace=replace)
    rows = smp.batch_means(g, idx)
    exact_rows = _exact(g)[idx].sum(axis=1) / M  # the batch means in exact arithmetic
    got, bound = cs._trace_and_bound(rows, smp.batch_means(np.abs(g), idx), idx.size)
    d = exact_rows - exact_rows.sum(axis=0) / len(idx)
    assert abs(Fraction(got) - (d * d).sum() / len(idx)) <= Fraction(bound)
    sigma2, sigma2_bound = cs._trace_and_bound(g, np.abs(g), len(g))
    assert abs(Fraction(sigma2) - _exact_trace(g)) <= Fraction(sigma2_bound)
    assert cs._variance_law(g, idx, replace, (sigma2, sigma2_bound)).holds


@given(_adversarial())
def test_average_bound_contains_the_exact_error(data):
    """D1's allowance (by_rounding over K·M terms) against the exact data mean."""
    g, M, replace = data
    idx = smp.batches(len(g), M, replace=replace)
    terms = smp.multiplicity(idx, len(g)) @ np.abs(g) / idx.size
    avg = smp.mean(smp.batch_sums(g, idx) / M)
    exact = _exact(g).sum(axis=0) / len(g)
    nearest = np.array([float(e) for e in exact])  # one more rounding, within the allowance
    assert by_rounding("D1", "exact", np.zeros(g.shape[1]), avg, nearest, terms, idx.size).holds


def test_one_batch_row_is_that_batchs_gradient():
    """The spot check ties the enumeration's rows to real mini-batch losses,
    repeats included: row k = 9 of the ordered draws of 3 from N = 3 is (1, 0, 0)."""
    case = _case(3, M=3, replace=True, k=9)
    assert smp.batches(3, 3, replace=True)[9].tolist() == [1, 0, 0]
    g = cs._examples(case)
    v = cs._one_batch(case, g)
    assert v.holds and "[1, 0, 0]" in v.message, str(v)
    row = smp.batch_means(g, np.array([[1, 0, 0]]))[0]
    assert by_rounding("D1", "repeats", case.params, row, (g[1] + 2 * g[0]) / 3,
                       (np.abs(g[1]) + 2 * np.abs(g[0])) / 3, 3).holds
