"""check_gradient: a gradient function against finite differences of its loss."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import GradCaller, copies, first_nonfinite
from ._tree import TreeDef, as_batch, tree_def
from .oracle import LossOracle, Probe, _weights, truncation
from .verdict import (FAILS, HOLDS, NON_FINITE_LOSS, NOT_DIFFERENTIABLE, PRECISION_LIMITED,
                      UNDETERMINED, Verdict)

LAW = "finite differences"
CLAIM = "check_gradient"
MODES = ("auto", "full", "projection")
FULL_LIMIT = 128  # mode="auto" checks every entry up to this many parameters
# mode="auto" falls back from a precision-limited projection to a full check
# up to this many parameters: 6 loss evaluations each, ~6,000 in all, about
# what a few seconds of a small model's loss allow.
AUTO_FULL_LIMIT = 1024
MAX_NAMED = 8  # localisation names at most this many entries
# The seeds of the moves that measure grad_fn's rounding (the second
# differences', then the reach's where it has a pattern of its own): fixed,
# part of the error model; benchmarks/allowance.py checks it with them and
# with others.
PATTERN_SEEDS = (1, 2)
# mode="auto" takes more probes, up to this many in all, while each one brings
# a projection's resolution closer to the one asked for: every probe divides
# the chance that errors in several entries cancel along all of them
# (numerics.MISS_PROBABILITY), for 6 more evaluations whatever the size.
AUTO_MAX_PROBES = 16


class _NoiseChanged(Exception):
    """The loss's noise, measured only now, would have assessed a comparison
    already decided under the modelled floor differently (or is not finite):
    the check starts again under the measured noise."""


@dataclass(frozen=True)
class Comparison:
    """grad_fn's directional derivative against the oracle's, along one probe."""

    claimed: float
    probe: Probe
    bound: float  # the probe's bound plus the gradient's own rounding
    grad_rounding: float  # that second part
    measured: bool = False  # whether grad_rounding allows the measured rounding, or the modelled only
    second: Probe | None = None  # finite differences on a second ladder, taken where the first fails

    @property
    def error(self) -> float:
        return abs(self.claimed - self.probe.value)

    @property
    def steady(self) -> bool:
        """The second ladder, if taken, can judge and agrees with the first
        within their two bounds (numerics.SECOND_STEP)."""
        q = self.second
        return q is None or (not _why(q) and abs(q.value - self.probe.value) <= q.bound + self.probe.bound)

    @property
    def why(self) -> str:
        """Why finite differences cannot judge along this probe ("" if they can)."""
        # Estimates that move with the step more than their bounds allow come
        # from a loss the step cannot follow: no evidence either way.
        return _why(self.probe) or ("" if self.steady else NOT_DIFFERENTIABLE)

    @property
    def outcome(self) -> str:
        if self.why:
            return UNDETERMINED
        return HOLDS if self.error <= self.bound else FAILS


def _why(p: Probe) -> str:
    """Why finite differences cannot judge along a probe ("" if they can)."""
    if not p.finite:
        return NON_FINITE_LOSS
    if p.kink:
        return NOT_DIFFERENTIABLE
    if not p.resolved:
        return PRECISION_LIMITED
    # The ladder does not converge as the step shrinks (a loss that changes
    # faster than the step, or kinks within the ladder on both sides): it can
    # vouch neither for the gradient nor against it.
    return "" if p.smooth else NOT_DIFFERENTIABLE


_PER_ENTRY = {"seen": np.float64, "seen_by": np.int64, "alone": np.float64, "shared": np.int64,
              "shared_log": np.float64, "shared_max": np.float64}


class _Setup:
    """The point, the gradient under test, and the oracle around them."""

    def __init__(self, loss_fn: Callable[..., Any], grad_fn: Callable[..., Any],
                 params: Any, batch: tuple[Any, ...]) -> None:
        self.td: TreeDef = tree_def(params)
        self.batch = as_batch(batch) if batch else ()
        self.x0 = self.td.flatten(params)
        caller = self._caller = GradCaller(grad_fn, params, self.td)
        self.g = caller(self.batch)
        self.g_dtype = caller.dtype
        self.grad_calls = 1
        self.loss_fn = loss_fn
        self.oracle = LossOracle(self._loss64, self.x0, floor_first=True)
        self._worst: np.ndarray | None = None
        self._reach: np.ndarray | None = None
        self._patterns_reach: np.ndarray | None = None  # the reach over _second_differences' patterns
        self._pooled: np.ndarray | None = None
        self.kinked = np.zeros(self.x0.size, dtype=bool)  # entries the loss shows on a kink
        self.crossing: set[int] = set()  # entries whose own ladder holds only within a kink's truncation
        self._cells: tuple[list[_Cells], list[_Cells | None]] | None = None
        self._gx_cache: np.ndarray | None = None
        self._gx_total = 0.0
        self._bounds: tuple[np.ndarray | None, tuple[np.ndarray, np.ndarray]] | None = None
        self._version = 0  # bumped whenever the records below change (see _multi_resolution)
        self._products: np.ndarray | None = None
        self._least_scale: float | None = None
        self._rms: float | None = None
        self.quiet: set[tuple[float, ...]] = set()  # ladders judged under the modelled floor, being quiet
        self.reset()

    def reset(self) -> None:
        """Forget every comparison recorded (what the loss and grad_fn were
        measured to be stays)."""
        # Per entry (see _PER_ENTRY), made the first time a comparison of
        # part of the entries is recorded: a check of whole probes alone never
        # pays for six arrays of zeros over 10^6 entries.
        self._per_entry: dict[str, np.ndarray] | None = None
        self.some_alone = self.some_shared = False  # whether the per-entry records hold anything
        self.partial = (self.x0.size, 0)  # the span they hold anything in: [lo, hi)
        # Comparisons that moved every entry (whole probes), kept once for all
        # entries (at 10^6 entries each per-entry record costs passes over
        # them): their indices into self.decided, the sum of the logs of
        # their windows, and the largest of 2 windows.
        self.whole: list[int] = []
        self.whole_log = 0.0
        self.whole_max = 0.0
        self.decided: list[Comparison] = []
        self._version += 1
        self._multi: tuple[int, np.ndarray] | None = None

    def _entry_records(self) -> dict[str, np.ndarray]:
        if self._per_entry is None:
            # One block for all six (8 bytes an entry each; zero bits are 0 in
            # both dtypes): at 10^6 entries, memory that large comes from the
            # system as untouched zero pages, and only the spans recorded into
            # are ever written.
            block = np.zeros((len(_PER_ENTRY), self.n))
            self._per_entry = {name: block[i].view(dtype) for i, (name, dtype) in enumerate(_PER_ENTRY.items())}
        return self._per_entry

    # Per entry, the best |v_j| / bound over the comparisons that decided and
    # moved part of the entries (an error e_j is caught for certain once
    # |v_j e_j| > 2 bound), and which one (1 + index into self.decided; 0:
    # none). The comparisons that moved it alone (best |v_j| / bound: caught
    # for certain), and those that moved it with others: how many, the sum of
    # the logs and the largest of their 4 bounds (see _multi_resolution).
    seen = property(lambda self: self._entry_records()["seen"])
    seen_by = property(lambda self: self._entry_records()["seen_by"])
    alone = property(lambda self: self._entry_records()["alone"])
    shared = property(lambda self: self._entry_records()["shared"])
    shared_log = property(lambda self: self._entry_records()["shared_log"])
    shared_max = property(lambda self: self._entry_records()["shared_max"])

    @property
    def n(self) -> int:
        return self.x0.size

    @property
    def evaluations(self) -> int:
        """Calls of the functions under test: loss_fn and grad_fn."""
        return self.oracle.evaluations + self.grad_calls

    def settle_noise(self) -> None:
        """Measure the loss's noise, if it is not yet. Raises _NoiseChanged
        where that changes how a comparison already decided under the
        modelled floor is assessed, or the loss is not finite along the
        measured direction."""
        if self.oracle.measured:
            return
        if not self.oracle.noise().finite or any(_assessed_apart(self.oracle.assess(p), p)
                                                 for c in self.decided for p in (c.probe, c.second) if p):
            raise _NoiseChanged

    def _unsettled(self, probe: Probe, c: Comparison) -> bool:
        """Whether comparison ``c``, assessed under the modelled floor, calls
        for the noise to be measured: ``probe`` (its ladder, or its second)
        is not quiet, or it cannot be judged (the measurement says why)."""
        if self.oracle.measured:
            return False
        if c.outcome == UNDETERMINED or not self.oracle.quiet(probe):
            return True
        self.quiet.add(probe.ladder)
        return False

    def _loss64(self, flat: np.ndarray) -> Any:
        # Finite differences in float64 whatever the model's dtype: the loss
        # is handed float64 parameters; what it returns tells its precision.
        # The oracle hands every call a vector of its own (views save a copy
        # of every parameter per evaluation, which at 10^6 is a third of a pass).
        return self.loss_fn(self.td.unflatten(flat, dtype=np.float64, views=True), *copies(self.batch))

    def _grad_at(self, flat: np.ndarray, batch: tuple, out: np.ndarray | None = None) -> np.ndarray:
        self.grad_calls += 1
        return self._caller.at(flat, batch, out=out)

    def allowance(self) -> np.ndarray:
        """Per entry, the measured rounding of grad_fn's output, doubled: the
        larger of what a rounding looks like from outside (the jumps of
        :meth:`_second_differences`, the reach of :meth:`_sensitivity`) in
        the entry, or in a typical (median) entry of its leaf if that is
        larger, so an entry whose own samples happen to be small is covered
        by its neighbours'. Not the leaf's largest, and not counting entries
        known to sit on a kink (``self.kinked``): their gradient jumps between
        one-sided values under a move of a few ulps, and must not lend that
        jump to the others."""
        if self._pooled is None:
            pooled = np.maximum(self._second_differences(), self._sensitivity())
            some_kinked = bool(self.kinked.any())
            for leaf in self.td.leaves:
                sl = slice(leaf.start, leaf.start + leaf.size)
                smooth = pooled[sl][~self.kinked[sl]] if some_kinked else pooled[sl]
                typical = float(np.median(smooth)) if smooth.size else 0.0
                np.maximum(pooled[sl], typical, out=pooled[sl])
            pooled *= nm.GRAD_NOISE_SAFETY
            self._pooled = pooled
        return self._pooled

    def mark_kinked(self, entries: np.ndarray) -> None:
        """Entries the loss shows on a kink: left out of the pooled rounding."""
        if np.any(entries & ~self.kinked):
            self.kinked |= entries
            self._pooled = None

    def _second_differences(self) -> np.ndarray:
        """Per entry, the largest |g(+s) + g(-s) - 2 g(0)| over the sign
        patterns s (numerics.GRAD_PATTERNS). Params and the batch's
        real-valued arrays move together, by a few ulps of the coarser of
        their dtype and the gradient's: a rounding that does not move with
        them (the batch cast to float32 inside grad_fn) would otherwise look
        like no rounding at all. The smooth change cancels; a rounding shows
        as a jump of a cell wherever the moved values round unevenly. Where
        no input is held coarser than the gradient, the same calls give a
        reach (:meth:`_sensitivity`): the largest first difference per cell
        moved over the patterns."""
        if self._worst is None:
            rng = np.random.default_rng(PATTERN_SEEDS[0])
            worst = np.zeros(self.n)
            up, down = np.empty(self.n), np.empty(self.n)  # every pattern's gradients, flattened into these
            reach = np.zeros(self.n) if self._fine_moves() else None
            first = None if reach is None else np.empty(self.n)
            for _ in range(nm.GRAD_PATTERNS):
                s, ds, cells = self._moves(rng, half=True, coarse_params=True)
                self._grad_at(self.x0 + s, _moved(self.batch, ds, 1.0), out=up)
                self._grad_at(self.x0 - s, _moved(self.batch, ds, -1.0), out=down)
                if reach is not None:
                    np.maximum(reach, _reach(up, down, cells, out=first), out=reach)
                second = np.add(up, down, out=up)
                second -= self.g  # g twice, not 2 g once: the roundings the error model was measured with
                second -= self.g
                np.abs(second, out=second)
                _zero_nonfinite(second)
                np.maximum(worst, second, out=worst)
            self._worst = worst
            self._patterns_reach = reach
        return self._worst

    def _sensitivity(self) -> np.ndarray:
        """Per entry, how far the gradient moves when every input it is
        computed from (params and real-valued batch entries held no coarser
        than the gradient) is off by one cell of the gradient's dtype, with
        random signs: |g(+s) - g(-s)| / 2 per cell moved. A rounding is at
        most half a cell of the value it rounds, so this is the reach of the
        roundings of inputs and of the intermediate values that move with
        them, whether or not a second difference happens to see them jump.
        One pattern alone can leave it small by chance (with one example,
        the signs of the moves can cancel in the one value that carries the
        rounding): it is the largest over the second differences' patterns
        too where no input is held coarser than the gradient (they move the
        inputs by cells of the gradient's dtype, whole, or with a half where
        the input is finer), and over those alone where every input is held
        in the gradient's dtype (whole cells, as this pattern would move them)."""
        if self._reach is None:
            self._second_differences()
            patterns = self._patterns_reach
            if patterns is not None and self._same_moves():
                self._reach = patterns
            else:
                rng = np.random.default_rng(PATTERN_SEEDS[1])
                s, ds, cells = self._moves(rng, half=False, coarse_params=False)
                own = _reach(self._grad_at(self.x0 + s, _moved(self.batch, ds, 1.0)),
                             self._grad_at(self.x0 - s, _moved(self.batch, ds, -1.0)), cells)
                self._reach = own if patterns is None else np.maximum(own, patterns, out=own)
        return self._reach

    def _same_moves(self) -> bool:
        """Whether every input is held in the gradient's dtype: then the
        patterns of :meth:`_second_differences` move them as
        :meth:`_sensitivity` would (whole cells, no param left still)."""
        return self._held(lambda dtype: dtype == self.g_dtype)

    def _fine_moves(self) -> bool:
        """Whether no input is held coarser than the gradient: then the
        patterns of :meth:`_second_differences` move every input by cells
        of the gradient's dtype (with a half, where it is finer), as
        :meth:`_sensitivity` would but for the half."""
        finest = np.finfo(self.g_dtype).eps
        return self._held(lambda dtype: np.finfo(dtype).eps <= finest)

    def _held(self, test: Callable[[np.dtype], bool]) -> bool:
        """Whether ``test`` holds for the dtype of every input that moves."""
        params, batch = self._move_cells()
        return all(test(c.dtype) for c in params) and all(c is None or test(c.dtype) for c in batch)

    def _move_cells(self) -> tuple[list[_Cells], list[_Cells | None]]:
        if self._cells is None:  # the same for every pattern: computed once
            self._cells = ([_Cells(self.x0[leaf.start:leaf.start + leaf.size], leaf.dtype, self.g_dtype)
                            for leaf in self.td.leaves],
                           [_Cells(np.asarray(a, np.float64).ravel(), np.asarray(a).dtype, self.g_dtype)
                            if _continuous(a) else None for a in self.batch])
        return self._cells

    def _moves(self, rng: np.random.Generator, *, half: bool, coarse_params: bool) -> tuple:
        """Random moves of the params and of the batch's real-valued arrays
        (see :func:`_ulp_steps`), and the fewest cells of the gradient's
        dtype any of them moved by (0 if none moved); params held coarser
        than the gradient stay still unless ``coarse_params``."""
        params, batch = self._move_cells()
        finest = np.finfo(self.g_dtype).eps
        moving = [coarse_params or np.finfo(leaf.dtype).eps <= finest for leaf in self.td.leaves]
        s = np.empty(self.n) if all(moving) else np.zeros(self.n)  # every entry written, or left at 0
        least = np.inf
        for leaf, cells, moves in zip(self.td.leaves, params, moving):
            if moves:
                _, fewest = _ulp_steps(rng, cells, half=half, out=s[leaf.start:leaf.start + leaf.size])
                least = min(least, fewest)
        ds = []
        for cells in batch:
            step, fewest = (None, np.inf) if cells is None else _ulp_steps(rng, cells, half=half)
            ds.append(step)
            least = min(least, fewest)
        return s, ds, (0.0 if least == np.inf else least)

    def probe(self, v: np.ndarray, span: tuple[int, int] | None = None, count: int | None = None) -> Probe:
        """The oracle's directional derivative along ``v`` within ``span``
        (the whole vector if None): v is read there only, and taken as zero
        elsewhere (``count``: its nonzero entries there, if known)."""
        lo, hi = span or (0, self.n)
        w = v[lo:hi]
        count = int(np.count_nonzero(w)) if count is None else count
        gx = self._gx
        if (lo, hi) == (0, self.n) and count == self.n:  # a whole probe: the same sum every time
            claimed_abs = self._gx_total
        elif count == hi - lo:
            claimed_abs = float(np.sum(gx[lo:hi]))
        else:
            claimed_abs = float(np.sum(gx[lo:hi][w != 0]))
        return self.oracle.probe(v, claimed_abs=claimed_abs, span=(lo, hi))

    @property
    def _gx(self) -> np.ndarray:
        """|g_j x_j| per entry: the loss sees its inputs rounded, which moves
        it by up to eps times the sum of these over the entries moved."""
        if self._gx_cache is None:
            self._gx_cache = np.multiply(self.g, self.x0)
            np.abs(self._gx_cache, out=self._gx_cache)
            self._gx_total = float(np.sum(self._gx_cache))
        return self._gx_cache

    def _entry_bounds(self, measured: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per entry, for a unit weight: the entry's rounding (modelled, the
        multiple of |g_j| that _bounded sums directly, or with ``measured``
        the larger of that and the measured allowance), and that squared; the
        rounding of a probe's term is |v_j| times the first."""
        pooled = self.allowance() if measured else None
        if self._bounds is None or self._bounds[0] is not pooled:
            entry = np.abs(self.g)
            entry *= self.unit_rounding
            if pooled is not None:
                np.maximum(entry, pooled, out=entry)
            self._bounds = (pooled, (entry, entry * entry))
        return self._bounds[1]

    @property
    def measured_rounding(self) -> bool:
        """Whether grad_fn's rounding has been measured (:meth:`allowance`)."""
        return self._pooled is not None

    def entry_rounding(self, measure: bool) -> np.ndarray:
        """Per entry, grad_fn's rounding for a unit weight: measured where it
        has been already, or where ``measure``; else as modelled."""
        return self._entry_bounds(measured=measure or self._pooled is not None)[0]

    def compare(self, v: np.ndarray, probe: Probe | None = None,
                span: tuple[int, int] | None = None, *, second: Probe | None = None,
                record: bool = True) -> Comparison:
        """grad_fn against finite differences along ``v`` within ``span``
        (the whole vector if None; v is read there only, and taken as zero
        elsewhere, as by :meth:`probe`; ``probe``: the oracle's answer
        along it, if already taken, and ``second`` its second ladder, see
        :meth:`confirm`; ``record``: whether what it sees counts toward the
        resolution, :meth:`_record`).

        The gradient's rounding is first allowed as modelled; only where that
        does not hold is its measured rounding (8 or 10 calls of grad_fn, see
        :meth:`allowance`) allowed too. A comparison that holds within the
        smaller bound shows grad_fn within it, rounding and all, so the
        resolution it reaches is sound; a correct gradient whose terms round
        more than the model says fails the first bound and is judged by the
        second, as every comparison was before."""
        lo, hi = span or (0, self.n)
        w = v[lo:hi]
        count = int(np.count_nonzero(w))
        probe = self.oracle.assess(probe) if probe is not None else self.probe(v, (lo, hi), count)
        if self._products is None:  # one buffer for every comparison's products (not kept)
            self._products = np.empty(self.n)
        terms = _Terms(w, self.g[lo:hi], self._products[:hi - lo])
        c = self._bounded(terms, probe, lo, hi, count, measured=False)
        if c.outcome != HOLDS:
            c = self._bounded(terms, probe, lo, hi, count, measured=True)
        if c.outcome == FAILS and second is not None:
            c = replace(c, second=self.oracle.assess(second))
        if self._unsettled(probe, c) or (c.second is not None and self._unsettled(c.second, c)):
            self.settle_noise()
            return self.compare(v, probe, span, second=second, record=record)
        if c.outcome != UNDETERMINED and record:
            self._record(c, w, lo, count)
        return c

    def confirm(self, c: Comparison, v: np.ndarray, span: tuple[int, int] | None = None) -> Comparison:
        """A failing comparison ``c`` (along ``v``, within ``span``) judged
        again on a second ladder from numerics.SECOND_STEP of the step: it
        stays failing only where the two estimates agree (Comparison.steady),
        and is undetermined otherwise. 6 evaluations, spent only on the
        comparisons a verdict of fails rests on; the search that narrows a
        failure down is only pointed by the others."""
        if c.outcome != FAILS or c.second is not None:
            return c
        lo, hi = span or (0, self.n)
        second = self.oracle.probe(v, claimed_abs=c.probe.claimed_abs, span=(lo, hi),
                                   step=nm.SECOND_STEP * self.oracle.h)
        checked = replace(c, second=second)
        if self._unsettled(second, checked):
            self.settle_noise()  # c itself is recorded: where its assessment changes, the check restarts
            checked = replace(c, second=self.oracle.assess(second))
        if not checked.steady:
            self.forget(c, v, span)
        return checked

    def forget(self, c: Comparison, v: np.ndarray, span: tuple[int, int] | None = None) -> None:
        """Take back what comparison ``c`` (along ``v``, within ``span``) was
        recorded as seeing, where it turned out to be no evidence: exactly
        where counts add up (shared), and by forgetting the entries it saw
        best where only a maximum was kept (seen, alone), which can only make
        a stated resolution coarser."""
        index = next((i for i, d in enumerate(self.decided) if d is c), None)
        if index is None:
            return
        self._version += 1
        if index in self.whole:
            if c.bound > 0:  # a window of 0 left a log of -inf, which nothing takes back
                self.whole.remove(index)
                self.whole_log -= float(np.log(2 * c.bound))
            return
        lo, hi = span or (0, self.n)
        aw = np.abs(v[lo:hi])
        count = int(np.count_nonzero(aw))
        cut = slice(lo, hi)
        mine = self.seen_by[cut] == index + 1
        self.seen[cut][mine] = 0.0
        self.seen_by[cut][mine] = 0
        if count == 1:
            self.alone[lo + int(np.flatnonzero(aw)[0])] = 0.0
        elif count > 1 and c.bound > 0:  # a window of 0 left a log of -inf, which nothing takes back
            self._tally(cut, _still(aw, count), float(np.log(2 * c.bound)), -1)

    def _bounded(self, terms: "_Terms", probe: Probe, lo: int, hi: int, count: int,
                 measured: bool) -> Comparison:
        """The comparison with each entry's own rounding (modelled, or measured
        where larger), of random sign along the probe; then the float64 sum
        that adds them."""
        if measured:
            aw = terms.aw
            entry, entry2 = (a[lo:hi] for a in self._entry_bounds(measured))
            plain, squares = float(aw @ entry), float((aw * aw) @ entry2)
        else:  # each entry's modelled rounding is a multiple of |g_j|: sums of the terms suffice
            unit = self.unit_rounding
            plain, squares = unit * terms.abs_sum, unit * unit * terms.square_sum
        adding = np.log2(max(count, 1)) * nm.eps(np.float64) * terms.abs_sum
        rounding = min(plain, nm.RANDOM_SIGNS_Z * np.sqrt(squares)) + adding
        return Comparison(terms.claimed, probe, probe.bound + rounding, rounding, measured)

    def _record(self, c: Comparison, w: np.ndarray, lo: int, count: int) -> None:
        """What comparison ``c`` saw of each entry it moved (``w``: v on the
        span from ``lo``, ``count`` of them nonzero)."""
        self._version += 1
        self.decided.append(c)
        window = 2 * c.bound
        if count == self.n and count > 1:
            self.whole.append(len(self.decided) - 1)
            self.whole_log += float(np.log(window)) if window > 0 else -np.inf
            self.whole_max = max(self.whole_max, 2 * window)
            return
        aw = np.abs(w)
        span = slice(lo, lo + aw.size)
        self.partial = (min(self.partial[0], lo), max(self.partial[1], lo + aw.size))
        with np.errstate(divide="ignore"):
            sens = aw / c.bound
        better = sens > self.seen[span]
        np.copyto(self.seen[span], sens, where=better)
        np.copyto(self.seen_by[span], len(self.decided), where=better)
        if count == 1:
            j = int(np.flatnonzero(aw)[0])
            self.alone[lo + j] = max(self.alone[lo + j], sens[j])
            self.some_alone = True
        elif count > 1:
            self.some_shared = True
            still = _still(aw, count)
            self._tally(span, still, np.log(window) if window > 0 else -np.inf, 1)
            with _kept(self.shared_max[span], still) as shared_max:
                np.maximum(shared_max, 2 * window, out=shared_max)

    def _tally(self, span: slice, still: np.ndarray | None, log: float, sign: int) -> None:
        """Count one comparison that moved the entries of ``span`` but those
        ``still`` (indices into the span; None: none) with others (``sign``
        1), or take it back (-1): how many, and the sum of the logs of their
        windows."""
        with _kept(self.shared[span], still) as shared, _kept(self.shared_log[span], still) as shared_log:
            shared += sign
            shared_log += sign * log

    @property
    def unit_rounding(self) -> float:
        """An entry's modelled rounding per unit of |g_j| (numerics.sum_rounding)."""
        return float(nm.sum_rounding(np.float64(1.0), self.g_dtype, 1))

    def least_scale(self, scope: np.ndarray, start: int = 0) -> float:
        """The smallest max(1, |x_j|) over ``scope``, a mask of the entries
        from ``start`` on (kept for all entries); inf over none."""
        if self.oracle.unit_scale:
            return 1.0 if scope.any() else np.inf
        if start == 0 and scope.size == self.n and scope.all():
            if self._least_scale is None:
                self._least_scale = float(np.min(self.oracle.scale))
            return self._least_scale
        return float(np.min(self.oracle.scale[start:start + scope.size][scope], initial=np.inf))

    def rms_gradient(self, scope: np.ndarray) -> float:
        """The RMS size of grad_fn's entries over ``scope`` (kept for all entries)."""
        if scope.all():
            if self._rms is None:
                self._rms = float(np.sqrt(np.dot(self.g, self.g) / self.n))
            return self._rms
        return float(np.sqrt(np.mean(self.g[scope] ** 2)))

    def entry_direction(self, j: int) -> np.ndarray:
        v = np.zeros(self.n)
        v[j] = self.oracle.scale[j]
        return v

    def block_direction(self, rng: np.random.Generator, lo: int, hi: int) -> np.ndarray:
        if (lo, hi) == (0, self.n):  # the same draws, without a vector of zeros to fill
            v = _weights(rng, self.n)
            if not self.oracle.unit_scale:
                v *= self.oracle.scale
            return v
        v = np.zeros(self.n)
        v[lo:hi] = _weights(rng, hi - lo)
        v[lo:hi] *= self.oracle.scale[lo:hi]
        return v


