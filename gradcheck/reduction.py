"""check_reduction and infer_reduction: does a gradient reduce over the batch
the way its author says (a mean, a sum, a weighted mean or sum), with or
without a term of the parameters alone (L2 or weight decay in the loss)?

The model. ``grad_fn`` is called on each example alone (s_i) and on a few
cuts S of the batch: the batch, the batch duplicated, reordered, without one
example, and without its zero-weight examples. Every cut is modelled as

    G(S) = sum_{i in S} a_i(S) s_i + phi(S) t,

with a_i(S) the coefficient a rule gives example i in S and t one fixed
vector. If the loss adds rho(S) R(theta) to the data term, each s_i carries
rho(1) grad R, so the residual G(S) - sum_i a_i(S) s_i of any cut is
(rho(S) - sum_i a_i(S) rho(1)) grad R: one fixed vector times phi(S), a
known function of the cut. phi is zero for a mean with a fixed term (there
the term cannot be told from a per-example one, nor needs to be), and not
for a sum with a fixed term or a mean whose term is divided by B with the
data. t is fitted by least squares over the cuts; a rule holds where every
cut agrees with it within the rounding of the terms it is made of
(:func:`gradcheck.numerics.sum_rounding`).

Rounding. Each comparison is held to the rounding of the terms it is made
of, at its own scale (a gradient of 1e-8 to the rounding of 1e-8). Where a
law fails, it is checked again at params moved slightly: a law that holds
there failed on a kink ("not differentiable here"); one that fails there too
is checked once more with grad_fn's own rounding measured (a gradient can
carry the rounding of large values it was computed from), and only then is
it a finding. Every verdict states its resolution: the smallest relative
error in a typical entry of the batch's data gradient it was certain to
catch, and holds only where that is within the resolution asked for.

The declared rule is checked law by law (decomposition, duplication,
permutation, split/merge, zero weights). Where it fails, the same model is
fitted with other rules (sum, mean, 1/B twice, B - 1, micro-batch means of
every size, weights ignored; a term fixed, divided by B, or added per
example), per parameter array, and, given enough parameters, with free
per-example weights; the verdict describes the fit that explains every cut,
or says what was measured and leaves the cause open.

Weights. A weighted mean sum_i w_i l_i / sum_i w_i gives example i alone its
own gradient, so the weights show in how the batch combines the examples. A
weighted sum sum_i w_i l_i gives example i alone w_i times its gradient: the
batch is the plain sum of what the examples give alone, whatever the w_i,
so from grad_fn alone a weighted sum cannot be told from a sum with other
weights; what ``weights=`` adds there is that an example of weight zero
counts for nothing (the zero-weight law). No cut of total weight zero is
ever formed, and no example of weight zero is called alone.

Why a cut of B - 1 examples: a loop that averages the means of micro-batches
of m examples is a mean exactly when m divides the batch size. B and B - 1
are coprime, so no m from 2 to B - 1 divides both: at one of the two sizes
the last micro-batch is short, its examples weigh more than the others, and
that cut fails.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, first_nonfinite
from ._compare import compare_leaves
from ._tree import Leaf, TreeDef, as_batch, tree_def
from .errors import GradcheckUsageError
from .verdict import FAILS, NOT_DIFFERENTIABLE, PRECISION_LIMITED, UNDETERMINED, Verdict, combine

CLAIM = "check_reduction"
DECOMPOSITION = "per-example decomposition"
SCALE = "sum = B × mean"
DUPLICATION = "duplication"
PERMUTATION = "permutation"
SPLIT = "split/merge"
ZERO_WEIGHTS = "zero weights"
REGULARIZER = "parameter-only term"
REGULARIZERS = ("fixed", "divided")


# -- batch surgery: every array of the batch is cut the same way -----------------

def take(batch: Sequence[np.ndarray], index: Any) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a)[index] for a in batch)


def duplicate(batch: Sequence[np.ndarray], k: int = 2) -> tuple[np.ndarray, ...]:
    return tuple(np.concatenate([a] * k, axis=0) for a in batch)


@dataclass(frozen=True)
class Cut:
    """A sub-batch grad_fn is called on: the example at each position."""

    key: str
    law: str
    index: np.ndarray
    label: str


def _cuts(w: np.ndarray, rng: np.random.Generator) -> list[Cut]:
    n = w.size
    whole = np.arange(n)
    cuts = [Cut("batch", DECOMPOSITION, whole, f"the batch (B={n})"),
            Cut("dup", DUPLICATION, np.concatenate([whole, whole]), f"the batch duplicated (B={2 * n})"),
            Cut("perm", PERMUTATION, _derangement(rng, n), f"the batch reordered (B={n})")]
    live = np.flatnonzero(w > 0)
    part = _part(n, live)
    if part is not None:
        cuts.append(Cut("part", SPLIT, *part))
    if live.size < n:
        # A sub-batch of total weight zero has no weighted mean: never form one.
        cuts.append(Cut("live", ZERO_WEIGHTS, live, f"the batch without its zero-weight examples "
                                                    f"(B={live.size})"))
    return cuts


def _part(n: int, live: np.ndarray) -> tuple[np.ndarray, str] | None:
    """B - 1 examples (without the last one of positive weight); for B = 2,
    example 0 twice, a cut of the batch's size with other examples."""
    if n >= 3 and live.size >= 2:
        j = int(live[-1])
        return np.delete(np.arange(n), j), f"the batch without example {j} (B={n - 1})"
    if n == 2 and live.size == 2:
        return np.array([0, 0]), "example 0 twice (B=2)"
    return None


def _derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    perm = rng.permutation(n)
    order = np.empty(n, dtype=np.int64)
    order[perm] = np.roll(perm, -1)  # position perm[k] receives example perm[k + 1]
    return order


# -- rules: how a gradient combines the examples of a cut --------------------------

WEIGHTED_KINDS = {"weighted mean", "weighted sum", "weighted sum / B", "chunk weighted mean"}
# Data kinds tried with every way of scaling a parameter-only term.
MEAN_KINDS = {"mean", "weighted mean"}
# Kinds whose failure is an overall scale: reported under the law sum = B × mean.
SCALE_KINDS = {"mean", "sum", "mean twice", "B-1", "weighted mean", "weighted sum"}

_COEF: dict[str, Callable[[int, np.ndarray], np.ndarray]] = {
    "mean": lambda n, wi: np.full(n, 1.0 / n),
    "sum": lambda n, wi: np.ones(n),
    "mean twice": lambda n, wi: np.full(n, 1.0 / n ** 2),
    "B-1": lambda n, wi: np.full(n, 1.0 / max(n - 1, 1)),
    "weighted mean": lambda n, wi: wi / np.sum(wi),
    "weighted sum": lambda n, wi: (wi > 0).astype(np.float64),
    "weighted sum / B": lambda n, wi: (wi > 0) / n,
}


@dataclass(frozen=True)
class Rule:
    """Coefficients of the single-example gradients in a cut (relative to each
    example alone: under a weighted mean, example i alone is its own gradient;
    under a weighted sum, w_i times it), and how the weight rho of a
    parameter-only term moves with the cut."""

    data: str
    penalty: str = "fixed"  # "fixed", "divided" (by B or the total weight), "per example"
    m: int = 0  # micro-batch size of the chunk kinds

    def coef(self, index: np.ndarray, w: np.ndarray) -> np.ndarray | None:
        wi = w[index]
        if self.data.startswith("chunk"):
            return _chunk_coef(self.data, wi, self.m)
        return _COEF[self.data](index.size, wi)

    def rho(self, index: np.ndarray, w: np.ndarray) -> float:
        if self.penalty == "fixed":
            return 1.0
        if self.penalty == "per example":
            return float(index.size)
        total = float(np.sum(w[index])) if self.data in WEIGHTED_KINDS else float(index.size)
        return 1.0 / total if total > 0 else np.inf


def _chunk_coef(kind: str, wi: np.ndarray, m: int) -> np.ndarray | None:
    """Consecutive micro-batches of m (the last one short) each reduced on its
    own: a mean of their means, a sum of their means, or a mean of their
    weighted means (None where a micro-batch has no weight)."""
    n = wi.size
    edges = list(range(0, n, m)) + [n]
    q = len(edges) - 1
    out = np.empty(n)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if kind == "chunk mean":
            out[lo:hi] = 1.0 / (q * (hi - lo))
        elif kind == "chunk sum":
            out[lo:hi] = 1.0 / (hi - lo)
        else:
            total = float(np.sum(wi[lo:hi]))
            if total <= 0:
                return None
            out[lo:hi] = wi[lo:hi] / (q * total)
    return out


@dataclass(frozen=True)
class Declared:
    reduction: str
    weighted: bool
    regularizer: str

    @property
    def rule(self) -> Rule:
        return Rule(("weighted " if self.weighted else "") + self.reduction, self.regularizer)

    @property
    def name(self) -> str:
        return ("weighted " if self.weighted else "") + self.reduction

    def words(self) -> str:
        extra = ' with regularizer="divided"' if self.regularizer == "divided" else ""
        return f'"{self.name}"{extra}'


def _declared(reduction: Any, weights: np.ndarray | None, regularizer: Any) -> Declared:
    if not isinstance(reduction, str) or reduction not in ("mean", "sum"):
        raise GradcheckUsageError(f'reduction={reduction!r} is not "mean" or "sum" '
                                  f'(pass weights= for a weighted mean or sum)')
    regularizer = _args.choice("regularizer", regularizer, REGULARIZERS)
    if reduction == "sum" and regularizer == "divided":
        raise GradcheckUsageError('regularizer="divided" divides the parameter-only term by what the data '
                                  'term is divided by, and a sum divides by nothing; pass regularizer="fixed" '
                                  'with reduction="sum", or reduction="mean"')
    return Declared(reduction, weights is not None, regularizer)


# -- what was observed: gradients of the cuts and of single examples ---------------

