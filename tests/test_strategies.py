"""Tests for gradcheck.strategies: what they draw, how they shrink, how they refuse."""

import numpy as np
import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import gradcheck.strategies as gs
from gradcheck.errors import GradcheckUsageError
from gradcheck.nets import LOSSES, NETWORK_ACTIVATIONS, Network
from gradcheck.strategies import activations, batches, networks, parameters, weights

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_exports():
    assert gs.__all__ == ["activations", "networks", "parameters", "batches", "weights"]
    assert all(callable(getattr(gs, name)) for name in gs.__all__)


@FAST
@given(activations())
def test_activations_default_to_network_activations(name):
    assert name in NETWORK_ACTIVATIONS


@FAST
@given(activations(names=["tanh", "exp"]))
def test_activations_names(name):
    assert name in ("tanh", "exp")


def test_activations_shrink_to_identity():
    assert find(activations(), lambda _: True) == "identity"


@FAST
@given(networks())
def test_networks_default_bounds(net):
    assert isinstance(net, Network)
    assert 1 <= net.depth <= 4
    assert 1 <= net.sizes[0] <= 4 and 1 <= net.sizes[-1] <= 3
    assert all(1 <= h <= 16 for h in net.sizes[1:-1])
    assert net.activation in NETWORK_ACTIVATIONS and net.loss in LOSSES
    assert net.l2 == 0.0 and not net.batchnorm
    if net.loss == "cross_entropy":
        assert net.sizes[-1] >= 2


@FAST
@given(
    networks(
        min_depth=2,
        max_depth=3,
        min_width=5,
        max_width=6,
        activations=activations(names=["relu"]),
        losses=["cross_entropy"],
        max_inputs=2,
        max_outputs=2,
        l2=True,
        batchnorm=True,
    )
)
def test_networks_options(net):
    assert 2 <= net.depth <= 3
    assert all(5 <= h <= 6 for h in net.sizes[1:-1])
    assert net.activation == "relu" and net.loss == "cross_entropy"
    assert net.sizes[0] <= 2 and net.sizes[-1] == 2
    assert 0.01 <= net.l2 <= 1.0 and net.batchnorm


def test_networks_shrink_to_the_smallest():
    net = find(networks(), lambda _: True)
    assert net.depth == 1 and net.sizes == (1, 1)
    assert net.activation == "identity" and net.loss == "squared"


def test_networks_shrink_a_failing_property():
    # the smallest network with a hidden layer of width >= 3
    net = find(networks(), lambda n: n.depth >= 2 and max(n.sizes[1:-1]) >= 3)
    assert net.sizes == (1, 3, 1)


@FAST
@given(st.data())
def test_parameters_match_the_network(data):
    net = data.draw(networks(max_depth=3, max_width=6))
    params = data.draw(parameters(net, min_value=-0.5, max_value=1.5))
    assert len(params) == net.depth
    for layer, (a, b) in zip(params, zip(net.sizes[:-1], net.sizes[1:])):
        assert set(layer) == {"W", "b"}
        assert layer["W"].shape == (a, b) and layer["b"].shape == (b,)
        for v in layer.values():
            assert v.dtype == np.float64
            assert np.all((v >= -0.5) & (v <= 1.5))
    assert np.isfinite(net.total_loss(params, *data.draw(batches(net))))


def test_parameters_shrink_to_zero():
    net = Network((2, 3, 1))
    params = find(parameters(net), lambda _: True)
    assert all(not v.any() for layer in params for v in layer.values())


@FAST
@given(st.data())
def test_batches_match_the_loss(data):
    net = data.draw(networks(max_depth=2))
    x, y = data.draw(batches(net, min_size=2, max_size=5, min_value=-1.0, max_value=1.0))
    size = x.shape[0]
    assert 2 <= size <= 5
    assert x.shape == (size, net.sizes[0]) and x.dtype == np.float64
    assert np.all(np.abs(x) <= 1.0)
    assert y.shape == net.target_shape(size) and y.dtype == net.target_dtype
    if net.loss == "cross_entropy":
        assert np.all((0 <= y) & (y < net.sizes[-1]))
    elif net.loss == "logistic":
        assert set(np.unique(y)) <= {0.0, 1.0}
    else:
        assert np.all(np.abs(y) <= 1.0)


@FAST
@given(st.integers(1, 8).flatmap(lambda n: st.tuples(st.just(n), weights(n))))
def test_weights_default(case):
    size, w = case
    assert w.shape == (size,) and w.dtype == np.float64
    assert np.all((w == 0) | ((w > 1e-3) & (w <= 4.0)))
    assert np.any(w > 0)


@FAST
@given(weights(6, min_value=0.0, max_value=2.0, allow_zero=False))
def test_weights_without_zeros(w):
    assert np.all((w > 1e-3) & (w <= 2.0))


@FAST
@given(weights(3, min_value=0.5, max_value=1.0))
def test_weights_with_a_positive_floor(w):
    assert np.all((w >= 0.5) & (w <= 1.0))


def test_weights_can_be_zero_and_never_all_zero():
    assert find(weights(4), lambda w: (w == 0).sum() == 3) is not None
    assert find(weights(1), lambda _: True)[0] > 0



@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: networks(min_depth=3, max_depth=2), "min_depth=3 is larger than max_depth=2"),
        (lambda: networks(min_width=0), "min_width=0"),
        (lambda: networks(min_width=9, max_width=8), "min_width=9 is larger than max_width=8"),
        (lambda: networks(max_inputs=0), "max_inputs=0"),
        (lambda: networks(losses=["hinge"]), "hinge"),
        (lambda: networks(losses=[]), "losses=()"),
        (lambda: networks(losses="squared"), "losses='squared'"),
        (lambda: networks(activations="tanh"), "activations='tanh'"),
        (lambda: networks(max_outputs=1, losses=["cross_entropy"]), "max_outputs=1"),
        (lambda: activations(names=["swish"]), "swish"),
        (lambda: parameters("net"), "network='net'"),
        (lambda: parameters(Network((1, 1)), min_value=1.0, max_value=0.0),
         "min_value=1.0 is larger than max_value=0.0"),
        (lambda: parameters(Network((1, 1)), max_value=float("nan")), "max_value=nan"),
        (lambda: batches(Network((1, 1)), min_size=0), "min_size=0"),
        (lambda: batches(Network((1, 1)), min_size=5, max_size=4),
         "min_size=5 is larger than max_size=4"),
        (lambda: weights(0), "size=0"),
        (lambda: weights(3, min_value=-1.0), "min_value=-1.0"),
        (lambda: weights(3, max_value=0.0), "max_value=0.0"),
    ],
)
def test_invalid_options_raise_eagerly(make, message):
    with pytest.raises(GradcheckUsageError) as info:
        make()
    assert str(info.value).startswith("[gradcheck] ")
    assert message in str(info.value)
