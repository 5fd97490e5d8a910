"""Is grad_fn's rounding within the allowance check_gradient measures for it?

Run by hand, never collected as a test::

    python benchmarks/allowance.py                  # float32, float16 and the mixed cases
    python benchmarks/allowance.py --seeds 11 12    # the same, with other fixed draws for the moves

Each case is a small tanh network that nearly fits its targets
(``families_gradient.near_fit`` in tests/), so each entry of the gradient is
a sum of per-example terms far larger than the sum: its rounding is that of
the terms, not of the entry. grad_fn computes in the params' dtype (float32
or float16), or, in the mixed cases, in another dtype than the params and
the batch are held in or than it returns (float64 params cast to float32
inside grad_fn; float16 weights computed in float32); the exact gradient of
the same held inputs is computed in float64. For every entry, the error of
grad_fn's gradient is compared with the allowance check_gradient measures
for it (``_Setup.allowance``: twice the largest of the second differences
along ``numerics.GRAD_PATTERNS`` patterns of moves and of the reach: the
largest over those patterns where no input is held coarser than the
gradient, and along one more pattern of its own where some input is held in
another dtype, the mixed cases). A gradient computed in
float32 but returned as float64 is not among them: its rounding is judged in
the dtype it is returned in (DESIGN section 4): the allowance is float64's,
and check_gradient reports the entries where float32's rounding exceeds it.

An entry outside its allowance can turn a correct gradient into a
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


# (label, returned dtype, held params, held batch, computed in); None: the returned dtype
SAME = [("float32", np.float32, None, None, None),
        ("float16", np.float16, None, None, None)]
MIXED = [
    ("float64 params and batch, computed and returned in float32", np.float32, np.float64, np.float64, None),
    ("float16 params and batch, computed and returned in float32", np.float32, np.float16, np.float16, None),
    ("float16 params, float32 batch, computed and returned in float32", np.float32, np.float16, None, None),
    ("float32 params, float64 batch, computed and returned in float32", np.float32, None, np.float64, None),
    ("float32 params and batch, computed and returned in float64", np.float64, np.float32, np.float32, None),
]


def measure(dt: type, cases: int, **held: type | None) -> tuple[int, int, int, float]:
    """Gradients with an entry outside its allowance, entries outside, entries, worst error/allowance."""
    bad_gradients = outside = entries = 0
    worst = 0.0
    for seed in range(cases):
        loss_fn, grad_fn, params, batch, exact = near_fit(np.random.default_rng(seed), dt, **held)
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
    ap.add_argument("--mixed", type=int, default=1000, help="gradients of each mixed case (default 1000)")
    ap.add_argument("--seeds", type=int, nargs=2, default=None,
                    help="seeds of the second differences' and the reach's moves (default: the library's)")
    args = ap.parse_args(argv)
    if args.seeds:
        G.PATTERN_SEEDS = tuple(args.seeds)
    print(f"moves drawn with seeds {G.PATTERN_SEEDS}")
    print("| case | gradients | with an entry outside | entries | outside | worst error / allowance |")
    print("|---|---|---|---|---|---|")
    counts = [args.float32, args.float16] + [args.mixed] * len(MIXED)
    for (label, dt, params, batch, work), n in zip(SAME + MIXED, counts):
        if n:
            bad, outside, entries, worst = measure(dt, n, params=params, batch=batch, work=work)
            print(f"| {label} | {n:,} | {bad} | {entries:,} | {outside} | {worst:.3g} |")


if __name__ == "__main__":
    main()
