"""check_reduction and infer_reduction: does a gradient reduce over the batch
the way its author says (mean, sum, weighted mean)?

Every law compares gradients returned by the function under test on related
batches (single examples, the batch duplicated, reordered, split), so no
finite differences are needed: only the rounding of the function itself,
bounded by :func:`gradcheck.numerics.sum_rounding`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, first_nonfinite
from ._compare import compare_leaves
from ._tree import TreeDef, as_batch, tree_def
from .errors import GradcheckUsageError
from .verdict import FAILS, Verdict, combine

CLAIM = "check_reduction"
DECOMPOSITION = "per-example decomposition"
SCALE = "sum = B × mean"
DUPLICATION = "duplication"
PERMUTATION = "permutation"
SPLIT = "split/merge"


# -- batch surgery: every array of the batch is cut the same way -----------------

def take(batch: Sequence[np.ndarray], index: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a)[index] for a in batch)


def duplicate(batch: Sequence[np.ndarray], k: int = 2) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([a] * k, axis=0) for a in batch)


@dataclass(frozen=True)
class Declared:
    """The reduction a gradient claims: coefficients c_i such that the batch
    gradient is sum_i c_i g_i, g_i the gradient on example i alone."""

    reduction: str
    weights: np.ndarray | None

    def name(self) -> str:
        return f'weighted {self.reduction}' if self.weights is not None else self.reduction

    def coefficients(self, w: np.ndarray) -> np.ndarray:
        """c_i for a batch whose per-example weights are ``w`` (ones if unweighted)."""
        if self.reduction == "sum":
            return w.astype(np.float64)
        return w / np.sum(w)

    def relative(self, size: int) -> np.ndarray:
        return np.ones(size) if self.weights is None else self.weights


def _declared(reduction: str, weights: Any, size: int) -> Declared:
    if reduction not in ("mean", "sum"):
        raise GradcheckUsageError(f'reduction={reduction!r} is not "mean" or "sum" '
                                  f'(pass weights= for a weighted mean)')
    if weights is None:
        return Declared(reduction, None)
    w = np.asarray(weights)
    if w.shape != (size,):
        raise GradcheckUsageError(f"weights has shape {w.shape}; it needs one weight per example, "
                                  f"shape ({size},), aligned with the batch")
    if not np.issubdtype(w.dtype, np.number) or np.iscomplexobj(w):
        raise GradcheckUsageError(f"weights has dtype {w.dtype}; it must be real numbers")
    w = w.astype(np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise GradcheckUsageError("weights must be finite and >= 0 (zero marks an ignored example)")
    if np.count_nonzero(w) == 0:
        raise GradcheckUsageError("weights are all zero: the weighted mean of the batch is undefined")
    return Declared(reduction, w)


class _Experiment:
    """The gradient under test, called on cuts of one batch, with bounds."""

    def __init__(self, grad_fn: Callable[..., Any], params: Any, batch: tuple[Any, ...],
                 declared: Declared) -> None:
        self.td: TreeDef = tree_def(params)
        self.batch = as_batch(batch)
        self.size = self.batch[0].shape[0]
        if self.size < 2:
            raise GradcheckUsageError("batch has 1 example: a batch of one cannot tell a sum from "
                                      "a mean; pass at least 2 examples")
        self.declared = declared
        self.w = declared.relative(self.size)
        self.caller = GradCaller(grad_fn, params, self.td)
        self.G = self.caller(self.batch)
        live = np.flatnonzero(self.w > 0)
        # A sub-batch of total weight zero has no weighted mean: never form one.
        self.singles = {int(i): self._single(int(i)) for i in live}
        # The scale of the terms at the sum's size: the rounding allowance of
        # every law but the decomposition, large enough for any declared
        # reduction and for gradients that are sums of cancelling terms.
        self.terms = sum((self.w[i] * np.abs(g) for i, g in self.singles.items()), np.zeros_like(self.G))

    def _single(self, i: int) -> np.ndarray:
        try:
            return self.caller(take(self.batch, slice(i, i + 1)))
        except (ZeroDivisionError, FloatingPointError):
            # A batch of one that divides by zero (B - 1 = 0) is a finding
            # about the reduction, reported like a non-finite gradient.
            return np.full(self.G.shape, np.inf)

    @property
    def dtype(self) -> np.dtype:
        return self.caller.dtype

    def combination(self, coeffs: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
        """sum_i c_i g_i and sum_i |c_i g_i| over the single-example gradients."""
        total = np.zeros_like(self.G)
        terms = np.zeros_like(self.G)
        for i, c in coeffs.items():
            total += c * self.singles[i]
            terms += np.abs(c * self.singles[i])
        return total, terms

    def compare(self, law: str, got: np.ndarray, want: np.ndarray, terms: np.ndarray,
                count: int, message: str = "") -> Verdict:
        return compare_leaves(self.td, CLAIM, law, got, want, terms, count, self.dtype, message,
                              evaluations=self.caller.calls)


def check_reduction(grad_fn: Callable[..., Any], params: Any, *batch: Any, reduction: str = "mean",
                    weights: Any = None, seed: int = 0) -> Verdict:
    """Check that ``grad_fn`` reduces over the batch as declared.

    Laws: per-example decomposition (the batch gradient is sum_i c_i g_i, with
    c_i = 1/B for "mean", 1 for "sum", w_i / sum(w) with ``weights=``), the
    scale law sum = B × mean, duplication, permutation and split/merge. All
    batch arrays are cut alike along axis 0.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
    >>> x, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 0.0, 2.0])
    >>> check_reduction(grad, np.array([1.0]), x, y, reduction="mean").holds
    True
    >>> check_reduction(grad, np.array([1.0]), x, y, reduction="sum").holds
    False
    """
    seed = _args.seed(seed)
    _args.inputs(params, batch, batch_required=True, grad_fn=grad_fn)
    sizes = as_batch(batch)[0].shape[0]
    weights = _args.weights(weights, sizes)
    exp = _Experiment(grad_fn, params, batch, _declared(reduction, weights, sizes))
    bad = _nonfinite(exp)
    if bad is not None:
        return bad
    rng = np.random.default_rng(seed)
    laws = [_decomposition(exp), _duplication(exp), _permutation(exp, rng), _split(exp)]
    verdict = combine(CLAIM, [v for v in laws if v is not None])
    if verdict.holds:
        laws = ", ".join(v.law for v in verdict.details)
        verdict = verdict.with_(law=laws, message=f'the gradient reduces as a {exp.declared.name()} over '
                                        f'B={exp.size} examples under every law checked')
    return verdict


def _nonfinite(exp: _Experiment) -> Verdict | None:
    named = [("the batch", exp.G)] + [(f"example {i} alone", g) for i, g in exp.singles.items()]
    for label, g in named:
        if not np.all(np.isfinite(g)):
            where = first_nonfinite(exp.td, g)
            law, hint = DECOMPOSITION, ""
            if label != "the batch" and np.all(np.isfinite(exp.G)):
                law, hint = SCALE, ("; the batch of B examples is finite but a batch of one is not, "
                                    "which looks like dividing the sum by B-1 instead of B")
            return Verdict(CLAIM, law, FAILS, np.inf, 0.0,
                           f"grad_fn returned a non-finite gradient on {label}: {where}{hint}",
                           evaluations=exp.caller.calls)
    return None


# -- the laws ----------------------------------------------------------------------

def _decomposition(exp: _Experiment) -> Verdict:
    coeffs = exp.declared.coefficients(exp.w)
    want, terms = exp.combination({i: coeffs[i] for i in exp.singles})
    v = exp.compare(DECOMPOSITION, exp.G, want, terms, exp.size)
    if v.holds:
        return v.with_(message=f"the batch gradient is the {exp.declared.name()} of the "
                               f"per-example gradients")
    return _diagnose(exp, v)


def _duplication(exp: _Experiment) -> Verdict:
    G2 = exp.caller(duplicate(exp.batch))
    factor = 2.0 if exp.declared.reduction == "sum" else 1.0
    v = exp.compare(DUPLICATION, G2, factor * exp.G, 2 * exp.terms + factor * np.abs(exp.G), 2 * exp.size)
    if v.holds:
        return v.with_(message=f"duplicating the batch multiplied the gradient by {factor:g}")
    measured = _ratio(G2, exp.G)
    guess = {1.0: "mean", 2.0: "sum"}.get(round(measured, 6))
    looks = f'; this looks like "{guess}"' if guess else ""
    return v.with_(message=f'declared "{exp.declared.name()}", but duplicating the batch multiplied '
                           f'the gradient by {measured:.9g} (expected {factor:g}){looks}')


def _permutation(exp: _Experiment, rng: np.random.Generator) -> Verdict:
    # A random derangement: every example moves, so order-dependence shows.
    order = _derangement(rng, exp.size)
    Gp = exp.caller(take(exp.batch, order))
    v = exp.compare(PERMUTATION, Gp, exp.G, exp.terms + np.abs(exp.G), exp.size)
    if v.holds:
        return v.with_(message="reordering the examples left the gradient unchanged")
    return v.with_(message=f"reordering the examples (order {order.tolist()}) changed the gradient: "
                           f"it depends on where an example sits in the batch")


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    perm = rng.permutation(n)
    order = np.empty(n, dtype=np.int64)
    order[perm] = np.roll(perm, -1)  # position perm[k] receives example perm[k + 1]
    return order


def _split(exp: _Experiment) -> Verdict | None:
    cut = _cut_point(exp.w)
    if cut is None:
        return None
    parts = [np.arange(cut), np.arange(cut, exp.size)]
    grads = [exp.caller(take(exp.batch, p)) for p in parts]
    if exp.declared.reduction == "sum":
        share = [1.0, 1.0]
    else:
        total = np.sum(exp.w)
        share = [float(np.sum(exp.w[p]) / total) for p in parts]
    want = share[0] * grads[0] + share[1] * grads[1]
    v = exp.compare(SPLIT, exp.G, want, exp.terms + np.abs(want), exp.size)
    sizes = f"sub-batches of {cut} and {exp.size - cut} examples"
    if v.holds:
        return v.with_(message=f"merging the gradients of {sizes} gives the batch gradient")
    return v.with_(message=f"merging the gradients of {sizes} with shares {share[0]:.4g} and "
                           f"{share[1]:.4g} does not give the batch gradient")


def _cut_point(w: np.ndarray) -> int | None:
    """A split into unequal parts (B//3, the rest), each of positive weight."""
    n = w.size
    for cut in [max(1, n // 3)] + list(range(1, n)):
        if np.sum(w[:cut]) > 0 and np.sum(w[cut:]) > 0:
            return cut
    return None


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    """The least-squares c in a ≈ c b."""
    denom = float(np.dot(b, b))
    return float(np.dot(a, b)) / denom if denom > 0 else np.nan


# -- diagnosis: what does the implementation do instead? -----------------------------

def _diagnose(exp: _Experiment, failed: Verdict) -> Verdict:
    """Explain a failed decomposition: a wrong overall scale, leaves that
    disagree on the scale, unequal example weights, or interacting examples."""
    shape, terms = exp.combination({i: exp.w[i] for i in exp.singles})
    scales = {leaf.path: _ratio(_cut(exp.G, leaf), _cut(shape, leaf)) for leaf in exp.td.leaves}
    factor = np.concatenate([np.full(leaf.size, np.nan_to_num(scales[leaf.path]))
                             for leaf in exp.td.leaves])
    fits_scaled = exp.compare(SCALE, exp.G, factor * shape, np.abs(factor) * terms, exp.size).holds
    if fits_scaled:
        return _scale_verdict(exp, failed, scales, shape)
    return _weights_verdict(exp, failed)


def _cut(flat: np.ndarray, leaf: Any) -> np.ndarray:
    return flat[leaf.start:leaf.start + leaf.size]


def _scale_verdict(exp: _Experiment, failed: Verdict, scales: dict[str, float],
                   shape: np.ndarray) -> Verdict:
    tau = _match_tolerance(exp)
    values = [v for v in scales.values() if np.isfinite(v) and v != 0]
    if values and (max(values) - min(values)) > tau * max(abs(v) for v in values):
        words = ", ".join(f'params{path} looks like "{_label(exp, s, None)}"'
                          if _label(exp, s, None) in ("mean", "sum") else
                          f"params{path} is scaled by {s:.4g}" for path, s in scales.items()
                          if np.isfinite(s))
        return failed.with_(law=SCALE, message=f"parameters disagree on the reduction: {words}")
    s = _ratio(exp.G, shape)
    s2 = _ratio(exp.caller(duplicate(exp.batch)), 2 * shape)
    expected = float(exp.declared.coefficients(exp.w)[0] / exp.w[0]) if exp.w[0] > 0 else np.nan
    looks = _label(exp, s, s2)
    what = f'this looks like "{looks}"' if looks in ("mean", "sum") else f"this looks like {looks}"
    if looks == "sum" and exp.declared.reduction == "mean":
        # A batch of one cannot tell a sum from a sum over a fixed divisor.
        what += " (or a fixed divisor, such as a nominal batch size, that does not follow B)"
    of = "the weighted sum" if exp.declared.weights is not None else "the sum"
    return failed.with_(law=SCALE, message=(
        f'declared "{exp.declared.name()}", but the gradient is {s:.6g} × {of} of per-example '
        f"gradients at B={exp.size} (expected {expected:.6g}) and {s2:.6g} × at B={2 * exp.size} "
        f"(the batch duplicated); {what}"), evaluations=exp.caller.calls)


def _match_tolerance(exp: _Experiment) -> float:
    # Scale factors are ratios of gradients; they carry the relative rounding
    # of the function under test, which sum_rounding bounds per unit.
    return float(nm.sum_rounding(1.0, exp.dtype, 2 * exp.size)) * 16


def _label(exp: _Experiment, s: float, s2: float | None) -> str:
    """Name the scale s (at B) and s2 (at 2B) of sum_i u_i g_i."""
    B, tau = exp.size, _match_tolerance(exp)
    total = float(np.sum(exp.w))
    candidates = [("sum", 1.0, 1.0), ("mean", total, 2 * total)]
    if exp.declared.weights is None:
        candidates += [("1/B applied twice (the mean divided by B again); duplicating the batch "
                        "halves the gradient", B * B, 4.0 * B * B),
                       ("dividing the sum by B-1 instead of B", B - 1.0, 2 * B - 1.0)]
    else:
        candidates.append(("dividing by the number of examples B instead of the total weight",
                           float(B), 2.0 * B))
    close = lambda a, b: abs(a - b) <= tau * abs(b)  # noqa: E731
    for name, at_b, at_2b in candidates:
        if s != 0 and close(1 / s, at_b) and (s2 is None or (s2 != 0 and close(1 / s2, at_2b))):
            return name
    if s2 is not None and s != 0 and s2 != 0 and close(1 / s, 1 / s2):
        k = 1 / s
        shown = f"{round(k)}" if close(k, round(k)) else f"{k:.6g}"
        return f"dividing by a fixed batch size of {shown}, whatever the batch size"
    if s2 is None:
        return f"{s:.6g} × the sum"
    return f"the sum divided by {1 / s:.6g} at B={B} and by {1 / s2:.6g} at B={2 * B}"


def _weights_verdict(exp: _Experiment, failed: Verdict) -> Verdict:
    order = sorted(exp.singles)
    M = np.stack([exp.singles[i] for i in order], axis=1)
    if M.shape[0] >= M.shape[1] and np.linalg.matrix_rank(M) == M.shape[1]:
        a, *_ = np.linalg.lstsq(M, exp.G, rcond=None)
        fit = exp.compare(DECOMPOSITION, exp.G, M @ a, np.abs(M) @ np.abs(a), exp.size)
        if fit.holds:
            return failed.with_(message=_unequal_words(exp, order, a))
        unexplained = float(np.linalg.norm(exp.G - M @ a) / max(np.linalg.norm(exp.G), 1e-300))
        share = f"the best combination of them leaves {unexplained:.1%} of it unexplained"
    else:
        share = "it differs from their combination"
    return failed.with_(message=(
        f"the batch gradient is not a combination of the per-example gradients ({share}): "
        f"the examples interact — the loss was averaged before backpropagation, the gradient was "
        f"taken at the mean example, or the model uses batch statistics"))


def _unequal_words(exp: _Experiment, order: list[int], a: np.ndarray) -> str:
    shown = "[" + ", ".join(f"{x:.4g}" for x in a[:8]) + (", …]" if a.size > 8 else "]")
    big = np.abs(a) > 1e-6 * np.abs(a).max()
    if np.count_nonzero(big) == 1:
        i = order[int(np.argmax(np.abs(a)))]
        return (f"only example {i} contributes: the batch gradient is {a.max():.4g} × its gradient "
                f"and ignores the other {exp.size - 1} (fitted weights {shown})")
    expected = exp.declared.coefficients(exp.w)[order]
    uniform = np.allclose(a, a.mean(), rtol=_match_tolerance(exp), atol=0)
    if exp.declared.weights is not None and uniform:
        return (f"the examples count equally (fitted a = {shown}, a plain mean), not by their "
                f"weights: e.g. per-sequence token means averaged instead of one division by the "
                f"total weight")
    exp_shown = "[" + ", ".join(f"{x:.4g}" for x in expected[:8]) + (", …]" if a.size > 8 else "]")
    return (f"the examples are weighted unequally: the batch gradient is sum_i a_i g_i with fitted "
            f"a = {shown}, expected {exp_shown} for a {exp.declared.name()}; if this is a weighted "
            f"mean (class weights, token masks), pass weights= with the weight of each example")


def infer_reduction(grad_fn: Callable[..., Any], params: Any, *batch: Any, weights: Any = None,
                    seed: int = 0) -> str:
    """Say how ``grad_fn`` reduces over the batch: "mean", "sum", or plain words.

    The answer is "mean" or "sum" only if every law of :func:`check_reduction`
    holds for it; otherwise the words describe what the gradient does.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y)
    >>> x, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 0.0, 2.0])
    >>> infer_reduction(grad, np.array([1.0]), x, y)
    'sum'
    """
    as_mean = check_reduction(grad_fn, params, *batch, reduction="mean", weights=weights, seed=seed)
    as_sum = check_reduction(grad_fn, params, *batch, reduction="sum", weights=weights, seed=seed)
    if as_mean.holds and as_sum.holds:
        return ("undetermined: the gradient is the same as a mean and as a sum on every cut of this "
                "batch (is it zero?); try another batch or params")
    if as_mean.holds or as_sum.holds:
        return "mean" if as_mean.holds else "sum"
    if as_mean.law == SCALE and as_mean.message.startswith("declared"):
        label = as_mean.message.split("this looks like ", 1)[1]
        return f"neither: {label}"
    return f"neither: {as_mean.message}"
