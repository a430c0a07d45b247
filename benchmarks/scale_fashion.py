"""Full Fashion-MNIST (60,000 / 10,000) with NTK and NNGP classifiers on one machine.

The training kernel is stored once in float32 (14.4 GB at N = 60,000) and solved by
preconditioned conjugate gradients (``solver="cg"``, chosen by ``solver="auto"`` from 5,000
samples); test kernels are computed in chunks of rows. Each (model, N) runs in a fresh process,
whose peak resident memory is reported. Hyperparameters are chosen by 3-fold CV on a 2,000-sample
stratified subset of the training set. ``--svc`` adds ``SVC(C=10, gamma="scale")`` (RBF, the
Fashion-MNIST benchmark's best setting) on the same split, at the sizes given by ``--svc-n``.

The four IDX files come from the Debian package ``dataset-fashion-mnist``
(``dpkg -L dataset-fashion-mnist`` shows the folder) or any folder given by ``--data`` or the
``FASHION_MNIST_DIR`` environment variable.

    python benchmarks/scale_fashion.py --n 5000 10000 20000 40000 60000 --svc --svc-n 5000 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def data_dir(arg: str | None) -> str:
    if arg or os.environ.get("FASHION_MNIST_DIR"):
        return arg or os.environ["FASHION_MNIST_DIR"]
    listing = subprocess.run(
        ["dpkg", "-L", "dataset-fashion-mnist"], capture_output=True, text=True, check=False
    ).stdout.split()
    folders = {str(Path(p).parent) for p in listing if p.endswith("-ubyte.gz")}
    if len(folders) != 1:
        sys.exit("Fashion-MNIST not found: install dataset-fashion-mnist or pass --data FOLDER.")
    return folders.pop()


def load(folder: str, n: int | None):
    from ntk_sklearn.datasets import load_fashion_mnist

    X, y, X_test, y_test = load_fashion_mnist(path=folder, dtype=np.float32)
    if n is not None and n < len(X):
        from sklearn.model_selection import train_test_split

        X, _, y, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=0)
    return X, y, X_test, y_test


def make_model(name: str, params: dict):
    from sklearn.pipeline import make_pipeline

    from ntk_sklearn import NNGPClassifier, NTKClassifier
    from ntk_sklearn.preprocessing import NormScaler

    if name == "SVC":
        from sklearn.svm import SVC

        return make_pipeline(NormScaler(), SVC(C=10.0, gamma="scale"))
    cls = NTKClassifier if name == "NTK" else NNGPClassifier
    return make_pipeline(NormScaler(), cls(dtype="float32", **params))


def tune(folder: str) -> dict:
    """3-fold CV on 2,000 training samples over depth, b_std and alpha (float64)."""
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    from ntk_sklearn import NTKClassifier
    from ntk_sklearn.preprocessing import NormScaler

    X, y, _, _ = load(folder, 2000)
    grid = {
        "ntkclassifier__depth": [1, 3, 5],
        "ntkclassifier__b_std": [0.1, 1.0],
        "ntkclassifier__alpha": [1e-3, 1e-1],
    }
    search = GridSearchCV(make_pipeline(NormScaler(), NTKClassifier()), grid, cv=3).fit(X, y)
    best = {k.split("__")[1]: v for k, v in search.best_params_.items()}
    return {"params": best, "cv_accuracy": float(search.best_score_)}


def one(folder: str, name: str, n: int, params: dict) -> dict:
    """Fit and score one model in this process; times split into kernel and solve."""
    from ntk_sklearn.solvers import CGSolver

    solve_time = [0.0]
    apply = CGSolver.apply

    def timed_apply(self, B, t=None):
        start = time.perf_counter()
        try:
            return apply(self, B, t)
        finally:
            solve_time[0] += time.perf_counter() - start

    CGSolver.apply = timed_apply
    X, y, X_test, y_test = load(folder, n)
    model = make_model(name, params)
    start = time.perf_counter()
    model.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float((model.predict(X_test) == y_test).mean())
    predict_s = time.perf_counter() - start
    est = model[-1]
    return {
        "model": name,
        "n_train": len(X),
        "fit_s": round(fit_s, 1),
        "solve_s": round(solve_time[0], 1) if name != "SVC" else None,
        "kernel_s": round(fit_s - solve_time[0], 1) if name != "SVC" else None,
        "predict_s": round(predict_s, 1),
        "solver": getattr(est, "solver_", None),
        "iterations": getattr(est, "n_iter_", None) if name != "SVC" else None,
        "accuracy": round(100 * accuracy, 2),
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="folder with the four Fashion-MNIST IDX files")
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 10000, 20000, 40000, 60000])
    parser.add_argument("--models", nargs="*", default=["NTK", "NNGP"], help="none: SVC only")
    parser.add_argument("--params", help="JSON hyperparameters (skips the CV search)")
    parser.add_argument("--svc", action="store_true", help="also run SVC")
    parser.add_argument("--svc-n", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--json", help="append results to this file (one JSON object a line)")
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "N", "PARAMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    folder = data_dir(args.data)
    if args.one:
        print(json.dumps(one(folder, args.one[0], int(args.one[1]), json.loads(args.one[2]))))
        return
    if args.params:
        params = json.loads(args.params)
    else:
        start = time.perf_counter()
        tuned = tune(folder)
        params = tuned["params"]
        print(
            f"CV on 2,000: {params} ({tuned['cv_accuracy']:.4f}), "
            f"{time.perf_counter() - start:.0f} s",
            flush=True,
        )
    runs = [(m, n) for m in args.models for n in args.n]
    runs += [("SVC", n) for n in args.svc_n] if args.svc else []
    for name, n in runs:
        out = subprocess.run(
            [sys.executable, __file__, "--data", folder, "--one", name, str(n), json.dumps(params)],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"{name} N={n} failed:\n{out.stderr[-2000:]}", flush=True)
            continue
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["load_average"] = round(os.getloadavg()[0], 1)
        print(json.dumps(result), flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
