"""Family E2: data-parallel training, verified on a real torch.distributed group.

Every generated case runs on the ranks of one gloo process group (started on
first use, shared by every case, torn down at exit): each rank gets its shard,
does its own all-reduce, and every rank's result is compared with the
full-batch gradient by autograd, which finite differences vouch for.
"""

from __future__ import annotations

import atexit
import functools
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from .._group import ProcessGroup
from ..training import data_parallel as dp
from ..verdict import FAILS, Verdict
from ._common import Case, both, by_differences, by_rounding, grad, per_example, problems, small_problems
from .registry import WITNESSED, Claim, Property, register

WORLD = 3  # ranks of the claim's process group; the algebra is the same for any W
LAW = "data parallel"
_GROUPS: dict[int, ProcessGroup] = {}


def _group() -> ProcessGroup:
    if WORLD not in _GROUPS or _GROUPS[WORLD].broken:
        _GROUPS[WORLD] = ProcessGroup(WORLD, timeout=120.0)
        _GROUPS[WORLD].start()
    return _GROUPS[WORLD]


@atexit.register
def _close() -> None:
    for g in _GROUPS.values():
        g.close()


def _problems(*, equal: bool, tokens: bool = False, small: bool = False) -> st.SearchStrategy:
    """Batches of at least W + 1 examples; ``equal`` trims to a multiple of W."""
    base = small_problems(min_size=WORLD + 1, max_size=2 * WORLD) if small else \
        problems(min_size=WORLD + 1, max_size=3 * WORLD)

    @st.composite
    def build(draw: Callable) -> Case:
        case = draw(base)
        if equal:
            B = WORLD * (len(case.x) // WORLD)
            case.x, case.y = case.x[:B], case.y[:B]
        if tokens:
            n = len(case.x)
            case.extra["tokens"] = np.array(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)), float)
        return case
    return build()


def _shards(case: Case, sizes: list[int]) -> list[np.ndarray]:
    edges = np.cumsum([0, *sizes])
    return [np.arange(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _equal(case: Case) -> list[np.ndarray]:
    return _shards(case, [len(case.x) // WORLD] * WORLD)


def _unequal(case: Case) -> list[np.ndarray]:
    k = max(1, len(case.x) // (WORLD + 1))
    return _shards(case, [len(case.x) - (WORLD - 1) * k] + [k] * (WORLD - 1))


def _run(case: Case, step: Callable[..., Any], shards: list[np.ndarray], what: str) -> Verdict:
    """Every rank's gradient against the full-batch ∇L_mean (token-weighted with tokens)."""
    w = case.extra.get("tokens")
    local = [(case.x[s], case.y[s]) + ((w[s],) if w is not None else ()) for s in shards]
    results = _group().run(functools.partial(step, case.net), case.params, local)
    g = np.array(per_example(case))
    scale = np.ones(len(g)) if w is None else w
    full = grad(case, reduction="mean", weights=w)
    terms = np.sum(np.abs(scale[:, None] * g), axis=0) / scale.sum() * WORLD
    sizes = " + ".join(str(len(s)) for s in shards)
    message = f"{what}, {WORLD} ranks with shards of {sizes} examples"
    verdicts = [by_rounding("E2", LAW, case.params, r.value, full, terms, len(g), message) for r in results]
    law = next((v for v in verdicts if v.fails), verdicts[0])
    loss = (lambda p: case.net.total_loss(p, case.x, case.y, reduction="mean", weights=w))
    return both(law, [by_differences("E2", loss, case.params, full, case.seed)], message)


def _padded(case: Case) -> Verdict:
    shards = dp.padded_shards(len(case.x), WORLD)
    v = _run(case, dp.allreduce_mean_of_means, shards, "shards padded by repeating examples")
    repeated = int(WORLD * len(shards[0]) - len(case.x))
    return v.with_(message=v.message + f" ({repeated} example(s) counted twice)") if v.outcome == FAILS else v


register(Claim(
    "E2", "Data parallel", WITNESSED,
    "W workers on equal shards: the all-reduce mean of the local ∇L_mean equals the global "
    "∇L_mean. Unequal shards break it; an all-reduce sum of local means is W times too large; "
    "a sampler that pads shards by repeating examples weights those examples twice; a loss "
    "divided by the global token count must be multiplied by W when gradients are averaged "
    "over ranks.",
    f"Verified on a real torch.distributed process group (gloo backend, {WORLD} processes on "
    "localhost), with PyTorch installed; per-example losses without batch statistics.",
    "With equal shards of B/W examples, the global mean is (1/W) Σ_r (W/B) Σ_{i∈r} g_i = "
    "(1/W) Σ_r ∇L_mean^(r), the average of the local means (A5 with equal shares). With unequal "
    "shards the right shares are B_r / B, not 1/W. Summing instead of averaging multiplies by W. "
    "A padded shard adds its repeated examples to the sum. Dividing each rank's token sum by the "
    "global count already gives that rank's share of the global mean, so a further division by W "
    "(the framework's average) must be undone by multiplying by W.",
    holds_for=(Property("all-reduce mean of local means on equal shards",
                        lambda: _problems(equal=True),
                        lambda c: _run(c, dp.allreduce_mean_of_means, _equal(c), "all-reduce mean of local means")),
               Property("global-token-count loss times W, averaged over ranks",
                        lambda: _problems(equal=False, tokens=True),
                        lambda c: _run(c, dp.global_count_times_world, _unequal(c),
                                       "token sum / global count × W, averaged"))),
    fails_for=(Property("all-reduce mean of local means on unequal shards",
                        lambda: _problems(equal=False, small=True),
                        lambda c: _run(c, dp.allreduce_mean_of_means, _unequal(c), "all-reduce mean of local means")),
               Property("all-reduce sum of local means",
                        lambda: _problems(equal=True, small=True),
                        lambda c: _run(c, dp.allreduce_sum_of_means, _equal(c), "all-reduce sum of local means")),
               Property("a sampler that pads shards by repeating examples",
                        lambda: _problems(equal=False, small=True), _padded),
               Property("global-token-count loss averaged over ranks without × W",
                        lambda: _problems(equal=True, tokens=True, small=True),
                        lambda c: _run(c, dp.global_count_averaged, _equal(c),
                                       "token sum / global count, averaged"))),
    requires=("torch",),
))
