"""gradcheck's pytest plugin: a ``gradcheck`` fixture, a marker, options and Hypothesis profiles.

It is registered with a ``pytest11`` entry point, so it loads in any suite
where gradcheck is installed (``-p no:gradcheck`` turns it off). The one line
a suite adds to check its model and loss is a test asking for the fixture::

    def test_my_loss(gradcheck):
        gradcheck.assert_gradient(loss_fn, grad_fn, params, x, y)
        gradcheck.assert_reduction(grad_fn, params, x, y, reduction="mean")

For PyTorch (``gradcheck[torch]``) the line checks a model and its loss:
the gradient against finite differences of a float64 copy, and the reduction::

    def test_my_model(gradcheck):
        gradcheck.assert_model(model, torch.nn.CrossEntropyLoss(), x, y, reduction="mean")

The fixture's methods are gradcheck's checkers (``check_*``, ``assert_*``,
``infer_reduction``) with the resolved resolution and seed filled in; a
keyword given in the call wins. A failing ``assert_*`` raises
``AssertionError(str(verdict))``, the same message as ``gradcheck.assert_*``;
``assert_model`` and ``check_model`` import torch only when called.

Settings, each taken from the first source that gives it
(marker, then command line, then ini, then the default):

============  ========================================  ==========================  ====================================
setting       marker                                    command line / ini          default
============  ========================================  ==========================  ====================================
resolution    ``@pytest.mark.gradcheck(resolution=…)``  ``--gradcheck-resolution``  ``numerics.DEFAULT_RESOLUTION``
                                                        ``gradcheck_resolution``
seed          ``@pytest.mark.gradcheck(seed=…)``        ``--gradcheck-seed``        0 (the probe directions' seed)
                                                        ``gradcheck_seed``
profile       (session-wide, no marker)                 ``--gradcheck-profile``     none: Hypothesis is left alone
                                                        ``gradcheck_profile``
============  ========================================  ==========================  ====================================

A bad value names where it came from, e.g. ``gradcheck: resolution '2' from
command line --gradcheck-resolution is not ...``: on the command line or in
the ini file it stops the run, in a marker it is an error of that test.

Hypothesis profiles are registered as ``gradcheck-ci`` (derandomized, 30
examples, no database: the same draws every run), ``gradcheck-dev`` (50
random examples) and ``gradcheck-thorough`` (1000). They are prefixed because
Hypothesis ships its own ``ci`` profile and loads it by itself on CI, and a
suite may have its own ``dev``: registering plain names would silently change
the settings of every suite that merely has gradcheck installed. For the same
reason no profile is loaded unless one is asked for. ``--gradcheck-profile``
takes ``ci``, ``dev``, ``thorough`` or ``auto``: the environment decides, as in
gradcheck's own suite (``gradcheck_profile = "auto"`` in its pyproject.toml):
``$HYPOTHESIS_PROFILE`` if set, else ``ci`` when ``$CI`` is set, else ``dev``.
For one test, use ``@settings(settings.get_profile("gradcheck-thorough"))``.

The report header states the profile (examples, derandomized or not), the
resolution and the seed with their sources, and the options that replay the
run.
"""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import pytest
from hypothesis import HealthCheck, settings

if TYPE_CHECKING:
    from gradcheck.verdict import Verdict

__all__ = ["Checkers", "PROFILES", "gradcheck", "register_profiles"]

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# max_examples per profile: ci keeps `pytest` on 2 cores under 5 minutes (DESIGN §5).
PROFILES = {
    "ci": dict(derandomize=True, database=None, max_examples=30, print_blob=True, **_COMMON),
    "dev": dict(max_examples=50, **_COMMON),
    "thorough": dict(max_examples=1000, **_COMMON),
}
_PREFIX = "gradcheck-"
_MARKER = "gradcheck"
_CHECKERS = ("check_gradient", "check_reduction", "infer_reduction", "check_accumulation", "check_data_parallel")
_ASSERTS = ("assert_gradient", "assert_reduction", "assert_accumulation", "assert_data_parallel")


