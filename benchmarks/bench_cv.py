"""Wall time of ``NTKClassifierCV`` against ``GridSearchCV`` over the same grid on a conv kernel.

5 folds × 8 alphas × 3 training times (24 candidates, 120 fits for ``GridSearchCV``) on
NormScaler-ed 8x8 digit images with a depth-2 convolutional NTK (``architecture="conv"``,
Flatten readout), float64. Three ways, measured in the same run, each from a fresh process
state for its kernels (JIT compilation of the kernel code happens once, before timing):

* ``GridSearchCV(NTKClassifier(...), {"alpha": ..., "t": ...}, cv=folds)``: a training and a
  validation kernel per fit;
* the same with ``memory=`` (a fresh folder): one kernel per fold, read by every candidate;
* ``NTKClassifierCV(alphas=..., ts=..., cv=folds)``: one kernel of all rows, one
  eigendecomposition per fold.

Each reports the seconds of ``fit`` (search and refit), the chosen parameters and the largest
difference of its mean CV scores from ``GridSearchCV``'s.

    python benchmarks/bench_cv.py [--n 400] [--depth 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from ntk_sklearn import NTKClassifier, NTKClassifierCV
from ntk_sklearn.preprocessing import NormScaler

ALPHAS = np.logspace(-6, 1, 8)
TS = [10.0, 1000.0, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="training images")
    parser.add_argument("--depth", type=int, default=2)
    args = parser.parse_args()
    X, y = load_digits(return_X_y=True)
    X = NormScaler().fit_transform(X[: args.n])
    y = y[: args.n]
    params = {"architecture": "conv", "image_shape": (8, 8, 1), "depth": args.depth}
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    grid = {"alpha": list(ALPHAS), "t": TS}
    # Compile the kernel code for the shapes the runs use (not timed).
    NTKClassifier(**params).fit(X[: len(X) * 4 // 5], y[: len(X) * 4 // 5]).predict(X[:10])
    NTKClassifier(**params).fit(X, y)

    runs = {}
    start = time.perf_counter()
    search = GridSearchCV(NTKClassifier(**params), grid, cv=folds).fit(X, y)
    runs["GridSearchCV"] = (time.perf_counter() - start, search.best_params_, search.cv_results_)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        cached = GridSearchCV(NTKClassifier(**params, memory=folder), grid, cv=folds).fit(X, y)
        runs["GridSearchCV, memory="] = (
            time.perf_counter() - start,
            cached.best_params_,
            cached.cv_results_,
        )
    start = time.perf_counter()
    model = NTKClassifierCV(**params, alphas=ALPHAS, ts=TS, cv=folds).fit(X, y)
    runs["NTKClassifierCV"] = (time.perf_counter() - start, model.best_params_, model.cv_results_)

    base_time, _, base = runs["GridSearchCV"]
    print(
        f"{len(X)} digits (8x8), conv depth {args.depth}, 5 folds x {len(ALPHAS)} alphas x "
        f"{len(TS)} times"
    )
    for name, (seconds, best, results) in runs.items():
        diff = np.abs(results["mean_test_score"] - base["mean_test_score"]).max()
        print(
            f"{name:>24}: {seconds:7.1f} s  ({base_time / seconds:5.1f}x)  best {best}  "
            f"max |score - GridSearchCV| {diff:.1e}"
        )


if __name__ == "__main__":
    main()
