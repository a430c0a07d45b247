"""Direct vs iterative solves of ``K x = b`` on real NTK training kernels.

Kernel: NTK of a depth-3 ReLU network (``fc_kernel``, ``b_std=0.1``) on the first N MNIST rows
of ``<project root>/../shared/data/mnist-10k.npz`` (or ``$NTK_SKLEARN_SHARED``), rows centred and
scaled to unit norm, plus ``alpha·I``; float64. Right-hand sides: the 10 centred one-hot target
columns. For each N: Cholesky (factor + solve), then CG without preconditioner and with the
Nyström and pivoted-Cholesky preconditioners (setup included in the time), iterations and the
relative difference of the solution from Cholesky's. One timed run each after a compilation
warm-up (the machine is shared: times are indicative).

    python benchmarks/bench_solvers.py                       # N = 2,000 and 5,000
    python benchmarks/bench_solvers.py --n 2000 5000 10000   # and 10,000 (a few minutes)
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn.kernels import fc_kernel
from ntk_sklearn.solvers import CGSolver, CholeskySolver


def load_rows(n: int) -> tuple[np.ndarray, np.ndarray]:
    root = Path(__file__).resolve().parents[1]
    shared = Path(os.environ.get("NTK_SKLEARN_SHARED", root.parent / "shared"))
    data = np.load(shared / "data" / "mnist-10k.npz")
    x = data["images"][:n].reshape(n, -1).astype(np.float64)
    x -= x.mean(0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.eye(10)[data["labels"][:n]]
    return x, y - y.mean(0)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(n: int, alpha: float, rank: int, tol: float) -> list[dict]:
    x, y = load_rows(n)
    with jax.enable_x64(True):
        k, t_kernel = timed(lambda: fc_kernel(x, depth=3, b_std=0.1, get="ntk"))
    k = k + alpha * np.eye(n)
    rows = []
    exact, t_chol = timed(lambda: CholeskySolver().fit(k).apply(y))
    rows.append({"n": n, "solver": "cholesky", "iters": 0, "seconds": t_chol, "rel_diff": 0.0})
    for pre in (None, "nystrom", "pivoted_cholesky"):
        with warnings.catch_warnings():  # warm-up: compile for these shapes
            warnings.simplefilter("ignore", ConvergenceWarning)
            CGSolver(max_iter=1, preconditioner=pre, rank=rank).fit(k).apply(y)
        solver = CGSolver(tol=tol, preconditioner=pre, rank=rank, max_iter=5 * n)
        out, seconds = timed(lambda s=solver: s.fit(k).apply(y))
        rows.append(
            {
                "n": n,
                "solver": f"cg/{pre or 'none'}",
                "iters": solver.n_iter_,
                "seconds": seconds,
                "rel_diff": float(np.linalg.norm(out - exact) / np.linalg.norm(exact)),
            }
        )
    print(f"N={n}: kernel {t_kernel:.1f}s", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 5000])
    parser.add_argument("--alpha", type=float, default=1e-3)
    parser.add_argument("--rank", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args()
    print(f"devices: {jax.devices()}, alpha={args.alpha}, rank={args.rank}, tol={args.tol}")
    rows = [row for n in args.n for row in run(n, args.alpha, args.rank, args.tol)]
    print(f"{'N':>6} {'solver':<22} {'iters':>6} {'seconds':>8} {'rel diff':>9}")
    for r in rows:
        print(
            f"{r['n']:>6} {r['solver']:<22} {r['iters']:>6} {r['seconds']:>8.2f} "
            f"{r['rel_diff']:>9.1e}"
        )


if __name__ == "__main__":
    main()
