"""Family B: the Jensen gap. The mean of per-example gradients is not the
gradient at the mean example once anything between the data and the loss
bends; it vanishes exactly where the derivative is affine in what varies."""

from __future__ import annotations

import warnings
from typing import Any, Callable

import autograd
import autograd.numpy as anp
import numpy as np
from hypothesis import strategies as st

from .. import numerics as nm
from .. import strategies as gst
from ..gradient import check_gradient
from ..nets import ACTIVATIONS, AFFINE_DERIVATIVE, KINKED, Network
from ._common import (_wide, Case, both, by_differences, by_rounding, flat, grad, per_example, problems,
                      small_problems, verdict)
from .registry import WITNESSED, Claim, Property, register

TRANSFERS_BENT = ("tanh", "sigmoid", "softplus", "exp", "gelu", "relu", "sin")
# How far a batch value of a kinked transfer keeps from the kink: far beyond
# the ladder of finite differences (4 h = 2.4e-5 in float64).
KINK_CLEARANCE = 1e-3


# B1 -------------------------------------------------------------------------------

def _points(name: str) -> st.SearchStrategy[Case]:
    values = st.floats(-3, 3, allow_nan=False, allow_subnormal=False)
    if name in KINKED:
        # At its kink f' is not defined and finite differences cannot judge
        # (undetermined): Hypothesis draws 0 often, so with few cases nearly
        # every batch held one. The batches that show a gap straddle the kink.
        values = values.filter(lambda v: abs(v) >= KINK_CLEARANCE)

    @st.composite
    def build(draw: Callable) -> Case:
        y = np.array(draw(st.lists(values, min_size=2, max_size=8)))
        return Case(extra={"f": name, "y": y}, seed=draw(st.integers(0, 2**16)))
    return build()


def _transfer_gap(case: Case) -> Any:
    name, y = case.extra["f"], case.extra["y"]
    f = ACTIVATIONS[name]
    fprime = autograd.elementwise_grad(f)
    ybar = np.array([np.mean(y)])
    a, b = float(np.mean(fprime(y))), float(fprime(ybar)[0])
    with warnings.catch_warnings():  # f'' is constant (independent of y) for affine f'
        warnings.simplefilter("ignore", UserWarning)
        curvature = abs(float(autograd.elementwise_grad(fprime)(ybar)[0]))
    # f' is accurate to C_GRAD ulps at each point; the mean of y is rounded,
    # which moves f'(ȳ) by about |f''(ȳ)| times that rounding.
    size = float(np.mean(np.abs(fprime(y))) + abs(b))
    shift = curvature * float(np.mean(np.abs(y)))
    tol = float(nm.sum_rounding(size + shift, np.float64, len(y)))
    law = verdict("B1", "transfer level", abs(a - b), tol,
                  f"{name}: mean_i f'(y_i) = {a:.6g}, f'(mean y) = {b:.6g}")
    refs = [check_gradient(lambda v: anp.sum(f(v)), fprime, y, mode="full"),
            check_gradient(lambda v: anp.sum(f(v)), fprime, ybar, mode="full")]
    return both(law, refs, f"{name}: mean_i f'(y_i) = f'(mean y) = {a:.6g}")


register(Claim(
    "B1", "Transfer level", WITNESSED,
    "mean_i f'(y_i) = f'(mean_i y_i) for every batch if and only if f' is affine (f affine or "
    "quadratic); for tanh, sigmoid, softplus, exp, GELU, ReLU and sin some batch has a gap far "
    "above rounding.",
    "Holds for identity and quadratic transfers; fails for any transfer whose derivative bends.",
    "Averaging commutes with an affine map and with nothing else (Jensen): if f' is affine, "
    "mean f'(y_i) = f'(mean y_i) term by term; if f'' is not constant, two points where it "
    "differs give a gap.",
    holds_for=tuple(Property(f"{name}: no gap on any batch", lambda n=name: _points(n), _transfer_gap)
                    for name in sorted(AFFINE_DERIVATIVE)),
    fails_for=tuple(Property(f"{name}: a batch with a gap", lambda n=name: _points(n), _transfer_gap)
                    for name in TRANSFERS_BENT),
))


# B2 -------------------------------------------------------------------------------

def _shared_input() -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(problems(min_size=2, losses=["squared"]))
        case.x = np.repeat(case.x[:1], len(case.x), axis=0)
        return case
    return build()


def _bent_networks() -> st.SearchStrategy[Case]:
    names = [a for a in TRANSFERS_BENT if a != "exp"]  # exp is for scalar transfers only
    return small_problems(min_size=2, min_depth=2, losses=["squared"],
                          activations=gst.activations(names=names))


def _mean_example_gap(case: Case) -> Any:
    g = per_example(case)
    mean_of_grads = np.mean(g, axis=0)
    xbar, ybar = np.mean(case.x, axis=0, keepdims=True), np.mean(case.y, axis=0, keepdims=True)
    at_mean = grad(case, xbar, ybar, reduction="sum")
    # The mean example is rounded: moving ybar by eps|ybar| moves the gradient
    # by the output Jacobian times that, bounded through the gradient of the outputs.
    jac = flat(autograd.grad(lambda p: anp.sum(case.net.outputs(p, xbar)))(case.params))
    terms = np.mean(np.abs(g), axis=0) + np.abs(at_mean) + 2 * np.abs(jac) * float(np.max(np.abs(ybar)))
    law = by_rounding("B2", "network level", case.params, mean_of_grads, at_mean, terms, len(g))
    if not law.holds:
        law = law.with_(message=f"mean of per-example gradients and gradient at the mean example "
                                f"differ by {law.error:.3g} (largest entry)")
    refs = [by_differences("B2", lambda p: case.net.total_loss(p, case.x, case.y), case.params,
                           mean_of_grads, case.seed),
            by_differences("B2", lambda p: case.net.total_loss(p, xbar, ybar), case.params,
                           at_mean, case.seed)]
    return both(law, refs, "mean of per-example gradients = gradient at the mean example")


