"""``fc_kernel``: the NNGP and NTK of an infinitely wide fully-connected network.

A thin front on :func:`~ntk_sklearn.kernels.serial`: the network
``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]`` is built by
:func:`fc_stack` and evaluated in tiles (see ``_serial.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ntk_sklearn._validation import KERNEL_NAMES, as_matrix, check_int, parse_get
from ntk_sklearn.kernels._activation_layer import Activation
from ntk_sklearn.kernels._affine import Dense
from ntk_sklearn.kernels._composition import KernelMatrices
from ntk_sklearn.kernels._serial import Serial, serial

__all__ = ["KERNEL_NAMES", "as_matrix", "fc_kernel", "fc_kernel_diag", "fc_stack", "parse_get"]


def fc_stack(
    depth: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> Serial:
    """The stack ``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]``.

    Examples
    --------
    >>> from ntk_sklearn.kernels import fc_stack
    >>> fc_stack(1, "erf", w_std=1.5)
    serial(Dense(w_std=1.5, b_std=0.0), \
Activation(activation='erf', negative_slope=0.01, quadrature_points=64), \
Dense(w_std=1.5, b_std=0.0))
    """
    depth = check_int(depth, "depth (number of hidden layers)")
    dense = Dense(w_std, b_std)
    act = Activation(activation, negative_slope, quadrature_points)
    return serial(*[dense, act] * depth, dense)


def fc_kernel(
    x1,
    x2=None,
    *,
    depth: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    get: str | Sequence[str] = KERNEL_NAMES,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
    block_size: int | None = None,
) -> KernelMatrices | np.ndarray:
    r"""NNGP and NTK of an infinitely wide fully-connected network.

    The network is ``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]`` in NTK
    parameterization, ``z = w_std / sqrt(fan_in) · W x + b_std · b`` with ``W, b ~ N(0, 1)``,
    which is neural-tangents' ``stax.serial`` of the same layers. Kernels are per output unit.

    Parameters
    ----------
    x1 : array-like of shape (n1, n_features)
    x2 : array-like of shape (n2, n_features), default=None
        ``None`` means ``x1``: the symmetric kernel, computed on and above the diagonal only.
    depth : int
        Number of hidden layers (``0`` is a linear readout of the inputs).
    activation : str or callable, default="relu"
        Closed forms: ``"relu"``, ``"leaky_relu"``, ``"abs"``, ``"erf"``, ``"identity"``,
        ``"gelu"`` (exact, erf-based), ``"sign"``, ``"sin"``. By quadrature:
        ``"tanh"``, ``"sigmoid"``, ``"softplus"``, ``"silu"``, ``"elu"``, or any elementwise,
        differentiable JAX function (its derivative comes from autodiff).
    w_std, b_std : float
        Weight and bias standard deviations (>= 0).
    get : {"nngp", "ntk"} or tuple of them, default=("nngp", "ntk")
        A tuple returns a :class:`KernelMatrices` with ``.nngp`` and ``.ntk``; a string returns
        that array.
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs (ignored by other activations).
    quadrature_points : int, default=64
        Nodes per dimension of the quadrature used by activations without a closed form; the
        cost grows as its square.
    block_size : int, default=None
        Side of the tiles the output is computed in (default 2048). Device memory holds a few
        tiles; the result is assembled in host memory.

    Returns
    -------
    KernelMatrices or ndarray of shape (n1, n2)
        In float64 when JAX's x64 mode is on (``with jax.enable_x64(True):``) and the inputs are
        float64 or integer, else float32.

    Raises
    ------
    ValueError
        For an unknown activation, ``depth < 0``, a negative or non-finite std, inputs that are
        not 2-D, empty, non-numeric, contain NaN/inf, or whose feature counts differ.
    FloatingPointError
        When the kernel overflows the floating-point range.
    MemoryError
        Before allocating, when the output cannot fit in the available memory.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import fc_kernel
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> k = fc_kernel(x, depth=2, activation="relu", w_std=1.4, b_std=0.1)
    >>> k.nngp.shape, k.ntk.shape
    ((4, 4), (4, 4))
    >>> bool(np.all(np.diag(k.ntk) >= np.diag(k.nngp)))  # Θ = Σ + (positive terms) at x = x'
    True
    """
    parse_get(get)
    x1 = as_matrix(x1, "x1")
    x2 = None if x2 is None else as_matrix(x2, "x2")
    if x2 is not None and x2.shape[1] != x1.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same number of features; got {x1.shape[1]} and {x2.shape[1]}."
        )
    stack = fc_stack(depth, activation, w_std, b_std, negative_slope, quadrature_points)
    return stack(x1, x2, get=get, block_size=block_size)


def fc_kernel_diag(
    x,
    *,
    depth: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    get: str | Sequence[str] = KERNEL_NAMES,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> KernelMatrices | np.ndarray:
    """Diagonal of :func:`fc_kernel` (each row with itself) in ``O(n · depth)``.

    Parameters are those of :func:`fc_kernel`. Returns arrays of shape ``(n,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import fc_kernel, fc_kernel_diag
    >>> x = np.random.default_rng(0).normal(size=(5, 3))
    >>> d = fc_kernel_diag(x, depth=3, get="ntk")
    >>> bool(np.allclose(d, np.diag(fc_kernel(x, depth=3, get="ntk"))))
    True
    """
    x = as_matrix(x, "x")
    stack = fc_stack(depth, activation, w_std, b_std, negative_slope, quadrature_points)
    return stack.diag(x, get=get)
