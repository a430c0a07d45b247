"""Low-rank preconditioners for CG, built from the kernel's diagonal and ``rank`` of its columns.

Both build a factor ``F`` (n x r) with ``K ≈ F Fᵀ`` in ``O(n r²)`` (plus reading ``r`` columns):

- pivoted Cholesky (Harbrecht, Peters & Schneider 2012; Gardner et al. 2018): column ``j`` is
  the one with the largest residual diagonal ``d_i = K_ii - Σ_{l<j} F_il²``, and
  ``F[:, j] = (K[:, i] - F[:, :j] F[i, :j]ᵀ) / √d_i``;
- Nyström (Williams & Seeger 2001): ``F = C L⁻ᵀ`` with ``C = K[:, S]`` and ``L Lᵀ = K[S, S]``,
  columns ``S`` drawn uniformly at random, or the pivots of the pivoted Cholesky.

From the eigendecomposition ``F Fᵀ = U diag(λ) Uᵀ`` (thin QR of ``F``, then an ``r x r`` SVD) the
preconditioner is the Nyström preconditioner of Frangella, Tropp & Udell (2023, SIMAX 44(2)) at
shift 0, since ``alpha`` is already inside ``K``:

    P⁻¹ = λ_r U diag(λ)⁻¹ Uᵀ + (I - U Uᵀ) = I + U diag(λ_r/λ - 1) Uᵀ.

With ``E = K - F Fᵀ ⪰ 0`` and ``K ⪰ alpha·I``, the preconditioned spectrum lies in
``[alpha/2, λ_r + ‖E‖]`` (instead of ``[alpha, λ_1]``): the top ``r`` eigenvalues are deflated.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
import scipy.linalg

from ntk_sklearn.solvers._base import x64_scope
from ntk_sklearn.solvers._sharding import to_host

PRECONDITIONERS = ("nystrom", "pivoted_cholesky", None)


class LowRankPreconditioner(NamedTuple):
    """``P⁻¹ v = v + U (coef ⊙ Uᵀ v)``; ``U`` (n, r) orthonormal, ``coef = λ_r/λ - 1``."""

    U: np.ndarray
    coef: np.ndarray

    @classmethod
    def identity(cls, n: int) -> LowRankPreconditioner:
        """No preconditioning (``r = 0``)."""
        return cls(np.zeros((n, 0)), np.zeros(0))

    @classmethod
    def from_factor(cls, F: np.ndarray) -> LowRankPreconditioner:
        """The Nyström preconditioner of ``F Fᵀ`` (directions with ``λ ≤ 1e-12 λ_1`` dropped)."""
        if F.shape[1] == 0:
            return cls.identity(F.shape[0])
        Q, R = np.linalg.qr(F)
        W, s, _ = np.linalg.svd(R)
        lam = s**2
        keep = lam > 1e-12 * lam[0]
        U, lam = Q @ W[:, keep], lam[keep]
        return cls(U, lam[-1] / lam - 1.0)

    def apply(self, V: np.ndarray) -> np.ndarray:
        """``P⁻¹ V`` (NumPy; CG applies the same formula on the device)."""
        return V + self.U @ (self.coef[:, None] * (self.U.T @ V))


def _columns(K, idx) -> np.ndarray:
    """``K[:, idx]`` as float64 NumPy; a jax.Array (sharded or not) is read column by column."""
    idx = np.asarray(idx)
    if isinstance(K, np.ndarray):
        return K[:, idx].astype(np.float64)
    with x64_scope(K.dtype):
        return to_host(K[:, jax.numpy.asarray(idx)]).astype(np.float64)


def _diagonal(K) -> np.ndarray:
    if isinstance(K, np.ndarray):
        return np.diag(K).astype(np.float64)
    with x64_scope(K.dtype):
        return to_host(jax.numpy.diagonal(K)).astype(np.float64)


def pivoted_cholesky(K, rank: int, rtol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Greedy partial Cholesky ``K ≈ F Fᵀ`` of rank at most ``rank``, in ``O(n rank²)``.

    Stops early when the largest residual diagonal falls below ``rtol`` times the trace.

    Parameters
    ----------
    K : ndarray or jax.Array of shape (n, n)
        Symmetric positive semi-definite matrix; only its diagonal and ``rank`` columns are read.
    rank : int
        Maximum number of columns.
    rtol : float, default=1e-12
        Relative tolerance on the residual diagonal.

    Returns
    -------
    F : ndarray of shape (n, r), float64
        The factor, ``r ≤ rank``.
    pivots : ndarray of shape (r,)
        The columns chosen, in order.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import pivoted_cholesky
    >>> x = np.linspace(0, 1, 50)
    >>> K = np.exp(-(x[:, None] - x[None]) ** 2)
    >>> F, pivots = pivoted_cholesky(K, rank=10)
    >>> bool(np.abs(K - F @ F.T).max() < 1e-8)
    True
    """
    n = K.shape[0]
    d = _diagonal(K)
    stop = rtol * d.sum()
    F = np.zeros((n, min(rank, n)))
    pivots = []
    for j in range(F.shape[1]):
        i = int(np.argmax(d))
        if d[i] <= stop:
            break
        col = _columns(K, [i])[:, 0]
        # F[:, j] = (K[:, i] - F[:, :j] F[i, :j]) / sqrt(d_i); then d -= F[:, j]².
        F[:, j] = (col - F[:, :j] @ F[i, :j]) / np.sqrt(d[i])
        d = d - F[:, j] ** 2
        d[i] = 0.0
        pivots.append(i)
    return F[:, : len(pivots)], np.asarray(pivots, dtype=int)


