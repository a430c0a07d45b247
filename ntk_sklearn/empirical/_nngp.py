"""``empirical_nngp``: the NNGP of one finite network of the built-in MLP, readout marginalised.

The NNGP kernel of a network is the covariance of its outputs over random initialisations,
``K(x, x') = E_θ[f_a(θ, x) f_a(θ, x')]``. One set of parameters has no distribution over
initialisations, so for an arbitrary model at ``params`` the NNGP is not defined: the product of
its outputs ``f(x)·f(x')`` has rank at most ``k`` (the number of outputs), and is not an estimate
of any kernel one could regress with. For the built-in MLP the readout layer can be integrated
out exactly: given the hidden layers, every readout unit ``f_a(x) = w_std/sqrt(n_L) · h(x)·W_a
+ b_std · b_a`` with ``W_a, b_a ~ N(0, 1)`` is a Gaussian process with covariance

    K(x, x') = E[f_a(x) f_a(x') | h] = w_std² · h(x)·h(x') / n_L + b_std² = φ(x)·φ(x'),

``φ = mlp_readout_features``, an unbiased estimate of the network's NNGP of full rank (up to
``n_L + 1``). That is what :func:`empirical_nngp` computes; other models are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn._validation import check_int
from ntk_sklearn.empirical._mlp import check_mlp_params, mlp_architecture, readout_features_fn
from ntk_sklearn.empirical._utils import (
    StaticFn,
    as_batch_pair,
    check_apply_fn,
    check_outputs,
    default_float,
    first_nonfinite_row,
)
from ntk_sklearn.kernels import _tiling

#: Rows per forward pass when ``batch_size`` is not given.
DEFAULT_BATCH_SIZE = 1024


@partial(jax.jit, static_argnames=("fn",))
def _forward(fn: StaticFn, params: Any, x: jax.Array) -> jax.Array:
    return fn(params, x).reshape(x.shape[0], -1)


def _outputs(fn: StaticFn, params: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``f(params, x)`` as ``(n, k)``, computed ``batch_size`` rows at a time."""
    b = min(batch_size, x.shape[0])
    parts = []
    for rows in _tiling.fixed_blocks(x.shape[0], b):
        out = np.asarray(_forward(fn, params, jnp.asarray(_tiling.repeat_padded(x, rows, b))))
        parts.append(out[: rows.stop - rows.start])
    return np.concatenate(parts)


def _refusal(apply_fn: Any) -> str:
    return (
        f"empirical_nngp is defined only for the built-in MLP (the apply_fn of init_mlp or "
        f"mlp_apply_fn); got {apply_fn!r}. The NNGP kernel is the covariance of a network's "
        "outputs over random initialisations, E_θ[f(θ, x) f(θ, x')]: a single set of params "
        "of your model has no distribution over initialisations, so its NNGP is not defined, "
        "and the product of one network's outputs f(x)·f(x') (what this function returned "
        "before) has rank at most the number of outputs, a poor kernel to regress with. Use "
        "empirical_ntk(apply_fn, params, x1, x2), the kernel of your model at params, or "
        "monte_carlo_kernel(..., get='nngp') (kernel='empirical' in the estimators), the NNGP "
        "of the built-in MLP averaged over initialisations."
    )


