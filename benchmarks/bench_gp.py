"""NNGPKernel in scikit-learn's Gaussian processes, next to RBF kernels.

Classification (digits, ``train_test_split(test_size=0.3, random_state=0)``, pixels / 16):
``GaussianProcessClassifier(NNGPKernel())`` and ``GaussianProcessClassifier(ConstantKernel() *
NNGPKernel())`` (a learned amplitude: sharper probabilities) against
``SVC(probability=True)`` (RBF, defaults) and ``GaussianProcessClassifier(1.0 * RBF(√d))``:
test accuracy, log-loss, fit time. Both GP
classifiers are one-vs-rest Laplace fits whose marginal-likelihood optimization costs O(n³) per
step and, at large kernel amplitudes, many Newton steps: on the full 1,257 training points one
binary fit with the optimizer took 560 s here. So each GP's hyperparameters are fitted by
scikit-learn's optimizer on a stratified subsample (``--tune-n`` points, one fit per class), the
per-class values are combined by their median in log space, and the kernel, then fixed, is
fitted on the full training set; the reported fit time covers both stages.

Regression (diabetes; ``make_friedman1(n_samples=500, noise=1.0, random_state=0)``): 5-fold CV
R² (``KFold(5, shuffle=True, random_state=0)``) of ``GaussianProcessRegressor`` with
``ConstantKernel() * NNGPKernel() + WhiteKernel()`` against ``ConstantKernel() * RBF(ones(d)) +
WhiteKernel()`` (ARD), inputs standardized inside each fold, ``normalize_y=True``.

    python benchmarks/bench_gp.py            # a few minutes on 2 cores
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from sklearn.datasets import load_diabetes, load_digits, make_friedman1
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import KFold, cross_validate, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ntk_sklearn.gaussian_process import NNGPKernel


def fixed(kernel):
    """``kernel`` with every hyperparameter's bounds set to "fixed"."""
    params = {
        f"{h.name}_bounds": "fixed" for h in kernel.hyperparameters
    }  # the names include the k1__/k2__ prefixes of composite kernels
    return kernel.set_params(**params)


def tuned_gpc(kernel, x, y, tune_n: int) -> tuple[GaussianProcessClassifier, object]:
    """Hyperparameters by marginal likelihood on a subsample, then the fixed kernel on all."""
    x_sub, _, y_sub, _ = train_test_split(x, y, train_size=tune_n, stratify=y, random_state=0)
    sub = GaussianProcessClassifier(kernel, random_state=0).fit(x_sub, y_sub)
    thetas = np.array([est.kernel_.theta for est in sub.base_estimator_.estimators_])
    final = fixed(kernel.clone_with_theta(np.median(thetas, axis=0)))
    return GaussianProcessClassifier(final, optimizer=None).fit(x, y), final


def classification(tune_n: int) -> list[dict]:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(x / 16.0, y, test_size=0.3, random_state=0)
    rows = []
    models = {
        "GPC(NNGPKernel())": lambda: tuned_gpc(NNGPKernel(), x_train, y_train, tune_n),
        "GPC(C * NNGPKernel())": lambda: tuned_gpc(
            ConstantKernel() * NNGPKernel(), x_train, y_train, tune_n
        ),
        "SVC(probability=True)": lambda: (
            SVC(probability=True, random_state=0).fit(x_train, y_train),
            "rbf",
        ),
        # Started at the inputs' scale: from RBF(1.0) the optimizer ran to a length scale of
        # 8,760 (17 % accuracy).
        "GPC(1.0 * RBF(sqrt(d)))": lambda: tuned_gpc(
            1.0 * RBF(np.sqrt(x_train.shape[1])), x_train, y_train, tune_n
        ),
    }
    for name, fit in models.items():
        start = time.perf_counter()
        model, kernel = fit()
        seconds = time.perf_counter() - start
        proba = model.predict_proba(x_test)
        rows.append(
            {
                "model": name,
                "accuracy": accuracy_score(y_test, model.classes_[proba.argmax(1)]),
                "log_loss": log_loss(y_test, proba, labels=model.classes_),
                "fit_s": seconds,
                "kernel": str(kernel),
            }
        )
        print(rows[-1], flush=True)
    return rows


def regression() -> list[dict]:
    datasets = {
        "diabetes": load_diabetes(return_X_y=True),
        "friedman1": make_friedman1(n_samples=500, noise=1.0, random_state=0),
    }
    rows = []
    for data_name, (x, y) in datasets.items():
        d = x.shape[1]
        kernels = {
            "C * NNGPKernel() + White": ConstantKernel() * NNGPKernel() + WhiteKernel(),
            "C * RBF(ones(d)) + White (ARD)": ConstantKernel() * RBF(np.ones(d)) + WhiteKernel(),
        }
        for name, kernel in kernels.items():
            model = make_pipeline(
                StandardScaler(), GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", ConvergenceWarning)
                start = time.perf_counter()
                cv = cross_validate(model, x, y, cv=KFold(5, shuffle=True, random_state=0))
                seconds = time.perf_counter() - start
            rows.append(
                {
                    "data": data_name,
                    "model": name,
                    "r2_mean": float(cv["test_score"].mean()),
                    "r2_std": float(cv["test_score"].std()),
                    "cv_s": seconds,
                    "convergence_warnings": sum(
                        issubclass(w.category, ConvergenceWarning) for w in caught
                    ),
                }
            )
            print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tune-n", type=int, default=300, help="GPC tuning subsample size")
    parser.add_argument("--skip-classification", action="store_true")
    parser.add_argument("--skip-regression", action="store_true")
    args = parser.parse_args()
    classes = [] if args.skip_classification else classification(args.tune_n)
    regs = [] if args.skip_regression else regression()
    print("\n| digits model | accuracy | log-loss | fit (s) | kernel |\n|---|---:|---:|---:|---|")
    for r in classes:
        print(
            f"| {r['model']} | {100 * r['accuracy']:.2f} | {r['log_loss']:.4f} | "
            f"{r['fit_s']:.1f} | {r['kernel']} |"
        )
    print("\n| data | GPR kernel | 5-fold R² | CV time (s) |\n|---|---|---:|---:|")
    for r in regs:
        print(
            f"| {r['data']} | {r['model']} | {r['r2_mean']:.4f} ± {r['r2_std']:.4f} | "
            f"{r['cv_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
