"""Tests for the reference optimizers (gradcheck.training.optimizers) and for
check_optimizer (gradcheck.optimizer).

The reference rules are held to torch.optim, step by step, and to the
identities that define them; check_optimizer is fed right and wrong update
rules, in numpy and in torch, and its messages are read.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from gradcheck import numerics as nm
from gradcheck.errors import GradcheckUsageError
from gradcheck.optimizer import RESCALES, assert_optimizer, check_optimizer, default_batch_size, schedule
from gradcheck.training import optimizers as opt

torch = pytest.importorskip("torch")

F64 = np.float64


# -- the reference rules against torch.optim ------------------------------------------------

def _gradients(seed: int, T: int, n: int) -> list[np.ndarray]:
    """A fixed sequence of gradients that keep their signs: buffers and moments
    then hold no cancellation, so each step rounds relative to its own size."""
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], n)
    return [signs * rng.uniform(0.5, 2.0, n) for _ in range(T)]


def _ours(optimizer: opt.Optimizer, theta0: np.ndarray, grads: list[np.ndarray]) -> np.ndarray:
    theta, state, path = theta0.copy(), opt.State(), [theta0]
    for g in grads:
        theta, state = opt.step(optimizer, theta, g, state, batch_size=1)
        path.append(theta)
    return np.stack(path)


def _theirs(make, theta0: np.ndarray, grads: list[np.ndarray], clip: float | None = None) -> np.ndarray:
    t = torch.tensor(theta0, dtype=torch.float64, requires_grad=True)
    o = make([t])
    path = [theta0]
    for g in grads:
        t.grad = torch.tensor(g, dtype=torch.float64)
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([t], clip)
        o.step()
        path.append(t.detach().numpy().copy())
    return np.stack(path)


def _allowance(path: np.ndarray) -> np.ndarray:
    """Fed the same gradients, two implementations differ only by each step's
    rounding (no loss feeds a difference back): the error model's allowance
    for an update of this size, summed over the steps."""
    steps = np.abs(np.diff(path, axis=0))
    local = nm.sum_rounding(np.abs(path[:-1]) + steps, F64, 1)
    return np.vstack([np.zeros(path.shape[1]), np.cumsum(local, axis=0)])


LR, MU, WD, EPS = 0.1, 0.9, 0.05, 1e-8
AGAINST_TORCH = [
    ("sgd", opt.sgd(LR), lambda p: torch.optim.SGD(p, lr=LR)),
    ("sgd-coupled-l2", opt.sgd(LR, l2=WD), lambda p: torch.optim.SGD(p, lr=LR, weight_decay=WD)),
    ("momentum", opt.momentum(LR, MU), lambda p: torch.optim.SGD(p, lr=LR, momentum=MU)),
    ("nesterov", opt.nesterov(LR, MU), lambda p: torch.optim.SGD(p, lr=LR, momentum=MU, nesterov=True)),
    ("momentum-l2", opt.momentum(LR, MU, l2=WD),
     lambda p: torch.optim.SGD(p, lr=LR, momentum=MU, weight_decay=WD)),
    ("adam", opt.adam(LR, eps=EPS), lambda p: torch.optim.Adam(p, lr=LR, eps=EPS)),
    ("adam-coupled-l2", opt.adam(LR, eps=EPS, l2=WD),
     lambda p: torch.optim.Adam(p, lr=LR, eps=EPS, weight_decay=WD)),
    ("adamw", opt.adamw(LR, decay=WD, eps=EPS), lambda p: torch.optim.AdamW(p, lr=LR, eps=EPS, weight_decay=WD)),
    ("adam-betas", opt.adam(LR, betas=(0.5, 0.9), eps=1e-3),
     lambda p: torch.optim.Adam(p, lr=LR, betas=(0.5, 0.9), eps=1e-3)),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, ours, theirs", AGAINST_TORCH, ids=[c[0] for c in AGAINST_TORCH])
def test_reference_rule_is_torch_optim(name, ours, theirs, seed):
    grads = _gradients(seed, T=8, n=5)
    theta0 = np.random.default_rng(seed + 100).uniform(-1, 1, 5)
    a, b = _ours(ours, theta0, grads), _theirs(theirs, theta0, grads)
    assert np.all(np.abs(a - b) <= _allowance(a)), np.max(np.abs(a - b) - _allowance(a))
    assert np.max(np.abs(a[-1] - theta0)) > 0.1  # the rule really moved


def test_clipping_is_torch_clip_grad_norm_up_to_its_1e6():
    """torch divides by ‖g‖ + 1e-6: the clipped gradients differ by g·c·1e-6/‖g‖² at most."""
    grads = _gradients(3, T=6, n=4)
    theta0 = np.zeros(4)
    c = 1.5
    a = _ours(opt.sgd(LR, clip=c), theta0, grads)
    b = _theirs(lambda p: torch.optim.SGD(p, lr=LR), theta0, grads, clip=c)
    extra = np.cumsum([LR * c * 1e-6 * np.abs(g) / np.sum(g * g) for g in grads], axis=0)
    assert np.all(np.abs(a - b)[1:] <= _allowance(a)[1:] + extra)


# -- the identities that define the rules ---------------------------------------------------

vectors = st.integers(1, 6).flatmap(
    lambda n: st.lists(st.floats(-4, 4, allow_subnormal=False), min_size=n, max_size=n).map(np.array))


@given(vectors, st.floats(0.01, 1.0))
def test_zero_momentum_is_sgd_exactly(g, lr):
    theta0 = np.linspace(-1, 1, g.size)
    grads = [g, 0.5 * g, -g]
    plain = _ours(opt.sgd(lr), theta0, grads)
    for rule in (opt.momentum, opt.nesterov):
        assert np.array_equal(_ours(rule(lr, 0.0), theta0, grads), plain)


@given(vectors, st.floats(1e-8, 1e-2), st.floats(0.001, 1.0))
def test_adam_first_step_is_lr_g_over_abs_g_plus_eps(g, eps, lr):
    d = _ours(opt.adam(lr, eps=eps), np.zeros(g.size), [g])[1]
    want = -lr * g / (np.abs(g) + eps)
    # held to the vector's largest entry, as compare_leaves holds a leaf: a tiny
    # entry may underflow on the way through (1 − β₁)·g
    assert np.all(np.abs(d - want) <= nm.sum_rounding(np.max(np.abs(want)), F64, 1))


@given(st.floats(0.001, 1.0), st.floats(0.0, 0.5), st.integers(1, 6),
       st.sampled_from(["sgd", "momentum", "nesterov", "adam"]))
def test_decoupled_decay_alone_shrinks_by_one_minus_lr_lambda_per_step(lr, lam, T, rule):
    theta0 = np.array([1.0, -2.0, 0.5])
    path = _ours(opt.Optimizer(rule, lr, decay=lam), theta0, [np.zeros(3)] * T)
    want = theta0 * (1 - lr * lam) ** T
    assert np.all(np.abs(path[-1] - want) <= nm.sum_rounding(np.abs(theta0), F64, T))


@given(vectors, st.floats(0.01, 1.0), st.floats(0.0, 2.0))
def test_coupled_l2_is_the_gradient_of_half_lambda_theta_squared(g, lr, lam):
    theta0 = np.linspace(-1, 2, g.size)
    with_l2 = opt.step(opt.sgd(lr, l2=lam), theta0, g, opt.State(), 1)[0]
    by_hand = opt.step(opt.sgd(lr), theta0, g + lam * theta0, opt.State(), 1)[0]
    assert np.array_equal(with_l2, by_hand)


@given(vectors, st.floats(0.01, 10.0), st.integers(1, 64))
def test_clip_by_norm(g, c, B):
    out, clipped = opt.clip_by_norm(g, c)
    norm = np.linalg.norm(g)
    assert clipped == (norm > c)
    assert np.linalg.norm(out) <= max(norm, c) * (1 + 4 * nm.eps(F64))
    if clipped:
        assert abs(np.linalg.norm(out) - c) <= nm.sum_rounding(c, F64, g.size)
        assert np.all(np.sign(out) == np.sign(g))
    else:
        assert np.array_equal(out, g)
    scaled, _ = opt.clip_by_norm(B * g, B * c)  # the identity behind C6, up to the vector's rounding
    assert np.all(np.abs(scaled - B * out) <= nm.sum_rounding(B * np.max(np.abs(out)), F64, g.size))


def test_hyperparameters_follow_each_steps_batch_size():
    """lr = 1/B with a gradient of B (the sum of B ones) moves θ by exactly 1 per step."""
    batches = [(np.ones((B, 1)),) for B in (3, 3, 1, 2)]
    path = opt.trajectory(opt.sgd(lambda B: 1.0 / B), lambda th, b: -b[0].sum(axis=0), np.zeros(1), batches)
    assert path[:, 0].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]


@pytest.mark.parametrize("dtype", [np.float32, np.longdouble])
def test_trajectory_keeps_the_dtype_and_leaves_theta0_alone(dtype):
    theta0 = np.array([0.3, -0.7], dtype=dtype)
    before = theta0.copy()
    states: list = []
    path = opt.trajectory(opt.adamw(dtype(0.1), decay=0.1), lambda th, b: th * b[0].mean(), theta0,
                          [(np.ones(2, dtype),)] * 3, states=states)
    assert path.dtype == dtype and np.array_equal(theta0, before) and len(states) == 3
    assert states[-1].t == 3 and states[-1].m.dtype == dtype


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule='rmsprop'"):
        opt.Optimizer("rmsprop", 0.1)


# -- check_optimizer: the update rules under test -----------------------------------------------

def sgd_rule(w, g, state, lr, weight_decay=0.0):
    """Right: PyTorch's SGD with coupled weight decay."""
    return w - lr * (g + weight_decay * w), state


