"""NNGPKernel / NTKKernel as scikit-learn GP kernels: values against the kernel core, exact
gradients against finite differences, scikit-learn's kernel conventions, the estimators that take
them (GPR, GPC, SVC, KernelRidge), make_stack's architectures, and bad input."""

from __future__ import annotations

import doctest
import pickle

import jax
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import SVC

import ntk_sklearn.architectures
import ntk_sklearn.gaussian_process._kernels
from ntk_sklearn import NNGPRegressor, NTKRegressor
from ntk_sklearn.architectures import make_stack, reshape_inputs
from ntk_sklearn.gaussian_process import NNGPKernel, NTKKernel
from ntk_sklearn.gaussian_process._kernels import _NeuralKernel
from ntk_sklearn.kernels import (
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    Relu,
    fc_kernel,
    serial,
)

KERNELS = {"nngp": NNGPKernel, "ntk": NTKKernel}


def data(n=9, d=3, seed=0):
    """Gaussian rows; row 5 (if any) duplicates row 2 (rho = 1 off the diagonal)."""
    x = np.random.default_rng(seed).normal(size=(n, d))
    if n > 5:
        x[5] = x[2]
    return x


def reference(stack, x1, x2=None, get="nngp"):
    """The kernel core's matrix in float64."""
    with jax.enable_x64(True):
        return stack(x1, x2, get=get)


def finite_difference(kernel, x, h=1e-5):
    """Central differences of ``kernel(x)`` in each entry of ``theta``: (n, n, n_dims)."""
    theta = kernel.theta
    columns = []
    for i in range(theta.size):
        step = np.zeros_like(theta)
        step[i] = h
        plus, minus = kernel.clone_with_theta(theta + step), kernel.clone_with_theta(theta - step)
        columns.append((plus(x) - minus(x)) / (2 * h))
    return np.stack(columns, axis=-1)


def relative(a, b):
    return np.max(np.abs(a - b)) / np.max(np.abs(b))


# -- values ----------------------------------------------------------------------------------


@pytest.mark.parametrize("get", ["nngp", "ntk"])
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_values_equal_fc_kernel(get, activation):
    x, y = data(), data(4, seed=1)
    kernel = KERNELS[get](depth=2, activation=activation, w_std=1.3, b_std=0.4)
    with jax.enable_x64(True):
        expected = fc_kernel(x, depth=2, activation=activation, w_std=1.3, b_std=0.4, get=get)
        expected_xy = fc_kernel(x, y, depth=2, activation=activation, w_std=1.3, b_std=0.4, get=get)
    before = jax.config.jax_enable_x64
    k, kxy = kernel(x), kernel(x, y)
    assert jax.config.jax_enable_x64 == before  # scoped float64, global config untouched
    assert k.dtype == np.float64 and kxy.shape == (9, 4)
    np.testing.assert_allclose(k, expected, rtol=1e-13, atol=0)
    np.testing.assert_allclose(kxy, expected_xy, rtol=1e-13, atol=0)
    np.testing.assert_allclose(kernel.diag(x), np.diag(k), rtol=1e-13, atol=0)
    np.testing.assert_allclose(kernel(x, x), k, rtol=1e-13, atol=0)  # Y given: full matrix


@pytest.mark.slow
def test_conv_architectures_equal_hand_built_stacks():
    images = np.random.default_rng(2).normal(size=(5, 4, 4, 2))
    x = images.reshape(5, -1)
    x_before = x.copy()
    w, b = 1.3, 0.2
    conv = Conv((2, 2), padding="SAME", w_std=w, b_std=b)
    cases = [
        (
            dict(architecture="conv", depth=2, filter_size=2, pooling="flatten"),
            serial(conv, Relu(), conv, Relu(), Flatten(), Dense(w, b)),
        ),
        (
            dict(architecture="conv", depth=1, filter_size=2, pooling="gap"),
            serial(conv, Relu(), GlobalAvgPool(), Dense(w, b)),
        ),
        (  # Myrtle with 3 convolutions: groups [1, 1, 1]
            dict(architecture="myrtle", depth=3, filter_size=2),
            serial(
                conv,
                Relu(),
                AvgPool((2, 2)),
                conv,
                Relu(),
                AvgPool((2, 2)),
                conv,
                Relu(),
                GlobalAvgPool(),
                Dense(w, b),
            ),
        ),
        (  # a custom stack: its stds are replaced by the kernel's
            dict(layers=serial(Conv((2, 2), w_std=9.0), Erf(), Flatten(), Dense(0.5, 3.0))),
            serial(Conv((2, 2), w_std=w, b_std=b), Erf(), Flatten(), Dense(w, b)),
        ),
    ]
    for params, stack in cases:
        kernel = NTKKernel(w_std=w, b_std=b, image_shape=(4, 4, 2), **params)
        k = kernel(x)
        np.testing.assert_allclose(
            k, reference(stack, images, get="ntk"), rtol=1e-12, err_msg=str(params)
        )
        if "pooling" not in params:  # the diagonal of a stack with pooling layers
            np.testing.assert_allclose(kernel.diag(x), np.diag(k), rtol=1e-12, err_msg=str(params))
    np.testing.assert_array_equal(x, x_before)


