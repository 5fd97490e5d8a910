"""check_accumulation: right loops hold on every split, wrong loops fail with
their cause named, and a loss that mixes examples is not blamed on the loop.
Loops are written in numpy and in PyTorch, the way people write them."""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np
import pytest
from hypothesis import given, strategies as st

from gradcheck import GradcheckUsageError
from gradcheck.accumulation import check_accumulation, splits


def grad_sum(w, x, y):
    return 2 * x.T @ (x @ w - y)


def grad_mean(w, x, y):
    return grad_sum(w, x, y) / len(x)


def count(micro):
    return sum(len(m[0]) for m in micro)


def right(w, micro):
    return sum(grad_sum(w, *m) for m in micro) / count(micro)


def mean_of_means(w, micro):
    return sum(grad_mean(w, *m) for m in micro) / len(micro)


def sum_of_means(w, micro):
    return sum(grad_mean(w, *m) for m in micro)


def divided_twice(w, micro):
    return right(w, micro) / len(micro)


def right_sum(w, micro):
    return sum(grad_sum(w, *m) for m in micro)


def data(seed, B, d=3):
    rng = np.random.default_rng(seed)
    return rng.normal(size=d), rng.normal(size=(B, d)), rng.normal(size=B)


@given(st.integers(0, 2**16), st.integers(2, 16))
def test_right_loops_hold_on_every_split(seed, B):
    w, x, y = data(seed, B)
    v = check_accumulation(right, grad_mean, w, x, y)
    assert v.holds, str(v)
    assert check_accumulation(right_sum, grad_sum, w, x, y, reduction="sum").holds


@given(st.integers(0, 2**16), st.integers(3, 16))
def test_mean_of_means_is_caught_for_every_batch_size(seed, B):
    w, x, y = data(seed, B)
    v = check_accumulation(mean_of_means, grad_mean, w, x, y)
    assert v.fails
    assert "a plain mean of per-micro-batch means, right only for equal micro-batches" in v.message


@pytest.mark.parametrize("loop, words", [
    (sum_of_means, "a sum of per-micro-batch means"),
    (divided_twice, "the right shares times 0.5"),
])
def test_wrong_loops_are_named(loop, words):
    w, x, y = data(1, 12)
    v = check_accumulation(loop, grad_mean, w, x, y)
    assert v.fails and words in v.message, str(v)
    assert str(v).startswith("[gradcheck] check_accumulation failed: micro-batches of 1 + 11")


def test_mean_of_means_is_right_on_equal_micro_batches_and_says_so():
    w, x, y = data(2, 12)
    v = check_accumulation(mean_of_means, grad_mean, w, x, y)
    assert "it is right on micro-batches of 2 + 2 + 2 + 2 + 2 + 2" in v.message
    assert [d.outcome for d in v.details] == ["fails", "fails", "holds"]


def tokens(seed, B=8, T=6):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, T + 1, B)
    mask = (np.arange(T)[None] < lengths[:, None]).astype(float)
    return rng.normal(size=3), rng.normal(size=(B, T, 3)), rng.normal(size=(B, T)), mask


def token_sum(w, x, y, m):
    return 2 * np.einsum("btd,bt->d", x, (x @ w - y) * m)


def token_mean(w, x, y, m):
    return token_sum(w, x, y, m) / m.sum()


def tokens_right(w, micro):
    return sum(token_sum(w, *mb) for mb in micro) / sum(mb[2].sum() for mb in micro)


def tokens_mean_of_means(w, micro):
    """The 2024 accumulation bug: per-micro-batch token means, averaged."""
    return sum(token_mean(w, *mb) for mb in micro) / len(micro)


def tokens_by_sequences(w, micro):
    """Divides by the number of sequences, not of tokens."""
    return sum(token_sum(w, *mb) for mb in micro) / sum(len(mb[0]) for mb in micro)


@given(st.integers(0, 2**16))
def test_token_masked_accumulation(seed):
    w, x, y, m = tokens(seed)
    n_tokens = m.sum(axis=1)
    assert check_accumulation(tokens_right, token_mean, w, x, y, m, weights=n_tokens).holds
    bad = check_accumulation(tokens_mean_of_means, token_mean, w, x, y, m, weights=n_tokens)
    assert bad.fails and "per-micro-batch means" in bad.message
    off = check_accumulation(tokens_by_sequences, token_mean, w, x, y, m, weights=n_tokens)
    assert off.fails and "the right shares times" in off.message


def batchnorm_grad(w, x, y):
    def loss(w):
        h = x @ w
        h = (h - anp.mean(h)) / anp.sqrt(anp.var(h) + 1e-5)
        return anp.mean((h - y) ** 2)
    return autograd.grad(loss)(w)


def batchnorm_accumulated(w, micro):
    return sum(batchnorm_grad(w, *m) * len(m[0]) for m in micro) / count(micro)


def test_a_loss_that_mixes_examples_is_not_blamed_on_the_loop():
    w, x, y = data(3, 10)
    v = check_accumulation(batchnorm_accumulated, batchnorm_grad, w, x, y)
    assert v.undetermined and v.reason == "the loss mixes examples"
    assert "grad_fn itself does not split" in v.message and "the loop is not to blame" in v.message


def test_torch_loops():
    torch = pytest.importorskip("torch")

    def model_grad(w, micro, scale):
        wt = torch.tensor(w, requires_grad=True)
        for x, y in micro:
            loss = torch.nn.functional.mse_loss(torch.as_tensor(x) @ wt, torch.as_tensor(y), reduction="sum")
            (loss / scale(micro, x)).backward()
        return wt.grad.numpy()

    def torch_right(w, micro):
        return model_grad(w, micro, lambda mic, x: count(mic))

    def torch_mean_over_steps(w, micro):  # loss.mean() / n_steps
        return model_grad(w, micro, lambda mic, x: len(x) * len(mic))

    w, x, y = data(4, 15)
    assert check_accumulation(torch_right, grad_mean, w, x, y).holds
    v = check_accumulation(torch_mean_over_steps, grad_mean, w, x, y)
    assert v.fails and "plain mean of per-micro-batch means" in v.message
    assert "it is right on micro-batches of 3 + 3 + 3 + 3 + 3" in v.message


@pytest.mark.parametrize("B", range(2, 30))
def test_splits_cover_the_batch_and_include_a_size_one_micro_batch(B):
    out = splits(B)
    assert all(sum(s) == B and min(s) >= 1 for s in out)
    assert (1, B - 1) in out and len(set(out)) == len(out)


def test_misuse():
    w, x, y = data(0, 4)
    with pytest.raises(GradcheckUsageError, match="accumulate_fn"):
        check_accumulation(None, grad_mean, w, x, y)
    with pytest.raises(GradcheckUsageError, match="reduction"):
        check_accumulation(right, grad_mean, w, x, y, reduction="avg")
    with pytest.raises(GradcheckUsageError, match="weights"):
        check_accumulation(right, grad_mean, w, x, y, weights=[1.0, 2.0])
    with pytest.raises(GradcheckUsageError, match="accumulate_fn"):
        check_accumulation(lambda w, micro: [w], grad_mean, w, x, y)
