"""gradcheck.torch.functions: real PyTorch models judged right and wrong
through the adapter, parameters named as PyTorch names them, the model's
state left as it was."""

from __future__ import annotations

import doctest
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import gradcheck  # noqa: E402
import gradcheck.torch as gt  # noqa: E402
from gradcheck.torch import functions  # noqa: E402
from gradcheck.verdict import PRECISION_LIMITED  # noqa: E402

nn = torch.nn
DTYPES = [torch.float64, torch.float32]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Tiny models on 2 shared cores: threads only contend.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- models

class Mlp(nn.Module):
    """Nested names: layer1.weight, head.0.bias."""

    def __init__(self, n_in=3, hidden=4, n_out=2):
        super().__init__()
        self.layer1 = nn.Linear(n_in, hidden)
        self.head = nn.Sequential(nn.Tanh(), nn.Linear(hidden, n_out))

    def forward(self, x):
        return self.head(self.layer1(x))


def _linear():
    return nn.Sequential(nn.Linear(3, 2))


def _conv():
    return nn.Sequential(nn.Conv1d(2, 2, 3), nn.Tanh(), nn.Flatten(), nn.Linear(6, 2))


def _conv_bn():
    return nn.Sequential(nn.Conv1d(2, 2, 3), nn.BatchNorm1d(2), nn.Tanh(), nn.Flatten(), nn.Linear(6, 2))


def _mlp_bn():
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Tanh(), nn.Linear(4, 2))


def _dropout():
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Dropout(0.5), nn.Linear(5, 2))


def _rnn():
    class Rnn(nn.Module):  # RNNs hold their weights in a list of their own (_flat_weights)
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(2, 3, batch_first=True)
            self.out = nn.Linear(3, 2)

        def forward(self, x):
            return self.out(self.rnn(x)[0][:, -1])
    return Rnn()


def _tied():
    class Tied(nn.Module):  # one weight used twice: one entry in params
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 3)

        def forward(self, x):
            return self.lin(torch.tanh(self.lin(x)))[:, :2]
    return Tied()


def _weight_norm():  # parameters named 0.parametrizations.weight.original0 and original1
    return nn.Sequential(nn.utils.parametrizations.weight_norm(nn.Linear(3, 4)), nn.Tanh(), nn.Linear(4, 2))


# name -> (builder, input shape per example, mode)
MODELS = {
    "linear": (_linear, (3,), "train"),
    "mlp": (Mlp, (3,), "train"),
    "conv1d": (_conv, (2, 5), "train"),
    "batchnorm-eval": (_mlp_bn, (3,), "eval"),
    "batchnorm-train": (_mlp_bn, (3,), "train"),
    "conv-batchnorm-train": (_conv_bn, (2, 5), "train"),
    "dropout-train": (_dropout, (3,), "train"),
    "rnn": (_rnn, (4, 2), "train"),
    "tied": (_tied, (3,), "train"),
    "weight-norm": (_weight_norm, (3,), "train"),
}


def build(name, dtype=torch.float64, seed=0):
    make, shape, mode = MODELS[name]
    torch.manual_seed(seed)
    model = make().to(dtype)
    if mode == "eval":
        _give_running_stats(model)
        model.eval()
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, *shape))
    y = rng.integers(0, 2, size=6)
    return model, x, y


def _give_running_stats(model):
    # Running statistics other than the initial 0 and 1, so eval mode uses something real.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            with torch.no_grad():
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)


# ---------------------------------------------------------------- the model's state

def snapshot(model):
    return {
        "params": {n: (p.detach().clone(), p.requires_grad, p._version) for n, p in model.named_parameters()},
        "grads": {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()},
        "buffers": {n: b.clone() for n, b in model.named_buffers()},
        "training": [m.training for m in model.modules()],
        "default_dtype": torch.get_default_dtype(),
        "grad_enabled": torch.is_grad_enabled(),
        "rng": torch.get_rng_state(),
    }


def assert_unchanged(model, before):
    after = snapshot(model)
    for name, (value, requires_grad, version) in before["params"].items():
        now = after["params"][name]
        assert torch.equal(now[0], value), f"parameter {name} changed"
        assert now[1:] == (requires_grad, version), f"parameter {name}: requires_grad or version changed"
    for name, grad in before["grads"].items():
        now = after["grads"][name]
        assert (now is None) == (grad is None) and (grad is None or torch.equal(now, grad)), f".grad of {name}"
    for name, value in before["buffers"].items():
        assert torch.equal(after["buffers"][name], value), f"buffer {name} changed"
    assert after["training"] == before["training"]
    assert after["default_dtype"] == before["default_dtype"]
    assert after["grad_enabled"] == before["grad_enabled"]
    assert torch.equal(after["rng"], before["rng"]), "the global random state moved"


