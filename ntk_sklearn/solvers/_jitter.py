"""The one jitter policy: when a training kernel is singular, and what is added to it.

A kernel ``K`` (``alpha`` on its diagonal) is numerically singular when its Cholesky
factorization fails or a pivot is below the rounding error, ``L_ii² < n·eps·s`` (``s`` the mean
diagonal, or 1 for an all-zero kernel): pivots bound the smallest eigenvalue from above
(``λ_min ≤ min L_ii²``). Then the smallest jitter of :func:`jitter_ladder` that passes the same
test is added to the diagonal, with a ``RuntimeWarning``; a ``LinAlgError`` with advice when
none does. :func:`eigenvalue_jitter` applies the same rule to known eigenvalues (the smallest
eigenvalue standing for the smallest pivot).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _warnings, dynamics

#: Jitter tried, relative to the mean diagonal (each at least ``10·n·eps``, the rounding error of
#: the Cholesky factorization).
JITTERS = (1e-10, 1e-8, 1e-6)


def kernel_scale(mean_diag: float) -> float:
    """The scale of the jitter: the mean diagonal, or 1 for a kernel with none (all zero)."""
    return mean_diag if mean_diag > 0 else 1.0


def jitter_ladder(n: int, eps: float, scale: float) -> list[float]:
    """The jitters tried, smallest first: ``max(rel, 10·n·eps) · scale`` for ``rel`` in JITTERS."""
    return sorted({max(rel, 10 * n * eps) * scale for rel in JITTERS})


def _subject(alpha: float | None, what: str) -> str:
    return f"{what} (alpha included)" if alpha is None else f"{what} plus alpha={alpha}"


def _singular_error(subject: str, zero: str, largest: float, scale: float, hint: str):
    return np.linalg.LinAlgError(
        f"{subject} is not positive definite{zero}, even with jitter up to {largest:.2e} on its "
        f"diagonal. Increase alpha (e.g. alpha={1e-4 * scale:.2e}), or remove duplicate "
        f"samples{hint}."
    )


def cholesky_with_jitter(
    k: jax.Array,
    alpha: float | None = None,
    *,
    what: str = "The training kernel",
    float32_hint: bool = False,
) -> tuple[jax.Array, float]:
    """Lower Cholesky factor of ``k`` (+ jitter) and the jitter added (0 when none was needed).

    ``alpha`` (for the messages) is the value on the diagonal of ``k``; ``float32_hint`` adds
    "or use float64" to the error's advice. Call inside the precision scope of ``k``.
    """
    n = k.shape[0]
    eps = float(jnp.finfo(k.dtype).eps)
    mean_diag = float(jnp.mean(jnp.diag(k)))
    scale = kernel_scale(mean_diag)

    def factor(jitter: float):
        # A failed factorization is NaN by design: not the error of a user's jax_debug_nans.
        with jax.debug_nans(False), jax.debug_infs(False):
            chol = dynamics.cholesky(dynamics.add_diagonal(k, jitter) if jitter else k)
            pivots = jnp.diag(chol) ** 2
            ok = bool(jnp.all(jnp.isfinite(chol)))
            ok = ok and float(jnp.min(pivots)) >= n * eps * scale
        return chol, ok

    chol, ok = factor(0.0)
    if ok:
        return chol, 0.0
    subject = _subject(alpha, what)
    zero = " (the kernel is zero: all-zero inputs with b_std=0?)" * (mean_diag == 0)
    ladder = jitter_ladder(n, eps, scale)
    for jitter in ladder:
        chol, ok = factor(jitter)
        if ok:
            _warnings.warn(
                f"{subject} is not numerically positive definite{zero} (duplicate or nearly "
                f"collinear samples?); added {jitter:.2e} (jitter) to its diagonal. Increase "
                "alpha to silence this warning.",
                RuntimeWarning,
            )
            return chol, jitter
    raise _singular_error(subject, zero, ladder[-1], scale, ", or use float64" * float32_hint)


def eigenvalue_jitter(
    evals: np.ndarray, alpha: float, *, what: str = "The training kernel of a fold"
) -> float:
    """The jitter :func:`cholesky_with_jitter` would add to a kernel with these eigenvalues.

    ``evals`` are those of the kernel with ``alpha`` on its diagonal. The smallest eigenvalue
    stands for the smallest pivot (``λ_min ≤ min L_ii²``), so the two may differ on kernels
    within rounding of singular.
    """
    n = evals.shape[0]
    eps = float(np.finfo(evals.dtype).eps)
    mean_diag = float(np.mean(evals))  # trace / n
    scale = kernel_scale(mean_diag)
    floor = n * eps * scale
    if float(np.min(evals)) >= floor:
        return 0.0
    subject = _subject(alpha, what)
    ladder = jitter_ladder(n, eps, scale)
    for jitter in ladder:
        if float(np.min(evals)) + jitter >= floor:
            _warnings.warn(
                f"{subject} is not numerically positive definite; added {jitter:.2e} (jitter) to "
                "its diagonal, as a fit would. Drop the smallest alphas from alphas to silence "
                "this warning.",
                RuntimeWarning,
            )
            return jitter
    raise _singular_error(subject, "", ladder[-1], scale, "")
