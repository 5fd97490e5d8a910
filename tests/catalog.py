"""A catalog of gradient implementations, right and wrong, for the acceptance tests.

The model throughout is a small MLP, one tanh hidden layer, with per-example
squared error ``l_i = sum_k (o_ik - y_ik)^2``:

    a = x @ W1 + b1,   h = tanh(a),   o = h @ W2 + b2

params is the dict ``{"W1": (d_in, H), "b1": (H,), "W2": (H, d_out), "b2": (d_out,)}``
(``layered_*`` variants use a list of layer dicts ``[{"W", "b"}, {"W", "b"}]``).

Every ``grad_*`` has the signature ``grad_fn(params, *batch)`` and works for any
batch size B >= 1, because the checkers call it on single examples and on
duplicated, permuted and split batches. None of them modifies its inputs.

The wrong implementations are the mistakes people actually make when they
reduce a loss over a mini-batch; each one is a plain function so the tests can
show the checker's verdict on it.
"""

from __future__ import annotations

import autograd
import autograd.numpy as anp
import numpy as np

NOMINAL_BATCH = 32
BN_EPS = 1e-5


# ---------------------------------------------------------------- data

def make_data(seed: int, B: int = 5, d_in: int = 3, hidden: int = 4, d_out: int = 2,
              scale: float = 1.0):
    """Seeded params dict and batch (x, y) for the MLP."""
    rng = np.random.default_rng(seed)
    params = {
        "W1": scale * rng.normal(size=(d_in, hidden)) / np.sqrt(d_in),
        "b1": scale * 0.5 * rng.normal(size=hidden),
        "W2": scale * rng.normal(size=(hidden, d_out)) / np.sqrt(hidden),
        "b2": scale * 0.5 * rng.normal(size=d_out),
    }
    x = rng.normal(size=(B, d_in))
    y = rng.normal(size=(B, d_out))
    return params, x, y


def make_token_data(seed: int, B: int = 4, T: int = 5, d_in: int = 3, hidden: int = 4,
                    d_out: int = 2, allow_empty: bool = False):
    """Params, and a batch (x (B,T,d_in), y (B,T,d_out), mask (B,T)) of padded sequences.

    Sequence lengths vary, so the per-sequence token counts (the weights of the
    token mean) differ. Unless ``allow_empty``, every sequence has a token.
    """
    rng = np.random.default_rng(seed)
    params, _, _ = make_data(seed, 1, d_in, hidden, d_out)
    x = rng.normal(size=(B, T, d_in))
    y = rng.normal(size=(B, T, d_out))
    low = 0 if allow_empty else 1
    lengths = rng.integers(low, T + 1, size=B)
    if not allow_empty:
        lengths[0], lengths[-1] = 1, T   # make sure the counts really differ
    else:
        lengths[0] = 0                   # one fully padded sequence: weight zero
        lengths[-1] = T
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(float)
    return params, x, y, mask


def make_class_data(seed: int, B: int = 6, d_in: int = 3, hidden: int = 4, n_classes: int = 3):
    """Params, batch (x, labels), and class weights for weighted cross-entropy."""
    rng = np.random.default_rng(seed)
    params, _, _ = make_data(seed, 1, d_in, hidden, n_classes)
    x = rng.normal(size=(B, d_in))
    labels = rng.integers(0, n_classes, size=B)
    labels[: min(B, n_classes)] = np.arange(min(B, n_classes))   # every class present
    class_weight = rng.uniform(0.2, 3.0, size=n_classes)
    return params, x, labels, class_weight


def to_layers(params):
    """The dict params as a list of layer dicts."""
    return [{"W": params["W1"], "b": params["b1"]}, {"W": params["W2"], "b": params["b2"]}]


# ---------------------------------------------------------------- the model

def forward(params, x):
    h = anp.tanh(anp.dot(x, params["W1"]) + params["b1"])
    return anp.dot(h, params["W2"]) + params["b2"]


def per_example_losses(params, x, y):
    return anp.sum((forward(params, x) - y) ** 2, axis=-1)


