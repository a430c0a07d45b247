"""All-pixel-pair kernels before a global average pool, in a padded flat layout (pure JAX).

A stack read out by ``GlobalAvgPool`` (CNTK-GAP, Arora et al. 2019; Myrtle, Shankar et al.
2020) carries every pixel pair ``Σ[p, p']``, ``(H·W)²`` numbers per image pair. The generic
``"full"`` layout runs each layer as XLA's padded, strided 4-D window loops and carries the rows'
own covariances ``Σ(x, x)`` along, also ``(H·W)²`` each; this path instead

* stores a pair's covariances as one flat vector of the zero-padded grid ``(*P̃, *P̃)``
  (``P̃ = P + 2m``, ``m`` the widest filter's half-width), with a margin of ``M`` zeros at both
  ends: the convolution's taps ``Σ[p + d, p' + d]`` are then contiguous slices at the flat
  offsets ``k_d = Σ_i d_i (S_i + S'_i)`` (``S``, ``S'`` the flat strides of the two pixels), so
  that ``Σ'[o, o'] = w² / prod(k) · Σ_d Σ[o + d, o' + d] + b²`` is ``prod(k)`` shifted loads, and
  the activation that follows runs in the same loop, its output zeroed on the padding (the
  convolution's zero padding of the next layer) and written once;
* packs NNGP and NTK as the real and imaginary parts of one array (one loop computes the shared
  correlation and angle for both, :meth:`KernelState.pack`);
* takes the per-pixel variances ``Σ(x, x)[p, p]`` that the activations need from a separate pass
  over each row alone in the cheapest layout that holds them (same-pixel; a band before local
  pooling), ``O(H·W)`` per row instead of ``O((H·W)²)`` per row per tile;
* ends with the global average as a sum over the flat vector (the padding holds zeros).

Stacks it takes (:func:`supports`): ``Conv`` (NTK parameterization, stride 1, "SAME"),
activations and ``AvgPool`` before the first ``GlobalAvgPool``, and only ``Dense`` or
``Identity`` after it; the others run through the generic layers.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn.kernels import _plan, _spatial
from ntk_sklearn.kernels._activation_layer import Activation
from ntk_sklearn.kernels._layers import AvgPool, Conv, Dense, Flatten, GlobalAvgPool
from ntk_sklearn.kernels._state import KernelState, input_state, pixel_variances


def supports(layers, layouts) -> bool:
    """Whether :func:`propagate` computes the pair kernels of ``layers`` (flat, no branches)."""
    gap = next((i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool)), None)
    if gap is None or not any(isinstance(layer, Conv) for layer in layers[:gap]):
        return False
    for layer, entry in zip(layers[:gap], layouts[:gap], strict=True):
        if _plan.layout_of(entry) != "full":
            return False
        if isinstance(layer, Conv):
            if (
                layer.parameterization != "ntk"
                or any(s != 1 for s in layer.strides)
                or layer.padding != "SAME"
            ):
                return False
        elif not isinstance(layer, (Activation, AvgPool)):
            return False
    return all(
        (isinstance(layer, Dense) and layer.parameterization == "ntk")
        or (isinstance(layer, Activation) and layer.activation == "identity")
        for layer in layers[gap + 1 :]
    )


def propagate(layers, layouts, x1: jax.Array, x2: jax.Array, want_ntk: bool) -> KernelState:
    """The NNGP (and NTK) of every row pair of ``x1`` x ``x2`` through ``layers``.

    ``layers`` pass :func:`supports`; the result is the generic path's (to rounding): a
    vector-layout state without the rows' own covariances.
    """
    gap = next(i for i, layer in enumerate(layers) if isinstance(layer, GlobalAvgPool))
    prefix = layers[:gap]
    d = x1.ndim - 2
    variances1 = _activation_variances(prefix, x1)
    variances2 = _activation_variances(prefix, x2)
    margin = _margin(prefix, d)
    fan_in = x1.shape[-1]
    rounding = 8.0 + 4.0 * fan_in**0.5

    # The inputs' covariance Σ⁰ on the padded grid: zero-padded images give zeros on the
    # padding. Few channels: sums of broadcast products (one fused loop); else a dot.
    pad = [(0, 0)] + [(m, m) for m in margin] + [(0, 0)]
    y1, y2 = jnp.pad(x1, pad), jnp.pad(x2, pad)
    grid = _pair_products(y1, y2) / fan_in
    sizes = tuple(x1.shape[1:-1])
    flat = _Flat(sizes, margin)
    z = (flat.wrap(grid), None)
    ntk_zero, dense = want_ntk, None  # dense: (nngp, ntk) in the unpadded (n1, n2, *P, *P) layout
    i = 0
    while i < len(prefix):
        layer = prefix[i]
        if isinstance(layer, Conv):
            if dense is not None:
                z, dense = flat.wrap_pair(*dense), None
            follows = prefix[i + 1] if i + 1 < len(prefix) else None
            rounding += 4.0 + 2.0 * math.prod(layer.filter_shape) ** 0.5
            activation = None
            if isinstance(follows, Activation) and follows.activation != "identity":
                activation = follows
                q = (flat.pad_rows(variances1[i + 1]), flat.pad_rows(variances2[i + 1]))
                tol = rounding * jnp.finfo(x1.dtype).eps
                rounding, i = 8.0, i + 1
            else:
                q, tol = None, None
            z = _conv_step(flat, z, layer, activation, q, tol, want_ntk)
            ntk_zero = False
        elif isinstance(layer, Activation):
            if layer.activation != "identity":
                if dense is None:
                    dense = flat.unwrap(z)
                nngp, ntk = dense
                tol = rounding * jnp.finfo(nngp.dtype).eps
                qa = variances1[i][(slice(None), None, Ellipsis, *(None,) * d)]
                qb = variances2[i][(None, slice(None), *(None,) * d)]
                t, t_dot = layer._pair(qa, qb, nngp, tol)
                # Θ' = Θ·Tdot: a zero (or unwanted) NTK stays so.
                dense = (t, None if ntk is None else ntk * t_dot)
                rounding = 8.0
        else:  # AvgPool
            if dense is None:
                dense = flat.unwrap(z)
            dense = tuple(
                None if a is None else _spatial.pool_full(a, *_window(layer)) for a in dense
            )
            sizes = layer.output_shape(sizes)
            flat = _Flat(sizes, margin)
        i += 1

    if dense is None:
        nngp, ntk = flat.total(z)
    else:
        axes = tuple(range(-2 * d, 0))
        nngp = jnp.mean(dense[0], axis=axes)
        ntk = None if dense[1] is None else jnp.mean(dense[1], axis=axes)
    if want_ntk and ntk is None:
        ntk = jnp.zeros_like(nngp)  # the inputs' NTK, still exactly 0 (``ntk_zero``)
    state = KernelState(nngp, ntk, None, None, "fc", False, rounding, ntk_zero, 0)
    for layer in layers[gap + 1 :]:
        state = layer.apply(state)
    return state


def _window(layer: AvgPool):
    return layer.window_shape, layer.strides, layer.padding


def _margin(prefix, d: int) -> tuple[int, ...]:
    """Zero padding per spatial axis that every convolution's taps fit in."""
    margin = [0] * d
    for layer in prefix:
        if isinstance(layer, Conv):
            for i, k in enumerate(layer.filter_shape):
                margin[i] = max(margin[i], *_spatial.pads(64, k, 1, "SAME"))
    return tuple(margin)


