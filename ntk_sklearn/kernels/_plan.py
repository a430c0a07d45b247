"""Planning a stack for an input shape: checks, then the covariances each layer's input carries.

Forward, each layer maps a :class:`~ntk_sklearn.kernels._layers.Signal` (shape, width,
Gaussian-ness) and refuses an input it cannot take, so that a bad stack fails before any work;
between ``FanOut`` and a fan-in the signal is a tuple, one per branch.

Backward from the readout, each layer's input carries the cheapest covariances that its readout
reads (neural-tangents' "diagonal_spatial", extended to bands): ``"fc"`` for vectors; for
positions, ``"diag"`` (same position) when only ``Flatten`` follows, ``("band", *r)`` when the
pooling ahead pairs positions at most ``r`` apart and that is fewer pairs than all of them, else
``"full"``. A ``FanOut``'s input carries what any of its branches needs.

A plan entry is the layout of the layer's input; a :class:`Bound` when ``apply`` also takes a
static fact about its input (a standard layer's input width, a concatenation's weights); for
``parallel`` a tuple of the branches' plans.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from ntk_sklearn.kernels._branching import FanOut, Parallel, _FanIn
from ntk_sklearn.kernels._layers import INPUT_NAMES, Shape, Signal
from ntk_sklearn.kernels._state import is_band


class Bound(NamedTuple):
    """A layer's input layout and the static argument its ``apply`` takes."""

    layout: Any
    info: Any


class _Need(NamedTuple):
    """Position pairs the rest of the stack reads: offsets up to ``radius`` (``None``: all)."""

    radius: tuple[int, ...] | None
    full: bool = False


def layout_of(entry):
    """The layout of a plan entry (not of a ``parallel`` entry)."""
    return entry.layout if isinstance(entry, Bound) else entry


def plan(layers, input_shape: tuple[int, ...], flip_invariant: bool) -> tuple[tuple, int]:
    """``(entries, pair_size)``: each layer's plan entry, and the largest number of covariance
    entries carried per row pair (all branches together). ``ValueError`` for a stack that does
    not fit rows of ``input_shape`` (the first layer that does not fit is named)."""
    shape: Shape = None if len(input_shape) == 1 else tuple(input_shape[:-1])
    signals, out = _forward(layers, Signal(shape, int(input_shape[-1])), flip_invariant)
    if isinstance(out, tuple):
        raise ValueError(
            f"The stack ends with {len(out)} open branches: a FanOut needs a matching "
            "FanInSum() or FanInConcat() after its parallel(...)."
        )
    if out.shape is not None:
        raise ValueError(
            f"The stack ends on {INPUT_NAMES[len(out.shape)]} of shape {out.shape}: end it with "
            "Flatten() or GlobalAvgPool() followed by a Dense readout."
        )
    entries, _ = _backward(layers, signals, _Need(()))
    return entries, _pair_size(layers, signals, entries)


def _forward(layers, signal, flip: bool):
    """Each layer's input signal (``parallel``: a list per branch) and the stack's output."""
    inputs = []
    for layer in layers:
        inputs.append(signal)
        if isinstance(layer, Parallel):
            if not isinstance(signal, tuple) or len(signal) != len(layer.branches):
                have = len(signal) if isinstance(signal, tuple) else 1
                raise ValueError(
                    f"{layer!r} has {len(layer.branches)} branches but receives {have}: put "
                    f"FanOut({len(layer.branches)}) before it."
                )
            branch_inputs, outs = [], []
            for branch, branch_signal in zip(layer.branches, signal, strict=True):
                ins, out = _forward(branch.layers, branch_signal, flip)
                if isinstance(out, tuple):
                    raise ValueError(
                        f"A branch of {layer!r} ends with {len(out)} open branches: close its "
                        "FanOut with FanInSum() or FanInConcat() inside that branch."
                    )
                branch_inputs.append(ins)
                outs.append(out)
            inputs[-1] = branch_inputs
            signal = tuple(outs)
        elif isinstance(layer, _FanIn):
            if not isinstance(signal, tuple):
                raise ValueError(
                    f"{layer!r} has no branches to merge: put FanOut(n) and parallel(...) before "
                    "it."
                )
            signal, _ = layer.merge(signal)
        elif isinstance(signal, tuple):
            raise ValueError(
                f"{layer!r} receives {len(signal)} branches (after a FanOut): wrap the layers of "
                "each branch in parallel(...) and merge them with FanInSum() or FanInConcat()."
            )
        elif isinstance(layer, FanOut):
            signal = layer.split(signal)
        else:
            if flip and signal.shape is not None and not layer.mirror_symmetric(signal.shape):
                raise ValueError(
                    "flip_invariant=True needs every layer to commute with a horizontal flip; "
                    f"{layer!r} on inputs {signal.shape[-1]} positions wide does not (its "
                    "windows are not mirror-symmetric). Use stride 1 with odd filters and "
                    "padding='SAME', or strides that divide (width - window) with "
                    "padding='VALID'."
                )
            signal = layer.signal(signal)
    return inputs, signal


