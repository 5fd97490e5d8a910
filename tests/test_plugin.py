"""gradcheck's pytest plugin, tested on inner pytest runs (pytester, in-process)."""

from __future__ import annotations

import doctest
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import settings

# Imported before any inner run: pytester restores sys.modules after each one,
# and would drop a first import of gradcheck made inside it.
import gradcheck
import gradcheck.pytest_plugin as plugin
from gradcheck.numerics import DEFAULT_RESOLUTION

pytest_plugins = ["pytester"]

# A loss with its right gradient and a wrong one, written into inner test files.
FUNCTIONS = """
import numpy as np
X = np.array([[1.0, 2.0], [0.5, -1.0], [-0.3, 0.8]])
Y = np.array([0.2, -0.1, 0.4])
W = np.array([0.3, -0.2])
def loss(w, x, y):
    return float(np.mean((np.sin(x @ w) - y) ** 2))
def grad(w, x, y):
    r = np.sin(x @ w) - y
    return 2 * x.T @ (r * np.cos(x @ w)) / len(x)
def wrong_grad(w, x, y):
    return 2 * grad(w, x, y)
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch):
    # The outer run may be on CI; inner runs set the environment they test.
    for name in ("CI", "HYPOTHESIS_PROFILE"):
        monkeypatch.delenv(name, raising=False)


def run(pytester: pytest.Pytester, test: str, *args: str, ini: str = "") -> pytest.RunResult:
    if ini:
        pytester.makeini("[pytest]\n" + textwrap.dedent(ini))
    pytester.makepyfile(test_inner=FUNCTIONS + textwrap.dedent(test))
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args)


def header(result: pytest.RunResult) -> list[str]:
    return [line for line in result.outlines if line.startswith("gradcheck:")]


# ------------------------------------------------------------------ registration


def test_the_entry_point_loads_the_plugin_module(pytestconfig):
    # As pytest sees it: the pytest11 entry point "gradcheck" (so -p no:gradcheck turns it off).
    assert pytestconfig.pluginmanager.get_plugin("gradcheck") is plugin


def test_the_marker_is_registered_with_its_signature(pytester):
    result = pytester.runpytest_inprocess("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.gradcheck(resolution=None, seed=None):*"])


def test_the_options_share_one_prefix(pytester):
    result = pytester.runpytest_inprocess("--help")
    result.stdout.fnmatch_lines(["gradcheck:*", "*--gradcheck-resolution=RESOLUTION*",
                                 "*--gradcheck-seed=SEED*", "*--gradcheck-profile=PROFILE*"])
    for name in ("gradcheck_resolution", "gradcheck_seed", "gradcheck_profile"):
        assert any(line.strip().startswith(name) for line in result.outlines), name


# ------------------------------------------------------------------ header


def test_the_header_shows_profile_resolution_and_seed_once(pytester):
    result = run(pytester, "def test_a(): pass", "--gradcheck-profile=ci", "--gradcheck-seed=7")
    assert header(result) == [
        "gradcheck: hypothesis profile gradcheck-ci (30 examples, derandomized), from command line",
        f"gradcheck: resolution {DEFAULT_RESOLUTION!r} (default), seed 7 (command line); "
        f"replay with --gradcheck-profile=ci --gradcheck-resolution={DEFAULT_RESOLUTION!r} --gradcheck-seed=7",
    ]


def test_the_replay_options_give_back_the_same_resolution(pytester):
    lines = header(run(pytester, "def test_a(): pass", "--gradcheck-resolution=1.2345678901234e-05"))
    assert lines[1].endswith("replay with --gradcheck-resolution=1.2345678901234e-05 --gradcheck-seed=0")


def test_without_a_profile_the_header_says_hypothesis_was_left_alone(pytester):
    lines = header(run(pytester, "def test_a(): pass"))
    draws = "derandomized" if settings.default.derandomize else "random, --hypothesis-seed=N fixes the draws"
    assert lines[0] == (f"gradcheck: hypothesis profile {settings.get_current_profile_name()} "
                        f"({settings.default.max_examples} examples, {draws}), "
                        "not set by gradcheck; choose one with --gradcheck-profile")
    assert "--gradcheck-profile" not in lines[1].split("replay with")[1]


AUTO_SOURCES = [
    ({}, "gradcheck-dev", "auto (ini gradcheck_profile in tox.ini): neither $CI nor $HYPOTHESIS_PROFILE is set"),
    ({"CI": "true"}, "gradcheck-ci", "auto (ini gradcheck_profile in tox.ini): $CI is set"),
    ({"CI": "true", "HYPOTHESIS_PROFILE": "thorough"}, "gradcheck-thorough",
     "auto (ini gradcheck_profile in tox.ini): $HYPOTHESIS_PROFILE=thorough"),
]


@pytest.mark.parametrize("environment, loaded, source", AUTO_SOURCES)
def test_the_header_says_what_in_the_environment_chose_an_auto_profile(pytester, monkeypatch, environment,
                                                                       loaded, source):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    pytester.makefile(".ini", tox="[pytest]\ngradcheck_profile = auto")
    line = header(run(pytester, "def test_a(): pass"))[0]
    assert line.startswith(f"gradcheck: hypothesis profile {loaded} (") and line.endswith(f"), from {source}")


def test_a_random_profile_says_how_to_fix_its_draws(pytester):
    lines = header(run(pytester, "def test_a(): pass", "--gradcheck-profile=dev"))
    assert "(50 examples, random, --hypothesis-seed=N fixes the draws)" in lines[0]
    lines = header(run(pytester, "def test_a(): pass", "--gradcheck-profile=dev", "--hypothesis-seed=5"))
    assert "(50 examples, random, --hypothesis-seed=5)" in lines[0]


# ------------------------------------------------------------------ precedence: marker, command line, ini

INI = "gradcheck_resolution = 1e-5\ngradcheck_seed = 11\n"

PRECEDENCE = [
    # (marker line, command line, ini, expected resolution, expected seed)
    ("", (), "", DEFAULT_RESOLUTION, 0),
    ("", (), INI, 1e-5, 11),
    ("", ("--gradcheck-resolution=1e-4",), INI, 1e-4, 11),
    ("", ("--gradcheck-resolution=1e-4", "--gradcheck-seed=5"), INI, 1e-4, 5),
    ("@pytest.mark.gradcheck(seed=3)", ("--gradcheck-resolution=1e-4", "--gradcheck-seed=5"), INI, 1e-4, 3),
    ("@pytest.mark.gradcheck(resolution=1e-6, seed=3)", ("--gradcheck-resolution=1e-4",), INI, 1e-6, 3),
]


@pytest.mark.parametrize("marker, args, ini, resolution, seed", PRECEDENCE)
def test_settings_resolve_marker_then_command_line_then_ini(pytester, marker, args, ini, resolution, seed):
    test = f"""
    import pytest
    {marker}
    def test_a(gradcheck):
        assert (gradcheck.resolution, gradcheck.seed) == ({resolution!r}, {seed!r})
    """
    run(pytester, test, *args, ini=ini).assert_outcomes(passed=1)


def test_the_closest_marker_wins_per_keyword(pytester):
    test = """
    import pytest
    pytestmark = pytest.mark.gradcheck(resolution=1e-5, seed=9)
    @pytest.mark.gradcheck(seed=2)
    def test_a(gradcheck):
        assert (gradcheck.resolution, gradcheck.seed) == (1e-5, 2)
    def test_b(gradcheck):
        assert (gradcheck.resolution, gradcheck.seed) == (1e-5, 9)
    """
    run(pytester, test, "--gradcheck-seed=4").assert_outcomes(passed=2)


def test_the_marker_works_under_strict_markers(pytester):
    test = """
    import pytest
    @pytest.mark.gradcheck(resolution=1e-4)
    def test_a(gradcheck):
        assert gradcheck.resolution == 1e-4
    """
    run(pytester, test, "--strict-markers").assert_outcomes(passed=1)


# ------------------------------------------------------------------ bad values name their source

BAD_CONFIG = [
    (("--gradcheck-resolution=2",), "", "resolution '2' from command line --gradcheck-resolution"),
    (("--gradcheck-resolution=fine",), "", "resolution 'fine' from command line --gradcheck-resolution"),
    (("--gradcheck-seed=-1",), "", "seed '-1' from command line --gradcheck-seed"),
    (("--gradcheck-seed=1.5",), "", "seed '1.5' from command line --gradcheck-seed"),
    (("--gradcheck-profile=fast",), "", "profile 'fast' from command line --gradcheck-profile is not one of "
                                        "ci, dev, thorough, auto"),
    ((), "gradcheck_resolution = 0", "resolution '0' from ini gradcheck_resolution in tox.ini"),
    ((), "gradcheck_profile = slow", "profile 'slow' from ini gradcheck_profile in tox.ini"),
    (("-o", "gradcheck_seed=x"), "", "seed 'x' from command line -o gradcheck_seed"),
]


@pytest.mark.parametrize("args, ini, message", BAD_CONFIG)
def test_a_bad_option_is_a_usage_error_naming_its_source(pytester, args, ini, message):
    if ini:
        pytester.makefile(".ini", tox="[pytest]\n" + ini)
    result = run(pytester, "def test_a(): pass", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: gradcheck: {message}" in result.stderr.str()


def test_a_bad_profile_in_the_environment_names_the_variable(pytester, monkeypatch):
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "auto")
    result = run(pytester, "def test_a(): pass", "--gradcheck-profile=auto")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert ("profile 'auto' from environment HYPOTHESIS_PROFILE (read for profile auto, from command line) "
            "is not one of ci, dev, thorough") in result.stderr.str()


ON = "@pytest.mark.gradcheck on test_inner.py::test_marked"
BAD_MARKERS = [
    ("@pytest.mark.gradcheck(resolution=-1e-3)", f"resolution -0.001 from {ON} is not a number between 0 and 1"),
    ("@pytest.mark.gradcheck(seed=True)", f"seed True from {ON} is not a non-negative integer"),
    ("@pytest.mark.gradcheck(resolutoin=1e-4)", f"{ON} takes only resolution= and seed= keywords, not resolutoin"),
    ("@pytest.mark.gradcheck(1e-4)", f"{ON} takes only resolution= and seed= keywords, not 0.0001"),
]


@pytest.mark.parametrize("marker, message", BAD_MARKERS)
def test_a_bad_marker_errors_its_test_naming_the_marker(pytester, marker, message):
    test = f"""
    import pytest
    {marker}
    def test_marked():
        pass
    def test_other(gradcheck):
        pass
    """
    result = run(pytester, test)
    result.assert_outcomes(passed=1, errors=1)
    assert f"gradcheck: {message}" in result.stdout.str()


# ------------------------------------------------------------------ the fixture


def test_the_fixture_passes_a_right_gradient_and_fails_a_wrong_one(pytester):
    test = """
    def test_right(gradcheck):
        gradcheck.assert_gradient(loss, grad, W, X, Y)
        gradcheck.assert_reduction(grad, W, X, Y, reduction="mean")
    def test_wrong(gradcheck):
        gradcheck.assert_gradient(loss, wrong_grad, W, X, Y)
    def test_wrong_reduction(gradcheck):
        gradcheck.assert_reduction(grad, W, X, Y, reduction="sum")
    """
    result = run(pytester, test)
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*gradcheck.assert_gradient(loss, wrong_grad, W, X, Y)",
                                 "E*AssertionError: [[]gradcheck] check_gradient failed*"])
    result.stdout.fnmatch_lines(["E*AssertionError: [[]gradcheck] check_reduction failed*"])


def _namespace() -> dict:
    namespace: dict = {}
    exec(FUNCTIONS, namespace)
    return namespace


def test_a_failing_assert_raises_exactly_gradchecks_message():
    f = _namespace()
    checks = plugin.Checkers(resolution=DEFAULT_RESOLUTION, seed=0)
    for method, args in [("assert_gradient", (f["loss"], f["wrong_grad"])),
                         ("assert_reduction", (f["grad"],))]:
        options = {"reduction": "sum"} if method == "assert_reduction" else {}
        with pytest.raises(AssertionError) as ours:
            getattr(checks, method)(*args, f["W"], f["X"], f["Y"], **options)
        with pytest.raises(AssertionError) as theirs:
            getattr(gradcheck, method)(*args, f["W"], f["X"], f["Y"], **options)
        assert str(ours.value) == str(theirs.value)
        assert str(ours.value).startswith("[gradcheck] ")


def test_the_fixture_gives_its_resolution_and_seed_unless_the_call_does(monkeypatch):
    calls = []

    def check_gradient(loss_fn, grad_fn, params, *batch, seed=0, resolution=1e-3):
        calls.append((seed, resolution))

    monkeypatch.setattr(gradcheck, "check_gradient", check_gradient)
    checks = plugin.Checkers(resolution=1e-5, seed=4)
    checks.check_gradient(None, None, None)
    checks.check_gradient(None, None, None, seed=1)
    checks.check_gradient(None, None, None, resolution=1e-2)
    assert calls == [(4, 1e-5), (1, 1e-5), (4, 1e-2)]


def test_a_checker_without_a_seed_gets_only_the_resolution():
    # check_accumulation takes no seed: passing one would be a TypeError.
    f = _namespace()

    def summed(w, micro):
        return sum(f["grad"](w, x, y) * len(x) for x, y in micro) / sum(len(x) for x, _ in micro)

    v = plugin.Checkers(resolution=1e-5, seed=4).check_accumulation(summed, f["grad"], f["W"], f["X"], f["Y"])
    assert v.holds and v.requested == 1e-5


def test_the_marker_resolution_reaches_the_verdict(pytester):
    test = """
    import pytest
    @pytest.mark.gradcheck(resolution=1e-7)
    def test_a(gradcheck):
        assert gradcheck.check_gradient(loss, grad, W, X, Y).requested == 1e-7
        assert gradcheck.check_reduction(grad, W, X, Y).requested == 1e-7
    """
    run(pytester, test, "--gradcheck-resolution=1e-2").assert_outcomes(passed=1)


# ------------------------------------------------------------------ Hypothesis profiles

PROFILE_CASES = [
    # (command line, environment, profile loaded inside the run)
    (("--gradcheck-profile=ci",), {}, "gradcheck-ci"),
    (("--gradcheck-profile=thorough",), {"CI": "true"}, "gradcheck-thorough"),
    (("--gradcheck-profile=gradcheck-dev",), {}, "gradcheck-dev"),
    (("--gradcheck-profile=auto",), {}, "gradcheck-dev"),
    (("--gradcheck-profile=auto",), {"CI": "true"}, "gradcheck-ci"),
    (("--gradcheck-profile=auto",), {"CI": "true", "HYPOTHESIS_PROFILE": "thorough"}, "gradcheck-thorough"),
    (("-o", "gradcheck_profile=auto"), {"CI": "1"}, "gradcheck-ci"),
]


@pytest.mark.parametrize("args, environment, loaded", PROFILE_CASES)
def test_the_profile_sets_hypothesis_inside_the_run(pytester, monkeypatch, args, environment, loaded):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    expected = plugin.PROFILES[loaded.removeprefix("gradcheck-")]
    test = f"""
    from hypothesis import given, settings, strategies as st
    def test_profile():
        assert settings.get_current_profile_name() == {loaded!r}
        assert settings.default.max_examples == {expected["max_examples"]}
        assert settings.default.derandomize == {expected.get("derandomize", False)}
    """
    before = settings.get_current_profile_name()
    run(pytester, test, *args).assert_outcomes(passed=1)
    assert settings.get_current_profile_name() == before  # the outer run's profile is put back


def test_a_derandomized_profile_runs_its_examples_and_draws_the_same_each_run(pytester):
    test = """
    from hypothesis import given, strategies as st
    @given(st.integers())
    def test_draws(n):
        with open("draws.txt", "a") as f:
            f.write(f"{n}\\n")
    """
    run(pytester, test, "--gradcheck-profile=ci").assert_outcomes(passed=1)
    first = (pytester.path / "draws.txt").read_text().split()
    (pytester.path / "draws.txt").unlink()
    run(pytester, test, "--gradcheck-profile=ci").assert_outcomes(passed=1)
    assert len(first) == plugin.PROFILES["ci"]["max_examples"]
    assert (pytester.path / "draws.txt").read_text().split() == first


def test_without_a_profile_hypothesis_is_left_alone(pytester):
    before = settings.get_current_profile_name()
    test = f"""
    from hypothesis import settings
    def test_profile():
        assert settings.get_current_profile_name() == {before!r}
    """
    run(pytester, test).assert_outcomes(passed=1)


def test_an_explicit_hypothesis_profile_wins_and_the_header_says_so(pytester):
    result = run(pytester, "def test_a(): pass", "--gradcheck-profile=ci", "--hypothesis-profile=default")
    assert header(result)[0].startswith("gradcheck: hypothesis profile default (")
    assert header(result)[0].endswith("not set by gradcheck; choose one with --gradcheck-profile")


def test_the_profiles_are_registered_under_the_gradcheck_prefix_only():
    # Hypothesis' own "ci" profile, which it loads by itself on CI, stays as Hypothesis made it.
    assert settings.get_profile("ci").max_examples != plugin.PROFILES["ci"]["max_examples"]
    for name, values in plugin.PROFILES.items():
        profile = settings.get_profile("gradcheck-" + name)
        assert profile.max_examples == values["max_examples"]
        assert profile.deadline is None


def test_this_suite_runs_under_a_gradcheck_profile():
    # pyproject.toml sets gradcheck_profile = "auto" for the project's own suite.
    assert settings.get_current_profile_name().startswith("gradcheck-")


def test_the_fixture_works_in_this_suite_too(gradcheck):
    f = _namespace()
    gradcheck.assert_gradient(f["loss"], f["grad"], f["W"], f["X"], f["Y"])
    assert np.isclose(gradcheck.resolution, DEFAULT_RESOLUTION)


def test_the_module_examples_run():
    assert doctest.testmod(plugin, optionflags=doctest.ELLIPSIS).failed == 0


# ------------------------------------------------------------------ PyTorch: one line per model and loss

TORCH_MODELS = """
import pytest, torch