def loss_sum(params, x, y):
    return anp.sum(per_example_losses(params, x, y))


def loss_mean(params, x, y):
    return anp.mean(per_example_losses(params, x, y))


def loss_layered_mean(layers, x, y):
    h = anp.tanh(anp.dot(x, layers[0]["W"]) + layers[0]["b"])
    o = anp.dot(h, layers[1]["W"]) + layers[1]["b"]
    return anp.mean(anp.sum((o - y) ** 2, axis=-1))


def _backprop(params, x, y, coef_w, coef_b=None):
    """Hand-written chain rule for sum_i c_i l_i; coef_b, if given, weighs the bias terms."""
    coef_b = coef_w if coef_b is None else coef_b
    a = x @ params["W1"] + params["b1"]
    h = np.tanh(a)
    o = h @ params["W2"] + params["b2"]
    err = 2.0 * (o - y)                                  # dl_i/do_i
    err_w = err * np.asarray(coef_w, float).reshape(-1, 1) * np.ones((x.shape[0], 1))
    err_b = err * np.asarray(coef_b, float).reshape(-1, 1) * np.ones((x.shape[0], 1))
    da_w = (err_w @ params["W2"].T) * (1.0 - h ** 2)
    da_b = (err_b @ params["W2"].T) * (1.0 - h ** 2)
    return {
        "W1": x.T @ da_w,
        "b1": da_b.sum(axis=0),
        "W2": h.T @ err_w,
        "b2": err_b.sum(axis=0),
    }


# ---------------------------------------------------------------- right implementations

def grad_mean_manual(params, x, y):
    """Right: mean over the batch, hand-written backprop."""
    return _backprop(params, x, y, 1.0 / x.shape[0])


grad_mean_autograd = autograd.grad(loss_mean)
grad_mean_autograd.__doc__ = "Right: mean over the batch, autograd."
grad_layered_mean_autograd = autograd.grad(loss_layered_mean)


def grad_sum_manual(params, x, y):
    """Right when declared "sum": sum over the batch, hand-written backprop."""
    return _backprop(params, x, y, 1.0)


grad_sum_autograd = autograd.grad(loss_sum)


# token-masked sequences: per-token MLP loss, mean over the unmasked tokens of the batch

def loss_token_mean(params, x, y, mask):
    """sum_i sum_t mask_it l_it / sum mask (0 for a batch without tokens)."""
    token_losses = anp.sum((forward(params, x) - y) ** 2, axis=-1)     # (B, T)
    return anp.sum(mask * token_losses) / np.maximum(np.sum(mask), 1.0)


def grad_token_mean_manual(params, x, y, mask):
    """Right when declared a weighted mean with weights = tokens per sequence."""
    B, T, d_in = x.shape
    coef = (mask / max(float(mask.sum()), 1.0)).reshape(B * T)
    return _backprop(params, x.reshape(B * T, d_in), y.reshape(B * T, -1), coef)


grad_token_mean_autograd = autograd.grad(loss_token_mean)


# class-weighted cross-entropy (weights = class_weight[label])

def make_class_weighted(class_weight):
    class_weight = np.array(class_weight, dtype=float)   # own copy

    def loss_fn(params, x, labels):
        logits = forward(params, x)
        m = anp.max(logits, axis=-1, keepdims=True)
        logp = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=-1, keepdims=True))
        nll = -logp[np.arange(x.shape[0]), labels]
        w = class_weight[labels]
        return anp.sum(w * nll) / np.sum(w)

    grad_fn = autograd.grad(loss_fn)
    return loss_fn, grad_fn


# class weights, summed: sum_i w_i l_i (reduction="sum", weights=)

def make_class_weighted_sum(class_weight):
    class_weight = np.array(class_weight, dtype=float)   # own copy

    def loss_fn(params, x, labels):
        logits = forward(params, x)
        m = anp.max(logits, axis=-1, keepdims=True)
        logp = logits - m - anp.log(anp.sum(anp.exp(logits - m), axis=-1, keepdims=True))
        return anp.sum(class_weight[labels] * -logp[np.arange(x.shape[0]), labels])

    return loss_fn, autograd.grad(loss_fn)


