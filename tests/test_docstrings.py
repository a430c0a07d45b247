"""The Examples sections of the public docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "ntk_sklearn._regressors",
    "ntk_sklearn._classifiers",
    "ntk_sklearn.kernels._fc",
    "ntk_sklearn.kernels._serial",
    "ntk_sklearn.preprocessing",
    "ntk_sklearn.architectures",
    "ntk_sklearn.solvers",
    "ntk_sklearn.gaussian_process._kernels",
    "ntk_sklearn.datasets._idx",
    "ntk_sklearn.datasets._npz",
    "ntk_sklearn._progress",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
