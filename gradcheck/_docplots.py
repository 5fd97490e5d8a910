"""The docs' plots, computed at build time with the library's reference code.

Each plot runs what a claim verifies (the networks of :mod:`gradcheck.nets`,
the optimizers of :mod:`gradcheck.training.optimizers`, the exact enumeration
of :mod:`gradcheck.training.sampling`, the loops of
:mod:`gradcheck.training.accumulation`) on one small fixed problem, draws it,
and returns a caption whose numbers come from the same run. matplotlib is
imported inside, with the Agg backend: no display is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import autograd
import numpy as np

from ._tree import tree_def
from .nets import ACTIVATIONS, AFFINE_DERIVATIVE, Network, loss_gradient, per_example_gradients
from .training import accumulation as acc
from .training import optimizers as opt
from .training import sampling as smp

__all__ = ["Figure", "PLOTS", "draw_all"]


@dataclass(frozen=True)
class Figure:
    """A plot written to ``file``, for the page of ``claim``."""

    claim: str
    file: str
    title: str
    caption: str


# ------------------------------------------------------------------ one small training problem


@dataclass(frozen=True)
class Problem:
    """A tanh network and a regression data set, fixed by seeds so every build draws the same."""

    net: Network
    theta0: np.ndarray
    x: np.ndarray
    y: np.ndarray

    @property
    def td(self) -> Any:
        return tree_def(self.net.init(seed=0))

    def gradient(self, reduction: str, scale: float = 1.0) -> Callable[[np.ndarray, Sequence], np.ndarray]:
        """``gradient(theta, batch)`` of the batch's loss, as the reference optimizers take it."""
        td = self.td

        def g(theta: np.ndarray, batch: Sequence[np.ndarray]) -> np.ndarray:
            grads = loss_gradient(self.net, td.unflatten(theta), batch[0], batch[1], reduction=reduction)
            return scale * td.flatten(grads)
        return g

    def full_loss(self, path: np.ndarray) -> np.ndarray:
        """L_mean over the whole data set at each θ of a trajectory."""
        td = self.td
        return np.array([float(self.net.total_loss(td.unflatten(t), self.x, self.y)) for t in path])

    def epochs(self, batch_size: int, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Shuffled mini-batches over ``count`` epochs; the last batch of each epoch is short."""
        rng = np.random.default_rng(1)
        out = []
        for _ in range(count):
            order = rng.permutation(len(self.x))
            out += [(self.x[order[s:s + batch_size]], self.y[order[s:s + batch_size]])
                    for s in range(0, len(order), batch_size)]
        return out


def problem(n: int = 30) -> Problem:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = (np.sin(2 * x[:, :1]) + 0.5 * x[:, 1:]) + 0.1 * rng.normal(size=(n, 1))
    net = Network((2, 8, 1), activation="tanh", loss="squared")
    params = net.init(seed=0)
    return Problem(net, tree_def(params).flatten(params), x, y)


# ------------------------------------------------------------------ drawing


def _figure(width: float = 7.0, height: float = 3.8, panels: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt.subplots(1, panels, figsize=(width, height), squeeze=False)


def _save(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------ B1: the Jensen gap


def _gap(name: str, ys: np.ndarray) -> float:
    fprime = autograd.elementwise_grad(ACTIVATIONS[name])
    return abs(float(np.mean(fprime(ys))) - float(fprime(np.array([np.mean(ys)]))[0]))


def jensen(out: Path) -> Figure:
    """The gap |mean f'(y_i) − f'(mean y)| as the batch's spread grows, per activation."""
    z = np.random.default_rng(0).normal(size=8)
    z = (z - z.mean()) / z.std()  # spread s means standard deviation s exactly
    spreads = np.linspace(0.05, 3.0, 60)
    fig, axes = _figure()
    ax = axes[0, 0]
    for name in ACTIVATIONS:
        if name not in AFFINE_DERIVATIVE:
            ax.plot(spreads, [_gap(name, 0.5 + s * z) for s in spreads], label=name)
    flat = max(_gap(name, 0.5 + s * z) for name in AFFINE_DERIVATIVE for s in spreads)
    ax.set(yscale="log", xlabel="spread of the batch (standard deviation of y_i around 0.5)",
           ylabel="|mean f′(y_i) − f′(mean y)|")
    ax.legend(ncol=4, fontsize=8)
    _save(fig, out / "jensen_gap.png")
    return Figure("B1", "jensen_gap.png", "The Jensen gap against the spread of the batch",
                  f"Eight values y_i = 0.5 + s·z_i (z fixed, standardised). Every activation whose "
                  f"derivative bends opens a gap that grows with the spread s; identity and quadratic "
                  f"(affine f′) are not drawn: their largest gap over all spreads is {flat:.1e}. ReLU's gap "
                  f"is 0 until the batch straddles its kink at 0, then jumps.")


# ------------------------------------------------------------------ C1: sum against mean under SGD


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b)))


