"""Row-sharded kernels on JAX's engine, and products ``K X`` that keep them on their devices.

The kernel may be a jax.Array row-sharded over a 1-D mesh (``NamedSharding(mesh, P("rows",
None))``), on one process or on several after ``jax.distributed.initialize()``:
:func:`assemble_rows` builds one from the rows each process computes for its own devices, and
:func:`to_host` brings a (small) result back to every process. Each device multiplies its rows by
the (replicated) block ``X`` under ``jax.shard_map``; only the ``n x m`` product travels.

A float32 kernel is multiplied in float64: each block of rows is converted to float64 just before
its product (one block of ``ROW_BLOCK_BYTES`` at a time), so the kernel is stored once, in
float32, and the products are accumulated in float64.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ntk_sklearn.solvers._base import ROW_BLOCK_BYTES, x64_scope

#: Name of the mesh axis that the kernel's rows are split over.
ROWS = "rows"


def device_mesh() -> Mesh:
    """A 1-D mesh over every device of every process (``jax.devices()``), axis ``"rows"``.

    Examples
    --------
    >>> import jax
    >>> from ntk_sklearn.solvers._sharding import device_mesh
    >>> device_mesh().size == jax.device_count()
    True
    """
    return Mesh(np.asarray(jax.devices()), (ROWS,))


def assemble_rows(
    shape: tuple[int, int], dtype, mesh: Mesh, compute_rows: Callable[[slice], np.ndarray]
) -> jax.Array:
    """A row-sharded ``shape`` array built from the rows this process computes.

    ``compute_rows(rows)`` returns the host array ``A[rows]``; it is called once per run of
    consecutive rows that belong to this process's devices (all rows in a single process), so
    each process computes only its own rows, and a symmetric kernel can use its triangle within
    them. Each device's rows are put on it (on the CPU, ``device_put`` aliases aligned memory
    instead of copying) and the pieces form one global array: on several processes
    (``jax.distributed``) every process calls this with the same arguments.

    Parameters
    ----------
    shape : (int, int)
        Global shape; ``shape[0]`` must be a multiple of the mesh size.
    dtype : numpy dtype
    mesh : jax.sharding.Mesh
        1-D, e.g. :func:`device_mesh`.
    compute_rows : callable
        ``rows -> ndarray of shape (rows.stop - rows.start, shape[1])``.

    Returns
    -------
    jax.Array
        Sharding ``NamedSharding(mesh, P(axis, None))``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.solvers._sharding import assemble_rows, device_mesh, to_host
    >>> A = np.arange(12, dtype=np.float32).reshape(4, 3)
    >>> K = assemble_rows((4, 3), np.float32, device_mesh(), lambda rows: A[rows])
    >>> bool((to_host(K) == A).all())
    True
    """
    axis = mesh.axis_names[0]
    if shape[0] % mesh.shape[axis]:
        raise ValueError(
            f"{shape[0]} rows are not a multiple of the {mesh.shape[axis]} devices of mesh "
            f"axis {axis!r}; pad the rows."
        )
    sharding = NamedSharding(mesh, P(axis, None))
    local = sorted(
        (
            (index[0].indices(shape[0]), device)
            for device, index in sharding.addressable_devices_indices_map(shape).items()
        ),
        key=lambda item: item[0][0],
    )
    # Runs of consecutive rows held by this process's devices.
    runs: list[list[tuple[tuple[int, int, int], jax.Device]]] = []
    for item in local:
        if runs and runs[-1][-1][0][1] == item[0][0]:
            runs[-1].append(item)
        else:
            runs.append([item])
    pieces = {}
    with x64_scope(dtype):
        for run in runs:
            start = run[0][0][0]
            rows = compute_rows(slice(start, run[-1][0][1]))
            if rows.shape != (run[-1][0][1] - start, shape[1]) or rows.dtype != dtype:
                raise ValueError(
                    f"compute_rows returned {rows.shape} {rows.dtype}; expected "
                    f"{(run[-1][0][1] - start, shape[1])} {np.dtype(dtype)}."
                )
            for (lo, hi, _), device in run:
                pieces[device] = jax.device_put(rows[lo - start : hi - start], device)
            del rows
        arrays = [pieces[device] for device in sharding.addressable_devices]
        return jax.make_array_from_single_device_arrays(shape, sharding, arrays)


def to_host(a) -> np.ndarray:
    """``a`` as a NumPy array on every process, gathered first when it spans processes."""
    if not isinstance(a, jax.Array):
        return np.asarray(a)
    if not a.is_fully_addressable and not a.is_fully_replicated:
        with x64_scope(a.dtype):
            a = jax.jit(lambda v: v, out_shardings=replicated(a.sharding))(a)
    return np.asarray(a.addressable_data(0)) if not a.is_fully_addressable else np.asarray(a)


def replicated(sharding: NamedSharding) -> NamedSharding:
    """The fully replicated sharding on the mesh of ``sharding``."""
    return NamedSharding(sharding.mesh, P())


def put_like(b: np.ndarray, sharding: NamedSharding) -> jax.Array:
    """The host array ``b`` (the same on every process) as a global array of ``sharding``."""
    return jax.make_array_from_callback(b.shape, sharding, lambda index: b[index])


def shard_rows(K: np.ndarray, mesh: Mesh) -> jax.Array:
    """Put ``K`` on ``mesh``, its rows split over the mesh's first axis.

    Parameters
    ----------
    K : ndarray of shape (n, m)
        Float32 or float64; ``n`` must be a multiple of the number of devices on that axis.
    mesh : jax.sharding.Mesh
        E.g. ``jax.make_mesh((n_devices,), ("rows",))``.

    Returns
    -------
    jax.Array
        ``K`` with sharding ``NamedSharding(mesh, P(axis, None))``, same dtype.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.solvers import shard_rows
    >>> mesh = jax.make_mesh((1,), ("rows",))
    >>> shard_rows(np.eye(4), mesh).sharding.spec
    P('rows', None)
    """
    axis = mesh.axis_names[0]
    if K.shape[0] % mesh.shape[axis]:
        raise ValueError(
            f"K has {K.shape[0]} rows, not a multiple of the {mesh.shape[axis]} devices of mesh "
            f"axis {axis!r}; pad or drop samples."
        )
    with x64_scope(K.dtype):
        return jax.device_put(K, NamedSharding(mesh, P(axis, None)))


def _blocked_matmul(k: jax.Array, x: jax.Array) -> jax.Array:
    """``k @ x`` in ``x``'s dtype (float64), converting ``k`` block of rows by block of rows.

    The blocks run one after another (``lax.map``), so one converted block is alive at a time.
    """
    if k.dtype == x.dtype:
        return k @ x
    n = k.shape[0]
    rows = int(min(n, max(1, ROW_BLOCK_BYTES // (k.shape[1] * x.dtype.itemsize))))
    # A factor that is 1 but depends on x: without it XLA hoists the loop-invariant conversion
    # of K out of CG's while loop, materializing a float64 copy of the whole kernel.
    one = jnp.where(jnp.isnan(x[0, 0]), 0.0, 1.0).astype(k.dtype)

    def block(start):
        part = jax.lax.dynamic_slice_in_dim(k, start, rows, axis=0)
        return (part * one).astype(x.dtype) @ x

    n_full = n // rows
    out = jax.lax.map(block, jnp.arange(n_full) * rows).reshape(n_full * rows, x.shape[1])
    if n_full * rows < n:
        rest = (k[n_full * rows :] * one).astype(x.dtype) @ x
        out = jnp.concatenate([out, rest])
    return out


def row_mesh(K) -> tuple[Mesh, str] | None:
    """``(mesh, axis)`` when ``K`` is row-sharded over more than one device, else ``None``."""
    sharding = getattr(K, "sharding", None)
    if not isinstance(sharding, NamedSharding) or len(sharding.device_set) < 2:
        return None
    spec = tuple(sharding.spec) + (None, None)
    if spec[0] is None or spec[1] is not None:
        raise ValueError(
            f"A sharded K must be split by rows only (PartitionSpec(axis, None)); got "
            f"{sharding.spec}. Use shard_rows(K, mesh)."
        )
    return sharding.mesh, spec[0]


def make_matvec(K):
    """A traceable ``matvec(k, x) = k @ x`` in float64 that respects ``K``'s row sharding."""
    layout = row_mesh(K)
    if layout is None:
        return _blocked_matmul
    mesh, axis = layout
    local = jax.shard_map(
        _blocked_matmul, mesh=mesh, in_specs=(P(axis, None), P()), out_specs=P(axis)
    )
    replicated = NamedSharding(mesh, P())
    explicit = all(kind == AxisType.Explicit for kind in mesh.axis_types)

    def matvec(k, x):
        # Every device needs the whole block x (n, m): gather it, never K.
        if explicit:
            x = jax.sharding.reshard(x, replicated)
        else:
            x = jax.lax.with_sharding_constraint(x, replicated)
        return local(k, x)

    return matvec


def on_device(K, dtype) -> jax.Array:
    """``K`` as a jax.Array of ``dtype``, keeping its sharding (no copy if nothing changes)."""
    with x64_scope(dtype):
        if isinstance(K, jax.Array):
            return K if K.dtype == dtype else K.astype(dtype)
        if K.dtype == dtype:
            # device_put of a NumPy array can alias its memory on the CPU: no second copy.
            return jax.device_put(K)
        return jnp.asarray(K, dtype)


def vector_sharding(K) -> NamedSharding | None:
    """The sharding of ``(n, m)`` blocks of vectors that matches a row-sharded ``K``."""
    layout = row_mesh(K)
    if layout is None:
        return None
    mesh, axis = layout
    return NamedSharding(mesh, P(axis, None))
