"""Real gradient code this project did not write, wrapped as numpy callables
``loss_fn(params, *batch)`` / ``grad_fn(params, *batch)`` in float64.

Shared by tests/test_real_code.py and benchmarks/trust.py. Each wrapper calls
the library's own code (scikit-learn's private loss and backprop functions,
PyTorch's loss modules through ``torch.autograd.grad``) or reproduces a
widely copied piece of hand-written code (a course's two-layer network,
gradient-accumulation loops). Nothing here imports gradcheck.

What each real loss divides by, read from its source and measured by the
tests:

- ``LinearModelLoss`` (sklearn.linear_model._linear_loss): a weighted mean over
  sample weights, ``sum_i s_i l_i / sum_i s_i``, plus ``l2/2 ||coef||^2`` with a
  fixed weight (the intercept is not penalised).
- ``LogisticRegression`` (lbfgs): the same loss with
  ``l2_reg_strength = 1 / (C * sum_i s_i)``: ``(C sum_i s_i l_i + ||w||^2 / 2) /
  (C sum_i s_i)``, a penalty divided by the total weight along with the data.
- ``Ridge`` (lbfgs solver): ``||X w - y||^2 / 2 + alpha ||w||^2 / 2``, a sum
  plus a fixed penalty.
- ``MLPRegressor`` / ``MLPClassifier`` (``_backprop``): ``(sum_i s_i l_i +
  alpha/2 sum ||W||^2) / sum_i s_i``, the penalty divided by B with the data.
- PyTorch losses: see ``TORCH_LOSSES``.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Callable

import numpy as np

Fn = Callable[..., Any]


# ---------------------------------------------------------------- scikit-learn: linear models

def sklearn_linear(kind: str, *, l2: float = 0.0, fit_intercept: bool = True,
                   n_classes: int = 3) -> tuple[Fn, Fn]:
    """``LinearModelLoss`` with HalfSquaredError ("squared"), HalfBinomialLoss
    ("binomial") or HalfMultinomialLoss ("multinomial"). Batch: ``(X, y)`` or
    ``(X, y, sample_weight)``; params: the ``coef`` array sklearn expects
    (n_dof,) or (n_classes, n_dof)."""
    from sklearn._loss.loss import HalfBinomialLoss, HalfMultinomialLoss, HalfSquaredError
    from sklearn.linear_model._linear_loss import LinearModelLoss

    base = {"squared": HalfSquaredError, "binomial": HalfBinomialLoss,
            "multinomial": lambda: HalfMultinomialLoss(n_classes=n_classes)}[kind]()
    lml = LinearModelLoss(base_loss=base, fit_intercept=fit_intercept)

    def args(X, y, sw=None):
        return dict(X=np.ascontiguousarray(X), y=np.ascontiguousarray(y, dtype=np.float64),
                    sample_weight=None if sw is None else np.ascontiguousarray(sw), l2_reg_strength=l2)

    def loss_fn(coef, *batch):
        return lml.loss(np.asarray(coef, dtype=np.float64), **args(*batch))

    def grad_fn(coef, *batch):
        return lml.gradient(np.asarray(coef, dtype=np.float64), **args(*batch))

    return loss_fn, grad_fn


class _Captured(Exception):
    def __init__(self, fun: Fn, args: tuple) -> None:
        super().__init__("captured")
        self.fun, self.args = fun, args


@contextlib.contextmanager
def _capture_minimize(module: Any):
    """Replace ``module.optimize`` so that the first ``minimize`` call hands
    back its objective instead of optimising."""
    def minimize(fun, x0, args=(), **_):
        raise _Captured(fun, tuple(args))

    saved = module.optimize
    module.optimize = types.SimpleNamespace(minimize=minimize)
    try:
        yield
    finally:
        module.optimize = saved


def _objective(module: Any, fit: Callable[[], Any]) -> tuple[Fn, tuple]:
    with _capture_minimize(module):
        try:
            fit()
        except _Captured as c:
            return c.fun, c.args
    raise RuntimeError("the solver never called scipy.optimize.minimize")


def sklearn_logistic(*, C: float = 1.0, n_classes: int = 2) -> tuple[Fn, Fn]:
    """LogisticRegression's own lbfgs objective, taken from
    ``_logistic_regression_path`` (the classes are given, so a batch of one
    example is allowed). Batch ``(X, y)`` or ``(X, y, sample_weight)``, y in
    0..n_classes-1; params the flat coef lbfgs sees."""
    import warnings

    from sklearn.linear_model import _logistic

    classes = np.arange(n_classes)

    def objective(X, y, sw=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _objective(_logistic, lambda: _logistic._logistic_regression_path(
                X, y, classes=classes, Cs=[C], solver="lbfgs", sample_weight=sw, check_input=True))

    def loss_fn(w, *batch):
        fun, args = objective(*batch)
        return fun(np.array(w, dtype=np.float64), *args)[0]

    def grad_fn(w, *batch):
        fun, args = objective(*batch)
        return np.array(fun(np.array(w, dtype=np.float64), *args)[1])

    return loss_fn, grad_fn


def sklearn_ridge(*, alpha: float = 1.0) -> tuple[Fn, Fn]:
    """Ridge's lbfgs objective (``Ridge(solver="lbfgs", positive=True,
    fit_intercept=False)``): ||Xw - y||^2/2 + alpha ||w||^2/2, a sum plus a
    fixed penalty. Batch ``(X, y)``, y one target."""
    from sklearn.linear_model import Ridge, _ridge

    def objective(X, y):
        model = Ridge(alpha=alpha, solver="lbfgs", positive=True, fit_intercept=False)
        return _objective(_ridge, lambda: model.fit(X, y))

    def loss_fn(w, X, y):
        return objective(X, y)[0](np.array(w, dtype=np.float64))[0]

    def grad_fn(w, X, y):
        return np.array(objective(X, y)[0](np.array(w, dtype=np.float64))[1])

    return loss_fn, grad_fn


# ---------------------------------------------------------------- scikit-learn: MLP

def sklearn_mlp(kind: str = "regressor", *, alpha: float = 1e-4, hidden: tuple[int, ...] = (4,),
                activation: str = "tanh", n_features: int = 3, n_outputs: int = 1,
                n_classes: int = 3, seed: int = 0) -> tuple[Fn, Fn, np.ndarray]:
    """MLPRegressor / MLPClassifier's ``_loss_grad_lbfgs`` (which runs
    ``_backprop``) on packed parameters. Batch ``(X, y)`` or ``(X, y,
    sample_weight)``; y: targets of shape (B,) or (B, n_outputs) for the
    regressor, class labels 0..n_classes-1 for the classifier. Returns
    ``loss_fn, grad_fn, params`` (the packed initial parameters)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.neural_network._multilayer_perceptron import _pack

    rng = np.random.default_rng(seed)
    X0 = rng.normal(size=(2 * max(n_classes, 2), n_features))
    if kind == "regressor":
        model = MLPRegressor(hidden_layer_sizes=hidden, activation=activation, alpha=alpha,
                             solver="lbfgs", max_iter=1, random_state=seed)
        y0 = rng.normal(size=(len(X0), n_outputs)) if n_outputs > 1 else rng.normal(size=len(X0))
    else:
        model = MLPClassifier(hidden_layer_sizes=hidden, activation=activation, alpha=alpha,
                              solver="lbfgs", max_iter=1, random_state=seed)
        y0 = np.arange(len(X0)) % n_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X0, y0)
    params = _pack(model.coefs_, model.intercepts_).astype(np.float64)

    def targets(y):
        y = np.asarray(y)
        if kind == "regressor":
            return (y.reshape(-1, 1) if y.ndim == 1 else y).astype(np.float64)
        return model._label_binarizer.transform(y).astype(np.float64)

    def call(w, X, y, sw=None):
        X = np.ascontiguousarray(X, dtype=np.float64)
        units = [X.shape[1]] + list(hidden) + [model.n_outputs_]
        activations = [X] + [None] * (len(units) - 1)
        deltas = [None] * (len(activations) - 1)
        coef_grads = [np.empty((a, b)) for a, b in zip(units[:-1], units[1:])]
        intercept_grads = [np.empty(b) for b in units[1:]]
        return model._loss_grad_lbfgs(np.array(w, dtype=np.float64), X, targets(y), sw,
                                      activations, deltas, coef_grads, intercept_grads)

    def loss_fn(w, *batch):
        return float(call(w, *batch)[0])

    def grad_fn(w, *batch):
        return np.array(call(w, *batch)[1])

    return loss_fn, grad_fn, params


