"""Spatial operations of convolutional kernels on pixel covariances (pure JAX).

A kernel between two images is a covariance between their pixels. With ``p = (h, w)``:

* ``diag`` layout ``(..., H, W)``: same-pixel covariances ``Σ[p, p]`` only. Enough when the
  readout is ``Flatten`` and nothing pools: a convolution only ever combines ``Σ[p+d, p+d]``.
* ``full`` layout ``(..., H, W, H, W)``: every pixel pair ``Σ[p, p']``, which pooling needs.

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

import jax
import jax.numpy as jnp


def pads(size: int, window: int, stride: int, padding: str) -> tuple[int, int]:
    """``(low, high)`` zero padding of one axis, as ``jax.lax`` convolutions pad."""
    ((low, high),) = jax.lax.padtype_to_pads((size,), (window,), (stride,), padding)
    return int(low), int(high)


def out_size(size: int, window: int, stride: int, padding: str) -> int:
    """Length of one axis after a window op; < 1 means the window does not fit."""
    low, high = pads(size, window, stride, padding)
    return (size + low + high - window) // stride + 1


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
