"""What real libraries' losses divide by, measured by gradcheck's own checkers.

The docs' "real losses" page is built from these tables. Each row wraps one
piece of gradient code gradcheck did not write (a PyTorch loss module through
:func:`gradcheck.torch.functions`, an optax loss reduced as its user writes
it, through :func:`gradcheck.jax.functions`, scikit-learn's own objective
functions) as ``grad_fn(params, *batch)`` and asks
:func:`gradcheck.infer_reduction` and :func:`gradcheck.check_reduction` what
it does. Nothing in a table is typed in: the words come from the checkers,
the divisors from the gradients.

PyTorch, JAX, optax and scikit-learn are imported inside the functions that
need them: ``import gradcheck`` needs none of them.
"""

from __future__ import annotations

import contextlib
import functools
import types
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .reduction import check_reduction, infer_reduction

__all__ = ["TorchRow", "OptaxRow", "SklearnRow", "torch_rows", "optax_rows", "sklearn_rows", "judge_torch",
           "judge_optax", "judge_sklearn", "class_weights", "have_optax"]

B, C, D = 6, 4, 3  # batch size, classes or outputs, input features: small, so a row takes ~1 s
CLASSES = (0, 1, 2, 3, 1, 2)  # the class targets: every class, two of them twice
CLASS_WEIGHTS = (1.0, 2.0, 0.5, 3.0)  # w, the weighted rows' class weights


# ------------------------------------------------------------------ PyTorch losses


@dataclass(frozen=True)
class TorchRow:
    """A PyTorch loss as its user writes it, and what the checkers measured."""

    code: str  # the constructor, as a user writes it
    target: str  # "class", "real" or "prob": what the loss compares the output with
    weights: str = ""  # how per-example weights follow from the targets, if the loss weighs them
    says: str = ""  # the checkers' words
    divisor: str = ""  # what the summed loss is divided by, measured


def torch_rows() -> list[TorchRow]:
    """The losses of the table, each with the targets it takes."""
    return [
        TorchRow("MSELoss()", "real"),
        TorchRow("MSELoss(reduction='sum')", "real"),
        TorchRow("L1Loss()", "real"),
        TorchRow("HuberLoss(delta=0.5)", "real"),
        TorchRow("BCEWithLogitsLoss()", "prob"),
        TorchRow("CrossEntropyLoss()", "class"),
        TorchRow("CrossEntropyLoss(label_smoothing=0.1)", "class"),
        TorchRow("CrossEntropyLoss(weight=w)", "class", weights="class weight w[y_i] of each target"),
        TorchRow("CrossEntropyLoss(ignore_index=1)", "class", weights="1, or 0 where y_i = 1 (ignored)"),
        TorchRow("NLLLoss()", "class"),
        TorchRow("KLDivLoss(reduction='mean')", "prob"),
        TorchRow("KLDivLoss(reduction='batchmean')", "prob"),
    ]


def _torch_batch(target: str) -> tuple[Any, Any]:
    import torch

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(B, D, generator=gen, dtype=torch.float64)
    if target == "class":
        return x, torch.tensor(CLASSES[:B])
    if target == "prob":
        return x, torch.softmax(torch.randn(B, C, generator=gen, dtype=torch.float64), dim=1)
    return x, torch.randn(B, C, generator=gen, dtype=torch.float64)


def _class_weights() -> Any:
    import torch

    return torch.tensor(CLASS_WEIGHTS, dtype=torch.float64)


def class_weights() -> str:
    """The class weights ``w`` of the weighted rows, as the page shows them."""
    return "(" + ", ".join(f"{v:g}" for v in CLASS_WEIGHTS) + ")"


def _torch_loss(code: str, reduction: str | None = None) -> Any:
    import torch

    namespace = {name: getattr(torch.nn, name) for name in dir(torch.nn) if name.endswith("Loss")}
    loss = eval(code, namespace, {"w": _class_weights()})  # noqa: S307 - the table's own constructors
    if reduction is not None:
        loss.reduction = reduction
    return loss


def _torch_functions(code: str, reduction: str | None = None) -> tuple[Callable, Any]:
    import torch

    from .torch import functions

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(D, 5), torch.nn.Tanh(), torch.nn.Linear(5, C)).double()
    forward = None
    if code.startswith(("NLLLoss", "KLDivLoss")):  # these take log-probabilities
        def forward(m: Any, loss: Any, x: Any, y: Any) -> Any:
            return loss(torch.log_softmax(m(x), dim=1), y)
    _, grad_fn, params = functions(model, _torch_loss(code, reduction), forward=forward)
    return grad_fn, params