def register_profiles() -> None:
    """Register gradcheck's Hypothesis profiles as ``gradcheck-ci``, ``-dev``, ``-thorough``.

    >>> register_profiles()
    >>> settings.get_profile("gradcheck-ci").derandomize
    True
    """
    # On Hypothesis' own defaults: a parent left implicit would be whichever profile is loaded now.
    base = settings.get_profile("default")
    for name, values in PROFILES.items():
        settings.register_profile(_PREFIX + name, base, **values)


# ------------------------------------------------------------------ settings and where they came from


@dataclass(frozen=True)
class Setting:
    """A resolved value and the source it came from, for the header and for errors."""

    value: Any
    source: str


def _parse_resolution(text: Any, source: str) -> float:
    try:
        r = float(text)
    except (TypeError, ValueError):
        r = float("nan")
    if isinstance(text, bool) or not 0.0 < r < 1.0:
        raise pytest.UsageError(f"gradcheck: resolution {text!r} from {source} is not a number between 0 and 1 "
                                f"(the smallest relative error a check must catch, e.g. 1e-3)")
    return r


def _parse_seed(text: Any, source: str) -> int:
    try:
        ok = not isinstance(text, (bool, float)) and int(text) >= 0
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise pytest.UsageError(f"gradcheck: seed {text!r} from {source} is not a non-negative integer (e.g. 0)")
    return int(text)


def _parse_profile(text: Any, source: str, *, auto: bool = True) -> str:
    name = str(text).removeprefix(_PREFIX)
    if name not in PROFILES and not (auto and name == "auto"):
        choices = ", ".join([*PROFILES, "auto"] if auto else PROFILES)
        raise pytest.UsageError(f"gradcheck: profile {text!r} from {source} is not one of {choices}")
    return name


_PARSERS = {"resolution": _parse_resolution, "seed": _parse_seed, "profile": _parse_profile}


def _ini_source(config: pytest.Config, name: str) -> str:
    # -o name=value overrides the ini file: name the place the user has to edit.
    if any(o.split("=", 1)[0] == name for o in config.option.override_ini or ()):
        return f"command line -o {name}"
    return f"ini {name} in {config.inipath.name if config.inipath else 'the ini file'}"


def _from_config(config: pytest.Config, key: str, default: Any) -> Setting:
    """Command line, then ini, then the default; parsed, or a usage error naming the source."""
    parse = _PARSERS[key]
    cli = config.getoption(f"gradcheck_{key}")
    if cli is not None:
        return Setting(parse(cli, f"command line --gradcheck-{key}"), "command line")
    ini = config.getini(f"gradcheck_{key}")
    if ini not in ("", None):
        source = _ini_source(config, f"gradcheck_{key}")
        return Setting(parse(ini, source), source)
    return Setting(default, "default")


def _from_environment(auto: Setting) -> Setting:
    """``auto``: $HYPOTHESIS_PROFILE, else ci when $CI is set, else dev (as gradcheck's suite always did)."""
    chosen, how = os.environ.get("HYPOTHESIS_PROFILE"), f"auto ({auto.source})"
    if chosen:
        where = f"environment HYPOTHESIS_PROFILE (read for profile auto, from {auto.source})"
        return Setting(_parse_profile(chosen, where, auto=False), f"{how}: $HYPOTHESIS_PROFILE={chosen}")
    if os.environ.get("CI"):
        return Setting("ci", f"{how}: $CI is set")
    return Setting("dev", f"{how}: neither $CI nor $HYPOTHESIS_PROFILE is set")


def _marker_settings(item: pytest.Item) -> dict[str, Setting]:
    """Keywords of the ``gradcheck`` markers on ``item``; the closest marker wins per keyword."""
    found: dict[str, Setting] = {}
    for mark in item.iter_markers(_MARKER):
        source = f"@pytest.mark.gradcheck on {item.nodeid}"
        unknown = set(mark.kwargs) - {"resolution", "seed"}
        if mark.args or unknown:
            given = ", ".join([*map(repr, mark.args), *sorted(unknown)])
            raise pytest.UsageError(f"gradcheck: {source} takes only resolution= and seed= keywords, not {given}")
        for key, value in mark.kwargs.items():
            found.setdefault(key, Setting(_PARSERS[key](value, source), source))
    return found


# ------------------------------------------------------------------ hooks


