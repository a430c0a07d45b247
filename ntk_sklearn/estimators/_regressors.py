"""NTKRegressor and NNGPRegressor."""

from __future__ import annotations

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ntk_sklearn.estimators._base import NeuralKernelBase
from ntk_sklearn.estimators._params import check_times

_PARAMS_DOC = """
    Parameters
    ----------
    architecture : {"fc", "conv", "myrtle"}, default="fc"
        The network (:func:`ntk_sklearn.architectures.make_stack`): fully connected; ``depth``
        3x3 (``filter_size``) "SAME" convolutions then ``pooling``; or Myrtle (convolutions in
        three groups with 2x2 average pooling between them, global average pooling at the end).
        The convolutional ones need ``image_shape``.
    depth : int, default=1
        Number of hidden layers (fully connected), of convolutions (``"conv"``), or of
        convolutions in all (``"myrtle"``, at least 3).
    activation : str or callable, default="relu"
        See :func:`ntk_sklearn.kernels.fc_kernel` for the names with closed forms; names added
        with :func:`~ntk_sklearn.kernels.register_activation` are accepted (checked in ``fit``).
        A callable must be an elementwise, differentiable JAX function (``jnp.tanh``, not
        ``np.tanh``), checked in ``fit``; it uses quadrature. Clones share the callable, so its
        compiled kernels are reused.
    image_shape : (int, int, int), default=None
        ``(height, width, channels)``: each row of ``X`` is an image in that (NHWC, C-order)
        layout, as ``X_images.reshape(n, -1)`` gives. Required by convolutional architectures.
    filter_size : int or (int, int), default=3
        Convolution filter of ``"conv"`` and ``"myrtle"``.
    pooling : {"flatten", "local2", "local3", "local4", "gap"}, default="flatten"
        Readout of ``"conv"``: ``Flatten`` (same-pixel covariances only, ``O(H·W)`` per pair of
        samples); local average pooling of width ``w`` = 2, 3, 4 with stride 1, then
        ``Flatten`` (pixel pairs up to ``w − 1`` apart, ``O(H·W·(2w − 1)²)``: about 13× and 41×
        the cost of ``Flatten`` for widths 2 and 3 on 32×32 images); or global average pooling
        (all pixel pairs, ``O((H·W)²)``: much slower).
    flip_invariant : bool, default=False
        Average the convolutional network over horizontal flips of its input images,
        ``f̄(x) = (f(x) + f(mirror(x))) / 2``: the kernels become
        ``(k(x, x') + k(x, mirror(x'))) / 2`` (twice the cost) and predictions are exactly
        invariant to mirroring an image. For images whose class does not change when mirrored
        (CIFAR: +2 to 5 points on the shared subset, see the README). Needs ``kernel="analytic"``.
    layers : Serial, default=None
        A custom stack from :func:`ntk_sklearn.kernels.serial` (images when ``image_shape`` is
        given); its ``Dense``/``Conv`` layers get ``w_std``/``b_std``. Overrides
        ``architecture``, ``depth``, ``activation``, ``filter_size`` and ``pooling``.
    w_std : float, default=1.0
        Weight standard deviation (NTK parameterization, ``W ~ N(0, w_std² / fan_in)``).
    b_std : float, default=0.1
        Bias standard deviation.
    negative_slope : float, default=0.01
        Slope of ``"leaky_relu"`` for negative inputs, ``|negative_slope| <= 1e6``.
    alpha : float, default=0.1
        Added to the diagonal of the training kernels (absolute units), as in
        :class:`~sklearn.kernel_ridge.KernelRidge` and
        :class:`~sklearn.gaussian_process.GaussianProcessRegressor`: a ridge penalty, or the
        variance of observation noise. Not neural-tangents' ``diag_reg``, which is relative
        (``diag_reg · trace(K) / n``); see the user guide's "Model selection" page.
    t : float or None, default=None
        Training time of gradient descent; ``None`` is the converged limit ``t → ∞``.
        Convention (neural-tangents'): the loss is ``0.5 · mean((f - y)²)`` over all entries of
        ``y``, so the training outputs evolve as ``exp(-learning_rate · t · K / y.size)``: ``t``
        counts steps of gradient descent with step ``learning_rate``. The infinite ensemble of
        networks trained for ``t`` steps on ``y`` is exactly this only with ``alpha=0`` and
        ``normalize_y=False`` (``alpha`` enters the flow; ``normalize_y`` trains on rescaled
        targets).
    learning_rate : float, default=1.0
        Learning rate ``η`` of the gradient flow; only ``learning_rate · t`` matters.
    normalize_y : bool, default=True
        Centre and scale the targets to unit variance before fitting (as in
        :class:`~sklearn.gaussian_process.GaussianProcessRegressor`), and undo it on the
        predictions. ``False`` gives the infinite ensemble of the raw targets (prior mean 0).
    dtype : {"float64", "float32"}, np.float64 or np.float32, default="float64"
        Precision of all computation, applied in a scoped ``jax.enable_x64``: JAX's global
        configuration is left as it is. ``"float32"`` halves memory and is faster. NumPy's
        types and dtypes (``np.float32``, ``np.dtype("float32")``) are accepted too. Numeric
        parameters also accept 0-d NumPy or JAX arrays.
    block_size : int, default=None
        Tile size of the kernel computation (see :func:`~ntk_sklearn.kernels.fc_kernel`).
    kernel : {"analytic", "empirical"} or (apply_fn, params), default="analytic"
        ``"analytic"``: the infinite-width kernels. ``"empirical"``: Monte-Carlo kernels of
        ``n_samples`` finite networks of ``width`` units with the same architecture
        (:func:`~ntk_sklearn.empirical.monte_carlo_kernel`), the same networks for training and
        test inputs. A pair ``(apply_fn, params)``: the empirical NTK (and output-product NNGP)
        of your own JAX model at ``params`` (:func:`~ntk_sklearn.empirical.empirical_ntk`), used
        in the same formulas (the prediction of the linearised model with the initial outputs
        averaged out: the one network at ``params`` has initial outputs ``f₀`` that this
        omits; fit on ``y - f₀(X)`` and add ``f₀`` to predict it). NTK estimators only, and the
        mean only: one network has no NNGP (the
        product of its outputs is a rank-1 kernel), so the NNGP estimators refuse a pair and
        ``return_std``, ``return_cov`` and ``sample_y`` raise ``ValueError``. The pair is shown
        by ``repr`` as the function's name and the size of ``params``.
    width : int, default=512
        Hidden-layer width of the networks of ``kernel="empirical"``.
    n_samples : int, default=8
        Number of random networks averaged by ``kernel="empirical"``.
    solver : {"auto", "cholesky", "eigh", "cg"}, default="auto"
        How the training-kernel systems are solved (:mod:`ntk_sklearn.solvers`): Cholesky
        (``t=None``) or eigendecomposition (any ``t``), ``O(n³)`` time and a few ``n²`` matrices;
        or ``"cg"``: preconditioned conjugate gradients (``t=None``) or Lanczos (finite ``t``),
        which store the training kernel once and need only products with it. ``"auto"`` uses a
        direct solver below 5,000 samples (3,000 for finite ``t``) and when it fits in memory,
        else CG. The choice is in ``solver_``. With CG, each predicted covariance column is one
        more solve: ``return_std`` on many test points is slow.
    tol : float or "auto", default="auto"
        Relative residual at which CG/Lanczos stop. ``"auto"``: 1e-6, except for the
        classifiers from 5,000 training samples on, where ``solver="auto"`` picks CG: 1e-3
        (only the argmax of the outputs is used; on Fashion-MNIST at 5,000-20,000 samples it
        changed at most 0.02 % of the test predictions, with half the iterations or fewer:
        ``benchmarks/bench_cg_defaults.py``).
    max_iter : int, default=None
        Most CG/Lanczos iterations (``None``: ``n_samples``). Not converging warns
        (:class:`~sklearn.exceptions.ConvergenceWarning`) with the residual.
    preconditioner_rank : int or "auto", default="auto"
        Rank of CG's Nyström preconditioner (more: fewer iterations, ``O(n·rank)`` memory, a
        setup of ``O(n·rank²)``). ``"auto"``: ``n_samples / 100`` within ``[100, 500]``, so the
        setup costs at most a few products with the kernel.
    random_state : int, RandomState instance or None, default=None
        Seeds the networks of ``kernel="empirical"`` and the restarts of ``optimizer``; an int
        makes fits reproducible.
    optimizer : "fmin_l_bfgs_b", callable or None, default=None
        Learn ``w_std``, ``b_std`` and ``alpha`` in ``fit`` by maximising
        :meth:`log_marginal_likelihood` (the evidence of the Gaussian process with this
        estimator's kernel as covariance and ``alpha`` as noise variance, in normalised-``y``
        units), as :class:`~sklearn.gaussian_process.GaussianProcessRegressor` does: L-BFGS-B on
        ``theta = log([w_std, b_std, alpha])`` within the bounds, exact gradients by autodiff in
        float64, starting from the given values. A callable is called as
        ``optimizer(obj_func, initial_theta, bounds)`` and returns ``(theta_opt, func_min)``
        (``obj_func(theta, eval_gradient=True)`` returns the negative log marginal likelihood
        and its gradient). ``None`` uses the values as given. Needs ``kernel="analytic"``; the
        same evidence at every ``t`` (the kernel's, not that of the trained networks at time
        ``t``). Costs a few tens of kernel evaluations with their reverse pass, unblocked:
        memory ``O(n²·depth)``, for up to a few thousand samples (a ``MemoryError`` says so
        before allocating). Fitted values: ``w_std_``, ``b_std_``, ``alpha_``. A run that does
        not converge gives a :class:`~sklearn.exceptions.ConvergenceWarning` with the best value
        found.
    n_restarts_optimizer : int, default=0
        Further runs of ``optimizer`` from points drawn log-uniformly within the bounds
        (from ``random_state``); the best is kept.
    w_std_bounds, b_std_bounds, alpha_bounds : pair of float or "fixed", \
default=(0.05, 20.0), (1e-4, 10.0), (1e-8, 1e3)
        Search range ``(low, high)``, ``0 < low <= high``, of each hyperparameter for
        ``optimizer``, or ``"fixed"`` to keep it as given (it then leaves ``theta``). The
        starting value must lie within its bounds (``ValueError`` otherwise: ``b_std=0`` or
        ``alpha=0`` needs ``"fixed"``).
    input_scale : float, array-like of shape (n_features,) or None, default=None
        Per-feature factors applied to ``X`` before the kernel: the network's first-layer
        weights from feature ``j`` have variance ``w_std² · input_scale[j]² / n_features``.
        ``None``: no scaling (all 1). With ``optimizer`` and ``input_scale_bounds`` a pair, the
        starting values of automatic relevance determination (``None``: start from 1).
    input_scale_bounds : pair of float or "fixed", default="fixed"
        ``(low, high)``: ``optimizer`` learns one input scale per feature (automatic relevance
        determination, like an ARD length scale of :class:`~sklearn.gaussian_process.kernels.RBF`:
        irrelevant features get small scales), ``n_features`` more entries of ``theta``.
        Fitted values: ``input_scale_``. The bounds matter: on standardised Friedman #1,
        widening them from ``(1e-3, 1e3)`` to ``(1e-5, 1e5)`` (the inverse of the RBF's default
        length-scale bounds) let the irrelevant features' scales fall far below the relevant
        ones' (0.004-0.07) and raised the evidence and R² of GELU and sin kernels, but not a
        ReLU NTK's (its noise fell to the lower bound): compare
        ``log_marginal_likelihood_value_`` across bounds.
    verbose : int, default=0
        Progress of long fits and predictions: ``1`` prints the memory plan of ``fit``, then
        every 10 s the kernel tiles done with an estimate of the time left and CG's iteration
        with its relative residual; ``2`` prints every tile and iteration. Silent at ``0``.
    memory : str, joblib.Memory or None, default=None
        Cache of the kernel matrices (between training rows, and of new rows against them), as
        :class:`~sklearn.pipeline.Pipeline`'s ``memory``: a folder or a
        :class:`joblib.Memory`. Kernels are keyed on the kernel's hyperparameters and the
        inputs, not on ``alpha``, ``t``, the targets or the solver, so a
        :class:`~sklearn.model_selection.GridSearchCV` over ``alpha``/``t`` computes one kernel
        per fold, and fitting or predicting again on the same rows reads the stored kernels:
        bitwise the same predictions. ``None``: no caching. For a grid over ``alpha`` and ``t``
        the CV estimators (:class:`~ntk_sklearn.NTKRegressorCV` ...) are faster still.
"""

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    n_features_in_ : int
        Number of features seen during fit.
    X_fit_ : ndarray of shape (n_samples, n_features)
        A copy of the training inputs (the kernel's second argument at predict time).
    y_fit_ : ndarray of shape (n_samples, n_targets)
        Training targets after normalisation.
    dual_coef_ : ndarray of shape (n_samples, n_targets)
        ``A_t y`` (``S A_t S y`` with ``S = diag(√sample_weight)``): the mean prediction is
        ``kernel(X, X_fit_) @ dual_coef_``.
    train_kernel_ : ndarray or jax.Array of shape (n_samples, n_samples)
        The kernel of the dynamics (NTK or NNGP) between training inputs, plus ``alpha`` on the
        diagonal; with ``sample_weight`` ``w``, ``diag(√w) K diag(√w) + alpha·I``. Samples of
        zero weight are dropped (from ``X_fit_`` and ``y_fit_`` too). With ``solver_ == "cg"``
        on several devices, a jax.Array row-sharded over all of them, padded with ``alpha·I``
        to a multiple of the device count.
    solver_ : str
        The solver used: ``"cholesky"``, ``"eigh"`` or ``"cg"``.
    n_iter_ : int
        Iterations of CG/Lanczos in fit (``solver_ == "cg"``); 1 for a direct solver (one
        factorization).
    chol_ : ndarray of shape (n_samples, n_samples)
        Lower Cholesky factor of the training kernel plus ``jitter_`` (``t=None`` only).
    evals_, evecs_ : ndarray
        Its eigendecomposition (finite ``t`` only); eigenvalues below the rounding error
        ``n·eps·λ_max`` are exactly 0 (the null space, whose components are dropped).
    jitter_ : float
        Added to the training kernel's diagonal in fit when it was numerically singular
        (``t=None``; with a ``RuntimeWarning``), else 0. ``predict_trajectory`` uses it too.
    kernel_seed_ : int
        Seed of the networks of ``kernel="empirical"`` (drawn from ``random_state`` in fit).
    w_std_, b_std_, alpha_ : float
        The hyperparameters of the fitted model: learned by ``optimizer``, else as given.
        ``alpha_`` is in normalised-``y`` units (the noise variance of ``y`` is
        ``alpha_ · y_train_std_²``).
    input_scale_ : ndarray of shape (n_features,) or None
        The per-feature input scales of the fitted model (learned with ``input_scale_bounds``
        a pair and an ``optimizer``, else ``input_scale``); ``None`` without input scaling.
    log_marginal_likelihood_value_ : float
        :meth:`log_marginal_likelihood` at the fitted hyperparameters, from the fitted
        factorization (jitter included). Not set with ``solver_ == "cg"`` (it would need a
        dense factorization; :meth:`log_marginal_likelihood` computes it on demand).
    y_train_mean_, y_train_std_ : ndarray of shape (n_targets,)
        Target normalisation (0 and 1 when ``normalize_y=False``).
"""

_DEFAULTS_DOC = """
    The defaults (one hidden layer, ReLU, ``w_std=1.0``, ``b_std=0.1``, ``alpha=0.1``) were
    chosen by mean 5-fold cross-validated R² over depth {1, 3, 5} × w_std {1, 1.5, 2} × b_std
    {0, 0.1, 0.5} × alpha {1e-6, 1e-2, 0.1} on standardised diabetes and Friedman #1 data, for
    both regressors (``python benchmarks/choose_defaults.py``): the best setting was depth 1,
    ``w_std=1``, ``b_std=0.5``, ``alpha=0.1`` (mean R² 0.668 for both), and the defaults are
    within 0.002 of it (NTK 0.666, NNGP 0.668), less than the spread between folds, so they
    were kept (on digits they were within 0.2% of the best accuracy of the earlier grid,
    without b_std). Better: learn
    ``w_std``, ``b_std`` and ``alpha`` by marginal likelihood (``optimizer="fmin_l_bfgs_b"``),
    which on the same data matches the tuned grid in a tenth of its time
    (``benchmarks/bench_lml.py``), or tune them by cross-validation like any kernel's.
"""


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
        w_std_bounds=(0.05, 20.0),
        b_std_bounds=(1e-4, 10.0),
        alpha_bounds=(1e-8, 1e3),
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
