"""How close a correct check at 10^6 parameters can come to torch's fast mode.

Run by hand, never collected as a test::

    python benchmarks/floor.py               # 10^6 float64, 5 repeats
    python benchmarks/floor.py --markdown

The model is the 10^6 float64 MLP of ``benchmarks/peers.py``, its gradient
right. One run counts the calls a default ``check_gradient`` makes of the
adapter's ``loss_fn`` and ``grad_fn``; then each row below is timed in the
same process, median of the repeats, as a ratio to
``torch.autograd.gradcheck(fast_mode=True)``:

- the whole check;
- those calls alone, at the params, with nothing else (the floor of this
  error model: no point built, no bound computed);
- those calls at the points the check builds: each direction's random
  weights drawn and each point x0 + t v made, as the check makes them, and
  nothing else (the least data movement of this error model: no bound, no
  resolution computed);
- the calls of its probes alone (6 loss values each, and one gradient): what
  is left without measuring the loss's noise (only where a ladder is not
  quiet) and the gradient's rounding;
- the calls torch's fast mode makes (2 loss values and one backward pass),
  through the same adapter.

DESIGN §5 asks for a correct check within 3x of torch's fast mode; the rows
show how much of that any change of the bookkeeping can win, and how much
only a change of the error model could.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np
import torch

import gradcheck
from gradcheck._calls import scratch
from gradcheck._tree import tree_def
from gradcheck.numerics import NOISE_NARROW, NOISE_WIDE
from gradcheck.oracle import _weights
from gradcheck.torch import functions

from peers import build, flat_loss, flat_params


NOISE_CALLS = len(NOISE_WIDE) + len(NOISE_NARROW)  # the loss's noise, measured once per check


LADDER = (1, 2, 4, -1, -2, -4)  # a probe's steps, in units of h


def median_time(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def counted(fn: Callable[..., Any], counter: list[int]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        counter[0] += 1
        return fn(*args)
    return call


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)

    m = build("10^6", torch.float64)
    loss_fn, grad_fn, params = functions(m.module, torch.nn.MSELoss())
    losses, grads = [0], [0]
    v = gradcheck.check_gradient(counted(loss_fn, losses), counted(grad_fn, grads), params, m.x, m.y)
    L, G = losses[0], grads[0]
    # f0, 6 per probe, and the noise measurement only where some ladder was not quiet
    noise_calls = 0 if (L - 1) % 6 == 0 else NOISE_CALLS
    probes = (L - 1 - noise_calls) // 6

    def calls(n_loss: int, n_grad: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(n_loss):
                loss_fn(params, m.x, m.y)
            for _ in range(n_grad):
                grad_fn(params, m.x, m.y)
        return run

    td = tree_def(params)
    x0 = td.flatten(params)
    scale = np.maximum(1.0, np.abs(x0))
    ladders = [(*NOISE_WIDE, *NOISE_NARROW)] * (noise_calls > 0) + [LADDER] * probes

    def at_points() -> None:
        # The check's own ways: weights of random sign and size times
        # max(1, |x0|); a probe's ladder from h v, 2 h v and 4 h v, each point
        # x0 +- k h v one pass into one reused vector; the noise's points x0 + t v.
        rng = np.random.default_rng(0)
        loss_fn(td.unflatten(x0, dtype=np.float64, views=True), m.x, m.y)
        x, steps = np.empty_like(x0), np.empty((3, x0.size))
        for ladder in ladders:
            v = _weights(rng, x0.size)
            v *= scale
            if ladder == LADDER:
                np.multiply(v, 6e-6, out=steps[0])
                np.add(steps[0], steps[0], out=steps[1])
                np.add(steps[1], steps[1], out=steps[2])
                points = [(op, k) for op in (np.add, np.subtract) for k in range(3)]
            else:
                points = [(None, t) for t in ladder]
            for op, k in points:
                if op is None:
                    np.multiply(v, k * 6e-6, out=x)
                    x += x0
                else:
                    op(x0, steps[k], out=x)
                with scratch(x):  # as the check lends its points to the adapter
                    loss_fn(td.unflatten(x, dtype=np.float64, views=True), m.x, m.y)
        for _ in range(G):
            grad_fn(params, m.x, m.y)

    w = flat_params(m).requires_grad_(True)
    f = flat_loss(m, torch.ones(m.n, dtype=m.dtype))

    def torch_fast() -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.autograd.gradcheck(f, (w,), fast_mode=True, raise_exception=False)

    base = median_time(torch_fast, args.repeats)
    rows = [
        ("torch.autograd.gradcheck(fast_mode=True)", "2 loss, 1 backward", base),
        ("check_gradient, default options", f"{L} loss, {G} gradient ({v.outcome})",
         median_time(lambda: gradcheck.check_gradient(loss_fn, grad_fn, params, m.x, m.y), args.repeats)),
        ("its calls alone", f"{L} loss, {G} gradient", median_time(calls(L, G), args.repeats)),
        ("its calls at the points it builds", f"{1 + sum(map(len, ladders))} loss, {G} gradient",
         median_time(at_points, args.repeats)),
        ("its probes' calls alone", f"{6 * probes + 1} loss, 1 gradient",
         median_time(calls(6 * probes + 1, 1), args.repeats)),
        ("torch's calls, through the adapter", "2 loss, 1 gradient", median_time(calls(2, 1), args.repeats)),
    ]
    header = ("what", "calls", "seconds", "× torch fast")
    table = [header] + [(a, b, f"{t:.3f}", f"{t / base:.1f}") for a, b, t in rows]
    if args.markdown:
        lines = ["| " + " | ".join(r) + " |" for r in table]
        lines.insert(1, "|" + "---|" * len(header))
        print("\n".join(lines))
    else:
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        print("\n".join("  ".join(c.ljust(wd) for c, wd in zip(r, widths)).rstrip() for r in table))
    print(f"\n{m.n:,} parameters, float64, batch of {m.x.shape[0]}; medians of {args.repeats}; "
          f"numpy {np.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
