"""Family F: ground truth. Finite differences vouch for every gradient the
suite uses, autograd's included; and a layer that mixes examples breaks the
per-example algebra of family A, which the checkers must flag."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from .. import strategies as gst
from ..gradient import check_gradient
from ..nets import loss_gradient
from ..reduction import DECOMPOSITION, SCALE, check_reduction
from ._common import Case, by_differences, grad, problems, small_problems, verdict
from .registry import UNIVERSAL, WITNESSED, Claim, Property, register


# F1 -------------------------------------------------------------------------------

def _autograd_vs_fd(case: Case) -> Any:
    loss = case.net.total_loss
    v = check_gradient(loss, lambda p, x, y: loss_gradient(case.net, p, x, y), case.params,
                       case.x, case.y, seed=case.seed)
    return v.with_(claim="F1", law="finite differences")


def _kinks() -> st.SearchStrategy[Case]:
    """A ReLU unit sitting exactly on its kink, visibly: input 0, that unit's
    bias 0, a non-zero outgoing weight, and an output error of -1 per output."""
    @st.composite
    def build(draw: Callable) -> Case:
        d_in, width, d_out = (draw(st.integers(1, 3)) for _ in range(3))
        from ..nets import Network
        net = Network((d_in, width, d_out), activation="relu", loss="squared")
        params = draw(gst.parameters(net))
        params[0]["b"][0] = 0.0
        params[1]["W"][0] = draw(st.sampled_from([1.0, -1.0, 0.5, 2.0]))
        x = np.zeros((1, d_in))
        y = net.outputs(params, x) + 1.0
        return Case(net, params, x, np.asarray(y), seed=draw(st.integers(0, 2**16)))
    return build()


def _kink_reported(case: Case) -> Any:
    v = check_gradient(case.net.total_loss, lambda p, x, y: loss_gradient(case.net, p, x, y),
                       case.params, case.x, case.y, mode="full")
    said = v.reason == "not differentiable here"
    return verdict("F1", "kink", 0.0 if said else 1.0, 0.5,
                   "the checker says 'not differentiable here'" if said else
                   f"at an exact ReLU kink the checker answered {v.outcome}: {v.message}")


register(Claim(
    "F1", "Finite differences", UNIVERSAL,
    "Every gradient the suite uses, autograd's included, agrees with finite differences of the "
    "loss; at a non-differentiable point (ReLU at 0) the checker says 'not differentiable here' "
    "rather than 'wrong gradient'.",
    "Smooth points of any generated network and loss; kinks are reported as a third outcome.",
    "Central differences with Richardson extrapolation converge to the derivative wherever the "
    "loss is smooth, with an error bounded by the truncation and rounding estimates; at a kink "
    "the one-sided differences tend to different limits, which the ladder of steps exposes.",
    holds_for=(Property("autograd against finite differences over generated networks",
                        lambda: problems(min_size=1, l2=True), _autograd_vs_fd),
               Property("an exact ReLU kink is reported as not differentiable", _kinks, _kink_reported)),
))


# F2 -------------------------------------------------------------------------------

def _batchnorm_mixes(case: Case) -> Any:
    ref = by_differences("F2", lambda p: case.net.total_loss(p, case.x, case.y), case.params,
                         grad(case, reduction="mean"), case.seed)
    if not ref.holds:
        return ref
    v = check_reduction(lambda p, x, y: loss_gradient(case.net, p, x, y), case.params, case.x, case.y,
                        reduction="mean")
    if v.fails and v.law in (DECOMPOSITION, SCALE):
        return v.with_(claim="F2")
    # Anything else (it holds, or another law decided) is no witness of mixing.
    return verdict("F2", DECOMPOSITION, 0.0, max(v.tolerance, 0.0),
                   f"check_reduction did not flag this batch through the decomposition ({v.outcome})")


register(Claim(
    "F2", "Batch mixing", WITNESSED,
    "A layer that mixes examples (batch normalization in training mode) breaks A1 and A5: the "
    "gradient of L_mean is not the mean of per-example gradients, and check_reduction flags it.",
    "Any layer whose output for one example depends on the others: batch statistics, "
    "in-batch negatives, cross-example attention.",
    "With batch statistics, example i's loss is a function of the whole batch; its gradient has "
    "terms through the mean and variance that no single-example gradient contains.",
    fails_for=(Property("batch-normalized networks, flagged by check_reduction",
                        lambda: small_problems(min_size=2, batchnorm=True), _batchnorm_mixes),),
))
