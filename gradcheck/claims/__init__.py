"""The claims catalog: one registry, read by the tests, the CLI and the docs.

Importing this package registers every family in ``REGISTRY``, in the
catalog's order: A reduction algebra, B the Jensen gap, C optimizers, D
sampling, E accumulated and distributed training, F ground truth.
"""

from __future__ import annotations

# Registration follows import order, which is the catalog's order.
from . import algebra, jensen, optimizers, sampling, accumulation, data_parallel, truth  # noqa: F401, I001
from .registry import (ASYMPTOTIC, REGISTRY, UNIVERSAL, WITNESSED, Claim, ClaimReport, Property,
                       PropertyReport, run_claim)

__all__ = ["ASYMPTOTIC", "REGISTRY", "UNIVERSAL", "WITNESSED", "Claim", "ClaimReport", "Property",
           "PropertyReport", "run_claim"]
