"""The solver interface, input validation, and the memory plan shared by every solver.

A solver applies ``A_t = K⁻¹ (I - e^{-r t K})`` (``A_∞ = K⁻¹``) to a block of columns, where
``K`` is the training kernel (``alpha`` already on its diagonal) and ``r = learning_rate / y.size``
(neural-tangents' time convention, see :mod:`ntk_sklearn.dynamics`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _memory

#: Names accepted by :func:`solver_memory` and returned by :func:`choose_solver`.
SOLVER_NAMES = ("cholesky", "eigh", "cg")
#: Above this many training samples, ``t=None`` without covariance goes to CG (see
#: ``benchmarks/bench_solvers.py``: on 2 cores CG with a rank-100 preconditioner on the ReLU NTK
#: beats Cholesky from a few thousand samples on).
CG_MIN_N = 5000
#: Above this many training samples, a finite ``t`` without covariance goes to CG + Lanczos
#: (an eigendecomposition costs about ten Cholesky factorizations).
LANCZOS_MIN_N = 3000
#: Bytes of the float64 row block that CG converts a float32 kernel into per product.
ROW_BLOCK_BYTES = 64 * 2**20


def x64_scope(dtype) -> jax.enable_x64:
    """``jax.enable_x64`` scoped to the precision of ``dtype`` (never JAX's global config)."""
    return jax.enable_x64(np.dtype(dtype) == np.float64)


def check_kernel(K) -> np.ndarray | jax.Array:
    """Validate a training kernel: square, 2-D, float32/float64, finite. Returned unchanged.

    Symmetry is not checked (it would cost a pass over ``K``); only the lower triangle is read
    by the Cholesky solver, the whole matrix by the others.
    """
    if not isinstance(K, (np.ndarray, jax.Array)):
        raise TypeError(
            f"K must be a NumPy array or a jax.Array (the training kernel); got {type(K).__name__}."
        )
    if K.ndim != 2 or K.shape[0] != K.shape[1] or K.shape[0] == 0:
        raise ValueError(f"K must be a non-empty square (n, n) matrix; got shape {K.shape}.")
    if np.dtype(K.dtype) not in (np.float32, np.float64):
        raise TypeError(f"K must be float32 or float64; got {K.dtype}. Convert it first.")
    finite = np.isfinite(K).all() if isinstance(K, np.ndarray) else jnp.isfinite(K).all()
    if not bool(finite):
        raise ValueError("K contains NaN or inf; check the kernel inputs (and alpha).")
    return K


def check_rate(rate) -> float:
    """``rate = learning_rate / y.size``: a finite positive number."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.number)):
        raise TypeError(f"rate must be a positive number (learning_rate / y.size); got {rate!r}.")
    rate = float(rate)
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"rate must be finite and > 0 (learning_rate / y.size); got {rate}.")
    return rate


def check_time(t) -> float | None:
    """A training time in ``[0, inf]``; ``None`` or ``inf`` mean converged and return ``None``."""
    if t is None:
        return None
    if isinstance(t, bool) or not isinstance(t, (int, float, np.number)):
        raise TypeError(f"t must be a positive number, np.inf or None; got {t!r}.")
    t = float(t)
    if math.isnan(t) or t < 0:
        raise ValueError(f"t must be >= 0 (np.inf or None for the converged limit); got {t}.")
    return None if math.isinf(t) else t


def check_rhs(B, n: int) -> tuple[np.ndarray | jax.Array, bool]:
    """Right-hand sides as a 2-D ``(n, m)`` block; also says whether ``B`` was 1-D."""
    if not isinstance(B, (np.ndarray, jax.Array)):
        B = np.asarray(B)
    if B.ndim not in (1, 2) or B.shape[0] != n:
        raise ValueError(f"B must have shape ({n},) or ({n}, m) to match K; got {B.shape}.")
    if not np.issubdtype(B.dtype, np.floating):
        raise TypeError(f"B must be a floating array; got {B.dtype}.")
    finite = np.isfinite(B).all() if isinstance(B, np.ndarray) else jnp.isfinite(B).all()
    if not bool(finite):
        raise ValueError("B contains NaN or inf: the solution would be meaningless.")
    return (B[:, None] if B.ndim == 1 else B), B.ndim == 1


class Solver(ABC):
    """Applies ``A_t = K⁻¹ (I - e^{-r t K})`` of one training kernel to blocks of columns.

    The one interface of the linear algebra of a fit: :meth:`apply` (``f(K) B`` at a time
    ``t``), :meth:`apply_times` (many times), :meth:`solve` (``K⁻¹ B``), :meth:`evidence_terms`
    (``Bᵀ K⁻¹ B`` and ``log det K``, for the log marginal likelihood), :meth:`at_any_time`
    (a solver of the same kernel for every ``t``) and :meth:`dense_on` (a direct factorization
    of the kernel on a subset of rows). Jitter follows the one policy of
    :mod:`ntk_sklearn.solvers._jitter`.

    Attributes after ``fit``: ``n_`` (samples), ``dtype_`` (the kernel's dtype), ``rate_``,
    ``jitter_`` (added to the diagonal, 0 if none); after ``apply``: ``n_iter_`` (iterations of
    an iterative solver, 0 for a direct one) and ``residual_`` (largest relative residual over
    the columns, or the iterative error estimate). Fitted arrays are NumPy, so a fitted solver
    pickles.
    """

    name: str = "abstract"
    #: Whether ``fit`` factorizes ``K`` densely (``O(n³)``): then the evidence costs no more.
    dense: bool = False
    #: Whether the kernel is best given as one jax.Array row-sharded over every device (the
    #: solver then computes where the rows are), rather than as one host array.
    row_sharded: bool = False
    #: ``alpha`` on the kernel's diagonal, named in the jitter messages (``None``: unknown).
    alpha: float | None = None
    jitter_: float = 0.0

    @abstractmethod
    def fit(self, K, rate: float = 1.0) -> Solver:
        """Prepare ``A_t`` for the kernel ``K`` (n, n) and ``rate = learning_rate / y.size``."""

    @abstractmethod
    def apply(self, B, t: float | None = None) -> np.ndarray:
        """``A_t B`` for ``B`` of shape (n,) or (n, m); ``t`` None or inf means ``K⁻¹ B``."""

    def apply_times(self, B, times) -> np.ndarray:
        """``A_t B`` for each ``t`` of ``times``: shape ``(len(times), n, m)`` (or ``(T, n)``)."""
        return np.stack([self.apply(B, t) for t in times])

    def fitted_state(self) -> dict:
        """The fitted arrays an estimator exposes, by their attribute names there."""
        return {}

    def fit_iterations(self) -> int:
        """Work of the fit in iterations: 1 for one factorization, else the last ``n_iter_``."""
        return 1 if self.dense else int(getattr(self, "n_iter_", 0))

    def memory_bytes(self, n: int, m: int, dtype) -> int:
        """Bytes this solver allocates beyond the kernel (:func:`solver_memory`)."""
        return solver_memory(n, m, dtype, self.name)

    def solve(self, B) -> np.ndarray:
        """``K⁻¹ B`` (``A_∞ B``)."""
        return self.apply(B, None)

    def at_any_time(self) -> Solver:
        """A solver of the same kernel (jitter included) that applies ``A_t`` at every ``t``."""
        return self

    def evidence_terms(self, B) -> tuple[np.ndarray, float]:
        """``diag(Bᵀ (K + jitter·I)⁻¹ B)`` per column and ``log det(K + jitter·I)``, in float64.

        By default from a jittered Cholesky factor of the kernel (computed on each call, with
        the jitter policy's warning): direct solvers override it with their own factor.
        """
        from ntk_sklearn.solvers._direct import CholeskySolver
        from ntk_sklearn.solvers._sharding import to_host

        self._check_fitted()
        kernel = to_host(self.kernel_)[: self.n_, : self.n_]
        return CholeskySolver(alpha=self.alpha).fit(kernel, self.rate_).evidence_terms(B)

    def dense_subset(
        self, max_rows: int, at_any_time: bool, n_rows: int | None = None
    ) -> tuple[Solver, np.ndarray]:
        """A direct factorization on at most ``max_rows`` rows of the kernel, and those rows.

        Direct solvers return themselves on all rows (``at_any_time``: one that applies every
        ``t``); an iterative one factorizes (in float64, jitter as in a fit) the block of a
        random subset of ``max_rows`` of the first ``n_rows`` rows (seed 0; default all rows:
        the others are padding), or of all of them when there are fewer.
        """
        from ntk_sklearn.solvers._direct import CholeskySolver, EighSolver
        from ntk_sklearn.solvers._sharding import to_host

        self._check_fitted()
        n = self.n_ if n_rows is None else n_rows
        rows = np.arange(n)
        if self.dense:
            return (self.at_any_time() if at_any_time else self), rows
        if n > max_rows:
            rows = np.sort(np.random.default_rng(0).choice(n, max_rows, replace=False))
        # The kernel may be a jax.Array sharded over devices (and processes).
        block = to_host(self.kernel_[np.ix_(rows, rows)]).astype(np.float64)
        if at_any_time:
            return EighSolver(null_space="drop", alpha=self.alpha).fit(block, self.rate_), rows
        return CholeskySolver(alpha=self.alpha).fit(block, self.rate_), rows

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_"):
            raise RuntimeError(f"This {type(self).__name__} is not fitted; call fit(K, rate).")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._params().items())
        return f"{type(self).__name__}({params})"

    def _params(self) -> dict:
        return {}


def _itemsize(dtype) -> int:
    itemsize = np.dtype(dtype).itemsize
    if itemsize not in (4, 8):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}.")
    return itemsize


def solver_memory(n: int, m: int, dtype, name: str, rank: int = 100) -> int:
    """Bytes a solver allocates beyond the kernel itself, for a fit's memory plan.

    Parameters
    ----------
    n : int
        Training samples (the kernel is ``n x n``; it is not counted).
    m : int
        Right-hand sides applied at once (targets, or test points for a covariance).
    dtype : str or numpy.dtype
        The kernel's dtype, ``"float32"`` or ``"float64"``.
    name : {"cholesky", "eigh", "cg"}
        The solver.
    rank : int, default=100
        Preconditioner rank (``"cg"`` only).

    Returns
    -------
    int
        Cholesky: its factor plus a jittered copy; eigh: eigenvectors plus LAPACK's workspace
        (about ``2 n²``); CG: its float64 vectors, the preconditioner and one float64 row block.

    Examples
    --------
    >>> from ntk_sklearn.solvers import solver_memory
    >>> solver_memory(10_000, 10, "float64", "cholesky") / 2**30
    1.49...
    >>> solver_memory(10_000, 10, "float64", "cg") < 2**27
    True
    """
    itemsize = _itemsize(dtype)
    if name == "cholesky":
        return (2 * n * n + n * m) * itemsize
    if name == "eigh":
        return (3 * n * n + 2 * n * m) * itemsize
    if name == "cg":
        block = min(n * n * 8, ROW_BLOCK_BYTES) if itemsize == 4 else 0
        return (2 * n * rank + 8 * n * m) * 8 + block
    raise ValueError(f"name must be one of {SOLVER_NAMES}; got {name!r}.")


def choose_solver(
    n: int,
    n_targets: int,
    t: float | None,
    want_cov: bool,
    dtype="float64",
    available_bytes: int | None = None,
) -> str:
    """Pick ``"cholesky"``, ``"eigh"`` or ``"cg"`` for a fit.

    A direct factorization is used whenever it fits in memory and either a covariance is wanted
    (``A_t`` then applies to one column per test point: a factorization amortizes) or ``n`` is
    small (below :data:`CG_MIN_N` for ``t=None``, :data:`LANCZOS_MIN_N` for finite ``t``).
    Otherwise CG (``t=None``) or CG's Lanczos (finite ``t``), which need only ``O(n)`` memory per
    column besides the kernel.

    Parameters
    ----------
    n : int
        Training samples.
    n_targets : int
        Columns of the targets ``Y``.
    t : float or None
        Training time; ``None`` or ``inf`` for converged.
    want_cov : bool
        Whether covariances will be predicted.
    dtype : str or numpy.dtype, default="float64"
        The kernel's dtype.
    available_bytes : int or None, default=None
        Memory budget; ``None`` asks the operating system.

    Returns
    -------
    str
        One of :data:`SOLVER_NAMES`.

    Examples
    --------
    >>> from ntk_sklearn.solvers import choose_solver
    >>> choose_solver(1_000, 10, None, want_cov=False, available_bytes=2**34)
    'cholesky'
    >>> choose_solver(1_000, 10, 100.0, want_cov=True, available_bytes=2**34)
    'eigh'
    >>> choose_solver(50_000, 10, None, want_cov=False, available_bytes=2**34)
    'cg'
    """
    t = check_time(t)
    direct = "cholesky" if t is None else "eigh"
    if available_bytes is None:
        available_bytes = _memory.available_memory()
    fits = available_bytes is None or solver_memory(n, n_targets, dtype, direct) <= available_bytes
    if not fits:
        return "cg"
    if want_cov:
        return direct
    return direct if n < (CG_MIN_N if t is None else LANCZOS_MIN_N) else "cg"
