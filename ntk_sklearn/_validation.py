"""Checks shared by several modules: arrays, scalars, the ``get`` argument.

Each function validates one kind of argument and raises a ``ValueError`` or ``TypeError`` that
names the argument and says what to change. Computation modules call these once, at their
boundary, and then work on validated values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

KERNEL_NAMES = ("nngp", "ntk")


class InvalidArgumentError(ValueError, TypeError):
    """An argument of the wrong type or value (catchable as either, like scikit-learn's
    ``InvalidParameterError``)."""


def parse_get(get: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    """Validate ``get``: the kernel names and whether a single array was asked for."""
    single = isinstance(get, str)
    try:
        names = (get,) if single else tuple(get)
    except TypeError:
        names = ()
    if not names or any(g not in KERNEL_NAMES for g in names):
        raise ValueError(f"get must be 'nngp', 'ntk' or a tuple of them; got {get!r}.")
    return names, single


def is_traced(value) -> bool:
    """True for a JAX tracer (a value inside ``jit``/``grad``), which cannot be checked."""
    import jax

    return isinstance(value, jax.core.Tracer)


def check_scalar(value, name: str, *, low: float | None = 0.0, low_inclusive: bool = True) -> float:
    """A finite real number ``>= low`` (or ``> low``; any with ``low=None``), as a Python float.

    NumPy and concrete JAX 0-d arrays are accepted; strings, booleans, arrays with elements,
    values traced by JAX and non-finite values are refused with a message naming ``name``
    (:func:`sklearn.utils.check_scalar` accepts booleans, NaN and infinity: not used here).
    """
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise InvalidArgumentError(
            f"{name} must be a real number; got {value!r} ({type(value).__name__})."
        )
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - a tracer or an odd object: refuse below
        arr = np.asarray(None, dtype=object)
    if arr.ndim != 0 or arr.dtype.kind not in "iuf":
        raise InvalidArgumentError(
            f"{name} must be a real number; got {value!r} ({type(value).__name__})."
        )
    number = float(arr)
    too_low = low is not None and (number < low if low_inclusive else number <= low)
    if not math.isfinite(number) or too_low:
        bound = "" if low is None else (f" >= {low:g}" if low_inclusive else f" > {low:g}")
        raise ValueError(f"{name} must be a finite number{bound}; got {value!r}.")
    return number


def check_int(value, name: str, *, low: int = 0) -> int:
    """An integer ``>= low`` (not a bool), returned as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidArgumentError(f"{name} must be an integer >= {low}; got {value!r}.")
    if value < low:
        raise InvalidArgumentError(f"{name} must be an integer >= {low}; got {value!r}.")
    return int(value)


def as_matrix(x, name: str) -> np.ndarray:
    """Validate ``x`` as a finite, non-empty, 2-D numeric array (no copy when possible)."""
    return as_array(x, name, ndim=2)


def as_array(x, name: str, *, ndim: int) -> np.ndarray:
    """Validate ``x`` as a finite, non-empty numeric array with ``ndim`` dimensions."""
    arr = np.asarray(x)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a numeric array; got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        layout = {2: "(n_samples, n_features)", 4: "(n_samples, height, width, channels)"}
        hint = " Reshape a single sample with x.reshape(1, -1)." if ndim == 2 else ""
        raise ValueError(
            f"{name} must be {ndim}-D {layout.get(ndim, '')}; got shape {arr.shape}.{hint}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} must have at least one row and one column; got {arr.shape}.")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or infinity.")
    return arr
