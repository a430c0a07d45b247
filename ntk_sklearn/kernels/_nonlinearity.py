"""The :class:`Nonlinearity` value (an activation and its Gaussian expectations) and the safe
elementary functions its closed forms are built from.

For a pre-activation pair ``(u, v) ~ N(0, [[q1, c], [c, q2]])`` the kernel recursion needs

    T(q1, q2, c)    = E[σ(u) σ(v)]      (next layer's NNGP, before w_std² and b_std²)
    Tdot(q1, q2, c) = E[σ'(u) σ'(v)]    (the derivative kernel that multiplies the NTK)

Each activation is one small :class:`Nonlinearity` definition holding the elementwise function and,
where one exists, the closed form of ``(T, Tdot)`` (``_closed_forms.py``); the others fall back to
quadrature (``_activations.py``, the registry of names).

All expectation functions are pure, jit-able, and broadcast: the kernel tiles call them with
``q1`` of shape ``(n1, 1)``, ``q2`` of shape ``(1, n2)`` and ``c`` of shape ``(n1, n2)``; the
diagonal recursion calls ``diag(q)`` with ``q`` of shape ``(n,)``, where ``u = v``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels._trig import angle

Expectations = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
DiagExpectations = Callable[[jax.Array], tuple[jax.Array, jax.Array]]


@dataclass(frozen=True, eq=False)
class Nonlinearity:
    """An elementwise nonlinearity ``σ`` and its Gaussian expectations.

    Instances are hashable by identity and created through a cached factory, so that jit-compiled
    kernel functions keyed on them are compiled once per distinct nonlinearity. (The *layer* that
    applies one inside a stack is :class:`~ntk_sklearn.kernels.Activation`.)

    Attributes
    ----------
    name : str
        Name used in error messages and ``repr``.
    fn : callable
        The elementwise function ``σ`` (JAX-traceable), used by finite networks.
    expectations : callable
        ``(q1, q2, c) -> (E[σ(u)σ(v)], E[σ'(u)σ'(v)])``.
    diag : callable
        ``q -> (E[σ(u)²], E[σ'(u)²])`` for ``u ~ N(0, q)``: the exact ``c = q`` case.
    closed_form : bool
        False when the expectations are computed by quadrature.
    correlated : callable, optional
        ``(q1, q2, ρ) -> (T, Tdot)`` with the correlation ``ρ = c / sqrt(q1 q2)`` given exactly.
        The kernel layers use it when present: functions of the angle ``θ = arccos ρ`` (arc-sine
        and arc-cosine kernels) amplify the rounding of ``c`` near ``ρ = ±1`` layer after layer,
        while ``ρ`` itself is snapped to exactly ``±1`` for identical and antipodal inputs.
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    expectations: Expectations
    diag: DiagExpectations
    closed_form: bool = True
    correlated: Expectations | None = None

    def __repr__(self) -> str:
        return f"Nonlinearity({self.name!r})"


# --------------------------------------------------------------------------------------------
# Safe elementary functions: exact values at the edges, finite derivatives everywhere
# --------------------------------------------------------------------------------------------


@jax.custom_jvp
def safe_sqrt(q: jax.Array) -> jax.Array:
    """``sqrt(q)`` for ``q >= 0`` with derivative 0 (not inf) at ``q = 0``.

    The square root is the last operation (no select after it), so that XLA computes it once per
    row instead of fusing the select, and whatever computed ``q``, into every pair of a tile.
    """
    return jnp.sqrt(jnp.maximum(q, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (q,), (dq,) = primals, tangents
    root = safe_sqrt(q)
    return root, 0.5 * dq * inv_sqrt(q)


def inv_sqrt(q: jax.Array) -> jax.Array:
    """``1/sqrt(q)``, and 0 (with derivative 0) where ``q <= 0``.

    ``rsqrt(inf) = 0``; the reciprocal square root is the last operation (see :func:`safe_sqrt`).
    """
    return jax.lax.rsqrt(jnp.where(q > 0, q, jnp.inf))


def correlation(q1: jax.Array, q2: jax.Array, c: jax.Array) -> jax.Array:
    """``ρ = c / sqrt(q1 q2)`` clipped to [-1, 1]; 0 where a variance is 0 (then ``c = 0``).

    The reciprocal square roots are taken of ``q1`` and ``q2`` as given (per row when they
    broadcast), so that a tile costs two multiplications per entry, not a division.
    """
    return jnp.clip(c * inv_sqrt(q1) * inv_sqrt(q2), -1.0, 1.0)


def _sin_and_angle(rho: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``sin θ = sqrt((1 - ρ)(1 + ρ))`` and ``θ = atan2(sin θ, ρ)``, accurate at both ends.

    ``1 - ρ`` and ``1 + ρ`` are exact near ``ρ = ±1`` (Sterbenz), unlike ``1 - ρ²``.
    """
    sin = _sine(rho)
    return sin, angle(sin, rho)


def _sine(rho: jax.Array) -> jax.Array:
    """``sin θ = sqrt((1 - ρ)(1 + ρ))`` for ``θ = arccos ρ`` (see :func:`_sin_and_angle`)."""
    return jnp.sqrt(jnp.maximum((1.0 - rho) * (1.0 + rho), 0.0))


def _reciprocal(sin: jax.Array) -> jax.Array:
    """``1 / sin θ``, taken as 0 at ``ρ = ±1`` (see :func:`arccos`)."""
    return jnp.where(sin > 0, 1.0 / jnp.where(sin > 0, sin, 1.0), 0.0)


@jax.custom_jvp
def arccos(rho: jax.Array) -> jax.Array:
    """``θ = arccos ρ``, accurate at both ends (see :func:`_sin_and_angle`).

    The derivative ``-1/sin θ`` is taken as 0 at ``ρ = ±1``, where the kernels' dependence on ``θ``
    has a symmetric kink (the derivative a central difference sees).
    """
    return _sin_and_angle(rho)[1]


@arccos.defjvp
def _arccos_jvp(primals, tangents):
    (rho,), (drho,) = primals, tangents
    sin, theta = _sin_and_angle(rho)
    return theta, -drho * _reciprocal(sin)


def _with_correlation(correlated: Expectations) -> Expectations:
    """The ``(q1, q2, c)`` form of a ``(q1, q2, ρ)`` form."""

    def expectations(q1, q2, c):
        return correlated(q1, q2, correlation(q1, q2, c))

    return expectations
