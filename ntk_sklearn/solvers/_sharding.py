"""Kernel-block products ``K X`` that keep a row-sharded kernel on its devices.

The kernel may be a jax.Array row-sharded over a 1-D mesh (``NamedSharding(mesh, P("rows",
None))``). Each device multiplies its rows by the (replicated) block ``X`` under
``jax.shard_map``; only the ``n x m`` product travels. A float32 kernel is multiplied in float64:
each block of rows is converted to float64 just before its product (one block of
``ROW_BLOCK_BYTES`` at a time), so the kernel is stored once, in float32, and the products are
accumulated in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ntk_sklearn.solvers._base import ROW_BLOCK_BYTES, x64_scope


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
