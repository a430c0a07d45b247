"""Tests of NormScaler and ChannelStandardizer: scikit-learn's estimator checks and behaviour;
the image recipe against the formula of the benchmark that chose it."""

from __future__ import annotations

import doctest
import warnings

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.kernel_ridge import KernelRidge
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import ntk_sklearn.preprocessing
from ntk_sklearn.preprocessing import ChannelStandardizer, NormScaler, make_image_preprocessor


@parametrize_with_checks(
    [NormScaler(), NormScaler(center=False, rms=2.5), ChannelStandardizer(n_channels=1)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _sq_norms_per_feature(X):
    return (X**2).sum(axis=1) / X.shape[1]


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return rng.normal(loc=3.0, scale=rng.uniform(0.1, 5.0, size=7), size=(40, 7))


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("rms", [1.0, 0.3, 4.0])
def test_every_row_gets_the_target_norm(X, center, rms):
    Xt = NormScaler(center=center, rms=rms).fit_transform(X)
    np.testing.assert_allclose(_sq_norms_per_feature(Xt), rms**2, rtol=1e-12)


def test_centring_then_same_direction(X):
    scaler = NormScaler().fit(X)
    np.testing.assert_allclose(scaler.mean_, X.mean(axis=0))
    X_new = X[:5] + 1.0  # new data are centred with the mean learned in fit
    centred = X_new - X.mean(axis=0)
    expected = centred / np.linalg.norm(centred, axis=1, keepdims=True) * np.sqrt(X.shape[1])
    np.testing.assert_allclose(scaler.transform(X_new), expected, rtol=1e-12)


def test_without_centring_keeps_the_direction(X):
    scaler = NormScaler(center=False).fit(X)
    np.testing.assert_array_equal(scaler.mean_, np.zeros(X.shape[1]))
    Xt = scaler.transform(X)
    expected = X / np.linalg.norm(X, axis=1, keepdims=True) * np.sqrt(X.shape[1])
    np.testing.assert_allclose(Xt, expected, rtol=1e-12)
    # Scaling a row does not change its image.
    np.testing.assert_allclose(scaler.transform(5 * X), Xt, rtol=1e-12)


def test_zero_rows_stay_zero_without_warnings():
    # Row 2 is exactly the mean of the three rows up to rounding (0.1 + 0.3 ...).
    X = np.array([[0.1, 0.7, 0.2], [0.3, 0.1, 0.6], [0.2, 0.4, 0.4]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "NormScaler on", UserWarning)  # few features
        Xt = NormScaler().fit_transform(X)
        X0 = NormScaler(center=False).fit_transform(np.array([[0.0, 0.0], [1.0, 1.0]]))
    assert np.all(np.isfinite(Xt))
    np.testing.assert_array_equal(Xt[2], 0.0)
    np.testing.assert_allclose(_sq_norms_per_feature(Xt[:2]), 1.0)
    np.testing.assert_array_equal(X0, [[0.0, 0.0], [1.0, 1.0]])


def test_a_single_sample_maps_to_zero():
    Xt = NormScaler().fit_transform(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_array_equal(Xt, np.zeros((1, 3)))


@pytest.mark.parametrize("scale", [1e-300, 1e-150, 1e150, 1e300])
def test_extreme_magnitudes(scale):
    X = np.array([[3.0, 4.0], [0.0, 1.0]]) * scale
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", "NormScaler on", UserWarning)  # few features
        Xt = NormScaler(center=False).fit_transform(X)
    np.testing.assert_allclose(Xt, [[0.6 * np.sqrt(2), 0.8 * np.sqrt(2)], [0.0, np.sqrt(2)]])


@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_values_near_the_largest_float(center, dtype):
    """Rows of ~1e308 (float64) or ~3e38 (float32): the result of the same data scaled down.

    NormScaler is invariant to scaling all the data by c > 0 (the mean scales with it), so the
    scaled-down data, where nothing can overflow, are the truth.
    """
    rng = np.random.default_rng(0)
    big = np.finfo(dtype).max
    X = (rng.uniform(-1, 1, size=(20, 6)) * big).astype(dtype)
    X[0] = big  # a row of the largest float: its squared norm, or the sum for the mean, overflows
    X[1, :3] = -big
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = NormScaler(center=center).fit(X)
        Xt = scaler.transform(X)
    # No overflow in NormScaler (scikit-learn's finiteness check of float32 input may warn).
    assert not [w for w in caught if w.filename.endswith("preprocessing.py")]
    small = X.astype(np.float64) / big
    expected = NormScaler(center=center).fit_transform(small)
    assert np.isfinite(scaler.mean_).all()
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Xt, expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(_sq_norms_per_feature(Xt), 1.0, rtol=rtol)


@pytest.mark.parametrize("n_features", [1, 2, 3])
def test_few_features_warn_and_point_to_standard_scaler(n_features):
    x = np.linspace(-2.0, 3.0, 10)[:, None] * np.arange(1, n_features + 1)
    with pytest.warns(UserWarning, match="StandardScaler"):
        Xt = NormScaler().fit_transform(x)
    if n_features == 1:  # the reason: a 1-D input becomes a step function
        np.testing.assert_allclose(np.abs(Xt), 1.0)
        assert len(np.unique(np.round(Xt, 12))) == 2


def test_many_features_do_not_warn(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        NormScaler().fit(X[:, :4])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_kept_and_input_not_modified(X, dtype):
    X = X.astype(dtype)
    original = X.copy()
    scaler = NormScaler().fit(X)
    Xt = scaler.transform(X)
    assert Xt.dtype == dtype
    assert scaler.mean_.dtype == dtype
    np.testing.assert_array_equal(X, original)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(_sq_norms_per_feature(Xt), 1.0, rtol=rtol)


def test_integer_input_gives_float64():
    Xt = NormScaler(center=False).fit_transform(np.array([[3, 4], [0, 2]]))
    assert Xt.dtype == np.float64
    np.testing.assert_allclose(Xt, [[0.6 * np.sqrt(2), 0.8 * np.sqrt(2)], [0.0, np.sqrt(2)]])


@pytest.mark.parametrize("params", [{"rms": 0.0}, {"rms": -1.0}, {"center": "yes"}])
def test_invalid_parameters(X, params):
    with pytest.raises(ValueError, match="NormScaler"):
        NormScaler(**params).fit(X)


def test_feature_names_out(X):
    scaler = NormScaler().fit(X)
    names = [f"pixel{i}" for i in range(X.shape[1])]
    np.testing.assert_array_equal(scaler.get_feature_names_out(names), names)
    np.testing.assert_array_equal(
        scaler.get_feature_names_out(), [f"x{i}" for i in range(X.shape[1])]
    )


def test_in_a_pipeline_before_a_kernel_model():
    X, y = load_digits(return_X_y=True)
    X_train, y_train, X_test, y_test = X[:600], y[:600], X[600:900], y[600:900]
    model = make_pipeline(NormScaler(), KernelRidge(kernel="linear", alpha=1e-2))
    Y_train = np.eye(10)[y_train]
    model.fit(X_train, Y_train)
    accuracy = np.mean(model.predict(X_test).argmax(axis=1) == y_test)
    assert accuracy > 0.85
    # The model saw inputs on the sphere of radius sqrt(n_features).
    Xt = model[0].transform(X_test)
    np.testing.assert_allclose(np.linalg.norm(Xt, axis=1), np.sqrt(X.shape[1]))


def test_docstring_examples_run():
    result = doctest.testmod(ntk_sklearn.preprocessing, raise_on_error=False, verbose=False)
    assert result.attempted > 0
    assert result.failed == 0


def _images(n=7, shape=(6, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    scales = np.array([1.0, 50.0, 0.01])[: shape[2]]
    return rng.uniform(0, 255, size=(n, *shape)) * scales + np.arange(shape[2])


def test_channel_standardizer_uses_all_pixels_of_a_channel():
    images = _images()
    X = images.reshape(len(images), -1)
    scaler = ChannelStandardizer(n_channels=3).fit(X)
    np.testing.assert_allclose(scaler.mean_, images.mean(axis=(0, 1, 2)), rtol=1e-12)
    np.testing.assert_allclose(scaler.scale_, images.std(axis=(0, 1, 2)), rtol=1e-12)
    new = _images(seed=1)
    expected = (new - images.mean(axis=(0, 1, 2))) / images.std(axis=(0, 1, 2))
    out = scaler.transform(new.reshape(len(new), -1))
    np.testing.assert_allclose(out, expected.reshape(len(new), -1), rtol=1e-12, atol=1e-12)


def test_channel_standardizer_constant_channel_and_bad_width():
    X = np.c_[np.arange(6.0), np.full(6, 4.0)]  # channel 1 constant
    out = ChannelStandardizer(n_channels=2).fit_transform(X)
    np.testing.assert_array_equal(out[:, 1], 0.0)
    with pytest.raises(ValueError, match="multiple of n_channels=2"):
        ChannelStandardizer(n_channels=2).fit(np.ones((3, 5)))


def test_image_preprocessor_is_the_benchmark_pool2_recipe():
    """Standardise channels (training statistics), 2x2 average pooling, then every image to
    norm sqrt(H'W'C): the "pool2" preprocessing of benchmarks/conv_accuracy.py."""
    shape = (6, 4, 3)
    train, test = _images(shape=shape), _images(n=4, shape=shape, seed=3)
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))

    def recipe(a):
        a = ((a - mean) / std).reshape(len(a), 3, 2, 2, 2, 3).mean(axis=(2, 4))
        flat = a.reshape(len(a), -1)
        return flat / np.linalg.norm(flat, axis=1, keepdims=True) * np.sqrt(flat.shape[1])

    prep = make_image_preprocessor(shape, window=2).fit(train.reshape(len(train), -1))
    out = prep.transform(test.reshape(len(test), -1))
    np.testing.assert_allclose(out, recipe(test), rtol=1e-12, atol=1e-12)
    assert [name for name, _ in prep.steps] == ["standardize", "pool", "normalize"]
    assert [name for name, _ in make_image_preprocessor(shape, window=1).steps] == [
        "standardize",
        "normalize",
    ]