class _Terms:
    """The terms w_j g_j of a directional derivative <w, g>, summed as its
    comparison needs them: signed (the claim), in absolute value and squared
    (the modelled rounding of the entries, each a multiple of |g_j|), in one
    product over the entries."""

    def __init__(self, w: np.ndarray, g: np.ndarray, out: np.ndarray) -> None:
        t = np.multiply(w, g, out=out)
        self.claimed = float(np.sum(t))
        np.abs(t, out=t)
        self.abs_sum = float(np.sum(t))
        self.square_sum = float(t @ t)
        self.w = w
        self._aw: np.ndarray | None = None

    @property
    def aw(self) -> np.ndarray:
        """|w|, for bounds that are not multiples of |g_j| (the measured rounding)."""
        if self._aw is None:
            self._aw = np.abs(self.w)
        return self._aw


def _still(aw: np.ndarray, count: int) -> np.ndarray | None:
    """The indices of the entries of a span a comparison left still (``aw``:
    its |weights| there, ``count`` of them nonzero); None if it moved all."""
    return None if count == aw.size else np.flatnonzero(aw == 0)


@contextlib.contextmanager
def _kept(a: np.ndarray, still: np.ndarray | None) -> Iterator[np.ndarray]:
    """``a``, to change in place over every entry, with the entries ``still``
    put back as they were: a whole-span operation and a few entries put back
    are several times faster than a ufunc's where=."""
    kept = None if still is None else a[still]
    yield a
    if still is not None:
        a[still] = kept