def sgdw_rule(w, g, state, lr, weight_decay=0.0):
    """Right: SGD with decoupled decay."""
    return w * (1 - lr * weight_decay) - lr * g, state


def momentum_rule(w, g, state, lr, mu=0.9):
    buf = g if state is None else mu * state + g
    return w - lr * buf, buf


def adam_rule(w, g, state, lr, eps=1e-8, weight_decay=0.0, decoupled=False):
    t, m, v = state if state is not None else (0, np.zeros_like(w), np.zeros_like(w))
    if decoupled:
        w = w * (1 - lr * weight_decay)
    else:
        g = g + weight_decay * w
    t, m, v = t + 1, 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    return w - lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + eps), (t, m, v)


def adamw_rule(w, g, state, lr, eps=1e-8, weight_decay=0.0):
    return adam_rule(w, g, state, lr, eps, weight_decay, decoupled=True)


def clipped_sgd_rule(w, g, state, lr, max_norm):
    return w - lr * opt.clip_by_norm(g, max_norm)[0], state


def sgd_fixed_decay_rule(w, g, state, lr, weight_decay=0.0):
    """Wrong: ignores the weight_decay it is given and always decays by 0.01."""
    return w - lr * (g + 0.01 * w), state


def reference_rule(make):
    """A reference optimizer of gradcheck.training as a step_fn."""
    def step_fn(w, g, state, **hyper):
        return opt.step(make(**hyper), w, g, state or opt.State(), 1)
    return step_fn


