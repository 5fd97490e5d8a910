"""check_reduction on adversarial families of right and wrong code (families_reduction.py).

Right code, in float64, float32 and float16, at tiny and huge scales, with
and without an L2 term fixed or divided by B, with L1 residuals exactly at 0:
never failed. Wrong code (a sum declared a mean, a double division, B - 1, a
fixed divisor, means of micro-batches of every size, a penalty added per
example or divided when declared fixed, weights ignored, token means of
micro-batches): never holds on an error above the verdict's resolution, and
where it fails the message names the true cause.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, event, example, given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import numerics as nm
from gradcheck.reduction import SPLIT
from gradcheck.verdict import NOT_DIFFERENTIABLE, PRECISION_LIMITED

try:  # pytest's default (prepend) import mode puts tests/ on sys.path
    import families_reduction as fr
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests import families_reduction as fr


def _flat(tree):
    return np.concatenate([np.ravel(np.asarray(tree[k], dtype=np.float64)) for k in sorted(tree)])


def _finite(case, grad_fn):
    with np.errstate(all="ignore"):
        return np.all(np.isfinite(_flat(grad_fn(case.params, *case.batch))))


def _examples(case):
    """Each example's data gradient (the loss's alone, no L2 term), one row each."""
    n = len(case.x)
    with np.errstate(all="ignore"):
        return np.stack([_flat(case.model.combine(case.params, case.x, case.y, np.eye(n)[i]))
                         for i in range(n)])


def _distinct(case):
    """Examples whose gradients differ by more than the dtype resolves: where they
    are alike, several reductions are the same function on every cut, and no
    message can name one of them (the checker says so)."""
    g = _examples(case)
    if not np.all(np.isfinite(g)):
        return False
    gap = min(np.max(np.abs(g[i] - g[j])) for i in range(len(g)) for j in range(i))
    # ... beside the L2 term too, which may dwarf them (a tiny loss, a large lambda),
    # and in their sums over the cuts, which may cancel.
    term = case.lam * len(case.x) * max(float(np.max(np.abs(v))) for v in case.params.values())
    eps = np.finfo(case.model.dtype).eps
    # ... and by far more than the rounding of a large term the code adds and takes away.
    floor = max(np.sqrt(eps) * max(np.max(np.abs(g)), term, 1e-300), 1e3 * eps * case.offset * case.model.scale)
    sums = [np.max(np.abs(g[idx].sum(axis=0))) for idx in _cuts(len(g))]
    return gap > floor and min(sums) > floor


def _cuts(n):
    return [np.arange(n), np.concatenate([np.arange(n), np.arange(n)]), np.arange(n - 1)]


def _effect(case):
    """How far the wrong code is from the declared reduction, relative, on the
    cuts check_reduction makes (the batch, duplicated, without its last example)."""
    wrong, right = case.gradient(), fr.right_counterpart(case)
    worst = 0.0
    for idx in _cuts(len(case.x)):
        batch = tuple(np.asarray(a)[idx] for a in case.batch)
        a, b = _flat(wrong(case.params, *batch)), _flat(right(case.params, *batch))
        size = np.sqrt(np.mean(b ** 2))
        worst = max(worst, np.sqrt(np.mean((a - b) ** 2)) / size if size > 0 else np.inf)
    return worst


def _check(case, **options):
    return gradcheck.check_reduction(case.gradient(), case.params, *case.batch, **case.declare, **options)


# ---------------------------------------------------------------- right code: never failed

@given(fr.right_cases())
def test_right_code_is_never_failed(case):
    grad_fn = case.gradient()
    assume(_finite(case, grad_fn))
    v = _check(case)
    text = str(v)
    event(f"{np.dtype(case.model.dtype).name}: {v.outcome} {v.reason}")
    assert not v.fails, text
    if v.undetermined:
        assert v.reason in (PRECISION_LIMITED, NOT_DIFFERENTIABLE), text
        assert v.reason == NOT_DIFFERENTIABLE or v.resolution > v.requested, text
    if v.holds:
        assert v.resolution <= v.requested, text


@given(fr.right_cases(dtypes=(np.float64,)))
@example(fr.Case("right", fr.Model(1, 2, 1, "l1", np.float64, 1.0),  # dev profile: every unit saturated
                 {"W1": np.array([[410885.06196436, -690639.85870839]]),
                  "b1": np.array([-1377079.42819142, -1450417.09341441]),
                  "W2": np.array([[939810.71760082], [1238266.73183317]]), "b2": np.array([319907.32730154])},
                 np.array([[0.94708096], [-0.70373524]]), np.array([[-1.26542147], [-0.62327446]]),
                 None, "mean", "none", 0.0, declare={"reduction": "mean"}))
def test_right_float64_code_holds_unless_its_data_term_is_lost(case):
    # In float64 a right reduction holds, unless the draw leaves nothing to see:
    # a kink at the point, or a data term that cancels to rounding.
    grad_fn = case.gradient()
    assume(_finite(case, grad_fn) and not case.kink)
    g = _examples(case)
    c = fr.REDUCTIONS[case.reduction](len(case.x), case.w if case.w is not None else np.ones(len(case.x)), 0)
    data, terms = c @ g, np.abs(c) @ np.abs(g)
    term = case.lam * len(case.x) * max(float(np.max(np.abs(v))) for v in case.params.values())
    big = case.offset * case.model.scale  # the large term whose rounding the gradient carries
    assume(np.max(np.abs(data)) > 1e-6 * max(np.max(terms), term, big))
    v = _check(case)
    if v.reason == PRECISION_LIMITED and _few_bits(g, np.float64):
        # Every tanh unit saturated to exactly +-1 and an L1 loss: each value is
        # a sign, which from outside is the residue of a large term that cancels.
        assert "significant bit" in v.message, str(v)
        return
    # A residual within rounding of 0 (an L1 loss) is a kink by chance.
    assert v.holds or v.reason == NOT_DIFFERENTIABLE, str(v)


def _few_bits(g, dtype):
    """Every nonzero value keeps no more than the dtype's mantissa less
    numerics.GRID_BITS significant bits (counted here from the values' binary digits)."""
    values = np.abs(g[(g != 0) & np.isfinite(g)])
    mantissa = np.frexp(values)[0] * 2.0 ** (np.finfo(dtype).nmant + 1)
    bits = [int(m).bit_length() - (int(m) & -int(m)).bit_length() + 1 for m in mantissa]
    return values.size > 0 and max(bits) <= np.finfo(dtype).nmant + 1 - nm.GRID_BITS


@given(fr.right_cases(dtypes=(np.float16,)))
def test_right_float16_code_holds_at_the_resolution_it_reaches(case):
    grad_fn = case.gradient()
    assume(_finite(case, grad_fn))
    v = _check(case, resolution=0.999)
    assert not v.fails, str(v)
    if v.holds:
        assert v.resolution <= 0.999, str(v)


# ---------------------------------------------------------------- wrong code: caught and named

@given(fr.wrong_cases())
def test_wrong_code_never_holds_above_its_resolution_and_names_the_cause(case):
    grad_fn = case.gradient()
    assume(_finite(case, grad_fn) and _distinct(case))
    effect = _effect(case)
    v = _check(case)
    text = str(v)
    event(f"{np.dtype(case.model.dtype).name}: {v.outcome} {v.reason}")
    if v.holds:
        assert effect <= v.resolution, f"silent pass of a {effect:.2e} error:\n{text}"
    elif v.undetermined:
        # Wrong code fails at moved params too, so it is a kink only where its
        # error is below what the check resolves there.
        assert v.reason == PRECISION_LIMITED or effect <= v.resolution, text
    if case.model.dtype == np.float16:
        return  # float16 rounding leaves several models within reach; not naming one is honest
    assert v.fails or effect <= v.resolution, text
    if v.fails:
        assert "interact" not in text, text
        if "the cause is open" in text and _too_few_equations(case):
            return
        if v.resolution > v.requested and ("cannot tell them apart" in text or "the cause is open" in text):
            return  # rounding beyond the model (measured) leaves several models in reach: none is named
        assert fr.names_cause(case, text), f"{case.family}: {case.cause!r} not in:\n{text}"


def _too_few_equations(case):
    """Unequal example weights show in the per-example fit (P >= B + 2) or in
    the shares of a split (P >= 3, B >= 3); below both, nothing can test them."""
    P, B = sum(v.size for v in case.params.values()), len(case.x)
    return case.family == "weighted mean declared mean" and P < B + 2 and (P < 3 or B < 3)


@given(fr.wrong_cases(dtypes=(np.float64,)))
def test_infer_reduction_agrees_with_check_reduction(case):
    grad_fn = case.gradient()
    assume(_finite(case, grad_fn) and _distinct(case))
    weights = case.declare.get("weights")
    said = gradcheck.infer_reduction(grad_fn, case.params, *case.batch, weights=weights)
    as_mean = gradcheck.check_reduction(grad_fn, case.params, *case.batch, reduction="mean", weights=weights)
    as_sum = gradcheck.check_reduction(grad_fn, case.params, *case.batch, reduction="sum", weights=weights)
    assert (said == "mean") == (as_mean.holds and not as_sum.holds), (said, str(as_mean))
    assert (said == "sum") == (as_sum.holds and not as_mean.holds), (said, str(as_sum))
    if not (as_mean.holds or as_sum.holds):
        assert said.startswith(("neither: ", "undetermined")), said


def test_infer_reduction_judges_each_declaration_as_check_reduction_does():
    """The thorough profile's case: an L1 linear model at scale 1000 whose
    gradient is a sum. Judging "mean" failed and measured grad_fn's rounding,
    which read the bias entries' exact levels (1000 times a sum of signs) as
    a coarse grid; "sum" was then judged under that noise, and
    infer_reduction said precision-limited where check_reduction(sum) holds."""
    model = fr.Model(d_in=1, hidden=0, d_out=2, loss="l1", dtype=np.float64, scale=1000.0)
    params = {"W1": np.array([[0.41088506, -0.69063986]]), "b1": np.array([-1.37707943, -1.45041709])}
    x = np.array([[-0.53566937], [0.36159505], [1.30400005], [0.94708096], [-0.70373524]])
    y = np.array([[-1.26542147, -0.62327446], [0.04132598, -2.32503077], [-0.21879166, -1.24591095],
                  [-0.73226735, -0.54425898], [-0.31630016, 0.41163054]])
    case = fr.Case(family="sum declared mean", model=model, params=params, x=x, y=y, w=None, reduction="sum",
                   penalty="none", lam=0.0, declare={"reduction": "mean"})
    grad_fn = case.gradient()
    assert gradcheck.check_reduction(grad_fn, params, x, y, reduction="sum").holds
    assert gradcheck.infer_reduction(grad_fn, params, x, y) == "sum"


# ---------------------------------------------------------------- periodic bugs: every B and m

def _micro_batch_loop(kind, m):
    """A gradient-accumulation loop over consecutive micro-batches of m."""
    def grad_fn(w, x, y):
        parts = [slice(s, min(s + m, len(x))) for s in range(0, len(x), m)]
        total = np.zeros_like(w)
        for p in parts:
            r = np.tanh(x[p] @ w) - y[p]
            g = x[p].T @ (r * (1 - np.tanh(x[p] @ w) ** 2))
            if kind == "mean of means":
                total += g / (p.stop - p.start) / len(parts)
            else:  # loss.mean() / n_steps, accumulated
                n_steps = len(parts)
                total += (g / (p.stop - p.start)) / n_steps
        return total
    return grad_fn


@pytest.mark.parametrize("d", [2, 16], ids=["fewer-params-than-examples", "more-params"])
@pytest.mark.parametrize("kind", ["mean of means", "mean / n_steps"])
def test_micro_batch_means_are_caught_for_every_B_and_m(kind, d):
    """A loop that averages micro-batch means of m examples is a mean exactly
    when m divides the batch size. The checker calls grad_fn on the batch (B)
    and on B - 1 of its examples; B and B - 1 are coprime, so no m from 2 to
    B - 1 divides both, and at one of the two sizes the last micro-batch is
    short and its examples weigh more than the others: that cut fails. Every
    B from 3 to 12 and every such m, fewer and more parameters than examples."""
    rng = np.random.default_rng(7)
    for B in range(3, 13):
        x, y, w = rng.normal(size=(B, d)), rng.normal(size=B), rng.normal(size=d) / 2
        for m in range(2, B):
            v = gradcheck.check_reduction(_micro_batch_loop(kind, m), w, x, y, reduction="mean")
            text = str(v)
            assert v.fails, f"B={B}, m={m}: {text}"
            assert f"micro-batches of {m} examples" in text, f"B={B}, m={m}: {text}"
            if B % m == 0:
                assert v.law == SPLIT, f"B={B}, m={m}: {text}"  # only the B - 1 cut shows it


# ---------------------------------------------------------------- precision and tiny gradients

@pytest.mark.parametrize("B", [17, 24, 40])
def test_float16_gradient_divided_by_B_minus_1_never_holds(B):
    # Its 1/(B-1) error (6 % at B = 17) is within float16's rounding of these
    # sums: the check cannot see it, and must say so rather than hold.
    rng = np.random.default_rng(B)
    x, y, w = rng.normal(size=(B, 3)), rng.normal(size=B), rng.normal(size=3).astype(np.float16)

    def grad_fn(w, x, y):
        x, y = x.astype(np.float16), y.astype(np.float16)
        return x.T @ (x @ w - y) / np.float16(max(len(x) - 1, 1))

    v = gradcheck.check_reduction(grad_fn, w, x, y, reduction="mean")
    text = str(v)
    assert not v.holds, text
    if v.undetermined:
        assert v.reason == PRECISION_LIMITED and v.resolution > 1 / (B - 1), text
        assert "float16" in text and "float64" in text, text  # what would improve it


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("size", [1e-8, 1e-20])
def test_a_tiny_gradient_is_held_to_its_own_size(dtype, size):
    # A gradient of 1e-8 (or 1e-20) 10 % too large is not compared against an
    # allowance of order 1: it fails.
    rng = np.random.default_rng(0)
    x, y, w = rng.normal(size=(11, 3)), rng.normal(size=11), rng.normal(size=3).astype(dtype)

    def grad_fn(w, x, y):  # a sum over B - 1 = 10: 10 % too large for a mean
        x, y = x.astype(dtype), y.astype(dtype)
        return (dtype(size) * x.T @ (x @ w - y) / dtype(max(len(x) - 1, 1))).astype(dtype)

    v = gradcheck.check_reduction(grad_fn, w, x, y, reduction="mean")
    assert v.fails and "B-1" in str(v), str(v)


@pytest.mark.parametrize("dtype, at_most", [(np.float64, 1e-11), (np.float32, 1e-3), (np.float16, 1.0)])
def test_resolution_by_dtype(dtype, at_most):
    rng = np.random.default_rng(1)
    x, y, w = rng.normal(size=(8, 4)), rng.normal(size=8), rng.normal(size=4).astype(dtype)

    def grad_fn(w, x, y):
        x, y = x.astype(dtype), y.astype(dtype)
        return (x.T @ (x @ w - y) / dtype(len(x))).astype(dtype)

    v = gradcheck.check_reduction(grad_fn, w, x, y, reduction="mean")
    assert not v.fails and v.resolution <= at_most, str(v)
    assert v.holds == (v.resolution <= v.requested), str(v)
    if dtype == np.float16:  # float16 cannot reach the default 1e-3
        assert v.undetermined and v.reason == PRECISION_LIMITED, str(v)


def test_evaluations_count_every_call_of_grad_fn():
    rng = np.random.default_rng(3)
    x, y, w = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=3)
    calls = []

    def counted(scale):
        def grad_fn(w, x, y):
            calls.append(len(x))
            return scale(len(x)) * x.T @ (x @ w - y)
        return grad_fn

    for scale, reduction in [(lambda n: 1 / n, "mean"), (lambda n: 1.0, "mean"), (lambda n: 1.0, "sum")]:
        calls.clear()
        v = gradcheck.check_reduction(counted(scale), w, x, y, reduction=reduction)
        assert v.evaluations == len(calls), (v.evaluations, len(calls), str(v))


