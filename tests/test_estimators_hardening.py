"""The estimators on bad or extreme input: clear errors, warnings, and exact answers where the
naive computation went wrong (review of 399 bad inputs)."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import multivariate_normal
from sklearn.base import clone
from sklearn.kernel_ridge import KernelRidge
from sklearn.utils._param_validation import InvalidParameterError

from ntk_sklearn import (
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
    _memory,
    dynamics,
)
from ntk_sklearn.kernels import fc_kernel, get_activation, register_activation

KW = {"depth": 2, "w_std": 1.3, "b_std": 0.2}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(12, 3)), rng.normal(size=(5, 3))
    return x, np.sin(x[:, 0]) + 0.3 * x[:, 1], x_test


def _kernel(x1, x2=None, get="ntk"):
    with jax.enable_x64(True):
        return fc_kernel(x1, x2, get=get, **KW)


# -- non-finite kernels: the cause, not "alpha=inf" --------------------------------------------


def test_overflowing_inputs_and_stds_name_the_cause(data):
    x, y, x_test = data
    with pytest.raises(ValueError, match=r"(?i)2.33e\+200.*scale the inputs"):
        NTKRegressor().fit(x * 1e200, y)
    with pytest.raises(ValueError, match=r"overflowed.*w_std=1e\+100"):
        NNGPRegressor(w_std=1e100, depth=3).fit(x, y)
    with pytest.raises(ValueError, match="float32"):
        NTKRegressor(dtype="float32").fit(x * 1e20, y)
    model = NTKRegressor().fit(x, y)
    with pytest.raises(ValueError, match=r"(?i)1.96e\+200.*scale the inputs"):
        model.predict(x_test * 1e200)


def test_user_model_with_nan_outputs_is_named(data):
    x, y, _ = data

    def apply_fn(params, z):
        return jnp.sqrt(z @ params["w"] - 1e3)  # NaN outputs and gradients

    with pytest.raises(ValueError, match=r"apply_fn\(params, x\)"):
        NTKRegressor(kernel=(apply_fn, {"w": jnp.ones(3)})).fit(x, y)


def test_all_zero_inputs_get_an_absolute_jitter():
    """Zero inputs and b_std=0: the kernel is 0, the prediction the prior mean (mean of y)."""
    x, y = np.zeros((6, 3)), np.arange(6.0)
    with pytest.warns(RuntimeWarning, match="kernel is zero"):
        model = NTKRegressor(alpha=0.0, b_std=0.0).fit(x, y)
    np.testing.assert_allclose(model.predict(x), y.mean(), rtol=1e-12)


def test_unfixable_zero_kernel_advises_a_positive_alpha(monkeypatch):
    monkeypatch.setattr(dynamics, "cholesky", lambda k: jnp.full_like(k, jnp.nan))
    with pytest.raises(np.linalg.LinAlgError, match=r"alpha=1\.00e-04"):
        NNGPRegressor(alpha=0.0, b_std=0.0).fit(np.zeros((4, 2)), np.arange(4.0))


# -- predict_trajectory: memory and the same kernel as predict --------------------------------


def test_trajectory_refuses_what_does_not_fit(data, monkeypatch):
    x, y, x_test = data
    model = NTKRegressor().fit(x, y)
    monkeypatch.setattr(_memory, "available_memory", lambda: 10**6)
    with pytest.raises(MemoryError, match="predict_trajectory at 1000000 times.*fewer times"):
        model.predict_trajectory(x_test, np.linspace(0, 10, 10**6))


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPRegressor])
def test_trajectory_at_infinity_equals_predict_with_jitter(data, cls):
    x, y, x_test = data
    x2, y2 = np.concatenate([x, x[:4]]), np.concatenate([y, y[:4]])  # singular at alpha=0
    with pytest.warns(RuntimeWarning, match="jitter"):
        model = cls(alpha=0.0, **KW).fit(x2, y2)
    assert model.jitter_ > 0
    traj = model.predict_trajectory(x_test, [1.0, np.inf])
    np.testing.assert_allclose(traj[-1], model.predict(x_test), rtol=1e-5)


# -- the null space of a singular kernel at huge t ---------------------------------------------


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPRegressor])
def test_null_space_at_huge_time_is_exact(data, cls):
    """Duplicate rows, alpha=0: the exact flow fits the duplicates' mean target.

    At t = 1e30 the prediction is the minimum-norm interpolant of the unique rows with averaged
    targets; at t = 2 duplicates are weight-2 samples (the exact dynamics on unique rows).
    """
    x, y, x_test = data
    x2 = np.concatenate([x, x[:4]])
    y2 = np.concatenate([y, y[:4] + 1.0])  # different targets on the duplicates
    y_avg = np.concatenate([y[:4] + 0.5, y[4:]])
    w = np.r_[np.full(4, 2.0), np.ones(8)]
    kw = {"alpha": 0.0, "normalize_y": False, **KW}
    for t in (1e30, 2.0):
        model = cls(t=t, **kw).fit(x2, y2)
        expected = cls(t=t, **kw).fit(x, y_avg, sample_weight=w)
        np.testing.assert_allclose(model.predict(x_test), expected.predict(x_test), rtol=1e-6)
        traj = model.predict_trajectory(x_test, [t])[0]
        np.testing.assert_allclose(traj, expected.predict(x_test), rtol=1e-6)
    # t = 1e30 is converged: kernel "ridge" with alpha=0 on the unique rows.
    k, k_test = _kernel(x, get=cls._kernel), _kernel(x_test, x, get=cls._kernel)
    converged = model.predict_trajectory(x_test, [1e30])[0]
    np.testing.assert_allclose(converged, k_test @ np.linalg.solve(k, y_avg), rtol=1e-6)


# -- variances that are rounding noise ----------------------------------------------------------


@pytest.mark.slow
def test_cancelled_variances_warn(data):
    x, y, _ = data
    deep = NTKRegressor(depth=100, w_std=2.0, dtype="float32").fit(x, y)
    with pytest.warns(RuntimeWarning, match="dominated by rounding"):
        deep.predict(x[:4], return_std=True)  # exact variance ~0, computed ~eps·1e31
    with pytest.warns(RuntimeWarning, match="dominated by rounding"):
        NNGPRegressor(alpha=0.0, **KW).fit(x, y).predict(x, return_cov=True)


def test_well_conditioned_variances_do_not_warn(data):
    x, y, x_test = data
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for cls in (NTKRegressor, NNGPRegressor):
            _, std = cls(alpha=1e-2, **KW).fit(x, y).predict(np.r_[x_test, x], return_std=True)
            assert (std > 0).all()


# -- targets near the float range ----------------------------------------------------------------


def test_huge_targets_scale_exactly(data):
    """normalize_y is scale-equivariant: y·1e200 predicts 1e200·(the prediction for y)."""
    x, y, x_test = data
    ref_mean, ref_std = NTKRegressor(t=3.0).fit(x, y).predict(x_test, return_std=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warnings from NumPy
        mean, std = NTKRegressor(t=3.0).fit(x, y * 1e200).predict(x_test, return_std=True)
        mean32 = NTKRegressor(dtype="float32").fit(x, y * 1e300).predict(x_test)
    np.testing.assert_allclose(mean, ref_mean * 1e200, rtol=1e-10)
    np.testing.assert_allclose(std, ref_std * 1e200, rtol=1e-10)
    ref32 = NTKRegressor().fit(x, y).predict(x_test) * 1e300
    np.testing.assert_allclose(mean32, ref32, rtol=1e-4, atol=1e-4 * np.abs(ref32).max())


def test_targets_beyond_the_range_are_refused(data):
    x, y, x_test = data
    with pytest.raises(ValueError, match="beyond float32's range"):
        NTKRegressor(dtype="float32", normalize_y=False).fit(x, y * 1e300)
    model = NTKRegressor().fit(x, y * 1e200)
    with pytest.raises(ValueError, match="overflows float64"):
        model.predict(x_test, return_cov=True)  # variances of order 1e400


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [jnp.float32(1.5), np.array(1.5), np.float32(1.5)])
def test_zero_dimensional_array_parameters(data, value):
    x, y, x_test = data
    model = NTKRegressor(w_std=value, dtype="float32").fit(x, y)
    assert model.get_params()["w_std"] is value  # stored as given
    expected = NTKRegressor(w_std=1.5, dtype="float32").fit(x, y).predict(x_test)
    np.testing.assert_allclose(model.predict(x_test), expected, rtol=1e-6)


def test_parameter_errors_name_the_parameter(data):
    x, y, _ = data
    with pytest.raises(InvalidParameterError, match="'w_std' parameter .* must be a float"):
        NTKRegressor(w_std="1").fit(x, y)
    with pytest.raises(InvalidParameterError, match=r"'negative_slope' .* \[-1000000.0, 1"):
        NTKRegressor(negative_slope=1e200).fit(x, y)
    with pytest.raises(InvalidParameterError, match="'w_std'"):
        NTKRegressor(w_std=jnp.ones(2)).fit(x, y)
    with pytest.raises(InvalidParameterError, match="'dtype'"):
        NTKRegressor(dtype=np.float16).fit(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.dtype("float32"), jnp.float32])
def test_dtype_types_are_accepted(data, dtype):
    x, y, x_test = data
    model = NTKRegressor(dtype=dtype).fit(x, y)
    assert model.dtype is dtype
    expected = NTKRegressor(dtype="float32").fit(x, y).predict(x_test)
    np.testing.assert_array_equal(model.predict(x_test), expected)
    assert model.X_fit_.dtype == np.float32


def test_lml_at_finite_time_with_duplicates_uses_the_fit_jitter(data):
    x, y, _ = data
    x2, y2 = np.concatenate([x, x[:3]]), np.concatenate([y, y[:3]])
    kw = {"alpha": 0.0, "normalize_y": False, **KW}
    with pytest.warns(RuntimeWarning, match="jitter"):
        converged = NNGPRegressor(**kw).fit(x2, y2)
    finite = NNGPRegressor(t=5.0, **kw).fit(x2, y2)
    with pytest.warns(RuntimeWarning, match="jitter"):
        lml = finite.log_marginal_likelihood()
    k = _kernel(x2, get="nngp") + converged.jitter_ * np.eye(len(x2))
    # log N(y; 0, K) by LU (scipy's multivariate_normal refuses a kernel this ill-conditioned).
    quad = y2 @ np.linalg.solve(k, y2)
    expected = -0.5 * (quad + np.linalg.slogdet(k)[1] + len(x2) * np.log(2 * np.pi))
    np.testing.assert_allclose(lml, expected, rtol=1e-6)
    np.testing.assert_allclose(converged.log_marginal_likelihood(), expected, rtol=1e-6)


def test_refit_does_not_reuse_an_earlier_factorization(data):
    x, y, _ = data
    model = NNGPRegressor(**KW).fit(x, y)  # leaves chol_
    model.set_params(t=5.0).fit(x[:8], y[:8])
    fresh = NNGPRegressor(t=5.0, **KW).fit(x[:8], y[:8])
    assert not hasattr(model, "chol_")
    assert model.log_marginal_likelihood() == fresh.log_marginal_likelihood()


def test_fitted_inputs_are_a_copy(data):
    x, y, x_test = data
    x = x.copy()
    model = NTKRegressor().fit(x, y)
    before = model.predict(x_test)
    x *= 10.0
    np.testing.assert_array_equal(model.predict(x_test), before)


# -- activations -------------------------------------------------------------------------------


def test_registered_activation_is_accepted(data):
    x, y, x_test = data
    name = "relu_registered_by_test"
    register_activation(name, lambda negative_slope: get_activation("relu"))
    try:
        pred = NTKRegressor(activation=name, **KW).fit(x, y).predict(x_test)
    finally:  # the registry is process-wide: remove the test's name again
        from ntk_sklearn.kernels import _activations

        del _activations._CLOSED_FORMS[name]
        _activations._build.cache_clear()
    np.testing.assert_array_equal(pred, NTKRegressor(**KW).fit(x, y).predict(x_test))
    with pytest.raises(ValueError, match="Unknown activation"):
        NTKRegressor(activation=name).fit(x, y)


@pytest.mark.parametrize(
    ("activation", "match"),
    [
        (np.tanh, "jnp.tanh, not np.tanh"),
        (lambda z: z if z > 0 else 0.0 * z, "JAX-traceable"),
        (lambda z: jnp.sum(z), "elementwise"),
    ],
)
def test_untraceable_activation_is_refused(data, activation, match):
    x, y, _ = data
    with pytest.raises(ValueError, match=match):
        NTKRegressor(activation=activation).fit(x, y)


def test_clone_shares_activation_and_model_function(data):
    x, y, _ = data

    def apply_fn(params, z):
        return jnp.tanh(z @ params)

    model = NTKRegressor(activation=jnp.tanh)
    copy = clone(model)
    assert copy.activation is jnp.tanh
    user = clone(NTKRegressor(kernel=(apply_fn, jnp.ones(3))))
    assert user.kernel[0] is apply_fn
    np.testing.assert_array_equal(user.kernel[1], np.ones(3))


def test_repr_hides_user_parameters():
    def apply_fn(params, z):
        return z @ params["w"]

    text = repr(NTKRegressor(kernel=(apply_fn, {"w": jnp.arange(1000.0)}), alpha=1e-3))
    assert text == "NTKRegressor(alpha=0.001, kernel=(apply_fn, <params: 1 arrays, 1000 values>))"


# -- sample_weight ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPRegressor])
def test_sample_weight_at_convergence_is_kernel_ridge(data, cls):
    x, y, x_test = data
    w = np.random.default_rng(1).uniform(0.2, 3.0, len(x))
    w[3] = 0.0
    k, k_test = _kernel(x, get=cls._kernel), _kernel(x_test, x, get=cls._kernel)
    ridge = KernelRidge(kernel="precomputed", alpha=1e-2).fit(k, y, sample_weight=w)
    model = cls(alpha=1e-2, normalize_y=False, **KW).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(model.predict(x_test), ridge.predict(k_test), rtol=1e-9)


@pytest.mark.parametrize("cls", [NTKRegressor, NNGPRegressor])
def test_integer_weights_are_repeated_samples(data, cls):
    """Gradient flow on the weighted loss, mean and covariance, at a finite time."""
    x, y, x_test = data
    counts = np.array([1, 2, 3, 1, 0, 1, 2, 1, 1, 1, 4, 1])
    kw = {"alpha": 1e-2, "t": 3.0, **KW}
    weighted = cls(**kw).fit(x, y, sample_weight=counts)
    repeated = cls(**kw).fit(np.repeat(x, counts, 0), np.repeat(y, counts))
    for a, b in zip(
        weighted.predict(x_test, return_cov=True),
        repeated.predict(x_test, return_cov=True),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        weighted.predict_trajectory(x_test, [0.5, 3.0]),
        repeated.predict_trajectory(x_test, [0.5, 3.0]),
        rtol=1e-8,
    )


@pytest.mark.parametrize("cls", [NTKClassifier, NNGPClassifier])
def test_zero_weights_drop_samples_in_classifiers(data, cls):
    x, y, x_test = data
    labels = np.where(y > 0, "pos", "neg")
    w = np.ones(len(x))
    w[[1, 5]] = 0.0
    keep = w > 0
    weighted = cls(t=2.0).fit(x, labels, sample_weight=w)
    dropped = cls(t=2.0).fit(x[keep], labels[keep])
    np.testing.assert_allclose(
        weighted.decision_function(x_test), dropped.decision_function(x_test), rtol=1e-10
    )
    with pytest.raises(ValueError, match="non-zero"):
        cls().fit(x, labels, sample_weight=np.zeros(len(x)))
    with pytest.raises(ValueError, match="Negative values"):
        cls().fit(x, labels, sample_weight=-w)


def test_weighted_log_marginal_likelihood_against_scipy(data):
    """Noise alpha / w_i per sample: log N(y; 0, K + alpha·W⁻¹)."""
    x, y, _ = data
    w = np.random.default_rng(2).uniform(0.5, 2.0, len(x))
    model = NNGPRegressor(alpha=1e-2, normalize_y=False, **KW).fit(x, y, sample_weight=w)
    cov = _kernel(x, get="nngp") + np.diag(1e-2 / w)
    expected = multivariate_normal(np.zeros(len(x)), cov).logpdf(y)
    np.testing.assert_allclose(model.log_marginal_likelihood(), expected, rtol=1e-10)


def test_warnings_point_at_the_callers_line():
    """Warnings from deep inside fit (the jitter policy in solvers/) name the user's file."""
    x = np.repeat(np.random.default_rng(7).normal(size=(5, 3)), 2, axis=0)  # duplicate rows
    with pytest.warns(RuntimeWarning, match="jitter") as record:
        NTKRegressor(alpha=0.0).fit(x, np.arange(10.0))
    assert {w.filename for w in record} == {__file__}
