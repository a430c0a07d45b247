"""Direct solvers: one dense factorization of the training kernel, ``O(n³)`` once.

``CholeskySolver``: ``K = L Lᵀ`` for ``A_∞ = K⁻¹`` only. ``EighSolver``: ``K = V diag(λ) Vᵀ`` and
``A_t = V diag(g_t(λ)) Vᵀ`` with ``g_t(λ) = (1 - e^{-r t λ}) / λ`` (:func:`dynamics.gain`), for any
``t`` and many ``t`` from one projection.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from scipy.linalg import solve_triangular

from ntk_sklearn import dynamics
from ntk_sklearn.solvers._base import (
    Solver,
    check_kernel,
    check_rate,
    check_rhs,
    check_time,
    x64_scope,
)
from ntk_sklearn.solvers._jitter import cholesky_with_jitter


def _host_view(K) -> np.ndarray:
    """``K`` as a NumPy array: itself, or a view of a jax.Array's host memory (CPU: no copy)."""
    return K if isinstance(K, np.ndarray) else np.asarray(K)


def _result_dtype(k_dtype, b_dtype) -> np.dtype:
    return np.result_type(k_dtype, b_dtype, np.float32)


class CholeskySolver(Solver):
    """``A_∞ B = K⁻¹ B`` by a Cholesky factor ``K = L Lᵀ``.

    A kernel that is not numerically positive definite (a failed factorization, or a pivot
    below the rounding error) gets jitter on its diagonal with a ``RuntimeWarning``, or a
    ``LinAlgError`` that says to raise ``alpha`` (:mod:`~ntk_sklearn.solvers._jitter`).

    Parameters
    ----------
    alpha : float or None, default=None
        The ``alpha`` already on the kernel's diagonal, named in those messages.

    Attributes
    ----------
    chol_ : ndarray of shape (n, n)
        The lower factor of ``K + jitter_·I``.
    jitter_ : float
        Added to the diagonal (absolute), 0 if none.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import CholeskySolver
    >>> K = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> CholeskySolver().fit(K).apply(np.array([3.0, 3.0]))
    array([1., 1.])
    """

    name = "cholesky"
    dense = True

    def __init__(self, alpha: float | None = None):
        self.alpha = alpha

    def _params(self) -> dict:
        return {} if self.alpha is None else {"alpha": self.alpha}

    def fit(self, K, rate: float = 1.0) -> CholeskySolver:
        K = check_kernel(K)
        self.rate_ = check_rate(rate)
        self.dtype_ = np.dtype(K.dtype)
        self.kernel_ = _host_view(K)  # for at_any_time and the evidence; no copy
        with x64_scope(self.dtype_):
            chol, self.jitter_ = cholesky_with_jitter(
                jnp.asarray(K), self.alpha, float32_hint=self.dtype_ == np.float32
            )
            self.chol_ = np.asarray(chol)
        self.n_ = K.shape[0]
        return self

    def apply(self, B, t: float | None = None) -> np.ndarray:
        self._check_fitted()
        if check_time(t) is not None:
            raise ValueError(
                f"CholeskySolver applies A_t only at t=None (or inf); got t={t}. Use EighSolver "
                "or CGSolver for a finite training time."
            )
        B2, was_1d = check_rhs(B, self.n_)
        dtype = _result_dtype(self.dtype_, B2.dtype)
        with x64_scope(dtype):
            out = dynamics.cho_apply(jnp.asarray(self.chol_, dtype), jnp.asarray(B2, dtype))
            out = np.asarray(out)
        self.n_iter_, self.residual_ = 0, None
        return out[:, 0] if was_1d else out

    def fitted_state(self) -> dict:
        return {"chol_": self.chol_, "train_kernel_": self.kernel_}

    def at_any_time(self) -> EighSolver:
        """An :class:`EighSolver` of ``K + jitter_·I`` (null space dropped, as in a fit)."""
        self._check_fitted()
        with x64_scope(self.dtype_):
            kernel = dynamics.add_diagonal(jnp.asarray(self.kernel_), self.jitter_)
            kernel = np.asarray(kernel)
        return EighSolver(null_space="drop", alpha=self.alpha).fit(kernel, self.rate_)

    def evidence_terms(self, B) -> tuple[np.ndarray, float]:
        # Bᵀ (L Lᵀ)⁻¹ B = |L⁻¹ B|²  and  log det K = 2 Σ log L_ii   (in float64)
        self._check_fitted()
        chol = self.chol_.astype(np.float64, copy=False)
        z = solve_triangular(chol, np.asarray(B, np.float64), lower=True)
        return np.sum(z * z, axis=0), 2.0 * float(np.sum(np.log(np.diag(chol))))


