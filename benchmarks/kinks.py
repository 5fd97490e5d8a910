"""Does a wrong entry beside kinks fail, whatever the probes' seed?

Run by hand, never collected as a test::

    python benchmarks/kinks.py                      # 60 cases x 20 seeds, projection and full
    python benchmarks/kinks.py --cases 200 --seeds 50 --modes projection

Each case is ``families_gradient.kinked``: 1 to 4 entries of relu or |.| at
their kink or 1.5 h from it, beside 1 to 4 entries of sin, one of which is
planted wrong by 5 % to 200 % (``families_gradient.planted``), drawn from
``numpy.random.default_rng(1000 + case)``. ``check_gradient`` runs on each
with ``seed=0 .. seeds-1``: the seed draws the probes' weights, and so which
blocks the search meets (the loss's noise is measured along a direction of
its own, the same under every seed). DESIGN section 4 asks that kinks do not
hide failures: the verdict must fail, name the planted entry, and (for kinks
at 0) say the entries on a kink are not differentiable, as
``test_a_kink_does_not_hide_a_wrong_entry`` asserts for seed 0. A row counts,
by seed, the verdicts that do not; those among them that hold (silent
passes) are counted apart.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import gradcheck  # noqa: E402
import families_gradient as fg  # noqa: E402


def draw_case(c: int) -> tuple[fg.Case, int, float]:
    """Case ``c``: the planted case, its wrong entry, and the kinks' offset in steps."""
    r = np.random.default_rng(1000 + c)
    x = r.uniform(-2, 2, int(r.integers(1, 5)))
    x[np.abs(x) < 1e-3] = 0.5
    n_kinks, kind = int(r.integers(1, 5)), ("relu", "abs")[int(r.integers(0, 2))]
    offset, rel = (0.0, 1.5)[int(r.integers(0, 2))], float(r.uniform(0.05, 2.0))
    case = fg.kinked(x, n_kinks, kind, offset)
    j = int(r.choice(case.smooth))
    wrong, _ = fg.planted(case, rel, j)
    return wrong, j, offset


def judged_right(v: gradcheck.Verdict, j: int, offset: float) -> bool:
    text = str(v)
    return v.fails and f"params[{j}] (grad_fn" in text and \
        (offset != 0 or ("not differentiable at" in text and "params[0]" in text))


def measure(mode: str, cases: int, seeds: int) -> tuple[int, int, collections.Counter, list[str]]:
    """Verdicts, silent passes, wrong verdicts by seed, and the first few of them."""
    total, silent, wrong_by_seed, shown = 0, 0, collections.Counter(), []
    for c in range(cases):
        case, j, offset = draw_case(c)
        for seed in range(seeds):
            v = gradcheck.check_gradient(case.loss_fn, case.grad_fn, case.params, *case.batch,
                                         mode=mode, seed=seed)
            total += 1
            silent += bool(v.holds)
            if not judged_right(v, j, offset):
                wrong_by_seed[seed] += 1
                if len(shown) < 3:
                    shown.append(f"case {c} ({case.note}, entry {j} wrong), seed {seed}: {str(v)[:300]}")
    return total, silent, wrong_by_seed, shown


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=["projection", "full"])
    args = ap.parse_args(argv)
    print("| mode | verdicts | not failed and named | of which hold | seeds with any (count) |")
    print("|---|---|---|---|---|")
    examples = []
    for mode in args.modes:
        total, silent, by_seed, shown = measure(mode, args.cases, args.seeds)
        seeds = ", ".join(f"{s} ({n})" for s, n in sorted(by_seed.items())) or "none"
        print(f"| {mode} | {total:,} | {sum(by_seed.values())} | {silent} | {seeds} |")
        examples += shown
    for e in examples:
        print("\n" + e)


if __name__ == "__main__":
    main()
