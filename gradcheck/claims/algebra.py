"""Family A: the reduction algebra. Every claim here is universal: the
gradient is a linear operator, so the batch loss's gradient is the same
linear combination of per-example gradients as the loss is of per-example
losses, whatever the network."""

from __future__ import annotations

from typing import Any, Callable

import autograd
import numpy as np
from hypothesis import strategies as st

from .. import strategies as gst
from ..reduction import duplicate, take
from ._common import Case, both, by_differences, by_rounding, flat, grad, per_example, problems
from .registry import UNIVERSAL, Claim, Property, register


def _net_loss(case: Case, x: np.ndarray, y: np.ndarray, **kw: Any) -> Callable[[Any], Any]:
    return lambda p: case.net.total_loss(p, x, y, **kw)


# A1 -------------------------------------------------------------------------------

def _linearity(case: Case) -> ...:
    g = per_example(case)
    want, terms = np.sum(g, axis=0), np.sum(np.abs(g), axis=0)
    law = by_rounding("A1", "linearity", case.params, grad(case, reduction="sum"), want, terms, len(g))
    fd = by_differences("A1", _net_loss(case, case.x, case.y, reduction="sum"), case.params, want, case.seed)
    return both(law, [fd], f"∇L_sum = Σ_i g_i over B={len(g)} examples")


register(Claim(
    "A1", "Linearity", UNIVERSAL,
    "The gradient of the summed loss is the sum of the per-example gradients: ∇L_sum = Σ_i g_i.",
    "Any network and loss, nonlinear or not, as long as each example's loss depends on that "
    "example alone (no batch statistics, see F2).",
    "Differentiation is linear: the per-example losses are different functions of the same θ, "
    "and the derivative of a sum of functions at one point is the sum of their derivatives there.",
    holds_for=(Property("autograd and finite differences over generated networks",
                        lambda: problems(min_size=1), _linearity),),
))


# A2 -------------------------------------------------------------------------------

def _sum_is_b_mean(case: Case) -> ...:
    B = len(case.x)
    g = per_example(case)
    mean = grad(case, reduction="mean")
    law = by_rounding("A2", "sum = B × mean", case.params, grad(case, reduction="sum"), B * mean,
                      np.sum(np.abs(g), axis=0), B)
    fd = by_differences("A2", _net_loss(case, case.x, case.y, reduction="sum"), case.params, B * mean,
                        case.seed)
    return both(law, [fd], f"∇L_sum = {B} × ∇L_mean")


register(Claim(
    "A2", "Sum = B × mean", UNIVERSAL,
    "∇L_sum = B ∇L_mean: the sum's gradient is the mean's times the batch size.",
    "Always; the two losses differ by the constant factor B.",
    "L_sum = B · L_mean and differentiation commutes with multiplication by a constant.",
    holds_for=(Property("autograd and finite differences over generated networks",
                        lambda: problems(min_size=1), _sum_is_b_mean),),
))


# A3 -------------------------------------------------------------------------------

def _dup_problems() -> st.SearchStrategy:
    return st.tuples(problems(min_size=1, max_size=6), st.integers(2, 4)).map(
        lambda t: _with(t[0], k=t[1]))


def _with(case: Case, **extra: Any) -> Case:
    case.extra.update(extra)
    return case


def _rebatched(cid: str, law: str, case: Case, x2: np.ndarray, y2: np.ndarray, k: int) -> tuple:
    """On the batch (x2, y2), k times the case's batch rearranged, ∇L_mean is
    the case's ∇L_mean and ∇L_sum is k times the case's; by autograd (the law)
    and by finite differences (the reference)."""
    B = len(case.x)
    terms = np.sum(np.abs(per_example(case)), axis=0)
    mean, total = grad(case, reduction="mean"), grad(case, reduction="sum")
    on_mean = by_rounding(cid, law, case.params, grad(case, x2, y2, reduction="mean"), mean, terms / B, k * B)
    on_sum = by_rounding(cid, law, case.params, grad(case, x2, y2, reduction="sum"), k * total, k * terms, k * B)
    fd = by_differences(cid, _net_loss(case, x2, y2, reduction="mean"), case.params, mean, case.seed)
    return (on_mean if not on_mean.holds else on_sum), fd


