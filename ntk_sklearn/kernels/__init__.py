"""Analytic infinite-width kernels (pure JAX; no scikit-learn).

Layers (neural-tangents' ``stax`` names) compose with :func:`serial` into a kernel function;
:func:`fc_kernel` is the fully-connected special case.
"""

from ntk_sklearn.kernels._activations import (
    Nonlinearity,
    available_activations,
    get_activation,
    quadrature_activation,
    register_activation,
)
from ntk_sklearn.kernels._fc import fc_kernel, fc_kernel_diag, fc_stack
from ntk_sklearn.kernels._layers import (
    Abs,
    Activation,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    Gelu,
    GlobalAvgPool,
    Identity,
    Layer,
    LeakyRelu,
    Relu,
    Sign,
    Sin,
)
from ntk_sklearn.kernels._serial import KernelMatrices, Serial, kernel_matrices, serial

__all__ = [
    "Abs",
    "Activation",
    "AvgPool",
    "Conv",
    "Dense",
    "Erf",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "Identity",
    "KernelMatrices",
    "Layer",
    "LeakyRelu",
    "Nonlinearity",
    "Relu",
    "Serial",
    "Sign",
    "Sin",
    "available_activations",
    "fc_kernel",
    "fc_kernel_diag",
    "fc_stack",
    "get_activation",
    "kernel_matrices",
    "quadrature_activation",
    "register_activation",
    "serial",
]
