"""The one registry of claims, and the machinery that checks them.

A claim is written once, here and in the family modules: its statement, the
conditions it depends on, a proof idea, and its verification as properties.
The tests, ``gradcheck verify`` and the docs all read this registry.

- a property under ``holds_for`` must hold on every generated case
  (undetermined cases, such as a kink, are assumed away and counted);
- a property under ``fails_for`` must have a witness: Hypothesis searches for a
  case where the law fails far beyond its tolerance and shrinks it.
"""

from __future__ import annotations

import importlib.util
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from hypothesis import HealthCheck, Phase, assume, given, seed as hseed, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from ..gradient import LAW as GROUND_TRUTH  # the law of a finite-difference check
from ..verdict import FAILS, HOLDS, UNDETERMINED, Verdict
from ._common import searching

UNIVERSAL = "universal"
WITNESSED = "witnessed"
ASYMPTOTIC = "asymptotic"

# A witness must break its law by this factor over the law's own tolerance,
# so that what is shown is a real gap, never a rounding artefact.
WITNESS_MARGIN = 1e3


@dataclass(frozen=True)
class Property:
    """One verification of a claim: a strategy of cases and a check of one case."""

    name: str
    cases: Callable[[], st.SearchStrategy]
    check: Callable[[Any], Verdict]


@dataclass(frozen=True)
class Claim:
    id: str
    title: str
    kind: str
    statement: str
    conditions: str
    proof: str
    holds_for: tuple[Property, ...] = ()
    fails_for: tuple[Property, ...] = ()
    requires: tuple[str, ...] = ()  # optional modules the verification runs on (e.g. "torch")

    def missing(self) -> list[str]:
        """The required modules that cannot be imported here."""
        return [m for m in self.requires if importlib.util.find_spec(m) is None]


REGISTRY: dict[str, Claim] = {}


def register(claim: Claim) -> Claim:
    if claim.id in REGISTRY:
        raise ValueError(f"claim {claim.id} registered twice")
    if claim.kind not in (UNIVERSAL, WITNESSED, ASYMPTOTIC):
        raise ValueError(f"claim {claim.id}: kind={claim.kind!r}")
    if claim.kind == WITNESSED and not claim.fails_for:
        raise ValueError(f"claim {claim.id} is witnessed but has no fails_for property")
    REGISTRY[claim.id] = claim
    return claim


# -- running ------------------------------------------------------------------------

@dataclass
class PropertyReport:
    name: str
    mode: str  # "holds" or "witness"
    outcome: str = HOLDS
    cases: int = 0
    undetermined: int = 0
    worst: Verdict | None = None  # largest error / tolerance among the cases that held
    witness: Any = None
    verdict: Verdict | None = None  # the decisive verdict: counterexample or witness
    note: str = ""

    def track(self, v: Verdict) -> None:
        self.cases += 1
        if self.worst is None or _ratio(v) > _ratio(self.worst):
            self.worst = v


def _ratio(v: Verdict) -> float:
    if v.tolerance > 0:
        return v.error / v.tolerance
    return 0.0 if v.error == 0 else np.inf


@dataclass
class ClaimReport:
    claim: Claim
    properties: list[PropertyReport] = field(default_factory=list)
    seconds: float = 0.0
    skipped: str = ""  # why the claim could not be verified here

    @property
    def outcome(self) -> str:
        if self.skipped:
            return UNDETERMINED
        outcomes = {p.outcome for p in self.properties}
        return FAILS if FAILS in outcomes else (UNDETERMINED if UNDETERMINED in outcomes else HOLDS)

    @property
    def holds(self) -> bool:
        return self.outcome == HOLDS

    @property
    def cases(self) -> int:
        return sum(p.cases for p in self.properties)

    @property
    def worst(self) -> Verdict | None:
        vs = [p.worst for p in self.properties if p.mode == "holds" and p.worst is not None]
        return max(vs, key=_ratio) if vs else None

    @property
    def witness(self) -> PropertyReport | None:
        found = [p for p in self.properties if p.mode == "witness" and p.witness is not None]
        return found[0] if found else None


class _Found(Exception):
    def __init__(self, case: Any, verdict: Verdict) -> None:
        super().__init__(verdict.message)
        self.case, self.verdict = case, verdict


