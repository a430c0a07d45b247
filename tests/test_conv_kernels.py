"""Layer stacks (``serial``): convolutional kernels against neural-tangents and Monte Carlo,
exact edges, derivatives against finite differences, and bad input."""

from __future__ import annotations

import copy
import os
import pickle
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF

from ntk_sklearn.architectures import make_stack, replace_stds
from ntk_sklearn.kernels import (
    Activation,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    Layer,
    Relu,
    Serial,
    _compiled_tiles,
    _composition,
    fc_kernel,
    fc_stack,
    kernel_matrices,
    serial,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def build(layers) -> Serial:
    """A stack from the reference file's layer specs."""
    out = []
    for spec in layers:
        kind, *args = spec
        if kind == "conv":
            out.append(Conv(tuple(args[0]), tuple(args[1]), args[2], args[3], args[4]))
        elif kind == "act":
            out.append(Activation(args[0]))
        elif kind == "avgpool":
            out.append(AvgPool(tuple(args[0]), tuple(args[1]), args[2]))
        elif kind == "gap":
            out.append(GlobalAvgPool())
        elif kind == "flatten":
            out.append(Flatten())
        elif kind == "dense":
            out.append(Dense(args[0], args[1]))
    return serial(*out)


@pytest.mark.slow
def test_reference_conv_stacks(conv_reference):
    """Every neural-tangents case: 1e-10 of the largest entry, 1e-7 at correlation ±1 pairs."""
    data, meta = conv_reference
    assert len(meta) == 10
    x1, x2 = data["x1"], data["x2"]
    aligned = {"12": np.zeros((5, 4), bool), "11": np.eye(5, dtype=bool)}
    aligned["12"][0, 0] = aligned["12"][1, 1] = True  # x2[0] == x1[0], x2[1] == -x1[1]
    for case in meta:
        stack = build(case["layers"])
        got = {"12": stack(x1, x2), "11": stack(x1)}
        for name in ("nngp", "ntk"):
            for pair, k in got.items():
                ref = data[f"k{case['index']}_{name}_{pair}"]
                err = np.abs(getattr(k, name) - ref) / np.abs(ref).max()
                assert err[~aligned[pair]].max() < 1e-10, (case["index"], name, pair)
                assert err[aligned[pair]].max() < 1e-7, (case["index"], name, pair)
        diag = stack.diag(x1)
        np.testing.assert_allclose(diag.ntk, np.diag(got["11"].ntk), rtol=1e-12)


def _finite_cnn_features(x, params, pooling):
    """Penultimate features of a finite NTK-parameterized CNN (3x3 SAME convs, ReLU)."""
    h = jnp.asarray(x)
    for w, b in params:
        fan_in = w.shape[0] * w.shape[1] * w.shape[2]
        z = jax.lax.conv_general_dilated(
            h,
            w,
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            precision=jax.lax.Precision.HIGHEST,
        )
        h = jax.nn.relu(1.5 / np.sqrt(fan_in) * z + 0.1 * b)
    if pooling == "local":  # AvgPool((3, 3), strides=(1, 1), "VALID")
        h = jax.lax.reduce_window(h, 0.0, jax.lax.add, (1, 3, 3, 1), (1, 1, 1, 1), "VALID") / 9
    return h.mean(axis=(1, 2)) if pooling == "gap" else h.reshape(h.shape[0], -1)


@pytest.mark.parametrize("pooling", ["flatten", "gap", "local"])
def test_wide_random_cnn_matches_nngp(pooling):
    """The readout covariance of random width-256 CNNs equals the analytic NNGP within 5 s.e."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 6, 6, 2))
    width, n_nets = 256, 24
    head = {
        "flatten": Flatten(),
        "gap": GlobalAvgPool(),
        "local": serial(AvgPool((3, 3), strides=(1, 1)), Flatten()),
    }[pooling]
    stack = serial(
        Conv(w_std=1.5, b_std=0.1),
        Relu(),
        Conv(w_std=1.5, b_std=0.1),
        Relu(),
        head,
        Dense(1.5, 0.1),
    )
    analytic = stack(x, get="nngp")
    samples = []
    for seed in range(n_nets):
        keys = jax.random.split(jax.random.PRNGKey(seed), 4)
        params = [
            (jax.random.normal(keys[0], (3, 3, 2, width)), jax.random.normal(keys[1], (width,))),
            (
                jax.random.normal(keys[2], (3, 3, width, width)),
                jax.random.normal(keys[3], (width,)),
            ),
        ]
        phi = np.asarray(_finite_cnn_features(x, params, pooling))
        # Readout Dense(1.5, 0.1) averaged analytically: w² φ·φ'/fan_in + b².
        samples.append(1.5**2 * phi @ phi.T / phi.shape[1] + 0.1**2)
    samples = np.array(samples)
    mean, stderr = samples.mean(0), samples.std(0, ddof=1) / np.sqrt(n_nets)
    assert np.all(np.abs(mean - analytic) <= 5 * stderr + 1e-3 * np.abs(analytic).max())
    assert np.abs(mean - analytic).max() / np.abs(analytic).max() < 0.05


# -- band layout: local pooling reads only nearby pixel pairs --------------------------------

BAND_STACKS = {
    "pool2-flatten": serial(
        Conv(w_std=1.5, b_std=0.2),
        Relu(),
        Conv(w_std=1.4, b_std=0.1),
        Relu(),
        AvgPool((2, 2)),
        Flatten(),
        Dense(1.2, 0.1),
    ),
    "pool3-same-stride1": serial(
        Conv(w_std=1.5, b_std=0.2),
        Erf(),
        AvgPool((3, 3), strides=(1, 1), padding="SAME"),
        Flatten(),
        Dense(1.2, 0.1),
    ),
    "strided-conv-valid": serial(
        Conv((3, 3), strides=(2, 2), w_std=1.5, b_std=0.2),
        Relu(),
        Conv((2, 2), padding="VALID"),
        Relu(),
        AvgPool((2, 3), strides=(1, 2), padding="SAME"),
        Flatten(),
        Dense(1.2, 0.1),
    ),
    # All pairs first (the 2x2 window widens the band past the 8x8 image), then a band.
    "full-then-band": serial(
        Conv(w_std=1.5, b_std=0.2),
        Relu(),
        AvgPool((2, 2), strides=(1, 1), padding="SAME"),
        Conv(w_std=1.4),
        Relu(),
        AvgPool((4, 4), strides=(1, 1)),
        Flatten(),
        Dense(1.2, 0.1),
    ),
    "pool-conv-pool": serial(
        Conv(w_std=1.5, b_std=0.2),
        Relu(),
        AvgPool((2, 2)),
        Conv(w_std=1.4),
        Relu(),
        AvgPool((2, 2), strides=(1, 1)),
        Flatten(),
        Dense(1.2, 0.1),
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "shape"),
    [(name, (9, 11, 2)) for name in BAND_STACKS if name != "full-then-band"]
    + [("strided-conv-valid", (12, 12, 3)), ("full-then-band", (8, 8, 2))],
)
def test_local_pooling_bands_equal_all_pixel_pairs(name, shape):
    """Stacks read out by local pooling run on bands of pixel pairs and equal the all-pairs
    computation (itself checked against neural-tangents) to rounding; diag() agrees too."""
    stack = BAND_STACKS[name]
    layouts = stack.layouts(shape)
    assert any(isinstance(layout, tuple) and layout[0] == "band" for layout in layouts)
    assert ("full" in layouts) == (name == "full-then-band")
    rng = np.random.default_rng(3)
    x1, x2 = rng.normal(size=(3, *shape)), rng.normal(size=(4, *shape))
    x2[0] = x1[1]
    all_pairs = tuple(layout if layout == "fc" else "full" for layout in layouts)
    run = jax.jit(_composition._run, static_argnums=(3, 4))
    band = run(stack, jnp.asarray(x1), jnp.asarray(x2), True, None)
    full = run(stack, jnp.asarray(x1), jnp.asarray(x2), True, all_pairs)
    for got, want in ((band.nngp, full.nngp), (band.ntk, full.ntk)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * np.abs(want).max())
    k, d = stack(x1), stack.diag(x1)
    np.testing.assert_allclose(np.diag(k.ntk), d.ntk, rtol=1e-13)
    np.testing.assert_allclose(np.diag(k.nngp), d.nngp, rtol=1e-13)


def test_each_layer_carries_only_the_pixel_pairs_its_readout_needs():
    conv, relu = Conv(), Relu()
    head = [Flatten(), Dense()]
    assert serial(conv, relu, *head).layouts((8, 8, 1))[:2] == ("diag", "diag")
    local = serial(conv, relu, AvgPool((3, 3), strides=(1, 1)), *head)
    assert local.layouts((8, 8, 1)) == (("band", 2, 2),) * 3 + ("diag", "fc")
    # A pooling window as large as the image pairs every pixel: all pairs, from the start.
    assert serial(conv, relu, AvgPool((4, 4)), *head).layouts((4, 4, 1))[:3] == ("full",) * 3
    gap = serial(conv, relu, AvgPool((2, 2)), conv, relu, GlobalAvgPool(), Dense())
    assert gap.layouts((8, 8, 1)) == ("full",) * 6 + ("fc",)
    # The memory estimate counts the band: 8·8 pixels × 5·5 offsets per row pair.
    assert local._pair_size((8, 8, 1)) == 8 * 8 * 25


def test_band_gradients_match_finite_differences():
    x = jnp.asarray(_images(3, shape=(6, 5, 2)))

    def total(w, b):
        stack = serial(
            Conv(w_std=w, b_std=b),
            Relu(),
            AvgPool((2, 2), strides=(1, 1), padding="SAME"),
            Flatten(),
            Dense(w, b),
        )
        k = kernel_matrices(stack, x, get="ntk").ntk
        return k.sum() + 3.0 * jnp.trace(k)

    total = jax.jit(total)
    g = jax.jit(jax.grad(total, argnums=(0, 1)))(1.4, 0.2)
    assert all(np.isfinite(float(v)) for v in g)
    for i, v in enumerate((1.4, 0.2)):
        fd = _central_difference(
            lambda s, i=i: float(total(*[(s if j == i else u) for j, u in enumerate((1.4, 0.2))])),
            v,
            1e-5,
        )
        np.testing.assert_allclose(float(g[i]), fd, rtol=1e-6)


# -- flip invariance ---------------------------------------------------------------------------

FLIP_STACKS = {
    "flatten": serial(Conv(w_std=1.5, b_std=0.2), Relu(), Flatten(), Dense(1.2, 0.1)),
    "local-band": serial(
        Conv(w_std=1.5, b_std=0.2),
        Erf(),
        AvgPool((2, 2), strides=(1, 1)),
        Flatten(),
        Dense(1.2, 0.1),
    ),
    "valid-strided-gap": serial(
        Conv((3, 3), strides=(2, 2), padding="VALID", w_std=1.5, b_std=0.2),
        Relu(),
        Conv(w_std=1.4),
        Relu(),
        GlobalAvgPool(),
        Dense(1.2, 0.1),
    ),
}


def _mirror(x):
    return x[:, :, ::-1]


@pytest.mark.parametrize("name", FLIP_STACKS)
def test_flip_invariant_kernel_is_the_kernel_of_flip_averaged_features(name):
    """By bilinearity, the features (φ(x) + φ(gx)) / 2 have the kernel ¼ Σ_{g, g'} k(gx, g'x'):
    the flip-invariant stack equals that four-term average of the plain stack (which also checks
    that the stack commutes with the flip, the identity its two-term form rests on)."""
    plain = FLIP_STACKS[name]
    stack = serial(*plain.layers, flip_invariant=True)
    x1, x2 = _images(3, seed=4, shape=(7, 7, 2)), _images(4, seed=5, shape=(7, 7, 2))
    k = stack(x1, x2)
    terms = [plain(a, b) for a in (x1, _mirror(x1)) for b in (x2, _mirror(x2))]
    for kind in ("nngp", "ntk"):
        expected = sum(getattr(t, kind) for t in terms) / 4
        scale = np.abs(expected).max()
        np.testing.assert_allclose(getattr(k, kind), expected, rtol=0, atol=1e-13 * scale)
        # Exactly invariant to mirroring either side.
        flipped = getattr(stack(_mirror(x1), x2), kind)
        np.testing.assert_allclose(flipped, getattr(k, kind), rtol=0, atol=1e-13 * scale)
    sym = stack(x1)
    square = stack(x1, x1)
    np.testing.assert_array_equal(sym.ntk, sym.ntk.T)
    np.testing.assert_allclose(sym.ntk, square.ntk, rtol=1e-13)
    diag = stack.diag(x1)
    np.testing.assert_allclose(diag.nngp, np.diag(square.nngp), rtol=1e-13)
    np.testing.assert_allclose(diag.ntk, np.diag(square.ntk), rtol=1e-13)
    assert np.linalg.eigvalsh(stack(np.concatenate([x1, x2])).nngp).min() > -1e-12


def test_flip_invariant_gradients_match_finite_differences():
    x = jnp.asarray(_images(3, shape=(5, 6, 2)))

    def total(w):
        stack = serial(
            Conv(w_std=w, b_std=0.2), Relu(), Flatten(), Dense(w, 0.1), flip_invariant=True
        )
        k = kernel_matrices(stack, x, get="ntk").ntk
        return k.sum() + 3.0 * jnp.trace(k)

    total = jax.jit(total)
    g = float(jax.jit(jax.grad(total))(1.4))
    np.testing.assert_allclose(
        g, _central_difference(lambda w: float(total(w)), 1.4, 1e-5), rtol=1e-6
    )


def test_mirror_symmetric_windows_match_brute_force():
    from ntk_sklearn.kernels import _spatial

    for size in range(1, 13):
        for window in range(1, 6):
            for stride in range(1, 4):
                for padding in ("SAME", "VALID"):
                    n = _spatial.out_size(size, window, stride, padding)
                    if n < 1:
                        continue
                    low, _ = _spatial.pads(size, window, stride, padding)
                    # Each window as the positions it covers (padding included: a pair's
                    # covariance reads the same offset of the window in both images).
                    windows = {
                        frozenset(range(a, a + window))
                        for a in (-low + j * stride for j in range(n))
                    }
                    mirrored = {frozenset(size - 1 - p for p in w) for w in windows}
                    symmetric = _spatial.mirror_symmetric(size, window, stride, padding)
                    assert symmetric == (windows == mirrored), (size, window, stride, padding)


@pytest.mark.parametrize(
    ("make", "x", "message"),
    [
        (
            lambda: serial(Dense(), Relu(), Dense(), flip_invariant=True),
            np.ones((2, 4)),
            "horizontal flips of images",
        ),
        (
            lambda: serial(Conv(strides=(2, 2)), Relu(), Flatten(), Dense(), flip_invariant=True),
            np.ones((2, 8, 8, 1)),
            "mirror-symmetric",
        ),
        (
            lambda: serial(serial(Conv(), Relu(), flip_invariant=True), Flatten(), Dense()),
            None,
            "outer serial",
        ),
    ],
)
def test_flip_invariant_bad_stacks(make, x, message):
    with pytest.raises(ValueError, match=message):
        make()(x)


def test_flip_invariant_must_be_a_bool_and_new_layers_are_not_assumed_symmetric():
    with pytest.raises(TypeError, match="flip_invariant"):
        serial(Conv(), Flatten(), Dense(), flip_invariant="yes")

    class Shift(Flatten):  # a spatial layer of a user's own that says nothing about flips
        mirror_symmetric = Layer.mirror_symmetric

    with pytest.raises(ValueError, match="mirror-symmetric"):
        serial(Conv(), Shift(), Dense(), flip_invariant=True).layouts((4, 4, 1))


def test_flip_invariant_stacks_are_values():
    plain = FLIP_STACKS["flatten"]
    stack = serial(plain, flip_invariant=True)
    assert stack != plain and stack == serial(*plain.layers, flip_invariant=True)
    assert repr(stack).endswith("flip_invariant=True)")
    assert pickle.loads(pickle.dumps(stack)) == stack
    leaves, tree = jax.tree_util.tree_flatten(stack)
    assert jax.tree_util.tree_unflatten(tree, leaves) == stack
    # A custom flip-invariant stack keeps the flag when the estimators set its stds.
    kept = make_stack(layers=stack, image_shape=(5, 5, 1), w_std=1.1, b_std=0.3)
    assert kept.flip_invariant and kept.layers[0] == Conv(w_std=1.1, b_std=0.3)
    with pytest.raises(ValueError, match="needs architecture='conv'"):
        make_stack("fc", flip_invariant=True)


def _images(n=5, seed=1, shape=(5, 5, 2)):
    return np.random.default_rng(seed).normal(size=(n, *shape))


MYRTLE = serial(
    Conv(w_std=1.4), Relu(), AvgPool((2, 2)), Conv(w_std=1.4), Relu(), GlobalAvgPool(), Dense(1.0)
)
FLAT = serial(
    Conv(w_std=1.5, b_std=0.1),
    Erf(),
    Conv((2, 2), padding="VALID", w_std=1.5),
    Relu(),
    Flatten(),
    Dense(1.5, 0.1),
)


@pytest.mark.slow
@pytest.mark.parametrize("stack", [MYRTLE, FLAT], ids=["myrtle", "flatten"])
def test_symmetric_psd_blocks_and_float32(stack):
    x = _images(7, shape=(6, 6, 2))
    k = stack(x)
    for m in k:
        np.testing.assert_array_equal(m, m.T)
        eig = np.linalg.eigvalsh(m)
        assert eig.min() >= -1e-10 * eig.max()
    blocked = stack(x, block_size=2)
    np.testing.assert_allclose(blocked.ntk, k.ntk, rtol=1e-12)
    cross = stack(x[:3], x[3:], block_size=2)
    np.testing.assert_allclose(cross.nngp, k.nngp[:3, 3:], rtol=1e-12)
    with jax.enable_x64(False):
        k32 = stack(x.astype(np.float32))
    assert k32.ntk.dtype == np.float32
    for a, b in zip(k32, k, strict=True):
        assert np.abs(a - b).max() / np.abs(b).max() < 1e-5


@pytest.mark.slow
def test_two_devices_give_the_same_kernel():
    code = textwrap.dedent(
        """
        import jax, numpy as np
        from ntk_sklearn.kernels import Conv, Dense, Flatten, Relu, serial
        assert len(jax.devices()) == 2
        x = np.random.default_rng(0).normal(size=(9, 5, 5, 2))
        stack = serial(Conv(w_std=1.5), Relu(), Flatten(), Dense(1.5))
        with jax.enable_x64(True):
            np.save("out.npy", stack(x, block_size=3).ntk)
        """
    )
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-c", code], cwd=tmp, env=env, check=True, timeout=300)
        two = np.load(os.path.join(tmp, "out.npy"))
    x = np.random.default_rng(0).normal(size=(9, 5, 5, 2))
    one = serial(Conv(w_std=1.5), Relu(), Flatten(), Dense(1.5))(x).ntk
    np.testing.assert_allclose(two, one, rtol=1e-12)


@pytest.mark.parametrize("activation", ["sign", "relu", "erf", "gelu", "abs", "sin", "tanh"])
def test_identical_and_antipodal_rows_are_exact(activation):
    """A row of x2 equal (or opposite) to a row of x1 gets the value of θ = 0 (θ = π) exactly.

    Rounding near correlation ±1 used to be amplified by arccos layer after layer (sign at depth
    7 gave 0.36 of the right value).
    """
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=(4, 30)) * np.array([[1.0], [1e-3], [10.0], [1.0]])
    x2 = np.vstack([x1[2], x1[0], -x1[1], rng.normal(size=30)])
    depth = 3 if activation == "tanh" else 7
    kw = dict(depth=depth, activation=activation, w_std=1.3, b_std=0.0)
    k12 = fc_kernel(x1, x2, **kw)
    diag = fc_kernel(x1, **kw)
    for name in ("nngp", "ntk"):
        a, d = getattr(k12, name), np.diag(getattr(diag, name))
        np.testing.assert_allclose([a[2, 0], a[0, 1]], [d[2], d[0]], rtol=1e-12, atol=0)
    if activation == "sign":
        # θ = π stays π: Σ = w² · (-1) at every layer after the first (b = 0), Θ = Σ (Tdot = 0).
        assert k12.nngp[1, 2] == pytest.approx(-(1.3**2), rel=1e-14)


def test_identical_images_are_exact():
    x1 = _images(3, shape=(6, 6, 3))
    x2 = np.stack([x1[1], -x1[0]])
    stack = serial(*[Conv(w_std=1.4), Activation("sign")] * 4, Flatten(), Dense(1.4))
    k12, diag = stack(x1, x2), stack.diag(x1)
    np.testing.assert_allclose(k12.nngp[1, 0], diag.nngp[1], rtol=1e-12)
    np.testing.assert_allclose(k12.ntk[1, 0], diag.ntk[1], rtol=1e-12)


def _central_difference(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf", "gelu", "sin", "tanh"])
def test_gradients_match_finite_differences(activation):
    """d/dw_std, d/db_std of every entry (diagonal and duplicate rows included), and d/dx."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 3))
    x = jnp.asarray(np.vstack([x, x[1]]))  # a duplicate row

    def entries(w1, b1, w2, b2, x=x):
        stack = serial(
            Dense(w1, b1),
            Activation(activation),
            Dense(w2, b2),
            Activation(activation),
            Dense(w2, b2),
        )
        k = kernel_matrices(stack, x, get=("nngp", "ntk"))
        return jnp.concatenate([k.nngp.ravel(), k.ntk.ravel()])

    point = (1.3, 0.2, 1.1, 0.3)
    jac = jax.jacfwd(entries, argnums=(0, 1, 2, 3))(*point)
    for i in range(4):
        assert np.isfinite(jac[i]).all()

        def f(v, i=i):
            args = list(point)
            args[i] = v
            return np.asarray(entries(*args))

        fd = _central_difference(f, point[i], 1e-5)
        np.testing.assert_allclose(jac[i], fd, rtol=1e-6, atol=1e-7 * np.abs(fd).max())
    # With respect to the inputs, through the diagonal and the duplicate row.
    grad_x = jax.grad(lambda z: entries(*point, x=z).sum())(x)
    assert np.isfinite(grad_x).all()
    direction = rng.normal(size=x.shape)
    fd = _central_difference(lambda s: float(entries(*point, x=x + s * direction).sum()), 0.0, 1e-5)
    np.testing.assert_allclose(float(jnp.sum(grad_x * direction)), fd, rtol=1e-6)


@pytest.mark.slow
def test_conv_gradients_match_finite_differences():
    x = jnp.asarray(_images(3, shape=(4, 4, 2)))

    def total(w, b):
        stack = serial(
            Conv(w_std=w, b_std=b),
            Relu(),
            AvgPool((2, 2)),
            Conv(w_std=w, b_std=b),
            Relu(),
            GlobalAvgPool(),
            Dense(w, b),
        )
        k = kernel_matrices(stack, x, get="ntk").ntk
        return k.sum() + 3.0 * jnp.trace(k)

    g = jax.grad(total, argnums=(0, 1))(1.4, 0.2)
    for i, v in enumerate((1.4, 0.2)):
        fd = _central_difference(
            lambda s, i=i: float(total(*[(s if j == i else u) for j, u in enumerate((1.4, 0.2))])),
            v,
            1e-5,
        )
        np.testing.assert_allclose(float(g[i]), fd, rtol=1e-6)


@pytest.mark.parametrize(
    "activation, scale",
    [("erf", 5e3), ("gelu", 1e4), ("sin", 1e3), ("relu", 1e15), ("sign", 1e15)],
)
def test_large_inputs_stay_finite_in_float32(activation, scale):
    """erf at x = x' (rounding-negative rsqrt), gelu's cancellation, sin: finite in float32."""
    x = (np.random.default_rng(2).normal(size=(4, 3)) * scale).astype(np.float32)
    with jax.enable_x64(False):
        k = fc_kernel(x, np.vstack([x[:2], -x[2:]]), depth=3, activation=activation, w_std=1.5)
    assert np.isfinite(k.nngp).all() and np.isfinite(k.ntk).all()


def test_overflow_is_a_clear_error():
    x = np.random.default_rng(2).normal(size=(3, 4))
    with pytest.raises(ValueError, match="overflow"):
        fc_kernel(x * 1e155, depth=1)
    with pytest.raises(FloatingPointError, match="w_std"):
        fc_kernel(x, depth=60, w_std=1e6)


def test_layers_are_values():
    stack = serial(Conv((3, 3), padding="valid", w_std=1.5), Relu(), Flatten(), Dense(1.5, 0.1))
    same = serial(
        Conv([3, 3], (1, 1), "VALID", 1.5, 0.0),
        Activation("relu"),
        Flatten(),
        Dense(w_std=1.5, b_std=0.1),
    )
    assert stack == same and hash(stack) == hash(same)
    assert stack != serial(Conv((3, 3), padding="VALID", w_std=1.5), Erf(), Flatten(), Dense())
    assert "Conv(filter_shape=(3, 3), strides=(1, 1), padding='VALID'" in repr(stack)
    assert pickle.loads(pickle.dumps(stack)) == stack
    assert copy.deepcopy(stack) is stack
    assert clone(RBF(), safe=False) is not None and clone(stack, safe=False) == stack
    assert fc_stack(2, "relu", 1.4, 0.1) == serial(*[Dense(1.4, 0.1), Relu()] * 2, Dense(1.4, 0.1))


def test_fc_kernel_is_the_dense_stack():
    x = np.random.default_rng(6).normal(size=(6, 5))
    stack = serial(Dense(1.4, 0.1), Erf(), Dense(1.4, 0.1), Erf(), Dense(1.4, 0.1))
    k = stack(x)
    ref = fc_kernel(x, depth=2, activation="erf", w_std=1.4, b_std=0.1)
    np.testing.assert_array_equal(k.ntk, ref.ntk)
    jitted = jax.jit(lambda s, z: kernel_matrices(s, z).ntk)(stack, jnp.asarray(x))
    np.testing.assert_allclose(jitted, ref.ntk, rtol=1e-12)


@pytest.mark.parametrize(
    "stack, x, message",
    [
        (serial(Conv(), Relu(), Flatten(), Dense()), np.ones((2, 8)), "takes images"),
        (serial(Dense(), Relu(), Dense()), np.ones((2, 4, 4, 1)), "add Flatten"),
        (
            serial(Conv((5, 5), padding="VALID"), Flatten(), Dense()),
            np.ones((2, 4, 4, 1)),
            "does not fit",
        ),
        (
            serial(Conv(), AvgPool((8, 8)), GlobalAvgPool(), Dense()),
            np.ones((2, 4, 4, 1)),
            "does not fit",
        ),
        (serial(Conv(), Relu()), np.ones((2, 4, 4, 1)), "ends on images"),
        (serial(Dense()), np.ones((2, 3, 4)), "height, width, channels"),
    ],
)
def test_shape_errors_before_computing(stack, x, message):
    with pytest.raises(ValueError, match=message):
        stack(x)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Conv(strides=(0, 1)), "strides"),
        (lambda: Conv(filter_shape=(3, 3, 3, 3)), "filter_shape"),  # 1-3 spatial axes
        (lambda: Conv(padding="CIRCULAR"), "padding"),
        (lambda: AvgPool((2, 2), padding="FULL"), "padding"),
        (lambda: Dense(w_std=-1.0), "w_std"),
        (lambda: Dense(w_std="1"), "w_std"),
        (lambda: Dense(b_std=float("nan")), "b_std"),
        (lambda: Activation("nope"), "Unknown activation"),
        (lambda: Activation(np.tanh), "np.tanh"),
        (lambda: Activation("leaky_relu", negative_slope=1e200), "negative_slope"),
        (lambda: Activation("tanh", quadrature_points=3000), "quadrature_points"),
        (lambda: serial(Relu), "parentheses"),
        (lambda: serial(), "at least one"),
    ],
)
def test_bad_layer_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_python_branching_activation_is_refused():
    def branchy(z):
        return z if z > 0 else 0.0 * z

    with pytest.raises(ValueError, match="jnp.where"):
        serial(Dense(), Activation(branchy), Dense())


