"""check_data_parallel on a real gloo process group: right steps hold, wrong
steps fail with their cause named, and a rank that raises or hangs becomes a
verdict, never a hung test."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch.distributed")

import dp_steps as steps  # noqa: E402  (the workers import the steps by this name)

from gradcheck import GradcheckUsageError  # noqa: E402
from gradcheck.distributed import check_data_parallel, shardings  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.normal(size=3), rng.normal(size=(9, 3)), rng.normal(size=9)


def check(step, data, reduction="mean", **kw):
    w, x, y = data
    grad = steps.grad_sum if reduction == "sum" else steps.grad_mean
    return check_data_parallel(step, grad, w, x, y, reduction=reduction, timeout=30, **kw)


@pytest.mark.parametrize("step, reduction", [(steps.weighted_allreduce, "mean"), (steps.sum_of_sums, "sum")])
def test_right_steps_hold_on_equal_and_unequal_shards(step, reduction, data):
    v = check(step, data, reduction)
    assert v.holds, str(v)
    assert [d.law for d in v.details] == ["equal shards", "unequal shards"]
    assert v.resolution < 1e-10


def test_world_of_three(data):
    v = check(steps.weighted_allreduce, data, world_size=3)
    assert v.holds, str(v)
    assert "3 + 3 + 3" in v.message


def test_mean_of_local_means_fails_on_unequal_shards_unless_declared(data):
    v = check(steps.mean_of_means, data)
    assert v.fails and v.law == "unequal shards"
    assert "plain mean of the 2 local gradients" in v.message and "shards='equal'" in v.message
    assert check(steps.mean_of_means, data, shards="equal").holds


@pytest.mark.parametrize("step, words", [
    (steps.sum_of_means, "sum of the 2 local gradients, 2 × the full-batch mean"),
    (steps.no_allreduce, "never all-reduced"),
    (steps.global_count_averaged, "1/2 of the full-batch gradient: divided by world_size twice"),
])
def test_wrong_steps_fail_with_the_cause_named(step, words, data):
    v = check(step, data)
    assert v.fails and v.law == "equal shards", str(v)
    assert words in v.message
    assert str(v).startswith("[gradcheck] check_data_parallel failed: equal shards")


def test_a_rank_that_raises_is_a_failed_verdict(data):
    v = check(steps.raises_on_rank_1, data)
    assert v.fails
    assert "step_fn raised on rank 1: ValueError: planted failure on rank 1" in v.message


def test_a_rank_that_hangs_is_a_failed_verdict_within_the_timeout(data):
    w, x, y = data
    v = check_data_parallel(steps.hangs, steps.grad_mean, w, x, y, timeout=5)
    assert v.fails
    assert "did not finish within 5 s" in v.message


@pytest.mark.parametrize("kwargs, name", [
    (dict(world_size=1), "world_size"), (dict(world_size=True), "world_size"),
    (dict(shards="odd"), "shards"), (dict(reduction="max"), "reduction"),
    (dict(timeout=0), "timeout"), (dict(resolution=2.0), "resolution"),
])
def test_bad_options_are_misuse(kwargs, name, data):
    w, x, y = data
    with pytest.raises(GradcheckUsageError, match=name):
        check_data_parallel(steps.weighted_allreduce, steps.grad_mean, w, x, y, **kwargs)


def test_a_step_the_workers_cannot_import_is_misuse(data):
    w, x, y = data
    with pytest.raises(GradcheckUsageError, match="module level"):
        check_data_parallel(lambda p, a, b: p, steps.grad_mean, w, x, y)


def test_too_small_a_batch_is_misuse(data):
    w, x, y = data
    with pytest.raises(GradcheckUsageError, match="at least 3"):
        check_data_parallel(steps.weighted_allreduce, steps.grad_mean, w, x[:2], y[:2])


@pytest.mark.parametrize("size, world", [(3, 2), (9, 2), (10, 3), (17, 4)])
def test_shardings_cover_the_batch_and_the_unequal_one_is_unequal(size, world):
    equal, unequal = shardings(size, world, equal_only=False)
    assert len(set(equal.sizes)) == 1 and equal.examples == world * (size // world)
    assert unequal.examples == size and min(unequal.sizes) >= 1 and len(set(unequal.sizes)) > 1
