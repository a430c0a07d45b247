"""Properties of random convolutional stacks (hypothesis): symmetry, positive semi-definiteness,
``x2=None`` ≡ ``x2=x1``, block-size invariance, ``diag`` equal to the full kernel's diagonal,
float32 close to float64, flip invariance, and clear errors for stacks that do not fit.

Random depth (1-3 convolutions), filters, strides, padding, average pooling, activations and
readouts (``Flatten``, ``GlobalAvgPool``, local pooling) on small images, with duplicate and
negated rows (correlations exactly ±1). The quick tests run a few derandomized examples; the
``slow`` ones many more.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ntk_sklearn.kernels import (
    Activation,
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    serial,
)
from ntk_sklearn.kernels._spatial import out_size

ACTIVATIONS = ["relu", "erf", "gelu", "abs", "sin", "identity", "leaky_relu", "sign", "tanh"]
#: Float32 against float64, relative to the largest entry. ``sign``'s arc-sine kernel has an
#: infinite slope at correlation 1, where float32 rounding of ρ ≈ 1e-7 moves it by ≈ sqrt(1e-7).
F32_RTOL = {"sign": 3e-3}
F32_RTOL_DEFAULT = 2e-4


def _window(draw, size: tuple[int, int], conv: bool):
    """A filter or pooling window, strides and padding that fit images of ``size``."""
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    upper = 3 if conv else 2
    window = tuple(draw(st.integers(1, upper)) for _ in range(2))
    strides = tuple(draw(st.integers(1, 2)) for _ in range(2))
    out = tuple(out_size(n, k, s, padding) for n, k, s in zip(size, window, strides, strict=True))
    if min(out) < 1:  # does not fit: the same window with SAME padding always does
        padding = "SAME"
        out = tuple(
            out_size(n, k, s, padding) for n, k, s in zip(size, window, strides, strict=True)
        )
    return window, strides, padding, out


@st.composite
def conv_stacks(draw):
    """``(layers, image_shape, activations)`` of a random convolutional stack that fits."""
    shape = (draw(st.integers(2, 6)), draw(st.integers(2, 6)), draw(st.integers(1, 3)))
    size, layers, activations = shape[:2], [], []
    stds = st.floats(0.3, 2.0)
    for _ in range(draw(st.integers(1, 3))):
        window, strides, padding, size = _window(draw, size, conv=True)
        layers.append(Conv(window, strides, padding, draw(stds), draw(st.floats(0.0, 0.5))))
        name = draw(st.sampled_from(ACTIVATIONS))
        activations.append(name)
        layers.append(Activation(name))
        if draw(st.integers(0, 3)) == 0:
            window, strides, padding, size = _window(draw, size, conv=False)
            layers.append(AvgPool(window, strides, padding))
    readout = draw(st.sampled_from(["flatten", "gap", "local"]))
    if readout == "local":
        window, strides, padding, size = _window(draw, size, conv=False)
        layers.append(AvgPool(window, strides, padding))
    layers.append(GlobalAvgPool() if readout == "gap" else Flatten())
    layers.append(Dense(draw(stds), draw(st.floats(0.0, 0.5))))
    return tuple(layers), shape, tuple(activations)


def _inputs(shape, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 rows (the last the negated first) and 2 rows (the first a copy of x1's second)."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=(3, *shape))
    x1[2] = -x1[0]
    x2 = rng.normal(size=(2, *shape))
    x2[0] = x1[1]
    return x1, x2


def check_properties(layers, shape, activations, seed: int = 0) -> None:
    """Every property of one stack (raises AssertionError naming the one that fails)."""
    stack = serial(*layers)
    x1, x2 = _inputs(shape, seed)
    with jax.enable_x64(True):
        k11, k12 = stack(x1), stack(x1, x2)
        same = stack(x1, x1)
        small_blocks = stack(x1, x2, block_size=1)
        diag = stack.diag(x1)
    for name in ("nngp", "ntk"):
        k, scale = getattr(k11, name), np.abs(getattr(k11, name)).max()
        assert np.isfinite(k).all() and np.isfinite(getattr(k12, name)).all(), name
        np.testing.assert_array_equal(k, k.T, err_msg=f"{name} symmetric")
        assert np.linalg.eigvalsh(k).min() >= -1e-10 * scale, f"{name} PSD"
        np.testing.assert_allclose(
            getattr(same, name), k, rtol=0, atol=1e-12 * scale, err_msg=f"{name} x2=x1"
        )
        np.testing.assert_allclose(
            getattr(small_blocks, name),
            getattr(k12, name),
            rtol=0,
            atol=1e-12 * scale,
            err_msg=f"{name} block_size",
        )
        np.testing.assert_allclose(
            getattr(diag, name), np.diag(k), rtol=1e-10, atol=1e-300, err_msg=f"{name} diag"
        )
        # x2[0] is x1[1]: its column equals the symmetric kernel's.
        np.testing.assert_allclose(
            getattr(k12, name)[:, 0], k[:, 1], rtol=1e-10, err_msg=f"{name} duplicate row"
        )
    k32 = stack(x1.astype(np.float32), x2.astype(np.float32))
    rtol = max(F32_RTOL.get(a, F32_RTOL_DEFAULT) for a in activations)
    for name in ("nngp", "ntk"):
        want, got = getattr(k12, name), getattr(k32, name)
        assert got.dtype == np.float32
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err <= rtol, f"{name} float32 vs float64: {err:.2e} > {rtol:.0e}"


def check_flip(layers, shape, seed: int = 0) -> None:
    """A flip-invariant stack (where the layers commute with the flip) ignores mirroring."""
    stack = serial(*layers, flip_invariant=True)
    try:
        stack.layouts(shape)
    except ValueError as error:
        assert "flip_invariant=True needs every layer to commute" in str(error), str(error)
        return
    x1, x2 = _inputs(shape, seed)
    with jax.enable_x64(True):
        k = stack(x1, x2)
        mirrored = stack(x1, x2[:, :, ::-1])
        both = stack(x1[:, :, ::-1], x2)
        diag, full = stack.diag(x1), stack(x1)
    for name in ("nngp", "ntk"):
        want = getattr(k, name)
        scale = np.abs(want).max()
        for got in (getattr(mirrored, name), getattr(both, name)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12 * scale, err_msg=name)
        np.testing.assert_allclose(getattr(diag, name), np.diag(getattr(full, name)), rtol=1e-10)
        assert np.linalg.eigvalsh(getattr(full, name)).min() >= -1e-10 * scale


QUICK = settings(
    max_examples=2,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
THOROUGH = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


@QUICK
@given(conv_stacks())
def test_random_conv_stacks(case):
    check_properties(*case)


@QUICK
@given(conv_stacks())
def test_random_flip_invariant_stacks(case):
    check_flip(*case[:2])


@pytest.mark.slow
@THOROUGH
@given(conv_stacks(), st.integers(0, 2**16))
def test_random_conv_stacks_thorough(case, seed):
    check_properties(*case, seed=seed)
    check_flip(*case[:2], seed=seed)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.integers(1, 6),
    st.integers(1, 3),
    st.sampled_from(["SAME", "VALID"]),
    st.sampled_from(["conv", "pool"]),
)
def test_windows_that_do_not_fit_are_refused_by_name(h, w, k, s, padding, kind):
    """A window larger than the (reduced) image is a ValueError naming the layer and the size,
    raised by the shape check before anything is computed; a window that fits passes it."""
    if kind == "conv":
        layer = Conv((k, k), (s, s), padding)
    else:
        layer = AvgPool((k, k), (s, s), padding)
    stack = serial(Conv((1, 1)), Activation("relu"), layer, Flatten(), Dense())
    fits = min(out_size(h, k, s, padding), out_size(w, k, s, padding)) >= 1
    if fits:
        stack.layouts((h, w, 1))
        return
    x = np.random.default_rng(0).normal(size=(2, h, w, 1))
    message = rf"{type(layer).__name__}\(.*does not fit images of {h}x{w} (pixels|positions)"
    with pytest.raises(ValueError, match=message):
        stack(x)
