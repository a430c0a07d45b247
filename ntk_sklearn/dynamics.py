"""Gradient-flow dynamics of infinitely wide networks: pure JAX functions on kernel matrices.

Notation (Lee et al. 2019, "Wide neural networks of any depth evolve as linear models under
gradient descent", Sec. 2.3-2.4 and eq. 16): ``K`` and ``Θ`` are the NNGP and NTK between training
inputs (``alpha`` already added to their diagonals), ``K_*``/``Θ_*`` between test and training
inputs, ``K_**`` between test inputs, ``y`` the training targets (n, k). With the loss
``0.5 · mean((f - y)²)`` over all ``m = y.size`` entries and learning rate ``η``, the training
outputs evolve as ``f_t = e^{-η t Θ / m} f_0 + (I - e^{-η t Θ / m}) y``; over random
initialisations (``f_0 ~ GP(0, K)``) the test outputs are Gaussian with

    mean(t) = Θ_* A_t y
    cov(t)  = K_** + Θ_* A_t K A_t Θ_*ᵀ - (Θ_* A_t K_*ᵀ + K_* A_t Θ_*ᵀ)

where ``A_t = Θ⁻¹ (I - e^{-η t Θ / m})``, and ``A_∞ = Θ⁻¹``. Training only the readout gives the
NNGP dynamics: ``Θ`` replaced by ``K``, where the covariance simplifies to
``K_** - K_* A_{2t} K_*ᵀ`` (at ``t = ∞`` the Gaussian-process posterior).

``A_t`` is applied through a factorization computed once: a Cholesky factor at ``t = ∞`` and an
eigendecomposition ``Θ = V diag(λ) Vᵀ`` for finite times, where
``A_t = V diag(g_t(λ)) Vᵀ`` with ``g_t(λ) = (1 - e^{-η t λ / m}) / λ``.

Null space. Eigenvalues below the eigensolver's rounding error, ``λ < n·eps·λ_max``, are set to
exactly 0 (there ``g_t = η t / m``, the exact gain). In exact arithmetic such an eigenvector ``v``
has ``Θ_* v = 0`` and ``K_* v = 0`` (the joint kernel of training and test inputs is positive
semi-definite, and ``null(Θ) ⊂ null(K)``), so its component contributes nothing to any prediction
at any time; computed, the component is rounding noise that ``g_t`` would amplify without bound
(``η t / m`` at ``t = 10³⁰``). :func:`spectral_apply` therefore drops it: the dynamics are the
exact ones, restricted to the range of ``Θ``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Spectrum(NamedTuple):
    """Eigendecomposition ``Θ = V diag(λ) Vᵀ`` of a training kernel."""

    evals: jax.Array
    evecs: jax.Array


@jax.jit
def add_diagonal(k: jax.Array, value) -> jax.Array:
    """``K + value·I``."""
    return k + value * jnp.eye(k.shape[0], dtype=k.dtype)


@jax.jit
def cholesky(k: jax.Array) -> jax.Array:
    """Lower Cholesky factor; contains NaN when ``k`` is not numerically positive definite."""
    return jnp.linalg.cholesky(k)


@jax.jit
def spectrum(k: jax.Array) -> Spectrum:
    """Eigendecomposition of a symmetric PSD kernel; eigenvalues that are rounding noise set to 0.

    ``λ < n·eps·λ_max`` (negative ones included) is below the backward error of ``eigh``: those
    eigenvalues are set to exactly 0, the null space (see the module docstring).
    """
    evals, evecs = jnp.linalg.eigh(k)
    tol = k.shape[0] * jnp.finfo(k.dtype).eps * jnp.max(evals)
    return Spectrum(jnp.where(evals < tol, 0.0, evals), evecs)


def gain(evals: jax.Array, times: jax.Array, rate) -> jax.Array:
    """``g_t(λ) = (1 - e^{-rate·t·λ}) / λ`` for each time: shape ``(len(times), len(evals))``.

    Written as ``rate·t · (-expm1(-x) / x)`` with ``x = rate·t·λ``: exact for small ``x`` and equal
    to ``rate·t`` at ``λ = 0``; ``t = inf`` gives ``1/λ``.
    """
    t = jnp.asarray(times, evals.dtype)[:, None]
    x = rate * t * evals
    finite = jnp.where(jnp.isinf(t), 1.0 / evals, -jnp.expm1(-x) / jnp.where(x > 0, evals, 1.0))
    return jnp.where(x > 0, finite, rate * jnp.where(jnp.isinf(t), 0.0, t))


@jax.jit
def cho_apply(chol: jax.Array, b: jax.Array) -> jax.Array:
    """``A_∞ b = K⁻¹ b`` from the Cholesky factor."""
    return jax.scipy.linalg.cho_solve((chol, True), b)


def range_gain(spec: Spectrum, g: jax.Array) -> jax.Array:
    """Gains ``g`` of shape ``(..., n)`` with those of the null space (``λ = 0``) dropped."""
    return jnp.where(spec.evals > 0, g, 0.0)


@jax.jit
def spectral_apply(spec: Spectrum, g: jax.Array, b: jax.Array) -> jax.Array:
    """``A_t b = V diag(g) Vᵀ b`` for one vector of gains ``g``, on the range of ``Θ`` only."""
    return spec.evecs @ (range_gain(spec, g)[:, None] * (spec.evecs.T @ b))


class Posterior(NamedTuple):
    """Mean ``(n*, k)`` and covariance ``(n*, n*)`` or variance ``(n*,)`` of the test outputs.

    ``scale`` ``(n*,)``: the sum of the absolute values of the terms whose sum is each variance;
    rounding errors of the variance are of order ``eps·scale``, so a variance not much larger
    than that is dominated by cancellation.
    """

    mean: jax.Array
    cov: jax.Array | None
    scale: jax.Array | None = None


def ntk_posterior(
    r: jax.Array,
    y: jax.Array,
    k_train: jax.Array,
    k_cross: jax.Array,
    k_test: jax.Array | None,
    full_cov: bool,
) -> Posterior:
    """NTK ensemble from ``R = A_t Θ_*ᵀ`` (n, n*):

    ``mean = Rᵀ y``;  ``cov = K_** + Rᵀ K R - Rᵀ K_*ᵀ - K_* R``. ``k_test`` is the full ``K_**``
    when ``full_cov`` else its diagonal (then the variance is returned); ``None`` skips it.
    """
    mean = r.T @ y
    if k_test is None:
        return Posterior(mean, None)
    kr = k_train @ r
    quad = jnp.sum(r * kr, 0)  # diag(Rᵀ K R)
    cross_diag = jnp.sum(r * k_cross.T, 0)  # diag(K_* R)
    prior = jnp.diag(k_test) if full_cov else k_test
    scale = jnp.abs(prior) + jnp.abs(quad) + 2.0 * jnp.abs(cross_diag)
    if full_cov:
        cross = k_cross @ r
        return Posterior(mean, k_test + r.T @ kr - cross - cross.T, scale)
    return Posterior(mean, k_test + quad - 2.0 * cross_diag, scale)


def nngp_posterior(
    r: jax.Array,
    r_2t: jax.Array | None,
    y: jax.Array,
    k_cross: jax.Array,
    k_test: jax.Array | None,
    full_cov: bool,
) -> Posterior:
    """NNGP dynamics from ``R = A_t K_*ᵀ`` and ``R₂ = A_{2t} K_*ᵀ``:

    ``mean = Rᵀ y``;  ``cov = K_** - K_* R₂``.
    """
    mean = r.T @ y
    if k_test is None:
        return Posterior(mean, None)
    explained = jnp.sum(k_cross.T * r_2t, 0)  # diag(K_* R₂)
    prior = jnp.diag(k_test) if full_cov else k_test
    scale = jnp.abs(prior) + jnp.abs(explained)
    if full_cov:
        return Posterior(mean, k_test - k_cross @ r_2t, scale)
    return Posterior(mean, k_test - explained, scale)