# ---------------------------------------------------------------- a penalty of the weights (L2)

L2 = 0.3


def l2_penalty(params):
    """0.5 ||W||^2 over the weight matrices (biases are not penalised)."""
    return 0.5 * (anp.sum(params["W1"] ** 2) + anp.sum(params["W2"] ** 2))


def _l2_grad(params, weight):
    return {k: (weight * v if k.startswith("W") else np.zeros_like(v)) for k, v in params.items()}


def _plus(g, h):
    return {k: g[k] + h[k] for k in g}


def loss_mean_l2(params, x, y):
    """The TensorFlow CIFAR-10 tutorial's loss: mean + L2 * R, a fixed weight."""
    return loss_mean(params, x, y) + L2 * l2_penalty(params)


def grad_mean_l2(params, x, y):
    """Right when declared "mean": the penalty keeps its weight as B changes."""
    return _plus(grad_mean_manual(params, x, y), _l2_grad(params, L2))


def loss_sum_l2(params, x, y):
    """Textbook ridge: sum + L2 * R."""
    return loss_sum(params, x, y) + L2 * l2_penalty(params)


def grad_sum_l2(params, x, y):
    """Right when declared "sum" (a fixed penalty is what a plain declaration means)."""
    return _plus(grad_sum_manual(params, x, y), _l2_grad(params, L2))


def loss_mlp_l2(params, x, y):
    """scikit-learn's MLP: (sum_i l_i + L2 R) / B, the penalty divided with the data."""
    return (loss_sum(params, x, y) + L2 * l2_penalty(params)) / x.shape[0]


def grad_mlp_l2(params, x, y):
    """Right when declared "mean" with regularizer="divided"; wrong for a plain "mean"."""
    return _plus(grad_mean_manual(params, x, y), _l2_grad(params, L2 / x.shape[0]))


def grad_l2_per_example(params, x, y):
    """Wrong: the penalty added inside the per-example loop while the data is averaged:
    mean_i l_i + B * L2 * R."""
    return _plus(grad_mean_manual(params, x, y), _l2_grad(params, L2 * x.shape[0]))


def grad_sum_l2_declared_mean(params, x, y):
    """Wrong when declared "mean": the tutorial net that forgot to divide the data by B."""
    return grad_sum_l2(params, x, y)


# ---------------------------------------------------------------- wrong reductions

def grad_mean_twice(params, x, y):
    """Wrong: the mean, then divided by B again (1/B applied twice)."""
    B = x.shape[0]
    return _backprop(params, x, y, 1.0 / B ** 2)


def grad_sum_over_B_minus_1(params, x, y):
    """Wrong: the sum divided by B-1 (an 'unbiased' mean), clamped so B = 1 works."""
    B = x.shape[0]
    return _backprop(params, x, y, 1.0 / max(B - 1, 1))


def grad_nominal_batch(params, x, y):
    """Wrong: the sum divided by a fixed nominal batch size of 32, whatever B is."""
    return _backprop(params, x, y, 1.0 / NOMINAL_BATCH)


def grad_bias_summed(params, x, y):
    """Wrong: weights averaged over the batch, biases summed."""
    return _backprop(params, x, y, 1.0 / x.shape[0], coef_b=1.0)


def grad_first_example(params, x, y):
    """Wrong: only example 0's gradient (as if the batch had one example)."""
    return _backprop(params, x[:1], y[:1], 1.0)


def grad_average_then_backprop(params, x, y):
    """Wrong: backpropagate the mean output error through the activations of the mean input."""
    o = forward(params, x)
    err = np.mean(2.0 * (o - y), axis=0)                  # mean output error (d_out,)
    xbar = np.mean(x, axis=0)
    hbar = np.tanh(xbar @ params["W1"] + params["b1"])
    da = (params["W2"] @ err) * (1.0 - hbar ** 2)
    return {"W1": np.outer(xbar, da), "b1": da, "W2": np.outer(hbar, err), "b2": err}


