"""``fc_kernel``: the NNGP and NTK of an infinitely wide fully-connected network.

The public functions validate their arguments, then tile the output: every tile is one call of
the jit-compiled :func:`~ntk_sklearn.kernels._recursion.kernel_tile`, dispatched round-robin to
the available devices (several tiles in flight at once), and copied into a preallocated NumPy
array. Device memory is bounded by a few tiles, host memory by the output itself. With
``x2=None`` only the tiles on and above the diagonal are computed, and mirrored.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn.kernels._activations import Activation, get_activation
from ntk_sklearn.kernels._recursion import diag_recursion, kernel_tile

KERNEL_NAMES = ("nngp", "ntk")

#: Default tile side. Large enough for efficient matrix products, small enough that a tile's
#: working set stays at a few tens of MB and that symmetric kernels skip most lower tiles.
DEFAULT_BLOCK_SIZE = 2048


class Kernel(NamedTuple):
    """NNGP and NTK matrices; a field is ``None`` when it was not requested."""

    nngp: np.ndarray | None
    ntk: np.ndarray | None


def parse_get(get: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """Validate ``get``: the kernel names and whether a single array was asked for."""
    single = isinstance(get, str)
    names = (get,) if single else tuple(get)
    if not names or any(g not in KERNEL_NAMES for g in names):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them; got {get!r}.")
    return names, single


def _check_architecture(depth, w_std, b_std) -> None:
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0 (number of hidden layers); got {depth!r}.")
    for name, value in (("w_std", w_std), ("b_std", b_std)):
        if not np.isscalar(value) or not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0; got {value!r}.")


def as_matrix(x, name: str) -> np.ndarray:
    """Validate ``x`` as a finite, non-empty, 2-D numeric array (no copy when possible)."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features); got shape {arr.shape}. "
            "Reshape a single sample with x.reshape(1, -1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one row and one column; got {arr.shape}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr


def _compute_dtype(*arrays: np.ndarray) -> np.dtype:
    """Floating dtype of the computation: the inputs' type, capped by JAX's x64 setting."""
    return np.dtype(jax.dtypes.canonicalize_dtype(np.result_type(*arrays, np.float32)))


