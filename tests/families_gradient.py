"""Adversarial families of correct gradient code, for check_gradient.

Each family is numerics that a gradient checker meets in other people's code
and that break a naive error model: a loss that is a small difference of
large terms, parameters or losses far from unit scale, gradients in float32
or float16 that are small sums of large terms, a loss in float32, ill-
conditioned curvature, saturated softmaxes, long sums, functions that
oscillate faster than the step, kinks. Every function here is right: the
tests assert no false alarm on them, and, with an error planted
(:func:`planted`), no "holds" above the verdict's stated resolution.

A family is a Hypothesis strategy of :class:`Case` (``FAMILIES`` lists them
by name), so a failure shrinks and replays; the benchmark imports the same
strategies. Plain functions build each case from its drawn numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

__all__ = ["Case", "FAMILIES", "planted", "true_gradient", "log_uniform"]

H64 = np.finfo(np.float64).eps ** (1 / 3)  # the oracle's float64 step at unit scale


@dataclass(frozen=True)
class Case:
    """A correct gradient function and where to call it.

    ``grad64`` is the exact gradient in float64 (the reference a planted
    error is measured against); ``smooth`` lists the flat entries where the
    loss is differentiable (all but the kinked ones), where errors are planted.
    """

    family: str
    loss_fn: Callable[..., Any]
    grad_fn: Callable[..., Any]
    grad64: Callable[..., Any]
    params: np.ndarray
    batch: tuple = ()
    smooth: tuple[int, ...] = ()
    note: str = ""

    def __repr__(self) -> str:  # short, for reports and benchmarks
        return f"Case({self.family}: {self.note}, params={self.params!r})"


def true_gradient(case: Case) -> np.ndarray:
    return np.asarray(case.grad64(np.asarray(case.params, np.float64), *case.batch), np.float64)


def planted(case: Case, rel: float, where: int | None, sign: float = 1.0) -> tuple[Case, float]:
    """The case with an error planted in grad_fn, and its relative size.

    ``where`` is a flat entry (one wrong entry, off by ``sign * rel`` times the
    RMS size of the true gradient) or None (every entry off by the factor
    1 + sign * rel, a wrong constant). The size returned is what grad_fn
    really returns after rounding to its dtype: the error of the wrong
    function against the true gradient (which a verdict's resolution is
    about), relative to a typical (RMS) entry for one entry, and the smallest
    relative error of any entry for all of them. Not against the right code's
    output: a float32 gradient near a minimum is itself off the truth by
    1e-5 of an entry, and a planted error of that size can cancel it (dev
    profile: planted 1.0e-5 everywhere, wrong by 2.1e-6, held at 7.9e-6).
    """
    rms = float(np.sqrt(np.mean(true_gradient(case) ** 2)))
    right = case.grad_fn

    def wrong(p, *batch):
        g = np.asarray(right(p, *batch))
        if where is None:
            return (g * g.dtype.type(1 + sign * rel)).astype(g.dtype)
        out = np.array(g, copy=True)
        out.flat[where] = out.flat[where] + g.dtype.type(sign * rel * rms)
        return out

    g = true_gradient(case).ravel()
    d = np.abs(np.asarray(wrong(case.params, *case.batch), np.float64).ravel() - g)
    if where is None:
        nz = g != 0
        size = float(np.min(d[nz] / np.abs(g[nz]))) if np.any(nz) else 0.0
    else:
        size = float(d[where] / rms) if rms > 0 else 0.0
    return replace(case, grad_fn=wrong, note=f"{case.note}, planted {sign * rel:.2e} "
                   f"{'everywhere' if where is None else f'at {where}'}"), size


def _seeded(draw) -> np.random.Generator:
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats spread evenly over the decades from ``lo`` to ``hi``."""
    return st.floats(float(np.log10(lo)), float(np.log10(hi))).map(lambda e: float(10.0**e))


# ---------------------------------------------------------------- cancellation