def test_jax_scalar_hyperparameters_are_accepted():
    assert Dense(jnp.asarray(1.5), np.float32(0.1)) == Dense(1.5, float(np.float32(0.1)))


@pytest.mark.slow
def test_repeated_layers_run_as_a_loop_equal_the_unrolled_stack(monkeypatch):
    """Runs of identical groups (with or without hyperparameters) go through lax.scan."""
    x = np.random.default_rng(8).normal(size=(5, 6))
    stacks = [
        serial(Dense(1.2), Relu(), Relu(), Relu(), Dense(1.2)),
        serial(*[Dense(1.3, 0.1), Erf()] * 5, Dense(1.3, 0.1)),
        serial(*[Conv(w_std=1.4), Relu()] * 4, Flatten(), Dense(1.4)),
    ]
    images = np.random.default_rng(8).normal(size=(3, 5, 5, 2))
    looped = [s(images if i == 2 else x) for i, s in enumerate(stacks)]
    monkeypatch.setattr(_composition, "_MIN_SCAN_REPEATS", 10**6)
    monkeypatch.setattr(_composition, "_MIN_SCAN_REPEATS_IMAGES", 10**6)
    jax.clear_caches()
    for i, s in enumerate(stacks):
        unrolled = s(images if i == 2 else x)
        np.testing.assert_allclose(looped[i].ntk, unrolled.ntk, rtol=1e-12)


