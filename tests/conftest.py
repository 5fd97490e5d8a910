"""Hypothesis profiles, chosen by HYPOTHESIS_PROFILE (CI=true picks "ci").

- ci: derandomized, a fixed draw every run: no flakiness, under 5 minutes on 2 cores;
- dev: the default for local runs, random draws, a little more than ci;
- thorough: long runs (pytest -n auto spreads them over cores).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, database=None, max_examples=30, print_blob=True, **_common)
settings.register_profile("dev", max_examples=50, **_common)
settings.register_profile("thorough", max_examples=1000, **_common)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(PROFILE)


def pytest_report_header(config):
    seed = "derandomized" if settings.default.derandomize else "random (seed printed on failure)"
    return f"hypothesis profile: {PROFILE} ({settings.default.max_examples} examples, {seed})"