def test_custom_dense_layers_take_vectors_without_image_shape():
    x = data()
    layers = serial(Dense(5.0), Erf(), Dense(), Relu(), Dense())
    kernel = NNGPKernel(layers=layers, w_std=1.1, b_std=0.3)
    with jax.enable_x64(True):
        expected = fc_kernel(x, depth=1, activation="erf", w_std=1.1, b_std=0.3, get="nngp")
    # erf then relu: not fc_kernel's stack, so compare with the hand-built one
    stack = serial(Dense(1.1, 0.3), Erf(), Dense(1.1, 0.3), Relu(), Dense(1.1, 0.3))
    np.testing.assert_allclose(kernel(x), reference(stack, x), rtol=1e-13)
    assert not np.allclose(kernel(x), expected)
    assert layers.layers[0] == Dense(5.0)  # the user's stack is not modified


def test_b_std_zero_when_fixed():
    x = data()
    kernel = NNGPKernel(depth=1, w_std=1.5, b_std=0.0, b_std_bounds="fixed")
    with jax.enable_x64(True):
        expected = fc_kernel(x, depth=1, w_std=1.5, b_std=0.0, get="nngp")
    np.testing.assert_allclose(kernel(x), expected, rtol=1e-13)
    assert kernel.theta.shape == (1,)


# -- gradients -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kernel, features, tile",
    [
        (NNGPKernel(depth=2, w_std=1.3, b_std=0.2), 3, None),
        (NTKKernel(depth=3, activation="erf", w_std=1.3, b_std=0.2), 3, None),
        (NTKKernel(depth=2, w_std=0.8, b_std=1.5), 3, 4),  # several tiles, edge tiles padded
        (
            NTKKernel(
                architecture="conv",
                image_shape=(2, 2, 2),
                filter_size=2,
                pooling="gap",
                w_std=1.2,
                b_std=0.3,
            ),
            8,
            None,
        ),
    ],
    ids=["nngp-relu", "ntk-erf", "ntk-tiled", "ntk-conv-gap"],
)
def test_gradient_matches_finite_differences(kernel, features, tile, monkeypatch):
    if tile is not None:
        monkeypatch.setattr(_NeuralKernel, "_block_size", staticmethod(lambda *_: tile))
    x = data(10, features)
    k, grad = kernel(x, eval_gradient=True)
    assert grad.shape == (10, 10, 2)
    np.testing.assert_allclose(k, kernel(x), rtol=1e-13, atol=0)
    fd = finite_difference(kernel, x)
    assert relative(grad, fd) < 1e-5
    # diagonal and the duplicate-row entries, on their own scale
    for idx in (np.diag_indices(10), ([2, 5, 2], [5, 2, 2])):
        assert relative(grad[idx], fd[idx]) < 1e-5
    np.testing.assert_allclose(grad, grad.transpose(1, 0, 2), rtol=0, atol=0)


