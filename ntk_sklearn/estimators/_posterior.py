"""Predictions of the fitted dynamics: means, (co)variances, trajectories.

Notation of :mod:`ntk_sklearn.dynamics`; ``S = diag(√w)`` the sample weights. Every ``A_t``
is applied by the fitted solver (:class:`~ntk_sklearn.solvers.Solver`), whichever it is.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _warnings, dynamics
from ntk_sklearn.estimators._params import check_memory

#: Test rows per chunk when only means and variances are predicted.
_PREDICT_CHUNK = 4096
#: A variance below this many ``eps`` times the terms it is the sum of is rounding noise.
_CANCELLATION = 10.0


class _Posterior:
    """Means, covariances and trajectories (a mixin of ``NeuralKernelBase``)."""

    def _apply(self, b: jax.Array, times: float | None) -> jax.Array:
        """``S A_t S b`` with the fitted factorization (``times`` = ``t``, or ``2t``)."""
        s = None if self._sqrt_weight is None else jnp.asarray(self._sqrt_weight)[:, None]
        if s is not None:
            b = s * b
        n = b.shape[0]
        out = jnp.asarray(self._solver.apply(self._padded(b), times)[:n])
        return out if s is None else s * out

    def _padded(self, b) -> np.ndarray:
        """``b`` with zero rows for the solver's padding rows (``alpha·I``: zero solutions)."""
        b = np.asarray(b)
        pad = self._solver.n_ - b.shape[0]  # rows padded to the device count
        return np.concatenate([b, np.zeros((pad, *b.shape[1:]), b.dtype)]) if pad else b

    def _check_uncertainty(self) -> None:
        if self._user_model():
            raise ValueError(
                "return_std, return_cov and sample_y are not available with kernel=(apply_fn, "
                "params): the ensemble's covariance needs the NNGP of the initial outputs, which "
                "one network does not give. Only the mean is; use kernel='empirical' or "
                "'analytic' for uncertainty."
            )

    def _posterior(
        self, X: np.ndarray, cov: str | None, gp: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Mean ``(n*, k)`` and, with ``cov="full"`` the covariance, ``cov="diag"`` the variance.

        Means and variances are computed in chunks of test rows, so memory stays bounded.
        Variances dominated by rounding are reported with a ``RuntimeWarning``. ``gp``: the
        covariance of the Gaussian process whose covariance is the kernel of the dynamics
        (for the NTK, not the ensemble's; the same mean).
        """
        if cov is not None:
            self._check_uncertainty()
        X = X.astype(self._hyper["dtype"], copy=False)
        n, n_test = self.X_fit_.shape[0], X.shape[0]
        itemsize = self._np_dtype().itemsize
        if cov == "full":
            need = (3 * n_test * n + 2 * n_test * n_test) * itemsize
            check_memory(need, "return_cov", dtype=self._hyper["dtype"])
            mean, var, scale = self._posterior_chunk(X, full_cov=True, gp=gp)
            self._warn_cancellation(np.diag(var), scale)
            return mean, var
        chunks = [
            self._posterior_chunk(
                X[s : s + _PREDICT_CHUNK], full_cov=False, want=cov is not None, gp=gp
            )
            for s in range(0, n_test, _PREDICT_CHUNK)
        ]
        mean = np.concatenate([c[0] for c in chunks])
        if cov is None:
            return mean, None
        var = np.concatenate([c[1] for c in chunks])
        self._warn_cancellation(var, np.concatenate([c[2] for c in chunks]))
        return mean, var

    def _warn_cancellation(self, var: np.ndarray, scale: np.ndarray) -> None:
        """Warn where a variance is below the rounding error of the sum it is computed as."""
        eps = np.finfo(self._np_dtype()).eps
        noisy = var < _CANCELLATION * eps * scale
        if noisy.any():
            negative = int((var < 0).sum())
            _warnings.warn(
                f"{int(noisy.sum())} of {var.size} predicted variances are dominated by rounding "
                f"(below {_CANCELLATION:g}·eps times the terms they are the difference of; "
                f"{negative} negative, set to 0) in {self._hyper['dtype']}: those standard "
                "deviations are rounding noise, not uncertainty. Use dtype='float64', a larger "
                "alpha, or a better conditioned kernel (smaller depth or w_std).",
                RuntimeWarning,
            )

    def _cross(self, X: np.ndarray):
        which = "between the inputs and the training inputs"
        cross = self._computed(which, X, lambda: self._kernels(X, self.X_fit_))
        for k in cross:
            if k is not None:
                self._check_finite(k, which, X)
        return cross

    def _posterior_chunk(self, X: np.ndarray, full_cov: bool, want: bool = True, gp=False):
        with self._scope():
            cross = self._cross(X)
            dyn_cross = jnp.asarray(cross.ntk if self._kernel == "ntk" else cross.nngp)
            if not want:
                return np.asarray(dyn_cross @ jnp.asarray(self.dual_coef_)), None, None
            # The GP with the NTK as covariance: the NNGP formulas with Θ in place of K.
            name = "ntk" if gp and self._kernel == "ntk" else "nngp"
            k_cross = jnp.asarray(getattr(cross, name))
            which = "between the inputs"
            k_test = self._computed(which, X, lambda: self._test_nngp(X, full_cov, name))
            self._check_finite(k_test, which, X)
            k_test = jnp.asarray(k_test)
            y = jnp.asarray(self.y_fit_)
            t = self._hyper["t"]
            r = self._apply(dyn_cross.T, t)
            if name == "ntk":
                r_2t = r if t is None else self._apply(k_cross.T, 2 * t)
                post = dynamics.nngp_posterior(r, r_2t, y, k_cross, k_test, full_cov)
            elif self._kernel == "ntk":
                post = dynamics.ntk_posterior(
                    r, y, jnp.asarray(self._train_nngp()), k_cross, k_test, full_cov
                )
            else:
                r_2t = r if t is None else self._apply(k_cross.T, 2 * t)
                post = dynamics.nngp_posterior(r, r_2t, y, k_cross, k_test, full_cov)
            return np.asarray(post.mean), np.asarray(post.cov), np.asarray(post.scale)

    def _train_nngp(self) -> np.ndarray:
        """NNGP between training inputs (the prior covariance of the initial outputs).

        Stored by direct solvers; computed here when ``solver='cg'`` kept only the NTK.
        """
        if hasattr(self, "train_nngp_"):
            return self.train_nngp_
        return self._kernels(self.X_fit_, names=("nngp",)).nngp

    def _trajectory(self, X: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Means at many times from one eigendecomposition: shape ``(len(times), n*, k)``.

        The same training kernel as ``predict`` (jitter included), so ``times = inf`` gives
        ``predict``'s mean for ``t=None``.
        """
        X = X.astype(self._hyper["dtype"], copy=False)
        n, n_test, n_out = self.X_fit_.shape[0], X.shape[0], self.y_fit_.shape[1]
        itemsize = self._np_dtype().itemsize
        # Result on device and host; gains (raw, on the range, and the einsum's T × n × n*
        # intermediate); projections, cross kernels, eigendecomposition.
        n_t = len(times)
        n_values = (
            2 * n_t * n_test * n_out
            + 3 * n_t * n
            + n_t * n * max(n_test, n_out)
            + 3 * n_test * n
            + 2 * n * n
        )
        check_memory(
            n_values * itemsize,
            f"predict_trajectory at {len(times)} times for {n_test} samples",
            ", or fewer times",
            self._hyper["dtype"],
        )
        with self._scope():
            cross = self._cross(X)
            dyn_cross = jnp.asarray(cross.ntk if self._kernel == "ntk" else cross.nngp)
            y = jnp.asarray(self.y_fit_)
            if self._sqrt_weight is not None:
                s = jnp.asarray(self._sqrt_weight)
                dyn_cross, y = dyn_cross * s[None, :], y * s[:, None]
            # mean(t) = Θ_* S A_t S y, every t from one solver of the training kernel.
            solver = self._solver.at_any_time()
            coef = solver.apply_times(self._padded(y), times)[:, :n]
            return np.asarray(jnp.einsum("ij,tjk->tik", dyn_cross, jnp.asarray(coef)))