class _View:
    """The gradients the model is fitted to, on every entry or on one parameter array."""

    def __init__(self, td: TreeDef, w: np.ndarray, cuts: list[Cut], G: dict[str, np.ndarray],
                 S: np.ndarray, have: np.ndarray, bad: dict[int, str], dtype: np.dtype,
                 call: Callable[[np.ndarray], np.ndarray] | None = None, noise: float = 0.0,
                 floor: float | None = None) -> None:
        self.td, self.w, self.cuts, self.G = td, w, cuts, G
        self.S, self.have, self.bad, self.dtype = S, have, bad, dtype
        self.call = call  # grad_fn on a cut, for cuts the diagnosis adds
        self.noise = noise  # the magnitude whose rounding grad_fn's values carry, as measured
        self.floor = floor  # the magnitude every entry's rounding is held to, if not the comparison's own
        self.size = w.size
        self.P = S.shape[1]

    def cut(self, key: str) -> Cut | None:
        return next((c for c in self.cuts if c.key == key), None)

    def restrict(self, leaf: Leaf) -> "_View":
        sl = slice(leaf.start, leaf.start + leaf.size)
        td = TreeDef((Leaf(leaf.path, leaf.shape, leaf.dtype, 0),), 0)
        # One array's entries carry the rounding of intermediate values shared
        # with all the others: held to the whole gradient's scale, not their own.
        whole = float(np.max(np.abs(self.G["batch"]) + np.abs(self.S).sum(axis=0) / max(self.have.sum(), 1)))
        return _View(td, self.w, self.cuts, {k: g[sl] for k, g in self.G.items()}, self.S[:, sl],
                     self.have, self.bad, self.dtype, None, self.noise, whole)

    def grown(self, cut: Cut) -> "_View":
        """This view with one more cut (grad_fn is called on it)."""
        if self.call is None or self.cut(cut.key) is not None:
            return self
        G = dict(self.G)
        G[cut.key] = self.call(cut.index)
        return _View(self.td, self.w, self.cuts + [cut], G, self.S, self.have, self.bad, self.dtype,
                     self.call, self.noise, self.floor)

    def compare(self, law: str, got: np.ndarray, want: np.ndarray, terms: np.ndarray, count: int,
                data: np.ndarray, weight: float = 2.0) -> Verdict:
        """got against want; ``weight`` is how many evaluations of grad_fn they
        are made of (1 + the sum of |coefficients|): each carries the rounding
        of the measured noise magnitude, whatever the size of its own values."""
        # The comparison's own scale, not a unit: grad_fn's rounding beyond the
        # model is measured instead (_Session.noise).
        return compare_leaves(self.td, CLAIM, law, got, want, terms + self.noise * weight, count, self.dtype,
                              size=_rms(data), floor=self.floor)


def _observe(caller: GradCaller, td: TreeDef, batch: tuple[np.ndarray, ...], w: np.ndarray,
             cuts: list[Cut]) -> _View:
    G = {cut.key: caller(take(batch, cut.index)) for cut in cuts}
    S = np.zeros((w.size, td.size))
    have = np.zeros(w.size, dtype=bool)
    bad: dict[int, str] = {}
    for i in np.flatnonzero(w > 0):
        g = _single(caller, batch, int(i))
        if np.all(np.isfinite(g)):
            S[i], have[i] = g, True
        else:
            bad[int(i)] = first_nonfinite(td, g)
    return _View(td, w, cuts, G, S, have, bad, caller.dtype, lambda index: caller(take(batch, index)))


def _single(caller: GradCaller, batch: tuple[np.ndarray, ...], i: int) -> np.ndarray:
    try:
        return caller(take(batch, slice(i, i + 1)))
    except (ZeroDivisionError, FloatingPointError):
        # A batch of one that divides by zero (B - 1 = 0) is a finding about
        # the reduction, reported like a non-finite gradient.
        return np.full(caller.td.size, np.inf)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def _ratio(a: np.ndarray, b: np.ndarray) -> float:
    """The least-squares c in a ≈ c b."""
    denom = float(np.dot(b, b))
    return float(np.dot(a, b)) / denom if denom > 0 else np.nan


# -- fitting a rule: coefficients, a parameter-only term, and the check of each cut --

@dataclass
class _Fit:
    rule: Rule
    a: dict[str, np.ndarray]  # per cut: the coefficient of each example's gradient
    phi: dict[str, float]
    rho: dict[str, float]
    t: np.ndarray  # the parameter-only term as it appears in one example's gradient
    t_terms: np.ndarray  # the rounding scale t carries
    t_weight: float  # how many evaluations t is made of
    D: dict[str, np.ndarray]  # sum_i a_i s_i
    T: dict[str, np.ndarray]  # the absolute terms of D, and of G
    checks: dict[str, Verdict]

    @property
    def consistent(self) -> bool:
        return all(v.holds for v in self.checks.values())

    def weight(self, key: str) -> float:
        """How many evaluations a cut's comparison with its prediction is made of."""
        return 1.0 + float(np.sum(np.abs(self.a[key]))) + abs(self.phi[key]) * self.t_weight

    def data(self, view: _View, key: str) -> np.ndarray:
        """The cut's gradient without its parameter-only term."""
        return view.G[key] - self.rho[key] * self.t


def _fit(view: _View, rule: Rule) -> _Fit | None:
    """Fit t for ``rule`` and check every cut; None where the rule needs a
    single-example gradient that could not be had, or is undefined."""
    a = {}
    for cut in view.cuts:
        coef = rule.coef(cut.index, view.w)
        if coef is None:
            return None
        per_example = np.zeros(view.size)
        np.add.at(per_example, cut.index, coef)
        if np.any(per_example[~view.have] != 0):
            return None
        a[cut.key] = per_example
    D = {k: c @ view.S for k, c in a.items()}
    T = {k: np.abs(c) @ np.abs(view.S) + np.abs(view.G[k]) for k, c in a.items()}
    rho = {cut.key: rule.rho(cut.index, view.w) for cut in view.cuts}
    phi = {cut.key: _phi(rule, view.w, a[cut.key], rho[cut.key]) for cut in view.cuts}
    t, t_terms, t_weight = _penalty_direction(view, D, T, phi, a)
    fit = _Fit(rule, a, phi, rho, t, t_terms, t_weight, D, T, {})
    for cut in view.cuts:
        k = cut.key
        fit.checks[k] = view.compare(cut.law, view.G[k], D[k] + phi[k] * t, T[k] + abs(phi[k]) * t_terms,
                                     cut.index.size + 2, fit.data(view, k), fit.weight(k))
    return fit


def _phi(rule: Rule, w: np.ndarray, a: np.ndarray, rho_s: float) -> float:
    """rho(S) - sum_i a_i rho({i}): how much of the term a cut has beyond what
    its examples' own gradients bring."""
    live = np.flatnonzero(a)
    rho_1 = np.array([rule.rho(np.array([i]), w) for i in live])
    value = rho_s - float(a[live] @ rho_1)
    scale = abs(rho_s) + float(np.abs(a[live]) @ np.abs(rho_1))
    # A few float64 operations on the coefficients: below their rounding, phi
    # is an exact zero (a mean with a fixed term) that rounding disguised.
    return 0.0 if abs(value) <= (live.size + 2) * nm.eps(np.float64) * scale else value


