"""Analytic infinite-width kernels (pure JAX; no scikit-learn)."""

from ntk_sklearn.kernels._activations import (
    Activation,
    available_activations,
    get_activation,
    quadrature_activation,
    register_activation,
)
from ntk_sklearn.kernels._fc import Kernel, fc_kernel, fc_kernel_diag

__all__ = [
    "Activation",
    "Kernel",
    "available_activations",
    "fc_kernel",
    "fc_kernel_diag",
    "get_activation",
    "quadrature_activation",
    "register_activation",
]