def cancellation(x0: np.ndarray, offset: float) -> Case:
    """(offset + sum(sin x)) - offset: a loss of order one that carries the
    rounding of ``offset``."""
    def loss_fn(x):
        return float((offset + np.sum(np.sin(x))) - offset)

    def grad(x):
        return np.cos(x)

    return Case("cancellation", loss_fn, grad, grad, x0, (), tuple(range(x0.size)),
                f"offset {offset:.1e}")


@st.composite
def cancellations(draw, *, max_dims: int = 8) -> Case:
    offset = draw(log_uniform(1e2, 1e12), label="offset")
    n = draw(st.integers(1, max_dims), label="dims")
    x0 = np.array(draw(st.lists(st.floats(-3.0, 3.0), min_size=n, max_size=n)))
    return cancellation(x0, offset)


# ---------------------------------------------------------------- float32 / float16 params, float64 loss

def narrow_params(rng: np.random.Generator, dtype: Any, n: int, B: int, distance: float) -> Case:
    """A sin regression near its minimum: params in ``dtype``, the gradient
    computed in ``dtype`` (a small sum of large per-example terms), the loss
    in float64. ``distance`` is how far the params are from the fitted ones."""
    X = rng.normal(size=(B, n)) / np.sqrt(n)
    w_star = rng.normal(size=n)
    y = np.sin(X @ w_star) + 1e-3 * rng.normal(size=B)
    w = (w_star + distance * rng.normal(size=n)).astype(dtype)
    return sin_regression(w, X, y, f"n={n}, B={B}, distance {distance:.0e}")


def sin_regression(w: np.ndarray, X: np.ndarray, y: np.ndarray, note: str) -> Case:
    """0.5 |sin(X w) - y|^2 at params ``w``: the loss in float64, the gradient
    in w's dtype."""
    dt = w.dtype

    def loss_fn(p, X, y):
        r = np.sin(X @ np.asarray(p, np.float64)) - y
        return 0.5 * float(r @ r)

    def grad_fn(p, X, y):
        Xd, a = X.astype(dt), X.astype(dt) @ np.asarray(p, dt)
        return (Xd.T @ ((np.sin(a) - y.astype(dt)) * np.cos(a))).astype(dt)

    def grad64(p, X, y):
        a = X @ np.asarray(p, np.float64)
        return X.T @ ((np.sin(a) - y) * np.cos(a))

    return Case(f"{dt.name} params, float64 loss", loss_fn, grad_fn, grad64, w, (X, y), tuple(range(w.size)), note)


@st.composite
def narrow_param_cases(draw, *, dtype: Any = np.float32) -> Case:
    return narrow_params(_seeded(draw), dtype, draw(st.integers(1, 8), label="n"),
                         draw(st.integers(1, 48), label="B"), draw(log_uniform(1e-6, 1.0), label="distance"))


# ---------------------------------------------------------------- float32 loss and gradient

def float32_layer(rng: np.random.Generator, n: int, m: int, B: int, wrong: float = 0.0) -> Case:
    """sum(sin(x @ W)) in float32, loss and gradient: finite differences can
    only see what float32 rounding leaves."""
    X = rng.uniform(-1, 1, size=(B, n)).astype(np.float32)
    W = rng.uniform(-1, 1, size=(n, m)).astype(np.float32)

    def loss_fn(p, X):
        return np.sum(np.sin(X.astype(np.float32) @ np.asarray(p, np.float32)))

    def grad_fn(p, X):
        X32 = X.astype(np.float32)
        return X32.T @ np.cos(X32 @ np.asarray(p, np.float32))

    def grad64(p, X):
        Xd = X.astype(np.float64)
        return Xd.T @ np.cos(Xd @ np.asarray(p, np.float64))

    return Case("float32 loss", loss_fn, grad_fn, grad64, W, (X,), tuple(range(W.size)),
                f"{n}x{m}, B={B}")


@st.composite
def float32_losses(draw) -> Case:
    return float32_layer(_seeded(draw), draw(st.integers(1, 6), label="n"), draw(st.integers(1, 6), label="m"),
                         draw(st.integers(1, 8), label="B"))


# ---------------------------------------------------------------- losses far from unit scale

