"""All-pixel-pair kernels before a global average pool, on a bordered flat grid (pure JAX).

A stack read out by ``GlobalAvgPool`` (CNTK-GAP, Arora et al. 2019; Myrtle, Shankar et al.
2020) carries every pixel pair ``Σ[p, p']``, ``(H·W)²`` numbers per image pair. The generic
``"full"`` layout runs each layer as XLA's padded, strided 4-D window loops and carries the rows'
own covariances ``Σ(x, x)`` along, also ``(H·W)²`` each (3x the work of a one-pair tile). This
path instead

* stores a pair's covariances as ``(R, R)``: rows the first image's pixel, columns the
  second's, on the grid of pixels bordered by ``b`` zeros per axis, flattened (``R =
  prod(P + 2b)``). A convolution's tap ``d`` reads ``Σ[p + d, p' + d]``, the entry ``Δ =
  Σ_i d_i S_i`` rows and columns away (``S_i`` the flat stride of axis ``i``): a slice, so that
  ``Σ'[o, o'] = w² / prod(k) · Σ_d Σ[o + d, o' + d] + b²`` is ``prod(k)`` shifted loads fused
  with the activation that follows, whose output is zeroed on the border (the next
  convolution's zero padding);
* computes each convolution's output on a grid one reach narrower than its input (no tap leaves
  the array, nothing is padded: XLA's CPU backend ran an activation fused into a pad 5-7x
  slower than alone); the border, the sum of the reaches of a group's convolutions, keeps every
  image pixel and the zeros its taps read (:class:`_Grid`);
* runs one loop per layer for the NNGP and one for the NTK, each materialized once
  (:func:`_materialized`), and reduces the last one directly into the global average;
* takes the per-pixel variances ``Σ(x, x)[p, p]`` that the activations need from a pass over
  each row alone in the cheapest layout that holds them (same-pixel; a band before ``AvgPool``),
  ``O(H·W)`` per row instead of ``O((H·W)²)`` per row per tile.

Stacks it takes (:func:`supports`): ``Conv`` (NTK parameterization, stride 1, "SAME"),
activations and ``AvgPool`` before the first ``GlobalAvgPool``, and only ``Dense`` (NTK
parameterization) or ``Identity`` after it; the others run through the generic layers. The
results equal the generic path's to rounding (``tests/test_pooled.py``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn.kernels import _plan, _spatial
from ntk_sklearn.kernels._activation_layer import Activation
from ntk_sklearn.kernels._affine import Conv, Dense
from ntk_sklearn.kernels._pooling import AvgPool, Flatten, GlobalAvgPool
from ntk_sklearn.kernels._state import KernelState, input_state, pixel_variances

#: Working memory of a tile of these stacks on an accelerator (GPU, TPU): image pairs batched
#: into one fused loop per layer rather than the CPU's one pair per tile, whose arrays stay
#: near its caches. Not measured (no GPU was lent to this work); 4 GiB fits every current
#: data-centre GPU with room for the tiles in flight.
ACCELERATOR_TILE_BYTES = 4 * 2**30


def supports(layers, layouts) -> bool:
    """Whether :func:`propagate` computes the pair kernels of ``layers`` (flat, no branches)."""
    gap = next((i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool)), None)
    if gap is None or not any(isinstance(layer, Conv) for layer in layers[:gap]):
        return False
    for layer, entry in zip(layers[:gap], layouts[:gap], strict=True):
        if _plan.layout_of(entry) != "full":
            return False
        if isinstance(layer, Conv):
            if (
                layer.parameterization != "ntk"
                or any(s != 1 for s in layer.strides)
                or layer.padding != "SAME"
            ):
                return False
        elif not isinstance(layer, (Activation, AvgPool)):
            return False
    return all(
        (isinstance(layer, Dense) and layer.parameterization == "ntk")
        or (isinstance(layer, Activation) and layer.activation == "identity")
        for layer in layers[gap + 1 :]
    )


def pair_size(layers, row_shape: tuple[int, ...]) -> int:
    """Entries per row pair of the widest array of :func:`propagate` (the bordered input)."""
    gap = next(i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool))
    border = _border(layers[:gap], 0, len(row_shape) - 1)
    return math.prod(n + 2 * b for n, b in zip(row_shape[:-1], border, strict=True)) ** 2


def propagate(layers, layouts, x1: jax.Array, x2: jax.Array, want_ntk: bool) -> KernelState:
    """The NNGP (and NTK) of every row pair of ``x1`` x ``x2`` through ``layers``.

    ``layers`` pass :func:`supports`; the result is the generic path's (to rounding): a
    vector-layout state without the rows' own covariances. On the CPU, a tile whose arrays
    would exceed ``CPU_BLOCK_BYTES`` runs as a loop over sub-blocks of rows that do not (2x2
    rows of 16x16 images ran 1.7x the pairs/s of 4x4, ``benchmarks/README.md``).
    """
    n1, n2 = x1.shape[0], x2.shape[0]
    entry = pair_size(layers, x1.shape[1:]) * x1.dtype.itemsize
    rows = max(1, math.isqrt(CPU_BLOCK_BYTES // entry))
    if jax.default_backend() != "cpu" or rows >= max(n1, n2):
        return _propagate(layers, x1, x2, want_ntk)
    r1, r2 = min(rows, n1), min(rows, n2)
    k1, k2 = -(-n1 // r1), -(-n2 // r2)
    blocks1 = _row_blocks(x1, k1, r1)
    blocks2 = _row_blocks(x2, k2, r2)
    static = {}

    def block(a, b):
        state = _propagate(layers, a, b, want_ntk)
        static.update(rounding=state.rounding, ntk_zero=state.ntk_zero)
        return state.nngp, state.ntk

    def row(a):
        return jax.lax.map(lambda b: block(a, b), blocks2)

    nngp, ntk = jax.lax.map(row, blocks1)  # (k1, k2, r1, r2)

    def assemble(k):
        if k is None:
            return None
        return k.transpose(0, 2, 1, 3).reshape(k1 * r1, k2 * r2)[:n1, :n2]

    return KernelState(
        assemble(nngp),
        assemble(ntk),
        None,
        None,
        "fc",
        False,
        static["rounding"],
        static["ntk_zero"],
        0,
    )


#: Largest array of one sub-block of a CPU tile (see :func:`propagate`), as the generic
#: layers' ``SPATIAL_ARRAY_BYTES``.
CPU_BLOCK_BYTES = 4 * 2**20


def _row_blocks(x: jax.Array, count: int, rows: int) -> jax.Array:
    """``x`` padded with zero rows to ``count * rows``, as ``(count, rows, ...)``."""
    pad = count * rows - x.shape[0]
    x = jnp.pad(x, [(0, pad)] + [(0, 0)] * (x.ndim - 1))
    return x.reshape(count, rows, *x.shape[1:])


def _propagate(layers, x1: jax.Array, x2: jax.Array, want_ntk: bool) -> KernelState:
    """:func:`propagate` on one block of rows."""
    gap = next(i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool))
    prefix = layers[:gap]
    d = x1.ndim - 2
    variances1 = _activation_variances(prefix, x1)
    variances2 = _activation_variances(prefix, x2)
    fan_in = x1.shape[-1]
    rounding = 8.0 + 4.0 * fan_in**0.5

    # The inputs' covariance Σ⁰ on the bordered grid: zero-padded images give zeros on the
    # border. Few channels: sums of broadcast products (one fused loop); else a dot.
    sizes = tuple(x1.shape[1:-1])
    grid = _Grid(sizes, _border(prefix, 0, d))
    pad = [(0, 0)] + [(b, b) for b in grid.border] + [(0, 0)]
    products = _pair_products(jnp.pad(x1, pad), jnp.pad(x2, pad)) / fan_in
    z = grid.wrap(*_materialized((products,)), None)
    ntk_zero, dense = want_ntk, None  # dense: (nngp, ntk) in the unpadded (n1, n2, *P, *P) layout
    i = 0
    while i < len(prefix):
        layer = prefix[i]
        if isinstance(layer, Conv):
            if dense is not None:
                grid = _Grid(sizes, _border(prefix, i, d))
                z, dense = grid.wrap_unpadded(*dense), None
            follows = prefix[i + 1] if i + 1 < len(prefix) else None
            rounding += 4.0 + 2.0 * math.prod(layer.filter_shape) ** 0.5
            activation, q, tol = None, None, None
            if isinstance(follows, Activation) and follows.activation != "identity":
                activation = follows
                q = (grid.pad_rows(variances1[i + 1]), grid.pad_rows(variances2[i + 1]))
                tol = rounding * jnp.finfo(x1.dtype).eps
                rounding, i = 8.0, i + 1
            # Before the global average, each output is reduced in its own loop, not stored.
            last = i + 1 == len(prefix)
            z = _conv_step(grid, z, layer, activation, q, tol, want_ntk, not last)
            ntk_zero = False
        elif isinstance(layer, Activation):
            if layer.activation != "identity":
                if dense is None:
                    dense = grid.unwrap(z)
                nngp, ntk = dense
                tol = rounding * jnp.finfo(nngp.dtype).eps
                qa = variances1[i][(slice(None), None, Ellipsis, *(None,) * d)]
                qb = variances2[i][(None, slice(None), *(None,) * d)]
                t, t_dot = layer._pair(qa, qb, nngp, tol)
                # Θ' = Θ·Tdot: a zero (or unwanted) NTK stays so.
                dense = (t, None if ntk is None else ntk * t_dot)
                rounding = 8.0
        else:  # AvgPool
            if dense is None:
                dense = grid.unwrap(z)
            dense = tuple(None if a is None else _pool(a, layer) for a in dense)
            sizes = layer.output_shape(sizes)
        i += 1

    if dense is None:
        nngp, ntk = grid.total(z)
    else:
        axes = tuple(range(-2 * d, 0))
        nngp = jnp.mean(dense[0], axis=axes)
        ntk = None if dense[1] is None else jnp.mean(dense[1], axis=axes)
    if want_ntk and ntk is None:
        ntk = jnp.zeros_like(nngp)  # the inputs' NTK, still exactly 0 (``ntk_zero``)
    state = KernelState(nngp, ntk, None, None, "fc", False, rounding, ntk_zero, 0)
    for layer in layers[gap + 1 :]:
        state = layer.apply(state)
    return state


def _pool(a: jax.Array, layer: AvgPool) -> jax.Array:
    """``AvgPool`` of pixel-pair covariances ``(n1, n2, *P, *P)``: non-overlapping windows
    that tile the input (Myrtle's 2x2) as one mean over reshaped axes, else
    :func:`_spatial.pool_full`."""
    d = (a.ndim - 2) // 2
    sizes = a.shape[2 : 2 + d]
    window, strides = layer.window_shape, layer.strides
    if (
        layer.padding != "VALID"
        or window != strides
        or any(n % k for n, k in zip(sizes, window, strict=True))
    ):
        return _spatial.pool_full(a, window, strides, layer.padding)
    shape = [n for n, k in zip(sizes * 2, window * 2, strict=True) for n in (n // k, k)]
    return a.reshape(*a.shape[:2], *shape).mean(axis=tuple(range(3, 2 + 4 * d, 2)))


def _border(prefix, start: int, d: int) -> tuple[int, ...]:
    """Zero border per spatial axis for the convolutions from ``prefix[start]`` up to the next
    pooling layer: the sum of their reaches (each one's output is computed on a grid one
    reach narrower, so that no tap leaves the array; see :class:`_Grid`)."""
    border = [0] * d
    for layer in prefix[start:]:
        if isinstance(layer, AvgPool):
            break
        if isinstance(layer, Conv):
            for i, k in enumerate(layer.filter_shape):
                border[i] += max(_spatial.pads(64, k, 1, "SAME"))
    return tuple(border)


def _pair_products(y1: jax.Array, y2: jax.Array) -> jax.Array:
    """``Σ_c y1[i, p, c] y2[j, p', c]`` of shape ``(n1, n2, *P, *P)``."""
    d = y1.ndim - 2
    channels = y1.shape[-1]
    if channels <= 8:
        a = y1[(slice(None), None, Ellipsis, *(None,) * d, slice(None))]
        b = y2[(None, slice(None), *(None,) * d, Ellipsis)]
        return sum(a[..., c] * b[..., c] for c in range(channels))
    first, second = "hwd"[:d], "abe"[:d]
    return jnp.einsum(
        f"i{first}c,j{second}c->ij{first}{second}", y1, y2, precision=jax.lax.Precision.HIGHEST
    )


def _activation_variances(prefix, x: jax.Array) -> dict[int, jax.Array]:
    """``{i: Σ(x, x)[p, p]}``, the per-pixel variances of each row at the input of each
    activation ``prefix[i]``, from the rows alone in the cheapest layouts that hold them (the
    plan of the prefix read out by ``Flatten``: same-pixel, or bands before local pooling)."""
    entries, _ = _plan.plan((*prefix, Flatten()), tuple(x.shape[1:]), False)
    d = x.ndim - 2
    state = input_state(x, None, _plan.layout_of(entries[0]), False)
    from ntk_sklearn.kernels._composition import _narrow  # the state narrowing of the generic path

    out = {}
    for i, (layer, entry) in enumerate(zip(prefix, entries, strict=False)):
        state = _narrow(state, _plan.layout_of(entry))
        if isinstance(layer, Activation):
            out[i] = pixel_variances(state.nngp, state.layout, d)
        state = layer.apply(state)
    return out


def _conv_step(grid, z, conv: Conv, activation, q, tol, want_ntk: bool, materialize: bool):
    """``Conv`` then (if given) ``activation`` on the bordered pair layout: one loop per output
    (NNGP, NTK), each from the taps to the zeroed border, their results materialized."""
    w2, b2 = conv.w_std**2, conv.b_std**2
    nngp_in, ntk_in, start = z
    taps, stop = grid.taps(nngp_in, start, conv.filter_shape)
    nngp = w2 * taps + b2
    # The NTK's loop sums the taps in the other order: XLA's CSE then does not merge the two
    # loops' shared work (the correlation and its square root) into an array that each of them
    # reads back (3 memory passes more per layer, 1.4x the pair time; equal to rounding).
    ntk_nngp = w2 * grid.taps(nngp_in, start, conv.filter_shape, reverse=True)[0] + b2
    if ntk_in is None:
        ntk = ntk_nngp if want_ntk else None  # Θ' = Σ' on an input NTK of 0
    else:
        ntk = w2 * grid.taps(ntk_in, start, conv.filter_shape)[0] + ntk_nngp
    if activation is not None:
        span = slice(stop, grid.length - stop)
        qa, qb = q[0][:, None, span, None], q[1][None, :, None, span]
        nngp = activation._pair(qa, qb, nngp, tol)[0]
        if ntk is not None:
            ntk = ntk * activation._pair(qa, qb, ntk_nngp, tol)[1]
    nngp, ntk = grid.store(nngp, stop), None if ntk is None else grid.store(ntk, stop)
    return (*(_materialized((nngp, ntk)) if materialize else (nngp, ntk)), stop)


def _materialized(arrays: tuple) -> tuple:
    """``arrays`` unchanged, computed before anything that reads them (on the CPU).

    XLA's CPU backend would otherwise fuse a layer's activation into the next layer's
    convolution and compute it once per filter tap (``optimization_barrier`` does not stop its
    fusion); the operands and results of a conditional are materialized. The predicate is true
    for every value (NaN included), unknown to the compiler. Other backends decide their own
    fusion (a conditional would cost a GPU a host round trip): unchanged there.
    """
    if jax.default_backend() != "cpu":
        return arrays
    first = arrays[0][(0,) * arrays[0].ndim]
    always = (first == first) | (first != first)
    return jax.lax.cond(
        always, lambda a: a, lambda a: jax.tree_util.tree_map(jnp.zeros_like, a), arrays
    )


class _Grid:
    """Pixel-pair covariances of inputs of ``sizes`` on the grid of pixels bordered by
    ``border`` zeros per axis, flattened: ``(n1, n2, R, R)``, ``R = prod(P + 2b)``, rows the
    first image's pixel, columns the second's.

    A convolution's tap ``d`` reads ``Σ[p + d, p' + d]``, the entry ``Δ = Σ_i d_i S_i`` rows and
    columns away (``S_i`` the flat stride of axis ``i``): a slice. Each convolution's output is
    computed on the rows and columns ``[s, n − s)`` of its input (``s`` its largest ``|Δ|``),
    so that no tap leaves the array and nothing is padded after the activation (XLA's CPU
    backend runs an activation fused into a pad several times slower than alone); the
    border, the sum of the reaches of a group's convolutions, keeps every image pixel and the
    zeros the taps of an image pixel read. An array covers the flat pixels ``[start,
    R − start)``.
    """

    def __init__(self, sizes: tuple[int, ...], border: tuple[int, ...]) -> None:
        self.sizes, self.border = tuple(sizes), tuple(border)
        self.padded = tuple(n + 2 * b for n, b in zip(sizes, border, strict=True))
        self.steps = tuple(math.prod(self.padded[i + 1 :]) for i in range(len(sizes)))
        self.length = math.prod(self.padded)
        inside = np.ones((), bool)
        for n, b in zip(sizes, border, strict=True):
            inside = inside[..., None] & np.pad(np.ones(n, bool), (b, b))
        self._inside = inside.reshape(-1)
        self._pixels = np.flatnonzero(self._inside)

    def pad_rows(self, q: jax.Array) -> jax.Array:
        """Per-row pixel values ``(n, *P)`` bordered with 1 (a harmless variance), flat."""
        pad = [(0, 0)] + [(b, b) for b in self.border]
        return jnp.pad(q, pad, constant_values=1.0).reshape(q.shape[0], self.length)

    def wrap(self, nngp: jax.Array, ntk: jax.Array | None) -> tuple:
        """Bordered grids ``(n1, n2, *P̃, *P̃)`` (zero on the border) as ``(nngp, ntk, 0)``."""

        def flat(a):
            return None if a is None else a.reshape(*a.shape[:2], self.length, self.length)

        return flat(nngp), flat(ntk), 0

    def wrap_unpadded(self, nngp: jax.Array, ntk: jax.Array | None) -> tuple:
        """Unbordered ``(n1, n2, *P, *P)`` covariances into the layout."""
        pad = [(0, 0), (0, 0)] + [(b, b) for b in self.border * 2]
        return self.wrap(jnp.pad(nngp, pad), None if ntk is None else jnp.pad(ntk, pad))

    def taps(
        self, z: jax.Array, start: int, filter_shape, reverse: bool = False
    ) -> tuple[jax.Array, int]:
        """``(mean_d z[o + d, o' + d], stop)``: the convolution's box filter on the rows and
        columns ``[stop, R − stop)`` of the grid (values on the border are not zeroed)."""
        lows = [
            _spatial.pads(n, k, 1, "SAME")[0] for n, k in zip(self.sizes, filter_shape, strict=True)
        ]
        reach = sum(
            max(_spatial.pads(n, k, 1, "SAME")) * s
            for n, k, s in zip(self.sizes, filter_shape, self.steps, strict=True)
        )
        size = z.shape[-1] - 2 * reach
        total = None
        offsets_all = list(np.ndindex(*filter_shape))
        for offsets in reversed(offsets_all) if reverse else offsets_all:
            shift = sum((o - lo) * s for o, lo, s in zip(offsets, lows, self.steps, strict=True))
            first = reach + shift
            part = z[..., first : first + size, first : first + size]
            total = part if total is None else total + part
        return total * (1.0 / math.prod(filter_shape)), start + reach

    def store(self, grid: jax.Array, start: int) -> jax.Array:
        """``grid`` on the pixels ``[start, R − start)``, zeroed on the border."""
        inside = self._inside[start : self.length - start]
        return jnp.where(inside[:, None] & inside[None, :], grid, jnp.zeros((), grid.dtype))

    def unwrap(self, z: tuple) -> tuple:
        """The layout back to unbordered ``(n1, n2, *P, *P)`` ``(nngp, ntk)``."""
        nngp, ntk, start = z
        index = tuple(slice(b, b + n) for n, b in zip(self.sizes, self.border, strict=True))

        def one(a):
            a = jnp.pad(a, [(0, 0), (0, 0), (start, start), (start, start)])
            return a.reshape(*a.shape[:2], *self.padded * 2)[(Ellipsis, *index, *index)]

        return one(nngp), None if ntk is None else one(ntk)

    def total(self, z: tuple) -> tuple:
        """The global average of the NNGP (and NTK) over all pixel pairs (zero border)."""
        count = math.prod(self.sizes) ** 2
        return tuple(None if a is None else jnp.sum(a, axis=(2, 3)) / count for a in z[:2])
