"""The CV estimators against scikit-learn's GridSearchCV and explicit leave-one-out refits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ntk_sklearn import (
    NNGPClassifier,
    NNGPClassifierCV,
    NNGPRegressor,
    NNGPRegressorCV,
    NTKClassifier,
    NTKClassifierCV,
    NTKRegressor,
    NTKRegressorCV,
)
from ntk_sklearn.estimators._base import NeuralKernelBase
from ntk_sklearn.estimators._cv import CV_PARAMS, NOT_CV_PARAMS

ALPHAS = [1e-3, 1e-2, 1e-1, 1.0]
TS = [1.0, 30.0, None]
PAIRS = [
    (NTKRegressorCV, NTKRegressor),
    (NNGPRegressorCV, NNGPRegressor),
    (NTKClassifierCV, NTKClassifier),
    (NNGPClassifierCV, NNGPClassifier),
]

SLOW = pytest.mark.slow


def _data(classifier: bool, n: int = 60):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 3))
    if classifier:
        y = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.4, 0.4])
    else:
        y = np.sin(X[:, 0]) + 0.5 * X[:, 1] + 0.1 * rng.normal(size=n)
    return X, y


def _is_classifier(cls) -> bool:
    return "Classifier" in cls.__name__


@pytest.fixture
def count_kernels(monkeypatch):
    """Counts the kernel computations (cache misses) of every estimator."""
    calls = []
    original = NeuralKernelBase._compute_kernels

    def counted(self, x1, x2, names):
        calls.append((len(x1), None if x2 is None else len(x2), tuple(names)))
        return original(self, x1, x2, names)

    monkeypatch.setattr(NeuralKernelBase, "_compute_kernels", counted)
    return calls


@SLOW  # 10-20 s each: 60 fits per GridSearchCV (a smaller quick case follows)
@pytest.mark.parametrize(("cv_cls", "cls"), PAIRS)
@pytest.mark.parametrize("weighted", [False, True])
def test_cv_results_equal_grid_search(cv_cls, cls, weighted):
    _check_equal_to_grid_search(cv_cls, cls, weighted, ALPHAS, TS, 5)


def test_cv_results_equal_grid_search_quick():
    _check_equal_to_grid_search(NNGPRegressorCV, NNGPRegressor, True, ALPHAS[1:3], [5.0, None], 3)


def _check_equal_to_grid_search(cv_cls, cls, weighted, alphas, ts, folds):
    classifier = _is_classifier(cls)
    X, y = _data(classifier)
    w = None
    if weighted:  # integer weights with zeros (dropped rows)
        w = np.random.default_rng(1).integers(0, 3, size=len(y)).astype(float)
    splitter = (StratifiedKFold if classifier else KFold)(folds, shuffle=True, random_state=0)
    scoring = "neg_log_loss" if classifier else "neg_mean_squared_error"
    for score in (None, scoring):
        model = cv_cls(depth=2, alphas=alphas, ts=ts, cv=splitter, scoring=score)
        model.fit(X, y, sample_weight=w)
        search = GridSearchCV(
            cls(depth=2), {"alpha": alphas, "t": ts}, cv=splitter, scoring=score
        ).fit(X, y, sample_weight=w)
        assert model.cv_results_["params"] == search.cv_results_["params"]
        for key in (
            "mean_test_score",
            "std_test_score",
            *(f"split{k}_test_score" for k in range(folds)),
        ):
            np.testing.assert_allclose(
                model.cv_results_[key], search.cv_results_[key], rtol=0, atol=1e-8
            )
        np.testing.assert_array_equal(
            model.cv_results_["rank_test_score"], search.cv_results_["rank_test_score"]
        )
        assert model.best_params_ == search.best_params_
        assert (model.alpha_, model.t_) == (search.best_params_["alpha"], search.best_params_["t"])
        assert model.best_score_ == pytest.approx(search.best_score_, abs=1e-8)
        # The refit is the same model.
        if classifier:
            np.testing.assert_allclose(
                model.predict_proba(X), search.predict_proba(X), rtol=0, atol=1e-8
            )
        np.testing.assert_allclose(model.predict(X), search.predict(X), rtol=0, atol=1e-8)


def _loo_scorer(store):
    """A scorer that records the predictions it is given (the leave-one-out outputs)."""

    def scorer(estimator, X, y, sample_weight=None):
        pred = estimator.predict(X)
        store.append(pred)
        return -float(np.mean((np.asarray(pred, float) - y) ** 2))

    return scorer


@pytest.mark.parametrize(
    ("cv_cls", "cls", "params", "weighted"),
    [
        (NTKRegressorCV, NTKRegressor, {"normalize_y": True}, True),
        pytest.param(NTKRegressorCV, NTKRegressor, {"normalize_y": True}, False, marks=SLOW),
        pytest.param(NTKRegressorCV, NTKRegressor, {"normalize_y": False}, True, marks=SLOW),
        pytest.param(NNGPRegressorCV, NNGPRegressor, {"normalize_y": True}, False, marks=SLOW),
        (NTKClassifierCV, NTKClassifier, {}, False),
        pytest.param(NTKClassifierCV, NTKClassifier, {}, True, marks=SLOW),
    ],
)
def test_closed_form_loo_equals_explicit_refits(cv_cls, cls, params, weighted):
    classifier = _is_classifier(cls)
    X, y = _data(classifier, n=30)
    w = None
    if weighted:  # 0: left out of every fit; 2: one copy left out; 0.5: all of it
        w = np.random.default_rng(2).choice([0.0, 0.5, 1.0, 2.0, 3.0], size=len(y))
    alphas = [1e-2, 0.3]
    if classifier:
        outputs = []
        model = cv_cls(alphas=alphas, depth=2, **params)

        # The decision function of the leave-one-out fits, through a scorer.
        def scorer(est, X_, y_, sample_weight=None):
            outputs.append(est.decision_function(X_))
            return 0.0

        model.set_params(scoring=scorer).fit(X, y, sample_weight=w)
    else:
        outputs = []
        model = cv_cls(alphas=alphas, depth=2, scoring=_loo_scorer(outputs), **params)
        model.fit(X, y, sample_weight=w)
    assert model.n_splits_ == 1 and len(outputs) == len(alphas)
    weights = np.ones(len(y)) if w is None else w
    for alpha, loo in zip(alphas, outputs, strict=True):
        expected = []
        for i in range(len(y)):
            w_i = weights.copy()
            w_i[i] -= min(1.0, w_i[i])  # one unit of weight out (none when w_i = 0)
            keep = w_i > 0
            fit = cls(alpha=alpha, depth=2, **params).fit(
                X[keep], y[keep], sample_weight=None if w is None else w_i[keep]
            )
            method = fit.decision_function if classifier else fit.predict
            expected.append(method(X[i : i + 1])[0])
        np.testing.assert_allclose(loo, np.array(expected), rtol=0, atol=1e-8)


def test_singular_kernels_get_the_jitter_a_fit_adds():
    """Duplicate rows and alpha=0: each fold's Cholesky (3 alphas or fewer) or eigendecomposition
    (more) adds the jitter that the base estimator's fit adds, with its warning."""
    X, y = _data(False, n=30)
    X, y = np.vstack([X, X[:3]]), np.r_[y, y[:3]]
    folds = KFold(3)
    for alphas in ([0.0, 1e-3], [0.0, 1e-12, 1e-6, 1e-3]):
        with pytest.warns(RuntimeWarning, match="jitter"):
            model = NTKRegressorCV(alphas=alphas, cv=folds).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            search = GridSearchCV(NTKRegressor(), {"alpha": alphas}, cv=folds).fit(X, y)
        np.testing.assert_allclose(
            model.cv_results_["mean_test_score"],
            search.cv_results_["mean_test_score"],
            rtol=0,
            atol=1e-8,
        )


