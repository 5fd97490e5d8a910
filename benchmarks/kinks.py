"""Does a wrong entry beside kinks fail, whatever the probes' seed?

Run by hand, never collected as a test::

    python benchmarks/kinks.py                      # 60 cases x 20 seeds, projection and full
    python benchmarks/kinks.py --cases 200 --seeds 50 --modes projection
    python benchmarks/kinks.py --nets 200           # then ReLU nets with pre-activations near 0

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

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402

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


def relu_net(seed: int) -> tuple:
    """A one-hidden-layer ReLU net (2 to 11 inputs, 2 to 29 units, 1 to 3
    outputs, batch 1 to 8) whose biases put up to every unit's pre-activation,
    for one example each, at 0 or 1e-6 to 3e-5 from it (a few steps); the loss
    is a mean square, a mean absolute error or a summed hinge by seed % 3.
    (loss_fn, grad_fn, params, x, y)."""
    rng = np.random.default_rng(seed)
    d, h, o, B = (int(rng.integers(*r)) for r in ((2, 12), (2, 30), (1, 4), (1, 9)))
    x, y = rng.normal(size=(B, d)), rng.normal(size=(B, o))
    W1, W2 = rng.normal(size=(d, h)) / np.sqrt(d), rng.normal(size=(h, o)) / np.sqrt(h)
    b1 = rng.normal(size=h) * 0.1
    k = int(rng.integers(0, h + 1))
    units, rows = rng.choice(h, size=k, replace=False), rng.integers(0, B, size=k)
    offsets = rng.choice([0.0, 1e-6, 3e-6, 1e-5, 3e-5], size=k) * rng.choice([-1, 1], size=k)
    b1[units] = -(x @ W1)[rows, units] + offsets
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": rng.normal(size=o) * 0.1}
    kind = seed % 3

    def loss(p: dict, x: np.ndarray, y: np.ndarray) -> object:
        out = anp.maximum(x @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"]
        if kind == 0:
            return anp.mean((out - y) ** 2)
        return anp.mean(anp.abs(out - y)) if kind == 1 else anp.sum(anp.maximum(out - y, 0.0))
    return loss, autograd.grad(loss), params, x, y


def planted_net(seed: int, rel: float = 0.05) -> tuple:
    """relu_net(seed) with the gradient's largest entry of one array (by
    seed % 4) off by ``rel``."""
    loss, grad, params, x, y = relu_net(seed)
    key = ("W1", "b1", "W2", "b2")[seed % 4]
    right = grad(params, x, y)[key]
    at = np.unravel_index(int(np.argmax(np.abs(right))), right.shape)

    def wrong(p: dict, x: np.ndarray, y: np.ndarray) -> dict:
        g = grad(p, x, y)
        g[key] = g[key].copy()
        g[key][at] *= 1 + rel
        return g
    return loss, wrong, params, x, y


def nets_table(nets: int, modes: list[str]) -> None:
    print("\n| mode | right: fail / hold / undetermined | one entry 5 % wrong: fail / hold / undetermined |")
    print("|---|---|---|")
    for mode in modes:
        counts = []
        for make in (relu_net, planted_net):
            c = collections.Counter()
            for seed in range(nets):
                loss, grad, params, x, y = make(seed)
                c[gradcheck.check_gradient(loss, grad, params, x, y, mode=mode, seed=seed).outcome] += 1
            counts.append(f"{c['fails']} / {c['holds']} / {c['undetermined']}")
        print(f"| {mode} | {counts[0]} | {counts[1]} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=60)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=["projection", "full"])
    ap.add_argument("--nets", type=int, default=0, help="also this many ReLU nets, right and wrong")
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
    if args.nets:
        nets_table(args.nets, [*args.modes, "auto"])


if __name__ == "__main__":
    main()
