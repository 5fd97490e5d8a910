"""Tests for gradcheck.nets: shapes, reductions, the seed case, batch norm, misuse."""

import math

import numpy as np
import pytest

from gradcheck.errors import GradcheckUsageError
from gradcheck.nets import (
    ACTIVATIONS,
    AFFINE_DERIVATIVE,
    KINKED,
    LOSSES,
    NETWORK_ACTIVATIONS,
    Network,
    loss_gradient,
    per_example_gradients,
)

EPS = np.finfo(np.float64).eps


def _batch(net, size, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, net.sizes[0]))
    if net.loss == "cross_entropy":
        y = rng.integers(0, net.sizes[-1], size=size)
    elif net.loss == "logistic":
        y = rng.integers(0, 2, size=(size, net.sizes[-1])).astype(np.float64)
    else:
        y = rng.normal(size=(size, net.sizes[-1]))
    return x, y


def _flat(tree):
    return np.concatenate([np.ravel(layer[k]) for layer in tree for k in ("W", "b")])


def test_constants():
    assert set(NETWORK_ACTIVATIONS) == set(ACTIVATIONS) - {"exp"}
    assert AFFINE_DERIVATIVE == {"identity", "quadratic"}
    assert KINKED == {"relu"}
    assert LOSSES == ("squared", "cross_entropy", "logistic", "huber")


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activations_are_elementwise_and_differentiable(name):
    import autograd

    f = ACTIVATIONS[name]
    x = np.array([-1.3, 0.4, 2.0])
    np.testing.assert_array_equal(f(x), [f(v) for v in x])
    d = autograd.elementwise_grad(f)(x)
    h = 1e-6
    np.testing.assert_allclose(d, (f(x + h) - f(x - h)) / (2 * h), rtol=1e-6, atol=1e-8)


