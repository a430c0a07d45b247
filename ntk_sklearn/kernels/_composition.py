"""The pure composition of a stack: its layers' covariance maps applied in order, in JAX.

A stack runs as groups of layers repeated ``count`` times (:class:`_Run`, found by
:func:`_runs` and :func:`_repeat_at`); a repeated group runs as one ``lax.scan`` loop
(:func:`_scan_groups`), so that compile time stays flat in the depth. Between layers each state
is narrowed to the pixel pairs the rest of the stack reads (:func:`_narrow`).
:func:`kernel_matrices` is the public, unblocked entry point (for ``jax.jit``/``jax.grad``);
``Serial.__call__`` runs the same code in compiled tiles (``_compiled_tiles.py``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import KERNEL_NAMES, is_traced, parse_get
from ntk_sklearn.kernels import _pooled
from ntk_sklearn.kernels._branching import FanOut, Parallel, _FanIn
from ntk_sklearn.kernels._layers import Layer
from ntk_sklearn.kernels._plan import Bound, layout_of
from ntk_sklearn.kernels._spatial import band_crop, band_from_full
from ntk_sklearn.kernels._state import KernelState, input_state, pixel_variances

if TYPE_CHECKING:
    from ntk_sklearn.kernels._serial import Serial


class KernelMatrices(NamedTuple):
    """NNGP and NTK matrices; a field is ``None`` when it was not requested."""

    nngp: np.ndarray | None
    ntk: np.ndarray | None


def _run(
    stack: Serial, x1: jax.Array, x2: jax.Array | None, want_ntk: bool, layouts=None
) -> KernelState:
    """Propagate the input covariances of ``x1`` (with ``x2``, or with itself) through ``stack``.

    ``layouts``: each layer's input layout, by default the cheapest (:meth:`Serial.layouts`).
    A flip-invariant stack returns only ``nngp``/``ntk`` (its per-row variances are dropped).
    """
    layouts = stack.layouts(x1.shape[1:]) if layouts is None else layouts
    runs = _runs(stack.layers, layouts, jnp.result_type(x1.dtype, float))
    return _run_runs(runs, stack.flip_invariant, x1, x2, want_ntk)


def _run_runs(runs, flip_invariant: bool, x1, x2, want_ntk: bool) -> KernelState:
    """``_run`` on the stack's :func:`_runs`."""
    state = _propagate(runs, x1, x2, want_ntk)
    if not flip_invariant:
        return state
    # k̄(x, x') = (k(x, x') + k(x, g x')) / 2, g reversing the last spatial axis (the width of
    # NHWC images).
    if x2 is None:
        # The diagonal: each row with its own mirror image, as a 1 x 1 grid per row.
        def mirrored_pair(row):
            one = _propagate(runs, row[None], row[None, ..., ::-1, :], want_ntk)
            return one.nngp[0, 0], None if one.ntk is None else one.ntk[0, 0]

        nngp, ntk = jax.vmap(mirrored_pair)(x1)
    else:
        mirrored = _propagate(runs, x1, x2[..., ::-1, :], want_ntk)
        nngp, ntk = mirrored.nngp, mirrored.ntk
    return state.replace(
        nngp=(state.nngp + nngp) / 2,
        ntk=None if ntk is None else (state.ntk + ntk) / 2,
        cov1=None,
        cov2=None,
    )


def _propagate(runs, x1, x2, want_ntk: bool) -> KernelState:
    """``_run`` without the flip average."""
    if x2 is not None:
        layers, layouts = _unrolled(runs)
        if _pooled.supports(layers, layouts):
            return _pooled.propagate(layers, layouts, x1, x2, want_ntk)
    state = input_state(x1, x2, layout_of(runs[0].layouts[0]), want_ntk)
    for run in runs:
        if run.count == 1:
            state = _apply_group(run.group, run.layouts, state)
        elif run.count >= _MIN_SCAN_REPEATS:
            # The first group unrolled: it may take the inputs' zero NTK (``ntk_zero``), which
            # the loop's carry does not.
            state = _apply_group(_take(run.group, 0), run.layouts, state)
            rest = _take(run.group, slice(1, None))
            state = _scan_groups(rest, run.layouts, run.count - 1, state)
        else:
            state = _scan_groups(run.group, run.layouts, run.count, state)
    return state.unpack()


def _unrolled(runs) -> tuple[tuple, tuple]:
    """The layers of ``runs`` one by one (a repeated group's leaves taken apart) and their plan
    entries."""
    layers, layouts = [], []
    for run in runs:
        for j in range(run.count):
            layers += run.group if run.count == 1 else _take(run.group, j)
            layouts += run.layouts
    return tuple(layers), tuple(layouts)


