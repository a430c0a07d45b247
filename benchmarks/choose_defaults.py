"""How the estimators' default hyperparameters were chosen.

5-fold cross-validated R² of ``Pipeline(StandardScaler(), NTKRegressor(...))`` (and NNGP) over a
small grid, on standardised scikit-learn regression data: diabetes (442 samples), Friedman #1
(500 samples, noise 1.0) and a 1,000-sample subset of California housing (if it can be loaded;
it needs a download). Grid: depth {1, 3, 5} × w_std {1, 1.5, 2} × b_std {0, 0.1, 0.5} × alpha
{1e-6, 1e-2, 0.1}. Prints the mean R² per setting, best first.

    python benchmarks/choose_defaults.py
"""

from __future__ import annotations

import itertools

import numpy as np
from sklearn.datasets import fetch_california_housing, load_diabetes, make_friedman1
from sklearn.model_selection import KFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from ntk_sklearn import NNGPRegressor, NTKRegressor


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {"diabetes": load_diabetes(return_X_y=True)}
    out["friedman1"] = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    try:
        x, y = fetch_california_housing(return_X_y=True, download_if_missing=False)
        idx = np.random.default_rng(0).choice(len(y), 1000, replace=False)
        out["california_1k"] = (x[idx], y[idx])
    except OSError:
        print("California housing not available offline; skipped")
    return out


def main() -> None:
    grid = {
        "depth": [1, 3, 5],
        "w_std": [1.0, 1.5, 2.0],
        "b_std": [0.0, 0.1, 0.5],
        "alpha": [1e-6, 1e-2, 1e-1],
    }
    data = datasets()
    cv = KFold(5, shuffle=True, random_state=0)
    for cls in (NTKRegressor, NNGPRegressor):
        rows = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values, strict=True))
            scores = {
                name: cross_val_score(
                    make_pipeline(StandardScaler(), cls(**params)), x, y, cv=cv
                ).mean()
                for name, (x, y) in data.items()
            }
            rows.append((np.mean(list(scores.values())), params, scores))
        rows.sort(key=lambda r: -r[0])
        print(cls.__name__)
        for mean, params, scores in rows[:8]:
            detail = " ".join(f"{k}={v:.3f}" for k, v in scores.items())
            print(f"  mean R² {mean:.3f}  {params}  {detail}")


if __name__ == "__main__":
    main()
