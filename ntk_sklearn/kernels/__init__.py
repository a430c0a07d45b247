"""Analytic infinite-width kernels (pure JAX; no scikit-learn).

Layers (neural-tangents' ``stax`` names) compose with :func:`serial` into a kernel function;
:func:`fc_kernel` is the fully-connected special case.
"""

from ntk_sklearn.kernels._activation_layer import (
    Abs,
    Activation,
    Erf,
    Gelu,
    Identity,
    LeakyRelu,
    Relu,
    Sign,
    Sin,
)
from ntk_sklearn.kernels._activations import (
    available_activations,
    get_activation,
    quadrature_activation,
    register_activation,
)
from ntk_sklearn.kernels._affine import Conv, Dense
from ntk_sklearn.kernels._attention import GlobalSelfAttention
from ntk_sklearn.kernels._branching import FanInConcat, FanInSum, FanOut, Parallel
from ntk_sklearn.kernels._composition import KernelMatrices, kernel_matrices
from ntk_sklearn.kernels._fc import fc_kernel, fc_kernel_diag, fc_stack
from ntk_sklearn.kernels._layers import Layer
from ntk_sklearn.kernels._nonlinearity import Nonlinearity
from ntk_sklearn.kernels._normalization import LayerNorm
from ntk_sklearn.kernels._pooling import AvgPool, Flatten, GlobalAvgPool
from ntk_sklearn.kernels._serial import Serial, parallel, serial

__all__ = [
    "Abs",
    "Activation",
    "AvgPool",
    "Conv",
    "Dense",
    "Erf",
    "FanInConcat",
    "FanInSum",
    "FanOut",
    "Flatten",
    "Gelu",
    "GlobalAvgPool",
    "GlobalSelfAttention",
    "Identity",
    "KernelMatrices",
    "Layer",
    "LayerNorm",
    "LeakyRelu",
    "Nonlinearity",
    "Parallel",
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
    "parallel",
    "quadrature_activation",
    "register_activation",
    "serial",
]
