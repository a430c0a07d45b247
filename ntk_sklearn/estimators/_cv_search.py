"""The numerics of the CV estimators: every ``alpha`` and ``t`` from one factorization per fold.

Notation as in :mod:`ntk_sklearn.dynamics` and :mod:`ntk_sklearn.estimators._fit`: ``K`` the
kernel of the dynamics (NTK or NNGP) between a fold's training rows, ``S = diag(√w)`` their
sample weights, ``G = S K S``, ``M = G + αI``, ``z`` the fold's (normalised) targets and ``r``
the rate ``learning_rate / (n_targets · Σw)``. The fitted mean at new rows is
``K_* S A_t(M) S z`` with ``A_t(M) = V diag(g_t(λ + α)) Vᵀ`` where ``G = V diag(λ) Vᵀ``: one
eigendecomposition of ``G`` serves every ``α`` (``M`` has the same eigenvectors, eigenvalues
shifted by ``α``) and every ``t`` (the gains ``g_t``). With the projections
``P = K_* S V`` and ``c = Vᵀ S z`` computed once per fold, a candidate costs
``O(n_val · n_train · n_targets)``.

Closed-form leave-one-out (``t = ∞``): removing ``δ_i = min(1, w_i)`` of sample ``i``'s weight
(one copy of a sample repeated ``w_i`` times; the whole sample when ``w_i <= 1``) changes the
fitted output ``f = H z`` (``H = S⁻¹(I - α M⁻¹)S``) at ``i`` to, by Sherman-Morrison on the
weights (as in ``_KernelClassifier._loo_outputs``),

    f_i⁻ = (f_i - d_i z_i) / (1 - d_i),   d_i = δ_i H_ii / w_i,   H_ii = 1 - α (M⁻¹)_ii,

which for ``δ_i = w_i`` is ``z_i - (M⁻¹ S z)_i / (s_i (M⁻¹)_ii)`` (free of ``α``). Both need only
``diag(M⁻¹) = (V ⊙ V) (1 / (λ + α))`` and ``M⁻¹ S z``: ``O(n²)`` per ``α``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import FitFailedWarning

from ntk_sklearn import _warnings, dynamics
from ntk_sklearn.solvers._jitter import eigenvalue_jitter


class FoldSpectrum(NamedTuple):
    """``G = V diag(λ) Vᵀ`` of one fold's weighted training kernel (no ``α``)."""

    evals: np.ndarray
    evecs: np.ndarray


def spectrum(g: np.ndarray) -> FoldSpectrum:
    """Eigendecomposition of the symmetric ``G`` in its own dtype (under the caller's scope)."""
    evals, evecs = jnp.linalg.eigh(jnp.asarray(g))
    return FoldSpectrum(np.asarray(evals), np.asarray(evecs))


def gains(spec: FoldSpectrum, alpha: float, ts, rate: float) -> np.ndarray:
    """``g_t(λ + α)`` on the range of ``M`` for each ``t`` in ``ts``: shape ``(len(ts), n)``.

    ``t = None`` (converged) is ``1 / (λ + α + jitter)`` as the Cholesky factor of a fit gives;
    finite ``t`` follows :func:`ntk_sklearn.dynamics.spectrum`: eigenvalues of ``M`` below
    ``n·eps·λ_max`` are the null space, whose components are dropped.
    """
    evals_m = spec.evals + alpha
    n, eps = evals_m.shape[0], np.finfo(evals_m.dtype).eps
    rows = []
    for t in ts:
        if t is None:
            rows.append(1.0 / (evals_m + eigenvalue_jitter(evals_m, alpha)))
            continue
        tol = n * eps * np.max(evals_m)
        ranged = np.where(evals_m < tol, 0.0, evals_m).astype(evals_m.dtype)
        g = dynamics.gain(jnp.asarray(ranged), jnp.asarray([t], ranged.dtype), rate)[0]
        rows.append(np.asarray(dynamics.range_gain(dynamics.Spectrum(ranged, None), g)))
    return np.stack(rows)


