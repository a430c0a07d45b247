"""``empirical_ntk``: the finite-width NTK ``Θ(x1, x2) = J(x1) · J(x2)ᵀ`` of any JAX model.

``J(x) = ∂f(params, x) / ∂params`` is the Jacobian of the outputs with respect to every leaf of
the parameter pytree, so that

    Θ(x, x')[a, c] = Σ_leaves Σ_p  ∂f_a(x)/∂p · ∂f_c(x')/∂p      (a, c: output units).

Two methods (cost model in :mod:`ntk_sklearn.empirical._cost`):

* ``"jacobian"``: per-example Jacobians of a block of rows (``jax.vmap`` of ``jax.jacrev``),
  contracted with those of a block of columns leaf by leaf (one ``einsum`` per leaf).
* ``"ntk_vector_products"``: each row ``J(x'_j)ᵀ e_c`` of the column block (a vector-Jacobian
  product) is pushed through the row block by a Jacobian-vector product:
  ``Θ(x1, x'_j)[:, :, c] = J(x1) · (J(x'_j)ᵀ e_c)``; the row block's Jacobian is never built.

The inputs are cut into blocks of ``batch_size`` rows; one block pair is one call of a jitted
function, so that memory stays bounded by a block pair whatever ``N``. With ``x2=None`` only the
block pairs on and above the diagonal are computed, and mirrored.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _warnings
from ntk_sklearn._memory import check_memory
from ntk_sklearn._validation import check_int
from ntk_sklearn.empirical import _cost
from ntk_sklearn.empirical._utils import (
    StaticFn,
    as_batch_pair,
    check_apply_fn,
    check_outputs,
    check_params,
    check_per_example,
    first_nonfinite_row,
    output_info,
    params_bytes,
)
from ntk_sklearn.kernels import _tiling

#: What a user can change when a kernel or one of its blocks cannot fit in memory.
_MEMORY_ADVICE = (
    "Pass a smaller batch_size, fewer inputs, outputs='mean' instead of 'full', float32 "
    "(outside jax.enable_x64) or a model with fewer parameters."
)

_HIGHEST = jax.lax.Precision.HIGHEST


@partial(jax.jit, static_argnames=("fn", "p_major"))
def _jacobian_rows(fn: StaticFn, params: Any, x: jax.Array, p_major: bool) -> tuple[Any, Any]:
    """Per-example Jacobians ``∂f(x_i)/∂params`` (one reverse pass per output unit and input).

    Leaves of shape ``(b, k, *leaf.shape)``, or ``(k, *leaf.shape, b)`` when ``p_major``: the
    layout in which the contraction over parameters is a plain matrix product (several times
    faster on CPU than contracting the trailing axis). Also returns the outputs ``(b, k)`` of
    the forward pass, to check that they are finite.
    """

    def one(xi):
        def f(p):
            out = fn(p, xi[None]).reshape(-1)
            return out, out

        return jax.jacrev(f, has_aux=True)(params)

    return jax.vmap(one, out_axes=(-1 if p_major else 0, 0))(x)


@partial(jax.jit, static_argnames=("full",))
def _contract(ja: Any, jb: Any, full: bool) -> jax.Array:
    """``Σ_leaves J_a · J_bᵀ`` of p-major blocks: ``(b1, b2, k, k)`` if ``full``, else the trace.

    ``Θ[i, j, a, c] = Σ_leaves Σ_p J_a[a, p, i] J_b[c, p, j]``.
    """

    def leaf(a, b):
        a = a.reshape(a.shape[0], -1, a.shape[-1])  # (k, P_leaf, b1)
        b = b.reshape(b.shape[0], -1, b.shape[-1])  # (k, P_leaf, b2)
        if full:
            return jnp.einsum("api,cpj->ijac", a, b, precision=_HIGHEST)
        return jnp.einsum("api,apj->ij", a, b, precision=_HIGHEST)

    return sum(jax.tree_util.tree_leaves(jax.tree_util.tree_map(leaf, ja, jb)))


@partial(jax.jit, static_argnames=("fn", "full"))
def _ntk_vector_products(fn: StaticFn, params: Any, xa: jax.Array, jb: Any, full: bool):
    """``Θ(xa, xb)`` from the rows ``jb`` of ``J(xb)`` by Jacobian-vector products through ``xa``.

    Row ``(j, c)`` of ``J(xb)`` is the parameter cotangent ``J(xb)ᵀ e_{j,c}``; its push-forward
    ``J(xa) · J(xb)ᵀ e_{j,c}`` is column ``(j, c)`` of ``Θ(xa, xb)``. Also returns the outputs
    ``f(params, xa)`` as ``(b1, k)``.
    """

    def f(p):
        return fn(p, xa).reshape(xa.shape[0], -1)

    return _ntk_columns(f, params, jb, full), f(params)


def _ntk_columns(f: Callable, params: Any, jb: Any, full: bool) -> jax.Array:
    """The block ``Θ(xa, xb)`` of :func:`_ntk_vector_products`."""

    def column(tangent):
        return jax.jvp(f, (params,), (tangent,))[1]  # (b1, k)

    if full:
        cols = jax.vmap(jax.vmap(column))(jb)  # (b2, k, b1, k): cols[j, c, i, a]
        return cols.transpose(2, 0, 3, 1)  # Θ[i, j, a, c]
    k = jax.tree_util.tree_leaves(jb)[0].shape[1]

    def diag_column(tangent, c):  # only output c of column (j, c) enters the trace
        return column(tangent)[:, c]

    cols = jax.vmap(jax.vmap(diag_column, in_axes=(0, 0)), in_axes=(0, None))(jb, jnp.arange(k))
    return cols.sum(axis=1).T  # (b1, b2)


class _Plan(NamedTuple):
    method: str
    batch_size: int
    k: int
    scalar: bool
    times: dict[str, float]
    sizes: dict[str, int]


def _itemsize(params: Any, out_dtype: Any) -> int:
    """Bytes per value of the computation: the widest of the outputs and the parameters."""
    sizes = [np.dtype(out_dtype).itemsize]
    for leaf in jax.tree_util.tree_leaves(params):
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        sizes.append(np.dtype(jax.dtypes.canonicalize_dtype(dtype)).itemsize)
    return max(sizes)


def _compiled_bytes(
    method: str, fn: StaticFn, params: Any, x1: np.ndarray, xb: np.ndarray, b: int, full: bool
) -> float | None:
    """Peak bytes of one block pair by XLA's memory analysis of the compiled block functions.

    The working set is the column block's Jacobian ``J_b`` (kept across a column) plus the
    larger of building the row block's Jacobian and the contraction (``"jacobian"``), or of
    building ``J_b`` and the NTK-vector products. Compiling here is not wasted: the loop then
    reuses the executables (same functions, shapes and dtypes). ``None`` where the backend
    gives no memory analysis.
    """
    b1, b2 = min(b, x1.shape[0]), min(b, xb.shape[0])
    row1 = jax.ShapeDtypeStruct((b1,) + x1.shape[1:], jax.dtypes.canonicalize_dtype(x1.dtype))
    row2 = jax.ShapeDtypeStruct((b2,) + xb.shape[1:], jax.dtypes.canonicalize_dtype(xb.dtype))
    p_major = method == "jacobian"
    jac_b = _jacobian_rows.lower(fn, params, row2, p_major).compile().memory_analysis()
    jb = jax.eval_shape(partial(_jacobian_rows, fn, p_major=p_major), params, row2)[0]
    if method == "jacobian":
        jac_a = _jacobian_rows.lower(fn, params, row1, p_major).compile().memory_analysis()
        ja = jax.eval_shape(partial(_jacobian_rows, fn, p_major=p_major), params, row1)[0]
        pair = _contract.lower(ja, jb, full).compile().memory_analysis()
        if None in (jac_a, jac_b, pair):
            return None
        build = jac_a.temp_size_in_bytes + jac_a.output_size_in_bytes
    else:
        pair = _ntk_vector_products.lower(fn, params, row1, jb, full).compile().memory_analysis()
        if None in (jac_b, pair):
            return None
        build = jac_b.temp_size_in_bytes
    work = pair.temp_size_in_bytes + pair.output_size_in_bytes
    return float(jac_b.output_size_in_bytes + max(build, work))


def _plan(apply_fn, params, x1, x2, method, outputs, batch_size, measure=True) -> _Plan:
    """Pick the method (least estimated time) and the batch size (memory budget).

    With ``measure``, the batch size is the largest (halving from the cost model's) whose
    block pair fits in ``MEMORY_BUDGET`` by XLA's memory analysis (a user's ``batch_size`` is
    kept), and a block pair or an output that exceeds the available memory raises
    ``MemoryError`` before anything large is allocated. Without, the cost model's alone
    (nothing is compiled).
    """
    if method != "auto" and method not in _cost.METHODS:
        raise ValueError(f"method must be 'auto' or one of {_cost.METHODS}; got {method!r}.")
    n_params = check_params(params)
    k, scalar = output_info(apply_fn, params, x1)
    x_one = jnp.asarray(x1[:1])
    flops, activations = _cost.forward_stats(apply_fn, params, x_one, n_params)
    itemsize = _itemsize(params, jax.eval_shape(apply_fn, params, x_one).dtype)
    n1 = x1.shape[0]
    n2 = n1 if x2 is None else x2.shape[0]
    sizes, times = {}, {}
    for name in _cost.METHODS:
        sizes[name] = batch_size or _cost.default_batch_size(
            name, max(n1, n2), k, n_params, activations, outputs, itemsize
        )
        times[name] = _cost.estimated_time(
            name,
            n1=n1,
            n2=n2,
            k=k,
            n_params=n_params,
            flops=flops,
            outputs=outputs,
            b=sizes[name],
            symmetric=x2 is None,
            itemsize=itemsize,
        )
    if method == "auto":
        method = min(_cost.METHODS, key=times.__getitem__)
    if not measure:
        return _Plan(method, sizes[method], k, scalar, times, sizes)

    kk = k * k if outputs == "full" and not scalar else 1
    check_memory(n1 * n2 * kk * itemsize, f"The empirical NTK ({n1} × {n2} × {kk})", _MEMORY_ADVICE)
    # NumPy leaves are copied into JAX arrays (the blocks below are measured without them).
    check_memory(
        params_bytes(params),
        f"Copying the {n_params} parameters of the model into JAX arrays",
        _MEMORY_ADVICE,
    )
    fn, xb = StaticFn(apply_fn), x1 if x2 is None else x2

    def block_bytes(b: int) -> float:
        measured = _compiled_bytes(method, fn, params, x1, xb, b, outputs == "full")
        if measured is not None:
            return measured
        return _cost.block_bytes(method, b, k, n_params, activations, outputs, itemsize)

    b = sizes[method]
    needed = block_bytes(b)
    while batch_size is None and b > 1 and needed > _cost.MEMORY_BUDGET:
        b = max(1, b // 2)
        needed = block_bytes(b)
    sizes[method] = b
    check_memory(
        int(needed), f"One block of empirical_ntk ({method}, batch_size={b})", _MEMORY_ADVICE
    )
    check_per_example(apply_fn, params, x1, "x1")
    return _Plan(method, b, k, scalar, times, sizes)


def _check_rows(outputs: jax.Array, rows: slice, name: str) -> None:
    """``ValueError`` if the model's outputs on these rows (``(b, k)``, padded) are not finite."""
    bad = first_nonfinite_row(np.asarray(outputs)[: rows.stop - rows.start])
    if bad is not None:
        raise ValueError(
            f"apply_fn(params, x) returns NaN or infinity on row {rows.start + bad} of {name}, "
            "so its empirical kernel would be NaN. Check the model and params on that input "
            "(overflow, log or sqrt of a negative number, division by zero)."
        )


