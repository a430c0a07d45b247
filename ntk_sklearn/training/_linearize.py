"""The first-order Taylor model of a network around its initial parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from ntk_sklearn.empirical._utils import check_apply_fn, check_params


def linearize(
    apply_fn: Callable[[Any, jax.Array], jax.Array], params0: Any
) -> Callable[[Any, jax.Array], jax.Array]:
    r"""First-order Taylor expansion of ``apply_fn`` in its parameters around ``params0``.

    Returns ``f_lin`` with

        f_lin(θ, x) = f(θ0, x) + J(θ0, x) · (θ − θ0),       J = ∂f/∂θ,

    evaluated with one Jacobian-vector product (``jax.jvp``), never building ``J``. Its NTK is
    the NTK of ``apply_fn`` at ``params0`` for every ``θ``; trained by gradient descent on the
    mean squared error it follows the kernel dynamics exactly (Lee et al. 2019).

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> outputs``.
    params0 : pytree
        Expansion point.

    Returns
    -------
    callable
        ``f_lin(params, x)``, JAX-traceable (jit, grad, :func:`~ntk_sklearn.training.train_gd`,
        :func:`~ntk_sklearn.empirical.empirical_ntk`).

    Examples
    --------
    >>> import jax, jax.numpy as jnp
    >>> from ntk_sklearn.training import linearize
    >>> f = lambda p, x: jnp.sin(p["a"] * x)
    >>> f_lin = linearize(f, {"a": 1.0})
    >>> round(float(f_lin({"a": 1.1}, jnp.array(2.0))), 4)  # sin(2) + 2 cos(2) · 0.1
    0.8261
    """
    check_apply_fn(apply_fn)
    check_params(params0)

    def f_lin(params: Any, x: jax.Array) -> jax.Array:
        delta = jax.tree_util.tree_map(lambda p, p0: p - p0, params, params0)
        f0, df = jax.jvp(lambda p: apply_fn(p, x), (params0,), (delta,))
        return f0 + df

    return f_lin