_STATE = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gradcheck", "gradcheck: gradient and mini-batch reduction checks")
    helps = {
        "resolution": "smallest relative gradient error a check must catch to say 'holds' (default 1e-3)",
        "seed": "seed for the checkers' probe directions (default 0)",
        "profile": "Hypothesis profile: ci, dev, thorough, or auto ($HYPOTHESIS_PROFILE, else ci if $CI, else dev); "
                   "registered as gradcheck-<name>. Default: leave Hypothesis' profile alone",
    }
    for key, text in helps.items():
        group.addoption(f"--gradcheck-{key}", dest=f"gradcheck_{key}", default=None, metavar=key.upper(), help=text)
        parser.addini(f"gradcheck_{key}", text, default="")


@pytest.hookimpl(tryfirst=True)  # before Hypothesis' plugin, so an explicit --hypothesis-profile still wins
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "gradcheck(resolution=None, seed=None): override gradcheck's resolution "
                                       "and probe seed for this test's `gradcheck` fixture")
    register_profiles()
    from gradcheck.numerics import DEFAULT_RESOLUTION  # imported here: the plugin loads in suites not using it

    state = {"resolution": _from_config(config, "resolution", DEFAULT_RESOLUTION),
             "seed": _from_config(config, "seed", 0),
             "profile": _from_config(config, "profile", None),
             "previous": settings.get_current_profile_name()}
    if state["profile"].value == "auto":
        state["profile"] = _from_environment(state["profile"])
    if state["profile"].value is not None:
        settings.load_profile(_PREFIX + state["profile"].value)
    config.stash[_STATE] = state


def pytest_unconfigure(config: pytest.Config) -> None:
    # Put Hypothesis back as it was: an in-process pytester run must not change its caller's profile.
    state = config.stash.get(_STATE, None)
    if state and state["profile"].value is not None:
        settings.load_profile(state["previous"])


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[_STATE]
    return [_profile_line(config, state["profile"]), _checker_line(state)]


def _profile_line(config: pytest.Config, chosen: Setting) -> str:
    active, current = settings.get_current_profile_name(), settings.default
    if chosen.value is not None and active == _PREFIX + chosen.value:
        origin = f"from {chosen.source}"
    else:
        origin = "not set by gradcheck; choose one with --gradcheck-profile"
    seed = config.getoption("hypothesis_seed", None)
    if current.derandomize:
        draws = "derandomized"
    elif seed is not None:
        draws = f"random, --hypothesis-seed={seed}"
    else:
        draws = "random, --hypothesis-seed=N fixes the draws"
    return f"gradcheck: hypothesis profile {active} ({current.max_examples} examples, {draws}), {origin}"


def _checker_line(state: dict) -> str:
    r, s = state["resolution"], state["seed"]
    # repr: the shortest text that reads back as the same float, so the replay is exact.
    replay = f"--gradcheck-resolution={r.value!r} --gradcheck-seed={s.value}"
    if state["profile"].value is not None:
        replay = f"--gradcheck-profile={state['profile'].value} " + replay
    return f"gradcheck: resolution {r.value!r} ({r.source}), seed {s.value} ({s.source}); replay with {replay}"


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # A bad marker is an error of its test even if the test does not use the fixture.
    _marker_settings(item)


# ------------------------------------------------------------------ the fixture


