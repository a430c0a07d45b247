"""Layers of infinitely wide networks, each a small pure function on a :class:`KernelState`.

The names mirror neural-tangents' ``stax`` so that its users can port code: ``Dense``, ``Conv``,
``AvgPool``, ``GlobalAvgPool``, ``Flatten`` and activation layers. Parameterization is NTK
(``z = w_std / sqrt(fan_in) · W x + b_std · b``), so for every affine layer

    Σ' = w_std² · A(Σ) + b_std²,        Θ' = w_std² · A(Θ) + Σ'

with ``A`` the identity for ``Dense`` and the convolution's box filter for ``Conv`` (fan-in
``C·kh·kw``: the channel average is in ``Σ``, the ``1/(kh kw)`` in ``A``); for an activation σ

    Σ' = E[σ(u) σ(v)],                  Θ' = Θ · E[σ'(u) σ'(v)]

with ``(u, v) ~ N(0, [[Σ(x, x), Σ(x, x')], [Σ(x, x'), Σ(x', x')]])`` per pixel pair. Pooling and
``Flatten`` average covariances over pixels (neural-tangents' conventions: ``AvgPool`` without
edge normalisation, ``Flatten`` then ``Dense`` scales by ``1/sqrt(H·W·C)``).

Layers are frozen dataclasses: printable, comparable, hashable, picklable, and pytrees whose
leaves are ``w_std`` and ``b_std`` (so ``jax.grad`` differentiates a kernel with respect to
every layer's hyperparameters). Constructors validate their arguments; a shape that does not fit
(a filter larger than the image, a dense layer fed images) is refused by
:meth:`Layer.output_shape` before anything is computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import check_scalar, is_traced
from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._activations import (
    check_negative_slope,
    check_quadrature_points,
    correlation,
    get_activation,
    safe_sqrt,
)
from ntk_sklearn.kernels._state import (
    KernelState,
    grid_variances,
    pixel_variances,
    self_variances,
)

#: Pixel offsets ``(rh, rw)`` of the pairs whose covariances a layer's output must carry;
#: ``None``: all pairs.
Radius = tuple[int, int] | None

#: Input shape of a layer: ``None`` for vectors, ``(H, W)`` for images (channels do not matter
#: to an infinitely wide layer's kernel).
Shape = tuple[int, int] | None


def _layer(*data_fields: str):
    """Register a frozen dataclass layer as a pytree whose leaves are ``data_fields``.

    Unflattening bypasses ``__init__`` so that JAX can rebuild layers around tracers and
    placeholders without running the user-facing validation.
    """

    def register(cls):
        cls = dataclasses.dataclass(frozen=True)(cls)
        meta = [f.name for f in dataclasses.fields(cls) if f.name not in data_fields]

        def flatten(layer):
            children = tuple(getattr(layer, name) for name in data_fields)
            return children, tuple(getattr(layer, name) for name in meta)

        def unflatten(aux, children):
            layer = object.__new__(cls)
            values = (*zip(meta, aux, strict=True), *zip(data_fields, children, strict=True))
            for name, value in values:
                object.__setattr__(layer, name, value)
            return layer

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        return cls

    return register


def _hyper(layer, name: str) -> None:
    """Validate a std (finite, >= 0) and store it as a float; tracers pass through."""
    value = getattr(layer, name)
    if not is_traced(value):
        object.__setattr__(layer, name, check_scalar(value, name))


def _pair(value, name: str, *, positive: bool = True) -> tuple[int, int]:
    """A pair of positive integers (``3`` means ``(3, 3)``)."""
    items = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and (v >= 1 or not positive)
        for v in items
    ):
        raise ValueError(
            f"{name} must be a pair of positive integers (height, width); got {value!r}."
        )
    return int(items[0]), int(items[1])


def _padding(value) -> str:
    if not isinstance(value, str) or value.upper() not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID'; got {value!r}.")
    return value.upper()


class Layer:
    """Base of the layers: ``apply(state) -> state`` and a static shape check."""

    #: Whether ``apply`` maps every covariance of the state by one linear map
    #: (``state.map_linear``), so that it may also be given a state whose NTK is packed into
    #: the NNGP's imaginary part (:meth:`KernelState.pack`), as loops over layers leave it.
    packable: ClassVar[bool] = False

    def output_shape(self, shape: Shape) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply(self, state: KernelState) -> KernelState:  # pragma: no cover - abstract
        raise NotImplementedError

    def input_radius(self, radius: Radius) -> Radius:
        """The pair offsets this layer reads to give its output those within ``radius``."""
        return radius

    def mirror_symmetric(self, shape: Shape) -> bool:
        """Whether the layer commutes with flipping its input images horizontally.

        ``False`` unless a layer says so: a new spatial layer is not assumed to commute.
        """
        return shape is None

    def _needs_vectors(self, shape: Shape) -> None:
        if shape is not None:
            raise ValueError(
                f"{self!r} takes vectors but receives images of shape {shape}: add Flatten() or "
                "GlobalAvgPool() before it."
            )

    def _needs_images(self, shape: Shape) -> None:
        if shape is None:
            raise ValueError(
                f"{self!r} takes images (n, height, width, channels) but receives vectors: give "
                "it image inputs (or image_shape= in the estimators) and place it before Flatten."
            )


def _affine(state: KernelState, linear: Callable, w_std, b_std, rounding: float) -> KernelState:
    """``Σ' = w² A(Σ) + b²``, ``Θ' = w² A(Θ) + Σ'`` on every covariance of the state."""
    w2, b2 = w_std**2, b_std**2
    nngp = w2 * linear(state.nngp) + b2
    if state.ntk is None:
        ntk = None
    else:
        ntk = nngp if state.ntk_zero else w2 * linear(state.ntk) + nngp
    return state.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=None if state.cov1 is None else w2 * linear(state.cov1) + b2,
        cov2=None if state.cov2 is None else w2 * linear(state.cov2) + b2,
        rounding=state.rounding + rounding,
    ).masked()


