"""The activations by name: the registry of closed forms (``_closed_forms.py``) and
quadrature-based functions, and :func:`get_activation`, which builds a
:class:`~ntk_sklearn.kernels.Nonlinearity` from a name or any elementwise JAX function (its
expectations then by quadrature, ``_quadrature.py``, the derivative by JAX autodiff). To add an
activation, write one factory and call :func:`register_activation`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import InvalidArgumentError
from ntk_sklearn.kernels._closed_forms import _ab_relu, _erf, _gelu, _identity, _sign, _sin
from ntk_sklearn.kernels._nonlinearity import (
    Nonlinearity,
)
from ntk_sklearn.kernels._quadrature import (
    quadrature_diag_expectations,
    quadrature_expectations,
)

# --------------------------------------------------------------------------------------------
# Quadrature fallback for any elementwise function
# --------------------------------------------------------------------------------------------


def _derivative(fn: Callable[[jax.Array], jax.Array]) -> Callable[[jax.Array], jax.Array]:
    """Elementwise derivative of an elementwise ``fn`` by autodiff."""
    return jax.grad(lambda x: jnp.sum(fn(x)))


def quadrature_activation(
    fn: Callable[[jax.Array], jax.Array], name: str | None = None, n_points: int = 64
) -> Nonlinearity:
    """Wrap any elementwise JAX function; its expectations use two-dimensional quadrature.

    Parameters
    ----------
    fn : callable
        Elementwise, JAX-traceable and differentiable (``jax.grad`` gives ``σ'``).
    name : str, optional
        Display name; defaults to ``fn.__name__``.
    n_points : int, default=64
        Resolution of the quadrature (radial step ``22 / n_points`` of a polar rule, see
        ``_quadrature.py``); the cost per kernel entry is about ``n_points²`` angle-radius pairs,
        each evaluating ``fn`` and its derivative at four points.
    """
    dfn = _derivative(fn)

    def expectations(q1, q2, c):
        return quadrature_expectations(fn, dfn, q1, q2, c, n_points)

    def diag(q):
        return quadrature_diag_expectations(fn, dfn, q, n_points)

    label = name or getattr(fn, "__name__", repr(fn))
    return Nonlinearity(label, fn, expectations, diag, closed_form=False)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

_CLOSED_FORMS: dict[str, Callable[..., Nonlinearity]] = {
    "relu": lambda negative_slope: _ab_relu("relu", 0.0),
    "leaky_relu": lambda negative_slope: _ab_relu("leaky_relu", negative_slope),
    "abs": lambda negative_slope: _ab_relu("abs", -1.0),
    "erf": lambda negative_slope: _erf(),
    "identity": lambda negative_slope: _identity(),
    "gelu": lambda negative_slope: _gelu(),
    "sign": lambda negative_slope: _sign(),
    "sin": lambda negative_slope: _sin(),
}

_QUADRATURE_FUNCTIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "silu": jax.nn.silu,
    "elu": jax.nn.elu,
}


def register_activation(name: str, factory: Callable[..., Nonlinearity]) -> None:
    """Register a closed-form activation under ``name``.

    ``factory(negative_slope)`` must return a :class:`Nonlinearity`. Registering a name that exists
    replaces it.
    """
    _CLOSED_FORMS[name] = factory
    _build.cache_clear()


def available_activations() -> tuple[str, ...]:
    """Names accepted by ``activation=``: closed forms first, then quadrature-based ones."""
    return tuple(_CLOSED_FORMS) + tuple(_QUADRATURE_FUNCTIONS)


#: Smallest ``quadrature_points`` accepted (coarser rules are not accurate to 1e-4).
MIN_QUADRATURE_POINTS = 16
#: Largest ``quadrature_points`` accepted: the cost per kernel entry grows as its square.
MAX_QUADRATURE_POINTS = 256
#: Largest ``|negative_slope|`` accepted (its square enters the kernels).
MAX_NEGATIVE_SLOPE = 1e6


def check_negative_slope(negative_slope) -> float:
    """Validate ``negative_slope``: a finite real number with ``|slope| <= 1e6``."""
    if isinstance(negative_slope, bool) or not _is_real_scalar(negative_slope):
        raise InvalidArgumentError(f"negative_slope must be a real number; got {negative_slope!r}.")
    slope = float(negative_slope)
    if not math.isfinite(slope) or abs(slope) > MAX_NEGATIVE_SLOPE:
        raise ValueError(
            f"negative_slope must be finite with |negative_slope| <= {MAX_NEGATIVE_SLOPE:g}; "
            f"got {negative_slope!r}."
        )
    return slope


def check_quadrature_points(quadrature_points) -> int:
    """Validate ``quadrature_points``: an integer in ``[2, MAX_QUADRATURE_POINTS]``."""
    if (
        isinstance(quadrature_points, bool)
        or not isinstance(quadrature_points, (int, np.integer))
        or not MIN_QUADRATURE_POINTS <= quadrature_points <= MAX_QUADRATURE_POINTS
    ):
        raise ValueError(
            f"quadrature_points must be an integer in [{MIN_QUADRATURE_POINTS}, "
            f"{MAX_QUADRATURE_POINTS}] (the cost per "
            f"kernel entry grows as its square); got {quadrature_points!r}."
        )
    return int(quadrature_points)


def _is_real_scalar(value) -> bool:
    return np.ndim(value) == 0 and np.asarray(value).dtype.kind in "iuf"


def get_activation(
    activation: str | Callable[[jax.Array], jax.Array],
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
) -> Nonlinearity:
    """Return the (cached) :class:`Nonlinearity` for a name or an elementwise callable.

    Arguments an activation does not use are ignored, so equal activations are the same object
    (and jit-compiled kernels are not recompiled for them). A callable is checked once: it must
    be JAX-traceable, elementwise and differentiable.

    Raises
    ------
    ValueError
        For an unknown name, a callable that JAX cannot trace (``np.tanh``, Python branching on
        values), or invalid ``negative_slope`` / ``quadrature_points``.
    """
    if callable(activation):
        return _build(_CallableKey(activation), None, check_quadrature_points(quadrature_points))
    if activation in _CLOSED_FORMS:
        slope = check_negative_slope(negative_slope) if activation == "leaky_relu" else None
        return _build(activation, slope, None)
    if activation in _QUADRATURE_FUNCTIONS:
        return _build(activation, None, check_quadrature_points(quadrature_points))
    raise ValueError(
        f"Unknown activation {activation!r}; expected one of {available_activations()} "
        "or an elementwise JAX-traceable callable."
    )


class _CallableKey:
    """Cache key of a callable activation.

    A module-level function is keyed by its import path, so that copies of it (scikit-learn's
    ``clone`` deep-copies parameters, and a deep copy of a jitted function is a new object) share
    one compiled kernel; anything else (lambdas, closures) by identity.
    """

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
        named = module and qualname and "<" not in qualname
        self.key = (module, qualname) if named else id(fn)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other) -> bool:
        return isinstance(other, _CallableKey) and (
            self.key == other.key if isinstance(self.key, tuple) else self.fn is other.fn
        )


def _check_traceable(fn: Callable) -> None:
    """Refuse, with the reason, a callable that is not an elementwise JAX-traceable function."""
    probe = jax.ShapeDtypeStruct((3,), jnp.float32)
    name = getattr(fn, "__name__", repr(fn))
    try:
        # Through a Python function: JAX 0.10 segfaults when a NumPy ufunc (np.tanh) is given
        # to jax.eval_shape a second time in a process.
        out = jax.eval_shape(lambda z: fn(z), probe)
        jax.eval_shape(_derivative(fn), probe)
    except Exception as exc:  # noqa: BLE001 - any failure means the callable is unusable
        raise ValueError(
            f"activation {name!r} is not a JAX-traceable, differentiable elementwise function "
            f"({type(exc).__name__}). Use jax.numpy functions (jnp.tanh, not np.tanh) and "
            "jnp.where instead of Python if/else on values."
        ) from None
    if getattr(out, "shape", None) != (3,):
        raise ValueError(
            f"activation {name!r} must be elementwise (same output shape as its input); "
            f"it maps shape (3,) to {getattr(out, 'shape', type(out).__name__)}."
        )


@lru_cache(maxsize=256)
def _build(activation, negative_slope, quadrature_points) -> Nonlinearity:
    if isinstance(activation, _CallableKey):
        _check_traceable(activation.fn)
        return quadrature_activation(activation.fn, n_points=quadrature_points)
    if activation in _CLOSED_FORMS:
        return _CLOSED_FORMS[activation](negative_slope)
    return quadrature_activation(
        _QUADRATURE_FUNCTIONS[activation], name=activation, n_points=quadrature_points
    )
