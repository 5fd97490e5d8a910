"""check_optimizer: does a user's update rule give the same training run on
the summed loss as on the averaged one, under the rescale its author declares?

The checker trains twice from the same parameters over the same batches
(full batches and the short last batch of an epoch): once on ∇L_mean with the
declared hyperparameters, once on ∇L_sum = B·∇L_mean with them rescaled for
B, and compares the two runs step by step. SGD-type rules need the rate
divided by B; Adam-type rules need no rate change, only ε (and a coupled
weight decay) scaled by B. Where the runs part, the verdict names the step,
its batch size, the entry, and how much longer one step was than the other.

How rounding is allowed for. The user's rule cannot be rerun in a wider
dtype, so its rounding is measured by Monte Carlo arithmetic (Parker 1997):
each run is repeated with every step's result moved by a random fraction of
that step's rounding allowance (numerics.sum_rounding of its size), and the
repeat's distance from the run is the rounding carried through this run's own
dynamics, amplification included. The two runs may differ by both such
distances, doubled for a sample that understates (NOISE_SAFETY), plus each
step's allowance summed over the steps (linear growth where nothing amplifies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from . import _args
from . import numerics as nm
from ._calls import first_nonfinite
from ._tree import TreeDef, as_batch, same_structure, tree_def
from .errors import GradcheckUsageError
from .verdict import FAILS, HOLDS, PRECISION_LIMITED, UNDETERMINED, Verdict

__all__ = ["RESCALES", "check_optimizer", "assert_optimizer"]

CLAIM = "check_optimizer"
LAW = "sum/mean trajectory"

# How each hyperparameter of the mean run changes for a batch of B under the
# sum, by kind of rule: a factor B**power, keys named as torch.optim names them.
RESCALES: dict[str, dict[str, int]] = {
    "sgd": {"lr": -1, "weight_decay": 1, "max_norm": 1},  # coupled or decoupled decay alike (C1, C3, C6)
    "adam": {"eps": 1, "weight_decay": 1, "max_norm": 1},  # coupled L2 scales with the gradient (C4)
    "adamw": {"eps": 1, "max_norm": 1},  # decoupled decay does not see the gradient's scale
}

Rescale = Callable[[dict, int], dict]
StepFn = Callable[..., tuple[Any, Any]]


# -- arguments ----------------------------------------------------------------------------

def _rescale(rescale: str | Rescale, hyper: dict) -> tuple[Rescale, str]:
    if callable(rescale):
        return rescale, f"rescale={getattr(rescale, '__name__', 'the declared function')}"
    _args.choice("rescale", rescale, list(RESCALES))
    powers = RESCALES[rescale]
    if rescale == "sgd" and "lr" not in hyper:
        raise GradcheckUsageError(f"hyper={hyper!r} has no 'lr'; rescale='sgd' divides the rate by B")
    return (lambda h, B: {k: v * B ** powers[k] if k in powers else v for k, v in h.items()}), \
        f"rescale={rescale!r}"


def _hyper(hyper: Any) -> dict:
    if not isinstance(hyper, dict) or not all(isinstance(k, str) for k in hyper):
        raise GradcheckUsageError(f"hyper={hyper!r} must be a dict of keyword arguments for step_fn, "
                                  f"e.g. hyper={{'lr': 0.1}}")
    return dict(hyper)


def _step_fn(step_fn: Any) -> StepFn:
    if not callable(step_fn):
        raise GradcheckUsageError(f"step_fn={step_fn!r} is not callable; pass a function called as "
                                  f"step_fn(params, grad, state, **hyper) -> (params, state)")
    return step_fn


def default_batch_size(n: int) -> int:
    """The smallest batch of at least 2 that leaves a short last batch of ``n`` examples
    (1 when n < 3, where no batch can be short)."""
    return next((b for b in range(2, n) if n % b), 1)


def schedule(n: int, batch_size: int, epochs: int) -> list[np.ndarray]:
    """Example indices of each step: consecutive batches, the last of each epoch short."""
    return [np.arange(a, min(a + batch_size, n)) for _ in range(epochs) for a in range(0, n, batch_size)]


# -- running -----------------------------------------------------------------------------

@dataclass
class _Setup:
    step_fn: StepFn
    grad_fn: Callable[..., Any]
    params: Any
    td: TreeDef
    batch: tuple[np.ndarray, ...]
    steps: list[np.ndarray]
    reduction: str
    rng_seed: int
    calls: int = 0  # grad_fn and step_fn calls, counted as they happen
    blame: str = ""  # where a run first went non-finite


def _gradient(s: _Setup, theta: np.ndarray, idx: np.ndarray, reduction: str) -> np.ndarray:
    """The gradient of L_reduction on the examples ``idx``, from grad_fn's own reduction."""
    part = tuple(np.array(a[idx], copy=True) for a in s.batch)
    s.calls += 1
    g = s.grad_fn(s.td.unflatten(theta), *part)
    same_structure(s.td, g, argname="grad_fn")
    g = s.td.flatten(g)
    if reduction == s.reduction:
        return g
    return g * len(idx) if reduction == "sum" else g / len(idx)