def judged_right(v, dtype):
    """float64: holds. float32: holds, or precision-limited; never fails."""
    if dtype == torch.float64:
        return v.holds
    return v.holds or v.reason == PRECISION_LIMITED


# ---------------------------------------------------------------- names and types

def test_params_are_named_as_named_parameters_names_them():
    model = Mlp().float()
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    assert list(params) == [n for n, _ in model.named_parameters()]
    assert set(params) == {"layer1.weight", "layer1.bias", "head.1.weight", "head.1.bias"}
    for name, p in model.named_parameters():
        assert params[name].dtype == np.float32 and params[name].shape == tuple(p.shape)
        np.testing.assert_array_equal(params[name], p.detach().numpy())
    params["layer1.bias"][0] += 1  # params are copies: the model keeps its values
    assert model.layer1.bias[0].item() != params["layer1.bias"][0]


def test_loss_fn_is_float64_and_grad_fn_in_the_models_own_dtype():
    model, x, y = build("mlp", torch.float32)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    value = loss_fn(params, x, y)
    assert type(value) is np.float64
    with torch.no_grad():
        own = nn.CrossEntropyLoss()(model(torch.tensor(x, dtype=torch.float32)), torch.tensor(y)).item()
    assert abs(value - own) <= 1e-6 * abs(own)  # the same loss, computed wider
    assert all(g.dtype == np.float32 for g in grad_fn(params, x, y).values())
    own_loss, _, _ = functions(model, nn.CrossEntropyLoss(), dtype=None)
    assert type(own_loss(params, x, y)) is np.float32


def test_batches_may_be_tensors_or_numpy():
    model, x, y = build("mlp")
    _, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    a = grad_fn(params, x, y)
    b = grad_fn(params, torch.tensor(x), torch.tensor(y))
    c = grad_fn(params, x.astype(np.float32), y.astype(np.int32))  # cast to the model's dtype, int64
    for name in params:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_allclose(a[name], c[name], rtol=1e-6, atol=1e-7)


def test_grad_fn_is_pytorchs_own_gradient():
    model, x, y = build("mlp", torch.float32)
    _, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    nn.CrossEntropyLoss()(model(torch.tensor(x, dtype=torch.float32)), torch.tensor(y)).backward()
    expected = {n: p.grad.numpy().copy() for n, p in model.named_parameters()}
    got = grad_fn(params, x, y)
    for name in params:
        np.testing.assert_array_equal(got[name], expected[name])


# ---------------------------------------------------------------- right models hold

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", list(MODELS))
def test_right_models_are_judged_right_and_left_unchanged(name, dtype):
    model, x, y = build(name, dtype)
    first = next(model.parameters())
    first.grad = torch.ones_like(first)  # a .grad of the user's own, to be kept
    before = snapshot(model)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    v = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    assert judged_right(v, dtype), str(v)
    if dtype == torch.float32 and v.holds:
        assert "loss in float64, gradient in float32" in str(v)
    assert_unchanged(model, before)


def test_a_float32_model_reaches_far_below_float32_finite_differences():
    # float64 finite differences of the float32 model: the resolution is
    # set by the float32 gradient, orders of magnitude below what float32
    # loss values allow.
    model, x, y = build("mlp", torch.float32)
    wide = gradcheck.check_gradient(*functions(model, nn.CrossEntropyLoss()), x, y)
    own = gradcheck.check_gradient(*functions(model, nn.CrossEntropyLoss(), dtype=None), x, y)
    assert wide.holds and wide.resolution < 1e-4, str(wide)
    assert not own.fails, str(own)
    assert wide.resolution < own.resolution / 10, (wide.resolution, own.resolution)


def test_a_float16_model_is_never_a_false_alarm_nor_holds_a_scaled_gradient():
    model, x, y = build("mlp", torch.float16)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    right = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    assert right.holds or right.reason == PRECISION_LIMITED, str(right)
    handle = model.head[1].weight.register_hook(lambda g: g * 1.01)
    try:
        wrong = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    finally:
        handle.remove()
    assert not wrong.holds, str(wrong)
    assert "gradient in float16" in str(wrong)


