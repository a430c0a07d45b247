"""The layer recursion of the NNGP and NTK of a fully-connected network (pure JAX).

Network: ``depth`` hidden layers ``[Dense(w_std, b_std), σ]`` and a ``Dense(w_std, b_std)``
readout, in NTK parameterization ``z = w_std / sqrt(fan_in) · W x + b_std · b``, ``W, b ~ N(0, 1)``.
The infinite-width kernels (Jacot et al. 2018; Lee et al. 2018, 2019) are

    Σ¹(x, x')   = w_std² · x·x' / d + b_std²,                     Θ¹ = Σ¹
    Σˡ⁺¹(x, x') = w_std² · E[σ(u) σ(v)] + b_std²
    Σ̇ˡ⁺¹(x, x') = w_std² · E[σ'(u) σ'(v)]
    Θˡ⁺¹(x, x') = Σˡ⁺¹(x, x') + Θˡ(x, x') · Σ̇ˡ⁺¹(x, x')

with ``(u, v) ~ N(0, [[Σˡ(x, x), Σˡ(x, x')], [Σˡ(x, x'), Σˡ(x', x')]])``; the result is
``(Σ^{depth+1}, Θ^{depth+1})``, per output unit.

Two jit-compiled pure functions: :func:`diag_recursion` runs the recursion for ``x = x'`` (per
row, ``O(n · depth)``), and :func:`kernel_tile` runs it for one tile of rows ``x1 × x2``, taking
the per-layer diagonals ``Σˡ(x, x)`` from the first so that every tile reuses them.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels._activations import Activation


def first_layer_diag(x: jax.Array, w_std, b_std) -> jax.Array:
    """``Σ¹(x, x) = w_std² · |x|² / d + b_std²`` per row."""
    return (w_std**2 / x.shape[1]) * jnp.sum(x * x, axis=1) + b_std**2


@partial(jax.jit, static_argnames=("depth", "act"))
def diag_recursion(
    x: jax.Array, w_std, b_std, *, depth: int, act: Activation
) -> tuple[jax.Array, jax.Array]:
    """Per-layer diagonals ``Σˡ(x, x)`` and ``Θˡ(x, x)`` for ``l = 1 … depth+1``.

    Returns two arrays of shape ``(depth + 1, n)``; the last rows are the kernels' diagonals.
    """
    q = first_layer_diag(x, w_std, b_std)

    def layer(carry, _):
        q, t = carry
        e, e_dot = act.diag(q)
        q_next = w_std**2 * e + b_std**2
        t_next = q_next + t * (w_std**2 * e_dot)
        return (q_next, t_next), (q_next, t_next)

    _, (qs, ts) = jax.lax.scan(layer, (q, q), None, length=depth)
    return jnp.concatenate([q[None], qs]), jnp.concatenate([q[None], ts])


def _set_diagonal(a: jax.Array, values: jax.Array) -> jax.Array:
    idx = jnp.arange(a.shape[0])
    return a.at[idx, idx].set(values)


@partial(jax.jit, static_argnames=("act", "want_ntk", "same"))
def kernel_tile(
    x1: jax.Array,
    x2: jax.Array,
    q1: jax.Array,
    q2: jax.Array,
    t1: jax.Array,
    w_std,
    b_std,
    *,
    act: Activation,
    want_ntk: bool,
    same: bool,
) -> tuple[jax.Array, jax.Array | None]:
    """``(Σ^{L}(x1, x2), Θ^{L}(x1, x2))`` for one tile, ``L = depth + 1``.

    ``q1``, ``q2`` (shape ``(depth + 1, n)``) are the per-layer diagonals of ``x1`` and ``x2`` from
    :func:`diag_recursion`, and ``t1`` the NTK's. ``same=True`` marks a diagonal tile
    (``x1 is x2``): there the diagonal is exactly ``u = v`` (θ = 0), and it is set from the
    diagonal recursion at every layer, so that no rounding in ``cos θ`` leaks into it.
    ``Θ`` is ``None`` unless ``want_ntk``.
    """
    # Σ¹ = w² x·x'/d + b². HIGHEST precision: no TF32/bf16 passes on accelerators.
    gram = jnp.matmul(x1, x2.T, precision=jax.lax.Precision.HIGHEST)
    sigma = (w_std**2 / x1.shape[1]) * gram + b_std**2
    if same:
        sigma = _set_diagonal(sigma, q1[0])
    theta = sigma if want_ntk else None

    def layer(carry, per_layer):
        sigma, theta = carry
        q1_l, q2_l, q1_next, t1_next = per_layer
        e, e_dot = act.expectations(q1_l[:, None], q2_l[None, :], sigma)
        # Σˡ⁺¹ = w² E[σσ] + b²;  Θˡ⁺¹ = Σˡ⁺¹ + Θˡ · w² E[σ'σ'].
        sigma = w_std**2 * e + b_std**2
        if want_ntk:
            theta = sigma + theta * (w_std**2 * e_dot)
        if same:
            sigma = _set_diagonal(sigma, q1_next)
            if want_ntk:
                theta = _set_diagonal(theta, t1_next)
        return (sigma, theta), None

    per_layer = (q1[:-1], q2[:-1], q1[1:], t1[1:])
    (sigma, theta), _ = jax.lax.scan(layer, (sigma, theta), per_layer)
    return sigma, theta
