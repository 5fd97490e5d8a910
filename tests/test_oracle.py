"""Tests for gradcheck.oracle: the finite-difference oracle and its error bound.

The oracle is what every gradient verdict rests on, so it is held to three
things: it is accurate where the function is smooth (against autograd and
against derivatives known in closed form), its bound covers its actual error
(including where the function is only once differentiable, and where the loss
is a small difference of large terms), and it recognises a kink.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, target
from hypothesis import strategies as st

import gradcheck
from gradcheck import strategies as gs
from gradcheck._tree import tree_def
from gradcheck.nets import NETWORK_ACTIVATIONS, loss_gradient
from gradcheck import numerics as nm
from gradcheck.oracle import LossOracle, Probe, _truncation, _weights, fd_gradient

SMOOTH = [a for a in NETWORK_ACTIVATIONS if a != "relu"]
# Relative agreement of finite differences and autograd, float64. The rounding
# of a central difference is absolute, about eps * |f| / h ~ 4e-11 for a loss
# of order one, so "relative" is taken against max(max|g|, 1) (the generated
# losses are of order one). (Against max|g| alone a generated gradient of
# 0.036 already misses 1e-9 by rounding: no bug there.)
AGREEMENT = 1e-9
UNDETERMINED_REASONS = {"not differentiable here", "precision-limited", "non-finite loss"}
NOISE_POINTS = len(nm.NOISE_WIDE) + len(nm.NOISE_NARROW)


# ---------------------------------------------------------------- generated networks

@st.composite
def smooth_cases(draw, *, max_depth=3, max_width=8, losses=None):
    """A smooth float64 network, its params and a batch."""
    net = draw(gs.networks(max_depth=max_depth, max_width=max_width, losses=losses,
                           activations=gs.activations(names=SMOOTH)))
    params = draw(gs.parameters(net))
    x, y = draw(gs.batches(net, max_size=6))
    return net, params, x, y


def _flat_problem(net, params, x, y):
    td = tree_def(params)

    def loss(flat):
        return net.total_loss(td.unflatten(flat), x, y)

    ag = td.flatten(loss_gradient(net, params, x, y))
    return td, loss, td.flatten(params), ag


def _assume_well_posed(net, params, x, y, ag):
    assume(np.isfinite(float(net.total_loss(params, x, y))) and np.all(np.isfinite(ag)))
    # Relative error is meaningless for a gradient that is zero up to rounding:
    # max|fd - ag| / max|ag| would divide rounding noise by rounding noise.
    assume(np.max(np.abs(ag)) > 1e-6)
    if net.loss == "huber":
        # Huber is C^1 but not C^2 where a residual is exactly 1: within 4h of
        # it central differences are only first-order accurate (their bound
        # still covers them, tested below), so 1e-9 agreement is not expected.
        r = np.abs(net.outputs(params, x) - y)
        assume(np.min(np.abs(r - 1.0)) > 1e-3)


@given(smooth_cases())
def test_fd_gradient_agrees_with_autograd_and_its_bound_covers_the_error(case):
    net, params, x, y = case
    td, loss, x0, ag = _flat_problem(net, params, x, y)
    _assume_well_posed(net, params, x, y, ag)
    fd, bound = fd_gradient(loss, x0)
    err = np.abs(fd - ag)
    assert np.max(err) / max(np.max(np.abs(ag)), 1.0) <= AGREEMENT, (net, np.max(err), np.max(np.abs(ag)))
    # The oracle's own bound covers its error entry by entry (autograd's
    # rounding is far below the bound and is part of err here).
    worst = int(np.argmax(err - bound))
    assert np.all(err <= bound), (net, td.name(worst), err[worst], bound[worst])


@given(smooth_cases(), st.integers(0, 2**32 - 1))
def test_directional_probe_agrees_with_autograd_and_covers_its_error(case, seed):
    net, params, x, y = case
    _, loss, x0, ag = _flat_problem(net, params, x, y)
    _assume_well_posed(net, params, x, y, ag)
    oracle = LossOracle(loss, x0)
    v = np.random.default_rng(seed).standard_normal(x0.size) * oracle.scale
    p = oracle.probe(v)
    exact = float(np.dot(ag, v))
    scale = float(np.sum(np.abs(ag * v)))
    assert p.finite and not p.kink, p
    assert abs(p.value - exact) <= AGREEMENT * max(scale, 1.0), (p, exact)
    assert abs(p.value - exact) <= p.bound, (p, exact)
    assert p.evaluations == 6
    # 1 at x0, the noise measurement, 6 on the ladder.
    assert oracle.evaluations == 1 + NOISE_POINTS + 6


@given(smooth_cases(losses=["huber"]))
def test_huber_residual_on_its_threshold_is_covered_by_the_bound(case):
    """Put one residual exactly on Huber's threshold (C^1, not C^2 there)."""
    net, params, x, y = case
    y = np.array(y, copy=True)
    y[0, 0] = net.outputs(params, x)[0, 0] - 1.0
    _, loss, x0, ag = _flat_problem(net, params, x, y)
    assume(np.all(np.isfinite(ag)) and np.isfinite(loss(x0)))
    fd, bound = fd_gradient(loss, x0)
    assert np.all(np.abs(fd - ag) <= bound)


