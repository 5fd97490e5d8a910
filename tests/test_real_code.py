"""Acceptance tests on real gradient code this project did not write.

scikit-learn's linear-model losses, LogisticRegression, Ridge and MLP, PyTorch's
loss modules wrapped by hand, a course's numpy two-layer network, hand-written
gradient-accumulation loops and adversarial numerics on correct code (the
wrappers are in ``real_impls.py``). Each is judged with the declaration that
is true of it (the verdict must hold, or be undetermined where DESIGN allows)
and with a wrong one (the verdict must fail, and ``str(verdict)`` must name the
true cause, as its user would read it). Written against DESIGN.md §2 and §4
only.

What the real losses divide by, as these tests measure it:

| implementation | gradient reduces as |
| --- | --- |
| sklearn ``LinearModelLoss`` | weighted mean over sample weights + fixed ``l2`` penalty |
| sklearn ``LogisticRegression`` (lbfgs) | mean + penalty ``||w||^2 / (2 C B)``: divided by B |
| sklearn ``Ridge`` (lbfgs) | sum + fixed ``alpha`` penalty |
| sklearn ``MLPRegressor``/``MLPClassifier`` | (sum + alpha/2 ||W||^2) / B: penalty divided by B |
| torch MSE / L1 / SmoothL1 / Huber / BCEWithLogits, 'mean' | mean over B (times 1/C: every element) |
| torch KLDivLoss 'mean' / 'batchmean' | mean over B, 'mean' a further 1/C |
| torch CrossEntropy ``weight=`` 'mean' | weighted mean, weights = class weight of each target |
| torch CrossEntropy ``ignore_index`` 'mean' | mean over the non-ignored targets (zero weights) |
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import gradcheck

try:  # pytest's default (prepend) import mode puts tests/ on sys.path
    import real_impls as ri
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests import real_impls as ri


INTERACT = re.compile(r"interact|batch statistics|mean example", re.I)
PENALTY = re.compile(r"penalt|regulari[sz]|parameter-only|parameters alone", re.I)
WITH_B = re.compile(r"divided by (B|the batch size|n_samples|the number of examples|the total weight)"
                    r"|/\s*B\b|1/B|with B\b|moves with|scales with", re.I)
FIXED = re.compile(r"fixed|constant|does not (change|move|scale)", re.I)


def _sklearn():
    pytest.importorskip("sklearn")


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)
    return torch


# ---------------------------------------------------------------- verdict helpers

def _holds(v):
    text = str(v)
    assert v.holds, text
    assert text.startswith("[gradcheck] "), text
    return text


def _fails(v):
    text = str(v)
    assert v.fails, text
    assert text.startswith("[gradcheck] ") and " failed" in text.splitlines()[0], text
    return text


def _not_failed(v, *reasons):
    """Correct code: holds, or undetermined for one of the reasons DESIGN allows."""
    text = str(v)
    assert not v.fails, text
    if v.undetermined:
        assert v.reason in reasons, text
    return text


def _no_interaction_blamed(text):
    assert not INTERACT.search(text), f"blames interacting examples, which this code has not:\n{text}"


def _says_penalty_moves_with_b(text):
    _no_interaction_blamed(text)
    assert PENALTY.search(text), f"does not name the parameter-only term (the penalty):\n{text}"
    assert WITH_B.search(text), f"does not say the penalty's weight moves with B:\n{text}"


def _entries(text):
    """(grad_fn, finite differences) pairs of the entries a check_gradient message names."""
    return [(float(a), float(b)) for a, b in
            re.findall(r"grad_fn (-?[\d.e+-]+), finite differences (-?[\d.e+-]+)\)", text)]


def _rng(seed):
    return np.random.default_rng(seed)


# ---------------------------------------------------------------- scikit-learn: LinearModelLoss

LINEAR = [("squared", lambda r, B: r.normal(size=B), 4),
          ("binomial", lambda r, B: r.integers(0, 2, B).astype(float), 4),
          ("multinomial", lambda r, B: r.integers(0, 3, B).astype(float), (3, 4))]


def _linear_case(kind, seed=0, B=7):
    _sklearn()
    r = _rng(seed)
    target, shape = {k: (t, s) for k, t, s in LINEAR}[kind]
    return r.normal(size=(B, 3)), target(r, B), r.uniform(0.5, 2.0, B), r.normal(size=shape)


@pytest.mark.parametrize("kind", [k for k, _, _ in LINEAR])
def test_sklearn_linear_loss_gradient_matches_its_loss(kind):
    X, y, sw, coef = _linear_case(kind)
    loss_fn, grad_fn = ri.sklearn_linear(kind, l2=0.3)
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, coef, X, y, sw))


@pytest.mark.parametrize("kind", [k for k, _, _ in LINEAR])
@pytest.mark.parametrize("l2", [0.0, 0.3])
def test_sklearn_linear_loss_is_a_mean_with_a_fixed_penalty(kind, l2):
    # sum_i l_i / B + l2/2 ||coef||^2: the penalty keeps its weight as B changes,
    # which is what a plain "mean" declares.
    X, y, _, coef = _linear_case(kind)
    _, grad_fn = ri.sklearn_linear(kind, l2=l2)
    _holds(gradcheck.check_reduction(grad_fn, coef, X, y, reduction="mean"))
    assert gradcheck.infer_reduction(grad_fn, coef, X, y) == "mean"
    text = _fails(gradcheck.check_reduction(grad_fn, coef, X, y, reduction="sum"))
    assert 'looks like "mean"' in text, text
    _no_interaction_blamed(text)


@pytest.mark.parametrize("kind", [k for k, _, _ in LINEAR])
def test_sklearn_sample_weight_is_a_weighted_mean(kind):
    X, y, sw, coef = _linear_case(kind)
    _, grad_fn = ri.sklearn_linear(kind, l2=0.3)
    _holds(gradcheck.check_reduction(grad_fn, coef, X, y, sw, reduction="mean", weights=sw))
    sw[[1, 4]] = 0.0  # ignored samples: a weighted mean of the others
    _holds(gradcheck.check_reduction(grad_fn, coef, X, y, sw, reduction="mean", weights=sw))


def test_sklearn_sample_weight_fitted_weights_are_shown():
    # Declared a plain mean: not a mean; the weights are the cause.
    # 12 parameters, 7 examples: the fitted a_i are sample_weight / sum(sample_weight).
    X, y, sw, coef = _linear_case("multinomial")
    _, grad_fn = ri.sklearn_linear("multinomial", l2=0.3)
    text = _fails(gradcheck.check_reduction(grad_fn, coef, X, y, sw, reduction="mean"))
    _no_interaction_blamed(text)
    for a in sw / sw.sum():
        assert f"{a:.4g}" in text, (a, text)


# ---------------------------------------------------------------- scikit-learn: LogisticRegression, Ridge

def _logistic_case(seed=0, B=7):
    _sklearn()
    r = _rng(seed)
    return r.normal(size=(B, 3)), r.integers(0, 2, B), r.normal(size=4)


def test_sklearn_logistic_regression_objective_gradient():
    X, y, w = _logistic_case()
    loss_fn, grad_fn = ri.sklearn_logistic(C=0.5)
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, w, X, y))


def _ridge_case(seed=0, B=6):
    r = _rng(seed)
    return r.normal(size=(B, 3)), r.normal(size=B), r.normal(size=3)


def test_sklearn_ridge_objective_gradient():
    _sklearn()
    X, y, w = _ridge_case()
    loss_fn, grad_fn = ri.sklearn_ridge(alpha=0.7)
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, w, X, y))


# ---------------------------------------------------------------- scikit-learn: MLP

def _mlp_case(kind, seed=0, B=7, n_outputs=1):
    _sklearn()
    r = _rng(seed)
    X = r.normal(size=(B, 3))
    if kind == "classifier":
        return X, r.integers(0, 3, B), r.uniform(0.5, 2.0, B)
    y = r.normal(size=(B, n_outputs)) if n_outputs > 1 else r.normal(size=B)
    return X, y, r.uniform(0.5, 2.0, B)


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_sklearn_mlp_backprop_matches_its_loss(kind):
    X, y, sw = _mlp_case(kind)
    loss_fn, grad_fn, params = ri.sklearn_mlp(kind, alpha=0.5)
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, params, X, y, sw))


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
def test_sklearn_mlp_without_penalty_is_a_weighted_mean(kind):
    X, y, sw = _mlp_case(kind)
    _, grad_fn, params = ri.sklearn_mlp(kind, alpha=0.0)
    _holds(gradcheck.check_reduction(grad_fn, params, X, y, reduction="mean"))
    _holds(gradcheck.check_reduction(grad_fn, params, X, y, sw, reduction="mean", weights=sw))
    text = _fails(gradcheck.check_reduction(grad_fn, params, X, y, reduction="sum"))
    assert 'looks like "mean"' in text, text


def test_sklearn_mlp_regressor_multi_output_gradient_is_n_outputs_times_its_loss():
    # scikit-learn issue #8349: squared_loss averages over the outputs, _backprop
    # does not, so the gradient is n_outputs times the gradient of the loss
    # returned with it. check_gradient must fail and its numbers show the 3.
    X, y, _ = _mlp_case("regressor", n_outputs=3)
    loss_fn, grad_fn, params = ri.sklearn_mlp("regressor", alpha=0.0, n_outputs=3)
    text = _fails(gradcheck.check_gradient(loss_fn, grad_fn, params, X, y))
    pairs = [(a, b) for a, b in _entries(text) if abs(b) > 1e-3]
    assert pairs, text
    assert all(abs(a / b - 3.0) < 1e-4 for a, b in pairs), text
    # The same code with one output is right.
    loss_fn, grad_fn, params = ri.sklearn_mlp("regressor", alpha=0.0, n_outputs=1)
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, params, X, y[:, 0]))


# ---------------------------------------------------------------- PyTorch losses, wrapped by hand

B_T, D_T, C_T = 6, 3, 4
LABELS = np.array([0, 1, 2, 3, 1, 2])
CLASS_W = np.array([1.0, 2.0, 0.5, 3.0])


def _torch_case(name, reduction, hidden=5, seed=0, **opts):
    torch = _torch()
    if "weight" in opts:
        opts["weight"] = torch.tensor(opts["weight"], dtype=torch.float64)
    if "pos_weight" in opts:
        opts["pos_weight"] = torch.tensor(opts["pos_weight"], dtype=torch.float64)
    r = _rng(seed)
    x = r.normal(size=(B_T, D_T))
    if name in ("ce", "nll"):
        target = LABELS.copy()
    elif name == "bce":
        target = (r.random((B_T, C_T)) < 0.5).astype(float)
    elif name == "kl":
        target = r.dirichlet(np.ones(C_T), size=B_T)
    else:
        target = r.normal(size=(B_T, C_T))
    loss, prepare = ri.torch_loss(name, reduction, **opts)
    loss_fn, grad_fn, params = ri.torch_functions(ri.torch_model(D_T, C_T, hidden=hidden, seed=seed), loss,
                                                  prepare=prepare)
    return loss_fn, grad_fn, params, x, target


PLAIN = [("mse", {}), ("l1", {}), ("smoothl1", {}), ("huber", {"delta": 0.5}),
         ("bce", {"pos_weight": [1.0, 2.0, 3.0, 0.5]}), ("ce", {}), ("ce", {"label_smoothing": 0.1}),
         ("nll", {}), ("kl", {})]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides:UserWarning")
@pytest.mark.parametrize("name,opts", PLAIN, ids=[f"{n}{'-' + '-'.join(o) if o else ''}" for n, o in PLAIN])
def test_torch_loss_reduces_as_its_reduction_says(name, opts):
    for reduction, declared, other, looks in [("mean", "mean", "sum", '"mean"'), ("sum", "sum", "mean", '"sum"')]:
        loss_fn, grad_fn, params, x, t = _torch_case(name, reduction, hidden=0 if name == "l1" else 5, **opts)
        _holds(gradcheck.check_reduction(grad_fn, params, x, t, reduction=declared))
        text = _fails(gradcheck.check_reduction(grad_fn, params, x, t, reduction=other))
        assert f"looks like {looks}" in text, text
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, params, x, t))


@pytest.mark.parametrize("name", ["mse", "l1", "kl"])
def test_torch_elementwise_mean_divides_by_every_element(name):
    # 'mean' of MSELoss / L1Loss / KLDivLoss divides by B * C, not by B: against
    # the loss summed over classes and averaged over the batch (KL's definition,
    # 'batchmean'), the gradient is scaled by 1/C = 0.25.
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # KLDivLoss warns about 'mean'
        summed, _, params, x, t = _torch_case(name, "sum", hidden=0)
        _, grad_mean, _, _, _ = _torch_case(name, "mean", hidden=0)
        text = _fails(gradcheck.check_gradient(lambda p, a, b: summed(p, a, b) / len(a), grad_mean, params, x, t))
    assert re.search(r"scaled by 0\.25\b", text), text
    pairs = [(a, b) for a, b in _entries(text) if abs(b) > 1e-3]
    assert pairs and all(abs(a / b - 0.25) < 1e-6 for a, b in pairs), text
    if name == "kl":
        batchmean, _, _, _, _ = _torch_case(name, "batchmean", hidden=0)
        _, grad_bm, _, _, _ = _torch_case(name, "batchmean", hidden=0)
        _holds(gradcheck.check_gradient(batchmean, grad_bm, params, x, t))


def test_torch_cross_entropy_class_weights_mean_is_a_weighted_mean():
    _, grad_fn, params, x, t = _torch_case("ce", "mean", weight=CLASS_W)
    w = CLASS_W[t]
    _holds(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean", weights=w))
    text = _fails(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean"))
    _no_interaction_blamed(text)
    for a in w / w.sum():  # 44 parameters, 6 examples: the weights can be fitted
        assert f"{a:.4g}" in text, (a, text)


def test_torch_cross_entropy_class_weights_with_label_smoothing_is_a_weighted_mean():
    _, grad_fn, params, x, t = _torch_case("ce", "mean", weight=CLASS_W, label_smoothing=0.2)
    _holds(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean", weights=CLASS_W[t]))


def test_torch_cross_entropy_ignore_index_divides_by_the_targets_kept():
    _, grad_fn, params, x, t = _torch_case("ce", "mean", ignore_index=2)
    kept = (t != 2).astype(float)  # 4 of 6 targets kept
    _holds(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean", weights=kept))
    text = _fails(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"\b4\b|0\.25\b", text), text  # the divisor, or the fitted 1/4
    _, grad_sum, params, x, t = _torch_case("ce", "sum", ignore_index=2)
    _holds(gradcheck.check_reduction(grad_sum, params, x, t, reduction="sum", weights=kept))


# ---------------------------------------------------------------- a course's two-layer network

def _tutorial_case(seed=1, B=8):
    r = _rng(seed)
    return r.normal(size=(B, 3)), r.integers(0, 3, B), ri.tutorial_params(r)


def test_tutorial_net_correct():
    X, y, p = _tutorial_case()
    loss_fn, grad_fn = ri.tutorial_net()
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, p, X, y))
    _holds(gradcheck.check_reduction(grad_fn, p, X, y, reduction="mean"))  # mean + fixed 0.5 reg W^2
    text = _fails(gradcheck.check_reduction(grad_fn, p, X, y, reduction="sum"))
    assert 'looks like "mean"' in text, text


def test_tutorial_net_half_reg_gradient_names_the_weights_only():
    X, y, p = _tutorial_case()
    loss_fn, grad_fn = ri.tutorial_net("half_reg")
    text = _fails(gradcheck.check_gradient(loss_fn, grad_fn, p, X, y))
    assert "params['W1']" in text and "params['b1']" not in text and "params['b2']" not in text, text
    assert re.search(r"in 30 of 38 entries", text), text  # every entry of W1 and W2, no bias
    # The batch reduction of this code is still right: a mean with a fixed penalty.
    _holds(gradcheck.check_reduction(grad_fn, p, X, y, reduction="mean"))


def test_tutorial_net_forgot_to_divide_by_n():
    X, y, p = _tutorial_case()
    loss_fn, grad_fn = ri.tutorial_net("no_divide")
    text = _fails(gradcheck.check_gradient(loss_fn, grad_fn, p, X, y))
    assert re.search(r"params\['b1'\] looks scaled by 8\b", text), text  # b has no penalty: exactly N


def test_tutorial_net_averaged_twice():
    X, y, p = _tutorial_case()
    loss_fn, grad_fn = ri.tutorial_net("divide_twice")
    text = _fails(gradcheck.check_gradient(loss_fn, grad_fn, p, X, y))
    assert re.search(r"params\['b1'\] looks scaled by 0\.125\b", text), text


# ---------------------------------------------------------------- gradient-accumulation loops

def _accumulation_case(B, seed=0, d=16):
    # d >= B: the per-example gradients are independent, so per-example
    # weights can be fitted from them.
    r = _rng(seed)
    return r.normal(size=(B, d)) / 2, r.normal(size=B), r.normal(size=d) / 2


@pytest.mark.parametrize("B,micro", [(15, 5), (14, 4), (7, 2), (12, 5)])
def test_accumulation_right_loop_is_a_mean(B, micro):
    x, y, w = _accumulation_case(B)
    grad_fn = ri.accumulation("right", micro)
    _holds(gradcheck.check_reduction(grad_fn, w, x, y, reduction="mean"))
    _holds(gradcheck.check_gradient(ri.accumulation_loss, grad_fn, w, x, y))


@pytest.mark.parametrize("B,micro", [(14, 4), (7, 2), (12, 5), (6, 4), (6, 3)])
@pytest.mark.parametrize("loop", ["mean_of_means", "mean_over_steps"])
def test_accumulation_mean_of_micro_batch_means_is_caught(loop, B, micro):
    # Right only when every micro-batch has the same size.
    x, y, w = _accumulation_case(B)
    text = _fails(gradcheck.check_reduction(ri.accumulation(loop, micro), w, x, y, reduction="mean"))
    _no_interaction_blamed(text)


@pytest.mark.parametrize("B,micro", [(15, 5), (14, 4)])
def test_accumulation_fixed_step_count_is_a_fixed_divisor(B, micro):
    # loss.mean() / n_steps with n_steps fixed at 3 (a loop written for batches
    # of 15): a mean at B = 15 only, a fixed divisor of 15 for any other B.
    x, y, w = _accumulation_case(B)
    text = _fails(gradcheck.check_reduction(ri.accumulation("fixed_steps", micro), w, x, y, reduction="mean"))
    _no_interaction_blamed(text)


def test_accumulation_sum_of_means_is_a_fixed_divisor():
    x, y, w = _accumulation_case(15)
    text = _fails(gradcheck.check_reduction(ri.accumulation("sum_of_means", 5), w, x, y, reduction="mean"))
    assert re.search(r"fixed .*\b5\b", text), text


# ---------------------------------------------------------------- token-masked batches

def _token_case(seed=0, B=6, T=5, d=3):
    r = _rng(seed)
    lengths = np.array([1, 5, 3, 3, 4, 2])[:B]
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(float)
    return r.normal(size=(B, T, d)), r.normal(size=(B, T)), mask, r.normal(size=d)


def test_token_mean_over_the_global_count_is_a_weighted_mean():
    x, y, m, w = _token_case()
    grad_fn = ri.token_loss("global")
    _holds(gradcheck.check_reduction(grad_fn, w, x, y, m, reduction="mean", weights=m.sum(axis=1)))
    _fails(gradcheck.check_reduction(grad_fn, w, x, y, m, reduction="mean"))


@pytest.mark.parametrize("loop", ["micro_token_means"])
def test_token_means_averaged_are_caught(loop):
    x, y, m, w = _token_case()
    text = _fails(gradcheck.check_reduction(ri.token_loss(loop, micro=2), w, x, y, m, reduction="mean",
                                            weights=m.sum(axis=1)))
    _no_interaction_blamed(text)


# ---------------------------------------------------------------- accumulation loops under check_accumulation

def _check_accumulation():
    fn = getattr(gradcheck, "check_accumulation", None)
    if fn is None:
        fn = pytest.importorskip("gradcheck.accumulation").check_accumulation
    return fn


@pytest.mark.parametrize("B", [15, 14, 7])
def test_check_accumulation_right_loop_holds(B):
    x, y, w = _accumulation_case(B)
    _holds(_check_accumulation()(ri.accumulate("right"), ri.accumulation("right", B), w, x, y, reduction="mean"))


@pytest.mark.parametrize("B", [15, 14, 7])
def test_check_accumulation_mean_of_means_is_named(B):
    x, y, w = _accumulation_case(B)
    text = _fails(_check_accumulation()(ri.accumulate("mean_of_means"), ri.accumulation("right", B), w, x, y,
                                        reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"mean of (per-)?micro-batch means|equal micro-batches", text), text


@pytest.mark.parametrize("B", [15, 14])
def test_check_accumulation_sum_of_means_is_named(B):
    x, y, w = _accumulation_case(B)
    text = _fails(_check_accumulation()(ri.accumulate("sum_of_means"), ri.accumulation("right", B), w, x, y,
                                        reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"sum of (per-)?micro-batch means|sum of means", text), text


def test_check_accumulation_fixed_step_count_fails():
    # loss.mean() / 3 whatever the number of micro-batches.
    x, y, w = _accumulation_case(15)
    text = _fails(_check_accumulation()(ri.accumulate("fixed_steps"), ri.accumulation("right", 15), w, x, y,
                                        reduction="mean"))
    _no_interaction_blamed(text)
    assert "0.3333" in text, text  # the share 1/n_steps each micro-batch gets


def test_check_accumulation_token_counts():
    x, y, m, w = _token_case()
    counts = m.sum(axis=1)
    grad_fn = ri.token_loss("global")
    _holds(_check_accumulation()(ri.accumulate_tokens("global"), grad_fn, w, x, y, m, reduction="mean",
                                 weights=counts))
    text = _fails(_check_accumulation()(ri.accumulate_tokens("micro_token_means"), grad_fn, w, x, y, m,
                                        reduction="mean", weights=counts))
    _no_interaction_blamed(text)


# ---------------------------------------------------------------- adversarial numerics on correct code

@pytest.mark.parametrize("w0,mode", [([0.3, -1.2, 2.0], "full"), ([0.0, 0.0], "full")])
def test_cancellation_is_no_false_alarm(w0, mode):
    # (1e8 + sum sin(w)) - 1e8: the loss carries the rounding of 1e8.
    loss_fn, grad_fn = ri.cancellation()
    w = np.array(w0)
    _not_failed(gradcheck.check_gradient(lambda p: loss_fn(p, np.eye(p.size)), lambda p: grad_fn(p, np.eye(p.size)),
                                         w, mode=mode), "precision-limited")


@pytest.mark.parametrize("seed", range(4))
def test_float32_params_with_a_float64_loss_is_no_false_alarm(seed):
    r = _rng(seed)
    x, w = r.normal(size=(20, 8)), r.normal(size=8).astype(np.float32)
    loss_fn, grad_fn = ri.float32_params()
    _not_failed(gradcheck.check_gradient(loss_fn, grad_fn, w, x, mode="full"), "precision-limited")


def test_l1_with_a_zero_residual_gradient_check_says_not_differentiable():
    x, y, w = _ridge_case(seed=0)
    y[2] = x[2] @ w  # residual exactly 0
    loss_fn, grad_fn = ri.l1_mean()
    v = gradcheck.check_gradient(loss_fn, grad_fn, w, x, y)
    assert v.undetermined and v.reason == "not differentiable here", str(v)


# =====================================================================================================
# The tests below assert the behaviour DESIGN §2 and §4 ask for where the first checkers went wrong
# (issue 5): the wrong words, false alarms and silent passes each was written against.
# =====================================================================================================


@pytest.mark.parametrize("kind", ["squared", "binomial"])
def test_sklearn_sample_weight_declared_plain_mean_names_the_weights(kind):
    # Declared a plain mean, the sample weights are the cause to name, even with
    # fewer parameters (4) than examples (7), where they cannot be fitted one by
    # one (duplication and permutation hold, split fails). Today: "the examples
    # interact".
    X, y, sw, coef = _linear_case(kind)
    _, grad_fn = ri.sklearn_linear(kind, l2=0.3)
    text = _fails(gradcheck.check_reduction(grad_fn, coef, X, y, sw, reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"weight", text, re.I), text


def test_sklearn_logistic_regression_penalty_is_divided_by_b():
    # l2_reg_strength = 1 / (C * n_samples): (C sum_i l_i + ||w||^2 / 2) / (C B).
    X, y, w = _logistic_case()
    _, grad_fn = ri.sklearn_logistic(C=0.5)
    text = _fails(gradcheck.check_reduction(grad_fn, w, X, y, reduction="mean"))
    _says_penalty_moves_with_b(text)
    words = gradcheck.infer_reduction(grad_fn, w, X, y)
    _says_penalty_moves_with_b(words)


def test_sklearn_ridge_is_a_sum_with_a_fixed_penalty():
    # ||Xw - y||^2 / 2 + alpha ||w||^2 / 2 declared "sum": DESIGN §2, "a correct
    # sum + lambda R declared "sum" holds".
    _sklearn()
    X, y, w = _ridge_case()
    _, grad_fn = ri.sklearn_ridge(alpha=0.7)
    _holds(gradcheck.check_reduction(grad_fn, w, X, y, reduction="sum"))


def test_sklearn_ridge_declared_mean_is_told_it_is_a_sum():
    _sklearn()
    X, y, w = _ridge_case()
    _, grad_fn = ri.sklearn_ridge(alpha=0.7)
    text = _fails(gradcheck.check_reduction(grad_fn, w, X, y, reduction="mean"))
    _no_interaction_blamed(text)
    assert '"sum"' in text, text


@pytest.mark.parametrize("kind", ["regressor", "classifier"])
@pytest.mark.parametrize("alpha", [1e-4, 0.5])
def test_sklearn_mlp_penalty_is_divided_by_b(kind, alpha):
    # _backprop: (sum_i l_i + alpha/2 sum ||W||^2) / n_samples. At the default
    # alpha = 1e-4 the penalty is small, but its weight moves with B all the
    # same; DESIGN §2 asks the checker to say so, not "the examples interact".
    X, y, _ = _mlp_case(kind)
    _, grad_fn, params = ri.sklearn_mlp(kind, alpha=alpha)
    text = _fails(gradcheck.check_reduction(grad_fn, params, X, y, reduction="mean"))
    _says_penalty_moves_with_b(text)


def test_sklearn_mlp_sample_weight_penalty_is_divided_by_the_total_weight():
    # With sample_weight, _backprop divides the penalty by sum(sample_weight).
    X, y, sw = _mlp_case("regressor")
    _, grad_fn, params = ri.sklearn_mlp("regressor", alpha=0.5)
    text = _fails(gradcheck.check_reduction(grad_fn, params, X, y, sw, reduction="mean", weights=sw))
    _says_penalty_moves_with_b(text)


def test_torch_cross_entropy_class_weights_sum_is_a_weighted_sum():
    # reduction='sum' with weight=: sum_i w[y_i] l_i, a weighted sum as DESIGN §2
    # defines it (reduction="sum", weights=).
    _, grad_fn, params, x, t = _torch_case("ce", "sum", weight=CLASS_W)
    _holds(gradcheck.check_reduction(grad_fn, params, x, t, reduction="sum", weights=CLASS_W[t]))
    text = _fails(gradcheck.check_reduction(grad_fn, params, x, t, reduction="mean", weights=CLASS_W[t]))
    assert '"sum"' in text, text


def test_tutorial_net_forgot_to_divide_by_n_reduction():
    # The data term is a sum, the penalty keeps its weight: sum + fixed penalty,
    # not interacting examples.
    X, y, p = _tutorial_case()
    _, grad_fn = ri.tutorial_net("no_divide")
    text = _fails(gradcheck.check_reduction(grad_fn, p, X, y, reduction="mean"))
    _no_interaction_blamed(text)
    assert '"sum"' in text, text


def test_tutorial_net_averaged_twice_reduction():
    X, y, p = _tutorial_case()
    _, grad_fn = ri.tutorial_net("divide_twice")
    text = _fails(gradcheck.check_reduction(grad_fn, p, X, y, reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"twice|B\^?2|B²|B \* B|B×B", text), text


@pytest.mark.parametrize("B,micro", [(15, 5), (12, 4)])
@pytest.mark.parametrize("loop", ["mean_of_means", "mean_over_steps"])
def test_accumulation_mean_of_means_caught_when_micro_divides_b(loop, B, micro):
    # This batch is cut evenly, but the loop is wrong for other batch sizes,
    # and issue 5 item 5 asks the checker's cuts to find that, for every
    # B >= 3 and micro-batch size 2 .. B - 1. Today: holds.
    x, y, w = _accumulation_case(B)
    text = _fails(gradcheck.check_reduction(ri.accumulation(loop, micro), w, x, y, reduction="mean"))
    _no_interaction_blamed(text)


@pytest.mark.parametrize("B,micro", [(14, 4), (12, 5)])
def test_accumulation_short_last_micro_batch_weights_are_shown(B, micro):
    # micro-batches of 4, 4, 4, 2: the last two examples weigh 1/8, the others 1/16.
    x, y, w = _accumulation_case(B)
    text = _fails(gradcheck.check_reduction(ri.accumulation("mean_of_means", micro), w, x, y, reduction="mean"))
    steps = -(-B // micro)
    short = B - micro * (B // micro)
    for a in (1 / (steps * micro), 1 / (steps * short)):
        assert f"{a:.4g}" in text, (a, text)


def test_token_global_mean_declared_plain_mean_names_the_weights():
    # 3 parameters, 6 sequences: the weights cannot be fitted one by one, but
    # duplication and permutation hold and split fails: unequal weights.
    x, y, m, w = _token_case()
    text = _fails(gradcheck.check_reduction(ri.token_loss("global"), w, x, y, m, reduction="mean"))
    _no_interaction_blamed(text)
    assert re.search(r"weight", text, re.I), text


def test_token_per_sequence_means_are_named():
    x, y, m, w = _token_case()
    text = _fails(gradcheck.check_reduction(ri.token_loss("per_sequence"), w, x, y, m, reduction="mean",
                                            weights=m.sum(axis=1)))
    _no_interaction_blamed(text)
    assert re.search(r"equal|weight", text, re.I), text


@pytest.mark.parametrize("w0,mode", [([1.6], "full"), ([0.0, 0.0], "projection")])
def test_cancellation_is_no_false_alarm_at_the_reported_points(w0, mode):
    # Issue 5's points: today "fails" (the noise ladder never leaves one rounding cell of 1e8).
    test_cancellation_is_no_false_alarm(w0, mode)


@pytest.mark.parametrize("seed", [7, 13])
def test_float32_params_with_a_float64_loss_is_no_false_alarm_at_the_reported_points(seed):
    # Today 10 of seeds 0..39 fail, e.g. seed 7: params[1] grad_fn 0.131057978,
    # finite differences 0.131058791, error 8.1e-07 > tolerance 5.2e-07.
    test_float32_params_with_a_float64_loss_is_no_false_alarm(seed)


def test_sum_plus_fixed_penalty_declared_sum_holds():
    x, y, w = _ridge_case(seed=3)
    loss_fn, grad_fn = ri.ridge_sum()
    _holds(gradcheck.check_gradient(loss_fn, grad_fn, w, x, y))
    _holds(gradcheck.check_reduction(grad_fn, w, x, y, reduction="sum"))
    assert gradcheck.infer_reduction(grad_fn, w, x, y) == "sum"


def test_l1_with_a_zero_residual_is_a_kink_not_a_wrong_reduction():
    x, y, w = _ridge_case(seed=0)
    y[2] = x[2] @ w  # residual exactly 0
    loss_fn, grad_fn = ri.l1_mean()
    v = gradcheck.check_gradient(loss_fn, grad_fn, w, x, y)
    assert v.undetermined and v.reason == "not differentiable here", str(v)
    _not_failed(gradcheck.check_reduction(grad_fn, w, x, y, reduction="mean"), "not differentiable here")
