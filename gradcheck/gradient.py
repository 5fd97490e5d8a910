"""check_gradient: a gradient function against finite differences of its loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, copies, first_nonfinite, loss_scalar
from ._tree import TreeDef, as_batch, tree_def
from .errors import GradcheckUsageError
from .oracle import LossOracle, Probe
from .verdict import FAILS, HOLDS, UNDETERMINED, Verdict

LAW = "finite differences"
CLAIM = "check_gradient"
FULL_LIMIT = 128  # mode="auto" checks every entry up to this many parameters
MAX_NAMED = 8  # localisation names at most this many wrong entries


@dataclass(frozen=True)
class Comparison:
    """grad_fn's directional derivative against the oracle's, along one probe."""

    claimed: float
    probe: Probe
    bound: float

    @property
    def error(self) -> float:
        return abs(self.claimed - self.probe.value)

    @property
    def outcome(self) -> str:
        if not self.probe.finite or self.probe.kink:
            return UNDETERMINED
        if self.error <= self.bound:
            return HOLDS
        # A kink or seam within the ladder but not at the point: the gradient
        # exists, but these differences can vouch neither for it nor against it.
        return FAILS if self.probe.smooth else UNDETERMINED

    @property
    def near_kink(self) -> bool:
        return self.probe.finite and not self.probe.kink and self.outcome == UNDETERMINED


class _Setup:
    """The point, the gradient under test, and the oracle around them."""

    def __init__(self, loss_fn: Callable[..., Any], grad_fn: Callable[..., Any],
                 params: Any, batch: tuple[Any, ...]) -> None:
        if not callable(loss_fn):
            raise GradcheckUsageError(f"loss_fn={loss_fn!r} is not callable")
        self.td: TreeDef = tree_def(params)
        self.batch = as_batch(batch) if batch else ()
        self.x0 = self.td.flatten(params)
        caller = GradCaller(grad_fn, params, self.td)
        self.g = caller(self.batch)
        self.g_dtype = caller.dtype
        self.loss_fn = loss_fn
        self.oracle = LossOracle(self._loss64, self.x0)

    def _loss64(self, flat: np.ndarray) -> Any:
        # Finite differences in float64 whatever the model's dtype: the loss
        # is handed float64 parameters; what it returns tells its precision.
        return loss_scalar(self.loss_fn(self.td.unflatten(flat, dtype=np.float64), *copies(self.batch)))

    def compare(self, v: np.ndarray) -> Comparison:
        moved = v != 0
        claimed_abs = float(np.sum(np.abs(self.g[moved] * self.x0[moved])))
        probe = self.oracle.probe(v, claimed_abs=claimed_abs)
        terms = np.abs(v * self.g)
        claimed = float(np.sum(v * self.g))
        rounding = float(nm.sum_rounding(np.sum(terms), self.g_dtype, int(moved.sum())))
        return Comparison(claimed, probe, probe.bound + rounding)

    def entry_direction(self, j: int) -> np.ndarray:
        v = np.zeros(self.x0.size)
        v[j] = self.oracle.scale[j]
        return v

    def block_direction(self, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
        v = np.zeros(self.x0.size)
        v[lo:hi] = rng.standard_normal(hi - lo) * self.oracle.scale[lo:hi]
        return v


def check_gradient(loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                   *batch: Any, mode: str = "auto", probes: int = 4, seed: int = 0) -> Verdict:
    """Check ``grad_fn`` against finite differences of ``loss_fn``.

    ``mode="full"`` compares every entry; ``"projection"`` compares directional
    derivatives along ``probes`` Gaussian directions (a fixed number of loss
    evaluations whatever the parameter count) and, if one fails, narrows down
    to the wrong entries; ``"auto"`` is full up to 128 parameters.

    >>> import numpy as np
    >>> loss = lambda w, x: float(np.sum(np.sin(x @ w)))
    >>> grad = lambda w, x: x.T @ np.cos(x @ w)
    >>> x = np.array([[1.0, 2.0], [0.5, -1.0]])
    >>> bool(check_gradient(loss, grad, np.array([0.3, -0.2]), x))
    True
    """
    mode = _args.choice("mode", mode, ("auto", "full", "projection"))
    probes, seed = _args.count("probes", probes), _args.seed(seed)
    _args.inputs(params, batch, loss_fn=loss_fn, grad_fn=grad_fn)
    s = _Setup(loss_fn, grad_fn, params, batch)
    early = _early_verdict(s)
    if early is not None:
        return early
    full = mode == "full" or (mode == "auto" and s.x0.size <= FULL_LIMIT)
    rng = np.random.default_rng(seed)
    return _full(s, rng) if full else _projection(s, probes, rng)


def _base(s: _Setup, outcome: str, error: float, tol: float, message: str, reason: str = "") -> Verdict:
    dtype = f"loss in {s.oracle.precision.name}, gradient in {s.g_dtype.name}"
    return Verdict(CLAIM, LAW, outcome, error, tol, message, reason=reason,
                   step=s.oracle.h, dtype=dtype, evaluations=s.oracle.evaluations)


def _early_verdict(s: _Setup) -> Verdict | None:
    if not np.all(np.isfinite(s.g)):
        where = first_nonfinite(s.td, s.g)
        return _base(s, FAILS, np.inf, 0.0, f"grad_fn returned a non-finite gradient: {where}")
    if not np.isfinite(s.oracle.f0):
        return _base(s, UNDETERMINED, np.nan, np.nan,
                     f"loss_fn returned {s.oracle.f0} at params; the gradient cannot be checked there",
                     reason="non-finite loss")
    return None


def _summarise(s: _Setup, comps: list[Comparison], labels: list[str]) -> Verdict:
    """Common tail of both modes: kinks, non-finite steps, failures, resolution."""
    # The decisive comparison: the worst failure if any, else the tightest holding one.
    worst = max(comps, key=lambda c: (c.outcome == FAILS, _excess(c) if c.outcome != UNDETERMINED else -1.0))
    kinks = [lab for c, lab in zip(comps, labels) if c.probe.kink]
    if kinks:
        c = comps[labels.index(kinks[0])]
        return _not_differentiable(s, c, f"here: along {kinks[0]} the one-sided differences are "
                                         f"{c.probe.backward:.6g} (backward) and {c.probe.forward:.6g} "
                                         f"(forward), and their gap does not close as the step shrinks")
    nonfinite = [lab for c, lab in zip(comps, labels) if not c.probe.finite]
    if nonfinite:
        return _base(s, UNDETERMINED, np.nan, np.nan,
                     f"loss_fn returned a non-finite value within {4 * s.oracle.h:.2e} of params "
                     f"along {nonfinite[0]}", reason="non-finite loss")
    near = [lab for c, lab in zip(comps, labels) if c.near_kink]
    if worst.outcome == FAILS or not near:
        return _base(s, worst.outcome, worst.error, worst.bound, "")
    c = comps[labels.index(near[0])]
    return _not_differentiable(s, c, f"near here: along {near[0]} a kink or seam of the loss lies within "
                                     f"{4 * s.oracle.h:.2e} of params (the second differences do not grow "
                                     f"as the step squared), so finite differences cannot judge the "
                                     f"gradient there")


def _not_differentiable(s: _Setup, c: Comparison, detail: str) -> Verdict:
    return _base(s, UNDETERMINED, c.error, c.bound, f"not differentiable {detail}",
                 reason="not differentiable here")


def _excess(c: Comparison) -> float:
    return c.error / c.bound if c.bound > 0 else (np.inf if c.error else 0.0)


def _full(s: _Setup, rng: np.random.Generator) -> Verdict:
    comps = [s.compare(s.entry_direction(j)) for j in range(s.x0.size)]
    labels = [s.td.name(j) for j in range(s.x0.size)]
    v = _summarise(s, comps, labels)
    if v.outcome == FAILS:
        bad = [j for j, c in enumerate(comps) if c.outcome == FAILS]
        named = ", ".join(_entry_text(s, j, comps[j]) for j in bad[:MAX_NAMED])
        more = f" and {len(bad) - MAX_NAMED} more" if len(bad) > MAX_NAMED else ""
        starts = sorted({s.td.leaf_of(j).start for j in bad})
        leaves = [(st, st + s.td.leaf_of(st).size) for st in starts]
        hint = _leaf_hint(s, {b[0]: s.compare(s.block_direction(rng, *b)) for b in leaves}, rng,
                          scaled=len(bad) > MAX_NAMED)
        return v.with_(message=f"grad_fn disagrees with finite differences of loss_fn in "
                               f"{len(bad)} of {s.x0.size} entries: {named}{more}{hint}")
    return _resolution(s, v, comps)


def _entry_text(s: _Setup, j: int, c: Comparison) -> str:
    scale = s.oracle.scale[j]
    return (f"{s.td.name(j)} (grad_fn {c.claimed / scale:.9g}, "
            f"finite differences {c.probe.value / scale:.9g})")


def _resolution(s: _Setup, v: Verdict, comps: list[Comparison]) -> Verdict:
    if v.outcome != HOLDS:
        return v
    size = max(max(abs(c.claimed), abs(c.probe.value)) for c in comps)
    widest = max(c.bound for c in comps)
    if size > 0 and widest > nm.RESOLUTION_LIMIT * size:
        return v.with_(outcome=UNDETERMINED, reason="precision-limited",
                       message=f"the bound {widest:.3e} is {widest / size:.0%} of the largest "
                               f"directional derivative {size:.3e}, so finite differences in "
                               f"{s.oracle.precision.name} cannot tell a right gradient from a wrong one here")
    return v.with_(message=f"grad_fn agrees with finite differences of loss_fn "
                           f"along {len(comps)} directions")


def _projection(s: _Setup, probes: int, rng: np.random.Generator) -> Verdict:
    n = s.x0.size
    directions = [s.block_direction(rng, 0, n) for _ in range(probes)]
    comps = [s.compare(v) for v in directions]
    labels = [f"probe {k}" for k in range(probes)]
    v = _summarise(s, comps, labels)
    if v.outcome != FAILS:
        return _resolution(s, v, comps)
    k = max(range(probes), key=lambda i: (comps[i].outcome == FAILS, _excess(comps[i])))
    c = comps[k]
    rel = c.error / max(abs(c.probe.value), np.finfo(float).tiny)
    where = _localise(s, rng, directions[k])
    head = (f"grad_fn disagrees with finite differences of loss_fn along {labels[k]}: directional "
            f"derivative {c.claimed:.9g} by grad_fn, {c.probe.value:.9g} by finite differences "
            f"(relative error {rel:.2e})")
    return v.with_(message=f"{head}; {where}", evaluations=s.oracle.evaluations)


def _localise(s: _Setup, rng: np.random.Generator, failed: np.ndarray) -> str:
    """Narrow a failed projection down to entries: test each parameter array,
    then halve the failing blocks until single entries remain or the error is
    spread over too many blocks. Each block is probed with the failed
    direction's own weights on it, so a wrong entry keeps the weight that
    exposed it while the bound shrinks with the block."""
    def probe(lo: int, hi: int) -> Comparison:
        v = np.zeros_like(failed)
        v[lo:hi] = failed[lo:hi]
        return s.compare(v)

    blocks = [(leaf.start, leaf.start + leaf.size) for leaf in s.td.leaves]
    leaf_comps = {b: probe(*b) for b in blocks}
    failing = [b for b in blocks if leaf_comps[b].outcome == FAILS]
    leaf_comps_failing = {b[0]: leaf_comps[b] for b in failing}
    hint = _leaf_hint(s, leaf_comps_failing, rng)
    found: list[int] = []
    while failing:
        singles = [b for b in failing if b[1] - b[0] == 1]
        found += [b[0] for b in singles]
        wide = [b for b in failing if b[1] - b[0] > 1]
        if len(found) + len(wide) > MAX_NAMED:
            return _spread_text(s, found, wide) + _leaf_hint(s, leaf_comps_failing, rng, scaled=True)
        halves = [h for lo, hi in wide for h in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]
        failing = [h for h in halves if probe(*h).outcome == FAILS]
    if not found:
        return "the error is spread thinly: no single parameter array fails on its own" + hint
    comps = {j: s.compare(s.entry_direction(j)) for j in found}
    return "wrong entries: " + ", ".join(_entry_text(s, j, comps[j]) for j in sorted(found)) + hint


def _spread_text(s: _Setup, found: list[int], wide: list[tuple[int, int]]) -> str:
    leaves = sorted({s.td.leaf_of(lo).path for lo, _ in wide} | {s.td.leaf_of(j).path for j in found})
    return (f"the error is spread over many entries (more than {MAX_NAMED}) of "
            + ", ".join(f"params{p}" for p in leaves))


def _leaf_hint(s: _Setup, comps: dict[int, Comparison], rng: np.random.Generator, *,
               scaled: bool = False) -> str:
    """Say what a whole failing array seems to be: sign-flipped, or (when the
    error is spread over it) scaled. A second probe of the array must give the
    same ratio of grad_fn to finite differences, or nothing is said."""
    notes = []
    for start, c in comps.items():
        leaf = s.td.leaf_of(start)
        if start != leaf.start:
            continue
        c2 = s.compare(s.block_direction(rng, leaf.start, leaf.start + leaf.size))
        ratios = _ratio(c), _ratio(c2)
        if ratios[0] is None or ratios[1] is None:
            continue
        (r1, t1), (r2, t2) = ratios
        if abs(r1 - r2) > t1 + t2:
            continue  # not one factor for the whole array
        if abs(r1 + 1) <= t1:
            notes.append(f"params{leaf.path} has the wrong sign (grad_fn = -1 × finite differences)")
        elif scaled and abs(r1 - 1) > t1:
            notes.append(f"params{leaf.path} looks scaled by {r1:.9g}")
    return ("; " + "; ".join(notes)) if notes else ""


def _ratio(c: Comparison) -> tuple[float, float] | None:
    """grad_fn / finite differences along one probe, and its tolerance."""
    if not c.probe.finite or c.probe.value == 0 or c.bound >= abs(c.probe.value):
        return None
    return c.claimed / c.probe.value, 2 * c.bound / abs(c.probe.value)
