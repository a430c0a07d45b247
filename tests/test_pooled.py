"""The all-pixel-pair fast path of stacks read out by GlobalAvgPool (``kernels/_pooled.py``).

Truth: the generic layer-by-layer ``"full"`` layout (``_pooled.supports`` switched off), which
the golden neural-tangents values in ``test_conv_kernels.py``/``test_layers_reference.py`` check.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.architectures import make_stack
from ntk_sklearn.kernels import (
    AvgPool,
    Conv,
    Dense,
    Erf,
    Gelu,
    GlobalAvgPool,
    Identity,
    Relu,
    _composition,
    _pooled,
    kernel_matrices,
    serial,
)


def _generic(monkeypatch, fn):
    with monkeypatch.context() as m:
        m.setattr(_pooled, "supports", lambda *args: False)
        return fn()


def _jitted(stack, x1, x2):
    """``kernel_matrices`` compiled afresh (traced with the path in force now)."""
    return jax.jit(lambda a, b: kernel_matrices(stack, a, b))(jnp.asarray(x1), jnp.asarray(x2))


def _uses_fast_path(stack, row_shape) -> bool:
    runs = _composition._runs(stack.layers, stack.layouts(row_shape), np.float32)
    return _pooled.supports(*_composition._unrolled(runs))


CASES = {
    "cntk-gap, 7x9 images": (
        serial(
            Conv((3, 3), w_std=1.4, b_std=0.1),
            Relu(),
            Conv((3, 3), w_std=1.3, b_std=0.2),
            Relu(),
            GlobalAvgPool(),
            Dense(1.4, 0.1),
        ),
        (7, 9, 3),
    ),
    "myrtle-5, 8x8": (
        make_stack("myrtle", depth=4, image_shape=(8, 8, 3), w_std=1.4, b_std=0.1),
        (8, 8, 3),
    ),
    "1-D, filter 5, erf, conv before GAP": (
        serial(
            Conv((5,), w_std=1.2, b_std=0.2),
            Erf(),
            Conv((3,), w_std=1.2),
            GlobalAvgPool(),
            Dense(1.0),
        ),
        (11, 2),
    ),
    "activation first, even filter, AvgPool, 10 channels, Identity tail": (
        serial(
            Relu(),
            Conv((3, 3), w_std=1.4),
            Gelu(),
            AvgPool((2, 2)),
            Conv((2, 2), w_std=1.3, b_std=0.3),
            Relu(),
            GlobalAvgPool(),
            Dense(1.4, 0.1),
            Identity(),
            Dense(1.1, 0.2),
        ),
        (6, 7, 10),
    ),
    "3-D volumes": (
        serial(Conv((3, 3, 3), w_std=1.4, b_std=0.1), Relu(), GlobalAvgPool(), Dense(1.4)),
        (4, 5, 4, 2),
    ),
}


def _inputs(shape, n1=3, n2=2, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=(n1, *shape)), rng.normal(size=(n2, *shape))
    x2[0], x2[1] = x1[0], -x1[1]  # identical and antipodal rows
    return x1, x2


_SLOW = ("myrtle-5, 8x8", "activation first, even filter, AvgPool, 10 channels, Identity tail")


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in _SLOW else n for n in CASES]
)
def test_fast_path_equals_generic_float64(name, monkeypatch):
    stack, shape = CASES[name]
    assert _uses_fast_path(stack, shape)
    x1, x2 = _inputs(shape)
    with jax.enable_x64(True):
        fast = _jitted(stack, x1, x2)
        slow = _generic(monkeypatch, lambda: _jitted(stack, x1, x2))
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14 * np.abs(b).max())


@pytest.mark.parametrize(
    "name", ["cntk-gap, 7x9 images", pytest.param("myrtle-5, 8x8", marks=pytest.mark.slow)]
)
def test_fast_path_equals_generic_float32(name, monkeypatch):
    stack, shape = CASES[name]
    x1, x2 = (x.astype(np.float32) for x in _inputs(shape))
    fast = _jitted(stack, x1, x2)
    slow = _generic(monkeypatch, lambda: _jitted(stack, x1, x2))
    for a, b in zip(fast, slow, strict=True):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=2e-5)


@pytest.mark.slow
def test_tiled_symmetric_and_flip_invariant(monkeypatch):
    """The public call: x2=None (triangle of tiles) and x2 given agree with the generic path,
    flip_invariant included, and the identical/antipodal rows keep their exact values."""
    stack, shape = CASES["cntk-gap, 7x9 images"]
    flipped = serial(*stack.layers, flip_invariant=True)
    x1, x2 = _inputs(shape, n1=5, n2=3)
    with jax.enable_x64(True):
        for s in (stack, flipped):
            sym, cross = s(x1, block_size=2), s(x1, x2)
            jax.clear_caches()
            ref_sym = _generic(monkeypatch, lambda s=s: s(x1, block_size=2))
            ref_cross = _generic(monkeypatch, lambda s=s: s(x1, x2))
            jax.clear_caches()
            for a, b in zip((*sym, *cross), (*ref_sym, *ref_cross), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-12)
            np.testing.assert_array_equal(sym.nngp, sym.nngp.T)
            # x2[0] == x1[0]: the cross kernel's entry is the row's own kernel value.
            np.testing.assert_allclose(cross.nngp[0, 0], sym.nngp[0, 0], rtol=1e-13)


@pytest.mark.slow
def test_gradients_with_respect_to_stds(monkeypatch):
    """``jax.grad`` through the fast path: the generic path's and a central difference."""
    shape = (5, 6, 2)
    x1, x2 = _inputs(shape)

    def total(w, b):
        stack = make_stack("conv", depth=2, image_shape=shape, pooling="gap", w_std=w, b_std=b)
        k = kernel_matrices(stack, jnp.asarray(x1), jnp.asarray(x2))
        return k.nngp.sum() + k.ntk.sum()

    with jax.enable_x64(True):
        fast = jax.grad(total, argnums=(0, 1))(1.4, 0.2)
        slow = _generic(monkeypatch, lambda: jax.grad(total, argnums=(0, 1))(1.4, 0.2))
        h = 1e-5
        central = (
            (total(1.4 + h, 0.2) - total(1.4 - h, 0.2)) / (2 * h),
            (total(1.4, 0.2 + h) - total(1.4, 0.2 - h)) / (2 * h),
        )
    for a, b, c in zip(fast, slow, central, strict=True):
        assert np.isfinite(a)
        np.testing.assert_allclose(a, b, rtol=1e-10)
        np.testing.assert_allclose(a, c, rtol=1e-7)