def scaled(rng: np.random.Generator, n: int, B: int, scale: float) -> Case:
    """scale * sum(sin(x @ w)): a loss of size ~1e-8 to ~1e8, held to its own scale."""
    X = rng.normal(size=(B, n))
    w = rng.normal(size=n)

    def loss_fn(p, X):
        return scale * float(np.sum(np.sin(X @ p)))

    def grad(p, X):
        return scale * (X.T @ np.cos(X @ p))

    return Case("scaled loss", loss_fn, grad, grad, w, (X,), tuple(range(n)), f"scale {scale:.1e}")


@st.composite
def scaled_losses(draw) -> Case:
    return scaled(_seeded(draw), draw(st.integers(1, 6), label="n"), draw(st.integers(1, 8), label="B"),
                  draw(log_uniform(1e-8, 1e8), label="scale"))


# ---------------------------------------------------------------- params near 1e-6 and 1e6

def extreme(rng: np.random.Generator, n: int, B: int, size: float) -> Case:
    """Params of size ``size`` (1e-6 or 1e6) in a loss that varies on their
    own scale for large ones (the step is relative there) and on unit scale
    for small ones (the step is absolute there, as a network's tiny
    initial weights are)."""
    X = rng.normal(size=(B, n))
    w = size * (1.0 + 0.3 * rng.normal(size=n))
    k = 1.0 / size if size > 1 else 1.0

    def loss_fn(p, X):
        return float(np.sum(np.sin(k * (X @ p) + 0.3)))

    def grad(p, X):
        return k * (X.T @ np.cos(k * (X @ p) + 0.3))

    return Case("params near 1e-6 / 1e6", loss_fn, grad, grad, w, (X,), tuple(range(n)), f"size {size:.0e}")


@st.composite
def extreme_params(draw) -> Case:
    size = draw(st.sampled_from([1e-6, 1e6]), label="size") * draw(st.floats(0.3, 3.0), label="factor")
    return extreme(_seeded(draw), draw(st.integers(1, 6), label="n"), draw(st.integers(1, 8), label="B"), size)


# ---------------------------------------------------------------- ill-conditioned quadratics

def quadratic(rng: np.random.Generator, n: int, cond: float, distance: float) -> Case:
    """1/2 w'Aw - b'w with eigenvalues spread over ``cond``, at ``distance``
    from its minimum: the gradient Aw - b is a small difference of large terms."""
    Q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = (Q * np.logspace(0, np.log10(cond), n)) @ Q.T
    A = (A + A.T) / 2
    b = rng.normal(size=n)
    w = np.linalg.solve(A, b) + distance * rng.normal(size=n)

    def loss_fn(p):
        return 0.5 * float(p @ A @ p) - float(b @ p)

    def grad(p):
        return A @ p - b

    return Case("ill-conditioned quadratic", loss_fn, grad, grad, w, (), tuple(range(n)),
                f"n={n}, cond {cond:.0e}, distance {distance:.0e}")


@st.composite
def quadratics(draw) -> Case:
    return quadratic(_seeded(draw), draw(st.integers(1, 6), label="n"),
                     draw(log_uniform(1.0, 1e8), label="cond"),
                     draw(log_uniform(1e-6, 1.0), label="distance"))


# ---------------------------------------------------------------- saturated softmax / cross-entropy

def softmax_ce(rng: np.random.Generator, d: int, k: int, B: int, temperature: float) -> Case:
    """Mean cross-entropy of softmax(x @ W): logits of size ``temperature``
    saturate it, so the loss is a log-sum-exp minus a logit of equal size."""
    X = rng.normal(size=(B, d))
    W = temperature * rng.normal(size=(d, k)) / np.sqrt(d)
    labels = rng.integers(0, k, size=B)

    def _parts(p, X, labels):
        z = X @ p
        m = np.max(z, axis=1, keepdims=True)
        e = np.exp(z - m)
        return z, m, e, e / np.sum(e, axis=1, keepdims=True)

    def loss_fn(p, X, labels):
        z, m, e, _ = _parts(p, X, labels)
        lse = m[:, 0] + np.log(np.sum(e, axis=1))
        return float(np.mean(lse - z[np.arange(len(labels)), labels]))

    def grad(p, X, labels):
        *_, s = _parts(p, X, labels)
        s[np.arange(len(labels)), labels] -= 1.0
        return X.T @ s / len(labels)

    return Case("saturated softmax", loss_fn, grad, grad, W, (X, labels), tuple(range(W.size)),
                f"d={d}, k={k}, B={B}, temperature {temperature:.0e}")