def _duplication(case: Case) -> ...:
    k = case.extra["k"]
    law, fd = _rebatched("A3", "duplication", case, *duplicate((case.x, case.y), k), k)
    return both(law, [fd], f"repeating the batch {k} times leaves ∇L_mean unchanged and "
                           f"multiplies ∇L_sum by {k}")


register(Claim(
    "A3", "Duplication", UNIVERSAL,
    "Repeating the batch k times leaves ∇L_mean unchanged and multiplies ∇L_sum by k.",
    "Always: the size of the mean gradient does not depend on how many copies of the data "
    "the batch holds; the sum's grows with them.",
    "The repeated batch's L_sum is k L_sum and its L_mean is k L_sum / (kB) = L_mean.",
    holds_for=(Property("autograd and finite differences over generated networks",
                        _dup_problems, _duplication),),
))


# A4 -------------------------------------------------------------------------------

def _perm_problems() -> st.SearchStrategy:
    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(problems(min_size=2))
        return _with(case, order=np.array(draw(st.permutations(range(len(case.x))))))
    return build()


def _permutation(case: Case) -> ...:
    law, fd = _rebatched("A4", "permutation", case, *take((case.x, case.y), case.extra["order"]), 1)
    return both(law, [fd], "reordering the batch changes neither ∇L_mean nor ∇L_sum")


register(Claim(
    "A4", "Permutation", UNIVERSAL,
    "Reordering the examples of a batch changes neither ∇L_sum nor ∇L_mean.",
    "Always, for losses that treat examples alike (no position weights).",
    "Addition is commutative: the batch loss is the same function of θ in any order.",
    holds_for=(Property("autograd and finite differences over generated networks",
                        _perm_problems, _permutation),),
))


# A5 -------------------------------------------------------------------------------

def _split_problems() -> st.SearchStrategy:
    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(problems(min_size=2))
        B = len(case.x)
        cuts = draw(st.sets(st.integers(1, B - 1), min_size=1, max_size=B - 1))
        return _with(case, cuts=sorted(cuts))
    return build()


def _split_merge(case: Case) -> ...:
    B = len(case.x)
    edges = [0, *case.extra["cuts"], B]
    parts = [np.arange(a, b) for a, b in zip(edges, edges[1:])]
    subs = [take((case.x, case.y), p) for p in parts]
    sums = [grad(case, xs, ys, reduction="sum") for xs, ys in subs]
    means = [grad(case, xs, ys, reduction="mean") for xs, ys in subs]
    terms = np.sum(np.abs(per_example(case)), axis=0)
    on_sum = by_rounding("A5", "split/merge", case.params, grad(case, reduction="sum"),
                         np.sum(sums, axis=0), terms, B)
    merged = np.sum([len(p) / B * m for p, m in zip(parts, means)], axis=0)
    on_mean = by_rounding("A5", "split/merge", case.params, grad(case, reduction="mean"),
                          merged, terms / B, B)
    law = on_sum if not on_sum.holds else on_mean
    fd = by_differences("A5", _net_loss(case, case.x, case.y, reduction="mean"), case.params,
                        merged, case.seed)
    sizes = ", ".join(str(len(p)) for p in parts)
    return both(law, [fd], f"sub-batches of sizes {sizes} merge into the batch gradient "
                           f"(sums add; means weighted by B_k / B)")


register(Claim(
    "A5", "Split / merge", UNIVERSAL,
    "For a partition into sub-batches of sizes B_k: ∇L_sum = Σ_k ∇L_sum^(k) and "
    "∇L_mean = Σ_k (B_k / B) ∇L_mean^(k).",
    "Any partition, equal sizes or not. Averaging the sub-batch means with equal weights is "
    "right only when the sizes are equal (see E1).",
    "L_sum splits into the sums over the parts; L_mean^(k) = L_sum^(k) / B_k, so each part's "
    "mean enters with weight B_k / B.",
    holds_for=(Property("autograd and finite differences over generated partitions",
                        _split_problems, _split_merge),),
))


