"""Activations and their Gaussian expectations.

For a pre-activation pair ``(u, v) ~ N(0, [[q1, c], [c, q2]])`` the kernel recursion needs

    T(q1, q2, c)    = E[σ(u) σ(v)]      (next layer's NNGP, before w_std² and b_std²)
    Tdot(q1, q2, c) = E[σ'(u) σ'(v)]    (the derivative kernel that multiplies the NTK)

Each activation is one small :class:`Activation` definition holding the elementwise function and,
where one exists, the closed form of ``(T, Tdot)``. Activations without a closed form fall back to
quadrature (``_quadrature.py``) with the derivative taken by JAX autodiff. To add an
activation, write one factory and call :func:`register_activation`.

All expectation functions are pure, jit-able, and broadcast: the kernel tiles call them with
``q1`` of shape ``(n1, 1)``, ``q2`` of shape ``(1, n2)`` and ``c`` of shape ``(n1, n2)``; the
diagonal recursion calls ``diag(q)`` with ``q`` of shape ``(n,)``, where ``u = v``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels._quadrature import (
    quadrature_diag_expectations,
    quadrature_expectations,
)
from ntk_sklearn.kernels._trig import angle, atan

Expectations = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
DiagExpectations = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

_PI = math.pi


@dataclass(frozen=True, eq=False)
class Activation:
    """An elementwise activation and its Gaussian expectations.

    Instances are hashable by identity and created through a cached factory, so that jit-compiled
    kernel functions keyed on them are compiled once per distinct activation.

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
    """

    name: str
    fn: Callable[[jax.Array], jax.Array]
    expectations: Expectations
    diag: DiagExpectations
    closed_form: bool = True

    def __repr__(self) -> str:
        return f"Activation({self.name!r})"


def _inv_sqrt(q: jax.Array) -> jax.Array:
    """``1/sqrt(q)``, and 0 where ``q == 0`` (a zero input with ``b_std = 0``)."""
    safe = jnp.where(q > 0, q, 1.0)
    return jnp.where(q > 0, 1.0 / jnp.sqrt(safe), 0.0)


def _angle(q1: jax.Array, q2: jax.Array, c: jax.Array):
    """Return ``(sqrt(q1 q2), cos θ, sin θ, θ)`` of the angle between the two pre-activations.

    ``cos θ = c / sqrt(q1 q2)`` is clipped to [-1, 1]; ``sin θ`` is computed as
    ``sqrt((1 - cos θ)(1 + cos θ))`` and ``θ = atan2(sin θ, cos θ)`` (vectorised, ``_trig.py``).
    Row factors are computed once per row, not per entry.
    """
    norm = jnp.sqrt(q1) * jnp.sqrt(q2)
    cos = jnp.clip(c * _inv_sqrt(q1) * _inv_sqrt(q2), -1.0, 1.0)
    sin = jnp.sqrt((1.0 - cos) * (1.0 + cos))
    return norm, cos, sin, angle(sin, cos)


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------


def _ab_relu(name: str, slope: float) -> Activation:
    """``σ(x) = x`` for ``x > 0`` and ``slope·x`` otherwise: relu (0), leaky relu, abs (-1).

    Arc-cosine kernels (Cho & Saul 2009), with ``σ = relu(x) - slope·relu(-x)``:

        A    = (1 + s²)(π - θ) + 2 s θ
        T    = sqrt(q1 q2) / (2π) · ((1 - s)² sin θ + A cos θ)
        Tdot = A / (2π)
    """
    s = float(slope)

    def fn(x):
        return jnp.where(x > 0, x, s * x)

    def expectations(q1, q2, c):
        norm, cos, sin, theta = _angle(q1, q2, c)
        a = (1.0 + s * s) * (_PI - theta) + 2.0 * s * theta
        return norm / (2.0 * _PI) * ((1.0 - s) ** 2 * sin + a * cos), a / (2.0 * _PI)

    def diag(q):
        # θ = 0 exactly: T = (1 + s²) q / 2, Tdot = (1 + s²) / 2.
        half = 0.5 * (1.0 + s * s)
        return half * q, jnp.full_like(q, half)

    return Activation(name, fn, expectations, diag)


def _erf() -> Activation:
    """``σ = erf`` (Williams 1997):

    T    = (2/π) arcsin(2c / sqrt((1 + 2 q1)(1 + 2 q2)))
    Tdot = (4/π) / sqrt((1 + 2 q1)(1 + 2 q2) - 4 c²)
    """

    def expectations(q1, q2, c):
        r = jax.lax.rsqrt(1.0 + 2.0 * q1) * jax.lax.rsqrt(1.0 + 2.0 * q2)
        arg = jnp.clip(2.0 * c * r, -1.0, 1.0)
        # arcsin(a) = atan(a / sqrt(1 - a²)); 1/sqrt(1 - a²) is needed for Tdot anyway.
        inv_cos = jax.lax.rsqrt((1.0 - arg) * (1.0 + arg))
        return (2.0 / _PI) * atan(arg * inv_cos), (4.0 / _PI) * r * inv_cos

    def diag(q):
        # 2q/(1+2q) < 1: arcsin(a) with sqrt(1 - a²) = sqrt(1 + 4q)/(1 + 2q).
        root = jnp.sqrt(1.0 + 4.0 * q)
        return (2.0 / _PI) * atan(2.0 * q / root), (4.0 / _PI) / root

    return Activation("erf", jax.scipy.special.erf, expectations, diag)


def _identity() -> Activation:
    """``σ(x) = x``: T = c, Tdot = 1 (a deep linear network)."""

    def expectations(q1, q2, c):
        return c, jnp.ones_like(c)

    def diag(q):
        return q, jnp.ones_like(q)

    return Activation("identity", lambda x: x, expectations, diag)


def _gelu() -> Activation:
    """Exact (erf-based) GELU ``σ(x) = x Φ(x)`` (Tsuchida et al. 2020; neural-tangents' form).

    With ``Δ² = (1 + q1)(1 + q2) - c²`` and ``φ = atan2(c, Δ)``:

        N    = c² + q1 q2 Δ²
        T    = [N / ((1 + q1)(1 + q2) Δ) + c φ] / (2π) + c / 4

    and ``Tdot = ∂T/∂c`` (Price's theorem: ∂/∂c E[σ(u)σ(v)] = E[σ'(u)σ'(v)]), using
    ``∂Δ/∂c = -c/Δ`` and ``∂φ/∂c = 1/Δ``:

        Tdot = 1/4 + [φ + (c/Δ)(1 + 2(1 - q1 q2) / ((1 + q1)(1 + q2)))
                      + N c / ((1 + q1)(1 + q2) Δ³)] / (2π)
    """

    def expectations(q1, q2, c):
        p1 = (1.0 + q1) * (1.0 + q2)
        pq = q1 * q2
        delta2 = p1 - c * c
        delta = jnp.sqrt(delta2)
        phi = atan(c / delta)
        n = c * c + pq * delta2
        t = (n / (p1 * delta) + c * phi) / (2.0 * _PI) + 0.25 * c
        tdot = 0.25 + (
            phi + c / delta * (1.0 + 2.0 * (1.0 - pq) / p1) + n * c / (p1 * delta * delta2)
        ) / (2.0 * _PI)
        return t, tdot

    def diag(q):
        return expectations(q, q, q)

    return Activation("gelu", lambda x: jax.nn.gelu(x, approximate=False), expectations, diag)


def _sign() -> Activation:
    """``σ = sign``: T = (2/π) arcsin(cos θ) = 1 - 2θ/π.

    ``Tdot = 0``: the derivative of ``sign`` is zero almost everywhere, which is what gradients of a
    finite network (and neural-tangents) see, so only the readout layers contribute to the NTK.
    """

    def expectations(q1, q2, c):
        _, _, _, theta = _angle(q1, q2, c)
        return 1.0 - 2.0 * theta / _PI, jnp.zeros_like(c)

    def diag(q):
        return jnp.where(q > 0, 1.0, 0.0).astype(q.dtype), jnp.zeros_like(q)

    return Activation("sign", jnp.sign, expectations, diag)


def _sin() -> Activation:
    """``σ = sin``: T = e^{-(q1+q2)/2} sinh(c), Tdot = e^{-(q1+q2)/2} cosh(c).

    Written as ``(e^{c-m} ∓ e^{-c-m}) / 2`` with ``m = (q1+q2)/2 ≥ |c|``, which cannot overflow.
    """

    def expectations(q1, q2, c):
        m = 0.5 * (q1 + q2)
        plus, minus = jnp.exp(c - m), jnp.exp(-c - m)
        return 0.5 * (plus - minus), 0.5 * (plus + minus)

    def diag(q):
        return expectations(q, q, q)

    return Activation("sin", jnp.sin, expectations, diag)


# --------------------------------------------------------------------------------------------
# Quadrature fallback for any elementwise function
# --------------------------------------------------------------------------------------------


def _derivative(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Elementwise derivative of an elementwise ``fn`` by autodiff."""
    return jax.grad(lambda x: jnp.sum(fn(x)))


def quadrature_activation(
    fn: Callable[[jax.Array], jax.Array], name: str | None = None, n_points: int = 64
) -> Activation:
    """Wrap any elementwise JAX function; its expectations use two-dimensional quadrature.

    Parameters
    ----------
    fn : callable
        Elementwise, JAX-traceable and differentiable (``jax.grad`` gives ``σ'``).
    name : str, optional
        Display name; defaults to ``fn.__name__``.
    n_points : int, default=64
        Quadrature nodes per dimension (cost grows as ``n_points²`` per kernel entry).
    """
    dfn = _derivative(fn)

    def expectations(q1, q2, c):
        return quadrature_expectations(fn, dfn, q1, q2, c, n_points)

    def diag(q):
        return quadrature_diag_expectations(fn, dfn, q, n_points)

    label = name or getattr(fn, "__name__", repr(fn))
    return Activation(label, fn, expectations, diag, closed_form=False)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_CLOSED_FORMS: dict[str, Callable[..., Activation]] = {
    "relu": lambda negative_slope: _ab_relu("relu", 0.0),
    "leaky_relu": lambda negative_slope: _ab_relu("leaky_relu", negative_slope),
    "abs": lambda negative_slope: _ab_relu("abs", -1.0),
    "erf": lambda negative_slope: _erf(),
    "identity": lambda negative_slope: _identity(),
    "gelu": lambda negative_slope: _gelu(),
    "sign": lambda negative_slope: _sign(),
    "sin": lambda negative_slope: _sin(),
}

_QUADRATURE_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
}


def register_activation(name: str, factory: Callable[..., Activation]) -> None:
    """Register a closed-form activation under ``name``.

    ``factory(negative_slope)`` must return an :class:`Activation`. Registering a name that exists
    replaces it.
    """
    _CLOSED_FORMS[name] = factory
    _build.cache_clear()


def available_activations() -> tuple[str, ...]:
    """Names accepted by ``activation=``: closed forms first, then quadrature-based ones."""
    return tuple(_CLOSED_FORMS) + tuple(_QUADRATURE_FUNCTIONS)


def get_activation(
    activation: str | Callable[[jax.Array], jax.Array],
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> Activation:
    """Return the (cached) :class:`Activation` for a name or an elementwise callable.

    Arguments an activation does not use are ignored, so equal activations are the same object
    (and jit-compiled kernels are not recompiled for them).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if callable(activation):
        return _build(activation, None, int(quadrature_points))
    if activation in _CLOSED_FORMS:
        slope = float(negative_slope) if activation == "leaky_relu" else None
        return _build(activation, slope, None)
    if activation in _QUADRATURE_FUNCTIONS:
        return _build(activation, None, int(quadrature_points))
    raise ValueError(
        f"Unknown activation {activation!r}; expected one of {available_activations()} "
        "or an elementwise JAX-traceable callable."
    )


@lru_cache(maxsize=256)
def _build(activation, negative_slope, quadrature_points) -> Activation:
    if callable(activation):
        return quadrature_activation(activation, n_points=quadrature_points)
    if activation in _CLOSED_FORMS:
        return _CLOSED_FORMS[activation](negative_slope)
    return quadrature_activation(
        _QUADRATURE_FUNCTIONS[activation], name=activation, n_points=quadrature_points
    )