# ---------------------------------------------------------------- known derivatives

def _relu2(x):
    return np.maximum(x, 0.0) ** 2


def _huber(x):
    r = np.abs(x)
    return np.where(r <= 1.0, 0.5 * r**2, r - 0.5)


# name -> (f, f'), each elementwise; the loss is sum f(x_j).
KNOWN = {
    "sin": (np.sin, np.cos),
    "exp": (np.exp, np.exp),
    "polynomial": (lambda x: 3 * x**5 - 2 * x**3 + x - 7, lambda x: 15 * x**4 - 6 * x**2 + 1),
    "relu**2": (_relu2, lambda x: 2 * np.maximum(x, 0.0)),
    "huber": (_huber, lambda x: np.clip(x, -1.0, 1.0)),
}

# Points anywhere, and points on or right next to the places where relu**2 and
# huber lose their second derivative (0, and +-1), inside the ladder's 4h.
_points = st.one_of(
    st.floats(-4.0, 4.0, allow_subnormal=False),
    st.sampled_from([0.0, 1.0, -1.0]),
    st.sampled_from([0.0, 1.0, -1.0]).flatmap(lambda c: st.floats(c - 1e-4, c + 1e-4)),
)


def _probe_known(name: str, x0: np.ndarray, seed: int) -> tuple[Probe, float]:
    """One probe of sum f(x_j) at x0 along a direction drawn from ``seed``,
    and the exact directional derivative."""
    f, df = KNOWN[name]
    oracle = LossOracle(lambda x: float(np.sum(f(x))), x0)
    v = np.random.default_rng(seed).standard_normal(x0.size) * oracle.scale
    return oracle.probe(v), float(np.dot(df(x0), v))


@pytest.mark.parametrize("name", sorted(KNOWN))
@given(x0=st.lists(_points, min_size=1, max_size=3).map(np.array), seed=st.integers(0, 2**32 - 1))
@example(x0=np.array([1.0, 8.280132923813377e-06]), seed=5)  # one entry 1.4h from relu**2's seam
@example(x0=np.array([1e-05]), seed=19954)  # the seam at 0.77 of the smallest step: gaps in the ratio 0.600
def test_probe_bound_covers_the_error_for_known_derivatives(name, x0, seed):
    p, exact = _probe_known(name, x0, seed)
    assert p.finite
    assert abs(p.value - exact) <= p.bound, (p, exact)
    # None of these has a kink: C^1 functions must not be called "not differentiable".
    assert not p.kink, p


# Entries within five steps of a seam, several at once: one probe moving them
# all crosses a seam for each (a probe of projection mode, a loss summing many
# Huber residuals), and seams on opposite sides of the point, or with jumps of
# opposite sign, can leave the ladder's central differences equal and wrong.
_near_seam = st.sampled_from([0.0, 1.0, -1.0]).flatmap(lambda c: st.floats(c - 3e-5, c + 3e-5))


