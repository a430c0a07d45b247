"""Estimators against neural-tangents' dynamics, KernelRidge, closed forms and scikit-learn."""

from __future__ import annotations

import pickle

import jax
import jax.numpy as jnp
import joblib
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ntk_sklearn import (
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
    _memory,
    dynamics,
)
from ntk_sklearn.kernels import fc_kernel

REGRESSORS = {"ntk": NTKRegressor, "nngp": NNGPRegressor}


def _dynamics_cases(reference):
    data, meta = reference
    return data, [c for c in meta if c["kind"] == "dynamics"]


def _model(cls, case, t):
    return cls(
        depth=case["depth"],
        activation=case["activation"],
        w_std=case["w_std"],
        b_std=case["b_std"],
        alpha=case["diag_reg"],
        learning_rate=case["learning_rate"],
        t=t,
        normalize_y=False,
    )


def _close(actual, expected, rtol=1e-8):
    """Within ``rtol`` of the largest entry of the expected array."""
    scale = max(np.abs(expected).max(), 1e-300)
    assert np.abs(actual - expected).max() <= rtol * scale


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_reference_dynamics(reference, kind):
    """Mean and covariance at every reference time and at t = ∞ (rtol 1e-8, float64)."""
    data, cases = _dynamics_cases(reference)
    x, y, x_test = data["dyn_x_train"], data["dyn_y_train"], data["dyn_x_test"]
    for case in cases:
        j = case["index"]
        times = list(data["dyn_times"]) + [None]
        for i, t in enumerate(times):
            mean, cov = _model(REGRESSORS[kind], case, t).fit(x, y).predict(x_test, return_cov=True)
            suffix = "_inf" if t is None else "_t"
            ref_mean = data[f"d{j}_{kind}_mean{suffix}"]
            ref_cov = data[f"d{j}_{kind}_cov{suffix}"]
            if t is not None:
                ref_mean, ref_cov = ref_mean[i], ref_cov[i]
            _close(mean, ref_mean)
            for k in range(y.shape[1]):  # the covariance is shared by the outputs
                _close(cov[..., k], ref_cov)


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_trajectory_matches_reference(reference, kind):
    """One fit (t=None), one eigendecomposition, every reference time."""
    data, cases = _dynamics_cases(reference)
    for case in cases:
        model = _model(REGRESSORS[kind], case, None).fit(data["dyn_x_train"], data["dyn_y_train"])
        times = np.append(data["dyn_times"], np.inf)
        traj = model.predict_trajectory(data["dyn_x_test"], times)
        ref = data[f"d{case['index']}_{kind}_mean_t"]
        for i in range(len(data["dyn_times"])):
            _close(traj[i], ref[i])
        _close(traj[-1], data[f"d{case['index']}_{kind}_mean_inf"])


@pytest.mark.parametrize("kind", ["ntk", "nngp"])
def test_converged_mean_is_kernel_ridge(kind):
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(30, 4)), rng.normal(size=(7, 4))
    y = np.sin(x).sum(1)
    kw = {"depth": 2, "w_std": 1.3, "b_std": 0.2}
    with jax.enable_x64(True):
        k_test = fc_kernel(x_test, x, **kw, get=kind)
        k = fc_kernel(x, **kw, get=kind)
    ridge = KernelRidge(kernel="precomputed", alpha=1e-3).fit(k, y)
    model = REGRESSORS[kind](alpha=1e-3, normalize_y=False, **kw).fit(x, y)
    np.testing.assert_allclose(model.predict(x_test), ridge.predict(k_test), rtol=1e-9)


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPRegressor])
def test_time_zero_is_the_prior(cls):
    rng = np.random.default_rng(1)
    x, x_test = rng.normal(size=(15, 3)), rng.normal(size=(5, 3))
    y = rng.normal(size=15)
    model = cls(t=0.0, normalize_y=False, depth=3, w_std=1.5, b_std=0.1).fit(x, y)
    mean, cov = model.predict(x_test, return_cov=True)
    np.testing.assert_array_equal(mean, 0.0)
    with jax.enable_x64(True):
        prior = fc_kernel(x_test, depth=3, w_std=1.5, b_std=0.1, get="nngp")
    np.testing.assert_allclose(cov, prior, rtol=1e-12)