# ---------------------------------------------------------------- PyTorch losses, wrapped by hand

def torch_model(n_in: int, n_out: int, *, hidden: int = 0, seed: int = 0):
    """A float64 linear layer, or a tanh MLP with one hidden layer."""
    import torch

    torch.manual_seed(seed)
    if hidden:
        model = torch.nn.Sequential(torch.nn.Linear(n_in, hidden), torch.nn.Tanh(),
                                    torch.nn.Linear(hidden, n_out))
    else:
        model = torch.nn.Sequential(torch.nn.Linear(n_in, n_out))
    return model.double()


def torch_functions(model, loss, *, prepare: Fn | None = None, dtype: str = "float64") -> tuple[Fn, Fn, dict]:
    """``loss_fn``, ``grad_fn`` and params (a dict of numpy arrays named as
    ``named_parameters`` names them) for ``loss(prepare(model(x)), target)``,
    gradients by ``torch.autograd.grad``, computed in ``dtype`` (float64 by
    default; the loss module's own tensors, such as class weights, must be
    of that dtype too)."""
    import torch
    from torch.func import functional_call

    names = [n for n, _ in model.named_parameters()]
    params = {n: p.detach().numpy().astype(dtype) for n, p in model.named_parameters()}
    prepare = prepare or (lambda out: out)
    tdt = getattr(torch, dtype)

    def value(p, x, target):
        tensors = {n: torch.tensor(np.asarray(p[n], dtype=dtype), requires_grad=True) for n in names}
        out = prepare(functional_call(model, tensors, (torch.as_tensor(np.asarray(x, dtype=dtype)),)))
        t = torch.as_tensor(np.asarray(target))
        if t.is_floating_point():
            t = t.to(tdt)
        return loss(out, t), tensors

    def loss_fn(p, x, target):
        with torch.no_grad():
            return float(value(p, x, target)[0])

    def grad_fn(p, x, target):
        out, tensors = value(p, x, target)
        grads = torch.autograd.grad(out, [tensors[n] for n in names], allow_unused=True)
        return {n: (np.zeros(np.shape(p[n]), dtype=dtype) if g is None else g.numpy())
                for n, g in zip(names, grads)}

    return loss_fn, grad_fn, params


