"""Solvers for the training-kernel systems of the gradient-flow dynamics (pure NumPy/JAX).

A solver applies ``A_t = K⁻¹ (I - e^{-r t K})`` (``A_∞ = K⁻¹``) of a training kernel ``K`` to
blocks of columns: ``Solver.fit(K, rate).apply(B, t)``. :class:`CholeskySolver` and
:class:`EighSolver` factorize ``K`` once (``O(n³)``, ``n²`` memory); :class:`CGSolver` needs only
products with ``K`` (preconditioned CG at ``t=None``, Lanczos at finite ``t``) and keeps a
row-sharded kernel on its devices. :func:`choose_solver` and :func:`solver_memory` plan a fit.
"""

from ntk_sklearn.solvers._base import (
    SOLVER_NAMES,
    Solver,
    choose_solver,
    solver_memory,
)
from ntk_sklearn.solvers._cg import CGSolver
from ntk_sklearn.solvers._direct import CholeskySolver, EighSolver
from ntk_sklearn.solvers._expm import lanczos_gain
from ntk_sklearn.solvers._jitter import JITTERS, cholesky_with_jitter
from ntk_sklearn.solvers._preconditioners import (
    LowRankPreconditioner,
    build_preconditioner,
    nystrom_factor,
    pivoted_cholesky,
)
from ntk_sklearn.solvers._sharding import shard_rows

__all__ = [
    "SOLVER_NAMES",
    "CGSolver",
    "JITTERS",
    "CholeskySolver",
    "EighSolver",
    "LowRankPreconditioner",
    "Solver",
    "build_preconditioner",
    "cholesky_with_jitter",
    "choose_solver",
    "lanczos_gain",
    "make_fit_solver",
    "make_solver",
    "nystrom_factor",
    "pivoted_cholesky",
    "shard_rows",
    "solver_memory",
]


def make_solver(name: str, **params) -> Solver:
    """A solver by name (one of :data:`SOLVER_NAMES`), constructed with ``params``.

    Examples
    --------
    >>> from ntk_sklearn.solvers import make_solver
    >>> make_solver("cg", rank=50)
    CGSolver(tol=1e-06, max_iter=None, preconditioner='nystrom', rank=50)
    """
    solvers = {"cholesky": CholeskySolver, "eigh": EighSolver, "cg": CGSolver}
    if name in solvers:
        return solvers[name](**params)
    raise ValueError(f"name must be one of {SOLVER_NAMES}; got {name!r}.")


def make_fit_solver(
    name: str, t: float | None, alpha: float, *, tol: float, rank: int, max_iter, verbose
) -> Solver:
    """The unfitted solver of an estimator's fit: ``name`` from :func:`choose_solver`.

    A direct solver factorizes by Cholesky at ``t=None`` and by eigendecomposition (null space
    dropped, see :mod:`ntk_sklearn.dynamics`) at a finite ``t``; ``"cg"`` is CG at ``t=None``
    and Lanczos at a finite ``t``, with ``tol``, ``rank``, ``max_iter`` and ``verbose``.
    """
    if name == "cg":
        return CGSolver(tol=tol, max_iter=max_iter, rank=rank, verbose=verbose, alpha=alpha)
    if t is None:
        return CholeskySolver(alpha=alpha)
    return EighSolver(null_space="drop", alpha=alpha)