def test_loo_score_is_the_score_of_the_loo_predictions():
    X, y = _data(False, n=30)
    model = NTKRegressorCV(alphas=[1e-2, 0.1], scoring="neg_mean_squared_error").fit(X, y)
    outputs = []
    NTKRegressorCV(alphas=[1e-2, 0.1], scoring=_loo_scorer(outputs)).fit(X, y)
    np.testing.assert_allclose(
        model.cv_results_["mean_test_score"],
        [-np.mean((pred - y) ** 2) for pred in outputs],
        rtol=1e-12,
    )
    assert model.alpha_ == [1e-2, 0.1][int(np.argmax(model.cv_results_["mean_test_score"]))]


def test_loo_refuses_finite_times_and_proba_scores():
    X, y = _data(True, n=30)
    with pytest.raises(ValueError, match="converged limit"):
        NTKClassifierCV(ts=[10.0]).fit(X, y)
    with pytest.raises(ValueError, match="cv=None"):
        NTKClassifierCV(scoring="neg_log_loss").fit(X, y)


def test_one_kernel_for_cv_and_refit(count_kernels):
    X, y = _data(False, n=30)
    NTKRegressorCV(alphas=ALPHAS[:2], ts=TS, cv=3).fit(X, y)
    assert count_kernels == [(30, None, ("nngp", "ntk"))]
    count_kernels.clear()
    w = np.r_[np.zeros(5), np.ones(25)]
    NNGPRegressorCV(alphas=ALPHAS[:2], cv=3).fit(X, y, sample_weight=w)
    assert count_kernels == [(30, None, ("nngp",))]


