"""Log marginal likelihood of the estimators' Gaussian process, its gradient and its maximum.

The estimators' hyperparameters ``(w_std, b_std, alpha)`` are learned by type-II maximum
likelihood, as :class:`~sklearn.gaussian_process.GaussianProcessRegressor` learns its kernel's:
the evidence of the (normalised) training targets ``Y`` (``n × k``) under the Gaussian process
whose covariance is the estimator's kernel ``K`` (NNGP, or the NTK: then the evidence of *the
Gaussian process with the NTK as covariance*, which is not the distribution of trained
networks), observed with noise of variance ``alpha``:

    log p(Y) = Σ_k [-½ y_kᵀ C⁻¹ y_k - ½ log det C - n/2 log 2π],   C = K + alpha·W⁻¹,

``W`` the sample weights (``C = K + alpha·I`` without). It is computed from the Cholesky factor
of ``S C S = S K S + alpha·I`` (``S = diag(√w)``): ``log det C = log det(S C S) - Σ log w``.
``theta`` is the natural logarithm of the free ones of ``(w_std, b_std, alpha)`` (in that
order; a hyperparameter whose bounds are ``"fixed"`` is left out), followed, when they are
learned, by the logarithms of the per-feature input scales ``s`` (automatic relevance
determination: the kernel of ``x ⊙ s``, i.e. first-layer weights of variance
``w_std² s_j² / d`` for feature ``j``). The kernel is
:func:`~ntk_sklearn.kernels.kernel_matrices` of the stack built from traced stds, so the
gradient is exact (reverse-mode autodiff, float64), diagonal and duplicate rows included.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from scipy.optimize import minimize
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn import _warnings
from ntk_sklearn._memory import check_memory
from ntk_sklearn.architectures import replace_stds
from ntk_sklearn.gaussian_process._hyperparameters import NAMES, check_bounds, check_inside
from ntk_sklearn.kernels import Serial, kernel_matrices

#: Working ``n × n`` float64 arrays per layer of the stack kept for the reverse pass (measured
#: rather than derived: the recursion's intermediates and their cotangents), plus a constant.
_ARRAYS_PER_LAYER = 12
_ARRAYS_FIXED = 8
#: Rows are padded to a multiple of this, so that fits on slightly different numbers of
#: samples (cross-validation folds) share one compilation.
_PAD = 32


def gaussian_log_evidence(quad, log_det, n, n_targets):
    """``Σ_k [-½ y_kᵀ C⁻¹ y_k] - k/2 log det C - nk/2 log 2π`` from its two terms.

    The one formula of the evidence: ``quad = Σ_k y_kᵀ C⁻¹ y_k`` and ``log_det = log det C``,
    from a fitted :class:`~ntk_sklearn.solvers.Solver` (``evidence_terms``: the estimators'
    ``log_marginal_likelihood_value_``) or traced in JAX (:func:`_lml`: its gradient).
    """
    return -0.5 * quad - 0.5 * n_targets * log_det - 0.5 * n * n_targets * math.log(2 * math.pi)


class SingularKernelError(ValueError):
    """The kernel plus ``alpha`` is not numerically positive definite at some ``theta``."""


class Hyperparameters(NamedTuple):
    """Values of ``(w_std, b_std, alpha)`` and the input scales; which are free; log-bounds.

    ``log_bounds`` has one row per entry of ``theta``: the free stds and alpha, then one per
    input scale when ``scales_free``.
    """

    values: tuple[float, float, float]
    free: tuple[bool, bool, bool]
    log_bounds: np.ndarray  # (len(theta), 2)
    scales: np.ndarray | None = None  # per-feature input scales; None: inputs as they are
    scales_free: bool = False

    @property
    def theta(self) -> np.ndarray:
        """``log`` of the free values, then of the input scales when they are free."""
        logs = np.log([v for v, f in zip(self.values, self.free, strict=True) if f])
        return np.concatenate([logs, np.log(self.scales)]) if self.scales_free else logs

    def with_theta(self, theta: np.ndarray) -> tuple[float, float, float]:
        """``(w_std, b_std, alpha)`` with the free ones set to ``exp(theta)``."""
        it = iter(np.exp(np.asarray(theta, dtype=float)))
        pairs = zip(self.values, self.free, strict=True)
        return tuple(float(next(it)) if f else v for v, f in pairs)

    def scales_with_theta(self, theta: np.ndarray) -> np.ndarray | None:
        """The input scales at ``theta`` (its last entries when they are free)."""
        if not self.scales_free:
            return self.scales
        return np.exp(np.asarray(theta, dtype=float)[sum(self.free) :])

    @property
    def names(self) -> list[str]:
        """The name of each entry of ``theta``."""
        names = [n for n, f in zip(NAMES, self.free, strict=True) if f]
        if not self.scales_free:
            return names
        return names + [f"input_scale[{j}]" for j in range(len(self.scales))]


def hyperparameters(
    values: dict,
    bounds: dict,
    *,
    check_inside: bool,
    scales: np.ndarray | None = None,
    scale_bounds="fixed",
) -> Hyperparameters:
    """Validated :class:`Hyperparameters` from ``values[name]`` and ``bounds[name + "_bounds"]``.

    ``scales`` (per-feature input scales, or ``None``) are learned when ``scale_bounds`` is a
    pair. With ``check_inside``, a free value outside its bounds (a zero ``b_std`` or ``alpha``
    included) is a ``ValueError`` saying what to change.
    """
    free, log_bounds = [], []
    for name in NAMES:
        key = f"{name}_bounds"
        checked = check_bounds(bounds[key], key)
        free.append(checked is not None)
        if checked is None:
            continue
        _check_inside(name, values[name], checked, check_inside)
        log_bounds.append((math.log(checked[0]), math.log(checked[1])))
    checked = check_bounds(scale_bounds, "input_scale_bounds")
    if checked is not None:
        for value in np.unique(scales):
            _check_inside("input_scale", float(value), checked, check_inside)
        log_bounds += [(math.log(checked[0]), math.log(checked[1]))] * len(scales)
    values = tuple(float(values[name]) for name in NAMES)
    return Hyperparameters(
        values,
        tuple(free),
        np.array(log_bounds, dtype=float).reshape(-1, 2),
        None if scales is None else np.asarray(scales, dtype=float),
        checked is not None,
    )


def _check_inside(name: str, value: float, bounds: tuple[float, float], check: bool) -> None:
    if check:
        check_inside(name, value, bounds)


def check_theta(theta, hyper: Hyperparameters) -> np.ndarray:
    """``theta`` as a finite float64 vector of the number of free hyperparameters."""
    names = hyper.names
    arr = np.asarray(theta, dtype=float) if not isinstance(theta, str) else np.array([np.nan])
    if arr.ndim != 1 or arr.shape[0] != len(names) or not np.isfinite(arr).all():
        shown = names if len(names) <= 6 else [*names[:4], "...", names[-1]]
        raise ValueError(
            f"theta must be a finite 1-D array of length {len(names)}: the logarithms of "
            f"{shown} (hyperparameters with bounds 'fixed' are left out); got {theta!r}."
        )
    return arr


def check_lml_memory(stack: Serial, x: np.ndarray) -> None:
    """``MemoryError`` before the unblocked kernel and its reverse pass would not fit."""
    n = x.shape[0]
    pair = stack._pair_size(x.shape[1:])
    # A flip-invariant stack runs twice (the second image mirrored), keeping both passes.
    passes = 2 if stack.flip_invariant else 1
    n_pad = n + (-n % _PAD)
    recursion = passes * _ARRAYS_PER_LAYER * len(stack.layers) * pair * n_pad * n_pad * 8
    cholesky = _ARRAYS_FIXED * n_pad * n_pad * 8
    check_memory(
        recursion + cholesky,
        f"The log marginal likelihood and its gradient on {n} samples (the optimizer's "
        f"evidence: the kernel recursion over {len(stack.layers)} layers and its reverse pass "
        f"{recursion / 2**30:.2f} GiB, the Cholesky factor, solves and their gradients "
        f"{cholesky / 2**30:.2f} GiB; float64, JAX buffers)",
        "Learn the hyperparameters on a subset of the samples (then fix them: bounds 'fixed' "
        "or optimizer=None with the values found), or use a smaller architecture.",
    )


@functools.partial(jax.jit, static_argnames=("get", "free", "scales_free", "eval_gradient"))
def _lml(
    theta, values, scales, stack, x, y, sqrt_w, mask, *, get, free, scales_free, eval_gradient
):
    """LML (and its gradient with respect to ``theta``) in pure JAX.

    Padding rows (``mask == 0``, zero targets) get covariance ``I``, independent of the real
    rows: they add 0 to the quadratic term and to ``log det``, and are not counted in ``n``.
    """

    def lml(theta):
        it = iter(range(theta.shape[0]))
        w_std, b_std, alpha = (
            jnp.exp(theta[next(it)]) if f else v for v, f in zip(values, free, strict=True)
        )
        s = jnp.exp(theta[sum(free) :]) if scales_free else scales
        # The kernel of x ⊙ s: feature j's first-layer weights have variance w_std² s_j² / d.
        xs = x if s is None else x * s.reshape(x.shape[1:])
        k = getattr(kernel_matrices(replace_stds(stack, w_std, b_std), xs, get=get), get)
        # S C S = S K S + alpha·I, whose log det exceeds log det C by Σ log w.
        sm = sqrt_w * mask
        c = sm[:, None] * k * sm[None, :] + jnp.diag(alpha * mask + (1.0 - mask))
        chol = jnp.linalg.cholesky(c)
        z = solve_triangular(chol, sqrt_w[:, None] * y, lower=True)  # |z|² = (Sy)ᵀ(SCS)⁻¹(Sy)
        n, n_targets = jnp.sum(mask), y.shape[1]
        log_det = 2.0 * jnp.sum(jnp.log(jnp.diag(chol))) - 2.0 * jnp.sum(jnp.log(sqrt_w))
        value = gaussian_log_evidence(jnp.sum(z * z), log_det, n, n_targets)
        # Smallest pivot L_ii² relative to the mean diagonal: below n·eps, C is singular to
        # rounding (λ_min ≤ min L_ii²) and the value is rounding noise.
        pivots = jnp.diag(chol) ** 2
        relative = jnp.min(jnp.where(mask > 0, pivots, jnp.inf)) / (jnp.sum(jnp.diag(c) * mask) / n)
        return value, relative * jnp.finfo(c.dtype).eps ** -1 / n

    if eval_gradient:
        (value, pivot), grad = jax.value_and_grad(lml, has_aux=True)(theta)
        return value, grad, pivot
    value, pivot = lml(theta)
    return value, jnp.zeros_like(theta), pivot


class Evidence:
    """The log marginal likelihood of fixed data as a function of ``theta`` (float64).

    Parameters
    ----------
    stack : Serial
        The estimator's kernel stack (its stds are replaced by those of ``theta``).
    get : {"nngp", "ntk"}
        The covariance of the Gaussian process.
    x : ndarray of shape (n, ...)
        Training rows as the stack takes them.
    y : ndarray of shape (n, k)
        Normalised training targets.
    sqrt_w : ndarray of shape (n,) or None
        Square roots of positive sample weights.
    hyper : Hyperparameters
    """

    def __init__(self, stack, get, x, y, sqrt_w, hyper: Hyperparameters):
        check_lml_memory(stack, x)
        self.stack, self.get, self.hyper = stack, get, hyper
        n = x.shape[0]
        pad = -n % _PAD
        x = np.concatenate([x, np.repeat(x[:1], pad, axis=0)])  # any finite rows will do
        y = np.concatenate([np.asarray(y, np.float64), np.zeros((pad, y.shape[1]))])
        sqrt_w = np.ones(n) if sqrt_w is None else np.asarray(sqrt_w, np.float64)
        with jax.enable_x64(True):
            self.x = jnp.asarray(x, jnp.float64)
            self.y = jnp.asarray(y, jnp.float64)
            self.sqrt_w = jnp.asarray(np.concatenate([sqrt_w, np.ones(pad)]), jnp.float64)
            self.mask = jnp.asarray(np.arange(n + pad) < n, jnp.float64)

    def __call__(self, theta: np.ndarray, eval_gradient: bool = False):
        """``(value, gradient)``; :class:`SingularKernelError` where the Cholesky fails."""
        # A singular kernel gives NaN by design (SingularKernelError below), also under a
        # user's jax_debug_nans; the user's settings are restored on leaving.
        with jax.enable_x64(True), jax.debug_nans(False), jax.debug_infs(False):
            value, grad, pivot = _lml(
                jnp.asarray(theta, jnp.float64),
                self.hyper.values,
                None if self.hyper.scales is None else jnp.asarray(self.hyper.scales),
                self.stack,
                self.x,
                self.y,
                self.sqrt_w,
                self.mask,
                get=self.get,
                free=self.hyper.free,
                scales_free=self.hyper.scales_free,
                eval_gradient=eval_gradient,
            )
            value, grad = float(value), np.asarray(grad, dtype=np.float64)
        if not (np.isfinite(value) and np.isfinite(grad).all() and float(pivot) >= 1.0):
            w_std, b_std, alpha = self.hyper.with_theta(theta)
            raise SingularKernelError(
                f"The {self.get.upper()} plus alpha is not numerically positive definite at "
                f"w_std={w_std:.4g}, b_std={b_std:.4g}, alpha={alpha:.4g} (theta={theta}): the "
                "log marginal likelihood is undefined there. Use a larger alpha (or raise the "
                "lower end of alpha_bounds), or remove duplicate samples."
            )
        return value, grad


def maximize(
    evidence: Evidence,
    optimizer: str | Callable,
    n_restarts: int,
    random_state: np.random.RandomState,
) -> tuple[np.ndarray, float]:
    """``theta`` of the largest log marginal likelihood found and that value.

    The first run starts from the given values, each restart from a point drawn log-uniformly
    within the bounds. ``optimizer`` is ``"fmin_l_bfgs_b"`` (:func:`scipy.optimize.minimize`,
    L-BFGS-B) or a callable ``optimizer(obj_func, initial_theta, bounds) -> (theta_opt,
    func_min)`` as :class:`~sklearn.gaussian_process.GaussianProcessRegressor` takes it. A run
    that does not converge gives a :class:`~sklearn.exceptions.ConvergenceWarning` with the best
    value found; where the kernel is singular the objective is ``+inf`` (gradient 0).
    """
    hyper = evidence.hyper
    bounds = hyper.log_bounds

    def objective(theta, eval_gradient=True):
        try:
            value, grad = evidence(theta, eval_gradient=eval_gradient)
        except SingularKernelError:
            value, grad = -np.inf, np.zeros_like(theta)
        return (-value, -grad) if eval_gradient else -value

    starts = [hyper.theta]
    starts += [random_state.uniform(bounds[:, 0], bounds[:, 1]) for _ in range(n_restarts)]
    results, failures = [], []
    for start in starts:
        if optimizer == "fmin_l_bfgs_b":
            res = minimize(objective, start, method="L-BFGS-B", jac=True, bounds=bounds)
            theta = np.clip(res.x, bounds[:, 0], bounds[:, 1])
            if not res.success:
                failures.append(str(res.message))
        else:
            theta, _ = optimizer(objective, start, bounds)
            theta = np.asarray(theta, dtype=float).reshape(-1)
            if theta.shape != start.shape or not np.isfinite(theta).all():
                raise ValueError(
                    f"optimizer {optimizer!r} returned theta={theta!r}; expected a finite array "
                    f"of shape {start.shape} (the logarithms of the free hyperparameters)."
                )
            theta = np.clip(theta, bounds[:, 0], bounds[:, 1])
        results.append((*objective(theta), theta))  # one compiled function for all
    best_value, best_grad, best_theta = min(results, key=lambda r: r[0])
    if not np.isfinite(best_value):
        raise SingularKernelError(
            f"The {evidence.get.upper()} plus alpha was singular at every point the optimizer "
            f"reached ({len(starts)} runs): raise the lower end of alpha_bounds or alpha, or "
            "remove duplicate samples."
        )
    if failures:
        found = dict(zip(hyper.names[: sum(hyper.free)], np.exp(best_theta), strict=False))
        _warnings.warn(
            f"The optimizer of the log marginal likelihood did not converge in "
            f"{len(failures)} of {len(starts)} runs ({failures[0]}); using the best value "
            f"found, {-best_value:.6g} at {', '.join(f'{k}={v:.4g}' for k, v in found.items())}."
            " Try n_restarts_optimizer > 0 or other bounds.",
            ConvergenceWarning,
        )
    _warn_at_bounds_or_stalled(hyper, best_theta, -best_value, -best_grad)
    return best_theta, -best_value


#: A log-space gradient above this (and above 1e-3 of the value's size) means the evidence could
#: still rise by more than a nat by moving ``theta`` 0.1: the optimizer stalled.
_STALLED_GRADIENT = 10.0


def _warn_at_bounds_or_stalled(
    hyper: Hyperparameters, theta: np.ndarray, value: float, grad: np.ndarray
) -> None:
    """``ConvergenceWarning`` where the maximum found sits on a bound the evidence pushes
    against (as :class:`~sklearn.gaussian_process.GaussianProcessRegressor` warns), or where
    the gradient ``grad`` of the log evidence (in ``theta``) is still large: a stalled search.
    """
    names, bounds = hyper.names, hyper.log_bounds
    bound_names = [f"{n.split('[')[0]}_bounds" for n in names]
    at_low = np.isclose(theta, bounds[:, 0], rtol=0, atol=1e-8) & (grad < 0)
    at_high = np.isclose(theta, bounds[:, 1], rtol=0, atol=1e-8) & (grad > 0)
    # An input scale at its lower end is a feature found irrelevant (ARD's purpose): not warned.
    scale = np.arange(len(names)) >= sum(hyper.free)
    warn_low, warn_high = at_low & ~scale, at_high & ~scale
    pushed = [
        f"{names[i]} at the {'lower' if at_low[i] else 'upper'} end of {bound_names[i]}="
        f"({np.exp(bounds[i, 0]):.3g}, {np.exp(bounds[i, 1]):.3g})"
        for i in np.flatnonzero(warn_low | warn_high)
    ]
    if pushed:
        shown = pushed if len(pushed) <= 4 else [*pushed[:3], f"and {len(pushed) - 3} more"]
        _warnings.warn(
            f"The log marginal likelihood is largest at a bound: {'; '.join(shown)}, and it "
            "still increases beyond it. Widen that bound (lower its low end or raise its high "
            "end) and fit again.",
            ConvergenceWarning,
        )
    # Components that the bounds stop are not a failure of the search.
    inward = np.where(at_low | at_high, 0.0, grad)
    steep = np.abs(inward) > max(_STALLED_GRADIENT, 1e-3 * abs(value))
    if steep.any():
        i = int(np.argmax(np.abs(np.where(steep, inward, 0.0))))
        direction = "raising" if inward[i] > 0 else "lowering"
        end = "upper" if inward[i] > 0 else "lower"
        at = ", ".join(f"{n}={v:.4g}" for n, v in zip(names[:4], np.exp(theta[:4]), strict=False))
        _warnings.warn(
            f"The optimizer of the log marginal likelihood stalled: it stopped at {at} "
            f"(log marginal likelihood {value:.4g}) where the gradient is still "
            f"{inward[i]:.3g} in log({names[i]}): {direction} {names[i]} would increase the "
            f"evidence. The search stopped early or is badly scaled there (e.g. duplicate "
            f"samples with different targets at a tiny alpha). Move the {end} end of "
            f"{bound_names[i]}="
            f"({np.exp(bounds[i, 0]):.3g}, {np.exp(bounds[i, 1]):.3g}) and the start value, "
            "or try n_restarts_optimizer > 0.",
            ConvergenceWarning,
        )