def _allowance(before: np.ndarray, after: np.ndarray, B: int, dtype: np.dtype) -> np.ndarray:
    """Rounding allowance of one step, entry by entry: sum_rounding of the state's size."""
    scale = np.maximum(np.abs(before), np.abs(after))
    return nm.sum_rounding(np.maximum(scale, nm.GRAD_UNIT), dtype, B)


def _run(s: _Setup, reduction: str, hyper_at: Callable[[int], dict], jitter: int | None) -> np.ndarray:
    """θ_0..θ_T (flat float64); with ``jitter`` a seed, each step's result is moved by
    a random fraction of its rounding allowance (the Monte Carlo repeat)."""
    rng = np.random.default_rng(jitter) if jitter is not None else None
    theta, state = s.td.flatten(s.params), None
    path = [theta]
    for t, idx in enumerate(s.steps, 1):
        g = _gradient(s, theta, idx, reduction)
        if not np.all(np.isfinite(g)):
            s.blame = s.blame or f"grad_fn returned {first_nonfinite(s.td, g)} at step {t} of the run on L_{reduction}"
            return np.stack(path + [g * np.nan] * (len(s.steps) + 1 - len(path)))
        s.calls += 1
        out = s.step_fn(s.td.unflatten(theta), s.td.unflatten(g), state, **hyper_at(len(idx)))
        new, state = _unpack(out)
        same_structure(s.td, new, argname="step_fn")
        new = s.td.flatten(new)
        if not np.all(np.isfinite(new)):  # a finding: stop calling the user's code on it
            s.blame = s.blame or (f"step_fn returned {first_nonfinite(s.td, new)} at step {t} of the run "
                                  f"on L_{reduction}")
            return np.stack(path + [new] * (len(s.steps) + 1 - len(path)))
        if rng is not None:
            new = new + rng.uniform(-1, 1, new.shape) * _allowance(theta, new, len(idx), s.td.dtype)
        theta = new
        path.append(theta)
    return np.stack(path)


def _unpack(out: Any) -> tuple[Any, Any]:
    if not (isinstance(out, tuple) and len(out) == 2):
        raise GradcheckUsageError(f"step_fn returned {type(out).__name__}; it must return a pair "
                                  f"(new params, new state)")
    return out


# -- comparing -----------------------------------------------------------------------------

@dataclass
class _Runs:
    mean: np.ndarray
    total: np.ndarray
    tol: np.ndarray  # steps 1..T


def _runs(s: _Setup, hyper: dict, rescale: Rescale) -> _Runs:
    mean_at = lambda B: dict(hyper)  # noqa: E731
    sum_at = lambda B: rescale(dict(hyper), B)  # noqa: E731
    mean, total = _run(s, "mean", mean_at, None), _run(s, "sum", sum_at, None)
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(total))):
        return _Runs(mean, total, np.full(len(s.steps), np.inf))
    spread = (_steps(_run(s, "mean", mean_at, s.rng_seed) - mean)
              + _steps(_run(s, "sum", sum_at, s.rng_seed + 1) - total))[1:]
    own = np.cumsum([float(np.max(_allowance(mean[t], mean[t + 1], len(idx), s.td.dtype)))
                     for t, idx in enumerate(s.steps)])
    return _Runs(mean, total, nm.NOISE_SAFETY * spread + own)


def _steps(path: np.ndarray) -> np.ndarray:
    return np.max(np.abs(path), axis=1)


def _nonfinite(s: _Setup, r: _Runs) -> Verdict | None:
    """A non-finite gradient or step is a finding: the verdict says where it appeared."""
    if np.all(np.isfinite(r.mean)) and np.all(np.isfinite(r.total)):
        return None
    return Verdict(CLAIM, LAW, FAILS, float("inf"), 0.0, s.blame, dtype=str(s.td.dtype), evaluations=s.calls)


