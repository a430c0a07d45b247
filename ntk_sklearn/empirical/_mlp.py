"""The built-in fully-connected network, in NTK parameterization, mirroring ``fc_kernel``.

Architecture ``[Dense(w_std, b_std), σ] * depth + [Dense(w_std, b_std)]`` with every layer

    z = w_std / sqrt(fan_in) · h @ W + b_std · b,        W, b ~ N(0, 1) entrywise,

``h`` the previous layer's post-activation (the input for the first layer). As the width grows,
the covariance over initialisations of one readout unit tends to ``fc_kernel(...).nngp`` and the
empirical NTK (:func:`~ntk_sklearn.empirical.empirical_ntk`, per output unit) tends to
``fc_kernel(...).ntk``, its expectation.

Parameters are a list of ``{"W": (fan_in, fan_out), "b": (fan_out,)}`` dicts, first layer first.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn._validation import check_int, check_scalar
from ntk_sklearn.empirical._utils import default_float
from ntk_sklearn.kernels import get_activation

MLPParams = list[dict[str, jax.Array]]

#: Attribute of the built-in MLP's functions holding ``(activation, w_std, b_std, slope)``.
_ARCH_ATTR = "_ntk_sklearn_mlp_architecture"


def _check_architecture(n_features, depth, width, n_outputs) -> None:
    check_int(n_features, "n_features", low=1)
    if isinstance(depth, bool) or not isinstance(depth, (int, np.integer)) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0 (number of hidden layers); got {depth!r}.")
    check_int(width, "width", low=1)
    check_int(n_outputs, "n_outputs", low=1)


def _check_stds(w_std, b_std, negative_slope) -> tuple[float, float, float]:
    """``(w_std, b_std, negative_slope)`` as floats: stds finite and >= 0, the slope finite."""
    return (
        check_scalar(w_std, "w_std"),
        check_scalar(b_std, "b_std"),
        check_scalar(negative_slope, "negative_slope", low=None),
    )


def _check_param_memory(n_features, depth, width, n_outputs, dtype) -> None:
    """``MemoryError`` before drawing parameters that cannot fit (twice: draw and copy)."""
    sizes = [int(n_features)] + [int(width)] * int(depth) + [int(n_outputs)]
    count = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
    check_memory(
        2 * count * np.dtype(dtype).itemsize,
        f"The MLP's {count:,} parameters (depth={depth}, width={width})",
        "Use a smaller width or depth.",
    )


def check_mlp_params(params: Any, n_features: int | None = None) -> None:
    """Validate the built-in MLP's parameter list (shapes only: works on traced values).

    ``n_features``: the inputs' number of features, which the first layer must accept.
    """
    if not isinstance(params, (list, tuple)) or not params:
        raise ValueError(
            "params of the built-in MLP must be a non-empty list of layers {'W': (fan_in, "
            f"fan_out), 'b': (fan_out,)}} (from mlp_init); got {type(params).__name__}."
        )
    fan_in = None
    for index, layer in enumerate(params):
        if not isinstance(layer, dict) or set(layer) != {"W", "b"}:
            raise ValueError(
                f"params[{index}] must be a dict with keys 'W' and 'b' (from mlp_init); got "
                f"{layer!r:.100}."
            )
        w_shape, b_shape = np.shape(layer["W"]), np.shape(layer["b"])
        if len(w_shape) != 2 or b_shape != w_shape[1:] or (fan_in and w_shape[0] != fan_in):
            raise ValueError(
                f"params[{index}] has W of shape {w_shape} and b of shape {b_shape}; expected W "
                f"({fan_in or 'fan_in'}, fan_out) and b (fan_out,)."
            )
        for name in ("W", "b"):
            leaf = layer[name]
            dtype = np.dtype(leaf.dtype if hasattr(leaf, "dtype") else np.asarray(leaf).dtype)
            if dtype.kind != "f":
                raise TypeError(
                    f"params[{index}]['{name}'] has dtype {dtype}; the MLP's parameters must be "
                    "floating-point arrays."
                )
        fan_in = w_shape[1]
    if n_features is not None and np.shape(params[0]["W"])[0] != n_features:
        raise ValueError(
            f"The inputs have {n_features} features but the network was built for "
            f"{np.shape(params[0]['W'])[0]} (params[0]['W'] has shape "
            f"{np.shape(params[0]['W'])}). Draw params with n_features={n_features}, or pass "
            f"inputs with {np.shape(params[0]['W'])[0]} features."
        )


def _check_dtype(dtype: Any) -> np.dtype:
    """The parameters' dtype: a floating dtype, ``None`` for the default (x64 mode)."""
    try:
        dtype = np.dtype(default_float() if dtype is None else dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be a floating-point dtype or None; got {dtype!r}.") from exc
    if dtype.kind != "f":
        raise TypeError(f"dtype must be a floating-point dtype or None; got {dtype}.")
    return dtype


def mlp_init(
    key: jax.Array,
    n_features: int,
    *,
    depth: int,
    width: int,
    n_outputs: int = 1,
    dtype: Any = None,
) -> MLPParams:
    """Draw the parameters of the built-in MLP: every ``W`` and ``b`` entry i.i.d. ``N(0, 1)``.

    Parameters
    ----------
    key : jax.Array
        A JAX PRNG key.
    n_features : int
        Input dimension.
    depth : int
        Number of hidden layers (``0``: a linear readout).
    width : int
        Units per hidden layer.
    n_outputs : int, default=1
        Readout units.
    dtype : dtype, default=None
        Parameter dtype; ``None`` is float64 inside ``jax.enable_x64(True)``, else float32.

    Returns
    -------
    list of dict
        ``depth + 1`` layers ``{"W": (fan_in, fan_out), "b": (fan_out,)}``.

    Raises
    ------
    ValueError
        For ``n_features``, ``width`` or ``n_outputs`` that are not integers >= 1, or a
        ``depth`` that is not an integer >= 0.
    TypeError
        For a ``dtype`` that is not a floating-point dtype.
    MemoryError
        Before drawing, when the parameters cannot fit in the available memory (say,
        ``width=10**5`` with two hidden layers: 10¹⁰ parameters).

    Examples
    --------
    >>> import jax
    >>> from ntk_sklearn.empirical import mlp_init
    >>> params = mlp_init(jax.random.PRNGKey(0), 3, depth=2, width=16, n_outputs=2)
    >>> [p["W"].shape for p in params]
    [(3, 16), (16, 16), (16, 2)]
    """
    _check_architecture(n_features, depth, width, n_outputs)
    dtype = _check_dtype(dtype)
    _check_param_memory(n_features, depth, width, n_outputs, dtype)
    sizes = [int(n_features)] + [int(width)] * depth + [int(n_outputs)]
    keys = jax.random.split(key, len(sizes) - 1)
    params = []
    for layer_key, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True):
        w_key, b_key = jax.random.split(layer_key)
        params.append(
            {
                "W": jax.random.normal(w_key, (fan_in, fan_out), dtype),
                "b": jax.random.normal(b_key, (fan_out,), dtype),
            }
        )
    return params