def nystrom_factor(K, rank: int, columns: str = "random", random_state=0) -> np.ndarray:
    """Nyström factor ``F = K[:, S] L⁻ᵀ`` (``L Lᵀ = K[S, S]``) with ``|S| = rank``.

    ``columns="random"`` draws ``S`` uniformly without replacement; ``"pivoted"`` takes the
    pivots of :func:`pivoted_cholesky`. A tiny jitter (``1e-12`` of the trace of ``K[S, S]``,
    more if needed) keeps the ``rank x rank`` Cholesky defined when columns are collinear.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers import nystrom_factor
    >>> x = np.linspace(0, 1, 50)
    >>> K = np.exp(-(x[:, None] - x[None]) ** 2)
    >>> F = nystrom_factor(K, rank=20)
    >>> bool(np.abs(K - F @ F.T).max() < 1e-6)
    True
    """
    n = K.shape[0]
    rank = min(rank, n)
    if columns == "random":
        S = np.sort(np.random.default_rng(random_state).choice(n, rank, replace=False))
    elif columns == "pivoted":
        S = pivoted_cholesky(K, rank)[1]
    else:
        raise ValueError(f"columns must be 'random' or 'pivoted'; got {columns!r}.")
    C = _columns(K, S)
    W = C[S]
    W = 0.5 * (W + W.T)
    scale = np.trace(W) / max(len(S), 1)
    for rel in (1e-12, 1e-10, 1e-8, 1e-6):
        try:
            L = np.linalg.cholesky(W + rel * scale * np.eye(len(S)))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        raise np.linalg.LinAlgError("K[S, S] is not positive semi-definite; is K a kernel?")
    return scipy.linalg.solve_triangular(L, C.T, lower=True).T


def build_preconditioner(K, kind: str | None, rank: int, random_state=0) -> LowRankPreconditioner:
    """The preconditioner ``kind`` (one of :data:`PRECONDITIONERS`) of rank ``rank`` for ``K``."""
    n = K.shape[0]
    if kind is None or rank == 0:
        return LowRankPreconditioner.identity(n)
    if kind == "pivoted_cholesky":
        return LowRankPreconditioner.from_factor(pivoted_cholesky(K, rank)[0])
    return LowRankPreconditioner.from_factor(nystrom_factor(K, rank, "random", random_state))
