"""How far a finite network's NTK at initialisation is from the infinite-width limit.

For the built-in MLP (:func:`~ntk_sklearn.empirical.init_mlp`) this sets the 1/n prediction of
:func:`~ntk_sklearn.finite_width.finite_width_statistics` next to the measurement on the network
at hand, in the units of the lazy-training measurements (relative Frobenius norms on the
training inputs, like ``‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F``):

    predicted_relative_std  = sqrt(Σ_ab Var[Θ̂_ab]) / ‖Θ‖_F    (typical ‖Θ̂ − E Θ̂‖_F / ‖Θ‖_F)
    predicted_relative_bias = ‖E Θ̂ − Θ‖_F / ‖Θ‖_F              (the 1/n shift of the mean)
    measured_relative_deviation = ‖Θ̂(w0) − Θ‖_F / ‖Θ‖_F        (this initialisation)

``Θ`` is the infinite-width NTK (``fc_kernel``), ``Θ̂`` the empirical NTK of the first output
unit. ``E‖Θ̂ − Θ‖²_F = Σ Var + ‖bias‖²``, so the measured deviation is typically
``sqrt(std² + bias²)``; the std shrinks like ``width^(-1/2)`` and grows like
``sqrt(depth)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from ntk_sklearn.empirical import empirical_ntk
from ntk_sklearn.empirical._mlp import check_mlp_params, mlp_architecture
from ntk_sklearn.empirical._utils import as_batch
from ntk_sklearn.finite_width import finite_width_statistics
from ntk_sklearn.kernels import fc_kernel


class NTKFluctuation(NamedTuple):
    """Predicted and measured deviation of the NTK at initialisation from its limit.

    Attributes
    ----------
    predicted_relative_std : float
        ``sqrt(Σ_ab Var[Θ̂_ab]) / ‖Θ‖_F`` to order 1/n.
    predicted_relative_bias : float
        ``‖E Θ̂ − Θ‖_F / ‖Θ‖_F`` to order 1/n.
    measured_relative_deviation : float
        ``‖Θ̂(w0) − Θ‖_F / ‖Θ‖_F`` for the parameters given.
    widths : tuple of int
        Hidden widths read from the parameters.
    """

    predicted_relative_std: float
    predicted_relative_bias: float
    measured_relative_deviation: float
    widths: tuple[int, ...]


def ntk_fluctuation(
    apply_fn: Callable[[Any, jax.Array], jax.Array], params: Any, x
) -> NTKFluctuation:
    """Predicted relative fluctuation of a built-in MLP's NTK at initialisation, and the measured.

    Parameters
    ----------
    apply_fn : callable
        The ``apply_fn`` of :func:`~ntk_sklearn.empirical.init_mlp` (or
        :func:`~ntk_sklearn.empirical.mlp_apply_fn`): its architecture (activation, ``w_std``,
        ``b_std``) is read from it.
    params : list of dict
        Its parameters, from which the hidden widths are read.
    x : array-like of shape (n, n_features)
        Training inputs (the covariances are computed pair by pair, so any ``n`` works).

    Returns
    -------
    NTKFluctuation

    Raises
    ------
    ValueError
        For a model that is not the built-in MLP, one without hidden layers, or invalid inputs.

    Examples
    --------
    >>> import jax, numpy as np
    >>> from ntk_sklearn.empirical import init_mlp
    >>> from ntk_sklearn.training import ntk_fluctuation
    >>> x = np.linspace(-1, 1, 4).reshape(-1, 1)
    >>> params, f = init_mlp(jax.random.PRNGKey(0), 1, depth=2, width=256, activation="erf")
    >>> fl = ntk_fluctuation(f, params, x)
    >>> fl.widths, bool(0.0 < fl.predicted_relative_std < 0.5)
    ((256, 256), True)
    """
    architecture = mlp_architecture(apply_fn)
    if architecture is None:
        raise ValueError(
            "ntk_fluctuation needs the built-in MLP (apply_fn from init_mlp or mlp_apply_fn): "
            "the prediction is for fully-connected networks in NTK parameterization."
        )
    activation, w_std, b_std, negative_slope = architecture
    x = as_batch(x, "x")
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (n_samples, n_features); got shape {x.shape}.")
    check_mlp_params(params, x.shape[1])
    widths = tuple(int(layer["b"].shape[0]) for layer in params[:-1])
    if not widths:
        raise ValueError("The network has no hidden layer: its NTK does not fluctuate.")
    stats = finite_width_statistics(
        x,
        depth=len(widths),
        width=widths,
        activation=activation,
        w_std=w_std,
        b_std=b_std,
        negative_slope=negative_slope,
        covariance="diagonal",
    )
    with jax.enable_x64(np.asarray(x).dtype == np.float64):
        limit = np.asarray(
            fc_kernel(
                x,
                depth=len(widths),
                activation=activation,
                w_std=w_std,
                b_std=b_std,
                negative_slope=negative_slope,
                get="ntk",
            ),
            dtype=np.float64,
        )
    ntk0 = np.asarray(empirical_ntk(apply_fn, params, x, outputs="full"), dtype=np.float64)
    ntk0 = ntk0[:, :, 0, 0] if ntk0.ndim == 4 else ntk0  # the first output unit
    norm = np.linalg.norm(limit)
    return NTKFluctuation(
        float(np.sqrt(stats.ntk_var.sum()) / norm),
        float(np.linalg.norm(stats.ntk_mean - stats.ntk) / norm),
        float(np.linalg.norm(ntk0 - limit) / norm),
        widths,
    )
