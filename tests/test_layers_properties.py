"""New layers (branching, LayerNorm, attention, N-d convolutions, the standard
parameterization) against truths independent of neural-tangents: equivalences with the 2-D
layers, kernel properties, exact gradients, and clear errors before any work."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.kernels import (
    AvgPool,
    Conv,
    Dense,
    Erf,
    FanInConcat,
    FanInSum,
    FanOut,
    Flatten,
    Gelu,
    GlobalAvgPool,
    GlobalSelfAttention,
    Identity,
    LayerNorm,
    Relu,
    _composition,
    kernel_matrices,
    parallel,
    serial,
)
from ntk_sklearn.kernels._state import input_state


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _rows(shape, n=5, seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


def _block(conv, act=Relu):
    return serial(FanOut(2), parallel(serial(act(), conv, act(), conv), Identity()), FanInSum())


RESNET = serial(
    Conv((3, 3), w_std=1.4, b_std=0.1),
    _block(Conv((3, 3), w_std=1.3, b_std=0.1)),
    _block(Conv((3, 3), w_std=1.2, b_std=0.05)),
    _block(Conv((3, 3), w_std=1.3, b_std=0.1), act=Gelu),
    Relu(),
    GlobalAvgPool(),
    Dense(1.0, 0.1),
)
ATTENTION_LN = serial(
    Conv((1,), w_std=1.2),
    GlobalSelfAttention(2, 1.1, 1.2, 0.9, 1.0, 0.1),
    LayerNorm(axis=(1, 2)),
    Erf(),
    Flatten(),
    Dense(1.1, 0.1),
)
VOLUME = serial(
    Conv((3, 3, 3), w_std=1.5, b_std=0.1),
    Relu(),
    Conv((2, 2, 2), strides=(1, 2, 1), padding="VALID", w_std=1.4),
    LayerNorm(axis=-1),
    Relu(),
    AvgPool((2, 1, 2), strides=(1, 1, 1), padding="SAME"),
    Flatten(),
    Dense(1.0),
)
STANDARD = serial(
    Conv((3,), w_std=1.3, b_std=0.1, parameterization="standard", width=16),
    Relu(),
    FanOut(2),
    parallel(
        Conv((3,), w_std=1.2, parameterization="standard", width=8),
        serial(Conv((1,), w_std=1.1, width=24), Erf()),
    ),
    FanInConcat(),
    GlobalAvgPool(),
    Dense(1.0, 0.1, parameterization="standard"),
)
STACKS = {
    "resnet": (RESNET, (5, 5, 2)),
    "attention-layernorm": (ATTENTION_LN, (6, 3)),
    "volume": (VOLUME, (3, 4, 4, 2)),
    "standard-concat": (STANDARD, (7, 2)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", STACKS)
def test_symmetric_psd_diag_blocks_and_float32(name):
    stack, shape = STACKS[name]
    x = _rows(shape, n=6)
    x[3] = x[0]  # a duplicate row: its correlation is exactly 1
    k = stack(x)
    for m in k:
        np.testing.assert_array_equal(m, m.T)
        eig = np.linalg.eigvalsh(m)
        assert eig.min() >= -1e-10 * eig.max()
    d = stack.diag(x)
    np.testing.assert_allclose(d.nngp, np.diag(k.nngp), rtol=1e-12)
    np.testing.assert_allclose(d.ntk, np.diag(k.ntk), rtol=1e-12)
    np.testing.assert_allclose(k.ntk[0], k.ntk[3], rtol=1e-12)
    cross = stack(x[:2], x[2:], block_size=1)
    np.testing.assert_allclose(cross.ntk, k.ntk[:2, 2:], rtol=1e-12)
    np.testing.assert_allclose(stack(x, block_size=1).nngp, k.nngp, rtol=1e-12)
    with jax.enable_x64(False):
        k32 = stack(x.astype(np.float32))
    assert k32.ntk.dtype == np.float32
    for a, b in zip(k32, k, strict=True):
        assert np.abs(a - b).max() / np.abs(b).max() < 1e-5


@pytest.mark.slow
def test_sequences_and_volumes_equal_images_with_a_unit_axis():
    """A 1-D stack on (n, L, C) equals the 2-D stack on (n, 1, L, C) with (1, k) filters, and a
    3-D stack on (n, 1, H, W, C) the 2-D one on (n, H, W, C) (the 2-D layers are checked
    against neural-tangents), for every layout (diag, band, full)."""
    seq = _rows((8, 3), n=4)
    img = _rows((5, 6, 2), n=4)

    def pair(k, pool_window, readout):
        return [
            Conv((k,), w_std=1.4, b_std=0.1),
            Relu(),
            Conv((k,), strides=(2,), padding="VALID", w_std=1.3),
            Erf(),
            *([AvgPool(pool_window, strides=(1,) * len(pool_window))] if pool_window else []),
            readout(),
            Dense(1.1, 0.1),
        ]

    for pool, readout in [(None, Flatten), ((2,), Flatten), (None, GlobalAvgPool)]:
        one_d = serial(*pair(3, pool, readout))
        two_d = serial(*(_lift(layer, lambda t: (1, *t)) for layer in pair(3, pool, readout)))
        a, b = one_d(seq[:2], seq[2:]), two_d(seq[:2, None], seq[2:, None])
        for u, v in zip(a, b, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-13)
        three_d = serial(
            *(_lift(layer, lambda t: (1, *t)) for layer in _image_stack(pool, readout))
        )
        a, b = (
            serial(*_image_stack(pool, readout))(img[:2], img[2:]),
            three_d(img[:2, None], img[2:, None]),
        )
        for u, v in zip(a, b, strict=True):
            np.testing.assert_allclose(u, v, rtol=1e-13)


def _image_stack(pool, readout):
    return [
        Conv((3, 3), w_std=1.4, b_std=0.1),
        Relu(),
        Conv((2, 3), strides=(1, 2), padding="VALID", w_std=1.3),
        Erf(),
        *([AvgPool((2, 2), strides=(1, 1))] if pool else []),
        readout(),
        Dense(1.1, 0.1),
    ]


def _lift(layer, grow):
    """``layer`` with one more leading spatial axis of size-1 filters/windows."""
    if isinstance(layer, Conv):
        return Conv(
            grow(layer.filter_shape), grow(layer.strides), layer.padding, layer.w_std, layer.b_std
        )
    if isinstance(layer, AvgPool):
        return AvgPool(grow(layer.window_shape), grow(layer.strides), layer.padding)
    return layer


@pytest.mark.slow
def test_bands_equal_all_pairs_for_sequences_and_volumes():
    for stack, shape in [
        (serial(Conv((3,), w_std=1.5), Relu(), AvgPool((3,), (1,)), Flatten(), Dense()), (9, 2)),
        (
            serial(
                Conv((3, 3, 3), w_std=1.5), Erf(), AvgPool((2, 2, 2), (1, 1, 1)), Flatten(), Dense()
            ),
            (4, 5, 4, 2),
        ),
    ]:
        layouts = stack.layouts(shape)
        assert layouts[0][0] == "band"
        x1, x2 = _rows(shape, 3), _rows(shape, 2, seed=1)
        all_pairs = tuple(layout if layout == "fc" else "full" for layout in layouts)
        run = jax.jit(_composition._run, static_argnums=(3, 4))
        band = run(stack, jnp.asarray(x1), jnp.asarray(x2), True, None)
        full = run(stack, jnp.asarray(x1), jnp.asarray(x2), True, all_pairs)
        for got, want in ((band.nngp, full.nngp), (band.ntk, full.ntk)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())


@pytest.mark.slow
def test_residual_blocks_loop_and_equal_the_unrolled_stack():
    """Repeated residual blocks run as one lax.scan; the result equals the unrolled stack."""
    block = _block(Conv((3, 3), w_std=1.3, b_std=0.1))
    stack = serial(Conv((3, 3), w_std=1.4), block, block, block, block, GlobalAvgPool(), Dense())
    layouts = stack.layouts((4, 4, 2))
    depths = _composition._branch_depths(stack.layers)
    assert _composition._repeat_at(stack.layers, layouts, depths, 1) == (3, 4)
    x1, x2 = jnp.asarray(_rows((4, 4, 2), 3)), jnp.asarray(_rows((4, 4, 2), 2, seed=1))
    looped = jax.jit(_composition._run, static_argnums=(3,))(stack, x1, x2, True)
    state = input_state(x1, x2, layouts[0], True)
    unrolled = _composition._apply_group(stack.layers, layouts, state)
    np.testing.assert_allclose(looped.ntk, unrolled.ntk, rtol=1e-13)
    np.testing.assert_allclose(looped.nngp, unrolled.nngp, rtol=1e-13)


def _central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet", "attention-layernorm", "standard-concat"])
def test_gradients_match_central_differences(name):
    """d/dstd of every layer (the stack's leaves) and d/dx, with a duplicate row (its
    correlation exactly 1) in the inputs."""
    stack, shape = STACKS[name]
    x = _rows(shape, n=3, seed=2)
    x[2] = x[0]
    x = jnp.asarray(x)
    leaves, tree = jax.tree_util.tree_flatten(stack)

    def total(values, x):
        k = kernel_matrices(jax.tree_util.tree_unflatten(tree, list(values)), x)
        return k.ntk.sum() + 2.0 * jnp.trace(k.ntk) + k.nngp.sum()

    values = jnp.asarray(leaves, dtype=float)
    total = jax.jit(total)
    g_std, g_x = jax.jit(jax.grad(total, argnums=(0, 1)))(values, x)
    assert np.isfinite(g_std).all() and np.isfinite(g_x).all()
    for i in range(len(leaves)):
        fd = _central_difference(
            lambda s, i=i: float(total(values.at[i].set(s), x)), float(values[i]), 1e-5
        )
        np.testing.assert_allclose(float(g_std[i]), fd, rtol=1e-6, atol=1e-9)
    direction = jnp.asarray(np.random.default_rng(3).normal(size=x.shape))
    fd = _central_difference(lambda s: float(total(values, x + s * direction)), 0.0, 1e-5)
    np.testing.assert_allclose(float(jnp.sum(g_x * direction)), fd, rtol=1e-6)


@pytest.mark.parametrize(
    ("stack", "shape", "message"),
    [
        (
            serial(
                Conv(),
                FanOut(2),
                parallel(Conv(strides=(2, 2)), Conv()),
                FanInSum(),
                Flatten(),
                Dense(),
            ),
            (4, 4, 1),
            "different spatial shapes",
        ),
        (serial(Dense(), FanOut(2), parallel(Dense(), Dense()), Dense()), (3,), "branches"),
        (serial(Dense(), FanOut(2), parallel(Dense(), Dense())), (3,), "open branches"),
        (serial(Dense(), FanOut(2), Relu(), FanInSum(), Dense()), (3,), "parallel"),
        (serial(Dense(), parallel(Dense(), Dense()), FanInSum(), Dense()), (3,), "FanOut"),
        (serial(Dense(), FanInSum(), Dense()), (3,), "no branches"),
        (
            serial(Dense(), FanOut(2), parallel(Relu(), Identity()), FanInSum(), Dense()),
            (3,),
            "not independent",
        ),
        (serial(GlobalSelfAttention(), Dense()), (3,), "receives vectors"),
        (serial(Dense(), LayerNorm(axis=(0, 1)), Dense()), (3,), "batch axis"),
        (serial(Conv((3,)), LayerNorm(axis=1), Flatten(), Dense()), (5, 2), "channel axis"),
        (serial(Dense(), Relu(), LayerNorm(), Dense()), (3,), "Gaussian"),
        (serial(Conv((3, 3)), Flatten(), Dense()), (5, 2), "2-D filter"),
        (serial(Conv((3,)), AvgPool((2, 2)), Flatten(), Dense()), (5, 2), "2-D window"),
        (
            serial(Dense(), Relu(), Dense(parameterization="standard"), Dense()),
            (3,),
            "width=",
        ),
        (
            serial(
                Dense(width=4), FanOut(2), parallel(Dense(width=3), Dense()), FanInConcat(), Dense()
            ),
            (3,),
            "width=",
        ),
    ],
)
def test_bad_stacks_are_refused_before_any_work(stack, shape, message):
    with pytest.raises(ValueError, match=message):
        stack.layouts(shape)
    with pytest.raises(ValueError, match=message):
        stack(np.ones((2, *shape)))


def test_layers_validate_their_arguments():
    with pytest.raises(ValueError, match="parameterization"):
        Dense(parameterization="mean-field")
    with pytest.raises(ValueError, match="width"):
        Conv(width=0)
    with pytest.raises(ValueError, match="one entry per spatial axis"):
        Conv((3,), strides=(1, 1))
    with pytest.raises(ValueError, match="FanOut"):
        FanOut(0)
    with pytest.raises(ValueError, match="n_heads"):
        GlobalSelfAttention(n_heads=0)
    with pytest.raises(ValueError, match="axis"):
        LayerNorm(axis="last")
    with pytest.raises(TypeError, match="parallel takes"):
        parallel("relu")


def test_new_layers_are_values_and_pytrees():
    import pickle

    for stack, _ in STACKS.values():
        assert pickle.loads(pickle.dumps(stack)) == stack
        assert hash(stack) == hash(pickle.loads(pickle.dumps(stack)))
        leaves, tree = jax.tree_util.tree_flatten(stack)
        assert jax.tree_util.tree_unflatten(tree, leaves) == stack
    assert repr(Dense(1.5)) == "Dense(w_std=1.5, b_std=0.0)"
    assert "parameterization='standard'" in repr(Dense(parameterization="standard", width=3))
    assert repr(parallel(Relu(), Identity())).startswith("parallel(serial(Activation(")


@pytest.mark.multiprocess
def test_two_devices_give_the_same_kernel():
    """A residual stack's tiles spread over 2 (host) devices give the 1-device kernel."""
    import os
    import subprocess
    import sys
    import tempfile
    import textwrap
    from pathlib import Path

    code = textwrap.dedent(
        """
        import jax, numpy as np
        from ntk_sklearn.kernels import (Conv, Dense, FanInSum, FanOut, GlobalAvgPool,
                                         Identity, LayerNorm, Relu, parallel, serial)
        assert len(jax.devices()) == 2
        conv = Conv((3,), w_std=1.3, b_std=0.1)
        stack = serial(conv, FanOut(2), parallel(serial(Relu(), conv), Identity()), FanInSum(),
                       LayerNorm(), Relu(), GlobalAvgPool(), Dense())
        x = np.random.default_rng(0).normal(size=(9, 6, 2))
        with jax.enable_x64(True):
            np.save("out.npy", stack(x, block_size=3).ntk)
        """
    )
    root = str(Path(__file__).resolve().parents[1])
    env = {
        **os.environ,
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, check=True, timeout=300)
        two = np.load(os.path.join(tmp, "out.npy"))
    conv = Conv((3,), w_std=1.3, b_std=0.1)
    stack = serial(
        conv,
        FanOut(2),
        parallel(serial(Relu(), conv), Identity()),
        FanInSum(),
        LayerNorm(),
        Relu(),
        GlobalAvgPool(),
        Dense(),
    )
    one = stack(np.random.default_rng(0).normal(size=(9, 6, 2))).ntk
    np.testing.assert_allclose(two, one, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["pool-flatten", "gap"])
def test_volumes_are_equivariant_to_permuting_their_axes(readout):
    """A 3-D stack on volumes whose spatial axes are permuted, with its filters, strides and
    windows permuted alike, gives the same kernel (no axis is mixed up with another)."""
    x = _rows((4, 5, 3, 2), n=4)

    def stack(perm):
        def f(t):
            return tuple(t[i] for i in perm)

        head = (
            [AvgPool(f((2, 1, 2)), f((1, 1, 1)), "SAME"), Flatten()]
            if readout == "pool-flatten"
            else [GlobalAvgPool()]
        )
        return serial(
            Conv(f((3, 2, 3)), f((1, 2, 1)), "SAME", 1.4, 0.1),
            Relu(),
            Conv(f((2, 3, 1)), f((1, 1, 1)), "VALID", 1.3),
            Erf(),
            *head,
            Dense(),
        )

    want = stack((0, 1, 2))(x)
    for perm in [(1, 0, 2), (2, 1, 0), (1, 2, 0)]:
        got = stack(perm)(np.transpose(x, (0, *(1 + i for i in perm), 4)))
        for a, b in zip(got, want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        "ntk_sklearn.kernels._branching",
        "ntk_sklearn.kernels._normalization",
        "ntk_sklearn.kernels._attention",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
