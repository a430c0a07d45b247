"""Compiled tiles of a stack: the jit-compiled kernels of one tile and their XLA options.

``Serial.__call__`` and ``Serial.diag`` evaluate each tile through :func:`_grid_tile` and
:func:`_diag_tile`, which compile the composition (``_composition.py``) once per stack
structure, with backend options chosen by the stack's layouts (:func:`_xla_loops`).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import jax

from ntk_sklearn.kernels._composition import _run_runs
from ntk_sklearn.kernels._plan import Bound, layout_of

if TYPE_CHECKING:
    from ntk_sklearn.kernels._serial import Serial


#: XLA options of the compiled tiles. On CPUs with AVX-512, 512-bit vectors (XLA's CPU default
#: is 256) gave the 5-layer CNN's tiles 1.16x the pairs/s (``benchmarks/bench_conv.py``); the
#: option only states a preference, which other CPUs and other backends ignore.
_TILE_OPTIONS = {"xla_cpu_prefer_vector_width": 512}
#: Options of the tiles of :func:`_xla_loops` stacks, where the installed jaxlib knows them: no
#: YNNPACK fusions. XLA's CPU backend hands reductions to YNNPACK together with the elementwise
#: work that feeds them, which YNNPACK then runs several times slower than XLA's own fused loop
#: (a ``Flatten`` readout after 1 convolutional layer: 5.3x the tile time, after local pooling
#: of 3x3 windows: 1.3x; ``benchmarks/bench_conv.py``).
_XLA_LOOP_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def _xla_loops(stack: Serial, row_shape: tuple[int, ...]) -> bool:
    """Whether the tiles of ``stack`` on rows of ``row_shape`` compile without YNNPACK: inputs
    with positions whose covariances are same-position or bands. Vectors (matrix products) and
    all pairs (their products of the inputs; 1.15x the pairs/s of global pooling on images)
    keep it."""
    return len(row_shape) >= 2 and "full" not in _all_layouts(stack.layouts(row_shape))


def _all_layouts(entries):
    """The layouts of a plan, branches included."""
    for entry in entries:
        if not isinstance(entry, Bound) and isinstance(entry, tuple) and entry[0] != "band":
            for branch in entry:
                yield from _all_layouts(branch)
        else:
            yield layout_of(entry)


@functools.cache
def _tile_options(xla_loops: bool) -> dict:
    options = dict(_TILE_OPTIONS)
    if xla_loops:
        try:
            jax.jit(lambda x: x + 1, compiler_options=_XLA_LOOP_OPTIONS).lower(1.0).compile()
            options.update(_XLA_LOOP_OPTIONS)
        except (jax.errors.JaxRuntimeError, TypeError, ValueError):
            pass  # "No such compile option" (another jaxlib): compile without it
    return options


@functools.cache
def _compiled(fn, xla_loops: bool):
    """``fn`` jit-compiled with the tile options (:func:`_xla_loops`)."""
    return jax.jit(
        fn,
        static_argnames=("flip_invariant", "want_ntk"),
        compiler_options=_tile_options(xla_loops),
    )


# The tiles take a stack's :func:`_runs` (repeated groups' stds as stacked arrays), not the stack.


def _grid_tile(runs, flip_invariant: bool, x1, x2, want_ntk: bool, xla_loops: bool):
    fn = _compiled(_grid_kernels, xla_loops)
    return fn(runs, x1, x2, flip_invariant=flip_invariant, want_ntk=want_ntk)


def _diag_tile(runs, flip_invariant: bool, x, want_ntk: bool, xla_loops: bool):
    return _compiled(_diag_kernels, xla_loops)(
        runs, x, flip_invariant=flip_invariant, want_ntk=want_ntk
    )


def _grid_kernels(runs, x1: jax.Array, x2: jax.Array, flip_invariant: bool, want_ntk: bool):
    state = _run_runs(runs, flip_invariant, x1, x2, want_ntk)
    return state.nngp, state.ntk


def _diag_kernels(runs, x: jax.Array, flip_invariant: bool, want_ntk: bool):
    state = _run_runs(runs, flip_invariant, x, None, want_ntk)
    return state.nngp, state.ntk
