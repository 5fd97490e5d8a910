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
