"""Families of batch-gradient code for check_reduction, right and wrong, drawn by Hypothesis.

Every family is one small model written many ways: a linear layer or one tanh
hidden layer, a per-example loss (squared, L1, logistic, softmax cross-entropy)
with its hand-written backward pass, computed in float64, float32 or float16,
at a scale from tiny to huge, and reduced over the batch one way (a mean, a
sum, weighted, by micro-batches), with or without an L2 term of the weights
that is fixed, divided by B, or added per example. Right code declares what it
does; wrong code declares what it was meant to do and carries a pattern that
check_reduction's message must match: the true cause, in its words.

Everything is computed in the family's dtype, the reduction included, as the
code it stands for would be; some draws add a large term to the gradient and
take it away again, so that the gradient carries that term's rounding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

LOSSES = ("squared", "l1", "logistic", "cross_entropy")
DTYPES = (np.float64, np.float32, np.float16)


# ---------------------------------------------------------------- the model

@dataclass(frozen=True)
class Model:
    d_in: int
    hidden: int  # 0: a linear layer
    d_out: int
    loss: str
    dtype: Any
    scale: float  # the per-example loss is multiplied by this

    def params(self, rng: np.random.Generator, size: float) -> dict:
        shapes = ({"W1": (self.d_in, self.hidden), "b1": (self.hidden,), "W2": (self.hidden, self.d_out),
                   "b2": (self.d_out,)} if self.hidden else {"W1": (self.d_in, self.d_out), "b1": (self.d_out,)})
        return {k: (size * rng.uniform(-1.5, 1.5, s)).astype(self.dtype) for k, s in shapes.items()}

    def targets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.loss == "cross_entropy":
            return rng.integers(0, self.d_out, n)
        if self.loss == "logistic":
            return rng.integers(0, 2, (n, self.d_out)).astype(np.float64)
        return rng.normal(size=(n, self.d_out))

    def forward(self, p: dict, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = x.astype(self.dtype)
        if not self.hidden:
            return x, x @ p["W1"] + p["b1"]
        h = np.tanh(x @ p["W1"] + p["b1"])
        return h, h @ p["W2"] + p["b2"]

    def output_error(self, o: np.ndarray, y: np.ndarray) -> np.ndarray:
        """d l_i / d o_i for each example, in the model's dtype."""
        dt = self.dtype
        if self.loss == "squared":
            e = 2 * (o - y.astype(dt))
        elif self.loss == "l1":
            e = np.sign(o - y.astype(dt))
        elif self.loss == "logistic":
            e = 1 / (1 + np.exp(-o)) - y.astype(dt)
        else:
            z = np.exp(o - o.max(axis=1, keepdims=True))
            e = z / z.sum(axis=1, keepdims=True)
            e[np.arange(len(y)), y] -= 1
        return (e * dt(self.scale)).astype(dt)

    def combine(self, p: dict, x: np.ndarray, y: np.ndarray, c: np.ndarray) -> dict:
        """sum_i c_i grad l_i: the backward pass of a loss weighted by c, in the dtype."""
        dt = self.dtype
        h, o = self.forward(p, x)
        e = self.output_error(o, y) * c.astype(dt)[:, None]
        if not self.hidden:
            return {"W1": x.astype(dt).T @ e, "b1": e.sum(axis=0)}
        e1 = (e @ p["W2"].T) * (1 - h * h)
        return {"W1": x.astype(dt).T @ e1, "b1": e1.sum(axis=0), "W2": h.T @ e, "b2": e.sum(axis=0)}

    def penalty(self, p: dict, weight: float) -> dict:
        """weight × grad of 0.5 ||W||^2 (weights only), in the dtype."""
        return {k: (v * self.dtype(weight) if k.startswith("W") else np.zeros_like(v)) for k, v in p.items()}


# ---------------------------------------------------------------- the reductions

