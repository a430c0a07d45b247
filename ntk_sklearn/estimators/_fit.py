"""``fit``'s dynamics: the solver, the memory plan, the training kernel, its factorization.

Sample weights ``w`` enter the dynamics as in :class:`~sklearn.kernel_ridge.KernelRidge`: with
``S = diag(√w)`` the loss ``0.5 · Σ_i w_i ‖f_i - y_i‖² / (k · Σ_i w_i)`` gives the gradient flow
of the unweighted case with the training kernel ``S Θ S + α I`` in place of ``Θ + α I`` and
``A_t`` replaced by ``S A_t(S Θ S + α I) S``; integer weights are exactly repeated samples.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _memory, _progress, dynamics
from ntk_sklearn.estimators._params import check_memory
from ntk_sklearn.estimators._posterior import _PREDICT_CHUNK
from ntk_sklearn.solvers import Solver, choose_solver, make_fit_solver
from ntk_sklearn.solvers._base import CG_MIN_N
from ntk_sklearn.solvers._sharding import assemble_rows, device_mesh, to_host


class _Fit:
    """``fit``'s dynamics (a mixin of ``NeuralKernelBase``)."""

    def _fit_dynamics(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None) -> None:
        """The training kernel, computed once, and its solver, fitted once.

        ``Y`` is 2-D ``(n, k)``, ``w`` positive weights or ``None``. Stores ``X_fit_``,
        ``y_fit_``, ``train_kernel_`` (the kernel of the dynamics, NTK or NNGP, weighted
        ``S Θ S``, plus ``alpha·I``), for the NTK with a direct solver also ``train_nngp_`` (the
        prior covariance of the initial outputs, without ``alpha``: neural-tangents'
        convention), ``dual_coef_`` (``S A_t S y``), ``jitter_``, and the solver's state:
        ``chol_`` (``t=None``) or ``evals_``/``evecs_``, or ``cg_solver_``.
        """
        n = X.shape[0]
        self.solver_ = self._choose_solver(n, Y.shape[1])
        stale = ("chol_", "evals_", "evecs_", "train_nngp_", "cg_solver_", "n_iter_", "_solver")
        for name in (*stale, "log_marginal_likelihood_value_"):
            self.__dict__.pop(name, None)  # from an earlier fit
        p = self._hyper
        tol, rank = self._cg_settings(n)
        solver = make_fit_solver(
            self.solver_,
            p["t"],
            p["alpha"],
            tol=tol,
            rank=rank,
            max_iter=p["max_iter"],
            verbose=p["verbose"],
        )
        # Before the optimizer's work, which would then be lost.
        self._check_fit_memory(solver, n, Y.shape[1], weighted=w is not None, X=X)
        self._learn_hyperparameters(X, Y, w)
        solver.alpha = self._hyper["alpha"]  # as learned
        X, Y = self._prepare_targets(X, Y, w)
        with self._scope():
            train = self._training_kernel(X, solver)
            self.X_fit_, self.y_fit_ = X, Y.astype(self._hyper["dtype"])
            self._solver = solver.fit(train, self._rate_)
            for name, value in self._solver.fitted_state().items():
                setattr(self, name, value)  # chol_ or evals_/evecs_ and train_kernel_; cg_solver_
            self.jitter_ = self._solver.jitter_
            self.dual_coef_ = np.asarray(self._apply(self.y_fit_, self._hyper["t"]))
            self.n_iter_ = self._solver.fit_iterations()
            if self._solver.dense:  # a direct factorization: the evidence costs no more
                # A singular kernel at finite t warns when log_marginal_likelihood() is called.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    self.log_marginal_likelihood_value_ = self._fitted_lml()
        if not np.isfinite(self.dual_coef_).all():
            scale = np.abs(to_host(self.train_kernel_)).max()
            raise ValueError(
                f"The dual coefficients overflowed in {self._hyper['dtype']} (targets up to "
                f"|y| = {np.abs(Y).max():.3g} over a kernel of scale {scale:.3g}): rescale y "
                "(normalize_y=True), increase alpha, or use dtype='float64'."
            )

    def _training_kernel(self, X: np.ndarray, solver: Solver):
        """``S Θ S + alpha·I`` between the training rows, as ``solver`` keeps it.

        A row-sharded solver (CG) gets one jax.Array over every device of every process
        (:func:`~ntk_sklearn.solvers._sharding.device_mesh`): each process computes the rows of
        its own devices (a single process: one triangle, mirrored), padded to a multiple of the
        device count with ``alpha·I`` (zero targets: zero coefficients); the NTK estimators'
        prior covariance (the NNGP) is then computed only when a covariance is predicted. A
        direct solver gets the jax.Array (it keeps a host view as ``train_kernel_``), and the NTK
        estimators keep ``train_nngp_``.
        """
        if solver.row_sharded:
            mesh = device_mesh()
            n_pad = -(-X.shape[0] // mesh.size) * mesh.size
            train = assemble_rows(
                (n_pad, n_pad),
                self._np_dtype(),
                mesh,
                lambda rows: self._training_rows(X, rows, n_pad),
            )
            # One CPU device: a NumPy view of the same memory; else it stays on its devices.
            on_cpu = mesh.size == 1 and mesh.devices.flat[0].platform == "cpu"
            self.train_kernel_ = np.asarray(train) if on_cpu else train
            return train
        which = "between training inputs"
        kernels = self._computed(which, X, lambda: self._kernels(X))
        raw = kernels.ntk if self._kernel == "ntk" else kernels.nngp
        self._check_finite(raw, which, X)
        if "nngp" in self._kernel_names() and self._kernel == "ntk":
            self._check_finite(kernels.nngp, "(NNGP) between training inputs", X)
            self.train_nngp_ = kernels.nngp
        raw = jnp.asarray(raw)
        if self._sqrt_weight is not None:
            s = jnp.asarray(self._sqrt_weight)
            raw = s[:, None] * raw * s[None, :]  # S Θ S
        return dynamics.add_diagonal(raw, self._hyper["alpha"])  # the solver keeps it

    def _choose_solver(self, n: int, n_targets: int) -> str:
        """The solver of this fit: ``solver``, or by size and memory for ``"auto"``."""
        name = self._hyper["solver"]
        if name == "auto":
            name = choose_solver(n, n_targets, self._hyper["t"], False, self._hyper["dtype"])
        if name == "cholesky" and self._hyper["t"] is not None:
            raise ValueError(
                "solver='cholesky' solves only the converged limit t=None; use solver='eigh' or "
                "'cg' (Lanczos) for a finite training time."
            )
        return name

    def _prepare_targets(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None):
        """Copies of ``X`` and ``Y`` in the fit's precision; the rate and weights of the loss."""
        n = X.shape[0]
        # A copy: predictions must not change when the caller's array does.
        X = np.array(X, dtype=self._hyper["dtype"], copy=True)
        Y = np.asarray(Y, dtype=np.float64)
        if self._hyper["dtype"] == "float32" and np.abs(Y).max() > np.finfo(np.float32).max:
            raise ValueError(
                f"y reaches |y| = {np.abs(Y).max():.3g}, beyond float32's range (3.4e38): use "
                "dtype='float64', normalize_y=True, or rescale y."
            )
        # Weighted loss 0.5 Σ w_i‖f_i - y_i‖² / m with m = k·Σw (= y.size without weights).
        self._rate_ = self._hyper["learning_rate"] / (Y.shape[1] * (n if w is None else w.sum()))
        self._sqrt_weight = None if w is None else np.sqrt(w).astype(self._hyper["dtype"])
        self.jitter_ = 0.0
        return X, Y

    def _cg_settings(self, n: int) -> tuple[float, int]:
        """CG's tolerance and preconditioner rank: as given, or from ``n`` for ``"auto"``.

        Rank ``n / 100`` within ``[100, 500]``: the Nyström setup, ``O(n·rank²)``, costs at most
        a few products with the kernel (``O(n²)``) and saves many iterations at large ``n``.
        Tolerance ``_AUTO_TOL_LARGE`` from ``CG_MIN_N`` samples on (where ``solver="auto"``
        picks CG), else 1e-6 (see ``benchmarks/bench_cg_defaults.py``).
        """
        tol, rank = self._hyper["tol"], self._hyper["preconditioner_rank"]
        if isinstance(rank, (bool, np.bool_)):
            raise ValueError(f"preconditioner_rank must be an int >= 1 or 'auto'; got {rank!r}.")
        if tol == "auto":
            tol = self._AUTO_TOL_LARGE if n >= CG_MIN_N else 1e-6
        if rank == "auto":
            rank = int(np.clip(n // 100, 100, 500))
        return tol, min(rank, n)

    def _check_fit_memory(
        self,
        solver: Solver,
        n: int,
        n_targets: int,
        weighted: bool = False,
        X: np.ndarray | None = None,
    ) -> None:
        """The memory plan of a fit, checked before anything is allocated.

        Training kernels (direct solvers keep the NNGP and NTK of the NTK estimators; CG one
        kernel, the rows of this process's devices), the solver's own arrays
        (:func:`~ntk_sklearn.solvers.solver_memory`), the kernel tiles in flight (two per local
        device) and one chunk of test rows against the training rows for ``predict``.
        ``MemoryError`` naming each part when the sum exceeds the available memory
        (:func:`~ntk_sklearn._memory.available_memory`: ``MemAvailable``, cgroup limits,
        ``RLIMIT_AS``); printed at ``verbose >= 1``.
        """
        dtype = self._np_dtype()
        sharded = solver.row_sharded
        if sharded:  # rows padded to a multiple of the device count
            n = -(-n // jax.device_count()) * jax.device_count()
        kernels = 1 if sharded else len(self._kernel_names())
        # Row-sharded: this process holds the rows of its devices only.
        share = jax.local_device_count() / jax.device_count() if sharded else 1.0
        plan = {
            "training kernel" + "s" * (kernels > 1): int(kernels * n * n * dtype.itemsize * share),
            # Direct solvers: the kernel as a JAX array and plus alpha·I (weighted: S K S too).
            "JAX copies of the kernel": 0 if sharded else (2 + weighted) * n * n * dtype.itemsize,
            f"{self.solver_} solver": solver.memory_bytes(n, n_targets, dtype),
            "kernel tiles": 2 * len(jax.local_devices()) * self._tile_bytes(n, X),
            "test-kernel chunk": 3 * min(n, _PREDICT_CHUNK) * n * dtype.itemsize,
        }
        parts = ", ".join(f"{part} {size / 2**30:.2f} GiB" for part, size in plan.items() if size)
        available = _memory.available_memory()
        _progress.report(
            self._hyper["verbose"],
            f"memory plan of the fit on {n} samples: {parts}; "
            + ("available: unknown" if available is None else f"{available / 2**30:.1f} GiB free"),
        )
        check_memory(sum(plan.values()), f"Fitting on {n} samples ({parts})", dtype=dtype.name)
