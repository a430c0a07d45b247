"""``LayerNorm``: normalisation over channels (and optionally positions), infinite width.

A layer norm ``(x − mean) / sqrt(var + eps)`` over the channels of a zero-mean Gaussian layer
output converges, at infinite width, to a deterministic rescaling: the channel mean tends to 0
and the channel variance to ``Σ(x, x)[p, p]`` (averaged over the normalised positions ``A``,
if any). So (neural-tangents' ``LayerNorm`` kernel)

    Σ'(x, x')[p, p'] = Σ(x, x')[p, p'] / sqrt(v(x)[p] · v(x')[p']),
    v(x)[p] = eps + mean_{p ∈ A-orbit of p} Σ(x, x)[p, p],

and the NTK alike (the normalisation's statistics have no fluctuations to differentiate).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from ntk_sklearn._validation import check_scalar
from ntk_sklearn.kernels._layers import INPUT_NAMES, Layer, Shape, Signal, _layer
from ntk_sklearn.kernels._spatial import band_radius
from ntk_sklearn.kernels._state import (
    KernelState,
    grid_variances,
    pixel_variances,
    self_variances,
)


@_layer()
class LayerNorm(Layer):
    """Layer normalisation over ``axis`` (neural-tangents' ``stax.LayerNorm``).

    Parameters
    ----------
    axis : int or tuple of int, default=-1
        Axes of the activations ``(n, *positions, channels)`` to normalise over: they must
        include the channel axis (``-1``) and not the batch axis (``0``). ``-1``: each position
        on its own; ``(1, 2, 3)`` on images: over the whole image.
    eps : float, default=1e-12
        Added to the variance (as neural-tangents does).

    Examples
    --------
    >>> import numpy as np
    >>> from ntk_sklearn.kernels import Conv, Dense, Flatten, LayerNorm, Relu, serial
    >>> stack = serial(Conv((3, 3), w_std=1.3), LayerNorm(axis=(1, 2, 3)), Relu(), Flatten(),
    ...                Dense())
    >>> x = np.random.default_rng(0).normal(size=(2, 5, 5, 3))
    >>> k = stack(np.concatenate([x, 10 * x]), get="nngp")  # invariant to the input's scale
    >>> bool(np.allclose(k[:2, :2], k[2:, 2:]))
    True
    """

    packable = True

    axis: int | tuple[int, ...] = -1
    eps: float = 1e-12

    def __post_init__(self) -> None:
        axes = (self.axis,) if isinstance(self.axis, (int, np.integer)) else self.axis
        try:
            axes = tuple(axes)
        except TypeError:
            axes = ()
        if not axes or not all(
            isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes
        ):
            raise ValueError(
                f"LayerNorm axis must be an int or a tuple of ints; got {self.axis!r}."
            )
        object.__setattr__(self, "axis", axes[0] if len(axes) == 1 else tuple(map(int, axes)))
        object.__setattr__(self, "eps", check_scalar(self.eps, "eps"))

    def _spatial_axes(self, d: int) -> tuple[int, ...]:
        """The normalised positions' axes (0-based among the ``d`` spatial axes); checks."""
        ndim = d + 2
        axes = (self.axis,) if isinstance(self.axis, int) else self.axis
        if not all(-ndim <= a < ndim for a in axes):
            raise ValueError(
                f"{self!r}: axis {self.axis} is out of range for {INPUT_NAMES[d]} with {ndim} "
                "axes (batch, positions..., channels)."
            )
        canonical = {a % ndim for a in axes}
        if 0 in canonical:
            raise ValueError(
                f"{self!r} normalises over the batch axis 0, which mixes the samples of a batch: "
                "its kernel depends on the batch. Normalise over channels (-1) and positions."
            )
        if ndim - 1 not in canonical:
            raise ValueError(
                f"{self!r} must normalise over the channel axis (-1) to have an infinite-width "
                f"kernel; got axis={self.axis}."
            )
        return tuple(sorted(a - 1 for a in canonical - {ndim - 1}))

    def output_shape(self, shape: Shape) -> Shape:
        self._spatial_axes(0 if shape is None else len(shape))
        return shape

    def signal(self, signal: Signal) -> Signal:
        self.output_shape(signal.shape)
        if not signal.gaussian:
            raise ValueError(
                f"{self!r} needs zero-mean Gaussian inputs (channel means that vanish at "
                "infinite width): place a Dense, Conv or GlobalSelfAttention layer right before "
                "it, not an activation or the raw inputs (scale those with a scaler instead)."
            )
        return signal

    def mirror_symmetric(self, shape: Shape) -> bool:
        return True  # positions are averaged symmetrically

    def _variances(self, cov: jnp.ndarray, layout, d: int) -> jnp.ndarray:
        """``v(x)[p]`` per row and position, ``(n, *P)``."""
        q = jnp.real(pixel_variances(cov, layout, d)) + self.eps
        axes = self._spatial_axes(d)
        if axes:
            mean = jnp.mean(q, axis=tuple(1 + a for a in axes), keepdims=True)
            q = jnp.broadcast_to(mean, q.shape)
        return q

    def apply(self, state: KernelState) -> KernelState:
        layout, d = state.layout, state.spatial
        radius = band_radius(state.nngp, d) if layout == "band" else None

        def scaled(a, pair):
            return None if a is None else a / jnp.sqrt(pair[0] * pair[1])

        if state.pairs:
            pair = self_variances(self._variances(state.nngp, layout, d), layout, radius)
            return state.replace(
                nngp=scaled(state.nngp, pair),
                ntk=scaled(state.ntk, pair),
                ntk_zero=state.ntk_zero,
                rounding=state.rounding + 4.0,
            )
        q1 = self._variances(state.cov1, layout, d)
        q2 = self._variances(state.cov2, layout, d)
        grid = grid_variances(q1, q2, layout, radius)
        return state.replace(
            nngp=scaled(state.nngp, grid),
            ntk=scaled(state.ntk, grid),
            cov1=scaled(state.cov1, self_variances(q1, layout, radius)),
            cov2=scaled(state.cov2, self_variances(q2, layout, radius)),
            ntk_zero=state.ntk_zero,
            rounding=state.rounding + 4.0,
        )
