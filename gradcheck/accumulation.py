"""check_accumulation: a gradient-accumulation loop against the full-batch gradient.

The loop under test gets the batch cut into micro-batches, in several ways
(a size-1 micro-batch, uneven sizes, equal sizes where the batch allows, and,
with ``weights=``, micro-batches whose total weights differ), and must return
``grad_fn`` on the whole batch every time. When it does not, its result is
fitted as a combination of the micro-batch gradients, sum_m a_m G_m, and the
fitted shares a_m are described against the right ones: n_m / N for a mean
(n_m the number, or total weight, of micro-batch m's examples), 1 for a sum.
Equal shares are a mean of micro-batch means; shares of 1 under a mean are a
sum of means; the right shares times c are a divisor applied c^-1 times too
often or too rarely.

A loss that mixes the examples of a batch (batch statistics, a contrastive
loss over the batch) cannot be accumulated exactly by any split; then
``grad_fn`` itself does not split, and the checker says so rather than
blaming the loop.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, copies, first_nonfinite, require_callable, require_signature
from ._compare import compare_leaves
from ._tree import TreeDef, as_batch, same_structure, tree_def
from .errors import GradcheckUsageError
from .verdict import FAILS, HOLDS, PRECISION_LIMITED, UNDETERMINED, Verdict

__all__ = ["check_accumulation", "splits"]

CLAIM = "check_accumulation"


def splits(size: int) -> list[tuple[int, ...]]:
    """Micro-batch sizes that expose the usual accumulation bugs, for a batch of ``size``.

    - (1, B-1): a size-1 micro-batch beside a large one, the most unequal split;
    - an uneven split into three (about B/2, B/4, the rest) where B >= 4;
    - equal micro-batches where B has a divisor, so a loop that is right only
      for equal sizes shows it (it passes these and fails the others). With
      weights (token counts), equal micro-batches still differ in total
      weight, which is where a mean of per-micro-batch token means goes wrong.
    """
    out: list[tuple[int, ...]] = [(1, size - 1)]
    if size >= 4:
        a, b = size // 2, max(1, size // 4)
        out.append((a, b, size - a - b))
    k = next((d for d in range(2, size // 2 + 1) if size % d == 0), None)
    if k is not None:
        out.append((k,) * (size // k))
    return list(dict.fromkeys(out))


def _cut(batch: Sequence[np.ndarray], sizes: Sequence[int]) -> list[tuple[np.ndarray, ...]]:
    edges = np.cumsum((0,) + tuple(sizes))
    return [tuple(a[lo:hi] for a in batch) for lo, hi in zip(edges[:-1], edges[1:])]


def check_accumulation(accumulate_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                       *batch: Any, reduction: str = "mean", weights: Any = None,
                       resolution: float = nm.DEFAULT_RESOLUTION) -> Verdict:
    """Check that ``accumulate_fn`` over micro-batches gives ``grad_fn`` on the whole batch.

    ``accumulate_fn(params, microbatches)`` gets a list of batch tuples (every
    batch array cut alike along axis 0) and returns the accumulated gradient in
    the structure of ``params``. ``reduction`` is how ``grad_fn`` reduces the
    batch ("mean" or "sum"); ``weights=`` gives each example's weight in a
    weighted mean (the token count of a sequence, the class weight of a target).
    Whether ``grad_fn`` itself reduces as declared is :func:`check_reduction`'s job.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
    >>> def mean_of_means(w, micro):  # the classic bug: right only for equal micro-batches
    ...     return sum(grad(w, x, y) for x, y in micro) / len(micro)
    >>> x, y = np.arange(12.0).reshape(6, 2), np.arange(6.0)
    >>> v = check_accumulation(mean_of_means, grad, np.array([0.5, -0.5]), x, y)
    >>> v.fails, "equal micro-batches" in v.message
    (True, True)
    """
    _args.choice("reduction", reduction, ("mean", "sum"))
    asked = _args.resolution(resolution)
    require_callable(accumulate_fn, "accumulate_fn")
    _args.inputs(params, batch, batch_required=True, grad_fn=grad_fn)
    require_signature(accumulate_fn, "accumulate_fn", 1, call="accumulate_fn(params, microbatches)")
    run = _Run(accumulate_fn, grad_fn, params, as_batch(batch), reduction, weights, asked)
    verdicts = [run.judge(sizes) for sizes in splits(run.size)]
    return run.summary(verdicts)


class _Run:
    def __init__(self, accumulate_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                 batch: tuple[np.ndarray, ...], reduction: str, weights: Any, asked: float) -> None:
        self.td: TreeDef = tree_def(params)
        self.params, self.batch, self.reduction, self.asked = params, batch, reduction, asked
        self.size = batch[0].shape[0]
        if self.size < 2:
            raise GradcheckUsageError("batch has 1 example: it cannot be cut into micro-batches; pass at least 2")
        w = _args.weights(weights, self.size)
        self.w = np.ones(self.size) if w is None else w
        self.accumulate_fn = accumulate_fn
        self.caller = GradCaller(grad_fn, params, self.td)
        self.calls = 0
        self.want = self.caller(batch)

    def accumulate(self, micro: list[tuple[np.ndarray, ...]]) -> np.ndarray:
        self.calls += 1
        params = self.td.unflatten(self.td.flatten(self.params))
        out = self.accumulate_fn(params, [copies(m) for m in micro])
        same_structure(self.td, out, argname="accumulate_fn")
        self.caller._note_dtype(out)
        return self.td.flatten(out)

    def shares(self, sizes: Sequence[int]) -> np.ndarray:
        """The right coefficient of each micro-batch's gradient in the full one."""
        if self.reduction == "sum":
            return np.ones(len(sizes))
        edges = np.cumsum((0,) + tuple(sizes))
        return np.array([self.w[lo:hi].sum() for lo, hi in zip(edges[:-1], edges[1:])]) / self.w.sum()

    def base(self, law: str, outcome: str, error: float, tol: float, message: str) -> Verdict:
        return Verdict(CLAIM, law, outcome, error, tol, message, dtype=f"gradient in {self.caller.dtype.name}",
                       evaluations=self.caller.calls + self.calls, requested=self.asked)

    def judge(self, sizes: tuple[int, ...]) -> Verdict:
        law = "micro-batches of " + " + ".join(str(s) for s in sizes)
        micro = _cut(self.batch, sizes)
        got = self.accumulate(micro)
        if not np.all(np.isfinite(got)):
            return self.base(law, FAILS, np.inf, 0.0, f"accumulate_fn returned a non-finite gradient on {law}: "
                                                      f"{first_nonfinite(self.td, got)}")
        parts = [self.caller(m) for m in micro]
        share = self.shares(sizes)
        terms = sum(np.abs(a * g) for a, g in zip(share, parts)) + np.abs(self.want)
        v = self.compare(law, got, self.want, terms)
        if v.holds:
            return self._resolved(v, law)
        mixing = self.compare(law, self.want, sum(a * g for a, g in zip(share, parts)), terms)
        if not mixing.holds:
            return v.with_(outcome=UNDETERMINED, reason="the loss mixes examples", message=(
                f"grad_fn itself does not split: on {law}, the full-batch gradient differs from the "
                f"{self.reduction} of the micro-batch gradients by {mixing.error:.3e} (tolerance "
                f"{mixing.tolerance:.3e}). A loss that mixes the examples of a batch (batch statistics, a "
                f"contrastive loss) cannot be accumulated exactly by any split, so the loop is not to blame; "
                f"if grad_fn should be a plain {self.reduction}, check it with check_reduction"))
        return v.with_(outcome=FAILS, message=f"on {law}: " + self.explain(got, parts, share, terms))

    def compare(self, law: str, got: np.ndarray, want: np.ndarray, terms: np.ndarray) -> Verdict:
        v = compare_leaves(self.td, CLAIM, law, got, want, terms, self.size, self.caller.dtype)
        return v.with_(evaluations=self.caller.calls + self.calls, requested=self.asked)

    def _resolved(self, v: Verdict, law: str) -> Verdict:
        rms = float(np.sqrt(np.mean(self.want ** 2)))
        res = v.tolerance / rms if rms > 0 else np.inf
        if res > self.asked:
            return v.with_(outcome=UNDETERMINED, reason=PRECISION_LIMITED, resolution=res, message=(
                f"on {law}, the accumulated gradient agrees with grad_fn only to {res:.1e} of its size "
                f"(asked {self.asked:.1e}); accumulate in float64 to resolve more"))
        return v.with_(outcome=HOLDS, resolution=res, message=f"on {law}, the accumulated gradient is grad_fn's")

    def explain(self, got: np.ndarray, parts: list[np.ndarray], share: np.ndarray, terms: np.ndarray) -> str:
        """Fit got = sum_m a_m G_m and describe the fitted a against the right shares."""
        A = np.stack(parts, axis=1)
        if A.shape[0] < A.shape[1] or np.linalg.matrix_rank(A) < A.shape[1]:
            return self._unfitted(got)
        a, *_ = np.linalg.lstsq(A, got, rcond=None)
        fit = self.compare("fit", got, A @ a, terms + np.abs(A) @ np.abs(a))
        if not fit.holds:
            return self._unfitted(got) + "; it is not a combination of the micro-batch gradients either"
        # A least-squares solution carries the relative rounding of the data
        # times the condition number of A: patterns are named within that.
        tol = float(np.linalg.cond(A) * nm.sum_rounding(1.0, self.caller.dtype, self.size))
        return _describe(a, share, self.reduction, len(parts), tol)

    def _unfitted(self, got: np.ndarray) -> str:
        rel = float(np.linalg.norm(got - self.want) / max(np.linalg.norm(self.want), np.finfo(float).tiny))
        return f"the accumulated gradient differs from grad_fn on the whole batch by {rel:.2e} relative"

    def summary(self, verdicts: list[Verdict]) -> Verdict:
        for outcome in (FAILS, UNDETERMINED):
            bad = [v for v in verdicts if v.outcome == outcome]
            if bad:
                return self._first_bad(bad[0], verdicts)
        v = max(verdicts, key=lambda d: d.resolution)
        laws = "; ".join(d.law for d in verdicts)
        return v.with_(law="every split", details=tuple(verdicts), evaluations=self.caller.calls + self.calls,
                       message=f"the accumulated gradient is grad_fn's on the whole batch for {laws}")

    def _first_bad(self, v: Verdict, verdicts: list[Verdict]) -> Verdict:
        held = [d.law for d in verdicts if d.holds]
        note = f" (it is right on {', '.join(held)})" if held and v.fails else ""
        return v.with_(message=v.message + note, details=tuple(verdicts),
                       evaluations=self.caller.calls + self.calls)


def _describe(a: np.ndarray, share: np.ndarray, reduction: str, m: int, tol: float) -> str:
    shown = "[" + ", ".join(f"{x:.4g}" for x in a) + "]"
    right = "[" + ", ".join(f"{x:.4g}" for x in share) + "]"
    close = lambda x, y: bool(np.max(np.abs(x - y)) <= tol * np.max(np.abs(y)))  # noqa: E731
    said = f"it weights the {m} micro-batch gradients by {shown} where {right} is right"
    if reduction == "mean" and close(a, np.full(m, 1.0 / m)):
        return (f"{said}: a plain mean of per-micro-batch means, right only for equal micro-batches "
                f"(equal counts of examples or tokens); sum the per-micro-batch sums and divide once "
                f"by the total count")
    if reduction == "mean" and close(a, np.ones(m)):
        return (f"{said}: a sum of per-micro-batch means, about {m} × too large; divide each micro-batch's "
                f"sum by the total count instead")
    c = float(np.dot(a, share) / np.dot(share, share))
    if close(a, c * share):
        return (f"{said}: the right shares times {c:.6g}, a divisor off by that factor (divided by the "
                f"number of micro-batches, or by a count, once too often or too rarely)")
    return said
