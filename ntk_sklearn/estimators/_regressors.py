"""NTKRegressor and NNGPRegressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn.estimators._base import NeuralKernelBase
from ntk_sklearn.estimators._docs import _ATTRIBUTES_DOC, _DEFAULTS_DOC, _PARAMS_DOC
from ntk_sklearn.estimators._params import check_times
from ntk_sklearn.gaussian_process._hyperparameters import DEFAULT_BOUNDS


class _KernelRegressor(RegressorMixin, NeuralKernelBase):
    _parameter_constraints = {
        **NeuralKernelBase._parameter_constraints,
        "normalize_y": ["boolean"],
    }

    def __init__(
        self,
        *,
        architecture="fc",
        depth=1,
        activation="relu",
        image_shape=None,
        filter_size=3,
        pooling="flatten",
        flip_invariant=False,
        layers=None,
        w_std=1.0,
        b_std=0.1,
        negative_slope=0.01,
        alpha=0.1,
        t=None,
        learning_rate=1.0,
        normalize_y=True,
        dtype="float64",
        block_size=None,
        kernel="analytic",
        width=512,
        n_samples=8,
        random_state=None,
        solver="auto",
        tol="auto",
        max_iter=None,
        preconditioner_rank="auto",
        optimizer=None,
        n_restarts_optimizer=0,
        w_std_bounds=DEFAULT_BOUNDS["w_std"],
        b_std_bounds=DEFAULT_BOUNDS["b_std"],
        alpha_bounds=DEFAULT_BOUNDS["alpha"],
        input_scale=None,
        input_scale_bounds="fixed",
        verbose=0,
        memory=None,
    ):
        self.architecture = architecture
        self.depth = depth
        self.activation = activation
        self.image_shape = image_shape
        self.filter_size = filter_size
        self.pooling = pooling
        self.flip_invariant = flip_invariant
        self.layers = layers
        self.w_std = w_std
        self.b_std = b_std
        self.negative_slope = negative_slope
        self.alpha = alpha
        self.t = t
        self.learning_rate = learning_rate
        self.normalize_y = normalize_y
        self.dtype = dtype
        self.block_size = block_size
        self.kernel = kernel
        self.width = width
        self.n_samples = n_samples
        self.random_state = random_state
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.preconditioner_rank = preconditioner_rank
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.w_std_bounds = w_std_bounds
        self.b_std_bounds = b_std_bounds
        self.alpha_bounds = alpha_bounds
        self.input_scale = input_scale
        self.input_scale_bounds = input_scale_bounds
        self.verbose = verbose
        self.memory = memory

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Compute the training kernels and factorize them once.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample's share of the loss, as in
            :class:`~sklearn.kernel_ridge.KernelRidge`: at ``t=None`` the mean equals
            ``KernelRidge(kernel="precomputed", alpha=alpha).fit(K, y, sample_weight)``; at
            finite ``t`` it is gradient flow on ``0.5 · Σ w_i ‖f_i - y_i‖² / (n_targets · Σ w)``
            (integer weights are repeated samples). Zero weights drop samples; ``normalize_y``
            uses the weighted mean and standard deviation.

        Returns
        -------
        self : object
        """
        X, y = validate_data(
            self, X, y, multi_output=True, y_numeric=True, dtype=[np.float64, np.float32]
        )
        self._setup()
        w = self._sample_weight(sample_weight, X)
        Y = y.reshape(len(y), -1).astype(np.float64)
        self._y_1d = y.ndim == 1
        if w is not None:
            keep = w > 0
            X, Y, w = X[keep], Y[keep], w[keep]
        if self.normalize_y:
            self.y_train_mean_, self.y_train_std_, Y = _normalize(Y, w)
        else:
            self.y_train_mean_ = np.zeros(Y.shape[1])
            self.y_train_std_ = np.ones(Y.shape[1])
        self._fit_dynamics(X, Y, w)
        return self

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, reset=False, dtype=[np.float64, np.float32])

    def _unnormalize(self, mean, var=None, std=False):
        """Undo ``normalize_y``: means, then standard deviations (``std``) or covariances."""
        with np.errstate(over="ignore"):
            mean = mean * self.y_train_std_ + self.y_train_mean_
            if var is not None and std:  # variances (n*,) → std (n*,) or (n*, k)
                var = np.outer(np.sqrt(np.maximum(var, 0)), self.y_train_std_)
            elif var is not None:  # covariance (n*, n*) → (n*, n*, k)
                var = var[..., None] * self.y_train_std_**2
        for name, value in (("mean", mean), ("uncertainty", var)):
            if value is not None and not np.isfinite(value).all():
                raise ValueError(
                    f"The predicted {name} overflows float64 once the target scale "
                    f"(y_train_std_ up to {self.y_train_std_.max():.3g}) is applied: rescale y "
                    "before fitting."
                )
        if self._y_1d:
            mean = mean[:, 0]
            var = None if var is None else var[..., 0]
        return mean if var is None else (mean, var)

    def predict(self, X, return_std=False, return_cov=False, include_noise=False):
        """Mean (and uncertainty) of the infinite ensemble at training time ``t``.

        What the uncertainty is:

        - :class:`NTKRegressor`: the spread, over random initialisations, of the outputs of the
          infinite ensemble of infinitely wide networks trained for time ``t`` (Lee et al.
          2019, eq. 16). It is not a Bayesian posterior: it does not shrink to the noise level
          where data are dense, and it does not include observation noise.
        - :class:`NNGPRegressor`: at ``t=None`` the Gaussian-process posterior of the latent
          function ``f`` (noise-free), which is also the spread of the ensemble whose last
          layer only is trained; at finite ``t`` that ensemble's spread.
        - ``include_noise=True``: the predictive distribution of a new observation ``y`` under
          the Gaussian process whose evidence :meth:`log_marginal_likelihood` is (and which
          ``optimizer`` fits): its posterior of ``f`` plus independent Gaussian noise of
          variance ``alpha_`` (normalised units, so ``alpha_ · y_train_std_²`` for ``y``);
          ``alpha`` is then read as the noise variance. :class:`NNGPRegressor`: the variance
          above plus ``alpha_``. :class:`NTKRegressor`: the GP with the NTK as covariance,
          ``Θ_** - Θ_* Θ⁻¹(I - e^{-2ηΘt/m}) Θ_*ᵀ + alpha_`` (at ``t=None`` its posterior), whose
          mean is this estimator's mean at every ``t``; not the ensemble's spread plus noise,
          because the NTK's evidence lets its rough part explain noise that the ensemble's
          spread does not carry (measured: held-out 95% intervals covered 83% that way). Learn
          ``alpha`` with ``optimizer="fmin_l_bfgs_b"``: a hand-set ``alpha`` that is only a
          ridge penalty gives intervals of no particular coverage. With ``sample_weight``,
          the noise of a weight-1 sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_std : bool, default=False
            Also return the standard deviation (of ``f``, or of ``y`` with ``include_noise``).
        return_cov : bool, default=False
            Also return the covariance. At most one of the two. Neither is available with
            ``kernel=(apply_fn, params)`` (``ValueError``): the covariance needs the NNGP of the
            initial outputs, which one network does not give. A ``RuntimeWarning`` flags
            variances dominated by rounding (negative ones are set to 0).
        include_noise : bool, default=False
            Add the noise variance ``alpha_`` to the variance (the diagonal of the
            covariance): the predictive distribution of observations rather than of the
            ensemble's outputs. Only with ``return_std`` or ``return_cov``.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of shape (n_samples,) or (n_samples, n_targets), optional
        y_cov : ndarray of shape (n_samples, n_samples) or (n_samples, n_samples, n_targets), \
optional
        """
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        if include_noise and not (return_std or return_cov):
            raise ValueError(
                "include_noise=True adds the noise variance to the predicted variance: use it "
                "with return_std=True or return_cov=True."
            )
        X = self._validate_X(X)
        noise = self.alpha_ if include_noise else 0.0
        if return_cov:
            mean, cov = self._posterior(X, "full", gp=include_noise)
            cov = cov + noise * np.eye(len(cov))
            return self._unnormalize(mean, cov)
        if return_std:
            mean, var = self._posterior(X, "diag", gp=include_noise)
            return self._unnormalize(mean, np.maximum(var, 0) + noise, std=True)
        return self._unnormalize(self._posterior(X, None)[0])

    def predict_trajectory(self, X, times):
        """Mean predictions at many training times, from one eigendecomposition.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        times : array-like of shape (n_times,)
            Training times (``np.inf`` for the converged limit).

        Returns
        -------
        y_mean : ndarray of shape (n_times, n_samples) or (n_times, n_samples, n_targets)
            ``y_mean[i]`` is ``predict(X)`` of the model fitted with ``t=times[i]`` (``np.inf``:
            ``t=None``, with the same jitter).

        Raises
        ------
        MemoryError
            When ``n_times × n_samples × n_targets`` values cannot fit in memory.
        """
        X = self._validate_X(X)
        means = self._trajectory(X, check_times(times))
        means = means * self.y_train_std_ + self.y_train_mean_
        return means[..., 0] if self._y_1d else means

    def sample_y(self, X, n_samples=1, random_state=0):
        """Draw outputs of networks from the ensemble at ``X`` (jointly Gaussian).

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features)
        n_samples : int, default=1
        random_state : int, RandomState instance or None, default=0

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples) or \
(n_samples_X, n_targets, n_samples)
        """
        check_is_fitted(self)
        self._check_uncertainty()
        rng = check_random_state(random_state)
        mean, cov = self.predict(X, return_cov=True)
        if mean.ndim == 1:
            return rng.multivariate_normal(mean, cov, n_samples).T
        draws = [
            rng.multivariate_normal(mean[:, k], cov[..., k], n_samples).T[:, None]
            for k in range(mean.shape[1])
        ]
        return np.concatenate(draws, axis=1)