# ---------------------------------------------------------------- planted errors are caught and named

class _OffLinear(torch.autograd.Function):
    """x @ W.T with a backward whose dW is off by ``rel`` in one entry."""

    @staticmethod
    def forward(ctx, x, w, entry, rel):
        ctx.save_for_backward(x, w)
        ctx.entry, ctx.rel = entry, rel
        return x @ w.T

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        dw = g.T @ x
        dw[ctx.entry] = dw[ctx.entry] * (1 + ctx.rel)
        return g @ w, dw, None, None


class OffModel(nn.Module):
    def __init__(self, entry=(1, 2), rel=0.01):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.head = nn.Linear(4, 2)
        self.entry, self.rel = entry, rel

    def forward(self, x):
        h = _OffLinear.apply(x, self.lin.weight, self.entry, self.rel) + self.lin.bias
        return self.head(torch.tanh(h))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_custom_backward_one_percent_off_in_one_entry_is_named(dtype):
    torch.manual_seed(0)
    model = OffModel().to(dtype)
    x = np.random.default_rng(0).normal(size=(8, 3))
    y = np.random.default_rng(1).integers(0, 2, size=8)
    before = snapshot(model)
    v = gradcheck.check_gradient(*functions(model, nn.CrossEntropyLoss()), x, y)
    assert v.fails, str(v)
    assert "params['lin.weight'][1, 2]" in str(v) and "1 of 26 entries" in str(v), str(v)
    assert_unchanged(model, before)
    right = OffModel(rel=0.0).to(dtype)
    right.load_state_dict(model.state_dict())
    assert judged_right(gradcheck.check_gradient(*functions(right, nn.CrossEntropyLoss()), x, y), dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_a_gradient_hooked_to_be_scaled_is_named(dtype):
    # A tensor hook on the parameter itself: it fires only when the model's
    # own Parameter objects take part in the backward pass.
    model, x, y = build("mlp", dtype)
    handle = model.head[1].bias.register_hook(lambda g: g * 1.01)
    try:
        v = gradcheck.check_gradient(*functions(model, nn.CrossEntropyLoss()), x, y)
    finally:
        handle.remove()
    assert v.fails, str(v)
    assert "params['head.1.bias'][0]" in str(v) and "params['head.1.bias'][1]" in str(v), str(v)
    assert "layer1" not in str(v).split("\n")[0]


def test_a_module_backward_hook_that_scales_the_gradient_is_caught():
    model, x, y = build("mlp")
    handle = model.head.register_full_backward_hook(lambda mod, gin, gout: (gin[0] * 1.01,))
    try:
        v = gradcheck.check_gradient(*functions(model, nn.CrossEntropyLoss()), x, y)
    finally:
        handle.remove()
    assert v.fails and "params['layer1.weight']" in str(v), str(v)
    assert "params['head.1.weight']" not in str(v)  # the hook scales what flows below the head


def test_a_detached_layer_is_caught_in_the_layers_below():
    class Cut(Mlp):
        def forward(self, x):
            return self.head(self.layer1(x).detach())  # the bug: nothing flows into layer1
    torch.manual_seed(0)
    model = Cut().double()
    x = np.random.default_rng(0).normal(size=(6, 3))
    y = np.random.default_rng(1).integers(0, 2, size=6)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    assert not np.any(grad_fn(params, x, y)["layer1.weight"])
    v = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    assert v.fails and "params['layer1.weight']" in str(v), str(v)


def _typical_entry(grads):
    """The entry whose size is nearest the root-mean-square entry's."""
    flat = [(name, idx, abs(v)) for name, g in grads.items() for idx, v in np.ndenumerate(g)]
    sizes = np.array([s for _, _, s in flat])
    name, idx, _ = flat[int(np.argmin(np.abs(sizes - np.sqrt(np.mean(sizes ** 2)))))]
    return name, idx


@pytest.mark.parametrize("seed", range(4))
def test_a_float32_model_one_percent_wrong_in_one_entry_never_holds(seed):
    model, x, y = build("mlp", torch.float32, seed=seed)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    name, idx = _typical_entry(grad_fn(params, x, y))
    bump = torch.zeros_like(dict(model.named_parameters())[name])
    bump[idx] = 0.01
    handle = dict(model.named_parameters())[name].register_hook(lambda g: g + bump * g)
    try:
        v = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y, seed=seed)
    finally:
        handle.remove()
    assert not v.holds, str(v)
    # At this size float64 finite differences resolve far below 1 %: caught and named.
    assert v.fails and f"params['{name}'][{', '.join(map(str, idx))}]" in str(v), str(v)


