"""The NNGP and NTK as scikit-learn Gaussian-process kernels.

:class:`NNGPKernel` and :class:`NTKKernel` are :class:`sklearn.gaussian_process.kernels.Kernel`
subclasses: they compose with scikit-learn's kernels (``ConstantKernel() * NNGPKernel() +
WhiteKernel()``), and work in ``GaussianProcessRegressor``, ``GaussianProcessClassifier``,
``SVC(kernel=...)`` and ``KernelRidge(kernel=...)``. The network is built by
:func:`ntk_sklearn.architectures.make_stack`; its hyperparameters are ``w_std`` and ``b_std``,
shared by every weight and bias layer, optimized in log space like scikit-learn's
(``theta = log([w_std, b_std])``, fixed ones left out): the names, order and bounds rule of
the estimators' hyperparameters (:mod:`~ntk_sklearn.gaussian_process._hyperparameters`).

The gradient with respect to ``theta`` is exact (JAX forward-mode autodiff of the kernel
recursion, one tangent per free hyperparameter), computed in tiles of row pairs like the kernel.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

from ntk_sklearn._memory import check_memory
from ntk_sklearn._pickle_refs import picklable, picklable_object
from ntk_sklearn._validation import check_scalar
from ntk_sklearn.architectures import make_stack, replace_stds, reshape_inputs
from ntk_sklearn.gaussian_process._hyperparameters import (
    KERNEL_DEFAULT_BOUNDS,
    NAMES,
    check_bounds,
    check_inside,
    hyperparameter,
)
from ntk_sklearn.kernels import Serial, _tiling, kernel_matrices
from ntk_sklearn.kernels._serial import MAX_BLOCK_SIZE, TILE_BYTES

__all__ = ["NNGPKernel", "NTKKernel"]

#: The kernels' hyperparameters, in the order of ``theta`` (the estimators' without alpha).
_HYPERPARAMETERS = NAMES[:2]
#: Working arrays per carried covariance array, per tangent (the layers' temporaries).
_WORK_FACTOR = 4


class _NeuralKernel(Kernel):
    """Shared implementation of :class:`NNGPKernel` and :class:`NTKKernel`."""

    #: The kernel of the network this class computes, ``"nngp"`` or ``"ntk"``.
    _get: ClassVar[str]

    def __init__(
        self,
        depth: int = 1,
        activation: str | Callable = "relu",
        w_std: float = 1.0,
        b_std: float = 0.1,
        w_std_bounds: tuple[float, float] | str = KERNEL_DEFAULT_BOUNDS["w_std"],
        b_std_bounds: tuple[float, float] | str = KERNEL_DEFAULT_BOUNDS["b_std"],
        *,
        architecture: str = "fc",
        image_shape: tuple[int, int, int] | None = None,
        filter_size: int | tuple[int, int] = 3,
        pooling: str = "flatten",
        flip_invariant: bool = False,
        layers: Serial | None = None,
        negative_slope: float = 0.01,
        quadrature_points: int = 64,
    ) -> None:
        self.depth = depth
        self.activation = activation
        self.w_std = w_std
        self.b_std = b_std
        self.w_std_bounds = w_std_bounds
        self.b_std_bounds = b_std_bounds
        self.architecture = architecture
        self.image_shape = image_shape
        self.filter_size = filter_size
        self.pooling = pooling
        self.flip_invariant = flip_invariant
        self.layers = layers
        self.negative_slope = negative_slope
        self.quadrature_points = quadrature_points

    def __sklearn_clone__(self):
        # clone deep-copies parameters, and a deep copy of a jit-compiled function (jnp.tanh)
        # is a broken object: GaussianProcessRegressor's clone_with_theta failed. Functions
        # are not state: clones share them (as the estimators' clones do).
        params = {
            name: value if callable(value) else copy.deepcopy(value)
            for name, value in self.get_params(deep=False).items()
        }
        return type(self)(**params)

    def __getstate__(self) -> dict:
        # A function (``activation=jnp.tanh``) as a reference that pickles (_pickle_refs.py).
        state = dict(self.__dict__)
        state["activation"] = picklable(state["activation"], "activation")
        state["layers"] = picklable_object(state["layers"])
        return state

    # -- hyperparameters ---------------------------------------------------------------------

    @property
    def hyperparameter_w_std(self) -> Hyperparameter:
        return hyperparameter("w_std", self._checked_bounds("w_std"))

    @property
    def hyperparameter_b_std(self) -> Hyperparameter:
        return hyperparameter("b_std", self._checked_bounds("b_std"))

    @property
    def hyperparameters(self) -> list[Hyperparameter]:
        """``w_std``, then ``b_std``: the order of ``theta`` shared with the estimators."""
        return [getattr(self, f"hyperparameter_{name}") for name in _HYPERPARAMETERS]

    def _checked_bounds(self, name: str):
        """The bounds of ``name`` after checking them and the value against them.

        A value must be finite and ``> 0`` (its log is ``theta``); only a fixed ``b_std`` may
        be ``0`` (no bias).
        """
        bounds = getattr(self, f"{name}_bounds")
        fixed = isinstance(bounds, str) and bounds == "fixed"
        allow_zero = fixed and name == "b_std"
        hint = " (or b_std_bounds='fixed' for b_std=0)" if name == "b_std" else ""
        value = getattr(self, name)
        try:
            value = check_scalar(value, name, low=0.0, low_inclusive=allow_zero)
        except ValueError as error:
            raise type(error)(f"{error} It is optimized in log space{hint}.") from None
        checked = check_bounds(bounds, f"{name}_bounds")
        if checked is not None:
            check_inside(name, value, checked)
        return bounds

    @property
    def theta(self) -> np.ndarray:
        """``log`` of the non-fixed hyperparameters, ``[w_std, b_std]`` order."""
        return Kernel.theta.fget(self)

    @theta.setter
    def theta(self, theta) -> None:
        theta = np.asarray(theta, dtype=float)
        n_free = sum(not h.fixed for h in self.hyperparameters)
        if theta.shape != (n_free,):
            free = [h.name for h in self.hyperparameters if not h.fixed]
            raise ValueError(
                f"theta must be a 1-D array of {n_free} log-hyperparameters (log of {free}); "
                f"got shape {theta.shape}."
            )
        Kernel.theta.fset(self, theta)

    # -- the network -------------------------------------------------------------------------

    def _arch(self) -> dict:
        return {
            "architecture": self.architecture,
            "image_shape": self.image_shape,
            "layers": self.layers,
        }

    def _stack(self, n_features: int) -> Serial:
        """The validated network for rows of ``n_features`` features."""
        for name in _HYPERPARAMETERS:
            self._checked_bounds(name)
        return make_stack(
            depth=self.depth,
            activation=self.activation,
            w_std=float(self.w_std),
            b_std=float(self.b_std),
            negative_slope=self.negative_slope,
            quadrature_points=self.quadrature_points,
            filter_size=self.filter_size,
            pooling=self.pooling,
            flip_invariant=self.flip_invariant,
            n_features=n_features,
            **self._arch(),
        )

    def _inputs(self, X, name: str) -> np.ndarray:
        x = reshape_inputs(X, name=name, **self._arch())
        return x.astype(np.float64, copy=False)

    # -- kernel ------------------------------------------------------------------------------

    def __call__(self, X, Y=None, eval_gradient: bool = False):
        """The kernel ``k(X, Y)`` and, optionally, its gradient with respect to ``theta``.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        Y : array-like of shape (n_samples_Y, n_features), default=None
            ``None`` means ``X`` (only the upper triangle is computed).
        eval_gradient : bool, default=False
            Also return ``dK/dtheta`` (only when ``Y`` is None).

        Returns
        -------
        K : ndarray of shape (n_samples_X, n_samples_Y)
        K_gradient : ndarray of shape (n_samples_X, n_samples_X, n_dims)
            Only with ``eval_gradient``: ``dK/dlog(p)`` for the free hyperparameters ``p`` in
            the order of ``theta``.
        """
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        x = self._inputs(X, "X")
        n_features = math.prod(x.shape[1:])
        symmetric = Y is None or Y is X
        y = None if symmetric else self._inputs(Y, "Y")
        if y is not None and y.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"X and Y must have the same number of features; got {n_features} and "
                f"{math.prod(y.shape[1:])}."
            )
        stack = self._stack(n_features)
        with jax.enable_x64(True):
            if eval_gradient:
                return self._with_gradient(stack, x)
            return stack(x, y, get=self._get)

    def diag(self, X) -> np.ndarray:
        """``np.diag(self(X))`` in ``O(n_samples)``, without the matrix.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        x = self._inputs(X, "X")
        stack = self._stack(math.prod(x.shape[1:]))
        with jax.enable_x64(True):
            return stack.diag(x, get=self._get)

    def is_stationary(self) -> bool:
        """False: the kernel depends on the inputs' norms and angle, not on their difference."""
        return False

    def _with_gradient(self, stack: Serial, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        free = tuple(h.name for h in self.hyperparameters if not h.fixed)
        n = x.shape[0]
        if not free:
            return stack(x, get=self._get), np.empty((n, n, 0))
        check_memory(
            (1 + len(free)) * n * n * 8,
            f"The {n} x {n} kernel and its gradient",
            "Use fewer samples, or fix hyperparameters (w_std_bounds='fixed', ...).",
        )
        K, grad = np.empty((n, n)), np.empty((n, n, len(free)))
        blocks = _tiling.row_blocks(x, self._block_size(stack, x.shape[1:], len(free)))
        index = list(_tiling.tile_pairs(len(blocks), len(blocks), True))
        stds = {"w_std": float(self.w_std), "b_std": float(self.b_std)}

        def compute(a, b):
            return _kernel_and_gradient(stack, stds, a, b, get=self._get, free=free)

        def store(k: int, result) -> None:
            i, j = index[k]
            rows, cols = blocks[i].rows, blocks[j].rows
            n1, n2 = rows.stop - rows.start, cols.stop - cols.start
            value, jac = (np.asarray(r)[:n1, :n2] for r in result)
            _tiling.store_tile(K, rows, cols, value, symmetric=True)
            _tiling.store_tile(grad, rows, cols, jac, symmetric=True)

        _tiling.run_tiles([(blocks[i], blocks[j]) for i, j in index], compute, store)
        if not (np.isfinite(K).all() and np.isfinite(grad).all()):
            raise FloatingPointError(
                f"The {self._get.upper()} or its gradient overflowed float64 at w_std="
                f"{self.w_std:g}, b_std={self.b_std:g}: scale the inputs to unit variance, "
                "lower the upper bound of w_std, or the depth."
            )
        return K, grad

    @staticmethod
    def _block_size(stack: Serial, row_shape: tuple[int, ...], n_free: int) -> int:
        """Rows per tile: the carried covariances and their tangents fit in ``TILE_BYTES``."""
        per_pair = stack._pair_size(row_shape)
        # Σ, Θ, their tangents (one per free hyperparameter), the layers' temporaries.
        per_pair_bytes = per_pair * 8 * _WORK_FACTOR * 4 * (1 + n_free)
        return int(max(1, min(MAX_BLOCK_SIZE, math.isqrt(TILE_BYTES // per_pair_bytes))))

    # -- scikit-learn conventions ------------------------------------------------------------

    def __repr__(self) -> str:
        defaults = type(self)().get_params()
        shown = [f"{name}={_short(getattr(self, name))}" for name in ("w_std", "b_std")]
        for key, value in self.get_params().items():
            if key not in _HYPERPARAMETERS and _differs(value, defaults[key]):
                shown.append(f"{key}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _short(value) -> str:
    """A real number with 3 significant digits (scikit-learn's kernels' style), else its repr."""
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return f"{value:.3g}" if real else repr(value)


def _differs(a, b) -> bool:
    try:
        return bool(np.any(a != b))
    except (TypeError, ValueError):
        return a is not b


@functools.partial(jax.jit, static_argnames=("get", "free"))
def _kernel_and_gradient(stack: Serial, stds: dict, x1, x2, *, get: str, free: tuple[str, ...]):
    """A tile of the kernel and of ``dK/dlog(p) = p · dK/dp`` for ``p`` in ``free``.

    Every ``Dense``/``Conv`` layer of ``stack`` gets ``stds["w_std"]``, ``stds["b_std"]``; the
    derivative is forward mode (one tangent per free hyperparameter).
    """

    def kernel(values):
        current = dict(stds, **dict(zip(free, values, strict=True)))
        net = replace_stds(stack, current["w_std"], current["b_std"])
        k = getattr(kernel_matrices(net, x1, x2, get=get), get)
        return k, k

    p = jnp.stack([stds[name] for name in free])
    jac, k = jax.jacfwd(kernel, has_aux=True)(p)
    # Chain rule for theta = log(p): dK/dtheta = p · dK/dp.
    return k, jac * p


class NNGPKernel(_NeuralKernel):
    """The NNGP kernel of an infinitely wide network, as a scikit-learn GP kernel.

    ``k(x, x')`` is the covariance of the outputs of a randomly initialised network
    (Neal 1996; Lee et al. 2018): a Gaussian process prior whose samples are infinitely wide
    networks. The network is :func:`~ntk_sklearn.architectures.make_stack`'s (NTK
    parameterization, neural-tangents' conventions); every weight and bias layer has the
    hyperparameters ``w_std`` and ``b_std``, fitted by ``GaussianProcessRegressor`` in log space.

    Parameters
    ----------
    depth : int, default=1
        Hidden layers (``"fc"``, ``"conv"``) or convolutions (``"myrtle"``, ``>= 3``).
    activation : str or callable, default="relu"
        A name of :func:`~ntk_sklearn.kernels.available_activations` (closed forms or
        quadrature) or an elementwise JAX function.
    w_std : float, default=1.0
        Weight standard deviation (``> 0``).
    b_std : float, default=0.1
        Bias standard deviation (``> 0``; ``0`` only with ``b_std_bounds="fixed"``).
    w_std_bounds, b_std_bounds : pair of floats or "fixed", default=(1e-2, 1e2), (1e-5, 1e2)
        Bounds of the optimization (``0 < low <= high``), or ``"fixed"``: left out of
        ``theta``. One definition with the estimators' (names, order, rule:
        :mod:`~ntk_sklearn.gaussian_process._hyperparameters`); wider defaults, as a
        ``ConstantKernel`` in front trades off against the stds.
    architecture : {"fc", "conv", "myrtle"}, default="fc"
        See :mod:`ntk_sklearn.architectures`. ``"conv"`` and ``"myrtle"`` need ``image_shape``.
    image_shape : (int, int, int), default=None
        ``(height, width, channels)``: each row of ``X`` is reshaped to this NHWC image.
    filter_size : int or (int, int), default=3
        Convolution filters of ``"conv"`` and ``"myrtle"``.
    pooling : {"flatten", "local2", "local3", "local4", "gap"}, default="flatten"
        Readout of ``"conv"`` before the last dense layer: ``Flatten``, local average pooling
        of width 2, 3 or 4 (stride 1) then ``Flatten``, or global average pooling.
    flip_invariant : bool, default=False
        Average the convolutional network over horizontal flips of its input images: the
        kernel ``(k(x, x') + k(x, mirror(x'))) / 2``, exactly invariant to mirroring an image.
    layers : Serial, default=None
        A custom network (:func:`ntk_sklearn.kernels.serial`): its ``Dense``/``Conv`` layers'
        stds are replaced by ``w_std``/``b_std``; ``architecture``, ``depth``, ``activation``,
        ``filter_size``, ``pooling`` are ignored. Images when ``image_shape`` is given.
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs.
    quadrature_points : int, default=64
        Nodes per dimension of the quadrature of activations without a closed form.

    Notes
    -----
    ``K_gradient`` is exact: forward-mode autodiff of the kernel recursion, with respect to the
    free hyperparameters in ``theta``'s order (``b_std``, ``w_std``). Computed in float64 in a
    scoped ``jax.enable_x64``. With ReLU and ``b_std = 0`` the kernel is homogeneous in
    ``w_std`` (``w_std^(2 depth + 2)``), so ``ConstantKernel() * NNGPKernel()`` has one
    redundant direction; fix one of the two when that matters.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process import GaussianProcessRegressor
    >>> from sklearn.gaussian_process.kernels import WhiteKernel
    >>> from ntk_sklearn.gaussian_process import NNGPKernel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 3))
    >>> y = np.sin(X[:, 0]) + 0.1 * rng.normal(size=30)
    >>> kernel = NNGPKernel(depth=2) + WhiteKernel()
    >>> gpr = GaussianProcessRegressor(kernel, normalize_y=True).fit(X, y)
    >>> gpr.kernel_.theta.shape  # log([w_std, b_std, noise_level]), fitted
    (3,)
    >>> K, K_gradient = NNGPKernel()(X, eval_gradient=True)
    >>> K.shape, K_gradient.shape
    ((30, 30), (30, 30, 2))
    """

    _get = "nngp"


class NTKKernel(_NeuralKernel):
    """The neural tangent kernel of an infinitely wide network, as a scikit-learn GP kernel.

    ``k(x, x') = Θ(x, x')`` (Jacot et al. 2018), the kernel of gradient-descent training of the
    network in the infinite-width limit. Parameters, hyperparameters and conventions are
    :class:`NNGPKernel`'s.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import SVC
    >>> from ntk_sklearn.gaussian_process import NTKKernel
    >>> X = np.random.default_rng(0).normal(size=(20, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> SVC(kernel=NTKKernel(depth=2), C=10.0).fit(X, y).score(X, y)
    1.0
    >>> NTKKernel(architecture="conv", image_shape=(2, 2, 1), w_std=1.5)
    NTKKernel(w_std=1.5, b_std=0.1, architecture='conv', image_shape=(2, 2, 1))
    """

    _get = "ntk"