def mlp_init_numpy(
    rng: np.random.Generator,
    n_features: int,
    *,
    depth: int,
    width: int,
    n_outputs: int = 1,
    dtype: Any = None,
) -> MLPParams:
    """:func:`mlp_init` with NumPy's generator: the same distribution, drawn on the host.

    Nothing is compiled (JAX compiles its random draws once per shape), which makes it the fast
    choice for host-side loops over many architectures, as in
    :func:`~ntk_sklearn.empirical.monte_carlo_kernel`. Not traceable by JAX.

    Parameters
    ----------
    rng : numpy.random.Generator
    n_features, depth, width, n_outputs, dtype
        As in :func:`mlp_init`.

    Returns
    -------
    list of dict
        ``depth + 1`` layers ``{"W": (fan_in, fan_out), "b": (fan_out,)}`` of JAX arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.empirical import mlp_init_numpy
    >>> params = mlp_init_numpy(np.random.default_rng(0), 3, depth=1, width=8)
    >>> [p["W"].shape for p in params], str(params[0]["W"].dtype)
    ([(3, 8), (8, 1)], 'float32')
    """
    _check_architecture(n_features, depth, width, n_outputs)
    dtype = _check_dtype(dtype)
    _check_param_memory(n_features, depth, width, n_outputs, dtype)
    draw_dtype = dtype if dtype in (np.float32, np.float64) else np.float64
    sizes = [int(n_features)] + [int(width)] * depth + [int(n_outputs)]
    return [
        {
            "W": jnp.asarray(rng.standard_normal((fan_in, fan_out), dtype=draw_dtype), dtype),
            "b": jnp.asarray(rng.standard_normal(fan_out, dtype=draw_dtype), dtype),
        }
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)
    ]


