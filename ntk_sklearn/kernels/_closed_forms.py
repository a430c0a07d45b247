"""Closed-form Gaussian expectations ``(T, Tdot)`` of the activations that have one: the
arc-cosine family (relu, leaky relu, abs), erf, identity, gelu, sign and sin.

Each factory returns a :class:`~ntk_sklearn.kernels.Nonlinearity`; the registry
(``_activations.py``) maps names to them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels._arc_cosine import arc_cosine_terms
from ntk_sklearn.kernels._nonlinearity import (
    Nonlinearity,
    _reciprocal,
    _sine,
    _with_correlation,
    arccos,
    safe_sqrt,
)
from ntk_sklearn.kernels._trig import atan

_PI = math.pi


def _ab_relu(name: str, slope: float) -> Nonlinearity:
    """``σ(x) = x`` for ``x > 0`` and ``slope·x`` otherwise: relu (0), leaky relu, abs (-1).

    Arc-cosine kernels (Cho & Saul 2009). With ``σ = ½(1 + s) x + ½(1 − s) |x|``, the Gaussian
    expectations are ``T = sqrt(q1 q2)·J(ρ)`` and ``Tdot(ρ)``, where, in terms of ``u = |ρ|``,
    ``θ = arccos u`` and ``g = sin θ − θ u`` (:func:`arc_cosine_terms`) and ``k = (1 − s)²/(2π)``:

        ρ >= 0:  J = k g + ½(1 + s²) u      Tdot = ½(1 + s²) − k θ
        ρ <  0:  J = k g − s u              Tdot = s + k θ

    (the textbook ``J = (k sin θ' + A ρ)`` with ``A = ((1 + s²)(π − θ') + 2 s θ')/(2π)``,
    ``θ' = arccos ρ``, rearranged so that no term cancels for relu and abs: relu's ``J = k g``
    for ``ρ < 0`` tends to 0 like ``(1 + ρ)^{3/2}`` with full relative accuracy). ``J'(ρ) = Tdot``
    (Price's theorem: ``∂T/∂c = Tdot``), which is the derivative given to autodiff, and
    ``Tdot'(ρ) = k / sin θ``.
    """
    s = float(slope)
    kink = (1.0 - s) ** 2 / (2.0 * _PI)
    even = 0.5 * (1.0 + s * s)

    def fn(x):
        return jnp.where(x > 0, x, s * x)

    def values(rho):
        u, theta, g = arc_cosine_terms(rho)
        positive = rho >= 0
        j = kink * g + jnp.where(positive, even, -s) * u
        j_dot = jnp.where(positive, even - kink * theta, s + kink * theta)
        return j, j_dot

    @jax.custom_jvp
    def j_and_j_dot(rho):
        return values(rho)

    @j_and_j_dot.defjvp
    def _j_jvp(primals, tangents):
        (rho,), (drho,) = primals, tangents
        # Through j_and_j_dot itself, so that second derivatives also follow these rules.
        j, j_dot = j_and_j_dot(rho)
        # J' = Tdot (Price), Tdot' = k / sin θ (0 at ρ = ±1, see arccos).
        return (j, j_dot), (j_dot * drho, kink * drho * _reciprocal(_sine(rho)))

    def correlated(q1, q2, rho):
        j, j_dot = j_and_j_dot(rho)
        return safe_sqrt(q1) * safe_sqrt(q2) * j, j_dot

    def diag(q):
        # θ = 0 exactly: T = (1 + s²) q / 2, Tdot = (1 + s²) / 2.
        return even * q, jnp.full_like(q, even)

    return Nonlinearity(name, fn, _with_correlation(correlated), diag, correlated=correlated)


def _erf() -> Nonlinearity:
    """``σ = erf`` (Williams 1997):

    T    = (2/π) arcsin(2c / sqrt((1 + 2 q1)(1 + 2 q2)))
    Tdot = (4/π) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 c²)

    with ``(1 + 2 q1)(1 + 2 q2) - 4c² = 1 + 2 q1 + 2 q2 + 4 q1 q2 (1 - ρ)(1 + ρ) >= 1`` written
    without cancellation (it rounded to 0 or below at x = x' for large inputs), and
    ``arcsin(2c/√P) = atan(2c / sqrt(D))``.
    """

    def correlated(q1, q2, rho):
        d = 1.0 + 2.0 * (q1 + q2) + 4.0 * (q1 * q2) * ((1.0 - rho) * (1.0 + rho))
        inv_root = jax.lax.rsqrt(d)
        c = rho * safe_sqrt(q1) * safe_sqrt(q2)
        return (2.0 / _PI) * atan(2.0 * c * inv_root), (4.0 / _PI) * inv_root

    def diag(q):
        # 2q/(1+2q) < 1: arcsin(a) with sqrt(1 - a²) = sqrt(1 + 4q)/(1 + 2q).
        root = jnp.sqrt(1.0 + 4.0 * q)
        return (2.0 / _PI) * atan(2.0 * q / root), (4.0 / _PI) / root

    return Nonlinearity(
        "erf", jax.scipy.special.erf, _with_correlation(correlated), diag, correlated=correlated
    )


def _identity() -> Nonlinearity:
    """``σ(x) = x``: T = c, Tdot = 1 (a deep linear network)."""

    def expectations(q1, q2, c):
        return c, jnp.ones_like(c)

    def diag(q):
        return q, jnp.ones_like(q)

    return Nonlinearity("identity", lambda x: x, expectations, diag)


def _gelu() -> Nonlinearity:
    """Exact (erf-based) GELU ``σ(x) = x Φ(x)`` (Tsuchida et al. 2020; neural-tangents' form).

    With ``p = (1 + q1)(1 + q2)``, ``Δ² = p - c² = 1 + q1 + q2 + q1 q2 (1 - ρ)(1 + ρ)`` and
    ``ψ = π/2 + atan(c/Δ)`` (in ``(0, π)``):

        N    = c² + q1 q2 Δ²
        T    = [N / (p Δ) + c ψ] / (2π)
        Tdot = [ψ + c (3 + q1 + q2 + c²/Δ²) / (p Δ)] / (2π)

    ``Tdot = ∂T/∂c`` (Price's theorem). These are neural-tangents' expressions rearranged so that
    no two large terms cancel: the first form of ``Δ²`` gave NaN at q ≳ 1e8 in float32, and
    ``c/4 + cφ/(2π)`` and ``(c/Δ)(1 + 2(1 - q1 q2)/p) + N c/(p Δ³)`` lost up to half the digits
    for large variances or antipodal inputs (``ψ`` is computed as ``atan(Δ/|c|)`` for ``c < 0``).
    """

    def correlated(q1, q2, rho):
        p = (1.0 + q1) * (1.0 + q2)
        pq = q1 * q2
        c = rho * safe_sqrt(q1) * safe_sqrt(q2)
        delta2 = 1.0 + q1 + q2 + pq * ((1.0 - rho) * (1.0 + rho))
        delta = jnp.sqrt(delta2)
        negative = c < 0
        ratio = jnp.abs(c) / delta
        # ψ = π/2 + atan(c/Δ): π/2 + atan(c/Δ) for c >= 0, atan(Δ/|c|) for c < 0.
        psi = jnp.where(
            negative, atan(1.0 / jnp.where(negative, ratio, 1.0)), 0.5 * _PI + atan(ratio)
        )
        n = c * c + pq * delta2
        t = (n / (p * delta) + c * psi) / (2.0 * _PI)
        tdot = (psi + c * (3.0 + q1 + q2 + c * c / delta2) / (p * delta)) / (2.0 * _PI)
        return t, tdot

    def diag(q):
        return correlated(q, q, jnp.ones_like(q))

    return Nonlinearity(
        "gelu",
        lambda x: jax.nn.gelu(x, approximate=False),
        _with_correlation(correlated),
        diag,
        correlated=correlated,
    )


def _sign() -> Nonlinearity:
    """``σ = sign``: T = (2/π) arcsin(ρ) = 1 - 2θ/π.

    ``Tdot = 0``: the derivative of ``sign`` is zero almost everywhere, which is what gradients of a
    finite network (and neural-tangents) see, so only the readout layers contribute to the NTK.
    """

    def correlated(q1, q2, rho):
        defined = (q1 > 0) & (q2 > 0)
        return jnp.where(defined, 1.0 - 2.0 * arccos(rho) / _PI, 0.0), jnp.zeros_like(rho)

    def diag(q):
        return jnp.where(q > 0, 1.0, 0.0).astype(q.dtype), jnp.zeros_like(q)

    return Nonlinearity(
        "sign", jnp.sign, _with_correlation(correlated), diag, correlated=correlated
    )


def _sin() -> Nonlinearity:
    """``σ = sin``: T = e^{-(q1+q2)/2} sinh(c), Tdot = e^{-(q1+q2)/2} cosh(c).

    Written as ``(e^{c-m} ∓ e^{-c-m}) / 2`` with ``m = (q1+q2)/2``, and the exponents
    ``±c - m = -(√q1 - √q2)²/2 - √(q1 q2)(1 ∓ ρ) <= 0`` computed without cancellation, so that
    nothing overflows and identical inputs give exactly ``(1 - e^{-2q})/2``.
    """

    def correlated(q1, q2, rho):
        s1, s2 = safe_sqrt(q1), safe_sqrt(q2)
        base = -0.5 * (s1 - s2) ** 2
        plus, minus = jnp.exp(base - s1 * s2 * (1.0 - rho)), jnp.exp(base - s1 * s2 * (1.0 + rho))
        return 0.5 * (plus - minus), 0.5 * (plus + minus)

    def diag(q):
        return correlated(q, q, jnp.ones_like(q))

    return Nonlinearity("sin", jnp.sin, _with_correlation(correlated), diag, correlated=correlated)