def fold_means(
    spec: FoldSpectrum,
    k_cross: np.ndarray,
    z: np.ndarray,
    s: np.ndarray | None,
    alphas,
    ts,
    rate: float,
) -> np.ndarray:
    """Mean outputs ``K_* S A_t S z`` for every ``α`` and ``t``: ``(n_alphas, n_ts, n_val, k)``.

    An ``α`` at which the fold's kernel is singular beyond any jitter (a fit would raise) gives
    NaN outputs, with :func:`failed_fit`'s warning.
    """
    proj = k_cross if s is None else k_cross * s[None, :]
    proj = jnp.asarray(proj) @ jnp.asarray(spec.evecs)
    coef = jnp.asarray(spec.evecs).T @ jnp.asarray(z if s is None else s[:, None] * z)
    out = []
    for alpha in alphas:
        try:
            g = jnp.asarray(gains(spec, alpha, ts, rate))
        except np.linalg.LinAlgError as error:
            out.append(failed_fit(alpha, error, (len(ts), proj.shape[0], coef.shape[1])))
            continue
        out.append(np.asarray(jnp.einsum("ij,tj,jk->tik", proj, g, coef)))
    return np.stack(out)


def failed_fit(alpha: float, error: Exception, shape: tuple[int, ...]) -> np.ndarray:
    """NaN outputs of a candidate whose fit fails, with a ``FitFailedWarning``: as
    ``GridSearchCV``'s ``error_score=np.nan``, it scores NaN on the fold and ranks last."""
    _warnings.warn(f"alpha={alpha:.3g}: {error} It scores NaN.", FitFailedWarning)
    return np.full(shape, np.nan)


def loo_outputs(
    spec: FoldSpectrum,
    z: np.ndarray,
    s: np.ndarray | None,
    alpha: float,
    t: float | None,
    rate: float,
) -> np.ndarray:
    """Leave-one-unit-of-weight-out outputs ``f_i⁻`` of every training row: ``(n, k)``.

    Exact at ``t=None`` (see the module docstring; jitter as a fit adds it). At finite ``t``
    the linear-smoother approximation ``(f_i - d_i z_i) / (1 - d_i)`` with
    ``H = S⁻¹ (M - αI) A_t S`` that ``_KernelClassifier`` uses for its temperature.
    Computed in float64.
    """
    evals = spec.evals.astype(np.float64)
    evecs = spec.evecs.astype(np.float64)
    n = evals.shape[0]
    s = np.ones(n) if s is None else s.astype(np.float64)
    w = s**2
    delta = np.minimum(1.0, w)[:, None]
    w = w[:, None]
    u = s[:, None] * z.astype(np.float64)
    if t is None:
        evals_m = evals + alpha
        alpha = alpha + eigenvalue_jitter(evals_m, alpha)
        inv = 1.0 / (evals + alpha)
        m_inv_diag = ((evecs * evecs) @ inv)[:, None]  # (M⁻¹)_ii
        m_inv_u = evecs @ (inv[:, None] * (evecs.T @ u))  # M⁻¹ S z
        whole = (u - m_inv_u / m_inv_diag) / s[:, None]
        part = ((w - delta) * u - w * alpha * m_inv_u + delta * alpha * m_inv_diag * u) / (
            s[:, None] * (w - delta + delta * alpha * m_inv_diag)
        )
        return np.where(delta >= w, whole, part)
    evals_m = evals + alpha
    tol = n * np.finfo(spec.evals.dtype).eps * np.max(evals_m)
    evals_m = np.where(evals_m < tol, 0.0, evals_m)
    x = rate * t * evals_m
    g = np.where(evals_m > 0, -np.expm1(-x) / np.where(evals_m > 0, evals_m, 1.0), 0.0)
    h = np.maximum(evals_m - alpha, 0.0) * g  # eigenvalues of the hat S H S⁻¹
    fitted = evecs @ (h[:, None] * (evecs.T @ u)) / s[:, None]
    d = delta / w * ((evecs * evecs) @ h)[:, None]
    return (fitted - d * u / s[:, None]) / (1.0 - d)


def cg_means(
    g: np.ndarray,
    k_cross: np.ndarray,
    z: np.ndarray,
    s: np.ndarray | None,
    alphas,
    ts,
    rate: float,
    make_solver,
) -> np.ndarray:
    """As :func:`fold_means`, with one CG/Lanczos solver per ``α`` (approximate, to its ``tol``).

    ``make_solver()`` returns an unfitted :class:`~ntk_sklearn.solvers.CGSolver`.
    """
    u = z if s is None else s[:, None] * z
    cross = k_cross if s is None else k_cross * s[None, :]
    out = []
    for alpha in alphas:
        m = g.copy()
        m[np.diag_indices_from(m)] += alpha
        solver = make_solver().fit(m, rate)
        out.append(np.stack([cross @ solver.apply(u, t) for t in ts]))
    return np.stack(out)
