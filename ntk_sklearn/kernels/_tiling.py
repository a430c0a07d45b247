"""Blocked evaluation of a kernel over row pairs, bounded in memory, on every device.

The one tiling engine of the package: analytic kernels (``Serial``), their gradients
(``gaussian_process``), empirical kernels (``empirical``) and the estimators' training rows.
The output is split into tiles of row blocks; each tile is one call of a jit-compiled function,
dispatched round-robin to the local devices with a few tiles in flight, and copied into a
preallocated NumPy array. Device memory is bounded by a few tiles, host memory by the output.

One triangle convention: a symmetric kernel (``x2=None``) computes only the tiles on and above
the diagonal (``i <= j``, :func:`tile_pairs`), and :func:`store_tile` mirrors them below it and
keeps the upper triangle of each diagonal tile (its entries ``(a, b)`` and ``(b, a)`` differ by
rounding), so that the result is exactly symmetric.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import numpy as np

from ntk_sklearn._progress import Progress


class RowBlock(NamedTuple):
    """Rows ``rows`` of an input, padded with zero rows up to a bucketed size."""

    x: np.ndarray
    rows: slice


def aligned_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty`` aligned to 64 bytes, so that ``jax.device_put`` can alias it on the CPU
    instead of copying (a training kernel of 60,000 samples is 14.4 GB in float32)."""
    dtype = np.dtype(dtype)
    n_bytes = int(np.prod(shape)) * dtype.itemsize
    raw = np.empty(n_bytes + 64, np.uint8)
    offset = -raw.ctypes.data % 64
    return raw[offset : offset + n_bytes].view(dtype).reshape(shape)


def blocks(n: int, block_size: int) -> list[slice]:
    """Split ``range(n)`` into near-equal slices of at most ``block_size`` rows."""
    n_blocks = -(-n // block_size)
    edges = np.linspace(0, n, n_blocks + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def padded(n: int, block_size: int) -> int:
    """Row count padded up to a bucket (nearby sizes share one compilation), at most a block.

    Under 32 rows the bucket is the next power of two, so that a small call is not padded to a
    full bucket (2 rows against 3 of an all-pixel-pair kernel were computed as 32 x 32 pairs).
    """
    if n < 32:
        return min(1 << (n - 1).bit_length(), max(block_size, n))
    step = 32 if n <= 256 else 128
    return min(-(-n // step) * step, max(block_size, n))


def row_blocks(x: np.ndarray, block_size: int) -> list[RowBlock]:
    out = []
    for rows in blocks(x.shape[0], block_size):
        part = x[rows]
        size = padded(part.shape[0], block_size)
        if size > part.shape[0]:
            pad = np.zeros((size - part.shape[0], *part.shape[1:]), part.dtype)
            part = np.concatenate([part, pad])
        out.append(RowBlock(part, rows))
    return out


def fixed_blocks(n: int, size: int) -> list[slice]:
    """Consecutive slices of ``range(n)`` of ``size`` rows (the last one may be shorter)."""
    return [slice(s, min(s + size, n)) for s in range(0, n, size)]


def repeat_padded(x: np.ndarray, rows: slice, size: int) -> np.ndarray:
    """Rows ``x[rows]`` padded to ``size`` rows by repeating the last one.

    Every block then has one shape (one compilation); padded rows are finite copies of a real
    row, so that no user's model produces NaN on them (zero rows might), and they are cut from
    the result.
    """
    block = x[rows]
    missing = size - block.shape[0]
    if missing:
        block = np.concatenate([block, np.repeat(block[-1:], missing, axis=0)])
    return block


def tile_pairs(
    n1: int, n2: int, symmetric: bool, column_major: bool = False
) -> Iterator[tuple[int, int]]:
    """Tile indices ``(i, j)``: all of them, or ``i <= j`` for a symmetric kernel.

    Row-major by default; ``column_major`` runs each column block ``j`` to the end before the
    next (what reuses a per-column computation, e.g. the Jacobian of the ``x2`` block).
    """
    if column_major:
        for j in range(n2):
            for i in range(j + 1 if symmetric else n1):
                yield i, j
        return
    for i in range(n1):
        for j in range(i if symmetric else 0, n2):
            yield i, j


def _swap_rows_cols(tile: np.ndarray) -> np.ndarray:
    return tile.swapaxes(0, 1)


def store_tile(
    out: np.ndarray,
    rows: slice,
    cols: slice,
    tile: np.ndarray,
    symmetric: bool,
    transpose: Callable[[np.ndarray], np.ndarray] = _swap_rows_cols,
) -> None:
    """Copy ``tile`` into ``out[rows, cols]``; of a symmetric kernel, also its mirror image.

    ``transpose`` maps a tile to the tile of the swapped row pair (default: swap its first two
    axes; trailing axes such as gradients follow). Of a symmetric kernel a diagonal tile keeps
    its upper triangle (mirrored below, the diagonal averaged with its transpose: exactly
    symmetric) and an off-diagonal one is mirrored into ``out[cols, rows]``.
    """
    diagonal = symmetric and rows == cols
    out[rows, cols] = tile
    if not diagonal:
        if symmetric:
            out[cols, rows] = transpose(tile)
        return
    block = out[rows, cols]  # a view: its strict lower triangle from the upper one
    m = tile.shape[0]
    mirrored = transpose(tile)
    lower = np.tril_indices(m, -1)
    block[lower] = mirrored[lower]
    if transpose is not _swap_rows_cols:
        # Entries (a, a) average with their transpose (a full NTK's (a, a, i, j) and
        # (a, a, j, i) differ by rounding); swapping rows and columns alone leaves them as is.
        d = np.arange(m)
        block[d, d] = tile[d, d] + 0.5 * (mirrored[d, d] - tile[d, d])


def run_tiles(
    pairs: list[tuple[RowBlock, RowBlock | None]],
    compute: Callable,
    store: Callable[[int, tuple], None],
    progress: Progress | None = None,
) -> None:
    """Run ``compute(a, b)`` (``b=None``: a row block's diagonal) on every pair, a few in flight.

    JAX dispatches asynchronously: a tile's result is only waited for (``store``, which copies it
    to the host) once later tiles have been queued, so devices stay busy while results transfer.
    ``progress`` counts the stored tiles.
    """
    devices = jax.local_devices()
    in_flight = 2 * len(devices)
    pending: deque[tuple[int, tuple]] = deque()
    for k, (a, b) in enumerate(pairs):
        device = devices[k % len(devices)]
        a_dev = jax.device_put(a.x, device)
        b_dev = None if b is None else (a_dev if b is a else jax.device_put(b.x, device))
        pending.append((k, compute(a_dev, b_dev)))
        if len(pending) >= in_flight:
            _store(store, pending.popleft(), progress)
    while pending:
        _store(store, pending.popleft(), progress)


def _store(store, item: tuple[int, tuple], progress: Progress | None) -> None:
    store(*item)
    if progress is not None:
        progress.step()
