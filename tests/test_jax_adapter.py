"""gradcheck.jax.functions: JAX losses of parameter pytrees judged right and
wrong through the adapter, leaves named by their pytree paths, 64-bit types
enabled only within a call."""

from __future__ import annotations

import collections
import doctest

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp  # noqa: E402

import gradcheck  # noqa: E402
import gradcheck.jax as gj  # noqa: E402
from gradcheck.jax import functions  # noqa: E402
from gradcheck.verdict import PRECISION_LIMITED  # noqa: E402

DTYPES = [np.float64, np.float32]


def mlp_params(seed, dtype, n_in=3, hidden=4, n_out=2):
    rng = np.random.default_rng(seed)
    return {"W1": rng.normal(size=(n_in, hidden)).astype(dtype), "b1": rng.normal(size=hidden).astype(dtype) / 4,
            "W2": rng.normal(size=(hidden, n_out)).astype(dtype) / 2, "b2": np.zeros(n_out, dtype)}


def logits(p, x):
    return jnp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


def cross_entropy(p, x, y):
    z = logits(p, x)
    return jnp.mean(jax.nn.logsumexp(z, axis=1) - jnp.take_along_axis(z, y[:, None], axis=1)[:, 0])


def batch(seed, n=6, n_in=3, n_out=2):
    rng = np.random.default_rng(seed + 100)
    return rng.normal(size=(n, n_in)), rng.integers(0, n_out, size=n)


def judged_right(v, dtype):
    """float64: holds. float32: holds, or precision-limited; never fails."""
    return v.holds if dtype == np.float64 else (v.holds or v.reason == PRECISION_LIMITED)


def _bumped(mask):
    """The identity, with a backward rule off by ``mask`` (relative, per entry)."""
    @jax.custom_vjp
    def bump(w):
        return w

    def fwd(w):
        return w, None

    def bwd(_, g):
        return (g * (1 + mask.astype(g.dtype)),)

    bump.defvjp(fwd, bwd)
    return bump


def with_wrong_rule(loss, leaf, index, rel=0.01, shape=None):
    """``loss`` whose gradient for ``params[leaf][index]`` is off by ``rel``:
    a custom_vjp with a wrong rule on the way into the loss."""
    mask = np.zeros(shape)
    mask[index] = rel
    bump = _bumped(jnp.asarray(mask))

    def wrong(p, *batch):
        return loss({**p, leaf: bump(p[leaf])}, *batch)
    return wrong


def _typical_entry(grads):
    flat = [(name, idx, abs(v)) for name, g in grads.items() for idx, v in np.ndenumerate(g)]
    sizes = np.array([s for _, _, s in flat])
    name, idx, _ = flat[int(np.argmin(np.abs(sizes - np.sqrt(np.mean(sizes ** 2)))))]
    return name, idx


# ---------------------------------------------------------------- types, dtypes, x64

def test_params_keep_the_pytree_and_the_leaves_dtypes():
    p = {"layers": [{"W": jnp.ones((3, 2)), "b": jnp.zeros(2)}, {"W": jnp.ones((2, 1)), "b": jnp.zeros(1)}]}
    _, _, params = functions(lambda p, x: jnp.sum(x), p)
    assert isinstance(params["layers"], list) and set(params["layers"][1]) == {"W", "b"}
    assert isinstance(params["layers"][0]["W"], np.ndarray) and params["layers"][0]["W"].dtype == np.float32


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_loss_fn_is_float64_and_grad_fn_in_the_params_own_dtype(dtype):
    loss_fn, grad_fn, params = functions(cross_entropy, mlp_params(0, dtype))
    x, y = batch(0)
    value = loss_fn(params, x, y)
    assert value.dtype == np.float64
    assert abs(value - float(cross_entropy(jax.tree_util.tree_map(jnp.asarray, params), x, y))) < 1e-6
    assert all(g.dtype == dtype for g in grad_fn(params, x, y).values())


