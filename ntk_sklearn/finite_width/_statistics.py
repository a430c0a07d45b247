"""``finite_width_statistics``: the 1/n mean and covariance of a finite network's kernels."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn._validation import as_matrix, check_int, check_scalar
from ntk_sklearn.finite_width._recursion import LayerState, layer_step, output_covariance, run
from ntk_sklearn.kernels import get_activation

#: Largest number of inputs for ``covariance="full"``: the (N, N, N, N) tensors take a
#: four-dimensional quadrature per pair of input pairs, ``(N(N+1)/2)²`` of them per layer.
MAX_FULL_INPUTS = 6
#: Pairs of inputs per batch of the ``covariance="diagonal"`` recursion.
_PAIR_BATCH = 2048
#: N⁴-sized float64 arrays alive at once in one ``"full"`` layer step (measured bound).
_FULL_ARRAYS = 40


@dataclass(frozen=True)
class FiniteWidthStatistics:
    """Mean and covariance over random initialisations of a width-n network's kernels.

    All to order 1/n (``1/n`` is ``1/width`` of each hidden layer; the corrections add the layers'
    contributions). Arrays are NumPy float64.

    Attributes
    ----------
    nngp, ntk : ndarray of shape (N, N)
        The infinite-width kernels (``fc_kernel``).
    nngp_mean, ntk_mean : ndarray of shape (N, N)
        ``E[K̂]`` and ``E[Θ̂]``: the limit plus its 1/n correction.
    nngp_var, ntk_var : ndarray of shape (N, N)
        ``Var[K̂(a, b)]`` and ``Var[Θ̂(a, b)]`` for every entry.
    nngp_cov, ntk_cov : ndarray of shape (N, N, N, N) or None
        ``Cov[K̂(a, b), K̂(c, d)]`` (the four-point vertex divided by n) and its NTK counterpart;
        None with ``covariance="diagonal"``.
    widths : tuple of int
        The hidden layers' widths.
    """

    nngp: np.ndarray
    ntk: np.ndarray
    nngp_mean: np.ndarray
    ntk_mean: np.ndarray
    nngp_var: np.ndarray
    ntk_var: np.ndarray
    nngp_cov: np.ndarray | None
    ntk_cov: np.ndarray | None
    widths: tuple[int, ...]

    @property
    def ntk_relative_std(self) -> np.ndarray:
        """``sqrt(Var[Θ̂(a, b)]) / |Θ(a, b)|``: the relative fluctuation of each NTK entry."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.sqrt(np.maximum(self.ntk_var, 0.0)) / np.abs(self.ntk)


def _check_widths(width, depth: int) -> tuple[int, ...]:
    if isinstance(width, (int, np.integer)) and not isinstance(width, (bool, np.bool_)):
        widths = (width,) * depth
    elif isinstance(width, Sequence) and not isinstance(width, (str, bytes)):
        widths = tuple(width)
        if len(widths) != depth:
            raise ValueError(
                f"width must be one int or one per hidden layer ({depth}); got {len(widths)}."
            )
    else:
        raise TypeError(f"width must be an int or a sequence of ints; got {width!r}.")
    return tuple(check_int(n, "width", low=1) for n in widths)