def torch_rule(cls, dtype=None, **fixed):
    """A torch.optim optimizer as a step_fn: the state holds the tensor and the
    optimizer; each step loads the params it is given and this step's hyper."""
    dtype = dtype or torch.float64

    def step_fn(w, g, state, **hyper):
        if state is None:
            t = torch.zeros(w.shape, dtype=dtype, requires_grad=True)
            state = (t, cls([t], **fixed, **hyper))
        t, o = state
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.asarray(w)))
        o.param_groups[0].update(hyper)
        t.grad = torch.from_numpy(np.asarray(g)).to(dtype)
        o.step()
        return t.detach().numpy().copy(), state
    return step_fn


def linear_grad(w, x, y):
    """Right mean-squared-error gradient of a linear model."""
    return 2 * x.T @ (x @ w - y) / len(x)


def linear_sum_grad(w, x, y):
    return 2 * x.T @ (x @ w - y)


def _data(seed: int, n: int = 5, d: int = 3, dtype=F64):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=d).astype(dtype), rng.normal(size=(n, d)).astype(dtype),
            rng.normal(size=n).astype(dtype))


def _check(step_fn, seed=0, n=5, dtype=F64, grad=linear_grad, **options):
    w, x, y = _data(seed, n, dtype=dtype)
    return check_optimizer(step_fn, grad, w, x, y, **options)


