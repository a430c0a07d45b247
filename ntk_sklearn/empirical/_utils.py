"""Shared helpers of the empirical kernels: validation, row blocks, seeding, static functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

#: How output units are combined: averaged, summed (the trace), or all pairs kept.
OUTPUT_MODES = ("mean", "sum", "full")


class StaticFn:
    """A callable wrapper hashed by identity, so that it can be a static argument of ``jax.jit``.

    ``jax.jit`` caches compiled code per static argument; wrapping ``apply_fn`` this way keys
    the cache on the function object itself (Flax modules, partials and closures included),
    whether or not the object defines its own ``__hash__``.
    """

    __slots__ = ("fn",)

    def __init__(self, fn: Callable) -> None:
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __hash__(self) -> int:
        return id(self.fn)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StaticFn) and other.fn is self.fn


def check_apply_fn(apply_fn: Any) -> None:
    if not callable(apply_fn):
        raise ValueError(f"apply_fn must be callable as apply_fn(params, x); got {apply_fn!r}.")


def check_params(params: Any) -> int:
    """Validate a parameter pytree: floating-point leaves, finite, at least one entry.

    Returns
    -------
    int
        The number of parameters ``P``.
    """
    leaves = jax.tree_util.tree_leaves_with_path(params)
    n_params = 0
    for path, leaf in leaves:
        where = "params" + jax.tree_util.keystr(path)
        dtype = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        if np.dtype(dtype).kind != "f":
            raise TypeError(
                f"{where} has dtype {dtype}: every leaf of params must be a floating-point array, "
                "because the kernels differentiate the model with respect to every leaf. Convert "
                "it (e.g. jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), params)) "
                "or keep non-trainable values out of params (close over them in apply_fn)."
            )
        if not _all_finite(leaf):
            raise ValueError(f"{where} contains NaN or infinity.")
        n_params += int(np.size(leaf))
    if n_params == 0:
        raise ValueError(
            "params has no parameters (an empty pytree, or only empty arrays): the NTK is a "
            "sum over the model's parameters. Pass the parameter pytree of your model."
        )
    return n_params


def _all_finite(leaf: Any) -> bool:
    """Whether every value of ``leaf`` is finite, without a copy of a large leaf.

    A sum is finite when every term is (or the sum overflowed): one reduction, no temporary
    array; only a non-finite sum is checked value by value.
    """
    if isinstance(leaf, jax.Array):
        if bool(jnp.isfinite(jnp.sum(leaf))):
            return True
        return bool(jnp.isfinite(leaf).all())
    arr = np.asarray(leaf)
    if np.isfinite(arr.sum(dtype=np.float64)):
        return True
    return bool(np.isfinite(arr).all())


def params_bytes(params: Any, dtype: Any = None) -> int:
    """Bytes of ``params`` as JAX arrays (in ``dtype`` when given), counting the device copy
    of NumPy leaves and the converted copy of leaves of another dtype (nothing is allocated)."""
    total = 0
    for leaf in jax.tree_util.tree_leaves(params):
        raw = leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype
        leaf_dtype = np.dtype(jax.dtypes.canonicalize_dtype(raw))
        size = int(np.size(leaf))
        total += 0 if isinstance(leaf, jax.Array) else size * leaf_dtype.itemsize
        if dtype is not None and np.dtype(dtype) != leaf_dtype and leaf_dtype.kind == "f":
            total += size * np.dtype(dtype).itemsize
    return total


def check_per_example(apply_fn: Callable, params: Any, x: np.ndarray, name: str) -> None:
    """``ValueError`` if the model's output on a row depends on the other rows of its batch.

    The NTK is defined for a function of one input; a model that mixes the examples of a batch
    (``x - x.mean(0)``, batch statistics, attention across the batch axis) has a per-example
    NTK that is not the NTK of the batch function (all zero for ``x - x.mean(0)``) and results
    that depend on the block size. Checked on the first rows: the batch's outputs against each
    row's alone, within ``10·sqrt(eps)`` of the output scale.
    """
    rows = jnp.asarray(x[: min(4, x.shape[0])])
    if rows.shape[0] < 2:
        return
    together = np.asarray(apply_fn(params, rows)).reshape(rows.shape[0], -1)
    alone = np.concatenate(
        [np.asarray(apply_fn(params, rows[i : i + 1])).reshape(1, -1) for i in range(len(rows))]
    )
    # Non-finite outputs are reported later, with their row: compared here where finite.
    finite = np.isfinite(together) & np.isfinite(alone)
    together, alone = np.where(finite, together, 0.0), np.where(finite, alone, 0.0)
    scale = max(float(np.abs(together).max(initial=0.0)), float(np.abs(alone).max(initial=0.0)))
    eps = float(np.finfo(together.dtype).eps) if together.dtype.kind == "f" else 1e-16
    gap = float(np.abs(together - alone).max(initial=0.0))
    if not gap <= 10 * np.sqrt(eps) * max(scale, np.finfo(np.float32).tiny):
        raise ValueError(
            f"apply_fn(params, x) mixes the examples of a batch: on the first {len(rows)} rows of "
            f"{name} its outputs differ by up to {gap:.3g} (outputs up to {scale:.3g}) from those "
            "of each row on its own. The NTK is the kernel of a function of one input; batch "
            "statistics (x - x.mean(0), BatchNorm in training mode) or operations across the "
            "batch axis make it undefined (the per-example NTK of x - x.mean(0) is zero). Use "
            "the model in inference mode, with fixed statistics, so that each output depends "
            "on its own input only."
        )


def _shapes(params: Any) -> str:
    """Leaf shapes of a pytree, for error messages (cut at 300 characters)."""
    text = str(jax.tree_util.tree_map(lambda a: tuple(np.shape(a)), params))
    return text if len(text) <= 300 else text[:297] + "..."


#: Errors of a model that cannot be traced (Python control flow or conversions on traced values).
_TRACER_ERRORS = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerArrayConversionError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.UnexpectedTracerError,
)


def probe_model(apply_fn: Callable, params: Any, x: np.ndarray, name: str) -> Any:
    """``jax.eval_shape`` of ``apply_fn(params, x[:1])``: the output shape and dtype of one row.

    A model that cannot run on ``x``'s rows (typically: it expects another number of features)
    raises a ``ValueError`` that names both shapes, instead of an error deep inside JAX.
    """
    row = jax.ShapeDtypeStruct((1,) + x.shape[1:], jax.dtypes.canonicalize_dtype(x.dtype))
    try:
        out = jax.eval_shape(apply_fn, params, row)
    except _TRACER_ERRORS as exc:  # the model is not traceable: its shape is not the problem
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"apply_fn(params, x) cannot be traced by JAX: {type(exc).__name__}: "
            f"{message.rstrip('.')}. The kernels differentiate and compile apply_fn, so it must "
            "not use the values of its inputs or params in Python control flow or conversions "
            "(if/while on an array, float(x), int(x), np.asarray(x)): use jnp.where, "
            "jax.lax.cond or jax.lax.while_loop, and jnp instead of np functions."
        ) from exc
    except Exception as exc:  # any failure of the user's model: re-raised with what to change
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(
            f"apply_fn(params, x) fails on one row of {name} (a batch of shape {row.shape}; "
            f"{name} has shape {x.shape}): {type(exc).__name__}: {message.rstrip('.')}. Does "
            "the model expect inputs of another shape? Its parameters have shapes "
            f"{_shapes(params)}. Pass {name} with the number of features the model was built "
            f"for, or build the model for {x.shape[1:]} inputs."
        ) from exc
    if not isinstance(out, jax.ShapeDtypeStruct):
        raise ValueError(
            f"apply_fn(params, x) must return one array; it returns {type(out).__name__} {out!r}."
        )
    if np.dtype(out.dtype).kind != "f":
        raise ValueError(
            f"apply_fn(params, x) must return floating-point outputs; it returns {out.dtype}."
        )
    return out


def first_nonfinite_row(values: np.ndarray) -> int | None:
    """Index of the first row of ``values`` holding NaN or infinity, or None."""
    bad = ~np.isfinite(values.reshape(values.shape[0], -1)).all(axis=1)
    return int(np.argmax(bad)) if bad.any() else None


def as_batch(x: Any, name: str) -> np.ndarray:
    """Validate ``x`` as a non-empty numeric array whose first axis indexes the examples."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if arr.ndim < 1 or arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(
            f"{name} must be an array of shape (n_samples, ...) with at least one sample; "
            f"got shape {arr.shape}."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    if arr.dtype.kind != "f":
        arr = arr.astype(jax.dtypes.canonicalize_dtype(jnp.float64))
    return arr