def test_a_float32_projection_check_never_holds_a_one_percent_error():
    # 1,539 parameters: a projection, where float32 rounding of the gradient
    # sets the resolution.
    torch.manual_seed(0)
    model = Mlp(20, 64, 3).float()
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(16, 20)), rng.integers(0, 3, size=16)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    right = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    assert judged_right(right, torch.float32), str(right)
    name, idx = _typical_entry(grad_fn(params, x, y))
    bump = torch.zeros_like(dict(model.named_parameters())[name])
    bump[idx] = 0.01
    handle = dict(model.named_parameters())[name].register_hook(lambda g: g + bump * g)
    try:
        wrong = gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    finally:
        handle.remove()
    assert not wrong.holds, str(wrong)
    assert wrong.fails and f"params['{name}'][{', '.join(map(str, idx))}]" in str(wrong), str(wrong)


# ---------------------------------------------------------------- state: buffers, modes, globals

def test_running_statistics_do_not_drift_in_train_mode():
    model, x, y = build("batchnorm-train")
    bn = model[1]
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    first = grad_fn(params, x, y)
    for _ in range(3):
        loss_fn(params, x, y)
    again = grad_fn(params, x, y)
    for name in params:
        np.testing.assert_array_equal(first[name], again[name])
    assert bn.num_batches_tracked.item() == 0 and not bn.running_mean.any()


def test_each_call_runs_in_the_mode_the_model_is_in_then():
    model, x, y = build("batchnorm-train")
    _give_running_stats(model)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    train = loss_fn(params, x, y), grad_fn(params, x, y)
    model.eval()
    evaluated = loss_fn(params, x, y), grad_fn(params, x, y)
    with torch.no_grad():
        own = nn.CrossEntropyLoss()(model(torch.tensor(x)), torch.tensor(y)).item()
    assert evaluated[0] == pytest.approx(own, rel=1e-12) and train[0] != pytest.approx(own, rel=1e-3)
    assert not np.allclose(train[1]["0.weight"], evaluated[1]["0.weight"])
    assert gradcheck.check_gradient(loss_fn, grad_fn, params, x, y).holds


def test_the_model_is_restored_when_its_forward_raises():
    model, x, y = build("batchnorm-train")
    model[0].weight.grad = torch.ones_like(model[0].weight)
    before = snapshot(model)

    def forward(m, loss, x, y):
        m(x)  # running statistics written, parameters swapped in
        raise RuntimeError("boom")
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss(), forward=forward)
    moved = {n: v + 1 for n, v in params.items()}
    for fn in (loss_fn, grad_fn):
        with pytest.raises(RuntimeError, match="boom"):
            fn(moved, x, y)
    assert_unchanged(model, before)


def test_grad_fn_works_under_no_grad_and_leaves_grad_mode_off():
    model, x, y = build("mlp")
    _, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    with torch.no_grad():
        g = grad_fn(params, x, y)
        assert not torch.is_grad_enabled()
    assert np.any(g["layer1.weight"])


def test_dropout_draws_the_same_mask_on_every_call_and_leaves_the_rng_alone():
    model, x, y = build("dropout-train")
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    state = torch.get_rng_state()
    assert loss_fn(params, x, y) == loss_fn(params, x, y)
    np.testing.assert_array_equal(grad_fn(params, x, y)["0.weight"], grad_fn(params, x, y)["0.weight"])
    assert torch.equal(torch.get_rng_state(), state)
    other = functions(model, nn.CrossEntropyLoss(), seed=1)[0]
    assert other(params, x, y) != loss_fn(params, x, y)  # a different mask


def test_frozen_parameters_are_left_out_and_keep_their_values():
    model, x, y = build("mlp")
    model.layer1.weight.requires_grad_(False)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    assert "layer1.weight" not in params and set(grad_fn(params, x, y)) == set(params)
    assert gradcheck.check_gradient(loss_fn, grad_fn, params, x, y).holds
    with torch.no_grad():
        model.layer1.weight.mul_(2)  # the float64 copy follows the model's frozen values
        own = nn.CrossEntropyLoss()(model(torch.tensor(x)), torch.tensor(y)).item()
    assert loss_fn(params, x, y) == pytest.approx(own, rel=1e-12)