def _chunks(n: int, m: int) -> list[slice]:
    return [slice(s, min(s + m, n)) for s in range(0, n, m)]


def _chunk_means(n: int, w: np.ndarray, m: int) -> np.ndarray:
    c = np.empty(n)
    parts = _chunks(n, m)
    for s in parts:
        c[s] = 1.0 / (len(parts) * (s.stop - s.start))
    return c


def _chunk_weighted_means(n: int, w: np.ndarray, m: int) -> np.ndarray:
    c = np.empty(n)
    parts = _chunks(n, m)
    for s in parts:
        c[s] = w[s] / (len(parts) * w[s].sum())
    return c


# The coefficient of each position's per-example gradient, for a batch of n with weights w.
REDUCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "mean": lambda n, w, k: np.full(n, 1.0 / n),
    "sum": lambda n, w, k: np.ones(n),
    "weighted mean": lambda n, w, k: w / w.sum(),
    "weighted sum": lambda n, w, k: w.copy(),
    "mean twice": lambda n, w, k: np.full(n, 1.0 / n ** 2),
    "B-1": lambda n, w, k: np.full(n, 1.0 / max(n - 1, 1)),
    "fixed divisor": lambda n, w, k: np.full(n, 1.0 / k),
    "micro-batch means": lambda n, w, k: _chunk_means(n, w, k),
    "weights ignored": lambda n, w, k: np.full(n, 1.0 / n),
    "token means of micro-batches": lambda n, w, k: _chunk_weighted_means(n, w, k),
}

# The weight of the L2 term for a batch of n with weights w (times lambda).
PENALTIES: dict[str, Callable[[int, np.ndarray, bool], float]] = {
    "none": lambda n, w, weighted: 0.0,
    "fixed": lambda n, w, weighted: 1.0,
    "divided": lambda n, w, weighted: 1.0 / (w.sum() if weighted else n),
    "per example": lambda n, w, weighted: float(n),
}


@dataclass
class Case:
    """One drawn piece of code, its batch and its declaration."""

    family: str
    model: Model
    params: dict
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray | None  # per-example weights, passed to grad_fn and (if declared) to the checker
    reduction: str
    penalty: str
    lam: float
    k: int = 0  # the fixed divisor, or the micro-batch size
    declare: dict = field(default_factory=dict)  # check_reduction's keyword arguments
    cause: str = ""  # a pattern the message of wrong code must match
    kink: bool = False  # one L1 residual is exactly 0
    offset: float = 0.0  # a large term added to the gradient and taken away again, times the loss scale

    @property
    def batch(self) -> tuple:
        return (self.x, self.y) if self.w is None else (self.x, self.y, self.w)

    def gradient(self, reduction: str | None = None, penalty: str | None = None) -> Callable:
        """grad_fn for this code (or for another reduction and penalty on the same model)."""
        reduction, penalty = reduction or self.reduction, penalty or self.penalty
        model, lam, k, offset = self.model, self.lam, self.k, self.offset
        weighted = self.w is not None

        @np.errstate(all="ignore")  # overflow and 0/0 are findings for the checker, not test noise
        def grad_fn(p, x, y, *w):
            n = x.shape[0]
            ww = w[0] if w else np.ones(n)
            g = model.combine(p, x, y, REDUCTIONS[reduction](n, ww, k))
            rho = PENALTIES[penalty](n, ww, weighted) * lam
            big = model.dtype(offset * model.scale)  # (big + g) - big: g carries big's rounding
            return {key: ((big + (g[key] + pen)) - big).astype(model.dtype)
                    for key, pen in model.penalty(p, rho).items()}
        grad_fn.__name__ = f"{reduction}_{penalty}".replace(" ", "_")
        return grad_fn

    def __repr__(self) -> str:
        m = self.model
        return (f"Case({self.family}: {self.reduction} + {self.penalty} L2 (lambda={self.lam:g}, k={self.k}), "
                f"declared {self.declare}; {m.loss} {'linear' if not m.hidden else f'tanh({m.hidden})'} "
                f"{m.d_in}->{m.d_out}, {np.dtype(m.dtype).name}, scale {m.scale:g}, B={len(self.x)}, "
                f"w={None if self.w is None else self.w.tolist()}, kink={self.kink}, offset={self.offset:g})")