def test_64_bit_types_are_enabled_only_within_a_call():
    before = jax.config.jax_enable_x64
    loss_fn, grad_fn, params = functions(cross_entropy, mlp_params(0, np.float64))
    x, y = batch(0)
    loss_fn(params, x, y)
    grad_fn(params, x, y)
    assert jax.config.jax_enable_x64 == before
    assert jnp.asarray(np.zeros(1)).dtype == (jnp.float64 if before else jnp.float32)


def test_grad_fn_is_jax_grad():
    p = mlp_params(1, np.float32)
    _, grad_fn, params = functions(cross_entropy, p)
    x, y = batch(1)
    expected = jax.jit(jax.grad(cross_entropy))(jax.tree_util.tree_map(jnp.asarray, p), jnp.asarray(x, jnp.float32), y)
    got = grad_fn(params, x, y)
    for name in p:
        np.testing.assert_array_equal(got[name], np.asarray(expected[name]))


def test_the_callers_arrays_are_not_touched():
    p = mlp_params(0, np.float64)
    kept = {k: v.copy() for k, v in p.items()}
    loss_fn, grad_fn, params = functions(cross_entropy, p)
    params["W1"][0, 0] += 1
    gradcheck.check_gradient(loss_fn, grad_fn, params, *batch(0))
    for k in p:
        np.testing.assert_array_equal(p[k], kept[k])


# ---------------------------------------------------------------- right losses hold

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_a_right_mlp_in_a_dict_pytree_is_judged_right(dtype):
    x, y = batch(0)
    v = gradcheck.check_gradient(*functions(cross_entropy, mlp_params(0, dtype)), x, y)
    assert judged_right(v, dtype), str(v)
    if dtype == np.float32 and v.holds:
        assert "loss in float64, gradient in float32" in str(v) and v.resolution < 1e-4, str(v)


def test_a_nested_pytree_of_lists_and_dicts():
    def loss(p, x, y):
        h = x
        for layer in p["layers"]:
            h = jnp.tanh(h @ layer["W"] + layer["b"])
        return jnp.sum((h[:, 0] - y) ** 2)
    rng = np.random.default_rng(0)
    p = {"layers": [{"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)},
                    {"W": rng.normal(size=(4, 2)), "b": rng.normal(size=2)}]}
    x, y = rng.normal(size=(5, 3)), rng.normal(size=5)
    assert gradcheck.check_gradient(*functions(loss, p), x, y).holds
    wrong = lambda p, x, y: loss({"layers": [p["layers"][0], {**p["layers"][1], "W": _bumped(  # noqa: E731
        jnp.zeros((4, 2)).at[2, 0].set(0.01))(p["layers"][1]["W"])}]}, x, y)
    v = gradcheck.check_gradient(*functions(wrong, p), x, y)
    assert v.fails and "params['layers'][1]['W'][2, 0]" in str(v), str(v)


def test_a_pytree_with_other_nodes_becomes_a_dict_keyed_by_path():
    Layer = collections.namedtuple("Layer", "W b")
    rng = np.random.default_rng(0)
    p = {"enc": Layer(rng.normal(size=(3, 2)), rng.normal(size=2)), "unused": None}

    def loss(p, x):
        return jnp.sum(jnp.sin(x @ p["enc"].W + p["enc"].b))
    loss_fn, grad_fn, params = functions(loss, p)
    assert set(params) == {"enc.W", "enc.b"}
    x = rng.normal(size=(4, 3))
    assert gradcheck.check_gradient(loss_fn, grad_fn, params, x).holds

    def wrong(p, x):
        bump = _bumped(jnp.zeros(2).at[1].set(0.01))
        return loss({**p, "enc": Layer(p["enc"].W, bump(p["enc"].b))}, x)
    v = gradcheck.check_gradient(*functions(wrong, p), x)
    assert v.fails and "params['enc.b'][1]" in str(v), str(v)


def test_jit_false_for_a_loss_that_cannot_be_traced():
    def loss(p, x):
        scale = float(np.abs(np.asarray(x)).max())  # needs the concrete batch
        return jnp.sum(jnp.tanh(x @ p["w"] / scale))
    p = {"w": np.array([0.3, -0.2])}
    x = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.1]])
    with pytest.raises(Exception):
        functions(loss, p)[0](p, x)
    assert gradcheck.check_gradient(*functions(loss, p, jit=False), x).holds


