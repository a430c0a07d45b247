"""NTKClassifier and NNGPClassifier: regression on centred one-hot targets."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn._base import NeuralKernelBase
from ntk_sklearn._regressors import _ATTRIBUTES_DOC, _PARAMS_DOC


class _KernelClassifier(ClassifierMixin, NeuralKernelBase):
    def __init__(
        self,
        *,
        architecture="fc",
        depth=1,
        activation="relu",
        image_shape=None,
        filter_size=3,
        pooling="flatten",
        layers=None,
        w_std=1.0,
        b_std=0.1,
        negative_slope=0.01,
        alpha=0.1,
        t=None,
        learning_rate=1.0,
        dtype="float64",
        block_size=None,
        kernel="analytic",
        width=512,
        n_samples=8,
        random_state=None,
        solver="auto",
        tol=1e-6,
        max_iter=None,
        preconditioner_rank=100,
    ):
        self.architecture = architecture
        self.depth = depth
        self.activation = activation
        self.image_shape = image_shape
        self.filter_size = filter_size
        self.pooling = pooling
        self.layers = layers
        self.w_std = w_std
        self.b_std = b_std
        self.negative_slope = negative_slope
        self.alpha = alpha
        self.t = t
        self.learning_rate = learning_rate
        self.dtype = dtype
        self.block_size = block_size
        self.kernel = kernel
        self.width = width
        self.n_samples = n_samples
        self.random_state = random_state
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.preconditioner_rank = preconditioner_rank

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit on centred one-hot targets: ``1 - 1/C`` for the class, ``-1/C`` elsewhere.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,)
            Labels of any type (strings too).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample's share of the loss, as in
            :class:`~sklearn.kernel_ridge.KernelRidge` (see the regressors' ``fit``); zero
            weights drop samples.

        Returns
        -------
        self : object
        """
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self._setup()
        w = self._sample_weight(sample_weight, X)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"The number of classes has to be greater than one; got {n_classes} class."
            )
        # Lee et al. 2018: regression on one-hot targets centred to zero mean (-1/C, 1 - 1/C).
        Y = np.eye(n_classes)[encoder.transform(y)] - 1.0 / n_classes
        if w is not None:
            keep = w > 0
            X, Y, w = X[keep], Y[keep], w[keep]
        self._fit_dynamics(X, Y, w)
        return self

    def decision_function(self, X):
        """Mean network output per class (for two classes: class 1 minus class 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        scores = self._posterior(X, None)[0]
        if len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X):
        """Class with the largest mean output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]


_CLASSIFIER_NOTE = """
    ``predict_proba`` is not offered: the ensemble's outputs are Gaussian regression outputs, not
    calibrated probabilities. Use :class:`~sklearn.calibration.CalibratedClassifierCV` on top
    where probabilities are needed.
"""


def _classifier_params_doc() -> str:
    return _PARAMS_DOC.split("    normalize_y")[0] + "    dtype" + _PARAMS_DOC.split("    dtype")[1]


class NTKClassifier(_KernelClassifier):
    __doc__ = (
        """Classifier: infinitely wide networks trained by gradient descent, one-hot targets (NTK).

    Regression with :class:`~ntk_sklearn.NTKRegressor`'s dynamics on centred one-hot targets
    (Lee et al. 2018, 2019); the predicted class has the largest mean output at time ``t``.
"""
        + _CLASSIFIER_NOTE
        + _classifier_params_doc()
        + _ATTRIBUTES_DOC.split("    y_train_mean_")[0]
        + """    classes_ : ndarray of shape (n_classes,)
        Class labels.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ntk_sklearn import NTKClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), NTKClassifier(alpha=1e-2))
    >>> bool(cross_val_score(model, X, y, cv=3).mean() > 0.9)
    True
    """
    )

    _kernel = "ntk"


class NNGPClassifier(_KernelClassifier):
    __doc__ = (
        """Classifier: NNGP posterior mean on centred one-hot targets (Lee et al. 2018).

    Gaussian-process regression with the NNGP kernel on centred one-hot targets; the predicted
    class has the largest posterior mean. Finite ``t`` gives the ensemble of networks whose last
    layer is trained for time ``t``.
"""
        + _CLASSIFIER_NOTE
        + _classifier_params_doc()
        + _ATTRIBUTES_DOC.split("    y_train_mean_")[0]
        + """    classes_ : ndarray of shape (n_classes,)
        Class labels.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.pipeline import make_pipeline
    >>> from ntk_sklearn import NNGPClassifier
    >>> from ntk_sklearn.preprocessing import NormScaler
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(NormScaler(), NNGPClassifier()).fit(X[:500], y[:500])
    >>> bool(model.score(X[500:800], y[500:800]) > 0.9)
    True
    """
    )

    _kernel = "nngp"