def trajectories(out: Path) -> Figure:
    p = problem()
    batches = p.epochs(8, 10)
    eta = 0.2
    mean = opt.trajectory(opt.sgd(eta), p.gradient("mean"), p.theta0, batches)
    rescaled = opt.trajectory(opt.sgd(lambda B: eta / B), p.gradient("sum"), p.theta0, batches)
    with np.errstate(over="ignore", invalid="ignore"):  # it diverges, as the plot shows
        raw = opt.trajectory(opt.sgd(eta), p.gradient("sum"), p.theta0, batches)
    losses = [p.full_loss(path) for path in (mean, rescaled, raw)]
    top = 10 * losses[0][0]  # the unrescaled sum diverges; past this it would flatten the others
    gone = int(np.argmax(losses[2] > top)) if np.any(losses[2] > top) else None
    fig, axes = _figure()
    ax = axes[0, 0]
    ax.plot(losses[0], lw=3, alpha=0.5, label=f"mean, η = {eta}")
    ax.plot(losses[1], color="k", ls="--", label="sum, η / B_t (per step)")
    ax.plot(np.minimum(losses[2], 2 * top), label=f"sum, η = {eta} (no rescale)"
            + (f": leaves the chart at step {gone}" if gone is not None else ""))
    ax.set(yscale="log", ylim=(0.5 * losses[0].min(), top), xlabel="step",
           ylabel="L_mean over the whole data set")
    ax.legend()
    _save(fig, out / "sum_vs_mean.png")
    return Figure("C1", "sum_vs_mean.png", "SGD on the sum and on the mean, with and without the rescale",
                  f"{len(batches)} steps of SGD on {len(p.x)} examples in batches of 8 (the last of each "
                  f"epoch has {min(len(b[0]) for b in batches)}). With η/B_t the sum's run is the mean's: the largest "
                  f"parameter difference over the run is {_difference(mean, rescaled):.1e}. Without the "
                  f"rescale every step is B_t times longer.")


# ------------------------------------------------------------------ C4: Adam and the loss scale


def _scaled_runs(p: Problem, make: Callable[[], opt.Optimizer], scales: Sequence[float],
                 batches: list) -> list[np.ndarray]:
    return [opt.trajectory(make(), p.gradient("mean", c), p.theta0, batches) for c in scales]


def adam_scale(out: Path) -> Figure:
    p = problem()
    batches = p.epochs(8, 6)
    scales = (0.25, 1.0, 4.0)
    sgd_runs = _scaled_runs(p, lambda: opt.sgd(0.1), scales, batches)
    adam_runs = _scaled_runs(p, lambda: opt.adam(0.02), scales, batches)
    fig, axes = _figure(panels=2, width=8.5)
    for ax, runs, name in ((axes[0, 0], sgd_runs, "SGD, η = 0.1"), (axes[0, 1], adam_runs, "Adam, η = 0.02")):
        for c, path in zip(scales, runs):
            ax.plot(p.full_loss(path), label=f"loss × {c:g}")
        ax.set(title=name, yscale="log", xlabel="step", ylabel="L_mean (unscaled)")
        ax.legend()
    _save(fig, out / "adam_scale.png")
    spread = [max(_difference(r, runs[1]) for r in runs) for runs in (sgd_runs, adam_runs)]
    return Figure("C4", "adam_scale.png", "Adam ignores the loss scale; SGD does not",
                  f"The same mean loss multiplied by {', '.join(f'{c:g}' for c in scales)}, same rate. "
                  f"Largest parameter difference from the unscaled run: SGD {spread[0]:.2g}, Adam "
                  f"{spread[1]:.1e} (ε = 1e-8 is all that sees the scale). Summing instead of averaging "
                  f"is such a scale (c = B), so Adam needs no change of rate for it.")


# ------------------------------------------------------------------ C6: clipping


def _clipped_run(p: Problem, o: opt.Optimizer, reduction: str, batches: list) -> tuple[np.ndarray, int]:
    states: list = []
    path = opt.trajectory(o, p.gradient(reduction), p.theta0, batches, states=states)
    return path, sum(states[-1].clipped)