def test_relative_alphas_are_scaled_by_the_mean_diagonal():
    X, y = _data(False)
    model = NTKRegressorCV(alphas=[1e-3, 1e-1], alphas_relative=True, cv=3).fit(X, y)
    scale = np.mean(np.diag(NTKRegressor(alpha=0.0).fit(X, y).train_kernel_))
    np.testing.assert_allclose(model.alphas_, np.array([1e-3, 1e-1]) * scale, rtol=1e-12)
    assert model.alpha_ in model.alphas_
    assert model.best_estimator_.alpha == model.alpha_


def test_parameters_are_the_base_estimators_plus_the_grid():
    for cv_cls, cls in PAIRS:
        base = set(cls().get_params()) - set(NOT_CV_PARAMS)
        assert set(cv_cls().get_params()) == base | set(CV_PARAMS)
        # The shared parameters have the base estimator's defaults (tol="auto", ...).
        shared, own = cls().get_params(), cv_cls().get_params()
        assert {k: own[k] for k in base} == {k: shared[k] for k in base}


@pytest.mark.slow
def test_pipeline_and_outer_grid_search_over_kernel_parameters():
    X, y = _data(True)
    pipe = make_pipeline(StandardScaler(), NTKClassifierCV(alphas=[1e-2, 1.0], cv=3))
    outer = GridSearchCV(pipe, {"ntkclassifiercv__depth": [1, 2]}, cv=3).fit(X, y)
    assert outer.best_params_["ntkclassifiercv__depth"] in (1, 2)
    inner = outer.best_estimator_[-1]
    assert inner.alpha_ in (1e-2, 1.0)
    assert outer.score(X, y) == pytest.approx(clone(outer.best_estimator_).fit(X, y).score(X, y))