def grad_at_mean_example(params, x, y):
    """Wrong: the gradient of the loss at the mean example (x-bar, y-bar)."""
    return _backprop(params, np.mean(x, axis=0, keepdims=True),
                     np.mean(y, axis=0, keepdims=True), 1.0)


def make_micro_batch_means(m: int):
    """Wrong: the mean of the means of consecutive micro-batches of m (an
    accumulation loop dividing each micro-batch by its own size and the sum by
    the number of steps). Right only when m divides B."""
    def grad_micro_batch_means(params, x, y):
        B = x.shape[0]
        edges = list(range(0, B, m)) + [B]
        coef = np.empty(B)
        for lo, hi in zip(edges[:-1], edges[1:]):
            coef[lo:hi] = 1.0 / ((hi - lo) * (len(edges) - 1))
        return _backprop(params, x, y, coef)
    grad_micro_batch_means.__name__ = f"grad_micro_batch_means_{m}"
    return grad_micro_batch_means


def grad_token_mean_nan_when_empty(params, x, y, mask):
    """A token mean that divides by the batch's token count with no guard: a
    batch of only an empty sequence gives 0/0 (right on any batch with tokens)."""
    B, T, d_in = x.shape
    with np.errstate(invalid="ignore", divide="ignore"):
        coef = (mask / mask.sum()).reshape(B * T)
    return _backprop(params, x.reshape(B * T, d_in), y.reshape(B * T, -1), coef)


def loss_batchnorm_mean(params, x, y):
    """Batch-normalised hidden pre-activations (training mode: batch statistics)."""
    a = anp.dot(x, params["W1"]) + params["b1"]
    mu = anp.mean(a, axis=0, keepdims=True)
    var = anp.mean((a - mu) ** 2, axis=0, keepdims=True)
    h = anp.tanh((a - mu) / anp.sqrt(var + BN_EPS))
    o = anp.dot(h, params["W2"]) + params["b2"]
    return anp.mean(anp.sum((o - y) ** 2, axis=-1))


grad_batchnorm_mean = autograd.grad(loss_batchnorm_mean)


# ---------------------------------------------------------------- wrong gradients (check_gradient)

def grad_sign_flipped_W2(params, x, y):
    """Wrong: layer 2's weight gradient has the wrong sign."""
    g = grad_mean_manual(params, x, y)
    g["W2"] = -g["W2"]
    return g


def make_scaled(rel: float):
    """Wrong: every entry off by a relative ``rel``."""
    def grad_scaled(params, x, y):
        return {k: v * (1.0 + rel) for k, v in grad_mean_manual(params, x, y).items()}
    grad_scaled.__name__ = f"grad_scaled_{rel:g}"
    return grad_scaled


def make_one_entry_off(key: str, index: tuple, rel: float = 0.01):
    """Wrong: one entry, params[key][index], off by a relative ``rel``."""
    def grad_one_entry_off(params, x, y):
        g = grad_mean_manual(params, x, y)
        g[key] = g[key].copy()
        g[key][index] *= 1.0 + rel
        return g
    return grad_one_entry_off


def grad_nan_b2(params, x, y):
    """Returns NaN in b2[1]."""
    g = grad_mean_manual(params, x, y)
    g["b2"] = g["b2"].copy()
    g["b2"][1] = np.nan
    return g


def loss_nan(params, x, y):
    return float("nan")


# ---------------------------------------------------------------- misuse helpers

def grad_missing_key(params, x, y):
    g = grad_mean_manual(params, x, y)
    del g["b2"]
    return g


def grad_wrong_shape(params, x, y):
    g = grad_mean_manual(params, x, y)
    g["W1"] = g["W1"].T.copy()
    return g


# a linear model whose params are one plain array

def loss_linear_mean(w, x, y):
    return anp.mean((anp.dot(x, w) - y) ** 2)


def grad_linear_mean(w, x, y):
    return 2.0 * x.T @ (x @ w - y) / x.shape[0]


def grad_linear_wrong_shape(w, x, y):
    return np.append(grad_linear_mean(w, x, y), 0.0)
