"""The Examples sections of the public docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    pytest.param("ntk_sklearn.estimators._regressors", marks=pytest.mark.slow),
    pytest.param("ntk_sklearn.estimators._classifiers", marks=pytest.mark.slow),
    pytest.param("ntk_sklearn.estimators._evidence", marks=pytest.mark.slow),
    pytest.param("ntk_sklearn.kernels._fc", marks=pytest.mark.slow),
    pytest.param("ntk_sklearn.kernels._serial", marks=pytest.mark.slow),
    "ntk_sklearn.kernels._composition",
    "ntk_sklearn.preprocessing",
    "ntk_sklearn.architectures",
    "ntk_sklearn.solvers",
    "ntk_sklearn.solvers._base",
    "ntk_sklearn.solvers._direct",
    pytest.param("ntk_sklearn.gaussian_process._kernels", marks=pytest.mark.slow),
    "ntk_sklearn.datasets._idx",
    "ntk_sklearn.datasets._npz",
    "ntk_sklearn._progress",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
