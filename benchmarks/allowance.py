"""Is grad_fn's rounding within the allowance check_gradient measures for it?

Run by hand, never collected as a test::

    python benchmarks/allowance.py                  # 3,000 float32 and 1,000 float16 gradients
    python benchmarks/allowance.py --seeds 11 12    # the same, with other fixed draws for the moves

Each case is a small tanh network (batch 1 to 16, 2 to 20 inputs, 2 to 8
hidden units, mean squared error) whose targets it nearly fits, so each
entry of the gradient is a sum of per-example terms far larger than the sum:
its rounding is that of the terms, not of the entry. grad_fn computes in the
params' dtype (float32 or float16); the exact gradient of the same rounded
inputs is computed in float64. For every entry, the error of grad_fn's
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
from typing import Any

import numpy as np

import gradcheck.gradient as G


def case(rng: np.random.Generator, dt: type) -> tuple[Any, ...]:
    """loss_fn, grad_fn, params, batch and the exact gradient of one network."""
    b, d, h = int(rng.integers(1, 17)), int(rng.integers(2, 21)), int(rng.integers(2, 9))
    x = rng.standard_normal((b, d)).astype(dt)
    w = (rng.standard_normal((d, h)) / np.sqrt(d)).astype(dt)
    v = (rng.standard_normal(h) / np.sqrt(h)).astype(dt)
    fit = np.tanh(x.astype(np.float64) @ w.astype(np.float64)) @ v.astype(np.float64)
    y = (fit + 1e-3 * rng.standard_normal(b)).astype(dt)  # nearly fitted: small residuals

    def gradient(p: dict, x: np.ndarray, y: np.ndarray, work: type, out: type) -> dict:
        wp, vp, xd, yd = p["W"].astype(work), p["v"].astype(work), x.astype(work), y.astype(work)
        a = np.tanh(xd @ wp)
        r = a @ vp - yd
        return {"W": (xd.T @ ((r[:, None] * vp[None, :]) * (1 - a * a)) / work(b)).astype(out),
                "v": (a.T @ r / work(b)).astype(out)}

    def loss_fn(p: dict, x: np.ndarray, y: np.ndarray) -> float:
        r = np.tanh(x.astype(np.float64) @ p["W"].astype(np.float64)) @ p["v"].astype(np.float64) - y
        return float(0.5 * np.mean(r * r))

    params = {"W": w, "v": v}
    exact = gradient(params, x, y, np.float64, np.float64)
    return loss_fn, (lambda p, x, y: gradient(p, x, y, dt, dt)), params, (x, y), exact


def measure(dt: type, cases: int) -> tuple[int, int, int, float]:
    """Gradients with an entry outside its allowance, entries outside, entries, worst error/allowance."""
    bad_gradients = outside = entries = 0
    worst = 0.0
    for seed in range(cases):
        loss_fn, grad_fn, params, batch, exact = case(np.random.default_rng(seed), dt)
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
