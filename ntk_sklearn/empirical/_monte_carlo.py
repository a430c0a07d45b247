"""``monte_carlo_kernel``: NNGP and NTK of the built-in MLP averaged over random initialisations.

Sample ``s`` draws its parameters from ``numpy.random.default_rng([seed, s])`` (``seed`` from
``random_state``; a run with more samples extends a run with fewer; host-side draws compile
nothing, unlike JAX's, which compile once per shape), then, with ``h`` the last hidden layer
(``n_L`` units) and ``k`` readout units,

    NNGP_s(x, x') = w_std² · h(x)·h(x') / n_L + b_std²      (readout marginalised)
    NTK_s(x, x')  = (1/k) Σ_a ∇f_a(x) · ∇f_a(x')            (empirical_ntk, outputs="mean")

``NNGP_s`` is ``E[f_a(x) f_a(x') | hidden layers]``, the output covariance over the readout
layer's weights: it has the mean of the output product ``f_a(x) f_a(x')`` over initialisations
(Rao-Blackwell), a much smaller variance, and full rank (up to ``n_L + 1``) rather than rank 1.
The estimate is the mean over samples, ``(1/S) Σ_s K_s``, with standard error
``std_s(K_s) / sqrt(S)`` (``ddof=1``), accumulated in one pass (Welford's update).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ntk_sklearn._memory import check_memory
from ntk_sklearn._validation import check_int
from ntk_sklearn.empirical._mlp import _check_architecture, mlp_apply_fn, mlp_init_numpy
from ntk_sklearn.empirical._nngp import empirical_nngp
from ntk_sklearn.empirical._ntk import empirical_ntk
from ntk_sklearn.empirical._utils import as_seed, default_float
from ntk_sklearn.kernels import KernelMatrices
from ntk_sklearn.kernels._fc import KERNEL_NAMES, as_matrix, parse_get


class _Welford:
    """Running mean and sum of squared deviations of equally shaped arrays (float64)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, value: np.ndarray) -> None:
        value = np.asarray(value, dtype=np.float64)
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = value.copy(), np.zeros_like(value)
            return
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def stderr(self) -> np.ndarray:
        return np.sqrt(self.m2 / (self.n - 1) / self.n)