@_layer("w_std", "b_std")
class Dense(Layer):
    """Fully-connected layer ``z = w_std / sqrt(fan_in) · W x + b_std · b``.

    Parameters
    ----------
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    """

    w_std: float = 1.0
    b_std: float = 0.0

    def __post_init__(self) -> None:
        _hyper(self, "w_std")
        _hyper(self, "b_std")

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_vectors(shape)
        return None

    def apply(self, state: KernelState) -> KernelState:
        return _affine(state, lambda a: a, self.w_std, self.b_std, 4.0)


@_layer("w_std", "b_std")
class Conv(Layer):
    """2-D convolution over NHWC images in NTK parameterization (``w_std / sqrt(C·kh·kw)``).

    Parameters
    ----------
    filter_shape : (int, int), default=(3, 3)
    strides : (int, int), default=(1, 1)
    padding : {"SAME", "VALID"}, default="SAME"
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    """

    filter_shape: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    w_std: float = 1.0
    b_std: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "filter_shape", _pair(self.filter_shape, "filter_shape"))
        object.__setattr__(self, "strides", _pair(self.strides, "strides"))
        object.__setattr__(self, "padding", _padding(self.padding))
        _hyper(self, "w_std")
        _hyper(self, "b_std")

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_images(shape)
        return _window_output(self, shape, self.filter_shape, self.strides, self.padding, "filter")

    def input_radius(self, radius: Radius) -> Radius:
        # The offset of a pair is kept, in units of the stride: δ' at the output is s·δ here.
        if radius is None:
            return None
        return self.strides[0] * radius[0], self.strides[1] * radius[1]

    def mirror_symmetric(self, shape: Shape) -> bool:
        # The weights are i.i.d., so only the set of windows along the width matters.
        return _spatial.mirror_symmetric(
            shape[1], self.filter_shape[1], self.strides[1], self.padding
        )

    def apply(self, state: KernelState) -> KernelState:
        op = {"full": _spatial.conv_full, "band": _spatial.conv_band}.get(
            state.layout, _spatial.conv_diag
        )
        kh, kw = self.filter_shape
        return _affine(
            state,
            lambda a: op(a, self.filter_shape, self.strides, self.padding),
            self.w_std,
            self.b_std,
            4.0 + 2.0 * (kh * kw) ** 0.5,
        )


