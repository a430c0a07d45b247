"""Estimators on images: convolutional architectures, custom stacks, grid search, pipelines."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import lml_central_differences
from sklearn.datasets import load_digits
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor
from ntk_sklearn.gaussian_process import NNGPKernel
from ntk_sklearn.kernels import AvgPool, Conv, Dense, Flatten, GlobalAvgPool, Relu, serial
from ntk_sklearn.preprocessing import ImageAvgPool, NormScaler


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:160] / 16.0, y[:160]


@pytest.mark.parametrize(
    ("pooling", "readout"),
    [
        ("flatten", [Flatten()]),
        pytest.param(
            "local3", [AvgPool((3, 3), strides=(1, 1)), Flatten()], marks=pytest.mark.slow
        ),
    ],
)
def test_conv_regressor_is_kernel_ridge_on_the_conv_ntk(digits, pooling, readout):
    """At t=None the mean is KernelRidge on the stack's NTK (images reshaped NHWC)."""
    X, y = digits
    y = y.astype(float)
    stack = serial(
        Conv(w_std=1.4, b_std=0.1),
        Relu(),
        Conv(w_std=1.4, b_std=0.1),
        Relu(),
        *readout,
        Dense(1.4, 0.1),
    )
    images = X.reshape(-1, 8, 8, 1)
    with jax.enable_x64(True):  # the estimators' default precision
        k_train = stack(images[:100], get="ntk")
        k_test = stack(images[100:], images[:100], get="ntk")
    expected = KernelRidge(kernel="precomputed", alpha=0.05).fit(k_train, y[:100])
    model = NTKRegressor(
        architecture="conv",
        image_shape=(8, 8, 1),
        depth=2,
        pooling=pooling,
        w_std=1.4,
        b_std=0.1,
        alpha=0.05,
        normalize_y=False,
    ).fit(X[:100], y[:100])
    np.testing.assert_allclose(model.predict(X[100:]), expected.predict(k_test), rtol=1e-8)
    custom = NTKRegressor(
        layers=stack, image_shape=(8, 8, 1), w_std=1.4, b_std=0.1, alpha=0.05, normalize_y=False
    ).fit(X[:100], y[:100])
    np.testing.assert_allclose(custom.predict(X[100:]), expected.predict(k_test), rtol=1e-8)


def test_custom_stack_gets_the_estimators_stds(digits):
    X, y = digits
    mine = serial(Conv(w_std=3.0), Relu(), AvgPool((2, 2)), GlobalAvgPool(), Dense(3.0))
    a = NNGPRegressor(layers=mine, image_shape=(8, 8, 1), w_std=1.2, b_std=0.2).fit(X[:40], y[:40])
    same = serial(
        Conv(w_std=1.2, b_std=0.2), Relu(), AvgPool((2, 2)), GlobalAvgPool(), Dense(1.2, 0.2)
    )
    b = NNGPRegressor(layers=same, image_shape=(8, 8, 1), w_std=1.2, b_std=0.2).fit(X[:40], y[:40])
    np.testing.assert_allclose(a.predict(X[40:50]), b.predict(X[40:50]), rtol=1e-12)


@pytest.mark.slow
def test_flip_invariant_estimators_ignore_mirroring(digits):
    """flip_invariant=True: KernelRidge on the flip-averaged stack's NTK; a mirrored test
    image gets the same prediction; NNGPKernel gives the same flip-averaged NNGP."""
    X, y = digits
    y = y.astype(float)
    layers = [Conv(w_std=1.4, b_std=0.1), Relu(), Conv(w_std=1.4, b_std=0.1), Relu()]
    stack = serial(*layers, Flatten(), Dense(1.4, 0.1), flip_invariant=True)
    images = X.reshape(-1, 8, 8, 1)
    with jax.enable_x64(True):
        k_train = stack(images[:100], get="ntk")
        k_test = stack(images[100:], images[:100], get="ntk")
    expected = KernelRidge(kernel="precomputed", alpha=0.05).fit(k_train, y[:100])
    params = {"architecture": "conv", "image_shape": (8, 8, 1), "depth": 2, "w_std": 1.4}
    model = NTKRegressor(**params, flip_invariant=True, alpha=0.05, normalize_y=False)
    model.fit(X[:100], y[:100])
    np.testing.assert_allclose(model.predict(X[100:]), expected.predict(k_test), rtol=1e-8)
    mirrored = images[100:, :, ::-1].reshape(len(X) - 100, -1)
    np.testing.assert_allclose(model.predict(mirrored), model.predict(X[100:]), rtol=1e-10)
    plain = NTKRegressor(**params, alpha=0.05, normalize_y=False).fit(X[:100], y[:100])
    assert np.abs(plain.predict(mirrored) - plain.predict(X[100:])).max() > 1e-3
    kernel = NNGPKernel(**params, b_std=0.1, flip_invariant=True)
    with jax.enable_x64(True):
        nngp = stack(images[:30], get="nngp")
    np.testing.assert_allclose(kernel(X[:30]), nngp, rtol=1e-10)
    np.testing.assert_allclose(kernel.diag(X[:30]), np.diag(nngp), rtol=1e-10)
    values, gradient = kernel(X[:30], eval_gradient=True)
    np.testing.assert_allclose(values, nngp, rtol=1e-10)
    assert gradient.shape == (30, 30, 2) and np.isfinite(gradient).all()