def torch_loss(name: str, reduction: str, **options: Any):
    """One of PyTorch's loss modules, and the function its output goes
    through first (log-softmax for NLLLoss and KLDivLoss)."""
    import torch

    make = {"mse": torch.nn.MSELoss, "l1": torch.nn.L1Loss, "smoothl1": torch.nn.SmoothL1Loss,
            "huber": torch.nn.HuberLoss, "bce": torch.nn.BCEWithLogitsLoss,
            "ce": torch.nn.CrossEntropyLoss, "nll": torch.nn.NLLLoss, "kl": torch.nn.KLDivLoss}[name]
    prepare = (lambda out: torch.log_softmax(out, dim=1)) if name in ("nll", "kl") else None
    return make(reduction=reduction, **options), prepare


# ---------------------------------------------------------------- a course's two-layer network

def tutorial_net(bug: str = "") -> tuple[Fn, Fn]:
    """The classic numpy two-layer net (ReLU, softmax cross-entropy, L2):
    loss = data_loss / N + 0.5 reg sum W^2; dscores /= N; dW += reg W.
    ``bug``: "" (correct), "no_divide" (forgot dscores /= N), "half_reg"
    (dW += 0.5 reg W), "divide_twice" (dscores /= N twice).
    Params: dict W1, b1, W2, b2; batch (X, y) with integer labels."""
    reg = 0.1

    def forward(p, X):
        hidden = np.maximum(0, X @ p["W1"] + p["b1"])
        return hidden, hidden @ p["W2"] + p["b2"]

    def probs_of(scores):
        shifted = scores - scores.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)

    def loss_fn(p, X, y):
        N = X.shape[0]
        _, scores = forward(p, X)
        probs = probs_of(scores)
        data_loss = -np.sum(np.log(probs[np.arange(N), y])) / N
        return data_loss + 0.5 * reg * (np.sum(p["W1"] ** 2) + np.sum(p["W2"] ** 2))

    def grad_fn(p, X, y):
        N = X.shape[0]
        hidden, scores = forward(p, X)
        dscores = probs_of(scores)
        dscores[np.arange(N), y] -= 1
        if bug != "no_divide":
            dscores /= N
        if bug == "divide_twice":
            dscores /= N
        dW2 = hidden.T @ dscores
        db2 = dscores.sum(axis=0)
        dhidden = dscores @ p["W2"].T
        dhidden[hidden <= 0] = 0
        dW1 = X.T @ dhidden
        db1 = dhidden.sum(axis=0)
        k = 0.5 * reg if bug == "half_reg" else reg
        return {"W1": dW1 + k * p["W1"], "b1": db1, "W2": dW2 + k * p["W2"], "b2": db2}

    return loss_fn, grad_fn


