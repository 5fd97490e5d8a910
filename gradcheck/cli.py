"""The command line: ``gradcheck verify`` checks every claim, ``gradcheck list`` lists them."""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Sequence, TextIO

from .claims import REGISTRY, ClaimReport, run_claim
from .claims.registry import PropertyReport
from .verdict import HOLDS

DEFAULT_EXAMPLES = 50


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradcheck", description=(
        "Check, by property-based testing against finite differences, what summing or averaging "
        "a loss over a mini-batch does to its gradient."))
    sub = p.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check every claim of the catalog (exit 1 if one does not hold)")
    v.add_argument("--claim", action="append", metavar="ID",
                   help="check only this claim (repeatable), e.g. --claim A1 --claim B3")
    v.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, metavar="N",
                   help=f"generated cases per property (default {DEFAULT_EXAMPLES})")
    v.add_argument("--seed", type=int, default=None,
                   help="draw other cases, replayably (default: a fixed, derandomized draw)")
    v.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="claims checked at once, each in its own process (default: the number of CPUs; "
                        "1 checks them in this process)")
    v.add_argument("--quiet", action="store_true", help="no progress on stderr")
    sub.add_parser("list", help="list the claims")
    _docs_parser(sub)
    return p


def _docs_parser(sub: argparse._SubParsersAction) -> None:
    from .docs import DEFAULT_EXAMPLES as DOCS_EXAMPLES  # imports neither sphinx nor matplotlib

    d = sub.add_parser("docs", help="build the HTML docs (needs gradcheck[docs]) into docs/_build/html")
    d.add_argument("--examples", type=int, default=DOCS_EXAMPLES, metavar="N",
                   help=f"generated cases per property of each claim (default {DOCS_EXAMPLES})")
    d.add_argument("--out", default=None, metavar="DIR", help="where the HTML goes (default docs/_build/html)")
    d.add_argument("--source", default=None, metavar="DIR", help="the docs/ sources (default: found from here up)")
    d.add_argument("--claim", action="append", metavar="ID", help="build only this claim's page (repeatable)")
    d.add_argument("--seed", type=int, default=None, help="draw other cases (default: derandomized)")
    d.add_argument("-W", "--strict", action="store_true", help="treat Sphinx warnings as errors")


def _docs(args: argparse.Namespace, err: TextIO) -> int:
    from .docs import DocsError, build

    start = time.perf_counter()
    try:
        index = build(source=args.source, out=args.out, examples=args.examples, claims=args.claim,
                      seed=args.seed, strict=args.strict, log=err)
    except DocsError as e:
        err.write(f"gradcheck docs: error: {e}\n")
        return 1
    err.write(f"gradcheck docs: built {index} in {time.perf_counter() - start:.0f} s\n")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "list":
        return _list(sys.stdout)
    if args.command == "docs":
        return _docs(args, sys.stderr)
    return _verify(args, sys.stdout, sys.stderr)


def _list(out: TextIO) -> int:
    for claim in REGISTRY.values():
        out.write(f"{claim.id:<4} {claim.kind:<10} {claim.title}\n     {claim.statement}\n")
    return 0


def _selected(ids: list[str] | None) -> list[str]:
    if not ids:
        return list(REGISTRY)
    unknown = [i for i in ids if i.upper() not in REGISTRY]
    if unknown:
        raise SystemExit(f"gradcheck: error: --claim {unknown[0]} is not a claim; "
                         f"known: {', '.join(REGISTRY)}")
    return [i.upper() for i in ids]


