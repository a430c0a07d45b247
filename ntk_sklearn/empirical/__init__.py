"""Finite-width (empirical) kernels of JAX models (pure JAX; no scikit-learn).

* :func:`empirical_ntk`: ``Θ(x1, x2) = J(x1)·J(x2)ᵀ`` of any ``apply_fn(params, x)``, by
  Jacobian contraction or NTK-vector products, batched.
* :func:`empirical_nngp`: the NNGP of one network of the built-in MLP, readout layer
  marginalised (other models have no NNGP at a single set of params: refused, with the reason).
* :func:`init_mlp`, :func:`mlp_init`, :func:`mlp_init_numpy`, :func:`mlp_apply`,
  :func:`mlp_apply_fn`, :func:`mlp_readout_features`, :func:`mlp_readout_features_fn`: the
  built-in MLP in NTK parameterization, the finite counterpart of
  :func:`~ntk_sklearn.kernels.fc_kernel`.
* :func:`monte_carlo_kernel`: NNGP and NTK of that MLP averaged over random initialisations.
"""

from ntk_sklearn.empirical._mlp import (
    init_mlp,
    mlp_apply,
    mlp_apply_fn,
    mlp_init,
    mlp_init_numpy,
    mlp_readout_features,
    mlp_readout_features_fn,
)
from ntk_sklearn.empirical._monte_carlo import monte_carlo_kernel
from ntk_sklearn.empirical._nngp import empirical_nngp
from ntk_sklearn.empirical._ntk import empirical_ntk, estimate_ntk_cost

__all__ = [
    "empirical_nngp",
    "empirical_ntk",
    "estimate_ntk_cost",
    "init_mlp",
    "mlp_apply",
    "mlp_apply_fn",
    "mlp_init",
    "mlp_init_numpy",
    "mlp_readout_features",
    "mlp_readout_features_fn",
    "monte_carlo_kernel",
]
