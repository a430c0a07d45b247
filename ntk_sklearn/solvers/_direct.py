"""Direct solvers: one dense factorization of the training kernel, ``O(n³)`` once.

``CholeskySolver``: ``K = L Lᵀ`` for ``A_∞ = K⁻¹`` only. ``EighSolver``: ``K = V diag(λ) Vᵀ`` and
``A_t = V diag(g_t(λ)) Vᵀ`` with ``g_t(λ) = (1 - e^{-r t λ}) / λ`` (:func:`dynamics.gain`), for any
``t`` and many ``t`` from one projection.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np

from ntk_sklearn import dynamics
from ntk_sklearn.solvers._base import (
    Solver,
    check_kernel,
    check_rate,
    check_rhs,
    check_time,
    x64_scope,
)

#: Jitter tried, relative to the mean diagonal, when the training kernel is singular.
JITTERS = (1e-10, 1e-8, 1e-6)


def _result_dtype(k_dtype, b_dtype) -> np.dtype:
    return np.result_type(k_dtype, b_dtype, np.float32)


class CholeskySolver(Solver):
    """``A_∞ B = K⁻¹ B`` by a Cholesky factor ``K = L Lᵀ``.

    A kernel that is not numerically positive definite gets jitter on its diagonal (relative to
    its mean diagonal, :data:`JITTERS`) with a ``RuntimeWarning``, or a ``LinAlgError`` that says to
    raise ``alpha``. Fitted state: ``chol_`` (NumPy, lower), ``jitter_`` (absolute, 0 if none).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import CholeskySolver
    >>> K = np.array([[2.0, 1.0], [1.0, 2.0]])
    >>> CholeskySolver().fit(K).apply(np.array([3.0, 3.0]))
    array([1., 1.])
    """

    name = "cholesky"

    def fit(self, K, rate: float = 1.0) -> CholeskySolver:
        K = check_kernel(K)
        self.rate_ = check_rate(rate)
        self.dtype_ = np.dtype(K.dtype)
        with x64_scope(self.dtype_):
            k = jnp.asarray(K)
            chol = dynamics.cholesky(k)
            self.jitter_ = 0.0
            if not bool(jnp.all(jnp.isfinite(chol))):
                chol = self._jittered(k)
            self.chol_ = np.asarray(chol)
        self.n_ = K.shape[0]
        return self

    def _jittered(self, k):
        """Cholesky of ``K + jitter·I`` for the smallest jitter of :data:`JITTERS` that works."""
        scale = float(jnp.mean(jnp.diag(k)))
        for rel in JITTERS:
            chol = dynamics.cholesky(dynamics.add_diagonal(k, rel * scale))
            if bool(jnp.all(jnp.isfinite(chol))):
                warnings.warn(
                    "The training kernel (alpha included) is not positive definite (duplicate "
                    f"or nearly collinear samples?); added {rel * scale:.2e} (jitter) to its "
                    "diagonal. Increase alpha to silence this warning.",
                    RuntimeWarning,
                    stacklevel=4,
                )
                self.jitter_ = rel * scale
                return chol
        raise np.linalg.LinAlgError(
            "The training kernel (alpha included) is not positive definite, even with jitter up "
            f"to {JITTERS[-1] * scale:.2e} on its diagonal. Increase alpha (e.g. "
            f"alpha={1e-4 * scale:.2e}), remove duplicate samples, or use float64."
        )

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


class EighSolver(Solver):
    """``A_t B = V diag(g_t(λ)) Vᵀ B`` from an eigendecomposition ``K = V diag(λ) Vᵀ``.

    Any ``t`` in ``[0, inf]``; ``g_t(0) = r t`` (the null space of a singular kernel keeps
    growing linearly, as under gradient flow), ``g_∞(λ) = 1/λ``. :meth:`apply_times` projects
    ``B`` once and applies many times with one product each. Fitted state: ``evals_``,
    ``evecs_`` (NumPy; eigenvalues that rounding makes negative are set to 0).

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

    def fit(self, K, rate: float = 1.0) -> EighSolver:
        K = check_kernel(K)
        self.rate_ = check_rate(rate)
        self.dtype_ = np.dtype(K.dtype)
        with x64_scope(self.dtype_):
            spec = dynamics.spectrum(jnp.asarray(K))
            self.evals_, self.evecs_ = np.asarray(spec.evals), np.asarray(spec.evecs)
        self.n_ = K.shape[0]
        return self

    def apply(self, B, t: float | None = None) -> np.ndarray:
        return self.apply_times(B, [np.inf if check_time(t) is None else t])[0]

    def apply_times(self, B, times) -> np.ndarray:
        self._check_fitted()
        times = [check_time(t) for t in np.atleast_1d(np.asarray(times, dtype=object))]
        B2, was_1d = check_rhs(B, self.n_)
        dtype = _result_dtype(self.dtype_, B2.dtype)
        with x64_scope(dtype):
            evals, evecs = jnp.asarray(self.evals_, dtype), jnp.asarray(self.evecs_, dtype)
            tt = jnp.asarray([np.inf if t is None else t for t in times], dtype)
            g = dynamics.gain(evals, tt, self.rate_)  # (T, n)
            # A_t B = V (g_t ⊙ Vᵀ B): one projection for all times.
            proj = evecs.T @ jnp.asarray(B2, dtype)
            out = np.asarray(jnp.einsum("ij,tj,jm->tim", evecs, g, proj))
        self.n_iter_, self.residual_ = 0, None
        return out[:, :, 0] if was_1d else out
