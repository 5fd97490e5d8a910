"""Misuse: every wrong call raises GradcheckUsageError naming the argument and the fix.

One table drives the main test: a checker, its arguments, the argument the
message must name and a phrase of the fix it must give. The other tests hold
the line between misuse and findings: a user's own exception passes through
unchanged, NaN from the function under test is a verdict, and no checker
touches the arrays it is given.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

import gradcheck
from gradcheck.errors import GradcheckUsageError

NAN, INF = float("nan"), float("inf")

# A least-squares problem on a bare array, and one on a tree {"W": (2, 2), "b": (2,)}.
X = np.array([[1.0, 2.0], [3.0, -1.0], [0.5, 0.5]])
Y = np.array([1.0, 0.0, 2.0])
W = np.array([0.5, -1.0])
P = {"W": np.array([[0.5, -1.0], [0.25, 2.0]]), "b": np.array([0.1, -0.2])}


def loss(w, x, y):
    return float(np.mean((x @ w - y) ** 2))


def grad(w, x, y):
    return 2 * x.T @ (x @ w - y) / len(x)


def tloss(p, x, y):
    return float(np.mean((x @ p["W"] + p["b"] - y[:, None]) ** 2))


def tgrad(p, x, y):
    r = 2 * (x @ p["W"] + p["b"] - y[:, None]) / (2 * len(x))  # the mean over B x 2 outputs
    return {"W": x.T @ r, "b": r.sum(axis=0)}


def returning(value):
    """A loss or gradient function that returns ``value`` whatever it is given."""
    return lambda *args: value


class Unreadable:
    """Like a tensor that requires grad: numpy cannot read it."""

    def __array__(self, *args, **kwargs):
        raise RuntimeError("Can't call numpy() on Tensor that requires grad")


def with_leaf(tree, key, value):
    out = dict(tree)
    out[key] = value
    return out


@dataclass
class Case:
    checker: str  # a public name of gradcheck
    args: tuple
    kwargs: dict = field(default_factory=dict)
    name: str = ""  # the argument the message must name
    phrase: str = ""  # a phrase of the fix the message must give


def G(*args, name, phrase, **kwargs):
    return Case("check_gradient", args, kwargs, name, phrase)


def AG(*args, name, phrase, **kwargs):
    return Case("assert_gradient", args, kwargs, name, phrase)


def R(*args, name, phrase, **kwargs):
    return Case("check_reduction", args, kwargs, name, phrase)


def AR(*args, name, phrase, **kwargs):
    return Case("assert_reduction", args, kwargs, name, phrase)


def I(*args, name, phrase, **kwargs):  # noqa: E743 - reads as the checker's initial
    return Case("infer_reduction", args, kwargs, name, phrase)


ONE_NUMBER = "must return one real number"
PER_EXAMPLE = "reduce it with .mean() or .sum()"

LOSS_VALUES = {
    "per-example vector": G(lambda w, x, y: (x @ w - y) ** 2, grad, W, X, Y, name="loss_fn", phrase=PER_EXAMPLE),
    "per-example vector (assert)": AG(lambda w, x, y: (x @ w - y) ** 2, grad, W, X, Y,
                                      name="loss_fn", phrase=PER_EXAMPLE),
    "per-example vector (tree)": G(lambda p, x, y: np.sum((x @ p["W"] - y[:, None]) ** 2, axis=1), tgrad,
                                   P, X, Y, name="loss_fn", phrase=PER_EXAMPLE),
    "None": G(returning(None), grad, W, X, Y, name="loss_fn returned None", phrase=ONE_NUMBER),
    "None (assert)": AG(returning(None), grad, W, X, Y, name="loss_fn returned None", phrase=ONE_NUMBER),
    "string": G(returning("1.5"), grad, W, X, Y, name="loss_fn returned '1.5'", phrase=ONE_NUMBER),
    "complex": G(returning(1.5 + 2j), grad, W, X, Y, name="loss_fn", phrase="real part"),
    "numpy complex": G(returning(np.complex64(1.5)), grad, W, X, Y, name="loss_fn", phrase="real part"),
    "list": G(lambda w, x, y: list((x @ w - y) ** 2), grad, W, X, Y, name="loss_fn returned a list",
              phrase=PER_EXAMPLE),
    "list of one": G(returning([1.5]), grad, W, X, Y, name="loss_fn returned a list", phrase=ONE_NUMBER),
    "tuple (loss, grad)": G(lambda w, x, y: (loss(w, x, y), grad(w, x, y)), grad, W, X, Y,
                            name="loss_fn returned a tuple", phrase="return the loss alone"),
    "unreadable": G(returning(Unreadable()), grad, W, X, Y, name="loss_fn returned a Unreadable",
                    phrase="loss.item()"),
    "dict": G(returning({"loss": 1.5}), grad, W, X, Y, name="loss_fn returned a dict", phrase=ONE_NUMBER),
    "column": G(lambda w, x, y: ((x @ w - y) ** 2)[:, None], grad, W, X, Y,
                name="loss_fn returned an array of shape (3, 1)", phrase=ONE_NUMBER),
    "bool": G(returning(True), grad, W, X, Y, name="loss_fn", phrase=ONE_NUMBER),
    "string array": G(returning(np.array("1.5")), grad, W, X, Y, name="loss_fn", phrase=ONE_NUMBER),
    "object": G(returning(object()), grad, W, X, Y, name="loss_fn", phrase=ONE_NUMBER),
    "the gradient": G(grad, grad, W, X, Y, name="loss_fn", phrase=PER_EXAMPLE),
}

PACKED = "separate arguments after params"
BATCH_PACKED = {
    "tuple": G(loss, grad, W, (X, Y), name="batch[0] is a tuple of 2 arrays", phrase=PACKED),
    "tuple (assert)": AG(loss, grad, W, (X, Y), name="batch[0] is a tuple", phrase=PACKED),
    "list": G(loss, grad, W, [X, Y], name="batch[0] is a list", phrase=PACKED),
    "same shapes": G(loss, grad, W, (X, X), name="batch[0] is a tuple", phrase=PACKED),
    "reduction": R(grad, W, (X, Y), name="batch[0] is a tuple", phrase=PACKED),
    "reduction (assert)": AR(grad, W, [X, Y], name="batch[0] is a list", phrase=PACKED),
    "infer": I(grad, W, (X, Y), name="batch[0] is a tuple", phrase=PACKED),
}

FLOATS = "must be real floating arrays"
PARAMS = {
    "empty list": G(loss, grad, [], X, Y, name="params=[]", phrase="pass the float arrays"),
    "empty dict": R(grad, {}, X, Y, name="params={}", phrase="pass the float arrays"),
    "empty dict (infer)": I(grad, {}, X, Y, name="params={}", phrase="pass the float arrays"),
    "empty (assert)": AG(loss, grad, ([], {}), X, Y, name="params=", phrase="pass the float arrays"),
    "zero-size array": R(grad, np.zeros(0), X, Y, name="params=float64 array of shape (0,)",
                         phrase="remove it"),
    "zero-size array (gradient)": G(loss, grad, np.zeros(0), X, Y, name="params=", phrase="remove it"),
    "zero-size leaf": G(tloss, tgrad, with_leaf(P, "b", np.zeros(0)), X, Y, name="at params['b']",
                        phrase="remove it from params"),
    "zero-size 2-d (infer)": I(grad, np.zeros((0, 2)), X, Y, name="at params", phrase="remove it"),
    "bool": G(loss, grad, np.array([True, False]), X, Y, name="params=bool", phrase=".astype(np.float64)"),
    "bool (infer)": I(grad, np.array([True, False]), X, Y, name="params=bool", phrase="keep it out of params"),
    "complex": G(loss, grad, W + 0j, X, Y, name="params=complex128", phrase="real and imaginary parts"),
    "object": R(grad, np.array([0.5, None]), X, Y, name="params=object", phrase=FLOATS),
    "strings": G(loss, grad, np.array(["0.5", "1"]), X, Y, name="params=<U3", phrase=FLOATS),
    "a string": R(grad, "0.5", X, Y, name="params=<U3", phrase=FLOATS),
    "integer": G(loss, grad, np.array([1, 2]), X, Y, name="params=int64", phrase=".astype(np.float64)"),
    "integer leaf": R(tgrad, with_leaf(P, "b", np.array([1, 2])), X, Y, name="at params['b']",
                      phrase=".astype(np.float64)"),
    "python int": G(loss, grad, 3, X, Y, name="params=int64", phrase=".astype(np.float64)"),
    "unsigned (assert)": AR(grad, W.astype(np.uint8), X, Y, name="params=uint8", phrase=".astype(np.float64)"),
    "None leaf": G(tloss, tgrad, with_leaf(P, "b", None), X, Y, name="params['b']=None", phrase="remove it"),
    "None leaf (reduction)": R(tgrad, [P["W"], None], X, Y, name="params[1]=None", phrase="remove it"),
    "None": G(loss, grad, None, X, Y, name="params=None", phrase="pass the parameters to check"),
    "unreadable leaf": G(tloss, tgrad, with_leaf(P, "b", Unreadable()), X, Y,
                         name="params['b']=Unreadable cannot be read as a numpy array", phrase=".detach().numpy()"),
}

CALLABLE = "is not callable"
FUNCTIONS = {
    "grad_fn a string": G(loss, "not a function", W, X, Y, name="grad_fn='not a function'", phrase=CALLABLE),
    "grad_fn the gradient value": G(loss, grad(W, X, Y), W, X, Y, name="grad_fn=float64 array",
                                    phrase="pass the function that computes it"),
    "loss_fn None": G(None, grad, W, X, Y, name="loss_fn=None", phrase=CALLABLE),
    "loss_fn a float": G(1.5, grad, W, X, Y, name="loss_fn=1.5", phrase="pass the function"),
    "loss_fn (assert)": AG("loss", grad, W, X, Y, name="loss_fn='loss'", phrase=CALLABLE),
    "grad_fn (reduction)": R(np.ones(2), W, X, Y, name="grad_fn=", phrase="pass the function"),
    "grad_fn (infer)": I(3.0, W, X, Y, name="grad_fn=3.0", phrase=CALLABLE),
    "grad_fn None (assert)": AR(None, W, X, Y, name="grad_fn=None", phrase=CALLABLE),
}

SIGNATURE = "pass the arguments it takes"
SIGNATURES = {
    "loss without the batch": G(lambda w: float(w @ w), grad, W, X, Y, name="loss_fn=", phrase=SIGNATURE),
    "grad without the batch": G(loss, lambda w: 2 * w, W, X, Y, name="grad_fn=", phrase=SIGNATURE),
    "grad missing y": R(lambda w, x: x.T @ (x @ w), W, X, Y, name="grad_fn=", phrase=SIGNATURE),
    "grad wants one more": G(loss, lambda w, x, y, m: grad(w, x, y), W, X, Y,
                             name="missing a required argument", phrase=SIGNATURE),
    "infer": I(lambda w: w, W, X, Y, name="grad_fn=", phrase=SIGNATURE),
    "assert": AR(lambda w, x, y, z: w, W, X, Y, name="grad_fn=", phrase=SIGNATURE),
}

OPTIONS = {
    "seed string": G(loss, grad, W, X, Y, seed="abc", name="seed='abc'", phrase="pass e.g. seed=0"),
    "seed negative": G(loss, grad, W, X, Y, seed=-1, name="seed=-1", phrase="pass e.g. seed=0"),
    "seed float": G(loss, grad, W, X, Y, seed=1.5, name="seed=1.5", phrase="pass e.g. seed=0"),
    "seed None": G(loss, grad, W, X, Y, seed=None, name="seed=None", phrase="pass e.g. seed=0"),
    "seed bool": G(loss, grad, W, X, Y, seed=True, name="seed=True", phrase="pass e.g. seed=0"),
    "seed (reduction)": R(grad, W, X, Y, seed="0", name="seed='0'", phrase="pass e.g. seed=0"),
    "seed negative (reduction)": R(grad, W, X, Y, seed=-3, name="seed=-3", phrase="pass e.g. seed=0"),
    "seed (infer)": I(grad, W, X, Y, seed=[1], name="seed=[1]", phrase="pass e.g. seed=0"),
    "seed (assert)": AR(grad, W, X, Y, seed=np.float64(2), name="seed=", phrase="pass e.g. seed=0"),
    "probes True": G(loss, grad, W, X, Y, probes=True, name="probes=True", phrase="pass a whole number"),
    "probes 0": G(loss, grad, W, X, Y, probes=0, name="probes=0", phrase="pass a whole number"),
    "probes float": G(loss, grad, W, X, Y, probes=2.5, name="probes=2.5", phrase="pass a whole number"),
    "probes string": G(loss, grad, W, X, Y, probes="4", name="probes='4'", phrase="pass a whole number"),
    "probes numpy float": AG(loss, grad, W, X, Y, probes=np.float64(4), name="probes=", phrase="pass a whole number"),
    "mode": G(loss, grad, W, X, Y, mode="fast", name="mode='fast'", phrase="'projection'"),
    "mode None": G(loss, grad, W, X, Y, mode=None, name="mode=None", phrase="'auto'"),
    "mode (assert)": AG(loss, grad, W, X, Y, mode="FULL", name="mode='FULL'", phrase="'full'"),
    "reduction": R(grad, W, X, Y, reduction="median", name="reduction='median'", phrase='"sum"'),
    "reduction None": R(grad, W, X, Y, reduction=None, name="reduction=None", phrase='"mean"'),
    "reduction (assert)": AR(grad, W, X, Y, reduction="avg", name="reduction='avg'", phrase='"mean"'),
}

CALLERS = "passed to the checker"
X_NAN = X.copy()
X_NAN[1, 0] = NAN
Y_INF = Y.copy()
Y_INF[2] = INF
NOT_FINITE = {
    "params nan in a tree": G(tloss, tgrad, with_leaf(P, "W", np.array([[0.5, NAN], [0.25, 2.0]])), X, Y,
                              name="params['W'][0, 1]=nan", phrase="pass finite params"),
    "params inf": G(loss, grad, np.array([INF, 1.0]), X, Y, name="params[0]=inf", phrase="pass finite params"),
    "params -inf (reduction)": R(grad, np.array([1.0, -INF]), X, Y, name="params[1]=-inf",
                                 phrase="pass finite params"),
    "params nan (infer)": I(tgrad, with_leaf(P, "b", np.array([NAN, NAN])), X, Y,
                            name="params['b'][0]=nan (and 1 more entries)", phrase=CALLERS),
    "params nan (assert)": AG(loss, grad, np.array([NAN, 1.0]), X, Y, name="params[0]=nan", phrase=CALLERS),
    "params 0-d nan leaf": G(lambda p, x, y: 0.0, lambda p, x, y: p, {"s": np.float64(NAN)}, X, Y,
                             name="params['s']=nan", phrase="pass finite params"),
    "params float32 inf": R(grad, np.array([1.0, INF], np.float32), X, Y, name="params[1]=inf",
                            phrase="pass finite params"),
    "batch nan": G(loss, grad, W, X_NAN, Y, name="batch[0][1, 0]=nan", phrase="drop or fill"),
    "batch inf (reduction)": R(grad, W, X, Y_INF, name="batch[1][2]=inf", phrase="drop or fill"),
    "batch nan (infer)": I(grad, W, X_NAN, Y, name="batch[0][1, 0]=nan", phrase=CALLERS),
    "batch nan (assert)": AR(grad, W, X, Y_INF, name="batch[1][2]=inf", phrase=CALLERS),
}

GRADIENTS = {
    "None": G(loss, returning(None), W, X, Y, name="grad_fn returned None", phrase="return the gradient"),
    "None (reduction)": R(returning(None), W, X, Y, name="grad_fn returned None", phrase="return statement"),
    "None (infer)": I(returning(None), W, X, Y, name="grad_fn returned None", phrase="return the gradient"),
    "None leaf": G(tloss, lambda p, x, y: with_leaf(tgrad(p, x, y), "b", None), P, X, Y,
                   name="grad_fn returned None for params['b']", phrase="return a float array of shape (2,)"),
    "string leaf": G(tloss, lambda p, x, y: with_leaf(tgrad(p, x, y), "b", "0.0"), P, X, Y,
                     name="grad_fn returned the string '0.0' for params['b']", phrase="shape (2,)"),
    "string array (assert)": AR(returning(np.array(["1", "2"])), W, X, Y, name="grad_fn returned dtype <U1",
                                phrase="real numbers"),
    "complex": G(loss, lambda w, x, y: grad(w, x, y) + 0j, W, X, Y, name="grad_fn returned dtype complex128",
                 phrase="real numbers"),
    "bool": R(returning(np.array([True, False])), W, X, Y, name="grad_fn returned dtype bool",
              phrase="real numbers"),
    "wrong shape": G(loss, returning(np.ones(3)), W, X, Y, name="grad_fn returned shape (3,) for params",
                     phrase="return a float array of shape (2,)"),
    "transposed": G(tloss, lambda p, x, y: with_leaf(tgrad(p, x, y), "W", np.ones((2, 3))),
                    with_leaf(P, "W", np.ones((3, 2))), np.ones((3, 3)), Y,
                    name="grad_fn returned shape (2, 3) for params['W']", phrase="transposed"),
    "scalar": G(loss, loss, W, X, Y, name="grad_fn returned shape ()", phrase="is this the loss"),
    "scalar (reduction)": R(loss, W, X, Y, name="grad_fn returned shape ()", phrase="is this the loss"),
    "per-example rows": R(lambda w, x, y: 2 * x * (x @ w - y)[:, None], W, X, Y, name="grad_fn returned shape (3, 2)",
                          phrase="reduce the per-example gradients over axis 0"),
    "missing leaf": G(tloss, lambda p, x, y: {"W": tgrad(p, x, y)["W"]}, P, X, Y,
                      name="missing params['b']", phrase="in the structure of params"),
    "list for dict": R(lambda p, x, y: list(tgrad(p, x, y).values()), P, X, Y,
                       name="grad_fn returned a gradient whose structure differs", phrase="structure of params"),
    "extra leaf (assert)": AG(tloss, lambda p, x, y: with_leaf(tgrad(p, x, y), "c", np.ones(1)), P, X, Y,
                              name="unexpected params['c']", phrase="one array per parameter"),
    "list for an array": R(lambda w, x, y: list(grad(w, x, y)), W, X, Y, name="unexpected params[0]",
                           phrase="return np.asarray(...)"),
    "unreadable": G(loss, returning(Unreadable()), W, X, Y, name="grad_fn returned a Unreadable for params",
                    phrase=".detach().numpy()"),
    "value and grad": G(loss, lambda w, x, y: (loss(w, x, y), grad(w, x, y)), W, X, Y,
                        name="grad_fn", phrase="(loss, gradient): return the gradient alone"),
}

SHARE = "one row per example"
BATCHES = {
    "axis 0 differs": G(loss, grad, W, X, Y[:2], name="batch[0]: 3, batch[1]: 2", phrase=SHARE),
    "axis 0 differs (reduction)": R(grad, W, X[:2], Y, name="batch[0]: 2, batch[1]: 3", phrase=SHARE),
    "axis 0 differs (infer)": I(grad, W, X, Y[:1], name="do not share axis 0", phrase=SHARE),
    "0-d array": I(grad, W, X, np.float64(1.0), name="batch[1]=", phrase="pass one value per example"),
    "0-d array (gradient)": G(loss, grad, W, X, np.array(2.0), name="batch[1]=", phrase="close over a constant"),
    "no batch (reduction)": R(grad, W, name="batch is empty", phrase="pass at least one array"),
    "no batch (infer)": I(grad, W, name="batch is empty", phrase="pass at least one array"),
    "no batch (assert)": AR(grad, W, name="batch is empty", phrase="after params"),
    "0 examples": G(loss, grad, W, X[:0], Y[:0], name="batch has 0 examples", phrase="pass at least one example"),
    "0 examples (reduction)": R(grad, W, X[:0], Y[:0], name="batch has 0 examples", phrase="at least one"),
    "1 example (reduction)": R(grad, W, X[:1], Y[:1], name="batch has 1 example", phrase="at least 2 examples"),
    "strings": G(loss, grad, W, X, np.array(["a", "b", "c"]), name="batch[1] has dtype <U1",
                 phrase="encode it as numbers"),
    "objects": R(grad, W, X, np.array([1.0, None, 2.0]), name="batch[1] has dtype object",
                 phrase="encode it as numbers"),
    "None": R(grad, W, X, None, name="batch[1]=None", phrase="each as its own argument"),
    "option by position": R(grad, W, X, Y, "sum", name="batch[2]='sum'", phrase="by keyword"),
    "dict": G(loss, grad, W, {"x": X, "y": Y}, name="batch[0] is a dict", phrase="each as its own argument"),
    "unreadable": R(grad, W, Unreadable(), Y, name="batch[0]=Unreadable cannot be read", phrase="pass numpy arrays"),
    "ragged list": G(loss, grad, W, X, [[1.0], [2.0, 3.0], [4.0]], name="batch[1]=list",
                     phrase="pass numpy arrays"),
}

NONNEGATIVE = "weights must be finite and >= 0"
WEIGHTS = {
    "wrong length": R(grad, W, X, Y, weights=np.ones(2), name="weights has shape (2,)",
                      phrase="one weight per example, shape (3,)"),
    "wrong length (infer)": I(grad, W, X, Y, weights=[1.0, 2.0, 3.0, 4.0], name="weights has shape (4,)",
                              phrase="shape (3,)"),
    "column": R(grad, W, X, Y, weights=np.ones((3, 1)), name="weights has shape (3, 1)", phrase="shape (3,)"),
    "negative": R(grad, W, X, Y, weights=np.array([1.0, -1.0, 1.0]), name="weights[1]=-1.0",
                  phrase=NONNEGATIVE),
    "nan": R(grad, W, X, Y, weights=np.array([NAN, 1.0, 1.0]), name="weights[0]=nan", phrase=NONNEGATIVE),
    "inf (assert)": AR(grad, W, X, Y, weights=np.array([1.0, 1.0, INF]), name="weights[2]=inf",
                       phrase=NONNEGATIVE),
    "all zero": R(grad, W, X, Y, weights=np.zeros(3), name="weights are all zero",
                  phrase="give at least one example a positive weight"),
    "all zero (sum)": R(grad, W, X, Y, reduction="sum", weights=[0, 0, 0], name="weights are all zero",
                        phrase="positive weight"),
    "strings": R(grad, W, X, Y, weights=np.array(["a", "b", "c"]), name="weights has dtype <U1",
                 phrase="pass real numbers"),
    "complex": R(grad, W, X, Y, weights=np.ones(3) + 1j, name="weights has dtype complex128",
                 phrase="pass real numbers"),
    "scalar": R(grad, W, X, Y, weights=2.0, name="weights has shape ()", phrase="one weight per example"),
}

TABLE = {f"{group}: {key}": case for group, cases in [
    ("loss value", LOSS_VALUES), ("batch packed", BATCH_PACKED), ("params", PARAMS),
    ("functions", FUNCTIONS), ("signatures", SIGNATURES), ("options", OPTIONS),
    ("not finite", NOT_FINITE), ("gradient", GRADIENTS), ("batch", BATCHES), ("weights", WEIGHTS),
] for key, case in cases.items()}


def run(case: Case) -> Any:
    return getattr(gradcheck, case.checker)(*case.args, **case.kwargs)


@pytest.mark.parametrize("case", [pytest.param(c, id=k) for k, c in TABLE.items()])
def test_misuse_is_a_usage_error_naming_the_argument_and_the_fix(case):
    with pytest.raises(GradcheckUsageError) as info:
        run(case)
    text = str(info.value)
    assert text.startswith("[gradcheck] "), text
    assert case.name in text, f"argument {case.name!r} not named in: {text}"
    assert case.phrase in text, f"fix {case.phrase!r} not given in: {text}"
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_the_table_covers_every_checker_in_quantity():
    checkers = {c.checker for c in TABLE.values()}
    assert checkers == {"check_gradient", "assert_gradient", "check_reduction", "assert_reduction",
                        "infer_reduction"}
    assert len(TABLE) >= 100


# ---------------------------------------------------------------- accepted, not misuse

@pytest.mark.parametrize("options", [
    {"probes": np.int64(4), "mode": "projection"},
    {"seed": np.int64(3)},
    {"seed": np.uint8(0), "probes": np.int32(2)},
    {"seed": 2**40},
])
def test_numpy_integers_and_large_seeds_are_accepted(options):
    v = gradcheck.check_gradient(loss, grad, W, X, Y, **options)
    assert v.holds, str(v)


@pytest.mark.parametrize("out", [np.float32(1.5), np.array(1.5), np.array([1.5]), 2, np.float16(0.5)])
def test_a_loss_of_one_number_in_any_numeric_form_is_accepted(out):
    v = gradcheck.check_gradient(lambda w: out, lambda w: np.zeros_like(w), W)
    assert v.outcome in ("holds", "undetermined"), str(v)


def test_a_bool_mask_is_accepted_as_weights():
    mask = np.array([True, False, True])

    def masked_mean_grad(w, x, y, m):
        return 2 * x.T @ ((x @ w - y) * m) / m.sum()

    v = gradcheck.check_reduction(masked_mean_grad, W, X, Y, mask, weights=mask)
    assert v.holds, str(v)


def test_keyword_arguments_a_checker_does_not_take_are_python_type_errors():
    with pytest.raises(TypeError, match="tolerance"):
        gradcheck.check_gradient(loss, grad, W, X, Y, tolerance=1e-3)
    with pytest.raises(TypeError, match="mode"):
        gradcheck.check_reduction(grad, W, X, Y, mode="full")


def test_a_function_without_a_readable_signature_is_still_called():
    # np.sin has no Python signature; the signature check must let it through.
    v = gradcheck.check_gradient(lambda w: float(np.sum(np.sin(w))), np.cos, W)
    assert v.holds, str(v)


# ---------------------------------------------------------------- user exceptions

class UserError(Exception):
    pass


def raising(error):
    def fn(*args):
        raise error
    return fn


USER_ERRORS = [UserError("my own message"), ValueError("shapes (3,2) and (3,) not aligned"),
               TypeError("unsupported operand type(s)"), KeyError("W"), ZeroDivisionError("in my loss")]


@pytest.mark.parametrize("error", USER_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("where", ["loss_fn", "grad_fn", "grad_fn (reduction)", "grad_fn (infer)",
                                   "loss_fn (assert)", "grad_fn (assert)"])
def test_a_users_own_exception_passes_through_unchanged(error, where):
    calls = {
        "loss_fn": lambda: gradcheck.check_gradient(raising(error), grad, W, X, Y),
        "grad_fn": lambda: gradcheck.check_gradient(loss, raising(error), W, X, Y),
        "grad_fn (reduction)": lambda: gradcheck.check_reduction(raising(error), W, X, Y),
        "grad_fn (infer)": lambda: gradcheck.infer_reduction(raising(error), W, X, Y),
        "loss_fn (assert)": lambda: gradcheck.assert_gradient(raising(error), grad, W, X, Y),
        "grad_fn (assert)": lambda: gradcheck.assert_reduction(raising(error), W, X, Y),
    }
    with pytest.raises(BaseException) as info:
        calls[where]()
    assert info.value is error, f"{type(info.value).__name__}: {info.value}"


def test_a_user_exception_away_from_the_point_passes_through():
    """The loss raises only at perturbed points: still the user's exception."""
    def loss_fn(w, x, y):
        if not np.array_equal(w, W):
            raise UserError("only at the point")
        return loss(w, x, y)

    with pytest.raises(UserError, match="^only at the point$"):
        gradcheck.check_gradient(loss_fn, grad, W, X, Y)


