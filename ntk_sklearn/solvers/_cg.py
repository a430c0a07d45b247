"""Preconditioned conjugate gradients for ``K⁻¹ B``; Lanczos for ``A_t B`` at finite ``t``.

Each column of ``B`` runs its own CG (its own step sizes ``α_j``, ``β_j``), all columns in one
product ``K P`` per iteration; a column stops updating once ``‖r_j‖ ≤ tol ‖b_j‖``. The kernel is
stored once (its own dtype, or ``kernel_dtype``); vectors, products and reductions are float64
(a float32 kernel is converted block of rows by block of rows inside each product). A
row-sharded kernel stays on its devices (:mod:`ntk_sklearn.solvers._sharding`).
"""

from __future__ import annotations

import functools
import math
import time
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn import _warnings
from ntk_sklearn._progress import INTERVAL, format_seconds, report
from ntk_sklearn.solvers._base import (
    Solver,
    check_kernel,
    check_rate,
    check_rhs,
    check_time,
    solver_memory,
)
from ntk_sklearn.solvers._expm import lanczos_gain
from ntk_sklearn.solvers._preconditioners import PRECONDITIONERS, build_preconditioner
from ntk_sklearn.solvers._sharding import (
    make_matvec,
    on_device,
    put_like,
    replicated,
    to_host,
    vector_sharding,
)


@functools.partial(jax.jit, static_argnames=("matvec", "progress"))
def _pcg(matvec, k, b, U, coef, tol, max_iter, progress=None):
    """Preconditioned CG on every column of ``b``: returns ``x``, iterations, true residuals.

    Each column returns its iterate of smallest residual ``‖r‖`` (zero included): on a singular
    or indefinite kernel CG's iterates can grow without bound while the residual grows too
    (duplicate rows with different targets at ``alpha=0``), and the last one is then far worse
    than none. ``progress(iteration, largest relative residual)``, when given, runs on the host
    after each iteration (``jax.debug.callback``): the progress of ``verbose``.
    """

    def precondition(v):
        # P⁻¹ v = v + U (coef ⊙ Uᵀ v)   (Nyström preconditioner, _preconditioners.py)
        return v + U @ (coef[:, None] * (U.T @ v))

    def norms(v):
        return jnp.sqrt(jnp.sum(v * v, axis=0))

    target = tol * norms(b)
    x = jnp.zeros_like(b)
    z = precondition(b)
    # The best iterate so far and its residual norm, per column (starting from x = 0, r = b).
    start = (0, x, b, z, jnp.sum(b * z, axis=0), x, norms(b))

    def cond(state):
        it, _, r, _, _, _, _ = state
        return (it < max_iter) & jnp.any(norms(r) > target)

    def body(state):
        it, x, r, p, rz, best, best_norm = state
        active = norms(r) > target
        kp = matvec(k, p)
        pkp = jnp.sum(p * kp, axis=0)
        # α = rᵀz / pᵀKp ;  x += α p ;  r -= α K p
        alpha = jnp.where(active & (pkp > 0), rz / jnp.where(pkp > 0, pkp, 1.0), 0.0)
        x = x + alpha * p
        r = r - alpha * kp
        z = precondition(r)
        rz_new = jnp.sum(r * z, axis=0)
        # β = r_newᵀ z_new / rᵀz ;  p = z + β p
        beta = jnp.where(active & (rz > 0), rz_new / jnp.where(rz > 0, rz, 1.0), 0.0)
        r_norm = norms(r)
        better = r_norm < best_norm
        best = jnp.where(better, x, best)
        best_norm = jnp.where(better, r_norm, best_norm)
        if progress is not None:
            bnorm = norms(b)
            jax.debug.callback(progress, it + 1, jnp.max(r_norm / jnp.where(bnorm > 0, bnorm, 1)))
        return it + 1, x, r, z + beta * p, jnp.where(active, rz_new, rz), best, best_norm

    it, _, _, _, _, x, _ = jax.lax.while_loop(cond, body, start)
    bnorm = norms(b)
    true = norms(b - matvec(k, x))
    # The recursive residual drifts from the true one in rounding: never return worse than 0.
    worse = true > bnorm
    x = jnp.where(worse, 0.0, x)
    true = jnp.where(worse, bnorm, true)
    return x, it, true / jnp.where(bnorm > 0, bnorm, 1.0)