@pytest.mark.slow
def test_long_training_converges_and_std_matches_cov():
    rng = np.random.default_rng(2)
    x, x_test = rng.normal(size=(20, 3)), rng.normal(size=(6, 3))
    y = rng.normal(size=(20, 2))
    converged = NTKRegressor(alpha=1e-3).fit(x, y)
    late = NTKRegressor(alpha=1e-3, t=1e9).fit(x, y)
    np.testing.assert_allclose(late.predict(x_test), converged.predict(x_test), rtol=1e-7)
    for model in (converged, late, NNGPRegressor(t=3.0).fit(x, y)):
        mean, std = model.predict(x_test, return_std=True)
        _, cov = model.predict(x_test, return_cov=True)
        assert mean.shape == (6, 2) and std.shape == (6, 2) and cov.shape == (6, 6, 2)
        np.testing.assert_allclose(std**2, np.einsum("iik->ik", cov), rtol=1e-6, atol=1e-12)


@pytest.mark.slow
def test_one_dimensional_shapes_like_gaussian_process():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=12)
    model = NNGPRegressor().fit(x, y)
    mean, std = model.predict(x[:4], return_std=True)
    _, cov = model.predict(x[:4], return_cov=True)
    assert mean.shape == (4,) and std.shape == (4,) and cov.shape == (4, 4)
    assert model.predict_trajectory(x[:4], [0.0, 1.0]).shape == (2, 4)
    assert model.sample_y(x[:4], n_samples=3).shape == (4, 3)
    with pytest.raises(RuntimeError, match="At most one"):
        model.predict(x, return_std=True, return_cov=True)


@pytest.mark.slow
def test_sample_y_follows_predicted_gaussian():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(10, 2)), rng.normal(size=10)
    model = NTKRegressor(t=2.0).fit(x, y)
    samples = model.sample_y(x[:3], n_samples=20000, random_state=0)
    mean, cov = model.predict(x[:3], return_cov=True)
    stderr = np.sqrt(np.diag(cov) / samples.shape[1])
    assert np.all(np.abs(samples.mean(1) - mean) < 5 * stderr)
    np.testing.assert_allclose(np.cov(samples), cov, atol=0.05 * np.abs(cov).max())


@pytest.mark.slow
def test_log_marginal_likelihood_against_scipy():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(25, 3)), rng.normal(size=(25, 2))
    for t in (None, 5.0):  # Cholesky- and eigendecomposition-fitted models give the same value
        model = NNGPRegressor(depth=3, w_std=1.5, alpha=1e-2, normalize_y=False, t=t).fit(x, y)
        with jax.enable_x64(True):
            k = fc_kernel(x, depth=3, w_std=1.5, b_std=0.1, get="nngp") + 1e-2 * np.eye(25)
        expected = sum(multivariate_normal(np.zeros(25), k).logpdf(y[:, i]) for i in range(2))
        np.testing.assert_allclose(model.log_marginal_likelihood(), expected, rtol=1e-10)


@pytest.mark.parametrize("cls", [NTKClassifier, NNGPClassifier])
def test_classifiers_on_iris_with_string_labels(cls):
    x, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = make_pipeline(StandardScaler(), cls(alpha=1e-2))
    assert cross_val_score(model, x, names, cv=3).mean() > 0.9
    model.fit(x, names)
    assert set(model.predict(x)) <= set(names)
    assert model.decision_function(x).shape == (150, 3)


def test_binary_decision_function_agrees_with_predict():
    x, y = load_iris(return_X_y=True)
    mask = y > 0
    labels = np.where(y[mask] == 1, "b", "c")
    model = NTKClassifier(alpha=1e-2).fit(x[mask], labels)
    scores = model.decision_function(x[mask])
    assert scores.shape == (mask.sum(),)
    np.testing.assert_array_equal(model.predict(x[mask]), np.where(scores > 0, "c", "b"))
    assert model.score(x[mask], labels) > 0.9


