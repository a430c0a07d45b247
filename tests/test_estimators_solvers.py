"""The estimators' solvers: CG and Lanczos against the direct factorizations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import InvalidParameterError

from ntk_sklearn import NNGPRegressor, NTKClassifier, NTKRegressor


@pytest.fixture(scope="module")
def data():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X, y, np.sin(3 * X[:, 10]) + X[:, 20]


@pytest.mark.slow
def test_cg_classifier_equals_cholesky(data):
    X, y, _ = data
    direct = NTKClassifier(depth=2, alpha=1e-3, solver="cholesky").fit(X[:1500], y[:1500])
    cg = NTKClassifier(depth=2, alpha=1e-3, solver="cg", tol=1e-9).fit(X[:1500], y[:1500])
    assert cg.solver_ == "cg" and direct.solver_ == "cholesky" and cg.n_iter_ > 0
    a, b = direct.decision_function(X[1500:]), cg.decision_function(X[1500:])
    assert np.abs(a - b).max() <= 1e-6 * np.abs(a).max()


@pytest.mark.slow
@pytest.mark.parametrize("t", [None, 3.0, 300.0])
@pytest.mark.parametrize("estimator", [NTKRegressor, NNGPRegressor])
def test_iterative_means_and_stds_equal_direct(data, estimator, t):
    X, _, y = data
    kw = dict(depth=2, alpha=1e-3, t=t)
    direct = estimator(**kw, solver="eigh").fit(X[:500], y[:500])
    cg = estimator(**kw, solver="cg", tol=1e-10).fit(X[:500], y[:500])
    (ma, sa), (mb, sb) = (m.predict(X[500:540], return_std=True) for m in (direct, cg))
    np.testing.assert_allclose(mb, ma, rtol=1e-6, atol=1e-6 * np.abs(ma).max())
    np.testing.assert_allclose(sb, sa, rtol=1e-6, atol=1e-6 * sa.max())
    times = [0.5, 30.0, np.inf]
    np.testing.assert_allclose(
        cg.predict_trajectory(X[500:520], times),
        direct.predict_trajectory(X[500:520], times),
        rtol=1e-6,
        atol=1e-6 * np.abs(ma).max(),
    )


@pytest.mark.slow
def test_auto_picks_a_direct_solver_for_small_fits(data):
    X, _, y = data
    assert NTKRegressor().fit(X[:100], y[:100]).solver_ == "cholesky"
    assert NTKRegressor(t=5.0).fit(X[:100], y[:100]).solver_ == "eigh"


@pytest.mark.slow
def test_non_convergence_warns_with_the_residual(data):
    X, y, _ = data
    with pytest.warns(ConvergenceWarning, match="residual"):
        NTKClassifier(alpha=1e-8, solver="cg", max_iter=2).fit(X[:300], y[:300])


@pytest.mark.parametrize(
    "params",
    [{"tol": 0.0}, {"tol": "small"}, {"max_iter": 0}, {"solver": "lu"}, {"preconditioner_rank": 0}],
)
def test_invalid_solver_parameters(data, params):
    X, y, _ = data
    with pytest.raises(InvalidParameterError):
        NTKClassifier(**params).fit(X[:20], y[:20])


def test_cholesky_at_finite_time_is_refused(data):
    X, _, y = data
    with pytest.raises(ValueError, match="eigh"):
        NTKRegressor(t=1.0, solver="cholesky").fit(X[:20], y[:20])