def _padded(n: int) -> int:
    """Row count padded up to a bucket, so that nearby sizes share one compiled tile."""
    step = 32 if n <= 256 else 128
    return -(-n // step) * step


def _blocks(n: int, block_size: int) -> list[slice]:
    """Split ``range(n)`` into near-equal slices of at most ``block_size`` rows."""
    n_blocks = -(-n // block_size)
    edges = np.linspace(0, n, n_blocks + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    if a.shape[-1] == rows:
        return a
    pad = [(0, 0)] * (a.ndim - 1) + [(0, rows - a.shape[-1])]
    return np.pad(a, pad)


class _Rows(NamedTuple):
    """One block of rows with the per-layer diagonals the tiles need."""

    x: np.ndarray  # (rows, d), padded
    q: np.ndarray  # (depth + 1, rows) NNGP diagonals per layer, padded
    t: np.ndarray  # (depth + 1, rows) NTK diagonals per layer, padded
    rows: slice


def _row_blocks(x, q, t, block_size: int) -> list[_Rows]:
    out = []
    for rows in _blocks(x.shape[0], block_size):
        size = _padded(rows.stop - rows.start)
        out.append(
            _Rows(
                _pad_rows(x[rows].T, size).T,
                _pad_rows(q[:, rows], size),
                _pad_rows(t[:, rows], size),
                rows,
            )
        )
    return out


def _tile_pairs(n1: int, n2: int, symmetric: bool) -> Iterator[tuple[int, int]]:
    for i in range(n1):
        for j in range(i if symmetric else 0, n2):
            yield i, j


def _run_tiles(
    tiles: list[tuple[_Rows, _Rows, bool]],
    compute: Callable[[tuple, tuple, bool], tuple],
    store: Callable[[int, tuple], None],
) -> None:
    """Run ``compute`` on every tile, round-robin over devices, a few tiles in flight at once.

    JAX dispatches asynchronously: a tile's result is only waited for (``store``, which copies it
    to the host) once later tiles have been queued, so devices stay busy while results transfer.
    """
    devices = jax.local_devices()
    in_flight = 2 * len(devices)
    pending: deque[tuple[int, tuple]] = deque()
    for k, (a, b, same) in enumerate(tiles):
        device = devices[k % len(devices)]
        a_dev = jax.device_put((a.x, a.q, a.t), device)
        b_dev = a_dev if same else jax.device_put((b.x, b.q, b.t), device)
        pending.append((k, compute(a_dev, b_dev, same)))
        if len(pending) >= in_flight:
            store(*pending.popleft())
    while pending:
        store(*pending.popleft())


def _resolve(
    x1, x2, depth, activation, w_std, b_std, negative_slope, quadrature_points
) -> tuple[np.ndarray, np.ndarray | None, Activation, np.dtype]:
    _check_architecture(depth, w_std, b_std)
    if not isinstance(quadrature_points, (int, np.integer)) or quadrature_points < 2:
        raise ValueError(f"quadrature_points must be an integer >= 2; got {quadrature_points!r}.")
    act = get_activation(activation, float(negative_slope), int(quadrature_points))
    x1 = as_matrix(x1, "x1")
    if x2 is not None:
        x2 = as_matrix(x2, "x2")
        if x2.shape[1] != x1.shape[1]:
            raise ValueError(
                f"x1 and x2 must have the same number of features; got {x1.shape[1]} and "
                f"{x2.shape[1]}."
            )
    dtype = _compute_dtype(x1) if x2 is None else _compute_dtype(x1, x2)
    return x1, x2, act, dtype


def fc_kernel(
    x1,
    x2=None,
    *,
    depth: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    get: str | Sequence[str] = KERNEL_NAMES,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
    block_size: int | None = None,
) -> Kernel | np.ndarray:
    r"""NNGP and NTK of an infinitely wide fully-connected network.

    The network is ``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]`` in NTK
    parameterization, ``z = w_std / sqrt(fan_in) · W x + b_std · b`` with ``W, b ~ N(0, 1)``,
    which is neural-tangents' ``stax.serial`` of the same layers. Kernels are per output unit.

    Parameters
    ----------
    x1 : array-like of shape (n1, n_features)
    x2 : array-like of shape (n2, n_features), default=None
        ``None`` means ``x1``: the symmetric kernel, computed on and above the diagonal only,
        with an exact diagonal.
    depth : int
        Number of hidden layers (``0`` is a linear readout of the inputs).
    activation : str or callable, default="relu"
        Closed forms: ``"relu"``, ``"leaky_relu"``, ``"abs"``, ``"erf"``, ``"identity"``,
        ``"gelu"`` (exact, erf-based), ``"sign"``, ``"sin"``. By quadrature:
        ``"tanh"``, ``"sigmoid"``, ``"softplus"``, ``"silu"``, ``"elu"``, or any elementwise,
        differentiable JAX function (its derivative comes from autodiff).
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    get : {"nngp", "ntk"} or tuple of them, default=("nngp", "ntk")
        A tuple returns a :class:`Kernel` with ``.nngp`` and ``.ntk``; a string returns that
        array.
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs (ignored by other activations).
    quadrature_points : int, default=64
        Nodes per dimension of the (trapezoidal) quadrature used by activations without a closed
        form; the cost grows as its square. With 64, ``tanh`` kernels are accurate to about 1e-6
        relative while pre-activation variances stay below 4; use more for larger variances.
    block_size : int, default=None
        Side of the tiles the output is computed in (default 2048). Device memory holds a few
        tiles; the result is assembled in host memory.

    Returns
    -------
    Kernel or ndarray of shape (n1, n2)
        In float64 when JAX's x64 mode is on (``with jax.enable_x64(True):``) and the inputs are
        float64 or integer, else float32.

    Raises
    ------
    ValueError
        For an unknown activation, ``depth < 0``, a negative or non-finite std, inputs that are
        not 2-D, empty, non-numeric, contain NaN/inf, or whose feature counts differ.
    MemoryError
        Before allocating, when the output cannot fit in the available memory.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import fc_kernel
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> k = fc_kernel(x, depth=2, activation="relu", w_std=1.4, b_std=0.1)
    >>> k.nngp.shape, k.ntk.shape
    ((4, 4), (4, 4))
    >>> bool(np.all(np.diag(k.ntk) >= np.diag(k.nngp)))  # Θ = Σ + (positive terms) at x = x'
    True
    """
    names, single = parse_get(get)
    if block_size is not None and (not isinstance(block_size, (int, np.integer)) or block_size < 1):
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}.")
    x1, x2, act, dtype = _resolve(
        x1, x2, depth, activation, w_std, b_std, negative_slope, quadrature_points
    )
    block = int(block_size or DEFAULT_BLOCK_SIZE)
    want_ntk = "ntk" in names
    symmetric = x2 is None
    w_std, b_std = dtype.type(w_std), dtype.type(b_std)

    def diagonals(x):
        x = jnp.asarray(x, dtype)
        q, t = diag_recursion(x, w_std, b_std, depth=depth, act=act)
        return np.asarray(x), np.asarray(q), np.asarray(t)

    blocks1 = _row_blocks(*diagonals(x1), block)
    blocks2 = blocks1 if symmetric else _row_blocks(*diagonals(x2), block)
    n2 = x1.shape[0] if symmetric else x2.shape[0]
    check_memory(
        len(names) * x1.shape[0] * n2 * dtype.itemsize,
        f"The {x1.shape[0]} x {n2} kernel matrices",
        "Compute fewer rows at a time (slices of x1), only one kernel (get=...), or float32.",
    )
    out = {name: np.empty((x1.shape[0], n2), dtype) for name in names}
    pairs = list(_tile_pairs(len(blocks1), len(blocks2), symmetric))

    def compute(a, b, same: bool):
        (xa, qa, ta), (xb, qb, _) = a, b
        return kernel_tile(xa, xb, qa, qb, ta, w_std, b_std, act=act, want_ntk=want_ntk, same=same)

    def store(k: int, result) -> None:
        i, j = pairs[k]
        rows, cols = blocks1[i].rows, blocks2[j].rows
        for name, tile in zip(KERNEL_NAMES, result, strict=True):
            if name in out:
                tile = np.asarray(tile)[: rows.stop - rows.start, : cols.stop - cols.start]
                if symmetric and i == j:
                    # Entries (a, b) and (b, a) of a diagonal tile differ by rounding; keep one.
                    tile = np.triu(tile) + np.triu(tile, 1).T
                out[name][rows, cols] = tile
                if symmetric and i != j:
                    out[name][cols, rows] = tile.T

    tiles = [(blocks1[i], blocks2[j], symmetric and i == j) for i, j in pairs]
    _run_tiles(tiles, compute, store)
    if single:
        return out[names[0]]
    return Kernel(out.get("nngp"), out.get("ntk"))


def fc_kernel_diag(
    x,
    *,
    depth: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    get: str | Sequence[str] = KERNEL_NAMES,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> Kernel | np.ndarray:
    """Diagonal of :func:`fc_kernel` (each row with itself) in ``O(n · depth)``.

    Parameters are those of :func:`fc_kernel`. Returns arrays of shape ``(n,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import fc_kernel, fc_kernel_diag
    >>> x = np.random.default_rng(0).normal(size=(5, 3))
    >>> d = fc_kernel_diag(x, depth=3, get="ntk")
    >>> bool(np.allclose(d, np.diag(fc_kernel(x, depth=3, get="ntk"))))
    True
    """
    names, single = parse_get(get)
    x, _, act, dtype = _resolve(
        x, None, depth, activation, w_std, b_std, negative_slope, quadrature_points
    )
    q, t = diag_recursion(
        jnp.asarray(x, dtype), dtype.type(w_std), dtype.type(b_std), depth=depth, act=act
    )
    out = {"nngp": np.asarray(q[-1]), "ntk": np.asarray(t[-1])}
    if single:
        return out[names[0]]
    return Kernel(*(out[name] if name in names else None for name in KERNEL_NAMES))
