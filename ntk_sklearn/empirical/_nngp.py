"""``empirical_nngp``: the output (or feature) covariance of one finite network."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import numpy as np

from ntk_sklearn.empirical._utils import (
    StaticFn,
    as_batch_pair,
    check_apply_fn,
    check_outputs,
    check_positive_int,
    output_info,
    padded_block,
    row_blocks,
)

#: Rows per forward pass when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = 1024


@partial(jax.jit, static_argnames=("fn",))
def _forward(fn: StaticFn, params: Any, x: jax.Array) -> jax.Array:
    return fn(params, x).reshape(x.shape[0], -1)


def _outputs(fn: StaticFn, params: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``f(params, x)`` as ``(n, k)``, computed ``batch_size`` rows at a time."""
    b = min(batch_size, x.shape[0])
    parts = []
    for rows in row_blocks(x.shape[0], b):
        out = np.asarray(_forward(fn, params, padded_block(x, rows, b)))
        parts.append(out[: rows.stop - rows.start])
    return np.concatenate(parts)


def empirical_nngp(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x1,
    x2=None,
    *,
    outputs: str = "mean",
    batch_size: int | None = None,
) -> np.ndarray:
    r"""Empirical NNGP kernel: the product of one network's outputs (or features).

    With ``f(x) ∈ R^k`` the outputs of ``apply_fn(params, x)`` (trailing axes flattened)::

        K(x, x') = (1/k) Σ_a f_a(x) f_a(x')       (outputs="mean")
        K(x, x') = Σ_a f_a(x) f_a(x')             (outputs="sum")
        K(x, x')[a, c] = f_a(x) f_c(x')           (outputs="full")

    For the built-in MLP (:func:`~ntk_sklearn.empirical.init_mlp`) with freshly drawn
    parameters, every readout unit is ``f_a(x) = w_std/sqrt(n_L) · h(x)·W_a + b_std · b_a``
    (``h`` the last hidden layer, width ``n_L``), so that over initialisations

        E[K(x, x')] = w_std² · E[h(x)·h(x')] / n_L + b_std²,

    the NNGP per output unit of a network of that width: exactly ``fc_kernel(...).nngp`` with
    one hidden layer (or none), and up to an ``O(1/width)`` finite-width correction for deeper
    ones. Averaging over initialisations is :func:`~ntk_sklearn.empirical.monte_carlo_kernel`.
    ``apply_fn`` may as well be a feature map ``φ(params, x)``; ``"mean"`` then gives
    ``φ(x)·φ(x')/n_features``.

    Parameters
    ----------
    apply_fn : callable
        ``apply_fn(params, x) -> (n,)`` or ``(n, ...)``.
    params : pytree
    x1 : array-like of shape (n1, ...)
    x2 : array-like of shape (n2, ...), default=None
        ``None`` means ``x1``.
    outputs : {"mean", "sum", "full"}, default="mean"
        How output units are combined; ``"full"`` gives ``(n1, n2, k, k)``, or ``(n1, n2)`` for
        1-D outputs.
    batch_size : int, default=None
        Rows per forward pass (default 1024).

    Returns
    -------
    ndarray
        In the model's computation dtype.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.empirical import empirical_nngp, init_mlp
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 3, depth=1, width=64, n_outputs=2)
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> k = empirical_nngp(f, params, x)
    >>> out = np.asarray(f(params, x))
    >>> bool(np.allclose(k, out @ out.T / 2, rtol=1e-5))
    True
    """
    check_apply_fn(apply_fn)
    check_outputs(outputs)
    batch_size = check_positive_int(batch_size, "batch_size", allow_none=True)
    x1, x2 = as_batch_pair(x1, x2)
    k, scalar = output_info(apply_fn, params, x1)
    fn = StaticFn(apply_fn)
    b = batch_size or DEFAULT_BATCH_SIZE
    f1 = _outputs(fn, params, x1, b)
    f2 = f1 if x2 is None else _outputs(fn, params, x2, b)
    if outputs == "full":
        return f1 @ f2.T if scalar else np.einsum("ia,jc->ijac", f1, f2)
    trace = f1 @ f2.T
    return trace / k if outputs == "mean" else trace