# ---------------------------------------------------------------- drawing

@st.composite
def models(draw, dtypes=DTYPES, losses=LOSSES) -> Model:
    dtype = draw(st.sampled_from(dtypes))
    loss = draw(st.sampled_from(losses))
    # Scales within the dtype's range: float16 overflows at 65504.
    exponent = {np.float64: (-30, 30), np.float32: (-12, 12), np.float16: (-2, 1)}[dtype]
    scale = 10.0 ** draw(st.integers(*exponent))
    d_out = draw(st.integers(2 if loss == "cross_entropy" else 1, 3))
    return Model(draw(st.integers(1, 5)), draw(st.sampled_from([0, 0, 2, 3, 5])), d_out, loss, dtype, scale)


@st.composite
def _batch(draw, model: Model, min_size: int, max_size: int, kink: bool):
    n = draw(st.integers(min_size, max_size))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    size = 1.0 if model.dtype == np.float16 else 10.0 ** draw(st.sampled_from([-6, 0, 0, 0, 6]))
    params = model.params(rng, size)
    x = rng.normal(size=(n, model.d_in))
    y = model.targets(rng, n)
    if kink:  # one residual exactly 0, as the code computes it for that example alone
        _, o = model.forward(params, x[:1])
        y[0] = o[0].astype(np.float64)
    return n, rng, params, x, y


def _weights(rng: np.random.Generator, n: int, zeros: bool) -> np.ndarray:
    w = rng.uniform(0.2, 3.0, n)
    if zeros and n >= 3:
        w[rng.choice(n, size=rng.integers(1, n - 1), replace=False)] = 0.0
    return w


RIGHT = [  # (reduction, penalties it may carry, weighted)
    ("mean", ("none", "fixed", "divided"), False),
    ("sum", ("none", "fixed"), False),
    ("weighted mean", ("none", "fixed", "divided"), True),
    ("weighted sum", ("none", "fixed"), True),
]


@st.composite
def right_cases(draw, dtypes=DTYPES, losses=LOSSES, max_size: int = 12) -> Case:
    model = draw(models(dtypes, losses))
    reduction, penalties, weighted = draw(st.sampled_from(RIGHT))
    penalty = draw(st.sampled_from(penalties))
    kink = model.loss == "l1" and draw(st.booleans())
    n, rng, params, x, y = draw(_batch(model, 2, max_size, kink))
    w = _weights(rng, n, zeros=draw(st.booleans())) if weighted else None
    declare = {"reduction": reduction.split()[-1]}
    if weighted:
        declare["weights"] = w
    if penalty == "divided":
        declare["regularizer"] = "divided"
    lam = draw(st.sampled_from([0.0, 1e-4, 0.1, 1.0])) if penalty != "none" else 0.0
    return Case("right", model, params, x, y, w, reduction, penalty, lam, declare=declare, kink=kink,
                offset=draw(offsets(model)))


def offsets(model: Model) -> st.SearchStrategy[float]:
    """A large term the gradient code adds and takes away, or none: 1e8 or
    1e12 in float64 (their rounding is 1.5e-8 and 1.2e-4, the second coarser
    than the moves of the ladder that measures it), 1e3 or 1e5 in float32;
    none in float16. Not 1e15: values left with 3 or 4 bits leave nearly
    every check precision-limited, which says nothing of a family's laws
    (tested on their own in test_reduction_adversarial).
    Not with an L1 loss: its gradient can be flat in both the params and the
    data (signs through saturated units), and then no move shows the rounding
    the large term leaves, which check_reduction measures by moving them (a
    limit it has: such code may be failed)."""
    big = {np.float64: (1e8, 1e12), np.float32: (1e3, 1e5), np.float16: ()}[model.dtype]
    return st.just(0.0) if model.loss == "l1" else st.sampled_from([0.0, 0.0, *big])


