"""The one definition of the learnable hyperparameters: names, ``theta`` order, bounds, defaults.

Shared by the estimators (``optimizer=``, ``log_marginal_likelihood(theta)``) and the
Gaussian-process kernels :class:`~ntk_sklearn.gaussian_process.NNGPKernel` and
:class:`~ntk_sklearn.gaussian_process.NTKKernel`: ``theta`` is the natural logarithm of the free
ones of :data:`NAMES`, in that order (a hyperparameter whose bounds are ``"fixed"`` is left
out; the kernels have no ``alpha``, which ``GaussianProcessRegressor`` takes as its own
``alpha``). Each is a scikit-learn :class:`~sklearn.gaussian_process.kernels.Hyperparameter`
with bounds ``"fixed"`` or a pair ``0 < low <= high < inf``, by default :data:`DEFAULT_BOUNDS`
(the estimators) or :data:`KERNEL_DEFAULT_BOUNDS` (the kernels).
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.gaussian_process.kernels import Hyperparameter

from ntk_sklearn._validation import InvalidArgumentError

#: The learnable hyperparameters, in the order of ``theta``.
NAMES = ("w_std", "b_std", "alpha")
#: The estimators' default search bounds (for standardised inputs and normalised targets).
DEFAULT_BOUNDS = {"w_std": (0.05, 20.0), "b_std": (1e-4, 10.0), "alpha": (1e-8, 1e3)}
#: The GP kernels' default bounds: wider, as in a ``GaussianProcessRegressor`` the amplitude of
#: a ``ConstantKernel`` in front trades off against ``w_std`` and ``b_std`` (measured: with the
#: estimators' bounds ``C * NNGPKernel() + WhiteKernel()`` on diabetes stops at
#: ``b_std_bounds``' upper end, at another evidence than before).
KERNEL_DEFAULT_BOUNDS = {"w_std": (1e-2, 1e2), "b_std": (1e-5, 1e2)}
#: Relative slack of the inside check: ``exp(log(bound))`` may round past the bound.
BOUNDS_RTOL = 1e-10


def check_bounds(bounds, name: str) -> tuple[float, float] | None:
    """``(low, high)`` with ``0 < low <= high < inf``, or ``None`` for ``"fixed"``.

    ``name`` is the parameter's name (``"w_std_bounds"``), used in the error.
    """
    if isinstance(bounds, str) and bounds == "fixed":
        return None
    try:
        pair = np.asarray(bounds, dtype=float).ravel() if not isinstance(bounds, str) else None
    except (TypeError, ValueError):
        pair = None
    ok = pair is not None and pair.shape == (2,) and np.ndim(bounds) == 1
    low, high = (float(b) for b in pair) if ok else (math.nan, math.nan)
    if not (0 < low <= high < math.inf):
        raise InvalidArgumentError(
            f"{name} must be 'fixed' or a pair (low, high) of finite numbers with "
            f"0 < low <= high (the search runs on their logarithms); got {bounds!r}."
        )
    return low, high


def check_inside(name: str, value: float, bounds: tuple[float, float]) -> None:
    """``ValueError`` saying what to change when a free ``value`` is outside its ``bounds``."""
    low, high = bounds
    key = f"{name}_bounds"
    if not low * (1 - BOUNDS_RTOL) <= value <= high * (1 + BOUNDS_RTOL):
        raise ValueError(
            f"{name}={value:g} lies outside {key}=({low:g}, {high:g}): the optimizer starts "
            f"from {name}. Set {name} inside the bounds, widen {key}, or use {key}='fixed' to "
            f"keep {name} as it is."
        )


def hyperparameter(name: str, bounds, n_elements: int = 1) -> Hyperparameter:
    """scikit-learn's :class:`~sklearn.gaussian_process.kernels.Hyperparameter` of ``name``."""
    checked = check_bounds(bounds, f"{name}_bounds")
    return Hyperparameter(name, "numeric", "fixed" if checked is None else checked, n_elements)
