"""The shared parts of the estimators' docstrings (numpydoc): parameters and attributes."""

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
