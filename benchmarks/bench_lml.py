"""Hyperparameters by marginal likelihood against ARD-RBF Gaussian processes and grid search.

On standardised diabetes (442 samples) and Friedman #1 (500 samples, noise 1.0), 5-fold CV
(shuffled, seed 0):

* ``NNGPRegressor``/``NTKRegressor(optimizer="fmin_l_bfgs_b")`` at depths 1, 2, 3: R², the
  coverage of the 95% predictive intervals of ``y`` (``include_noise=True``) on the held-out
  fold, and the fit time; "best-LML depth" picks, per fold, the depth of the largest log
  marginal likelihood (the depth chosen by evidence too);
* ``GaussianProcessRegressor(C·RBF(ARD) + White, normalize_y=True, n_restarts_optimizer=2)``:
  the same numbers;
* the grid search that learning replaces: ``GridSearchCV`` (5-fold, R²) over depth {1, 3, 5}
  × w_std {1, 1.5, 2} × b_std {0, 0.1, 0.5} × alpha {1e-6, 1e-2, 0.1}, timed and scored on the
  first outer fold only (405 fits).

``--ard`` learns one input scale per feature as well (``input_scale_bounds=(1e-5, 1e5)``, the
inverse of the RBF's default length-scale bounds: automatic relevance determination like the
GP's ARD length scales); ``--activation`` changes
ours (default ReLU); ``--depths``, ``--dataset``, ``--models``, ``--folds`` and ``--no-grid``
restrict the run.

    python benchmarks/bench_lml.py [--quick]      # --quick: diabetes, NNGP, depth 1, no grid
    python benchmarks/bench_lml.py --ard --depths 2 --dataset friedman1 --no-grid
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_diabetes, make_friedman1
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.preprocessing import StandardScaler

from ntk_sklearn import NNGPRegressor, NTKRegressor

GRID = {
    "depth": [1, 3, 5],
    "w_std": [1.0, 1.5, 2.0],
    "b_std": [0.0, 0.1, 0.5],
    "alpha": [1e-6, 1e-2, 0.1],
}


def datasets(quick: bool, names: list[str]) -> dict:
    out = {"diabetes": load_diabetes(return_X_y=True)}
    if not quick:
        out["friedman1"] = make_friedman1(n_samples=500, noise=1.0, random_state=0)
    return {name: data for name, data in out.items() if name in names}


def evaluate(model, x_tr, y_tr, x_te, y_te, label: str = "") -> dict:
    start = time.perf_counter()
    model.fit(x_tr, y_tr)
    seconds = time.perf_counter() - start
    if isinstance(model, GaussianProcessRegressor):
        mean, std = model.predict(x_te, return_std=True)  # the White kernel's noise included
        lml = model.log_marginal_likelihood_value_
    else:
        mean, std = model.predict(x_te, return_std=True, include_noise=True)
        lml = model.log_marginal_likelihood_value_
    cover = float(np.mean(np.abs(y_te - mean) <= 1.96 * std))
    r2 = r2_score(y_te, mean)
    print(f"  ({label}: R² {r2:.4f}, cover {100 * cover:.1f}%, {seconds:.1f} s)", flush=True)
    return {"r2": r2, "cover": cover, "time": seconds, "lml": lml}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ard", action="store_true", help="learn per-feature input scales")
    parser.add_argument("--depths", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--dataset", nargs="+", default=["diabetes", "friedman1"])
    parser.add_argument("--no-grid", action="store_true", help="skip the grid search")
    parser.add_argument("--activation", default="relu", help="activation of our models")
    parser.add_argument("--models", nargs="+", default=["nngp", "ntk"], help="ours to run")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    args = parser.parse_args()
    depths = [1] if args.quick else args.depths
    classes = {"nngp": NNGPRegressor, "ntk": NTKRegressor}
    classes = [NNGPRegressor] if args.quick else [classes[name] for name in args.models]
    ard = {"input_scale_bounds": (1e-5, 1e5)} if args.ard else {}
    cv = KFold(5, shuffle=True, random_state=0)
    for name, (x, y) in datasets(args.quick, args.dataset).items():
        rows: dict[str, list[dict]] = {}
        for k, (train, test) in enumerate(cv.split(x)):
            if k + 1 not in args.folds:
                continue
            scaler = StandardScaler().fit(x[train])
            x_tr, x_te = scaler.transform(x[train]), scaler.transform(x[test])
            y_tr, y_te = y[train], y[test]
            for cls in classes:
                fold = {}
                for depth in depths:
                    model = cls(
                        depth=depth, activation=args.activation, optimizer="fmin_l_bfgs_b", **ard
                    )
                    label = f"{name} fold {k + 1} {cls.__name__} depth={depth}"
                    fold[depth] = evaluate(model, x_tr, y_tr, x_te, y_te, label)
                    rows.setdefault(f"{cls.__name__} depth={depth}", []).append(fold[depth])
                best = max(fold.values(), key=lambda r: r["lml"])
                total = sum(r["time"] for r in fold.values())
                if len(depths) > 1:
                    rows.setdefault(f"{cls.__name__} best-LML depth", []).append(
                        {**best, "time": total}
                    )
            kernel = ConstantKernel() * RBF(np.ones(x.shape[1])) + WhiteKernel()
            gpr = GaussianProcessRegressor(
                kernel, normalize_y=True, n_restarts_optimizer=2, random_state=0
            )
            label = f"{name} fold {k + 1} GPR"
            rows.setdefault("GPR C*ARD-RBF+White", []).append(
                evaluate(gpr, x_tr, y_tr, x_te, y_te, label)
            )
            if k == 0 and not (args.quick or args.no_grid):
                for cls in classes:
                    search = GridSearchCV(cls(), GRID, cv=KFold(5, shuffle=True, random_state=0))
                    start = time.perf_counter()
                    search.fit(x_tr, y_tr)
                    seconds = time.perf_counter() - start
                    r2 = r2_score(y_te, search.predict(x_te))
                    print(
                        f"[{name}, fold 1] GridSearchCV {cls.__name__}: R² {r2:.4f}, "
                        f"{seconds:.1f} s, best {search.best_params_}"
                    )
        print(f"{name}: 5-fold CV (mean over folds){' with ARD input scales' * args.ard}")
        print(f"  {'model':34s} {'R²':>7s} {'95% cover':>10s} {'fit s':>7s}")
        for label, values in rows.items():
            r2 = np.mean([v["r2"] for v in values])
            cover = np.mean([v["cover"] for v in values])
            seconds = np.mean([v["time"] for v in values])
            print(f"  {label:34s} {r2:7.4f} {100 * cover:9.1f}% {seconds:7.2f}", flush=True)


if __name__ == "__main__":
    main()
