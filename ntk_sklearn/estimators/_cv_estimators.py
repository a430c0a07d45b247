"""NTKRegressorCV, NNGPRegressorCV, NTKClassifierCV, NNGPClassifierCV: ``alpha`` and ``t``
chosen by cross-validation at the cost of one kernel (machinery in
:mod:`ntk_sklearn.estimators._cv`)."""

from __future__ import annotations

import re

from ntk_sklearn.estimators._classifiers import NNGPClassifier, NTKClassifier
from ntk_sklearn.estimators._cv import NeuralKernelCV
from ntk_sklearn.estimators._cv_mixins import ClassifierCVMixin, RegressorCVMixin
from ntk_sklearn.estimators._regressors import _PARAMS_DOC, NNGPRegressor, NTKRegressor

#: Default grid of ``alphas`` (absolute, in normalised-``y`` units for the regressors).
DEFAULT_ALPHAS = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)

_CV_PARAMS_DOC = """    alphas : array-like of shape (n_alphas,), default=(1e-6, 1e-5, ..., 1, 10)
        The values of ``alpha`` (added to the diagonal of the training kernel, absolute as in
        :class:`~sklearn.kernel_ridge.KernelRidge`, in normalised-``y`` units for the
        regressors) to cross-validate: eight powers of ten from ``1e-6`` to ``10``.
    ts : array-like of float or None, default=None
        The training times ``t`` to cross-validate; ``None`` (or an entry ``None``) is the
        converged limit (``np.inf`` too, reported as ``None``). Every ``(alpha, t)`` pair is a
        candidate.
    alphas_relative : bool, default=False
        Multiply ``alphas`` by the mean diagonal of the training kernel of all rows (its trace
        over ``n``): neural-tangents' ``diag_reg`` with ``diag_reg_absolute_scale=False``. The
        chosen ``alpha_`` and ``cv_results_["param_alpha"]`` are the absolute values.
    cv : int, cross-validation generator, iterable or None, default=None
        ``None``: exact leave-one-out in closed form (as :class:`~sklearn.linear_model.RidgeCV`),
        converged limit only (``ts=None``) and a direct solver. An int: that many
        folds (stratified for the classifiers), or any scikit-learn splitter, as in
        :class:`~sklearn.model_selection.GridSearchCV`.
    scoring : str, callable or None, default=None
        A scorer name or callable (:func:`~sklearn.metrics.check_scoring`); ``None``: the
        estimator's ``score`` (R² or accuracy). Scorers that need ``predict_proba`` need
        ``cv`` not ``None``.
"""

_CV_ATTRIBUTES_DOC = """
    Attributes
    ----------
    alpha_ : float
        The chosen ``alpha`` (absolute).
    t_ : float or None
        The chosen training time (``None``: converged).
    best_score_ : float
        Mean cross-validated score of the chosen candidate.
    best_params_ : dict
        ``{"alpha": alpha_, "t": t_}``.
    best_index_ : int
        Index of the chosen candidate in ``cv_results_``.
    cv_results_ : dict of ndarray
        :class:`~sklearn.model_selection.GridSearchCV`'s layout: ``params``, ``param_alpha``,
        ``param_t``, ``split{k}_test_score``, ``mean_test_score``, ``std_test_score``,
        ``rank_test_score``, fit and score times (the kernel's time shared evenly between
        candidates and folds). With ``cv=None``, one split: the score of all leave-one-out
        predictions together, as :class:`~sklearn.linear_model.RidgeCV` computes it.
    alphas_ : ndarray of shape (n_alphas,)
        The absolute values of ``alphas`` searched.
    best_estimator_ : estimator
        The base estimator with ``alpha_`` and ``t_`` fitted on all rows (from the kernel the
        folds used: no second kernel pass). Predictions come from it.
    n_iter_ : int
        Iterations of the refit's solver (1 for a direct factorization).
    n_splits_ : int
        Number of folds (1 with ``cv=None``).
    scorer_ : callable
        The scorer used.
    kernel_time_, refit_time_ : float
        Seconds spent on the kernel of all rows, and on the refit.
    n_features_in_ : int
        Number of features seen during fit.
"""

_CV_NOTES = """
    The kernel of all training rows is computed once (``fit`` on ``n`` rows costs one kernel of
    ``n`` rows, not one per fold and candidate); each fold's kernels are blocks of it, and one
    eigendecomposition per fold (a Cholesky factor per alpha when there are at most three alphas
    and no finite time) gives every candidate's predictions. The results equal a
    :class:`~sklearn.model_selection.GridSearchCV` of the base estimator over
    ``{"alpha": alphas, "t": ts}`` with the same folds and scorer to rounding, and the refit is
    the same model. With ``solver="cg"`` (``"auto"`` above 5,000 rows, 3,000 for finite
    times), each fold and alpha is one CG/Lanczos solve instead: those predictions are
    approximate to ``tol``, and the temperatures of a probability scorer are fitted on up to
    2,000 rows of the fold, as the base classifier does. To search kernel parameters too
    (``depth``, ``pooling``), put this estimator in a
    :class:`~sklearn.model_selection.GridSearchCV` over them: one kernel per outer fold and
    kernel setting, and ``n_jobs`` runs settings in parallel.
"""