register(Claim(
    "B2", "Network level", WITNESSED,
    "The mean of per-example gradients differs from the gradient at the mean example for a "
    "network with a nonlinear layer; they are equal when the per-example gradient is affine in "
    "the data that varies (squared error with a shared input and varying targets).",
    "Fails with a nonlinear hidden layer and varying inputs; holds for squared error when only "
    "the targets vary.",
    "∇l(θ; x, y) for squared error is 2 J(θ, x)ᵀ (f(θ, x) − y): affine in y, so averaging over y "
    "commutes with it; in x it is not affine once f bends, and Jensen's gap appears.",
    holds_for=(Property("squared error, shared input, varying targets", _shared_input, _mean_example_gap),),
    fails_for=(Property("a nonlinear network and varying inputs", _bent_networks, _mean_example_gap),),
))


# B3 -------------------------------------------------------------------------------

SEED_CASE = Case(Network((1, 1), activation="identity", loss="squared"),
                 [{"W": np.array([[3.0]]), "b": np.array([0.0])}],
                 np.array([[1.0], [1.0]]), np.array([[2.0], [4.0]]))


def _output_jacobian_vjp(case: Case, x: np.ndarray, cotangent: np.ndarray) -> np.ndarray:
    """Backpropagate an output signal through the network at input x."""
    cot = _wide(cotangent)
    return flat(autograd.grad(lambda p: anp.sum(case.net.outputs(p, _wide(x)) * cot))(_wide(case.params)))


def _average_loss_signal(case: Case) -> Any:
    """Backpropagate the batch-average loss value as the output signal, at the mean input."""
    xbar = np.mean(case.x, axis=0, keepdims=True)
    mse = float(case.net.total_loss(case.params, case.x, case.y))
    signal = _output_jacobian_vjp(case, xbar, np.full((1, case.net.sizes[-1]), mse))
    true = grad(case, reduction="mean")
    terms = np.abs(signal) + np.mean(np.abs(per_example(case)), axis=0)
    law = by_rounding("B3", "average-then-backprop", case.params, signal, true, terms, len(case.x))
    law = law.with_(message=f"the mean squared error is {mse:.6g} and ∇L_mean = {_short(true)}, but "
                            f"backpropagating the average loss gives {_short(signal)}")
    fd = by_differences("B3", lambda p: case.net.total_loss(p, case.x, case.y), case.params, true, 0)
    return both(law, [fd], law.message)


def _average_error_signal(case: Case) -> Any:
    """Backpropagate the mean output error 2 mean_i (f(x_i) - y_i) through the mean input."""
    xbar = np.mean(case.x, axis=0, keepdims=True)
    err = 2 * np.mean(case.net.outputs(case.params, case.x) - case.y, axis=0, keepdims=True)
    signal = _output_jacobian_vjp(case, xbar, err)
    true = grad(case, reduction="mean")
    jac = _output_jacobian_vjp(case, xbar, np.ones_like(err))
    g = per_example(case)
    terms = np.abs(signal) + np.mean(np.abs(g), axis=0) + np.abs(jac) * float(np.max(np.abs(err)))
    law = by_rounding("B3", "average-then-backprop", case.params, signal, true, terms, len(case.x))
    if not law.holds:
        law = law.with_(message=f"backpropagating the average output error at the mean input "
                                f"gives {_short(signal)}, but ∇L_mean = {_short(true)}")
    fd = by_differences("B3", lambda p: case.net.total_loss(p, case.x, case.y), case.params, true,
                        case.seed)
    return both(law, [fd], "the average error, backpropagated at the shared input, gives ∇L_mean")


def _short(v: np.ndarray) -> str:
    return np.array2string(v[:6], precision=4, separator=", ") + (" …" if v.size > 6 else "")


def _linear_shared() -> st.SearchStrategy[Case]:
    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(problems(min_size=2, max_depth=1, losses=["squared"],
                             activations=gst.activations(names=["identity"])))
        case.x = np.repeat(case.x[:1], len(case.x), axis=0)
        return case
    return build()


register(Claim(
    "B3", "Average-then-backprop", WITNESSED,
    "Backpropagating the batch-average loss value, or the average output error, does not give "
    "∇L_mean. With inputs (1, 1), targets (2, 4) and prediction 3, the mean squared error is 1 "
    "while ∇L_mean = 0: a step along the averaged loss would move a converged model away.",
    "Fails in general; the average error is right only for a model affine in θ whose input does "
    "not vary over the batch (then every example shares one Jacobian).",
    "∇L_mean = mean_i J_iᵀ e_i. Pulling the mean inside needs J_i to be one matrix J; and the "
    "loss value is not an error signal at all: at a minimum it is positive while the gradient is 0.",
    holds_for=(Property("a linear model with a shared input", _linear_shared, _average_error_signal),),
    fails_for=(Property("the seed's case: inputs (1, 1), targets (2, 4), prediction 3",
                        lambda: st.just(SEED_CASE), _average_loss_signal),
               Property("average output error through a nonlinear network",
                        _bent_networks, _average_error_signal)),
))
