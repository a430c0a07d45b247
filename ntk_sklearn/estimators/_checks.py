"""The estimators' checks of what scikit-learn's parameter constraints cannot express.

Run once, at the boundary (``fit``): the kernel and activation a user passed, input scales,
and the errors that name the cause when a kernel overflows. Below this layer (``kernels``,
``solvers``, ``dynamics``) functions trust their validated inputs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.utils import check_random_state

from ntk_sklearn.kernels import available_activations


class _InputChecks:
    """Fit-time checks and the errors of non-finite kernels (a mixin of ``NeuralKernelBase``)."""

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