def _example_weights(row: TorchRow, y: Any) -> np.ndarray | None:
    if row.weights.startswith("class weight"):
        return _class_weights()[y].numpy()
    if "ignored" in row.weights:
        return (y != 1).double().numpy()
    return None


def _flat(tree: dict) -> np.ndarray:
    return np.concatenate([np.ravel(tree[k]) for k in sorted(tree)])


def _divisor(row: TorchRow, grad_fn: Callable, params: Any, x: Any, y: Any, w: np.ndarray | None) -> str:
    """The summed loss's gradient over this loss's, named where it matches a count."""
    sum_grad, _ = _torch_functions(row.code, "sum")
    return _named_ratio(_flat(grad_fn(params, x, y)), _flat(sum_grad(params, x, y)), w)


def _named_ratio(g: np.ndarray, s: np.ndarray, w: np.ndarray | None) -> str:
    """s = ratio * g, with the ratio named where it is a count of the batch."""
    ratio = float(g @ s / (g @ g))
    if np.linalg.norm(s - ratio * g) > 1e-9 * np.linalg.norm(s):  # no divisor turns one into the other
        return f"none: not proportional (closest {ratio:.6g})"
    names = {"1": 1.0, "B": float(B), "B·C": float(B * C), "2·B·C": float(2 * B * C)}
    if w is not None:
        names["Σ w_i"] = float(np.sum(w))
    for name, value in names.items():
        if abs(ratio - value) <= 1e-9 * value:
            return f"{name} = {value:g}" if name != "1" else "1 (nothing)"
    return f"{ratio:.6g}"


def judge_torch(row: TorchRow) -> TorchRow:
    """Measure one PyTorch loss: the checkers' words and the divisor of its sum."""
    x, y = _torch_batch(row.target)
    grad_fn, params = _torch_functions(row.code)
    w = _example_weights(row, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # KLDivLoss warns that 'mean' is not the math's mean: the row shows it
        says = infer_reduction(grad_fn, params, x, y)
        if w is not None and says != "mean":
            v = check_reduction(grad_fn, params, x, y, reduction="mean", weights=w)
            says = f"{says}; declared weighted mean with these weights: {v.outcome}"
        divisor = _divisor(row, grad_fn, params, x, y, w)
    return TorchRow(row.code, row.target, row.weights, says, divisor)


# ------------------------------------------------------------------ optax losses


@dataclass(frozen=True)
class OptaxRow:
    """An optax loss reduced over the batch as its user writes it, and what the checkers measured.

    optax returns one value per example (or per output) and leaves the reduction
    to the user: ``code`` is that user's whole expression of the model's output
    ``out``, the targets ``y`` and the class weights ``w``.
    """

    code: str
    summed: str  # the plain sum the divisor is measured against, e.g. of squared errors
    target: str  # "class", "real" or "prob": what the loss compares the output with
    weights: str = ""  # how per-example weights follow from the targets, if the code weighs them
    says: str = ""  # the checkers' words
    divisor: str = ""  # what ``summed`` is divided by, measured


_CE_INT = "optax.softmax_cross_entropy_with_integer_labels(out, y)"


def optax_rows() -> list[OptaxRow]:
    """The losses of the optax table, each with its plain sum and the targets it takes."""
    # No ctc_loss row: it measures ~10 s (lax.scan compiled at every batch size the checkers cut),
    # a third of the tests' budget, and one-label sequences would show nothing cross entropy does not.
    se_sum = "optax.squared_error(out, y).sum()"
    return [
        OptaxRow("optax.l2_loss(out, y).mean()", se_sum, "real"),
        OptaxRow("optax.squared_error(out, y).mean()", se_sum, "real"),
        OptaxRow("optax.squared_error(out, y).sum(-1).mean()", se_sum, "real"),
        OptaxRow("optax.huber_loss(out, y, delta=0.5).mean()", "optax.huber_loss(out, y, delta=0.5).sum()", "real"),
        OptaxRow("optax.sigmoid_binary_cross_entropy(out, y).mean()",
                 "optax.sigmoid_binary_cross_entropy(out, y).sum()", "prob"),
        OptaxRow("optax.softmax_cross_entropy(out, y).mean()", "optax.softmax_cross_entropy(out, y).sum()", "prob"),
        OptaxRow(f"{_CE_INT}.mean()", f"{_CE_INT}.sum()", "class"),
        OptaxRow(f"{_CE_INT}.sum()", f"{_CE_INT}.sum()", "class"),
        OptaxRow("optax.kl_divergence(jax.nn.log_softmax(out), y).mean()",
                 "optax.kl_divergence(jax.nn.log_softmax(out), y).sum()", "prob"),
        OptaxRow(f"(w[y] * {_CE_INT}).sum() / w[y].sum()", f"(w[y] * {_CE_INT}).sum()", "class",
                 weights="class weight w[y_i] of each target"),
    ]


def have_optax() -> bool:
    """Whether optax (and so JAX) can be imported here: the docs skip the optax table if not."""
    import importlib.util

    return importlib.util.find_spec("optax") is not None


def _optax_batch(target: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D))
    if target == "class":
        return x, np.array(CLASSES[:B])
    y = rng.normal(size=(B, C))
    if target == "prob":
        return x, np.exp(y) / np.exp(y).sum(axis=1, keepdims=True)
    return x, y


