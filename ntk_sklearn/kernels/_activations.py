"""Activations and their Gaussian expectations.

For a pre-activation pair ``(u, v) ~ N(0, [[q1, c], [c, q2]])`` the kernel recursion needs

    T(q1, q2, c)    = E[σ(u) σ(v)]      (next layer's NNGP, before w_std² and b_std²)
    Tdot(q1, q2, c) = E[σ'(u) σ'(v)]    (the derivative kernel that multiplies the NTK)

Each activation is one small :class:`Nonlinearity` definition holding the elementwise function and,
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
import numpy as np

from ntk_sklearn._validation import InvalidArgumentError
from ntk_sklearn.kernels._arc_cosine import arc_cosine_terms
from ntk_sklearn.kernels._quadrature import (
    quadrature_diag_expectations,
    quadrature_expectations,
)
from ntk_sklearn.kernels._trig import angle, atan

Expectations = Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
DiagExpectations = Callable[[jax.Array], tuple[jax.Array, jax.Array]]

_PI = math.pi


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


# --------------------------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Quadrature fallback for any elementwise function
# --------------------------------------------------------------------------------------------


def _derivative(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Elementwise derivative of an elementwise ``fn`` by autodiff."""
    return jax.grad(lambda x: jnp.sum(fn(x)))


def quadrature_activation(
    fn: Callable[[jax.Array], jax.Array], name: str | None = None, n_points: int = 64
) -> Nonlinearity:
    """Wrap any elementwise JAX function; its expectations use two-dimensional quadrature.

    Parameters
    ----------
    fn : callable
        Elementwise, JAX-traceable and differentiable (``jax.grad`` gives ``σ'``).
    name : str, optional
        Display name; defaults to ``fn.__name__``.
    n_points : int, default=64
        Resolution of the quadrature (radial step ``22 / n_points`` of a polar rule, see
        ``_quadrature.py``); the cost per kernel entry is about ``n_points²`` angle-radius pairs,
        each evaluating ``fn`` and its derivative at four points.
    """
    dfn = _derivative(fn)

    def expectations(q1, q2, c):
        return quadrature_expectations(fn, dfn, q1, q2, c, n_points)

    def diag(q):
        return quadrature_diag_expectations(fn, dfn, q, n_points)

    label = name or getattr(fn, "__name__", repr(fn))
    return Nonlinearity(label, fn, expectations, diag, closed_form=False)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_CLOSED_FORMS: dict[str, Callable[..., Nonlinearity]] = {
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


def register_activation(name: str, factory: Callable[..., Nonlinearity]) -> None:
    """Register a closed-form activation under ``name``.

    ``factory(negative_slope)`` must return a :class:`Nonlinearity`. Registering a name that exists
    replaces it.
    """
    _CLOSED_FORMS[name] = factory
    _build.cache_clear()


def available_activations() -> tuple[str, ...]:
    """Names accepted by ``activation=``: closed forms first, then quadrature-based ones."""
    return tuple(_CLOSED_FORMS) + tuple(_QUADRATURE_FUNCTIONS)


#: Smallest ``quadrature_points`` accepted (coarser rules are not accurate to 1e-4).
MIN_QUADRATURE_POINTS = 16
#: Largest ``quadrature_points`` accepted: the cost per kernel entry grows as its square.
MAX_QUADRATURE_POINTS = 256
#: Largest ``|negative_slope|`` accepted (its square enters the kernels).
MAX_NEGATIVE_SLOPE = 1e6


def check_negative_slope(negative_slope) -> float:
    """Validate ``negative_slope``: a finite real number with ``|slope| <= 1e6``."""
    if isinstance(negative_slope, bool) or not _is_real_scalar(negative_slope):
        raise InvalidArgumentError(f"negative_slope must be a real number; got {negative_slope!r}.")
    slope = float(negative_slope)
    if not math.isfinite(slope) or abs(slope) > MAX_NEGATIVE_SLOPE:
        raise ValueError(
            f"negative_slope must be finite with |negative_slope| <= {MAX_NEGATIVE_SLOPE:g}; "
            f"got {negative_slope!r}."
        )
    return slope


def check_quadrature_points(quadrature_points) -> int:
    """Validate ``quadrature_points``: an integer in ``[2, MAX_QUADRATURE_POINTS]``."""
    if (
        isinstance(quadrature_points, bool)
        or not isinstance(quadrature_points, (int, np.integer))
        or not MIN_QUADRATURE_POINTS <= quadrature_points <= MAX_QUADRATURE_POINTS
    ):
        raise ValueError(
            f"quadrature_points must be an integer in [{MIN_QUADRATURE_POINTS}, "
            f"{MAX_QUADRATURE_POINTS}] (the cost per "
            f"kernel entry grows as its square); got {quadrature_points!r}."
        )
    return int(quadrature_points)


def _is_real_scalar(value) -> bool:
    return np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf"


def get_activation(
    activation: str | Callable[[jax.Array], jax.Array],
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> Nonlinearity:
    """Return the (cached) :class:`Nonlinearity` for a name or an elementwise callable.

    Arguments an activation does not use are ignored, so equal activations are the same object
    (and jit-compiled kernels are not recompiled for them). A callable is checked once: it must
    be JAX-traceable, elementwise and differentiable.

    Raises
    ------
    ValueError
        For an unknown name, a callable that JAX cannot trace (``np.tanh``, Python branching on
        values), or invalid ``negative_slope`` / ``quadrature_points``.
    """
    if callable(activation):
        return _build(_CallableKey(activation), None, check_quadrature_points(quadrature_points))
    if activation in _CLOSED_FORMS:
        slope = check_negative_slope(negative_slope) if activation == "leaky_relu" else None
        return _build(activation, slope, None)
    if activation in _QUADRATURE_FUNCTIONS:
        return _build(activation, None, check_quadrature_points(quadrature_points))
    raise ValueError(
        f"Unknown activation {activation!r}; expected one of {available_activations()} "
        "or an elementwise JAX-traceable callable."
    )


class _CallableKey:
    """Cache key of a callable activation.

    A module-level function is keyed by its import path, so that copies of it (scikit-learn's
    ``clone`` deep-copies parameters, and a deep copy of a jitted function is a new object) share
    one compiled kernel; anything else (lambdas, closures) by identity.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
        named = module and qualname and "<" not in qualname
        self.key = (module, qualname) if named else id(fn)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _CallableKey) and (
            self.key == other.key if isinstance(self.key, tuple) else self.fn is other.fn
        )


def _check_traceable(fn: Callable) -> None:
    """Refuse, with the reason, a callable that is not an elementwise JAX-traceable function."""
    probe = jax.ShapeDtypeStruct((3,), jnp.float32)
    name = getattr(fn, "__name__", repr(fn))
    try:
        # Through a Python function: JAX 0.10 segfaults when a NumPy ufunc (np.tanh) is given
        # to jax.eval_shape a second time in a process.
        out = jax.eval_shape(lambda z: fn(z), probe)
        jax.eval_shape(_derivative(fn), probe)
    except Exception as exc:  # noqa: BLE001 - any failure means the callable is unusable
        raise ValueError(
            f"activation {name!r} is not a JAX-traceable, differentiable elementwise function "
            f"({type(exc).__name__}). Use jax.numpy functions (jnp.tanh, not np.tanh) and "
            "jnp.where instead of Python if/else on values."
        ) from None
    if getattr(out, "shape", None) != (3,):
        raise ValueError(
            f"activation {name!r} must be elementwise (same output shape as its input); "
            f"it maps shape (3,) to {getattr(out, 'shape', type(out).__name__)}."
        )


@lru_cache(maxsize=256)
def _build(activation, negative_slope, quadrature_points) -> Nonlinearity:
    if isinstance(activation, _CallableKey):
        _check_traceable(activation.fn)
        return quadrature_activation(activation.fn, n_points=quadrature_points)
    if activation in _CLOSED_FORMS:
        return _CLOSED_FORMS[activation](negative_slope)
    return quadrature_activation(
        _QUADRATURE_FUNCTIONS[activation], name=activation, n_points=quadrature_points
    )