# ---------------------------------------------------------------- wrong rules are caught and named

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: d.__name__)
def test_a_custom_vjp_one_percent_off_in_one_entry_is_named(dtype):
    p = mlp_params(0, dtype)
    x, y = batch(0)
    loss = with_wrong_rule(cross_entropy, "W1", (1, 2), shape=(3, 4))
    v = gradcheck.check_gradient(*functions(loss, p), x, y)
    assert v.fails and "params['W1'][1, 2]" in str(v) and "1 of 26 entries" in str(v), str(v)


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_loss_one_percent_wrong_in_one_entry_never_holds(seed):
    p = mlp_params(seed, np.float32)
    x, y = batch(seed)
    grad_fn = functions(cross_entropy, p)[1]
    name, idx = _typical_entry(grad_fn(p, x, y))
    loss = with_wrong_rule(cross_entropy, name, idx, shape=p[name].shape)
    v = gradcheck.check_gradient(*functions(loss, p), x, y, seed=seed)
    assert not v.holds, str(v)
    assert v.fails and f"params['{name}'][{', '.join(map(str, idx))}]" in str(v), str(v)


def test_a_float32_projection_check_never_holds_a_one_percent_error():
    p = mlp_params(0, np.float32, n_in=20, hidden=64, n_out=3)  # 1,539 parameters
    x, y = batch(0, n=16, n_in=20, n_out=3)
    loss_fn, grad_fn, params = functions(cross_entropy, p)
    assert judged_right(gradcheck.check_gradient(loss_fn, grad_fn, params, x, y), np.float32)
    name, idx = _typical_entry(grad_fn(params, x, y))
    v = gradcheck.check_gradient(*functions(with_wrong_rule(cross_entropy, name, idx, shape=p[name].shape), p),
                                 x, y)
    assert not v.holds, str(v)
    assert v.fails and f"params['{name}'][{', '.join(map(str, idx))}]" in str(v), str(v)


# ---------------------------------------------------------------- reductions

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_the_reduction_is_found(reduction):
    reduce = jnp.mean if reduction == "mean" else jnp.sum

    def loss(p, x, t):
        return reduce((logits(p, x) - t) ** 2)  # mean over (B, 2): 1/2 belongs to each example
    p = mlp_params(0, np.float64)
    x, _ = batch(0)
    t = np.random.default_rng(3).normal(size=(6, 2))
    _, grad_fn, params = functions(loss, p)
    assert gradcheck.infer_reduction(grad_fn, params, x, t) == reduction
    assert gradcheck.check_reduction(grad_fn, params, x, t, reduction=reduction).holds


# ---------------------------------------------------------------- misuse

def test_misuse_names_the_argument():
    p = {"w": np.ones(2)}
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"^\[gradcheck\] loss=3 is not callable"):
        functions(3, p)
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"jit='yes' must be True or False"):
        functions(cross_entropy, p, jit="yes")
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"params leaf step has dtype int"):
        functions(cross_entropy, {"w": np.ones(2), "step": np.array(3)})
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"dtype bfloat16.*cast it to float32"):
        functions(cross_entropy, {"w": jnp.ones(2, jnp.bfloat16)})
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"params=\{\} has no arrays"):
        functions(cross_entropy, {})


def test_a_per_example_loss_is_refused():
    loss_fn, grad_fn, params = functions(lambda p, x: jnp.sin(x @ p["w"]), {"w": np.ones(2)})
    x = np.ones((3, 2))
    for fn in (loss_fn, grad_fn):
        with pytest.raises(gradcheck.GradcheckUsageError, match=r"loss returned an array of shape \(3,\)"):
            fn(params, x)


def test_params_of_another_structure_are_refused():
    loss_fn, _, params = functions(cross_entropy, mlp_params(0, np.float64))
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"params has structure"):
        loss_fn({"W1": params["W1"]}, *batch(0))


def test_doctests():
    result = doctest.testmod(gj, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