def test_stable_activations_and_exact_gelu():
    big = np.array([-800.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        assert np.all(np.isfinite(ACTIVATIONS["softplus"](big)))
        np.testing.assert_array_equal(ACTIVATIONS["sigmoid"](big), [0.0, 1.0])
    x = 0.7
    assert ACTIVATIONS["gelu"](np.array([x]))[0] == pytest.approx(
        0.5 * x * (1 + math.erf(x / math.sqrt(2))), rel=1e-15
    )


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_shapes_for_every_activation_and_loss(activation, loss):
    net = Network((3, 4, 2), activation=activation, loss=loss)
    params = net.init(seed=1, scale=0.5)
    for size in (1, 5):
        x, y = _batch(net, size)
        assert net.outputs(params, x).shape == (size, 2)
        per = net.per_example_losses(params, x, y)
        assert per.shape == (size,)
        assert np.all(np.isfinite(per))
        assert np.ndim(net.total_loss(params, x, y)) == 0
        g = loss_gradient(net, params, x, y)
        assert [{k: v.shape for k, v in layer.items()} for layer in g] == [
            {k: v.shape for k, v in layer.items()} for layer in params
        ]


def test_structure_and_init():
    net = Network((2, 5, 3))
    assert net.depth == 2
    assert net.n_params == 2 * 5 + 5 + 5 * 3 + 3
    params = net.init(seed=3)
    assert len(_flat(params)) == net.n_params
    assert all(p["W"].dtype == np.float64 for p in params)
    np.testing.assert_array_equal(_flat(params), _flat(net.init(seed=3)))
    assert not np.array_equal(_flat(params), _flat(net.init(seed=4)))
    state = np.random.get_state()[1].copy()
    net.init(seed=5)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched


def test_init_scale_sets_weight_spread():
    w = Network((400, 400)).init(seed=0, scale=2.0)[0]["W"]
    assert w.std() == pytest.approx(2.0 / math.sqrt(400), rel=0.02)


def test_target_format():
    assert Network((2, 3), loss="cross_entropy").target_shape(4) == (4,)
    assert Network((2, 3), loss="cross_entropy").target_dtype is np.int64
    assert Network((2, 3), loss="huber").target_shape(4) == (4, 3)
    assert Network((2, 3), loss="logistic").target_dtype is np.float64


@pytest.mark.parametrize("loss", LOSSES)
def test_sum_is_b_times_mean(loss):
    net = Network((3, 4, 2), activation="tanh", loss=loss)
    params = net.init(seed=2)
    x, y = _batch(net, 7)
    total = net.total_loss(params, x, y, reduction="sum")
    mean = net.total_loss(params, x, y, reduction="mean")
    assert total == np.sum(net.per_example_losses(params, x, y))
    # mean is total / 7, so 7 * mean differs from total by at most two roundings
    np.testing.assert_allclose(7 * mean, total, rtol=2 * EPS)


def test_weighted_reductions():
    net = Network((3, 4, 2), activation="sin", loss="huber")
    params = net.init(seed=2)
    x, y = _batch(net, 5)
    per = net.per_example_losses(params, x, y)
    equal = np.full(5, 2.5)
    np.testing.assert_allclose(
        net.total_loss(params, x, y, weights=equal), net.total_loss(params, x, y), rtol=4 * EPS
    )
    w = np.array([0.0, 1.0, 0.0, 3.0, 0.5])
    expected = (per[1] + 3 * per[3] + 0.5 * per[4]) / 4.5
    np.testing.assert_allclose(net.total_loss(params, x, y, weights=w), expected, rtol=4 * EPS)
    np.testing.assert_allclose(
        net.total_loss(params, x, y, weights=w, reduction="sum"), 4.5 * expected, rtol=4 * EPS
    )
    # a zero-weight example is ignored whatever its data
    x2, y2 = x.copy(), y.copy()
    x2[0], y2[0] = 1e3, -1e3
    assert net.total_loss(params, x2, y2, weights=w) == net.total_loss(params, x, y, weights=w)


def test_l2_regularizer():
    net = Network((2, 3, 1), l2=0.25)
    params = net.init(seed=0)
    params[0]["b"] = np.ones(3)  # biases are not regularised
    x, y = _batch(net, 4)
    r = 0.5 * sum(np.sum(p["W"] ** 2) for p in params)
    assert net.regularizer(params) == pytest.approx(r, rel=4 * EPS)
    plain = Network((2, 3, 1))
    for reduction in ("mean", "sum"):
        assert net.total_loss(params, x, y, reduction=reduction) == pytest.approx(
            plain.total_loss(params, x, y, reduction=reduction) + 0.25 * r, rel=4 * EPS
        )
    g = loss_gradient(net, params, x, y)
    g0 = loss_gradient(plain, params, x, y)
    np.testing.assert_allclose(g[0]["W"], g0[0]["W"] + 0.25 * params[0]["W"], rtol=1e-12)
    np.testing.assert_array_equal(g[0]["b"], g0[0]["b"])


def test_seed_case_mean_error_one_gradient_zero():
    # The seed's case: inputs (1, 1), targets (2, 4), prediction 3.
    net = Network((1, 1), activation="identity", loss="squared")
    params = [{"W": np.array([[3.0]]), "b": np.array([0.0])}]
    x, y = np.array([[1.0], [1.0]]), np.array([[2.0], [4.0]])
    assert net.total_loss(params, x, y) == 1.0
    g = loss_gradient(net, params, x, y)
    assert g[0]["W"][0, 0] == 0.0
    assert g[0]["b"][0] == 0.0


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("activation", ["tanh", "relu", "gelu", "quadratic"])
def test_per_example_gradients_sum_to_sum_gradient(activation, loss):
    net = Network((3, 5, 4, 2), activation=activation, loss=loss)
    params = net.init(seed=7)
    x, y = _batch(net, 6, seed=1)
    per = per_example_gradients(net, params, x, y)
    assert len(per) == 6
    summed = np.sum([_flat(g) for g in per], axis=0)
    batch = _flat(loss_gradient(net, params, x, y, reduction="sum"))
    np.testing.assert_allclose(summed, batch, rtol=1e-12, atol=1e-14 * np.abs(batch).max())


def test_per_example_gradients_ignore_l2():
    net = Network((2, 3, 1), l2=1.0)
    params = net.init(seed=0)
    x, y = _batch(net, 3)
    per = per_example_gradients(net, params, x, y)
    plain = per_example_gradients(Network((2, 3, 1)), params, x, y)
    for a, b in zip(per, plain):
        np.testing.assert_array_equal(_flat(a), _flat(b))


def test_batchnorm_mixes_examples():
    net = Network((2, 3, 1), activation="tanh", batchnorm=True)
    params = net.init(seed=0)
    x, y = _batch(net, 3)
    before = net.per_example_losses(params, x, y)[0]
    x2 = x.copy()
    x2[1] += 1.0
    assert net.per_example_losses(params, x2, y)[0] != before
    plain = Network((2, 3, 1), activation="tanh")
    assert plain.per_example_losses(params, x2, y)[0] == plain.per_example_losses(params, x, y)[0]


def test_batchnorm_normalises_and_is_finite_at_batch_size_one():
    net = Network((2, 4), activation="identity", batchnorm=True)
    params = net.init(seed=0)
    x, y = _batch(net, 50)
    out = net.outputs(params, x)  # depth 1: the output is the normalised layer
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.var(axis=0), 1.0, rtol=1e-3)
    deep = Network((2, 3, 1), batchnorm=True)
    x1, y1 = _batch(deep, 1)
    assert np.isfinite(deep.total_loss(deep.init(), x1, y1))
    assert np.all(np.isfinite(_flat(loss_gradient(deep, deep.init(), x1, y1))))


def test_loss_is_a_name_and_callable():
    net = Network((2, 3), loss="huber")
    assert net.loss == "huber" and isinstance(net.loss, str)
    assert repr(net) == (
        "Network(sizes=(2, 3), activation='tanh', loss='huber', l2=0.0, batchnorm=False)"
    )
    assert net == Network((2, 3), loss="huber") and hash(net) == hash(Network((2, 3), loss="huber"))
    assert Network([2, 3]).sizes == (2, 3)


@pytest.mark.parametrize(
    "kwargs, bad",
    [
        ({"sizes": (2, 3), "activation": "swish"}, "activation='swish'"),
        ({"sizes": (2, 3), "loss": "hinge"}, "loss='hinge'"),
        ({"sizes": (2,)}, "sizes=(2,)"),
        ({"sizes": (2, 0)}, "sizes=(2, 0)"),
        ({"sizes": (2, 3), "l2": -0.1}, "l2=-0.1"),
        ({"sizes": (2, 1), "loss": "cross_entropy"}, "cross_entropy"),
    ],
)
def test_misuse_raises_naming_the_argument(kwargs, bad):
    with pytest.raises(GradcheckUsageError, match=r"^\[gradcheck\] ") as info:
        Network(**kwargs)
    assert bad in str(info.value)


def test_bad_reduction_and_weights_raise():
    net = Network((2, 3))
    x, y = _batch(net, 4)
    with pytest.raises(ValueError, match="reduction='median'"):
        net.total_loss(net.init(), x, y, reduction="median")
    with pytest.raises(ValueError, match="weights"):
        net.total_loss(net.init(), x, y, weights=np.ones(3))
