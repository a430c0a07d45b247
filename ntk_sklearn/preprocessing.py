"""Preprocessing for neural-kernel models: inputs on one sphere; images standardised per channel
and average-pooled; the image recipe of the README's best CIFAR and MNIST results."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.pipeline import Pipeline
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

from ntk_sklearn import _warnings

__all__ = ["ChannelStandardizer", "ImageAvgPool", "NormScaler", "make_image_preprocessor"]

# A centred row whose entries are all below this many float epsilons times the size of the
# terms that were subtracted is rounding noise: it is treated as an exact zero row.
_CANCELLATION_EPS = 10
#: Up to this many features, the norm that NormScaler discards is much of the information.
_FEW_FEATURES = 3


def _power_of_two_scale(peak: np.ndarray) -> np.ndarray:
    """The power of two ``s`` with ``s <= peak < 2 s`` (1 where ``peak == 0``).

    Dividing by it is exact and maps ``[-peak, peak]`` into ``(-2, 2)``; ``s`` is finite even
    for the largest float (``2 s`` would not be).
    """
    exponent = np.frexp(peak)[1] - 1  # peak = m · 2**(exponent + 1) with 0.5 <= m < 1
    return np.where(peak > 0, np.ldexp(np.ones_like(peak), exponent), 1).astype(peak.dtype)


class NormScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Centre the features, then scale every sample to the same norm.

    Each sample ``x`` (a row) becomes ``rms * sqrt(n_features) * x / ||x||`` after the
    optional centring, so that ``||x||**2 / n_features == rms**2`` for every row. With the
    default ``rms=1`` this is the natural scale for the first layer of a neural kernel,
    ``Sigma1(x, x') = w_std**2 * <x, x'> / n_features + b_std**2``: every input then has
    ``Sigma1(x, x) = w_std**2 + b_std**2``, as in Lee et al. (2018), who put all inputs on
    the same sphere.

    Rows that are zero (after centring) carry no direction: they stay zero and never turn
    into NaN. After centring, a row whose norm is within rounding error of zero (a row equal
    to the learned mean) counts as zero. Values up to the largest float (1e308) are handled:
    every row is divided by a power of two before its norm is taken, so nothing overflows.

    **NormScaler or StandardScaler?** ``NormScaler`` throws away each row's norm and keeps
    only its direction. With many features (images, spectra, bag-of-words: a row's
    direction is what matters, as in Lee et al.) that is the right input for a neural
    kernel. With few features it destroys the data: with one feature every row becomes
    ``±rms`` (a 1-D regression turns into a step function), with two or three every row
    lands on a circle or sphere and points that differ only in their distance from the mean
    become identical. Use :class:`sklearn.preprocessing.StandardScaler` there (and wherever
    the magnitude of a sample carries information): fitting on 3 features or fewer warns.

    Parameters
    ----------
    center : bool, default=True
        If True, subtract the per-feature mean learned in :meth:`fit` before scaling.
    rms : float, default=1.0
        Target root mean square of every output row: each row ends with norm
        ``rms * sqrt(n_features)``. Must be positive.

    Attributes
    ----------
    mean_ : ndarray of shape (n_features,)
        The per-feature mean of the training data, or zeros if ``center=False``.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`. Defined only when `X` has feature names
        that are all strings.

    See Also
    --------
    sklearn.preprocessing.Normalizer : Scale rows to unit norm, without centring.
    sklearn.preprocessing.StandardScaler : Centre and scale each feature (column).

    Notes
    -----
    The transformation of a row depends only on that row and on ``mean_``, so it is the same
    for training and test data. It cannot be inverted: the norm of the input is lost.

    References
    ----------
    J. Lee, Y. Bahri, R. Novak, S. S. Schoenholz, J. Pennington and J. Sohl-Dickstein,
    "Deep Neural Networks as Gaussian Processes", ICLR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.preprocessing import NormScaler
    >>> X = np.array([[1.0, 2.0], [3.0, 6.0], [2.0, 4.0]])
    >>> scaler = NormScaler().fit(X)
    >>> scaler.mean_
    array([2., 4.])
    >>> Xt = scaler.transform(X)
    >>> np.round(Xt, 4)
    array([[-0.6325, -1.2649],
           [ 0.6325,  1.2649],
           [ 0.    ,  0.    ]])
    >>> np.round((Xt**2).sum(axis=1) / X.shape[1], 6)
    array([1., 1., 0.])
    """

    _parameter_constraints: dict = {
        "center": ["boolean"],
        "rms": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, center: bool = True, rms: float = 1.0) -> None:
        self.center = center
        self.rms = rms

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> NormScaler:
        """Learn the per-feature mean of ``X`` (if ``center``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The training data.
        y : None
            Ignored.

        Returns
        -------
        self : NormScaler
            The fitted transformer.
        """
        X = validate_data(self, X, dtype=FLOAT_DTYPES)
        if X.shape[1] <= _FEW_FEATURES:
            _warnings.warn(
                f"NormScaler on {X.shape[1]} feature(s) keeps only each row's direction: "
                + (
                    "every row becomes +rms or -rms"
                    if X.shape[1] == 1
                    else f"every row is put on a sphere in {X.shape[1]} dimensions"
                )
                + ", and the row norms, most of the information in so few features, are lost. "
                "Use sklearn.preprocessing.StandardScaler instead.",
                UserWarning,
            )
        if self.center:
            # Mean of X / s, times s (s a power of two per column: exact, and no overflow of
            # the sum for values near the largest float).
            scale = _power_of_two_scale(np.max(np.abs(X), axis=0))
            self.mean_ = (X / scale).mean(axis=0) * scale
        else:
            self.mean_ = np.zeros(X.shape[1], dtype=X.dtype)
        return self

    def transform(self, X) -> np.ndarray:
        """Centre (if ``center``) and scale every row of ``X`` to norm ``rms*sqrt(n_features)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The data; it is not modified.

        Returns
        -------
        X_new : ndarray of shape (n_samples, n_features)
            The scaled rows (zero rows stay zero), in the floating dtype of ``X`` (float64
            for other input types).
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, reset=False)
        mean = self.mean_.astype(X.dtype, copy=False)
        # The result is invariant to scaling a row (and the mean with it), so each row is first
        # divided by a power of two s within a factor 2 of max(|x|, |mean|): exact, and neither
        # x − mean nor the bound below can overflow for values near the largest float.
        scale = _power_of_two_scale(np.maximum(np.max(np.abs(X), axis=1), np.abs(mean).max()))
        scaled_x = X / scale[:, np.newaxis]  # a new array: the input is never modified
        scaled_mean = mean / scale[:, np.newaxis]
        out = scaled_x - scaled_mean
        # Divide each row by its largest entry, so that the norm neither overflows nor
        # underflows for very large or very small values.
        peak = np.max(np.abs(out), axis=1)
        # A row within rounding error of the mean is zero. Without centring, mean is 0 and
        # this reduces to ``peak == 0``.
        bound = np.max(np.abs(scaled_x) + np.abs(scaled_mean), axis=1)
        zero = peak <= _CANCELLATION_EPS * np.finfo(X.dtype).eps * bound
        out /= np.where(zero, 1, peak)[:, np.newaxis]
        norms = np.linalg.norm(out, axis=1)
        target = self.rms * np.sqrt(X.shape[1])
        factors = np.where(zero, 0, target / np.where(zero, 1, norms))
        out *= factors.astype(X.dtype)[:, np.newaxis]
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


class ImageAvgPool(TransformerMixin, BaseEstimator):
    """Average-pool flattened images: ``(n, H·W·C)`` to ``(n, H'·W'·C)``.

    Rows are images in ``(H, W, C)`` order (NHWC, as ``image_shape`` of the estimators);
    non-overlapping ``window`` blocks are averaged ("VALID": a remainder at the bottom or right
    edge is dropped). Pooling the input smooths away pixel-level detail that kernels on raw
    pixels over-weight, and cuts the cost of convolutional kernels by ``window⁴`` (for pooling
    stacks) or ``window²``: on MNIST, 2x2 pooling lifted a fully-connected NTK (see the README).

    Parameters
    ----------
    image_shape : tuple of int (H, W, C)
        Shape of one input image.
    window : int or (int, int), default=2
        Height and width of the pooling blocks.

    Attributes
    ----------
    output_shape_ : tuple of int (H', W', C)
        Shape of one output image: pass it as ``image_shape`` to a convolutional estimator.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.preprocessing import ImageAvgPool
    >>> X = np.arange(16.0).reshape(1, 16)  # one 4x4 grey image
    >>> pool = ImageAvgPool(image_shape=(4, 4, 1), window=2).fit(X)
    >>> pool.transform(X), pool.output_shape_
    (array([[ 2.5,  4.5, 10.5, 12.5]]), (2, 2, 1))
    """

    _parameter_constraints: dict = {
        "image_shape": [tuple, list],
        "window": [Interval(Integral, 1, None, closed="left"), tuple, list],
    }

    def __init__(self, image_shape=(28, 28, 1), window=2) -> None:
        self.image_shape = image_shape
        self.window = window

    def _shapes(self, n_features: int):
        shape = tuple(self.image_shape)
        if len(shape) != 3 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in shape
        ):
            raise ValueError(
                f"image_shape must be three positive integers (H, W, C); got {self.image_shape!r}."
            )
        if int(np.prod(shape)) != n_features:
            raise ValueError(
                f"image_shape {shape} has {int(np.prod(shape))} pixels x channels but X has "
                f"{n_features} features."
            )
        window = (self.window, self.window) if np.ndim(self.window) == 0 else tuple(self.window)
        if len(window) != 2 or not all(isinstance(v, (int, np.integer)) for v in window):
            raise ValueError(
                f"window must be an integer or a pair of integers; got {self.window!r}."
            )
        if window[0] > shape[0] or window[1] > shape[1]:
            raise ValueError(f"window {window} is larger than the images {shape[:2]}.")
        return shape, window

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> ImageAvgPool:
        """Check that the rows are images of ``image_shape``; record the output shape."""
        X = validate_data(self, X, dtype=FLOAT_DTYPES)
        (h, w, c), (wh, ww) = self._shapes(X.shape[1])
        self.output_shape_ = (h // wh, w // ww, c)
        return self

    def transform(self, X) -> np.ndarray:
        """Average-pool each image; returns ``(n, H'·W'·C)``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, reset=False)
        (h, w, c), (wh, ww) = self._shapes(X.shape[1])
        ho, wo, _ = self.output_shape_
        images = X.reshape(-1, h, w, c)[:, : ho * wh, : wo * ww]
        pooled = images.reshape(-1, ho, wh, wo, ww, c).mean(axis=(2, 4))
        return pooled.reshape(X.shape[0], -1)


class ChannelStandardizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Standardise each channel of flattened images with statistics over all its pixels.

    Rows are images in ``(H, W, C)`` order (NHWC, as ``image_shape`` of the estimators), so the
    channel of feature ``j`` is ``j % n_channels``. Every value of channel ``c`` becomes
    ``(x - mean_[c]) / scale_[c]``, with the mean and standard deviation of that channel over
    all training images and pixels. Unlike
    :class:`~sklearn.preprocessing.StandardScaler` (one mean per pixel), this keeps the spatial
    structure that convolutional kernels use: an image shifted by a pixel is standardised the
    same way. A constant channel is centred, not scaled (``scale_`` 1).

    Parameters
    ----------
    n_channels : int, default=3
        Channels ``C`` of the images (3 for RGB, 1 for grey); ``n_features`` must be a
        multiple of it.

    Attributes
    ----------
    mean_ : ndarray of shape (C,)
        Per-channel mean of the training images.
    scale_ : ndarray of shape (C,)
        Per-channel standard deviation (1 where it is 0).
    n_features_in_ : int
        Number of features seen during fit.

    See Also
    --------
    make_image_preprocessor : this, then pooling, then :class:`NormScaler`.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.preprocessing import ChannelStandardizer
    >>> X = np.array([[0.0, 10.0, 2.0, 30.0], [4.0, 50.0, 6.0, 70.0]])  # 2 pixels, 2 channels
    >>> scaler = ChannelStandardizer(n_channels=2).fit(X)
    >>> scaler.mean_, scaler.scale_
    (array([ 3., 40.]), array([ 2.23606798, 22.36067977]))
    >>> np.round(scaler.transform(X), 3)
    array([[-1.342, -1.342, -0.447, -0.447],
           [ 0.447,  0.447,  1.342,  1.342]])
    """

    _parameter_constraints: dict = {"n_channels": [Interval(Integral, 1, None, closed="left")]}

    def __init__(self, n_channels=3) -> None:
        self.n_channels = n_channels

    def _channels(self, n_features: int) -> int:
        if n_features % self.n_channels:
            raise ValueError(
                f"X has {n_features} features, not a multiple of n_channels={self.n_channels}: "
                "rows must be images flattened in (H, W, C) order."
            )
        return self.n_channels

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None) -> ChannelStandardizer:
        """Learn each channel's mean and standard deviation over all images and pixels.

        Parameters
        ----------
        X : array-like of shape (n_samples, H·W·C)
        y : None
            Ignored.

        Returns
        -------
        self : ChannelStandardizer
        """
        X = validate_data(self, X, dtype=FLOAT_DTYPES)
        channels = self._channels(X.shape[1])
        values = X.reshape(-1, channels)  # every pixel of every image, one column per channel
        self.mean_ = values.mean(axis=0)
        std = values.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0).astype(X.dtype)
        return self

    def transform(self, X) -> np.ndarray:
        """Standardise every channel with the training statistics.

        Parameters
        ----------
        X : array-like of shape (n_samples, H·W·C)
            The images; not modified.

        Returns
        -------
        X_new : ndarray of shape (n_samples, H·W·C)
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=FLOAT_DTYPES, reset=False)
        channels = self._channels(X.shape[1])
        out = (X.reshape(len(X), -1, channels) - self.mean_) / self.scale_
        return out.reshape(X.shape).astype(X.dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def make_image_preprocessor(image_shape, window=2) -> Pipeline:
    """Per-channel standardisation, ``window`` x ``window`` average pooling, rows on one sphere.

    The "pool2" recipe that ``benchmarks/conv_accuracy.py`` found best for convolutional
    kernels on CIFAR and MNIST (the README's 60.43 % and 98.05 %):
    :class:`ChannelStandardizer`, then :class:`ImageAvgPool`, then
    ``NormScaler(center=False)`` (every image scaled to ``‖x‖² = H'·W'·C``). Pass
    ``image_shape=(H // window, W // window, C)`` to the estimator after it.

    Parameters
    ----------
    image_shape : tuple of int (H, W, C)
        Shape of one input image.
    window : int, default=2
        Pooling window; 1 skips the pooling.

    Returns
    -------
    pipeline : sklearn.pipeline.Pipeline
        Unfitted, steps ``"standardize"``, ``"pool"`` (absent for ``window=1``), ``"normalize"``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.preprocessing import make_image_preprocessor
    >>> X = np.random.default_rng(0).uniform(0, 255, size=(5, 8 * 8 * 3))
    >>> prep = make_image_preprocessor((8, 8, 3)).fit(X)
    >>> Xt = prep.transform(X)
    >>> Xt.shape, bool(np.allclose((Xt**2).sum(axis=1), 4 * 4 * 3))
    ((5, 48), True)
    """
    steps = [("standardize", ChannelStandardizer(n_channels=image_shape[2]))]
    if window != 1:
        steps.append(("pool", ImageAvgPool(image_shape=image_shape, window=window)))
    steps.append(("normalize", NormScaler(center=False)))
    return Pipeline(steps)
