"""What the claims share: generated cases, and comparisons of gradients
by autograd (against the rounding model) and by finite differences."""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
from hypothesis import strategies as st

from .. import strategies as gst
from .._compare import compare_leaves
from .._tree import tree_def
from ..gradient import FULL_LIMIT, check_gradient
from ..nets import Network, loss_gradient, per_example_gradients
from ..verdict import FAILS, HOLDS, NOT_DIFFERENTIABLE, PRECISION_LIMITED, UNDETERMINED, Verdict


def _show(a: Any) -> str:
    if isinstance(a, np.ndarray):
        return np.array2string(a, precision=4, separator=", ", threshold=24).replace("\n", "")
    if isinstance(a, list):
        return "[" + ", ".join(_show(v) for v in a) + "]"
    if isinstance(a, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in a.items()) + "}"
    return repr(a)


@dataclass
class Case:
    """One generated input of a claim: a network, its parameters, a batch, and
    whatever else the claim draws (a permutation, a partition, weights...)."""

    net: Network | None = None
    params: Any = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # seeds the finite-difference probe directions

    def __repr__(self) -> str:
        parts = []
        if self.net is not None:
            n = self.net
            parts.append(f"net={n.sizes} {n.activation} {n.loss}" + (f" l2={n.l2:g}" if n.l2 else "")
                         + (" batchnorm" if n.batchnorm else ""))
        if self.params is not None:
            parts.append(f"params={_show(self.params)}")
        if self.x is not None:
            parts.append(f"x={_show(self.x)}")
        if self.y is not None:
            parts.append(f"y={_show(self.y)}")
        parts += [f"{k}={_show(v)}" for k, v in self.extra.items()]
        return "Case(" + "; ".join(parts) + ")"


def problems(*, min_size: int = 1, max_size: int = 8, **net_options: Any) -> st.SearchStrategy[Case]:
    """A network, parameters and a batch, all shrinking towards the tiny."""
    @st.composite
    def build(draw: Callable) -> Case:
        net = draw(gst.networks(**net_options))
        params = draw(gst.parameters(net))
        x, y = draw(gst.batches(net, min_size=min_size, max_size=max_size))
        return Case(net, params, x, y, seed=draw(st.integers(0, 2**16)))
    return build()


def small_problems(**options: Any) -> st.SearchStrategy[Case]:
    """Problems for a witness search: small enough that every array is drawn
    entry by entry, so the shrunk witness reads as a handful of simple numbers."""
    sizes = dict(max_depth=2, max_width=3, max_inputs=2, max_outputs=2, max_size=4)
    sizes.update(options)
    return problems(**sizes)


def flat(tree: Any) -> np.ndarray:
    return tree_def(tree).flatten(tree)


# The reference gradients of the claims are computed in extended precision
# (long double: 64-bit mantissa where the platform has it), then rounded to
# float64 and held to the float64 allowance of sum_rounding. In float64 the
# same identity can differ by more than that allowance for an innocent
# reason: BLAS picks other kernels for a batch of 1 than of 2, and a deep
# network's backward pass cancels intermediate values much larger than the
# gradient it returns. Extended precision keeps such rounding far below the
# allowance, so a difference above it is the identity failing.
WIDE = np.longdouble


def _wide(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {k: _wide(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_wide(v) for v in tree)
    arr = np.asarray(tree)
    return arr.astype(WIDE) if np.issubdtype(arr.dtype, np.floating) else arr


def per_example(case: Case) -> list[np.ndarray]:
    return [flat(g) for g in per_example_gradients(case.net, _wide(case.params), _wide(case.x), _wide(case.y))]


def grad(case: Case, x: np.ndarray | None = None, y: np.ndarray | None = None, **kw: Any) -> np.ndarray:
    """Autograd's gradient of the network's batch loss (default: the case's batch)."""
    x = case.x if x is None else x
    y = case.y if y is None else y
    if kw.get("weights") is not None:
        kw["weights"] = _wide(kw["weights"])
    return flat(loss_gradient(case.net, _wide(case.params), _wide(x), _wide(y), **kw))


def by_rounding(claim: str, law: str, params: Any, got: np.ndarray, want: np.ndarray,
                terms: np.ndarray, count: int, message: str = "") -> Verdict:
    """got = want up to the rounding of the ``count`` terms that made them."""
    return compare_leaves(tree_def(params), claim, law, got, want, terms, count,
                          np.dtype(np.float64), message)


# A witness search tries hundreds of cases while Hypothesis shrinks; only the
# one it ends with is reported, and that one is checked again with finite
# differences vouching (registry._witness). While searching they stand aside.
_VOUCHING: ContextVar[bool] = ContextVar("gradcheck_vouching", default=True)


@contextmanager
def searching() -> Iterator[None]:
    """Within: by_differences vouches for nothing and is not run (a witness search)."""
    token = _VOUCHING.set(False)
    try:
        yield
    finally:
        _VOUCHING.reset(token)


def by_differences(claim: str, loss: Callable[[Any], Any], params: Any, gradient: np.ndarray,
                   seed: int) -> Verdict:
    """The finite-difference oracle agrees that ``gradient`` is the gradient of ``loss``."""
    if not _VOUCHING.get():
        return Verdict(claim, "finite differences", HOLDS, 0.0, 0.0, "not run during a witness search")
    td = tree_def(params)
    v = check_gradient(lambda p: loss(p), lambda p: td.unflatten(gradient), params,
                       mode="projection", probes=2, seed=seed)
    if v.reason == PRECISION_LIMITED and td.size <= FULL_LIMIT:
        # Two probes cannot resolve a gradient that is (nearly) zero, as at a
        # converged model; every entry on its own can, and a small net is cheap.
        v = check_gradient(lambda p: loss(p), lambda p: td.unflatten(gradient), params, mode="full")
    if v.fails and _KINKS_SET_ASIDE in v.message:
        # The point is not differentiable (a ReLU exactly at 0 somewhere): there
        # autograd returns a convention (ties split 0.5 / 0.5), not a gradient, and
        # a partial derivative that exists beside the kink can differ from it.
        # Such a draw is no evidence about the claim; property tests assume it away.
        return v.with_(claim=claim, outcome=UNDETERMINED, reason=NOT_DIFFERENTIABLE)
    return v.with_(claim=claim)


# How check_gradient's message says it judged around kinks it set aside.
_KINKS_SET_ASIDE = "which are not judged"


def both(law: Verdict, references: list[Verdict], message: str) -> Verdict:
    """A law checked on autograd's gradients, which finite differences vouch
    for. A reference that fails or cannot decide speaks first (keeping its
    own law, so it reads as a broken reference, not a broken claim)."""
    for ref in references:
        if not ref.holds:
            return ref.with_(claim=law.claim)
    evaluations = law.evaluations + sum(r.evaluations for r in references)
    if law.holds:
        return law.with_(message=message, evaluations=evaluations)
    return law.with_(evaluations=evaluations)


def verdict(claim: str, law: str, error: float, tolerance: float, message: str) -> Verdict:
    outcome = HOLDS if error <= tolerance else FAILS
    return Verdict(claim, law, outcome, float(error), float(tolerance), message, dtype="float64")
