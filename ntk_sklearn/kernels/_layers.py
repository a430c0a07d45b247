"""The layer base: :class:`Layer`, the :class:`Signal` a stack is planned with, and the helpers
that register layers as pytrees and validate their arguments.

Layers of infinitely wide networks are each a small pure function on a :class:`KernelState`.
The names mirror neural-tangents' ``stax`` so that its users can port code: ``Dense``, ``Conv``
(``_affine``), ``AvgPool``, ``GlobalAvgPool``, ``Flatten`` (``_pooling``), activation layers
(``_activation_layer``), branching (``_branching``), ``LayerNorm`` (``_normalization``) and
``GlobalSelfAttention`` (``_attention``). Inputs have 0 (vectors), 1 (sequences ``(n, L, C)``),
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
from typing import ClassVar

import jax
import numpy as np

from ntk_sklearn._validation import check_scalar, is_traced
from ntk_sklearn.kernels import _spatial
from ntk_sklearn.kernels._state import KernelState

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
