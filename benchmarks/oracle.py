"""Benchmark of the finite-difference oracle and ``check_gradient`` on MLPs.

Run by hand, never collected as a test::

    python benchmarks/oracle.py            # sizes 10^2 .. 10^6, about 6 minutes on 2 cores
    python benchmarks/oracle.py --quick    # sizes 10^2 .. 10^4, under a minute
    python benchmarks/oracle.py --markdown # the same table as Markdown

For numpy MLPs (tanh hidden layers, squared error, float64, one fixed batch of
16 examples) with about 10^2 .. 10^6 parameters it measures, per size: the
cost of a full and of a projection check, the oracle's own error against the
exact gradient, the smallest whole-gradient error each mode catches, whether a
1 % error in one entry is caught and named, and whether the correct gradient
holds (false alarms). Beside it, if importable, PyTorch's
``torch.autograd.gradcheck`` and JAX's ``jax.test_util.check_grads`` on the
same network. Progress goes to stderr, the table to stdout.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gradcheck import check_gradient
from gradcheck.oracle import LossOracle, fd_gradient

SEED = 0
BATCH = 16
# Layer widths giving about 10^2 .. 10^6 parameters (two tanh hidden layers).
ARCHS = {
    "10^2": (5, 8, 6, 1),
    "10^3": (10, 24, 24, 4),
    "10^4": (32, 80, 80, 8),
    "10^5": (100, 256, 256, 32),
    "10^6": (300, 800, 800, 128),
}
DELTAS = [10.0**-k for k in range(3, 11)]  # whole-gradient relative errors tried
ENTRY_ERROR = 0.01  # one entry multiplied by 1.01
PEER_DELTA = 1e-6  # the whole-gradient error shown to the peers
FULL_MAX = 10_000  # our full check: n * 6 evaluations, each O(n) -> O(n^2)
QUICK_FULL_MAX = 1_000
TORCH_FULL_MAX = 1_000  # torch's full gradcheck: one run took 94 s at n = 9,768
AUTOGRAD_MAX = 10_000  # hand backprop is compared with autograd up to here
PROJECTION_SEEDS = 10  # false-alarm count for the projection check
ENTRY_POSITIONS = 10  # extra random positions for the one-entry error (projection)
REPEATS = 3


# --------------------------------------------------------------------------- network

@dataclass(frozen=True)
class MLP:
    """tanh MLP, loss 0.5 * mean over the batch of the squared error."""

    sizes: tuple[int, ...]

    @property
    def n(self) -> int:
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def init(self, rng: np.random.Generator) -> list[dict[str, np.ndarray]]:
        return [{"W": rng.standard_normal((a, b)) / np.sqrt(a), "b": 0.1 * rng.standard_normal(b)}
                for a, b in zip(self.sizes[:-1], self.sizes[1:])]

    def loss(self, params: list[dict[str, Any]], x: Any, y: Any, xp: Any = np) -> Any:
        h = x
        for k, layer in enumerate(params):
            h = xp.dot(h, layer["W"]) + layer["b"]
            if k < len(params) - 1:
                h = xp.tanh(h)
        return 0.5 * xp.sum((h - y) ** 2) / x.shape[0]

    def grad(self, params: list[dict[str, np.ndarray]], x: np.ndarray, y: np.ndarray) -> list[dict[str, np.ndarray]]:
        acts = [x]
        for k, layer in enumerate(params):
            h = acts[-1] @ layer["W"] + layer["b"]
            acts.append(np.tanh(h) if k < len(params) - 1 else h)
        d = (acts[-1] - y) / x.shape[0]
        out: list[dict[str, np.ndarray]] = [{} for _ in params]
        for k in range(len(params) - 1, -1, -1):
            out[k] = {"W": acts[k].T @ d, "b": d.sum(axis=0)}
            if k:
                d = (d @ params[k]["W"].T) * (1.0 - acts[k] ** 2)
        return out


def flatten(params: list[dict[str, np.ndarray]]) -> np.ndarray:
    return np.concatenate([a.ravel() for layer in params for a in (layer["W"], layer["b"])])


def unflatten(flat: np.ndarray, like: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    out, i = [], 0
    for layer in like:
        new = {}
        for key in ("W", "b"):
            size = layer[key].size
            new[key] = flat[i:i + size].reshape(layer[key].shape)
            i += size
        out.append(new)
    return out


def entry_name(j: int, like: list[dict[str, np.ndarray]]) -> str:
    """The path gradcheck should print for flat entry j, e.g. params[1]['W'][3, 5]."""
    for k, layer in enumerate(like):
        for key in ("W", "b"):
            size = layer[key].size
            if j < size:
                idx = ", ".join(str(int(i)) for i in np.unravel_index(j, layer[key].shape))
                return f"params[{k}][{key!r}][{idx}]"
            j -= size
    raise IndexError(j)


@dataclass
class Case:
    label: str
    net: MLP
    params: list[dict[str, np.ndarray]]
    x: np.ndarray
    y: np.ndarray
    g: np.ndarray = field(init=False)  # the exact gradient, flat

    def __post_init__(self) -> None:
        self.g = flatten(self.net.grad(self.params, self.x, self.y))

    def loss(self, params: Any, x: np.ndarray, y: np.ndarray) -> float:
        return float(self.net.loss(params, x, y))

    def loss_flat(self, flat: np.ndarray) -> float:
        return self.loss(unflatten(flat, self.params), self.x, self.y)

    def grad_times(self, m: np.ndarray | float) -> Callable[..., Any]:
        """A gradient function returning the exact gradient times ``m`` entrywise."""
        wrong = self.g * m
        return lambda params, x, y: unflatten(wrong.copy(), self.params)

    def check(self, grad_fn: Callable[..., Any], mode: str, seed: int = SEED) -> Any:
        return check_gradient(self.loss, grad_fn, self.params, self.x, self.y, mode=mode, seed=seed)


def make_case(label: str, index: int) -> Case:
    rng = np.random.default_rng(SEED + index)
    net = MLP(ARCHS[label])
    params = net.init(rng)
    x = rng.standard_normal((BATCH, net.sizes[0]))
    y = rng.standard_normal((BATCH, net.sizes[-1]))
    return Case(label, net, params, x, y)


# --------------------------------------------------------------------------- helpers

def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def seconds(t: float) -> str:
    if t < 1e-3:
        return f"{t * 1e6:.0f} µs"
    if t < 1:
        return f"{t * 1e3:.1f} ms"
    return f"{t:.2f} s"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def autograd_difference(case: Case) -> str:
    try:
        import autograd
        import autograd.numpy as anp
    except ImportError:
        return "not installed"
    ag = autograd.grad(lambda p: case.net.loss(p, case.x, case.y, xp=anp))(case.params)
    diff = np.max(np.abs(flatten(ag) - case.g)) / np.max(np.abs(case.g))
    if diff > 1e-12:
        raise RuntimeError(f"hand backprop disagrees with autograd at n={case.net.n}: {diff:.2e}")
    return f"{diff:.1e}"


# --------------------------------------------------------------------------- our checks

def smallest_caught(case: Case, mode: str) -> str:
    """Smallest delta for which grad * (1 + delta) fails; '*' if some larger delta passed."""
    failed = []
    for delta in DELTAS:
        v = case.check(case.grad_times(1.0 + delta), mode)
        failed.append(v.fails)
        log(f"    {mode} delta={delta:.0e}: {v.outcome}")
    if not any(failed):
        return f"none ≥ {DELTAS[-1]:.0e}"
    k = max(i for i, f in enumerate(failed) if f)
    gap = "*" if not all(failed[:k + 1]) else ""
    return f"{DELTAS[k]:.0e}{gap}"


def one_entry(case: Case, mode: str, j: int) -> tuple[bool, bool, str]:
    m = np.ones(case.g.size)
    m[j] += ENTRY_ERROR
    v = case.check(case.grad_times(m), mode)
    return v.fails, entry_name(j, case.params) in v.message, v.message


def entry_text(caught: bool, named: bool) -> str:
    return ("yes, named" if named else "yes, NOT named") if caught else "MISSED"


def measure_full(case: Case, row: dict[str, str], rng: np.random.Generator, j: int) -> None:
    n = case.g.size
    repeats = REPEATS if n <= 1000 else 1
    t, v = best_time(lambda: case.check(case.grad_times(1.0), "full"), repeats)
    row["full_evals"], row["full_time"] = f"{v.evaluations}", seconds(t)
    row["full_correct"] = v.outcome
    log(f"  full: {v.outcome} in {t:.2f} s")
    fd, _ = fd_gradient(case.loss_flat, flatten(case.params))
    row["full_oracle"] = f"{np.max(np.abs(fd - case.g)) / np.max(np.abs(case.g)):.1e}"
    row["full_delta"] = smallest_caught(case, "full")
    caught, named, msg = one_entry(case, "full", j)
    row["full_entry"] = entry_text(caught, named)
    log(f"    full 1% entry {entry_name(j, case.params)}: {msg[:300]}")


def measure_projection(case: Case, row: dict[str, str], rng: np.random.Generator, j: int) -> None:
    t, v = best_time(lambda: case.check(case.grad_times(1.0), "projection"), REPEATS)
    row["proj_evals"], row["proj_time"] = f"{v.evaluations}", seconds(t)
    row["proj_time_s"] = f"{t}"
    log(f"  projection: {v.outcome} in {t:.3f} s")
    holds = sum(case.check(case.grad_times(1.0), "projection", seed=s).holds for s in range(PROJECTION_SEEDS))
    row["proj_correct"] = f"{v.outcome} ({holds}/{PROJECTION_SEEDS} seeds hold)"
    oracle = LossOracle(case.loss_flat, flatten(case.params))
    errs, bounds = [], []
    for _ in range(4):
        direction = rng.standard_normal(case.g.size) * oracle.scale
        exact = float(direction @ case.g)
        p = oracle.probe(direction)
        errs.append(abs(p.value - exact) / abs(exact))
        bounds.append(p.bound / abs(exact))
    row["proj_oracle"] = f"{max(errs):.1e}"
    row["proj_bound"] = f"{min(bounds):.0e} .. {max(bounds):.0e}"
    row["proj_delta"] = smallest_caught(case, "projection")
    caught, named, msg = one_entry(case, "projection", j)
    row["proj_entry"] = entry_text(caught, named)
    log(f"    projection 1% entry {entry_name(j, case.params)}: {msg[:300]}")
    positions = rng.integers(case.g.size, size=ENTRY_POSITIONS)
    results = [one_entry(case, "projection", int(p))[:2] for p in positions]
    row["proj_entry_many"] = (f"{sum(c for c, _ in results)}/{ENTRY_POSITIONS} caught, "
                              f"{sum(nm for _, nm in results)} named")


# --------------------------------------------------------------------------- peers

def torch_peer(case: Case, row: dict[str, str], j: int, quick: bool) -> None:
    try:
        import torch
    except ImportError:
        for key in ("torch_full", "torch_fast", "torch_ratio", "torch_catch"):
            row[key] = "not installed"
        return
    torch.manual_seed(SEED)
    x, y = torch.from_numpy(case.x), torch.from_numpy(case.y)
    shapes = [(layer["W"].shape, layer["b"].shape) for layer in case.params]

    class Wrong(torch.autograd.Function):
        """Identity forward; backward multiplies the gradient by a mask."""

        @staticmethod
        def forward(ctx: Any, theta: Any, m: Any) -> Any:
            ctx.save_for_backward(m)
            return theta.clone()

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            (m,) = ctx.saved_tensors
            return grad * m, None

    def loss_with(m: np.ndarray) -> Callable[[Any], Any]:
        mt = torch.from_numpy(m)

        def f(theta: Any) -> Any:
            theta = Wrong.apply(theta, mt)
            h, i = x, 0
            for k, (ws, bs) in enumerate(shapes):
                W = theta[i:i + ws[0] * ws[1]].view(ws)
                i += ws[0] * ws[1]
                b = theta[i:i + bs[0]]
                i += bs[0]
                h = h @ W + b
                if k < len(shapes) - 1:
                    h = torch.tanh(h)
            return 0.5 * torch.sum((h - y) ** 2) / x.shape[0]
        return f

    n = case.g.size
    theta = torch.from_numpy(flatten(case.params)).requires_grad_(True)
    entry = np.ones(n)
    entry[j] += ENTRY_ERROR
    masks = {"ok": np.ones(n), "delta": np.full(n, 1.0 + PEER_DELTA), "entry": entry}

    def run(mask: str, fast: bool) -> bool:
        return bool(torch.autograd.gradcheck(loss_with(masks[mask]), (theta,), fast_mode=fast,
                                             raise_exception=False))

    ours = float(row["proj_time_s"])
    results = {}
    for fast in (False, True):
        key = "torch_fast" if fast else "torch_full"
        if not fast and n > (QUICK_FULL_MAX if quick else TORCH_FULL_MAX):
            row[key] = "—[c]"
            continue
        t, ok = best_time(lambda fast=fast: run("ok", fast), REPEATS if fast or n <= 1000 else 1)
        caught_delta, caught_entry = not run("delta", fast), not run("entry", fast)
        row[key] = f"{seconds(t)}, ours/it {ours / t:.2g}"
        if not ok:
            row[key] += ", FALSE ALARM"
        results[key] = (caught_delta, caught_entry)
        log(f"  torch {'fast' if fast else 'full'}: {t:.3f} s, correct passes={ok}, "
            f"1e-6 caught={caught_delta}, 1% entry caught={caught_entry}")
    row["torch_catch"] = " / ".join(
        f"{'fast' if k == 'torch_fast' else 'full'}: {yn(d)}, {yn(e)}" for k, (d, e) in results.items())


def jax_peer(case: Case, row: dict[str, str], j: int) -> None:
    try:
        import jax
        jax.config.update("jax_enable_x64", True)
        import jax.numpy as jnp
        from jax.test_util import check_grads
    except ImportError:
        row["jax_time"] = row["jax_catch"] = "not installed"
        return
    x, y = jnp.asarray(case.x), jnp.asarray(case.y)
    n = case.g.size

    def loss_with(m: np.ndarray) -> Callable[[Any], Any]:
        mj = jnp.asarray(m)

        @jax.custom_vjp
        def wrong(theta: Any) -> Any:
            return theta

        wrong.defvjp(lambda theta: (theta, None), lambda _, g: (g * mj,))

        def f(theta: Any) -> Any:
            return case.net.loss(unflatten(wrong(theta), case.params), x, y, xp=jnp)
        return f

    theta = jnp.asarray(flatten(case.params))
    entry = np.ones(n)
    entry[j] += ENTRY_ERROR

    def run(m: np.ndarray) -> bool:
        try:
            check_grads(loss_with(m), (theta,), order=1, modes=["rev"])
        except AssertionError:
            return False
        return True

    t, ok = best_time(lambda: run(np.ones(n)), REPEATS)
    caught_delta, caught_entry = not run(np.full(n, 1.0 + PEER_DELTA)), not run(entry)
    row["jax_time"] = f"{seconds(t)}, ours/it {float(row['proj_time_s']) / t:.2g}"
    if not ok:
        row["jax_time"] += ", FALSE ALARM"
    row["jax_catch"] = f"{yn(caught_delta)}, {yn(caught_entry)}"
    log(f"  jax: {t:.3f} s, correct passes={ok}, 1e-6 caught={caught_delta}, 1% entry caught={caught_entry}")


def yn(b: bool) -> str:
    return "yes" if b else "no"


# --------------------------------------------------------------------------- table

ROWS = [
    ("n params", "n"),
    ("hand backprop vs autograd (max rel)", "autograd"),
    ("full: loss evaluations", "full_evals"),
    ("full: wall time", "full_time"),
    ("full: oracle error max|fd-g|/max|g|", "full_oracle"),
    ("full: correct gradient", "full_correct"),
    ("full: smallest δ caught, g·(1+δ)", "full_delta"),
    ("full: 1% error in one entry", "full_entry"),
    ("projection: loss evaluations", "proj_evals"),
    ("projection: wall time (best of 3)", "proj_time"),
    ("projection: oracle error |fd-⟨v,g⟩|/|⟨v,g⟩|", "proj_oracle"),
    ("projection: bound/|⟨v,g⟩|, 4 probes", "proj_bound"),
    ("projection: correct gradient", "proj_correct"),
    ("projection: smallest δ caught, g·(1+δ)", "proj_delta"),
    ("projection: 1% error in one entry", "proj_entry"),
    (f"projection: 1% entry, {ENTRY_POSITIONS} more positions", "proj_entry_many"),
    ("|g_j|/max|g| at that entry", "entry_size"),
    ("torch gradcheck full: time, ours/it", "torch_full"),
    ("torch gradcheck fast_mode: time, ours/it", "torch_fast"),
    ("torch catches δ=1e-6, 1% entry", "torch_catch"),
    ("jax check_grads rev: time, ours/it", "jax_time"),
    ("jax catches δ=1e-6, 1% entry", "jax_catch"),
]


def render(rows: dict[str, dict[str, str]], markdown: bool) -> str:
    labels = list(rows)
    header = ["", *[f"n ≈ {lab}" for lab in labels]]
    body = [[name, *[rows[lab].get(key, "—") for lab in labels]] for name, key in ROWS]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * len(labels)) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(r: list[str]) -> str:
        return "  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:])])

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body)])


def footnotes(quick: bool) -> str:
    full_max = QUICK_FULL_MAX if quick else FULL_MAX
    torch_max = QUICK_FULL_MAX if quick else TORCH_FULL_MAX
    return "\n".join([
        (f"MLP: tanh hidden layers, loss 0.5·mean_b Σ(out-y)², float64, batch {BATCH}, seed {SEED}; "
        f"layer widths {', '.join(f'{k}: {v}' for k, v in ARCHS.items())}."),
        (f"[a] full check only up to n = {full_max}: it costs 6 loss evaluations per entry and "
        f"each evaluation is O(n), so O(n²): 8–22 s at n ≈ 10^4 here, so tens of minutes at 10^5; "
        f"the oracle error column uses fd_gradient (same cost)."),
        ("[b] projection check: 4 probes × 6 evaluations, 1 at params and 8 that measure the loss's "
        "rounding noise, whatever n; a failing "
        "check spends more evaluations localising the error. δ swept over 1e-3 .. 1e-10; "
        "'*' would mark a larger δ that passed."),
        (f"[c] torch's full gradcheck: 2n forward passes (numerical) + backward, run up to n = {torch_max}: "
        f"one run took 94 s at n = 9,768 on this machine (its cost grows faster than n), and three runs "
        f"(correct, δ=1e-6, 1% entry) are needed per size. Default tolerances "
        "(eps 1e-6, atol 1e-5, rtol 1e-3), float64. The wrong gradient is injected by an identity "
        "autograd.Function whose backward multiplies by the error."),
        ("'ours/it' = our projection time / the peer's time (below 1: ours is faster). "
        f"The one-entry position is drawn by default_rng({SEED}); 'named' means the message "
        "contains the entry's path, e.g. params[1]['W'][3, 5]."),
    ])


def measure(label: str, index: int, quick: bool) -> dict[str, str]:
    case = make_case(label, index)
    n = case.g.size
    log(f"n = {n} ({label})")
    rng = np.random.default_rng(SEED + 100 + index)
    j = int(rng.integers(n))
    row = {"n": f"{n:,}", "entry_size": f"{abs(case.g[j]) / np.max(np.abs(case.g)):.1e}"}
    row["autograd"] = autograd_difference(case) if n <= AUTOGRAD_MAX else "—"
    if n <= (QUICK_FULL_MAX if quick else FULL_MAX):
        measure_full(case, row, rng, j)
    else:
        for key in ("full_evals", "full_time", "full_oracle", "full_correct", "full_delta", "full_entry"):
            row[key] = "—[a]"
    measure_projection(case, row, rng, j)
    torch_peer(case, row, j, quick)
    jax_peer(case, row, j)
    return row


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="sizes up to 10^4, under a minute")
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    labels = [lab for lab in ARCHS if not args.quick or lab in ("10^2", "10^3", "10^4")]
    start = time.perf_counter()
    rows = {lab: measure(lab, i, args.quick) for i, lab in enumerate(labels)}
    print(render(rows, args.markdown))
    print()
    print(footnotes(args.quick))
    print(f"Total {time.perf_counter() - start:.0f} s on {platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}, {_peer_versions()}.")


def _peer_versions() -> str:
    out = []
    for mod in ("torch", "jax"):
        try:
            out.append(f"{mod} {__import__(mod).__version__}")
        except ImportError:
            out.append(f"{mod} not installed")
    return ", ".join(out)


if __name__ == "__main__":
    main()