def estimate_ntk_cost(
    apply_fn: Callable,
    params: Any,
    x1,
    x2=None,
    *,
    outputs: str = "mean",
    batch_size: int | None = None,
) -> dict[str, dict[str, float]]:
    """Estimated cost of each :func:`empirical_ntk` method; ``method="auto"`` takes the least.

    The estimate is ``FLOPs + β · bytes moved`` (``β = 16`` FLOPs per byte) of the blocked
    loops, with ``F`` the FLOPs of one forward pass on one input (XLA cost analysis), ``P``
    parameters, ``k`` outputs, ``b`` rows per block, ``B`` block pairs, ``kk = k`` (``k²`` for
    ``outputs="full"``) and ``R = N2 + B b`` Jacobian rows built by contraction::

        jacobian             FLOPs ≈ 3 F k R + 2 P kk B b²     values moved ≈ k P (R + 2 B b)
        ntk_vector_products  FLOPs ≈ 3 F k N2 + 2 F k B b²     values moved ≈ k P (N2 + B b)

    (details in ``ntk_sklearn/empirical/_cost.py``).

    Parameters
    ----------
    apply_fn, params, x1, x2, outputs, batch_size
        As in :func:`empirical_ntk`.

    Returns
    -------
    dict
        ``{method: {"time": FLOP-equivalents, "batch_size": rows per block}}`` for
        ``"jacobian"`` and ``"ntk_vector_products"``. The batch size is the cost model's;
        :func:`empirical_ntk` may halve it further, when XLA's memory analysis of the compiled
        blocks exceeds the 1 GiB budget (nothing is compiled here).

    Examples
    --------
    >>> import jax
    >>> from ntk_sklearn.empirical import estimate_ntk_cost, init_mlp
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 3, depth=1, width=8, n_outputs=4)
    >>> x = jax.numpy.ones((5, 3))
    >>> cost = estimate_ntk_cost(f, params, x, outputs="full")
    >>> min(cost, key=lambda m: cost[m]["time"])
    'ntk_vector_products'
    """
    check_apply_fn(apply_fn)
    check_outputs(outputs)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size", low=1)
    x1, x2 = as_batch_pair(x1, x2)
    plan = _plan(apply_fn, params, x1, x2, "auto", outputs, batch_size, measure=False)
    return {
        name: {"time": plan.times[name], "batch_size": plan.sizes[name]} for name in _cost.METHODS
    }


