"""The kernels an estimator needs: computed (analytic, Monte Carlo, a user's model) or cached.

Every kernel between rows of ``X`` goes through :meth:`_Kernels._kernels` (read from
``memory`` when there, :mod:`ntk_sklearn.estimators._kernel_cache`); the training rows of a
row-sharded kernel through :meth:`_Kernels._training_rows`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn import _memory
from ntk_sklearn.architectures import make_stack, reshape_inputs
from ntk_sklearn.empirical import empirical_nngp, empirical_ntk, monte_carlo_kernel
from ntk_sklearn.empirical._utils import check_params, params_bytes
from ntk_sklearn.estimators import _kernel_cache
from ntk_sklearn.kernels import Serial, _tiling
from ntk_sklearn.kernels._serial import _WORK_FACTOR, TILE_BYTES


def _as_float(leaf, dtype: str):
    """A floating parameter leaf in ``dtype``; other leaves unchanged."""
    arr = jnp.asarray(leaf)
    return arr.astype(dtype) if jnp.issubdtype(arr.dtype, jnp.floating) else leaf


class KernelPair(NamedTuple):
    """NNGP and NTK matrices of a user's model; a field is ``None`` when not computed."""

    nngp: np.ndarray | None
    ntk: np.ndarray | None


class _Kernels:
    """The kernels of the estimator (a mixin of ``NeuralKernelBase``)."""

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
        :mod:`ntk_sklearn.estimators._kernel_cache`.
        """
        names = names or self._kernel_names()
        out = _kernel_cache.cached_kernels(self, x1, x2, names, self._compute_kernels)
        return KernelPair(out.get("nngp"), out.get("ntk"))

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

    def _test_nngp(self, x: np.ndarray, full: bool, name: str = "nngp") -> np.ndarray:
        """Kernel ``name`` between test rows (``full``), or its diagonal (prior variances)."""
        if self.kernel == "analytic":
            stack = self._stack()
            if full:
                return stack(self._rows(self._scaled(x)), get=name)
            return stack.diag(self._rows(self._scaled(x)), get=name)
        k = getattr(self._kernels(x, names=(name,)), name)
        return k if full else np.diag(k).copy()

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

    def _tile_bytes(self, n: int, X: np.ndarray | None) -> int:
        """Bytes of one kernel tile: ``TILE_BYTES``, or the whole ``n × n`` work if smaller
        (the analytic kernel's tiles, ``_serial.Serial._block_size``)."""
        if X is None or self._hyper["kernel"] != "analytic":
            return TILE_BYTES
        pair = self._stack()._pair_size(self._rows(X[:1]).shape[1:])
        per_pair = pair * self._np_dtype().itemsize * _WORK_FACTOR * 4
        return int(min(TILE_BYTES, n * n * per_pair))