# (family, code's reduction, its penalty, declared, weighted, cause pattern)
WRONG = [
    ("sum declared mean", "sum", "fixed?", {"reduction": "mean"}, False, r'looks like "sum"'),
    ("mean declared sum", "mean", "fixed?", {"reduction": "sum"}, False, r'looks like "mean"'),
    ("double division", "mean twice", "fixed?", {"reduction": "mean"}, False, r"1/B applied twice"),
    ("B-1", "B-1", "fixed?", {"reduction": "mean"}, False, r"dividing the sum by B-1"),
    ("fixed divisor", "fixed divisor", "fixed?", {"reduction": "mean"}, False,
     r'looks like "sum" \(or a sum over a fixed divisor'),
    ("micro-batch means", "micro-batch means", "fixed?", {"reduction": "mean"}, False,
     r"mean of micro-batch means: consecutive micro-batches of {k} examples"),
    ("penalty per example", "mean", "per example", {"reduction": "mean"}, False,
     r"parameter-only term .*added once per example"),
    ("penalty divided, declared fixed", "mean", "divided", {"reduction": "mean"}, False,
     r"parameter-only term .*divided by B along with the data"),
    ("weights ignored", "weights ignored", "fixed?", {"reduction": "mean", "weights": True}, True,
     r"each example counting equally|zero-weight examples .* count though their weight is 0"),
    ("token means of micro-batches", "token means of micro-batches", "fixed?",
     {"reduction": "mean", "weights": True}, True,
     r"weighted means \(token means of micro-batches of {k} examples\)"),
    ("weighted mean declared mean", "weighted mean", "fixed?", {"reduction": "mean"}, True,
     r"count unequally|seems to carry no weight"),
    ("weighted sum declared weighted mean", "weighted sum", "fixed?", {"reduction": "mean", "weights": True},
     True, r'looks like "sum" \(a weighted sum'),
]


@st.composite
def wrong_cases(draw, dtypes=DTYPES, losses=LOSSES, max_size: int = 12) -> Case:
    family, reduction, penalty, declared, weighted, cause = draw(st.sampled_from(WRONG))
    model = draw(models(dtypes, losses))
    chunked = "micro-batch" in family
    kink = model.loss == "l1" and draw(st.booleans())
    n, rng, params, x, y = draw(_batch(model, 3 if chunked else 2, max_size, kink))
    k = draw(st.integers(2, n - 1)) if chunked else 0
    if family == "fixed divisor":
        k = draw(st.sampled_from([8, 32, 100]).filter(lambda d: d not in (n, 2 * n, n - 1)))
    # Zero weights only where the family keeps every micro-batch weighted.
    w = _weights(rng, n, zeros=not chunked and draw(st.booleans())) if weighted else None
    if penalty == "fixed?":
        penalty = draw(st.sampled_from(["none", "fixed"]))
    lam = draw(st.sampled_from([1e-4, 0.1, 1.0])) if penalty != "none" else 0.0
    declare = dict(declared)
    if declare.pop("weights", False):
        declare["weights"] = w
    return Case(family, model, params, x, y, w, reduction, penalty, lam, k, declare,
                cause.replace("{k}", str(k)), kink, draw(offsets(model)))


def right_counterpart(case: Case) -> Callable:
    """The code that would be right for the declaration of a wrong case."""
    weighted = case.declare.get("weights") is not None
    reduction = ("weighted " if weighted else "") + case.declare["reduction"]
    penalty = case.penalty if case.penalty in ("none", "fixed") else "fixed"
    return case.gradient(reduction, penalty)


def names_cause(case: Case, text: str) -> bool:
    return re.search(case.cause, text) is not None