class CGSolver(Solver):
    """Iterative solver: preconditioned CG at ``t=None``, Lanczos at a finite ``t``.

    Parameters
    ----------
    tol : float, default=1e-6
        Relative tolerance: CG stops a column when ``‖K x - b‖ ≤ tol ‖b‖``; Lanczos when its
        coefficients change by less than ``tol`` (relative) over ten steps.
    max_iter : int or None, default=None
        Iterations per ``apply`` (``None``: ``n``).
    preconditioner : {"nystrom", "pivoted_cholesky"} or None, default="nystrom"
        Low-rank preconditioner of CG (``_preconditioners.py``): Nyström on ``rank`` random
        columns, or the greedy pivoted Cholesky. Lanczos is not preconditioned.
    rank : int, default=100
        Columns of the preconditioner (clipped to ``n``); setup ``O(n rank²)``, ``O(n rank)``
        per iteration.
    kernel_dtype : {"float32", "float64"} or None, default=None
        Dtype the kernel is stored in (``None``: as given, no copy when it is already a
        jax.Array). ``"float32"`` halves the memory; products stay float64.
    random_state : int, default=0
        Seed of the Nyström columns.
    verbose : int, default=0
        ``1``: a line with the iteration and the largest relative residual every 10 s;
        ``2``: one per iteration.
    alpha : float or None, default=None
        The ``alpha`` on the kernel's diagonal, named in the jitter messages of
        :meth:`evidence_terms` and :meth:`dense_subset` (dense factorizations on demand).

    Attributes
    ----------
    n_iter_ : int
        Iterations of the last ``apply`` (Lanczos: steps of one of its two passes).
    residual_ : float
        Largest relative residual ``‖K x - b‖ / ‖b‖`` over the columns (CG), or the largest
        relative change of the Krylov coefficients (Lanczos).
    precond_ : LowRankPreconditioner
        ``U`` (n, r) and ``coef`` (r,), NumPy.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import CGSolver
    >>> x = np.linspace(-1, 1, 200)[:, None]
    >>> K = np.exp(-((x - x.T) ** 2)) + 1e-3 * np.eye(200)
    >>> B = np.sin(3 * x)
    >>> solver = CGSolver(tol=1e-8, rank=20).fit(K)
    >>> bool(np.allclose(solver.apply(B), np.linalg.solve(K, B), rtol=1e-5, atol=1e-8))
    True
    >>> solver.n_iter_ < 200
    True
    """

    name = "cg"
    row_sharded = True

    def __init__(
        self,
        tol: float = 1e-6,
        max_iter: int | None = None,
        preconditioner: str | None = "nystrom",
        rank: int = 100,
        kernel_dtype: str | None = None,
        random_state: int = 0,
        verbose: int = 0,
        alpha: float | None = None,
    ):
        if isinstance(tol, bool) or not isinstance(tol, Real) or not 0 < tol < 1:
            raise ValueError(f"tol must be a number in (0, 1), e.g. 1e-6; got {tol!r}.")
        if max_iter is not None and (
            isinstance(max_iter, bool) or not isinstance(max_iter, Integral) or max_iter < 1
        ):
            raise ValueError(f"max_iter must be a positive integer or None; got {max_iter!r}.")
        if preconditioner not in PRECONDITIONERS:
            raise ValueError(
                f"preconditioner must be one of {PRECONDITIONERS}; got {preconditioner!r}."
            )
        if isinstance(rank, bool) or not isinstance(rank, Integral) or rank < 0:
            raise ValueError(f"rank must be a non-negative integer, e.g. 100; got {rank!r}.")
        if kernel_dtype not in (None, "float32", "float64"):
            raise ValueError(
                f"kernel_dtype must be None, 'float32' or 'float64'; got {kernel_dtype!r}."
            )
        self.tol = float(tol)
        self.max_iter = max_iter
        self.preconditioner = preconditioner
        self.rank = int(rank)
        self.kernel_dtype = kernel_dtype
        self.random_state = random_state
        self.verbose = verbose
        self.alpha = alpha

    def _params(self) -> dict:
        return {
            "tol": self.tol,
            "max_iter": self.max_iter,
            "preconditioner": self.preconditioner,
            "rank": self.rank,
        }

    def fitted_state(self) -> dict:
        return {"cg_solver_": self}

    def memory_bytes(self, n: int, m: int, dtype) -> int:
        return solver_memory(n, m, dtype, self.name, self.rank)

    def fit(self, K, rate: float = 1.0) -> CGSolver:
        K = check_kernel(K)
        self.rate_ = check_rate(rate)
        self.dtype_ = np.dtype(K.dtype)
        self.kernel_ = on_device(K, np.dtype(self.kernel_dtype or K.dtype))
        self.precond_ = build_preconditioner(K, self.preconditioner, self.rank, self.random_state)
        self.n_ = K.shape[0]
        return self

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        if "kernel_" in state:
            state["kernel_"] = np.asarray(state["kernel_"])
        return state

    def apply(self, B, t: float | None = None) -> np.ndarray:
        self._check_fitted()
        t = check_time(t)
        B2, was_1d = check_rhs(B, self.n_)
        dtype = np.result_type(self.dtype_, B2.dtype, np.float32)
        max_iter = self.max_iter or self.n_
        kernel = on_device(self.kernel_, self.kernel_.dtype)
        matvec = make_matvec(kernel)
        with jax.enable_x64(True):
            b = np.asarray(B2, np.float64)
            sharding = vector_sharding(kernel)
            # On several processes every one passes the same b; each keeps its own rows.
            b = jnp.asarray(b) if sharding is None else put_like(b, sharding)
            if t == 0:
                out, it, res = np.zeros(b.shape), 0, np.zeros(b.shape[1])
            elif t is None:
                U, coef = self.precond_
                if sharding is not None:
                    # Replicated on every device; Uᵀ r then sums over the devices' rows.
                    U, coef = (put_like(a, replicated(sharding)) for a in (U, coef))
                out, it, res = _pcg(
                    matvec, kernel, b, U, coef, self.tol, max_iter, self._reporter()
                )
            else:
                out, it, res = lanczos_gain(matvec, kernel, b, self.rate_ * t, self.tol, max_iter)
            out, res, it = to_host(out).astype(dtype), to_host(res), to_host(it)
        self.n_iter_ = int(it)
        self.residual_ = float(res.max(initial=0.0))
        if self.verbose:
            what = "CG" if t is None else "Lanczos"
            report(
                self.verbose,
                f"{what}: {self.n_iter_} iterations, relative residual "
                f"{self.residual_:.2e} (tol {self.tol:g})",
            )
        if self.residual_ > self.tol:
            what = "CG" if t is None else "Lanczos (finite t)"
            # CG returns its iterate of smallest residual: 1 means none beat x = 0.
            stalled = (
                " CG made no progress (the kernel is singular or indefinite for these right-hand "
                "sides: duplicate samples with different targets at alpha=0?) and returns its "
                "iterate of smallest residual, close to x = 0."
            ) * (t is None and self.residual_ > 0.5)
            _warnings.warn(
                f"{what} did not reach tol={self.tol:g} in {self.n_iter_} iterations: relative "
                f"residual {self.residual_:.2e}.{stalled} Raise alpha (a better conditioned "
                f"kernel), tol or max_iter (now {max_iter}), or the preconditioner rank (now "
                f"{self.precond_.U.shape[1]}); or use a direct solver.",
                ConvergenceWarning,
            )
        return out[:, 0] if was_1d else out

    def _reporter(self):
        """The host callback that prints CG's progress (``None`` when silent).

        The time left is extrapolated from the residual's geometric decrease so far:
        ``log(r / tol) / rate`` more iterations at the mean time per iteration.
        """
        if not self.verbose:
            return None
        start = last = time.perf_counter()
        first = None

        def show(iteration, residual) -> None:
            nonlocal last, first
            now, iteration, residual = time.perf_counter(), int(iteration), float(residual)
            first = first or (iteration, residual)
            if self.verbose < 2 and now - last < INTERVAL:
                return
            last, elapsed = now, now - start
            line = (
                f"CG: iteration {iteration}, relative residual {residual:.2e} (tol {self.tol:g}), "
                f"{format_seconds(elapsed)} elapsed"
            )
            rate = math.log(first[1] / residual) / max(iteration - first[0], 1)
            if rate > 0 and residual > self.tol:
                left = math.log(residual / self.tol) / rate * elapsed / iteration
                line += f", about {format_seconds(left)} left"
            report(self.verbose, line)

        return show
