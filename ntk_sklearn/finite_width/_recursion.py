r"""Layer-to-layer recursions of the 1/n statistics of the empirical NNGP and NTK.

Network (NTK parameterization, ``fc_kernel``'s convention): ``z¹ = w/√d · W¹ x + b β¹`` and
``z^{l+1}_k = w/√n_l · Σ_i W^{l+1}_{ki} σ(z^l_i) + b β^{l+1}_k``, ``l = 1..L``, the output
``f = z^{L+1}`` (one unit). Given layer ``l``, the preactivations of layer ``l+1`` are i.i.d.
Gaussian over ``k`` with covariance the *empirical kernel*

    K̂^{l+1}_{ab} = b² + w²/n_l Σ_i σ(z^l_i(a)) σ(z^l_i(b)),                                 (1)

and the empirical NTK of unit ``k``, ``Θ̂^{l+1}_{kk'} = δ_{kk'} K̂^{l+1} + y_k·y_{k'}`` with
``y_k(a) = w/√n_l Σ_i W^{l+1}_{ki} σ'(z^l_i(a)) J^l_i(a)`` (``J^l_i`` the gradient of ``z^l_i``
in the earlier parameters, ``Θ̂^l_{ii'} = J^l_i·J^l_{i'}``). Averaged over the new weights
(Wick), the diagonal unit's NTK has the conditional mean

    Θ̄^{l+1}_{ab} = K̂^{l+1}_{ab} + w²/n_l Σ_i σ'_i(a) σ'_i(b) Θ̂^l_{ii,ab}                   (2)

(the finite-width form of the NTK recursion, Roberts, Yaida & Hanin 2022, eq. 8.12; Hanin &
Nica 2019, eq. 1.7), and ``Cov(y_k·y_k)`` involves the off-diagonal ``Θ̂^l_{ii'}`` through

    P^{l+1}_{ab;cd} = Σ_{ii'} M_{ii'}(ab) M_{ii'}(cd),
    M_{ii'}(ab) = w²/n_l σ'_i(a)σ'_{i'}(b) Θ̂^l_{ii',ab}.

The cross-correlation of the NTK with the preactivations that the layer ``l+1`` means need
(Stein's lemma on the Gaussian weights) enters through

    R^{l+1}_{ef;ab} = Σ_{ii'} w⁴/n_l² σ_i(e) σ'_i(a) σ_{i'}(f) σ'_{i'}(b) Θ̂^l_{ii',ab}.

With ``F(K)_{ab} = b² + w² E_K[σ_a σ_b]``, ``Ḟ(K)_{ab} = E_K[σ'_a σ'_b]`` and
``G(K, Θ) = F(K) + w² Ḟ(K) ⊙ Θ``, expanding ``K̂^l = K^l + δ`` (mean and covariance of δ of
order 1/n) and using the laws of total expectation and covariance conditioned on layer ``l-1``
(under which layer ``l``'s neurons are i.i.d.), to order 1/n:

    E K̂^{l+1}  = F(K^l) + J_F μ_K^l + ½ H_F[V^l]                                           (3)
    E Θ̄^{l+1}  = G + J_G (μ_K^l, μ_Θ^l) + ½ H_G[V^l] + w² Σ_{ef} R^l_{ef;ab} E[∂_e∂_f σ'_aσ'_b]  (4)
    V^{l+1}    = S(K^l, Θ^l) / n_l + J V^l Jᵀ                                               (5)
    R^{l+1}    = w⁴/n_l E[σ_eσ'_a σ_fσ'_b] Θ^l_ab
                 + w⁴ Σ_{e'f'} R^l_{e'f';ab} E[∂_{e'}(σ_eσ'_a)] E[∂_{f'}(σ_fσ'_b)]            (6)
    P^{l+1}    = w⁴/n_l E[σ'_aσ'_bσ'_cσ'_d] Θ^l_ab Θ^l_cd + w⁴ Ḟ_ac Ḟ_bd P^l_{ab;cd}          (7)

where ``V`` is the joint covariance of ``(K̂, Θ̄)`` and ``S`` the covariance of one neuron's
``w²(σ_aσ_b, σ_aσ_b + σ'_aσ'_b Θ_ab)`` (Roberts-Yaida eqs. 4.90 and 8.68-8.89 for the same
objects under other names: V the four-point vertex, R their D and F tensors, P their B tensor).
``J``, ``H`` are local: entry ``(a, b)`` depends on ``(K_aa, K_bb, K_ab, Θ_ab)`` only, so
they are 4-vectors and 4×4 matrices per entry (JAX autodiff of the closed forms or quadrature
of the activation registry). By Price's theorem ``Σ_{ef} R_{ef} E[∂_e∂_f g] = 2 D_K E_K[g][R]``;
by Stein's lemma ``E[σ_b σ''_a] = (E[u_a σ'_a σ_b] - K_ab E[σ'_aσ'_b]) / K_aa``, so no
second derivative of ``σ`` (a delta for ReLU) is ever evaluated. The output NTK is
``Θ̂ = Θ̄^{L+1} + (y_1·y_1 - E[·|layer L])``, whose covariance adds ``P_{ab;cd} + P_{ab;dc}``.

Every tensor here lives on a set of ``M`` inputs; the entries of ``(a, b)`` only need the
inputs ``{a, b}`` (and ``(ab; cd)`` those of ``{a, b, c, d}``), which is what makes the N²
"diagonal" variances cheap: they are the same recursion on every pair.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ntk_sklearn.finite_width._gaussian import moments


class LayerState(NamedTuple):
    """Statistics of layer ``l`` on ``M`` inputs (the 1/n parts carry their 1/n)."""

    nngp: jax.Array  # K^l (M, M), infinite width
    ntk: jax.Array  # Θ^l (M, M)
    nngp_shift: jax.Array  # E K̂^l - K^l
    ntk_shift: jax.Array  # E Θ̄^l - Θ^l
    cov_kk: jax.Array  # Cov(K̂_ab, K̂_cd) (M, M, M, M)
    cov_kt: jax.Array  # Cov(K̂_ab, Θ̄_cd)
    cov_tt: jax.Array  # Cov(Θ̄_ab, Θ̄_cd)
    cross: jax.Array  # R_{ef;ab} for e, f in {a, b}: (M, M, 2, 2)
    off_diagonal: jax.Array  # P_{ab;cd}


def first_layer(x: jax.Array, w2: float, b2: float) -> LayerState:
    """Layer 1: ``K¹ = b² + w² x xᵀ / d`` exactly, ``Θ̂¹_{ij} = δ_ij K¹``: no fluctuations."""
    k = b2 + w2 * (x @ x.T) / x.shape[1]
    m = k.shape[0]
    zero2, zero4 = jnp.zeros_like(k), jnp.zeros((m, m, m, m), k.dtype)
    return LayerState(
        k, k, zero2, zero2, zero4, zero4, zero4, jnp.zeros((m, m, 2, 2), k.dtype), zero4
    )


def _local_maps(act, w2, b2):
    """Entry maps ``x = (K_aa, K_bb, K_ab, Θ_ab) -> (F, G, Ḟ)`` (``diag``: ``a = b``)."""

    def maps(x, diag):
        q1, q2, c, theta = x[0], x[1], x[2], x[3]
        # The off-diagonal form is evaluated away from ρ = 1 on the diagonal, so that its
        # (unused) derivatives there cannot be NaN: the double-where idiom.
        one = jnp.ones_like(c)
        t_off, tdot_off = act.expectations(
            jnp.where(diag, one, q1), jnp.where(diag, one, q2), jnp.where(diag, 0.5 * one, c)
        )
        t_on, tdot_on = act.diag(q1)
        t, tdot = jnp.where(diag, t_on, t_off), jnp.where(diag, tdot_on, tdot_off)
        f = b2 + w2 * t
        return jnp.stack([f, f + w2 * tdot * theta, tdot])

    def derivatives(x, diag):
        return maps(x, diag), jax.jacfwd(maps)(x, diag), jax.hessian(maps)(x, diag)

    return jax.vmap(derivatives)


@partial(jax.jit, static_argnames=("act",))
def layer_step(state: LayerState, width, w2, b2, act) -> LayerState:
    """Equations (3)-(7): the statistics of layer ``l+1`` from those of layer ``l`` (width n_l)."""
    K, Th = state.nngp, state.ntk
    m = K.shape[0]
    inv_n = 1.0 / width
    w4 = w2 * w2
    r = jnp.arange(m)
    a2, b2_ = r[:, None], r[None, :]
    a4, b4, c4, d4 = (
        r[:, None, None, None],
        r[None, :, None, None],
        r[None, None, :, None],
        r[None, None, None, :],
    )

    # Local variables of entry (a, b): (K_aa, K_bb, K_ab, Θ_ab); index pairs of each.
    def sel(i, a, b):
        return [(a, a), (b, b), (a, b), (a, b)][i]

    kd = jnp.diagonal(K)
    local = jnp.stack(
        [jnp.broadcast_to(kd[:, None], K.shape), jnp.broadcast_to(kd[None, :], K.shape), K, Th],
        axis=-1,
    ).reshape(-1, 4)
    diag = jnp.broadcast_to(a2 == b2_, (m, m)).reshape(-1)
    values, jac, hess = _local_maps(act, w2, b2)(local, diag)
    values, jac, hess = (v.reshape((m, m) + v.shape[1:]) for v in (values, jac, hess))
    jf, jg, jdot = jac[:, :, 0], jac[:, :, 1], jac[:, :, 2]  # (m, m, 4)

    def block(i, j, a, b, c, d):
        """Cov(local_i(ab), local_j(cd)) from the joint covariance of (K̂, Θ̄)."""
        if i < 3 and j < 3:
            v = state.cov_kk
        elif i < 3:
            v = state.cov_kt
        elif j < 3:
            return state.cov_kt[sel(j, c, d) + sel(i, a, b)]
        else:
            v = state.cov_tt
        return v[sel(i, a, b) + sel(j, c, d)]

    def propagate(ja, jb, ni, nj):
        out = 0.0
        for i in range(ni):
            for j in range(nj):
                out = out + ja[:, :, i][:, :, None, None] * jb[:, :, j][None, None] * block(
                    i, j, a4, b4, c4, d4
                )
        return out

    # One neuron's covariances at the infinite-width kernel, from one quadrature rule.
    mo = moments(act.fn, K)
    ss, dd = mo["ss"], mo["dd"]
    c_ss = mo["ssss"] - ss[:, :, None, None] * ss[None, None]
    c_sd = mo["ssdd"] - ss[:, :, None, None] * dd[None, None]
    c_dd = mo["dddd"] - dd[:, :, None, None] * dd[None, None]
    th_ab, th_cd = Th[:, :, None, None], Th[None, None]
    s_kk = w4 * c_ss
    s_kt = w4 * (c_ss + c_sd * th_cd)
    s_tt = w4 * (
        c_ss + c_sd * th_cd + jnp.transpose(c_sd, (2, 3, 0, 1)) * th_ab + c_dd * th_ab * th_cd
    )

    # (5): covariances.
    cov_kk = inv_n * s_kk + propagate(jf, jf, 3, 3)
    cov_kt = inv_n * s_kt + propagate(jf, jg, 3, 4)
    cov_tt = inv_n * s_tt + propagate(jg, jg, 4, 4)

    # (3), (4): means, with the local covariance of (K_aa, K_bb, K_ab, Θ_ab) with itself.
    shifts = [state.nngp_shift[sel(i, a2, b2_)] for i in range(3)] + [state.ntk_shift]
    local_cov = jnp.stack(
        [
            jnp.stack(
                [jnp.broadcast_to(block(i, j, a2, b2_, a2, b2_), K.shape) for j in range(4)], -1
            )
            for i in range(4)
        ],
        -2,
    )
    mean_k = sum(jf[:, :, i] * shifts[i] for i in range(3)) + 0.5 * jnp.einsum(
        "abij,abij->ab", hess[:, :, 0, :3, :3], local_cov[:, :, :3, :3]
    )
    R = state.cross
    # Σ_ef R_ef E[∂_e∂_f σ'_aσ'_b] = 2 D_K Ḟ[R] (Price), Ḟ a function of (K_aa, K_bb, K_ab).
    price = 2.0 * jdot[:, :, 0] * R[:, :, 0, 0] + 2.0 * jdot[:, :, 1] * R[:, :, 1, 1]
    price = price + jdot[:, :, 2] * (R[:, :, 0, 1] + R[:, :, 1, 0])
    mean_t = (
        sum(jg[:, :, i] * shifts[i] for i in range(4))
        + 0.5 * jnp.einsum("abij,abij->ab", hess[:, :, 1], local_cov)
        + w2 * price
    )

    # (6): D1[a,b,i,i'] = E[∂_{e'}(σ_e σ'_a)], e = (a,b)[i], e' = (a,b)[i']; D2 likewise for
    # σ_f σ'_b. Stein: E[u_a σ'_a σ_b] = K_aa E[σ''_a σ_b] + K_ab E[σ'_a σ'_b].
    usd = mo["usd"]
    inv_ka = jnp.where(kd > 0, 1.0 / jnp.where(kd > 0, kd, 1.0), 0.0)
    self_term = jnp.diagonal(usd) * inv_ka  # E[(σσ')'(u_a)] = E[u σ σ'] / K_aa
    cross_a = (usd - K * dd) * inv_ka[:, None]  # E[σ''_a σ_b]
    zeros = jnp.zeros_like(K)
    d1 = jnp.stack(
        [
            jnp.stack([jnp.broadcast_to(self_term[:, None], K.shape), zeros], -1),
            jnp.stack([cross_a, dd], -1),
        ],
        -2,
    )
    d2 = jnp.stack(
        [
            jnp.stack([dd, cross_a.T], -1),
            jnp.stack([zeros, jnp.broadcast_to(self_term[None, :], K.shape)], -1),
        ],
        -2,
    )
    pts = [jnp.broadcast_to(a2, K.shape), jnp.broadcast_to(b2_, K.shape)]
    quad = jnp.stack(
        [jnp.stack([mo["ssdd"][pts[i], pts[j], a2, b2_] for j in range(2)], -1) for i in range(2)],
        -2,
    )
    cross = w4 * inv_n * quad * Th[:, :, None, None] + w4 * jnp.einsum(
        "abIJ,abiI,abjJ->abij", R, d1, d2
    )

    # (7)
    off = (
        w4 * inv_n * mo["dddd"] * th_ab * th_cd
        + w4 * dd[:, None, :, None] * dd[None, :, None, :] * state.off_diagonal
    )

    return LayerState(
        values[:, :, 0], values[:, :, 1], mean_k, mean_t, cov_kk, cov_kt, cov_tt, cross, off
    )


def run(x: jax.Array, widths: tuple, w2: float, b2: float, act) -> LayerState:
    """The statistics of the output layer (``len(widths)`` hidden layers)."""
    state = first_layer(x, w2, b2)
    for n in widths:
        state = layer_step(state, jnp.asarray(float(n), x.dtype), w2, b2, act)
    return state


def output_covariance(state: LayerState) -> tuple[jax.Array, jax.Array]:
    """``(Cov K̂, Cov Θ̂)`` at the output: ``Θ̂`` adds the readout's ``P_{ab;cd} + P_{ab;dc}``."""
    p = state.off_diagonal
    return state.cov_kk, state.cov_tt + p + jnp.transpose(p, (0, 1, 3, 2))


__all__ = ["LayerState", "first_layer", "layer_step", "output_covariance", "run"]
