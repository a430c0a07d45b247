"""Cross-validation of ``alpha`` and ``t`` at the cost of one kernel: the machinery of the CV
estimators (:mod:`ntk_sklearn.estimators._cv_estimators` defines the four classes).

The kernel of all training rows is computed once; each fold's training and validation kernels
are blocks of it; each fold's factorization serves every ``alpha`` and ``t``
(:mod:`ntk_sklearn.estimators._cv_search`). Each candidate is scored by handing a scorer a stand-in
estimator, :class:`_FoldModel`, whose ``predict``/``decision_function``/``predict_proba`` return
what the estimator fitted on that fold with that candidate would return: any scikit-learn scorer
works, with :class:`~sklearn.model_selection.GridSearchCV`'s semantics (scores of the validation
rows, unweighted).
"""

from __future__ import annotations

import inspect
import time
from numbers import Integral

import numpy as np
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ntk_sklearn import _progress
from ntk_sklearn.estimators import _cv_search, _kernel_cache
from ntk_sklearn.estimators._calibration import fit_temperature
from ntk_sklearn.estimators._params import check_memory
from ntk_sklearn.solvers import CGSolver, CholeskySolver, choose_solver
from ntk_sklearn.solvers._jitter import eigenvalue_jitter

#: Parameters of the CV estimators that their base estimator does not have.
CV_PARAMS = ("alphas", "ts", "alphas_relative", "cv", "scoring")
#: Parameters of the base estimators that the CV estimators do not have: ``alpha`` and ``t``
#: are searched; an ``optimizer`` would learn a new kernel in every fit.
NOT_CV_PARAMS = (
    "alpha",
    "t",
    "optimizer",
    "n_restarts_optimizer",
    "w_std_bounds",
    "b_std_bounds",
    "alpha_bounds",
    "input_scale_bounds",
)
#: Up to this many alphas (all at ``t=None``), a Cholesky factor per alpha is cheaper than
#: one eigendecomposition (about 10 times the flops of a Cholesky factorization).
_CHOLESKY_MAX_ALPHAS = 3


def _accepts_sample_weight(scorer) -> bool:
    """Whether ``scorer`` takes ``sample_weight`` (then GridSearchCV passes the weights)."""
    if hasattr(scorer, "_accept_sample_weight"):
        return bool(scorer._accept_sample_weight())
    return "sample_weight" in inspect.signature(scorer).parameters


def _check_grid(alphas, ts) -> tuple[np.ndarray, list]:
    """``alphas`` as a non-empty 1-D float array ``>= 0``; ``ts`` as a list of ``None``/floats."""
    try:
        grid = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"alphas must be an array of numbers >= 0; got {alphas!r}.") from err
    if grid.ndim != 1 or grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
        raise ValueError(
            f"alphas must be a non-empty 1-D array of finite numbers >= 0; got {alphas!r}."
        )
    times = [None] if ts is None else list(np.ravel(np.asarray(ts, dtype=object)))
    if not times:
        raise ValueError("ts must be None (converged) or a non-empty list of training times.")
    out = []
    for t in times:
        if t is None:
            out.append(None)
            continue
        try:
            value = float(t)
        except (TypeError, ValueError) as err:
            raise ValueError(f"ts must hold numbers >= 0 or None; got {t!r}.") from err
        if np.isnan(value) or value < 0:
            raise ValueError(
                f"ts must hold numbers >= 0, or None (or np.inf) for the converged limit; got "
                f"{t!r}."
            )
        # t = inf is the converged limit, as in the base estimators: reported as None.
        out.append(None if np.isinf(value) else value)
    return grid, out


