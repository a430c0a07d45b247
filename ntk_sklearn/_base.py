"""Shared machinery of the estimators: parameters, precision scope, kernels, factorization.

Validation happens here, at the boundary; below it (``kernels``, ``dynamics``) functions are pure
JAX on validated arrays. Fitted state is NumPy arrays only, so estimators pickle and clone.

Sample weights ``w`` enter the dynamics as in :class:`~sklearn.kernel_ridge.KernelRidge`: with
``S = diag(√w)`` the loss ``0.5 · Σ_i w_i ‖f_i - y_i‖² / (k · Σ_i w_i)`` gives the gradient flow
of the unweighted case with the training kernel ``S Θ S + α I`` in place of ``Θ + α I`` and
``A_t`` replaced by ``S A_t(S Θ S + α I) S``; integer weights are exactly repeated samples.
"""

from __future__ import annotations

import copy
import warnings
from numbers import Integral, Real
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import (
    HasMethods,
    Interval,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from ntk_sklearn import _kernel_cache, _marginal_likelihood, _memory, _progress, dynamics
from ntk_sklearn._pickle_refs import picklable, picklable_object
from ntk_sklearn.architectures import ARCHITECTURES, POOLINGS, make_stack, reshape_inputs
from ntk_sklearn.empirical import empirical_nngp, empirical_ntk, monte_carlo_kernel
from ntk_sklearn.empirical._utils import check_params, params_bytes
from ntk_sklearn.kernels import Serial, _tiling, available_activations
from ntk_sklearn.kernels._serial import _WORK_FACTOR, TILE_BYTES
from ntk_sklearn.solvers import (
    CGSolver,
    CholeskySolver,
    EighSolver,
    choose_solver,
    solver_memory,
)
from ntk_sklearn.solvers._base import CG_MIN_N
from ntk_sklearn.solvers._sharding import assemble_rows, device_mesh

#: Test rows per chunk when only means and variances are predicted.
_PREDICT_CHUNK = 4096
#: A variance below this many ``eps`` times the terms it is the sum of is rounding noise.
_CANCELLATION = 10.0
#: Largest accepted ``|negative_slope|``: beyond it leaky ReLU's kernel overflows for no gain.
_MAX_SLOPE = 1e6
#: Numeric parameters that also accept 0-d NumPy or JAX arrays (converted to Python numbers).
_REAL_PARAMS = ("w_std", "b_std", "negative_slope", "alpha", "t", "learning_rate")
_INT_PARAMS = ("depth", "block_size", "width", "n_samples", "n_restarts_optimizer")
#: Bounds parameters of the hyperparameters learned by ``optimizer``.
_BOUNDS_PARAMS = tuple(f"{name}_bounds" for name in _marginal_likelihood.NAMES)


def check_memory(n_bytes: int, what: str, extra: str = "", dtype: str = "float64") -> None:
    """``MemoryError`` before allocating what cannot fit, with the estimators' advice."""
    half = "Use dtype='float32' (half the memory), fewer" if dtype == "float64" else "Use fewer"
    _memory.check_memory(
        n_bytes, what, f"{half} training samples, or predict in smaller batches{extra}."
    )


def _as_float(leaf, dtype: str):
    """A floating parameter leaf in ``dtype``; other leaves unchanged."""
    arr = jnp.asarray(leaf)
    return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else leaf


def _python_number(value, kinds: str):
    """A 0-d NumPy/JAX array of a dtype kind in ``kinds`` as a Python number; else unchanged."""
    if isinstance(value, (np.ndarray, jax.Array)) and value.ndim == 0 and value.dtype.kind in kinds:
        return int(value) if value.dtype.kind in "iu" else float(value)
    return value


def _dtype_name(value):
    """``"float32"``/``"float64"`` for those NumPy/JAX scalar types and dtypes; else unchanged."""
    if isinstance(value, (type, np.dtype)):
        try:
            name = np.dtype(value).name
        except TypeError:
            return value
        if name in ("float32", "float64"):
            return name
    return value


class _Kernels(NamedTuple):
    """NNGP and NTK matrices of a user's model; a field is ``None`` when not computed."""

    nngp: np.ndarray | None
    ntk: np.ndarray | None


class _Shown:
    """A stand-in whose ``repr`` is a given text (for ``repr`` of estimators)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _describe_kernel(kernel: tuple) -> str:
    """Short text for ``kernel=(apply_fn, params)``: the function's name and the params' size."""
    if len(kernel) != 2:
        return f"<tuple of length {len(kernel)}>"
    apply_fn, params = kernel
    name = getattr(apply_fn, "__name__", type(apply_fn).__name__)
    leaves = jax.tree_util.tree_leaves(params)
    size = sum(int(np.size(leaf)) for leaf in leaves)
    return f"({name}, <params: {len(leaves)} arrays, {size} values>)"


class NeuralKernelBase(BaseEstimator):
    """Base of the four estimators; ``_kernel`` is "ntk" or "nngp"."""

    _kernel: str = "ntk"
    #: CG's tolerance for ``tol="auto"`` from ``CG_MIN_N`` samples on (classifiers: 1e-3).
    _AUTO_TOL_LARGE: float = 1e-6

    _parameter_constraints: dict = {
        "architecture": [StrOptions(set(ARCHITECTURES))],
        "depth": [Interval(Integral, 0, None, closed="left")],
        "image_shape": [tuple, list, None],
        "filter_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "pooling": [StrOptions(set(POOLINGS))],
        "flip_invariant": ["boolean"],
        "layers": [Serial, None],
        # Names are checked in fit against the live registry (register_activation adds names).
        "activation": [str, callable],
        "w_std": [Interval(Real, 0, None, closed="neither")],
        "b_std": [Interval(Real, 0, None, closed="left")],
        "negative_slope": [Interval(Real, -_MAX_SLOPE, _MAX_SLOPE, closed="both")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "t": [Interval(Real, 0, None, closed="both"), None],  # inf: converged, as None
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        # Also NumPy's float32/float64 types and dtypes: normalised by ``_resolved_params``.
        "dtype": [StrOptions({"float64", "float32"})],
        "block_size": [Interval(Integral, 1, None, closed="left"), None],
        "kernel": [StrOptions({"analytic", "empirical"}), tuple],
        "width": [Interval(Integral, 1, None, closed="left")],
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "solver": [StrOptions({"auto", "cholesky", "eigh", "cg"})],
        "tol": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left"), None],
        "preconditioner_rank": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "optimizer": [StrOptions({"fmin_l_bfgs_b"}), callable, None],
        "n_restarts_optimizer": [Interval(Integral, 0, None, closed="left")],
        # Pairs are checked in fit (0 < low <= high < inf), with the value inside them.
        "w_std_bounds": [tuple, list, StrOptions({"fixed"})],
        "b_std_bounds": [tuple, list, StrOptions({"fixed"})],
        "alpha_bounds": [tuple, list, StrOptions({"fixed"})],
        "input_scale": [Interval(Real, 0, None, closed="neither"), "array-like", None],
        "input_scale_bounds": [tuple, list, StrOptions({"fixed"})],
        "verbose": ["verbose"],
        "memory": [None, str, HasMethods(["cache"])],
    }

    # -- parameters, repr, clone ------------------------------------------------------------

    def _resolved_params(self) -> dict:
        """The parameters with 0-d arrays as Python numbers and dtypes as names.

        The estimator's own attributes are left as the user set them (scikit-learn's rule).
        """
        params = self.get_params(deep=False)
        for name in _REAL_PARAMS:
            params[name] = _python_number(params[name], "iuf")
        for name in _INT_PARAMS:
            params[name] = _python_number(params[name], "iu")
        params["dtype"] = _dtype_name(params["dtype"])
        if isinstance(params["t"], Real) and params["t"] == np.inf:
            params["t"] = None  # the converged limit, as predict_trajectory takes it
        return params

    def _validate_params(self) -> None:
        validate_parameter_constraints(
            self._parameter_constraints,
            self._resolved_params(),
            caller_name=self.__class__.__name__,
        )

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        if not isinstance(self.kernel, tuple):
            return super().__repr__(N_CHAR_MAX)
        # A user's parameter arrays would fill the screen: show their size instead.
        shown = copy.copy(self)
        shown.kernel = _Shown(_describe_kernel(self.kernel))
        return BaseEstimator.__repr__(shown, N_CHAR_MAX)

    def __sklearn_clone__(self):
        new = super().__sklearn_clone__()
        # clone deep-copies parameters, and a deep copy of a jit-compiled function is a new
        # object: the kernel code's compilation cache, keyed on the function, would miss and
        # every clone recompile. Functions are not state: clones share them.
        if callable(self.activation):
            new.activation = self.activation
        if isinstance(self.kernel, tuple) and self.kernel and callable(self.kernel[0]):
            new.kernel = (self.kernel[0], *new.kernel[1:])
        return new

    def __getstate__(self) -> dict:
        # A function (``activation=jnp.tanh``) as a reference that pickles (_pickle_refs.py).
        state = dict(super().__getstate__())  # object.__getstate__ gives __dict__ itself
        state["activation"] = picklable(state["activation"], "activation")
        state["layers"] = picklable_object(state["layers"])
        if "_hyper" in state:
            state["_hyper"] = dict(state["_hyper"])
            state["_hyper"]["activation"] = picklable(state["_hyper"]["activation"], "activation")
            state["_hyper"]["layers"] = picklable_object(state["_hyper"]["layers"])
        return state

    # -- fit-time checks ---------------------------------------------------------------------

    def _setup(self) -> None:
        """Freeze the validated parameters for this fit; check what the constraints cannot."""
        self._hyper = self._resolved_params()
        for name in (*_BOUNDS_PARAMS, "input_scale_bounds"):
            _marginal_likelihood.check_bounds(self._hyper[name], name)
        p = self._hyper
        per_feature = p["input_scale_bounds"] != "fixed" or np.size(p["input_scale"]) > 1
        if p["flip_invariant"] and per_feature:
            raise ValueError(
                "flip_invariant=True cannot be combined with per-feature input scales "
                "(input_scale a vector or input_scale_bounds a pair): scales that differ between "
                "a pixel and its mirror image would break the invariance. Use one number for "
                "input_scale and input_scale_bounds='fixed'."
            )
        self._check_kernel()
        self._check_activation()

    def _user_model(self) -> bool:
        return isinstance(self.kernel, tuple)

    def _check_kernel(self) -> None:
        """Validate ``kernel``; for ``"empirical"`` draw the seed of its networks once."""
        p = self._hyper
        custom = p["architecture"] != "fc" or p["layers"] is not None or p["flip_invariant"]
        if self.kernel != "analytic" and custom:
            raise ValueError(
                f"architecture={p['architecture']!r}, layers= and flip_invariant=True need "
                "kernel='analytic': the finite-width kernels (kernel='empirical' or your own "
                "model) are of a fully-connected network or of the model you pass."
            )
        if p["kernel"] == "analytic":
            self._stack()  # a clear error for an architecture that cannot be built
        if self._user_model():
            if len(self.kernel) != 2 or not callable(self.kernel[0]):
                raise ValueError(
                    "kernel must be 'analytic', 'empirical' or a pair (apply_fn, params) with "
                    f"apply_fn(params, x) a JAX function; got a tuple of length "
                    f"{len(self.kernel)}."
                )
            if self._kernel == "nngp":
                raise ValueError(
                    f"{type(self).__name__} cannot use kernel=(apply_fn, params): the outputs of "
                    "one network give a rank-1 kernel, not the NNGP (an average over random "
                    f"networks). Use {type(self).__name__.replace('NNGP', 'NTK')} with your "
                    "model (its empirical NTK), or kernel='empirical' for Monte-Carlo NNGP "
                    "kernels of the built-in network."
                )
        if self.kernel == "empirical":
            # The same networks must serve the training and every test kernel.
            self.kernel_seed_ = int(check_random_state(self.random_state).randint(2**31 - 1))

    def _check_activation(self) -> None:
        """A name in the live registry, or a JAX-traceable elementwise function."""
        activation = self._hyper["activation"]
        if self._user_model():
            return  # the user's model has its own activations
        if isinstance(activation, str):
            if activation not in available_activations():
                raise ValueError(
                    f"Unknown activation {activation!r}; expected one of "
                    f"{available_activations()} (ntk_sklearn.kernels.register_activation adds "
                    "names) or an elementwise JAX function such as jnp.tanh."
                )
            return
        probe = jax.ShapeDtypeStruct((3, 2), self._np_dtype())
        with self._scope():
            try:
                out = jax.eval_shape(activation, probe)
                # The quadrature also needs σ' by autodiff.
                jax.eval_shape(jax.grad(lambda x: jnp.sum(activation(x))), probe)
            except Exception as err:  # any failure to trace: report it as the user's error
                raise ValueError(
                    "activation must be a JAX-traceable elementwise function (use jnp.tanh, not "
                    "np.tanh; jnp.where instead of Python if/else on the input): tracing "
                    f"{activation!r} failed with {type(err).__name__}: "
                    f"{str(err).splitlines()[0] if str(err) else ''}"
                ) from err
        if getattr(out, "shape", None) != probe.shape or not jnp.issubdtype(
            out.dtype, jnp.floating
        ):
            raise ValueError(
                "activation must be elementwise: it must map a float array of shape (3, 2) to a "
                f"float array of the same shape; {activation!r} returned {out}."
            )

    def _sample_weight(self, sample_weight, X: np.ndarray) -> np.ndarray | None:
        """Validated non-negative weights (float64), not all zero; ``None`` stays ``None``."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

    # -- precision and kernels ---------------------------------------------------------------

    def _scope(self):
        """float64 inside a scoped ``jax.enable_x64``; JAX's global config is never changed."""
        return jax.enable_x64(self._hyper["dtype"] == "float64")

    def _np_dtype(self) -> np.dtype:
        return np.dtype(self._hyper["dtype"])

    def _kernel_kwargs(self) -> dict:
        p = self._hyper
        return {name: p[name] for name in ("depth", "activation", "w_std", "b_std")} | {
            "negative_slope": float(p["negative_slope"])
        }

    def _kernel_names(self) -> tuple[str, ...]:
        if self._kernel == "nngp":
            return ("nngp",)
        # A single model has no NNGP (see _check_kernel): its NTK only, for the mean.
        return ("ntk",) if self._user_model() else ("nngp", "ntk")

    def _kernels(self, x1: np.ndarray, x2: np.ndarray | None = None, names=None):
        """The kernels ``names`` (default: those the dynamics need) between rows of x1 and x2.

        Read from ``memory`` (and kernels a CV estimator hands over) when there: see
        :mod:`ntk_sklearn._kernel_cache`.
        """
        names = names or self._kernel_names()
        out = _kernel_cache.cached_kernels(self, x1, x2, names, self._compute_kernels)
        return _Kernels(out.get("nngp"), out.get("ntk"))

    def _compute_kernels(self, x1: np.ndarray, x2: np.ndarray | None, names) -> dict:
        """The kernels ``names`` between rows of x1 and x2, computed: ``{name: matrix}``."""
        x1, x2 = self._scaled(x1), None if x2 is None else self._scaled(x2)
        if self._user_model():
            apply_fn, params = self.kernel
            n_params = check_params(params)  # finite floats, before any copy
            _memory.check_memory(
                params_bytes(params, self._hyper["dtype"]),
                f"Holding your model's {n_params} parameters as JAX arrays in "
                f"{self._hyper['dtype']}",
                "Use a smaller model, or dtype='float32' with float32 parameters (no copy).",
            )
            # The user's parameters in the estimator's precision (their arrays are not changed).
            params = jax.tree_util.tree_map(lambda a: _as_float(a, self._hyper["dtype"]), params)
            fns = {"nngp": empirical_nngp, "ntk": empirical_ntk}
            with warnings.catch_warnings():  # a zero training kernel is an error below
                warnings.filterwarnings("ignore", "The empirical NTK is zero", RuntimeWarning)
                out = {name: fns[name](apply_fn, params, x1, x2) for name in names}
            if x2 is None and "ntk" in out and not np.any(out["ntk"]):
                raise ValueError(
                    f"The empirical NTK of your model is zero on all {x1.shape[0]} inputs: its "
                    "outputs do not change with params to first order (zero gradients: "
                    "jnp.round, jnp.floor, jnp.sign, comparisons, integer casts or "
                    "jax.lax.stop_gradient between params and the outputs, or dead units). A "
                    "zero kernel learns nothing (every prediction would be the mean of y). Make "
                    "apply_fn differentiable in params."
                )
            return out
        if self.kernel == "empirical":
            kernels = monte_carlo_kernel(
                x1,
                x2,
                width=self._hyper["width"],
                n_samples=self._hyper["n_samples"],
                random_state=self.kernel_seed_,
                get=names,
                **self._kernel_kwargs(),
            )
        else:
            kernels = self._stack()(
                self._rows(x1),
                None if x2 is None else self._rows(x2),
                get=names,
                block_size=self._hyper["block_size"],
                verbose=self._hyper["verbose"],
            )
        return {name: getattr(kernels, name) for name in names}

    def _stack(self) -> Serial:
        """The analytic kernel's stack (:func:`~ntk_sklearn.architectures.make_stack`)."""
        p = self._hyper
        return make_stack(
            p["architecture"],
            depth=p["depth"],
            activation=p["activation"],
            w_std=p["w_std"],
            b_std=p["b_std"],
            negative_slope=float(p["negative_slope"]),
            image_shape=p["image_shape"],
            filter_size=p["filter_size"],
            pooling=p["pooling"],
            flip_invariant=p["flip_invariant"],
            layers=p["layers"],
        )

    def _rows(self, x: np.ndarray) -> np.ndarray:
        """The rows of a 2-D ``X`` as the stack's inputs (images when it takes images)."""
        p = self._hyper
        return reshape_inputs(
            x, architecture=p["architecture"], image_shape=p["image_shape"], layers=p["layers"]
        )

    def _scaled(self, x: np.ndarray) -> np.ndarray:
        """``x ⊙ input_scale_`` (a new array), or ``x`` itself without input scales."""
        scale = getattr(self, "input_scale_", None)
        return x if scale is None else x * scale.astype(x.dtype)

    def _initial_input_scale(self, n_features: int) -> np.ndarray | None:
        """``input_scale`` as a positive vector of ``n_features`` (``None``: no scaling)."""
        p = self._hyper
        if p["input_scale"] is None:  # a pair of bounds: the scales enter theta, from 1
            return np.ones(n_features) if p["input_scale_bounds"] != "fixed" else None
        scale = np.asarray(p["input_scale"])
        if scale.dtype.kind not in "iuf":  # strings ("2") are not numbers here
            raise ValueError(
                "input_scale must be a positive number or a vector of positive numbers (one per "
                f"feature of X); got {p['input_scale']!r} of dtype {scale.dtype}."
            )
        scale = scale.astype(np.float64)
        if scale.ndim == 0:
            scale = np.full(n_features, float(scale))
        if scale.shape != (n_features,) or not (np.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(
                f"input_scale must be a positive number or a vector of {n_features} positive "
                f"numbers (one per feature of X); got shape {scale.shape}"
                + ("" if scale.shape != (n_features,) else " with non-positive or inf entries")
                + "."
            )
        return scale

    def _test_nngp(self, x: np.ndarray, full: bool, name: str = "nngp") -> np.ndarray:
        """Kernel ``name`` between test rows (``full``), or its diagonal (prior variances)."""
        if self.kernel == "analytic":
            stack = self._stack()
            if full:
                return stack(self._rows(self._scaled(x)), get=name)
            return stack.diag(self._rows(self._scaled(x)), get=name)
        k = getattr(self._kernels(x, names=(name,)), name)
        return k if full else np.diag(k).copy()

    def _computed(self, which: str, x: np.ndarray, compute):
        """``compute()`` (kernels), with an overflow in the kernel code reported as ours."""
        try:
            return compute()
        except FloatingPointError as err:
            raise self._nonfinite_error(which, x) from err

    def _check_finite(self, k, which: str, x: np.ndarray) -> None:
        """``ValueError`` naming the cause when a kernel overflowed or a model gave NaN."""
        if not np.isfinite(k).all():
            raise self._nonfinite_error(which, x)

    def _nonfinite_error(self, which: str, x: np.ndarray) -> ValueError:
        if self._user_model():
            return ValueError(
                f"The empirical NTK {which} is not finite: check that apply_fn(params, x) and "
                "its gradients with respect to params are finite on these inputs (NaN or inf "
                "outputs, or overflow: rescale the inputs)."
            )
        p = self._hyper
        float32 = " or use dtype='float64' (float32 overflows above 3e38)" * (
            p["dtype"] == "float32"
        )
        callable_act = "; or the activation returned NaN/inf" if callable(p["activation"]) else ""
        return ValueError(
            f"The {self._kernel.upper()} {which} overflowed to inf or NaN in {p['dtype']}: the "
            f"inputs reach |x| = {np.abs(x).max():.3g}, with depth={p['depth']}, "
            f"w_std={p['w_std']}, b_std={p['b_std']} (the kernel grows like "
            "|x|²/n_features · w_std^(2·(depth+1)) for ReLU-like activations). Rescale the "
            "inputs (StandardScaler or ntk_sklearn.preprocessing.NormScaler), lower w_std, "
            f"b_std or depth{float32}{callable_act}."
        )

    # -- fit -----------------------------------------------------------------------------------

    def _fit_dynamics(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None = None) -> None:
        """Training kernels, computed once, and their factorization, computed once.

        ``Y`` is 2-D ``(n, k)``, ``w`` positive weights or ``None``. Stores ``X_fit_``,
        ``y_fit_``, ``train_kernel_`` (the kernel of the dynamics, NTK or NNGP, weighted
        ``S Θ S``, plus ``alpha·I``), for the NTK also ``train_nngp_`` (the prior covariance of
        the initial outputs, without ``alpha``: neural-tangents' convention), ``dual_coef_``
        (``S A_t S y``), ``jitter_``, and ``chol_`` (``t=None``) or ``evals_``/``evecs_``.
        """
        n = X.shape[0]
        self.solver_ = self._choose_solver(n, Y.shape[1])
        stale = ("chol_", "evals_", "evecs_", "train_nngp_", "cg_solver_", "n_iter_", "_solver")
        for name in (*stale, "log_marginal_likelihood_value_"):
            self.__dict__.pop(name, None)  # from an earlier fit
        if self.solver_ != "cg":  # before the optimizer's work, which would then be lost
            self._check_fit_memory(n, Y.shape[1], weighted=w is not None, X=X)
        self._learn_hyperparameters(X, Y, w)
        if self.solver_ == "cg":
            return self._fit_iterative(X, Y, w)
        X, Y = self._prepare_targets(X, Y, w)
        with self._scope():
            which = "between training inputs"
            kernels = self._computed(which, X, lambda: self._kernels(X))
            raw = kernels.ntk if self._kernel == "ntk" else kernels.nngp
            self._check_finite(raw, which, X)
            if "nngp" in self._kernel_names() and self._kernel == "ntk":
                self._check_finite(kernels.nngp, "(NNGP) between training inputs", X)
                self.train_nngp_ = kernels.nngp
            raw = jnp.asarray(raw)
            if w is not None:
                s = jnp.asarray(self._sqrt_weight)
                raw = s[:, None] * raw * s[None, :]  # S Θ S
            train = dynamics.add_diagonal(raw, self._hyper["alpha"])
            self.train_kernel_ = np.asarray(train)
            self.y_fit_ = Y.astype(self._hyper["dtype"])
            self.X_fit_ = X
            y = jnp.asarray(self.y_fit_)
            alpha = self._hyper["alpha"]
            if self._hyper["t"] is None:
                self._solver = CholeskySolver(alpha=alpha).fit(self.train_kernel_, self._rate_)
                self.chol_, self.jitter_ = self._solver.chol_, self._solver.jitter_
            else:
                solver = EighSolver(null_space="drop", alpha=alpha)
                self._solver = solver.fit(self.train_kernel_, self._rate_)
                self.evals_, self.evecs_ = self._solver.evals_, self._solver.evecs_
            self.dual_coef_ = np.asarray(self._apply(y, self._hyper["t"]))
            self.n_iter_ = 1  # one factorization
            # A singular kernel at finite t warns when log_marginal_likelihood() is called.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                self.log_marginal_likelihood_value_ = self._fitted_lml()
        if not np.isfinite(self.dual_coef_).all():
            raise ValueError(
                f"The dual coefficients overflowed in {self._hyper['dtype']} (targets up to "
                f"|y| = {np.abs(Y).max():.3g} over a kernel of scale "
                f"{np.abs(self.train_kernel_).max():.3g}): rescale y (normalize_y=True), "
                "increase alpha, or use dtype='float64'."
            )

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
                learned = dict(
                    zip(_marginal_likelihood.NAMES, hyper.with_theta(theta), strict=True)
                )
                p.update(learned)
                scale = hyper.scales_with_theta(theta)
        self.w_std_, self.b_std_, self.alpha_ = (float(p[n]) for n in _marginal_likelihood.NAMES)
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
        return float(
            -0.5 * np.sum(quad) - 0.5 * k * (log_det - log_w) - 0.5 * n * k * np.log(2 * np.pi)
        )

    def _choose_solver(self, n: int, n_targets: int) -> str:
        """The solver of this fit: ``solver``, or by size and memory for ``"auto"``."""
        name = self._hyper["solver"]
        if name == "auto":
            name = choose_solver(n, n_targets, self._hyper["t"], False, self._hyper["dtype"])
        if name == "cholesky" and self._hyper["t"] is not None:
            raise ValueError(
                "solver='cholesky' solves only the converged limit t=None; use solver='eigh' or "
                "'cg' (Lanczos) for a finite training time."
            )
        return name

    def _prepare_targets(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None):
        """Copies of ``X`` and ``Y`` in the fit's precision; the rate and weights of the loss."""
        n = X.shape[0]
        # A copy: predictions must not change when the caller's array does.
        X = np.array(X, dtype=self._hyper["dtype"], copy=True)
        Y = np.asarray(Y, dtype=np.float64)
        if self._hyper["dtype"] == "float32" and np.abs(Y).max() > np.finfo(np.float32).max:
            raise ValueError(
                f"y reaches |y| = {np.abs(Y).max():.3g}, beyond float32's range (3.4e38): use "
                "dtype='float64', normalize_y=True, or rescale y."
            )
        # Weighted loss 0.5 Σ w_i‖f_i - y_i‖² / m with m = k·Σw (= y.size without weights).
        self._rate_ = self._hyper["learning_rate"] / (Y.shape[1] * (n if w is None else w.sum()))
        self._sqrt_weight = None if w is None else np.sqrt(w).astype(self._hyper["dtype"])
        self.jitter_ = 0.0
        return X, Y

    def _fit_iterative(self, X: np.ndarray, Y: np.ndarray, w: np.ndarray | None) -> None:
        """Conjugate gradients (``t=None``) or Lanczos (finite ``t``) on one stored kernel.

        The training kernel is one row-sharded jax.Array over every device of every process
        (:func:`~ntk_sklearn.solvers._sharding.device_mesh`): each process computes the rows of
        its own devices (a single process: one triangle, mirrored), and CG's products run where
        the rows are. Rows are padded to a multiple of the device count with ``alpha·I`` (zero
        targets: zero coefficients). Memory: the kernel once (``n²`` in the fit's dtype: 14.4 GB
        for 60,000 samples in float32), the preconditioner and a few vectors per target. The NTK
        estimators' prior covariance (the NNGP) is computed only when a covariance is predicted.
        """
        n = X.shape[0]
        dtype = self._np_dtype()
        tol, rank = self._cg_settings(n)
        mesh = device_mesh()
        n_pad = -(-n // mesh.size) * mesh.size
        self._check_fit_memory(n_pad, Y.shape[1], rank, X=X)
        X, Y = self._prepare_targets(X, Y, w)
        with self._scope():
            train = assemble_rows(
                (n_pad, n_pad), dtype, mesh, lambda rows: self._training_rows(X, rows, n_pad)
            )
            # One CPU device: a NumPy view of the same memory; else it stays on its devices.
            on_cpu = mesh.size == 1 and mesh.devices.flat[0].platform == "cpu"
            self.train_kernel_ = np.asarray(train) if on_cpu else train
            self.X_fit_, self.y_fit_ = X, Y.astype(self._hyper["dtype"])
            self._solver = self.cg_solver_ = CGSolver(
                tol=tol,
                max_iter=self._hyper["max_iter"],
                rank=rank,
                verbose=self._hyper["verbose"],
                alpha=self._hyper["alpha"],
            ).fit(train, self._rate_)
            self.dual_coef_ = np.asarray(self._apply(self.y_fit_, self._hyper["t"]))
            self.n_iter_ = self.cg_solver_.n_iter_

    def _cg_settings(self, n: int) -> tuple[float, int]:
        """CG's tolerance and preconditioner rank: as given, or from ``n`` for ``"auto"``.

        Rank ``n / 100`` within ``[100, 500]``: the Nyström setup, ``O(n·rank²)``, costs at most
        a few products with the kernel (``O(n²)``) and saves many iterations at large ``n``.
        Tolerance ``_AUTO_TOL_LARGE`` from ``CG_MIN_N`` samples on (where ``solver="auto"``
        picks CG), else 1e-6 (see ``benchmarks/bench_cg_defaults.py``).
        """
        tol, rank = self._hyper["tol"], self._hyper["preconditioner_rank"]
        if isinstance(rank, (bool, np.bool_)):
            raise ValueError(f"preconditioner_rank must be an int >= 1 or 'auto'; got {rank!r}.")
        if tol == "auto":
            tol = self._AUTO_TOL_LARGE if n >= CG_MIN_N else 1e-6
        if rank == "auto":
            rank = int(np.clip(n // 100, 100, 500))
        return tol, min(rank, n)

    def _tile_bytes(self, n: int, X: np.ndarray | None) -> int:
        """Bytes of one kernel tile: ``TILE_BYTES``, or the whole ``n × n`` work if smaller
        (the analytic kernel's tiles, ``_serial.Serial._block_size``)."""
        if X is None or self._hyper["kernel"] != "analytic":
            return TILE_BYTES
        pair = self._stack()._pair_size(self._rows(X[:1]).shape[1:])
        per_pair = pair * self._np_dtype().itemsize * _WORK_FACTOR * 4
        return int(min(TILE_BYTES, n * n * per_pair))

    def _check_fit_memory(
        self,
        n: int,
        n_targets: int,
        rank: int = 0,
        weighted: bool = False,
        X: np.ndarray | None = None,
    ) -> None:
        """The memory plan of a fit, checked before anything is allocated.

        Training kernels (direct solvers keep the NNGP and NTK of the NTK estimators; CG one
        kernel, the rows of this process's devices), the solver's own arrays
        (:func:`~ntk_sklearn.solvers.solver_memory`), the kernel tiles in flight (two per local
        device) and one chunk of test rows against the training rows for ``predict``.
        ``MemoryError`` naming each part when the sum exceeds the available memory
        (:func:`~ntk_sklearn._memory.available_memory`: ``MemAvailable``, cgroup limits,
        ``RLIMIT_AS``); printed at ``verbose >= 1``.
        """
        dtype = self._np_dtype()
        cg = self.solver_ == "cg"
        kernels = 1 if cg else len(self._kernel_names())
        # CG: this process holds the rows of its devices only.
        share = jax.local_device_count() / jax.device_count() if cg else 1.0
        plan = {
            "training kernel" + "s" * (kernels > 1): int(kernels * n * n * dtype.itemsize * share),
            # Direct solvers: the kernel as a JAX array and plus alpha·I (weighted: S K S too).
            "JAX copies of the kernel": 0 if cg else (2 + weighted) * n * n * dtype.itemsize,
            f"{self.solver_} solver": solver_memory(n, n_targets, dtype, self.solver_, rank),
            "kernel tiles": 2 * len(jax.local_devices()) * self._tile_bytes(n, X),
            "test-kernel chunk": 3 * min(n, _PREDICT_CHUNK) * n * dtype.itemsize,
        }
        parts = ", ".join(f"{part} {size / 2**30:.2f} GiB" for part, size in plan.items() if size)
        available = _memory.available_memory()
        _progress.report(
            self._hyper["verbose"],
            f"memory plan of the fit on {n} samples: {parts}; "
            + ("available: unknown" if available is None else f"{available / 2**30:.1f} GiB free"),
        )
        check_memory(sum(plan.values()), f"Fitting on {n} samples ({parts})", dtype=dtype.name)

    def _training_rows(self, X: np.ndarray, rows: slice, n_pad: int) -> np.ndarray:
        """Rows ``rows`` of the padded training kernel ``S Θ S + alpha·I`` (host, in place).

        The block of ``rows`` with themselves is computed as one symmetric kernel (a triangle),
        the blocks with the other rows in full; a single process computes all rows at once.
        """
        n, name = X.shape[0], "ntk" if self._kernel == "ntk" else "nngp"
        which = "between training inputs"
        lo, hi = min(rows.start, n), min(rows.stop, n)

        def kernel(a: slice, b: slice | None = None) -> np.ndarray:
            x2 = None if b is None else X[b]
            k = self._computed(which, X, lambda: self._kernels(X[a], x2, names=(name,)))
            k = getattr(k, name)
            self._check_finite(k, which, X)
            return k

        if (lo, hi) == (0, n) and n_pad == n:
            out = kernel(slice(0, n))  # everything on one device: no copy
        else:
            out = _tiling.aligned_empty((rows.stop - rows.start, n_pad), self._np_dtype())
            out[...] = 0.0
            if hi > lo:
                out[: hi - lo, lo:hi] = kernel(slice(lo, hi))
                if lo > 0:
                    out[: hi - lo, :lo] = kernel(slice(lo, hi), slice(0, lo))
                if hi < n:
                    out[: hi - lo, hi:n] = kernel(slice(lo, hi), slice(hi, n))
        if self._sqrt_weight is not None and hi > lo:
            out[: hi - lo, :n] *= self._sqrt_weight[lo:hi, None]  # S Θ S, in place
            out[: hi - lo, :n] *= self._sqrt_weight[None, :]
        # + alpha·I (on the padding too, which then solves to zero).
        out[np.arange(out.shape[0]), np.arange(rows.start, rows.stop)] += self._hyper["alpha"]
        return out

    # -- predict -------------------------------------------------------------------------------

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
            warnings.warn(
                f"{int(noisy.sum())} of {var.size} predicted variances are dominated by rounding "
                f"(below {_CANCELLATION:g}·eps times the terms they are the difference of; "
                f"{negative} negative, set to 0) in {self._hyper['dtype']}: those standard "
                "deviations are rounding noise, not uncertainty. Use dtype='float64', a larger "
                "alpha, or a better conditioned kernel (smaller depth or w_std).",
                RuntimeWarning,
                stacklevel=4,
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


def check_times(times) -> np.ndarray:
    """Validate training times for a trajectory: 1-D, non-negative, not NaN (inf allowed)."""
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or times.size == 0:
        raise ValueError(f"times must be a non-empty 1-D array; got shape {times.shape}.")
    if np.isnan(times).any() or (times < 0).any():
        raise ValueError("times must be >= 0 (np.inf allowed for the converged limit).")
    return times