def _assessed_apart(a: Probe, b: Probe) -> bool:
    """Two assessments of one ladder that a comparison could tell apart."""
    return (a.bound, a.kink, a.smooth, a.resolved, a.finite) != (b.bound, b.kink, b.smooth, b.resolved, b.finite)


class _Cells:
    """Values held in ``dtype`` (as float64) with, per entry, its own cell (ulp)
    and the cell of the coarser of ``dtype`` and the gradient's dtype."""

    def __init__(self, x: np.ndarray, dtype: np.dtype, grad_dtype: np.dtype) -> None:
        self.x, self.dtype, self.grad_dtype = x, np.dtype(dtype), np.dtype(grad_dtype)
        self.finer = np.finfo(self.dtype).eps < np.finfo(grad_dtype).eps
        coarse = self.grad_dtype if self.finer else self.dtype
        self.magnitude = np.abs(x)
        self.own = _cell(self.magnitude, self.dtype)
        self.cell = _cell(self.magnitude, coarse) if self.finer else self.own
        self.edge: np.ndarray | None = None
        if self.dtype == np.float64 and not self.finer:
            # Moved by whole cells of its own, a float64 value stays on the
            # grid unless it crosses the next power of two (own * 2^53; toward
            # zero the cells only get finer): exactness need only be tested at
            # the few entries within the largest move of it (GRAD_ULPS + 1
            # cells), and at non-finite ones (a NaN compares false).
            below = np.multiply(self.own, 2.0 ** 53 - (nm.GRAD_ULPS + 1))
            self.edge = np.flatnonzero(~(self.magnitude < below))


