"""Spatial operations of convolutional kernels on pixel covariances (pure JAX).

A kernel between two images is a covariance between their pixels. With ``p = (h, w)``:

* ``diag`` layout ``(..., H, W)``: same-pixel covariances ``Σ[p, p]`` only. Enough when the
  readout is ``Flatten`` and nothing pools: a convolution only ever combines ``Σ[p+d, p+d]``.
* ``full`` layout ``(..., H, W, H, W)``: every pixel pair ``Σ[p, p']``, which global pooling
  needs.
* ``band`` layout ``(..., 2rh+1, 2rw+1, H, W)``: the pairs within ``r = (rh, rw)`` pixels,
  ``band[a, b, h, w] = Σ[(h, w), (h + a − rh, w + b − rw)]``, 0 where the second pixel is off
  the image. A convolution keeps the offset ``p' − p`` of a pair (the same filter shift on both
  sides) and an activation acts on each pair, so a stack whose readout is local pooling then
  ``Flatten`` needs only the offsets its pooling windows reach: ``O(H·W·(2r+1)²)`` per image
  pair instead of ``O((H·W)²)``.

A convolution with a ``kh × kw`` filter in NTK parameterization maps (Novak et al. 2019)

    Σ'[o, o'] = w_std² / (kh kw) · Σ_d Σ[s·o + d, s·o' + d] + b_std²

(the same offset ``d`` in both images; zero padding contributes 0), which is separable: a 1-D
"box" along height, then along width. Average pooling maps
``Σ'[o, o'] = 1/(kh kw)² Σ_d Σ_d' Σ[s·o + d, s·o' + d']``: a 1-D average along each of the
four axes independently. Padding follows ``jax.lax`` conventions (``padtype_to_pads``); "SAME"
pads with zeros and divides by the whole window (neural-tangents' AvgPool without edge
normalisation).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.cache  # checking a stack's shapes calls it per layer (20,000 layers: 2.5 s uncached)
def pads(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """``(low, high)`` zero padding of one axis, as ``jax.lax`` convolutions pad."""
    ((low, high),) = jax.lax.padtype_to_pads((size,), (window,), (stride,), padding)
    return int(low), int(high)


def out_size(size: int, window: int, stride: int, padding: str) -> int:
    """Length of one axis after a window op; < 1 means the window does not fit."""
    low, high = pads(size, window, stride, padding)
    return (size + low + high - window) // stride + 1


def mirror_symmetric(size: int, window: int, stride: int, padding: str) -> bool:
    """Whether reversing the axis maps the set of windows onto itself.

    Windows start at ``a_j = −low + j·s`` (``j < n``); reversal maps the window starting at ``a``
    to the one starting at ``size − window − a``, so the arithmetic sequence of starts is
    symmetric iff ``a_0 + a_{n−1} = size − window``.
    """
    low, _ = pads(size, window, stride, padding)
    n = out_size(size, window, stride, padding)
    return -2 * low + (n - 1) * stride == size - window


def _pad_axes(a: jax.Array, axes: tuple[int, ...], low: int, high: int) -> jax.Array:
    if low == high == 0:
        return a
    widths = [(0, 0)] * a.ndim
    for axis in axes:
        widths[axis] = (low, high)
    return jnp.pad(a, widths)


def window_mean(
    a: jax.Array, axes: tuple[int, ...], window: int, stride: int, padding: str
) -> jax.Array:
    """Mean over a sliding window moved jointly along ``axes`` (same offset on each).

    One axis: average pooling along it. Two axes (``h`` of both images): the diagonal shift of a
    convolution, ``out[o, o'] = mean_d a[s·o + d, s·o' + d]``.
    """
    size = a.shape[axes[0]]
    low, high = pads(size, window, stride, padding)
    n_out = (size + low + high - window) // stride + 1
    a = _pad_axes(a, axes, low, high)
    total = None
    for d in range(window):
        part = a
        for axis in axes:
            stop = d + stride * (n_out - 1) + 1
            part = jax.lax.slice_in_dim(part, d, stop, stride, axis % a.ndim)
        total = part if total is None else total + part
    return total / window


def conv_diag(a: jax.Array, filter_shape, strides, padding: str) -> jax.Array:
    """Convolution's box filter on same-pixel covariances ``(..., H, W)``.

    Padded once, then a sum of ``kh·kw`` shifted (strided) slices, which XLA fuses into one
    pass (measured 1.7x faster than two separable passes on 2 CPU cores).
    """
    (kh, kw), (sh, sw) = filter_shape, strides
    h_lo, h_hi = pads(a.shape[-2], kh, sh, padding)
    w_lo, w_hi = pads(a.shape[-1], kw, sw, padding)
    out_h = (a.shape[-2] + h_lo + h_hi - kh) // sh + 1
    out_w = (a.shape[-1] + w_lo + w_hi - kw) // sw + 1
    a = jnp.pad(a, [(0, 0)] * (a.ndim - 2) + [(h_lo, h_hi), (w_lo, w_hi)])
    total = None
    for dh in range(kh):
        for dw in range(kw):
            part = a[..., dh : dh + sh * (out_h - 1) + 1 : sh, dw : dw + sw * (out_w - 1) + 1 : sw]
            total = part if total is None else total + part
    return total / (kh * kw)


def conv_full(a: jax.Array, filter_shape, strides, padding: str) -> jax.Array:
    """Convolution's diagonal box filter on pixel-pair covariances ``(..., H, W, H, W)``."""
    a = window_mean(a, (-4, -2), filter_shape[0], strides[0], padding)
    return window_mean(a, (-3, -1), filter_shape[1], strides[1], padding)