# ---------------------------------------------------------------- forward=, losses as functions

def test_forward_hook_for_several_inputs_and_extra_loss_arguments():
    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 2), nn.Linear(2, 2)

        def forward(self, u, v):
            return torch.tanh(self.a(u)) + self.b(v)

    def forward(model, loss, u, v, y, w):
        return (loss(model(u, v), y) * w).sum() / w.sum()  # a weighted mean

    torch.manual_seed(0)
    model = Two().double()
    rng = np.random.default_rng(0)
    u, v, y, w = rng.normal(size=(7, 3)), rng.normal(size=(7, 2)), rng.integers(0, 2, 7), rng.uniform(1, 2, 7)
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss(reduction="none"), forward=forward)
    assert gradcheck.check_gradient(loss_fn, grad_fn, params, u, v, y, w).holds
    assert gradcheck.check_reduction(grad_fn, params, u, v, y, w, reduction="mean", weights=w).holds


def test_a_loss_function_and_a_transform_of_the_output():
    model, x, y = build("mlp")
    forward = lambda m, loss, x, y: loss(torch.log_softmax(m(x), dim=1), y)  # noqa: E731
    loss_fn, grad_fn, params = functions(model, torch.nn.functional.nll_loss, forward=forward)
    assert gradcheck.check_gradient(loss_fn, grad_fn, params, x, y).holds
    ce = functions(model, nn.CrossEntropyLoss())[0]
    assert loss_fn(params, x, y) == pytest.approx(ce(params, x, y), rel=1e-12)


def test_loss_module_weights_are_widened_in_the_copy():
    model, x, y = build("mlp", torch.float32)
    loss = nn.CrossEntropyLoss(weight=torch.tensor([0.3, 2.0]))
    loss_fn, grad_fn, params = functions(model, loss)
    assert loss.weight.dtype == torch.float32  # the user's loss is not converted
    assert judged_right(gradcheck.check_gradient(loss_fn, grad_fn, params, x, y), torch.float32)


# ---------------------------------------------------------------- reductions through the adapter

@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_reduction_is_found(reduction):
    # A (B, 2) output: 'mean' divides by B*2 elements. The factor 1/2 is the
    # same for every example and every B, so it belongs to the per-example
    # loss (the mean of its 2 squared errors): the reduction over the batch
    # is a mean.
    model, x, _ = build("mlp")
    y = np.random.default_rng(2).normal(size=(6, 2))
    loss_fn, grad_fn, params = functions(model, nn.MSELoss(reduction=reduction))
    assert gradcheck.infer_reduction(grad_fn, params, x, y) == reduction
    v = gradcheck.check_reduction(grad_fn, params, x, y, reduction=reduction)
    assert v.holds and f"reduces as a {reduction} over B=6 examples" in str(v), str(v)
    other = "sum" if reduction == "mean" else "mean"
    wrong = gradcheck.check_reduction(grad_fn, params, x, y, reduction=other)
    assert wrong.fails and f'this looks like "{reduction}"' in str(wrong), str(wrong)


def test_batch_statistics_in_train_mode_are_flagged_and_eval_mode_is_a_mean():
    model, x, y = build("conv-batchnorm-train")
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    before = snapshot(model)
    v = gradcheck.check_reduction(grad_fn, params, x, y, reduction="mean")
    assert v.fails and "the examples interact" in str(v) and "batch statistics" in str(v), str(v)
    assert_unchanged(model, before)
    model.eval()
    assert gradcheck.infer_reduction(grad_fn, params, x, y) == "mean"


def test_batch_norm_on_one_example_in_train_mode_says_why():
    model, x, y = build("batchnorm-train")
    _, grad_fn, params = functions(model, nn.CrossEntropyLoss())
    with pytest.raises(ValueError) as info:
        grad_fn(params, x[:1], y[:1])
    if sys.version_info >= (3, 11):
        assert "model.eval()" in "".join(info.value.__notes__)


# ---------------------------------------------------------------- misuse

def _raises(match, *args, **kwargs):
    with pytest.raises(gradcheck.GradcheckUsageError, match=match):
        functions(*args, **kwargs)