@pytest.mark.slow
def test_gradient_of_fixed_hyperparameters():
    x = data()
    free = NNGPKernel(w_std=1.4, b_std=0.3)
    _, grad = free(x, eval_gradient=True)  # columns: d/dlog(w_std), d/dlog(b_std)
    only_w = NNGPKernel(w_std=1.4, b_std=0.3, b_std_bounds="fixed")
    only_b = NNGPKernel(w_std=1.4, b_std=0.3, w_std_bounds="fixed")
    np.testing.assert_allclose(only_w(x, eval_gradient=True)[1], grad[..., :1], rtol=1e-13)
    np.testing.assert_allclose(only_b(x, eval_gradient=True)[1], grad[..., 1:], rtol=1e-13)
    none = NNGPKernel(w_std_bounds="fixed", b_std_bounds="fixed")
    k, empty = none(x, eval_gradient=True)
    assert empty.shape == (9, 9, 0) and none.theta.shape == (0,)
    np.testing.assert_allclose(k, none(x), rtol=1e-13)


def test_composition_with_sklearn_kernels():
    x, y = data(), data(4, seed=1)
    nngp = NNGPKernel(depth=2, w_std=1.2, b_std=0.3)
    kernel = ConstantKernel(2.0) * nngp + WhiteKernel(0.1)
    np.testing.assert_allclose(kernel(x), 2.0 * nngp(x) + 0.1 * np.eye(9), rtol=1e-13)
    np.testing.assert_allclose(kernel(x, y), 2.0 * nngp(x, y), rtol=1e-13)
    np.testing.assert_allclose(kernel.diag(x), 2.0 * nngp.diag(x) + 0.1, rtol=1e-13)
    names = [h.name for h in kernel.hyperparameters]
    assert names == ["k1__k1__constant_value", "k1__k2__w_std", "k1__k2__b_std", "k2__noise_level"]
    np.testing.assert_allclose(kernel.theta, np.log([2.0, 1.2, 0.3, 0.1]))
    _, grad = kernel(x, eval_gradient=True)
    assert relative(grad, finite_difference(kernel, x)) < 1e-5


# -- scikit-learn conventions ----------------------------------------------------------------


def test_sklearn_kernel_conventions():
    kernel = NTKKernel(depth=2, w_std=1.5, b_std=0.2, w_std_bounds=(0.1, 10.0))
    params = kernel.get_params()
    # The estimators' order (one definition of the hyperparameters).
    assert params["w_std"] == 1.5 and params["b_std_bounds"] == (1e-5, 1e2)
    np.testing.assert_allclose(kernel.theta, np.log([1.5, 0.2]))
    np.testing.assert_allclose(kernel.bounds, np.log([[0.1, 10.0], [1e-5, 1e2]]))
    assert [h.name for h in kernel.hyperparameters] == ["w_std", "b_std"]
    assert kernel.n_dims == 2
    assert not kernel.is_stationary() and kernel.requires_vector_input

    cloned = clone(kernel)
    assert cloned == kernel and cloned is not kernel
    assert kernel != NNGPKernel(depth=2, w_std=1.5, b_std=0.2, w_std_bounds=(0.1, 10.0))
    assert kernel != clone(kernel).set_params(depth=3)
    moved = kernel.clone_with_theta(np.log([2.0, 0.5]))
    assert (moved.b_std, moved.w_std) == pytest.approx((0.5, 2.0))
    assert kernel.w_std == 1.5  # clone_with_theta leaves the original alone

    restored = pickle.loads(pickle.dumps(kernel))
    assert restored == kernel
    x = data()
    np.testing.assert_array_equal(restored(x), kernel(x))

    assert repr(kernel) == "NTKKernel(w_std=1.5, b_std=0.2, depth=2, w_std_bounds=(0.1, 10.0))"
    composite = ConstantKernel(1.0) * kernel
    assert "NTKKernel(w_std=1.5" in repr(composite)
    composite.set_params(k2__b_std=0.7)
    assert kernel.b_std == 0.7  # nested set_params reaches the component


# -- estimators ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_cls", "estimator_cls"), [(NNGPKernel, NNGPRegressor), (NTKKernel, NTKRegressor)]
)
def test_one_evidence_and_theta_with_gaussian_process_regressor(kernel_cls, estimator_cls):
    """The estimators' evidence and theta are GaussianProcessRegressor's with our kernels.

    Same theta (log w_std, log b_std: one definition of the hyperparameters), same value from
    the fitted solver, same value and gradient at another theta; scikit-learn is the truth.
    """
    x = data(25, 3, seed=4)
    y = np.sin(x[:, 0]) + 0.3 * x[:, 1]
    params = {"depth": 2, "w_std": 1.3, "b_std": 0.2}
    model = estimator_cls(**params, alpha=0.05, normalize_y=False, alpha_bounds="fixed")
    model.fit(x, y)
    gpr = GaussianProcessRegressor(kernel_cls(**params), alpha=0.05, optimizer=None).fit(x, y)
    assert model.log_marginal_likelihood_value_ == pytest.approx(
        gpr.log_marginal_likelihood_value_, rel=1e-10
    )
    theta = np.log([1.7, 0.4])
    value, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    expected, expected_grad = gpr.log_marginal_likelihood(theta, eval_gradient=True)
    assert value == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-6)