class NTKRegressor(_KernelRegressor):
    __doc__ = (
        """Infinite ensemble of infinitely wide networks trained by gradient descent on MSE.

    The prediction is the Gaussian over networks at training time ``t`` under the Neural Tangent
    Kernel (Jacot et al. 2018; Lee et al. 2019, eq. 16): mean ``Θ_* Θ⁻¹(I - e^{-ηΘt/m}) y`` and
    the covariance of the ensemble over random initialisations. At ``t=None`` (converged) the
    mean is kernel ridge regression with the NTK.
"""
        + _DEFAULTS_DOC
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC
        + """
    train_nngp_ : ndarray of shape (n_samples, n_samples)
        NNGP between training inputs (no ``alpha``): the covariance of the networks' initial
        outputs, which enters the ensemble's covariance (not with ``kernel=(apply_fn,
        params)``).

    See Also
    --------
    NNGPRegressor : Bayesian posterior of the NNGP (training the last layer only).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn import NTKRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3)); y = np.sin(X[:, 0])
    >>> model = NTKRegressor(depth=2, alpha=1e-6).fit(X, y)
    >>> mean, std = model.predict(X[:5], return_std=True)
    >>> bool(np.allclose(mean, y[:5], atol=1e-3))
    True
    >>> model.set_params(t=10.0).fit(X, y).predict(X[:2]).shape
    (2,)
    >>> w = np.where(X[:, 1] > 0, 2.0, 1.0)  # weight 2 counts a sample twice
    >>> model.fit(X, y, sample_weight=w).predict_trajectory(X[:2], [1.0, np.inf]).shape
    (2, 2)
    """
    )

    _kernel = "ntk"


