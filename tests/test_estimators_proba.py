"""predict_proba: leave-one-out outputs against refits without each sample, the temperature
against a brute-force search, consistency with predict, and quality against SVC."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import log_softmax
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.metrics import log_loss
from sklearn.svm import SVC

from ntk_sklearn import NNGPClassifier, NTKClassifier
from ntk_sklearn.preprocessing import NormScaler

CLASSIFIERS = [NNGPClassifier, NTKClassifier]


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 3))
    labels = np.digitize(x[:, 0] + 0.5 * x[:, 1] ** 2, [-0.5, 0.7])
    return x, labels


@pytest.mark.parametrize("cls", CLASSIFIERS)
@pytest.mark.parametrize("weighted", [False, True])
def test_loo_outputs_equal_refits_without_each_sample(data, cls, weighted):
    """At t=None: the mean output at x_i of the model refitted with one unit of sample i's
    weight removed (the whole sample when its weight is at most 1)."""
    x, labels = data
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(x)) if weighted else np.ones(len(x))
    model = cls(alpha=0.05).fit(x, labels, sample_weight=w if weighted else None)
    loo, rows = model._loo_outputs()
    assert np.array_equal(rows, np.arange(len(x)))
    for i in np.argsort(w)[[0, 1, -2, -1]]:  # two light samples, two heavy ones
        w_minus = w.copy()
        w_minus[i] = max(w[i] - 1.0, 0.0)
        refit = cls(alpha=0.05).fit(x, labels, sample_weight=w_minus)
        np.testing.assert_allclose(loo[i], refit._scores(x[i : i + 1])[0], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("cls", CLASSIFIERS)
@pytest.mark.parametrize("t", [None, 20.0])
def test_integer_weights_are_repeated_samples(data, cls, t):
    x, labels = data
    counts = np.random.default_rng(2).integers(1, 4, len(x))
    weighted = cls(alpha=0.05, t=t).fit(x, labels, sample_weight=counts)
    repeated = cls(alpha=0.05, t=t).fit(np.repeat(x, counts, 0), np.repeat(labels, counts))
    np.testing.assert_allclose(weighted.temperature_, repeated.temperature_, rtol=1e-6)
    np.testing.assert_allclose(weighted.predict_proba(x), repeated.predict_proba(x), rtol=1e-6)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_finite_time_loo_tends_to_the_converged_one(data, cls):
    x, labels = data
    converged = cls(alpha=0.05).fit(x, labels)._loo_outputs()[0]
    late = cls(alpha=0.05, t=1e9).fit(x, labels)._loo_outputs()[0]
    np.testing.assert_allclose(late, converged, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("cls", CLASSIFIERS)
@pytest.mark.parametrize("kw", [{}, {"t": 20.0}])
def test_temperature_minimises_the_loo_log_loss(data, cls, kw):
    x, labels = data
    model = cls(alpha=0.05, **kw).fit(x, labels)
    loo = model._loo_outputs()[0]

    def loss(temperature):
        return -log_softmax(loo / temperature, axis=1)[np.arange(len(x)), labels].mean()

    grid = np.exp(np.linspace(-8, 4, 4001))
    best = grid[np.argmin([loss(t) for t in grid])]
    assert loss(model.temperature_) <= loss(best) + 1e-9
    np.testing.assert_allclose(model.temperature_, best, rtol=5e-3)


@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_proba_is_consistent_with_predict(data, cls):
    x, labels = data
    model = cls(alpha=0.05).fit(x, np.array(["a", "b", "c"])[labels])
    proba = model.predict_proba(x)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.array_equal(model.classes_[proba.argmax(axis=1)], model.predict(x))
    np.testing.assert_allclose(np.log(proba), model.predict_log_proba(x), rtol=1e-10)
    expected = np.exp(model.decision_function(x) / model.temperature_)
    np.testing.assert_allclose(proba, expected / expected.sum(1, keepdims=True), rtol=1e-10)
    binary = cls(alpha=0.05).fit(x, labels > 0)
    p1 = binary.predict_proba(x)[:, 1]
    d = binary.decision_function(x)  # class 1 minus class 0: p1 = sigmoid(d / T)
    np.testing.assert_allclose(p1, 1 / (1 + np.exp(-d / binary.temperature_)), rtol=1e-10)


@pytest.mark.slow
def test_cg_fits_the_same_temperature_below_the_subset_size(data):
    x, labels = data
    direct = NTKClassifier(alpha=0.05).fit(x, labels)
    cg = NTKClassifier(alpha=0.05, solver="cg", tol=1e-12).fit(x, labels)
    np.testing.assert_allclose(cg.temperature_, direct.temperature_, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("cls", CLASSIFIERS)
def test_log_loss_on_digits_is_competitive_with_svc(cls):
    """Held-out log-loss within 25% of Platt-scaled SVC (SVC(probability=True), deprecated in
    scikit-learn 1.9 for this spelling), far below the uniform log 10."""
    x, y = load_digits(return_X_y=True)
    x = NormScaler().fit_transform(x)
    train, test = slice(0, 600), slice(600, 1000)
    ours = log_loss(y[test], cls().fit(x[train], y[train]).predict_proba(x[test]))
    svc = CalibratedClassifierCV(SVC(), ensemble=False).fit(x[train], y[train])
    reference = log_loss(y[test], svc.predict_proba(x[test]))
    assert ours <= 1.25 * reference
    assert ours < 0.1 * np.log(10)