class Checkers:
    """gradcheck's checkers with this test's resolution and seed filled in.

    Each method takes the arguments of the gradcheck function of the same name;
    ``resolution=`` and ``seed=`` are passed where that function takes them,
    unless the call gives its own.

    >>> import numpy as np
    >>> checks = Checkers(resolution=1e-6, seed=0)
    >>> checks.assert_gradient(lambda w: float(w @ w), lambda w: 2 * w, np.array([1.0, -2.0]))
    >>> checks.check_gradient(lambda w: float(w @ w), lambda w: 3 * w, np.array([1.0, -2.0])).holds
    False
    """

    # Made below from gradcheck's functions of the same names.
    check_gradient: Callable[..., Verdict]
    check_reduction: Callable[..., Verdict]
    infer_reduction: Callable[..., str]
    check_accumulation: Callable[..., Verdict]
    check_data_parallel: Callable[..., Verdict]
    assert_gradient: Callable[..., None]
    assert_reduction: Callable[..., None]
    assert_accumulation: Callable[..., None]
    assert_data_parallel: Callable[..., None]

    def __init__(self, resolution: float, seed: int) -> None:
        self.resolution = resolution
        self.seed = seed

    def _run(self, name: str, args: tuple, options: dict) -> Any:
        import gradcheck

        fn = getattr(gradcheck, name)
        accepted = inspect.signature(fn).parameters
        for key in ("resolution", "seed"):
            if key in accepted:
                options.setdefault(key, getattr(self, key))
        return fn(*args, **options)

    def check_model(self, model: Any, loss: Any, *batch: Any, reduction: str | None = "mean",
                    weights: Any = None, **adapter: Any) -> tuple[Verdict, ...]:
        """A PyTorch ``model`` and ``loss``: its gradient against float64 finite
        differences, then (unless ``reduction=None``) how it reduces over the batch.

        The batch is as ``gradcheck.torch.functions`` takes it (by default
        ``loss(model(x), y)``); ``adapter`` keywords (``dtype=``, ``forward=``)
        go to it. Returns the verdicts, gradient first.
        """
        loss_fn, grad_fn, params = _torch_functions(model, loss, adapter)
        verdicts = [self.check_gradient(loss_fn, grad_fn, params, *batch)]
        if reduction is not None:
            verdicts.append(self.check_reduction(grad_fn, params, *batch, reduction=reduction, weights=weights))
        return tuple(verdicts)

    def assert_model(self, model: Any, loss: Any, *batch: Any, reduction: str | None = "mean",
                     weights: Any = None, **adapter: Any) -> None:
        """The one line for PyTorch: raise ``AssertionError(str(verdict))`` for
        the first verdict of :meth:`check_model` that does not hold. ::

            gradcheck.assert_model(model, torch.nn.CrossEntropyLoss(), x, y, reduction="mean")
        """
        __tracebackhide__ = True
        for verdict in self.check_model(model, loss, *batch, reduction=reduction, weights=weights, **adapter):
            if not verdict.holds:
                raise AssertionError(str(verdict))

    def __repr__(self) -> str:
        return f"<gradcheck fixture: resolution={self.resolution:g}, seed={self.seed}>"


def _torch_functions(model: Any, loss: Any, adapter: dict) -> tuple[Any, Any, Any]:
    # torch is imported only when a test asks for a model: the plugin loads in every suite.
    try:
        from gradcheck.torch import functions
    except ModuleNotFoundError as e:
        if e.name != "torch":
            raise
        raise ModuleNotFoundError("gradcheck.assert_model needs PyTorch: pip install 'gradcheck[torch]'",
                                  name="torch") from e
    return functions(model, loss, **adapter)


def _checker(name: str) -> Callable[..., Any]:
    def method(self: Checkers, *args: Any, **options: Any) -> Any:
        return self._run(name, args, options)

    method.__name__ = name
    method.__doc__ = f"``gradcheck.{name}`` with the fixture's resolution and seed."
    return method


def _asserter(name: str) -> Callable[..., None]:
    check = "check_" + name.removeprefix("assert_")

    def method(self: Checkers, *args: Any, **options: Any) -> None:
        __tracebackhide__ = True  # the failure points at the test's line, with the verdict as message
        verdict = self._run(check, args, options)
        if not verdict.holds:
            raise AssertionError(str(verdict))  # exactly what gradcheck.assert_* raises

    method.__name__ = name
    method.__doc__ = f"``gradcheck.{name}`` with the fixture's resolution and seed."
    return method


for _name in _CHECKERS:
    setattr(Checkers, _name, _checker(_name))
for _name in _ASSERTS:
    setattr(Checkers, _name, _asserter(_name))


@pytest.fixture
def gradcheck(request: pytest.FixtureRequest) -> Checkers:
    """gradcheck's checkers with the resolution and seed resolved for this test.

    Marker, then ``--gradcheck-resolution`` / ``--gradcheck-seed``, then the ini
    options, then the defaults. ::

        @pytest.mark.gradcheck(resolution=1e-6)
        def test_loss(gradcheck):
            gradcheck.assert_gradient(loss_fn, grad_fn, params, x, y)
    """
    state = request.config.stash[_STATE]
    marked = _marker_settings(request.node)
    resolution = marked.get("resolution", state["resolution"]).value
    seed = marked.get("seed", state["seed"]).value
    return Checkers(resolution=resolution, seed=seed)
