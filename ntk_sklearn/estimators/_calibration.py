"""Calibration of the classifiers' probabilities: one temperature from leave-one-out outputs.

``predict_proba`` is ``softmax(outputs / T)``; ``T`` minimises the (weighted) leave-one-out
log-loss of the training data, ``-Σ w_i log softmax(f_i⁻ / T)_{y_i} / Σ w_i`` (convex in
``β = 1/T``), searched over ``log β`` in :data:`LOG_BETA_RANGE`. The leave-one-out outputs come
from the fitted solver's dense factorization (:meth:`~ntk_sklearn.solvers.Solver.dense_subset`).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

#: Training rows on which the temperature is fitted when the solver has no dense factorization
#: (CG: a dense factorization of their kernel gives the leave-one-out outputs).
LOO_SUBSET = 2000
#: Search range of ``log(1 / temperature)``.
LOG_BETA_RANGE = (-10.0, 15.0)


def fit_temperature(loo: np.ndarray, labels: np.ndarray, weights: np.ndarray | None) -> float:
    """``T`` minimising the weighted log-loss of ``softmax(loo / T)`` at integer ``labels``."""

    def log_loss(log_beta: float) -> float:
        # -Σ w_i log softmax(β f_i⁻)_{y_i} / Σ w_i: convex in β = 1/T.
        logp = log_softmax(np.exp(log_beta) * loo, axis=1)
        return -float(np.average(logp[np.arange(len(labels)), labels], weights=weights))

    res = minimize_scalar(log_loss, bounds=LOG_BETA_RANGE, method="bounded")
    return float(np.exp(-res.x))


class _Calibration:
    """The temperature of ``predict_proba`` (a mixin of the classifiers)."""

    def _fit_temperature(self, labels: np.ndarray, w: np.ndarray | None) -> float:
        """``T`` minimising the (weighted) leave-one-out log-loss of ``softmax(f⁻ / T)``."""
        loo, rows = self._loo_outputs()
        return fit_temperature(loo, labels[rows], None if w is None else w[rows])

    def _loo_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Leave-one-out mean outputs ``(m, C)`` of training rows, and those rows' indices.

        The fitted training outputs are ``f = H y`` (``H = S⁻¹(M - α'I) A_t S``, ``M`` the
        training kernel ``S K S + α'I``, ``α' = alpha + jitter_``, ``A_t`` its gain,
        ``S = diag(√w)``). Removing ``δ_i = min(1, w_i)`` of sample ``i``'s weight (one copy
        of a sample repeated ``w_i`` times; the whole sample when ``w_i <= 1``) gives, by
        Sherman-Morrison, ``f_i⁻ = (f_i - d_i y_i) / (1 - d_i)`` with ``d_i = δ_i H_ii / w_i``.
        At ``t=None`` (``H = I - α' S⁻¹M⁻¹S``) this is exact: without weights the leave-one-out
        output of kernel ridge, ``y_i - (M⁻¹y)_i / (M⁻¹)_ii``. At finite ``t`` it is the usual
        linear-smoother approximation (removing a sample also changes the gains). With
        ``solver_ == "cg"`` (no dense factorization), those of the same model fitted on a
        random subset of ``LOO_SUBSET`` rows.
        """
        n = self.y_fit_.shape[0]
        s = np.ones(n) if self._sqrt_weight is None else self._sqrt_weight.astype(np.float64)
        z = s[:, None] * self.y_fit_.astype(np.float64)
        t, rate = self._hyper["t"], self._rate_
        # A dense factorization: the fitted one, or (CG) one of a subset of the rows.
        dense, rows = self._solver.dense_subset(LOO_SUBSET, at_any_time=t is not None, n_rows=n)
        if len(rows) < n:
            rate = rate * (s**2).sum() / (s[rows] ** 2).sum()  # lr / (C · Σ w) of the subset
        s, z = s[rows], z[rows]
        alpha = self._hyper["alpha"] + dense.jitter_
        w = s**2
        delta = np.minimum(1.0, w)
        if t is None:
            chol = dense.chol_.astype(np.float64)
            inv_l = solve_triangular(chol, np.eye(len(rows)), lower=True)
            m_inv_z = inv_l.T @ (inv_l @ z)
            m_inv_diag = np.einsum("ij,ij->j", inv_l, inv_l)[:, None]  # Σ_j (L⁻¹)_ji²
            # δ = w: y_i - (M⁻¹z)_i / (s_i (M⁻¹)_ii), free of α (exact also at alpha = 0);
            # else (f_i - d_i y_i)/(1 - d_i) with 1 - H_ii = α'(M⁻¹)_ii, times w_i / w_i.
            whole = (z - m_inv_z / m_inv_diag) / s[:, None]
            w_, d_ = w[:, None], delta[:, None]
            use_whole = d_ >= w_
            # Where the whole sample is left out the denominator may be 0 (alpha' = 0): not used.
            denominator = np.where(use_whole, 1.0, s[:, None] * (w_ - d_ + d_ * alpha * m_inv_diag))
            part = (
                (w_ - d_) * z - w_ * alpha * m_inv_z + d_ * alpha * m_inv_diag * z
            ) / denominator
            return np.where(use_whole, whole, part), rows
        evals, evecs = dense.evals_.astype(np.float64), dense.evecs_.astype(np.float64)
        x = rate * t * evals
        # g_t(λ) = (1 - e^{-ηtλ})/λ on the range; h(λ) = (λ - α)·g_t(λ), the hat's eigenvalues.
        gain = np.where(evals > 0, -np.expm1(-x) / np.where(evals > 0, evals, 1.0), 0.0)
        h = np.maximum(evals - alpha, 0.0) * gain
        fitted = evecs @ (h[:, None] * (evecs.T @ z)) / s[:, None]
        d = (delta / w * np.einsum("ij,j,ij->i", evecs, h, evecs))[:, None]
        return (fitted - d * z / s[:, None]) / (1.0 - d), rows