def _sizes(s: _Setup) -> list[int]:
    return [len(i) for i in s.steps]


def _resolution(r: _Runs) -> float:
    """The smallest relative error in a typical step the comparison would have
    caught: the widest allowance against the root-mean-square move of an entry
    over all steps (as a typical gradient entry is one of rms size)."""
    typical = float(np.sqrt(np.mean(np.diff(r.mean, axis=0) ** 2)))
    return float(np.max(r.tol)) / max(typical, np.finfo(float).tiny)


# -- the verdict ---------------------------------------------------------------------------

def check_optimizer(step_fn: StepFn, grad_fn: Callable[..., Any], params: Any, *batch: Any,
                    hyper: dict, rescale: str | Rescale = "sgd", reduction: str = "mean",
                    batch_size: int | None = None, epochs: int = 2, seed: int = 0,
                    resolution: float = nm.DEFAULT_RESOLUTION) -> Verdict:
    """Check that ``step_fn`` trains the same on L_sum as on L_mean under ``rescale``.

    ``step_fn(params, grad, state, **hyper) -> (params, state)`` is one update
    (``state`` is None at the first step; whatever it returns comes back at the
    next). ``grad_fn(params, *batch)`` is the loss's gradient, reduced as
    ``reduction`` declares; the other reduction is derived from it, so only the
    update rule is on trial. ``hyper`` holds the mean run's hyperparameters;
    ``rescale`` says how the sum run's follow for a batch of B: ``"sgd"`` (lr/B,
    weight_decay·B, max_norm·B), ``"adam"`` (eps·B, weight_decay·B, max_norm·B,
    the rate unchanged), ``"adamw"`` (eps·B, max_norm·B), or a function
    ``(hyper, B) -> hyper``. The batch is cut into steps of ``batch_size``
    (default: the smallest that leaves a short last batch), for ``epochs`` passes.
    ``step_fn`` must step from the params it is given, not from a copy it
    keeps in ``state``: the checker's rounding probe moves them between steps.

    >>> import numpy as np
    >>> grad = lambda w, x, y: 2 * x.T @ (x @ w - y) / len(x)
    >>> x, y = np.arange(10.0).reshape(5, 2) / 10, np.array([1.0, 0.0, 2.0, 1.0, 0.5])
    >>> def sgd(w, g, state, lr):
    ...     return w - lr * g, state
    >>> check_optimizer(sgd, grad, np.zeros(2), x, y, hyper={"lr": 0.1}).holds
    True
    >>> v = check_optimizer(sgd, grad, np.zeros(2), x, y, hyper={"lr": 0.1}, rescale="adam")
    >>> v.holds, "step 1" in v.message
    (False, True)
    """
    hyper = _hyper(hyper)
    rescale_fn, declared = _rescale(rescale, hyper)
    wanted = _args.resolution(resolution)
    s = _setup(step_fn, grad_fn, params, batch, reduction, batch_size, epochs, seed)
    r = _runs(s, hyper, rescale_fn)
    bad = _nonfinite(s, r)
    if bad is not None:
        return bad
    common = dict(dtype=str(s.td.dtype), resolution=_resolution(r), requested=wanted)
    t = _first_parting(s, r)
    if t is not None:
        return _parted(s, r, t, declared, hyper, common)
    return _held(s, r, declared, common)


def _held(s: _Setup, r: _Runs, declared: str, common: dict) -> Verdict:
    gap = _steps(r.total - r.mean)[1:]
    t = int(np.argmax(gap / r.tol))
    v = Verdict(CLAIM, LAW, HOLDS, float(gap[t]), float(r.tol[t]),
                f"on L_sum with {declared} and on L_mean, the rule takes the same {len(s.steps)} steps "
                f"(batch sizes {_sizes(s)})", evaluations=s.calls, **common)
    if v.resolution > v.requested:  # it could not have seen an error of the size asked for
        return v.with_(outcome=UNDETERMINED, reason=PRECISION_LIMITED,
                       message=v.message + f", but its steps are too short against rounding to resolve "
                                           f"{v.requested:.0e} (reached {v.resolution:.1e}): raise the rate")
    return v


