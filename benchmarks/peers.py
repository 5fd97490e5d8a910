"""gradcheck against its peers on PyTorch models, 10^3 to 10^6 parameters.

Run by hand, never collected as a test::

    python benchmarks/peers.py               # sizes 10^3 .. 10^6, float64 and float32
    python benchmarks/peers.py --quick       # sizes 10^3 .. 10^4, fewer positions
    python benchmarks/peers.py --markdown    # the table as Markdown

One model per size: a torch.nn.Sequential MLP (Linear, Tanh, Linear, Tanh,
Linear), MSE loss, a batch of 16, weights drawn by torch.manual_seed. Each
tool checks the gradient of that model's loss with respect to all of its
parameters:

- gradcheck: ``check_gradient`` on ``gradcheck.torch.functions(model, loss)``
  (finite differences on a float64 copy, the gradient from the model's own
  backward pass in its own dtype), default options;
- torch: ``torch.autograd.gradcheck`` on the loss as a function of the
  flattened parameters, in the model's dtype, ``fast_mode=True`` and the
  default full mode (full only where it takes under a minute);
- jax: ``jax.test_util.check_grads(f, (w,), order=1, modes=["rev"])`` on the
  same network written in jax with the same weights, in the same dtype.

Cases: the right gradient (a verdict that fails is a false alarm); one entry
1 % wrong, at several random positions (a verdict that passes is a miss;
gradcheck's message must also name the entry); every entry 1e-3 wrong; a
ReLU model with one hidden unit exactly at its kink for every example (the
right gradient, with a point where the loss is not differentiable: a
failure there is a false alarm, "not differentiable here" the honest answer).
Errors are injected into the backward pass only (an identity on the
flattened parameters whose backward scales the chosen entries), so each tool
sees the same wrong gradient. Times are medians per call, measured in the
same run (for gradcheck on one wrong entry, the slowest position too);
"ratio" is the tool's time over gradcheck's.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

import gradcheck
from gradcheck.torch import functions

BATCH = 16
SIZES = {  # (inputs, hidden, hidden, outputs): about 10^3 .. 10^6 parameters
    "10^3": (10, 24, 24, 4),
    "10^4": (32, 80, 80, 8),
    "10^5": (100, 256, 256, 32),
    "10^6": (320, 800, 800, 160),  # 1,025,760
}
ENTRY_ERROR = 0.01
ALL_ERROR = 1e-3
TORCH_FULL_MAX = 2_000  # torch's full mode: 2 evaluations per parameter


@dataclass
class Model:
    label: str
    dtype: torch.dtype
    module: torch.nn.Sequential
    x: torch.Tensor
    y: torch.Tensor
    n: int
    kink: bool = False


def build(label: str, dtype: torch.dtype, kink: bool = False) -> Model:
    torch.manual_seed(0)
    d, h1, h2, o = SIZES[label]
    act = torch.nn.ReLU if kink else torch.nn.Tanh
    module = torch.nn.Sequential(torch.nn.Linear(d, h1), act(), torch.nn.Linear(h1, h2), act(),
                                 torch.nn.Linear(h2, o)).to(dtype)
    x = torch.randn(BATCH, d, dtype=dtype)
    y = torch.randn(BATCH, o, dtype=dtype)
    if kink:
        # Hidden unit 0 of the first layer sits exactly at 0 for every example.
        with torch.no_grad():
            module[0].weight[0].zero_()
            module[0].bias[0] = 0.0
            module[2].weight[:, 0] = 1.0
    n = sum(p.numel() for p in module.parameters())
    return Model(label, dtype, module, x, y, n, kink)


# -- the error, injected into the backward pass only ---------------------------

class _Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, flat: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(factor)
        return flat.view_as(flat)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (factor,) = ctx.saved_tensors
        return grad * factor, None


def factors(n: int, case: str, j: int) -> np.ndarray:
    f = np.ones(n)
    if case == "one entry 1% wrong":
        f[j] += ENTRY_ERROR
    elif case == "all entries 1e-3 wrong":
        f += ALL_ERROR
    return f


def flat_loss(m: Model, factor: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """The loss as a function of the flattened parameters, its gradient scaled by ``factor``."""
    names = [(k, p.shape, p.numel()) for k, p in m.module.named_parameters()]
    mse = torch.nn.MSELoss()

    def f(flat: torch.Tensor) -> torch.Tensor:
        flat = _Scale.apply(flat, factor)
        params, start = {}, 0
        for k, shape, size in names:
            params[k] = flat[start:start + size].view(shape)
            start += size
        return mse(torch.func.functional_call(m.module, params, (m.x,)), m.y)
    return f


def flat_params(m: Model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in m.module.parameters()])


# -- the tools ------------------------------------------------------------------

@dataclass
class Outcome:
    passed: bool  # the tool said the gradient is right
    seconds: float
    failed: bool | None = None  # it said wrong (gradcheck may say neither: undetermined); None: not passed
    named: bool = False
    evaluations: int = 0
    words: str = ""


def run_gradcheck(m: Model, f: np.ndarray) -> Outcome:
    loss_fn, grad_fn, params = functions(m.module, torch.nn.MSELoss())
    names = list(params)
    sizes = [params[k].size for k in names]
    offsets = np.cumsum([0] + sizes)
    scale = {k: f[offsets[i]:offsets[i + 1]].reshape(params[k].shape) for i, k in enumerate(names)}

    def wrong(p: Any, x: Any, y: Any) -> Any:
        g = grad_fn(p, x, y)
        return {k: (g[k] * scale[k]).astype(g[k].dtype, copy=False) for k in g}

    start = time.perf_counter()
    v = gradcheck.check_gradient(loss_fn, wrong, params, m.x, m.y)
    seconds = time.perf_counter() - start
    bad = np.flatnonzero(f != 1.0)
    named = False
    if bad.size == 1:
        i = int(np.searchsorted(offsets, bad[0], side="right") - 1)
        idx = np.unravel_index(bad[0] - offsets[i], params[names[i]].shape)
        named = f"params['{names[i]}'][{', '.join(str(int(a)) for a in idx)}]" in str(v)
    return Outcome(v.holds, seconds, v.fails, named, v.evaluations,
                   f"{v.outcome}" + (f" ({v.reason})" if v.reason else ""))


def run_torch(m: Model, f: np.ndarray, fast: bool) -> Outcome:
    factor = torch.tensor(f, dtype=m.dtype)
    w = flat_params(m).requires_grad_(True)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float32 inputs: torch warns that it expects float64
        try:
            ok = torch.autograd.gradcheck(flat_loss(m, factor), (w,), fast_mode=fast, raise_exception=False)
        except RuntimeError:
            ok = False
    return Outcome(bool(ok), time.perf_counter() - start)


def run_jax(m: Model, f: np.ndarray) -> Outcome | None:
    try:
        import jax
        import jax.numpy as jnp
        from jax.test_util import check_grads
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    dt = jnp.float64 if m.dtype == torch.float64 else jnp.float32
    layers = [(jnp.asarray(layer.weight.detach().numpy(), dt), jnp.asarray(layer.bias.detach().numpy(), dt))
              for layer in m.module if isinstance(layer, torch.nn.Linear)]
    shapes = [(W.shape, b.shape) for W, b in layers]
    w0 = jnp.concatenate([a.reshape(-1) for W, b in layers for a in (W, b)])
    x, y = jnp.asarray(m.x.numpy(), dt), jnp.asarray(m.y.numpy(), dt)
    factor = jnp.asarray(f, dt)
    act = jax.nn.relu if m.kink else jnp.tanh

    @jax.custom_vjp
    def scaled(w: Any) -> Any:
        return w

    scaled.defvjp(lambda w: (w, None), lambda _, g: (g * factor,))

    def loss(w: Any) -> Any:
        w, h, start = scaled(w), x, 0
        for i, ((ws, bs)) in enumerate(shapes):
            W = w[start:start + ws[0] * ws[1]].reshape(ws)
            start += ws[0] * ws[1]
            b = w[start:start + bs[0]]
            start += bs[0]
            h = h @ W.T + b
            if i < len(shapes) - 1:
                h = act(h)
        return jnp.mean((h - y) ** 2)

    start = time.perf_counter()
    try:
        check_grads(loss, (w0,), order=1, modes=["rev"])
        ok = True
    except AssertionError:
        ok = False
    return Outcome(ok, time.perf_counter() - start)


# -- the table --------------------------------------------------------------------

CASES = ("right", "one entry 1% wrong", "all entries 1e-3 wrong", "kink (right)")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(label: str, dtype: torch.dtype, positions: int) -> list[dict[str, str]]:
    rows = []
    for case in CASES:
        m = build(label, dtype, kink=case.startswith("kink"))
        rng = np.random.default_rng(1)
        # Wrong entries at several positions; every other case three times over.
        js = rng.integers(0, m.n, size=positions) if case == "one entry 1% wrong" else [0, 0, 0]
        tools: dict[str, list[Outcome]] = {"gradcheck": [], "torch fast": [], "torch full": [], "jax": []}
        # One untimed call of each tool first: none pays for its first call
        # in the process (lazy imports, thread pools, compilation) in the table.
        warm = factors(m.n, case, int(js[0]))
        run_gradcheck(m, warm), run_torch(m, warm, fast=True), run_jax(m, warm)
        for j in js:
            f = factors(m.n, case, int(j))
            tools["gradcheck"].append(run_gradcheck(m, f))
            tools["torch fast"].append(run_torch(m, f, fast=True))
            if m.n <= TORCH_FULL_MAX:
                tools["torch full"].append(run_torch(m, f, fast=False))
            jx = run_jax(m, f)
            if jx is not None:
                tools["jax"].append(jx)
        log(f"{label} {str(dtype)[6:]} {case}: " + ", ".join(
            f"{k} {statistics.median(o.seconds for o in v):.3f}s" for k, v in tools.items() if v))
        rows.append(row(label, dtype, m.n, case, tools))
    return rows


def row(label: str, dtype: torch.dtype, n: int, case: str, tools: dict[str, list[Outcome]]) -> dict[str, str]:
    ours = statistics.median(o.seconds for o in tools["gradcheck"])
    out = {"size": f"{label} ({n:,})", "dtype": str(dtype)[6:], "case": case}
    wrong = "wrong" in case
    for name, results in tools.items():
        if not results:
            out[name] = "—"
            continue
        t = statistics.median(o.seconds for o in results)
        # A miss is a pass on wrong code; a false alarm a failure on right code
        # (gradcheck's "undetermined" is neither).
        bad = sum((o.passed if wrong else (not o.passed if o.failed is None else o.failed)) for o in results)
        what = "missed" if wrong else "false alarm"
        cell = f"{t:.3f} s"
        if name != "gradcheck":
            cell += f" ({t / ours:.2g}×)"
        cell += f", {bad}/{len(results)} {what}"
        if name == "gradcheck":
            cell += f", {statistics.median(o.evaluations for o in results):.0f} evals"
            if case == "one entry 1% wrong":
                cell += f", named {sum(o.named for o in results)}/{len(results)}"
                cell += f", slowest {max(o.seconds for o in results):.3f} s"
            if case.startswith("kink") or case == "right":
                cell += f", said: {results[0].words}"
        out[name] = cell
    return out


def render(rows: list[dict[str, str]], markdown: bool) -> str:
    keys = ["size", "dtype", "case", "gradcheck", "torch fast", "torch full", "jax"]
    table = [keys] + [[r[k] for k in keys] for r in rows]
    if markdown:
        lines = ["| " + " | ".join(r) + " |" for r in table]
        lines.insert(1, "|" + "---|" * len(keys))
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in table) for i in range(len(keys))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes 10^3 and 10^4, 3 positions")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    ap.add_argument("--sizes", nargs="*", default=None, help="e.g. 10^3 10^6")
    args = ap.parse_args(argv)
    sizes = args.sizes or (["10^3", "10^4"] if args.quick else list(SIZES))
    positions = 3 if args.quick else 10
    rows = []
    for label in sizes:
        for dtype in (torch.float64, torch.float32):
            rows += measure(label, dtype, positions)
    print(render(rows, args.markdown))
    print(f"\n{platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}, "
          f"torch {torch.__version__}" + _jax_version() + "; default threads; medians per call")


def _jax_version() -> str:
    try:
        import jax
        return f", jax {jax.__version__}"
    except ImportError:
        return ", jax not installed"


if __name__ == "__main__":
    main()