class WrongTanh(torch.autograd.Function):
    # The forward pass is tanh; the backward pass doubles tanh's derivative.
    @staticmethod
    def forward(ctx, z):
        out = torch.tanh(z)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, g):
        (out,) = ctx.saved_tensors
        return 2 * g * (1 - out * out)

class Net(torch.nn.Module):
    def __init__(self, activation):
        super().__init__()
        self.layer1, self.layer2, self.activation = torch.nn.Linear(3, 4), torch.nn.Linear(4, 1), activation
    def forward(self, x):
        return self.layer2(self.activation(self.layer1(x)))

torch.manual_seed(0)
XT, YT = torch.randn(6, 3), torch.randn(6, 1)
"""


def test_assert_model_checks_a_torch_model_and_its_loss_in_one_line(pytester):
    pytest.importorskip("torch")
    test = TORCH_MODELS + textwrap.dedent("""
    def test_right(gradcheck):
        gradcheck.assert_model(Net(torch.tanh).float(), torch.nn.MSELoss(), XT, YT, reduction="mean")
    def test_wrong_backward(gradcheck):
        gradcheck.assert_model(Net(WrongTanh.apply), torch.nn.MSELoss(), XT, YT)
    def test_wrong_reduction(gradcheck):
        gradcheck.assert_model(Net(torch.tanh), torch.nn.MSELoss(), XT, YT, reduction="sum")
    def test_verdicts(gradcheck):
        verdicts = gradcheck.check_model(Net(torch.tanh), torch.nn.MSELoss(reduction="sum"), XT, YT,
                                         reduction=None)
        assert [v.holds for v in verdicts] == [True]
    """)
    result = run(pytester, test)
    result.assert_outcomes(passed=2, failed=2)
    # The wrong entries are named as torch names the parameters.
    result.stdout.fnmatch_lines(["*def test_wrong_backward*",
                                 "E*AssertionError: [[]gradcheck] check_gradient failed*params[[]'layer1.*"])
    result.stdout.fnmatch_lines(["*def test_wrong_reduction*",
                                 "E*AssertionError: [[]gradcheck] check_reduction failed*"])


def test_the_plugin_imports_torch_only_when_a_model_is_checked(pytester):
    test = """
    import sys
    def test_no_torch(gradcheck):
        gradcheck.assert_gradient(loss, grad, W, X, Y)
        assert "torch" not in sys.modules
    """
    pytester.makepyfile(test_inner=FUNCTIONS + textwrap.dedent(test))
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist").assert_outcomes(passed=1)


def test_without_torch_assert_model_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    monkeypatch.delitem(sys.modules, "gradcheck.torch", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"needs PyTorch: pip install 'gradcheck\[torch\]'"):
        plugin.Checkers(resolution=1e-3, seed=0).assert_model(object(), object(), np.ones((2, 1)))