def _pair_products(y1: jax.Array, y2: jax.Array) -> jax.Array:
    """``Σ_c y1[i, p, c] y2[j, p', c]`` of shape ``(n1, n2, *P, *P)``."""
    d = y1.ndim - 2
    channels = y1.shape[-1]
    if channels <= 8:
        a = y1[(slice(None), None, Ellipsis, *(None,) * d, slice(None))]
        b = y2[(None, slice(None), *(None,) * d, Ellipsis)]
        return sum(a[..., c] * b[..., c] for c in range(channels))
    first, second = "hwd"[:d], "abe"[:d]
    return jnp.einsum(
        f"i{first}c,j{second}c->ij{first}{second}", y1, y2, precision=jax.lax.Precision.HIGHEST
    )


def _activation_variances(prefix, x: jax.Array) -> dict[int, jax.Array]:
    """``{i: Σ(x, x)[p, p]}``, the per-pixel variances of each row at the input of each
    activation ``prefix[i]``, from the rows alone in the cheapest layouts that hold them (the
    plan of the prefix read out by ``Flatten``: same-pixel, or bands before local pooling)."""
    entries, _ = _plan.plan((*prefix, Flatten()), tuple(x.shape[1:]), False)
    d = x.ndim - 2
    state = input_state(x, None, _plan.layout_of(entries[0]), False)
    from ntk_sklearn.kernels._serial import _narrow  # the state narrowing of the generic path

    out = {}
    for i, (layer, entry) in enumerate(zip(prefix, entries, strict=False)):
        state = _narrow(state, _plan.layout_of(entry))
        if isinstance(layer, Activation):
            out[i] = pixel_variances(state.nngp, state.layout, d)
        state = layer.apply(state)
    return out


def _conv_step(flat, z, conv: Conv, activation, q, tol, want_ntk: bool):
    """``Conv`` then (if given) ``activation`` on the padded pair layout: the taps' last pass,
    the affine map, the activation and the zeroing of the padding in one loop per output."""
    w2, b2 = conv.w_std**2, conv.b_std**2
    taps = flat.taps(z[0], conv.filter_shape)
    nngp = w2 * taps + b2
    if z[1] is None:
        ntk = nngp if want_ntk else None  # Θ' = Σ' on an input NTK of 0
    else:
        ntk = w2 * flat.taps(z[1], conv.filter_shape) + nngp
    if activation is not None:
        qa, qb = q[0][:, None, :, None], q[1][None, :, None, :]
        t, t_dot = activation._pair(qa, qb, nngp, tol)
        nngp, ntk = t, None if ntk is None else ntk * t_dot
    return flat.store(nngp), None if ntk is None else flat.store(ntk)