def finite_width_statistics(
    X,
    *,
    depth: int,
    width: int | Sequence[int],
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
    quadrature_points: int = 64,
    covariance: str = "full",
) -> FiniteWidthStatistics:
    r"""The 1/n statistics of the empirical NNGP and NTK of a finite fully-connected network.

    The network is ``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]`` in the
    NTK parameterization (:func:`~ntk_sklearn.kernels.fc_kernel`'s convention) with hidden
    widths ``width``. For one random initialisation the empirical NNGP is
    ``K̂(a, b) = b_std² + w_std²/n_L Σ_i σ(z_i(a)) σ(z_i(b))`` (the output's covariance given the
    last hidden layer) and the empirical NTK ``Θ̂(a, b) = Σ_p ∂f(a)/∂p · ∂f(b)/∂p`` over all
    parameters. This function returns their means and covariances over initialisations to order
    1/n (the effective theory of Roberts, Yaida & Hanin 2022; Hanin & Nica 2019): see
    ``docs/finite_width.rst`` for the recursions.

    Parameters
    ----------
    X : array-like of shape (N, n_features)
        Inputs.
    depth : int
        Number of hidden layers (>= 1).
    width : int or sequence of int
        Width of every hidden layer, or one per hidden layer.
    activation : str or callable, default="relu"
        Any activation of :func:`~ntk_sklearn.kernels.get_activation`. Two-point functions use
        the closed forms (or the registry's quadrature); four-point functions a Gauss-Hermite
        rule (see ``ntk_sklearn/finite_width/_gaussian.py`` for its accuracy), whose kink, if
        any, is assumed at 0.
    w_std, b_std : float, default=1.0, 0.0
        Weight and bias standard deviations.
    negative_slope, quadrature_points
        As in :func:`~ntk_sklearn.kernels.fc_kernel`.
    covariance : {"full", "diagonal"}, default="full"
        ``"full"``: the (N, N, N, N) covariances (``N <= 6``: their cost grows as N⁴ in memory
        and about N⁴ four-dimensional quadratures per layer). ``"diagonal"``: only the variance
        of each entry, in O(N²) (the same recursion on every pair of inputs), for any N.

    Returns
    -------
    FiniteWidthStatistics

    Raises
    ------
    ValueError
        For invalid arguments, ``depth < 1``, or ``covariance="full"`` with ``N > 6``.
    MemoryError
        Before allocating, when the tensors cannot fit in the available memory.

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.finite_width import finite_width_statistics
    >>> X = np.random.default_rng(0).normal(size=(3, 5))
    >>> st = finite_width_statistics(X, depth=1, width=100)
    >>> st.nngp_cov.shape, bool(np.allclose(st.nngp_mean, st.nngp))  # 1 layer: no mean shift
    ((3, 3, 3, 3), True)
    >>> wider = finite_width_statistics(X, depth=1, width=200)
    >>> bool(np.allclose(wider.ntk_var, st.ntk_var / 2))  # exactly 1/n
    True
    """
    X = as_matrix(X, "X")
    depth = check_int(depth, "depth (number of hidden layers)", low=1)
    widths = _check_widths(width, depth)
    w2 = check_scalar(w_std, "w_std") ** 2
    b2 = check_scalar(b_std, "b_std") ** 2
    act = get_activation(activation, negative_slope, quadrature_points)
    if covariance not in ("full", "diagonal"):
        raise ValueError(f"covariance must be 'full' or 'diagonal'; got {covariance!r}.")
    n = X.shape[0]
    if covariance == "full" and n > MAX_FULL_INPUTS:
        raise ValueError(
            f"covariance='full' is limited to {MAX_FULL_INPUTS} inputs (got {n}): the "
            f"(N, N, N, N) tensors need about (N(N+1)/2)² = {(n * (n + 1) // 2) ** 2:,} "
            "four-dimensional quadratures per layer. Use covariance='diagonal' for the variance "
            "of every entry, Var[K(a, b)], in O(N²)."
        )
    with jax.enable_x64(True):
        x = jnp.asarray(X, jnp.float64)
        if covariance == "full":
            check_memory(_FULL_ARRAYS * 8 * n**4, "The (N, N, N, N) covariances", "Use fewer X.")
            state = run(x, widths, w2, b2, act)
            cov_k, cov_t = (np.asarray(c) for c in output_covariance(state))
            r = np.arange(n)
            var_k, var_t = cov_k[r[:, None], r, r[:, None], r], cov_t[r[:, None], r, r[:, None], r]
            k, t = np.asarray(state.nngp), np.asarray(state.ntk)
            mk, mt = k + np.asarray(state.nngp_shift), t + np.asarray(state.ntk_shift)
        else:
            k, t, mk, mt, var_k, var_t = _diagonal(x, widths, w2, b2, act)
            cov_k = cov_t = None
    out = [np.asarray(v, np.float64) for v in (k, t, mk, mt, var_k, var_t)]
    if not all(np.isfinite(v).all() for v in out):
        raise FloatingPointError(
            "The statistics overflowed or are undefined (NaN): reduce w_std, b_std or the "
            "input scale."
        )
    return FiniteWidthStatistics(*out, cov_k, cov_t, widths)


def _diagonal(x, widths, w2, b2, act):
    """Means and variances of every entry from the recursion on each pair (and each input)."""
    n = x.shape[0]
    check_memory(64 * 8 * 16 * min(n * n, _PAIR_BATCH), "The pairwise recursion", "Use fewer X.")
    singles = _batched(x[:, None, :], widths, w2, b2, act)
    k, t = np.diag(singles[0][:, 0, 0]), np.diag(singles[1][:, 0, 0])
    mk, mt = np.diag(singles[2][:, 0, 0]), np.diag(singles[3][:, 0, 0])
    vk, vt = np.diag(singles[4]), np.diag(singles[5])
    rows, cols = np.triu_indices(n, 1)
    if rows.size:
        pairs = _batched(jnp.stack([x[rows], x[cols]], 1), widths, w2, b2, act)
        for full, part, i in ((k, 0, 1), (t, 1, 1), (mk, 2, 1), (mt, 3, 1)):
            full[rows, cols] = full[cols, rows] = pairs[part][:, 0, i]
        vk[rows, cols] = vk[cols, rows] = pairs[4]
        vt[rows, cols] = vt[cols, rows] = pairs[5]
    return k, t, mk, mt, vk, vt


def _batched(xs, widths, w2, b2, act):
    """The recursion on a batch of input sets ``xs (B, M, d)``; entry (0, M-1) variances."""
    outs = []
    for start in range(0, xs.shape[0], _PAIR_BATCH):
        outs.append(_run_sets(xs[start : start + _PAIR_BATCH], widths, w2, b2, act))
    return [np.concatenate([np.asarray(o[j]) for o in outs]) for j in range(6)]


def _run_sets(xs, widths, w2, b2, act):
    from ntk_sklearn.finite_width._recursion import first_layer

    state = jax.vmap(first_layer, in_axes=(0, None, None))(xs, w2, b2)
    step = jax.vmap(layer_step, in_axes=(0, None, None, None, None))
    for width in widths:
        state = step(state, jnp.asarray(float(width), xs.dtype), w2, b2, act)
    return _summary(state)


def _summary(state: LayerState):
    cov_k, cov_t = jax.vmap(output_covariance)(state)
    last = state.nngp.shape[-1] - 1
    return (
        state.nngp,
        state.ntk,
        state.nngp + state.nngp_shift,
        state.ntk + state.ntk_shift,
        cov_k[:, 0, last, 0, last],
        cov_t[:, 0, last, 0, last],
    )
