"""Is grad_fn's rounding within the allowance check_gradient measures for it?

Run by hand, never collected as a test::

    python benchmarks/allowance.py                  # 3,000 float32 and 1,000 float16 gradients
    python benchmarks/allowance.py --seeds 11 12    # the same, with other fixed draws for the moves

Each case is a small tanh network that nearly fits its targets
(``families_gradient.near_fit`` in tests/), so each entry of the gradient is
a sum of per-example terms far larger than the sum: its rounding is that of
the terms, not of the entry. grad_fn computes in the params' dtype (float32
or float16); the exact gradient of the same rounded inputs is computed in
float64. For every entry, the error of grad_fn's
gradient is compared with the allowance check_gradient measures for it
(``_Setup.allowance``: twice the largest of the second differences along
``numerics.GRAD_PATTERNS`` patterns of moves and of the reach along one
more). An entry outside its allowance can turn a correct gradient into a
false alarm where the comparison moves few entries (a full check).

``--seeds`` replaces the fixed seeds of those moves
(``gradient.PATTERN_SEEDS``) to show how much the result owes to them.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import gradcheck.gradient as G  # noqa: E402
from families_gradient import near_fit  # noqa: E402


def measure(dt: type, cases: int) -> tuple[int, int, int, float]:
    """Gradients with an entry outside its allowance, entries outside, entries, worst error/allowance."""
    bad_gradients = outside = entries = 0
    worst = 0.0
    for seed in range(cases):
        loss_fn, grad_fn, params, batch, exact = near_fit(np.random.default_rng(seed), dt)
        s = G._Setup(loss_fn, grad_fn, params, batch)
        allowance = s.allowance()
        error = np.abs(s.g - s.td.flatten(exact))
        over = error > allowance
        bad_gradients += bool(over.any())
        outside += int(over.sum())
        entries += error.size
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(allowance > 0, error / allowance, np.where(error > 0, np.inf, 0.0))
        worst = max(worst, float(np.max(ratio)))
    return bad_gradients, outside, entries, worst


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--float32", type=int, default=3000, help="float32 gradients (default 3000)")
    ap.add_argument("--float16", type=int, default=1000, help="float16 gradients (default 1000)")
    ap.add_argument("--seeds", type=int, nargs=2, default=None,
                    help="seeds of the second differences' and the reach's moves (default: the library's)")
    args = ap.parse_args(argv)
    if args.seeds:
        G.PATTERN_SEEDS = tuple(args.seeds)
    print(f"moves drawn with seeds {G.PATTERN_SEEDS}")
    print("| dtype | gradients | with an entry outside | entries | outside | worst error / allowance |")
    print("|---|---|---|---|---|---|")
    for dt, n in ((np.float32, args.float32), (np.float16, args.float16)):
        if n:
            bad, outside, entries, worst = measure(dt, n)
            print(f"| {np.dtype(dt).name} | {n:,} | {bad} | {entries:,} | {outside} | {worst:.3g} |")


if __name__ == "__main__":
    main()