@pytest.mark.parametrize("name", ["relu**2", "huber"])
@given(x0=st.lists(_near_seam, min_size=2, max_size=4).map(np.array), seed=st.integers(0, 2**32 - 1))
# Found by a brute-force search; each is outside the bound without its even term.
@example(x0=np.array([1.0, 0.99997775]), seed=3040491956)
@example(x0=np.array([1.00000904, -1.0, -0.99999038]), seed=474932245)
@example(x0=np.array([-0.99999047, -1.0]), seed=218865379)
def test_probe_bound_covers_several_seams_in_one_ladder(name, x0, seed):
    p, exact = _probe_known(name, x0, seed)
    assert abs(p.value - exact) <= p.bound, (p, exact)
    assert not p.kink, p


def _seam(t, c):
    """A curvature jump of 1 at t = c, on the side of c away from 0: zero
    with its slope at 0, so the exact derivative there is 0."""
    return np.maximum(t - c, 0.0) ** 2 / 2 if c >= 0 else np.maximum(c - t, 0.0) ** 2 / 2


@given(c1=st.floats(-4.5, 4.5), c2=st.floats(-4.5, 4.5), jump=st.floats(-10.0, 10.0))
@example(c1=0.0, c2=0.5, jump=-1.0)  # error 3.1 times the estimate without its even term
def test_truncation_covers_any_two_seams_with_margin(c1, c2, jump):
    """The derivation of oracle._truncation, without rounding: a piecewise
    quadratic along the probe (h = 1) with two seams anywhere in the ladder,
    of jumps 1 and ``jump``. The extrapolated estimate's error stays within 2/3
    of the estimate, whatever the seams' places and jumps."""
    g = {t: _seam(t, c1) + jump * _seam(t, c2) for t in (0.0, 1.0, 2.0, 4.0, -1.0, -2.0, -4.0)}
    d = [(g[k] - g[-k]) / (2 * k) for k in (1.0, 2.0, 4.0)]
    second = [g[k] + g[-k] - 2 * g[0.0] for k in (1.0, 2.0, 4.0)]
    r2 = (64 * d[0] - 20 * d[1] + d[2]) / 45
    estimate = _truncation(d, second, r2, 1.0)
    target(abs(r2) / (estimate + 1e-12), label="error / estimate")  # search for the worst case
    assert abs(r2) <= 2 / 3 * estimate + 1e-12


@pytest.mark.parametrize("name", ["relu**2", "huber"])
@pytest.mark.parametrize("x0", [0.0, 1.0, -1.0])
def test_c1_points_exactly_on_the_seam(name, x0):
    """relu(x)**2 at 0 and huber at +-1: once differentiable, so no kink, and
    the first-order error of central differences lies within the bound."""
    f, df = KNOWN[name]
    oracle = LossOracle(lambda x: float(np.sum(f(x))), np.array([x0]))
    p = oracle.probe(oracle.scale.copy())
    exact = float(df(np.array([x0]))[0])
    assert not p.kink
    assert abs(p.value - exact) <= p.bound, (p, exact)


# ---------------------------------------------------------------- kinks

@pytest.mark.parametrize("f, slopes", [
    (lambda x: float(np.maximum(x[0], 0.0)), (0.0, 1.0)),
    (lambda x: float(abs(x[0])), (-1.0, 1.0)),
])
def test_kink_at_the_kink(f, slopes):
    oracle = LossOracle(f, np.array([0.0]))
    p = oracle.probe(oracle.scale.copy())
    assert p.kink
    assert (p.backward, p.forward) == pytest.approx(slopes, abs=1e-9)


@pytest.mark.parametrize("f", [lambda x: float(np.maximum(x[0], 0.0)), lambda x: float(abs(x[0]))])
@pytest.mark.parametrize("x0", [1e-3, -1e-3])
def test_no_kink_a_little_away_from_the_kink(f, x0):
    oracle = LossOracle(f, np.array([x0]))
    assert 4 * oracle.h < 1e-3  # the whole ladder lies on one side
    p = oracle.probe(oracle.scale.copy())
    assert not p.kink
    assert p.value == pytest.approx(float(np.sign(x0)) if f(np.array([-1.0])) else float(x0 > 0), abs=1e-9)