class EighSolver(Solver):
    """``A_t B = V diag(g_t(λ)) Vᵀ B`` from an eigendecomposition ``K = V diag(λ) Vᵀ``.

    Any ``t`` in ``[0, inf]``; ``g_∞(λ) = 1/λ``. :meth:`apply_times` projects ``B`` once and
    applies many times with one product each. Eigenvalues that rounding makes negative are set
    to 0 (:func:`ntk_sklearn.dynamics.spectrum`: those below ``n·eps·λ_max``).

    Parameters
    ----------
    null_space : {"grow", "drop"}, default="grow"
        ``"grow"``: ``g_t(0) = r t`` on the null space of a singular kernel, which keeps
        growing linearly as under gradient flow; ``"drop"``: its components are dropped (the
        estimators' choice: they are rounding noise of test kernels that vanish there, see
        :mod:`ntk_sklearn.dynamics`).
    alpha : float or None, default=None
        The ``alpha`` on the kernel's diagonal, named in jitter messages of the evidence.

    Attributes
    ----------
    evals_, evecs_ : ndarray
        The eigendecomposition (NumPy).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import EighSolver
    >>> K = np.diag([1.0, 4.0])
    >>> solver = EighSolver().fit(K, rate=0.5)
    >>> solver.apply(np.array([1.0, 1.0]), t=None)
    array([1.  , 0.25])
    >>> np.round(solver.apply(np.array([1.0, 1.0]), t=2.0), 4)    # (1 - e^{-0.5·2·λ}) / λ
    array([0.6321, 0.2454])
    """

    name = "eigh"
    dense = True

    def __init__(self, null_space: str = "grow", alpha: float | None = None):
        if null_space not in ("grow", "drop"):
            raise ValueError(f"null_space must be 'grow' or 'drop'; got {null_space!r}.")
        self.null_space = null_space
        self.alpha = alpha

    def _params(self) -> dict:
        return {"null_space": self.null_space} if self.null_space != "grow" else {}

    def fit(self, K, rate: float = 1.0) -> EighSolver:
        K = check_kernel(K)
        self.rate_ = check_rate(rate)
        self.dtype_ = np.dtype(K.dtype)
        self.kernel_ = _host_view(K)  # for the evidence; no copy
        with x64_scope(self.dtype_):
            spec = dynamics.spectrum(jnp.asarray(K))
            self.evals_, self.evecs_ = np.asarray(spec.evals), np.asarray(spec.evecs)
        self.n_ = K.shape[0]
        return self

    def fitted_state(self) -> dict:
        return {"evals_": self.evals_, "evecs_": self.evecs_, "train_kernel_": self.kernel_}

    def apply(self, B, t: float | None = None) -> np.ndarray:
        return self.apply_times(B, [np.inf if check_time(t) is None else t])[0]

    def apply_times(self, B, times) -> np.ndarray:
        self._check_fitted()
        times = [check_time(t) for t in np.atleast_1d(np.asarray(times, dtype=object))]
        B2, was_1d = check_rhs(B, self.n_)
        dtype = _result_dtype(self.dtype_, B2.dtype)
        with x64_scope(dtype):
            spec = dynamics.Spectrum(
                jnp.asarray(self.evals_, dtype), jnp.asarray(self.evecs_, dtype)
            )
            tt = jnp.asarray([np.inf if t is None else t for t in times], dtype)
            g = dynamics.gain(spec.evals, tt, self.rate_)  # (T, n)
            if self.null_space == "drop":
                g = dynamics.range_gain(spec, g)
            # A_t B = V (g_t ⊙ Vᵀ B): one projection for all times.
            proj = spec.evecs.T @ jnp.asarray(B2, dtype)
            out = np.asarray(jnp.einsum("ij,tj,jm->tim", spec.evecs, g, proj))
        self.n_iter_, self.residual_ = 0, None
        return out[:, :, 0] if was_1d else out