class NNGPRegressor(_KernelRegressor):
    __doc__ = (
        """Gaussian-process regression with the NNGP kernel of an infinitely wide network.

    At ``t=None`` the prediction is the Bayesian posterior of the NNGP (Lee et al. 2018), which is
    also the converged ensemble of infinitely wide networks whose last layer only is trained by
    gradient descent; at finite ``t``, that ensemble during training (``K_* K⁻¹(I - e^{-ηKt/m})
    y``, covariance ``K_** - K_* K⁻¹(I - e^{-2ηKt/m}) K_*ᵀ``).
"""
        + _DEFAULTS_DOC
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC
        + """
    See Also
    --------
    NTKRegressor : the whole network trained (Neural Tangent Kernel).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn import NNGPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3)); y = np.sin(X[:, 0])
    >>> model = NNGPRegressor(alpha=1e-2).fit(X, y)
    >>> bool(model.score(X, y) > 0.95)
    True
    >>> float(model.log_marginal_likelihood()) < 0
    True
    >>> learned = NNGPRegressor(optimizer="fmin_l_bfgs_b").fit(X, y)
    >>> bool(learned.log_marginal_likelihood_value_ > model.log_marginal_likelihood_value_)
    True
    >>> mean, std_y = learned.predict(X[:3], return_std=True, include_noise=True)
    """
    )

    _kernel = "nngp"


def _normalize(Y: np.ndarray, w: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted mean and standard deviation per column (1 where constant), and normalised ``Y``.

    Computed on ``Y / 2^e`` with ``2^e`` near ``max |Y|`` (exact scaling), so that targets near
    float64's range (1e200) do not overflow when squared.
    """
    top = np.abs(Y).max(axis=0)
    power = np.ldexp(1.0, np.frexp(np.where(top > 0, top, 1.0))[1] - 1)  # ≤ top < 2·power
    Z = Y / power
    mean = np.average(Z, axis=0, weights=w)
    std = np.sqrt(np.average((Z - mean) ** 2, axis=0, weights=w))
    std = np.where(std > 0, std, 1.0 / power)  # a constant target is centred, not scaled
    return mean * power, std * power, (Z - mean) / std
