"""Family E1: gradient accumulation over micro-batches.

The right loop sums each micro-batch's summed loss gradient and divides once by
the total count; the mean of per-micro-batch means is right only for equal
micro-batches, and no split at all reproduces a loss that mixes examples.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from ..training.accumulation import accumulate_sums, mean_of_means
from ._common import Case, _wide, both, by_differences, by_rounding, flat, grad, per_example, problems, small_problems
from .registry import WITNESSED, Claim, Property, register

LAW = "accumulation"


def _splits(draw: Callable, size: int, *, unequal: bool) -> list[int]:
    """Sorted cut points of a batch of ``size``; with ``unequal``, the parts differ in size."""
    cuts = sorted(draw(st.sets(st.integers(1, size - 1), min_size=1, max_size=size - 1)))
    sizes = np.diff([0, *cuts, size])
    if unequal and len(set(sizes.tolist())) == 1:
        cuts = [1] if size > 2 else cuts  # (1, B-1): unequal whenever B > 2
    return cuts


def _problems(*, unequal: bool = False, weighted: bool = False, halves: bool = False, small: bool = False,
              **net: Any) -> st.SearchStrategy:
    """Cases with a split; ``halves`` cuts an even batch into two equal micro-batches,
    so that only their token counts can differ."""
    base = small_problems(min_size=3, **net) if small else problems(min_size=2, max_size=8, **net)

    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(base)
        if halves:
            B = 2 * (len(case.x) // 2)
            case.x, case.y = case.x[:B], case.y[:B]
            case.extra["cuts"] = [B // 2]
        else:
            case.extra["cuts"] = _splits(draw, len(case.x), unequal=unequal)
        if weighted:  # token counts: whole numbers of unmasked tokens per sequence
            n = len(case.x)
            case.extra["tokens"] = np.array(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)), float)
        return case
    return build()


def _micro(case: Case) -> list[tuple]:
    edges = [0, *case.extra["cuts"], len(case.x)]
    w = case.extra.get("tokens")
    return [(case.x[a:b], case.y[a:b]) + ((w[a:b],) if w is not None else ()) for a, b in zip(edges, edges[1:])]


def _loop(loop: Callable, case: Case) -> Any:
    """An accumulation loop run in extended precision, as the full-batch
    reference is (_common.WIDE): in float64 a deep network's backward pass
    rounds far beyond the allowance the two are compared under (the dev
    profile: a quadratic net of depth 4, 1.7 times its tolerance)."""
    return loop(case.net, _wide(case.params), _wide(_micro(case)))


def _against_full(case: Case, accumulated: Any, message: str) -> Any:
    w = case.extra.get("tokens")
    g = np.array(per_example(case))
    scale = (w if w is not None else np.ones(len(g)))[:, None]
    full = grad(case, reduction="mean", weights=w)
    law = by_rounding("E1", LAW, case.params, flat(accumulated), full,
                      np.sum(np.abs(scale * g), axis=0) / scale.sum(), len(g), message)
    loss = (lambda p: case.net.total_loss(p, case.x, case.y, reduction="mean", weights=w))
    fd = by_differences("E1", loss, case.params, full, case.seed)
    return both(law, [fd], message)


def _sizes(case: Case) -> str:
    return " + ".join(str(len(m[0])) for m in _micro(case))


def _right(case: Case) -> Any:
    acc = _loop(accumulate_sums, case)
    what = "token counts" if "tokens" in case.extra else "examples"
    return _against_full(case, acc, f"micro-batches of {_sizes(case)}: the summed gradients divided once by "
                                    f"the total count of {what} give ∇L_mean of the whole batch")


def _counts(case: Case) -> str:
    w = case.extra.get("tokens")
    if w is None:
        return f"micro-batches of {_sizes(case)} examples"
    edges = [0, *case.extra["cuts"], len(w)]
    return "micro-batches of " + " + ".join(f"{w[a:b].sum():g}" for a, b in zip(edges, edges[1:])) + " tokens"


def _mean_of_means(case: Case) -> Any:
    acc = _loop(mean_of_means, case)
    return _against_full(case, acc, f"{_counts(case)}: the plain mean of per-micro-batch means "
                                    f"differs from ∇L_mean of the whole batch")



register(Claim(
    "E1", "Gradient accumulation", WITNESSED,
    "Summing per-micro-batch ∇L_sum and dividing once by the total count gives the full-batch "
    "∇L_mean for any split; averaging per-micro-batch ∇L_mean gives it only when the micro-batches "
    "are equal. With masked tokens, the same holds for token counts: divide by the global count.",
    "Any per-example loss; micro-batches of any sizes, a size-1 micro-batch included. A loss that "
    "mixes examples (batch statistics, a contrastive loss over the batch) cannot be accumulated "
    "exactly by any split: F2 shows such a loss is not a combination of per-example gradients, and "
    "check_accumulation says so instead of blaming the loop.",
    "L_sum of the batch is the sum of the micro-batches' L_sum (A5), so dividing that sum once by "
    "B gives ∇L_mean. The mean of micro-batch means weights micro-batch k by 1/K instead of B_k/B: "
    "equal only when every B_k = B/K. With batch statistics the micro-batch losses are other "
    "functions than the full-batch loss, so no combination of them is its gradient.",
    holds_for=(Property("sum of micro-batch sums / total count, over generated splits",
                        lambda: _problems(), _right),
               Property("token-weighted sums / global token count, over generated splits",
                        lambda: _problems(weighted=True), _right)),
    fails_for=(Property("mean of per-micro-batch means on unequal micro-batches",
                        lambda: _problems(unequal=True, small=True), _mean_of_means),
               Property("mean of per-micro-batch token means, equal micro-batches, unequal token counts",
                        lambda: _problems(weighted=True, halves=True, small=True), _mean_of_means)),
))
