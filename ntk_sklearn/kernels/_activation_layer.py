"""The activation layer: an elementwise nonlinearity on a :class:`KernelState` (pure JAX).

For an activation σ, per pair of positions,

    Σ' = E[σ(u) σ(v)],                  Θ' = Θ · E[σ'(u) σ'(v)]

with ``(u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]])``. The identity leaves the
state as it is (the skip branch of a residual block).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._activations import (
    check_negative_slope,
    check_quadrature_points,
    get_activation,
)
from ntk_sklearn.kernels._layers import Layer, Shape, Signal, _layer
from ntk_sklearn.kernels._nonlinearity import correlation, safe_sqrt
from ntk_sklearn.kernels._state import (
    KernelState,
    grid_variances,
    pixel_variances,
    self_variances,
)


def _snap(rho: jax.Array, tol) -> jax.Array:
    """``ρ`` within ``tol`` of ±1 set to exactly ±1; the derivative passes through unchanged."""
    snapped = jnp.where(rho >= 1.0 - tol, 1.0, jnp.where(rho <= -1.0 + tol, -1.0, rho))
    return rho + jax.lax.stop_gradient(snapped - rho)


@_layer()
class Activation(Layer):
    """Elementwise nonlinearity layer: a registered name or an elementwise JAX callable.

    Parameters
    ----------
    activation : str or callable, default="relu"
        A name of :func:`~ntk_sklearn.kernels.available_activations` or an elementwise,
        differentiable JAX function (its expectations by quadrature).
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs (ignored by other activations).
    quadrature_points : int, default=64
        Nodes per dimension of the quadrature of activations without a closed form.
    """

    activation: str | Callable = "relu"
    negative_slope: float = 0.01
    quadrature_points: int = 64

    def __post_init__(self) -> None:
        object.__setattr__(self, "negative_slope", check_negative_slope(self.negative_slope))
        check_quadrature_points(self.quadrature_points)
        self.nonlinearity  # noqa: B018 - resolves (and validates) the activation now

    @property
    def nonlinearity(self):
        """The cached :class:`~ntk_sklearn.kernels.Nonlinearity` this layer applies."""
        return get_activation(self.activation, self.negative_slope, self.quadrature_points)

    @property
    def packable(self) -> bool:  # type: ignore[override]
        return self.activation == "identity"  # the identity is linear: it changes nothing

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def signal(self, signal: Signal) -> Signal:
        return signal.replace(gaussian=signal.gaussian and self.activation == "identity")

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # pixel by pixel

    def _pair(self, qa, qb, c, tol):
        """``(E[σσ], E[σ'σ'])`` for pre-activation variances ``qa``, ``qb`` and covariance ``c``."""
        nl = self.nonlinearity
        rho = _snap(correlation(qa, qb, c), tol)
        if nl.correlated is not None:
            return nl.correlated(qa, qb, rho)
        return nl.expectations(qa, qb, rho * safe_sqrt(qa) * safe_sqrt(qb))

    def _self(self, cov, layout: str, d: int, tol):
        """The activation on a row-with-itself covariance (same pixel: ``ρ = 1`` exactly)."""
        if layout in ("fc", "diag"):
            return self.nonlinearity.diag(cov)
        radius = _spatial.band_radius(cov, d) if layout == "band" else None
        qa, qb = self_variances(pixel_variances(cov, layout, d), layout, radius)
        return self._pair(qa, qb, cov, tol)

    def apply(self, state: KernelState) -> KernelState:
        if self.activation == "identity":
            return state
        tol = state.rounding * jnp.finfo(state.nngp.dtype).eps
        layout, d = state.layout, state.spatial
        if state.pairs:
            t, t_dot = self._self(state.nngp, layout, d, tol)
            ntk = None if state.ntk is None else state.ntk * t_dot
            return state.replace(nngp=t, ntk=ntk, rounding=8.0).masked()
        q1, q2 = pixel_variances(state.cov1, layout, d), pixel_variances(state.cov2, layout, d)
        radius = _spatial.band_radius(state.nngp, d) if layout == "band" else None
        t, t_dot = self._pair(*grid_variances(q1, q2, layout, radius), state.nngp, tol)
        return state.replace(
            nngp=t,
            ntk=None if state.ntk is None else state.ntk * t_dot,
            cov1=self._self(state.cov1, layout, d, tol)[0],
            cov2=self._self(state.cov2, layout, d, tol)[0],
            rounding=8.0,
        ).masked()


def Relu() -> Activation:  # noqa: N802 - stax-style layer constructor
    """ReLU layer (arc-cosine kernel of degree 1)."""
    return Activation("relu")


def LeakyRelu(negative_slope: float = 0.01) -> Activation:  # noqa: N802
    """Leaky ReLU layer: slope ``negative_slope`` for negative inputs."""
    return Activation("leaky_relu", negative_slope=negative_slope)


def Abs() -> Activation:  # noqa: N802
    """Absolute-value layer."""
    return Activation("abs")


def Erf() -> Activation:  # noqa: N802
    """Error-function layer (Williams' arc-sine kernel)."""
    return Activation("erf")


def Gelu() -> Activation:  # noqa: N802
    """Exact (erf-based) GELU layer."""
    return Activation("gelu")


def Sign() -> Activation:  # noqa: N802
    """Sign layer (its derivative is zero almost everywhere)."""
    return Activation("sign")


def Sin() -> Activation:  # noqa: N802
    """Sine layer."""
    return Activation("sin")


def Identity() -> Activation:  # noqa: N802
    """Identity layer: changes nothing (a deep linear network; the skip branch of a residual
    block, ``parallel(serial(...), Identity())``)."""
    return Activation("identity")