@given(st.floats(-3.0, 3.0), st.floats(0.1, 3.0), st.floats(0.1, 3.0))
def test_kink_of_a_generated_piecewise_linear_function(c, left, right):
    """f(x) = -left (x - c) below c, right (x - c) above: a kink with a slope
    jump of left + right >= 0.2, found at c, and not 1e-3 away from it."""
    def f(x):
        d = x[0] - c
        return float(right * d if d >= 0 else -left * d)

    at = LossOracle(f, np.array([c]))
    assert at.probe(at.scale.copy()).kink
    for off in (1e-3, -1e-3):
        near = LossOracle(f, np.array([c + off * max(1.0, abs(c))]))
        assert not near.probe(near.scale.copy()).kink


# ---------------------------------------------------------------- measured noise

def _cancelling(x, offset=1e8):
    # The value is of order one, but it is what is left of 1e8 + g(x) - 1e8:
    # its rounding is eps * 1e8, far above eps * |f|.
    return float((offset + np.sum(np.sin(x))) - offset)


def _cancelling_grad(x):
    return np.cos(x)


@given(st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=6).map(np.array),
       st.integers(0, 2**32 - 1))
@example(np.zeros(6), 4)  # along the old noise pattern +,+,+,-,-,- sum(sin) was exactly 0
@example(np.array([1.6]), 0)  # cos(1.6) = -0.03: over h/64 the loss stayed in one cell of 1e8
@example(np.zeros(2), 0)
def test_measured_noise_covers_a_small_difference_of_large_terms(x0, seed):
    oracle = LossOracle(_cancelling, x0)
    v = np.random.default_rng(seed).standard_normal(x0.size) * oracle.scale
    p = oracle.probe(v)
    exact = float(np.dot(_cancelling_grad(x0), v))
    assert abs(p.value - exact) <= p.bound, (p, exact)
    # The noise was measured, not modelled: it is the rounding of 1e8 (half a
    # cell of 2^-26, doubled), where eps |f| alone would be ~1e-15.
    assert oracle.noise().level >= 2.0**-26, oracle.noise()


@given(st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=6).map(np.array))
@example(np.zeros(6))  # the old noise pattern +,+,+,-,-,- made sum(sin) exactly 0 along it
@example(np.array([1.6]))  # failed in full mode on the old noise measurement
@example(np.zeros(2))  # failed in projection mode on it
def test_no_false_alarm_on_a_small_difference_of_large_terms(x0):
    for mode in ("full", "projection"):
        v = gradcheck.check_gradient(_cancelling, _cancelling_grad, x0, mode=mode)
        assert not v.fails, str(v)
        assert v.holds or v.reason in UNDETERMINED_REASONS, str(v)


@pytest.mark.parametrize("x0", [np.array([1.6]), np.zeros(2)])
def test_the_old_noise_measurement_missed_the_cancellation(x0):
    """Today's fix, shown against the method it replaces: a parabola through
    nine points within 4h/64 (the old measurement) sees no noise at x0=[1.6]
    and [0, 0], while the loss values on the ladder are rounded to 2^-26."""
    oracle = LossOracle(_cancelling, x0)
    u = np.random.default_rng(0).standard_normal(x0.size) * oracle.scale
    js = np.array([-4.0, -2.9, -1.7, -0.6, 0.0, 0.8, 1.9, 3.1, 3.7])
    fs = np.array([_cancelling(x0 + j * oracle.h / 64 * u) for j in js])
    old = float(np.max(np.abs(fs - np.polyval(np.polyfit(js, fs, 2), js))))
    assert old < 2.0**-27 <= oracle.noise().level


@pytest.mark.parametrize("offset", [1e10, 1e12, 1e14])
def test_rounding_bigger_than_the_change_over_the_ladder_is_unresolved(offset):
    """Near 1e12 the loss moves by about one rounding cell over the ladder:
    the oracle says the step cannot see its slope (unresolved, or a bound
    larger than the slope), rather than read a slope off noise."""
    x0 = np.array([0.4, -0.7])
    oracle = LossOracle(lambda x: _cancelling(x, offset), x0)
    p = oracle.probe(oracle.scale * np.array([1.0, -0.8]))
    exact = float(np.dot(_cancelling_grad(x0), [1.0, -0.8]))
    assert not p.resolved or abs(p.value - exact) <= p.bound, (p, exact)
    if offset >= 1e12:
        assert not p.resolved or p.bound > abs(exact), (p, oracle.noise())


