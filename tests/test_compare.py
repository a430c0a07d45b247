"""Smoke test of ``benchmarks/compare.py`` on a tiny digits subset, so the script cannot rot."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    path = ROOT / "benchmarks" / "compare.py"
    spec = importlib.util.spec_from_file_location("ntk_benchmarks_compare", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses and clone() look the module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_run_comparison_tiny_digits(compare: ModuleType, tmp_path: Path) -> None:
    X_train, y_train, X_test, y_test = compare.load_dataset("digits", None, 200, seed=0)
    assert X_train.shape == (1597, 64) and X_test.shape == (200, 64)
    lines: list[str] = []
    results = compare.run_comparison(
        X_train,
        y_train,
        X_test,
        y_test,
        n_train_sizes=[60, 90],
        cv=2,
        quick=True,
        gpc_max_n=80,
        log=lines.append,
    )
    models = list(compare.MODELS)
    assert [(r.n_train, r.model) for r in results] == [(n, m) for n in (60, 90) for m in models]
    assert len(lines) == len(results)
    for r in results:
        if r.model == "GPC" and r.n_train == 90:
            assert r.note.startswith("skipped") and np.isnan(r.accuracy)
            continue
        assert r.accuracy > 0.5, r  # chance is 0.1
        assert 0 < r.cv_accuracy <= 1
        assert r.fit_time_s >= r.refit_time_s > 0 and r.predict_time_s > 0
        assert r.best_params and r.n_candidates > 1 and r.tune_n == r.n_train

    table = compare.format_table(results)
    assert table.splitlines()[0].split()[:3] == ["model", "n_train", "accuracy"]
    assert len(table.splitlines()) == len(results) + 1

    paths = compare.save_results(results, tmp_path, "digits", {"test": True})
    expected = {"results_digits.csv", "results_digits.json"}
    if importlib.util.find_spec("matplotlib") is not None:  # the plot is optional
        expected.add("learning_curve_digits.png")
    assert {p.name for p in paths} == expected
    with (tmp_path / "results_digits.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(results) and tuple(rows[0]) == compare.COLUMNS
    payload = json.loads((tmp_path / "results_digits.json").read_text())
    assert payload["meta"] == {"test": True} and len(payload["results"]) == len(results)


def test_tune_on_subset_then_refit(compare: ModuleType) -> None:
    X_train, y_train, X_test, y_test = compare.load_dataset("digits", None, 100, seed=1)
    (result,) = compare.run_comparison(
        X_train,
        y_train,
        X_test,
        y_test,
        n_train_sizes=[120],
        models=["NNGP"],
        cv=2,
        tune_n=60,
        quick=True,
        log=None,
    )
    assert result.n_train == 120 and result.tune_n == 60
    assert "subset" in result.note and result.accuracy > 0.5


def test_one_hot_kernel_ridge(compare: ModuleType) -> None:
    from sklearn.base import clone
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model = clone(compare.OneHotKernelRidge(alpha=0.1, gamma=0.5)).fit(X, labels)
    assert list(model.classes_) == list(labels[[0, 50, 100]])
    assert model.decision_function(X).shape == (150, 3)
    assert model.score(X, labels) > 0.9
