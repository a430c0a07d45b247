"""What the CV estimators add for regression and for classification: targets, fold models,
and the predictions of the refitted best estimator."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.validation import check_is_fitted

from ntk_sklearn.estimators._regressors import _normalize


class _FoldModel(BaseEstimator):
    """What the base estimator fitted on one fold with one candidate predicts on its validation
    rows; scorers call it like a fitted estimator (``X`` must be those rows)."""

    def __init__(self, outputs=None, classes=None, y_1d=True, temperature=None):
        self.outputs = outputs
        self.classes = classes
        self.y_1d = y_1d
        self.temperature = temperature

    def _check(self, X) -> None:
        if len(X) != len(self.outputs):
            raise ValueError("A fold's predictions are for its validation rows only.")

    def predict(self, X):
        self._check(X)
        if self.classes is None:
            return self.outputs[:, 0] if self.y_1d else self.outputs
        if len(self.classes) == 2:
            return self.classes[(self.decision_function(X) > 0).astype(int)]
        return self.classes[np.argmax(self.outputs, axis=1)]

    def decision_function(self, X):
        self._check(X)
        if len(self.classes) == 2:
            return self.outputs[:, 1] - self.outputs[:, 0]
        return self.outputs

    def predict_proba(self, X):
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        self._check(X)
        if self.temperature is None:
            raise ValueError(
                "Scores from predict_proba are not available with cv=None: the temperature of "
                "each leave-one-out fit would need a leave-one-out of its own. Pass cv=5 (or "
                "another splitter)."
            )
        return log_softmax(self.outputs / self.temperature(), axis=1)


class _FoldRegressor(RegressorMixin, _FoldModel):
    pass


class _FoldClassifier(ClassifierMixin, _FoldModel):
    @property
    def classes_(self):
        return self.classes


class RegressorCVMixin(RegressorMixin):
    """Targets and stand-ins of the regressors' CV."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _targets(self, y, rows, w_rows, loo: bool = False):
        self._y_1d = y.ndim == 1
        Y = y.reshape(len(y), -1)[rows].astype(np.float64)
        if loo:
            return self._loo_targets(Y, w_rows)
        if self.normalize_y:
            mean, std, Z = _normalize(Y, w_rows)
        else:
            mean, std, Z = np.zeros(Y.shape[1]), np.ones(Y.shape[1]), Y
        return Z, lambda means: means * std + mean, None

    def _loo_targets(self, Y, w):
        """Columns ``[Y, 1]`` and how to combine their leave-one-out outputs into predictions.

        With ``normalize_y`` the fit without (a unit of) sample ``i`` centres by the weighted
        mean ``m_i'`` of the others; its mean prediction is ``m_i' + f_i⁻(y - m_i')`` =
        ``m_i' (1 - f_i⁻(1)) + f_i⁻(y)`` (the scale of ``normalize_y`` cancels in the mean).
        """
        k = Y.shape[1]
        if not self.normalize_y:
            return Y, lambda loo, zero: loo, None
        weights = np.ones(len(Y)) if w is None else w
        delta = np.minimum(1.0, weights)[:, None]
        total = (weights[:, None] * Y).sum(axis=0)
        mean_without = (total - delta * Y) / (weights.sum() - delta)

        def combine(loo, zero):
            means = np.empty((len(loo), k))
            rows = np.setdiff1d(np.arange(len(loo)), zero)
            means[rows] = mean_without
            means[zero] = total / weights.sum()
            return means * (1.0 - loo[:, k:]) + loo[:, :k]

        return np.hstack([Y, np.ones((len(Y), 1))]), combine, None

    def _fold_model(self, outputs, temperature):
        return _FoldRegressor(outputs, None, self._y_1d)

    def predict_trajectory(self, X, times):
        """Mean predictions of ``best_estimator_`` at many training times.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        times : array-like of shape (n_times,)

        Returns
        -------
        y_mean : ndarray of shape (n_times, n_samples) or (n_times, n_samples, n_targets)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_trajectory(X, times)


class ClassifierCVMixin(ClassifierMixin):
    """Targets and stand-ins of the classifiers' CV."""

    def _targets(self, y, rows, w_rows, loo: bool = False):
        encoder = LabelEncoder().fit(y if loo else y[rows])
        classes = encoder.classes_
        if len(classes) < 2:
            raise ValueError(
                f"A fold's training rows hold a single class ({classes[0]!r}): use fewer folds "
                "or a stratified splitter."
            )
        labels = encoder.transform(y[rows])
        Z = np.eye(len(classes))[labels] - 1.0 / len(classes)
        self._fold_classes = classes
        if loo:
            return Z, lambda loo, zero: loo, None
        return Z, lambda means: means, labels

    def _fold_model(self, outputs, temperature):
        return _FoldClassifier(outputs, self._fold_classes, False, temperature)

    def decision_function(self, X):
        """Decision function of ``best_estimator_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.best_estimator_.decision_function(X)

    def predict_proba(self, X):
        """Class probabilities of ``best_estimator_`` (its temperature fitted on all rows).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_proba(X)

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        check_is_fitted(self)
        return self.best_estimator_.predict_log_proba(X)

    @property
    def classes_(self):
        """Class labels (those of ``best_estimator_``)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.classes_
