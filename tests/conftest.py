"""The suite's Hypothesis profiles come from gradcheck's pytest plugin
(gradcheck/pytest_plugin.py), chosen by ``gradcheck_profile = "auto"`` in
pyproject.toml: $HYPOTHESIS_PROFILE, else ci when $CI is set, else dev.

- ci: derandomized, a fixed draw every run: no flakiness, under 5 minutes on 2 cores;
- dev: the default for local runs, random draws, a little more than ci;
- thorough: long runs (pytest -n auto spreads them over cores).

``--gradcheck-profile=thorough`` picks one on the command line.
"""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    # Without the plugin the suite would run on Hypothesis' defaults: random
    # draws on CI, and a profile nobody asked for. Say so instead.
    if not config.pluginmanager.has_plugin("gradcheck"):
        raise pytest.UsageError("gradcheck's pytest plugin is not loaded: install the package "
                                "(pip install -e .) so its pytest11 entry point is registered, "
                                "and do not pass -p no:gradcheck")


@pytest.fixture(scope="session", autouse=True)
def _jax_compilations_shared(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One XLA compilation cache for every worker of the run: the optax
    real-loss table is computed by its own tests and again by the docs build,
    jax.jit compiles once per batch size, and a second computation that finds
    the first one's code on disk takes 4 s instead of 12 (measured). The
    compiled code is the same either way; only where it comes from differs."""
    try:
        import jax
    except ImportError:
        return
    # The base directory every xdist worker's own temporary directory sits in.
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if root.name.startswith("popen-gw") else root) / "xla-cache"
    shared.mkdir(exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(shared))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