def test_classifier_regresses_centred_one_hot_targets():
    """Lee et al. 2018: the decision function is the regression on one-hot targets minus 1/C."""
    x, y = load_iris(return_X_y=True)
    clf = NNGPClassifier(alpha=1e-2).fit(x, y)
    targets = np.eye(3)[y] - 1 / 3
    reg = NNGPRegressor(alpha=1e-2, normalize_y=False).fit(x, targets)
    np.testing.assert_allclose(clf.decision_function(x), reg.predict(x), rtol=1e-12)


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPClassifier])
def test_clone_pickle_joblib_round_trips(cls, tmp_path):
    x, y = load_iris(return_X_y=True)
    model = cls(depth=2, alpha=1e-3).fit(x, y)
    expected = model.predict(x)
    np.testing.assert_array_equal(clone(model).fit(x, y).predict(x), expected)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(model)).predict(x), expected)
    joblib.dump(model, tmp_path / "model.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "model.joblib").predict(x), expected)


@pytest.mark.slow
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_grid_search_in_pipeline(n_jobs):
    x, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), NTKRegressor())
    grid = {
        "ntkregressor__depth": [1, 3],
        "ntkregressor__w_std": [1.0, 1.5],
        "ntkregressor__b_std": [0.0, 0.2],
        "ntkregressor__alpha": [1e-3, 1e-1],
    }
    cv = KFold(3, shuffle=True, random_state=0)
    search = GridSearchCV(pipe, grid, cv=cv, n_jobs=n_jobs).fit(x, y.astype(float))
    assert search.best_score_ > 0.8
    assert len(search.cv_results_["mean_test_score"]) == 16


@pytest.mark.slow
def test_float32_and_global_jax_state():
    x, y = load_iris(return_X_y=True)
    x = StandardScaler().fit_transform(x)
    assert not jax.config.jax_enable_x64
    # float32 errors grow like eps·cond(K): keep alpha moderate relative to the kernel's scale.
    p64 = NTKRegressor(alpha=0.1).fit(x, y).predict(x)
    p32 = NTKRegressor(alpha=0.1, dtype="float32").fit(x, y).predict(x)
    assert not jax.config.jax_enable_x64  # the estimators left JAX's global config alone
    assert p64.dtype == np.float64
    np.testing.assert_allclose(p32, p64, atol=5e-3 * np.abs(p64).max())


def test_inputs_not_modified():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    x0, y0 = x.copy(), y.copy()
    model = NTKRegressor().fit(x, y)
    model.predict(x, return_cov=True)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(y, y0)


@pytest.mark.parametrize(
    "params",
    [
        {"alpha": -1.0},
        {"t": -1.0},
        {"learning_rate": 0.0},
        {"depth": -1},
        {"w_std": 0.0},
        {"w_std": "1"},
        {"negative_slope": 1e200},
        {"activation": "swish!"},
        {"dtype": "float16"},
        {"block_size": 0},
    ],
)
def test_invalid_parameters(params):
    x, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError):
        NTKRegressor(**params).fit(x, y)


def test_singular_kernel_gets_jitter_with_warning():
    x = np.repeat(np.random.default_rng(7).normal(size=(5, 3)), 2, axis=0)  # duplicate rows
    y = np.repeat(np.arange(5.0), 2)  # (alpha=0: the kernel is singular)
    with pytest.warns(RuntimeWarning, match="jitter"):
        model = NTKRegressor(alpha=0.0).fit(x, y)
    pred = model.predict(x)
    assert np.isfinite(pred).all()
    np.testing.assert_allclose(pred, y, atol=1e-3)


def test_unfixable_kernel_raises_linalg_error(monkeypatch):
    # A factorization that always fails: no jitter helps.
    monkeypatch.setattr(dynamics, "cholesky", lambda k: jnp.full_like(k, jnp.nan))
    x = np.repeat(np.random.default_rng(8).normal(size=(4, 3)), 2, axis=0)
    with pytest.raises(np.linalg.LinAlgError, match=r"Increase alpha \(e.g. alpha=\d"):
        NNGPRegressor(alpha=0.0).fit(x, np.arange(8.0))


def test_refuses_what_does_not_fit_in_memory(monkeypatch):
    monkeypatch.setattr(_memory, "available_memory", lambda: 10_000)
    x, y = load_iris(return_X_y=True)
    with pytest.raises(MemoryError, match="float32"):
        NTKRegressor().fit(x, y)


def test_wrong_n_features_at_predict():
    x, y = load_iris(return_X_y=True)
    model = NTKClassifier().fit(x, y)
    with pytest.raises(ValueError, match="features"):
        model.predict(x[:, :3])


def test_trajectory_times_validated():
    x, y = load_iris(return_X_y=True)
    model = NTKRegressor().fit(x, y)
    for times in ([], [-1.0], [np.nan], [[1.0]]):
        with pytest.raises(ValueError, match="times"):
            model.predict_trajectory(x, times)