# ---------------------------------------------------------------- findings, not misuse

def test_nan_from_grad_fn_is_a_failed_verdict_naming_the_entry():
    def bad_grad(p, x, y):
        g = tgrad(p, x, y)
        g["W"][1, 0] = np.nan
        return g

    v = gradcheck.check_gradient(tloss, bad_grad, P, X, Y)
    assert v.outcome == "fails", str(v)
    assert "params['W'][1, 0]" in str(v) and "nan" in str(v)


def test_nan_from_loss_fn_leaves_the_check_undetermined():
    v = gradcheck.check_gradient(lambda w, x, y: float("nan"), grad, W, X, Y)
    assert v.outcome == "undetermined", str(v)
    assert "nan" in str(v)


def test_inf_from_loss_fn_near_the_point_leaves_the_check_undetermined():
    def loss_fn(w, x, y):
        return loss(w, x, y) if np.array_equal(w, W) else float("inf")

    v = gradcheck.check_gradient(loss_fn, grad, W, X, Y)
    assert v.outcome == "undetermined", str(v)


def test_nan_from_grad_fn_is_a_failed_reduction_verdict():
    def bad_grad(w, x, y):
        return grad(w, x, y) * (np.nan if len(x) == 1 else 1.0)

    v = gradcheck.check_reduction(bad_grad, W, X, Y)
    assert v.outcome == "fails", str(v)
    assert "nan" in str(v)
    with pytest.raises(AssertionError, match="nan"):
        gradcheck.assert_reduction(bad_grad, W, X, Y)