def empirical_nngp(
    apply_fn: Callable[[Any, jax.Array], jax.Array],
    params: Any,
    x1,
    x2=None,
    *,
    outputs: str = "mean",
    batch_size: int | None = None,
) -> np.ndarray:
    r"""Empirical NNGP kernel of one network of the built-in MLP, readout layer marginalised.

    The NNGP is the covariance of a network's outputs over random initialisations. For the
    built-in MLP (:func:`~ntk_sklearn.empirical.init_mlp`) with hidden layers ``params[:-1]``
    and last hidden layer ``h`` (``n_L`` units; ``x`` itself with no hidden layer), the readout
    layer is integrated out exactly: every readout unit ``a`` has, over its weights and bias,

        K(x, x') = E[f_a(x) f_a(x') | h] = w_std² · h(x)·h(x') / n_L + b_std²,

    the same for all units, independent across units. Over the hidden layers' initialisation
    ``E[K]`` is the NNGP of a network of that width: exactly ``fc_kernel(...).nngp`` with one
    hidden layer (or none), up to ``O(1/width)`` for deeper ones; averaging over
    initialisations is :func:`~ntk_sklearn.empirical.monte_carlo_kernel`. The values of the
    readout layer ``params[-1]`` are not used (only its number of units ``k``).

    Other models are refused with a ``ValueError``: a single set of parameters has no
    distribution over initialisations, so a user's model at ``params`` has no NNGP (the
    product of its outputs has rank at most ``k``). Use
    :func:`~ntk_sklearn.empirical.empirical_ntk` for such a model.

    Parameters
    ----------
    apply_fn : callable
        The ``apply_fn`` of the built-in MLP, from :func:`~ntk_sklearn.empirical.init_mlp` or
        :func:`~ntk_sklearn.empirical.mlp_apply_fn` (it carries the architecture: activation,
        ``w_std``, ``b_std``), or its :func:`~ntk_sklearn.empirical.mlp_readout_features_fn`.
    params : list of dict
        The network's parameters (:func:`~ntk_sklearn.empirical.mlp_init`).
    x1 : array-like of shape (n1, n_features)
    x2 : array-like of shape (n2, n_features), default=None
        ``None`` means ``x1``.
    outputs : {"mean", "sum", "full"}, default="mean"
        ``"mean"``: the kernel per readout unit, ``K``. ``"sum"``: ``k · K``. ``"full"``:
        shape ``(n1, n2, k, k)``, ``K`` on the diagonal of the output axes and 0 off it.
    batch_size : int, default=None
        Rows per forward pass (default 1024).

    Returns
    -------
    ndarray
        In the network's computation dtype.

    Raises
    ------
    ValueError
        For any ``apply_fn`` but the built-in MLP's (the message explains why), parameters
        that are not the MLP's layers or do not match the inputs' number of features, invalid
        inputs, ``outputs`` or ``batch_size``.
    MemoryError
        Before allocating a kernel or features that exceed the available memory.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.empirical import empirical_nngp, init_mlp, mlp_readout_features
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 3, depth=1, width=64, b_std=0.1)
    >>> x = np.random.default_rng(0).normal(size=(4, 3))
    >>> k = empirical_nngp(f, params, x)
    >>> phi = np.asarray(mlp_readout_features(params, x, b_std=0.1))
    >>> bool(np.allclose(k, phi @ phi.T, rtol=1e-5))
    True
    """
    check_apply_fn(apply_fn)
    arch = mlp_architecture(apply_fn)
    if arch is None:
        raise ValueError(_refusal(apply_fn))
    check_outputs(outputs)
    batch_size = None if batch_size is None else check_int(batch_size, "batch_size", low=1)
    x1, x2 = as_batch_pair(x1, x2)
    if x1.ndim != 2:
        raise ValueError(f"x1 must be a 2-D array (n_samples, n_features); got shape {x1.shape}.")
    check_mlp_params(params, x1.shape[1])
    k = int(np.shape(params[-1]["W"])[1])
    n1, n2 = x1.shape[0], x1.shape[0] if x2 is None else x2.shape[0]
    n_features = int(np.shape(params[-1]["W"])[0]) + 1  # φ = [w_std h / sqrt(n_L), b_std]
    itemsize = default_float().itemsize
    kk = k * k if outputs == "full" else 1
    check_memory(
        (n1 * n2 * kk + (n1 + n2) * n_features) * itemsize,
        f"The empirical NNGP ({n1} × {n2} × {kk}, features of {n_features} units)",
        "Pass fewer inputs, a narrower network, or outputs='mean' instead of 'full'.",
    )
    fn = StaticFn(readout_features_fn(arch))
    b = batch_size or DEFAULT_BATCH_SIZE
    f1 = _outputs(fn, params, x1, b)
    f2 = f1 if x2 is None else _outputs(fn, params, x2, b)
    for name, features in (("x1", f1), ("x2", f2)):
        bad = first_nonfinite_row(features)
        if bad is not None:
            raise ValueError(
                f"The network's last hidden layer is NaN or infinite on row {bad} of {name} "
                "(overflow?): scale the inputs (e.g. NormScaler) or use smaller w_std/b_std."
            )
    kernel = f1 @ f2.T  # φ(x)·φ(x') = w_std² h(x)·h(x') / n_L + b_std²
    if outputs == "full":
        return np.einsum("ij,ac->ijac", kernel, np.eye(k, dtype=kernel.dtype))
    return kernel * k if outputs == "sum" else kernel
