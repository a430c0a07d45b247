"""Pooling layers: ``AvgPool``, ``GlobalAvgPool`` and ``Flatten``, which average covariances
over positions (neural-tangents' conventions: ``AvgPool`` without edge normalisation,
``Flatten`` then ``Dense`` scales by ``1/sqrt(prod(P)·C)``).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._layers import (
    Layer,
    Radius,
    Shape,
    Signal,
    _ints,
    _layer,
    _padding,
    _same_length,
    _window_output,
)
from ntk_sklearn.kernels._state import KernelState, pixel_variances


@_layer()
class AvgPool(Layer):
    """Average pooling (no edge normalisation: "SAME" pads zeros and divides by the window).

    Parameters
    ----------
    window_shape : tuple of int, default=(2, 2)
        One entry per spatial axis (an int ``k`` means ``(k, k)``).
    strides : tuple of int, default=None
        ``None`` means ``window_shape``.
    padding : {"VALID", "SAME"}, default="VALID"
    """

    packable = True

    window_shape: tuple[int, ...] = (2, 2)
    strides: tuple[int, ...] | None = None
    padding: str = "VALID"

    def __post_init__(self) -> None:
        window = _ints(self.window_shape, "window_shape")
        object.__setattr__(self, "window_shape", window)
        strides = window if self.strides is None else _ints(self.strides, "strides")
        object.__setattr__(self, "strides", strides)
        _same_length(self, strides, "strides", window, "window_shape")
        object.__setattr__(self, "padding", _padding(self.padding))

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_spatial(shape, self.window_shape, "window")
        return _window_output(self, shape, self.window_shape, self.strides, self.padding, "window")

    def signal(self, signal: Signal) -> Signal:
        return signal.replace(shape=self.output_shape(signal.shape))

    def input_radius(self, radius: Radius) -> Radius:
        # δ' at the output pairs pixels s·δ' + d' − d apart here, for window offsets d, d' < k.
        if radius is None:
            return None
        window, strides = self.window_shape, self.strides
        return tuple(s * r + k - 1 for r, k, s in zip(radius, window, strides, strict=True))

    def mirror_symmetric(self, shape: Shape) -> bool:
        return _spatial.mirror_symmetric(
            shape[-1], self.window_shape[-1], self.strides[-1], self.padding
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
    """Mean over all positions: ``Σ' = mean_{p, p'} Σ[p, p']``; the inputs become vectors."""

    packable = True

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_spatial(shape, None, "")
        return None

    def signal(self, signal: Signal) -> Signal:
        return signal.replace(shape=self.output_shape(signal.shape))

    def input_radius(self, radius: Radius) -> Radius:
        return None

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # a sum over all positions

    def apply(self, state: KernelState) -> KernelState:
        axes = tuple(range(-2 * state.spatial, 0))
        return state.map_linear(lambda a: jnp.mean(a, axis=axes)).replace(layout="fc", spatial=0)


@_layer()
class Flatten(Layer):
    """Positions to features: ``Σ' = mean_p Σ[p, p]`` (a following ``Dense`` has fan-in
    ``prod(P)·C``, the width after ``Flatten``)."""

    packable = True

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_spatial(shape, None, "")
        return None

    def signal(self, signal: Signal) -> Signal:
        self.output_shape(signal.shape)
        width = None if signal.width is None else signal.width * math.prod(signal.shape)
        return signal.replace(shape=None, width=width)

    def input_radius(self, radius: Radius) -> Radius:
        return None if radius is None else (0,) * len(radius)

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # a sum over all positions

    def apply(self, state: KernelState) -> KernelState:
        d = state.spatial
        if state.layout != "diag":
            state = state.map_linear(lambda a: pixel_variances(a, state.layout, d))
        axes = tuple(range(-d, 0))
        return state.map_linear(lambda a: jnp.mean(a, axis=axes)).replace(layout="fc", spatial=0)
