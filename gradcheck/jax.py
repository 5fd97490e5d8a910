"""JAX adapter: a loss of a parameter pytree as the checkers' ``loss_fn``, ``grad_fn`` and ``params``.

>>> import jax.numpy as jnp, numpy as np, gradcheck
>>> from gradcheck.jax import functions
>>> def loss(p, x, y):
...     return jnp.mean((jnp.tanh(x @ p["W"]) @ p["v"] - y) ** 2)
>>> rng = np.random.default_rng(0)
>>> p = {"W": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "v": jnp.ones(4, jnp.float32)}
>>> loss_fn, grad_fn, params = functions(loss, p)
>>> params["W"].dtype
dtype('float32')
>>> x, y = rng.normal(size=(5, 3)), rng.normal(size=5)
>>> gradcheck.check_gradient(loss_fn, grad_fn, params, x, y).holds
True
>>> gradcheck.infer_reduction(grad_fn, params, x, y)
'mean'

What the three are:

- ``params``: the pytree with numpy leaves, in their own dtypes. A tree of
  dicts, lists and tuples keeps its shape, so a failure names an entry as
  JAX's path does: ``params['layers'][0]['W'][2, 1]``. Any other pytree
  (a namedtuple, a dataclass registered as a node, a tree holding None)
  becomes a flat dict keyed by the leaf's path, dots between the keys
  (``params['layers.0.W'][2, 1]``); ``loss_fn`` and ``grad_fn`` rebuild the
  original pytree from it before calling ``loss``.
- ``grad_fn(params, *batch)``: ``jax.grad(loss)`` in the params' own dtype
  (float32 params give a float32 gradient: that is what is checked). If a
  leaf is float64, it runs with 64-bit types enabled, so float64 stays float64.
- ``loss_fn(params, *batch)``: ``loss`` evaluated with 64-bit types enabled
  and float64 params and floating batch arrays, so finite differences of a
  float32 model have float64 resolution.

64-bit types are enabled only for the duration of a call (the
``jax.enable_x64`` context), never for the rest of the program. Floating batch
arrays are cast to the dtype the loss runs in (float64 for ``loss_fn``, the
params' for ``grad_fn``); integer and bool ones are passed as they are.
With ``jit=True`` (the default) both functions are compiled once per dtype
and shape; pass ``jit=False`` for a loss that cannot be traced by ``jax.jit``.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from .errors import GradcheckUsageError

__all__ = ["functions"]


def functions(loss: Callable[..., Any], params: Any, *, jit: bool = True
              ) -> tuple[Callable[..., Any], Callable[..., Any], Any]:
    """``(loss_fn, grad_fn, params)`` for a JAX function ``loss(params, *batch)``
    of a parameter pytree, returning a scalar: the contract every checker
    takes (see the module's documentation).

    >>> import jax.numpy as jnp
    >>> loss_fn, grad_fn, params = functions(lambda p, x: jnp.sum(jnp.sin(p[0] * x)), [jnp.ones(2)])
    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> loss_fn(params, x).dtype, grad_fn(params, x)[0].dtype
    (dtype('float64'), dtype('float32'))
    """
    if not callable(loss):
        raise GradcheckUsageError(f"loss={_short(loss)} is not callable; pass a JAX function "
                                  f"loss(params, *batch) returning a scalar")
    if not isinstance(jit, bool):
        raise GradcheckUsageError(f"jit={jit!r} must be True or False")
    tree = _Tree(params, jit)
    value, gradient = _compiled(loss, jit)
    wide = any(dt == np.float64 for dt in tree.dtypes)

    def loss_fn(params: Any, *batch: Any) -> np.floating:
        with _x64(True):
            out = value(tree.to_jax(params, np.float64), *_batch(batch, np.float64, jit))
        return np.asarray(out).reshape(())[()]

    def grad_fn(params: Any, *batch: Any) -> Any:
        with _x64(wide):
            g = gradient(tree.to_jax(params), *_batch(batch, tree.widest, jit))
            return tree.to_numpy(g)

    return loss_fn, grad_fn, tree.to_numpy(params)


def _x64(on: bool) -> contextlib.AbstractContextManager:
    """64-bit types within a ``with`` block only."""
    if not on:
        return contextlib.nullcontext()
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # JAX before the context moved to the top level
    return enable_x64(True)


def _compiled(loss: Callable[..., Any], jit: bool) -> tuple[Callable[..., Any], Callable[..., Any]]:
    if not jit:
        scalar = _scalar_loss(loss)
        return scalar, jax.grad(scalar)
    try:
        hash(loss)
    except TypeError:  # a callable object that cannot be a cache key
        return _jitted.__wrapped__(loss)
    return _jitted(loss)


# Calling functions() again on the same loss (another model size, another
# test) reuses jax.jit's compilations instead of starting over. Bounded: the
# cache holds the losses and their compiled code alive.
@functools.lru_cache(maxsize=16)
def _jitted(loss: Callable[..., Any]) -> tuple[Callable[..., Any], Callable[..., Any]]:
    scalar = _scalar_loss(loss)
    return jax.jit(scalar), jax.jit(jax.grad(scalar))


def _scalar_loss(loss: Callable[..., Any]) -> Callable[..., Any]:
    def scalar(params: Any, *batch: Any) -> Any:
        out = loss(params, *batch)
        # Shapes and dtypes are known while tracing: checking them costs nothing per call.
        fix = "loss must return one real number (reduce a per-example vector with jnp.mean or jnp.sum)"
        if not hasattr(out, "shape") and not isinstance(out, (float, int)):
            raise GradcheckUsageError(f"loss returned a {type(out).__name__}; {fix}")
        if jnp.shape(out) != ():
            raise GradcheckUsageError(f"loss returned an array of shape {jnp.shape(out)}; {fix}")
        if not jnp.issubdtype(jnp.result_type(out), jnp.floating):
            raise GradcheckUsageError(f"loss returned dtype {jnp.result_type(out)}; {fix}")
        return out
    return scalar


def _batch(batch: tuple[Any, ...], dtype: Any, jit: bool) -> list[Any]:
    arrays = [np.asarray(b) for b in batch]
    arrays = [a.astype(dtype) if np.issubdtype(a.dtype, np.floating) else a for a in arrays]
    return _jax_arrays(arrays, jit)


def _jax_arrays(arrays: list[np.ndarray], jit: bool) -> list[Any]:
    # A compiled function takes numpy arrays as they are, in one transfer;
    # an uncompiled loss may use jax.Array methods (x.at[...]) on them.
    return arrays if jit else [jnp.asarray(a) for a in arrays]


class _Tree:
    """The user's pytree, and the gradcheck tree (dicts, lists, tuples of
    numpy arrays) that stands for it."""

    def __init__(self, params: Any, jit: bool) -> None:
        self.jit = jit
        pairs, self.treedef = jax.tree_util.tree_flatten_with_path(params)
        if not pairs:
            raise GradcheckUsageError(f"params={_short(params)} has no arrays; pass the pytree of "
                                      f"float arrays loss differentiates")
        self.plain = _plain(params)
        self.keys = _keys([path for path, _ in pairs])
        self.dtypes = [_leaf_dtype(leaf, key) for key, (_, leaf) in zip(self.keys, pairs)]
        self.widest = max(self.dtypes, key=lambda d: d.itemsize)

    def to_numpy(self, tree: Any) -> Any:
        """A pytree of ``params``' structure (the user's or a gradient) as a gradcheck tree."""
        arrays = [np.array(leaf) for leaf in self._leaves(tree, "params")]
        if self.plain:
            return jax.tree_util.tree_unflatten(self.treedef, arrays)
        return dict(zip(self.keys, arrays))

    def to_jax(self, tree: Any, dtype: Any = None) -> Any:
        """A gradcheck tree back as the user's pytree, leaves in ``dtype`` (default: their own)."""
        if self.plain:
            leaves = self._leaves(tree, "params")
        else:
            if not isinstance(tree, dict) or set(tree) != set(self.keys):
                raise GradcheckUsageError(f"params has keys {_short(list(tree) if isinstance(tree, dict) else tree)}; "
                                          f"pass the params functions() returned (keys {_short(self.keys)})")
            leaves = [tree[k] for k in self.keys]
        arrays = [np.asarray(leaf, dtype=dtype or own) for leaf, own in zip(leaves, self.dtypes)]
        return jax.tree_util.tree_unflatten(self.treedef, _jax_arrays(arrays, self.jit))

    def _leaves(self, tree: Any, argname: str) -> list[Any]:
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if treedef != self.treedef:
            raise GradcheckUsageError(f"{argname} has structure {treedef}; expected {self.treedef}, the "
                                      f"structure of the params functions() returned")
        return leaves


