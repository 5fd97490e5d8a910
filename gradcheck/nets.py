"""Reference networks and losses, written with ``autograd.numpy``.

These are the models the claims are checked on: small fully connected
networks whose gradients autograd computes, so that every claim can compare
autograd, finite differences and the batch algebra on the same function.

>>> import numpy
>>> net = Network((2, 3, 1), activation="tanh", loss="squared")
>>> params = net.init(seed=0)
>>> x, y = numpy.zeros((4, 2)), numpy.zeros((4, 1))
>>> float(net.total_loss(params, x, y, reduction="sum")) >= 0.0
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import autograd
import autograd.numpy as np
import numpy
from autograd.extend import defjvp, defvjp, primitive
from autograd.tracer import getval

from gradcheck.errors import GradcheckUsageError

__all__ = [
    "ACTIVATIONS",
    "AFFINE_DERIVATIVE",
    "KINKED",
    "LOSSES",
    "NETWORK_ACTIVATIONS",
    "REDUCTIONS",
    "Network",
    "loss_gradient",
    "per_example_gradients",
]

Params = list  # list[dict[str, ndarray]], one {"W", "b"} per layer

_SQRT2 = math.sqrt(2.0)
_BN_EPS = 1e-5  # keeps batch norm finite at B = 1, where the batch variance is 0


# scipy is not a dependency (autograd.scipy imports it), so erf is defined here:
# math.erf is exact to double precision; the derivative is built from
# autograd.numpy, so higher derivatives work too.
_erf_values = numpy.vectorize(math.erf, otypes=[numpy.float64])


@primitive
def _erf(x):
    return _erf_values(x)


def _erf_derivative(x):
    return (2.0 / math.sqrt(math.pi)) * np.exp(-(x**2))


defvjp(_erf, lambda ans, x: lambda g: g * _erf_derivative(x))
defjvp(_erf, lambda g, ans, x: g * _erf_derivative(x))


def _logsumexp(o):
    # The shift m cancels mathematically, so it is held constant (no gradient).
    m = numpy.max(getval(o), axis=1, keepdims=True)
    return np.log(np.sum(np.exp(o - m), axis=1)) + m[:, 0]


def _identity(x):
    return x


def _quadratic(x):
    return x**2


def _sigmoid(x):
    # 0.5 * (1 + tanh(x/2)) is sigmoid without overflow in exp(-x) for x << 0
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


def _softplus(x):
    return np.logaddexp(0.0, x)


def _relu(x):
    return np.maximum(x, 0.0)


def _gelu(x):
    return 0.5 * x * (1.0 + _erf(x / _SQRT2))


ACTIVATIONS: dict[str, Callable[[Any], Any]] = {
    "identity": _identity,
    "quadratic": _quadratic,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "softplus": _softplus,
    "relu": _relu,
    "gelu": _gelu,
    "sin": np.sin,
    "exp": np.exp,
}
"""Elementwise, autograd-differentiable activations by name."""

AFFINE_DERIVATIVE: frozenset[str] = frozenset({"identity", "quadratic"})
"""Activations whose derivative is affine: no Jensen gap at transfer level (B1)."""

KINKED: frozenset[str] = frozenset({"relu"})
"""Activations with a point where they are not differentiable."""

# exp overflows through several layers; it is kept for scalar transfer claims.
NETWORK_ACTIVATIONS: tuple[str, ...] = tuple(a for a in ACTIVATIONS if a != "exp")

LOSSES: tuple[str, ...] = ("squared", "cross_entropy", "logistic", "huber")

REDUCTIONS: tuple[str, ...] = ("mean", "sum")


def _squared(o, y):
    # No 1/2 factor: claim B3 reproduces the seed's "MSE = 1, gradient = 0" case.
    return np.sum((o - y) ** 2, axis=1)


def _cross_entropy(o, y):
    picked = o[numpy.arange(o.shape[0]), y]
    return _logsumexp(o) - picked


def _logistic(o, y):
    return np.sum(np.logaddexp(0.0, o) - y * o, axis=1)


def _huber(o, y):
    r = np.abs(o - y)
    return np.sum(np.where(r <= 1.0, 0.5 * r**2, r - 0.5), axis=1)


_LOSS_FNS = {
    "squared": _squared,
    "cross_entropy": _cross_entropy,
    "logistic": _logistic,
    "huber": _huber,
}


def _fail(message: str) -> GradcheckUsageError:
    return GradcheckUsageError(message)


def _batchnorm(z):
    mu = np.mean(z, axis=0, keepdims=True)
    var = np.mean((z - mu) ** 2, axis=0, keepdims=True)
    return (z - mu) / np.sqrt(var + _BN_EPS)


@dataclass(frozen=True)
class Network:
    """A fully connected network with a loss, differentiable by autograd.

    ``sizes = (d_in, h_1, ..., d_out)``; ``activation`` follows every layer
    but the last, which is affine. ``l2`` adds ``l2 * regularizer(params)``
    to the loss; :meth:`total_loss` evaluates it. ``batchnorm=True`` normalises the first layer's
    pre-activations over the batch (training mode, no scale or shift), which
    mixes examples on purpose (claim F2).

    >>> net = Network((1, 1), activation="identity", loss="squared")
    >>> params = [{"W": numpy.array([[3.0]]), "b": numpy.array([0.0])}]
    >>> x, y = numpy.array([[1.0], [1.0]]), numpy.array([[2.0], [4.0]])
    >>> float(net.total_loss(params, x, y))
    1.0
    """

    sizes: tuple[int, ...]
    activation: str = "tanh"
    loss: str = "squared"
    l2: float = 0.0
    batchnorm: bool = False

    def __post_init__(self) -> None:
        sizes = tuple(self.sizes)
        object.__setattr__(self, "sizes", sizes)
        if len(sizes) < 2:
            raise _fail(
                f"Network: sizes={sizes!r} needs at least two entries (d_in, d_out)."
            )
        for s in sizes:
            if isinstance(s, bool) or not isinstance(s, (int, numpy.integer)) or s < 1:
                raise _fail(
                    f"Network: sizes={sizes!r} must be positive integers; "
                    f"got {s!r}."
                )
        if not isinstance(self.activation, str) or self.activation not in ACTIVATIONS:
            raise _fail(
                f"Network: activation={self.activation!r} is not one of "
                f"{sorted(ACTIVATIONS)}; pick one of those names."
            )
        if not isinstance(self.loss, str) or self.loss not in _LOSS_FNS:
            raise _fail(
                f"Network: loss={self.loss!r} is not one of {list(LOSSES)}; "
                "pick one of those names."
            )
        if not (isinstance(self.l2, (int, float)) and math.isfinite(self.l2)) or self.l2 < 0:
            raise _fail(f"Network: l2={self.l2!r} must be a finite number >= 0.")
        if self.loss == "cross_entropy" and sizes[-1] < 2:
            raise _fail(
                f"Network: loss='cross_entropy' needs at least 2 outputs, but "
                f"sizes={sizes!r} ends in {sizes[-1]}; use d_out >= 2."
            )

    @property
    def depth(self) -> int:
        """Number of layers (affine maps)."""
        return len(self.sizes) - 1

    @property
    def n_params(self) -> int:
        """Number of scalar parameters (weights and biases)."""
        return sum(a * b + b for a, b in zip(self.sizes[:-1], self.sizes[1:]))

    def target_shape(self, batch_size: int) -> tuple[int, ...]:
        """Shape of ``y`` for a batch: ``(B,)`` labels for cross-entropy, else ``(B, d_out)``.

        >>> Network((2, 3), loss="cross_entropy").target_shape(5)
        (5,)
        """
        if self.loss == "cross_entropy":
            return (batch_size,)
        return (batch_size, self.sizes[-1])

    @property
    def target_dtype(self) -> type:
        """``numpy.int64`` labels for cross-entropy, else ``numpy.float64``."""
        return numpy.int64 if self.loss == "cross_entropy" else numpy.float64

    def init(self, seed: int = 0, scale: float = 1.0) -> Params:
        """Gaussian weights with variance ``scale**2 / d_in``, zero biases.

        Uses its own ``numpy.random.default_rng(seed)``, never the global RNG.

        >>> [p["W"].shape for p in Network((2, 3, 1)).init(seed=1)]
        [(2, 3), (3, 1)]
        """
        rng = numpy.random.default_rng(seed)
        return [
            {
                "W": rng.normal(0.0, scale / math.sqrt(a), size=(a, b)),
                "b": numpy.zeros(b),
            }
            for a, b in zip(self.sizes[:-1], self.sizes[1:])
        ]

    def outputs(self, params: Params, x):
        """Network outputs, shape ``(B, d_out)``.

        >>> Network((2, 1)).outputs(Network((2, 1)).init(), numpy.ones((3, 2))).shape
        (3, 1)
        """
        act = ACTIVATIONS[self.activation]
        h = x
        for k, layer in enumerate(params):
            h = np.dot(h, layer["W"]) + layer["b"]
            if k == 0 and self.batchnorm:
                h = _batchnorm(h)
            if k < len(params) - 1:
                h = act(h)
        return h

    def per_example_losses(self, params: Params, x, y):
        """Data loss of each example, shape ``(B,)``, without the regulariser.

        >>> net = Network((1, 1), loss="squared")
        >>> net.per_example_losses(net.init(), numpy.zeros((2, 1)), numpy.ones((2, 1))).tolist()
        [1.0, 1.0]
        """
        return _LOSS_FNS[str(self.loss)](self.outputs(params, x), y)

    def regularizer(self, params: Params):
        """``R(θ) = 0.5 * Σ_layers Σ W**2`` (weights only, not biases).

        >>> float(Network((1, 1)).regularizer([{"W": numpy.array([[2.0]]), "b": numpy.array([5.0])}]))
        2.0
        """
        return 0.5 * sum(np.sum(layer["W"] ** 2) for layer in params)

    def total_loss(self, params: Params, x, y, *, reduction: str = "mean", weights=None):
        """Reduced data loss, plus ``l2 * regularizer(params)`` when ``l2 > 0``.

        ``"sum"``: Σ l_i (Σ w_i l_i with weights); ``"mean"``: Σ l_i / B
        (Σ w_i l_i / Σ w_i with weights).

        >>> net = Network((1, 1))
        >>> x, y = numpy.zeros((4, 1)), numpy.ones((4, 1))
        >>> float(net.total_loss(net.init(), x, y, reduction="sum")), net.loss == "squared"
        (4.0, True)
        """
        data = _reduce(self.per_example_losses(params, x, y), reduction, weights)
        if self.l2 > 0:
            return data + self.l2 * self.regularizer(params)
        return data


def _reduce(losses, reduction: str, weights):
    if reduction not in REDUCTIONS:
        raise _fail(
            f"Network.loss: reduction={reduction!r} is not one of {list(REDUCTIONS)}."
        )
    if weights is None:
        total = np.sum(losses)
        return total if reduction == "sum" else total / losses.shape[0]
    if np.shape(weights) != np.shape(losses):
        raise _fail(
            f"Network.loss: weights has shape {np.shape(weights)}, but the batch "
            f"has {losses.shape[0]} examples; pass one weight per example."
        )
    total = np.sum(weights * losses)
    return total if reduction == "sum" else total / np.sum(weights)


def loss_gradient(net: Network, params: Params, x, y, *, reduction: str = "mean", weights=None) -> Params:
    """Autograd's gradient of ``net.loss`` with respect to ``params``.

    >>> net = Network((1, 1), activation="identity")
    >>> params = [{"W": numpy.array([[3.0]]), "b": numpy.array([0.0])}]
    >>> g = loss_gradient(net, params, numpy.ones((2, 1)), numpy.array([[2.0], [4.0]]))
    >>> float(g[0]["W"][0, 0])
    0.0
    """

    def f(p):
        return net.total_loss(p, x, y, reduction=reduction, weights=weights)

    return autograd.grad(f)(params)


def per_example_gradients(net: Network, params: Params, x, y) -> list[Params]:
    """Gradient of each example's data loss, from the single-example batch ``x[i:i+1]``.

    The regulariser is left out, and with ``batchnorm`` each example is its
    own batch, which is exactly why these do not sum to the batch gradient
    (claim F2).

    >>> net = Network((1, 1))
    >>> len(per_example_gradients(net, net.init(), numpy.zeros((3, 1)), numpy.zeros((3, 1))))
    3
    """

    def f(p, xi, yi):
        return np.sum(net.per_example_losses(p, xi, yi))

    g = autograd.grad(f)
    return [g(params, x[i : i + 1], y[i : i + 1]) for i in range(len(x))]