def test_a_kink_at_the_point_is_not_noise():
    """A ReLU at exactly 0 bends every line through the point: the noise
    fits have the kink in their basis, so the noise stays at rounding level."""
    oracle = LossOracle(lambda x: float(np.sum(np.maximum(x[:3], 0.0)) + np.sin(x[3])),
                        np.array([0.0, 0.0, 0.0, 0.7]))
    noise = oracle.noise()
    assert noise.resolved and noise.level < 1e-14, noise


@pytest.mark.parametrize("k", [3e4, 1e5, 3e5, 1e6, 6e6])
def test_an_oscillation_near_the_step_is_never_smooth_and_resolved(k):
    """sin(k x) with k around 1/h: the ladder cannot follow it. Every probe
    that does not say so must be right."""
    x0 = np.array([0.3, -0.2, 0.9])
    oracle = LossOracle(lambda x: float(np.sum(np.sin(k * x))), x0)
    rng = np.random.default_rng(int(k) % 1000)
    for _ in range(4):
        v = rng.standard_normal(x0.size)
        p = oracle.probe(v)
        exact = float(np.dot(k * np.cos(k * x0), v))
        if p.smooth and p.resolved and not p.kink:
            assert abs(p.value - exact) <= p.bound, (k, p, exact)


# ---------------------------------------------------------------- float32 losses

def _loss32(w, x):
    return np.sum(np.sin(x.astype(np.float32) @ w.astype(np.float32)))


def _grad_exact(w, x):
    return x.T @ np.cos(x @ w)


@given(st.integers(0, 2**32 - 1), st.integers(1, 6), st.integers(1, 5))
def test_float32_loss_sets_the_precision_and_raises_no_false_alarm(seed, n, B):
    rng = np.random.default_rng(seed)
    w, x = rng.uniform(-1, 1, n), rng.uniform(-1, 1, (B, n))
    oracle = LossOracle(lambda flat: _loss32(flat, x), w)
    assert oracle.precision == np.float32
    assert oracle.eps == np.finfo(np.float32).eps
    for mode in ("full", "projection"):
        v = gradcheck.check_gradient(_loss32, _grad_exact, w, x, mode=mode)
        assert v.holds or (v.undetermined and v.reason == "precision-limited"), str(v)
        assert "float32" in v.dtype and "float32" in str(v), str(v)


def test_float64_loss_keeps_float64_precision():
    oracle = LossOracle(lambda x: float(np.sum(x**2)), np.ones(3))
    assert oracle.precision == np.float64
    assert oracle.h == pytest.approx(np.finfo(np.float64).eps ** (1 / 3))


# ---------------------------------------------------------------- bookkeeping

def test_non_finite_loss_on_the_ladder_gives_a_non_finite_probe():
    # log(x) at x = 1e-6: the ladder reaches below 0.
    oracle = LossOracle(lambda x: float(np.log(x[0])) if x[0] > 0 else float("nan"), np.array([1e-6]))
    p = oracle.probe(oracle.scale.copy())
    assert isinstance(p, Probe)
    assert not p.finite and np.isnan(p.value) and p.bound == np.inf


def test_step_is_relative_for_large_parameters():
    oracle = LossOracle(lambda x: float(np.sum(x**2)), np.array([0.5, -8.0, 300.0]))
    np.testing.assert_array_equal(oracle.scale, [1.0, 8.0, 300.0])


def test_fd_gradient_does_not_modify_x0():
    x0 = np.array([0.3, -1.2])
    before = x0.copy()
    fd_gradient(lambda x: float(np.sum(np.sin(x))), x0)
    np.testing.assert_array_equal(x0, before)


# ---------------------------------------------------------------- roundings along a probe of random signs

@given(n=st.integers(1, 20_000), seed=st.integers(0, 2**32 - 1),
       pattern=st.sampled_from(["one sign", "alternating", "random", "one large"]))
