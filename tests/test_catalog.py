"""Acceptance tests of the public checkers against a catalog of implementations.

Written against the public contract (DESIGN.md §2) only. Each wrong
implementation in ``catalog.py`` must be caught by the law that decides it,
with a message a person can act on; each right one must pass, over many seeded
data draws, with no false alarm; misuse raises an exception naming the argument;
no checker modifies its inputs.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import gradcheck

try:  # pytest's default (prepend) import mode puts tests/ on sys.path
    import catalog as cat
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests import catalog as cat


OUTCOMES = {"holds", "fails", "undetermined"}
REDUCTION_LAWS = {"per-example decomposition", "sum = B × mean", "duplication",
                  "permutation", "split/merge", "zero weights", "parameter-only term"}
MISUSE = (gradcheck.GradcheckUsageError, TypeError, ValueError)


# ---------------------------------------------------------------- verdict helpers

def _well_formed(v):
    assert isinstance(v, gradcheck.Verdict), type(v)
    text = str(v)
    assert text.startswith("[gradcheck] "), text
    assert v.outcome in OUTCOMES, (v.outcome, text)
    assert isinstance(v.holds, bool), (type(v.holds), text)
    assert bool(v) == v.holds, text
    assert v.holds == (v.outcome == "holds"), (v.outcome, text)
    assert isinstance(v.law, str) and isinstance(v.error, float) and isinstance(v.tolerance, float), text
    assert v.claim, text
    return text


def _assert_holds(v):
    text = _well_formed(v)
    assert v.outcome == "holds", text
    assert v.error <= v.tolerance, text


def _assert_fails(v, law, *substrings):
    text = _well_formed(v)
    assert v.outcome == "fails", text
    assert v.law == law, f"law {v.law!r}, expected {law!r}: {text}"
    if np.isfinite(v.error):
        assert v.error > v.tolerance, text
    for s in substrings:
        assert s.lower() in text.lower(), f"{s!r} not in: {text}"


# ---------------------------------------------------------------- right implementations

# 30 seeded draws: batch sizes 2..9, and 32 (the nominal batch case's control),
# varying widths and the parameter scale.
DRAWS = [(seed, 2 + seed % 8 if seed < 27 else 32) for seed in range(30)]


def _dims(seed):
    return dict(d_in=1 + seed % 3, hidden=2 + seed % 4)


def _scale(seed):
    return (0.5, 1.0, 2.0)[seed % 3]


def _mlp(seed, B):
    return cat.make_data(seed, B, d_out=1 + seed % 2, scale=_scale(seed), **_dims(seed))


def right_mean_manual(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_mean, cat.grad_mean_manual, params, (x, y), dict(reduction="mean")


def right_mean_autograd(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_mean, cat.grad_mean_autograd, params, (x, y), dict(reduction="mean")


def right_mean_layers_autograd(seed, B):
    params, x, y = _mlp(seed, B)
    return (cat.loss_layered_mean, cat.grad_layered_mean_autograd, cat.to_layers(params), (x, y),
            dict(reduction="mean"))


def right_sum_manual(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_sum, cat.grad_sum_manual, params, (x, y), dict(reduction="sum")


def right_token_mean(seed, B):
    params, x, y, mask = cat.make_token_data(seed, B, T=2 + seed % 4, **_dims(seed))
    return (cat.loss_token_mean, cat.grad_token_mean_manual, params, (x, y, mask),
            dict(reduction="mean", weights=mask.sum(axis=1)))


def right_class_weighted(seed, B):
    params, x, labels, class_weight = cat.make_class_data(seed, B, n_classes=2 + seed % 3,
                                                          **_dims(seed))
    loss_fn, grad_fn = cat.make_class_weighted(class_weight)
    return loss_fn, grad_fn, params, (x, labels), dict(reduction="mean",
                                                      weights=class_weight[labels])


def right_mean_fixed_l2(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_mean_l2, cat.grad_mean_l2, params, (x, y), dict(reduction="mean")


def right_sum_fixed_l2(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_sum_l2, cat.grad_sum_l2, params, (x, y), dict(reduction="sum")


def right_mlp_divided_l2(seed, B):
    params, x, y = _mlp(seed, B)
    return cat.loss_mlp_l2, cat.grad_mlp_l2, params, (x, y), dict(reduction="mean", regularizer="divided")


def right_class_weighted_sum(seed, B):
    params, x, labels, class_weight = cat.make_class_data(seed, B, n_classes=2 + seed % 3, **_dims(seed))
    loss_fn, grad_fn = cat.make_class_weighted_sum(class_weight)
    return loss_fn, grad_fn, params, (x, labels), dict(reduction="sum", weights=class_weight[labels])


RIGHT = {
    "mean-manual": right_mean_manual,
    "mean-autograd": right_mean_autograd,
    "mean-autograd-layer-list": right_mean_layers_autograd,
    "sum-manual-declared-sum": right_sum_manual,
    "token-mask-weighted-mean": right_token_mean,
    "class-weighted-mean": right_class_weighted,
    "mean-plus-fixed-l2": right_mean_fixed_l2,
    "sum-plus-fixed-l2-declared-sum": right_sum_fixed_l2,
    "mlp-l2-divided-declared-divided": right_mlp_divided_l2,
    "class-weighted-sum": right_class_weighted_sum,
}

RIGHT_PARAMS = [pytest.param(name, seed, B, id=f"{name}-seed{seed:02d}-B{B}")
                for name in RIGHT for seed, B in DRAWS]


@pytest.mark.parametrize("name, seed, B", RIGHT_PARAMS)
def test_right_reduction_holds(name, seed, B):
    _, grad_fn, params, batch, kw = RIGHT[name](seed, B)
    _assert_holds(gradcheck.check_reduction(grad_fn, params, *batch, **kw))


@pytest.mark.parametrize("name, seed, B", RIGHT_PARAMS)
def test_right_gradient_holds(name, seed, B):
    loss_fn, grad_fn, params, batch, _ = RIGHT[name](seed, B)
    v = gradcheck.check_gradient(loss_fn, grad_fn, params, *batch)
    _assert_holds(v)
    assert v.law == "finite differences", str(v)


@pytest.mark.parametrize("mode", ["full", "projection"])
@pytest.mark.parametrize("name, seed, B", [p for p in RIGHT_PARAMS if p.values[1] in (0, 13, 28)])
def test_right_gradient_holds_each_mode(name, seed, B, mode):
    loss_fn, grad_fn, params, batch, _ = RIGHT[name](seed, B)
    _assert_holds(gradcheck.check_gradient(loss_fn, grad_fn, params, *batch, mode=mode))


def test_zero_weight_example_is_allowed():
    """DESIGN §2: zero weights are allowed (a fully padded sequence)."""
    params, x, y, mask = cat.make_token_data(7, B=5, allow_empty=True)
    weights = mask.sum(axis=1)
    assert weights[0] == 0
    v = gradcheck.check_reduction(cat.grad_token_mean_manual, params, x, y, mask,
                                  reduction="mean", weights=weights)
    _assert_holds(v)


# ---------------------------------------------------------------- infer_reduction

@pytest.mark.parametrize("seed, B", [(0, 2), (5, 7), (11, 5), (28, 32)], ids=lambda d: str(d))
@pytest.mark.parametrize("grad_fn, expected", [
    pytest.param(cat.grad_mean_manual, "mean", id="mean-manual"),
    pytest.param(cat.grad_mean_autograd, "mean", id="mean-autograd"),
    pytest.param(cat.grad_sum_manual, "sum", id="sum-manual"),
])
def test_infer_reduction(grad_fn, expected, seed, B):
    params, x, y = _mlp(seed, B)
    assert gradcheck.infer_reduction(grad_fn, params, x, y) == expected


@pytest.mark.parametrize("seed, B", [(1, 5), (2, 3), (3, 8)])
def test_infer_reduction_mean_twice_says_halves(seed, B):
    params, x, y = cat.make_data(seed, B)
    got = gradcheck.infer_reduction(cat.grad_mean_twice, params, x, y)
    assert isinstance(got, str) and got not in ("mean", "sum"), got
    assert "halves" in got.lower() or "1/b" in got.lower(), got


# ---------------------------------------------------------------- wrong reductions

def _mlp_batch(seed, B):
    params, x, y = cat.make_data(seed, B)
    return params, (x, y)


def _token_batch(seed, B):
    params, x, y, mask = cat.make_token_data(seed, B)
    return params, (x, y, mask)


# (id, grad_fn, declared reduction, batch builder, expected law, substrings of str(v))
WRONG_REDUCTIONS = [
    ("sum-declared-mean", cat.grad_sum_manual, "mean", _mlp_batch,
     "sum = B × mean", ['looks like "sum"']),
    ("mean-declared-sum", cat.grad_mean_manual, "sum", _mlp_batch,
     "sum = B × mean", ['looks like "mean"']),
    ("mean-divided-by-B-again", cat.grad_mean_twice, "mean", _mlp_batch,
     "sum = B × mean", ["1/b applied twice"]),
    ("sum-over-B-minus-1", cat.grad_sum_over_B_minus_1, "mean", _mlp_batch,
     "sum = B × mean", ["b-1"]),
    # The brief asked for "fixed batch size of 32", but check_reduction sees grad_fn only:
    # sum/32 is c × (a sum) for a constant c, which no law on grad_fn alone can tell from
    # "sum" (every law is invariant under a constant factor), so the 32 is unidentifiable.
    # Assert the identifiable part: it looks like a sum or a fixed divisor (nominal batch size).
    ("nominal-batch-32", cat.grad_nominal_batch, "mean", _mlp_batch,
     "sum = B × mean", ['looks like "sum"', "nominal batch size"]),
    ("average-then-backprop", cat.grad_average_then_backprop, "mean", _mlp_batch,
     "per-example decomposition", ["examples interact"]),
    ("gradient-at-mean-example", cat.grad_at_mean_example, "mean", _mlp_batch,
     "per-example decomposition", ["examples interact"]),
    ("biases-summed-weights-averaged", cat.grad_bias_summed, "mean", _mlp_batch,
     "sum = B × mean", ["parameters disagree"]),
    ("only-example-0", cat.grad_first_example, "mean", _mlp_batch,
     "per-example decomposition", ["only example 0"]),
    ("batch-norm-training-mode", cat.grad_batchnorm_mean, "mean", _mlp_batch,
     "per-example decomposition", ["examples interact"]),
    ("l2-divided-declared-fixed", cat.grad_mlp_l2, "mean", _mlp_batch,
     "parameter-only term", ["divided by b along with the data", 'regularizer="divided"']),
    ("l2-added-per-example", cat.grad_l2_per_example, "mean", _mlp_batch,
     "parameter-only term", ["added once per example"]),
    ("sum-plus-l2-declared-mean", cat.grad_sum_l2, "mean", _mlp_batch,
     "sum = B × mean", ['looks like "sum"', "plus a parameter-only term of fixed weight"]),
    ("token-mask-mean-declared-plain-mean", cat.grad_token_mean_manual, "mean", _token_batch,
     "per-example decomposition", ["weights="]),
]
WRONG_DRAWS = [(1, 5), (2, 3), (3, 8)]   # B = 2 left out: there B - 1 = 1 and B-1 looks like "sum"


@pytest.mark.parametrize("seed, B", WRONG_DRAWS, ids=[f"seed{s}-B{b}" for s, b in WRONG_DRAWS])
@pytest.mark.parametrize("grad_fn, reduction, build, law, substrings",
                         [pytest.param(*case[1:], id=case[0]) for case in WRONG_REDUCTIONS])
def test_wrong_reduction_is_caught(grad_fn, reduction, build, law, substrings, seed, B):
    params, batch = build(seed, B)
    v = gradcheck.check_reduction(grad_fn, params, *batch, reduction=reduction)
    _assert_fails(v, law, *substrings)


def test_nominal_batch_fails_even_at_B_equal_32():
    """At B = 32 the full batch looks right, but single and duplicated batches do not."""
    params, x, y = cat.make_data(4, 32)
    np.testing.assert_allclose(cat.grad_nominal_batch(params, x, y)["W1"],
                               cat.grad_mean_manual(params, x, y)["W1"], rtol=1e-12)
    v = gradcheck.check_reduction(cat.grad_nominal_batch, params, x, y, reduction="mean")
    text = _well_formed(v)
    assert v.outcome == "fails", text


# ---------------------------------------------------------------- regularizers (DESIGN §2)

@pytest.mark.parametrize("seed, B", WRONG_DRAWS)
def test_sum_plus_fixed_penalty_declared_sum_holds_and_reports_the_term(seed, B):
    """Textbook ridge: a sum plus a fixed L2 term is what a plain "sum" declares.
    Each example's gradient carries the term once, the batch's once too, so the
    checker separates it and says how large it is."""
    params, x, y = cat.make_data(seed, B)
    v = gradcheck.check_reduction(cat.grad_sum_l2, params, x, y, reduction="sum")
    text = _well_formed(v)
    _assert_holds(v)
    assert "parameter-only term (L2 or weight decay) of fixed weight" in text, text
    assert re.search(r"[\d.e-]+ of the gradient's size", text), text
    assert gradcheck.infer_reduction(cat.grad_sum_l2, params, x, y) == "sum"


@pytest.mark.parametrize("seed, B", WRONG_DRAWS)
def test_penalty_divided_by_B_holds_when_declared_divided(seed, B):
    params, x, y = cat.make_data(seed, B)
    _assert_holds(gradcheck.check_reduction(cat.grad_mlp_l2, params, x, y, reduction="mean",
                                            regularizer="divided"))
    said = gradcheck.infer_reduction(cat.grad_mlp_l2, params, x, y)
    assert "parameter-only term" in said and "divided by B" in said, said
    # A penalty divided by B when declared divided: a plain mean of the same
    # loss (its penalty fixed) is right for a divided declaration too, since
    # under a mean a fixed term is part of every example's loss. Nothing to fail.
    _assert_holds(gradcheck.check_reduction(cat.grad_mean_l2, params, x, y, reduction="mean",
                                            regularizer="divided"))


def test_regularizer_divided_has_no_meaning_for_a_sum():
    params, x, y = cat.make_data(0, 5)
    with pytest.raises(gradcheck.GradcheckUsageError, match=r'regularizer="divided".*reduction="sum"'):
        gradcheck.check_reduction(cat.grad_sum_l2, params, x, y, reduction="sum", regularizer="divided")
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"regularizer='none'"):
        gradcheck.check_reduction(cat.grad_sum_l2, params, x, y, reduction="sum", regularizer="none")


# ---------------------------------------------------------------- weights (DESIGN §2)

@pytest.mark.parametrize("seed, B", [(0, 6), (4, 9)])
def test_weighted_sum_holds_and_a_weighted_mean_declaration_is_told_it_is_a_sum(seed, B):
    params, x, labels, class_weight = cat.make_class_data(seed, B)
    _, grad_fn = cat.make_class_weighted_sum(class_weight)
    w = class_weight[labels]
    _assert_holds(gradcheck.check_reduction(grad_fn, params, x, labels, reduction="sum", weights=w))
    v = gradcheck.check_reduction(grad_fn, params, x, labels, reduction="mean", weights=w)
    _assert_fails(v, "sum = B × mean", 'looks like "sum" (a weighted sum')


def test_zero_weight_examples_change_nothing_in_a_weighted_sum():
    params, x, labels, class_weight = cat.make_class_data(3, 7)
    _, grad_fn = cat.make_class_weighted_sum(class_weight)
    w = class_weight[labels]
    w[[1, 4]] = 0.0  # ignored examples: their weight is 0

    def ignoring(p, x, t, w):  # forgets the mask: the ignored examples count with their class weight
        return grad_fn(p, x, t)

    def honouring(p, x, t, w):
        return grad_fn(p, x[w > 0], t[w > 0])

    v = gradcheck.check_reduction(ignoring, params, x, labels, w, reduction="sum", weights=w)
    _assert_fails(v, "zero weights", "zero-weight examples (1, 4)", "they count though their weight is 0")
    v = gradcheck.check_reduction(honouring, params, x, labels, w, reduction="sum", weights=w)
    _assert_holds(v)
    assert "zero weights" in {d.law for d in v.details}, str(v)


def test_an_example_empty_alone_is_not_blamed_on_B_minus_1():
    """A token mean with no guard for 0 tokens, declared a plain mean: the
    empty sequence alone is 0/0. That is the missing weight, not a division
    by B - 1: the message says so and asks for weights=."""
    params, x, y, mask = cat.make_token_data(7, B=5, allow_empty=True)
    v = gradcheck.check_reduction(cat.grad_token_mean_nan_when_empty, params, x, y, mask, reduction="mean")
    text = _well_formed(v)
    assert v.fails and "example 0 alone gives a non-finite gradient" in text, text
    assert "B-1" not in text and "B - 1" not in text, text
    assert "pass weights= with weight 0" in text, text
    # Declared with its weights, the empty sequence is never called alone, and it holds.
    _assert_holds(gradcheck.check_reduction(cat.grad_token_mean_nan_when_empty, params, x, y, mask,
                                            reduction="mean", weights=mask.sum(axis=1)))


def test_advice_to_pass_weights_only_to_a_caller_who_did_not():
    params, x, labels, class_weight = cat.make_class_data(2, 7)
    _, grad_fn = cat.make_class_weighted(class_weight)
    without = str(gradcheck.check_reduction(grad_fn, params, x, labels, reduction="mean"))
    assert "pass weights=" in without, without
    wrong = np.ones(len(labels))  # passed, but not the weights the loss uses
    passed = str(gradcheck.check_reduction(grad_fn, params, x, labels, reduction="mean", weights=wrong))
    assert "pass weights=" not in passed and "the weights passed" in passed, passed


def test_fitted_weights_are_shown_in_full_grouped_when_long():
    # 14 examples, micro-batches of 4: 4, 4, 4, 2; the last two weigh 1/8, the others 1/16.
    params, x, y = cat.make_data(5, 14)
    v = gradcheck.check_reduction(cat.make_micro_batch_means(4), params, x, y, reduction="mean")
    text = _well_formed(v)
    assert v.fails and "0.0625 (examples 0–11); 0.125 (examples 12, 13)" in text, text
    assert "micro-batches of 4 examples" in text, text


def test_as_many_parameters_as_examples_gives_no_fitted_weights():
    """With 4 parameters and 4 examples any gradient is some combination of the
    examples' gradients, so fitted per-example weights would say nothing (they
    come out negative and arbitrary). The checker measures what it can, the
    shares at which two parts of a split merge, and shows no weights."""
    params, x, y = cat.make_data(1, 4, d_in=1, hidden=1, d_out=1)
    w = np.array([0.5, 2.0, 1.0, 3.0])
    v = gradcheck.check_reduction(lambda p, x, y, w: cat._backprop(p, x, y, w / w.sum()), params, x, y, w,
                                  reduction="mean")
    text = _well_formed(v)
    assert v.fails and "fitted a =" not in text, text
    assert "shares" in text and "pass weights=" in text and "interact" not in text, text


# ---------------------------------------------------------------- wrong gradients

GRAD_DATA_SEED, GRAD_B = 1, 5
ENTRY_KEY, ENTRY_INDEX = "W1", (2, 1)


def test_one_entry_precondition():
    """The 1 % entry is not tiny: |g| > 0.1 · max |g| (else the test would prove little)."""
    params, x, y = cat.make_data(GRAD_DATA_SEED, GRAD_B)
    g = cat.grad_mean_manual(params, x, y)
    biggest = max(np.max(np.abs(a)) for a in g.values())
    assert abs(g[ENTRY_KEY][ENTRY_INDEX]) > 0.1 * biggest


# (id, loss_fn, grad_fn, mode, substrings of str(v))
WRONG_GRADIENTS = [
    ("sign-flipped-W2", cat.loss_mean, cat.grad_sign_flipped_W2, "auto", ["sign", "W2"]),
    ("all-off-1e-3", cat.loss_mean, cat.make_scaled(1e-3), "auto", ["finite differences"]),
    ("all-off-1e-6", cat.loss_mean, cat.make_scaled(1e-6), "auto", ["finite differences"]),
    *[(f"one-entry-off-1pct-{mode}", cat.loss_mean,
       cat.make_one_entry_off(ENTRY_KEY, ENTRY_INDEX, 0.01), mode, [ENTRY_KEY, "[2, 1]"])
      for mode in ("full", "projection", "auto")],
    ("only-example-0-vs-mean-loss", cat.loss_mean, cat.grad_first_example, "auto",
     ["finite differences"]),
]


@pytest.mark.parametrize("loss_fn, grad_fn, mode, substrings",
                         [pytest.param(*case[1:], id=case[0]) for case in WRONG_GRADIENTS])
def test_wrong_gradient_is_caught(loss_fn, grad_fn, mode, substrings):
    params, x, y = cat.make_data(GRAD_DATA_SEED, GRAD_B)
    v = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y, mode=mode)
    _assert_fails(v, "finite differences", *substrings)


# ---------------------------------------------------------------- non-finite values are findings

def test_nan_gradient_fails_and_names_the_entry():
    params, x, y = cat.make_data(GRAD_DATA_SEED, GRAD_B)
    v = gradcheck.check_gradient(cat.loss_mean, cat.grad_nan_b2, params, x, y)
    text = _well_formed(v)
    assert v.outcome == "fails", text
    assert "nan" in text.lower() and "b2" in text, text


def test_nan_gradient_fails_check_reduction():
    """DESIGN §2: a non-finite gradient fails, never a silent comparison."""
    params, x, y = cat.make_data(GRAD_DATA_SEED, GRAD_B)
    v = gradcheck.check_reduction(cat.grad_nan_b2, params, x, y, reduction="mean")
    text = _well_formed(v)
    assert v.outcome == "fails", text
    assert "nan" in text.lower(), text


def test_nan_loss_is_undetermined():
    params, x, y = cat.make_data(GRAD_DATA_SEED, GRAD_B)
    v = gradcheck.check_gradient(cat.loss_nan, cat.grad_mean_manual, params, x, y)
    text = _well_formed(v)
    assert v.outcome == "undetermined" and not v.holds, text
    assert "non-finite" in v.reason.lower(), (v.reason, text)


# ---------------------------------------------------------------- misuse

def _call(checker, grad_fn, params, *batch, loss_fn=cat.loss_mean):
    if checker == "check_gradient":
        return gradcheck.check_gradient(loss_fn, grad_fn, params, *batch)
    if checker == "check_reduction":
        return gradcheck.check_reduction(grad_fn, params, *batch, reduction="mean")
    return gradcheck.infer_reduction(grad_fn, params, *batch)


CHECKERS = ["check_gradient", "check_reduction", "infer_reduction"]


@pytest.mark.parametrize("checker", CHECKERS)
def test_batch_arrays_must_share_axis_0(checker):
    params, x, y = cat.make_data(0, 5)
    with pytest.raises(MISUSE, match=r"batch"):
        _call(checker, cat.grad_mean_manual, params, x, y[:4])


@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("as_dict", [False, True], ids=["array", "dict"])
def test_integer_params_are_misuse(checker, as_dict):
    rng = np.random.default_rng(0)
    w = np.arange(6).reshape(2, 3)
    x, y = rng.normal(size=(5, 2)), rng.normal(size=(5, 3))
    if as_dict:
        params = {"w": w}

        def loss_fn(p, x, y):
            return cat.loss_linear_mean(p["w"], x, y)

        def grad_fn(p, x, y):
            return {"w": cat.grad_linear_mean(p["w"], x, y)}
    else:
        params, loss_fn, grad_fn = w, cat.loss_linear_mean, cat.grad_linear_mean
    with pytest.raises(MISUSE, match=r"params"):
        _call(checker, grad_fn, params, x, y, loss_fn=loss_fn)


@pytest.mark.parametrize("checker", CHECKERS)
@pytest.mark.parametrize("grad_fn", [cat.grad_missing_key, cat.grad_wrong_shape],
                         ids=["dict-missing-b2", "W1-transposed"])
def test_gradient_of_wrong_structure_is_misuse(checker, grad_fn):
    params, x, y = cat.make_data(0, 5)
    with pytest.raises(MISUSE, match=r"grad_fn"):
        _call(checker, grad_fn, params, x, y)


@pytest.mark.parametrize("checker", CHECKERS)
def test_gradient_of_wrong_shape_plain_array_params(checker):
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=5)
    with pytest.raises(MISUSE, match=r"grad_fn"):
        _call(checker, cat.grad_linear_wrong_shape, w, x, y, loss_fn=cat.loss_linear_mean)


def test_plain_array_params_right_gradient_holds():
    rng = np.random.default_rng(0)
    w, x, y = rng.normal(size=3), rng.normal(size=(5, 3)), rng.normal(size=5)
    _assert_holds(gradcheck.check_gradient(cat.loss_linear_mean, cat.grad_linear_mean, w, x, y))
    _assert_holds(gradcheck.check_reduction(cat.grad_linear_mean, w, x, y, reduction="mean"))


# ---------------------------------------------------------------- inputs are never modified

def _all_checker_calls(loss_fn, grad_fn, params, batch, weights):
    yield lambda: gradcheck.check_gradient(loss_fn, grad_fn, params, *batch, mode="full")
    yield lambda: gradcheck.check_gradient(loss_fn, grad_fn, params, *batch, mode="projection")
    yield lambda: gradcheck.check_reduction(grad_fn, params, *batch, reduction="mean")
    yield lambda: gradcheck.check_reduction(grad_fn, params, *batch, reduction="mean",
                                            weights=weights)
    yield lambda: gradcheck.infer_reduction(grad_fn, params, *batch)


def _token_case():
    params, x, y, mask = cat.make_token_data(3, B=4)
    return params, (x, y, mask), mask.sum(axis=1)


def test_no_checker_modifies_its_inputs():
    params, batch, weights = _token_case()
    snapshot = copy.deepcopy((params, batch, weights))
    ids = {k: id(v) for k, v in params.items()}
    for call in _all_checker_calls(cat.loss_token_mean, cat.grad_token_mean_manual,
                                   params, batch, weights):
        call()
        assert set(params) == set(snapshot[0])
        for k in params:
            assert id(params[k]) == ids[k], k
            assert np.array_equal(params[k], snapshot[0][k]), k
            assert params[k].dtype == snapshot[0][k].dtype, k
        for a, b in zip(batch, snapshot[1]):
            assert np.array_equal(a, b) and a.dtype == b.dtype
        assert np.array_equal(weights, snapshot[2])


def test_read_only_inputs_are_accepted():
    params, batch, weights = _token_case()
    for a in [*params.values(), *batch, weights]:
        a.flags.writeable = False
    for call in _all_checker_calls(cat.loss_token_mean, cat.grad_token_mean_manual,
                                   params, batch, weights):
        call()   # must not raise


# ---------------------------------------------------------------- assert_* wrappers

def test_assert_reduction_raises_with_the_verdict_string():
    params, x, y = cat.make_data(1, 5)
    expected = str(gradcheck.check_reduction(cat.grad_sum_manual, params, x, y,
                                             reduction="mean", seed=0))
    with pytest.raises(AssertionError) as info:
        gradcheck.assert_reduction(cat.grad_sum_manual, params, x, y, reduction="mean", seed=0)
    assert str(info.value) == expected


def test_assert_reduction_returns_none_when_it_holds():
    params, x, y = cat.make_data(1, 5)
    assert gradcheck.assert_reduction(cat.grad_mean_manual, params, x, y, reduction="mean") is None


def test_assert_gradient_raises_with_the_verdict_string():
    params, x, y = cat.make_data(1, 5)
    expected = str(gradcheck.check_gradient(cat.loss_mean, cat.grad_sign_flipped_W2,
                                            params, x, y, seed=0))
    with pytest.raises(AssertionError) as info:
        gradcheck.assert_gradient(cat.loss_mean, cat.grad_sign_flipped_W2, params, x, y, seed=0)
    assert str(info.value) == expected
    assert gradcheck.assert_gradient(cat.loss_mean, cat.grad_mean_manual, params, x, y) is None


def test_same_seed_same_verdict():
    params, x, y = cat.make_data(2, 6)
    a = gradcheck.check_reduction(cat.grad_bias_summed, params, x, y, reduction="mean", seed=3)
    b = gradcheck.check_reduction(cat.grad_bias_summed, params, x, y, reduction="mean", seed=3)
    assert str(a) == str(b)


# ---------------------------------------------------------------- the catalog itself

def _max_diff(a, b):
    return max(np.max(np.abs(a[k] - b[k])) for k in a)


@pytest.mark.parametrize("seed, B", [(0, 1), (1, 5), (2, 9)])
def test_catalog_manual_backprop_equals_autograd(seed, B):
    params, x, y = cat.make_data(seed, B)
    assert _max_diff(cat.grad_mean_manual(params, x, y), cat.grad_mean_autograd(params, x, y)) < 1e-12
    assert _max_diff(cat.grad_sum_manual(params, x, y), cat.grad_sum_autograd(params, x, y)) < 1e-12
    p, xt, yt, mask = cat.make_token_data(seed, max(B, 2))
    assert _max_diff(cat.grad_token_mean_manual(p, xt, yt, mask),
                     cat.grad_token_mean_autograd(p, xt, yt, mask)) < 1e-12


@pytest.mark.parametrize("grad_fn", [case[1] for case in WRONG_REDUCTIONS[:-1]],
                         ids=[case[0] for case in WRONG_REDUCTIONS[:-1]])
def test_catalog_wrong_ones_really_differ(grad_fn):
    params, x, y = cat.make_data(1, 5)
    reference = cat.grad_sum_manual if grad_fn is cat.grad_mean_manual else cat.grad_mean_manual
    assert _max_diff(grad_fn(params, x, y), reference(params, x, y)) > 1e-3


# ---------------------------------------------------------------- regressions found by wider draws

def test_no_false_alarm_when_the_gradient_cancels():
    """Found over 1,800 extra draws: a right sum whose b2 gradient (7.5e-3) is a sum of O(1)
    per-example terms that cancel. Duplication is exact up to rounding of those terms, so the
    tolerance has to scale with sum_i |g_i|, not with |sum_i g_i|."""
    _, grad_fn, params, batch, kw = right_sum_manual(180, 6)
    _assert_holds(gradcheck.check_reduction(grad_fn, params, *batch, **kw))
    _assert_holds(gradcheck.check_reduction(cat.grad_sum_autograd, params, *batch, **kw))