@st.composite
def saturated_softmaxes(draw) -> Case:
    return softmax_ce(_seeded(draw), draw(st.integers(1, 4), label="d"), draw(st.integers(2, 4), label="k"),
                      draw(st.integers(1, 6), label="B"), draw(log_uniform(1.0, 1e3), label="temperature"))


# ---------------------------------------------------------------- log-sum-exp with large offsets

def lse_offset(w: np.ndarray, offset: float) -> Case:
    """logsumexp(w + offset) - offset, computed stably: equal to logsumexp(w)
    but carrying the rounding of ``offset``."""
    def loss_fn(p):
        z = p + offset
        m = np.max(z)
        return float(m + np.log(np.sum(np.exp(z - m))) - offset)

    def grad(p):
        e = np.exp(p - np.max(p))
        return e / np.sum(e)

    return Case("log-sum-exp offset", loss_fn, grad, grad, w, (), tuple(range(w.size)), f"offset {offset:.1e}")


@st.composite
def log_sum_exps(draw) -> Case:
    n = draw(st.integers(1, 8), label="n")
    w = np.array(draw(st.lists(st.floats(-5.0, 5.0), min_size=n, max_size=n)))
    return lse_offset(w, draw(log_uniform(1.0, 1e8), label="offset"))


# ---------------------------------------------------------------- long sums

def long_sum(rng: np.random.Generator, d: int, N: int) -> Case:
    """A loss summed over N ~ 10^4 examples: its rounding grows with the sum."""
    X = rng.normal(size=(N, d))
    w = rng.normal(size=d)
    y = rng.normal(size=N)

    def loss_fn(p, X, y):
        r = np.tanh(X @ p) - y
        return float(np.sum(r * r))

    def grad(p, X, y):
        t = np.tanh(X @ p)
        return X.T @ (2 * (t - y) * (1 - t * t))

    return Case("long sum", loss_fn, grad, grad, w, (X, y), tuple(range(d)), f"d={d}, N={N}")


@st.composite
def long_sums(draw) -> Case:
    return long_sum(_seeded(draw), draw(st.integers(1, 4), label="d"), draw(st.integers(8_000, 12_000), label="N"))


# ---------------------------------------------------------------- oscillation

def oscillation(x0: np.ndarray, k: float) -> Case:
    """sum(sin(k x)) / k: for k near 1/h the ladder aliases it."""
    def loss_fn(x):
        return float(np.sum(np.sin(k * x)) / k)

    def grad(x):
        return np.cos(k * x)

    return Case("oscillation", loss_fn, grad, grad, x0, (), tuple(range(x0.size)), f"k {k:.2e} (k h = {k * H64:.2g})")


@st.composite
def oscillations(draw) -> Case:
    n = draw(st.integers(1, 4), label="n")
    x0 = np.array(draw(st.lists(st.floats(-1.0, 1.0), min_size=n, max_size=n)))
    return oscillation(x0, draw(log_uniform(1.0, 1e7), label="k"))


# ---------------------------------------------------------------- kinks

