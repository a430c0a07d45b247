"""Hyperparameters by marginal likelihood: values against SciPy, gradients against finite
differences, the optimizer against an independent search, predictive noise, bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import lml_central_differences
from scipy.optimize import minimize
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn import NNGPClassifier, NNGPRegressor, NTKRegressor
from ntk_sklearn.gaussian_process import _marginal_likelihood as ml
from ntk_sklearn.kernels import fc_kernel

REGRESSORS = {"nngp": NNGPRegressor, "ntk": NTKRegressor}
LBFGS = "fmin_l_bfgs_b"


def _kernel(x, get, depth=1, w_std=1.0, b_std=0.1):
    with jax.enable_x64(True):
        return fc_kernel(x, depth=depth, w_std=w_std, b_std=b_std, get=get)


def _scipy_lml(x, y, get, w_std, b_std, alpha, depth=1, weights=None):
    """Σ_k log N(y_k; 0, K + alpha·W⁻¹) by SciPy."""
    n = len(x)
    noise = alpha / (np.ones(n) if weights is None else weights)
    cov = _kernel(x, get, depth, w_std, b_std) + np.diag(noise)
    y = y.reshape(n, -1)
    return sum(multivariate_normal(np.zeros(n), cov).logpdf(y[:, k]) for k in range(y.shape[1]))


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 3))
    x = np.concatenate([x, x[:3]])  # duplicate rows
    y = np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1) + 0.1 * rng.normal(size=(27, 2))
    return x, y


@pytest.mark.slow
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_lml_at_theta_equals_scipy(data, get):
    x, y = data
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(x))
    model = REGRESSORS[get](depth=2, alpha=0.05, normalize_y=False).fit(x, y, sample_weight=w)
    theta = np.log([1.3, 0.4, 0.02])
    expected = _scipy_lml(x, y, get, 1.3, 0.4, 0.02, depth=2, weights=w)
    np.testing.assert_allclose(model.log_marginal_likelihood(theta), expected, rtol=1e-10)
    # theta=None: the fitted values, from fit's factorization.
    expected = _scipy_lml(x, y, get, 1.0, 0.1, 0.05, depth=2, weights=w)
    np.testing.assert_allclose(model.log_marginal_likelihood_value_, expected, rtol=1e-10)
    np.testing.assert_allclose(model.log_marginal_likelihood(), expected, rtol=1e-10)
    value, _ = model.log_marginal_likelihood(eval_gradient=True)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


@pytest.mark.parametrize("get", ["nngp", "ntk"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradient_equals_central_differences(data, get, weighted):
    """Duplicate rows and the kernel's diagonal included; relative 1e-5."""
    x, y = data
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(x)) if weighted else None
    model = REGRESSORS[get](depth=3, alpha=0.05).fit(x, y, sample_weight=w)
    theta = np.log([1.4, 0.3, 0.03])
    value, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    np.testing.assert_allclose(grad, lml_central_differences(model, theta), rtol=1e-5)
    assert value == pytest.approx(model.log_marginal_likelihood(theta), rel=1e-12)