def _cell(magnitude: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The cell (ulp) of each value of ``magnitude`` (>= 0) held in ``dtype``, as float64."""
    cell = np.maximum(magnitude, np.finfo(dtype).tiny).astype(dtype, copy=False)
    return np.spacing(cell, out=cell if cell.dtype == np.float64 else None).astype(np.float64, copy=False)


def _ulp_steps(rng: np.random.Generator, c: _Cells, *, half: bool,
               out: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """Per entry of ``c.x``, a move by a random sign and numerics.GRAD_ULPS
    +- 1 cells of the coarser of its dtype and the gradient's dtype, exactly
    representable in its dtype both ways (0 where it is not, at a binade
    edge); and the fewest cells of the gradient's dtype any entry moved by
    (inf if none moved). With ``half``, where its dtype is the finer one, the
    move is a whole number of cells and a half: grad_fn casts such a value to
    its own dtype, and a second difference sees that rounding only where the
    moved values round unevenly, which half a cell guarantees (a whole number
    keeps each value's place in its cell). Written into ``out`` if given."""
    # The draws are part of the error model (numerics.GRAD_PATTERNS was
    # measured with them): a count, then a sign (1 -> +, 0 -> -), per entry.
    counts = rng.integers(nm.GRAD_ULPS - 1, nm.GRAD_ULPS + 2, size=c.x.size)
    sign = rng.integers(0, 2, size=c.x.size)
    if c.edge is None:
        return _rounded_steps(c, counts, sign, half, out)
    least = int(np.min(counts, initial=np.iinfo(np.int64).max))
    sign *= 2
    sign -= 1
    sign *= counts  # the signed count of cells
    step = np.multiply(sign, c.own, out=out)
    if c.edge.size:
        at = c.edge
        with np.errstate(over="ignore", invalid="ignore"):
            moved = np.abs(step[at])
            inexact = ~(c.magnitude[at] + moved - c.magnitude[at] == moved)
        step[at[inexact]] = 0.0
        if inexact.any():  # the fewest cells among the entries that still move
            counts[at[inexact]] = np.iinfo(np.int64).max
            least = int(np.min(counts))
    return step, (np.inf if least == np.iinfo(np.int64).max else float(least))


def _rounded_steps(c: _Cells, counts: np.ndarray, sign: np.ndarray, half: bool,
                   out: np.ndarray | None) -> tuple[np.ndarray, float]:
    """_ulp_steps where the values are not float64 or are finer than the
    gradient: cells of the coarser dtype, counted in cells of its own, and
    exactness tested by moving the values both ways in their dtype."""
    x = c.x
    cells = counts.astype(np.float64)
    if c.finer and half:
        cells += 0.5
    if c.finer:
        cells *= c.cell
        cells /= c.own
        np.maximum(np.round(cells, out=cells), 1.0, out=cells)
    step = np.multiply(cells, c.own, out=cells)
    np.copysign(step, np.subtract(sign, 0.5), out=step)
    with np.errstate(over="ignore", invalid="ignore"):
        up, down = x + step, x - step
        if c.dtype != np.float64:
            up, down = up.astype(c.dtype).astype(np.float64), down.astype(c.dtype).astype(np.float64)
        up -= x
        np.subtract(x, down, out=down)
    exact = up == step
    exact &= down == step
    step *= exact
    if out is not None:
        out[...] = step
        step = out
    on = step != 0
    if not np.any(on):
        return step, np.inf
    return step, float(np.min(np.abs(step[on]) / _cell(c.magnitude[on], c.grad_dtype)))


def _reach(up: np.ndarray, down: np.ndarray, cells: float, out: np.ndarray | None = None) -> np.ndarray:
    """|up - down| / 2 per cell moved (0 where not finite, or where nothing
    moved), into ``out`` if given."""
    first = np.subtract(up, down, out=out)
    if cells == 0:
        first.fill(0.0)
        return first
    np.abs(first, out=first)
    first /= 2 * cells
    _zero_nonfinite(first)
    return first


def _zero_nonfinite(a: np.ndarray) -> None:
    """Set a's non-finite entries to 0, in place (a sum tells in one pass
    without writes whether there are any)."""
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.sum(a))
    if not np.isfinite(total):
        a[~np.isfinite(a)] = 0.0


def _continuous(a: np.ndarray) -> bool:
    """A real-valued batch array that can move by ulps: not integers, and not
    whole numbers held as floats (labels, masks, counts: moving those changes
    what they mean)."""
    a = np.asarray(a)
    return bool(np.issubdtype(a.dtype, np.floating) and a.size and np.any(a != np.round(a)))


def _moved(batch: tuple, moves: list, sign: float) -> tuple:
    return tuple(a if m is None else (np.asarray(a, np.float64) + sign * m.reshape(np.shape(a))).astype(
        np.asarray(a).dtype) for a, m in zip(batch, moves))


def check_gradient(loss_fn: Callable[..., Any], grad_fn: Callable[..., Any], params: Any,
                   *batch: Any, mode: str = "auto", probes: int = 4, seed: int = 0,
                   resolution: float = nm.DEFAULT_RESOLUTION) -> Verdict:
    """Check ``grad_fn`` against finite differences of ``loss_fn``.

    ``mode="full"`` compares every entry; ``"projection"`` compares directional
    derivatives along ``probes`` random directions (a fixed number of loss
    evaluations whatever the parameter count) and, if one fails, narrows down
    to the wrong entries; ``"auto"`` is full up to 128 parameters, else a
    projection, and a full check up to 1024 parameters if the projection
    cannot reach the resolution.

    ``resolution`` is the smallest relative error in a typical gradient entry
    (one of root-mean-square size) the check must be able to catch to say
    "holds"; where it cannot, the verdict is undetermined, "precision-limited",
    with the resolution it did reach (``Verdict.resolution``).

    >>> import numpy as np
    >>> loss = lambda w, x: float(np.sum(np.sin(x @ w)))
    >>> grad = lambda w, x: x.T @ np.cos(x @ w)
    >>> x = np.array([[1.0, 2.0], [0.5, -1.0]])
    >>> v = check_gradient(loss, grad, np.array([0.3, -0.2]), x)
    >>> bool(v), v.resolution < 1e-6
    (True, True)
    """
    mode = _args.choice("mode", mode, MODES)
    probes = _args.count("probes", probes)
    seed = _args.seed(seed)
    requested = _args.resolution(resolution)
    # Misuse is refused before any user code runs: NaN in the caller's own
    # params or batch is theirs, not a finding about grad_fn.
    _args.inputs(params, batch, loss_fn=loss_fn, grad_fn=grad_fn)
    s = _Setup(loss_fn, grad_fn, params, batch)
    early = _early_verdict(s, requested)
    if early is not None:
        return early
    try:
        return _check(s, mode, probes, seed, requested)
    except _NoiseChanged:
        # Rare: every ladder looked quiet until one did not, and the noise
        # measured then is above the floor the earlier ones were judged under.
        early = _noise_verdict(s, requested)
        if early is not None:
            return early
        s.reset()
        return _check(s, mode, probes, seed, requested)


def _check(s: _Setup, mode: str, probes: int, seed: int, requested: float) -> Verdict:
    rng = np.random.default_rng(seed)
    if mode == "full" or (mode == "auto" and s.n <= FULL_LIMIT):
        return _full(s, rng, requested)
    v = _projection(s, probes, rng, requested, AUTO_MAX_PROBES if mode == "auto" else probes)
    if mode == "auto" and v.reason == PRECISION_LIMITED and _full_would_help(s, requested, v.resolution):
        return _full(s, rng, requested)
    return v


# ---------------------------------------------------------------- verdicts

def _base(s: _Setup, outcome: str, error: float, tol: float, message: str, requested: float,
          reason: str = "", resolution: float = np.inf) -> Verdict:
    dtype = f"loss in {s.oracle.precision.name}, gradient in {s.g_dtype.name}"
    return Verdict(CLAIM, LAW, outcome, error, tol, message, reason=reason, step=s.oracle.h,
                   dtype=dtype, evaluations=s.evaluations, resolution=resolution, requested=requested)


def _early_verdict(s: _Setup, requested: float) -> Verdict | None:
    if not np.all(np.isfinite(s.g)):
        where = first_nonfinite(s.td, s.g)
        return _base(s, FAILS, np.inf, 0.0, f"grad_fn returned a non-finite gradient: {where}", requested)
    if not np.isfinite(s.oracle.f0):
        return _base(s, UNDETERMINED, np.nan, np.nan,
                     f"loss_fn returned {s.oracle.f0} at params; the gradient cannot be checked there",
                     requested, reason=NON_FINITE_LOSS)
    return None


def _noise_verdict(s: _Setup, requested: float) -> Verdict | None:
    """Undetermined where the loss is not finite along the direction its
    noise is measured on (measured only once some ladder calls for it)."""
    if not s.oracle.noise().finite:
        return _base(s, UNDETERMINED, np.nan, np.nan,
                     f"loss_fn returned a non-finite value within {4 * s.oracle.h:.2e} of params "
                     f"(relative to max(1, |params|)); the gradient cannot be checked there",
                     requested, reason=NON_FINITE_LOSS)
    return None


def _excess(c: Comparison) -> float:
    return c.error / c.bound if c.bound > 0 else (np.inf if c.error else 0.0)


def _numbers(s: _Setup, comps: list[Comparison], requested: float, scope: np.ndarray) -> Verdict:
    """A verdict carrying the decisive comparison (the worst failure, else the
    tightest determined one) and the resolution reached over ``scope``."""
    decided = [c for c in comps if c.outcome != UNDETERMINED] or comps
    worst = max(decided, key=lambda c: (c.outcome == FAILS, _excess(c)))
    return _base(s, worst.outcome, worst.error, worst.bound, "", requested,
                 resolution=_relative_resolution(s, scope))


def _absolute_resolution(s: _Setup, scope: np.ndarray) -> float:
    """The smallest error in one entry of ``scope`` caught whatever the other
    entries' errors: for certain where the entry was compared alone, else
    but for numerics.MISS_PROBABILITY (_multi_resolution). Outside the span
    that comparisons of part of the entries moved, whole probes alone give
    one figure over the scale."""
    if not np.any(scope):
        return np.inf
    lo, hi = s.partial if (s.some_alone or s.some_shared) else (0, 0)
    worst = -np.inf
    if lo < hi and np.any(scope[lo:hi]):
        with np.errstate(divide="ignore"):
            alone = np.where(s.alone[lo:hi] > 0, nm.CATCH_FACTOR / s.alone[lo:hi], np.inf)
        worst = float(np.max(np.minimum(alone, _multi_resolution(s))[scope[lo:hi]]))
    if np.any(scope[:lo]) or np.any(scope[hi:]):
        least = min(s.least_scale(scope[:lo], 0), s.least_scale(scope[hi:], hi)) if lo < hi else \
            s.least_scale(scope)
        worst = max(worst, _whole_error(s) / least if s.whole else np.inf)
    return worst


def _whole_error(s: _Setup) -> float:
    """_multi_resolution's figure before the division by an entry's scale,
    from the whole probes alone."""
    with np.errstate(over="ignore"):
        return max(s.whole_max, float(np.exp((s.whole_log - np.log(nm.MISS_PROBABILITY)) / len(s.whole))))


def _reachable(s: _Setup) -> float:
    """The relative resolution no number of further probes like these could
    pass: an error of 4 bounds in one entry is where the chance that the
    others cancel it stops shrinking with each probe."""
    if not s.some_shared:
        floor = s.whole_max / s.least_scale(np.ones(s.n, bool)) if s.whole else np.inf
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            floor = float(np.max(np.where(s.shared + len(s.whole) > 0,
                                          np.maximum(s.shared_max, s.whole_max) / s.oracle.scale, np.inf)))
    rms = _typical_size(s, np.ones(s.n, bool))
    return floor / (rms - floor) if rms > floor else np.inf


def _multi_resolution(s: _Setup) -> np.ndarray:
    """Per entry of the span comparisons of part of the entries moved
    (s.partial), the error that the comparisons moving it with others catch
    but for numerics.MISS_PROBABILITY, whatever the other entries' errors:
    each such comparison misses an error e_j with probability at most
    2 bounds / (max(1, |x_j|) |e_j|) once that exceeds 4 bounds (see
    numerics.MISS_PROBABILITY); over k of them, at most the product.
    inf where no comparison moved the entry with others."""
    if s._multi is not None and s._multi[0] == s._version:
        return s._multi[1]  # nothing recorded since: the same
    span = slice(*s.partial)
    k = s.shared[span] + len(s.whole)
    with np.errstate(over="ignore", invalid="ignore"):
        # exp(mean log window) / MISS^(1/k), in logs: one exp per entry, not a power
        spread = s.shared_log[span] + (s.whole_log - np.log(nm.MISS_PROBABILITY))
        spread /= np.maximum(k, 1)
        np.exp(spread, out=spread)
        error = np.maximum(s.shared_max[span], spread, out=spread)
        np.maximum(error, s.whole_max, out=error)
        error /= s.oracle.scale[span]
    error[k == 0] = np.inf
    s._multi = (s._version, error)
    return s._multi[1]


def _relative_resolution(s: _Setup, scope: np.ndarray) -> float:
    """The absolute resolution over the RMS size of the true gradient's entries,
    bounded below by that of grad_fn's less the resolution itself (an error
    it could have missed may have inflated grad_fn's)."""
    absolute = _absolute_resolution(s, scope)
    rms = _typical_size(s, scope)
    if absolute == 0:
        return 0.0
    return absolute / (rms - absolute) if rms > absolute else np.inf


def _typical_size(s: _Setup, scope: np.ndarray) -> float:
    """The RMS size of grad_fn's entries; for a gradient that is exactly zero
    (a stationary point: a converged fit, a dead layer), the size a gradient
    entry has when the loss changes by its own value over a unit move of the
    parameter (max(1, |x_j|), the step's unit), or, for a loss of 0, by its
    change over the ladder's range. Zero has no relative error of its own,
    and "grad_fn says 0" is then judged against the loss's scale (the
    message says so)."""
    if not np.any(scope):
        return 0.0
    rms = s.rms_gradient(scope)
    if rms > 0:
        return rms
    s.settle_noise()
    noise = s.oracle.noise()
    change = noise.spread / (2 * max(map(abs, nm.NOISE_WIDE)) * s.oracle.h)
    return max(abs(s.oracle.f0), change) / float(np.sqrt(np.mean(s.oracle.scale[scope] ** 2)))


def _finish(s: _Setup, v: Verdict, comps: list[Comparison], mode: str) -> Verdict:
    """A determined, holding verdict: holds at the resolution asked for, or
    is precision-limited."""
    if v.resolution <= v.requested and not np.any(s.g):
        size = _typical_size(s, np.ones(s.n, bool))
        return v.with_(message=f"grad_fn returns a zero gradient and finite differences agree: every "
                               f"entry is zero to within {v.resolution * size:.1e}, a relative "
                               f"{v.resolution:.1e} of the gradient scale {size:.3e} of this loss "
                               f"({s.oracle.f0:.6g} at params)")
    if v.resolution <= v.requested:
        return v.with_(message=f"grad_fn agrees with finite differences of loss_fn along "
                               f"{len(comps)} directions, to a relative error of {v.resolution:.1e} "
                               f"in a typical entry")
    return v.with_(outcome=UNDETERMINED, reason=PRECISION_LIMITED,
                   message=_precision_text(s, v, mode))


def _precision_text(s: _Setup, v: Verdict, mode: str) -> str:
    reached = "no relative resolution at all" if not np.isfinite(v.resolution) else \
        f"only a resolution of {v.resolution:.1e}"
    head = (f"grad_fn agrees with finite differences of loss_fn as far as they can tell, but they "
            f"reach {reached} in a typical gradient entry, short of the {v.requested:.1e} asked for")
    return f"{head}; {_limit_text(s)}; to improve it: {_advice(s, v, mode)}"


def _limit_text(s: _Setup) -> str:
    """What limits the resolution, read off the comparison that saw the
    least-seen entry."""
    c = _limiting(s)
    if c is None:
        return "no entry could be judged"
    if c.grad_rounding >= c.probe.bound and c.measured:
        return (f"what limits it is grad_fn's own rounding in {s.g_dtype.name}, measured by calling it at "
                f"params moved by a few ulps (the terms summed into an entry are much larger than the entry)")
    if c.grad_rounding >= c.probe.bound:
        return (f"what limits it is grad_fn's own rounding in {s.g_dtype.name}: the error model allows each "
                f"entry a few ulps of its size, and a comparison adds those of every entry it moves")
    if _truncated(s, c):
        named = sorted(s.crossing)
        listed = _listed([s.td.name(j) for j in named])
        return (f"what limits it is the loss's shape within {4 * s.oracle.h:.1e} of params, not its rounding: "
                f"finite differences at steps {s.oracle.h:.1e}, twice and four times that differ by more "
                f"than rounding explains (kinks or seams of the loss near params, or a loss that changes "
                f"faster than the step can follow)"
                + (f"; the entries whose own steps cross one: {listed}" if named else ""))
    if _cancelling(s):
        return (f"what limits it is the loss's rounding noise, measured at {s.oracle.current_noise.level:.1e}: far "
                f"more than a value of {abs(s.oracle.f0):.3e} carries, so the loss is a small difference of "
                f"large terms, and finite differences with step {s.oracle.h:.1e} divide that noise by the step")
    return (f"what limits it is the rounding of the loss in {s.oracle.precision.name}, divided by the "
            f"step {s.oracle.h:.1e} of finite differences")


def _truncated(s: _Setup, c: Comparison | None) -> bool:
    """Comparison ``c``'s bound is mostly its ladder's truncation, not the
    rounding of the loss or of grad_fn."""
    return c is not None and 2 * truncation(c.probe, s.oracle.h) > c.bound


def _limiting(s: _Setup) -> Comparison | None:
    """The comparison that saw the least-seen entry best (None if none saw
    any). A whole probe gives every entry a weight of at least
    numerics.PROBE_WEIGHTS[0] times its scale: the one with the smallest
    bound stands for them all, unless a comparison of fewer entries saw that
    entry better."""
    if not s.whole:
        scope = s.seen > 0
        if not np.any(scope):
            return None
        return s.decided[s.seen_by[int(np.flatnonzero(scope)[np.argmin(s.seen[scope])])] - 1]
    best = min((s.decided[i] for i in s.whole), key=lambda c: c.bound)
    if not (s.some_alone or s.some_shared):
        return best
    whole_seen = nm.PROBE_WEIGHTS[0] * s.oracle.scale / best.bound
    j = int(np.argmin(np.maximum(s.seen, whole_seen)))
    return s.decided[s.seen_by[j] - 1] if s.seen[j] > whole_seen[j] else best


def _cancelling(s: _Setup) -> bool:
    """The loss's measured rounding is far above what its own values carry."""
    noise = s.oracle.current_noise  # the floor, unless some ladder called for a measurement
    return noise.rounding > 4 * nm.C_EVAL * s.oracle.eps * max(abs(s.oracle.f0), noise.size)


def _structured(s: _Setup) -> bool:
    """The wide range of the noise's measurement showed the loss's shape, far
    beyond its rounding (numerics.STRUCTURE_RATIO): kinks or seams crossed
    (which a search may set aside), or a loss that changes faster than the
    step."""
    noise = s.oracle.current_noise
    return s.oracle.measured and noise.shape > nm.STRUCTURE_RATIO * noise.rounding


def _shape_limited(s: _Setup, comps: list[Comparison]) -> bool:
    """The best of the probes' bounds is mostly its ladder's truncation: the
    loss's shape within the ladder's range (kinks it crosses), which blocks of
    fewer entries may not cross."""
    return _truncated(s, min(comps, key=lambda c: c.bound))


def _advice(s: _Setup, v: Verdict, mode: str) -> str:
    tips = []
    if s.oracle.precision != np.float64:
        tips.append(f"compute the loss in float64 (it returns {s.oracle.precision.name})")
    elif _cancelling(s):
        tips.append("compute the loss without subtracting large terms")
    if s.g_dtype != np.float64:
        tips.append(f"compute the gradient in float64 (it returns {s.g_dtype.name})")
    full = _predicted_full_resolution(s, measure=False) if mode == "projection" else np.inf
    if mode == "projection" and _truncated(s, _limiting(s)):
        # The prediction counts rounding alone: it cannot say how far the shape reaches.
        tips.append(f"mode='full' ({6 * s.n:,} loss evaluations: each entry is judged alone, so the kinks "
                    f"one entry's steps cross do not widen the bounds of the others)")
    elif full < v.resolution / 2:
        tips.append(f"mode='full' (about {full:.0e} with {6 * s.n:,} loss evaluations: a projection sees "
                    f"each entry only through its weight in a sum over all of them)")
    if np.isfinite(v.resolution) and v.resolution < 0.5:
        unit = 10.0 ** np.floor(np.log10(v.resolution))
        ask = float(np.ceil(v.resolution / unit * (1 - 1e-9)) * unit)  # one significant digit, up
        tips.append(f"or accept a coarser check, resolution={ask:.0e}")
    return "; ".join(tips) or "a loss computed in higher precision"


# ---------------------------------------------------------------- full mode

def _full(s: _Setup, rng: np.random.Generator, requested: float) -> Verdict:
    # The noise is measured first (26 evaluations beside 6 per entry): the
    # entries' ladders need not each be quiet, and avoid() below re-measures it.
    s.settle_noise()
    # The loss first: the entries it shows on a kink are known before the
    # gradient's rounding is pooled over each leaf.
    probes = [s.probe(s.entry_direction(j), (j, j + 1)) for j in range(s.n)]
    s.mark_kinked(np.array([p.kink for p in probes]))
    s.oracle.avoid(np.array([bool(_why(p)) for p in probes]))
    comps = []
    for j in range(s.n):
        e = s.entry_direction(j)
        comps.append(s.confirm(s.compare(e, probes[j], (j, j + 1)), e, (j, j + 1)))
    bad = [j for j, c in enumerate(comps) if c.outcome == FAILS]
    odd = [j for j, c in enumerate(comps) if c.outcome == UNDETERMINED]
    scope = np.array([c.outcome != UNDETERMINED for c in comps])
    v = _numbers(s, comps, requested, scope)
    if bad:
        return v.with_(message=_wrong_entries_text(s, rng, bad, {j: comps[j] for j in bad})
                       + _undetermined_note(s, {j: comps[j] for j in odd}) + _narrow_values_note(s))
    if odd:
        return _undetermined(s, v, {j: comps[j] for j in odd}, [s.td.name(j) for j in odd])
    return _finish(s, v, comps, "full")


def _wrong_entries_text(s: _Setup, rng: np.random.Generator, bad: list[int],
                        comps: dict[int, Comparison]) -> str:
    named = _listed([_entry_text(s, j, comps[j]) for j in bad[:MAX_NAMED]], total=len(bad))
    starts = sorted({s.td.leaf_of(j).start for j in bad})
    leaves = [(st, st + s.td.leaf_of(st).size) for st in starts]
    hint = _leaf_hint(s, {b[0]: s.compare(s.block_direction(rng, *b), span=b) for b in leaves}, rng,
                      scaled=len(bad) > MAX_NAMED)
    return (f"grad_fn disagrees with finite differences of loss_fn in {len(bad)} of {s.n} entries: "
            f"{named}{hint}")


def _entry_text(s: _Setup, j: int, c: Comparison, weight: float | None = None) -> str:
    scale = s.oracle.scale[j] if weight is None else weight
    return (f"{s.td.name(j)} (grad_fn {c.claimed / scale:.9g}, "
            f"finite differences {c.probe.value / scale:.9g})")


def _listed(names: list[str], *, total: int | None = None, unit: str = "") -> str:
    """The first MAX_NAMED of ``names``, and how many more (of ``total``, if
    only the first are given)."""
    total = len(names) if total is None else total
    more = f" and {total - MAX_NAMED} more{unit}" if total > MAX_NAMED else ""
    return ", ".join(names[:MAX_NAMED]) + more


def _undetermined_note(s: _Setup, odd: dict[int, Comparison]) -> str:
    """Beside a failure: the entries finite differences could not judge."""
    kinked = [j for j, c in odd.items() if c.why == NOT_DIFFERENTIABLE]
    if not kinked:
        return ""
    listed = _listed([s.td.name(j) for j in kinked])
    return f"; not differentiable at (or within {4 * s.oracle.h:.1e} of) {listed}, which are not judged"


def _narrow_values_note(s: _Setup) -> str:
    """Beside a failure: a float64 gradient whose every entry is a float32
    value may have been computed in float32, and its rounding is judged here
    as float64's (DESIGN section 4). Said only where some entries hold more
    bits than float16 does, so that round values (0, 1, 0.5, data held in a
    few bits) do not suggest it; worded as a test the user can run, since a
    gradient computed in float32 can be wrong as well."""
    if s.g_dtype != np.float64:
        return ""
    g = s.g[np.isfinite(s.g)]
    with np.errstate(over="ignore"):
        single = g.astype(np.float32)
        if not np.array_equal(single, g):
            return ""
        longer = np.count_nonzero(single.astype(np.float16) != single)
    if longer < 2:
        return ""
    return ("; every entry of grad_fn's float64 gradient is exactly a float32 value: if it is computed "
            "in float32, its rounding is float32's, far beyond what a float64 gradient is allowed; "
            "return it as float32 (its rounding is then allowed) and check again")


def _undetermined(s: _Setup, v: Verdict, odd: dict, labels: list[str]) -> Verdict:
    """No failure, but some comparisons could not decide: say why, for the
    first reason in order of how much it says about the function."""
    order = (PRECISION_LIMITED, NON_FINITE_LOSS, NOT_DIFFERENTIABLE)
    items = list(zip(labels, odd.values()))
    reason = next(r for r in order if any(c.why == r for _, c in items))
    which = [(lab, c) for lab, c in items if c.why == reason]
    lab, c = which[0]
    listed = _listed([label for label, _ in which])
    judged = _judged_text(s, v)
    if reason == PRECISION_LIMITED and c.probe.flat:
        reach = s.oracle.h * max(map(abs, nm.NOISE_WIDE)) * nm.NOISE_WIDENING ** nm.NOISE_WIDENINGS
        says = "says it does not either" if c.claimed == 0 else "says it does"
        text = (f"the loss does not change at all along {listed} (nor within {reach:.1e} along "
                f"another direction), and grad_fn {says}; the loss may be constant, or rounded so "
                f"coarsely (a small difference of large terms) that every change is hidden, and then "
                f"its slope too: finite differences cannot tell")
    elif reason == PRECISION_LIMITED:
        text = _unresolved_text(s)
    elif reason == NON_FINITE_LOSS:
        text = f"loss_fn returned a non-finite value within {4 * s.oracle.h:.2e} of params along {listed}"
    elif c.probe.kink:
        others = _listed([label for label, _ in which[1:]])
        text = (f"not differentiable here: along {lab} the one-sided differences are "
                f"{c.probe.backward:.6g} (backward) and {c.probe.forward:.6g} (forward), and their gap "
                f"does not close as the step shrinks" + (f" (likewise along {others})" if others else ""))
    else:
        text = (f"not differentiable near here: along {listed} the finite differences do not settle "
                f"as the step changes (kinks of the loss within {4 * s.oracle.h:.2e} of params, or a loss "
                f"that changes faster than the step can follow), so they cannot judge the gradient there")
    if reason == NOT_DIFFERENTIABLE or (reason == PRECISION_LIMITED and not c.probe.flat):
        text += _rescale_hint(s)  # the step could not follow the loss: it may vary on the params' scale
    return v.with_(outcome=UNDETERMINED, reason=reason, error=c.error, tolerance=c.bound,
                   message=text + judged)


def _judged_text(s: _Setup, v: Verdict) -> str:
    if not s.whole and not np.any(s.seen > 0):
        return ""
    if not np.isfinite(v.resolution):
        return "; every entry finite differences could judge agrees with them"
    return (f"; every entry finite differences could judge agrees with them (to a relative error of "
            f"{v.resolution:.1e} in a typical entry)")


def _unresolved_text(s: _Setup) -> str:
    return (f"the loss's values within {4 * s.oracle.h:.2e} of params look like noise (a smooth fit leaves "
            f"residuals of more than {nm.UNRESOLVED_FRACTION:.0%} of their spread): its rounding is larger "
            f"than its change over the step, or it oscillates faster than the step; finite differences "
            f"cannot see its slope there")


# Params whose RMS size is below this many steps: the step, absolute for
# entries below 1 (it is h max(1, |x|)), is a sizeable part of the params
# themselves, and a loss that varies on their own scale can change entirely
# within it, or cross a kink they are near. Only offered where finite
# differences already could not judge (noise, a kink, no convergence).
RESCALE_STEPS = 100


def _rescale_hint(s: _Setup) -> str:
    """For small params: how to let the step see a loss that varies on their scale."""
    size = float(np.sqrt(np.mean(s.x0 ** 2)))
    if not 0 < size < RESCALE_STEPS * s.oracle.h:
        return ""
    return (f"; the params are of size {size:.1e} (RMS), and for entries below 1 the step is absolute, "
            f"{s.oracle.h:.1e}: if the loss varies on the params' own scale, check it as a function of "
            f"params / {size:.0e} (whose gradient is {size:.0e} times grad_fn's)")


# ---------------------------------------------------------------- projection mode

def _projection(s: _Setup, probes: int, rng: np.random.Generator, requested: float, most: int) -> Verdict:
    """``probes`` probes, and more up to ``most`` while the resolution asked
    for is not reached and every probe holds; the verdict rests on the
    measured noise or on numerics.QUIET_LADDERS quiet ladders at least."""
    v = _projected(s, probes, rng, requested, most)
    if len(s.quiet) < nm.QUIET_LADDERS:
        s.settle_noise()  # where that changes any comparison decided, the check starts again
    return v


def _projected(s: _Setup, probes: int, rng: np.random.Generator, requested: float, most: int) -> Verdict:
    directions: list[np.ndarray] = []
    comps: list[Comparison] = []
    while len(comps) < max(probes, most):
        directions.append(s.block_direction(rng, 0, s.n))
        comps.append(s.compare(directions[-1]))
        if comps[-1].outcome == FAILS:
            break  # the verdict is settled: the evaluations go to naming the entries
        if len(comps) >= probes and (comps[-1].outcome != HOLDS
                                     or _relative_resolution(s, np.ones(s.n, bool)) <= requested
                                     or _reachable(s) > requested):
            break
    labels = [f"probe {k}" for k in range(len(comps))]
    everything = np.ones(s.n, bool)
    failed = [k for k, c in enumerate(comps) if c.outcome == FAILS]
    odd = [k for k, c in enumerate(comps) if c.outcome == UNDETERMINED]
    limited = [k for k in odd if comps[k].why == PRECISION_LIMITED]
    if failed or (odd and not limited):
        # A failure, or a probe that crossed a kink or a non-finite value:
        # narrowed down to entries, so the wrong ones are named and a definite
        # error is still found beside what finite differences cannot judge.
        k = failed[0] if failed else odd[0]
    else:
        v = _numbers(s, comps, requested, everything)
        if not odd:
            v = v.with_(resolution=max(v.resolution, _scaled_resolution(comps)))
        if not ((odd or v.resolution > requested) and (_structured(s) or _shape_limited(s, comps))):
            if odd:
                return _undetermined(s, v, {k: comps[k] for k in odd}, [labels[k] for k in odd])
            return _finish(s, v, comps, "projection")
        # Short of the resolution asked for, but for the loss's shape, not its
        # rounding: kinks the probes cross (benchmarks/kinks.py: four, 1.5 h
        # away, hid a wrong entry under every probe's bound). Blocks of fewer
        # entries cross fewer: narrowed down, they may show a wrong entry.
        k = limited[0] if limited else min(range(len(comps)), key=lambda i: comps[i].bound)
    hunt = _narrow(s, directions[k], comps[k], rng, requested)
    scope = everything.copy()
    for lo, hi in hunt.odd:
        scope[lo:hi] = False
    # A failing probe is a definite failure unless it crossed entries the
    # narrowing found on a kink and no block without them fails: its error
    # may then be the kinks' alone (found by the dev profile: a ReLU net with
    # three biases at their kink failed along a probe, every array held).
    if failed and not (hunt.failing or hunt.wide_failing or hunt.odd):
        comps[k] = s.confirm(comps[k], directions[k])  # the failure rests on this probe alone
        failed = [k] if comps[k].outcome == FAILS else []
        odd = odd if failed else [k, *odd]
    fails = bool(hunt.failing or hunt.wide_failing or (failed and not hunt.odd))
    if failed and not fails:
        s.forget(comps[k], directions[k])  # put down to what cannot be judged: no agreement either
    if fails:
        return _hunt_failure(s, rng, comps, k, labels, hunt, requested)
    v = _numbers(s, comps, requested, scope)
    if hunt.odd:
        return _undetermined(s, v, {lo: hunt.probes[(lo, hi)] for lo, hi in hunt.odd},
                             [_block_name(s, lo, hi) for lo, hi in hunt.odd])
    if odd:
        return _undetermined(s, v, {k: comps[k] for k in odd}, [labels[k] for k in odd])
    return _finish(s, v.with_(resolution=max(v.resolution, _scaled_resolution(comps))), comps, "projection")


def _hunt_failure(s: _Setup, rng: np.random.Generator, comps: list[Comparison], k: int, labels: list[str],
                  hunt: "_Hunt", requested: float) -> Verdict:
    """The verdict where probe ``k`` fails, or narrowing it down (``hunt``)
    found entries or blocks that do."""
    scope = np.ones(s.n, bool)
    for lo, hi in hunt.odd:
        scope[lo:hi] = False
    v = _numbers(s, comps, requested, scope)
    c = comps[k] if comps[k].outcome == FAILS else \
        max((c for c in hunt.probes.values() if c.outcome == FAILS), key=_excess)
    return v.with_(outcome=FAILS, error=c.error, tolerance=c.bound,
                   message=_projection_failure_text(s, rng, comps[k], labels[k], hunt))


def _scaled_resolution(comps: list[Comparison]) -> float:
    """The smallest relative error in every entry alike (a gradient off by a
    constant factor, the most common error that spreads) certain to be
    caught: along probe v it changes <v, g> by that fraction, caught once it
    passes twice the bound. A projection catches such an error along its best
    probe; single wrong entries are covered by Setup.seen."""
    best = np.inf
    for c in comps:
        if c.outcome != UNDETERMINED and abs(c.claimed) > nm.CATCH_FACTOR * c.bound:
            best = min(best, nm.CATCH_FACTOR * c.bound / (abs(c.claimed) - nm.CATCH_FACTOR * c.bound))
    return best


def _projection_failure_text(s: _Setup, rng: np.random.Generator, c: Comparison, label: str,
                             hunt: "_Hunt") -> str:
    where = _localised_text(s, rng, hunt) + _narrow_values_note(s)
    if c.outcome != FAILS:
        return ("grad_fn disagrees with finite differences of loss_fn once the entries they cannot "
                f"judge are set aside; {where}")
    rel = c.error / max(abs(c.probe.value), np.finfo(float).tiny)
    return (f"grad_fn disagrees with finite differences of loss_fn along {label}: directional "
            f"derivative {c.claimed:.9g} by grad_fn, {c.probe.value:.9g} by finite differences "
            f"(relative error {rel:.2e}); {where}")


def _block_name(s: _Setup, lo: int, hi: int) -> str:
    if hi - lo == 1:
        return s.td.name(lo)
    return f"{s.td.name(lo)} .. {s.td.name(hi - 1)}"


@dataclass
class _Hunt:
    """Where narrowing a probe down ended: single wrong entries, blocks still
    failing when the search stopped, blocks finite differences cannot judge,
    and every comparison made (by block)."""

    failing: list[int]
    wide_failing: list[tuple[int, int]]
    odd: list[tuple[int, int]]
    probes: dict[tuple[int, int], Comparison]
    leaves: dict[int, Comparison]
    weights: np.ndarray  # the probe narrowed down


def _halves(blocks: list[tuple[int, int]]) -> list[tuple[int, int]]:
    return [h for lo, hi in blocks for h in ((lo, (lo + hi) // 2), ((lo + hi) // 2, hi))]


def _narrow(s: _Setup, direction: np.ndarray, first: Comparison, rng: np.random.Generator,
            requested: float) -> _Hunt:
    """Narrow a probe down to entries (:func:`_narrow_once`), then check that
    no other entry is wrong: errors in several entries can cancel along one
    probe to within its bound (w_a e_a + w_b e_b, for weights of opposite
    sign and like size: about one draw in fifty with errors of 10^2 bounds;
    found by the dev profile, three wrong entries of which one was named).
    One more probe, with fresh weights and the entries named (or unjudged)
    left still, must not fail; where it fails, it is narrowed down in turn."""
    hunt = _narrow_once(s, direction, first, requested)
    while hunt.failing and not hunt.wide_failing and len(hunt.failing) < MAX_NAMED:
        v = s.block_direction(rng, 0, s.n)
        v[hunt.failing] = 0.0
        for lo, hi in hunt.odd:
            v[lo:hi] = 0.0
        # Not counted toward the resolution stated (that of the other
        # comparisons, each a bound by itself): it leaves the named entries
        # still, so it is no whole probe, and a record per entry costs more
        # than the probe at 10^6 entries (the pages of six arrays, touched).
        c = s.compare(v, record=False)
        if c.outcome != FAILS:
            break
        more = _narrow_once(s, v, c, requested)
        hunt = _merged(hunt, more, v)
        if not more.failing:
            break
    return hunt


def _crossing(s: _Setup, comps: dict[tuple[int, int], Comparison], direction: np.ndarray,
              requested: float) -> np.ndarray:
    """The entries whose own ladder crossed a kink or seam near the point:
    alone they hold, but within a truncation too wide to judge them. Left out
    of the loss's noise measurement with the entries on a kink: several of
    them along its one direction pass for noise, which widens every bound
    until nothing is seen (benchmarks/kinks.py: two relu 1.5 h from their
    kinks, a wrong entry beside them undetermined under some probe seeds)."""
    crossing = np.zeros(s.n, bool)
    typical = _typical_size(s, np.ones(s.n, bool))
    for (lo, hi), c in comps.items():
        if hi - lo == 1 and c.outcome == HOLDS and direction[lo] != 0 and \
                nm.CATCH_FACTOR * truncation(c.probe, s.oracle.h) / abs(direction[lo]) > requested * typical:
            crossing[lo] = True
    return crossing


def _merged(a: _Hunt, b: _Hunt, b_weights: np.ndarray) -> _Hunt:
    """Two narrowings of different probes as one: each entry keeps the
    comparison and the weight that found it."""
    weights = a.weights.copy()
    weights[b.failing] = b_weights[b.failing]
    return _Hunt(sorted(a.failing + b.failing), a.wide_failing + b.wide_failing,
                 list(dict.fromkeys(a.odd + b.odd)), {**b.probes, **a.probes}, {**b.leaves, **a.leaves},
                 weights)


def _narrow_once(s: _Setup, direction: np.ndarray, first: Comparison, requested: float) -> _Hunt:
    """Narrow a probe down to entries. A probe that fails (``first``) is
    first followed by ramps (:func:`_locate`), which find one wrong entry
    among n in a few probes. Otherwise, or where the ramps show more than one
    wrong entry: starting from the parameter arrays, halve every block that
    fails or cannot be judged (a kink, a non-finite value) until single
    entries remain or more than MAX_NAMED blocks are left. Each block is
    probed with the probe's own weights on it, so a wrong entry keeps the
    weight that exposed it while the bound shrinks with the block. Then the
    entries found near a kink leave the loss's noise measurement and the
    gradient's pooled rounding, where they could have widened every bound,
    and the blocks are judged again (no new evaluations but for the halves of
    a block that fails only now)."""
    probes: dict[tuple[int, int], Probe] = {}
    comps: dict[tuple[int, int], Comparison] = {}

    def open_(b: tuple[int, int]) -> bool:
        # The probe's own weights, on block b alone (read there only).
        everything = b == (0, s.n)  # a single array: the probe itself, its ladder taken already
        if b not in probes:
            probes[b] = first.probe if everything else s.probe(direction, b)
        before = comps.get(b, first if everything else None)
        if before is not None:
            # Judged again (under a noise measured since, or by a later
            # search): one ladder is one piece of evidence, however often
            # judged, and a resolution counting it twice would be claimed
            # on evidence not had.
            s.forget(before, direction, b)
        comps[b] = s.compare(direction, probes[b], b, second=before.second if before is not None else None)
        return comps[b].outcome != HOLDS

    def split(b: tuple[int, int]) -> bool:
        # Narrowing a probe that could not judge (not one that failed, whose
        # error the search follows): a block that holds only within a bound
        # too wide to catch an error of the resolution asked for in one entry
        # says nothing of its entries (its ladder crossed a seam of one,
        # widening the bound over a wrong neighbour: found with other probe
        # draws), so it is halved too.
        if open_(b):
            return True
        if first.outcome == FAILS:
            return False
        least = nm.PROBE_WEIGHTS[0] * float(np.min(s.oracle.scale[b[0]:b[1]]))
        return b[1] - b[0] > 1 and nm.CATCH_FACTOR * comps[b].bound / least > requested * _typical_size(
            s, np.ones(s.n, bool))

    def confirmed(blocks: list[tuple[int, int]]) -> None:
        for b in blocks:
            comps[b] = s.confirm(comps[b], direction, b)

    located = _locate(s, direction, first, open_, comps) if first.outcome == FAILS else None
    if located is not None:
        # A spread error goes on from the arrays below, which tell whether a
        # whole array is scaled or has the wrong sign.
        singles, wide = located
        confirmed(singles)
        if not wide and not any(comps[b].outcome == UNDETERMINED for b in singles):
            found = sorted(lo for lo, hi in singles if comps[(lo, hi)].outcome == FAILS)
            # An array whose wrong entries carry most of its gradient is
            # probed whole: all of it may be wrong alike (a flipped sign).
            mass = np.abs(direction * s.g)
            whole = [(leaf.start, leaf.start + leaf.size) for leaf in {s.td.leaf_of(j) for j in found}
                     if 2 * sum(mass[j] for j in found if s.td.leaf_of(j) == leaf)
                     > np.sum(mass[leaf.start:leaf.start + leaf.size])]
            return _Hunt(found, [], [], comps, {b[0]: comps[b] for b in whole if open_(b)}, direction)
    leaves = [(leaf.start, leaf.start + leaf.size) for leaf in s.td.leaves]
    singles, wide = _descend(leaves, split, comps)
    odd = [b for b in singles + wide if comps[b].outcome == UNDETERMINED]
    kinked, unjudged = np.zeros(s.n, bool), np.zeros(s.n, bool)
    for lo, hi in odd:
        unjudged[lo:hi] = True
        kinked[lo] = hi - lo == 1 and comps[(lo, hi)].probe.kink
    s.mark_kinked(kinked)
    crossing = _crossing(s, comps, direction, requested)
    s.crossing.update(np.flatnonzero(crossing).tolist())
    s.oracle.avoid(unjudged | crossing)
    for b in list(probes):
        open_(b)
    failing = [b for b in comps if comps[b].outcome == FAILS]
    top = [b for b in failing if not any(a != b and a[0] <= b[0] and b[1] <= a[1] for a in failing)]
    more_singles, more_wide = _descend(top, split, comps)
    # A block the first search stopped at (too many failing while the kinks
    # widened every bound) that the second followed down to an entry is
    # superseded by it: it would else still be reported as an error spread
    # over it. The others stand (an error spread over an array whose halves
    # each hold is still spread over the array).
    wide = [b for b in wide if not any(b[0] <= lo and hi <= b[1] for lo, hi in more_singles)]
    singles, wide = list(dict.fromkeys(singles + more_singles)), list(dict.fromkeys(wide + more_wide))
    confirmed(singles + wide)
    found = sorted(lo for lo, hi in singles if comps[(lo, hi)].outcome == FAILS)
    odd = [b for b in singles + wide if comps[b].outcome == UNDETERMINED]
    return _Hunt(found, [b for b in wide if comps[b].outcome == FAILS], odd, comps,
                 {b[0]: comps[b] for b in leaves if comps[b].outcome == FAILS}, direction)


def _locate(s: _Setup, direction: np.ndarray, first: Comparison, open_: Callable[[tuple[int, int]], bool],
            comps: dict[tuple[int, int], Comparison]
            ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]] | None:
    """Follow one wrong entry down by ramps: (single entries, wide blocks)
    as :func:`_descend` gives them, or None where the ramps point nowhere.

    If the probe fails by d = <v, g - fd> and the error sits in one entry t,
    the same probe weighted by a ramp r rising from 0 to 1 across a block
    holding t fails by r_t d: the ratio says where t is, to within what the
    bounds of the two leave open, and a ramp across those entries says more.
    Each ramp divides the block by about |d| over the bounds (10^2 to 10^3
    in float64), so an entry among 10^6 is found in two to four probes,
    where halving takes forty. The block the ramps end on is then probed,
    and must fail by what the whole probe failed by (the rest then holds, to
    the sum of the two bounds): otherwise the error is not in one entry, and
    the halving from the parameter arrays takes over. A block of a few
    entries the ramps cannot split further is halved."""
    b = (0, s.n)
    comps.setdefault(b, first)  # for a single parameter, the probe is the entry
    while b[1] - b[0] > 1:
        target = _ramp_target(s, direction, b, first)
        if target is None:
            break
        b = target
    if b == (0, s.n):
        del comps[b]  # not a block the halving from the arrays starts from
        return None
    if not open_(b) or not _carries(comps[b], first):
        return None
    return ([b], []) if b[1] - b[0] == 1 else _descend([b], open_, comps)


def _ramp_target(s: _Setup, direction: np.ndarray, b: tuple[int, int], c: Comparison
                 ) -> tuple[int, int] | None:
    """The entries of block ``b`` where a single wrong entry could sit, if
    all of comparison ``c``'s failure sits there, by one ramp probe; None if
    that is over half the block or the ramp cannot be judged."""
    lo, hi = b
    m = hi - lo
    rising = np.arange(m, dtype=np.float64)  # direction * (i + 0.5) / m, in place
    rising += 0.5
    rising *= direction[lo:hi]
    rising /= m
    if m == direction.size:
        ramp = rising
    else:  # compare reads the weights within the span only
        ramp = np.empty_like(direction)
        ramp[lo:hi] = rising
    w = s.compare(ramp, span=b)
    if w.outcome == UNDETERMINED:
        return None
    d, dw = c.claimed - c.probe.value, w.claimed - w.probe.value
    # Every d and dw their bounds allow; |d| > c.bound keeps d's sign. Entry
    # i sits at r = (i + 0.5) / m; a hair of slack covers the division's rounding.
    corners = [(dw + a * w.bound) / (d + e * c.bound) for a in (-1, 1) for e in (-1, 1)]
    if not np.all(np.isfinite(corners)):
        return None
    first = max(int(np.ceil(min(corners) * m - 0.5 - 1e-6)), 0)
    last = min(int(np.floor(max(corners) * m - 0.5 + 1e-6)), m - 1)
    if last < first or last - first + 1 > m // 2:
        return None
    return lo + first, lo + last + 1


def _carries(part: Comparison, whole: Comparison) -> bool:
    """``part`` fails by what ``whole`` fails by: the rest of the block
    holds, to the sum of their bounds."""
    rest = (whole.claimed - whole.probe.value) - (part.claimed - part.probe.value)
    return part.outcome == FAILS and abs(rest) <= whole.bound + part.bound


def _descend(blocks: list[tuple[int, int]], keep: Callable[[tuple[int, int]], bool],
             comps: dict[tuple[int, int], Comparison]
             ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Halve the kept blocks until single entries remain or more than
    MAX_NAMED are left: (single entries kept, wide blocks kept at the end).
    The kept blocks that fail (in ``comps``, which ``keep`` fills) and those
    kept for another reason (finite differences cannot judge them: a kink) are counted apart:
    more than MAX_NAMED failing ends the search, more than MAX_NAMED of the
    others are left whole from then on while the failing ones are followed
    down. Else the entries on kinks of a ReLU net (a unit at 0 for every
    example: its whole row) filled the count, and one wrong entry elsewhere
    was reported as an error spread over its array."""
    def fails(b: tuple[int, int]) -> bool:
        return comps[b].outcome == FAILS

    active = [b for b in blocks if keep(b)]
    singles: list[tuple[int, int]] = []
    parked: list[tuple[int, int]] = []  # blocks no one can judge, left whole
    while active:
        singles += [b for b in active if b[1] - b[0] == 1]
        wide = [b for b in active if b[1] - b[0] > 1]
        failing = [b for b in wide if fails(b)]
        if sum(map(fails, singles)) + len(failing) > MAX_NAMED:
            return singles, wide + parked
        others = [b for b in wide if not fails(b)]
        if len(singles) - sum(map(fails, singles)) + len(others) + len(parked) > MAX_NAMED:
            parked += others
            wide = failing
        active = [h for h in _halves(wide) if keep(h)]
    return singles, parked


def _localised_text(s: _Setup, rng: np.random.Generator, hunt: _Hunt) -> str:
    note = _undetermined_note(s, {lo: hunt.probes[(lo, hi)] for lo, hi in hunt.odd if hi - lo == 1})
    # Blocks on kinks the search left whole (_descend: more than it names).
    kinked = [b for b in hunt.odd if b[1] - b[0] > 1 and hunt.probes[b].why == NOT_DIFFERENTIABLE]
    if kinked:
        listed = _listed([_block_name(s, *b) for b in kinked], unit=" blocks")
        note += f"; not differentiable somewhere in {listed}, which are not judged"
    if hunt.wide_failing:
        return _spread_text(s, hunt) + _leaf_hint(s, hunt.leaves, rng, scaled=True) + note
    if not hunt.failing:
        return ("the error is spread thinly: no single parameter array fails on its own"
                + _leaf_hint(s, hunt.leaves, rng) + note)
    # Each entry was probed alone on the way down, with the probe's weight.
    return ("wrong entries: " + ", ".join(_entry_text(s, j, hunt.probes[(j, j + 1)], hunt.weights[j])
                                          for j in hunt.failing)
            + _leaf_hint(s, hunt.leaves, rng) + note)


def _spread_text(s: _Setup, hunt: _Hunt) -> str:
    paths = {s.td.leaf_of(lo).path for lo, _ in hunt.wide_failing} | {s.td.leaf_of(j).path for j in hunt.failing}
    return (f"the error is spread over many entries (more than {MAX_NAMED}) of "
            + ", ".join(f"params{p}" for p in sorted(paths)))


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
        b = (leaf.start, leaf.start + leaf.size)
        c2 = s.compare(s.block_direction(rng, *b), span=b)
        ratios = _ratio(c), _ratio(c2)
        if ratios[0] is None or ratios[1] is None:
            continue
        (r1, t1), (r2, t2) = ratios
        if abs(r1 - r2) > t1 + t2:
            continue  # not one factor for the whole array
        if abs(r1 + 1) <= t1 and r1 + t1 < 0:  # -1, and surely of the other sign
            notes.append(f"params{leaf.path} has the wrong sign (grad_fn = -1 × finite differences)")
        elif scaled and abs(r1 - 1) > t1:
            notes.append(f"params{leaf.path} looks scaled by {r1:.9g}")
    return ("; " + "; ".join(notes)) if notes else ""


def _ratio(c: Comparison) -> tuple[float, float] | None:
    """grad_fn / finite differences along one probe, and its tolerance."""
    if c.why or c.probe.value == 0 or c.bound >= abs(c.probe.value):
        return None
    return c.claimed / c.probe.value, 2 * c.bound / abs(c.probe.value)


# ---------------------------------------------------------------- auto mode

def _full_would_help(s: _Setup, requested: float, reached: float) -> bool:
    """A full check is within budget and, by the error model, would reach the
    resolution asked for, or a better one than the projection ``reached``."""
    if s.n > AUTO_FULL_LIMIT:
        return False
    predicted = _predicted_full_resolution(s)
    return predicted <= requested or predicted < reached


def _predicted_full_resolution(s: _Setup, measure: bool = True) -> float:
    """The resolution a full check would reach by the error model (its
    truncation aside): each entry alone carries the loss's rounding over the
    step and its own gradient rounding, but no other entry's. That rounding
    is measured where it has been, or where ``measure``; else modelled (for
    advice: 8 or 10 calls of grad_fn are not spent on a figure the message only
    quotes as "about")."""
    noise = max(s.oracle.current_noise.level, nm.C_EVAL * s.oracle.eps * abs(s.oracle.f0))
    if s.oracle.unit_scale and not (measure or s.measured_rounding):
        # Every entry's rounding over the step is the same, its own a multiple of |g_j|.
        loss = nm.RICHARDSON_ROUNDING * noise / s.oracle.h
        absolute = nm.CATCH_FACTOR * (loss + s.unit_rounding * float(np.max(np.abs(s.g))))
    else:
        rounding = nm.RICHARDSON_ROUNDING * noise / (s.oracle.h * s.oracle.scale)
        entry = s.entry_rounding(measure)
        absolute = float(np.max(nm.CATCH_FACTOR * (rounding + entry)))
    rms = _typical_size(s, np.ones(s.n, bool))
    return absolute / (rms - absolute) if rms > absolute else np.inf