class NeuralKernelCV(BaseEstimator):
    """Base of the four CV estimators; ``_estimator_class`` is the estimator they tune."""

    _estimator_class: type

    _cv_constraints: dict = {
        "alphas": ["array-like"],
        "ts": ["array-like", None],
        "alphas_relative": ["boolean"],
        "cv": ["cv_object"],
        "scoring": [str, callable, None],
    }

    def _base_params(self) -> dict:
        params = self.get_params(deep=False)
        return {name: value for name, value in params.items() if name not in CV_PARAMS}

    def _base(self, **params):
        return self._estimator_class(**{**self._base_params(), **params})

    def fit(self, X, y, sample_weight=None, groups=None):
        """Score every ``alpha`` and ``t`` by cross-validation, then refit the best on all rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Passed to each fold's fit, to the scorer (when it takes ``sample_weight``) and to
            the refit, as :class:`~sklearn.model_selection.GridSearchCV` does. With
            ``cv=None``, one unit of each sample's weight is left out (the whole sample when
            its weight is at most 1): integer weights are repeated samples.
        groups : array-like of shape (n_samples,), default=None
            Group labels for a group splitter given as ``cv``.

        Returns
        -------
        self : object
        """
        validate_parameter_constraints(
            self._cv_constraints,
            {name: getattr(self, name) for name in CV_PARAMS},
            caller_name=type(self).__name__,
        )
        alphas, ts = _check_grid(self.alphas, self.ts)
        X_in = X
        X, y = validate_data(
            self,
            X,
            y,
            multi_output=not is_classifier(self),
            y_numeric=not is_classifier(self),
            dtype=[np.float64, np.float32],
        )
        w = None
        if sample_weight is not None:
            w = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        if is_classifier(self):
            check_classification_targets(y)
        params = {}
        if self.kernel == "empirical" and not isinstance(self.random_state, Integral):
            # The folds and the refit must see the same networks.
            params["random_state"] = int(check_random_state(self.random_state).randint(2**31 - 1))
        template = self._base(alpha=float(alphas[0]), t=None, **params)
        template._validate_params()
        template._setup()
        template._learn_hyperparameters(X, None, w)
        start = time.perf_counter()
        kernels, K = self._full_kernel(template, X)
        self.kernel_time_ = time.perf_counter() - start
        self.alphas_ = alphas * float(np.mean(np.diag(K))) if self.alphas_relative else alphas
        self.scorer_ = check_scoring(template, self.scoring)
        self._score_weighted = w is not None and _accepts_sample_weight(self.scorer_)
        if self.cv is None:
            scores, times = self._leave_one_out(template, X, y, w, K, ts)
        else:
            scores, times = self._k_fold(template, X, y, w, K, ts, groups)
        self._store_results(scores, times, ts)
        start = time.perf_counter()
        self._refit(template, X_in, X, y, w, kernels, params)
        self.refit_time_ = time.perf_counter() - start
        return self

    # -- kernel --------------------------------------------------------------------------------

    def _full_kernel(self, template, X: np.ndarray):
        """The base estimator's kernels between all training rows (``{name: (n, n)}``) and the
        kernel of its dynamics among them."""
        n = X.shape[0]
        names = template._kernel_names()
        dtype = template._np_dtype()
        check_memory(
            (len(names) + 3) * n * n * dtype.itemsize,
            f"Cross-validating on {n} samples (the kernel of all rows and a fold's factorization)",
        )
        Xd = np.array(X, dtype=dtype)
        which = "between training inputs"
        with template._scope():
            kernels = template._computed(which, Xd, lambda: template._kernels(Xd))
        out = {}
        for name in names:
            k = np.asarray(getattr(kernels, name))
            template._check_finite(k, which, Xd)
            out[name] = k
        return out, out["ntk" if template._kernel == "ntk" else "nngp"]

    # -- targets -------------------------------------------------------------------------------

    def _targets(self, y, rows, w_rows):
        """The fold's targets as the base estimator fits them, and how to undo the scaling.

        Regressors: ``(Y - mean) / std`` (``normalize_y``); classifiers: centred one-hot
        targets of the classes present in ``y`` (all rows of the fold, as the base estimator's
        label encoder sees them).
        """
        raise NotImplementedError

    # -- k-fold --------------------------------------------------------------------------------

    def _k_fold(self, template, X, y, w, K, ts, groups):
        cv = check_cv(self.cv, y, classifier=is_classifier(self))
        splits = list(cv.split(X, y, groups))
        n_cand = len(self.alphas_) * len(ts)
        scores = np.empty((n_cand, len(splits)))
        fit_times, score_times = np.empty_like(scores), np.empty_like(scores)
        for fold, (train, val) in enumerate(splits):
            start = time.perf_counter()
            outputs, proba = self._fold_outputs(template, y, w, K, ts, train, val)
            fit_times[:, fold] = (time.perf_counter() - start) / n_cand
            kwargs = {} if not self._score_weighted else {"sample_weight": w[val]}
            for c in range(n_cand):
                start = time.perf_counter()
                if np.isnan(outputs[c]).any():  # a failed fit (see _cholesky_means)
                    scores[c, fold] = np.nan
                    score_times[c, fold] = 0.0
                    continue
                model = self._fold_model(outputs[c], proba[c] if proba else None)
                scores[c, fold] = self.scorer_(model, X[val], y[val], **kwargs)
                score_times[c, fold] = time.perf_counter() - start
            _progress.report(
                self.verbose, f"fold {fold + 1}/{len(splits)}: {n_cand} candidates scored"
            )
        # The kernel of all rows, shared: an equal share to every fit.
        fit_times += self.kernel_time_ / scores.size
        return scores, (fit_times, score_times)

    def _fold_outputs(self, template, y, w, K, ts, train, val):
        """Outputs of every candidate on the validation rows (original units), and, for
        classifiers, a function per candidate giving its temperature."""
        if w is not None:
            train = train[w[train] > 0]
        wt = None if w is None else w[train]
        Z, unscale, labels = self._targets(y, train, wt)
        n, k = Z.shape
        rate = template._hyper["learning_rate"] / (k * (n if wt is None else wt.sum()))
        dtype = template._np_dtype()
        s = None if wt is None else np.sqrt(wt).astype(dtype)
        g = K[np.ix_(train, train)]
        if s is not None:
            g = s[:, None] * g * s[None, :]
        cross = K[np.ix_(val, train)]
        solver = self._fold_solver(template, n, k, ts)
        spec = None
        with template._scope():
            if solver == "cg":
                p = template._hyper
                tol, rank = template._cg_settings(n)  # the fit's rule, "auto" included
                make = lambda: CGSolver(  # noqa: E731
                    tol=tol, max_iter=p["max_iter"], rank=rank, verbose=p["verbose"]
                )
                means = _cv_search.cg_means(g, cross, Z, s, self.alphas_, ts, rate, make)
            elif solver == "cholesky":
                means = self._cholesky_means(template, g, cross, Z, s)
            else:
                spec = _cv_search.spectrum(g)
                means = _cv_search.fold_means(spec, cross, Z, s, self.alphas_, ts, rate)
        means = unscale(np.asarray(means, dtype=np.float64))
        outputs = [means[a, i] for a in range(len(self.alphas_)) for i in range(len(ts))]
        if labels is None:
            return outputs, None

        def temperature(alpha, t):
            def compute():
                nonlocal spec
                if spec is None:
                    with template._scope():
                        spec = _cv_search.spectrum(g)
                loo = _cv_search.loo_outputs(spec, Z, s, alpha, t, rate)
                return fit_temperature(loo, labels, wt)

            return compute

        return outputs, [temperature(a, t) for a in self.alphas_ for t in ts]

    def _fold_solver(self, template, n: int, k: int, ts) -> str:
        """``"cg"``, ``"cholesky"`` or ``"eigh"`` for a fold of ``n`` training rows."""
        p = template._hyper
        finite = [t for t in ts if t is not None]
        name = p["solver"]
        if name == "auto":
            name = choose_solver(n, k, finite[0] if finite else None, False, p["dtype"])
        if name == "cholesky" and finite:
            raise ValueError(
                "solver='cholesky' solves only the converged limit: with finite times in ts use "
                "solver='eigh', 'cg' or 'auto'."
            )
        if name == "cg":
            return "cg"
        if not finite and (name == "cholesky" or len(self.alphas_) <= _CHOLESKY_MAX_ALPHAS):
            return "cholesky"
        return "eigh"

    def _cholesky_means(self, template, g, cross, Z, s):
        """``t=None`` means with one Cholesky factor per alpha (jitter as a fit adds it)."""
        u = Z if s is None else s[:, None] * Z
        weighted = cross if s is None else cross * s[None, :]
        out = []
        for alpha in self.alphas_:
            m = g.copy()
            m[np.diag_indices_from(m)] += alpha
            try:
                coef = CholeskySolver(alpha=float(alpha)).fit(m).solve(u.astype(m.dtype))
            except np.linalg.LinAlgError as error:  # the other alphas go on
                out.append(_cv_search.failed_fit(alpha, error, (1, cross.shape[0], u.shape[1])))
                continue
            out.append((weighted @ coef)[None])
        return np.stack(out)

    # -- leave-one-out -------------------------------------------------------------------------

    def _leave_one_out(self, template, X, y, w, K, ts):
        """Closed-form leave-one-out outputs of every row for every alpha (``t = ∞`` only)."""
        if any(t is not None for t in ts):
            raise ValueError(
                "cv=None (closed-form leave-one-out) is exact only in the converged limit: "
                "ts must be None or [None]. Pass cv=5 (or a splitter) to cross-validate finite "
                "training times."
            )
        if self._fold_solver(template, X.shape[0], 1, ts) == "cg":
            raise ValueError(
                "cv=None (closed-form leave-one-out) needs a dense factorization of the kernel, "
                "which solver='cg' avoids: pass cv=5 (or a splitter) for a large training set."
            )
        pos = np.arange(len(X)) if w is None else np.flatnonzero(w > 0)
        zero = np.setdiff1d(np.arange(len(X)), pos)
        if len(pos) < 2:
            raise ValueError(
                "Leave-one-out needs at least 2 samples of positive weight; got "
                f"n_samples={len(pos)}."
            )
        start = time.perf_counter()
        wp = None if w is None else w[pos]
        s = None if wp is None else np.sqrt(wp).astype(template._np_dtype())
        Y, combine, _ = self._targets(y, pos, wp, loo=True)
        g = K[np.ix_(pos, pos)]
        if s is not None:
            g = s[:, None] * g * s[None, :]
        with template._scope():
            spec = _cv_search.spectrum(g)
        outputs = []
        for alpha in self.alphas_:
            loo = np.empty((len(X), Y.shape[1]))
            try:
                loo[pos] = _cv_search.loo_outputs(spec, Y, s, float(alpha), None, 1.0)
                if len(zero):
                    # Rows of zero weight are not in any fit: the fit on all rows predicts them.
                    cross = K[np.ix_(zero, pos)].astype(np.float64)
                    u = Y if s is None else s[:, None].astype(np.float64) * Y
                    evals = spec.evals.astype(np.float64) + alpha
                    evals = evals + eigenvalue_jitter(evals, float(alpha))
                    evecs = spec.evecs.astype(np.float64)
                    q = evecs @ ((evecs.T @ u) / evals[:, None])
                    loo[zero] = (cross if s is None else cross * s[None, :]) @ q
            except np.linalg.LinAlgError as error:
                loo = _cv_search.failed_fit(alpha, error, loo.shape)
            outputs.extend([combine(loo, zero)] * len(ts))
        fit_time = (time.perf_counter() - start + self.kernel_time_) / len(outputs)
        scores = np.empty((len(outputs), 1))
        score_times = np.empty_like(scores)
        kwargs = {} if not self._score_weighted else {"sample_weight": w}
        for c, out in enumerate(outputs):
            start = time.perf_counter()
            if np.isnan(out).any():  # a failed fit (see _cv_search.failed_fit)
                scores[c, 0], score_times[c, 0] = np.nan, 0.0
                continue
            scores[c, 0] = self.scorer_(self._fold_model(out, None), X, y, **kwargs)
            score_times[c, 0] = time.perf_counter() - start
        return scores, (np.full_like(scores, fit_time), score_times)

    # -- results and refit ---------------------------------------------------------------------

    def _store_results(self, scores: np.ndarray, times, ts) -> None:
        """``cv_results_`` in :class:`~sklearn.model_selection.GridSearchCV`'s layout."""
        fit_times, score_times = times
        params = [{"alpha": float(a), "t": t} for a in self.alphas_ for t in ts]
        results = {
            "mean_fit_time": fit_times.mean(axis=1),
            "std_fit_time": fit_times.std(axis=1),
            "mean_score_time": score_times.mean(axis=1),
            "std_score_time": score_times.std(axis=1),
        }
        for name in ("alpha", "t"):
            values = [p[name] for p in params]
            kind = object if any(v is None for v in values) else np.float64
            results[f"param_{name}"] = np.ma.MaskedArray(np.array(values, dtype=kind), mask=False)
        results["params"] = params
        for fold in range(scores.shape[1]):
            results[f"split{fold}_test_score"] = scores[:, fold]
        if np.isnan(scores).all():
            raise ValueError(
                f"All {scores.size} cross-validation fits failed (every alpha left a fold's "
                "kernel numerically singular): use larger alphas, dtype='float64', or remove "
                "duplicate samples."
            )
        mean = scores.mean(axis=1)
        results["mean_test_score"] = mean
        results["std_test_score"] = scores.std(axis=1)
        # GridSearchCV ranks NaN scores last.
        low = np.nanmin(mean) - 1 if np.isfinite(mean).any() else 0.0
        finite = np.where(np.isnan(mean), low, mean)
        results["rank_test_score"] = rankdata(-finite, method="min").astype(np.int32)
        self.cv_results_ = results
        self.n_splits_ = scores.shape[1]
        self.best_index_ = int(results["rank_test_score"].argmin())
        self.best_params_ = params[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        self.alpha_ = self.best_params_["alpha"]
        self.t_ = self.best_params_["t"]

    def _refit(self, template, X_in, X, y, w, kernels: dict, params: dict) -> None:
        """The base estimator with the best ``alpha`` and ``t`` fitted on all rows, reading the
        kernel computed for the folds instead of computing it again."""
        estimator = self._base(alpha=self.alpha_, t=self.t_, **params)
        pos = slice(None) if w is None else w > 0
        Xd = np.array(X, dtype=template._np_dtype())[pos]
        key, data = _kernel_cache.kernel_key(template), _kernel_cache.data_key(Xd)
        entries = {}
        if key is not None:
            rows = np.arange(len(X))[pos]
            for name, k in kernels.items():
                entries[(key, data, "None", name)] = k if w is None else k[np.ix_(rows, rows)]
        with _kernel_cache.preloaded(entries):
            estimator.fit(X_in, y, sample_weight=w)
        self.best_estimator_ = estimator
        self.n_iter_ = estimator.n_iter_

    # -- prediction, delegated to the refit ----------------------------------------------------

    def _fold_model(self, outputs, temperature):
        raise NotImplementedError

    def predict(self, X, **kwargs):
        """Predict with the refitted base estimator (``best_estimator_``); see its ``predict``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        **kwargs : dict
            Passed on (``return_std``, ``return_cov``, ``include_noise`` of the regressors).

        Returns
        -------
        y_pred : ndarray
        """
        check_is_fitted(self)
        return self.best_estimator_.predict(X, **kwargs)
