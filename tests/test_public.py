"""The public face: __all__, docstrings with examples that run, py.typed."""

from __future__ import annotations

import doctest
import importlib
import pathlib

import pytest

import gradcheck
import gradcheck.strategies

MODULES = ["gradcheck", "gradcheck.asserts", "gradcheck.errors", "gradcheck.gradient",
           "gradcheck.oracle", "gradcheck.reduction", "gradcheck.verdict", "gradcheck.nets",
           "gradcheck.strategies", "gradcheck.accumulation", "gradcheck.distributed", "gradcheck.optimizer",
           "gradcheck.training.optimizers", "gradcheck.training.sampling"]


def test_all_is_exactly_the_public_names():
    public = {n for n in vars(gradcheck) if not n.startswith("_")} - {"annotations"}
    modules = {n for n in public if type(getattr(gradcheck, n)).__name__ == "module"}
    assert set(gradcheck.__all__) == public - modules


@pytest.mark.parametrize("module", [gradcheck, gradcheck.strategies], ids=lambda m: m.__name__)
def test_every_public_name_has_a_docstring_with_an_example(module):
    for name in module.__all__:
        doc = getattr(module, name).__doc__ or ""
        assert ">>>" in doc or name in ("GradcheckUsageError",) and doc, f"{name} lacks an example"


@pytest.mark.parametrize("name", MODULES)
@pytest.mark.filterwarnings("ignore::hypothesis.errors.NonInteractiveExampleWarning")
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_py_typed_marker_ships():
    assert (pathlib.Path(gradcheck.__file__).parent / "py.typed").exists()