@dataclasses.dataclass(frozen=True)
class _Run:
    """``count`` repeats of a group of layers, whose input layouts are ``layouts``.

    For ``count > 1`` each leaf (``w_std``, ``b_std``) of ``group`` holds the ``count`` groups'
    values stacked along a leading axis: a compiled tile then takes one array per leaf of the
    group, not one argument per layer, and its loop body is compiled once, so that compile time
    stays flat in the depth (20,000 layers used to be 40,000 arguments: minutes of compiling).
    """

    group: tuple[Layer, ...]
    layouts: tuple
    count: int = 1


jax.tree_util.register_dataclass(_Run, data_fields=["group"], meta_fields=["layouts", "count"])


def _runs(layers, layouts, dtype) -> tuple[_Run, ...]:
    """``layers`` as runs of identical groups (:func:`_repeat_at`), leaves stacked in ``dtype``.

    Concrete leaves (Python floats) stack into a NumPy array, traced ones (``jax.grad`` with
    respect to the stds) into a JAX array; one value shared by every group (``replace_stds``)
    is broadcast rather than stacked, so a traced std costs one operation whatever the depth.
    """

    def stacked(*leaves):
        if all(leaf is leaves[0] for leaf in leaves):
            return jnp.broadcast_to(jnp.asarray(leaves[0], dtype), (len(leaves),))
        if any(is_traced(leaf) for leaf in leaves):
            return jnp.stack([jnp.asarray(leaf, dtype) for leaf in leaves])
        return np.asarray(leaves, dtype)

    runs, i = [], 0
    depths = _branch_depths(layers)
    while i < len(layers):
        period, count = _repeat_at(layers, layouts, depths, i)
        groups = [tuple(layers[i + j * period : i + (j + 1) * period]) for j in range(count)]
        group = groups[0] if count == 1 else jax.tree_util.tree_map(stacked, *groups)
        runs.append(_Run(group, tuple(layouts[i : i + period]), count))
        i += period * count
    return tuple(runs)


def _take(group, index):
    """The groups ``index`` (an int or a slice) of a run's stacked ``group``."""
    return jax.tree_util.tree_map(lambda leaf: leaf[index], group)


#: Repeats of a group of layers from which the group is run by ``lax.scan``: compile time then
#: stays flat in the depth (a depth-100 fully-connected stack is one loop, not 200 layers).
_MIN_SCAN_REPEATS = 3
#: The same on images, where two repeats loop too: unrolled, XLA fuses the second group's
#: convolution into the first's activation and recomputes it for every filter tap and for each
#: kernel (the 2-layer CNN: 3.6x the time of the loop, whose boundary stores each layer once).
_MIN_SCAN_REPEATS_IMAGES = 2


def _apply_group(layers, layouts, state):
    """Apply ``layers`` with their plan entries; ``state`` is a tuple between FanOut and a
    fan-in."""
    for layer, entry in zip(layers, layouts, strict=True):
        if isinstance(layer, Parallel):
            state = tuple(
                _apply_group(branch.layers, plan, branch_state)
                for branch, plan, branch_state in zip(layer.branches, entry, state, strict=True)
            )
            continue
        layout, info = (entry.layout, entry.info) if isinstance(entry, Bound) else (entry, None)
        if isinstance(state, tuple):
            state = tuple(_narrow(s if layer.packable else s.unpack(), layout) for s in state)
        else:
            state = _narrow(state if layer.packable else state.unpack(), layout)
        state = layer.apply(state) if info is None else layer.apply(state, info)
    return state


def _narrow(state: KernelState, layout) -> KernelState:
    """Drop the pixel pairs that the rest of the stack does not read (full → band → diag)."""
    if layout == state.layout or layout in ("fc", "full"):
        return state
    d = state.spatial
    if layout == "diag":
        return state.map_linear(lambda a: pixel_variances(a, state.layout, d)).replace(
            layout="diag"
        )
    radius = layout[1:]
    if state.layout == "full":
        return state.map_linear(lambda a: band_from_full(a, radius)).replace(layout="band")
    return state.map_linear(lambda a: band_crop(a, radius))


def _branch_depths(layers) -> list[int]:
    """Open ``FanOut`` branches before each layer (and after the last)."""
    depths, depth = [], 0
    for layer in layers:
        depths.append(depth)
        depth += isinstance(layer, FanOut)
        depth -= isinstance(layer, _FanIn)
    return [*depths, depth]


