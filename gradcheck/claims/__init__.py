"""The claims catalog: one registry, read by the tests, the CLI and the docs.

Importing this package registers every family (A, B, F) in ``REGISTRY``.
"""

from __future__ import annotations

from . import algebra, jensen, truth  # noqa: F401  (registration)
from . import optimizers  # noqa: F401  (registration: family C)
from . import sampling  # noqa: F401  (registration: family D)
from . import accumulation, data_parallel  # noqa: F401  (registration: family E)
from .registry import (ASYMPTOTIC, REGISTRY, UNIVERSAL, WITNESSED, Claim, ClaimReport, Property,
                       PropertyReport, run_claim)

__all__ = ["ASYMPTOTIC", "REGISTRY", "UNIVERSAL", "WITNESSED", "Claim", "ClaimReport", "Property",
           "PropertyReport", "run_claim"]