def monte_carlo_kernel(
    x1,
    x2=None,
    *,
    depth: int,
    width: int,
    activation: str | Callable = "relu",
    w_std: float = 1.0,
    b_std: float = 0.0,
    negative_slope: float = 0.01,
    n_samples: int = 16,
    n_outputs: int = 1,
    random_state: Any = None,
    get: str | Sequence[str] = KERNEL_NAMES,
    method: str = "auto",
    batch_size: int | None = None,
    return_stderr: bool = False,
) -> KernelMatrices | np.ndarray | tuple[KernelMatrices | np.ndarray, KernelMatrices | np.ndarray]:
    r"""Monte-Carlo NNGP and NTK: the empirical kernels of finite MLPs, averaged over inits.

    Each of ``n_samples`` networks is the built-in MLP (:func:`~ntk_sklearn.empirical.init_mlp`),
    the finite-width counterpart of :func:`~ntk_sklearn.kernels.fc_kernel` with the same
    arguments: ``[Dense(w_std, b_std), activation] * depth + [Dense(w_std, b_std)]`` with hidden
    layers of ``width`` units, NTK parameterization. The NTK sample is
    ``(1/k) Σ_a ∇f_a(x)·∇f_a(x')`` over the ``k = n_outputs`` readout units; the NNGP sample is
    ``w_std² h(x)·h(x')/n_L + b_std²`` (``h`` the last hidden layer of ``n_L`` units), the
    covariance of every readout unit over the readout layer's weights given the hidden layers:
    it has the mean of ``f_a(x) f_a(x')`` over initialisations with a smaller variance
    (:func:`~ntk_sklearn.empirical.mlp_readout_features`). The estimates are means over
    networks. As ``width → ∞`` both samples converge to ``fc_kernel(...)`` (relative
    fluctuations ``O(width^-1/2)``; with one hidden layer the means are exact at every width,
    deeper networks have an ``O(1/width)`` bias).

    Parameters
    ----------
    x1 : array-like of shape (n1, n_features)
    x2 : array-like of shape (n2, n_features), default=None
        ``None`` means ``x1``.
    depth : int
        Number of hidden layers.
    width : int
        Units per hidden layer (>= 1).
    activation, w_std, b_std, negative_slope
        As in :func:`~ntk_sklearn.kernels.fc_kernel`.
    n_samples : int, default=16
        Random initialisations averaged over (>= 1; >= 2 with ``return_stderr``).
    n_outputs : int, default=1
        Readout units per network; their NTKs are averaged (the NNGP does not depend on it).
    random_state : int, numpy Generator or RandomState, JAX key or None, default=None
        Seeds the initialisations; an int gives reproducible results.
    get : {"nngp", "ntk"} or tuple of them, default=("nngp", "ntk")
        As in :func:`~ntk_sklearn.kernels.fc_kernel`.
    method, batch_size
        Passed to :func:`~ntk_sklearn.empirical.empirical_ntk`.
    return_stderr : bool, default=False
        Also return the standard errors of the means, ``std(samples, ddof=1)/sqrt(n_samples)``.

    Returns
    -------
    KernelMatrices or ndarray of shape (n1, n2)
        A :class:`~ntk_sklearn.kernels.KernelMatrices` for a tuple ``get``, one array for a string.
        Float64 inside ``jax.enable_x64(True)``, else float32. With ``return_stderr``, a pair
        ``(estimate, stderr)`` of that structure (standard errors in float64).

    Raises
    ------
    ValueError
        For ``depth`` below 0, ``width``, ``n_samples``, ``n_outputs`` or ``batch_size`` below 1
        or not integers, ``n_samples < 2`` with ``return_stderr``, an invalid ``get``, inputs
        that are not finite non-empty 2-D arrays with equal feature counts, negative or
        non-finite stds, or an unknown activation.
    TypeError
        For stds that are not numbers (e.g. the string ``'1'``).
    MemoryError
        Before allocating, when one network's parameters, its kernels or their blocks cannot
        fit in the available memory (e.g. ``width=10**5`` with two hidden layers).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.empirical import monte_carlo_kernel
    >>> from ntk_sklearn.kernels import fc_kernel
    >>> x = np.random.default_rng(0).normal(size=(3, 4))
    >>> mc = monte_carlo_kernel(x, depth=1, width=2048, n_samples=2, random_state=0, get="ntk")
    >>> exact = fc_kernel(x, depth=1, get="ntk")
    >>> bool(np.linalg.norm(mc - exact) / np.linalg.norm(exact) < 0.05)
    True
    """
    names, single = parse_get(get)
    check_int(n_samples, "n_samples", low=1)
    (None if batch_size is None else check_int(batch_size, "batch_size", low=1))
    if not isinstance(return_stderr, (bool, np.bool_)):
        raise TypeError(f"return_stderr must be True or False; got {return_stderr!r}.")
    if return_stderr and n_samples < 2:
        raise ValueError(f"return_stderr needs n_samples >= 2; got {n_samples!r}.")
    dtype = default_float()
    x1 = as_matrix(x1, "x1").astype(dtype, copy=False)
    if x2 is not None:
        x2 = as_matrix(x2, "x2").astype(dtype, copy=False)
        if x2.shape[1] != x1.shape[1]:
            raise ValueError(
                f"x1 and x2 must have the same number of features; got {x1.shape[1]} and "
                f"{x2.shape[1]}."
            )
    _check_architecture(x1.shape[1], depth, width, n_outputs)
    seed = as_seed(random_state)
    apply_fn = mlp_apply_fn(
        activation=activation, w_std=w_std, b_std=b_std, negative_slope=negative_slope
    )
    n2 = x1.shape[0] if x2 is None else x2.shape[0]
    # Running mean and squared deviations (float64) and the latest sample, per kernel.
    check_memory(
        3 * len(names) * x1.shape[0] * n2 * 8,
        f"The Monte-Carlo kernels ({x1.shape[0]} × {n2})",
        "Pass fewer inputs.",
    )

    stats = {name: _Welford() for name in names}
    for s in range(n_samples):
        params = mlp_init_numpy(
            np.random.default_rng([seed, s]),
            x1.shape[1],
            depth=depth,
            width=width,
            n_outputs=n_outputs,
            dtype=dtype,
        )
        if "nngp" in stats:
            stats["nngp"].add(empirical_nngp(apply_fn, params, x1, x2, batch_size=batch_size))
        if "ntk" in stats:
            stats["ntk"].add(
                empirical_ntk(apply_fn, params, x1, x2, method=method, batch_size=batch_size)
            )

    def pack(values: dict[str, np.ndarray]):
        if single:
            return values[names[0]]
        return KernelMatrices(*(values.get(name) for name in KERNEL_NAMES))

    mean = pack({name: stat.mean.astype(dtype) for name, stat in stats.items()})
    if not return_stderr:
        return mean
    return mean, pack({name: stat.stderr() for name, stat in stats.items()})
