"""Shared machinery of the estimators: parameters, precision scope, kernels, factorization.

Validation happens here, at the boundary; below it (``kernels``, ``dynamics``) functions are pure
JAX on validated arrays. Fitted state is NumPy arrays only, so estimators pickle and clone.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ntk_sklearn import _memory, dynamics
from ntk_sklearn.empirical import empirical_nngp, empirical_ntk, monte_carlo_kernel
from ntk_sklearn.kernels import Kernel, available_activations, fc_kernel, fc_kernel_diag

#: Jitter tried, relative to the mean diagonal, when the training kernel is singular.
_JITTERS = (1e-10, 1e-8, 1e-6)
#: Test rows per chunk when only means and variances are predicted.
_PREDICT_CHUNK = 4096


def check_memory(n_bytes: int, what: str) -> None:
    """``MemoryError`` before allocating what cannot fit, with the estimators' advice."""
    _memory.check_memory(
        n_bytes,
        what,
        "Use dtype='float32' (half the memory), fewer training samples, or predict in smaller "
        "batches.",
    )


def _as_float(leaf, dtype: str):
    """A floating parameter leaf in ``dtype``; other leaves unchanged."""
    arr = jnp.asarray(leaf)
    return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else leaf


class NeuralKernelBase(BaseEstimator):
    """Base of the four estimators; ``_kernel`` is "ntk" or "nngp"."""

    _kernel: str = "ntk"

    _parameter_constraints: dict = {
        "depth": [Interval(Integral, 0, None, closed="left")],
        "activation": [StrOptions(set(available_activations())), callable],
        "w_std": [Interval(Real, 0, None, closed="neither")],
        "b_std": [Interval(Real, 0, None, closed="left")],
        "negative_slope": [Interval(Real, None, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "t": [Interval(Real, 0, None, closed="left"), None],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "dtype": [StrOptions({"float64", "float32"})],
        "block_size": [Interval(Integral, 1, None, closed="left"), None],
        "kernel": [StrOptions({"analytic", "empirical"}), tuple],
        "width": [Interval(Integral, 1, None, closed="left")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
    }

    # -- precision and kernels ---------------------------------------------------------------

    def _scope(self):
        """float64 inside a scoped ``jax.enable_x64``; JAX's global config is never changed."""
        return jax.enable_x64(self.dtype == "float64")

    def _np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def _kernel_kwargs(self) -> dict:
        return {
            "depth": self.depth,
            "activation": self.activation,
            "w_std": self.w_std,
            "b_std": self.b_std,
            "negative_slope": self.negative_slope,
        }

    def _kernel_names(self) -> tuple[str, ...]:
        return ("nngp", "ntk") if self._kernel == "ntk" else ("nngp",)

    def _check_kernel(self) -> None:
        """Validate ``kernel``; for ``"empirical"`` draw the seed of its networks once."""
        if isinstance(self.kernel, tuple) and (
            len(self.kernel) != 2 or not callable(self.kernel[0])
        ):
            raise ValueError(
                "kernel must be 'analytic', 'empirical' or a pair (apply_fn, params) with "
                f"apply_fn(params, x) a JAX function; got a tuple of length {len(self.kernel)}."
            )
        if self.kernel == "empirical":
            # The same networks must serve the training and every test kernel.
            self.kernel_seed_ = int(check_random_state(self.random_state).randint(2**31 - 1))

    def _kernels(self, x1: np.ndarray, x2: np.ndarray | None = None, names=None):
        """The kernels ``names`` (default: those the dynamics need) between rows of x1 and x2."""
        names = names or self._kernel_names()
        if isinstance(self.kernel, tuple):
            apply_fn, params = self.kernel
            # The user's parameters in the estimator's precision (their arrays are not changed).
            params = jax.tree_util.tree_map(lambda a: _as_float(a, self.dtype), params)
            fns = {"nngp": empirical_nngp, "ntk": empirical_ntk}
            out = {name: fns[name](apply_fn, params, x1, x2) for name in names}
            return Kernel(out.get("nngp"), out.get("ntk"))
        if self.kernel == "empirical":
            return monte_carlo_kernel(
                x1,
                x2,
                width=self.width,
                n_samples=self.n_samples,
                random_state=self.kernel_seed_,
                get=names,
                **self._kernel_kwargs(),
            )
        return fc_kernel(x1, x2, get=names, block_size=self.block_size, **self._kernel_kwargs())

    def _test_nngp(self, x: np.ndarray, full: bool) -> np.ndarray:
        """NNGP between test rows (``full``), or its diagonal, the prior variances."""
        if self.kernel == "analytic":
            if full:
                return fc_kernel(x, get="nngp", **self._kernel_kwargs())
            return fc_kernel_diag(x, get="nngp", **self._kernel_kwargs())
        k = self._kernels(x, names=("nngp",)).nngp
        return k if full else np.diag(k).copy()

    # -- fit -----------------------------------------------------------------------------------

    def _fit_dynamics(self, X: np.ndarray, Y: np.ndarray) -> None:
        """Training kernels, computed once, and their factorization, computed once.

        ``Y`` is 2-D ``(n, k)``. Stores ``X_fit_``, ``y_fit_``, ``train_kernel_`` (the kernel of
        the dynamics, NTK or NNGP, plus ``alpha·I``), for the NTK also ``train_nngp_`` (the prior
        covariance of the initial outputs, without ``alpha``: neural-tangents' convention),
        ``dual_coef_`` (``A_t y``), and ``chol_`` (``t=None``) or ``evals_``/``evecs_``.
        """
        n = X.shape[0]
        itemsize = self._np_dtype().itemsize
        n_matrices = len(self._kernel_names()) + 2  # kernels, factor, a temporary
        check_memory(n_matrices * n * n * itemsize, f"Fitting on {n} samples")
        X = X.astype(self.dtype, copy=False)
        self._check_kernel()
        with self._scope():
            kernels = self._kernels(X)
            if self._kernel == "ntk":
                self.train_nngp_ = kernels.nngp
            raw = kernels.ntk if self._kernel == "ntk" else kernels.nngp
            train = dynamics.add_diagonal(jnp.asarray(raw), self.alpha)
            self.train_kernel_ = np.asarray(train)
            y = jnp.asarray(Y, self.dtype)
            if self.t is None:
                chol = self._cholesky(train)
                self.chol_ = np.asarray(chol)
                self.dual_coef_ = np.asarray(dynamics.cho_apply(chol, y))
            else:
                spec = dynamics.spectrum(train)
                self.evals_, self.evecs_ = np.asarray(spec.evals), np.asarray(spec.evecs)
                g = dynamics.gain(spec.evals, jnp.asarray([self.t]), self._rate(Y))[0]
                self.dual_coef_ = np.asarray(dynamics.spectral_apply(spec, g, y))
        self.X_fit_ = X
        self.y_fit_ = np.asarray(Y, self.dtype)

    def _rate(self, Y: np.ndarray) -> float:
        """``η / m``: the loss is a mean over all ``m = y.size`` target entries."""
        return self.learning_rate / Y.size

    def _cholesky(self, k: jax.Array) -> jax.Array:
        chol = dynamics.cholesky(k)
        if bool(jnp.all(jnp.isfinite(chol))):
            return chol
        scale = float(jnp.mean(jnp.diag(k)))
        for rel in _JITTERS:
            chol = dynamics.cholesky(dynamics.add_diagonal(k, rel * scale))
            if bool(jnp.all(jnp.isfinite(chol))):
                warnings.warn(
                    f"The training kernel plus alpha={self.alpha} is not positive definite "
                    f"(duplicate or nearly collinear samples?); added {rel * scale:.2e} "
                    "(jitter) to its diagonal. Increase alpha to silence this warning.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return chol
        raise np.linalg.LinAlgError(
            f"The training kernel plus alpha={self.alpha} is not positive definite, even with "
            f"jitter up to {_JITTERS[-1] * scale:.2e} on its diagonal. Increase alpha (e.g. "
            f"alpha={1e-4 * scale:.2e}), remove duplicate samples, or use float64."
        )

    # -- predict -------------------------------------------------------------------------------

    def _apply(self, b: jax.Array, times: float | None) -> jax.Array:
        """``A_t b`` with the fitted factorization (``times`` = ``t``, or ``2t``)."""
        if times is None:
            return dynamics.cho_apply(jnp.asarray(self.chol_), b)
        spec = dynamics.Spectrum(jnp.asarray(self.evals_), jnp.asarray(self.evecs_))
        g = dynamics.gain(spec.evals, jnp.asarray([times]), self._rate(self.y_fit_))[0]
        return dynamics.spectral_apply(spec, g, b)

    def _posterior(self, X: np.ndarray, cov: str | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean ``(n*, k)`` and, with ``cov="full"`` the covariance, ``cov="diag"`` the variance.

        Means and variances are computed in chunks of test rows, so memory stays bounded.
        """
        X = X.astype(self.dtype, copy=False)
        n, n_test = self.X_fit_.shape[0], X.shape[0]
        itemsize = self._np_dtype().itemsize
        if cov == "full":
            check_memory((3 * n_test * n + 2 * n_test * n_test) * itemsize, "return_cov")
            return self._posterior_chunk(X, full_cov=True)
        chunks = [
            self._posterior_chunk(X[s : s + _PREDICT_CHUNK], full_cov=False, want=cov is not None)
            for s in range(0, n_test, _PREDICT_CHUNK)
        ]
        mean = np.concatenate([c[0] for c in chunks])
        var = None if cov is None else np.concatenate([c[1] for c in chunks])
        return mean, var

    def _posterior_chunk(self, X: np.ndarray, full_cov: bool, want: bool = True):
        with self._scope():
            cross = self._kernels(X, self.X_fit_)
            k_cross = jnp.asarray(cross.nngp)
            dyn_cross = jnp.asarray(cross.ntk if self._kernel == "ntk" else cross.nngp)
            if not want:
                return np.asarray(dyn_cross @ jnp.asarray(self.dual_coef_)), None
            k_test = jnp.asarray(self._test_nngp(X, full_cov))
            y = jnp.asarray(self.y_fit_)
            r = self._apply(dyn_cross.T, self.t)
            if self._kernel == "ntk":
                post = dynamics.ntk_posterior(
                    r, y, jnp.asarray(self.train_nngp_), k_cross, k_test, full_cov
                )
            else:
                r_2t = r if self.t is None else self._apply(k_cross.T, 2 * self.t)
                post = dynamics.nngp_posterior(r, r_2t, y, k_cross, k_test, full_cov)
            return np.asarray(post.mean), np.asarray(post.cov)

    def _trajectory(self, X: np.ndarray, times) -> np.ndarray:
        """Means at many times from one eigendecomposition: shape ``(len(times), n*, k)``."""
        X = X.astype(self.dtype, copy=False)
        with self._scope():
            if self.t is None:
                spec = dynamics.spectrum(jnp.asarray(self.train_kernel_))
            else:
                spec = dynamics.Spectrum(jnp.asarray(self.evals_), jnp.asarray(self.evecs_))
            cross = self._kernels(X, self.X_fit_)
            dyn_cross = jnp.asarray(cross.ntk if self._kernel == "ntk" else cross.nngp)
            # mean(t) = Θ_* V diag(g_t) Vᵀ y: project once, then one product per time.
            proj = dyn_cross @ spec.evecs
            coef = spec.evecs.T @ jnp.asarray(self.y_fit_)
            g = dynamics.gain(spec.evals, jnp.asarray(times, self.dtype), self._rate(self.y_fit_))
            return np.asarray(jnp.einsum("ij,tj,jk->tik", proj, g, coef))


def check_times(times) -> np.ndarray:
    """Validate training times for a trajectory: 1-D, non-negative, not NaN (inf allowed)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array; got shape {times.shape}.")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("times must be >= 0 (np.inf allowed for the converged limit).")
    return times
