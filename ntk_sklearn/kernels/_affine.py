"""Weighted layers: ``Dense`` and ``Conv``, and the affine covariance map they share.

In the NTK parameterization (``z = w_std / sqrt(fan_in) · W x + b_std · b``) every affine layer
maps

    Σ' = w_std² · A(Σ) + b_std²,        Θ' = w_std² · A(Θ) + Σ'

with ``A`` the identity for ``Dense`` and the convolution's box filter for ``Conv`` (fan-in
``C·prod(filter)``: the channel average is in ``Σ``, the ``1/prod(filter)`` in ``A``). In the
standard parameterization (``z = W x + b`` with ``W ~ N(0, w_std²/fan_in)``; Sohl-Dickstein et
al. 2020, neural-tangents' ``s=(1, 1)``) the NNGP is the same and

    Θ' = fan_in · A(Σ) + w_std² · A(Θ) + 1

(the ``1`` is the bias's gradient; neural-tangents adds it for any numeric ``b_std``, so here
too, ``b_std=0`` included).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._layers import (
    Layer,
    Radius,
    Shape,
    Signal,
    _hyper,
    _ints,
    _layer,
    _padding,
    _repr,
    _same_length,
    _window_output,
)
from ntk_sklearn.kernels._state import KernelState


def _parameterization(layer) -> None:
    value = layer.parameterization
    if not isinstance(value, str) or value.lower() not in ("ntk", "standard"):
        raise ValueError(f"parameterization must be 'ntk' or 'standard'; got {value!r}.")
    object.__setattr__(layer, "parameterization", value.lower())
    width = layer.width
    if width is not None and (
        not isinstance(width, (int, np.integer)) or isinstance(width, bool) or width < 1
    ):
        raise ValueError(f"width must be None or a positive integer (channels); got {width!r}.")
    if width is not None:
        object.__setattr__(layer, "width", int(width))


def _affine(state: KernelState, linear: Callable, w_std, b_std, rounding: float) -> KernelState:
    """``Σ' = w² A(Σ) + b²``, ``Θ' = w² A(Θ) + Σ'`` on every covariance of the state."""
    w2, b2 = w_std**2, b_std**2
    nngp = w2 * linear(state.nngp) + b2
    if state.ntk is None:
        ntk = None
    else:
        ntk = nngp if state.ntk_zero else w2 * linear(state.ntk) + nngp
    return _affine_rest(state, linear, w2, b2, nngp, ntk, rounding)


def _standard_affine(
    state: KernelState, linear: Callable, w_std, b_std, fan_in: int, rounding: float
) -> KernelState:
    """Standard parameterization: ``Σ' = w² A(Σ) + b²``, ``Θ' = fan_in·A(Σ) + w² A(Θ) + 1``."""
    w2, b2 = w_std**2, b_std**2
    mixed = linear(state.nngp)
    nngp = w2 * mixed + b2
    if state.ntk is None:
        ntk = None
    elif state.ntk_zero:
        ntk = fan_in * mixed + 1.0
    else:
        ntk = fan_in * mixed + w2 * linear(state.ntk) + 1.0
    return _affine_rest(state, linear, w2, b2, nngp, ntk, rounding)


def _affine_rest(state, linear, w2, b2, nngp, ntk, rounding: float) -> KernelState:
    return state.replace(
        nngp=nngp,
        ntk=ntk,
        cov1=None if state.cov1 is None else w2 * linear(state.cov1) + b2,
        cov2=None if state.cov2 is None else w2 * linear(state.cov2) + b2,
        rounding=state.rounding + rounding,
    ).masked()


@_layer("w_std", "b_std")
class Dense(Layer):
    """Fully-connected layer ``z = w_std / sqrt(fan_in) · W x + b_std · b`` (NTK
    parameterization) or ``z = W x + b``, ``W ~ N(0, w_std² / fan_in)`` (standard).

    Parameters
    ----------
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    parameterization : {"ntk", "standard"}, default="ntk"
        The standard parameterization's NTK depends on the layer's input width (see the module
        docstring): the features of the inputs, or the ``width`` of the layer before.
    width : int, default=None
        Output channels of the finite network: read by a following standard layer and by
        ``FanInConcat`` (the NNGP and this layer's own NTK do not depend on it).
    """

    w_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"
    width: int | None = None

    def __post_init__(self) -> None:
        _hyper(self, "w_std")
        _hyper(self, "b_std")
        _parameterization(self)

    def __repr__(self) -> str:
        return _repr(self, {"parameterization": "ntk", "width": None})

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_vectors(shape)
        return None

    def signal(self, signal: Signal) -> Signal:
        self.output_shape(signal.shape)
        _check_input_width(self, signal)
        return signal.weighted(None, self.width)

    def fan_in(self, width: int) -> int:
        """Fan-in of a standard layer whose input has ``width`` channels."""
        return width

    def bound(self, signal: Signal):
        return signal.width if self.parameterization == "standard" else None

    def apply(self, state: KernelState, input_width: int | None = None) -> KernelState:
        if self.parameterization == "standard":
            return _standard_affine(
                state, lambda a: a, self.w_std, self.b_std, self.fan_in(input_width), 4.0
            )
        return _affine(state, lambda a: a, self.w_std, self.b_std, 4.0)