def _repeat_at(layers, layouts, depths, start: int) -> tuple[int, int]:
    """The period and count of the longest run of identical layer groups starting at ``start``
    that is run as a loop (``(1, 1)`` if none).

    Groups are identical when their layers differ at most in hyperparameter values (the pytree
    leaves) and have the same plan entries; a group starts and ends outside any branches (its
    carry is one state).
    """
    if depths[start]:
        return (1, 1)
    entry = layouts[start]
    fewest = _MIN_SCAN_REPEATS if layout_of(entry) == "fc" else _MIN_SCAN_REPEATS_IMAGES
    best = (1, 1)
    for period in (1, 2, 3, 4):
        first = jax.tree_util.tree_structure(layers[start : start + period])
        key = layouts[start : start + period]
        count = 0
        while start + (count + 1) * period <= len(layers):
            lo = start + count * period
            group = layers[lo : lo + period]
            if (
                jax.tree_util.tree_structure(group) != first
                or layouts[lo : lo + period] != key
                or depths[lo + period]
            ):
                break
            count += 1
        if period * count > best[0] * best[1] and count >= fewest:
            best = (period, count)
    return best


def _scan_groups(stacked, layouts, count, state: KernelState) -> KernelState:
    """Apply ``count`` groups of layers (``stacked``: their leaves along a leading axis) with
    input layouts ``layouts`` by ``lax.scan``; the result is packed (:meth:`KernelState.pack`).

    The carry must keep its structure: an input NTK known to be zero is stored as zeros, and
    the carry's rounding bound is the largest that any group's input or output reaches. Falls back
    to unrolling when a group changes the state's shapes (e.g. VALID convolutions).
    """

    def apply(carry, group):
        return _apply_group(group, layouts, carry.unpack()).pack()

    given = state
    state = dataclasses.replace(state.pack(), ntk_zero=False)
    first = _take(stacked, 0)
    # A group either resets the bound (an activation snaps its correlations) or adds a fixed
    # amount to it (linear layers only, e.g. Conv then Identity): the carry holds the largest
    # bound any group reaches, r0 + count·(r1 − r0) in the second case.
    r0, r1 = state.rounding, jax.eval_shape(apply, state, first).rounding
    bound = max(r0, r1, r0 + count * (r1 - r0))
    state = dataclasses.replace(state, rounding=bound)

    def body(carry, group):
        return dataclasses.replace(apply(carry, group), rounding=bound), None

    out = jax.eval_shape(lambda s, g: body(s, g)[0], state, first)
    leaves_out, leaves_in = jax.tree_util.tree_leaves(out), jax.tree_util.tree_leaves(state)
    same = jax.tree_util.tree_structure(out) == jax.tree_util.tree_structure(state) and all(
        a.shape == b.shape and a.dtype == b.dtype
        for a, b in zip(leaves_out, leaves_in, strict=True)
    )
    if not same:
        # Unrolled from the state as given (its zero NTK and rounding bound as they were).
        state = given
        for j in range(count):
            state = _apply_group(_take(stacked, j), layouts, state)
        return state
    state, _ = jax.lax.scan(body, state, stacked, length=count)
    # Left packed: a linear readout then reduces both kernels in one pass (Flatten after the
    # 5-layer CNN: 1.03x the pairs/s of reducing the real and imaginary parts apart).
    return state


def kernel_matrices(
    stack: Serial, x1: jax.Array, x2: jax.Array | None = None, *, get=KERNEL_NAMES
) -> KernelMatrices:
    """The kernels of ``stack`` between ``x1`` and ``x2`` (default ``x1``), in pure JAX.

    Unblocked and unvalidated: for ``jax.jit`` and ``jax.grad`` (with respect to the layers'
    ``w_std``/``b_std``, i.e. the leaves of ``stack``, and the inputs). Derivatives are finite
    everywhere, on the diagonal and at duplicate rows too.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from ntk_sklearn.kernels import Dense, Relu, kernel_matrices, serial
    >>> x = jnp.array([[1.0, 0.0], [0.6, 0.8]])
    >>> def total(w):
    ...     stack = serial(Dense(w, 0.1), Relu(), Dense(w, 0.1))
    ...     return kernel_matrices(stack, x, get="ntk").ntk.sum()
    >>> bool(jnp.isfinite(jax.grad(total)(1.5)))
    True
    """
    names, _ = parse_get(get)
    state = _run(stack, x1, x1 if x2 is None else x2, "ntk" in names)
    return KernelMatrices(
        state.nngp if "nngp" in names else None, state.ntk if "ntk" in names else None
    )
