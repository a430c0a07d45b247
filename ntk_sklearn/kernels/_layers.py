"""Layers of infinitely wide networks, each a small pure function on a :class:`KernelState`.

The names mirror neural-tangents' ``stax`` so that its users can port code: ``Dense``, ``Conv``,
``AvgPool``, ``GlobalAvgPool``, ``Flatten`` (here), activation layers (``_activation_layer``),
branching (``_branching``), ``LayerNorm`` (``_normalization``) and ``GlobalSelfAttention``
(``_attention``). In the NTK parameterization (``z = w_std / sqrt(fan_in) · W x + b_std · b``)
every affine layer maps

    Σ' = w_std² · A(Σ) + b_std²,        Θ' = w_std² · A(Θ) + Σ'

with ``A`` the identity for ``Dense`` and the convolution's box filter for ``Conv`` (fan-in
``C·prod(filter)``: the channel average is in ``Σ``, the ``1/prod(filter)`` in ``A``). In the
standard parameterization (``z = W x + b`` with ``W ~ N(0, w_std²/fan_in)``; Sohl-Dickstein et
al. 2020, neural-tangents' ``s=(1, 1)``) the NNGP is the same and

    Θ' = fan_in · A(Σ) + w_std² · A(Θ) + 1

(the ``1`` is the bias's gradient; neural-tangents adds it for any numeric ``b_std``, so here
too, ``b_std=0`` included). Pooling and ``Flatten`` average covariances over positions
(neural-tangents' conventions: ``AvgPool`` without edge normalisation, ``Flatten`` then
``Dense`` scales by ``1/sqrt(prod(P)·C)``). Inputs have 0 (vectors), 1 (sequences ``(n, L, C)``),
2 (images ``(n, H, W, C)``) or 3 (volumes ``(n, D, H, W, C)``) spatial axes; a filter or window
has one entry per spatial axis.

Layers are frozen dataclasses: printable, comparable, hashable, picklable, and pytrees whose
leaves are their stds (so ``jax.grad`` differentiates a kernel with respect to every layer's
hyperparameters). Constructors validate their arguments; an input that does not fit (a filter
larger than the image, a dense layer fed images, a 2-D filter on sequences) is refused by
:meth:`Layer.signal` when the stack is planned, before anything is computed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import check_scalar, is_traced
from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._state import KernelState, pixel_variances

#: Pixel offsets (one per spatial axis) of the pairs whose covariances a layer's output must
#: carry; ``None``: all pairs.
Radius = tuple[int, ...] | None

#: Input shape of a layer: ``None`` for vectors, the spatial sizes (``(L,)``, ``(H, W)``,
#: ``(D, H, W)``) otherwise (channels do not matter to an infinitely wide layer's kernel).
Shape = tuple[int, ...] | None

#: Names of the inputs by number of spatial axes, for error messages.
INPUT_NAMES = {0: "vectors", 1: "sequences", 2: "images", 3: "volumes"}


@dataclasses.dataclass(frozen=True)
class Signal:
    """What a stack knows about the activations between two layers, before computing anything.

    ``shape``: spatial sizes (``None`` for vectors); ``width``: channels, ``None`` when not
    known (a ``Dense``/``Conv`` without ``width=``); ``gaussian``: zero-mean Gaussian over
    channels (the output of a weight layer, then only linear maps), as ``LayerNorm`` needs;
    ``fresh``: per enclosing ``FanOut``, whether a weight layer has acted since it (a fresh
    zero-mean weight layer makes a branch independent of its siblings, as ``FanInSum`` needs).
    """

    shape: Shape
    width: int | None
    gaussian: bool = False
    fresh: tuple[bool, ...] = ()

    def replace(self, **changes) -> Signal:
        return dataclasses.replace(self, **changes)

    def weighted(self, shape: Shape, width: int | None) -> Signal:
        """The signal after a layer with fresh Gaussian weights."""
        return Signal(shape, width, True, (True,) * len(self.fresh))


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


def _ints(value, name: str) -> tuple[int, ...]:
    """1 to 3 positive integers, one per spatial axis (an int ``k`` means ``(k, k)``)."""
    items = (value, value) if isinstance(value, (int, np.integer)) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if not 1 <= len(items) <= 3 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in items
    ):
        raise ValueError(
            f"{name} must be 1 to 3 positive integers, one per spatial axis (e.g. (3,) for "
            f"sequences, (3, 3) for images, (3, 3, 3) for volumes); got {value!r}."
        )
    return tuple(int(v) for v in items)


def _padding(value) -> str:
    if not isinstance(value, str) or value.upper() not in ("SAME", "VALID"):
        raise ValueError(f"padding must be 'SAME' or 'VALID'; got {value!r}.")
    return value.upper()


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


def _repr(layer, hidden: dict) -> str:
    """The dataclass repr, showing the fields of ``hidden`` only where they differ from it."""
    shown = [
        f"{f.name}={getattr(layer, f.name)!r}"
        for f in dataclasses.fields(layer)
        if f.name not in hidden or getattr(layer, f.name) != hidden[f.name]
    ]
    return f"{type(layer).__name__}({', '.join(shown)})"


class Layer:
    """Base of the layers: ``apply(state) -> state`` and a static check of its input."""

    #: Whether ``apply`` maps every covariance of the state by one linear map
    #: (``state.map_linear``), so that it may also be given a state whose NTK is packed into
    #: the NNGP's imaginary part (:meth:`KernelState.pack`), as loops over layers leave it.
    packable: ClassVar[bool] = False

    def output_shape(self, shape: Shape) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def signal(self, signal: Signal) -> Signal:
        """The output's :class:`Signal`; a ``ValueError`` for an input that does not fit.

        By default the shape from :meth:`output_shape`, the width kept, not Gaussian.
        """
        return Signal(self.output_shape(signal.shape), signal.width, False, signal.fresh)

    def apply(self, state: KernelState) -> KernelState:  # pragma: no cover - abstract
        raise NotImplementedError

    def bound(self, signal: Signal):
        """Static facts about the input that :meth:`apply` takes as a second argument (the
        input width of a standard layer); ``None``: ``apply(state)`` alone."""
        return None

    def input_radius(self, radius: Radius) -> Radius:
        """The pair offsets this layer reads to give its output those within ``radius``."""
        return radius

    def mirror_symmetric(self, shape: Shape) -> bool:
        """Whether the layer commutes with flipping its inputs along the last spatial axis.

        ``False`` unless a layer says so: a new spatial layer is not assumed to commute.
        """
        return shape is None

    def _needs_vectors(self, shape: Shape) -> None:
        if shape is not None:
            raise ValueError(
                f"{self!r} takes vectors but receives {INPUT_NAMES[len(shape)]} of shape {shape} "
                "(rows of x are read as (n, length, channels), (n, height, width, channels) or "
                "(n, depth, height, width, channels)): add Flatten() or GlobalAvgPool() before it."
            )

    def _needs_spatial(self, shape: Shape, window, what: str) -> None:
        if shape is None:
            raise ValueError(
                f"{self!r} takes images (n, height, width, channels), sequences (n, length, "
                "channels) or volumes (n, depth, height, width, channels) but receives vectors: "
                "give it such inputs (or image_shape= in the estimators) and place it before "
                "Flatten."
            )
        if window is not None and len(window) != len(shape):
            raise ValueError(
                f"{self!r} has a {len(window)}-D {what} {window} but receives "
                f"{INPUT_NAMES[len(shape)]} with {len(shape)} spatial axes {shape}: give it a "
                f"{what} of {len(shape)} entries."
            )


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


def _same_length(layer, value, name: str, reference, reference_name: str) -> None:
    if len(value) != len(reference):
        raise ValueError(
            f"{type(layer).__name__}: {name} {value} and {reference_name} {reference} must have "
            "one entry per spatial axis each."
        )


def _window_output(layer, shape, window, strides, padding, what: str) -> tuple[int, ...]:
    out = tuple(
        _spatial.out_size(size, k, s, padding)
        for size, k, s in zip(shape, window, strides, strict=True)
    )
    if min(out) < 1:
        raise ValueError(
            f"{layer!r}: the {what} {window} does not fit {INPUT_NAMES[len(shape)]} of "
            f"{'x'.join(map(str, shape))} positions with padding {padding!r}; use a smaller "
            f"{what}, padding='SAME', or fewer size-reducing layers before it."
        )
    return out


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
