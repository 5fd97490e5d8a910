"""Hypothesis strategies for networks, their parameters, batches and weights.

Everything random comes from Hypothesis, so every failure shrinks (towards
one layer of width 1, one input, values like 0.0 and 1.0) and replays.

>>> from hypothesis import given
>>> @given(networks(max_depth=2))
... def test_depth(net):
...     assert 1 <= net.depth <= 2
>>> test_depth()
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from hypothesis.strategies import SearchStrategy

from gradcheck.errors import GradcheckUsageError
from gradcheck.nets import ACTIVATIONS, LOSSES, NETWORK_ACTIVATIONS, Network

__all__ = ["activations", "networks", "parameters", "batches", "weights"]

_MIN_POSITIVE_WEIGHT = 1e-3  # a positive weight this small would make Σ w ill-conditioned


_DENSE_DRAW_LIMIT = 32  # arrays up to this size draw every entry separately


def _fail(message: str) -> GradcheckUsageError:
    return GradcheckUsageError(message)


def _check_int(name: str, value, *, at_least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, numpy.integer)):
        raise _fail(f"{name}={value!r} must be an integer.")
    if value < at_least:
        raise _fail(f"{name}={value!r} must be at least {at_least}.")


def _check_range(lo_name: str, lo, hi_name: str, hi) -> None:
    if lo > hi:
        raise _fail(f"{lo_name}={lo!r} is larger than {hi_name}={hi!r}.")


def _check_float(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, numpy.floating)):
        raise _fail(f"{name}={value!r} must be a real number.")
    if not math.isfinite(value):
        raise _fail(f"{name}={value!r} must be finite.")


def _check_names(name: str, values, known: Sequence[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise _fail(f"{name}={values!r} must be a sequence of names, e.g. [{values!r}].")
    values = tuple(values)
    if not values:
        raise _fail(f"{name}=() is empty; give at least one of {list(known)}.")
    unknown = [v for v in values if v not in known]
    if unknown:
        raise _fail(f"{name}={values!r}: {unknown!r} not in {list(known)}.")
    return values


@functools.lru_cache(maxsize=512)
def _float_arrays(shape: tuple[int, ...], min_value: float, max_value: float) -> SearchStrategy:
    # Small arrays draw every entry, so they shrink to readable numbers (0.0,
    # 1.0, -0.5) in a witness. Drawing every entry of a large array costs tens
    # of milliseconds, so a large one is filled from a generator seeded by a
    # drawn integer: it still replays, it still varies, and the network's size
    # (what shrinking is for) shrinks as before.
    size = math.prod(shape)
    if size <= _DENSE_DRAW_LIMIT:
        return arrays(numpy.float64, shape, elements=_floats(min_value, max_value), fill=st.nothing())
    return st.integers(0, 2**32 - 1).map(
        lambda seed: numpy.random.default_rng(seed).uniform(min_value, max_value, shape))


@functools.lru_cache(maxsize=512)
def _label_arrays(shape: tuple[int, ...], n_classes: int) -> SearchStrategy:
    return arrays(numpy.int64, shape, elements=st.integers(0, n_classes - 1))


@functools.lru_cache(maxsize=512)
def _binary_arrays(shape: tuple[int, ...]) -> SearchStrategy:
    return arrays(numpy.float64, shape, elements=st.sampled_from([0.0, 1.0]))


def _floats(min_value: float, max_value: float) -> SearchStrategy[float]:
    return st.floats(
        min_value, max_value, allow_nan=False, allow_infinity=False, allow_subnormal=False
    )


def activations(*, names: Sequence[str] | None = None) -> SearchStrategy[str]:
    """Activation names, shrinking to the first (``"identity"`` by default).

    >>> activations(names=["tanh", "relu"]).example() in ("tanh", "relu")
    True
    """
    if names is None:
        return st.sampled_from(NETWORK_ACTIVATIONS)
    return st.sampled_from(_check_names("names", names, tuple(ACTIVATIONS)))


_activations = activations  # networks() has an argument of the same name


def networks(
    *,
    min_depth: int = 1,
    max_depth: int = 4,
    min_width: int = 1,
    max_width: int = 16,
    activations: SearchStrategy[str] | None = None,
    losses: Sequence[str] | None = None,
    max_inputs: int = 4,
    max_outputs: int = 3,
    l2: bool = False,
    batchnorm: bool = False,
) -> SearchStrategy[Network]:
    """:class:`~gradcheck.nets.Network` s, shrinking to one layer, one input, one output.

    ``min_width``/``max_width`` bound the hidden layers; ``l2=True`` draws
    λ in [0.01, 1]; cross-entropy networks get at least 2 outputs.

    >>> net = networks(max_depth=2, losses=["cross_entropy"]).example()
    >>> net.depth <= 2 and net.sizes[-1] >= 2
    True
    """
    _check_int("min_depth", min_depth, at_least=1)
    _check_int("max_depth", max_depth, at_least=1)
    _check_range("min_depth", min_depth, "max_depth", max_depth)
    _check_int("min_width", min_width, at_least=1)
    _check_int("max_width", max_width, at_least=1)
    _check_range("min_width", min_width, "max_width", max_width)
    _check_int("max_inputs", max_inputs, at_least=1)
    _check_int("max_outputs", max_outputs, at_least=1)
    if activations is None:
        activations = _activations()
    elif not isinstance(activations, SearchStrategy):
        raise _fail(
            f"activations={activations!r} must be a strategy of names, "
            "e.g. activations(names=['tanh'])."
        )
    losses = LOSSES if losses is None else _check_names("losses", losses, LOSSES)
    if "cross_entropy" in losses and max_outputs < 2:
        raise _fail(
            f"max_outputs={max_outputs!r} is too small for loss 'cross_entropy', "
            "which needs 2 outputs; raise max_outputs or drop it from losses."
        )
    return _networks(
        depths=(min_depth, max_depth),
        widths=(min_width, max_width),
        activations=activations,
        losses=losses,
        max_inputs=max_inputs,
        max_outputs=max_outputs,
        l2=l2,
        batchnorm=batchnorm,
    )


@st.composite
def _networks(draw, *, depths, widths, activations, losses, max_inputs, max_outputs, l2, batchnorm):
    depth = draw(st.integers(*depths))
    d_in = draw(st.integers(1, max_inputs))
    hidden = [draw(st.integers(*widths)) for _ in range(depth - 1)]
    loss = draw(st.sampled_from(losses))
    d_out = draw(st.integers(2 if loss == "cross_entropy" else 1, max_outputs))
    return Network(
        sizes=(d_in, *hidden, d_out),
        activation=draw(activations),
        loss=loss,
        l2=draw(_floats(0.01, 1.0)) if l2 else 0.0,
        batchnorm=batchnorm,
    )


def _check_bounds(min_value, max_value) -> None:
    _check_float("min_value", min_value)
    _check_float("max_value", max_value)
    _check_range("min_value", min_value, "max_value", max_value)


def parameters(
    network: Network, *, min_value: float = -2.0, max_value: float = 2.0
) -> SearchStrategy[list[dict[str, numpy.ndarray]]]:
    """Parameter lists ``[{"W": (d_in, d_out), "b": (d_out,)}, ...]`` for ``network``.

    Entries are float64 in ``[min_value, max_value]`` and shrink to simple
    numbers such as 0.0 and 1.0.

    >>> from gradcheck.nets import Network
    >>> p = parameters(Network((2, 3))).example()
    >>> p[0]["W"].shape, p[0]["b"].shape
    ((2, 3), (3,))
    """
    if not isinstance(network, Network):
        raise _fail(f"network={network!r} must be a gradcheck.nets.Network.")
    _check_bounds(min_value, max_value)
    return _parameters(network.sizes, float(min_value), float(max_value))


@functools.lru_cache(maxsize=512)
def _parameters(sizes: tuple[int, ...], min_value: float, max_value: float) -> SearchStrategy:
    layers = [
        st.fixed_dictionaries(
            {
                "W": _float_arrays((a, b), min_value, max_value),
                "b": _float_arrays((b,), min_value, max_value),
            }
        )
        for a, b in zip(sizes[:-1], sizes[1:])
    ]
    return st.tuples(*layers).map(list)


def batches(
    network: Network,
    *,
    min_size: int = 1,
    max_size: int = 8,
    min_value: float = -2.0,
    max_value: float = 2.0,
) -> SearchStrategy[tuple[numpy.ndarray, numpy.ndarray]]:
    """Batches ``(x, y)`` for ``network``: x float64 ``(B, d_in)``, y in the loss's format.

    y is float64 ``(B, d_out)`` for squared and Huber loss, int64 labels
    ``(B,)`` for cross-entropy, float64 0./1. ``(B, d_out)`` for logistic.
    ``min_value``/``max_value`` bound x and real-valued y.

    >>> from gradcheck.nets import Network
    >>> x, y = batches(Network((2, 3), loss="cross_entropy"), max_size=4).example()
    >>> x.shape[1], y.dtype.kind, len(x) == len(y)
    (2, 'i', True)
    """
    if not isinstance(network, Network):
        raise _fail(f"network={network!r} must be a gradcheck.nets.Network.")
    _check_int("min_size", min_size, at_least=1)
    _check_int("max_size", max_size, at_least=1)
    _check_range("min_size", min_size, "max_size", max_size)
    _check_bounds(min_value, max_value)
    return _batches(network, (min_size, max_size), (float(min_value), float(max_value)))


@st.composite
def _batches(draw, network, sizes, bounds):
    size = draw(st.integers(*sizes))
    x = draw(_float_arrays((size, network.sizes[0]), *bounds))
    shape = network.target_shape(size)
    if network.loss == "cross_entropy":
        y = draw(_label_arrays(shape, network.sizes[-1]))
    elif network.loss == "logistic":
        y = draw(_binary_arrays(shape))
    else:
        y = draw(_float_arrays(shape, *bounds))
    return x, y


def weights(
    size: int, *, min_value: float = 0.0, max_value: float = 4.0, allow_zero: bool = True
) -> SearchStrategy[numpy.ndarray]:
    """Per-example weights, float64 ``(size,)``, at least one strictly positive.

    Positive weights lie in ``[max(min_value, ·), max_value]`` and exceed 1e-3;
    zeros (ignored examples) appear when ``allow_zero`` and ``min_value == 0``.

    >>> w = weights(5).example()
    >>> w.shape, bool((w >= 0).all() and w.sum() > 0)
    ((5,), True)
    """
    _check_int("size", size, at_least=1)
    _check_bounds(min_value, max_value)
    if min_value < 0:
        raise _fail(f"min_value={min_value!r} must be >= 0: weights are not negative.")
    if max_value <= _MIN_POSITIVE_WEIGHT:
        raise _fail(
            f"max_value={max_value!r} must be larger than {_MIN_POSITIVE_WEIGHT} "
            "so that some weight can be positive."
        )
    positive = st.floats(
        max(min_value, _MIN_POSITIVE_WEIGHT),
        max_value,
        exclude_min=min_value <= _MIN_POSITIVE_WEIGHT,
        allow_nan=False,
        allow_infinity=False,
        allow_subnormal=False,
    )
    zero_ok = allow_zero and min_value == 0
    elements = st.one_of(st.just(0.0), positive) if zero_ok else positive
    return _weights(size, elements, positive)


@st.composite
def _weights(draw, size, elements, positive):
    w = draw(arrays(numpy.float64, (size,), elements=elements))
    if not (w > 0).any():
        # Σ w = 0 leaves the weighted mean undefined: revive one example.
        w[draw(st.integers(0, size - 1))] = draw(positive)
    return w
