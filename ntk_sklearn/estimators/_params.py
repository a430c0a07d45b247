"""The estimators' parameters: their constraints, normal forms, and the memory advice.

``PARAMETER_CONSTRAINTS`` are scikit-learn's (``validate_parameter_constraints``); what they
cannot express (bounds pairs, activations, kernels, input scales) is checked in
:mod:`ntk_sklearn.estimators._checks` at the start of ``fit``.
"""

from __future__ import annotations

from numbers import Integral, Real

import jax
import numpy as np
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from ntk_sklearn import _memory
from ntk_sklearn.architectures import ARCHITECTURES, POOLINGS
from ntk_sklearn.kernels import Serial

#: Largest accepted ``|negative_slope|``: beyond it leaky ReLU's kernel overflows for no gain.
_MAX_SLOPE = 1e6
#: Numeric parameters that also accept 0-d NumPy or JAX arrays (converted to Python numbers).
_REAL_PARAMS = ("w_std", "b_std", "negative_slope", "alpha", "t", "learning_rate")
_INT_PARAMS = ("depth", "block_size", "width", "n_samples", "n_restarts_optimizer")

#: The constraints of the parameters every estimator shares.
PARAMETER_CONSTRAINTS: dict = {
    "architecture": [StrOptions(set(ARCHITECTURES))],
    "depth": [Interval(Integral, 0, None, closed="left")],
    "image_shape": [tuple, list, None],
    "filter_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
    "pooling": [StrOptions(set(POOLINGS))],
    "flip_invariant": ["boolean"],
    "layers": [Serial, None],
    # Names are checked in fit against the live registry (register_activation adds names).
    "activation": [str, callable],
    "w_std": [Interval(Real, 0, None, closed="neither")],
    "b_std": [Interval(Real, 0, None, closed="left")],
    "negative_slope": [Interval(Real, -_MAX_SLOPE, _MAX_SLOPE, closed="both")],
    "alpha": [Interval(Real, 0, None, closed="left")],
    "t": [Interval(Real, 0, None, closed="both"), None],  # inf: converged, as None
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    # Also NumPy's float32/float64 types and dtypes: normalised by ``_resolved_params``.
    "dtype": [StrOptions({"float64", "float32"})],
    "block_size": [Interval(Integral, 1, None, closed="left"), None],
    "kernel": [StrOptions({"analytic", "empirical"}), tuple],
    "width": [Interval(Integral, 1, None, closed="left")],
    "n_samples": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "solver": [StrOptions({"auto", "cholesky", "eigh", "cg"})],
    "tol": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
    "max_iter": [Interval(Integral, 1, None, closed="left"), None],
    "preconditioner_rank": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
    "optimizer": [StrOptions({"fmin_l_bfgs_b"}), callable, None],
    "n_restarts_optimizer": [Interval(Integral, 0, None, closed="left")],
    # Pairs are checked in fit (0 < low <= high < inf), with the value inside them.
    "w_std_bounds": [tuple, list, StrOptions({"fixed"})],
    "b_std_bounds": [tuple, list, StrOptions({"fixed"})],
    "alpha_bounds": [tuple, list, StrOptions({"fixed"})],
    "input_scale": [Interval(Real, 0, None, closed="neither"), "array-like", None],
    "input_scale_bounds": [tuple, list, StrOptions({"fixed"})],
    "verbose": ["verbose"],
    "memory": [None, str, HasMethods(["cache"])],
}


def check_memory(n_bytes: int, what: str, extra: str = "", dtype: str = "float64") -> None:
    """``MemoryError`` before allocating what cannot fit, with the estimators' advice."""
    half = "Use dtype='float32' (half the memory), fewer" if dtype == "float64" else "Use fewer"
    _memory.check_memory(
        n_bytes, what, f"{half} training samples, or predict in smaller batches{extra}."
    )


def _python_number(value, kinds: str):
    """A 0-d NumPy/JAX array of a dtype kind in ``kinds`` as a Python number; else unchanged."""
    if isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0 and value.dtype.kind in kinds:
        return int(value) if value.dtype.kind in "iu" else float(value)
    return value


def _dtype_name(value):
    """``"float32"``/``"float64"`` for those NumPy/JAX scalar types and dtypes; else unchanged."""
    if isinstance(value, (type, np.dtype)):
        try:
            name = np.dtype(value).name
        except TypeError:
            return value
        if name in ("float32", "float64"):
            return name
    return value


class _Shown:
    """A stand-in whose ``repr`` is a given text (for ``repr`` of estimators)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _describe_kernel(kernel: tuple) -> str:
    """Short text for ``kernel=(apply_fn, params)``: the function's name and the params' size."""
    if len(kernel) != 2:
        return f"<tuple of length {len(kernel)}>"
    apply_fn, params = kernel
    name = getattr(apply_fn, "__name__", type(apply_fn).__name__)
    leaves = jax.tree_util.tree_leaves(params)
    size = sum(int(np.size(leaf)) for leaf in leaves)
    return f"({name}, <params: {len(leaves)} arrays, {size} values>)"


def check_times(times) -> np.ndarray:
    """Validate training times for a trajectory: 1-D, non-negative, not NaN (inf allowed)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array; got shape {times.shape}.")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("times must be >= 0 (np.inf allowed for the converged limit).")
    return times