def mlp_apply(
    params: MLPParams,
    x: jax.Array,
    *,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
) -> jax.Array:
    """Outputs ``(n, n_outputs)`` of the built-in MLP (NTK parameterization).

    Every layer computes ``z = w_std / sqrt(fan_in) · h @ W + b_std · b``; the activation
    (any name of :func:`~ntk_sklearn.kernels.get_activation`, or an elementwise JAX function)
    follows every layer but the last.

    Parameters
    ----------
    params : list of dict
        From :func:`mlp_init`.
    x : array of shape (n, n_features)
    activation, w_std, b_std, negative_slope
        As in :func:`~ntk_sklearn.kernels.fc_kernel`.

    Returns
    -------
    jax.Array of shape (n, n_outputs)

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from ntk_sklearn.empirical import mlp_apply, mlp_init
    >>> params = mlp_init(jax.random.PRNGKey(0), 3, depth=1, width=8)
    >>> mlp_apply(params, jnp.ones((4, 3)), activation="erf", w_std=1.5).shape
    (4, 1)
    """
    h = _last_hidden(params, x, activation, w_std, b_std, negative_slope)
    return _dense(params[-1], h, w_std, b_std)


def _dense(layer: dict[str, jax.Array], h: jax.Array, w_std: float, b_std: float) -> jax.Array:
    """``z = w_std / sqrt(fan_in) · h W + b_std · b``.

    (Python floats are weakly typed: the parameters' dtype is kept.)
    """
    fan_in = layer["W"].shape[0]
    return float(w_std / math.sqrt(fan_in)) * (h @ layer["W"]) + float(b_std) * layer["b"]


def _last_hidden(params, x, activation, w_std, b_std, negative_slope) -> jax.Array:
    """Post-activations of the last hidden layer (``x`` itself when ``depth == 0``).

    Validates (Python-level checks of values and shapes, so also under ``jax.jit``) the stds,
    the parameters, and that ``x`` is ``(n, n_features)`` with the first layer's ``n_features``.
    """
    _check_stds(w_std, b_std, negative_slope)
    if np.ndim(x) != 2:
        raise ValueError(f"x must be a 2-D array (n_samples, n_features); got shape {np.shape(x)}.")
    check_mlp_params(params, np.shape(x)[1])
    sigma = get_activation(activation, negative_slope).fn
    h = x
    for layer in params[:-1]:
        h = sigma(_dense(layer, h, w_std, b_std))
    return h


def mlp_readout_features(
    params: MLPParams,
    x: jax.Array,
    *,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
) -> jax.Array:
    r"""Features ``φ(x)`` of the readout layer, whose products are its output covariance.

    With ``h(x)`` the last hidden layer (``n_L`` units; ``x`` itself when ``depth == 0``),
    ``φ(x) = [w_std · h(x) / sqrt(n_L), b_std]`` so that, over the readout weights and bias
    ``W, b ~ N(0, 1)`` and for every output unit ``a``,

        E[f_a(x) f_a(x') | h] = w_std² · h(x)·h(x') / n_L + b_std² = φ(x)·φ(x').

    This conditional expectation has the mean of ``f_a(x) f_a(x')`` over initialisations (the
    NNGP of the network) and a smaller variance: the Monte-Carlo NNGP uses it.

    Parameters
    ----------
    params : list of dict
        From :func:`mlp_init` (the readout layer's values are not used).
    x : array of shape (n, n_features)
    activation, w_std, b_std, negative_slope
        As in :func:`mlp_apply`.

    Returns
    -------
    jax.Array of shape (n, n_L + 1)

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from ntk_sklearn.empirical import mlp_init, mlp_readout_features
    >>> params = mlp_init(jax.random.PRNGKey(0), 3, depth=2, width=16)
    >>> mlp_readout_features(params, jnp.ones((4, 3)), b_std=0.1).shape
    (4, 17)
    """
    h = _last_hidden(params, x, activation, w_std, b_std, negative_slope)
    bias = jnp.full((h.shape[0], 1), float(b_std), h.dtype)
    return jnp.concatenate([float(w_std / math.sqrt(h.shape[1])) * h, bias], axis=1)