def as_batch_pair(x1: Any, x2: Any) -> tuple[np.ndarray, np.ndarray | None]:
    x1 = as_batch(x1, "x1")
    if x2 is None:
        return x1, None
    x2 = as_batch(x2, "x2")
    if x2.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x1 and x2 must have the same shape after the sample axis; got {x1.shape[1:]} and "
            f"{x2.shape[1:]}."
        )
    return x1, x2


def check_outputs(outputs: Any) -> str:
    if outputs not in OUTPUT_MODES:
        raise ValueError(f"outputs must be one of {OUTPUT_MODES}; got {outputs!r}.")
    return outputs


def output_info(
    apply_fn: Callable, params: Any, x: np.ndarray, name: str = "x1"
) -> tuple[int, bool]:
    """``(k, scalar)``: the number of output units per sample, and whether outputs are 1-D."""
    shape = probe_model(apply_fn, params, x, name).shape
    if len(shape) == 0 or shape[0] != 1:
        raise ValueError(
            "apply_fn(params, x) must return an array whose first axis has one entry per sample; "
            f"on a batch of 1 it returned shape {shape}."
        )
    return int(np.prod(shape[1:], dtype=int)), len(shape) == 1


def as_seed(random_state: Any) -> int:
    """A 64-bit seed from ``None``, an int, a NumPy ``Generator``/``RandomState`` or a JAX key.

    ``None`` draws fresh OS entropy; a ``Generator`` or ``RandomState`` is advanced by one draw,
    so successive calls with the same generator give different, reproducible seeds.
    """
    if random_state is None:
        return int(np.random.default_rng().integers(2**63))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(2**63))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(2**31))
    if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
        if not 0 <= random_state < 2**64:
            raise ValueError(f"random_state must be in [0, 2**64); got {random_state!r}.")
        return int(random_state)
    if isinstance(random_state, jax.Array):
        if jnp.issubdtype(random_state.dtype, jax.dtypes.prng_key):
            random_state = jax.random.key_data(random_state)
        data = np.asarray(random_state).astype(np.uint64).ravel()
        if data.size == 2:
            return int(data[0]) << 32 | int(data[1])
    raise ValueError(
        "random_state must be None, an int, a numpy Generator/RandomState or a JAX key; "
        f"got {random_state!r}."
    )


def as_key(random_state: Any) -> jax.Array:
    """A JAX PRNG key (threefry, raw ``uint32[2]``) from anything :func:`as_seed` accepts."""
    if isinstance(random_state, jax.Array):
        as_seed(random_state)  # validates
        return random_state
    seed = as_seed(random_state)
    # The threefry key of a 64-bit seed is its (high, low) 32-bit halves: built here directly,
    # because ``jax.random.PRNGKey`` truncates seeds >= 2**32 when x64 mode is off.
    return jnp.asarray(np.array([seed >> 32, seed & 0xFFFFFFFF], dtype=np.uint32))


def default_float() -> np.dtype:
    """float64 inside ``jax.enable_x64(True)``, else float32."""
    return np.dtype(jax.dtypes.canonicalize_dtype(jnp.float64))
