"""Hyperparameters by the evidence: learned in ``fit``, and ``log_marginal_likelihood``.

The evidence at fitted values comes from the fitted solver
(:meth:`~ntk_sklearn.solvers.Solver.evidence_terms`); as a differentiable function of
``theta`` (for the optimizer and ``eval_gradient``) from
:mod:`ntk_sklearn.gaussian_process._marginal_likelihood`.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ntk_sklearn.gaussian_process import _marginal_likelihood
from ntk_sklearn.gaussian_process._hyperparameters import NAMES


class _Evidence:
    """Learned hyperparameters and the evidence (a mixin of ``NeuralKernelBase``)."""

    def _learn_hyperparameters(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None) -> None:
        """``w_std_``, ``b_std_``, ``alpha_``, ``input_scale_``: given, or maximising the evidence.

        With an ``optimizer``, the values found replace ``w_std``, ``b_std`` and ``alpha`` in
        this fit's frozen parameters (the estimator's own parameters are left as set).
        """
        p = self._hyper
        scale = self._initial_input_scale(X.shape[1])
        if scale is not None:
            reach = float(np.max(np.abs(X) * scale))
            if not reach < np.sqrt(np.finfo(self._np_dtype()).max):
                raise ValueError(
                    f"input_scale up to {scale.max():.3g} takes the inputs to |x| = {reach:.3g}, "
                    f"whose squares overflow {self._hyper['dtype']}: use smaller input scales "
                    "(or rescale X)."
                )
        if p["optimizer"] is not None:
            if p["kernel"] != "analytic":
                raise ValueError(
                    "optimizer needs kernel='analytic': the log marginal likelihood is "
                    "differentiated through the infinite-width kernel's recursion. Use "
                    "optimizer=None with kernel='empirical' or your own model."
                )
            hyper = _marginal_likelihood.hyperparameters(
                p, p, check_inside=True, scales=scale, scale_bounds=p["input_scale_bounds"]
            )
            if len(hyper.theta):
                sqrt_w = None if w is None else np.sqrt(w)
                evidence = self._evidence(X, Y, sqrt_w, hyper)
                theta, _ = _marginal_likelihood.maximize(
                    evidence,
                    p["optimizer"],
                    p["n_restarts_optimizer"],
                    check_random_state(self.random_state),
                )
                learned = dict(zip(NAMES, hyper.with_theta(theta), strict=True))
                p.update(learned)
                scale = hyper.scales_with_theta(theta)
        self.w_std_, self.b_std_, self.alpha_ = (float(p[n]) for n in NAMES)
        self.input_scale_ = scale

    def _evidence(self, X, Y, sqrt_w, hyper) -> _marginal_likelihood.Evidence:
        """The log marginal likelihood of these rows and targets as a function of ``theta``."""
        with jax.enable_x64(True):
            # Unscaled: the evidence applies the input scales of theta itself.
            rows = self._rows(np.asarray(X, dtype=np.float64))
        return _marginal_likelihood.Evidence(self._stack(), self._kernel, rows, Y, sqrt_w, hyper)

    def log_marginal_likelihood(self, theta=None, eval_gradient: bool = False):
        """Log marginal likelihood of the (normalised) training targets, and its gradient.

        The evidence of the training targets under the Gaussian process whose covariance is
        the estimator's kernel (:class:`NNGPRegressor`: the NNGP; :class:`NTKRegressor`: the
        NTK, i.e. the Gaussian process with the NTK as covariance, which is *not* the
        distribution of trained networks), observed with noise of variance ``alpha``, as
        :meth:`sklearn.gaussian_process.GaussianProcessRegressor.log_marginal_likelihood`::

            Σ_k [-½ y_kᵀ C⁻¹ y_k - ½ log det C - n/2 log 2π],   C = K + alpha·W⁻¹

        summed over targets (classifiers: the centred one-hot columns), ``W`` the sample
        weights (``C = K + alpha·I`` without), ``y`` after ``normalize_y``. The training time
        ``t`` does not enter: at every ``t`` this is the evidence of the kernel.

        Parameters
        ----------
        theta : array-like of shape (n_free,), default=None
            ``log`` of the free ones of ``(w_std, b_std, alpha)``, in that order (those whose
            bounds are ``"fixed"`` are left out), then of the ``n_features`` input scales when
            ``input_scale_bounds`` is a pair. ``None``: the fitted values ``w_std_``,
            ``b_std_``, ``alpha_`` (and ``input_scale_``); without ``eval_gradient`` this is
            ``log_marginal_likelihood_value_``, from the fitted factorization (jitter
            included).
        eval_gradient : bool, default=False
            Also return the gradient with respect to ``theta`` (exact, by autodiff, in
            float64). Needs ``kernel="analytic"``.

        Returns
        -------
        log_likelihood : float
        log_likelihood_gradient : ndarray of shape (n_free,), optional

        Raises
        ------
        ValueError
            For a ``theta`` of the wrong length or not finite, and where ``K + alpha·I`` is
            not numerically positive definite at ``theta`` (raise ``alpha``).

        Examples
        --------
        >>> import numpy as np
        >>> from ntk_sklearn import NTKRegressor
        >>> X = np.linspace(-1, 1, 20)[:, None]; y = np.sin(3 * X[:, 0])
        >>> model = NTKRegressor(b_std_bounds="fixed").fit(X, y)
        >>> value, grad = model.log_marginal_likelihood(np.log([1.5, 0.01]), eval_gradient=True)
        >>> grad.shape  # d/d log w_std, d/d log alpha
        (2,)
        """
        check_is_fitted(self)
        if theta is None and not eval_gradient:
            return self._fitted_lml()
        if self._hyper["kernel"] != "analytic":
            raise ValueError(
                "log_marginal_likelihood(theta=...) and eval_gradient=True need "
                "kernel='analytic' (the kernel is recomputed at theta)."
            )
        fitted = {"w_std": self.w_std_, "b_std": self.b_std_, "alpha": self.alpha_}
        hyper = _marginal_likelihood.hyperparameters(
            fitted,
            self._hyper,
            check_inside=False,
            scales=self.input_scale_,
            scale_bounds=self._hyper["input_scale_bounds"]
            if self.input_scale_ is not None
            else "fixed",
        )
        theta = hyper.theta if theta is None else _marginal_likelihood.check_theta(theta, hyper)
        evidence = self._evidence(self.X_fit_, self.y_fit_, self._sqrt_weight, hyper)
        value, grad = evidence(theta, eval_gradient)
        return (value, grad) if eval_gradient else value

    def _fitted_lml(self) -> float:
        """The log marginal likelihood from the fitted solver (jitter included)::

        -½ Σ_k (S y_k)ᵀ (S C S)⁻¹ (S y_k) - k/2 (log det(S C S) - Σ log w) - nk/2 log 2π
        """
        y = self.y_fit_.astype(np.float64)
        log_w = 0.0
        if self._sqrt_weight is not None:
            s = self._sqrt_weight.astype(np.float64)
            y = s[:, None] * y
            log_w = 2.0 * np.sum(np.log(s))  # log det C = log det(S C S) - Σ log w
        quad, log_det = self._solver.evidence_terms(self._padded(y))
        n, k = y.shape
        value = _marginal_likelihood.gaussian_log_evidence(np.sum(quad), log_det - log_w, n, k)
        return float(value)