# ---------------------------------------------------------------- the caller's arrays

def _snapshot(tree):
    if isinstance(tree, dict):
        return {k: _snapshot(v) for k, v in tree.items()}
    return np.array(tree, copy=True)


def _same(a, b):
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _vandal(fn):
    """``fn``, then scribble over every array it was given."""
    def wrapped(p, *batch):
        out = fn(p, *batch)
        for arr in list(p.values() if isinstance(p, dict) else [p]) + list(batch):
            arr[...] = 7.0
        return out
    return wrapped


CLEAN_RUNS = {
    "check_gradient": lambda p, x, y, w: gradcheck.check_gradient(tloss, tgrad, p, x, y),
    "check_gradient (vandal)": lambda p, x, y, w: gradcheck.check_gradient(_vandal(tloss), _vandal(tgrad),
                                                                           p, x, y),
    "check_gradient projection": lambda p, x, y, w: gradcheck.check_gradient(
        _vandal(tloss), tgrad, p, x, y, mode="projection"),
    "check_reduction (vandal)": lambda p, x, y, w: gradcheck.check_reduction(_vandal(tgrad), p, x, y),
    "check_reduction weights": lambda p, x, y, w: gradcheck.check_reduction(tgrad, p, x, y, weights=w),
    "infer_reduction (vandal)": lambda p, x, y, w: gradcheck.infer_reduction(_vandal(tgrad), p, x, y,
                                                                             weights=w),
    "assert_gradient": lambda p, x, y, w: gradcheck.assert_gradient(_vandal(tloss), tgrad, p, x, y),
    "assert_reduction": lambda p, x, y, w: gradcheck.assert_reduction(_vandal(tgrad), p, x, y),
}