def empirical_ntk(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x1,
    x2=None,
    *,
    method: str = "auto",
    outputs: str = "mean",
    batch_size: int | None = None,
) -> np.ndarray:
    r"""Empirical neural tangent kernel ``Θ(x1, x2) = J(x1) · J(x2)ᵀ`` of a JAX model.

    ``J(x) = ∂f(params, x)/∂params`` over every leaf of the pytree ``params`` (pure JAX, Flax's
    ``model.apply``, Equinox: any pytree and function), so that for output units ``a, c``::

        Θ(x, x')[a, c] = Σ_leaves Σ_p ∂f_a(params, x)/∂p · ∂f_c(params, x')/∂p.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> outputs`` of shape ``(n,)`` (one output unit) or ``(n, ...)``
        (trailing axes are flattened into ``k`` output units). Rows must be processed
        independently (no batch statistics): Jacobians are taken per example.
    params : pytree
        Parameters of the network at which the kernel is evaluated.
    x1 : array-like of shape (n1, ...)
    x2 : array-like of shape (n2, ...), default=None
        ``None`` means ``x1``; only blocks on and above the diagonal are computed.
    method : {"auto", "jacobian", "ntk_vector_products"}, default="auto"
        ``"jacobian"`` contracts per-example Jacobians leaf by leaf; ``"ntk_vector_products"``
        pushes the rows of ``J(x2)`` through ``x1`` by Jacobian-vector products (Novak et al.
        2022, "Fast Finite Width Neural Tangent Kernel"). ``"auto"`` takes the method with the
        smaller estimated cost, FLOPs plus memory traffic (:func:`estimate_ntk_cost`).
    outputs : {"mean", "sum", "full"}, default="mean"
        ``"mean"``: ``(1/k) Σ_a Θ[a, a]``, shape ``(n1, n2)``: the kernel per output unit, which
        is what :func:`~ntk_sklearn.kernels.fc_kernel` gives in the infinite-width limit.
        ``"sum"``: the trace ``Σ_a Θ[a, a]``. ``"full"``: shape ``(n1, n2, k, k)``, or
        ``(n1, n2)`` when ``apply_fn`` returns 1-D outputs.
    batch_size : int, default=None
        Rows per block. ``None`` picks the largest block (up to 256 rows, halving) whose working
        set fits in 1 GiB, in float32 and float64 alike: first by the memory estimate of the
        method (``2 b k P + b (k+1) A`` values for ``"jacobian"``, ``b k P + b² k A`` for
        ``"ntk_vector_products"``, ``A`` the size of the forward pass's intermediates, times
        the bytes per value of the parameters' and outputs' dtype), then by XLA's memory
        analysis of the compiled block functions (which sees what the estimate cannot, such as
        the float64 convolutions of XLA's CPU backend). If even one row per block exceeds
        1 GiB, blocks of one row are used as long as they fit in the available memory.

    Returns
    -------
    ndarray
        NumPy array in the model's computation dtype: float64 when parameters and inputs are
        float64 (inside ``with jax.enable_x64(True):``), else float32.

    Raises
    ------
    ValueError
        For a non-callable ``apply_fn``, inputs that are empty, non-numeric, contain NaN/inf or
        whose trailing shapes differ, a model that cannot run on them (say, built for another
        number of features; the message names both shapes), outputs whose first axis is not
        the batch, outputs or gradients that are NaN or infinite (the message names the row),
        params that are empty or contain NaN/inf, an unknown ``method`` or ``outputs``, or a
        ``batch_size`` that is not a positive integer.
    TypeError
        For parameters that are not floating-point arrays (integer leaves cannot be
        differentiated).
    MemoryError
        Before allocating, when the output or one block pair (at ``batch_size``, or one row per
        block) exceeds the available memory.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, numpy as np
    >>> from ntk_sklearn.empirical import empirical_ntk
    >>> params = {"w": jnp.array([[1.0, 2.0], [0.5, -1.0]])}
    >>> f = lambda p, x: jnp.tanh(x @ p["w"]).sum(axis=1)
    >>> x = np.array([[0.1, 0.2], [0.3, -0.4], [1.0, 0.0]])
    >>> ntk = empirical_ntk(f, params, x)
    >>> jac = jax.jacobian(lambda p: f(p, x))(params)["w"].reshape(3, -1)
    >>> bool(np.allclose(ntk, jac @ jac.T, atol=1e-6))
    True
    """
    check_apply_fn(apply_fn)
    check_outputs(outputs)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size", low=1)
    x1, x2 = as_batch_pair(x1, x2)
    symmetric = x2 is None
    xb = x1 if symmetric else x2
    n1, n2 = x1.shape[0], xb.shape[0]
    plan = _plan(apply_fn, params, x1, x2, method, outputs, batch_size)
    method, batch_size, k, scalar = plan.method, plan.batch_size, plan.k, plan.scalar

    full = outputs == "full"
    p_major = method == "jacobian"
    fn = StaticFn(apply_fn)
    name_b = "x1" if symmetric else "x2"
    b1, b2 = min(batch_size, n1), min(batch_size, n2)
    rows1, rows2 = _tiling.fixed_blocks(n1, b1), _tiling.fixed_blocks(n2, b2)
    out = None
    current_j, jb = -1, None
    # Column blocks are the outer loop: J(x2 block) is built once per column.
    for i, j in _tiling.tile_pairs(len(rows1), len(rows2), symmetric, column_major=True):
        r, c = rows1[i], rows2[j]
        if j != current_j:
            current_j = j
            jb, out_b = _jacobian_rows(fn, params, _padded(xb, c, b2), p_major)
            _check_rows(out_b, c, name_b)
        xa = _padded(x1, r, b1)
        if method == "jacobian":
            if symmetric and i == j:
                ja = jb
            else:
                ja, out_a = _jacobian_rows(fn, params, xa, p_major)
                _check_rows(out_a, r, "x1")
            block = _contract(ja, jb, full)
        else:
            block, out_a = _ntk_vector_products(fn, params, xa, jb, full)
            _check_rows(out_a, r, "x1")
        block = np.asarray(block)[: r.stop - r.start, : c.stop - c.start]
        bad = first_nonfinite_row(block)
        if bad is not None:
            raise ValueError(
                f"The empirical NTK is NaN or infinite on row {r.start + bad} of x1 although the "
                "model's outputs are finite: the gradient of apply_fn with respect to params is "
                "not finite there (e.g. sqrt or log at 0, abs' at a kink, overflow)."
            )
        if out is None:
            out = np.empty((n1, n2) + block.shape[2:], dtype=block.dtype)
        # Exactly symmetric, whatever the rounding of the method.
        _tiling.store_tile(out, r, c, block, symmetric, _transpose_full if full else np.transpose)
    if not np.any(out):
        _warnings.warn(
            "The empirical NTK is zero everywhere: apply_fn's outputs do not change with params "
            "to first order (jnp.round, jnp.sign, comparisons, integer casts or stop_gradient "
            "between params and the outputs?).",
            RuntimeWarning,
        )
    if full:
        return out[:, :, 0, 0] if scalar else out
    return out / k if outputs == "mean" else out


def _padded(x: np.ndarray, rows: slice, size: int) -> jax.Array:
    """A block of rows padded to ``size`` by repeating the last one, on the device."""
    return jnp.asarray(_tiling.repeat_padded(x, rows, size))


def _transpose_full(block: np.ndarray) -> np.ndarray:
    """The block of the swapped row pair of a full NTK: ``K[b, a, j, i] = K[a, b, i, j]``."""
    return block.transpose((1, 0, 3, 2))
