"""False alarms of check_gradient on correct float64 code, counted over
generated cases (run by hand, never a test):

    python benchmarks/false_alarms.py [N]     # default 10,000 cases

Each case draws a network (depth 1-4, width 1-16, every activation and loss,
L2 on or off), parameters, a batch, a mode (full or projection) and a probe
seed, all from Hypothesis; the gradient is autograd's, which is right. The
DESIGN target is 0 false alarms in 10,000 cases. Undetermined verdicts (a
kink, a precision limit) are counted by reason: they are not alarms.
"""

from __future__ import annotations

import collections
import sys
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gradcheck
from gradcheck import strategies as gst
from gradcheck.nets import loss_gradient


def main(n: int) -> int:
    counts: collections.Counter = collections.Counter()
    worst = [0.0]
    alarms: list[str] = []

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              phases=["generate"])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        net = data.draw(gst.networks(l2=data.draw(st.booleans())))
        params = data.draw(gst.parameters(net))
        x, y = data.draw(gst.batches(net))
        mode = data.draw(st.sampled_from(["full", "projection"]))
        v = gradcheck.check_gradient(net.total_loss, lambda p, a, b: loss_gradient(net, p, a, b),
                                     params, x, y, mode=mode, seed=data.draw(st.integers(0, 999)))
        counts[(v.outcome, v.reason)] += 1
        if v.holds and v.tolerance > 0:
            worst[0] = max(worst[0], v.error / v.tolerance)
        if v.fails:
            alarms.append(f"{net}\n{v}")

    start = time.perf_counter()
    run()
    print(f"{sum(counts.values())} cases in {time.perf_counter() - start:.0f} s")
    for (outcome, reason), k in sorted(counts.items()):
        print(f"  {outcome:<13} {reason or '':<24} {k}")
    print(f"  worst error / bound among the cases that held: {worst[0]:.3f}")
    print(f"  false alarms: {len(alarms)}")
    for text in alarms[:5]:
        print(text)
    return 1 if alarms else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