@pytest.mark.parametrize("name", list(CLEAN_RUNS))
def test_no_checker_modifies_the_arrays_it_is_given(name):
    p, x, y, w = _snapshot(P), X.copy(), Y.copy(), np.array([1.0, 0.0, 2.0])
    before = [_snapshot(p), x.copy(), y.copy(), w.copy()]
    try:
        CLEAN_RUNS[name](p, x, y, w)
    except AssertionError:
        pass  # assert_* may fail on a weighted declaration; only the arrays matter here
    for got, want in zip([p, x, y, w], before):
        assert _same(got, want), name


def test_misuse_does_not_modify_the_arrays_either():
    p, x = _snapshot(P), X.copy()
    p["W"][0, 0] = NAN
    before = [_snapshot(p), x.copy()]
    with pytest.raises(GradcheckUsageError):
        gradcheck.check_gradient(tloss, tgrad, p, x, Y)
    assert _same(p, before[0]) and _same(x, before[1])


def test_a_signature_check_can_spell_out_a_call_of_its_own():
    from gradcheck._calls import require_signature
    with pytest.raises(GradcheckUsageError, match=r"accumulate_fn=<lambda> cannot be called as "
                                                  r"accumulate_fn\(params, microbatches\)"):
        require_signature(lambda p: p, "accumulate_fn", 1, call="accumulate_fn(params, microbatches)")
    require_signature(lambda p, microbatches: p, "accumulate_fn", 1)