@pytest.mark.slow
def test_nngp_only_and_ntk_only(monkeypatch):
    stack, shape = CASES["myrtle-5, 8x8"]
    x1, x2 = _inputs(shape)
    with jax.enable_x64(True):
        both = stack(x1, x2)
        np.testing.assert_allclose(stack(x1, x2, get="nngp"), both.nngp, rtol=1e-13)
        np.testing.assert_allclose(stack(x1, x2, get="ntk"), both.ntk, rtol=1e-13)


@pytest.mark.parametrize(
    "layers",
    [
        [Conv((3, 3), strides=(2, 2), w_std=1.4), Relu(), GlobalAvgPool(), Dense(1.0)],
        [Conv((3, 3), padding="VALID", w_std=1.4), Relu(), GlobalAvgPool(), Dense(1.0)],
        [Conv((3, 3), w_std=1.4, parameterization="standard"), Relu(), GlobalAvgPool(), Dense(1.0)],
        [Conv((3, 3), w_std=1.4), Relu(), GlobalAvgPool(), Dense(1.0), Relu(), Dense(1.0)],
        [Relu(), AvgPool((2, 2)), GlobalAvgPool(), Dense(1.0)],
    ],
)
def test_other_stacks_take_the_generic_path(layers):
    """Strided/VALID/standard convolutions, activations after the pool and stacks without a
    convolution are not taken (the generic layers compute them)."""
    stack = serial(*layers)
    assert not _uses_fast_path(stack, (8, 8, 3))


def test_resnet_takes_the_generic_path():
    stack = make_stack("resnet", depth=1, image_shape=(8, 8, 3))
    assert not _uses_fast_path(stack, (8, 8, 3))


def test_cpu_sub_blocks_equal_one_block(monkeypatch):
    """A tile larger than ``CPU_BLOCK_BYTES`` loops over sub-blocks of rows (here 2 x 2, the
    rows padded): the same kernels as one block."""
    stack, shape = CASES["cntk-gap, 7x9 images"]
    x1, x2 = _inputs(shape, n1=3, n2=5)
    with jax.enable_x64(True):
        whole = _jitted(stack, x1, x2)
        entry = _pooled.pair_size(stack.layers, shape) * 8
        with monkeypatch.context() as m:
            m.setattr(_pooled, "CPU_BLOCK_BYTES", 4 * entry)
            blocked = _jitted(stack, x1, x2)
    for a, b in zip(blocked, whole, strict=True):
        assert a.shape == (3, 5)
        np.testing.assert_allclose(a, b, rtol=1e-13)