def _optax_params() -> dict[str, np.ndarray]:
    """The MLP D -> 5 tanh -> C in float64: gradcheck.jax runs float64 leaves with 64-bit types on."""
    rng = np.random.default_rng(1)
    return {"W1": rng.normal(size=(D, 5)) / np.sqrt(D), "b1": rng.normal(size=5) * 0.1,
            "W2": rng.normal(size=(5, C)) / np.sqrt(5), "b2": rng.normal(size=C) * 0.1}


# Rows share code (the plain sums, the .sum() row): each compiles once per batch shape.
@functools.lru_cache(maxsize=32)
def _optax_grad(code: str) -> Callable:
    """``grad_fn(params, x, y)`` of ``code`` on the MLP's output, through :func:`gradcheck.jax.functions`."""
    import jax
    import jax.numpy as jnp
    import optax

    from .jax import functions

    names = {"optax": optax, "jax": jax, "jnp": jnp}
    reduced = eval(f"lambda out, y, w: {code}", names)  # noqa: S307 - the table's own code

    def loss(p: dict, x: Any, y: Any) -> Any:
        out = jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]
        # Made while tracing, inside the adapter's 64-bit context: w stays float64.
        return reduced(out, y, jnp.asarray(CLASS_WEIGHTS))

    return functions(loss, _optax_params())[1]


def judge_optax(row: OptaxRow) -> OptaxRow:
    """Measure one optax loss as reduced by its user: the checkers' words and what its plain sum is divided by."""
    x, y = _optax_batch(row.target)
    grad_fn, params = _optax_grad(row.code), _optax_params()
    w = np.asarray(CLASS_WEIGHTS)[y] if row.weights else None
    says = infer_reduction(grad_fn, params, x, y)
    if w is not None and says != "mean":
        v = check_reduction(grad_fn, params, x, y, reduction="mean", weights=w)
        says = f"{says}; declared weighted mean with these weights: {v.outcome}"
    sum_grad = _optax_grad(row.summed)
    divisor = _named_ratio(_flat(grad_fn(params, x, y)), _flat(sum_grad(params, x, y)), w)
    return OptaxRow(row.code, row.summed, row.target, row.weights, says, divisor)


# ------------------------------------------------------------------ scikit-learn objectives

# Declarations tried in this order; the first that holds is what the code does.
DECLARATIONS = (("mean", "fixed"), ("mean", "divided"), ("sum", "fixed"))


@dataclass(frozen=True)
class SklearnRow:
    """A scikit-learn model's training objective, and what the checkers measured."""

    model: str
    make: Callable[[], tuple[Callable, Any, tuple]] = field(repr=False)
    weighted: bool = False  # batch carries sample_weight, declared as weights
    data: str = ""  # "mean" / "sum" / "weighted mean"
    penalty: str = ""  # "fixed" / "divided by B" ...
    says: str = ""  # infer_reduction's words


def _data(kind: str = "real") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(B, D))
    y = rng.normal(size=B) if kind == "real" else np.array([0, 1, 0, 1, 1, 0])[:B]
    return x, y


def _linear_model_loss() -> tuple[Callable, Any, tuple]:
    from sklearn._loss.loss import HalfSquaredError
    from sklearn.linear_model._linear_loss import LinearModelLoss

    lml = LinearModelLoss(base_loss=HalfSquaredError(), fit_intercept=True)
    x, y = _data()
    sw = np.random.default_rng(1).uniform(0.5, 2.0, size=B)

    def grad_fn(coef: np.ndarray, x: np.ndarray, y: np.ndarray, sw: np.ndarray) -> np.ndarray:
        return lml.gradient(np.asarray(coef, np.float64), np.ascontiguousarray(x), np.ascontiguousarray(y),
                            sample_weight=np.ascontiguousarray(sw), l2_reg_strength=0.3)

    return grad_fn, np.linspace(-1.0, 1.0, D + 1), (x, y, sw)