@pytest.mark.slow
def test_fixed_hyperparameters_leave_theta(data):
    x, y = data
    model = NNGPRegressor(b_std=0.0, b_std_bounds="fixed", alpha=0.05).fit(x, y)
    value, grad = model.log_marginal_likelihood(np.log([1.2, 0.01]), eval_gradient=True)
    assert grad.shape == (2,)
    expected = _scipy_lml(x, model.y_fit_, "nngp", 1.2, 0.0, 0.01)
    np.testing.assert_allclose(value, expected, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_optimizer_finds_the_maximum_of_an_independent_search(get):
    """L-BFGS-B on autodiff gradients against Nelder-Mead on SciPy's log-pdf."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 2))
    y = np.sin(2 * x[:, 0]) + 0.2 * rng.normal(size=30)
    model = REGRESSORS[get](optimizer=LBFGS).fit(x, y)
    y_norm = model.y_fit_[:, 0]

    def negative(theta):
        w_std, b_std, alpha = np.exp(theta)
        try:
            return -_scipy_lml(x, y_norm, get, w_std, b_std, alpha)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf

    bounds = np.log([(0.05, 20.0), (1e-4, 10.0), (1e-8, 1e3)])
    start = np.log([model.w_std_, model.b_std_, model.alpha_]) + 0.3
    best = minimize(
        negative,
        start,
        method="Nelder-Mead",
        bounds=bounds,
        options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 4000},
    )
    assert model.log_marginal_likelihood_value_ >= -best.fun - 1e-4
    assert model.log_marginal_likelihood_value_ == pytest.approx(
        -negative(np.log([model.w_std_, model.b_std_, model.alpha_])), rel=1e-8
    )
    # The estimator's own parameters are unchanged; predict uses the learned ones.
    assert (model.w_std, model.b_std, model.alpha) == (1.0, 0.1, 0.1)
    fixed = REGRESSORS[get](w_std=model.w_std_, b_std=model.b_std_, alpha=model.alpha_).fit(x, y)
    np.testing.assert_allclose(model.predict(x[:5]), fixed.predict(x[:5]), rtol=1e-12)


@pytest.mark.slow
def test_restarts_are_reproducible_and_no_worse(data):
    x, y = data
    one = NNGPRegressor(optimizer=LBFGS, random_state=0).fit(x, y)
    kw = {"optimizer": LBFGS, "n_restarts_optimizer": 3, "random_state": 0}
    more = NNGPRegressor(**kw).fit(x, y)
    again = NNGPRegressor(**kw).fit(x, y)
    assert more.log_marginal_likelihood_value_ >= one.log_marginal_likelihood_value_ - 1e-8
    assert (more.w_std_, more.b_std_, more.alpha_) == (again.w_std_, again.b_std_, again.alpha_)


def test_callable_optimizer_is_used(data):
    x, y = data
    calls = []

    def optimizer(obj_func, initial_theta, bounds):
        value, grad = obj_func(initial_theta)
        calls.append((initial_theta.copy(), bounds.copy(), value, grad))
        return initial_theta + 0.1, value

    model = NNGPRegressor(optimizer=optimizer).fit(x, y)
    theta0, bounds, value, grad = calls[0]
    np.testing.assert_allclose(np.exp(theta0), [1.0, 0.1, 0.1])
    np.testing.assert_allclose(np.exp(bounds), [(0.05, 20.0), (1e-4, 10.0), (1e-8, 1e3)])
    assert value == pytest.approx(-NNGPRegressor().fit(x, y).log_marginal_likelihood_value_)
    np.testing.assert_allclose(model.w_std_, np.exp(0.1), rtol=1e-12)


@pytest.mark.slow
def test_classifier_learns_on_one_hot_targets():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(40, 2))
    labels = (x[:, 0] * x[:, 1] > 0).astype(int)
    model = NNGPClassifier(optimizer=LBFGS).fit(x, labels)
    base = NNGPClassifier().fit(x, labels)
    assert model.log_marginal_likelihood_value_ > base.log_marginal_likelihood_value_
    y = np.eye(2)[labels] - 0.5
    expected = _scipy_lml(x, y, "nngp", model.w_std_, model.b_std_, model.alpha_)
    np.testing.assert_allclose(model.log_marginal_likelihood_value_, expected, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("cls", [NNGPRegressor, NTKRegressor])
def test_predictive_intervals_cover_gp_data(cls):
    """Data drawn from the NNGP prior plus noise: the learned predictive 95% intervals of y
    cover 90-98% of held-out points; the latent intervals of f cover fewer."""
    rng = np.random.default_rng(5)
    x = rng.uniform(-2, 2, size=(400, 2))
    k = _kernel(x, "nngp", depth=2, w_std=1.5, b_std=0.5)
    f = np.linalg.cholesky(k + 1e-9 * np.eye(400)) @ rng.normal(size=400)
    y = f + 0.3 * rng.normal(size=400)
    model = cls(depth=2, optimizer=LBFGS).fit(x[:150], y[:150])
    mean, std_y = model.predict(x[150:], return_std=True, include_noise=True)
    _, std_f = model.predict(x[150:], return_std=True)
    inside = np.abs(y[150:] - mean) <= 1.96 * std_y
    assert 0.90 <= inside.mean() <= 0.98
    assert (np.abs(y[150:] - mean) <= 1.96 * std_f).mean() < inside.mean()
    # The GP posterior of the kernel plus alpha_, computed here from the kernels.
    kw = {"depth": 2, "w_std": model.w_std_, "b_std": model.b_std_}
    get = "ntk" if cls is NTKRegressor else "nngp"
    k = _kernel(x, get, **kw)
    train, test = slice(0, 150), slice(150, None)
    c = k[train, train] + model.alpha_ * np.eye(150)
    var = np.diag(k[test, test]) - np.sum(k[test, train] * np.linalg.solve(c, k[train, test]).T, 1)
    expected = np.sqrt(var + model.alpha_) * model.y_train_std_[0]
    np.testing.assert_allclose(std_y, expected, rtol=1e-6)
    _, cov = model.predict(x[150:155], return_cov=True, include_noise=True)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), std_y[:5], rtol=1e-8)


# -- bad input ---------------------------------------------------------------------------------


def test_bounds_excluding_the_value(data):
    x, y = data
    with pytest.raises(ValueError, match=r"w_std=30 lies outside w_std_bounds"):
        NNGPRegressor(w_std=30.0, optimizer=LBFGS).fit(x, y)
    with pytest.raises(ValueError, match=r"b_std=0 lies outside b_std_bounds.*'fixed'"):
        NNGPRegressor(b_std=0.0, optimizer=LBFGS).fit(x, y)


@pytest.mark.parametrize(
    "bounds", [(0.0, 1.0), (-1.0, 2.0), (2.0, 1.0), (1.0, np.inf), (1.0,), "free", (1, "a")]
)
def test_invalid_bounds(data, bounds):
    x, y = data
    with pytest.raises(ValueError, match="alpha_bounds"):
        NNGPRegressor(alpha_bounds=bounds).fit(x, y)


def test_theta_of_the_wrong_length(data):
    x, y = data
    model = NNGPRegressor().fit(x, y)
    for theta in ([0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [[0.0, 0.0, 0.0]], [0.0, np.nan, 0.0]):
        with pytest.raises(ValueError, match=r"theta must be .* length 3"):
            model.log_marginal_likelihood(theta)


def test_optimizer_that_fails_warns_with_the_best_value(data, monkeypatch):
    x, y = data
    real = ml.minimize

    def one_step(*args, **kwargs):
        return real(*args, **kwargs, options={"maxiter": 1})

    monkeypatch.setattr(ml, "minimize", one_step)
    with pytest.warns(ConvergenceWarning, match=r"did not converge .* best value found, -?\d"):
        model = NNGPRegressor(optimizer=LBFGS).fit(x, y)
    assert (
        model.log_marginal_likelihood_value_
        > NNGPRegressor().fit(x, y).log_marginal_likelihood_value_
    )


def test_callable_optimizer_returning_garbage(data):
    x, y = data
    with pytest.raises(ValueError, match="optimizer .* returned theta"):
        NNGPRegressor(optimizer=lambda f, t, b: (np.array([np.nan, 0, 0]), 0.0)).fit(x, y)
    with pytest.raises(ValueError, match="optimizer .* returned theta"):
        NNGPRegressor(optimizer=lambda f, t, b: (t[:2], 0.0)).fit(x, y)


def test_lml_at_a_singular_kernel_is_a_clear_error(data):
    x, y = data  # duplicate rows: K is singular, and alpha = 1e-300 does not help
    model = NNGPRegressor().fit(x, y)
    with pytest.raises(ValueError, match="not numerically positive definite.*larger alpha"):
        model.log_marginal_likelihood(np.log([1.0, 0.1, 1e-300]))


@pytest.mark.slow
def test_singular_everywhere_is_a_clear_error(data):
    x, y = data
    with pytest.raises(ValueError, match="singular at every point.*alpha_bounds"):
        NNGPRegressor(alpha=1e-300, alpha_bounds="fixed", optimizer=LBFGS).fit(x, y)


def test_optimizer_needs_the_analytic_kernel(data):
    x, y = data
    with pytest.raises(ValueError, match="optimizer needs kernel='analytic'"):
        NNGPRegressor(kernel="empirical", width=8, n_samples=1, optimizer=LBFGS).fit(x, y)


def test_include_noise_needs_a_variance(data):
    x, y = data
    with pytest.raises(ValueError, match="include_noise=True .* return_std"):
        NNGPRegressor().fit(x, y).predict(x, include_noise=True)


# -- input scales (automatic relevance determination) -----------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("get", ["nngp", "ntk"])
def test_input_scales_in_theta_equal_scipy_and_central_differences(data, get):
    """theta = log(w_std, b_std, alpha, s_1..s_d): the kernel of x ⊙ s, gradient exact."""
    x, y = data
    model = REGRESSORS[get](depth=2, alpha=0.05, input_scale_bounds=(1e-3, 1e3)).fit(x, y)
    scales = np.array([0.7, 1.9, 0.2])
    theta = np.log([1.3, 0.4, 0.02, *scales])
    expected = _scipy_lml(x * scales, model.y_fit_, get, 1.3, 0.4, 0.02, depth=2)
    value, grad = model.log_marginal_likelihood(theta, eval_gradient=True)
    np.testing.assert_allclose(value, expected, rtol=1e-10)
    np.testing.assert_allclose(grad, lml_central_differences(model, theta), rtol=1e-5)


def test_fixed_input_scale_equals_scaled_inputs(data):
    x, y = data
    scales = np.array([0.5, 2.0, 1.5])
    for cls in (NNGPRegressor, NTKRegressor):
        a = cls(depth=2, input_scale=scales).fit(x, y)
        b = cls(depth=2).fit(x * scales, y)
        x_test = x[:5] + 0.3
        ma, sa = a.predict(x_test, return_std=True)
        mb, sb = b.predict(x_test * scales, return_std=True)
        np.testing.assert_allclose(ma, mb, rtol=1e-12)
        np.testing.assert_allclose(sa, sb, rtol=1e-10)
        np.testing.assert_array_equal(a.input_scale_, scales)
    assert NNGPRegressor().fit(x, y).input_scale_ is None


@pytest.mark.slow
def test_ard_finds_the_relevant_features():
    """y depends on features 0 and 1 of 5: the learned scales of the others collapse, and the
    held-out fit beats the isotropic one (as ARD length scales do for an RBF)."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(160, 5))
    y = np.sin(2 * x[:, 0]) + x[:, 1] ** 2 + 0.1 * rng.normal(size=160)
    train, test = slice(0, 120), slice(120, None)
    ard = NNGPRegressor(depth=2, optimizer=LBFGS, input_scale_bounds=(1e-3, 1e2))
    iso = NNGPRegressor(depth=2, optimizer=LBFGS)
    ard.fit(x[train], y[train])
    iso.fit(x[train], y[train])
    assert ard.input_scale_.shape == (5,)
    assert ard.input_scale_[2:].max() < 0.1 * ard.input_scale_[:2].min()
    assert ard.log_marginal_likelihood_value_ > iso.log_marginal_likelihood_value_
    assert ard.score(x[test], y[test]) > iso.score(x[test], y[test]) + 0.05
    # The evidence at the fitted values equals SciPy's on the scaled inputs.
    expected = _scipy_lml(
        x[train] * ard.input_scale_, ard.y_fit_, "nngp", ard.w_std_, ard.b_std_, ard.alpha_, 2
    )
    np.testing.assert_allclose(ard.log_marginal_likelihood_value_, expected, rtol=1e-8)


@pytest.mark.parametrize(
    ("scale", "message"),
    [
        (np.ones(2), "vector of 3 positive numbers.*got shape \\(2,\\)"),
        (np.array([1.0, -1.0, 1.0]), "non-positive"),
        (np.array([1.0, np.inf, 1.0]), "non-positive or inf"),
    ],
)
def test_bad_input_scale(data, scale, message):
    x, y = data
    with pytest.raises(ValueError, match=message):
        NNGPRegressor(input_scale=scale).fit(x, y)


def test_input_scale_outside_its_bounds_and_theta_length(data):
    x, y = data
    with pytest.raises(ValueError, match="input_scale=5 lies outside input_scale_bounds"):
        NNGPRegressor(optimizer=LBFGS, input_scale=5.0, input_scale_bounds=(0.1, 2.0)).fit(x, y)
    with pytest.raises(ValueError, match="input_scale_bounds must be 'fixed' or a pair"):
        NNGPRegressor(input_scale_bounds=(0.0, 1.0)).fit(x, y)
    model = NNGPRegressor(input_scale_bounds=(1e-3, 1e3), input_scale=1.0).fit(x, y)
    with pytest.raises(ValueError, match="length 6.*input_scale\\[0\\]"):
        model.log_marginal_likelihood(np.zeros(3))