def clipping(out: Path) -> Figure:
    p = problem()
    batches = p.epochs(8, 6)
    eta = 0.1
    start = np.linalg.norm(p.gradient("mean")(p.theta0, (p.x, p.y)))
    c = float(f"{0.5 * start:.1g}")  # half the first mean gradient's norm: mean runs clip some steps
    runs = [("mean, η, threshold c", opt.sgd(eta, clip=c), "mean"),
            ("sum, η/B_t, threshold B_t·c", opt.sgd(lambda B: eta / B, clip=lambda B: B * c), "sum"),
            ("sum, η/B_t, threshold c kept", opt.sgd(lambda B: eta / B, clip=c), "sum")]
    fig, axes = _figure()
    ax = axes[0, 0]
    paths, counts = [], []
    styles = (dict(lw=3, alpha=0.5), dict(color="k", ls="--"), dict())  # the first two coincide
    for (label, o, reduction), style in zip(runs, styles):
        path, clipped = _clipped_run(p, o, reduction, batches)
        paths.append(path)
        counts.append(clipped)
        ax.plot(p.full_loss(path), label=f"{label}: clipped {clipped} of {len(batches)}", **style)
    ax.set(yscale="log", xlabel="step", ylabel="L_mean over the whole data set")
    ax.legend(fontsize=9)
    _save(fig, out / "clipping.png")
    kept = counts[2]
    return Figure("C6", "clipping.png", "Clipping the gradient norm under the sum and the mean",
                  f"Threshold c = {c:g}, half the mean gradient's norm at the start. Moving the threshold "
                  f"with the loss scale (B_t·c) keeps the sum's run on the mean's (largest difference "
                  f"{_difference(paths[0], paths[1]):.1e}); keeping c clips the sum at {kept} of "
                  f"{len(batches)} steps, and each clipped step is B_t times shorter than the mean's.")


# ------------------------------------------------------------------ D2: variance against M


def variance(out: Path) -> Figure:
    p = problem(8)
    g = np.array([p.td.flatten(gi) for gi in per_example_gradients(p.net, p.net.init(seed=0), p.x, p.y)])
    sigma2 = float(smp.covariance_trace(g))
    N = len(g)
    fig, axes = _figure()
    ax = axes[0, 0]
    worst = 0.0
    for replace, marker, label in ((False, "o", "without replacement"), (True, "s", "with replacement")):
        ms = np.arange(1, smp.largest_batch(N, replace=replace) + 1)
        measured = [float(smp.covariance_trace(smp.batch_means(g, smp.batches(N, int(m), replace=replace))))
                    for m in ms]
        formula = [smp.predicted_trace(sigma2, N, int(m), replace=replace) for m in ms]
        worst = max(worst, max(abs(a - b) / sigma2 for a, b in zip(measured, formula)))
        line = ax.plot(ms, formula, "-", alpha=0.6, label=f"formula, {label}")[0]
        ax.plot(ms, measured, marker, color=line.get_color(), label=f"every batch listed, {label}")
    ax.set(xlabel="batch size M", ylabel="trace of Cov of the mini-batch mean gradient")
    ax.legend(fontsize=9)
    _save(fig, out / "variance.png")
    return Figure("D2", "variance.png", "Mini-batch gradient variance against M",
                  f"N = {N} examples, σ² = {sigma2:.3g}. Markers: the variance over every possible batch "
                  f"(all C(N, M) subsets; all N^M ordered draws up to M = {smp.largest_batch(N, replace=True)}). "
                  f"Lines: σ²/M · (N − M)/(N − 1) and σ²/M. Largest difference {worst:.1e} of σ².")


# ------------------------------------------------------------------ E1: token-count imbalance


def _relative(a: Any, b: Any, td: Any) -> float:
    fa, fb = td.flatten(a), td.flatten(b)
    return float(np.linalg.norm(fa - fb) / np.linalg.norm(fb))


def accumulation(out: Path) -> Figure:
    p = problem(4)
    params = p.net.init(seed=0)
    ratios = np.arange(1, 17)
    wrong, right = [], []
    for r in ratios:
        tokens = np.array([r, r, 1.0, 1.0])  # tokens per sequence: micro-batch 1 has r times as many
        micro = [(p.x[:2], p.y[:2], tokens[:2]), (p.x[2:], p.y[2:], tokens[2:])]
        truth = loss_gradient(p.net, params, p.x, p.y, reduction="mean", weights=tokens)
        wrong.append(_relative(acc.mean_of_means(p.net, params, micro), truth, p.td))
        right.append(_relative(acc.accumulate_sums(p.net, params, micro), truth, p.td))
    fig, axes = _figure()
    ax = axes[0, 0]
    ax.plot(ratios, wrong, "o-", label="mean of per-micro-batch token means")
    ax.plot(ratios, right, "s-", label=f"token sums ÷ global count (largest {max(right):.0e})")
    ax.set(xlabel="tokens in micro-batch 1 ÷ tokens in micro-batch 2",
           ylabel="relative error against the global token mean")
    ax.legend()
    _save(fig, out / "accumulation.png")
    return Figure("E1", "accumulation.png", "Accumulation error against token-count imbalance",
                  f"Two micro-batches of two sequences each, the first with r times the tokens of the "
                  f"second. Averaging per-micro-batch token means is off by {wrong[1]:.0%} at r = 2 and "
                  f"{wrong[-1]:.0%} at r = {ratios[-1]}; dividing the summed token losses once by the "
                  f"global count is exact to rounding.")


PLOTS: tuple[Callable[[Path], Figure], ...] = (jensen, trajectories, adam_scale, clipping, variance, accumulation)


def draw_all(out: Path) -> list[Figure]:
    """Draw every plot into ``out``; the figures in catalog order."""
    out.mkdir(parents=True, exist_ok=True)
    return [plot(out) for plot in PLOTS]
