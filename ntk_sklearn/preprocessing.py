"""Preprocessing for neural-kernel models: put every input on the same sphere."""

from __future__ import annotations

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin, _fit_context
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import FLOAT_DTYPES, check_is_fitted, validate_data

__all__ = ["NormScaler"]

# A centred row whose entries are all below this many float epsilons times the size of the
# terms that were subtracted is rounding noise: it is treated as an exact zero row.
_CANCELLATION_EPS = 10


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
    to the learned mean) counts as zero.

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
        if self.center:
            self.mean_ = X.mean(axis=0)
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
        out = X - mean  # a new array: the input is never modified
        # Divide each row by its largest entry first, so that the norm neither overflows nor
        # underflows for very large or very small values.
        peak = np.max(np.abs(out), axis=1)
        # A row within rounding error of the mean is zero. Without centring, mean is 0 and
        # this reduces to ``peak == 0``.
        bound = np.max(np.abs(X) + np.abs(mean), axis=1)
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
