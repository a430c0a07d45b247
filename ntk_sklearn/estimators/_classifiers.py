"""NTKClassifier and NNGPClassifier: regression on centred one-hot targets."""

from __future__ import annotations

from numbers import Number

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn.estimators._base import NeuralKernelBase
from ntk_sklearn.estimators._calibration import _Calibration
from ntk_sklearn.estimators._docs import _ATTRIBUTES_DOC, _PARAMS_DOC
from ntk_sklearn.gaussian_process._hyperparameters import DEFAULT_BOUNDS


def _label_kind(value) -> str:
    """``"bool"``, ``"number"``, ``"str"`` (NumPy's too), ``"bytes"``, else the type's name."""
    if isinstance(value, (bool, np.bool_)):
        return "bool"
    if isinstance(value, Number):
        return "number"
    for kind in (str, bytes):
        if isinstance(value, kind):
            return kind.__name__
    return type(value).__name__


def _check_label_types(y: np.ndarray) -> None:
    """``ValueError`` for missing labels (``None``) or labels of mixed types (``[1, "a"]``).

    scikit-learn's own checks report these as "Unknown label type: unknown" or fail to sort the
    labels (``TypeError: '<' not supported``).
    """
    if y.dtype != object:
        return
    missing = np.flatnonzero(np.fromiter((v is None for v in y), bool, count=len(y)))
    if missing.size:
        raise ValueError(
            f"y contains {missing.size} missing labels (None), the first at index {missing[0]}: "
            "every sample needs a class label. Drop those samples or give them a label."
        )
    kinds = {_label_kind(v) for v in y}
    if len(kinds) > 1:
        raise ValueError(
            f"y contains labels of mixed types ({', '.join(sorted(kinds))}): the classes must be "
            "all numbers or all strings. Convert them to one type, e.g. y.astype(str)."
        )


class _KernelClassifier(ClassifierMixin, _Calibration, NeuralKernelBase):
    # Only the argmax and the temperature (fitted on a dense subset) use the CG solution: at
    # 5,000-20,000 Fashion-MNIST samples tol=1e-3 changed at most 0.02 % of the predictions
    # (benchmarks/bench_cg_defaults.py), with half the iterations or fewer.
    _AUTO_TOL_LARGE = 1e-3

    def __init__(
        self,
        *,
        architecture="fc",
        depth=1,
        activation="relu",
        image_shape=None,
        filter_size=3,
        pooling="flatten",
        flip_invariant=False,
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
        tol="auto",
        max_iter=None,
        preconditioner_rank="auto",
        optimizer=None,
        n_restarts_optimizer=0,
        w_std_bounds=DEFAULT_BOUNDS["w_std"],
        b_std_bounds=DEFAULT_BOUNDS["b_std"],
        alpha_bounds=DEFAULT_BOUNDS["alpha"],
        input_scale=None,
        input_scale_bounds="fixed",
        verbose=0,
        memory=None,
    ):
        self.architecture = architecture
        self.depth = depth
        self.activation = activation
        self.image_shape = image_shape
        self.filter_size = filter_size
        self.pooling = pooling
        self.flip_invariant = flip_invariant
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
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.w_std_bounds = w_std_bounds
        self.b_std_bounds = b_std_bounds
        self.alpha_bounds = alpha_bounds
        self.input_scale = input_scale
        self.input_scale_bounds = input_scale_bounds
        self.verbose = verbose
        self.memory = memory

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
        _check_label_types(y)
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
        self.temperature_ = self._fit_temperature(Y.argmax(axis=1), w)
        return self

    def predict_proba(self, X):
        """Class probabilities ``softmax(mean outputs / temperature_)``.

        The mean outputs (one per class, as :meth:`decision_function` for more than two
        classes) divided by the temperature ``temperature_`` fitted in :meth:`fit` to minimise
        the leave-one-out log-loss on the training data (exact leave-one-out outputs of the
        kernel-ridge mean at ``t=None``; see ``temperature_``). Its argmax is :meth:`predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``.

        Examples
        --------
        >>> import numpy as np
        >>> from ntk_sklearn import NNGPClassifier
        >>> X = np.linspace(-1, 1, 30)[:, None]; y = (X[:, 0] > 0).astype(int)
        >>> model = NNGPClassifier(alpha=1e-2).fit(X, y)
        >>> proba = model.predict_proba([[-0.9], [0.9]])
        >>> proba.argmax(axis=1)
        array([0, 1])
        """
        return softmax(self._scores(X) / self.temperature_, axis=1)

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (computed stably).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
        """
        return log_softmax(self._scores(X) / self.temperature_, axis=1)

    def _scores(self, X) -> np.ndarray:
        """Mean output per class, shape ``(n_samples, n_classes)``."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        return self._posterior(X, None)[0].astype(np.float64)

    def decision_function(self, X):
        """Mean network output per class (for two classes: class 1 minus class 0).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
        """
        scores = self._scores(X)
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
    ``predict_proba`` is ``softmax(outputs / temperature_)``: the mean outputs are regression
    outputs, not probabilities, so one temperature is fitted in ``fit`` by minimising the
    leave-one-out log-loss of the training data, from the fitted factorization (exact
    leave-one-out outputs of kernel ridge at ``t=None``; the linear-smoother approximation
    ``(f_i - H_ii y_i) / (1 - H_ii)`` at finite ``t``; with ``solver_ == "cg"``, from the same
    model on a random subset of 2,000 training rows). With ``sample_weight``, one unit of a
    sample's weight is left out (at most all of it) and its log-loss counts ``w_i`` times, so
    integer weights are repeated samples here too. Measured against
    ``SVC(probability=True)`` and ``GaussianProcessClassifier(RBF)`` by
    ``benchmarks/bench_proba.py``.
"""

_CLASSIFIER_ATTRIBUTES = """    classes_ : ndarray of shape (n_classes,)
        Class labels.
    temperature_ : float
        Divides the mean outputs in :meth:`predict_proba`; fitted by minimising the
        leave-one-out log-loss (bounded search over ``1/T`` in ``[e^-10, e^15]``).
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
        + _CLASSIFIER_ATTRIBUTES
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.model_selection import cross_val_score
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ntk_sklearn import NTKClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), NTKClassifier(alpha=1e-2))
    >>> bool(cross_val_score(model, X, y, cv=3).mean() > 0.9)
    True
    >>> proba = model.fit(X, y).predict_proba(X[:2])
    >>> proba.shape, bool(np.allclose(proba.sum(axis=1), 1.0))
    ((2, 3), True)
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
        + _CLASSIFIER_ATTRIBUTES
        + """
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