class _Captured(Exception):
    def __init__(self, fun: Callable, args: tuple) -> None:
        super().__init__("captured")
        self.fun, self.args = fun, args


@contextlib.contextmanager
def _captured_objective(module: Any) -> Any:
    """While inside, the module's scipy.optimize.minimize hands its objective back instead of running."""
    def minimize(fun: Callable, x0: Any, args: tuple = (), **_: Any) -> None:
        raise _Captured(fun, tuple(args))

    saved = module.optimize
    module.optimize = types.SimpleNamespace(minimize=minimize)
    try:
        yield
    finally:
        module.optimize = saved


def _objective(module: Any, fit: Callable[[], Any]) -> tuple[Callable, tuple]:
    """The (fun, args) a scikit-learn solver passes to scipy: the objective it minimises."""
    with _captured_objective(module), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit()
        except _Captured as c:
            return c.fun, c.args
    raise RuntimeError(f"{module.__name__} never called scipy.optimize.minimize")


def _objective_grad(module: Any, fit_on: Callable[[np.ndarray, np.ndarray], Callable[[], Any]]) -> Callable:
    def grad_fn(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        fun, args = _objective(module, fit_on(x, y))
        return np.array(fun(np.array(w, dtype=np.float64), *args)[1])
    return grad_fn


def _logistic() -> tuple[Callable, Any, tuple]:
    from sklearn.linear_model import _logistic

    def fit_on(x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
        return lambda: _logistic._logistic_regression_path(x, y, classes=np.arange(2), Cs=[0.5],
                                                           solver="lbfgs", check_input=True)

    return _objective_grad(_logistic, fit_on), np.linspace(-1.0, 1.0, D + 1), _data("class")


def _ridge() -> tuple[Callable, Any, tuple]:
    from sklearn.linear_model import Ridge, _ridge

    def fit_on(x: np.ndarray, y: np.ndarray) -> Callable[[], Any]:
        return lambda: Ridge(alpha=0.7, solver="lbfgs", positive=True, fit_intercept=False).fit(x, y)

    return _objective_grad(_ridge, fit_on), np.linspace(0.1, 1.0, D), _data()


def _mlp() -> tuple[Callable, Any, tuple]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPRegressor
    from sklearn.neural_network._multilayer_perceptron import _pack

    x, y = _data()
    model = MLPRegressor(hidden_layer_sizes=(4,), activation="tanh", alpha=0.1, solver="lbfgs",
                         max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    params = _pack(model.coefs_, model.intercepts_).astype(np.float64)
    units = [D, 4, 1]

    def grad_fn(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        activations = [np.ascontiguousarray(x, np.float64)] + [None] * (len(units) - 1)
        deltas = [None] * (len(units) - 1)
        coef_grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])]
        intercept_grads = [np.empty(b) for b in units[1:]]
        return np.array(model._loss_grad_lbfgs(np.array(w, np.float64), activations[0],
                                               np.asarray(y, np.float64).reshape(-1, 1), None,
                                               activations, deltas, coef_grads, intercept_grads)[1])

    return grad_fn, params, (x, y)


def sklearn_rows() -> list[SklearnRow]:
    """The objectives of the table: each model's own loss-and-gradient function."""
    return [
        SklearnRow("LinearModelLoss(HalfSquaredError), l2_reg_strength=0.3, sample_weight",
                   _linear_model_loss, weighted=True),
        SklearnRow("LogisticRegression(C=0.5, solver='lbfgs')", _logistic),
        SklearnRow("Ridge(alpha=0.7, solver='lbfgs')", _ridge),
        SklearnRow("MLPRegressor(alpha=0.1, solver='lbfgs')", _mlp),
    ]


def judge_sklearn(row: SklearnRow) -> SklearnRow:
    """Measure one objective: which declaration holds, and infer_reduction's words."""
    grad_fn, params, batch = row.make()
    weights = batch[2] if row.weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        says = infer_reduction(grad_fn, params, *batch, weights=weights)
        held = [(r, p) for r, p in DECLARATIONS
                if check_reduction(grad_fn, params, *batch, reduction=r, regularizer=p, weights=weights).holds]
    if not held:
        return SklearnRow(row.model, row.make, row.weighted, "none of the declarations held", "", says)
    reduction, penalty = held[0]
    data = ("weighted " if row.weighted else "") + reduction
    count = "the total weight" if row.weighted else "B"
    words = "fixed, whatever B" if penalty == "fixed" else f"divided by {count} along with the data"
    return SklearnRow(row.model, row.make, row.weighted, data, words, says)
