"""Reference optimizers in numpy, one update rule per function.

Each rule is written as the PyTorch documentation writes it (``torch.optim``),
which for these rules is also the paper's form:

- SGD: θ ← θ − η g.
- Momentum (PyTorch ``SGD(momentum=μ)``, dampening 0): b ← μ b + g, θ ← θ − η b.
  The buffer starts at 0, so its first value is g, as in PyTorch. (Sutskever et
  al. 2013 write v ← μ v − η g; the two agree for a constant η.)
- Nesterov (PyTorch ``SGD(nesterov=True)``): b ← μ b + g, θ ← θ − η (g + μ b).
- Adam (Kingma & Ba 2015, Algorithm 1): m ← β₁ m + (1 − β₁) g,
  v ← β₂ v + (1 − β₂) g², m̂ = m / (1 − β₁ᵗ), v̂ = v / (1 − β₂ᵗ),
  θ ← θ − η m̂ / (√v̂ + ε). PyTorch arranges the same bias correction as
  (η / (1 − β₁ᵗ)) m / (√v / √(1 − β₂ᵗ) + ε): algebraically identical.
- Coupled L2 (PyTorch ``weight_decay`` of SGD and Adam): g ← g + λ θ, the
  gradient of (λ/2)‖θ‖² added to the loss's.
- Decoupled weight decay (Loshchilov & Hutter 2019; PyTorch ``AdamW``):
  θ ← θ (1 − η λ) before the update, never through the moments. Any rule
  here can take it (with SGD it is their SGDW).
- Gradient-norm clipping (Pascanu et al. 2013): g ← g · min(1, c / ‖g‖),
  ‖·‖ the norm of the whole gradient, applied to the loss's gradient before
  the coupled L2 term, as ``clip_grad_norm_`` before ``optimizer.step()`` does.
  PyTorch divides by ‖g‖ + 1e-6; that constant does not scale with the loss,
  so the form here is the one under which the clipping claim (C6) is exact.

Hyperparameters are numbers, or functions of the step's batch size B (the
rescales the claims are about: ``lr=lambda B: eta / B``). All arithmetic stays
in the dtype of the parameters, so a trajectory can be run in extended precision.

>>> import numpy as np
>>> grad = lambda theta, batch: 2 * (theta - batch[0].mean(axis=0))  # mean squared distance
>>> batches = [(np.array([[1.0], [3.0]]),), (np.array([[2.0]]),)]
>>> path = trajectory(sgd(lr=0.25), grad, np.array([0.0]), batches)
>>> path.tolist()
[[0.0], [1.0], [1.5]]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence, Union

import numpy as np

__all__ = ["RULES", "Optimizer", "State", "sgd", "momentum", "nesterov", "adam", "adamw",
           "clip_by_norm", "step", "trajectory"]

RULES = ("sgd", "momentum", "nesterov", "adam")

Hyper = Union[float, Callable[[int], Any]]  # a value, or a function of the batch size


@dataclass(frozen=True)
class Optimizer:
    """An update rule and its hyperparameters (numbers or functions of B)."""

    rule: str
    lr: Hyper
    momentum: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: Hyper = 1e-8
    l2: Hyper = 0.0  # coupled: λθ added to the gradient
    decay: Hyper = 0.0  # decoupled: θ ← θ(1 − ηλ)
    clip: Hyper | None = None  # threshold on the norm of the whole gradient

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"rule={self.rule!r} is not one of {RULES}")

    def at(self, name: str, batch_size: int, dtype: Any) -> Any:
        """The hyperparameter ``name`` for a step on ``batch_size`` examples, in ``dtype``."""
        h = getattr(self, name)
        return np.asarray(h(batch_size) if callable(h) else h, dtype=dtype)[()]


def sgd(lr: Hyper, *, l2: Hyper = 0.0, decay: Hyper = 0.0, clip: Hyper | None = None) -> Optimizer:
    """Plain SGD: θ ← θ − η g."""
    return Optimizer("sgd", lr, l2=l2, decay=decay, clip=clip)


def momentum(lr: Hyper, mu: float = 0.9, **options: Any) -> Optimizer:
    """Heavy-ball momentum, PyTorch's form: b ← μ b + g, θ ← θ − η b."""
    return Optimizer("momentum", lr, momentum=mu, **options)


def nesterov(lr: Hyper, mu: float = 0.9, **options: Any) -> Optimizer:
    """Nesterov momentum, PyTorch's form: b ← μ b + g, θ ← θ − η (g + μ b)."""
    return Optimizer("nesterov", lr, momentum=mu, **options)