@lru_cache(maxsize=256)
def _apply_fn(
    activation, w_std: float, b_std: float, negative_slope: float, features: bool = False
) -> Callable:
    """One function object per architecture, so that jit caches keyed on it are reused."""
    fn = mlp_readout_features if features else mlp_apply

    def apply_fn(params: MLPParams, x: jax.Array) -> jax.Array:
        return fn(
            params,
            x,
            activation=activation,
            w_std=w_std,
            b_std=b_std,
            negative_slope=negative_slope,
        )

    setattr(apply_fn, _ARCH_ATTR, (activation, w_std, b_std, negative_slope))
    return apply_fn


def mlp_architecture(fn: Any) -> tuple | None:
    """``(activation, w_std, b_std, negative_slope)`` of a built-in MLP function, else None."""
    return getattr(fn, _ARCH_ATTR, None)


def readout_features_fn(architecture: tuple) -> Callable[[MLPParams, jax.Array], jax.Array]:
    """The :func:`mlp_readout_features_fn` of an architecture from :func:`mlp_architecture`."""
    return _apply_fn(*architecture, features=True)


def mlp_apply_fn(
    *,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
) -> Callable[[MLPParams, jax.Array], jax.Array]:
    """``apply_fn(params, x)`` of the built-in MLP with this activation and these stds.

    The same arguments return the same function object, so that jit-compiled kernels of it
    (:func:`~ntk_sklearn.empirical.empirical_ntk`) are compiled once.

    Examples
    --------
    >>> from ntk_sklearn.empirical import mlp_apply_fn
    >>> mlp_apply_fn(w_std=1.4) is mlp_apply_fn(w_std=1.4)
    True
    """
    return _cached_fn(activation, w_std, b_std, negative_slope, features=False)


def _cached_fn(activation, w_std, b_std, negative_slope, features: bool) -> Callable:
    w_std, b_std, negative_slope = _check_stds(w_std, b_std, negative_slope)
    get_activation(activation, negative_slope)  # validates the name
    slope = negative_slope if activation == "leaky_relu" else 0.01
    return _apply_fn(activation, w_std, b_std, slope, features)


def mlp_readout_features_fn(
    *,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
) -> Callable[[MLPParams, jax.Array], jax.Array]:
    """``features_fn(params, x)``: :func:`mlp_readout_features` with these arguments (cached).

    ``features_fn(params, x1) @ features_fn(params, x2).T`` is the readout-marginalised NNGP
    ``w_std² h(x)·h(x')/n_L + b_std²`` of the network ``params``, which
    :func:`~ntk_sklearn.empirical.empirical_nngp` computes.

    Examples
    --------
    >>> from ntk_sklearn.empirical import mlp_readout_features_fn
    >>> mlp_readout_features_fn(b_std=0.1) is mlp_readout_features_fn(b_std=0.1)
    True
    """
    return _cached_fn(activation, w_std, b_std, negative_slope, features=True)


def init_mlp(
    key: jax.Array,
    n_features: int,
    *,
    depth: int,
    width: int,
    n_outputs: int = 1,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
    dtype: Any = None,
) -> tuple[MLPParams, Callable[[MLPParams, jax.Array], jax.Array]]:
    """Parameters and ``apply_fn`` of the built-in MLP: :func:`mlp_init` and :func:`mlp_apply_fn`.

    The network is the finite-width counterpart of :func:`~ntk_sklearn.kernels.fc_kernel` with
    the same ``depth``, ``activation``, ``w_std``, ``b_std`` and ``negative_slope``.

    Parameters
    ----------
    key : jax.Array
        A JAX PRNG key.
    n_features, depth, width, n_outputs, dtype
        As in :func:`mlp_init`.
    activation, w_std, b_std, negative_slope
        As in :func:`mlp_apply`.

    Returns
    -------
    params : list of dict
    apply_fn : callable
        ``apply_fn(params, x) -> (n, n_outputs)``.

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from ntk_sklearn.empirical import init_mlp
    >>> params, apply_fn = init_mlp(jax.random.PRNGKey(0), 2, depth=2, width=32, w_std=1.4)
    >>> apply_fn(params, jnp.ones((5, 2))).shape
    (5, 1)
    """
    apply_fn = mlp_apply_fn(
        activation=activation, w_std=w_std, b_std=b_std, negative_slope=negative_slope
    )
    params = mlp_init(key, n_features, depth=depth, width=width, n_outputs=n_outputs, dtype=dtype)
    return params, apply_fn
