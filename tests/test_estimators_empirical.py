"""Estimators on finite-width kernels: Monte-Carlo kernels and a user's own JAX model."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.kernel_ridge import KernelRidge

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(30, 3)), rng.normal(size=(8, 3))
    return x, np.sin(x[:, 0]) + 0.5 * x[:, 1], x_test


@pytest.mark.slow
def test_monte_carlo_kernel_is_reproducible_and_seeded(data):
    x, y, x_test = data
    kw = {"kernel": "empirical", "width": 64, "n_samples": 2, "alpha": 1e-2}
    a = NTKRegressor(random_state=3, **kw).fit(x, y).predict(x_test)
    b = NTKRegressor(random_state=3, **kw).fit(x, y).predict(x_test)
    c = NTKRegressor(random_state=4, **kw).fit(x, y).predict(x_test)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-6


@pytest.mark.slow
def test_monte_carlo_predictions_approach_the_analytic_ones(data):
    """Relative error of the predictions shrinks as the networks widen (fixed seeds)."""
    x, y, x_test = data
    exact = NTKRegressor(depth=2, alpha=1e-2).fit(x, y).predict(x_test)
    errors = []
    for width in (32, 1024):
        model = NTKRegressor(
            depth=2, alpha=1e-2, kernel="empirical", width=width, n_samples=4, random_state=0
        )
        pred = model.fit(x, y).predict(x_test)
        errors.append(np.linalg.norm(pred - exact) / np.linalg.norm(exact))
    assert errors[1] < 0.1
    assert errors[1] < 0.5 * errors[0]


def _user_model():
    def apply_fn(params, x):
        h = jnp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
        return h @ params["out"]

    rng = np.random.default_rng(1)
    params = {
        "layers": (
            {
                "w": jnp.asarray(rng.normal(size=(3, 40)) / np.sqrt(3)),
                "b": jnp.asarray(rng.normal(size=40)),
            },
        ),
        "out": jnp.asarray(rng.normal(size=40) / np.sqrt(40)),
    }
    return apply_fn, params


@pytest.mark.slow
def test_user_model_ntk_regression_is_kernel_ridge_on_its_jacobian(data):
    """Independent truth: the NTK built from ``jax.jacobian``, fed to KernelRidge."""
    x, y, x_test = data
    apply_fn, params = _user_model()
    with jax.enable_x64(True):
        p64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)

        def jac(z):
            j = jax.jacobian(apply_fn)(p64, jnp.asarray(z))
            return np.concatenate(
                [np.asarray(leaf).reshape(len(z), -1) for leaf in jax.tree_util.tree_leaves(j)], 1
            )

        j_train, j_test = jac(x), jac(x_test)
    ridge = KernelRidge(kernel="precomputed", alpha=1e-3).fit(j_train @ j_train.T, y)
    model = NTKRegressor(kernel=(apply_fn, params), alpha=1e-3, normalize_y=False).fit(x, y)
    np.testing.assert_allclose(model.predict(x_test), ridge.predict(j_test @ j_train.T), rtol=1e-8)
    # The ensemble's covariance needs an NNGP, which one network does not give: refused.
    with pytest.raises(ValueError, match="not available with kernel=\\(apply_fn, params\\)"):
        model.predict(x_test, return_std=True)
    with pytest.raises(ValueError, match="not available"):
        model.sample_y(x_test)


def test_user_model_in_classifier_and_refused_by_nngp(data):
    x, y, _ = data
    clf = NTKClassifier(kernel=_user_model(), alpha=1e-3).fit(x, y > 0)
    assert clf.score(x, y > 0) > 0.9
    for cls in (NNGPRegressor, NNGPClassifier):
        with pytest.raises(ValueError, match="rank-1 kernel, not the NNGP"):
            cls(kernel=_user_model(), alpha=1e-2).fit(x, y > 0)


@pytest.mark.parametrize("kernel", [(1, 2), (lambda p, x: x,), ("a", "b", "c")])
def test_bad_kernel_pairs(data, kernel):
    x, y, _ = data
    with pytest.raises(ValueError, match="kernel must be"):
        NTKRegressor(kernel=kernel).fit(x, y)