def tutorial_params(rng: np.random.Generator, d: int = 3, h: int = 5, c: int = 3) -> dict:
    return {"W1": 0.5 * rng.normal(size=(d, h)), "b1": 0.1 * rng.normal(size=h),
            "W2": 0.5 * rng.normal(size=(h, c)), "b2": 0.1 * rng.normal(size=c)}


# ---------------------------------------------------------------- gradient-accumulation loops

def _per_example_grads(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradients of 0.5 (tanh(x w) - y)^2, one row per example (a nonlinear
    model, so no law holds by accident of linearity)."""
    z = np.tanh(x @ w)
    return ((z - y) * (1 - z ** 2))[:, None] * x


def accumulation(loop: str, micro: int, *, nominal_steps: int = 3) -> Fn:
    """A gradient accumulated over consecutive micro-batches of ``micro``
    examples (the last one short when ``micro`` does not divide B):

    - "right": sum of per-micro-batch sums, divided once by the total count;
    - "mean_of_means": per-micro-batch means averaged;
    - "mean_over_steps": ``loss.mean() / n_steps`` per micro-batch, n_steps
      the number of micro-batches of this batch (the same as mean_of_means);
    - "fixed_steps": ``loss.mean() / n_steps`` with n_steps fixed
      (``nominal_steps``), as in a loop written for a full-size batch;
    - "sum_of_means": per-micro-batch means added up.
    """
    def grad_fn(w, x, y):
        B = x.shape[0]
        chunks = [slice(s, min(s + micro, B)) for s in range(0, B, micro)]
        total = np.zeros_like(w, dtype=np.float64)
        for c in chunks:
            g = _per_example_grads(w, x[c], y[c])
            n = g.shape[0]
            if loop == "right":
                total += g.sum(axis=0) / B
            elif loop in ("mean_of_means", "mean_over_steps"):
                total += g.mean(axis=0) / len(chunks)
            elif loop == "fixed_steps":
                total += g.mean(axis=0) / nominal_steps
            elif loop == "sum_of_means":
                total += g.sum(axis=0) / n
            else:
                raise ValueError(loop)
        return total

    return grad_fn


def accumulation_loss(w, x, y):
    return float(np.mean(0.5 * (np.tanh(x @ w) - y) ** 2))


def token_loss(loop: str, micro: int | None = None) -> Fn:
    """Token-masked sequences: x (B, T, d), y (B, T), mask (B, T) of 0/1.
    Per-token loss 0.5 (x_t . w - y_t)^2.

    - "global": one division by the total number of unmasked tokens (the
      weighted mean with weights = token count per sequence);
    - "per_sequence": each sequence's token mean, averaged over sequences;
    - "micro_token_means": micro-batches of ``micro`` sequences, each
      divided by its own token count, the results averaged.
    """
    def tok_grads(w, x, y, m):
        r = (np.einsum("btd,d->bt", x, w) - y) * m
        return np.einsum("bt,btd->bd", r, x)  # per-sequence token sums

    def grad_fn(w, x, y, m):
        g = tok_grads(w, x, y, m)
        count = m.sum(axis=1)
        if loop == "global":
            return g.sum(axis=0) / count.sum()
        if loop == "per_sequence":
            return np.mean(g / count[:, None], axis=0)
        if loop == "micro_token_means":
            B = x.shape[0]
            parts = [slice(s, min(s + micro, B)) for s in range(0, B, micro)]
            return np.mean([g[p].sum(axis=0) / count[p].sum() for p in parts], axis=0)
        raise ValueError(loop)

    return grad_fn


# ---------------------------------------------------------------- adversarial numerics on correct code

def cancellation(offset: float = 1e8) -> tuple[Fn, Fn]:
    """(offset + sum sin(x w)) - offset: a small difference of large terms."""
    def loss_fn(w, x):
        return float((offset + np.sum(np.sin(x @ w))) - offset)

    def grad_fn(w, x):
        return x.T @ np.cos(x @ w)

    return loss_fn, grad_fn


def float32_params() -> tuple[Fn, Fn]:
    """A sin layer with float32 params and a float32 gradient, the loss in float64."""
    def loss_fn(w, x):
        return float(np.sum(np.sin(np.asarray(x, np.float64) @ np.asarray(w, np.float64))))

    def grad_fn(w, x):
        x32 = np.asarray(x, np.float32)
        return (x32.T @ np.cos(x32 @ np.asarray(w, np.float32))).astype(np.float32)

    return loss_fn, grad_fn


def ridge_sum(lam: float = 0.5) -> tuple[Fn, Fn]:
    """Textbook ridge: sum of squared errors + lam ||w||^2 (a sum plus a fixed penalty)."""
    def loss_fn(w, x, y):
        return float(np.sum((x @ w - y) ** 2) + lam * w @ w)

    def grad_fn(w, x, y):
        return 2 * x.T @ (x @ w - y) + 2 * lam * w

    return loss_fn, grad_fn


def l1_mean() -> tuple[Fn, Fn]:
    """Mean absolute error of a linear model (np.sign(0) = 0 at a zero residual)."""
    def loss_fn(w, x, y):
        return float(np.mean(np.abs(x @ w - y)))

    def grad_fn(w, x, y):
        return x.T @ np.sign(x @ w - y) / len(x)

    return loss_fn, grad_fn


def accumulate(loop: str, *, nominal_steps: int = 3) -> Fn:
    """An accumulation loop as ``accumulate_fn(params, microbatches)`` for
    check_accumulation, over the model of :func:`accumulation` (its full-batch
    gradient, a mean, is ``accumulation("right", B)``):

    - "right": per-micro-batch sums added, divided once by the total count;
    - "mean_of_means": per-micro-batch means averaged;
    - "fixed_steps": ``loss.mean() / n_steps`` with n_steps fixed;
    - "sum_of_means": per-micro-batch means added up.
    """
    def accumulate_fn(w, microbatches):
        grads = [_per_example_grads(w, x, y) for x, y in microbatches]
        total = sum(g.shape[0] for g in grads)
        if loop == "right":
            return sum(g.sum(axis=0) for g in grads) / total
        if loop == "mean_of_means":
            return sum(g.mean(axis=0) for g in grads) / len(grads)
        if loop == "fixed_steps":
            return sum(g.mean(axis=0) for g in grads) / nominal_steps
        if loop == "sum_of_means":
            return sum(g.mean(axis=0) for g in grads)
        raise ValueError(loop)

    return accumulate_fn


def accumulate_tokens(loop: str) -> Fn:
    """Token-masked accumulation as ``accumulate_fn(params, microbatches)``,
    micro-batches of ``(x, y, mask)`` as in :func:`token_loss`: "global"
    divides the summed token gradients once by the global token count;
    "micro_token_means" averages each micro-batch's token mean."""
    grad_sum = token_loss("global")

    def accumulate_fn(w, microbatches):
        counts = [m.sum() for _, _, m in microbatches]
        sums = [grad_sum(w, x, y, m) * c for (x, y, m), c in zip(microbatches, counts)]
        if loop == "global":
            return sum(sums) / sum(counts)
        if loop == "micro_token_means":
            return sum(s / c for s, c in zip(sums, counts)) / len(sums)
        raise ValueError(loop)

    return accumulate_fn