@pytest.mark.parametrize("seed", range(4))
def test_a_gradient_carrying_the_rounding_of_a_large_term_is_measured_not_failed(seed):
    # (1e8 + g) - 1e8: every entry is rounded to 1.5e-8, far beyond C_GRAD ulps
    # of g. The checker measures grad_fn's rounding and holds, at the
    # resolution that leaves; the same code dividing by B - 1 still fails.
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=(7, 3)), rng.normal(size=7), rng.normal(size=3)

    def offset(divisor):
        def grad_fn(w, x, y):
            return (1e8 + x.T @ (x @ w - y) / divisor(len(x))) - 1e8
        return grad_fn

    v = gradcheck.check_reduction(offset(lambda n: n), w, x, y, reduction="mean")
    assert v.holds and 1e-9 < v.resolution < 1e-5, str(v)
    wrong = gradcheck.check_reduction(offset(lambda n: max(n - 1, 1)), w, x, y, reduction="mean")
    assert wrong.fails and "dividing the sum by B-1" in str(wrong), str(wrong)


@given(seed=st.integers(0, 2**32 - 1), B=st.integers(2, 12), d=st.integers(1, 4),
       big=st.sampled_from([1e15, 4e15]))
@example(seed=269345, B=2, d=1, big=4e15)  # a found witness: every law held exactly on that grid
def test_a_gradient_left_with_three_bits_by_a_large_term_is_undetermined_not_failed(seed, B, d, big):
    # (1e15 + g) - 1e15 keeps g to a grid of 0.125: 3 or 4 significant bits
    # of an entry of size 1, too few for any ladder to widen for, and every
    # entry alike. The checker counts that grid as rounding: the right code
    # is precision-limited (half of such draws were failed before), and the
    # same code dividing by B - 1 is never said to hold. At B = 2 the values
    # on that grid can keep every law exactly at the point (0.5 + 0 = 2 x
    # 0.5 / 2, found by the dev profile): values that coarse get their
    # rounding measured before any law may hold.
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=(B, d)), rng.normal(size=B), rng.normal(size=d)

    def offset(divisor):
        def grad_fn(w, x, y):
            return (big + x.T @ (x @ w - y) / divisor(len(x))) - big
        return grad_fn

    v = gradcheck.check_reduction(offset(lambda n: n), w, x, y, reduction="mean")
    assert not v.fails, str(v)
    wrong = gradcheck.check_reduction(offset(lambda n: max(n - 1, 1)), w, x, y, reduction="mean")
    assert not wrong.holds, str(wrong)


