"""memory= (kernels cached on disk, bitwise the same predictions) and the long-work notice."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV, KFold

from ntk_sklearn import (
    LongComputationWarning,
    NNGPClassifier,
    NTKClassifier,
    NTKRegressor,
    _cost_notice,
)
from ntk_sklearn._progress import Progress
from ntk_sklearn.estimators._base import NeuralKernelBase


@pytest.fixture
def count_kernels(monkeypatch):
    calls = []
    original = NeuralKernelBase._compute_kernels

    def counted(self, x1, x2, names):
        calls.append((len(x1), None if x2 is None else len(x2), tuple(names)))
        return original(self, x1, x2, names)

    monkeypatch.setattr(NeuralKernelBase, "_compute_kernels", counted)
    return calls


def _data(n=40):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 4))
    return X, np.sin(X[:, 0]) + X[:, 1]


@pytest.mark.parametrize("as_memory", [False, True])
def test_memory_gives_bitwise_the_same_predictions(tmp_path, count_kernels, as_memory):
    X, y = _data()
    memory = joblib.Memory(tmp_path, verbose=0) if as_memory else str(tmp_path)
    plain = NTKRegressor(depth=2, t=5.0).fit(X, y)
    expected_mean, expected_std = plain.predict(X[:7], return_std=True)
    count_kernels.clear()
    first = NTKRegressor(depth=2, t=5.0, memory=memory).fit(X, y)
    mean, std = first.predict(X[:7], return_std=True)
    assert len(count_kernels) == 2  # training kernels, then the test rows against them
    count_kernels.clear()
    again = NTKRegressor(depth=2, t=5.0, alpha=0.3, memory=memory).fit(X, y)
    mean_again = again.predict(X[:7])
    assert count_kernels == []  # a refit with another alpha reads both kernels
    np.testing.assert_array_equal(mean, expected_mean)
    np.testing.assert_array_equal(std, expected_std)
    np.testing.assert_array_equal(
        mean_again, NTKRegressor(depth=2, t=5.0, alpha=0.3).fit(X, y).predict(X[:7])
    )


def test_keys_follow_the_kernel_hyperparameters_and_the_data(tmp_path, count_kernels):
    X, y = _data()
    NTKRegressor(memory=tmp_path.as_posix()).fit(X, y)
    NTKRegressor(depth=2, memory=tmp_path.as_posix()).fit(X, y)  # another kernel
    NTKRegressor(memory=tmp_path.as_posix()).fit(X + 1e-9, y)  # other data
    NTKRegressor(memory=tmp_path.as_posix(), dtype="float32").fit(X, y)  # other precision
    assert len(count_kernels) == 4
    # The NNGP that an NTK estimator computed serves an NNGP estimator of the same network.
    count_kernels.clear()
    labels, other = (y > 0).astype(int), str(tmp_path / "other")
    NTKClassifier(memory=other).fit(X, labels)
    NNGPClassifier(memory=other, alpha=1e-3).fit(X, labels)
    assert count_kernels == [(40, None, ("nngp", "ntk"))]


def test_grid_search_over_alpha_and_t_pays_one_kernel_per_fold(tmp_path, count_kernels):
    X, y = _data()
    grid = {"alpha": [1e-3, 1e-2, 0.1], "t": [3.0, None]}
    search = GridSearchCV(NTKRegressor(memory=str(tmp_path)), grid, cv=KFold(3))
    search.fit(X, y)
    training = [c for c in count_kernels if c[1] is None]
    cross = [c for c in count_kernels if c[1] is not None]
    assert len(training) == 3 + 1  # one per fold, and the refit on all rows
    assert len(cross) == 3  # each fold's validation rows, once for all 6 candidates
    plain = GridSearchCV(NTKRegressor(), grid, cv=KFold(3)).fit(X, y)
    np.testing.assert_array_equal(
        search.cv_results_["mean_test_score"], plain.cv_results_["mean_test_score"]
    )


def test_long_work_is_announced_once_per_task(monkeypatch):
    X, y = _data()
    monkeypatch.setattr(_cost_notice, "THRESHOLD", 0.0)
    with pytest.warns(LongComputationWarning, match="kernel tiles") as record:
        NTKRegressor(block_size=8).fit(X, y)
    assert len([r for r in record if r.category is LongComputationWarning]) == 1
    monkeypatch.setattr(_cost_notice, "THRESHOLD", 1e9)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongComputationWarning)
        NTKRegressor(block_size=8).fit(X, y)


def test_long_work_estimate_uses_the_tiles_after_the_first(monkeypatch):
    # The first tile compiles (100 s); then 1 s per tile: the estimate waits for 3 s of them.
    clock = iter([0.0, 100.0, 101.0, 102.0, 103.0])
    monkeypatch.setattr(_cost_notice.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(_cost_notice, "THRESHOLD", 1000.0)
    progress = Progress("NTK 10x10", total=1000, verbose=0)
    progress.start = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", LongComputationWarning)
        progress.step()
        progress.step()
        progress.step()  # 2 s of tiles measured: no estimate yet
    with pytest.warns(LongComputationWarning, match="about 18 min 19 s"):
        progress.step()  # 103 s elapsed + 996 tiles x 1 s = 1099 s


@pytest.mark.slow
def test_initial_outputs_recipe_predicts_the_trained_linearised_network():
    """docs/model_selection.rst: fitting a user's model on ``y - f0(X)`` and adding ``f0`` back
    predicts the linearised network trained by gradient descent from ``params`` (without it the
    prediction misses ``f0``)."""
    import jax

    from ntk_sklearn.empirical import init_mlp
    from ntk_sklearn.training import linearize, train_gd

    with jax.enable_x64(True):
        params, apply_fn = init_mlp(jax.random.PRNGKey(0), 2, depth=1, width=16, b_std=0.1)
        params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)
        rng = np.random.default_rng(0)
        X, X_test = rng.normal(size=(12, 2)), rng.normal(size=(5, 2))
        y = np.sin(X[:, 0])
        lr, steps = 0.05, 400
        trained = train_gd(
            linearize(apply_fn, params),
            params,
            X,
            y,
            learning_rate=lr,
            n_steps=steps,
            x_test=X_test,
            record_every=steps,
        )
        f0_train = np.asarray(apply_fn(params, X)).reshape(-1)
        f0_test = np.asarray(apply_fn(params, X_test)).reshape(-1)
    model = NTKRegressor(
        kernel=(apply_fn, params), t=steps, learning_rate=lr, normalize_y=False, alpha=0.0
    ).fit(X, y - f0_train)
    network = np.asarray(trained.test_outputs[-1]).reshape(-1)
    prediction = model.predict(X_test) + f0_test
    # Gradient descent in steps of lr against the flow: O(lr·λ/m) relative, here below 1e-3.
    np.testing.assert_allclose(prediction, network, rtol=0, atol=2e-3 * np.abs(network).max())
    assert np.abs(model.predict(X_test) - network).max() > 10 * np.abs(prediction - network).max()