@pytest.mark.slow
def test_flip_invariant_marginal_likelihood_gradient(digits):
    """The evidence of a flip-invariant conv model: autodiff gradient = central differences."""
    X, y = digits
    model = NNGPRegressor(
        architecture="conv", image_shape=(8, 8, 1), depth=1, flip_invariant=True, alpha=0.05
    ).fit(X[:24], y[:24])
    theta = np.log([1.3, 0.2, 0.05])
    _, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    np.testing.assert_allclose(grad, lml_central_differences(model, theta), rtol=1e-5)


@pytest.mark.slow
def test_grid_search_over_depth_and_pooling_in_a_pipeline(digits):
    X, y = digits
    pipe = make_pipeline(NormScaler(), NTKClassifier(architecture="conv", image_shape=(8, 8, 1)))
    grid = {"ntkclassifier__depth": [1, 2], "ntkclassifier__pooling": ["flatten", "gap"]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X[:80], y[:80])
    assert set(search.cv_results_["param_ntkclassifier__pooling"]) == {"flatten", "gap"}
    assert search.score(X[80:], y[80:]) > 0.8


@pytest.mark.slow
def test_myrtle_and_pooled_inputs(digits):
    """A pipeline with ImageAvgPool equals the model on images pooled by hand."""
    X, y = digits
    model = NNGPClassifier(architecture="myrtle", depth=3, image_shape=(4, 4, 1), alpha=1e-3)
    pipe = make_pipeline(ImageAvgPool(image_shape=(8, 8, 1), window=2), model).fit(X[:60], y[:60])
    pooled = X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(X), -1)
    direct = NNGPClassifier(**model.get_params()).fit(pooled[:60], y[:60])
    np.testing.assert_allclose(
        pipe.decision_function(X[60:]), direct.decision_function(pooled[60:]), rtol=1e-10
    )
    full = NNGPClassifier(architecture="myrtle", depth=3, image_shape=(8, 8, 1), alpha=1e-3)
    assert full.fit(X[:100], y[:100]).score(X[100:], y[100:]) > 0.5  # chance is 0.1


@pytest.mark.parametrize(
    "params, message",
    [
        ({"architecture": "conv"}, "image_shape"),
        ({"architecture": "conv", "image_shape": (8, 8, 2)}, "needs 128"),
        (
            {
                "architecture": "conv",
                "image_shape": (8, 8, 1),
                "filter_size": 9,
                "layers": serial(Conv((9, 9), padding="VALID"), Flatten(), Dense()),
            },
            "does not fit",
        ),
        ({"architecture": "myrtle", "depth": 2, "image_shape": (8, 8, 1)}, "depth"),
        (
            {"architecture": "conv", "image_shape": (8, 8, 1), "kernel": "empirical"},
            "kernel='analytic'",
        ),
        ({"architecture": "transformer"}, "architecture"),
        ({"flip_invariant": True}, "needs architecture='conv'"),
        (
            {
                "architecture": "conv",
                "image_shape": (8, 8, 1),
                "flip_invariant": True,
                "input_scale_bounds": (1e-3, 1e3),
            },
            "per-feature input scales",
        ),
        ({"flip_invariant": True, "kernel": "empirical"}, "kernel='analytic'"),
        (
            {
                "architecture": "conv",
                "image_shape": (8, 8, 1),
                "filter_size": 2,
                "flip_invariant": True,
            },
            "mirror-symmetric",
        ),
        ({"pooling": "max"}, "pooling"),
    ],
)
def test_bad_image_parameters(digits, params, message):
    X, y = digits
    with pytest.raises(ValueError, match=message):
        NNGPClassifier(**params).fit(X[:20], y[:20])