def _plain(node: Any) -> bool:
    """Only dicts, lists and plain tuples down to array leaves: a tree gradcheck
    reads with the same paths as JAX."""
    if isinstance(node, dict):
        return all(_plain(v) for v in node.values())
    if isinstance(node, (list, tuple)) and not hasattr(node, "_fields"):
        return all(_plain(v) for v in node)
    return node is not None and jax.tree_util.treedef_is_leaf(jax.tree_util.tree_structure(node))


def _keys(paths: list[Any]) -> list[str]:
    """Names of the leaves for a flat dict: 'layers.0.W', or JAX's full
    path string where the short names would collide."""
    short = [".".join(_entry_name(e) for e in p) for p in paths]
    if len(set(short)) == len(short):
        return short
    return [jax.tree_util.keystr(p) for p in paths]


def _entry_name(entry: Any) -> str:
    # DictKey.key, SequenceKey.idx, GetAttrKey.name, FlattenedIndexKey.key
    for attr in ("key", "idx", "name"):
        if hasattr(entry, attr):
            return str(getattr(entry, attr))
    return str(entry)


def _leaf_dtype(leaf: Any, key: str) -> np.dtype:
    dt = np.asarray(leaf).dtype
    if dt not in (np.float16, np.float32, np.float64):
        fix = ("cast it to float32" if dt.kind == "V" or "bfloat16" in dt.name else
               "keep it out of params (close over it in loss) or cast it to a float dtype")
        raise GradcheckUsageError(f"params leaf {key} has dtype {dt}: finite differences need float16, "
                                  f"float32 or float64 leaves; {fix}")
    return np.dtype(dt)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
