"""NTKClassifier and NNGPClassifier: regression on centred one-hot targets."""

from __future__ import annotations

from numbers import Number

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn.estimators._base import NeuralKernelBase
from ntk_sklearn.estimators._regressors import _ATTRIBUTES_DOC, _PARAMS_DOC

#: Training rows on which the temperature is fitted when ``solver_ == "cg"`` (a dense
#: factorization of their kernel gives the leave-one-out outputs).
_LOO_SUBSET = 2000
#: Search range of ``log(1 / temperature)``.
_LOG_BETA_RANGE = (-10.0, 15.0)


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


class _KernelClassifier(ClassifierMixin, NeuralKernelBase):
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
        w_std_bounds=(0.05, 20.0),
        b_std_bounds=(1e-4, 10.0),
        alpha_bounds=(1e-8, 1e3),
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

    def _loo_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out mean outputs ``(m, C)`` of training rows, and those rows' indices.

        The fitted training outputs are ``f = H y`` (``H = S⁻¹(M - α'I) A_t S``, ``M`` the
        training kernel ``S K S + α'I``, ``α' = alpha + jitter_``, ``A_t`` its gain,
        ``S = diag(√w)``). Removing ``δ_i = min(1, w_i)`` of sample ``i``'s weight (one copy
        of a sample repeated ``w_i`` times; the whole sample when ``w_i <= 1``) gives, by
        Sherman-Morrison, ``f_i⁻ = (f_i - d_i y_i) / (1 - d_i)`` with ``d_i = δ_i H_ii / w_i``.
        At ``t=None`` (``H = I - α' S⁻¹M⁻¹S``) this is exact: without weights the leave-one-out
        output of kernel ridge, ``y_i - (M⁻¹y)_i / (M⁻¹)_ii``. At finite ``t`` it is the usual
        linear-smoother approximation (removing a sample also changes the gains). With
        ``solver_ == "cg"`` (no dense factorization), those of the same model fitted on a
        random subset of ``_LOO_SUBSET`` rows.
        """
        n = self.y_fit_.shape[0]
        s = np.ones(n) if self._sqrt_weight is None else self._sqrt_weight.astype(np.float64)
        z = s[:, None] * self.y_fit_.astype(np.float64)
        t, rate = self._hyper["t"], self._rate_
        # A dense factorization: the fitted one, or (CG) one of a subset of the rows.
        dense, rows = self._solver.dense_subset(_LOO_SUBSET, at_any_time=t is not None, n_rows=n)
        if len(rows) < n:
            rate = rate * (s**2).sum() / (s[rows] ** 2).sum()  # lr / (C · Σ w) of the subset
        s, z = s[rows], z[rows]
        alpha = self._hyper["alpha"] + dense.jitter_
        w = s**2
        delta = np.minimum(1.0, w)
        if t is None:
            chol = dense.chol_.astype(np.float64)
            inv_l = solve_triangular(chol, np.eye(len(rows)), lower=True)
            m_inv_z = inv_l.T @ (inv_l @ z)
            m_inv_diag = np.einsum("ij,ij->j", inv_l, inv_l)[:, None]  # Σ_j (L⁻¹)_ji²
            # δ = w: y_i - (M⁻¹z)_i / (s_i (M⁻¹)_ii), free of α (exact also at alpha = 0);
            # else (f_i - d_i y_i)/(1 - d_i) with 1 - H_ii = α'(M⁻¹)_ii, times w_i / w_i.
            whole = (z - m_inv_z / m_inv_diag) / s[:, None]
            w_, d_ = w[:, None], delta[:, None]
            use_whole = d_ >= w_
            # Where the whole sample is left out the denominator may be 0 (alpha' = 0): not used.
            denominator = np.where(use_whole, 1.0, s[:, None] * (w_ - d_ + d_ * alpha * m_inv_diag))
            part = (
                (w_ - d_) * z - w_ * alpha * m_inv_z + d_ * alpha * m_inv_diag * z
            ) / denominator
            return np.where(use_whole, whole, part), rows
        evals, evecs = dense.evals_.astype(np.float64), dense.evecs_.astype(np.float64)
        x = rate * t * evals
        # g_t(λ) = (1 - e^{-ηtλ})/λ on the range; h(λ) = (λ - α)·g_t(λ), the hat's eigenvalues.
        gain = np.where(evals > 0, -np.expm1(-x) / np.where(evals > 0, evals, 1.0), 0.0)
        h = np.maximum(evals - alpha, 0.0) * gain
        fitted = evecs @ (h[:, None] * (evecs.T @ z)) / s[:, None]
        d = (delta / w * np.einsum("ij,j,ij->i", evecs, h, evecs))[:, None]
        return (fitted - d * z / s[:, None]) / (1.0 - d), rows

    def _fit_temperature(self, labels: np.ndarray, w: np.ndarray | None) -> float:
        """``T`` minimising the (weighted) leave-one-out log-loss of ``softmax(f⁻ / T)``."""
        loo, rows = self._loo_outputs()
        labels = labels[rows]
        weights = None if w is None else w[rows]

        def log_loss(log_beta: float) -> float:
            # -Σ w_i log softmax(β f_i⁻)_{y_i} / Σ w_i: convex in β = 1/T.
            logp = log_softmax(np.exp(log_beta) * loo, axis=1)
            return -float(np.average(logp[np.arange(len(labels)), labels], weights=weights))

        res = minimize_scalar(log_loss, bounds=_LOG_BETA_RANGE, method="bounded")
        return float(np.exp(-res.x))

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