def test_misuse_names_the_argument():
    model = Mlp()
    _raises(r"^\[gradcheck\] model=.* is not a torch.nn.Module", lambda x: x, nn.MSELoss())
    _raises(r"model=Mlp is a class; pass an instance", Mlp, nn.MSELoss())
    _raises(r"loss=MSELoss is a class; pass an instance, e.g. loss=MSELoss\(\)", model, nn.MSELoss)
    _raises(r"loss='mse' is not callable", model, "mse")
    _raises(r"forward=3 is not callable", model, nn.MSELoss(), forward=3)
    _raises(r"dtype='float64' is not a torch floating dtype", model, nn.MSELoss(), dtype="float64")
    _raises(r"dtype=torch.int64 is not a torch floating dtype", model, nn.MSELoss(), dtype=torch.int64)
    _raises(r"seed=-1", model, nn.MSELoss(), seed=-1)
    frozen = nn.Linear(2, 2).requires_grad_(False)
    _raises(r"model=Linear has no parameter with requires_grad=True", frozen, nn.MSELoss())
    _raises(r"parameter 'weight' has dtype torch.bfloat16", nn.Linear(2, 2).bfloat16(), nn.MSELoss())


def test_a_per_example_loss_or_a_python_number_is_refused_when_called():
    model, x, y = build("mlp")
    loss_fn, grad_fn, params = functions(model, nn.CrossEntropyLoss(reduction="none"))
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"shape \(6,\) \(reduction='none'\? use 'mean'"):
        gradcheck.check_gradient(loss_fn, grad_fn, params, x, y)
    item = functions(model, lambda out, y: nn.functional.cross_entropy(out, y).item())[1]
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"loss returned a float.*not .item\(\)"):
        item(params, x, y)


def test_params_of_another_model_are_refused():
    model, x, y = build("mlp")
    loss_fn, _, params = functions(model, nn.CrossEntropyLoss())
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"does not match the model's trainable parameters"):
        loss_fn({"weight": params["layer1.weight"]}, x, y)
    bad = dict(params, **{"layer1.bias": np.zeros(7)})
    with pytest.raises(gradcheck.GradcheckUsageError, match=r"params\['layer1.bias'\] has shape \(7,\)"):
        loss_fn(bad, x, y)


# ---------------------------------------------------------------- the package around it

def test_importing_gradcheck_imports_neither_framework():
    code = "import sys, gradcheck; assert 'torch' not in sys.modules and 'jax' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_adapter_module_uses_the_real_torch():
    # gradcheck/torch.py must not shadow torch inside the package.
    assert gt.torch is sys.modules["torch"] and hasattr(gt.torch.nn, "Module")
    assert gradcheck.torch is gt


def test_doctests():
    result = doctest.testmod(gt, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_forward_that_writes_into_its_weights_leaves_the_callers_params_alone():
    # nn.Embedding(max_norm=...) renormalizes the rows it looks up, in place,
    # during the forward pass: the float64 copy may do so to its own weights,
    # never to the arrays the caller handed to loss_fn.
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 3, max_norm=0.5), nn.Flatten(), nn.Linear(6, 2)).double()
    with torch.no_grad():
        model[0].weight.mul_(4.0)  # rows far above max_norm
    loss_fn, _, params = functions(model, nn.CrossEntropyLoss())
    before = {k: v.copy() for k, v in params.items()}
    x, y = torch.tensor([[0, 1], [2, 3]]), torch.tensor([0, 1])
    loss_fn(params, x, y)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k], err_msg=k)


def test_gradchecks_scratch_point_is_computed_on_where_it_lies_and_let_go():
    # check_gradient's oracle hands loss_fn views of a vector it refills for
    # the next point: the float64 copy computes on it without copying, gives
    # the value a copy would, and keeps no reference to it afterwards.
    from gradcheck._calls import scratch
    from gradcheck._tree import tree_def
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
    loss_fn, _, params = functions(model, nn.MSELoss())
    td = tree_def(params)
    x = td.flatten(params) + 0.01
    xb, yb = torch.randn(5, 4), torch.randn(5, 1)
    copied = loss_fn(td.unflatten(x.copy(), dtype=np.float64), xb, yb)
    held = sys.getrefcount(x)
    with scratch(x):
        lent = loss_fn(td.unflatten(x, dtype=np.float64, views=True), xb, yb)
    assert lent == copied
    assert sys.getrefcount(x) == held
    x += 1.0  # refilled for the next point: the copy no longer computes on it
    assert loss_fn(params, xb, yb) == loss_fn({k: v.copy() for k, v in params.items()}, xb, yb)
    assert loss_fn(td.unflatten(x - 1.0, dtype=np.float64), xb, yb) == copied