def _layout(shape: Shape, need: _Need):
    if shape is None:
        return "fc"
    if need.full:
        return "full"
    if not any(need.radius):
        return "diag"
    return ("band", *need.radius)


def _union(needs: tuple[_Need, ...]) -> _Need:
    if any(n.radius is None for n in needs):
        return _Need(None, True)
    radius = tuple(max(r) for r in zip(*(n.radius for n in needs), strict=True))
    return _Need(radius, any(n.full for n in needs))


def _backward(layers, signals, need: _Need | tuple):
    """Each layer's plan entry, walking back from ``need`` at the output; the input's need."""
    entries = []
    for layer, signal in zip(reversed(layers), reversed(signals), strict=True):
        if isinstance(layer, Parallel):
            plans, needs = [], []
            for branch, ins, branch_need in zip(layer.branches, signal, need, strict=True):
                branch_plan, branch_in = _backward(branch.layers, ins, branch_need)
                plans.append(branch_plan)
                needs.append(branch_in)
            entries.append(tuple(plans))
            need = tuple(needs)
        elif isinstance(layer, _FanIn):
            _, info = layer.merge(signal)
            entries.append(Bound(_layout(signal[0].shape, need), info))
            need = (need,) * len(signal)
        elif isinstance(layer, FanOut):
            need = _union(need)
            entries.append(_layout(signal.shape, need))
        else:
            need = _input_need(layer, signal.shape, need)
            layout = _layout(signal.shape, need)
            info = layer.bound(signal)
            entries.append(layout if info is None else Bound(layout, info))
    return tuple(reversed(entries)), need


def _input_need(layer, shape: Shape, need: _Need) -> _Need:
    if shape is None:
        return _Need(())
    if not need.radius and need.radius is not None:
        need = _Need((0,) * len(shape))  # the layer maps positions to a vector
    radius = layer.input_radius(need.radius)
    # Once a layer needs all pairs, so does every layer before it.
    full = need.full or radius is None or math.prod(2 * r + 1 for r in radius) >= math.prod(shape)
    return _Need(radius, full)


def _size(entry, shape: Shape) -> int:
    if shape is None:
        return 1
    layout, pixels = layout_of(entry), math.prod(shape)
    if layout == "full":
        return pixels * pixels
    if is_band(layout):
        return pixels * math.prod(2 * r + 1 for r in layout[1:])
    return pixels


def _pair_size(layers, signals, entries) -> int:
    largest = 1
    for layer, signal, entry in zip(layers, signals, entries, strict=True):
        if isinstance(layer, Parallel):
            sizes = [
                _pair_size(branch.layers, ins, plan_)
                for branch, ins, plan_ in zip(layer.branches, signal, entry, strict=True)
            ]
            largest = max(largest, sum(sizes))
        elif isinstance(signal, tuple):
            largest = max(largest, len(signal) * _size(entry, signal[0].shape))
        else:
            largest = max(largest, _size(entry, signal.shape))
    return largest