def _check_input_width(layer, signal: Signal) -> None:
    if layer.parameterization == "standard" and signal.width is None:
        raise ValueError(
            f"{layer!r} is in the standard parameterization, whose NTK depends on its input "
            "width, but the layer before it does not say its width: give that Dense/Conv "
            "layer width=<channels of the finite network>."
        )


@_layer("w_std", "b_std")
class Conv(Layer):
    """Convolution over channels-last inputs in NTK (``w_std / sqrt(C·prod(filter))``) or
    standard parameterization.

    Parameters
    ----------
    filter_shape : tuple of int, default=(3, 3)
        One entry per spatial axis: ``(3,)`` for sequences ``(n, L, C)``, ``(3, 3)`` for images
        ``(n, H, W, C)``, ``(3, 3, 3)`` for volumes ``(n, D, H, W, C)``. An int ``k`` means
        ``(k, k)``.
    strides : tuple of int, default=None
        ``None`` means 1 along every axis.
    padding : {"SAME", "VALID"}, default="SAME"
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    parameterization : {"ntk", "standard"}, default="ntk"
        As in :class:`Dense`; the standard fan-in is ``C·prod(filter_shape)``.
    width : int, default=None
        Output channels of the finite network (see :class:`Dense`).
    """

    filter_shape: tuple[int, ...] = (3, 3)
    strides: tuple[int, ...] | None = None
    padding: str = "SAME"
    w_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"
    width: int | None = None

    def __post_init__(self) -> None:
        filter_shape = _ints(self.filter_shape, "filter_shape")
        object.__setattr__(self, "filter_shape", filter_shape)
        strides = (1,) * len(filter_shape) if self.strides is None else self.strides
        object.__setattr__(self, "strides", _ints(strides, "strides"))
        _same_length(self, self.strides, "strides", filter_shape, "filter_shape")
        object.__setattr__(self, "padding", _padding(self.padding))
        _hyper(self, "w_std")
        _hyper(self, "b_std")
        _parameterization(self)

    def __repr__(self) -> str:
        return _repr(self, {"parameterization": "ntk", "width": None})

    def output_shape(self, shape: Shape) -> Shape:
        self._needs_spatial(shape, self.filter_shape, "filter")
        return _window_output(self, shape, self.filter_shape, self.strides, self.padding, "filter")

    def signal(self, signal: Signal) -> Signal:
        shape = self.output_shape(signal.shape)
        _check_input_width(self, signal)
        return signal.weighted(shape, self.width)

    def fan_in(self, width: int) -> int:
        """Fan-in of a standard layer whose input has ``width`` channels."""
        return width * math.prod(self.filter_shape)

    def bound(self, signal: Signal):
        return signal.width if self.parameterization == "standard" else None

    def input_radius(self, radius: Radius) -> Radius:
        # The offset of a pair is kept, in units of the stride: δ' at the output is s·δ here.
        if radius is None:
            return None
        return tuple(s * r for s, r in zip(self.strides, radius, strict=True))

    def mirror_symmetric(self, shape: Shape) -> bool:
        # The weights are i.i.d., so only the set of windows along the flipped axis matters.
        return _spatial.mirror_symmetric(
            shape[-1], self.filter_shape[-1], self.strides[-1], self.padding
        )

    def apply(self, state: KernelState, input_width: int | None = None) -> KernelState:
        op = {"full": _spatial.conv_full, "band": _spatial.conv_band}.get(
            state.layout, _spatial.conv_diag
        )

        def linear(a):
            return op(a, self.filter_shape, self.strides, self.padding)

        rounding = 4.0 + 2.0 * math.prod(self.filter_shape) ** 0.5
        if self.parameterization == "standard":
            fan_in = self.fan_in(input_width)
            return _standard_affine(state, linear, self.w_std, self.b_std, fan_in, rounding)
        return _affine(state, linear, self.w_std, self.b_std, rounding)