def _settings(examples: int, derandomize: bool) -> settings:
    # No explain phase: it replays the shrunk case hundreds of times to say
    # which parts matter, which costs more than the whole search here.
    phases = [Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink]
    return settings(max_examples=examples, deadline=None, database=None, derandomize=derandomize,
                    phases=phases,
                    suppress_health_check=list(HealthCheck), print_blob=False, report_multiple_bugs=False)


def _run(test: Callable[[], None], seed: int | None) -> None:
    (hseed(seed)(test) if seed is not None else test)()


def _universal(claim: Claim, prop: Property, examples: int, seed: int | None,
               on_case: Callable[[], None]) -> PropertyReport:
    rep = PropertyReport(prop.name, "holds")

    @_settings(examples, seed is None)
    @given(prop.cases())
    def test(case: Any) -> None:
        on_case()
        v = prop.check(case)
        if v.undetermined:
            rep.undetermined += 1
            assume(False)
        if not v.holds:
            raise _Found(case, v)
        rep.track(v)

    try:
        _run(test, seed)
    except _Found as found:
        rep.outcome, rep.witness = FAILS, found.case
        rep.verdict = found.verdict.with_(claim=claim.id, counterexample=found.case)
    except Unsatisfiable:
        rep.outcome, rep.note = UNDETERMINED, "every generated case was undetermined"
    if rep.outcome == HOLDS and rep.cases == 0:
        rep.outcome, rep.note = UNDETERMINED, "no case could be decided"
    return rep


def _witness(claim: Claim, prop: Property, examples: int, seed: int | None,
             on_case: Callable[[], None]) -> PropertyReport:
    """Search and shrink without finite differences, then vouch for the witness
    found; where they do not (a kink at the shrunk case, say), search again
    with them vouching for every case."""
    rep = _witness_search(claim, prop, examples, seed, on_case, vouch=False)
    if rep.witness is not None:
        v = prop.check(rep.witness)
        if v.fails and v.law != GROUND_TRUTH and _ratio(v) > WITNESS_MARGIN:
            rep.verdict = v.with_(claim=claim.id, counterexample=rep.witness)
            return rep
    return _witness_search(claim, prop, examples, seed, on_case, vouch=True)


def _witness_search(claim: Claim, prop: Property, examples: int, seed: int | None,
                    on_case: Callable[[], None], vouch: bool) -> PropertyReport:
    rep = PropertyReport(prop.name, "witness")
    broken: list[tuple[Any, Verdict]] = []

    @_settings(examples, seed is None)
    @given(prop.cases())
    def test(case: Any) -> None:
        on_case()
        with nullcontext() if vouch else searching():
            v = prop.check(case)
        if v.fails and v.law == GROUND_TRUTH:
            broken.append((case, v))  # the reference gradient itself is wrong: report it
            return
        rep.cases += 1
        if v.fails and _ratio(v) > WITNESS_MARGIN:
            raise _Found(case, v)
        if v.undetermined:
            rep.undetermined += 1

    try:
        _run(test, seed)
    except _Found as found:
        rep.witness = found.case
        rep.verdict = found.verdict.with_(claim=claim.id, counterexample=found.case)
    if broken:
        case, v = broken[0]
        rep.outcome, rep.verdict = FAILS, v.with_(claim=claim.id, counterexample=case)
        rep.note = "the reference gradient disagrees with finite differences"
    elif rep.witness is None:
        rep.outcome = FAILS
        rep.note = f"no witness in {rep.cases} cases"
    return rep


def run_claim(claim: Claim, *, examples: int = 50, seed: int | None = None,
              on_case: Callable[[], None] = lambda: None) -> ClaimReport:
    """Check every property of ``claim`` on ``examples`` generated cases each.

    With ``seed=None`` the search is derandomized (the same cases every run);
    a seed gives another, replayable draw.
    """
    start = time.perf_counter()
    report = ClaimReport(claim)
    if claim.missing():
        # Not verified here is not verified: the report says so and does not hold.
        report.skipped = "needs " + ", ".join(f"{m} (pip install 'gradcheck[{m}]')" for m in claim.missing())
        return report
    for prop in claim.holds_for:
        report.properties.append(_universal(claim, prop, examples, seed, on_case))
    for prop in claim.fails_for:
        report.properties.append(_witness(claim, prop, examples, seed, on_case))
    report.seconds = time.perf_counter() - start
    return report