def _holds(v):
    assert v.holds and v.outcome == "holds", str(v)
    assert str(v).startswith("[gradcheck] check_optimizer holds")
    assert v.error <= v.tolerance and v.resolution <= v.requested
    return str(v)


def _fails(v, *words):
    text = str(v)
    assert v.outcome == "fails" and not v, text
    assert v.error > v.tolerance, text
    for w in words:
        assert w in text, f"{w!r} not in {text}"
    return text


# -- right rules hold -------------------------------------------------------------------------

RIGHT = [
    ("sgd", sgd_rule, dict(hyper={"lr": 0.1})),
    ("sgd-coupled-decay", sgd_rule, dict(hyper={"lr": 0.1, "weight_decay": 0.05})),
    ("sgdw-decoupled-decay", sgdw_rule, dict(hyper={"lr": 0.1, "weight_decay": 0.05})),
    ("clipped-sgd", clipped_sgd_rule, dict(hyper={"lr": 0.1, "max_norm": 0.5})),
    ("momentum-equal-batches", momentum_rule, dict(hyper={"lr": 0.05}, batch_size=2, n=6)),
    ("adam-equal-batches", adam_rule, dict(hyper={"lr": 0.1, "eps": 1e-8}, rescale="adam", batch_size=3, n=6)),
    ("adam-coupled-decay", adam_rule, dict(hyper={"lr": 0.1, "eps": 1e-6, "weight_decay": 0.1},
                                           rescale="adam", batch_size=2, n=4)),
    ("adamw", adamw_rule, dict(hyper={"lr": 0.1, "eps": 1e-8, "weight_decay": 0.1}, rescale="adamw",
                               batch_size=5, epochs=3)),
    ("sum-declared-gradient", sgd_rule, dict(hyper={"lr": 0.1}, grad=linear_sum_grad, reduction="sum")),
    ("reference-nesterov", reference_rule(lambda lr: opt.nesterov(lr, 0.8)),
     dict(hyper={"lr": 0.05}, batch_size=1, n=3)),
    ("torch-sgd", torch_rule(torch.optim.SGD), dict(hyper={"lr": 0.1, "weight_decay": 0.01})),
    ("torch-sgd-momentum", torch_rule(torch.optim.SGD, momentum=0.9), dict(hyper={"lr": 0.05}, batch_size=2, n=6)),
    ("torch-adam", torch_rule(torch.optim.Adam), dict(hyper={"lr": 0.1, "eps": 1e-8}, rescale="adam",
                                                      batch_size=2, n=4)),
    ("torch-adamw", torch_rule(torch.optim.AdamW), dict(hyper={"lr": 0.1, "eps": 1e-8, "weight_decay": 0.1},
                                                        rescale="adamw", batch_size=3, n=9)),
    ("torch-sgd-float32", torch_rule(torch.optim.SGD, dtype=torch.float32),
     dict(hyper={"lr": 0.1}, dtype=np.float32)),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("step_fn, options", [pytest.param(f, o, id=i) for i, f, o in RIGHT])
def test_right_rule_holds(step_fn, options, seed):
    text = _holds(_check(step_fn, seed=seed, **options))
    assert "the rule takes the same" in text


def test_float32_rule_is_held_to_float32_rounding():
    v = _check(torch_rule(torch.optim.SGD, dtype=torch.float32), hyper={"lr": 0.1}, dtype=np.float32)
    assert v.dtype == "float32" and v.tolerance > 1e-9  # float32 ulps, not float64's


# -- wrong rules and wrong declarations fail, with the cause named ------------------------------

def test_sgd_declared_adam_is_named_sgd_type():
    _fails(_check(sgd_rule, hyper={"lr": 0.1}, rescale="adam"),
           "part at step 1 of 6 (batch of 2)", "step there is 2× the mean run's",
           "It holds with rescale='sgd'", "SGD-type rule")


def test_adam_declared_sgd_is_named_adam_type():
    _fails(_check(adam_rule, hyper={"lr": 0.1, "eps": 1e-8}, batch_size=2, n=4),
           "part at step 1", "step there is 0.5× the mean run's", "It holds with rescale='adam'",
           "Adam-type rule")


def test_torch_adam_declared_sgd_is_named_adam_type():
    _fails(_check(torch_rule(torch.optim.Adam), hyper={"lr": 0.1, "eps": 1e-8}, batch_size=3, n=6),
           "It holds with rescale='adam'")


@pytest.mark.parametrize("step_fn", [momentum_rule, torch_rule(torch.optim.SGD, momentum=0.9)],
                         ids=["numpy", "torch"])
def test_momentum_parts_at_the_short_last_batch(step_fn):
    """n = 5 in batches of 2: [2, 2, 1, ...]. The buffer remembers the full batches' scale."""
    _fails(_check(step_fn, hyper={"lr": 0.05}),
           "part at step 3 of 6 (batch of 1)", "agree while B = 2 and part where B changes to 1",
           "average the loss instead")


def test_adam_parts_at_the_short_last_batch_and_says_so():
    _fails(_check(adam_rule, hyper={"lr": 0.1, "eps": 1e-8}, rescale="adam"),
           "part at step 3", "part where B changes to 1")


def test_adam_with_eps_out_of_reach_is_caught_by_eps_effects():
    """ε fixed inside the rule cannot be rescaled: the runs differ by ε's effect alone."""
    text = _fails(_check(adam_rule, hyper={"lr": 0.1}, rescale="adam", batch_size=5),
                  "part at step 1", "pass it in hyper")
    assert "1× the mean run's" in text


def test_adamw_declared_adam_is_caught():
    """Under 'adam' the decay is multiplied by B, which decoupled decay must not be."""
    _fails(_check(adamw_rule, hyper={"lr": 0.1, "eps": 1e-8, "weight_decay": 0.1}, rescale="adam",
                  batch_size=5), "part at step 1", "It holds with rescale='adamw'")


def test_rule_that_ignores_its_weight_decay_is_caught():
    _fails(_check(sgd_fixed_decay_rule, hyper={"lr": 0.1, "weight_decay": 0.01}), "part at step 1")


def test_a_fixed_nominal_rate_parts_at_the_short_last_batch():
    def nominal(hyper, B):  # lr / 2 whatever the batch: right for the full batches of 2 only
        return {"lr": hyper["lr"] / 2}
    _fails(_check(sgd_rule, hyper={"lr": 0.1}, rescale=nominal), "part at step 3", "batch of 1",
           "step there is 0.5× the mean run's")


def test_clipping_threshold_kept_under_the_sum_is_caught():
    def keep_threshold(hyper, B):
        return {"lr": hyper["lr"] / B, "max_norm": hyper["max_norm"]}
    _fails(_check(clipped_sgd_rule, hyper={"lr": 0.1, "max_norm": 0.5}, rescale=keep_threshold),
           "part at step 1", "It holds with rescale='sgd'")


def test_nonfinite_step_is_a_finding():
    def exploding(w, g, state, lr):
        return w * np.inf, state
    _fails(_check(exploding, hyper={"lr": 0.1}), "step_fn returned inf at params[", "at step 1 of the run on L_mean")


def test_nonfinite_gradient_is_a_finding():
    def nan_on_short_batches(w, x, y):
        return linear_grad(w, x, y) * (np.nan if len(x) < 2 else 1.0)
    _fails(_check(sgd_rule, hyper={"lr": 0.1}, grad=nan_on_short_batches),
           "grad_fn returned nan at params[0] (and 2 more entries) at step 3 of the run on L_mean")


def test_assert_optimizer_raises_the_verdict():
    w, x, y = _data(0)
    expected = str(check_optimizer(sgd_rule, linear_grad, w, x, y, hyper={"lr": 0.1}, rescale="adam"))
    with pytest.raises(AssertionError) as info:
        assert_optimizer(sgd_rule, linear_grad, w, x, y, hyper={"lr": 0.1}, rescale="adam")
    assert str(info.value) == expected
    assert assert_optimizer(sgd_rule, linear_grad, w, x, y, hyper={"lr": 0.1}) is None


def test_steps_too_short_to_resolve_are_undetermined():
    v = _check(sgd_rule, hyper={"lr": 1e-300})
    assert v.outcome == "undetermined" and v.reason == "precision-limited", str(v)
    assert "raise the rate" in v.message


# -- the schedule, the presets and misuse ---------------------------------------------------

@pytest.mark.parametrize("n, b", [(1, 1), (2, 1), (3, 2), (4, 3), (5, 2), (6, 4), (8, 3), (12, 5)])
def test_default_batch_size_leaves_a_short_last_batch(n, b):
    assert default_batch_size(n) == b
    sizes = [len(i) for i in schedule(n, b, 2)]
    assert sum(sizes) == 2 * n
    if n >= 3:
        assert sizes[-1] < sizes[0]


def test_presets_name_torch_keys():
    assert RESCALES["sgd"]["lr"] == -1 and RESCALES["adam"]["eps"] == 1 and "weight_decay" not in RESCALES["adamw"]


def test_inputs_are_not_modified():
    w, x, y = _data(1)
    hyper = {"lr": 0.1, "weight_decay": 0.01}
    copies = copy.deepcopy((w, x, y, hyper))
    check_optimizer(sgd_rule, linear_grad, w, x, y, hyper=hyper)
    for a, b in zip((w, x, y), copies[:3]):
        assert np.array_equal(a, b)
    assert hyper == copies[3]


@pytest.mark.parametrize("kwargs, match", [
    (dict(step_fn=3.0), "step_fn=3.0 is not callable"),
    (dict(hyper=[0.1]), "hyper=\\[0.1\\] must be a dict"),
    (dict(hyper={"eps": 1e-8}), "has no 'lr'"),
    (dict(rescale="rmsprop"), "rescale='rmsprop' is not one of"),
    (dict(batch_size=9), "batch_size=9 is larger than the batch of 5"),
    (dict(batch_size=0), "batch_size=0 must be an integer >= 1"),
    (dict(reduction="max"), "reduction='max'"),
    (dict(epochs=0), "epochs=0"),
])
def test_misuse_names_the_argument(kwargs, match):
    w, x, y = _data(0)
    args = dict(step_fn=sgd_rule, hyper={"lr": 0.1})
    args.update(kwargs)
    step_fn = args.pop("step_fn")
    with pytest.raises(GradcheckUsageError, match=match):
        check_optimizer(step_fn, linear_grad, w, x, y, **args)


def test_step_fn_returning_params_alone_is_misuse():
    with pytest.raises(GradcheckUsageError, match="must return a pair"):
        _check(lambda w, g, s, lr: w - lr * g, hyper={"lr": 0.1})


def test_step_fn_returning_the_wrong_shape_is_misuse():
    with pytest.raises(GradcheckUsageError, match="step_fn returned shape"):
        _check(lambda w, g, s, lr: (np.append(w, 0.0), s), hyper={"lr": 0.1})


@given(st.integers(3, 9), st.integers(0, 2**16), st.floats(0.01, 0.3))
def test_sgd_holds_on_generated_problems(n, seed, lr):
    w, x, y = _data(seed, n)
    assume(np.linalg.norm(linear_grad(w, x, y)) > 1e-6)
    _holds(check_optimizer(sgd_rule, linear_grad, w, x, y, hyper={"lr": lr, "weight_decay": 0.01}, seed=seed))


def test_float32_torch_adam_declared_sgd_is_caught():
    _fails(_check(torch_rule(torch.optim.Adam, dtype=torch.float32), hyper={"lr": 0.1, "eps": 1e-6},
                  dtype=np.float32, batch_size=5), "part at step 1", "It holds with rescale='adam'")


@given(st.integers(1, 4), st.integers(1, 3), st.integers(0, 2**16), st.sampled_from([1e-8, 1e-4, 1e-2]))
def test_adam_and_momentum_hold_on_generated_problems_with_equal_batches(B, steps, seed, eps):
    w, x, y = _data(seed, B * steps)
    _holds(check_optimizer(adam_rule, linear_grad, w, x, y, hyper={"lr": 0.05, "eps": eps}, rescale="adam",
                           batch_size=B, seed=seed))
    _holds(check_optimizer(momentum_rule, linear_grad, w, x, y, hyper={"lr": 0.05}, batch_size=B, seed=seed))