def _params_doc(drop: tuple[str, ...]) -> str:
    """The base estimators' parameter docs without ``drop``, with the CV parameters inserted."""
    head, body = _PARAMS_DOC.split("----------\n", 1)
    entries = re.split(r"(?m)^(?=    \w[\w, ]* :)", body)
    kept = []
    for entry in entries:
        name = entry.split(" :", 1)[0].strip()
        if entry.strip() and not any(n.strip() in drop for n in name.split(",")):
            kept.append(entry)
        if name == "negative_slope":
            kept.append(_CV_PARAMS_DOC)
    return head + "----------\n" + "".join(kept)


_DROP = (
    "alpha",
    "t",
    "optimizer",
    "n_restarts_optimizer",
    "w_std_bounds",
    "b_std_bounds",
    "alpha_bounds",
    "input_scale_bounds",
)


class _RegressorCV(RegressorCVMixin, NeuralKernelCV):
    _cv_constraints = NeuralKernelCV._cv_constraints

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
        alphas=DEFAULT_ALPHAS,
        ts=None,
        alphas_relative=False,
        cv=None,
        scoring=None,
        learning_rate=1.0,
        normalize_y=True,
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
        input_scale=None,
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
        self.alphas = alphas
        self.ts = ts
        self.alphas_relative = alphas_relative
        self.cv = cv
        self.scoring = scoring
        self.learning_rate = learning_rate
        self.normalize_y = normalize_y
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
        self.input_scale = input_scale
        self.verbose = verbose
        self.memory = memory


class _ClassifierCV(ClassifierCVMixin, NeuralKernelCV):
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
        alphas=DEFAULT_ALPHAS,
        ts=None,
        alphas_relative=False,
        cv=None,
        scoring=None,
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
        input_scale=None,
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
        self.alphas = alphas
        self.ts = ts
        self.alphas_relative = alphas_relative
        self.cv = cv
        self.scoring = scoring
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
        self.input_scale = input_scale
        self.verbose = verbose
        self.memory = memory


class NTKRegressorCV(_RegressorCV):
    __doc__ = (
        """:class:`~ntk_sklearn.NTKRegressor` with ``alpha`` and ``t`` chosen by cross-validation.
"""
        + _CV_NOTES
        + _params_doc(_DROP)
        + _CV_ATTRIBUTES_DOC
        + """
    See Also
    --------
    NTKRegressor : the estimator tuned; its ``memory`` caches kernels for other searches.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn import NTKRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=60)
    >>> model = NTKRegressorCV(alphas=[1e-3, 1e-2, 1e-1, 1.0]).fit(X, y)  # leave-one-out
    >>> model.alpha_ in (1e-3, 1e-2, 1e-1, 1.0), model.t_
    (True, None)
    >>> model = NTKRegressorCV(alphas=[1e-2, 1e-1], ts=[10.0, 100.0, None], cv=5).fit(X, y)
    >>> len(model.cv_results_["params"]), model.predict(X[:2]).shape
    (6, (2,))
    """
    )

    _estimator_class = NTKRegressor


class NNGPRegressorCV(_RegressorCV):
    __doc__ = (
        """:class:`~ntk_sklearn.NNGPRegressor` with ``alpha`` and ``t`` chosen by cross-validation.
"""
        + _CV_NOTES
        + _params_doc(_DROP)
        + _CV_ATTRIBUTES_DOC
        + """
    See Also
    --------
    NNGPRegressor : the estimator tuned.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn import NNGPRegressorCV
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(60, 3)); y = np.sin(X[:, 0])
    >>> model = NNGPRegressorCV(scoring="neg_mean_squared_error").fit(X, y)
    >>> bool(model.best_score_ < 0), model.best_estimator_.alpha == model.alpha_
    (True, True)
    """
    )

    _estimator_class = NNGPRegressor


class NTKClassifierCV(_ClassifierCV):
    __doc__ = (
        """:class:`~ntk_sklearn.NTKClassifier` with ``alpha`` and ``t`` chosen by cross-validation.
"""
        + _CV_NOTES
        + _params_doc((*_DROP, "normalize_y"))
        + _CV_ATTRIBUTES_DOC
        + """
    See Also
    --------
    NTKClassifier : the estimator tuned.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from ntk_sklearn import NTKClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> model = make_pipeline(StandardScaler(), NTKClassifierCV(cv=5, ts=[1e3, None]))
    >>> bool(model.fit(X, y).score(X, y) > 0.9)
    True
    """
    )

    _estimator_class = NTKClassifier


class NNGPClassifierCV(_ClassifierCV):
    __doc__ = (
        """:class:`~ntk_sklearn.NNGPClassifier` with ``alpha`` and ``t`` chosen by cross-validation.
"""
        + _CV_NOTES
        + _params_doc((*_DROP, "normalize_y"))
        + _CV_ATTRIBUTES_DOC
        + """
    See Also
    --------
    NNGPClassifier : the estimator tuned.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from ntk_sklearn import NNGPClassifierCV
    >>> X, y = load_iris(return_X_y=True)
    >>> model = NNGPClassifierCV(cv=3, scoring="neg_log_loss").fit(X, y)
    >>> model.predict_proba(X[:1]).shape
    (1, 3)
    """
    )

    _estimator_class = NNGPClassifier
