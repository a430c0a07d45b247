"""Neural-kernel classifiers against tuned RBF baselines, one command.

Compares :class:`~ntk_sklearn.NTKClassifier` and :class:`~ntk_sklearn.NNGPClassifier` (each in
``Pipeline(NormScaler(), model)``; fully connected as ``NTK``/``NNGP``, convolutional on the
images as ``CNTK``/``CNNGP``) with three RBF-kernel baselines from scikit-learn:
``SVC(kernel="rbf")``, kernel ridge regression on centred one-hot targets
(:class:`OneHotKernelRidge`, ``KernelRidge(kernel="rbf")`` wrapped as a classifier) and
``GaussianProcessClassifier(RBF)`` (only up to ``--gpc-max-n`` training samples: its Laplace
approximation costs one ``n x n`` Cholesky per class per Newton step).

Every model's hyperparameters are chosen by ``GridSearchCV`` (stratified ``--cv`` folds, accuracy)
on the training split only, with comparable budgets (12 candidates; 6 for the GPC; 4, or 8 with
flips on CIFAR, for the convolutional kernels, each of which costs more), then the best
candidate is refitted on the whole training split and scored once on the test split. With
``--tune-n N`` the search runs on a stratified subset of at most ``N`` training samples and only
the refit uses them all (for large training sets on small machines); the table says so.

    python benchmarks/compare.py                                   # digits, a few minutes
    python benchmarks/compare.py --quick                           # digits, smaller grids
    python benchmarks/compare.py --dataset mnist --n-train 1000    # shared mnist-10k, test 2,000
    python benchmarks/compare.py --dataset mnist --n-train 1000 8000 --tune-n 2000
    python benchmarks/compare.py --dataset cifar --n-train 1000    # shared CIFAR-100 subset

Writes ``results_<dataset>.csv``/``.json`` (and ``learning_curve_<dataset>.png`` when several
sizes are run) to ``--out`` (default ``benchmarks/results/``). The shared data folder is
``<project root>/../shared`` or the ``NTK_SKLEARN_SHARED`` environment variable.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import load_digits
from sklearn.gaussian_process import GaussianProcessClassifier
from sklearn.gaussian_process.kernels import RBF, ConstantKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn import NNGPClassifier, NTKClassifier
from ntk_sklearn.preprocessing import NormScaler

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("NTK", "NNGP", "CNTK", "CNNGP", "SVC", "KRR", "GPC")
DATASETS = ("digits", "mnist", "cifar")
#: (height, width, channels) of one image of each data set: the convolutional models' input.
IMAGE_SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar": (32, 32, 3)}
COLUMNS = (
    "dataset",
    "model",
    "n_train",
    "n_test",
    "accuracy",
    "cv_accuracy",
    "fit_time_s",
    "search_time_s",
    "refit_time_s",
    "predict_time_s",
    "n_candidates",
    "tune_n",
    "best_params",
    "note",
)


def shared_dir() -> Path:
    """The shared data folder: ``$NTK_SKLEARN_SHARED`` or ``<project root>/../shared``."""
    return Path(os.environ.get("NTK_SKLEARN_SHARED", ROOT.parent / "shared"))


# -- a classifier on kernel ridge regression ---------------------------------------------------


class OneHotKernelRidge(ClassifierMixin, BaseEstimator):
    """``KernelRidge`` on centred one-hot targets, predicting the class of the largest output.

    The same reduction of classification to regression that ``NTKClassifier`` and
    ``NNGPClassifier`` use (targets ``1 - 1/C`` for the class, ``-1/C`` elsewhere), with a
    scikit-learn kernel instead of a neural one.

    Parameters
    ----------
    alpha : float, default=1.0
        Ridge regularization, added to the kernel diagonal.
    kernel : str, default="rbf"
        Kernel of :class:`~sklearn.kernel_ridge.KernelRidge`.
    gamma : float or None, default=None
        Kernel coefficient (``exp(-gamma ||x - x'||^2)`` for ``"rbf"``).
    """

    def __init__(self, alpha: float = 1.0, kernel: str = "rbf", gamma: float | None = None):
        self.alpha = alpha
        self.kernel = kernel
        self.gamma = gamma

    def fit(self, X: Any, y: Any) -> OneHotKernelRidge:
        """Fit the ridge regression on centred one-hot encodings of ``y``."""
        X, y = validate_data(self, X, y)
        encoder = LabelEncoder().fit(y)
        self.classes_ = encoder.classes_
        n_classes = len(self.classes_)
        targets = np.eye(n_classes)[encoder.transform(y)] - 1.0 / n_classes
        self.ridge_ = KernelRidge(alpha=self.alpha, kernel=self.kernel, gamma=self.gamma)
        self.ridge_.fit(X, targets)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Regression outputs, one column per class."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return self.ridge_.predict(X)

    def predict(self, X: Any) -> np.ndarray:
        """The class with the largest regression output."""
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]


# -- data --------------------------------------------------------------------------------------


def load_dataset(
    name: str, n_train: int | None, n_test: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test splits (flattened float features in [0, 1], integer labels).

    ``digits``: scikit-learn's embedded 8x8 digits, a stratified split with ``n_test`` test
    samples (default 540, 30 %). ``mnist``: the shared ``mnist-10k.npz`` split into disjoint
    stratified sets of ``n_train`` and ``n_test`` (default 2,000). ``cifar``: the shared
    CIFAR-100 10-class subset with its fixed train (1,000) / test (834) split.
    """
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X = (X / 16.0).astype(np.float32)
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=n_test or 540, stratify=y, random_state=seed
        )
        return X_train, y_train, X_test, y_test
    if name == "mnist":
        from ntk_sklearn.datasets import load_mnist

        return load_mnist(
            path=shared_dir() / "data" / "mnist-10k.npz",
            n_train=n_train,
            n_test=n_test or 2000,
            random_state=seed,
        )
    if name == "cifar":
        from ntk_sklearn.datasets import load_cifar10

        return load_cifar10(
            path=shared_dir() / "data" / "cifar100-10class-2k.npz",
            n_test=n_test,
            random_state=seed,
        )
    raise ValueError(f"unknown dataset {name!r}; expected one of {DATASETS}")


def stratified_subset(
    X: np.ndarray, y: np.ndarray, n: int | None, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """A stratified random subset of ``n`` rows (all rows if ``n`` is None or too large)."""
    if n is None or n >= len(y):
        return X, y
    X_sub, _, y_sub, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=seed)
    return X_sub, y_sub


# -- models and grids --------------------------------------------------------------------------


@dataclass
class ModelSpec:
    """A pipeline and its hyperparameter grid."""

    name: str
    pipeline: Pipeline
    grid: dict[str, list[Any]]
    max_n: int | None = None  # skip above this many training samples

    @property
    def n_candidates(self) -> int:
        return math.prod(len(v) for v in self.grid.values())


def baseline_scaler(kind: str) -> BaseEstimator:
    """Preprocessing of the RBF baselines: ``"norm"`` (NormScaler) or ``"standard"``."""
    return NormScaler() if kind == "norm" else StandardScaler()


def make_models(
    n_features: int,
    *,
    image_shape: tuple[int, int, int] | None = None,
    flip: bool = False,
    dtype: str = "float32",
    baseline_scaling: str = "norm",
    quick: bool = False,
    gpc_max_n: int = 300,
) -> dict[str, ModelSpec]:
    """The models with their grids (12 candidates each; 6 for the GPC; 2-4 if quick).

    NTK/NNGP: depth x alpha (ridge on the kernel diagonal). For ReLU with a small ``b_std`` the
    kernel is positively homogeneous in ``w_std`` (it scales the whole kernel), so a grid over
    ``alpha`` covers ``w_std`` too; ``w_std=1.5, b_std=0.1`` are kept. CNTK/CNNGP (only with an
    ``image_shape``): the ``"conv"`` architecture (3x3 SAME convolutions, ``Flatten`` readout)
    on ``NormScaler``-ed images, depth {3, 5} x alpha {1e-3, 1e-1} (x ``flip_invariant``
    {False, True} with ``flip``: for images whose class survives mirroring), fewer candidates
    because each one computes convolutional kernels. RBF models: gamma in
    multiples of ``1/n_features`` (the scale of ``gamma="scale"`` for unit-variance inputs,
    which both scalers give) x C (SVC) or alpha (KRR). GPC: ``optimizer=None`` (the grid, not the
    marginal likelihood, picks the kernel, like the others) over amplitude x length scale.
    """
    d = float(n_features)
    depths = [1, 3] if quick else [1, 3, 5]
    kernel_alphas = [1e-4, 1e-1] if quick else [1e-6, 1e-4, 1e-2, 1.0]
    gammas = [g / d for g in ([1.0, 2.0] if quick else [0.5, 1.0, 2.0, 4.0])]
    krr_gammas = [g / d for g in ([1.0, 2.0] if quick else [1.0, 2.0, 4.0])]
    kernel_model = {"NTK": NTKClassifier, "NNGP": NNGPClassifier}
    specs: dict[str, ModelSpec] = {}
    for name, cls in kernel_model.items():
        specs[name] = ModelSpec(
            name,
            Pipeline([("scale", NormScaler()), ("model", cls(dtype=dtype))]),
            {"model__depth": depths, "model__alpha": kernel_alphas},
        )
    if image_shape is not None:
        conv_grid = {
            "model__depth": [1, 2] if quick else [3, 5],
            "model__alpha": [1e-3, 1e-1],
            **({"model__flip_invariant": [False, True]} if flip else {}),
        }
        for name, cls in kernel_model.items():
            conv = cls(architecture="conv", image_shape=image_shape, w_std=1.5, dtype=dtype)
            specs[f"C{name}"] = ModelSpec(
                f"C{name}", Pipeline([("scale", NormScaler()), ("model", conv)]), conv_grid
            )
    specs["SVC"] = ModelSpec(
        "SVC",
        Pipeline([("scale", baseline_scaler(baseline_scaling)), ("model", SVC(kernel="rbf"))]),
        {"model__C": [1.0, 10.0] if quick else [1.0, 10.0, 100.0], "model__gamma": gammas},
    )
    specs["KRR"] = ModelSpec(
        "KRR",
        Pipeline([("scale", baseline_scaler(baseline_scaling)), ("model", OneHotKernelRidge())]),
        {
            "model__alpha": [1e-3, 1e-1] if quick else [1e-4, 1e-3, 1e-2, 1e-1],
            "model__gamma": krr_gammas,
        },
    )
    lengths = [math.sqrt(d) * s for s in ([1.0] if quick else [0.5, 1.0, 2.0])]
    specs["GPC"] = ModelSpec(
        "GPC",
        Pipeline(
            [
                ("scale", baseline_scaler(baseline_scaling)),
                ("model", GaussianProcessClassifier(optimizer=None, random_state=0)),
            ]
        ),
        {
            "model__kernel": [
                ConstantKernel(c, "fixed") * RBF(length, "fixed")
                for c in [1.0, 10.0]
                for length in lengths
            ]
        },
        max_n=gpc_max_n,
    )
    return specs


# -- the comparison ----------------------------------------------------------------------------


@dataclass
class Result:
    """One row of the table."""

    dataset: str
    model: str
    n_train: int
    n_test: int
    accuracy: float = float("nan")
    cv_accuracy: float = float("nan")
    fit_time_s: float = float("nan")
    search_time_s: float = float("nan")
    refit_time_s: float = float("nan")
    predict_time_s: float = float("nan")
    n_candidates: int = 0
    tune_n: int = 0
    best_params: dict[str, Any] = field(default_factory=dict)
    note: str = ""


def _param_repr(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}")
    if isinstance(value, int | str | bool) or value is None:
        return value
    return str(value)


def evaluate(
    spec: ModelSpec,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    dataset: str,
    cv: int,
    tune_n: int | None,
    seed: int,
    n_jobs: int | None = None,
) -> Result:
    """Grid search on (a subset of) the training split, refit on all of it, score on the test."""
    n_train = len(y_train)
    result = Result(dataset, spec.name, n_train, len(y_test), n_candidates=spec.n_candidates)
    if spec.max_n is not None and n_train > spec.max_n:
        result.note = f"skipped: n_train > {spec.max_n} (cost O(n^3) per class per step)"
        return result
    X_tune, y_tune = stratified_subset(X_train, y_train, tune_n, seed)
    result.tune_n = len(y_tune)
    search = GridSearchCV(
        spec.pipeline,
        spec.grid,
        cv=StratifiedKFold(cv, shuffle=True, random_state=seed),
        scoring="accuracy",
        refit=len(y_tune) == n_train,
        n_jobs=n_jobs,
        error_score=np.nan,
    )
    start = time.perf_counter()
    search.fit(X_tune, y_tune)
    result.search_time_s = time.perf_counter() - start
    if len(y_tune) == n_train:
        model = search.best_estimator_
        result.refit_time_s = float(search.refit_time_)
        result.search_time_s -= result.refit_time_s
    else:
        model = clone(spec.pipeline).set_params(**search.best_params_)
        start = time.perf_counter()
        model.fit(X_train, y_train)
        result.refit_time_s = time.perf_counter() - start
        result.note = f"hyperparameters by CV on a stratified {len(y_tune)}-sample subset"
    result.fit_time_s = result.search_time_s + result.refit_time_s
    result.cv_accuracy = float(search.best_score_)
    result.best_params = {
        k.removeprefix("model__"): _param_repr(v) for k, v in search.best_params_.items()
    }
    start = time.perf_counter()
    y_pred = model.predict(X_test)
    result.predict_time_s = time.perf_counter() - start
    result.accuracy = float(np.mean(y_pred == y_test))
    return result


def run_comparison(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    dataset: str = "digits",
    n_train_sizes: Sequence[int | None] = (None,),
    models: Sequence[str] | None = None,
    cv: int = 3,
    tune_n: int | None = None,
    dtype: str = "float32",
    baseline_scaling: str = "norm",
    quick: bool = False,
    gpc_max_n: int = 300,
    seed: int = 0,
    n_jobs: int | None = None,
    log: Callable[[str], None] | None = print,
) -> list[Result]:
    """Evaluate each model at each training-set size (stratified subsets of the train split).

    Returns one :class:`Result` per (size, model), in that order. ``models=None`` runs all
    of :data:`MODELS` (the convolutional ones only for a data set in :data:`IMAGE_SHAPES`).
    ``log`` receives one progress line per evaluation (None: silent).
    """
    specs = make_models(
        X_train.shape[1],
        image_shape=IMAGE_SHAPES.get(dataset),
        flip=dataset == "cifar",
        dtype=dtype,
        baseline_scaling=baseline_scaling,
        quick=quick,
        gpc_max_n=gpc_max_n,
    )
    models = [name for name in MODELS if name in specs] if models is None else models
    unknown = set(models) - set(specs)
    if unknown:
        raise ValueError(f"unknown models {sorted(unknown)}; expected a subset of {MODELS}")
    results = []
    start = time.perf_counter()
    for size in n_train_sizes:
        X_sub, y_sub = stratified_subset(X_train, y_train, size, seed)
        for name in models:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", category=UserWarning)
                result = evaluate(
                    specs[name],
                    X_sub,
                    y_sub,
                    X_test,
                    y_test,
                    dataset=dataset,
                    cv=cv,
                    tune_n=tune_n,
                    seed=seed,
                    n_jobs=n_jobs,
                )
            results.append(result)
            if log is not None:
                elapsed = time.perf_counter() - start
                if result.note.startswith("skipped"):
                    what = result.note
                else:
                    what = (
                        f"acc={result.accuracy:.4f} cv={result.cv_accuracy:.4f} "
                        f"fit={result.fit_time_s:.1f}s predict={result.predict_time_s:.2f}s "
                        f"{result.best_params}"
                    )
                log(f"[{elapsed:7.1f}s] {dataset} n_train={result.n_train} {name:>4}: {what}")
    return results


# -- output ------------------------------------------------------------------------------------


def _cell(value: Any, column: str = "") -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        return f"{value:.4f}" if "accuracy" in column else f"{value:.2f}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def format_table(results: Sequence[Result]) -> str:
    """A plain-text table of the results."""
    columns = ("model", "n_train", "accuracy", "cv_accuracy", "fit_time_s", "predict_time_s")
    rows = [columns + ("best_params / note",)]
    for r in results:
        extra = r.note if r.note.startswith("skipped") else _cell(r.best_params)
        rows.append(tuple(_cell(getattr(r, c), c) for c in columns) + (extra,))
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(w) if i else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=False))
        ]
        lines.append("  ".join(cells + [row[-1]]))
    return "\n".join(lines)


