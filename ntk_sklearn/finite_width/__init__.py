"""Finite-width corrections: the 1/n statistics of the empirical NNGP and NTK (pure JAX).

* :func:`finite_width_statistics`: mean and covariance over random initialisations of a
  fully-connected network's empirical NNGP and NTK, to order 1/n in the widths (the effective
  theory of Roberts, Yaida & Hanin 2022 and Hanin & Nica 2019).
* :class:`FiniteWidthStatistics`: what it returns.
"""

from ntk_sklearn.finite_width._statistics import FiniteWidthStatistics, finite_width_statistics

__all__ = ["FiniteWidthStatistics", "finite_width_statistics"]