def pool_full(a: jax.Array, window_shape, strides, padding: str) -> jax.Array:
    """Average pooling of pixel-pair covariances ``(..., H, W, H, W)``: each axis on its own."""
    for axis, k, s in zip((-4, -3, -2, -1), window_shape * 2, strides * 2, strict=True):
        a = window_mean(a, (axis,), k, s, padding)
    return a


def pixel_diagonal(a: jax.Array) -> jax.Array:
    """Same-pixel entries ``Σ[p, p]`` of ``(..., H, W, H, W)``: shape ``(..., H, W)``."""
    h, w = a.shape[-2:]
    flat = a.reshape(*a.shape[:-4], h * w, h * w)
    return jnp.diagonal(flat, axis1=-2, axis2=-1).reshape(*a.shape[:-4], h, w)


# -- band layout ------------------------------------------------------------------------------


def band_radius(a: jax.Array) -> tuple[int, int]:
    """``(rh, rw)`` of a band-layout array ``(..., 2rh+1, 2rw+1, H, W)``."""
    return (a.shape[-4] - 1) // 2, (a.shape[-3] - 1) // 2


def band_mask(radius: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``(2rh+1, 2rw+1, H, W)``: 1 where the pair's second pixel ``p + δ`` is on the image."""
    (rh, rw), (h, w) = radius, size
    partner_h = np.arange(h)[None, :] + np.arange(-rh, rh + 1)[:, None]
    partner_w = np.arange(w)[None, :] + np.arange(-rw, rw + 1)[:, None]
    inside_h = (partner_h >= 0) & (partner_h < h)
    inside_w = (partner_w >= 0) & (partner_w < w)
    return (inside_h[:, None, :, None] & inside_w[None, :, None, :]).astype(np.float32)


def band_masked(a: jax.Array) -> jax.Array:
    """Zero the entries of a band-layout array whose second pixel is off the image."""
    return a * band_mask(band_radius(a), a.shape[-2:]).astype(a.dtype)


def band_shift(q: jax.Array, radius: tuple[int, int], fill: float) -> jax.Array:
    """``(..., H, W) -> (..., 2rh+1, 2rw+1, H, W)``: ``out[a, b, h, w] = q[h+a−rh, w+b−rw]``.

    Pixels off the image read ``fill``.
    """
    (rh, rw), (h, w) = radius, q.shape[-2:]
    padded = jnp.pad(q, [(0, 0)] * (q.ndim - 2) + [(rh, rh), (rw, rw)], constant_values=fill)
    rows = [
        jnp.stack([padded[..., a : a + h, b : b + w] for b in range(2 * rw + 1)], axis=-3)
        for a in range(2 * rh + 1)
    ]
    return jnp.stack(rows, axis=-4)


def band_from_full(a: jax.Array, radius: tuple[int, int]) -> jax.Array:
    """The band of radius ``radius`` of pixel-pair covariances ``(..., H, W, H, W)``."""
    (rh, rw), (h, w) = radius, a.shape[-2:]
    oh = np.arange(-rh, rh + 1)[:, None, None, None]
    ow = np.arange(-rw, rw + 1)[None, :, None, None]
    ph, pw = np.arange(h)[None, None, :, None], np.arange(w)[None, None, None, :]
    # Index grids of shape (2rh+1, 2rw+1, H, W); pairs off the image are clipped, then zeroed.
    ph, pw, qh, qw = np.broadcast_arrays(
        ph, pw, np.clip(ph + oh, 0, h - 1), np.clip(pw + ow, 0, w - 1)
    )
    return band_masked(a[..., ph, pw, qh, qw])


def band_crop(a: jax.Array, radius: tuple[int, int]) -> jax.Array:
    """The central offsets ``|δ| <= radius`` of a band-layout array (radius 0: same pixel)."""
    (rh, rw), (ch, cw) = radius, band_radius(a)
    return a[..., ch - rh : ch + rh + 1, cw - rw : cw + rw + 1, :, :]


def conv_band(a: jax.Array, filter_shape, strides, padding: str) -> jax.Array:
    """Convolution on a band: ``out[δ, o] = mean_d band[s·δ, s·o + d]`` (the offset is kept).

    Output radius ``⌊r/s⌋``; entries with a second pixel off the image are not yet zeroed.
    """
    (rh, rw), (sh, sw) = band_radius(a), strides
    oh, ow = rh // sh, rw // sw
    a = a[..., rh - sh * oh : rh + sh * oh + 1 : sh, rw - sw * ow : rw + sw * ow + 1 : sw, :, :]
    return conv_diag(a, filter_shape, strides, padding)


def pool_band(a: jax.Array, window_shape, strides, padding: str) -> jax.Array:
    """Average pooling on a band, radius ``r`` to ``⌊(r − k + 1)/s⌋`` along each axis.

    ``out[δ', o] = 1/k² Σ_{d, d'} band[s·δ' + d' − d, s·o + d]``: the pair
    ``(s·o + d, s·(o + δ') + d')`` of input pixels, for each window offset ``d``, ``d'``.
    """
    for band_axis, pixel_axis, k, s in zip((-4, -3), (-2, -1), window_shape, strides, strict=True):
        r = (a.shape[band_axis] - 1) // 2
        r_out = (r - k + 1) // s
        size = a.shape[pixel_axis]
        low, high = pads(size, k, s, padding)
        n_out = (size + low + high - k) // s + 1
        padded = _pad_axes(a, (pixel_axis,), low, high)
        total = None
        for d in range(k):
            pixels = jax.lax.slice_in_dim(
                padded, d, d + s * (n_out - 1) + 1, s, pixel_axis % a.ndim
            )
            for d2 in range(k):
                start = r - s * r_out + d2 - d
                part = jax.lax.slice_in_dim(
                    pixels, start, start + 2 * s * r_out + 1, s, band_axis % a.ndim
                )
                total = part if total is None else total + part
        a = total / (k * k)
    return a