class _Flat:
    """The padded pair layout of pixel-pair covariances of inputs of ``sizes`` (see the
    module docstring): ``(n1, n2, R + 2M, R + 2M)``, ``R = prod(P + 2m)`` padded pixels."""

    def __init__(self, sizes: tuple[int, ...], margin: tuple[int, ...]) -> None:
        self.sizes, self.margin = tuple(sizes), tuple(margin)
        self.padded = tuple(n + 2 * m for n, m in zip(sizes, margin, strict=True))
        # Flat stride of each spatial axis among the padded pixels.
        self.steps = tuple(math.prod(self.padded[i + 1 :]) for i in range(len(sizes)))
        self.length = math.prod(self.padded)
        self.end = sum(m * s for m, s in zip(margin, self.steps, strict=True))
        mask = np.ones((), bool)
        for n, m in zip(sizes, margin, strict=True):
            mask = mask[..., None] & np.pad(np.ones(n, bool), (m, m))
        self._mask = mask.reshape(-1)

    def pad_rows(self, q: jax.Array) -> jax.Array:
        """Per-row pixel values ``(n, *P)`` padded with 1 (a harmless variance), flat."""
        pad = [(0, 0)] + [(m, m) for m in self.margin]
        q = jnp.pad(q, pad, constant_values=1.0).reshape(q.shape[0], self.length)
        return jax.lax.optimization_barrier(q)

    def wrap(self, grid: jax.Array) -> jax.Array:
        """``(n1, n2, *P̃, *P̃)`` (zero on the padding) to ``(n1, n2, R + 2M, R + 2M)``."""
        n1, n2 = grid.shape[:2]
        flat = grid.reshape(n1, n2, self.length, self.length)
        pad = [(0, 0), (0, 0), (self.end, self.end), (self.end, self.end)]
        return jax.lax.optimization_barrier(jnp.pad(flat, pad))

    def wrap_pair(self, nngp, ntk) -> tuple:
        """Unpadded ``(n1, n2, *P, *P)`` covariances into the padded layout."""
        pad = [(0, 0), (0, 0)] + [(m, m) for m in self.margin * 2]
        return tuple(None if a is None else self.wrap(jnp.pad(a, pad)) for a in (nngp, ntk))

    def taps(self, z: jax.Array, filter_shape) -> jax.Array:
        """``mean_d z[o + d, o' + d]`` at every padded pixel pair ``(n1, n2, R, R)`` (garbage
        on the padding, which :meth:`store` zeroes).

        Separable: one pass per spatial axis, each a sum of shifted slices along both pixel
        axes, the passes but the last materialized (3 + 3 loads for a 3x3 filter, not 9).
        """
        extent = self.end
        for i, k in enumerate(filter_shape):
            low, high = _spatial.pads(self.sizes[i], k, 1, "SAME")
            reach = max(low, high) * self.steps[i]
            size = z.shape[-1] - 2 * reach
            total = None
            for o in range(k):
                start = reach + (o - low) * self.steps[i]
                part = z[..., start : start + size, start : start + size]
                total = part if total is None else total + part
            extent -= reach
            z = total if i == len(filter_shape) - 1 else jax.lax.optimization_barrier(total)
        if extent:  # filters narrower than the margin: the centre
            z = z[..., extent:-extent, extent:-extent]
        return z / math.prod(filter_shape)

    def store(self, grid: jax.Array) -> jax.Array:
        """``(n1, n2, R, R)``, zeroed on the padding and padded by the margin."""
        mask = self._mask
        grid = jnp.where(mask[:, None] & mask[None, :], grid, jnp.zeros((), grid.dtype))
        pad = [(0, 0), (0, 0), (self.end, self.end), (self.end, self.end)]
        return jax.lax.optimization_barrier(jnp.pad(grid, pad))

    def unwrap(self, z: tuple) -> tuple:
        """The padded layout back to unpadded ``(n1, n2, *P, *P)`` ``(nngp, ntk)``."""
        index = tuple(slice(m, m + n) for n, m in zip(self.sizes, self.margin, strict=True))

        def one(a):
            a = a[..., self.end : self.end + self.length, self.end : self.end + self.length]
            a = a.reshape(*a.shape[:2], *self.padded * 2)
            return a[(Ellipsis, *index, *index)]

        return tuple(None if a is None else one(a) for a in z)

    def total(self, z: tuple) -> tuple:
        """The global average of the NNGP (and NTK) over all pixel pairs (zero padding)."""
        count = math.prod(self.sizes) ** 2
        return tuple(None if a is None else jnp.sum(a, axis=(2, 3)) / count for a in z)