def _penalty_direction(view: _View, D: dict, T: dict, phi: dict,
                       a: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Least squares t over the cuts, residual_k = phi_k t; the rounding it
    carries, and how many evaluations it is made of."""
    keys = [k for k, p in phi.items() if p != 0]
    if len(keys) < 2:
        # Fitted to one cut alone, t would absorb whatever that cut holds and
        # prove nothing: a term is identified only where two cuts show it.
        return np.zeros(view.P), np.zeros(view.P), 0.0
    den = sum(phi[k] ** 2 for k in keys)
    t = sum(phi[k] * (view.G[k] - D[k]) for k in keys) / den
    t_terms = sum(abs(phi[k]) * T[k] for k in keys) / den
    t_weight = sum(abs(phi[k]) * (1.0 + float(np.sum(np.abs(a[k])))) for k in keys) / den
    return t, t_terms, t_weight


def _penalty_share(view: _View, fit: _Fit, key: str) -> tuple[float, bool]:
    """The parameter-only term's size in a cut relative to the cut's gradient,
    and whether it stands above its rounding."""
    pen = fit.rho[key] * fit.t
    v = view.compare(REGULARIZER, pen, np.zeros_like(pen), abs(fit.rho[key]) * fit.t_terms, 2, pen,
                     abs(fit.rho[key]) * fit.t_weight)
    size = float(np.linalg.norm(view.G[key]))
    return (float(np.linalg.norm(pen)) / size if size > 0 else np.inf), v.fails


# -- the declared rule, law by law -----------------------------------------------------

def _judge(view: _View, declared: Declared, requested: float) -> Verdict:
    bad = _nonfinite(view, declared)
    if bad is not None:
        return bad.with_(requested=requested)
    fit = _fit(view, declared.rule)
    if fit is None:  # unreachable: every live example's gradient is finite here
        return _fail(view, DECOMPOSITION, "the declared reduction could not be fitted").with_(requested=requested)
    laws = [law(view, fit, declared) for law in (_decomposition, _duplication, _permutation, _split,
                                                 _zero_weights)]
    laws = [v for v in laws if v is not None]
    # Every law's allowance against a typical entry of the batch's data
    # gradient, the gradient a wrong reduction would mislead training with.
    size = _rms(fit.data(view, "batch"))
    widest = max(v.tolerance for v in laws)
    resolution = nm.CATCH_FACTOR * widest / size if size > 0 else np.inf
    verdict = combine(CLAIM, laws).with_(resolution=resolution, requested=requested)
    if verdict.holds:
        return _held(view, declared, fit, verdict)
    return verdict


def _fail(view: _View, law: str, message: str) -> Verdict:
    # Nothing could be compared: no relative error of any size was resolved.
    return Verdict(CLAIM, law, FAILS, np.inf, 0.0, message, dtype=f"gradient in {view.dtype.name}",
                   resolution=np.inf)


def _nonfinite(view: _View, declared: Declared) -> Verdict | None:
    for cut in view.cuts:
        g = view.G[cut.key]
        if not np.all(np.isfinite(g)):
            return _fail(view, cut.law, f"grad_fn returned a non-finite gradient on {cut.label}: "
                                        f"{first_nonfinite(view.td, g)}")
    if view.bad:
        return _fail(view, DECOMPOSITION, _bad_singles_words(view, declared))
    return None


def _bad_singles_words(view: _View, declared: Declared) -> str:
    idx = sorted(view.bad)
    everyone = len(idx) == int(np.count_nonzero(view.w > 0))
    who = "every example" if everyone else f"example{'s' if len(idx) > 1 else ''} {_runs(idx)}"
    head = (f'declared {declared.words()}, but {who} alone gives a non-finite gradient '
            f'({view.bad[idx[0]]}) while the batch is finite')
    if everyone:
        return head + _b_minus_1_evidence(view)
    if declared.weighted:
        return head + ("; a batch of one of them divides by zero though its weight is positive: are the "
                       "weights passed the ones the loss uses?")
    return head + ("; a batch of only such an example divides 0 by 0, so it seems to carry no weight (an "
                   "ignored target, a fully masked sequence): this looks like a weighted mean; pass weights= "
                   "with weight 0 for those examples")


def _b_minus_1_evidence(view: _View) -> str:
    n = view.size
    measured = _ratio(view.G["dup"], view.G["batch"])
    named = 2.0 * (n - 1) / (2 * n - 1)
    G, G2 = view.G["batch"], view.G["dup"]
    fits = view.compare(DUPLICATION, G2, named * G, np.abs(G2) + named * np.abs(G), 2 * n, G2).holds
    if fits and n > 2:
        return (f"; duplicating the batch multiplies the gradient by {measured:.6g} = 2(B-1)/(2B-1), as "
                f"dividing the sum by B-1 instead of B does (B-1 is zero for one example)")
    return (f"; a batch of one divides by zero (duplicating the batch multiplies the gradient by "
            f"{measured:.6g})")


def _decomposition(view: _View, fit: _Fit, declared: Declared) -> Verdict:
    v = fit.checks["batch"]
    if v.holds:
        return v.with_(message=f"the batch gradient is the {declared.name} of the per-example gradients")
    return v.with_(message=f"the batch gradient is not the {declared.name} of the per-example gradients")


def _duplication(view: _View, fit: _Fit, declared: Declared) -> Verdict:
    n = view.size
    alpha = float(fit.a["dup"].sum() / fit.a["batch"].sum())  # 1 for a mean, 2 for a sum
    dphi = fit.phi["dup"] - alpha * fit.phi["batch"]
    want = alpha * view.G["batch"] + dphi * fit.t
    terms = fit.T["dup"] + alpha * fit.T["batch"] + abs(dphi) * fit.t_terms
    v = view.compare(DUPLICATION, view.G["dup"], want, terms, 2 * n + 2, fit.data(view, "dup"),
                     1 + alpha + abs(dphi) * fit.t_weight)
    if v.holds:
        return v.with_(message=f"duplicating the batch multiplied its data term by {alpha:g}")
    measured = _ratio(fit.data(view, "dup"), fit.data(view, "batch"))
    return v.with_(message=f"duplicating the batch multiplied the gradient by {measured:.9g} "
                           f"(expected {alpha:g})")


def _permutation(view: _View, fit: _Fit, declared: Declared) -> Verdict:
    cut = view.cut("perm")
    dphi = fit.phi["perm"] - fit.phi["batch"]
    v = view.compare(PERMUTATION, view.G["perm"], view.G["batch"] + dphi * fit.t,
                     fit.T["perm"] + fit.T["batch"] + abs(dphi) * fit.t_terms, view.size + 2,
                     fit.data(view, "perm"), 2 + abs(dphi) * fit.t_weight)
    if v.holds:
        return v.with_(message="reordering the examples left the gradient unchanged")
    return v.with_(message=f"reordering the examples (order {cut.index.tolist()}) changed the gradient: "
                           f"it depends on where an example sits in the batch")


def _split(view: _View, fit: _Fit, declared: Declared) -> Verdict | None:
    cut = view.cut("part")
    if cut is None:
        return None
    v = fit.checks["part"]
    if v.holds:
        return v.with_(message=f"{cut.label} reduces as a {declared.name} too, so the parts of a split "
                               f"merge into the batch gradient")
    return v.with_(message=f"{cut.label} does not reduce as a {declared.name}, so the parts of a split "
                           f"do not merge into the batch gradient")


def _zero_weights(view: _View, fit: _Fit, declared: Declared) -> Verdict | None:
    if view.cut("live") is None:
        return None
    dphi = fit.phi["live"] - fit.phi["batch"]
    v = view.compare(ZERO_WEIGHTS, view.G["live"], view.G["batch"] + dphi * fit.t,
                     fit.T["live"] + fit.T["batch"] + abs(dphi) * fit.t_terms, view.size + 2,
                     fit.data(view, "live"), 2 + abs(dphi) * fit.t_weight)
    zeros = _runs(np.flatnonzero(view.w == 0))
    if v.holds:
        return v.with_(message=f"removing the zero-weight examples ({zeros}) left the gradient unchanged")
    return v.with_(message=f"removing the zero-weight examples ({zeros}) changed the gradient")


def _held(view: _View, declared: Declared, fit: _Fit, v: Verdict) -> Verdict:
    laws = ", ".join(d.law for d in v.details)
    if v.resolution > v.requested:
        return v.with_(outcome=UNDETERMINED, reason=PRECISION_LIMITED, law=laws,
                       message=_limited_words(view, v))
    return v.with_(law=laws, message=f"the gradient reduces as a {declared.name} over B={view.size} "
                                     f"examples under every law checked{_penalty_note(view, fit)}")


def _penalty_note(view: _View, fit: _Fit) -> str:
    if all(p == 0 for p in fit.phi.values()):
        return ("; a parameter-only term of fixed weight, if any, is part of every example's gradient "
                "under a mean and needs no check apart")
    share, seen = _penalty_share(view, fit, "batch")
    if not seen:
        return "; no parameter-only term stands above the rounding"
    how = _PENALTY_WORDS[fit.rule.penalty]
    return f", plus a parameter-only term (L2 or weight decay) {how}, {share:.3g} of the gradient's size"


def _limited_words(view: _View, v: Verdict) -> str:
    unit = float(nm.sum_rounding(1.0, view.dtype, view.size))
    head = (f"every law holds, but the check could only have caught a relative error above "
            f"{v.resolution:.1e} in a typical gradient entry (asked {v.requested:.1e})")
    if not np.isfinite(v.resolution):
        return (head + ": the data term of the gradient is zero on this batch (within rounding), so no "
                "reduction can be seen; check at other params or with another batch")
    cancel = v.resolution / unit
    in64 = cancel * float(nm.sum_rounding(1.0, np.float64, view.size))
    why = []
    if view.dtype != np.float64:
        why.append(f"the gradient is {view.dtype.name}, whose rounding alone allows {unit:.1e} of an "
                   f"entry: return it in float64, where this check would reach {in64:.1e}")
    size = _rms(view.G["batch"])
    if view.noise > 0 and size > 0 and view.noise * nm.C_GRAD * nm.eps(view.dtype) > v.requested * size:
        seen = _seen(view)
        if _common_grid(seen, view.dtype) > 0:
            # Exact levels (signs) and the residue of a large term that
            # cancels look alike from outside: neither cause is named.
            bits = int(np.max(_bits(seen[seen != 0])[1]))
            why.append(f"every value grad_fn returned keeps at most {bits} significant bit{'s' * (bits != 1)}, "
                       f"which exact levels (the signs of an L1 or Huber term through saturated units) and the "
                       f"rounding residue of a large term that cancels both do, and rounding that coarse would "
                       f"hide the reduction: check at params where the gradient takes values of many bits")
        else:
            why.append(f"grad_fn's values carry the rounding of values about {view.noise / size:.3g} times "
                       f"larger than its entries (measured by moving the params and the batch: a large term "
                       f"added and taken away, or a saturated softmax): compute the gradient without that "
                       f"cancellation")
    elif in64 > v.requested:
        why.append(f"the gradient's entries are {cancel:.3g} times smaller than the terms summed into them "
                   f"(the per-example gradients cancel, e.g. near a minimum, or the data term is small "
                   f"beside a parameter-only term): check at other params or with another batch")
    coarser = 10 ** np.ceil(np.log10(v.resolution))
    ask = f"; or pass resolution={coarser:.0e}" if coarser < 1 else ""
    return head + ": " + "; ".join(why) + ask


# -- kinks: a law that fails at the point but holds nearby ---------------------------

def _kink(failed: Verdict, nearby: Verdict, move: float) -> Verdict:
    """A law that fails at params but at no params moved slightly: a kink."""
    head = (f"not differentiable here: the {failed.law} law fails at params, but no law fails at params "
            f"moved by {move:.1e} (relative): grad_fn has a kink at params (an L1 or ReLU term exactly at 0, "
            f"where batched and single-example passes round to different sides), so its reduction cannot be "
            f"judged there")
    if nearby.holds:
        return failed.with_(outcome=UNDETERMINED, reason=NOT_DIFFERENTIABLE, resolution=nearby.resolution,
                            message=head + "; nearby it reduces as declared, so this is no wrong reduction")
    # Nearby the laws hold only to a coarse resolution: a reduction wrong by
    # less than that is not ruled out, so the verdict is that limit.
    return nearby.with_(message=f"{head}; nearby, {nearby.message}")


# -- diagnosis: one model, fitted, then described ------------------------------------

@dataclass(frozen=True)
class _Finding:
    law: str
    words: str  # what follows 'declared "mean", but '
    short: str  # infer_reduction's plain words
    level: int = 0  # 0: no parameter-only term needed; 1: a fixed one; 2: one that moves with B


def _diagnose(view: _View, declared: Declared, failed: Verdict,
              fallback: _View | None = None) -> tuple[Verdict, str]:
    """Describe a failure by the simplest model that fits every cut; where
    none does and a ``fallback`` view is given (the moved params, away from a
    kink that may blur the fit), describe it there instead."""
    swap = _swap(view)
    if swap is not None:
        view = view.grown(swap)
    named = _named(view, declared, failed)
    # A model that needs a parameter-only term comes after the plain evidence
    # that zero-weight examples count: examples never called alone, and always
    # together, look like one fixed vector to the fit.
    plain = named if named is not None and named.level == 0 else None
    models = (lambda *a: plain, _zero_weights_count, lambda *a: _leaves_or_term(view, declared, failed, named))
    finding = next((f for f in (find(view, declared, failed) for find in models) if f is not None), None)
    if finding is None and fallback is not None:
        return _diagnose(fallback, declared, failed)
    if finding is None:
        finding = next(f for f in (find(view, declared, failed) for find in (_free, _merge_share, _open))
                       if f is not None)
    if view.bad:
        return failed.with_(message=f"{failed.message}; of the others, {finding.words}"), finding.short
    # The numbers of the law the finding names, where it was one of those checked.
    shown = next((d for d in failed.details if d.law == finding.law and d.fails), failed)
    return (failed.with_(law=finding.law, error=shown.error, tolerance=shown.tolerance,
                         message=f"declared {declared.words()}, but {finding.words}"), finding.short)


def _leaves_or_term(view: _View, declared: Declared, failed: Verdict, named: _Finding | None) -> _Finding | None:
    """A model with a parameter-only term, or leaves that reduce differently.

    Both can fit every cut: a leaf whose per-example gradients are all alike
    (a bias behind ReLUs that are all off) and summed is also "a mean plus a
    term added once per example". Leaves reducing differently need no term
    the user may not have, so they lead and the term is named beside them."""
    leaves = _leaves_disagree(view, declared, failed)
    if leaves is None or named is None:
        return named or leaves
    term = named.words.replace("its parameter-only term", "a parameter-only term", 1)
    return replace(leaves, words=f"{leaves.words} — or, as some parameters' per-example gradients are alike on "
                                 f"this batch and it cannot tell the two apart, {term}")


def _swap(view: _View) -> Cut | None:
    """A cut of the batch's size with other examples: a parameter-only term is
    the same in both, examples that interact are not."""
    live = np.flatnonzero(view.w > 0)
    if view.size < 3 or live.size < 2:
        return None  # for B = 2, the split/merge cut (example 0 twice) is this
    index = np.arange(view.size)
    index[live[-1]] = live[0]
    return Cut("swap", DECOMPOSITION, index, f"the batch with example {live[-1]} replaced by example "
                                             f"{live[0]} (B={view.size})")


def _rules(view: _View, declared: Declared) -> list[Rule]:
    n = view.size
    if declared.weighted:
        kinds = ["weighted mean", "weighted sum", "mean", "weighted sum / B"]
        chunks = ["chunk weighted mean", "chunk mean"]
    else:
        kinds = ["mean", "sum", "mean twice", "B-1"]
        chunks = ["chunk mean", "chunk sum"]
    kinds.sort(key=lambda k: k != declared.rule.data)
    rules = [Rule(k, p) for k in kinds for p in ("fixed", "divided", "per example")
             if p == "fixed" or k in MEAN_KINDS]
    # Micro-batches of m = B fit the batch, its duplicate and the B-1 cut evenly: a mean on every cut.
    rules += [Rule(k, "fixed", m) for m in range(2, 2 * n) if m != n for k in chunks]
    return [r for r in rules if r != declared.rule]


def _named(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    fits = [f for f in (_fit(view, r) for r in _rules(view, declared)) if f is not None and f.consistent]
    if not fits:
        return None
    groups = _distinct(fits)
    # The simplest explanation first: no parameter-only term, then a fixed one,
    # then one that moves with B. Others that fit too are named beside it.
    levels = [min(_level(view, f) for f in g) for g in groups]
    best = [g for g, lv in zip(groups, levels) if lv == min(levels)]
    if len(best) > 1:
        return _ambiguous(view, declared, best)
    others = [g for g in groups if g is not best[0]]
    group = best[0]
    if group[0].rule.data == declared.rule.data:
        finding = _penalty_finding(view, declared, group)
    else:
        finding = _kind_finding(view, declared, group)
    finding = replace(finding, level=min(levels))
    if not others:
        return finding
    alike = "; ".join(_model_words(g[0], declared) for g in others)
    return replace(finding, words=f"{finding.words} (these examples are too alike to rule out {alike})")


def _level(view: _View, fit: _Fit) -> int:
    if not _penalty_share(view, fit, "batch")[1]:
        return 0
    return 1 if fit.rule.penalty == "fixed" else 2


def _model_words(fit: _Fit, declared: Declared) -> str:
    words = _kind_words(fit.rule.data, fit.rule.m, declared)[1]
    return words if fit.rule.penalty == "fixed" else \
        f"{words} with a parameter-only term {_PENALTY_WORDS[fit.rule.penalty]}"


def _pick(view: _View, fits: list[_Fit]) -> _Fit:
    """Of fits of one kind, one whose parameter-only term stands out, if any."""
    return next((f for f in fits if _penalty_share(view, f, "batch")[1]), fits[0])


def _distinct(fits: list[_Fit]) -> list[list[_Fit]]:
    """Group the fits by the coefficients they give every cut (two names for one
    model, such as weights ignored and the weighted sum over B, go together)."""
    groups: list[list[_Fit]] = []
    for f in fits:
        for g in groups:
            # Coefficients are exact fractions computed in float64: equal to
            # their own rounding (a few ulps) is equal.
            if all(np.allclose(f.a[k], g[0].a[k], rtol=1e-12, atol=0) for k in f.a):
                g.append(f)
                break
        else:
            groups.append([f])
    return groups


_PENALTY_WORDS = {
    "fixed": "of fixed weight (it does not move with B)",
    "divided": "divided by B along with the data",
    "per example": "added once per example (its weight grows with B)",
}


_PENALTY_ADVICE = {
    "divided": ("as in scikit-learn's MLP and LogisticRegression, (sum_i l_i + alpha/2 ||W||^2) / B; pass "
                'regularizer="divided" if that is intended, or add the term after dividing the data term'),
    "per example": "add the term once, outside the per-example loss",
    "fixed": 'pass regularizer="fixed" (the default) if that is intended',
}


def _penalty_how(declared: Declared, penalty: str) -> str:
    if declared.weighted and penalty == "divided":
        return "divided by the total weight along with the data"
    return _PENALTY_WORDS[penalty]


def _penalty_finding(view: _View, declared: Declared, group: list[_Fit]) -> _Finding:
    """The data term reduces as declared; the parameter-only term moves otherwise."""
    seen = [f for f in group if _penalty_share(view, f, "batch")[1]] or group[:1]
    fit = seen[0]
    n = view.size
    share_b, _ = _penalty_share(view, fit, "batch")
    share_d, _ = _penalty_share(view, fit, "dup")
    hows = list(dict.fromkeys(_penalty_how(declared, f.rule.penalty) for f in seen))
    if len(hows) == 1:
        how, advice = hows[0], _PENALTY_ADVICE[fit.rule.penalty]
    else:
        how = " or ".join(hows) + " (the rounding of these gradients cannot tell which)"
        advice = "add it once, with a weight that does not move with B, or declare how it moves"
    words = (f"its parameter-only term (L2 or weight decay in the loss) is {how}: it is {share_b:.3g} of the "
             f"gradient's size at B={n} and {share_d:.3g} at B={2 * n} (the batch duplicated), while the data "
             f"term reduces as a {declared.name}; {advice}")
    return _Finding(REGULARIZER, words, f"a {declared.name} whose parameter-only term is {how}")


def _kind_words(kind: str, m: int, declared: Declared) -> tuple[str, str]:
    """How a fitted kind reads: (the words after "this looks like", infer's short words)."""
    fixed = " (or a sum over a fixed divisor, such as a nominal batch size, that does not follow B)"
    words = {
        "sum": ('"sum"' + (fixed if declared.reduction == "mean" else ""), "a sum" + fixed),
        "mean": ('"mean"', "a mean"),
        "weighted mean": ('"mean" (a weighted mean, sum_i w_i l_i / sum_i w_i)', "a weighted mean"),
        "weighted sum": ('"sum" (a weighted sum, sum_i w_i l_i, not divided by the total weight)',
                         "a weighted sum"),
        "mean twice": ("1/B applied twice (the mean divided by B again); duplicating the batch halves the "
                       "gradient", "1/B applied twice (the mean divided by B again): duplicating the batch "
                                   "halves the gradient"),
        "B-1": ("dividing the sum by B-1 instead of B", "the sum divided by B-1 instead of B"),
        "weighted sum / B": ("the weighted sum divided by the number of examples B instead of by the total "
                             "weight", "the weighted sum divided by B instead of the total weight"),
        "chunk mean": (f"a mean of micro-batch means: consecutive micro-batches of {m} examples each get an "
                       f"equal share whatever their size, so the examples of a short last micro-batch weigh "
                       f"more; right only when B is a multiple of {m}: add up the micro-batch sums and divide "
                       f"once by the total count", f"a mean of the means of micro-batches of {m}"),
        "chunk sum": (f"a sum of micro-batch means (micro-batches of {m}): the sum divided by a fixed {m}, the "
                      f"micro-batch size, instead of by B, with a short last micro-batch weighing more",
                      f"a sum of the means of micro-batches of {m} (a fixed divisor {m})"),
        "chunk weighted mean": (f"a mean of per-micro-batch weighted means (token means of micro-batches of {m} "
                                f"examples): each micro-batch gets an equal share whatever its total weight; "
                                f"divide the weighted sum once by the total weight of the batch",
                                f"a mean of the weighted means of micro-batches of {m}"),
    }
    if declared.weighted and kind == "mean":
        return ("each example counting equally (a plain mean), not by its weight: the weights are ignored, or "
                "per-sequence means are averaged (a token mean of means), or the weighted sum is divided by B "
                "instead of by the total weight", "a plain mean that ignores the weights")
    return words[kind]


def _kind_finding(view: _View, declared: Declared, group: list[_Fit]) -> _Finding:
    fit = _pick(view, group)
    kind = fit.rule.data
    kinds = {f.rule.data for f in group}
    if declared.weighted and {"mean", "weighted sum / B"} <= kinds:
        kinds.discard("weighted sum / B")  # the plain mean's words name that cause too
    names = [_kind_words(f.rule.data, f.rule.m, declared) for f in group
             if f.rule.penalty == "fixed" and f.rule.data in kinds] or [_kind_words(kind, fit.rule.m, declared)]
    looks = " — or ".join(dict.fromkeys(w for w, _ in names))
    short = " or ".join(dict.fromkeys(s for _, s in names))
    if kind in SCALE_KINDS and not (declared.weighted and kind == "mean"):
        head, law = _scales_text(view, declared, fit), SCALE
    else:
        head, law = _weights_text(view, declared, fit), _first_different(view, declared, fit).law
    share, seen = _penalty_share(view, fit, "batch")
    extra = f"; plus a parameter-only term {_PENALTY_WORDS[fit.rule.penalty]}, {share:.3g} of the gradient's " \
            f"size" if seen else ""
    return _Finding(law, f"{head}; this looks like {looks}{extra}", short)


def _ambiguous(view: _View, declared: Declared, groups: list[list[_Fit]]) -> _Finding:
    names = [_kind_words(g[0].rule.data, g[0].rule.m, declared)[1] for g in groups]
    words = (f"the gradient fits several models on every cut of this batch ({'; '.join(names)}): the "
             f"batch cannot tell them apart (its examples' gradients are too alike, or cancel in their sums); check "
             f"with a batch of more varied examples")
    return _Finding(DECOMPOSITION, words, "undetermined between " + "; ".join(names))


def _scales_text(view: _View, declared: Declared, fit: _Fit) -> str:
    """Measured overall scales at each size against the declared ones."""
    v = view.w if declared.weighted and declared.reduction == "mean" else (view.w > 0).astype(np.float64)
    # The examples' data gradients: each example's gradient less the fitted term it carries.
    rho_1 = np.array([fit.rule.rho(np.array([i]), view.w) if view.have[i] else 0.0 for i in range(view.size)])
    data = view.S - np.outer(np.where(np.isfinite(rho_1), rho_1, 0.0), fit.t)
    parts = []
    for cut in (view.cut(k) for k in ("batch", "dup", "part")):
        if cut is None:
            continue
        V = (np.bincount(cut.index, minlength=view.size) * v) @ data
        total = float(np.sum(view.w[cut.index])) if declared.weighted else float(cut.index.size)
        expected = 1.0 / total if declared.reduction == "mean" else 1.0
        where = "" if cut.key == "batch" else f" ({cut.label.rsplit(' (', 1)[0]})"
        parts.append((_ratio(fit.data(view, cut.key), V), expected, f"B={cut.index.size}{where}"))
    of = "weighted sum" if declared.weighted else "sum"
    (g0, _, at0), rest = parts[0], parts[1:]
    said = f"the gradient is {g0:.6g} × the {of} of per-example gradients at {at0}" + "".join(
        f", {g:.6g} × at {at}" for g, _, at in rest)
    return f"{said} (expected {', '.join(f'{e:.6g}' for _, e, _ in parts)})"


def _first_different(view: _View, declared: Declared, fit: _Fit) -> Cut:
    ref = _fit(view, declared.rule)
    for cut in view.cuts:
        if ref is None or not np.allclose(fit.a[cut.key], ref.a[cut.key], rtol=1e-12, atol=0):  # see _distinct
            return cut
    return view.cuts[0]


def _weights_text(view: _View, declared: Declared, fit: _Fit) -> str:
    cut = _first_different(view, declared, fit)
    ex = np.unique(cut.index)
    ref = _fit(view, declared.rule)
    mine = _grouped(fit.a[cut.key][ex], ex)
    if ref is None:
        return f"on {cut.label} the examples weigh {mine}"
    return (f"on {cut.label} the examples weigh {mine}, where a {declared.name} gives "
            f"{_grouped(ref.a[cut.key][ex], ex)}")


def _grouped(values: np.ndarray, examples: np.ndarray, tol: float = 0.0) -> str:
    """Weights in full; when more than 8 and some equal (within ``tol``, or to
    the 4 digits shown), grouped by value with their examples."""
    groups: list[tuple[float, list[int]]] = []
    for v, i in zip(values, examples):
        for g in groups:
            if abs(v - g[0]) <= tol or f"{v:.4g}" == f"{g[0]:.4g}":
                g[1].append(int(i))
                break
        else:
            groups.append((float(v), [int(i)]))
    if len(values) <= 8 or len(groups) == len(values):
        return "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
    return "; ".join(f"{v:.4g} (example{'s' if len(m) > 1 else ''} {_runs(m)})" for v, m in groups)


def _runs(indices: Sequence[int]) -> str:
    """0, 1, 2, 3, 7 -> '0–3, 7'."""
    out, idx = [], sorted(int(i) for i in indices)
    start = prev = idx[0] if idx else 0
    for i in idx[1:] + [None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        out.append(f"{start}–{prev}" if prev > start + 1 else
                   (f"{start}, {prev}" if prev == start + 1 else f"{start}"))
        if i is not None:
            start = prev = i
    return ", ".join(out)


def _leaves_disagree(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    if len(view.td.leaves) < 2:
        return None
    kinds = (["weighted mean", "weighted sum", "mean"] if declared.weighted
             else ["mean", "sum", "mean twice", "B-1"])
    found: dict[str, str] = {}
    for leaf in view.td.leaves:
        sub = view.restrict(leaf)
        if _rms(sub.G["batch"]) == 0:
            continue  # a leaf without gradient says nothing about the reduction
        kind = next((k for k in kinds for p in ("fixed", declared.regularizer)
                     if (f := _fit(sub, Rule(k, p))) is not None and f.consistent), None)
        if kind is None:
            return None
        found[leaf.path] = kind
    if len(set(found.values())) < 2:
        return None
    said = ", ".join(f"params{p} looks like {_kind_words(k, 0, declared)[0].split(' (')[0]}"
                     for p, k in found.items())
    return _Finding(SCALE, f"parameters disagree on the reduction: {said}", f"parameters disagree: {said}")


def _zero_weights_count(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    law = next((d for d in failed.details if d.law == ZERO_WEIGHTS), None)
    if law is None or law.holds:
        return None
    zeros = _runs(np.flatnonzero(view.w == 0))
    rel = float(np.linalg.norm(view.G["batch"] - view.G["live"]) /
                max(np.linalg.norm(view.G["batch"]), np.finfo(float).tiny))
    words = (f"removing the zero-weight examples ({zeros}) changed the gradient by {rel:.3g} of its size: "
             f"they count though their weight is 0; are the weights (or the mask) applied in the loss?")
    return _Finding(ZERO_WEIGHTS, words, "zero-weight examples count")


# -- beyond the rules: what the cuts hold besides their examples' gradients ---------

def _span(view: _View) -> np.ndarray:
    """An orthonormal basis of the single-example gradients, to their rounding."""
    M = view.S[view.have].T
    if M.size == 0:
        return np.zeros((view.P, 0))
    U, sv, _ = np.linalg.svd(M, full_matrices=False)
    # A direction whose singular value is below the rounding of the entries
    # (spread over all P of them) is indistinguishable from none.
    floor = float(nm.sum_rounding(np.max(np.abs(M)), view.dtype, view.size)) * np.sqrt(view.P)
    return U[:, sv > floor]


def _outside(view: _View, Q: np.ndarray, declared: Declared) -> tuple[dict, dict]:
    """Each cut's gradient off the span of the single-example gradients, and
    whether it stands above the rounding of the cut and of its examples' terms."""
    res, checks = {}, {}
    for cut in view.cuts:
        g = view.G[cut.key]
        res[cut.key] = g - Q @ (Q.T @ g)
        terms = np.abs(g) + np.bincount(cut.index, minlength=view.size) @ np.abs(view.S) / cut.index.size
        checks[cut.key] = view.compare(cut.law, res[cut.key], np.zeros_like(g), terms, cut.index.size + 2, g)
    return res, checks


def _free(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    Q = _span(view)
    if view.P - Q.shape[1] < 2:
        return None  # no room beyond the examples' gradients: any gradient is a combination of them
    res, checks = _outside(view, Q, declared)
    if all(v.holds for v in checks.values()):
        return _weights_finding(view, declared, failed)
    u = np.linalg.svd(np.column_stack(list(res.values())), full_matrices=False)[0][:, 0]
    one = {k: view.compare(checks[k].law, r - (u @ r) * u, np.zeros_like(r),
                           np.abs(view.G[k]) + np.abs(r), 4, view.G[k]) for k, r in res.items()}
    if all(v.holds for v in one.values()) and _same_size_agree(view, res, checks):
        return _extra_finding(view, res, u)
    if view.bad or view.cut("live") is not None:
        return None  # examples never seen alone could be what is missing: the cause stays open
    key = max(res, key=lambda k: np.linalg.norm(res[k]) / max(np.linalg.norm(view.G[k]), np.finfo(float).tiny))
    left = float(np.linalg.norm(res[key]) / max(np.linalg.norm(view.G[key]), np.finfo(float).tiny))
    words = (f"the gradient on {view.cut(key).label} is not a combination of the per-example gradients, even "
             f"allowing a parameter-only term: {left:.3g} of it lies outside them all; the examples interact "
             f"— the loss was averaged before backpropagation, the gradient was taken at the mean example, "
             f"or the model uses batch statistics")
    return _Finding(DECOMPOSITION, words, "the examples interact (batch statistics, or averaged before "
                                          "backpropagation)")


def _same_size_agree(view: _View, res: dict, checks: dict) -> bool:
    """A parameter-only term's weight depends on the cut's size (and total
    weight), not on which examples it holds: cuts alike in both carry it alike."""
    def size(cut: Cut) -> tuple[int, float]:
        return cut.index.size, float(np.sum(view.w[cut.index]))
    for a in view.cuts:
        for b in view.cuts:
            if a.key < b.key and size(a) == size(b):
                terms = np.abs(view.G[a.key]) + np.abs(view.G[b.key])
                if view.compare(a.law, res[a.key], res[b.key], terms, 4, view.G[a.key]).fails:
                    return False
    return True


def _extra_finding(view: _View, res: dict, u: np.ndarray) -> _Finding:
    at = ", ".join(f"{float(u @ res[c.key]):.4g} on {c.label}" for c in view.cuts
                   if c.key in ("batch", "dup", "part"))
    words = (f"each cut's gradient is a combination of per-example gradients plus one vector that none of "
             f"them contains, in amounts {at}: a parameter-only term whose weight moves with B in none of "
             f"the ways checked (fixed, divided by B, added per example), or examples that depend on one "
             f"another in a way one vector covers; the cause is open")
    return _Finding(DECOMPOSITION, words, "per-example gradients plus one vector that moves with B "
                                          "(a parameter-only term?)")


@dataclass
class _Free:
    examples: np.ndarray
    beta: np.ndarray  # the fitted weight of each example
    delta: float  # how far rounding can move a fitted weight


def _free_fit(view: _View, cut: Cut) -> _Free | None:
    """Free weights of the examples in a cut; None where they are not determined."""
    ex = np.unique(cut.index)
    ex = ex[view.have[ex] & _moving(view)[ex]]
    cols = view.S[ex].T
    if ex.size == 0 or view.P < ex.size + 2:
        return None  # as many parameters as weights: any gradient fits, so a fit proves nothing
    sv = np.linalg.svd(cols, compute_uv=False)
    beta, *_ = np.linalg.lstsq(cols, view.G[cut.key], rcond=None)
    got = view.G[cut.key]
    check = view.compare(cut.law, got, cols @ beta, np.abs(cols) @ np.abs(beta) + np.abs(got), ex.size + 2, got,
                         1 + float(np.sum(np.abs(beta))))
    delta = nm.fit_uncertainty(check.tolerance, view.P, sv[-1])
    if not delta < float(np.max(np.abs(beta), initial=0.0)):
        return None  # degenerate: rounding alone could move the weights by as much as they are
    return _Free(ex, beta, delta)


def _moving(view: _View) -> np.ndarray:
    """Examples whose gradient alone stands above rounding: a zero gradient
    (an ignored target, a fully masked sequence) takes any weight alike."""
    floor = float(nm.sum_rounding(np.max(np.abs(view.S), initial=0.0), view.dtype, view.size))
    return view.have & (np.max(np.abs(view.S), axis=1) > floor)


def _weights_finding(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    cut = next((c for c in view.cuts if c.law == failed.law), view.cuts[0])
    f = _free_fit(view, cut)
    if f is None:
        return None
    shown = _grouped(f.beta, f.examples, 2 * f.delta) + _plus_minus(f.beta, f.delta)
    big = np.abs(f.beta) > 2 * f.delta
    if np.count_nonzero(big) == 1 and f.examples.size > 1:
        k = int(np.argmax(np.abs(f.beta)))
        i = int(f.examples[k])
        words = (f"only example {i} contributes: the gradient on {cut.label} is {f.beta[k]:.4g} × its gradient "
                 f"and ignores the other {cut.index.size - 1} (fitted weights {shown})")
        return _Finding(cut.law, words, f"only example {i} counts")
    everyone = np.unique(cut.index)
    still = np.setdiff1d(everyone[view.have[everyone]], f.examples)
    equal = f.examples.size > 1 and np.ptp(f.beta) <= 2 * f.delta
    if equal and still.size:
        return _uncounted_finding(view, declared, cut, f, still)
    if equal:
        return None  # equal weights: a scale, which the rules would have named if it were one
    ref = _fit(view, declared.rule)
    expected = "" if ref is None else \
        f", where a {declared.name} gives {_grouped(ref.a[cut.key][everyone], everyone)}"
    like = " (they add up to 1, as a weighted mean's do)" \
        if abs(float(np.sum(f.beta)) - 1) <= 2 * f.delta * f.beta.size else ""
    advice = ("are the weights passed the ones the loss uses?" if declared.weighted else
              "this looks like a weighted mean (sample or class weights, token counts): pass weights= with each "
              "example's weight")
    of = f" of examples {_runs(f.examples)} (example{'s' if still.size > 1 else ''} {_runs(still)} " \
         f"alone give{'' if still.size > 1 else 's'} a zero gradient)" if still.size else ""
    words = (f"the examples count unequally: the gradient on {cut.label} is sum_i a_i g_i with fitted "
             f"a = {shown}{of}{expected}{like}; {advice}")
    return _Finding(cut.law, words, "a mean whose examples count unequally (a weighted mean?)")


def _uncounted_finding(view: _View, declared: Declared, cut: Cut, f: _Free, still: np.ndarray) -> _Finding:
    """Equal weights for the examples with a gradient, none for those without."""
    many = "s" if still.size > 1 else ""
    advice = ("are the weights passed the ones the loss uses?" if declared.weighted else
              f"pass weights= with weight 0 for example{many} {_runs(still)}")
    words = (f"on {cut.label} examples {_runs(f.examples)} weigh {float(np.mean(f.beta)):.4g} each, a mean over "
             f"them alone: example{many} {_runs(still)}, whose gradient alone is zero, seem{'' if many else 's'} "
             f"not to be counted (an ignored target, a masked sequence); {advice}")
    return _Finding(cut.law, words, f"a mean over the examples other than {_runs(still)} (a weighted mean?)")


def _plus_minus(values: np.ndarray, delta: float) -> str:
    """The fit's uncertainty, where it reaches the 4 digits shown."""
    big = float(np.max(np.abs(values), initial=0.0))
    return f" (each ± {delta:.1g})" if delta > 5e-5 * big else ""


# -- fewer parameters than examples: what can still be measured ----------------------

def _merge_share(view: _View, declared: Declared, failed: Verdict) -> _Finding | None:
    """The shares at which the batch without one example and that example merge."""
    cut = view.cut("part")
    if cut is None or view.size < 3 or view.P < 3:
        return None  # two shares need a third equation to be tested
    j = int(np.setdiff1d(np.arange(view.size), cut.index)[0])
    if not view.have[j]:
        return None
    cols = np.column_stack([view.G["part"], view.S[j]])
    sv = np.linalg.svd(cols, compute_uv=False)
    c, *_ = np.linalg.lstsq(cols, view.G["batch"], rcond=None)
    got = view.G["batch"]
    check = view.compare(SPLIT, got, cols @ c, np.abs(cols) @ np.abs(c) + np.abs(got), view.size + 2, got,
                         1 + float(np.sum(np.abs(c))))
    delta = nm.fit_uncertainty(check.tolerance, view.P, sv[-1])
    if not check.holds or not delta < float(np.max(np.abs(c))):
        return None  # not a merge of the two, or rounding could move the shares by as much as they are
    return _Finding(SPLIT, _share_words(view, declared, failed, cut, j, c, delta), "a mean whose examples "
                    "count unequally (a weighted mean?)")


def _share_words(view: _View, declared: Declared, failed: Verdict, cut: Cut, j: int, c: np.ndarray,
                 delta: float) -> str:
    w = view.w if declared.weighted else np.ones(view.size)
    e = (np.array([np.sum(w[cut.index]), w[j]]) / np.sum(w) if declared.reduction == "mean" else np.ones(2))
    held = [d.law for d in failed.details if d.holds]
    note = f" ({' and '.join(held)} hold{'s' if len(held) == 1 else ''})" if held else ""
    words = (f"merging {cut.label} and example {j} alone gives the batch gradient only with shares "
             f"{c[0]:.4g} and {c[1]:.4g}{_plus_minus(c, delta)}, where a {declared.name} gives {e[0]:.4g} and "
             f"{e[1]:.4g}{note}")
    if abs(c.sum() - 1) > 2 * delta or declared.reduction != "mean":
        return words + "; the examples count otherwise than declared"
    advice = ("are the weights passed the ones the loss uses?" if declared.weighted else
              "this looks like a weighted mean (sample or class weights, token counts): pass weights= with "
              "each example's weight")
    return (f"{words}: the shares add up to 1, as a mean's do, but example {j} weighs {c[1] / e[1]:.4g} × its "
            f"declared share, so the examples count unequally; {advice}")


def _open(view: _View, declared: Declared, failed: Verdict) -> _Finding:
    measured = "; ".join(f"{d.law} holds" if d.holds else f"{d.law} off by {d.error:.3e} (tolerance "
                         f"{d.tolerance:.3e})" for d in failed.details) or failed.message
    live = int(np.count_nonzero(view.have))
    why = (f"with {view.P} parameters and {live} examples the per-example weights cannot be fitted one by one"
           if view.P < live + 2 else "some examples could not be seen alone, so a per-example fit proves "
                                    "nothing" if view.bad or view.cut("live") else
           "the per-example gradients are too nearly parallel to fit weights to them")
    words = (f"no model checked explains every cut ({measured}); {why}, and no rescaled sum or mean, "
             f"micro-batch means, or parameter-only term (fixed, divided by B, added per example) fits: the "
             f"cause is open (unequal example weights, a weighted mean without weights=, or examples that "
             f"depend on one another)")
    return _Finding(failed.law, words, "not a mean or a sum; the cause is open")


def _seen(view: _View) -> np.ndarray:
    """Every gradient a view holds, of each cut and of each example seen alone, as one flat array."""
    return np.concatenate([np.ravel(g) for g in view.G.values()] + [view.S[view.have].ravel()])


# -- the public checkers ------------------------------------------------------------

class _Session:
    """One batch, observed once at the params and, where a law fails, at moved params."""

    def __init__(self, grad_fn: Callable[..., Any], params: Any, batch: tuple[Any, ...],
                 weights: np.ndarray | None, seed: int) -> None:
        self.td = tree_def(params)
        self.batch = as_batch(batch)
        n = self.batch[0].shape[0]
        if n < 2:
            raise GradcheckUsageError("batch has 1 example: a batch of one cannot tell a sum from a mean; "
                                      "pass at least 2 examples")
        self.grad_fn = grad_fn
        self.flat = self.td.flatten(params)
        self.w = np.ones(n) if weights is None else weights
        self.rng = np.random.default_rng(seed)
        self.cuts = _cuts(self.w, self.rng)
        self.callers = [GradCaller(grad_fn, params, self.td)]
        self.view = _observe(self.callers[0], self.td, self.batch, self.w, self.cuts)
        self.move = nm.kink_move(self.td.dtype)
        self._moved: tuple[np.ndarray, _View] | None = None
        self._noise: float | None = None
        self.short = ""

    def caller(self, flat: np.ndarray) -> GradCaller:
        caller = GradCaller(self.grad_fn, self.td.unflatten(flat), self.td)
        self.callers.append(caller)
        return caller

    def moved(self) -> tuple[np.ndarray, _View]:
        """The params moved by numerics.kink_move of their size in a random direction, and the view there."""
        if self._moved is None:
            step = self.move * _sizes(self.flat) * self.rng.standard_normal(self.flat.size)
            flat = self.td.flatten(self.td.unflatten(self.flat + step))  # as the params' dtype holds it
            self._moved = flat, _observe(self.caller(flat), self.td, self.batch, self.w, self.cuts)
        return self._moved

    def noise(self) -> float:
        """The magnitude of the values whose rounding grad_fn's gradients carry, measured.

        The model allows C_GRAD ulps of the terms per evaluation; a gradient
        computed from large intermediate values carries their rounding instead
        (a difference of terms of 1e8, a saturated softmax). It is measured as
        the loss noise is, at the moved params (away from a kink, whose jump is
        no rounding), on the batch's gradient under moves of the params and of
        the batch's float arrays (a gradient may be flat in the params, as an
        L1 loss's is, but not in its data), in two ladders:
        numerics.NOISE_NARROW, within an eighth of a base step, where the
        gradient is a cubic to far below rounding but for one jump where the
        ladder crosses a kink, so that what a cubic with one step leaves is
        rounding; and numerics.NOISE_WIDE, up to 4 base steps, where values
        that keep to a coarse grid, moving by whole cells of it, show its
        spacing, half of which each carries. The result is the magnitude of
        the values whose rounding grad_fn's carry: every evaluation in a
        comparison is then held to it, whatever the size of its own values."""
        if self._noise is None:
            flat, view = self.moved()
            rng = np.random.default_rng(1)  # fixed: part of the error model, not a draw
            move = _random_weights(rng, flat.size) * _ladder_steps(self.td, flat, view.dtype)
            batch = [_batch_ladder(a, view.dtype, rng) for a in self.batch]

            def ladder(offsets: tuple[float, ...]) -> np.ndarray:
                return np.stack([view.G["batch"]] + [self.caller(flat + k * move)(_moved_batch(batch, k))
                                                     for k in offsets])
            narrow = ladder(nm.NOISE_NARROW)[1:]
            # Every gradient seen so far (of each cut, at both points) counts
            # for the common grid: a batch's gradient may round to 0 all along
            # the ladder while an example's keeps a cell of it.
            seen = np.concatenate([narrow.ravel(), _seen(self.view), _seen(view)])
            worst = max(_ladder_residual(np.array(nm.NOISE_NARROW), narrow), _widest_grid(ladder, view.dtype) / 2,
                        _common_grid(seen, view.dtype) / 2)
            # The magnitude of values whose C_GRAD ulps are that rounding, doubled:
            # the largest of a few samples of rounding understates the largest.
            self._noise = nm.NOISE_SAFETY * worst / (nm.C_GRAD * nm.eps(view.dtype))
        return self._noise

    def verdict(self, declared: Declared, requested: float) -> Verdict:
        self.short = ""
        # Each declaration is judged as check_reduction judges it alone, from the
        # modelled rounding: a noise measured while another one failed stays
        # cached (no calls are repeated) but is allowed only where a law fails
        # here too. Else infer_reduction judged "sum" under the noise "mean"
        # measured, and disagreed with check_reduction (the thorough profile:
        # an L1 gradient whose exact levels read as a coarse rounding grid).
        self.view.noise = 0.0
        if self._moved is not None:
            self._moved[1].noise = 0.0
        v = _judge(self.view, declared, requested)
        if not v.fails and self._coarse():
            # Every value keeps a few bits at most ((4e15 + g) - 4e15 leaves
            # multiples of 0.5): laws may hold exactly on that grid by chance
            # (at B = 2, 0.5 + 0 = 2 x 0.5 / 2), so its rounding is measured
            # before anything holds, not only once a law fails.
            self.view.noise = self.noise()
            v = _judge(self.view, declared, requested)
        if v.fails and np.isfinite(v.error):
            v = self._recheck(declared, requested, v)
        nonfinite = any(not np.all(np.isfinite(g)) for g in self.view.G.values())
        if v.fails and not nonfinite:
            # Described at the params given, where every leaf's gradient is as
            # the user sees it (moved off a ReLU net's ties, a leaf's gradient
            # may all but vanish and hide how it reduces); where no model fits
            # there (a kink that blurs the fit), at the moved params.
            v, self.short = _diagnose(self.view, declared, v, self._moved[1] if self._moved is not None else None)
        return v.with_(evaluations=sum(c.calls for c in self.callers), requested=requested)

    def _coarse(self) -> bool:
        """Whether every gradient seen at the params sits on a coarse common grid (see _common_grid)."""
        return _common_grid(_seen(self.view), self.view.dtype) > 0

    def _recheck(self, declared: Declared, requested: float, failed: Verdict) -> Verdict:
        """A law failed: a kink (it holds at moved params), rounding beyond the
        model (it holds once the measured rounding is allowed), or a finding."""
        _, moved = self.moved()
        nearby = _judge(moved, declared, requested)
        if not nearby.fails:
            return _kink(failed, nearby, self.move)
        noise = self.noise()
        if noise <= 0.0:
            return failed
        self.view.noise = moved.noise = noise
        again = _judge(self.view, declared, requested)
        nearby = _judge(moved, declared, requested)
        if again.fails and not nearby.fails:
            return _kink(again, nearby, self.move)
        return again


def _widest_grid(ladder: Callable[[tuple[float, ...]], np.ndarray], dtype: np.dtype) -> float:
    """The coarsest grid the gradient's entries sit on along the wide ladder,
    widened by numerics.NOISE_WIDENING while some nonzero entry does not move
    at every step: a value rounded to a grid coarser than its change over the
    ladder ((1e12 + g) - 1e12 in float64) stays in one cell and shows no grid
    until the moves span several. A grid is a property of the values, not of
    the function's shape, so the ladder may widen far beyond where a cubic
    holds: until its moves would reach the size of the params themselves."""
    grid, scale = 0.0, 1.0
    reach = max(abs(k) for k in nm.NOISE_WIDE) * nm.base_step(dtype)
    while True:
        G = ladder(tuple(scale * k for k in nm.NOISE_WIDE))
        cells = _grid(G)
        grid = max(grid, float(np.max(cells, initial=0.0)))
        scale *= nm.NOISE_WIDENING
        if not np.any(_stuck(G, cells, nm.WIDEN_BITS, np.max)) or scale * reach > 1.0:
            break
    # Entries flat everywhere the ladder reached (saturated units): their
    # values' own grid.
    flat = _stuck(G, cells, nm.GRID_BITS, np.min)
    return max(grid, float(np.max(np.where(flat, _lowest_bits(G), 0.0), initial=0.0)), _common_grid(G, dtype))


def _common_grid(G: np.ndarray, dtype: np.dtype) -> float:
    """The grid every nonzero value of every entry sits on, where none keeps
    more than its dtype's mantissa less numerics.GRID_BITS significant bits:
    the gradient of (1e15 + g) - 1e15 keeps 3 or 4 of 53, all of its entries
    alike, so few that no ladder may widen for it (numerics.WIDEN_BITS),
    while its values jump between cells of 0.125 as the params move. Exact
    levels with few bits (an L1 bias's mean of signs over B = 8) are the
    same from outside; they are counted as rounding only where every other
    entry is as coarse, and a wrong reduction of them is then undetermined,
    never passed (0 if any value keeps more bits, or none is nonzero)."""
    values = G[np.isfinite(G) & (G != 0)]
    if values.size == 0:
        return 0.0
    low, kept = _bits(values)
    if np.max(kept) > np.finfo(dtype).nmant + 1 - nm.GRID_BITS:
        return 0.0
    return float(np.min(low))


def _stuck(G: np.ndarray, cells: np.ndarray, bits: int, which: Callable[..., np.ndarray]) -> np.ndarray:
    """Entries that did not move at every step and whose nonzero values keep
    (``which``: all of them, np.min; one, np.max) at least ``bits``
    significant bits: a value rounded to a coarse grid, (1e8 + 2/3) - 1e8,
    keeps about 26 of float64's 53. An exact level has few (a Huber or L1
    mean of signs over B = 4 is a multiple of 1/4; the rounding residue of a
    term that cancels, 2^-51)."""
    # Zeros carry no grid: they neither hold back (min) nor count (max).
    kept = which(np.where(G != 0, _bits(G)[1], 53 if which is np.min else 0), axis=0)
    return (cells == 0) & np.any(G != 0, axis=0) & (kept >= bits)


def _bits(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each finite value's lowest set bit (as a value) and its number of significant bits."""
    mantissa, exponent = np.frexp(np.where(np.isfinite(G), G, 0.0))
    digits = (mantissa * 2.0 ** 53).astype(np.int64)
    low = digits & -digits
    zeros = np.where(low > 0, np.log2(np.where(low > 0, low, 1)).astype(np.int64), 53)
    return low.astype(np.float64) * np.ldexp(1.0, exponent - 53), 53 - zeros


def _lowest_bits(G: np.ndarray) -> np.ndarray:
    """Per column, the smallest lowest set bit of its nonzero finite values (0 if none)."""
    lowest = _bits(G)[0]
    smallest = np.min(np.where(lowest > 0, lowest, np.inf), axis=0)
    return np.where(np.isfinite(smallest), smallest, 0.0)


def _grid(G: np.ndarray) -> np.ndarray:
    """Per entry that moves at every step of the ladder, the spacing of the
    grid its values sit on: the smallest lowest set bit among them. A value
    rounded to a coarse grid (the difference of a large term and itself,
    (1e8 + g) - 1e8) carries half a spacing of rounding, even where the ladder
    moves it by whole spacings and the rounding repeats; values that move
    freely set it to about their ulp. An entry that takes no more than half as
    many values as the ladder has points is flat there but for a few steps
    (an L1 gradient's sign flipping at kinks), and its exact levels are no
    grid of rounding: 0."""
    moving = np.array([2 * np.unique(G[:, j]).size > G.shape[0] for j in range(G.shape[1])])
    return np.where(moving, _lowest_bits(G), 0.0)


def _ladder_residual(t: np.ndarray, G: np.ndarray) -> float:
    """The largest residual of the gradient entries along the ladder after a
    cubic in the offset plus, per entry, up to two steps at the best places:
    kinks crossed are jumps, not rounding. The ladder leaves out the point it
    is centred on, because kinks cluster there: the params were moved off
    their ties by a fraction of the ladder's smallest offset, so the ties of
    every unit at a kink (a ReLU net at zero) are, for params of size up to
    1, crossed between the two offsets nearest 0: one step for all of them;
    the second step is for a kink elsewhere. 0 if any value is not finite."""
    if not np.all(np.isfinite(G)):
        return 0.0
    order = np.argsort(t)
    t, G = t[order] / np.max(np.abs(t)), G[order]
    cubic = np.vander(t, 4)
    after = [(np.arange(t.size) >= b).astype(np.float64) for b in range(1, t.size)]
    best = np.full(G.shape[1], np.inf)
    for i, first in enumerate(after):
        for second in after[i:]:  # the same place twice is one step
            basis = np.column_stack([cubic, first, second])
            coef, *_ = np.linalg.lstsq(basis, G, rcond=None)
            best = np.minimum(best, np.max(np.abs(G - basis @ coef), axis=0))
    return float(np.max(best, initial=0.0))


def _batch_ladder(a: np.ndarray, dtype: np.dtype, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """A float batch array and its ladder step (random weights times a base
    step of max(1, |a|)); any other array stays put, and so does one of whole
    numbers stored as floats (labels, masks, counts: it may index or count)."""
    if not np.issubdtype(a.dtype, np.floating) or np.all(a == np.round(a)):
        return a, None
    step = _random_weights(rng, a.shape) * nm.base_step(dtype) * np.maximum(1.0, np.abs(a))
    return a, step


def _random_weights(rng: np.random.Generator, shape: Any) -> np.ndarray:
    """Random signs times magnitudes in numerics.PROBE_WEIGHTS: with equal
    magnitudes two moves can cancel exactly (x_0 - x_1 moved alike stays put)."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(*nm.PROBE_WEIGHTS, size=shape)


def _moved_batch(batch: list[tuple[np.ndarray, np.ndarray | None]], k: float) -> tuple[np.ndarray, ...]:
    return tuple(a if d is None else (a + k * d).astype(a.dtype) for a, d in batch)


def _ladder_steps(td: TreeDef, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Per entry, a base step of the gradient's dtype, eps^(1/3) max(1, |x|):
    moves that change the gradient by many of its rounding cells while a
    cubic still follows it; and at least one ulp of the leaf's
    own dtype, so that the entry moves at all. (The params' dtype rounds the
    moves by up to half an ulp: along the ladder that is a wobble of the
    size of the gradient's own rounding, which the measurement may include.)"""
    steps = np.zeros(x.size)
    for leaf in td.leaves:
        sl = slice(leaf.start, leaf.start + leaf.size)
        ulp = np.spacing(np.abs(x[sl]).astype(leaf.dtype)).astype(np.float64)
        steps[sl] = np.maximum(nm.base_step(dtype) * np.maximum(1.0, np.abs(x[sl])), ulp)
    return steps


def _sizes(flat: np.ndarray) -> np.ndarray:
    """Each entry's own size, or the params' RMS size for an entry at 0 (1 if
    all are): a move relative to it keeps the point where it was, whatever
    the params' scale, but for exact ties."""
    rms = float(np.sqrt(np.mean(flat ** 2))) if flat.size else 0.0
    return np.where(flat != 0, np.abs(flat), rms if rms > 0 else 1.0)


def _start(grad_fn: Any, params: Any, batch: tuple[Any, ...], weights: Any, seed: Any,
           resolution: Any) -> tuple[int, float, np.ndarray | None]:
    """Validate the call before any user code runs."""
    seed = _args.seed(seed)
    requested = _args.resolution(resolution)
    _args.inputs(params, batch, batch_required=True, grad_fn=grad_fn)
    size = as_batch(batch)[0].shape[0]
    return seed, requested, _args.weights(weights, size)


def check_reduction(grad_fn: Callable[..., Any], params: Any, *batch: Any, reduction: str = "mean",
                    weights: Any = None, regularizer: str = "fixed", seed: int = 0,
                    resolution: float = nm.DEFAULT_RESOLUTION) -> Verdict:
    """Check that ``grad_fn`` reduces over the batch as declared.

    ``reduction="mean"`` declares sum_i l_i / B; ``"sum"`` declares sum_i l_i;
    with ``weights=`` (one weight per example, zero for an ignored one) they
    declare sum_i w_i l_i / sum_i w_i and sum_i w_i l_i (for the weighted sum,
    see the module's notes: its weights travel with the examples). A term of the
    parameters alone (L2, weight decay) may be added: by default its weight is
    fixed, whatever B (mean + lambda R, as in the TensorFlow CIFAR-10 tutorial,
    or sum + lambda R, textbook ridge); ``regularizer="divided"`` declares it
    divided by B (by the total weight) along with the data, as scikit-learn's
    MLP does, (sum_i l_i + alpha/2 ||W||^2) / B.

    The batch gradient is compared with the gradients of single examples and
    of cuts of the batch (duplicated, reordered, without one example, without
    its zero-weight examples); all batch arrays are cut alike along axis 0.
    The verdict holds only if every law holds and the check could have caught
    a relative error of ``resolution`` in a typical gradient entry; otherwise
    it is undetermined ("precision-limited"). A law that fails at ``params``
    but holds at params moved slightly is a kink ("not differentiable here").
    A failure says what the gradient does instead, from a model fitted to
    every cut.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
    >>> x, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 0.0, 2.0])
    >>> check_reduction(grad, np.array([1.0]), x, y, reduction="mean").holds
    True
    >>> check_reduction(grad, np.array([1.0]), x, y, reduction="sum").holds
    False
    >>> ridge = lambda w, x, y: 2 * x.T @ (x @ w - y) + 0.5 * w   # a sum + 0.25 ||w||^2
    >>> check_reduction(ridge, np.array([1.0]), x, y, reduction="sum").holds
    True
    """
    seed, requested, w = _start(grad_fn, params, batch, weights, seed, resolution)
    declared = _declared(reduction, w, regularizer)
    return _Session(grad_fn, params, batch, w, seed).verdict(declared, requested)


def infer_reduction(grad_fn: Callable[..., Any], params: Any, *batch: Any, weights: Any = None,
                    regularizer: str = "fixed", seed: int = 0,
                    resolution: float = nm.DEFAULT_RESOLUTION) -> str:
    """Say how ``grad_fn`` reduces over the batch: "mean", "sum", or plain words.

    The answer is "mean" exactly when :func:`check_reduction` with
    ``reduction="mean"`` (and the same options) holds and with ``"sum"`` (a
    fixed parameter-only term) does not, and "sum" the other way round; where
    both hold (a data term of zero) or neither, the words say why, or
    describe the model fitted to the gradient, e.g. "neither: a mean whose
    parameter-only term is divided by B along with the data".

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y)
    >>> x, y = np.array([[1.0], [2.0], [3.0]]), np.array([1.0, 0.0, 2.0])
    >>> infer_reduction(grad, np.array([1.0]), x, y)
    'sum'
    """
    seed, requested, w = _start(grad_fn, params, batch, weights, seed, resolution)
    mean, total = _declared("mean", w, regularizer), _declared("sum", w, "fixed")
    session = _Session(grad_fn, params, batch, w, seed)
    as_mean = session.verdict(mean, requested)
    said = session.short
    as_sum = session.verdict(total, requested)
    if as_mean.holds and as_sum.holds:
        return ("undetermined: the gradient is the same as a mean and as a sum on every cut of this batch "
                "(its data term is zero, or a parameter-only term explains it all); try another batch or params")
    if as_mean.holds or as_sum.holds:
        return "mean" if as_mean.holds else "sum"
    for v in (as_mean, as_sum):
        if v.undetermined:
            return f"undetermined ({v.reason}): {v.message}"
    return f"neither: {said or as_mean.message}"
