"""Training finite networks and measuring how lazily they train (pure JAX).

* :func:`train_gd`: full-batch gradient descent on ``0.5 · mean((f(x) − y)²)``, recording
  losses and outputs; :class:`Trajectory` holds what it recorded.
* :func:`linearize`: the first-order Taylor model ``f(θ0, x) + J(θ0, x)(θ − θ0)``.
* :func:`lazy_training_kappa`, :func:`lazy_training_norms`: the lazy-training criterion
  ``κ = ‖y(w0) − ȳ‖ ‖∇²y(w0)‖ / ‖∇y(w0)‖²`` of Chizat, Oyallon & Bach (2019).
* :func:`ntk_fluctuation`: the predicted (1/n effective theory) and measured relative deviation
  of the built-in MLP's NTK at initialisation from the infinite-width limit.
"""

from ntk_sklearn.training._fluctuation import NTKFluctuation, ntk_fluctuation
from ntk_sklearn.training._gd import Trajectory, mse_loss, train_gd
from ntk_sklearn.training._lazy import LazyNorms, lazy_training_kappa, lazy_training_norms
from ntk_sklearn.training._linearize import linearize

__all__ = [
    "LazyNorms",
    "NTKFluctuation",
    "Trajectory",
    "lazy_training_kappa",
    "lazy_training_norms",
    "linearize",
    "mse_loss",
    "ntk_fluctuation",
    "train_gd",
]