def _verify(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.examples < 1:
        raise SystemExit(f"gradcheck: error: --examples {args.examples} must be at least 1")
    ids = _selected(args.claim)
    seed = "derandomized" if args.seed is None else f"seed {args.seed}"
    out.write(f"gradcheck verify: {len(ids)} claims, {args.examples} cases per property, {seed}\n")
    if args.jobs is not None and args.jobs < 1:
        raise SystemExit(f"gradcheck: error: --jobs {args.jobs} must be at least 1")
    jobs = min(args.jobs or os.cpu_count() or 1, len(ids))
    start = time.perf_counter()
    if jobs == 1:
        reports = [_run_one(cid, n, len(ids), args, err) for n, cid in enumerate(ids, 1)]
    else:
        reports = _run_parallel(ids, jobs, args, err)
    out.write(_table(reports))
    out.write(_witnesses(reports))
    held = sum(r.holds for r in reports)
    out.write(f"\n{held} of {len(reports)} claims hold ({time.perf_counter() - start:.1f} s)\n")
    return 0 if held == len(reports) else 1


def _run_one(cid: str, n: int, total: int, args: argparse.Namespace, err: TextIO) -> ClaimReport:
    counter = [0]
    live = err.isatty() and not args.quiet

    def tick() -> None:
        counter[0] += 1
        if live and counter[0] % 5 == 0:
            err.write(f"\r[{n}/{total}] {cid}: {counter[0]} cases")
            err.flush()

    report = run_claim(REGISTRY[cid], examples=args.examples, seed=args.seed, on_case=tick)
    if not args.quiet:
        end = "\n" if not live else "\x1b[K\n"
        err.write(f"\r[{n}/{total}] {cid}: {report.outcome} after {counter[0]} cases "
                  f"in {report.seconds:.1f} s{end}")
        err.flush()
    return report


def _claim_in_worker(cid: str, examples: int, seed: int | None) -> tuple[list[PropertyReport], float, str]:
    # The report less its claim, whose properties hold lambdas that do not pickle.
    report = run_claim(REGISTRY[cid], examples=examples, seed=seed)
    return report.properties, report.seconds, report.skipped


def _run_parallel(ids: list[str], jobs: int, args: argparse.Namespace, err: TextIO) -> list[ClaimReport]:
    """Claims in worker processes (spawned: a fork of a process that has loaded
    torch's threads may hang); the reports come back in the catalog's order."""
    done: dict[str, ClaimReport] = {}
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_claim_in_worker, cid, args.examples, args.seed): cid for cid in ids}
        for future in as_completed(futures):
            cid = futures[future]
            done[cid] = report = ClaimReport(REGISTRY[cid], *future.result())
            if not args.quiet:
                err.write(f"[{len(done)}/{len(ids)}] {cid}: {report.outcome} after {report.cases} cases "
                          f"in {report.seconds:.1f} s\n")
                err.flush()
    return [done[cid] for cid in ids]


def _figures(r: ClaimReport) -> str:
    w = r.worst
    if w is None:
        return "—"
    return f"{w.error:.1e} ≤ {w.tolerance:.1e}" if w.error <= w.tolerance else f"{w.error:.1e} > {w.tolerance:.1e}"


def _witness_cell(r: ClaimReport) -> str:
    if r.skipped:
        return f"not verified here: {r.skipped}"
    bad = [p for p in r.properties if p.outcome != HOLDS]
    if bad:
        return f"{bad[0].name}: {bad[0].note or 'counterexample below'}"
    found = [p for p in r.properties if p.mode == "witness"]
    if not found:
        return ""
    return f"{len(found)} found, shrunk (below)"


def _table(reports: list[ClaimReport]) -> str:
    rows = [("id", "kind", "outcome", "cases", "worst error ≤ bound", "witness")]
    for r in reports:
        rows.append((r.claim.id, r.claim.kind, r.outcome, str(r.cases), _figures(r), _witness_cell(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n" + "\n".join(line.rstrip() for line in lines) + "\n"


def _witnesses(reports: list[ClaimReport]) -> str:
    parts = []
    for r in reports:
        for p in r.properties:
            if p.verdict is None:
                continue
            v = p.verdict
            if p.mode == "witness" and p.outcome == HOLDS:
                head = f"{r.claim.id} witness ({p.name}): the {v.law} law fails here, as claimed"
            else:
                head = f"{r.claim.id} COUNTEREXAMPLE ({p.name}): {v.law} {v.outcome}"
            parts.append(f"{head}\n  {v.message}\n  {v.numbers()}\n  {p.witness!r}")
    return ("\n" + "\n".join(parts) + "\n") if parts else ""


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