# ---------------------------------------------------------------- kinks

def _l1(reduction):
    def grad_fn(w, x, y):
        g = x.T @ np.sign(x @ w - y)
        return g / len(x) if reduction == "mean" else g
    return grad_fn


@pytest.mark.parametrize("seed", range(6))
def test_an_exact_L1_zero_is_a_kink_and_does_not_hide_a_wrong_reduction(seed):
    rng = np.random.default_rng(seed)
    x, y, w = rng.normal(size=(6, 3)), rng.normal(size=6), rng.normal(size=3)
    y[2] = x[2] @ w  # residual exactly 0: sign(0) = 0 alone, +-1 when the batch rounds it aside
    v = gradcheck.check_reduction(_l1("mean"), w, x, y, reduction="mean")
    assert not v.fails, str(v)
    if v.undetermined:
        assert v.reason == NOT_DIFFERENTIABLE and "kink" in str(v), str(v)
    wrong = gradcheck.check_reduction(_l1("sum"), w, x, y, reduction="mean")
    assert wrong.fails and 'looks like "sum"' in str(wrong), str(wrong)


# ---------------------------------------------------------------- odd draws found by the families

@settings(max_examples=10)
@given(st.integers(2, 9), st.integers(0, 2 ** 16))
def test_identical_examples_are_not_given_a_cause(B, seed):
    # Every example alike: a sum is also a mean with a term added per example,
    # 1/B twice is also a mean with a term divided by B. The checker fails the
    # wrong declaration but names the simplest model and the others it cannot
    # rule out, never one of them as certain.
    rng = np.random.default_rng(seed)
    x, y, w = np.ones((B, 2)), np.ones(B), rng.normal(size=2)
    v = gradcheck.check_reduction(lambda w, x, y: x.T @ (x @ w - y), w, x, y, reduction="mean")
    text = str(v)
    assert v.fails and 'looks like "sum"' in text and "too alike to rule out" in text, text
