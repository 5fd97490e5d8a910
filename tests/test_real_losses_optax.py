"""optax's losses, reduced over the batch as their users write them, measured
by gradcheck's checkers (gradcheck/_realworld.py, the docs' real-losses page).

optax returns one value per example or per output; the user's ``.mean()`` or
``.sum()`` decides the divisor. Each row's measured divisor and the checkers'
words are held to what the code does by hand-counting, and wrong reductions
of the same losses are fed to check_reduction, whose message is read.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("optax")

import gradcheck  # noqa: E402
from gradcheck import _docpages as pages  # noqa: E402
from gradcheck import _realworld as rw  # noqa: E402

CE = "optax.softmax_cross_entropy_with_integer_labels(out, y)"
WEIGHTED = f"(w[y] * {CE}).sum() / w[y].sum()"
WEIGHTED_SAYS = ("neither: a mean whose examples count unequally (a weighted mean?); "
                 "declared weighted mean with these weights: holds")

# code -> (the checkers' words, the divisor of the row's plain sum), counted by hand:
# B = 6 examples, C = 4 outputs, w[y] = (1, 2, 0.5, 3, 2, 0.5) sums to 9.
EXPECTED = {
    "optax.l2_loss(out, y).mean()": ("mean", "2·B·C = 48"),  # l2_loss is (out - y)^2 / 2
    "optax.squared_error(out, y).mean()": ("mean", "B·C = 24"),
    "optax.squared_error(out, y).sum(-1).mean()": ("mean", "B = 6"),
    "optax.huber_loss(out, y, delta=0.5).mean()": ("mean", "B·C = 24"),
    "optax.sigmoid_binary_cross_entropy(out, y).mean()": ("mean", "B·C = 24"),
    "optax.softmax_cross_entropy(out, y).mean()": ("mean", "B = 6"),
    f"{CE}.mean()": ("mean", "B = 6"),
    f"{CE}.sum()": ("sum", "1 (nothing)"),
    "optax.kl_divergence(jax.nn.log_softmax(out), y).mean()": ("mean", "B = 6"),  # sums over classes
    WEIGHTED: (WEIGHTED_SAYS, "Σ w_i = 9"),
}


@pytest.fixture(scope="module")
def measured() -> dict[str, rw.OptaxRow]:
    return {r.code: rw.judge_optax(r) for r in rw.optax_rows()}


def test_every_row_is_expected(measured):
    assert sorted(measured) == sorted(EXPECTED)


@pytest.mark.parametrize("code", EXPECTED)
def test_each_row_says_and_divides_as_counted(measured, code):
    row = measured[code]
    says, divisor = EXPECTED[code]
    assert (row.says, row.divisor) == (says, divisor), code


def _case(code: str, target: str = "class") -> tuple:
    x, y = rw._optax_batch(target)
    return rw._optax_grad(code), rw._optax_params(), x, y


def _class_weights_of(y: np.ndarray) -> np.ndarray:
    return np.asarray(rw.CLASS_WEIGHTS)[y]


def test_weighted_cross_entropy_is_the_weighted_mean_declared(measured):
    grad_fn, params, x, y = _case(WEIGHTED)
    v = gradcheck.check_reduction(grad_fn, params, x, y, reduction="mean", weights=_class_weights_of(y))
    assert v.holds, str(v)


def test_a_sum_declared_mean_is_reported_as_a_sum(measured):
    grad_fn, params, x, y = _case(f"{CE}.sum()")
    v = gradcheck.check_reduction(grad_fn, params, x, y, reduction="mean")
    assert v.fails, str(v)
    message = str(v)
    assert message.startswith('[gradcheck] check_reduction failed: sum = B × mean — declared "mean"'), message
    assert 'this looks like "sum"' in message, message


def test_a_weighted_sum_over_b_declared_weighted_mean_is_reported(measured):
    # The weights' total must divide, not B: sum_i w_i l_i / B is what a plain mean would give.
    grad_fn, params, x, y = _case(f"(w[y] * {CE}).sum() / len(y)")
    v = gradcheck.check_reduction(grad_fn, params, x, y, reduction="mean", weights=_class_weights_of(y))
    assert v.fails, str(v)
    message = str(v)
    assert message.startswith('[gradcheck] check_reduction failed: per-example decomposition — declared '
                              '"weighted mean"'), message
    assert "the weighted sum is divided by B instead of by the total weight" in message, message


def test_the_divisor_is_named_only_where_the_sum_is_a_multiple():
    g = np.array([1.0, -2.0, 0.5])
    assert rw._named_ratio(g, 48 * g, None) == "2·B·C = 48"
    assert rw._named_ratio(g, 9 * g, np.array([1.0, 2.0, 6.0])) == "Σ w_i = 9"
    assert rw._named_ratio(g, 7 * g, None) == "7"
    # 6 times g in two entries, not in the third: no single divisor, whatever the least-squares fit says
    assert rw._named_ratio(g, np.array([6.0, -12.0, 0.0]), None).startswith("none: not proportional")


def test_the_page_shows_the_optax_table_beside_torch():
    torch_row = rw.TorchRow("MSELoss()", "real", says="mean", divisor="B·C = 24")
    optax_row = rw.OptaxRow("optax.l2_loss(out, y).mean()", "optax.squared_error(out, y).sum()", "real",
                            says="mean", divisor="2·B·C = 48")
    text = pages.real_losses([torch_row], [optax_row], [], "(1, 2)")
    assert text.index("## PyTorch") < text.index("## optax") < text.index("## scikit-learn")
    assert "| `optax.l2_loss(out, y).mean()` | real values | mean | 2·B·C = 48 |" in text


def test_the_page_notes_a_build_without_optax():
    text = pages.real_losses([], None, [], "(1, 2)")
    assert "optax is not installed" in text and "| `optax." not in text
