"""The new layers through the estimators, the named architectures ``resnet`` and ``conv1d``,
and the scikit-learn kernels (values and hyperparameter gradients)."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import lml_central_differences
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKRegressor
from ntk_sklearn.architectures import make_stack
from ntk_sklearn.gaussian_process import NNGPKernel, NTKKernel
from ntk_sklearn.kernels import (
    Conv,
    Dense,
    FanInSum,
    FanOut,
    Flatten,
    GlobalAvgPool,
    GlobalSelfAttention,
    Identity,
    LayerNorm,
    Relu,
    parallel,
    serial,
)

pytestmark = pytest.mark.slow  # each test takes 10-100 s on 2 shared cores


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    # 4 x 4 images (2 x 2 averages): small enough for all-pairs kernels.
    pooled = X.reshape(-1, 4, 2, 4, 2).mean(axis=(2, 4)).reshape(len(X), -1) / 16.0
    return pooled[:120], y[:120]


def _residual(w, b):
    conv = Conv((3, 3), w_std=w, b_std=b)
    block = serial(FanOut(2), parallel(serial(Relu(), conv, Relu(), conv), Identity()), FanInSum())
    return serial(conv, block, LayerNorm(axis=(1, 2, 3)), Relu(), GlobalAvgPool(), Dense(w, b))


def test_regressor_on_a_residual_stack_is_kernel_ridge(digits):
    """layers=: the mean is KernelRidge on the stack's NTK (its stds replaced by the
    estimator's, inside the branches too)."""
    X, y = digits
    y = y.astype(float)
    stack = _residual(1.3, 0.1)
    images = X.reshape(-1, 4, 4, 1)
    with jax.enable_x64(True):
        k_train = stack(images[:80], get="ntk")
        k_test = stack(images[80:], images[:80], get="ntk")
    expected = KernelRidge(kernel="precomputed", alpha=0.05).fit(k_train, y[:80])
    model = NTKRegressor(
        layers=_residual(2.0, 0.5),
        image_shape=(4, 4, 1),
        w_std=1.3,
        b_std=0.1,
        alpha=0.05,
        normalize_y=False,
    ).fit(X[:80], y[:80])
    np.testing.assert_allclose(model.predict(X[80:]), expected.predict(k_test), rtol=1e-8)


def test_resnet_and_conv1d_architectures(digits):
    X, y = digits
    resnet = make_stack("resnet", depth=2, image_shape=(4, 4, 1))
    names = [type(layer).__name__ for layer in resnet.layers]
    assert names.count("FanOut") == 6 and names[-2:] == ["GlobalAvgPool", "Dense"]
    search = GridSearchCV(
        NNGPClassifier(architecture="resnet", image_shape=(4, 4, 1), alpha=1e-3),
        {"depth": [1, 2]},
        cv=2,
    ).fit(X[:60], y[:60])
    assert search.best_score_ > 0.5
    # Rows of 16 features as sequences of 8 steps with 2 channels.
    model = NNGPClassifier(architecture="conv1d", image_shape=(8, 2), depth=2, pooling="local2")
    fitted = model.fit(X[:60], y[:60])
    assert clone(model).get_params() == model.get_params()
    stack = make_stack("conv1d", depth=2, image_shape=(8, 2), pooling="local2")
    assert stack.layers[0].filter_shape == (3,)
    assert fitted.score(X[60:], y[60:]) > 0.5
    with pytest.raises(ValueError, match="two positive integers"):
        NNGPClassifier(architecture="conv1d", image_shape=(4, 4, 1)).fit(X[:20], y[:20])
    with pytest.raises(ValueError, match="three positive integers"):
        NNGPClassifier(architecture="resnet", image_shape=(16, 1)).fit(X[:20], y[:20])


def test_marginal_likelihood_gradient_with_attention_and_input_scales(digits):
    """The evidence of a LayerNorm/attention stack on sequences: the autodiff gradient with
    respect to the stds, the noise and per-feature input scales = central differences."""
    X, y = digits
    stack = serial(
        Conv((1,)),
        GlobalSelfAttention(1, 1.0, 1.1, 1.0, 1.0, 0.1),
        LayerNorm(axis=-1),
        Relu(),
        Flatten(),
        Dense(),
    )
    model = NNGPRegressor(
        layers=stack, image_shape=(8, 2), alpha=0.05, input_scale_bounds=(1e-2, 1e2)
    ).fit(X[:20], y[:20].astype(float))
    rng = np.random.default_rng(0)
    theta = np.concatenate([np.log([1.3, 0.2, 0.05]), rng.uniform(-0.3, 0.3, 16)])
    _, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    np.testing.assert_allclose(grad, lml_central_differences(model, theta), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kernel_class", [NNGPKernel, NTKKernel])
def test_gp_kernel_gradient_on_a_residual_stack(digits, kernel_class):
    X, _ = digits
    kernel = kernel_class(layers=_residual(1.0, 0.1), image_shape=(4, 4, 1), w_std=1.3, b_std=0.2)
    values, gradient = kernel(X[:12], eval_gradient=True)
    np.testing.assert_allclose(kernel.diag(X[:12]), np.diag(values), rtol=1e-10)
    h = 1e-5
    for i in range(2):
        step = np.zeros(2)
        step[i] = h
        up = kernel.clone_with_theta(kernel.theta + step)(X[:12])
        down = kernel.clone_with_theta(kernel.theta - step)(X[:12])
        np.testing.assert_allclose(gradient[..., i], (up - down) / (2 * h), rtol=1e-5, atol=1e-9)


def test_flip_invariant_residual_stack(digits):
    X, _ = digits
    stack = serial(*_residual(1.3, 0.1).layers, flip_invariant=True)
    images = X[:6].reshape(-1, 4, 4, 1)
    with jax.enable_x64(True):
        k = stack(images)
        mirrored = stack(images, images[:, :, ::-1])
    np.testing.assert_allclose(mirrored.ntk, k.ntk, rtol=1e-12)
