"""How ``solver="auto"`` chooses CG's tolerance and preconditioner rank from ``N``.

Full-Fashion-MNIST test accuracy of ``make_pipeline(NormScaler(), NNGPClassifier(depth=3,
alpha=1e-2, dtype="float32"))`` solved by CG at several ``(tol, rank)`` settings on training
subsets of ``N`` samples (stratified). The kernels are computed once per ``N`` (by the estimator,
``solver="cg"``) and each setting re-solves the same training kernel with
:class:`~ntk_sklearn.solvers.CGSolver`, as the estimator's ``fit`` does: iterations, solve
seconds, test accuracy, and the share of test predictions that differ from the tightest setting.

    python benchmarks/bench_cg_defaults.py --n 5000 10000 20000 [--settings "[[1e-3, 200]]"]
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import numpy as np

#: (tol, rank): the old defaults first (the reference of "differ"), the "auto" choices after.
SETTINGS = [
    (1e-6, 100),
    (1e-4, 100),
    (1e-3, 100),
    (1e-3, 200),
    (1e-4, 300),
    (1e-3, 300),
    (1e-3, 500),
    (1e-2, 500),
]


def main() -> None:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split

    from ntk_sklearn import NNGPClassifier
    from ntk_sklearn.datasets import load_fashion_mnist
    from ntk_sklearn.preprocessing import NormScaler
    from ntk_sklearn.solvers import CGSolver

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=os.environ.get("FASHION_MNIST_DIR"))
    parser.add_argument("--n", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--settings", help='JSON list of [tol, rank] pairs, e.g. "[[1e-3, 200]]"')
    args = parser.parse_args()
    X, y, X_test, y_test = load_fashion_mnist(path=args.data, dtype=np.float32)
    X_test, y_test = X_test[: args.n_test], y_test[: args.n_test]
    for n in args.n:
        Xn, yn = X, y
        if n < len(X):
            Xn, _, yn, _ = train_test_split(X, y, train_size=n, stratify=y, random_state=0)
        scaler = NormScaler().fit(Xn)
        Xs, Xt = scaler.transform(Xn), scaler.transform(X_test)
        start = time.perf_counter()
        model = NNGPClassifier(depth=3, alpha=1e-2, dtype="float32", solver="cg", max_iter=1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(Xs, yn)
        kernel_s = time.perf_counter() - start
        cross = model._kernels(Xt.astype(np.float32), model.X_fit_, names=("nngp",)).nngp
        reference = None
        for tol, rank in json.loads(args.settings) if args.settings else SETTINGS:
            start = time.perf_counter()
            solver = CGSolver(tol=tol, rank=rank).fit(model.train_kernel_)
            coef = solver.apply(model.y_fit_)
            solve_s = time.perf_counter() - start
            pred = np.asarray(cross @ coef).argmax(axis=1)
            reference = pred if reference is None else reference
            print(
                json.dumps(
                    {
                        "n": n,
                        "tol": tol,
                        "rank": rank,
                        "iterations": solver.n_iter_,
                        "residual": float(f"{solver.residual_:.3g}"),
                        "solve_s": round(solve_s, 1),
                        "kernel_s": round(kernel_s, 1),
                        "accuracy": round(100 * float((model.classes_[pred] == y_test).mean()), 2),
                        "differ_from_first": round(100 * float((pred != reference).mean()), 2),
                        "load": round(os.getloadavg()[0], 1),
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