def save_results(
    results: Sequence[Result], out: Path, dataset: str, meta: dict[str, Any]
) -> list[Path]:
    """Write the CSV, the JSON (with ``meta``) and, for several sizes, the learning curve."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"results_{dataset}.csv", out / f"results_{dataset}.json"]
    with paths[0].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        for r in results:
            row = asdict(r)
            row["best_params"] = json.dumps(row["best_params"], sort_keys=True)
            writer.writerow(row)
    rows = [
        {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(r).items()}
        for r in results
    ]
    paths[1].write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    sizes = sorted({r.n_train for r in results})
    if len(sizes) > 1:
        try:
            import matplotlib  # noqa: F401  (an optional dependency: pip install matplotlib)
        except ImportError:
            print("matplotlib is not installed: no learning-curve plot", file=sys.stderr)
        else:
            path = out / f"learning_curve_{dataset}.png"
            paths.append(plot_learning_curves(results, path, dataset))
    return paths


def plot_learning_curves(results: Sequence[Result], path: Path, dataset: str) -> Path:
    """Test accuracy against training-set size, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r.model for r in results):
        points = [
            (r.n_train, r.accuracy)
            for r in results
            if r.model == name and not math.isnan(r.accuracy)
        ]
        if points:
            xs, ys = zip(*sorted(points), strict=True)
            ax.plot(xs, ys, marker="o", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("training-set size")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{dataset}: test accuracy, hyperparameters tuned by CV")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# -- command line ------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, default="digits")
    parser.add_argument(
        "--n-train",
        type=int,
        nargs="+",
        default=None,
        help="training-set size(s); default: digits 100 300 1257, mnist 1000, cifar 1000",
    )
    parser.add_argument("--n-test", type=int, default=None, help="digits 540, mnist 2000")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--cv", type=int, default=3, help="folds of the grid search")
    parser.add_argument(
        "--tune-n",
        type=int,
        default=None,
        help="grid-search on a stratified subset of at most this many training samples, "
        "then refit on all of them (default: search on all)",
    )
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--baseline-scaling",
        choices=("norm", "standard"),
        default="norm",
        help="preprocessing of SVC/KRR/GPC: NormScaler (default) or StandardScaler",
    )
    parser.add_argument("--gpc-max-n", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-jobs", type=int, default=None, help="GridSearchCV n_jobs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--quick", action="store_true", help="smaller grids (2-4 candidates)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Result]:
    args = parse_args(argv)
    defaults = {"digits": [100, 300, 1257], "mnist": [1000], "cifar": [1000]}
    sizes = args.n_train or defaults[args.dataset]
    X_train, y_train, X_test, y_test = load_dataset(
        args.dataset, max(sizes), args.n_test, args.seed
    )
    print(
        f"{args.dataset}: train pool {X_train.shape}, test {X_test.shape}, sizes {sizes}, "
        f"models {args.models}, cv={args.cv}, tune_n={args.tune_n}, dtype={args.dtype}",
        flush=True,
    )
    results = run_comparison(
        X_train,
        y_train,
        X_test,
        y_test,
        dataset=args.dataset,
        n_train_sizes=sizes,
        models=args.models,
        cv=args.cv,
        tune_n=args.tune_n,
        dtype=args.dtype,
        baseline_scaling=args.baseline_scaling,
        quick=args.quick,
        gpc_max_n=args.gpc_max_n,
        seed=args.seed,
        n_jobs=args.n_jobs,
        log=lambda line: print(line, flush=True),
    )
    print()
    print(format_table(results))
    meta = {
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "n_train_sizes": sizes,
        "n_test": len(y_test),
        "python": sys.version.split()[0],
        "sklearn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
    }
    for path in save_results(results, args.out, args.dataset, meta):
        print(f"wrote {path}")
    return results


if __name__ == "__main__":
    main()