@pytest.mark.slow
def test_gpr_learns_hyperparameters_and_its_likelihood():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 3))
    truth = NNGPKernel(depth=1, w_std=2.0, b_std=0.5)(x) + 0.05 * np.eye(40)
    y = rng.multivariate_normal(np.zeros(40), truth)
    start = NNGPKernel(depth=1, w_std=1.0, b_std=0.1) + WhiteKernel(1.0)
    gpr = GaussianProcessRegressor(start, random_state=0).fit(x, y)

    theta0 = start.theta
    assert gpr.log_marginal_likelihood_value_ > gpr.log_marginal_likelihood(theta0) + 1.0
    fitted = gpr.kernel_
    assert fitted.k1.w_std != 1.0 and fitted.k1.b_std != 0.1
    assert 0.01 < fitted.k2.noise_level < 0.2  # the noise is recovered (0.05), not the start (1)

    # With a ConstantKernel in front: the likelihood is scipy's Gaussian log-density, its
    # gradient equals finite differences.
    mean, std = gpr.predict(x[:5], return_std=True)
    assert mean.shape == (5,) and np.all(std > 0)

    # With a ConstantKernel in front: the likelihood is scipy's Gaussian log-density, its
    # gradient equals finite differences.
    start = ConstantKernel(1.0) * NNGPKernel(depth=1) + WhiteKernel(1.0)
    gpr = GaussianProcessRegressor(start, optimizer=None).fit(x, y)
    theta = start.theta + np.array([0.3, -0.2, 0.1, -1.0])
    cov = start.clone_with_theta(theta)(x) + gpr.alpha * np.eye(40)
    lml = gpr.log_marginal_likelihood
    value, grad = lml(theta, eval_gradient=True)
    assert value == pytest.approx(multivariate_normal(np.zeros(40), cov).logpdf(y), rel=1e-10)
    assert value == pytest.approx(lml(theta), rel=1e-12)
    h = 1e-5
    fd = [(lml(theta + h * e) - lml(theta - h * e)) / (2 * h) for e in np.eye(4)]
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * np.abs(fd).max())