def near_fit(rng: np.random.Generator, dtype: Any, *, params: Any = None, batch: Any = None,
             work: Any = None) -> tuple[Any, ...]:
    """A tanh network (batch 1 to 16, 2 to 20 inputs, 2 to 8 hidden units,
    mean squared error) whose targets it nearly fits, grad_fn returning
    ``dtype``: each entry is a sum of per-example terms far larger than the
    sum, so its rounding is theirs. The params and the batch are held in
    ``params`` and ``batch``, and grad_fn computes in ``work`` (each
    ``dtype`` unless given: a model cast to float32 inside grad_fn, float16
    weights computed in float32). (loss_fn, grad_fn, params, batch, the
    exact gradient of the same held inputs in float64); shared with
    benchmarks/allowance.py."""
    p_dtype, b_dtype, work = params or dtype, batch or dtype, work or dtype
    b, d, h = int(rng.integers(1, 17)), int(rng.integers(2, 21)), int(rng.integers(2, 9))
    x = rng.standard_normal((b, d)).astype(b_dtype)
    w = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(p_dtype)
    v = (rng.standard_normal(h) / np.sqrt(h)).astype(p_dtype)
    fit = np.tanh(x.astype(np.float64) @ w.astype(np.float64)) @ v.astype(np.float64)
    y = (fit + 1e-3 * rng.standard_normal(b)).astype(b_dtype)  # nearly fitted: small residuals

    def gradient(p: dict, x: np.ndarray, y: np.ndarray, work: Any, out: Any) -> dict:
        wp, vp, xd, yd = p["W"].astype(work), p["v"].astype(work), x.astype(work), y.astype(work)
        a = np.tanh(xd @ wp)
        r = a @ vp - yd
        return {"W": (xd.T @ ((r[:, None] * vp[None, :]) * (1 - a * a)) / work(b)).astype(out),
                "v": (a.T @ r / work(b)).astype(out)}

    def loss_fn(p: dict, x: np.ndarray, y: np.ndarray) -> float:
        r = np.tanh(x.astype(np.float64) @ p["W"].astype(np.float64)) @ p["v"].astype(np.float64) - y
        return float(0.5 * np.mean(r * r))

    held = {"W": w, "v": v}
    exact = gradient(held, x, y, np.float64, np.float64)
    return loss_fn, (lambda p, x, y: gradient(p, x, y, work, dtype)), held, (x, y), exact


def kinked(x_smooth: np.ndarray, n_kinks: int, kind: str, offset_steps: float) -> Case:
    """relu or |.| of ``n_kinks`` entries, each ``offset_steps`` steps h
    from its kink (0: on it), beside sin of the smooth entries."""
    a = offset_steps * H64
    f, df = (np.abs, np.sign) if kind == "abs" else ((lambda z: np.maximum(z, 0.0)),
                                                     (lambda z: (z > 0).astype(float)))
    x0 = np.concatenate([np.zeros(n_kinks), x_smooth])

    def loss_fn(x):
        return float(np.sum(f(x[:n_kinks] - a)) + np.sum(np.sin(x[n_kinks:])))

    def grad(x):
        return np.concatenate([df(x[:n_kinks] - a), np.cos(x[n_kinks:])])

    return Case("kinks", loss_fn, grad, grad, x0, (), tuple(range(n_kinks, x0.size)),
                f"{n_kinks} x {kind} at {offset_steps:g} h")


@st.composite
def kinks(draw) -> Case:
    n_smooth = draw(st.integers(1, 4), label="smooth")
    x = np.array(draw(st.lists(st.floats(-2.0, 2.0).filter(lambda v: abs(v) > 1e-3),
                               min_size=n_smooth, max_size=n_smooth)))
    return kinked(x, draw(st.integers(1, 4), label="kinks"), draw(st.sampled_from(["relu", "abs"])),
                  draw(st.sampled_from([0.0, 0.0, 0.3, 1.5, 3.0, 6.0]), label="offset"))


FAMILIES: dict[str, Callable[[], st.SearchStrategy[Case]]] = {
    "cancellation": cancellations,
    "float32 params": lambda: narrow_param_cases(dtype=np.float32),
    "float16 params": lambda: narrow_param_cases(dtype=np.float16),
    "float32 loss": float32_losses,
    "scaled loss": scaled_losses,
    "extreme params": extreme_params,
    "ill-conditioned quadratic": quadratics,
    "saturated softmax": saturated_softmaxes,
    "log-sum-exp offset": log_sum_exps,
    "long sum": long_sums,
    "oscillation": oscillations,
    "kinks": kinks,
}
