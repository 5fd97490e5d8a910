"""Tests for gradcheck._tree: parameter trees, their flat vector, their names.

The numerical code works on one flat float64 vector and reports back in paths
such as ``params[0]['W'][2, 1]``; these tests hold the two views to each other.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import gradcheck
from gradcheck._tree import as_batch, leaves, same_structure, tree_def
from gradcheck.errors import GradcheckUsageError

FLOATS = (np.float16, np.float32, np.float64)


def _leaves():
    # Finite values that every float dtype holds exactly (so a round trip
    # through float64 must give them back bit for bit).
    return st.sampled_from(FLOATS).flatmap(
        lambda dt: arrays(dt, array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3),
                          elements=st.integers(-2048, 2048).map(float)))


def _trees():
    keys = st.sampled_from(["W", "b", "gamma", 0, 1])
    return st.recursive(
        _leaves(),
        lambda kids: st.one_of(st.lists(kids, min_size=1, max_size=3),
                               st.lists(kids, min_size=1, max_size=3).map(tuple),
                               st.dictionaries(keys, kids, min_size=1, max_size=3)),
        max_leaves=6)


def _same_containers(a, b):
    """Same container types, keys, key order, shapes and dtypes, all the way down."""
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same_containers(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same_containers(x, y)
    else:
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)


# ---------------------------------------------------------------- tree_def

def test_tree_def_of_a_bare_array():
    td = tree_def(np.zeros((2, 3)))
    assert len(td.leaves) == 1
    leaf = td.leaves[0]
    assert (leaf.path, leaf.shape, leaf.dtype, leaf.start, leaf.size) == ("", (2, 3), np.float64, 0, 6)
    assert td.size == 6


def test_tree_def_of_nested_containers_records_paths_shapes_dtypes_offsets():
    params = [{"W": np.zeros((3, 2)), "b": np.zeros(2, np.float32)}, (np.zeros((), np.float16), 2.0)]
    td = tree_def(params)
    got = [(leaf.path, leaf.shape, leaf.dtype, leaf.start) for leaf in td.leaves]
    assert got == [("[0]['W']", (3, 2), np.float64, 0), ("[0]['b']", (2,), np.float32, 6),
                   ("[1][0]", (), np.float16, 8), ("[1][1]", (), np.float64, 9)]
    assert td.size == 10
    assert td.dtype == np.float16  # the narrowest leaf limits precision


@pytest.mark.parametrize("params, where", [
    (np.arange(3), "params"),
    ([np.zeros(2), np.arange(2)], "params[1]"),
    ({"W": np.zeros(2), "k": np.array(["a"])}, "params['k']"),
    ({"z": np.array([1 + 2j])}, "params['z']"),
])
def test_tree_def_refuses_non_float_leaves_naming_the_leaf(params, where):
    with pytest.raises(GradcheckUsageError, match="params=") as info:
        tree_def(params)
    assert f"at {where}:" in str(info.value), str(info.value)


@pytest.mark.parametrize("params", [[], {}, ([], {})])
def test_tree_def_refuses_trees_without_arrays(params):
    with pytest.raises(GradcheckUsageError, match=r"params=.* has no arrays: nothing to differentiate"):
        tree_def(params)


def test_tree_def_uses_the_argument_name_it_is_given():
    with pytest.raises(GradcheckUsageError, match=r"theta=int64 array at theta\[0\]"):
        tree_def([np.arange(2)], argname="theta")


# ---------------------------------------------------------------- flatten / unflatten

@given(_trees())
def test_flatten_unflatten_round_trip_keeps_values_dtypes_and_containers(tree):
    td = tree_def(tree)
    flat = td.flatten(tree)
    assert flat.dtype == np.float64 and flat.shape == (td.size,)
    back = td.unflatten(flat)
    _same_containers(tree, back)
    np.testing.assert_array_equal(td.flatten(back), flat)


@given(_trees())
def test_unflatten_with_a_dtype_casts_every_leaf_and_copies(tree):
    td = tree_def(tree)
    flat = td.flatten(tree)
    back = td.unflatten(flat, dtype=np.float64)
    assert all(leaf.dtype == np.float64 for leaf in tree_def(back).leaves)
    # Fresh arrays: writing into the rebuilt tree never reaches the flat vector.
    before = flat.copy()
    for arr in leaves(back):
        arr[...] = 12345.0
    np.testing.assert_array_equal(flat, before)


def test_unflatten_rebuilds_python_float_leaves_as_float64_arrays():
    td = tree_def((1.5, [2.5]))
    back = td.unflatten(np.array([3.0, 4.0]))
    assert isinstance(back, tuple) and isinstance(back[1], list)
    assert back[0].dtype == np.float64 and float(back[0]) == 3.0 and float(back[1][0]) == 4.0


# ---------------------------------------------------------------- names

def test_name_formats_paths_like_python_indexing():
    params = [{"W": np.zeros((3, 2)), "b": np.zeros(2)}, {"W": np.zeros((2, 1)), "b": np.zeros(1)}]
    td = tree_def(params)
    assert td.name(0) == "params[0]['W'][0, 0]"
    assert td.name(5) == "params[0]['W'][2, 1]"
    assert td.name(7) == "params[0]['b'][1]"
    assert td.name(9) == "params[1]['W'][1, 0]"
    assert td.name(10) == "params[1]['b'][0]"
    assert td.name(10, root="grad") == "grad[1]['b'][0]"
    assert tree_def(np.zeros((2, 3))).name(4) == "params[1, 1]"
    assert tree_def(np.zeros(())).name(0) == "params"
    assert tree_def({"c": {"d": np.zeros((2, 2, 2))}}).name(7) == "params['c']['d'][1, 1, 1]"
    with pytest.raises(IndexError):
        td.name(td.size)


@given(_trees())
def test_every_name_indexes_its_own_entry(tree):
    """A name is a Python expression: evaluated on the tree it gives the flat entry."""
    td = tree_def(tree)
    flat = td.flatten(tree)
    names = [td.name(j) for j in range(td.size)]
    assert len(set(names)) == td.size
    for j, name in enumerate(names):
        assert float(eval(name, {"params": tree})) == flat[j], name
        leaf = td.leaf_of(j)
        assert name.startswith("params" + leaf.path)
        assert leaf.start <= j < leaf.start + leaf.size


# ---------------------------------------------------------------- same_structure

def _td():
    return tree_def([{"W": np.zeros((3, 2)), "b": np.zeros(2)}, (np.zeros(()), np.zeros(1))])


def _grad():
    return [{"W": np.ones((3, 2)), "b": np.ones(2)}, (np.ones(()), np.ones(1))]


def test_same_structure_accepts_the_same_tree_lists_for_tuples_and_integer_entries():
    same_structure(_td(), _grad(), argname="grad_fn")
    g = _grad()
    g[1] = list(g[1])  # a list where params has a tuple: same paths, accepted
    same_structure(_td(), g, argname="grad_fn")
    g[0]["b"] = np.array([1, 2])  # an integer gradient is still numbers
    same_structure(_td(), g, argname="grad_fn")


@pytest.mark.parametrize("mutate, words", [
    (lambda g: g[0].pop("b"), ["missing params[0]['b']"]),
    (lambda g: g[0].update(extra=np.ones(1)), ["unexpected params[0]['extra']"]),
    (lambda g: g.append(np.ones(1)), ["unexpected params[2]"]),
    (lambda g: g.__setitem__(0, np.ones(8)), ["missing params[0]['W']", "unexpected params[0]"]),
])
def test_same_structure_names_grad_fn_and_the_paths(mutate, words):
    g = _grad()
    mutate(g)
    with pytest.raises(GradcheckUsageError) as info:
        same_structure(_td(), g, argname="grad_fn")
    text = str(info.value)
    assert text.startswith("[gradcheck] grad_fn returned a gradient whose structure differs"), text
    for w in words:
        assert w in text, text


def test_same_structure_bare_array_for_a_tree_says_so():
    with pytest.raises(GradcheckUsageError, match=r"grad_fn.*unexpected \(bare array\)"):
        same_structure(_td(), np.ones(11), argname="grad_fn")


def test_same_structure_names_the_leaf_of_a_wrong_shape():
    g = _grad()
    g[0]["W"] = np.ones((2, 3))
    with pytest.raises(GradcheckUsageError,
                       match=r"grad_fn returned shape \(2, 3\) for params\[0\]\['W'\], which has shape \(3, 2\)"):
        same_structure(_td(), g, argname="grad_fn")


def test_same_structure_names_the_leaf_of_a_non_numeric_dtype():
    g = _grad()
    g[1] = (np.ones(()), np.array(["x"]))
    with pytest.raises(GradcheckUsageError, match=r"grad_fn returned dtype <U1 for params\[1\]\[1\]"):
        same_structure(_td(), g, argname="grad_fn")


def test_same_structure_accepts_a_dict_with_the_same_keys_in_another_order():
    """Dicts with equal keys are the same structure, whatever their order:
    jax.grad returns dicts with sorted keys, and gradcheck.strategies.parameters
    draws layer dicts with "b" before "W" about half the time, so a grad_fn
    that writes {"W": ..., "b": ...} must be accepted and read by key."""
    td = tree_def({"b": np.zeros(2), "W": np.zeros((1, 1))})
    g = {"W": np.array([[3.0]]), "b": np.array([1.0, 2.0])}
    same_structure(td, g, argname="grad_fn")
    same_order = {"b": g["b"], "W": g["W"]}
    np.testing.assert_array_equal(td.flatten(g), td.flatten(same_order))
    back = td.unflatten(td.flatten(g))
    assert list(back) == ["b", "W"] and back["W"][0, 0] == 3.0


# ---------------------------------------------------------------- as_batch

def test_as_batch_returns_the_arrays_without_copying():
    x, y = np.zeros((3, 2)), np.zeros(3)
    out = as_batch((x, y))
    assert out[0] is x and out[1] is y
    assert as_batch(([1.0, 2.0],))[0].shape == (2,)


@pytest.mark.parametrize("batch, pattern", [
    ((), r"batch is empty"),
    ((np.float64(1.0),), r"batch\[0\]=.*1\.0\)? is a scalar"),
    ((np.zeros(3), 2.0), r"batch\[1\]=2\.0 is a scalar"),
    ((np.zeros((3, 2)), np.zeros(4)), r"batch arrays do not share axis 0 \(batch\[0\]: 3, batch\[1\]: 4\)"),
    ((np.zeros((0, 2)),), r"batch has 0 examples"),
])
def test_as_batch_errors_name_the_batch(batch, pattern):
    with pytest.raises(GradcheckUsageError, match=pattern):
        as_batch(batch)


def test_check_gradient_reads_a_reordered_dict_gradient_by_key():
    params = {"b": np.array([0.5, -1.0]), "W": np.array([[2.0]])}

    def loss(p):
        return float(np.sum(p["b"] ** 2) + np.sum(p["W"] ** 3))

    def grad(p):
        return {"W": 3 * p["W"] ** 2, "b": 2 * p["b"]}

    v = gradcheck.check_gradient(loss, grad, params)
    assert v.holds, str(v)


def test_a_namedtuple_is_rebuilt_as_itself():
    from collections import namedtuple
    Layer = namedtuple("Layer", "W b")
    params = [Layer(np.zeros((2, 1)), np.ones(1))]
    td = tree_def(params)
    back = td.unflatten(td.flatten(params))
    assert type(back[0]) is Layer and back[0].b[0] == 1.0
    assert td.name(2) == "params[0][1][0]"
