"""Named network architectures as kernel stacks, built from a few scikit-learn-style parameters.

:func:`make_stack` is the one place where ``architecture``, ``depth``, ``activation``,
``image_shape``, ``filter_size``, ``pooling`` or a custom ``layers`` stack become a
:class:`~ntk_sklearn.kernels.Serial`; :func:`reshape_inputs` turns the 2-D ``X`` that
scikit-learn passes around into the rows that stack takes (vectors or NHWC images). Every weight
and bias layer of a stack carries the same ``w_std`` and ``b_std``.

Architectures (``act`` is ``Activation(activation, negative_slope, quadrature_points)``):

* ``"fc"``: ``[Dense(w_std, b_std), act] * depth + [Dense(w_std, b_std)]`` on the rows of ``X``
  (:func:`~ntk_sklearn.kernels.fc_stack`); an ``image_shape``, if given, only checks the number
  of features.
* ``"conv"``: ``[Conv(filter_size, SAME, w_std, b_std), act] * depth``, then the readout
  ``pooling``: ``Flatten()`` (``"flatten"``), ``AvgPool((w, w), strides=(1, 1))`` then
  ``Flatten()`` (``"local2"``, ``"local3"``, ``"local4"``: local average pooling of width ``w``,
  which adds some invariance to small shifts), or ``GlobalAvgPool()`` (``"gap"``); then
  ``Dense(w_std, b_std)``, on the rows of ``X`` reshaped to ``image_shape = (H, W, C)``.
* ``"myrtle"`` (Shankar et al. 2020, simplified): ``depth >= 3`` convolutions
  ``[Conv(filter_size, SAME, w_std, b_std), act]`` in three groups of sizes ``depth // 3`` plus
  one for the first ``depth % 3`` groups (``depth`` 4, 6, 9 give Myrtle-5, 7, 10's ``[2, 1, 1]``,
  ``[2, 2, 2]``, ``[3, 3, 3]``), ``AvgPool((2, 2))`` between groups, then ``GlobalAvgPool()``
  and ``Dense(w_std, b_std)``. ``pooling`` does not apply (the readout is always the global
  average); images need at least 4 x 4 pixels.
* ``"resnet"`` (neural-tangents' WideResNet, with a global average readout): a stem
  ``Conv(filter_size, SAME)``, then three groups of ``depth`` residual blocks
  ``FanOut(2), parallel(serial(act, Conv(filter_size, strides=s), act, Conv(filter_size)),
  shortcut), FanInSum()``, whose first block has strides ``s`` = 1, 2, 2 and a
  ``Conv(filter_size, strides=s)`` shortcut (the other blocks: ``Identity()``), then
  ``GlobalAvgPool()`` and ``Dense(w_std, b_std)``. ``pooling`` does not apply.
* ``"conv1d"``: ``"conv"`` on sequences, ``image_shape = (length, channels)``:
  ``[Conv((filter_size,), SAME, w_std, b_std), act] * depth``, then the readout ``pooling``
  (``"localW"`` pools ``W`` positions) and ``Dense(w_std, b_std)``.
* ``layers=``: a custom :class:`~ntk_sklearn.kernels.Serial`, whose ``Dense``/``Conv`` layers get
  ``w_std`` and ``b_std`` in place of their own (branches included; the other layers, e.g.
  attention, keep theirs); ``architecture``, ``depth``, ``activation``, ``filter_size`` and
  ``pooling`` are then ignored. It takes inputs of ``image_shape`` (sequences ``(L, C)``,
  images ``(H, W, C)``, volumes ``(D, H, W, C)``) when given, vectors otherwise.

``flip_invariant=True`` averages a convolutional network over horizontal flips of its input
(``serial(..., flip_invariant=True)``): its kernels and predictions are then exactly invariant to
mirroring an image, at twice the cost.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np

from ntk_sklearn._validation import InvalidArgumentError, as_matrix, check_int
from ntk_sklearn.kernels import (
    Activation,
    AvgPool,
    Conv,
    Dense,
    FanInSum,
    FanOut,
    Flatten,
    GlobalAvgPool,
    Identity,
    Parallel,
    Serial,
    fc_stack,
    parallel,
    serial,
)

__all__ = [
    "ARCHITECTURES",
    "POOLINGS",
    "make_stack",
    "replace_stds",
    "reshape_inputs",
    "takes_images",
]

#: Names accepted by ``architecture``.
ARCHITECTURES = ("fc", "conv", "myrtle", "resnet", "conv1d")
#: Spatial axes of the inputs of each architecture on positions (``layers=``: any of 1-3).
_SPATIAL_AXES = {"conv": 2, "myrtle": 2, "resnet": 2, "conv1d": 1}
#: Strides of the first block of each residual group of ``"resnet"``.
_RESNET_STRIDES = (1, 2, 2)
#: Names accepted by ``pooling`` (the readout of ``architecture="conv"``), cheapest first.
POOLINGS = ("flatten", "local2", "local3", "local4", "gap")
#: Groups of convolutions of the Myrtle architecture, separated by 2 x 2 average pooling.
_MYRTLE_GROUPS = 3


def _check_architecture(architecture) -> str:
    if architecture not in ARCHITECTURES:
        raise InvalidArgumentError(
            f"architecture must be one of {ARCHITECTURES}; got {architecture!r}."
        )
    return architecture


def _check_image_shape(image_shape, architecture: str = "fc", layers=None) -> tuple | None:
    if image_shape is None:
        return None
    try:
        items = tuple(image_shape)
    except TypeError:
        items = ()
    axes = _SPATIAL_AXES.get(architecture) if layers is None else None
    sizes = (axes + 1,) if axes else (2, 3, 4)
    if len(items) not in sizes or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in items
    ):
        what = {
            (2,): "two positive integers (length, channels)",
            (3,): "three positive integers (height, width, channels)",
        }.get(
            sizes,
            "2 to 4 positive integers: (length, channels), (height, width, channels) or "
            "(depth, height, width, channels)",
        )
        raise InvalidArgumentError(
            f"image_shape must be None or {what}"
            + (f" for architecture={architecture!r}" if axes else "")
            + f"; got {image_shape!r}."
        )
    return tuple(int(v) for v in items)


def takes_images(architecture: str = "fc", image_shape=None, layers: Serial | None = None) -> bool:
    """Whether the stack of these parameters takes images (NHWC) rather than vectors.

    Images: ``architecture`` ``"conv"`` or ``"myrtle"``, or a custom ``layers`` stack with an
    ``image_shape``. An ``"fc"`` network takes the rows of ``X`` as they are.

    Examples
    --------
    >>> from ntk_sklearn.architectures import takes_images
    >>> takes_images("fc", (8, 8, 1)), takes_images("conv", (8, 8, 1))
    (False, True)
    """
    if layers is not None:
        return image_shape is not None
    return _check_architecture(architecture) != "fc"


def reshape_inputs(
    X,
    *,
    architecture: str = "fc",
    image_shape: tuple[int, int, int] | None = None,
    layers: Serial | None = None,
    name: str = "X",
) -> np.ndarray:
    """The rows of a 2-D ``X`` as the inputs of the stack of these parameters.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Finite numeric values.
    architecture, image_shape, layers
        As in :func:`make_stack`. Images are NHWC: each row of ``X`` is reshaped in C order to
        ``image_shape = (height, width, channels)`` (``n_features`` must be their product).
    name : str, default="X"
        The argument's name in error messages.

    Returns
    -------
    ndarray of shape (n_samples, n_features) or (n_samples, height, width, channels)
        A view of ``X`` when possible (nothing is copied or modified).

    Raises
    ------
    ValueError
        When ``X`` is not a finite, non-empty, 2-D numeric array, when images are needed but
        ``image_shape`` is None, or when ``n_features`` differs from the product of
        ``image_shape``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.architectures import reshape_inputs
    >>> reshape_inputs(np.zeros((5, 12)), architecture="conv", image_shape=(2, 3, 2)).shape
    (5, 2, 3, 2)
    """
    x = as_matrix(X, name)
    image_shape = _check_image_shape(image_shape, architecture, layers)
    _check_features(x.shape[1], architecture, image_shape, layers, name)
    if not takes_images(architecture, image_shape, layers):
        return x
    return x.reshape(x.shape[0], *image_shape)


def _check_features(n_features, architecture, image_shape, layers, name: str) -> None:
    if takes_images(architecture, image_shape, layers) and image_shape is None:
        raise InvalidArgumentError(
            f"architecture={architecture!r} takes images: give image_shape=(height, width, "
            f"channels), the shape each row of {name} is reshaped to (C order, NHWC)."
        )
    if image_shape is not None and n_features is not None:
        expected = math.prod(image_shape)
        if n_features != expected:
            raise ValueError(
                f"{name} has {n_features} features but image_shape={image_shape} needs "
                f"{expected} (height * width * channels): fix image_shape or the columns of "
                f"{name}."
            )


def replace_stds(stack: Serial, w_std, b_std) -> Serial:
    """``stack`` with ``w_std`` and ``b_std`` in every ``Dense`` and ``Conv`` layer.

    The stds may be JAX tracers (inside ``jax.jit``/``jax.grad``); other layers are kept.

    Examples
    --------
    >>> from ntk_sklearn.architectures import replace_stds
    >>> from ntk_sklearn.kernels import Dense, Relu, serial
    >>> replace_stds(serial(Dense(2.0), Relu(), Dense()), 1.5, 0.1)
    serial(Dense(w_std=1.5, b_std=0.1), \
Activation(activation='relu', negative_slope=0.01, quadrature_points=64), \
Dense(w_std=1.5, b_std=0.1))
    """
    return serial(
        *(_with_stds(layer, w_std, b_std) for layer in stack.layers),
        flip_invariant=stack.flip_invariant,
    )


def _with_stds(layer, w_std, b_std):
    if isinstance(layer, (Dense, Conv)):
        return dataclasses.replace(layer, w_std=w_std, b_std=b_std)
    if isinstance(layer, Parallel):
        return Parallel(tuple(replace_stds(branch, w_std, b_std) for branch in layer.branches))
    return layer


def make_stack(
    architecture: str = "fc",
    *,
    depth: int = 1,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
    image_shape: tuple[int, int, int] | None = None,
    filter_size: int | tuple[int, int] = 3,
    pooling: str = "flatten",
    flip_invariant: bool = False,
    layers: Serial | None = None,
    n_features: int | None = None,
) -> Serial:
    """The kernel stack of a named architecture (see the module docstring for each one).

    Parameters
    ----------
    architecture : {"fc", "conv", "myrtle", "resnet", "conv1d"}, default="fc"
        Fully-connected, convolutional, Myrtle (convolutions with pooling between groups),
        WideResNet-style residual, or convolutional on sequences.
    depth : int, default=1
        Hidden layers (``"fc"``, ``"conv"``, ``"conv1d"``: ``>= 0``), convolutions
        (``"myrtle"``: ``>= 3``) or residual blocks per group (``"resnet"``: ``>= 1``).
    activation : str or callable, default="relu"
        A name of :func:`~ntk_sklearn.kernels.available_activations` or an elementwise JAX
        function.
    w_std, b_std : float
        Weight and bias standard deviations (``>= 0``) of every ``Dense``/``Conv`` layer. JAX
        tracers are accepted (to differentiate the kernel with respect to them).
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs.
    quadrature_points : int, default=64
        Nodes per dimension of the quadrature of activations without a closed form.
    image_shape : tuple of int, default=None
        ``(height, width, channels)`` of one image, required by ``"conv"``, ``"myrtle"`` and
        ``"resnet"``; ``(length, channels)`` of one sequence for ``"conv1d"``; any of these or
        ``(depth, height, width, channels)`` with ``layers=``.
    filter_size : int or tuple of int, default=3
        Convolution filter of the architectures on positions (``3`` means ``(3, 3)`` on images,
        ``(3,)`` on sequences).
    pooling : {"flatten", "local2", "local3", "local4", "gap"}, default="flatten"
        Readout of ``"conv"`` before the last ``Dense``: ``Flatten()``; local average pooling
        ``AvgPool((w, w), strides=(1, 1))`` of width ``w`` = 2, 3, 4 then ``Flatten()``; or
        ``GlobalAvgPool()``.
    flip_invariant : bool, default=False
        Average the network over horizontal flips of its input images (``serial``'s
        ``flip_invariant``: exactly flip-invariant kernels at twice the cost). A custom
        ``layers`` stack that is flip-invariant stays so.
    layers : Serial, default=None
        A custom stack; its ``Dense``/``Conv`` stds are replaced by ``w_std``/``b_std``.
    n_features : int, default=None
        Columns of the 2-D ``X`` the stack will see, checked against ``image_shape``.

    Returns
    -------
    Serial
        Its rows are vectors, or images of ``image_shape`` (see :func:`reshape_inputs`).

    Raises
    ------
    ValueError or TypeError
        Naming the argument: an unknown architecture, pooling or activation, a negative depth
        (``< 3`` for Myrtle), a missing or malformed ``image_shape`` or one inconsistent with
        ``n_features``, a filter or pooling that does not fit the images, negative stds.

    Examples
    --------
    >>> from ntk_sklearn.architectures import make_stack
    >>> stack = make_stack("conv", depth=1, image_shape=(8, 8, 1), pooling="gap", w_std=1.4)
    >>> [type(layer).__name__ for layer in stack.layers]
    ['Conv', 'Activation', 'GlobalAvgPool', 'Dense']
    >>> len(make_stack("myrtle", depth=4, image_shape=(8, 8, 3)).layers)  # Myrtle-5
    12
    """
    image_shape = _check_image_shape(image_shape, architecture, layers)
    if layers is not None:
        if not isinstance(layers, Serial):
            raise InvalidArgumentError(
                "layers must be None or a stack from ntk_sklearn.kernels.serial(...); got "
                f"{layers!r} ({type(layers).__name__})."
            )
        stack = replace_stds(layers, w_std, b_std)
    else:
        act = (activation, negative_slope, quadrature_points)
        stack = _named_stack(
            _check_architecture(architecture), depth, act, w_std, b_std, filter_size, pooling
        )
    if not isinstance(flip_invariant, bool | np.bool_):
        raise InvalidArgumentError(f"flip_invariant must be True or False; got {flip_invariant!r}.")
    images = takes_images(architecture, image_shape, layers)
    if flip_invariant and not images:
        raise InvalidArgumentError(
            "flip_invariant=True averages over mirrored images: it needs architecture='conv' "
            "or 'myrtle' (or layers= with image_shape), not a network on vectors."
        )
    if flip_invariant:
        stack = serial(*stack.layers, flip_invariant=True)
    _check_features(n_features, architecture, image_shape, layers, "X")
    if layers is None and architecture == "myrtle":
        _check_myrtle_images(image_shape)
    row_shape = image_shape if images else (1,)
    stack.layouts(row_shape)  # a ValueError naming the first layer that does not fit
    return stack


def _check_myrtle_images(image_shape: tuple[int, int, int]) -> None:
    """Myrtle halves each side at each of its ``AvgPool((2, 2))``: 4 x 4 pixels at least."""
    smallest = 2 ** (_MYRTLE_GROUPS - 1)
    if min(image_shape[:2]) < smallest:
        raise ValueError(
            f"architecture='myrtle' needs images of at least {smallest}x{smallest} pixels (its "
            f"{_MYRTLE_GROUPS - 1} AvgPool((2, 2)) layers halve each side); got image_shape="
            f"{image_shape}. Use architecture='conv' for smaller images."
        )


def _readout(pooling: str, axes: int) -> Serial:
    """The layers between the last convolution block and the ``Dense`` readout."""
    if pooling == "flatten":
        return serial(Flatten())
    if pooling == "gap":
        return serial(GlobalAvgPool())
    width = int(pooling.removeprefix("local"))
    return serial(AvgPool((width,) * axes, strides=(1,) * axes), Flatten())


def _resnet(depth: int, act: Activation, conv: Conv) -> Serial:
    """neural-tangents' WideResNet (its ``AvgPool((8, 8))``-``Flatten`` readout as a global
    average): a stem, three groups of ``depth`` residual blocks, ``GlobalAvgPool``, ``Dense``."""
    layers = [conv]
    for stride in _RESNET_STRIDES:
        for block in range(depth):
            strides = (stride, stride) if block == 0 else (1, 1)
            strided = dataclasses.replace(conv, strides=strides)
            main = serial(act, strided, act, conv)
            shortcut = strided if block == 0 else Identity()
            layers += [FanOut(2), parallel(main, shortcut), FanInSum()]
    return serial(*layers, GlobalAvgPool(), Dense(conv.w_std, conv.b_std))


def _named_stack(architecture, depth, act, w_std, b_std, filter_size, pooling) -> Serial:
    if architecture == "fc":
        return fc_stack(depth, act[0], w_std, b_std, *act[1:])
    act = Activation(*act)
    if pooling not in POOLINGS:
        raise InvalidArgumentError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
    if architecture == "conv1d":
        filter_size = (filter_size,) if isinstance(filter_size, (int, np.integer)) else filter_size
    block = [Conv(filter_size, padding="SAME", w_std=w_std, b_std=b_std), act]
    if architecture in ("conv", "conv1d"):
        depth = check_int(depth, "depth (number of convolutional layers)")
        axes = len(block[0].filter_shape)
        return serial(*block * depth, _readout(pooling, axes), Dense(w_std, b_std))
    if architecture == "resnet":
        depth = check_int(depth, "depth (residual blocks per group of the ResNet)", low=1)
        return _resnet(depth, act, block[0])
    depth = check_int(depth, "depth (number of convolutions of the Myrtle network)", low=3)
    groups = [depth // _MYRTLE_GROUPS + (g < depth % _MYRTLE_GROUPS) for g in range(3)]
    pool = AvgPool((2, 2))
    convs = [serial(*block * count) for count in groups]
    return serial(convs[0], pool, convs[1], pool, convs[2], GlobalAvgPool(), Dense(w_std, b_std))