def adam(lr: Hyper, betas: tuple[float, float] = (0.9, 0.999), eps: Hyper = 1e-8,
         **options: Any) -> Optimizer:
    """Adam with bias correction; ``l2=`` is PyTorch Adam's (coupled) weight_decay."""
    return Optimizer("adam", lr, betas=betas, eps=eps, **options)


def adamw(lr: Hyper, decay: Hyper = 0.01, betas: tuple[float, float] = (0.9, 0.999),
          eps: Hyper = 1e-8, **options: Any) -> Optimizer:
    """AdamW: Adam with decoupled weight decay θ ← θ(1 − ηλ) (PyTorch's default λ = 0.01)."""
    return Optimizer("adam", lr, betas=betas, eps=eps, decay=decay, **options)


@dataclass(frozen=True)
class State:
    """What a rule carries between steps: the step count, the momentum buffer, Adam's moments."""

    t: int = 0
    buf: np.ndarray | None = None
    m: np.ndarray | None = None
    v: np.ndarray | None = None
    clipped: tuple[bool, ...] = field(default=())  # whether each step so far was clipped


def clip_by_norm(g: np.ndarray, threshold: Any) -> tuple[np.ndarray, bool]:
    """g scaled to norm ``threshold`` if it is longer; and whether it was."""
    norm = np.sqrt(np.sum(g * g))
    if norm <= threshold:
        return g, False
    return g * (threshold / norm), True


def _sgd(g: np.ndarray, state: State, opt: Optimizer, B: int) -> tuple[np.ndarray, State]:
    return g, state


def _momentum(g: np.ndarray, state: State, opt: Optimizer, B: int) -> tuple[np.ndarray, State]:
    buf = g if state.buf is None else opt.momentum * state.buf + g
    return buf, State(state.t, buf, state.m, state.v, state.clipped)


def _nesterov(g: np.ndarray, state: State, opt: Optimizer, B: int) -> tuple[np.ndarray, State]:
    d, state = _momentum(g, state, opt, B)
    return g + opt.momentum * d, state


def _adam(g: np.ndarray, state: State, opt: Optimizer, B: int) -> tuple[np.ndarray, State]:
    b1, b2 = (g.dtype.type(b) for b in opt.betas)  # the run's dtype, powers included
    zero = np.zeros_like(g)
    m = b1 * (zero if state.m is None else state.m) + (1 - b1) * g
    v = b2 * (zero if state.v is None else state.v) + (1 - b2) * g * g
    t = state.t  # already counts this step
    m_hat = m / (1 - b1 ** t)
    v_hat = v / (1 - b2 ** t)
    d = m_hat / (np.sqrt(v_hat) + opt.at("eps", B, g.dtype))
    return d, State(state.t, state.buf, m, v, state.clipped)


DIRECTIONS = {"sgd": _sgd, "momentum": _momentum, "nesterov": _nesterov, "adam": _adam}


def step(opt: Optimizer, theta: np.ndarray, g: np.ndarray, state: State,
         batch_size: int) -> tuple[np.ndarray, State]:
    """One update of ``theta`` by the gradient ``g`` of a batch of ``batch_size`` examples."""
    dtype = theta.dtype
    clipped = False
    if opt.clip is not None:
        g, clipped = clip_by_norm(g, opt.at("clip", batch_size, dtype))
    g = g + opt.at("l2", batch_size, dtype) * theta
    state = State(state.t + 1, state.buf, state.m, state.v, state.clipped + (clipped,))
    d, state = DIRECTIONS[opt.rule](g, state, opt, batch_size)
    lr = opt.at("lr", batch_size, dtype)
    decay = opt.at("decay", batch_size, dtype)
    shrunk = theta * (1 - lr * decay) if decay else theta  # PyTorch AdamW: decay first
    return shrunk - lr * d, state


Gradient = Callable[[np.ndarray, Sequence[np.ndarray]], np.ndarray]


def trajectory(opt: Optimizer, gradient: Gradient, theta0: np.ndarray,
               batches: Sequence[Sequence[np.ndarray]], *, states: list | None = None) -> np.ndarray:
    """θ_0, …, θ_T: T steps of ``opt``, step t on ``gradient(θ_t, batches[t])``.

    ``theta0`` is a flat array whose dtype the whole run keeps; each batch is a
    tuple of arrays with the examples on axis 0. Pass a list as ``states`` to
    receive the optimizer state after each step.
    """
    theta = np.array(theta0, copy=True)
    path = [theta]
    state = State()
    for batch in batches:
        theta, state = step(opt, theta, gradient(theta, batch), state, len(batch[0]))
        path.append(theta)
        if states is not None:
            states.append(state)
    return np.stack(path)