DEEP_STACKS = {
    "flatten": serial(*[Conv(w_std=1.4, b_std=0.1), Relu()] * 4, Flatten(), Dense(1.4, 0.1)),
    "local": serial(*[Conv(w_std=1.4), Relu()] * 3, AvgPool((2, 2), (1, 1)), Flatten(), Dense()),
    "fc": serial(*[Dense(1.3, 0.1), Erf()] * 5, Dense(1.3, 0.1)),
    # Two repeats loop on images: the first group in the loop too, from the inputs' zero NTK.
    "two": serial(*[Conv(w_std=1.4, b_std=0.1), Relu()] * 2, Flatten(), Dense(1.4, 0.1)),
    "two-gap": serial(*[Conv(w_std=1.4), Erf()] * 2, GlobalAvgPool(), Dense(1.4)),
    # Shapes change from group to group: unrolled from the state as given.
    "two-valid": serial(*[Conv(padding="VALID", w_std=1.4), Relu()] * 2, Flatten(), Dense()),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(DEEP_STACKS))
def test_scanned_layers_equal_unrolled(name, monkeypatch):
    """Repeated layers run in a loop whose carry packs the NTK into the NNGP's imaginary part
    (``KernelState.pack``) and holds the largest rounding bound of its layers; unrolled,
    nothing is packed. Values, the diagonal and gradients with respect to the stds and the
    inputs agree."""
    stack = DEEP_STACKS[name]
    shape = (6,) if name == "fc" else (5, 5, 2)
    x = jnp.asarray(_images(4, seed=3, shape=shape))
    x = jnp.concatenate([x, x[:1]])  # a duplicate row

    def entries(w, x=x):
        k = kernel_matrices(replace_stds(stack, w_std=w, b_std=0.2), x)
        return jnp.concatenate([k.nngp.ravel(), k.ntk.ravel()])

    def run():
        grad_w = jax.grad(lambda w: entries(w).sum())(1.3)
        grad_x = jax.grad(lambda z: entries(1.3, x=z).sum())(x)
        return entries(1.3), stack.diag(np.asarray(x)), grad_w, grad_x

    scanned = run()
    monkeypatch.setattr(_composition, "_MIN_SCAN_REPEATS", 10**6)
    monkeypatch.setattr(_composition, "_MIN_SCAN_REPEATS_IMAGES", 10**6)
    jax.clear_caches()  # the jitted diag tiles were traced with the scan
    unrolled = run()
    jax.clear_caches()
    np.testing.assert_allclose(scanned[0], unrolled[0], rtol=1e-13)
    for a, b in zip(scanned[1], unrolled[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    np.testing.assert_allclose(scanned[2], unrolled[2], rtol=1e-12)
    np.testing.assert_allclose(scanned[3], unrolled[3], rtol=1e-12, atol=1e-14)
    fd = _central_difference(lambda s: float(entries(s).sum()), 1.3, 1e-5)
    np.testing.assert_allclose(float(scanned[2]), fd, rtol=1e-6)


def test_two_repeats_loop_on_images_only():
    """Two repeated groups run as a loop on images (unrolled, XLA fuses the second convolution
    into the first activation and recomputes it per filter tap); vectors stay unrolled."""

    def loops(stack, shape):
        x = jnp.zeros((2, *shape))
        return "scan" in str(jax.make_jaxpr(lambda a: kernel_matrices(stack, a))(x))

    assert loops(DEEP_STACKS["two"], (5, 5, 2))
    assert not loops(serial(*[Dense(1.3), Relu()] * 2, Dense(1.3)), (6,))


@pytest.mark.slow
def test_image_tiles_without_a_known_compile_option(monkeypatch):
    """The extra XLA option of image tiles is probed: where the installed jaxlib does not know
    it, the tiles compile without it and give the same kernels."""
    stack = DEEP_STACKS["two"]
    x = _images(4, seed=5)
    expected = kernel_matrices(stack, jnp.asarray(x))
    monkeypatch.setattr(_compiled_tiles, "_XLA_LOOP_OPTIONS", {"xla_cpu_no_such_option": True})
    _compiled_tiles._tile_options.cache_clear()
    _compiled_tiles._compiled.cache_clear()
    try:
        assert _compiled_tiles._xla_loops(stack, x.shape[1:])
        assert "xla_cpu_no_such_option" not in _compiled_tiles._tile_options(True)
        got = stack(x)
    finally:
        _compiled_tiles._tile_options.cache_clear()
        _compiled_tiles._compiled.cache_clear()
    np.testing.assert_allclose(got.nngp, expected.nngp, rtol=1e-13)
    np.testing.assert_allclose(got.ntk, expected.ntk, rtol=1e-13)