def _window_output(layer, shape, window, strides, padding, what: str) -> tuple[int, int]:
    out = tuple(
        _spatial.out_size(size, k, s, padding)
        for size, k, s in zip(shape, window, strides, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"{layer!r}: the {what} {window} does not fit images of {shape[0]}x{shape[1]} pixels "
            f"with padding {padding!r}; use a smaller {what}, padding='SAME', or fewer "
            "size-reducing layers before it."
        )
    return out


@_layer()
class AvgPool(Layer):
    """Average pooling (no edge normalisation: "SAME" pads zeros and divides by the window).

    Parameters
    ----------
    window_shape : (int, int)
    strides : (int, int), default=None
        ``None`` means ``window_shape``.
    padding : {"VALID", "SAME"}, default="VALID"
    """

    packable = True

    window_shape: tuple[int, int] = (2, 2)
    strides: tuple[int, int] | None = None
    padding: str = "VALID"

    def __post_init__(self) -> None:
        window = _pair(self.window_shape, "window_shape")
        object.__setattr__(self, "window_shape", window)
        strides = window if self.strides is None else _pair(self.strides, "strides")
        object.__setattr__(self, "strides", strides)
        object.__setattr__(self, "padding", _padding(self.padding))

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_images(shape)
        return _window_output(self, shape, self.window_shape, self.strides, self.padding, "window")

    def input_radius(self, radius: Radius) -> Radius:
        # δ' at the output pairs pixels s·δ' + d' − d apart here, for window offsets d, d' < k.
        if radius is None:
            return None
        window, strides = self.window_shape, self.strides
        return tuple(s * r + k - 1 for r, k, s in zip(radius, window, strides, strict=True))

    def mirror_symmetric(self, shape: Shape) -> bool:
        return _spatial.mirror_symmetric(
            shape[1], self.window_shape[1], self.strides[1], self.padding
        )

    def apply(self, state: KernelState) -> KernelState:
        pool = _spatial.pool_band if state.layout == "band" else _spatial.pool_full
        if state.layout == "diag":
            # Only a 1x1 window reads same-pixel pairs (``input_radius`` (0, 0)): then
            # Σ'[o, o] = Σ[s·o, s·o], the strided subsample that the 1x1 box filter computes.
            pool = _spatial.conv_diag
        return state.map_linear(
            lambda a: pool(a, self.window_shape, self.strides, self.padding)
        ).masked()


@_layer()
class GlobalAvgPool(Layer):
    """Mean over all pixels: ``Σ' = mean_{p, p'} Σ[p, p']``; images become vectors."""

    packable = True

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_images(shape)
        return None

    def input_radius(self, radius: Radius) -> Radius:
        return None

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # a sum over all pixels

    def apply(self, state: KernelState) -> KernelState:
        return state.map_linear(lambda a: jnp.mean(a, axis=(-4, -3, -2, -1))).replace(layout="fc")


@_layer()
class Flatten(Layer):
    """Images to vectors: ``Σ' = mean_p Σ[p, p]`` (a following ``Dense`` has fan-in H·W·C)."""

    packable = True

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_images(shape)
        return None

    def input_radius(self, radius: Radius) -> Radius:
        return (0, 0)

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # a sum over all pixels

    def apply(self, state: KernelState) -> KernelState:
        if state.layout != "diag":
            state = state.map_linear(lambda a: pixel_variances(a, state.layout))
        return state.map_linear(lambda a: jnp.mean(a, axis=(-2, -1))).replace(layout="fc")


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

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # pixel by pixel

    def _pair(self, qa, qb, c, tol):
        """``(E[σσ], E[σ'σ'])`` for pre-activation variances ``qa``, ``qb`` and covariance ``c``."""
        nl = self.nonlinearity
        rho = _snap(correlation(qa, qb, c), tol)
        if nl.correlated is not None:
            return nl.correlated(qa, qb, rho)
        return nl.expectations(qa, qb, rho * safe_sqrt(qa) * safe_sqrt(qb))

    def _self(self, cov, layout: str, tol):
        """The activation on a row-with-itself covariance (same pixel: ``ρ = 1`` exactly)."""
        if layout in ("fc", "diag"):
            return self.nonlinearity.diag(cov)
        radius = _spatial.band_radius(cov) if layout == "band" else None
        qa, qb = self_variances(pixel_variances(cov, layout), layout, radius)
        return self._pair(qa, qb, cov, tol)

    def apply(self, state: KernelState) -> KernelState:
        tol = state.rounding * jnp.finfo(state.nngp.dtype).eps
        layout = state.layout
        if state.pairs:
            t, t_dot = self._self(state.nngp, layout, tol)
            ntk = None if state.ntk is None else state.ntk * t_dot
            return state.replace(nngp=t, ntk=ntk, rounding=8.0).masked()
        q1, q2 = pixel_variances(state.cov1, layout), pixel_variances(state.cov2, layout)
        radius = _spatial.band_radius(state.nngp) if layout == "band" else None
        t, t_dot = self._pair(*grid_variances(q1, q2, layout, radius), state.nngp, tol)
        return state.replace(
            nngp=t,
            ntk=None if state.ntk is None else state.ntk * t_dot,
            cov1=self._self(state.cov1, layout, tol)[0],
            cov2=self._self(state.cov2, layout, tol)[0],
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
    """Identity activation (a deep linear network)."""
    return Activation("identity")