@pytest.mark.slow
def test_gpc_predict_proba():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(45, 2))
    labels = np.digitize(x[:, 0], [-0.5, 0.5])  # three classes
    gpc = GaussianProcessClassifier(NNGPKernel(depth=1), random_state=0).fit(x, labels)
    proba = gpc.predict_proba(x)
    assert proba.shape == (45, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all((proba >= 0) & (proba <= 1))
    assert gpc.score(x, labels) > 0.8


def test_svc_and_kernel_ridge_equal_precomputed():
    rng = np.random.default_rng(5)
    x, x_test = rng.normal(size=(30, 4)), rng.normal(size=(10, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    kernel = NTKKernel(depth=2, w_std=1.2, b_std=0.3)
    k_train, k_test = kernel(x), kernel(x_test, x)

    svc = SVC(kernel=kernel, C=10.0).fit(x, y)
    pre = SVC(kernel="precomputed", C=10.0).fit(k_train, y)
    np.testing.assert_array_equal(svc.predict(x_test), pre.predict(k_test))
    np.testing.assert_allclose(
        svc.decision_function(x_test), pre.decision_function(k_test), rtol=1e-8, atol=1e-10
    )

    target = np.sin(x[:, 0])
    ridge = KernelRidge(kernel=kernel, alpha=0.1).fit(x, target)
    ridge_pre = KernelRidge(kernel="precomputed", alpha=0.1).fit(k_train, target)
    np.testing.assert_allclose(ridge.predict(x_test), ridge_pre.predict(k_test), rtol=1e-10)


# -- make_stack and bad input ----------------------------------------------------------------


def test_reshape_inputs():
    x = np.arange(24.0).reshape(2, 12)
    images = reshape_inputs(x, architecture="conv", image_shape=(2, 3, 2))
    np.testing.assert_array_equal(images[1, 1, 2], x[1, 10:12])  # NHWC, C order
    assert reshape_inputs(x, image_shape=(2, 3, 2)) is x  # "fc" keeps the rows
    with pytest.raises(ValueError, match="image_shape=\\(2, 2, 2\\) needs 8"):
        reshape_inputs(x, architecture="conv", image_shape=(2, 2, 2))


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(architecture="mlp"), "architecture must be one of"),
        (dict(architecture="conv"), "give image_shape=\\(height, width, channels\\)"),
        (dict(architecture="conv", image_shape=(8, 8)), "image_shape must be None or three"),
        (dict(architecture="conv", image_shape=(4, 4, 1), n_features=15), "X has 15 features"),
        (dict(architecture="conv", image_shape=(4, 4, 1), pooling="max"), "pooling must be"),
        (dict(architecture="conv", image_shape=(2, 2, 1), filter_size=0), "filter_shape must"),
        (dict(architecture="myrtle", image_shape=(8, 8, 1), depth=2), "depth .* >= 3"),
        (dict(architecture="myrtle", image_shape=(2, 2, 1), depth=3), "at least 4x4 pixels"),
        (dict(depth=-1), "depth"),
        (dict(activation="relux"), "relux"),
        (dict(w_std=-1.0), "w_std"),
        (dict(layers=[Dense()]), "layers must be None or a stack"),
        (dict(layers=serial(Conv(), Relu(), Flatten(), Dense())), "takes images"),
    ],
)
def test_make_stack_bad_input(params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        make_stack(**params)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(w_std=5.0, w_std_bounds=(0.1, 1.0)), "w_std=5 lies outside w_std_bounds"),
        (dict(b_std=1e-7), "b_std=1e-07 lies outside b_std_bounds"),
        (dict(w_std=0.0), "w_std must be a finite number > 0"),
        (dict(w_std=-1.0, w_std_bounds="fixed"), "w_std must be a finite number > 0"),
        (dict(b_std=0.0), "b_std_bounds='fixed' for b_std=0"),
        (dict(b_std=float("nan")), "b_std must be a finite number"),
        (dict(w_std="1"), "w_std must be a real number"),
        (dict(w_std_bounds=(1.0, 0.1)), "w_std_bounds must be 'fixed' or a pair"),
        (dict(b_std_bounds=(0.0, 1.0)), "b_std_bounds must be 'fixed' or a pair"),
        (dict(b_std_bounds="fix"), "b_std_bounds must be 'fixed' or a pair"),
    ],
)
def test_kernel_bad_hyperparameters(params, match):
    kernel = NNGPKernel(**params)  # scikit-learn convention: checked on use, not in __init__
    for use in (lambda: kernel(data()), lambda: kernel.diag(data()), lambda: kernel.theta):
        with pytest.raises((ValueError, TypeError), match=match):
            use()


def test_kernel_bad_calls():
    kernel = NNGPKernel()
    x = data()
    with pytest.raises(ValueError, match="theta must be a 1-D array of 2"):
        kernel.theta = np.zeros(3)
    with pytest.raises(ValueError, match="theta must be a 1-D array of 2"):
        kernel.clone_with_theta([0.0])
    with pytest.raises(ValueError, match="Gradient can only be evaluated when Y is None"):
        kernel(x, x, eval_gradient=True)
    with pytest.raises(ValueError, match="X and Y must have the same number of features"):
        kernel(x, x[:, :2])
    with pytest.raises(ValueError, match="X contains NaN"):
        kernel(np.full((2, 3), np.nan))
    with pytest.raises(ValueError, match="Y must be 2-D"):
        kernel(x, x[0])
    conv = NNGPKernel(architecture="conv", image_shape=(2, 2, 1))
    with pytest.raises(ValueError, match="X has 3 features but image_shape"):
        conv(x)
    with pytest.raises(ValueError, match="X has 3 features but image_shape"):
        conv.diag(x)


@pytest.mark.parametrize(
    "module", [ntk_sklearn.architectures, ntk_sklearn.gaussian_process._kernels]
)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
