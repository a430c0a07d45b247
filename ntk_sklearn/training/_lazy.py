"""The lazy-training criterion of Chizat, Oyallon & Bach (2019), "On lazy training in
differentiable programming" (NeurIPS):

    κ(w0) = ‖y(w0) − ȳ‖ · ‖∇²y(w0)‖ / ‖∇y(w0)‖²

with ``y(w) ∈ R^{n·k}`` the model's outputs on the training inputs (flattened), ``ȳ`` the
targets, ``‖∇y‖`` the operator (spectral) norm of the Jacobian ``J = ∂y/∂w`` and ``‖∇²y‖`` the
operator norm of the second derivative, the symmetric bilinear map ``D²y: R^P × R^P → R^{nk}``:

    ‖∇²y‖ = max_{‖u‖=‖v‖=1} ‖D²y[u, v]‖ = max_{‖u‖=1} ‖D²y[u, u]‖ = max_{‖c‖=1} ‖∇²(cᵀy)‖_op.

(The equalities hold for symmetric bilinear maps: ``c ↦ ∇²(cᵀy)`` are symmetric matrices.)
Small κ means the model trains "lazily", close to its linearisation. For the rescaled model
``y_α(w) = α (y(w) − y(w0))`` (``center=True``) with fixed targets, ``‖∇y_α‖ = α‖∇y‖``,
``‖∇²y_α‖ = α‖∇²y‖`` and ``y_α(w0) = 0``, so ``κ_α = ‖ȳ‖ · ‖∇²y‖ / (α ‖∇y‖²)``: κ/α up to the
residual. Without centring, ``y_α = α y`` and the residual is ``‖α y(w0) − ȳ‖``.

Both norms come from matrix-free power iterations (Jacobian-, vector-Jacobian- and
Hessian-vector products; nothing of size ``P × P`` or ``nk × P`` is built):

* ``‖J‖``: power iteration on ``Jᵀ J`` (``v ← Jᵀ J v / ‖Jᵀ J v‖``); the estimate ``‖J v‖``.
* ``‖∇²y‖``: the alternating (higher-order) power method for ``max cᵀ D²y[u, v]`` over unit
  ``c, u, v``: ``c ← D²y[u, v] / ‖·‖`` (jvp of jvp), ``u ← H_c v / ‖·‖``, ``v ← H_c u / ‖·‖``
  with ``H_c = ∇²(cᵀy)`` applied by Hessian-vector products (vjp of jvp). With one output this is
  power iteration on ``H²``, which converges to the largest ``|eigenvalue|`` even when ``±λ``
  are both eigenvalues (common: the cross-layer blocks of a network's Hessian). The estimate is
  the largest ``‖D²y[u, v]‖`` met, a lower bound on the norm that is exact when the iteration
  reaches the global maximiser (as power iteration does from a generic start).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ntk_sklearn._validation import check_int
from ntk_sklearn.empirical._utils import (
    StaticFn,
    as_batch,
    as_key,
    check_apply_fn,
    check_params,
    probe_model,
)


class LazyNorms(NamedTuple):
    """Norms entering the lazy-training criterion, at the parameters given.

    Attributes
    ----------
    jacobian_norm : float
        ``‖∇y(w0)‖``, the spectral norm of the Jacobian of the flattened training outputs.
    hessian_norm : float
        ``‖∇²y(w0)‖ = max_{‖u‖=‖v‖=1} ‖D²y(w0)[u, v]‖`` (power-method estimate, a lower bound).
    outputs : ndarray
        ``y(w0)``, the model's outputs on the training inputs.
    """

    jacobian_norm: float
    hessian_norm: float
    outputs: np.ndarray


def _normalise(v: jax.Array) -> jax.Array:
    return v / jnp.maximum(jnp.linalg.norm(v), jnp.finfo(v.dtype).tiny)


@partial(jax.jit, static_argnames=("fn",))
def _norms(fn: StaticFn, params: Any, x: jax.Array, key: jax.Array, n_iter: int):
    w0, unravel = ravel_pytree(params)

    def y(w):  # flattened training outputs
        return fn(unravel(w), x).reshape(-1)

    outputs, jvp_fn = jax.linearize(y, w0)  # v ↦ J v
    vjp_fn = jax.linear_transpose(jvp_fn, w0)  # c ↦ Jᵀ c
    key_j, key_h = jax.random.split(key)

    # ‖J‖: power iteration on JᵀJ.
    def jac_step(_, v):
        return _normalise(vjp_fn(jvp_fn(v))[0])

    v = jax.lax.fori_loop(
        0, n_iter, jac_step, _normalise(jax.random.normal(key_j, w0.shape, w0.dtype))
    )
    jacobian_norm = jnp.linalg.norm(jvp_fn(v))

    # ‖∇²y‖: alternating (higher-order) power method on the bilinear map D²y.
    def directional(w, u):  # D y(w)[u]
        return jax.jvp(y, (w,), (u,))[1]

    def second(u, v):  # D²y(w0)[u, v]
        return jax.jvp(lambda w: directional(w, u), (w0,), (v,))[1]

    def hvp(c, v):  # ∇²(cᵀy)(w0) v = ∇_w (cᵀ D y(w)[v]) at w0
        return jax.vjp(lambda w: directional(w, v), w0)[1](c)[0]

    def hess_step(_, state):
        u, v, best = state
        d2 = second(u, v)
        best = jnp.maximum(best, jnp.linalg.norm(d2))
        c = _normalise(d2)
        u = _normalise(hvp(c, v))
        return u, _normalise(hvp(c, u)), best

    key_u, key_v = jax.random.split(key_h)
    u0 = _normalise(jax.random.normal(key_u, w0.shape, w0.dtype))
    v0 = _normalise(jax.random.normal(key_v, w0.shape, w0.dtype))
    state = (u0, v0, jnp.zeros((), w0.dtype))
    u, v, best = jax.lax.fori_loop(0, n_iter, hess_step, state)
    hessian_norm = jnp.maximum(best, jnp.linalg.norm(second(u, v)))
    return jacobian_norm, hessian_norm, outputs


def lazy_training_norms(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x,
    *,
    n_iter: int = 50,
    random_state: Any = 0,
) -> LazyNorms:
    """Operator norms of the first and second derivatives of the training outputs.

    See :func:`lazy_training_kappa` for the definitions and the power methods used.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> outputs``, twice differentiable in ``params``.
    params : pytree
        Parameters ``w0`` at which the derivatives are taken.
    x : array-like of shape (n, ...)
        Training inputs.
    n_iter : int, default=50
        Iterations of each power method.
    random_state : int, numpy Generator/RandomState, JAX key or None, default=0
        Seeds the start vectors of the power methods.

    Returns
    -------
    LazyNorms

    Examples
    --------
    >>> import jax.numpy as jnp, numpy as np
    >>> from ntk_sklearn.training import lazy_training_norms
    >>> f = lambda p, x: p["a"] * x + p["b"] * x**2   # linear in the parameters
    >>> norms = lazy_training_norms(f, {"a": 1.0, "b": 2.0}, jnp.array([3.0, 4.0]))
    >>> round(norms.jacobian_norm, 3), norms.hessian_norm   # ‖[[3, 9], [4, 16]]‖, 0
    (19.016, 0.0)
    """
    check_apply_fn(apply_fn)
    n_iter = check_int(n_iter, "n_iter", low=1)
    check_params(params)
    x = as_batch(x, "x")
    probe_model(apply_fn, params, x, "x")
    jac, hess, outputs = _norms(
        StaticFn(apply_fn), params, jnp.asarray(x), as_key(random_state), n_iter
    )
    outputs = np.asarray(outputs)
    if not (np.isfinite(outputs).all() and np.isfinite(float(jac)) and np.isfinite(float(hess))):
        raise ValueError(
            "apply_fn(params, x), or its first or second derivative in params, is NaN or "
            "infinite on x: the norms are undefined. Check the model and params on these inputs."
        )
    return LazyNorms(float(jac), float(hess), outputs)


def lazy_training_kappa(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x,
    y,
    *,
    alpha: float | np.ndarray = 1.0,
    center: bool = True,
    n_iter: int = 50,
    random_state: Any = 0,
) -> float | np.ndarray:
    r"""Lazy-training criterion ``κ`` of Chizat, Oyallon & Bach (2019) for the rescaled model.

    With ``y(w)`` the flattened outputs of ``apply_fn(w, x)`` on the training inputs and
    ``ȳ`` the targets, the rescaled model is ``y_α(w) = α (y(w) − y(w0))`` (``center=True``, the
    centred model, whose initial output is 0) or ``y_α(w) = α y(w)`` and

        κ_α(w0) = ‖y_α(w0) − ȳ‖ · ‖∇²y_α(w0)‖ / ‖∇y_α(w0)‖²
                = ‖y_α(w0) − ȳ‖ · ‖∇²y(w0)‖ / (α ‖∇y(w0)‖²),

    ``‖∇y‖`` the spectral norm of the Jacobian (power iteration on ``JᵀJ``) and ``‖∇²y‖ =
    max_{‖u‖=‖v‖=1} ‖D²y[u, v]‖ = max_{‖u‖=1} ‖D²y[u, u]‖`` the operator norm of the second
    derivative (alternating power method with Hessian-vector products; a lower bound, exact at
    convergence to the global maximiser). With centring ``κ_α = κ_1 / α``. Small κ: the model
    stays close to its linearisation while it fits the targets ("lazy training").

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> outputs``.
    params : pytree
        Initial parameters ``w0``.
    x : array-like of shape (n, ...)
        Training inputs.
    y : array-like
        Targets, as many entries as the outputs.
    alpha : float or array-like, default=1.0
        Output scale(s) (> 0); an array gives one κ per value.
    center : bool, default=True
        Subtract the initial outputs (``y_α(w0) = 0``).
    n_iter : int, default=50
        Iterations of each power method.
    random_state : int, numpy Generator/RandomState, JAX key or None, default=0
        Seeds the power methods' start vectors.

    Returns
    -------
    float or ndarray
        ``κ_α``, one value per ``alpha``.

    Raises
    ------
    ValueError
        For a non-positive ``alpha``, targets whose size differs from the outputs',
        ``n_iter < 1``, inputs the model cannot run on, or non-finite outputs or derivatives.
    TypeError
        For an ``alpha`` or ``y`` that is not numeric (e.g. the string ``'1'``), or integer
        parameters.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.empirical import init_mlp
    >>> from ntk_sklearn.training import lazy_training_kappa
    >>> x = np.linspace(-1, 1, 6).reshape(-1, 1)
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 1, depth=1, width=32, activation="tanh")
    >>> kappa = lazy_training_kappa(f, params, x, np.sin(3 * x), alpha=[1.0, 10.0])
    >>> bool(np.isclose(kappa[1], kappa[0] / 10))
    True
    """
    if isinstance(alpha, (str, bytes)) or np.asarray(alpha).dtype.kind not in "iuf":
        raise TypeError(f"alpha must be a number or an array of numbers; got {alpha!r}.")
    if not isinstance(center, (bool, np.bool_)):
        raise TypeError(f"center must be True or False; got {center!r}.")
    alphas = np.asarray(alpha, dtype=float)
    if not np.all(np.isfinite(alphas)) or np.any(alphas <= 0):
        raise ValueError(f"alpha must be finite and > 0; got {alpha!r}.")
    norms = lazy_training_norms(apply_fn, params, x, n_iter=n_iter, random_state=random_state)
    if np.asarray(y).dtype.kind not in "biuf":
        raise TypeError(f"y must be a numeric array; got dtype {np.asarray(y).dtype}.")
    targets = np.asarray(y, dtype=float).reshape(-1)
    if targets.size != norms.outputs.size or not np.all(np.isfinite(targets)):
        raise ValueError(
            f"y must hold {norms.outputs.size} finite targets (one per output entry); "
            f"got shape {np.shape(y)}."
        )
    initial = np.zeros_like(targets) if center else norms.outputs.astype(float)
    residual = np.linalg.norm(alphas[..., None] * initial - targets, axis=-1)
    kappa = residual * norms.hessian_norm / (alphas * norms.jacobian_norm**2)
    return float(kappa) if kappa.ndim == 0 else kappa