def test_roundings_along_random_signs_stay_within_their_bound(n, seed, pattern):
    # numerics.random_sign_rounding holds sum_j v_j d_j to RANDOM_SIGNS_Z
    # root-sum-squares of |v_j| a_j, whatever the d_j within |d_j| <= a_j,
    # because the probe's signs are drawn independently of them. Roundings
    # all of one sign at their largest (a float32 backward pass), a pattern
    # that alternates, and one entry far larger than the rest must all stay
    # within it (the chance of a draw beyond it is 1.4e-9).
    from gradcheck.oracle import _weights

    rng = np.random.default_rng(seed)
    a = rng.uniform(0.0, 1.0, n)
    if pattern == "one large":
        a[rng.integers(n)] = 1e6
    d = {"one sign": a, "alternating": a * (-1.0) ** np.arange(n),
         "random": a * rng.uniform(-1.0, 1.0, n), "one large": a}[pattern]
    v = _weights(np.random.default_rng(seed + 1), n)
    assert abs(float(np.sum(v * d))) <= nm.random_sign_rounding(np.abs(v) * a)


@pytest.mark.parametrize("mode", ["full", "projection"])
def test_params_a_loss_keeps_are_never_overwritten(mode):
    # The oracle reuses a point's vector for the next point only when nothing
    # refers to it any more; a loss that keeps what it was handed (a list of
    # calls, for its own assertions later) must find those values unchanged.
    kept = []

    def loss(w, x):
        kept.append((w, w.copy()))
        return float(np.sum(np.sin(x @ w)))

    x = np.array([[1.0, 2.0, 0.5], [0.5, -1.0, 2.0]])
    v = gradcheck.check_gradient(loss, lambda w, x: x.T @ np.cos(x @ w), np.array([0.3, -0.2, 0.1]), x,
                                 mode=mode)
    assert v.holds, v
    assert len(kept) > 20
    assert all(np.array_equal(w, at_call) for w, at_call in kept)


def test_a_vector_nobody_keeps_is_reused():
    # The other side of the test above: a loss that drops its params lets the
    # oracle fill the same memory again (at 10^6 entries a fresh vector's pages
    # cost more than the arithmetic), which the tree's unflatten must allow by
    # holding no reference to the vector after the call.
    seen = set()

    def loss(w):
        seen.add(w["a"].__array_interface__["data"][0])
        return float(np.sum(w["a"] ** 2))

    oracle = LossOracle(lambda x: loss(tree_def({"a": np.zeros(5)}).unflatten(x, views=True)), np.ones(5))
    oracle.probe(np.ones(5))
    assert len(seen) <= 3  # f0's copy, the first point and at most one more


# ---------------------------------------------------------------- quiet ladders

@given(x0=st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=6).map(np.array),
       offset=st.floats(1e4, 1e12), seed=st.integers(0, 2**32 - 1))
def test_a_ladder_carrying_a_large_terms_rounding_is_never_quiet(x0, offset, seed):
    """check_gradient judges a ladder under the modelled floor only where it
    is quiet. A loss that is a small difference of large terms rounds every
    value to the large term's grid, far above the floor of a value of order
    one: such a ladder must never pass for quiet."""
    oracle = LossOracle(lambda x: float((offset + np.sum(np.sin(x))) - offset), x0, floor_first=True)
    v = probe_weights(seed, x0.size) * oracle.scale
    p = oracle.probe(v)
    assert not oracle.quiet(p), p
    assert not oracle.measured  # assessing it under the floor measured nothing


def probe_weights(seed, n):
    return _weights(np.random.default_rng(seed), n)


@given(st.floats(0.1, 1.0), st.integers(0, 2**32 - 1))
def test_a_quiet_ladder_is_judged_without_measuring_the_noise(x0, seed):
    """sin at one entry of order one: its values round to half an ulp, far
    under the floor, and its change over the ladder stands far above it."""
    v = gradcheck.check_gradient(lambda x: float(np.sin(x[0])), lambda x: np.cos(x), np.array([x0]),
                                 mode="projection", seed=seed)
    assert v.holds, str(v)
    assert v.evaluations == 2 + 6 * 4, v.evaluations  # loss and gradient at params, 4 ladders