@pytest.mark.slow
@pytest.mark.multiprocess
def test_outer_grid_search_in_parallel_matches_serial():
    X, y = _data(False)
    grid = {"depth": [1, 3], "pooling": ["flatten"]}
    inner = NTKRegressorCV(alphas=[1e-2, 1.0], cv=3)
    serial = GridSearchCV(inner, grid, cv=3).fit(X, y)
    parallel = GridSearchCV(inner, grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(
        serial.cv_results_["mean_test_score"], parallel.cv_results_["mean_test_score"], atol=1e-12
    )


def test_bad_grids_are_refused():
    X, y = _data(False, n=20)
    for bad in ([], [-1.0], [[1.0]], ["a"]):
        with pytest.raises(ValueError, match="alphas"):
            NTKRegressorCV(alphas=bad).fit(X, y)
    for bad in ([-1.0], [np.nan], []):
        with pytest.raises(ValueError, match="ts"):
            NTKRegressorCV(ts=bad, cv=3).fit(X, y)
    with pytest.raises(ValueError, match="cholesky"):
        NTKRegressorCV(ts=[1.0], cv=3, solver="cholesky").fit(X, y)


def test_infinite_time_is_the_converged_limit():
    # The base estimators take t=np.inf as converged (t=None); so do the CV estimators' ts.
    X, y = _data(False, n=20)
    a = NTKRegressorCV(alphas=[1e-2, 1e-1], ts=[1.0, np.inf], cv=3).fit(X, y)
    b = NTKRegressorCV(alphas=[1e-2, 1e-1], ts=[1.0, None], cv=3).fit(X, y)
    np.testing.assert_array_equal(
        a.cv_results_["mean_test_score"], b.cv_results_["mean_test_score"]
    )
    assert a.cv_results_["params"] == b.cv_results_["params"]


@pytest.mark.slow
def test_cg_folds_approximate_the_direct_ones():
    X, y = _data(False)
    direct = NTKRegressorCV(alphas=[1e-2, 0.1], ts=[5.0, None], cv=3).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cg = NTKRegressorCV(alphas=[1e-2, 0.1], ts=[5.0, None], cv=3, solver="cg", tol=1e-10)
        cg.fit(X, y)
    np.testing.assert_allclose(
        cg.cv_results_["mean_test_score"], direct.cv_results_["mean_test_score"], atol=1e-6
    )
    assert cg.best_estimator_.solver_ == "cg"


@pytest.mark.slow
def test_docstring_examples_run():
    import doctest

    import ntk_sklearn.estimators._cv_estimators

    result = doctest.testmod(ntk_sklearn.estimators._cv_estimators, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize("alphas", [[1e-3, 2.0], [1e-3, 1e-2, 2.0, 5.0]])  # Cholesky, eigh
def test_alphas_whose_fits_fail_score_nan_as_in_grid_search(monkeypatch, alphas):
    """A fold kernel that no jitter makes positive definite at small alpha (here the training
    kernel shifted by -0.5 I): those candidates score NaN, ranked last, with a FitFailedWarning,
    exactly as GridSearchCV (error_score=np.nan) scores the plain estimator's failed fits; by
    one Cholesky factor per alpha (2 alphas) and by one eigendecomposition per fold (4); and in
    the closed-form leave-one-out."""
    from sklearn.exceptions import FitFailedWarning

    original = NeuralKernelBase._compute_kernels

    def shifted(self, x1, x2, names):
        out = original(self, x1, x2, names)
        if x2 is None:
            out = {name: k - 0.5 * np.eye(len(k)) for name, k in out.items()}
        return out

    monkeypatch.setattr(NeuralKernelBase, "_compute_kernels", shifted)
    X, y = _data(False, 40)
    splitter = KFold(3, shuffle=True, random_state=0)
    with pytest.warns(FitFailedWarning, match="alpha=0.001"):
        model = NNGPRegressorCV(alphas=alphas, cv=splitter).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitFailedWarning)
        search = GridSearchCV(NNGPRegressor(), {"alpha": alphas, "t": [None]}, cv=splitter)
        search.fit(X, y)
    assert np.isnan(search.cv_results_["mean_test_score"][0])  # the case is a real failure
    for key in ("mean_test_score", "split0_test_score", "split2_test_score"):
        np.testing.assert_allclose(model.cv_results_[key], search.cv_results_[key], atol=1e-8)
    np.testing.assert_array_equal(
        model.cv_results_["rank_test_score"], search.cv_results_["rank_test_score"]
    )
    assert model.alpha_ == search.best_params_["alpha"] >= 2.0
    np.testing.assert_allclose(model.predict(X), search.predict(X), atol=1e-8)
    with pytest.warns(FitFailedWarning, match="alpha=0.001"):
        loo = NNGPRegressorCV(alphas=alphas, cv=None).fit(X, y)
    scores = loo.cv_results_["mean_test_score"]
    np.testing.assert_array_equal(np.isnan(scores), np.isnan(search.cv_results_["mean_test_score"]))
    assert loo.alpha_ >= 2.0
    with pytest.raises(ValueError, match="All 3 cross-validation fits failed"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FitFailedWarning)
            NNGPRegressorCV(alphas=[1e-3], cv=splitter).fit(X, y)
