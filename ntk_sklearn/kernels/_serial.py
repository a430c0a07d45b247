"""``serial``: a stack of layers as a kernel function, blocked, exact and differentiable.

``serial(*layers)`` returns a :class:`Serial`, a plain value (printable, comparable, picklable,
a pytree whose leaves are the layers' ``w_std``/``b_std``) that is also the kernel function:

* ``stack(x1, x2=None, get=("nngp", "ntk"))``: NumPy in, NumPy out, computed in tiles of row
  pairs with bounded memory on all devices (``x2=None``: one triangle);
* ``stack.diag(x)``: each row with itself, without the full matrix;
* :func:`kernel_matrices`: the same in pure JAX, for ``jax.jit``/``jax.grad``.

``serial(..., flip_invariant=True)`` averages the network over horizontal flips of its input
images: ``k̄(x, x') = (k(x, x') + k(x, g x')) / 2``, one more pass with the second image mirrored.

Which covariances are carried is decided once per input shape (neural-tangents'
"diagonal_spatial"): vectors carry one number per pair; images carry same-pixel covariances
``O(H·W)`` per pair unless a pooling layer lies ahead, which needs every pixel pair,
``O((H·W)²)``; after the last pooling layer only same-pixel covariances are kept.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import jax
import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn._progress import Progress
from ntk_sklearn._validation import KERNEL_NAMES, as_array, check_int, parse_get
from ntk_sklearn.kernels import _plan, _pooled, _tiling
from ntk_sklearn.kernels._branching import Parallel
from ntk_sklearn.kernels._compiled_tiles import _diag_tile, _grid_tile, _xla_loops
from ntk_sklearn.kernels._composition import KernelMatrices, _runs
from ntk_sklearn.kernels._layers import Layer

#: Bytes of working memory a tile may use (covariances and temporaries).
TILE_BYTES = 256 * 2**20
#: Bytes of one real covariance array of a spatial tile (a packed loop carry is twice that):
#: small enough for the layers' elementwise passes to run in cache (32 rows of 32x32 images in
#: float32, 22 in float64; on 2 CPU cores the 5-layer CNN's 32-row tiles ran 1.1x the pairs/s
#: of 16 rows and of 40 rows, and a local-pooling CNN's 1.5x of 5 rows,
#: ``benchmarks/bench_conv.py``).
SPATIAL_ARRAY_BYTES = 4 * 2**20
#: Largest tile side.
MAX_BLOCK_SIZE = 2048
#: Most tiles along a side of the output when ``block_size`` is given.
MAX_TILES_PER_SIDE = 64
#: Working arrays per carried covariance array (the layer's temporaries).
_WORK_FACTOR = 4
#: Most layers of a stack. Repeated layers compile once, but each call still checks and runs
#: them one by one: 100,000 layers took 10 s a call on 2x2 images (``benchmarks/bench_depth.py``),
#: and 10 million ran out of memory before computing anything.
MAX_LAYERS = 100_000


@dataclasses.dataclass(frozen=True)
class Serial:
    """A stack of layers and its infinite-width kernel function (see :func:`serial`)."""

    layers: tuple[Layer, ...]
    flip_invariant: bool = False

    def __repr__(self) -> str:
        flip = ", flip_invariant=True" if self.flip_invariant else ""
        return f"serial({', '.join(repr(layer) for layer in self.layers)}{flip})"

    def __deepcopy__(self, memo) -> Serial:
        # An immutable value: copies (scikit-learn's clone) share it and its compiled kernels.
        return self

    # -- shapes ------------------------------------------------------------------------------

    def layouts(self, input_shape: tuple[int, ...]) -> tuple:
        """Check that the stack fits ``input_shape`` (one row); the input layout of each layer.

        A layer's input layout is ``"fc"`` for vectors; for positions, the cheapest that holds
        the pairs its readout needs (neural-tangents' ``diagonal_spatial``, extended to
        bands): ``"diag"`` (same position) when only ``Flatten`` follows, ``("band", *r)``
        when the pooling ahead pairs positions at most ``r`` apart and that is fewer pairs
        than all of them, else ``"full"``. A ``parallel`` layer's entry is a tuple of its
        branches' plans; a layer whose ``apply`` takes a static fact about its input (a
        standard layer's input width) has a ``Bound(layout, info)``.

        Raises ``ValueError`` naming the first layer that does not fit, or a stack that ends on
        positions or with open branches.
        """
        return self._plan(tuple(input_shape))[0]

    def _plan(self, input_shape: tuple[int, ...]) -> tuple[tuple, int]:
        """``(entries, pair_size)`` (see :meth:`layouts` and :func:`_plan.plan`)."""
        if not 1 <= len(input_shape) <= 4:
            raise ValueError(
                "Inputs must be (n, features) for dense stacks, or (n, length, channels), "
                "(n, height, width, channels) or (n, depth, height, width, channels) for "
                f"convolutional stacks; got rows of shape {input_shape}."
            )
        if self.flip_invariant and len(input_shape) == 1:
            raise ValueError(
                "flip_invariant=True averages over horizontal flips of images; the inputs are "
                f"vectors of shape {input_shape}. Give images (n, height, width, channels)."
            )
        return _plan.plan(self.layers, input_shape, self.flip_invariant)

    def _pair_size(self, input_shape: tuple[int, ...]) -> int:
        """Largest number of covariance entries carried per row pair (all branches)."""
        return self._plan(tuple(input_shape))[1]

    # -- kernels -----------------------------------------------------------------------------

    def __call__(
        self,
        x1,
        x2=None,
        *,
        get: str | Sequence[str] = KERNEL_NAMES,
        block_size: int | None = None,
        verbose: int = 0,
    ) -> KernelMatrices | np.ndarray:
        """NNGP and NTK between the rows of ``x1`` and ``x2``.

        Parameters
        ----------
        x1 : array-like of shape (n1, n_features) or (n1, *positions, channels)
            Vectors, sequences ``(n1, length, channels)``, images ``(n1, height, width,
            channels)`` or volumes ``(n1, depth, height, width, channels)``.
        x2 : array-like of the same row shape, default=None
            ``None`` means ``x1``: the symmetric kernel, computed on and above the diagonal only.
        get : {"nngp", "ntk"} or tuple of them, default=("nngp", "ntk")
            A tuple returns a :class:`KernelMatrices` with ``.nngp`` and ``.ntk``; a string
            returns that array.
        block_size : int, default=None
            Rows per tile; by default as many as fit in about 256 MiB of working memory (at
            most 2048). Smaller values are raised so that a side has at most 64 tiles (but not
            above the default).
        verbose : int, default=0
            ``1``: a progress line (tiles done, time left) every 10 s; ``2``: one per tile.

        Returns
        -------
        KernelMatrices or ndarray of shape (n1, n2)
            In float64 when JAX's x64 mode is on (``with jax.enable_x64(True):``) and the inputs
            are float64 or integer, else float32.

        Raises
        ------
        ValueError
            For inputs that are not numeric, finite, non-empty arrays of the stack's shape, or so
            large that their squares overflow.
        FloatingPointError
            When the kernel overflows the floating-point range (huge stds or depth).
        MemoryError
            Before allocating, when the output cannot fit in the available memory.
        """
        names, single = parse_get(get)
        x1, x2, dtype = self._inputs(x1, x2)
        symmetric = x2 is None
        n1, n2 = x1.shape[0], (x1 if symmetric else x2).shape[0]
        block = self._block_size(x1.shape[1:], dtype, block_size, "ntk" in names)
        if block_size is not None:
            # Tiny tiles only cost time (one dispatch each: block_size=1 at 1,500 rows meant 1.1
            # million calls): at most MAX_TILES_PER_SIDE per side, never beyond the default.
            default = self._block_size(x1.shape[1:], dtype, None, "ntk" in names)
            block = max(block, min(-(-max(n1, n2) // MAX_TILES_PER_SIDE), default))
        check_memory(
            len(names) * n1 * n2 * dtype.itemsize,
            f"The {n1} x {n2} kernel matrices",
            "Compute fewer rows at a time (slices of x1), only one kernel (get=...), or float32.",
        )
        out = {name: _tiling.aligned_empty((n1, n2), dtype) for name in names}
        blocks1 = _tiling.row_blocks(x1, block)
        blocks2 = blocks1 if symmetric else _tiling.row_blocks(x2, block)
        index = list(_tiling.tile_pairs(len(blocks1), len(blocks2), symmetric))
        want_ntk = "ntk" in names
        xla_loops = _xla_loops(self, x1.shape[1:])
        runs = _runs(self.layers, self.layouts(x1.shape[1:]), dtype)

        def compute(a, b):
            return _grid_tile(runs, self.flip_invariant, a, b, want_ntk, xla_loops)

        def store(k: int, result) -> None:
            i, j = index[k]
            rows, cols = blocks1[i].rows, blocks2[j].rows
            for name, tile in zip(KERNEL_NAMES, result, strict=True):
                if name not in out:
                    continue
                tile = np.asarray(tile)[: rows.stop - rows.start, : cols.stop - cols.start]
                self._check_finite(tile, name, x1 if symmetric else None)
                # Of x2=None, a diagonal tile keeps its upper triangle (entries (a, b) and (b, a)
                # differ by rounding) and an off-diagonal one is mirrored below the diagonal.
                _tiling.store_tile(out[name], rows, cols, tile, symmetric)

        progress = Progress(f"{'+'.join(names).upper()} {n1}x{n2}", len(index), verbose)
        _tiling.run_tiles([(blocks1[i], blocks2[j]) for i, j in index], compute, store, progress)
        return out[names[0]] if single else KernelMatrices(out.get("nngp"), out.get("ntk"))

    def diag(self, x, *, get: str | Sequence[str] = KERNEL_NAMES) -> KernelMatrices | np.ndarray:
        """Each row of ``x`` with itself: the kernels' diagonals, shape ``(n,)``, in ``O(n)``.

        Equal (to rounding) to the diagonal of ``stack(x)``; parameters as in ``__call__``.
        """
        names, single = parse_get(get)
        x, _, dtype = self._inputs(x, None)
        want_ntk = "ntk" in names
        block = self._block_size(x.shape[1:], dtype, None, want_ntk) ** 2
        out = {name: np.empty(x.shape[0], dtype) for name in names}
        parts = _tiling.row_blocks(x, min(block, 65536))
        xla_loops = _xla_loops(self, x.shape[1:])
        runs = _runs(self.layers, self.layouts(x.shape[1:]), dtype)

        def diag_tile(a, _):
            return _diag_tile(runs, self.flip_invariant, a, want_ntk, xla_loops)

        def store(k: int, result) -> None:
            rows = parts[k].rows
            for name, values in zip(KERNEL_NAMES, result, strict=True):
                if name in out:
                    values = np.asarray(values)[: rows.stop - rows.start]
                    self._check_finite(values, name, x)
                    out[name][rows] = values

        _tiling.run_tiles([(p, None) for p in parts], diag_tile, store)
        return out[names[0]] if single else KernelMatrices(out.get("nngp"), out.get("ntk"))

    # -- validation --------------------------------------------------------------------------

    def _inputs(self, x1, x2):
        x1 = _as_input(x1, "x1")
        if x2 is not None:
            x2 = _as_input(x2, "x2")
            if x2.shape[1:] != x1.shape[1:]:
                raise ValueError(
                    f"x1 and x2 must have rows of the same shape; got {x1.shape[1:]} and "
                    f"{x2.shape[1:]}."
                )
        self.layouts(x1.shape[1:])
        arrays = (x1,) if x2 is None else (x1, x2)
        dtype = np.dtype(jax.dtypes.canonicalize_dtype(np.result_type(*arrays, np.float32)))
        limit = math.sqrt(np.finfo(dtype).max / max(x1.shape[-1], 1)) / 4
        for name, x in zip(("x1", "x2"), arrays, strict=False):
            largest = float(np.max(np.abs(x)))
            if largest > limit:
                raise ValueError(
                    f"{name} has entries up to {largest:.3g}, whose squares overflow {dtype}: "
                    "scale the inputs (e.g. StandardScaler or NormScaler) before the kernel."
                )
        x2 = None if x2 is None else x2.astype(dtype, copy=False)
        return x1.astype(dtype, copy=False), x2, dtype

    def _block_size(self, row_shape, dtype, block_size, want_ntk: bool) -> int:
        if block_size is not None:
            return check_int(block_size, "block_size", low=1)
        entries, pair_size = self._plan(tuple(row_shape))
        tile_bytes, array_bytes = TILE_BYTES, SPATIAL_ARRAY_BYTES
        if jax.default_backend() != "cpu" and _pooled.supports(self.layers, entries):
            # Image pairs batched into each fused loop; its widest array: all pixel pairs of
            # the bordered input grid.
            pair_size = max(pair_size, _pooled.pair_size(self.layers, row_shape))
            tile_bytes = array_bytes = _pooled.ACCELERATOR_TILE_BYTES
        per_pair = pair_size * dtype.itemsize * _WORK_FACTOR * (2 + 2 * want_ntk)
        rows = math.isqrt(tile_bytes // per_pair)
        if pair_size > 1:
            rows = min(rows, math.isqrt(array_bytes // (pair_size * dtype.itemsize)))
        return int(max(1, min(MAX_BLOCK_SIZE, rows)))

    def _check_finite(self, values: np.ndarray, name: str, x) -> None:
        if not np.isfinite(values).all():
            stds = [
                f"{type(layer).__name__}(w_std={layer.w_std:g}, b_std={layer.b_std:g})"
                for layer in self.layers
                if hasattr(layer, "w_std")
            ]
            shown = ", ".join(stds[:3]) + (", ..." if len(stds) > 3 else "")
            raise FloatingPointError(
                f"The {name.upper()} overflowed the {values.dtype} range: the layers' variances "
                f"multiply beyond it (stds: {shown}). Scale the inputs to unit variance, lower "
                "w_std or the depth, or use float64."
            )


def _as_input(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not 2 <= arr.ndim <= 5:
        raise ValueError(
            f"{name} must be (n, features) for dense stacks, or (n, length, channels), (n, "
            "height, width, channels) or (n, depth, height, width, channels) for convolutional "
            f"stacks; got shape {arr.shape}."
        )
    return as_array(arr, name, ndim=arr.ndim)


def serial(*layers: Layer | Serial, flip_invariant: bool = False) -> Serial:
    """Compose layers into a network whose infinite-width kernel function is returned.

    Parameters
    ----------
    *layers : Layer or Serial
        ``Dense``, ``Conv``, ``AvgPool``, ``GlobalAvgPool``, ``Flatten``, ``LayerNorm``,
        ``GlobalSelfAttention``, activation layers (``Relu()``, ``Erf()``,
        ``Activation(...)``, ...), branching (``FanOut``, ``parallel(...)``, ``FanInSum``,
        ``FanInConcat``), or stacks (flattened in place).
    flip_invariant : bool, default=False
        The kernels of the network averaged over horizontal flips ``g`` of its input image,
        ``(f(x) + f(g x)) / 2``: ``(k(x, x') + k(x, g x')) / 2`` for the NNGP and the NTK (the
        stack commutes with the flip, so ``k(g x, g x') = k(x, x')``), at twice the cost
        (``diag`` about three times). Predictions are then exactly invariant to flipping an
        image. Needs image inputs and layers whose windows are mirror-symmetric along the width
        (checked; a layer class of your own must say so in ``mirror_symmetric``).

    Returns
    -------
    Serial
        Call it as ``stack(x1, x2=None, get=("nngp", "ntk"))``; ``stack.diag(x)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import Conv, Dense, Flatten, Relu, serial
    >>> stack = serial(Conv((3, 3), w_std=1.4), Relu(), Flatten(), Dense(w_std=1.4))
    >>> stack
    serial(Conv(filter_shape=(3, 3), strides=(1, 1), padding='SAME', w_std=1.4, b_std=0.0), \
Activation(activation='relu', negative_slope=0.01, quadrature_points=64), Flatten(), \
Dense(w_std=1.4, b_std=0.0))
    >>> x = np.random.default_rng(0).normal(size=(3, 8, 8, 2))
    >>> k = stack(x)
    >>> k.ntk.shape, bool(np.allclose(k.nngp, k.nngp.T))
    ((3, 3), True)
    """
    n_layers = len(layers)
    if n_layers <= MAX_LAYERS:  # else refused without looking at each one
        n_layers = sum(len(layer.layers) if isinstance(layer, Serial) else 1 for layer in layers)
    if n_layers > MAX_LAYERS:
        raise ValueError(
            f"serial takes at most {MAX_LAYERS:,} layers; got {n_layers:,} (a network of depth d "
            f"has about 2·d layers). Each call runs the layers one by one: {MAX_LAYERS:,} layers "
            "take about 10 s a call. Use a shallower network."
        )
    flat: list[Layer] = []
    for layer in layers:
        if isinstance(layer, Serial):
            if layer.flip_invariant:
                raise ValueError(
                    f"{layer!r} averages its outputs over flips and cannot be a part of another "
                    "stack; pass flip_invariant=True to the outer serial(...) instead."
                )
            flat.extend(layer.layers)
        elif isinstance(layer, Layer):
            flat.append(layer)
        else:
            raise TypeError(
                f"serial takes layers (Dense(), Conv(), Relu(), ...); got {layer!r}. Did you "
                "forget the parentheses, e.g. Relu instead of Relu()?"
            )
    if not flat:
        raise ValueError("serial needs at least one layer.")
    if not isinstance(flip_invariant, bool | np.bool_):
        raise TypeError(f"flip_invariant must be True or False; got {flip_invariant!r}.")
    return Serial(tuple(flat), bool(flip_invariant))


def parallel(*branches: Layer | Serial) -> Parallel:
    """Apply each branch to its own copy of the input (after ``FanOut(len(branches))``).

    Parameters
    ----------
    *branches : Layer or Serial
        One per branch: a layer, or a ``serial(...)`` stack (which may branch again inside,
        closing its own fan-outs). ``Identity()`` passes its branch on unchanged (the skip
        connection).

    Returns
    -------
    Parallel
        A layer to place between ``FanOut(n)`` and ``FanInSum()``/``FanInConcat()``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import (Dense, FanInSum, FanOut, GlobalAvgPool, Conv,
    ...                                  Identity, Relu, parallel, serial)
    >>> block = serial(FanOut(2), parallel(serial(Relu(), Conv((3, 3), w_std=1.4)), Identity()),
    ...                FanInSum())
    >>> resnet = serial(Conv((3, 3)), block, block, Relu(), GlobalAvgPool(), Dense())
    >>> k = resnet(np.random.default_rng(0).normal(size=(3, 6, 6, 2)))
    >>> bool(np.all(np.linalg.eigvalsh(k.ntk) > 0))
    True
    """
    if not branches:
        raise ValueError("parallel needs at least one branch.")
    stacks = []
    for branch in branches:
        if isinstance(branch, Layer):
            branch = serial(branch)
        elif not isinstance(branch, Serial):
            raise TypeError(
                f"parallel takes layers or serial(...) stacks, one per branch; got {branch!r}."
            )
        elif branch.flip_invariant:
            raise ValueError(
                f"{branch!r} averages its outputs over flips and cannot be a branch; pass "
                "flip_invariant=True to the outermost serial(...) instead."
            )
        stacks.append(branch)
    return Parallel(tuple(stacks))


jax.tree_util.register_pytree_node(
    Serial,
    lambda s: (s.layers, s.flip_invariant),
    lambda flip, layers: Serial(tuple(layers), flip),
)