def _setup(step_fn: Any, grad_fn: Any, params: Any, batch: tuple, reduction: str,
           batch_size: int | None, epochs: int, seed: int) -> _Setup:
    _args.inputs(params, batch, batch_required=True, grad_fn=grad_fn)
    _args.choice("reduction", reduction, ["mean", "sum"])
    arrays = as_batch(batch)
    n = len(arrays[0])
    size = default_batch_size(n) if batch_size is None else _args.count("batch_size", batch_size)
    if size > n:
        raise GradcheckUsageError(f"batch_size={size} is larger than the batch of {n} examples")
    steps = schedule(n, size, _args.count("epochs", epochs))
    return _Setup(_step_fn(step_fn), grad_fn, params, tree_def(params), arrays, steps, reduction,
                  _args.seed(seed))


def _parted(s: _Setup, r: _Runs, t: int, declared: str, hyper: dict, common: dict) -> Verdict:
    """The runs part at step t + 1 (``t`` indexes steps 1..T)."""
    gap = _steps(r.total - r.mean)[1:]
    sizes = _sizes(s)
    entry = int(np.argmax(np.abs(r.total[t + 1] - r.mean[t + 1])))
    moved_sum = np.linalg.norm(r.total[t + 1] - r.total[t])
    moved_mean = np.linalg.norm(r.mean[t + 1] - r.mean[t])
    ratio = moved_sum / moved_mean if moved_mean > 0 else np.inf
    words = (f"on L_sum with {declared} and on L_mean the runs part at step {t + 1} of {len(sizes)} "
             f"(batch of {sizes[t]}): by {gap[t]:.3g} at {s.td.name(entry)}, "
             f"{gap[t] / max(moved_mean, np.finfo(float).tiny):.3g} of the mean run's step; the sum run's "
             f"step there is {ratio:.4g}× the mean run's (expected 1)")
    words += _cause(s, t, hyper, declared)
    return Verdict(CLAIM, LAW, FAILS, float(gap[t]), float(r.tol[t]), words, evaluations=s.calls, **common)


def _cause(s: _Setup, t: int, hyper: dict, declared: str) -> str:
    """What the rule seems to do instead: a preset under which it holds or parts
    later, and whether the parting comes where the batch size changes."""
    why = _size_change(s, t)
    if why:
        return why
    for name in RESCALES:
        if declared == f"rescale={name!r}" or (name == "sgd" and "lr" not in hyper):
            continue
        later = _first_parting(s, _runs(s, hyper, _rescale(name, hyper)[0]))
        if later is None:
            return f". It holds with rescale={name!r}: the rule behaves as {_KIND[name]}"
        if later > t and _size_change(s, later):
            return (f". With rescale={name!r} they agree for longer, to step {later + 1}: the rule behaves as "
                    f"{_KIND[name]}{_size_change(s, later)}")
    if "eps" not in hyper and declared in ("rescale='adam'", "rescale='adamw'"):
        return ". If the rule has a constant such as ε, pass it in hyper so that the rescale can scale it"
    return ""


def _first_parting(s: _Setup, r: _Runs) -> int | None:
    """Index (into steps 1..T) of the first step where the runs part; None if they never do."""
    if _nonfinite(s, r) is not None:
        return 0
    gap = _steps(r.total - r.mean)[1:]
    return int(np.argmax(gap > r.tol)) if np.any(gap > r.tol) else None


def _size_change(s: _Setup, t: int) -> str:
    sizes = _sizes(s)
    if t == 0 or sizes[t] == sizes[t - 1]:
        return ""
    return (f". The runs agree while B = {sizes[t - 1]} and part where B changes to {sizes[t]}: the rule "
            f"carries earlier gradients (momentum, moments) at their own batch's scale, which no per-step "
            f"rescale undoes; average the loss instead, or give every step the same B")


_KIND = {"sgd": "an SGD-type rule (its step grows with the gradient: divide the rate by B)",
         "adam": "an Adam-type rule (its step does not grow with the gradient: keep the rate, scale ε by B)",
         "adamw": "an AdamW-type rule (keep the rate and the decoupled decay, scale ε by B)"}


def assert_optimizer(step_fn: StepFn, grad_fn: Callable[..., Any], params: Any, *batch: Any,
                     **options: Any) -> None:
    """Raise ``AssertionError(str(verdict))`` unless :func:`check_optimizer` holds.

    >>> import numpy as np
    >>> grad = lambda w, x: w * 0 + x.sum(axis=0) / len(x)
    >>> assert_optimizer(lambda w, g, s, lr: (w - lr * g, s), grad, np.zeros(1),
    ...                  np.ones((3, 1)), hyper={"lr": 0.5})
    """
    v = check_optimizer(step_fn, grad_fn, params, *batch, **options)
    if not v.holds:
        raise AssertionError(str(v))
