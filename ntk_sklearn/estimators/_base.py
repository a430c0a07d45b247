"""The base of the estimators: parameters, their validation, precision, pickling.

``NeuralKernelBase`` holds what every estimator shares; each concern of ``fit`` and
``predict`` lives in its own module, mixed in here:

- :mod:`._params`: the parameters' constraints and normal forms;
- :mod:`._checks`: what the constraints cannot express, checked once at the boundary;
- :mod:`._kernels`: the kernels between rows of ``X`` (analytic, Monte Carlo, a user's model);
- :mod:`._fit`: the solver, the memory plan, the training kernel and its factorization;
- :mod:`._evidence`: learned hyperparameters and the log marginal likelihood;
- :mod:`._posterior`: means, covariances and trajectories from the fitted solver.

Below this layer (``kernels``, ``solvers``, ``dynamics``) functions are pure on validated
arrays. Fitted state is NumPy arrays only, so estimators pickle and clone.
"""

from __future__ import annotations

import copy
from numbers import Real

import jax
import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import _check_sample_weight

from ntk_sklearn._pickle_refs import picklable, picklable_object
from ntk_sklearn.estimators._checks import _InputChecks
from ntk_sklearn.estimators._evidence import _Evidence
from ntk_sklearn.estimators._fit import _Fit
from ntk_sklearn.estimators._kernels import _Kernels
from ntk_sklearn.estimators._params import (
    _INT_PARAMS,
    _REAL_PARAMS,
    PARAMETER_CONSTRAINTS,
    _describe_kernel,
    _dtype_name,
    _python_number,
    _Shown,
)
from ntk_sklearn.estimators._posterior import _Posterior
from ntk_sklearn.gaussian_process._hyperparameters import NAMES, check_bounds

#: Bounds parameters of the hyperparameters learned by ``optimizer``.
_BOUNDS_PARAMS = tuple(f"{name}_bounds" for name in NAMES)


class NeuralKernelBase(_InputChecks, _Kernels, _Fit, _Evidence, _Posterior, BaseEstimator):
    """Base of the four estimators; ``_kernel`` is "ntk" or "nngp"."""

    _kernel: str = "ntk"
    #: CG's tolerance for ``tol="auto"`` from ``CG_MIN_N`` samples on (classifiers: 1e-3).
    _AUTO_TOL_LARGE: float = 1e-6

    _parameter_constraints: dict = PARAMETER_CONSTRAINTS

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

    # -- fit-time setup ---------------------------------------------------------------------

    def _setup(self) -> None:
        """Freeze the validated parameters for this fit; check what the constraints cannot."""
        self._hyper = self._resolved_params()
        for name in (*_BOUNDS_PARAMS, "input_scale_bounds"):
            check_bounds(self._hyper[name], name)
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

    def _sample_weight(self, sample_weight, X: np.ndarray) -> np.ndarray | None:
        """Validated non-negative weights (float64), not all zero; ``None`` stays ``None``."""
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

    # -- precision ----------------------------------------------------------------------------

    def _scope(self):
        """float64 inside a scoped ``jax.enable_x64``; JAX's global config is never changed."""
        return jax.enable_x64(self._hyper["dtype"] == "float64")

    def _np_dtype(self) -> np.dtype:
        return np.dtype(self._hyper["dtype"])
