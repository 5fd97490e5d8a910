"""check_data_parallel: a data-parallel step on a real torch.distributed group.

The step under test runs inside ``world_size`` processes of a gloo process
group on localhost (:mod:`gradcheck._group`); each rank gets a shard of the
batch, does its own collectives, and returns the gradient it ends with. Every
rank's result is compared with ``grad_fn`` on the whole batch, for equal and
for unequal shards, and a failure is explained by the hypotheses that fit:
a rank's local gradient (no all-reduce), the sum or the mean of the local
gradients, or the full-batch gradient scaled by a factor such as W or 1/W.

PyTorch is imported only here and in the worker processes, so ``import
gradcheck`` does not need it.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, first_nonfinite
from ._compare import compare_leaves
from ._group import GroupBroken, ProcessGroup
from ._tree import TreeDef, as_batch, leaves, same_structure, tree_def
from .errors import GradcheckUsageError
from .verdict import FAILS, HOLDS, PRECISION_LIMITED, UNDETERMINED, Verdict

__all__ = ["check_data_parallel"]

CLAIM = "check_data_parallel"


@dataclass(frozen=True)
class Sharding:
    """How the batch is cut over the ranks: contiguous shards of these sizes."""

    name: str
    sizes: tuple[int, ...]

    def shards(self, batch: tuple[np.ndarray, ...]) -> list[tuple[np.ndarray, ...]]:
        edges = np.cumsum((0,) + self.sizes)
        return [tuple(a[lo:hi] for a in batch) for lo, hi in zip(edges[:-1], edges[1:])]

    @property
    def examples(self) -> int:
        return int(sum(self.sizes))

    def words(self) -> str:
        return f"{self.name} shards of {' + '.join(str(s) for s in self.sizes)} examples"


def shardings(size: int, world: int, *, equal_only: bool) -> list[Sharding]:
    """Equal shards over the largest multiple of ``world`` examples, and (unless
    only equal shards are declared) unequal shards over the whole batch: rank 0
    takes about twice the share of the others, so a mean of local means, which
    weights every rank alike, cannot match the full-batch mean by accident."""
    out = [Sharding("equal", (size // world,) * world)]
    if not equal_only:
        k = max(1, size // (world + 1))
        out.append(Sharding("unequal", (size - (world - 1) * k,) + (k,) * (world - 1)))
    return out


def check_data_parallel(step_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any, *batch: Any,
                        world_size: int = 2, reduction: str = "mean", shards: str = "any",
                        timeout: float = 60.0, resolution: float = nm.DEFAULT_RESOLUTION) -> Verdict:
    """Run ``step_fn`` on a real gloo process group and compare every rank's
    gradient with ``grad_fn`` on the whole batch.

    ``step_fn(params, *local_batch)`` runs on each of ``world_size`` ranks,
    does its own collectives (``torch.distributed.all_reduce``, or a DDP
    model) and returns the gradient that rank ends with, in the structure of
    ``params``; it must be a module-level function (the workers import it).
    The batch is cut into equal shards and into unequal ones; ``shards="equal"``
    declares a step meant for equal shards only. ``reduction`` names how
    ``grad_fn`` reduces the batch, for the messages. A rank that raises,
    crashes or hangs longer than ``timeout`` seconds fails the check.

    >>> import numpy as np
    >>> from gradcheck.distributed import check_data_parallel   # doctest: +SKIP
    >>> v = check_data_parallel(mymodule.allreduce_mean_step, mymodule.grad,  # doctest: +SKIP
    ...                         w, x, y, world_size=2)
    >>> v.holds                                                  # doctest: +SKIP
    True
    """
    world = _args.count("world_size", world_size, minimum=2)
    _args.choice("reduction", reduction, ("mean", "sum"))
    equal_only = _args.choice("shards", shards, ("any", "equal")) == "equal"
    asked = _args.resolution(resolution)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise GradcheckUsageError(f"timeout={timeout!r} must be a positive number of seconds")
    _args.inputs(params, batch, batch_required=True, step_fn=step_fn, grad_fn=grad_fn)
    _check_importable(step_fn)
    run = _Run(grad_fn, params, as_batch(batch), world, reduction, asked)
    verdicts: list[Verdict] = []
    with ProcessGroup(world, timeout=float(timeout)) as group:
        for sh in shardings(run.size, world, equal_only=equal_only):
            try:
                results = group.run(step_fn, run.params_copy(), sh.shards(run.batch))
            except GroupBroken as broken:
                verdicts.append(run.base(FAILS, sh, np.inf, 0.0, f"on {sh.words()}: {broken.why}"))
                break
            verdicts.append(run.judge(sh, [r.value for r in results]))
    return run.summary(verdicts)


def _check_importable(step_fn: Any) -> None:
    try:
        pickle.dumps(step_fn)
    except Exception as e:  # noqa: BLE001 - any pickling failure means the workers cannot get it
        raise GradcheckUsageError(
            f"step_fn={getattr(step_fn, '__qualname__', step_fn)!r} cannot be sent to the worker "
            f"processes ({type(e).__name__}); define it at module level in an importable module, "
            f"not as a lambda or a nested function") from None


class _Run:
    """The reference gradients and the judging of what the ranks returned."""

    def __init__(self, grad_fn: Callable[..., Any], params: Any, batch: tuple[np.ndarray, ...],
                 world: int, reduction: str, asked: float) -> None:
        self.td: TreeDef = tree_def(params)
        self.params, self.batch, self.world = params, batch, world
        self.size = batch[0].shape[0]
        if self.size < world + 1:
            raise GradcheckUsageError(f"batch has {self.size} examples; world_size={world} needs at least "
                                      f"{world + 1}, so that every rank gets an example and shards can differ")
        self.reduction, self.asked = reduction, asked
        self.caller = GradCaller(grad_fn, params, self.td)
        self.dtype = np.dtype(np.float64)

    def params_copy(self) -> Any:
        return self.td.unflatten(self.td.flatten(self.params))

    def grad(self, rows: tuple[np.ndarray, ...]) -> np.ndarray:
        return self.caller(rows)

    def base(self, outcome: str, sh: Sharding, error: float, tol: float, message: str) -> Verdict:
        return Verdict(CLAIM, sh.name + " shards", outcome, error, tol, message,
                       dtype=f"gradient in {self.dtype.name}", evaluations=self.caller.calls,
                       requested=self.asked)

    def judge(self, sh: Sharding, values: list[Any]) -> Verdict:
        ranks = []
        for r, value in enumerate(values):
            same_structure(self.td, value, argname=f"step_fn (rank {r})")
            self._note_dtype(value)
            ranks.append(self.td.flatten(value))
        shards = sh.shards(self.batch)
        whole = tuple(np.concatenate([s[i] for s in shards]) for i in range(len(self.batch)))
        want = self.grad(whole)
        local = [self.grad(s) for s in shards]
        for r, g in enumerate(ranks):
            if not np.all(np.isfinite(g)):
                where = first_nonfinite(self.td, g)
                return self.base(FAILS, sh, np.inf, 0.0, f"on {sh.words()}, rank {r} ended with a "
                                                         f"non-finite gradient: {where}")
        terms = np.sum([np.abs(g) for g in local], axis=0) + np.abs(want)
        checks = [self._compare(sh, g, want, terms) for g in ranks]
        worst = max(checks, key=lambda v: v.error / v.tolerance if v.tolerance > 0 else np.inf)
        if all(v.holds for v in checks):
            return self._resolved(worst, sh, want)
        return worst.with_(outcome=FAILS, message=f"on {sh.words()}: " + self._explain(sh, ranks, want, local, terms))

    def _compare(self, sh: Sharding, got: np.ndarray, want: np.ndarray, terms: np.ndarray) -> Verdict:
        v = compare_leaves(self.td, CLAIM, sh.name + " shards", got, want, terms, self.size, self.dtype,
                           evaluations=self.caller.calls)
        return v.with_(requested=self.asked)

    def _resolved(self, v: Verdict, sh: Sharding, want: np.ndarray) -> Verdict:
        rms = float(np.sqrt(np.mean(want ** 2)))
        res = v.tolerance / rms if rms > 0 else np.inf
        if res > self.asked:
            return v.with_(outcome=UNDETERMINED, reason=PRECISION_LIMITED, resolution=res, message=(
                f"on {sh.words()}, every rank agrees with the full-batch gradient, but only to "
                f"{res:.1e} of its size (asked {self.asked:.1e}); return gradients in float64 to resolve more"))
        return v.with_(outcome=HOLDS, resolution=res, message=(
            f"on {sh.words()}, every rank ends with the full-batch gradient of grad_fn"))

    def _note_dtype(self, value: Any) -> None:
        # The narrowest float dtype any rank returns sets the rounding allowance.
        for arr in (np.asarray(x) for x in leaves(value)):
            if np.issubdtype(arr.dtype, np.floating) and np.finfo(arr.dtype).bits < np.finfo(self.dtype).bits:
                self.dtype = arr.dtype

    def _explain(self, sh: Sharding, ranks: list[np.ndarray], want: np.ndarray, local: list[np.ndarray],
                 terms: np.ndarray) -> str:
        W = self.world
        fits = lambda got, model: self._compare(sh, got, model, terms + np.abs(model)).holds  # noqa: E731
        if not all(fits(g, ranks[0]) for g in ranks[1:]):
            if all(fits(g, loc) for g, loc in zip(ranks, local)):
                return ("each rank ended with the gradient of its own shard alone: the gradients were "
                        "never all-reduced across ranks")
            return "the ranks ended with different gradients: a collective is missing for some parameters"
        got = ranks[0]
        if fits(got, np.mean(local, axis=0)) and not fits(got, want):
            return (f"every rank ended with the plain mean of the {W} local gradients, which weights every "
                    f"rank alike; with shards of unequal size that is not the full-batch {self.reduction}: "
                    f"weight each rank by its number of examples (all-reduce the summed loss and the "
                    f"count), or declare shards='equal'")
        if fits(got, np.sum(local, axis=0)):
            return (f"every rank ended with the sum of the {W} local gradients, {W} × the full-batch "
                    f"{self.reduction}: the all-reduce summed local {self.reduction}s; divide by world_size "
                    f"after it (or all-reduce with ReduceOp.AVG)")
        return self._scaled(got, want, fits)

    def _scaled(self, got: np.ndarray, want: np.ndarray, fits: Callable[..., bool]) -> str:
        W = self.world
        c = float(np.dot(got, want) / np.dot(want, want)) if np.dot(want, want) > 0 else np.nan
        if np.isfinite(c) and fits(got, c * want):
            for k, words in ((W, f"{W} (= world_size) times the full-batch gradient: an all-reduce sum "
                                 f"where an average was meant; divide by world_size"),
                             (1.0 / W, f"1/{W} of the full-batch gradient: divided by world_size twice, as "
                                       f"when a loss already divided by the global count is then averaged "
                                       f"over ranks; multiply the loss by world_size")):
                if abs(c - k) <= 1e-6 * k:
                    return words
            return f"{c:.6g} × the full-batch gradient"
        rel = float(np.linalg.norm(got - want) / max(np.linalg.norm(want), np.finfo(float).tiny))
        return (f"every rank ended with the same gradient, but it differs from the full-batch gradient "
                f"by {rel:.2e} relative and is not a multiple of it, nor the sum or mean of the local ones")

    def summary(self, verdicts: list[Verdict]) -> Verdict:
        for outcome in (FAILS, UNDETERMINED):
            for v in verdicts:
                if v.outcome == outcome:
                    return v.with_(details=tuple(verdicts), evaluations=self.caller.calls)
        v = max(verdicts, key=lambda d: d.resolution)
        said = "; ".join(d.message for d in verdicts)
        return v.with_(law=", ".join(d.law for d in verdicts), message=said, details=tuple(verdicts),
                       evaluations=self.caller.calls)