# A6 -------------------------------------------------------------------------------

def _weighted_problems() -> st.SearchStrategy:
    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(problems(min_size=1))
        return _with(case, w=draw(gst.weights(len(case.x))))
    return build()


def _weighted(case: Case) -> ...:
    w = case.extra["w"]
    g = np.array(per_example(case))
    W = float(np.sum(w))
    gw = grad(case, reduction="mean", weights=w)
    combo = np.sum(w[:, None] * g, axis=0)
    terms = np.sum(np.abs(w[:, None] * g), axis=0)
    law = by_rounding("A6", "weighted mean", case.params, gw, combo / W, terms / W, len(w))
    scaled = by_rounding("A6", "weighted mean", case.params, W * gw, combo, terms, len(w))
    law = law if not law.holds else scaled
    fd = by_differences("A6", _net_loss(case, case.x, case.y, reduction="mean", weights=w),
                        case.params, combo / W, case.seed)
    return both(law, [fd], f"∇L_w = Σ w_i g_i / Σ w_i with Σ w_i = {W:.4g} (not B = {len(w)})")


register(Claim(
    "A6", "Weighted mean", UNIVERSAL,
    "∇L_w = Σ_i w_i g_i / Σ_i w_i, and Σ_i w_i g_i = (Σ_i w_i) ∇L_w: the scale is the total "
    "weight, not the batch size B.",
    "Any non-negative weights with a positive total (class weights, token counts); zero "
    "weights drop their examples.",
    "L_w is a fixed linear combination of the per-example losses with coefficients w_i / Σ w.",
    holds_for=(Property("autograd and finite differences over generated weights",
                        _weighted_problems, _weighted),),
))


# A7 -------------------------------------------------------------------------------

def _reg_problems() -> st.SearchStrategy:
    return st.tuples(problems(min_size=1, max_size=6, l2=True), st.integers(2, 4)).map(
        lambda t: _with(t[0], k=t[1]))


def _ratio_text(data: np.ndarray, reg: np.ndarray) -> str:
    r = float(np.linalg.norm(reg))
    return f"{np.linalg.norm(data) / r:.4g}" if r > 0 else "∞"


def _regularizer(case: Case) -> ...:
    k, B = case.extra["k"], len(case.x)
    xd, yd = duplicate((case.x, case.y), k)
    reg = flat(autograd.grad(lambda p: case.net.l2 * case.net.regularizer(p))(case.params))
    terms = np.sum(np.abs(per_example(case)), axis=0) + np.abs(reg)
    mean, mean_k = grad(case, reduction="mean"), grad(case, xd, yd, reduction="mean")
    total, total_k = grad(case, reduction="sum"), grad(case, xd, yd, reduction="sum")
    on_mean = by_rounding("A7", "regularizer ratio", case.params, mean_k, mean, terms, k * B)
    on_sum = by_rounding("A7", "regularizer ratio", case.params, total_k, k * (total - reg) + reg,
                         k * terms, k * B)
    law = on_mean if not on_mean.holds else on_sum
    fd = by_differences("A7", _net_loss(case, xd, yd, reduction="mean"), case.params, mean, case.seed)
    return both(law, [fd], (
        f"data : regularizer gradient norms, mean {_ratio_text(mean - reg, reg)} → "
        f"{_ratio_text(mean_k - reg, reg)}, sum {_ratio_text(total - reg, reg)} → "
        f"{_ratio_text(total_k - reg, reg)} with the batch repeated {k} times"))


register(Claim(
    "A7", "Regularizer ratio", UNIVERSAL,
    "With L_mean + λR, the ratio of data gradient to regularizer gradient does not change when "
    "the batch is repeated k times; with L_sum + λR it grows k-fold.",
    "Any λ ≥ 0 and any regularizer R(θ) that does not depend on the data.",
    "Repeating the batch leaves ∇L_mean unchanged (A3) and multiplies ∇L_sum by k, while λ∇R "
    "does not see the batch at all.",
    holds_for=(Property("autograd and finite differences over generated L2-regularized networks",
                        _reg_problems, _regularizer),),
))
