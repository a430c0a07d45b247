"""Regressions of issue 23 in the kernel layer: 1x1 average pooling, the Myrtle network on
small images, and tiles sized to small calls."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.svm import SVC

from ntk_sklearn import NTKRegressor
from ntk_sklearn.architectures import make_stack
from ntk_sklearn.gaussian_process import NNGPKernel
from ntk_sklearn.kernels import (
    AvgPool,
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Relu,
    _composition,
    _serial,
    _tiling,
    serial,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _images(n, shape=(6, 5, 2), seed=0):
    return np.random.default_rng(seed).normal(size=(n, *shape))


# -- AvgPool((1, 1)): a window that reads same-pixel pairs only ---------------------------------


def test_unit_pool_is_the_identity():
    """``AvgPool((1, 1))`` changes nothing: the stack without it gives the same kernels (it
    used to raise ``IndexError: tuple index out of range``)."""
    x1, x2 = _images(3), _images(4, seed=1)
    head = [Conv(w_std=1.4, b_std=0.1), Relu()]
    tail = [Flatten(), Dense(1.3, 0.1)]
    pooled = serial(*head, AvgPool((1, 1)), *tail)
    plain = serial(*head, *tail)
    assert pooled.layouts(x1.shape[1:])[2] == "diag"
    for got, want in ((pooled(x1, x2), plain(x1, x2)), (pooled.diag(x1), plain.diag(x1))):
        np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-13)
        np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-13)


def test_strided_unit_pool_subsamples_pixels():
    """``AvgPool((1, 1), strides=(2, 2))`` keeps every second pixel: after pixelwise layers
    (1x1 convolutions, ReLU) it equals the stack on the subsampled images; after a 3x3
    convolution it equals the computation on all pixel pairs."""
    x1, x2 = _images(3), _images(4, seed=1)
    pixelwise = [Conv((1, 1), w_std=1.4, b_std=0.1), Relu()]
    tail = [Flatten(), Dense(1.3, 0.1)]
    pooled = serial(*pixelwise, AvgPool((1, 1), strides=(2, 2)), *tail)
    got, want = pooled(x1, x2), serial(*pixelwise, *tail)(x1[:, ::2, ::2], x2[:, ::2, ::2])
    np.testing.assert_allclose(got.nngp, want.nngp, rtol=1e-13)
    np.testing.assert_allclose(got.ntk, want.ntk, rtol=1e-13)

    stack = serial(Conv(w_std=1.4, b_std=0.1), Relu(), AvgPool((1, 1), (2, 2)), *tail)
    layouts = stack.layouts(x1.shape[1:])
    all_pairs = tuple(layout if layout == "fc" else "full" for layout in layouts)
    run = jax.jit(_composition._run, static_argnums=(3, 4))
    full = run(stack, jnp.asarray(x1), jnp.asarray(x2), True, all_pairs)
    got = stack(x1, x2)
    np.testing.assert_allclose(got.nngp, full.nngp, rtol=1e-13)
    np.testing.assert_allclose(got.ntk, full.ntk, rtol=1e-13)
    np.testing.assert_allclose(stack.diag(x1).ntk, np.diag(stack(x1).ntk), rtol=1e-13)


def test_unit_pool_in_the_estimators_and_scikit_learn_kernels():
    """The same layers through ``layers=`` (estimator) and ``NNGPKernel`` inside ``SVC``."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(12, 4 * 4 * 2))
    y = X[:, 0] + 0.1 * rng.normal(size=12)
    labels = (y > np.median(y)).astype(int)
    # The estimators put their w_std/b_std into the layers; these are the same.
    stack = serial(
        Conv(w_std=1.4, b_std=0.1), Relu(), AvgPool((1, 1), (2, 2)), Flatten(), Dense(1.4, 0.1)
    )
    params = dict(layers=stack, image_shape=(4, 4, 2), w_std=1.4, b_std=0.1)
    model = NTKRegressor(**params, alpha=1e-3).fit(X, y)
    gram = stack(X.reshape(-1, 4, 4, 2), get="ntk")
    expected = gram @ np.linalg.solve(gram + 1e-3 * np.eye(12), y - y.mean()) + y.mean()
    np.testing.assert_allclose(model.predict(X), expected, rtol=1e-6, atol=1e-8)

    kernel = NNGPKernel(**params)
    svc = SVC(kernel=kernel).fit(X, labels)
    nngp = stack(X.reshape(-1, 4, 4, 2), get="nngp")
    reference = SVC(kernel="precomputed").fit(nngp, labels)
    np.testing.assert_allclose(
        svc.decision_function(X), reference.decision_function(nngp), rtol=1e-6, atol=1e-8
    )


# -- architecture="myrtle" on small images ------------------------------------------------------


@pytest.mark.parametrize("image_shape", [(2, 2, 1), (3, 3, 2), (4, 3, 1), (3, 8, 1)])
def test_myrtle_refuses_images_under_4x4_naming_the_size(image_shape):
    """The Myrtle network on images under 4x4 says so (it used to report an AvgPool window
    error about 1x1 images), through make_stack, the estimators and NNGPKernel."""
    message = r"architecture='myrtle' needs images of at least 4x4 pixels"
    with pytest.raises(ValueError, match=message):
        make_stack("myrtle", depth=3, image_shape=image_shape)
    X = np.random.default_rng(0).normal(size=(4, int(np.prod(image_shape))))
    with pytest.raises(ValueError, match=message):
        NTKRegressor(architecture="myrtle", depth=3, image_shape=image_shape).fit(X, X[:, 0])
    kernel = NNGPKernel(architecture="myrtle", depth=3, image_shape=image_shape)
    with pytest.raises(ValueError, match=message):
        kernel(X)


def test_myrtle_size_check_agrees_with_its_layers():
    """Refused exactly where the Myrtle layers do not fit the images."""
    layers = make_stack("myrtle", depth=3, image_shape=(8, 8, 1))
    for h in range(1, 7):
        for w in range(1, 7):
            try:
                layers.layouts((h, w, 1))
                fits = True
            except ValueError:
                fits = False
            try:
                make_stack("myrtle", depth=3, image_shape=(h, w, 1))
                accepted = True
            except ValueError:
                accepted = False
            assert accepted == fits, (h, w)


# -- tiles sized to small calls -----------------------------------------------------------------


def test_small_calls_are_not_padded_to_a_full_tile(monkeypatch):
    """2 rows against 3 of an all-pixel-pair kernel compute 2 x 4 padded rows (they were padded
    to 32 x 32: a tanh flip kernel on 5x3 images took 31 s); the values are the same entries as
    in a larger call."""
    stack = serial(Conv(w_std=1.4, b_std=0.1), Relu(), GlobalAvgPool(), Dense(1.4, 0.1))
    x = _images(40, shape=(5, 3, 1), seed=4)
    assert stack.layouts(x.shape[1:])[0] == "full"
    shapes = []
    tile = _serial._grid_tile

    def spy(runs, flip, a, b, *args):
        shapes.append((a.shape[0], b.shape[0]))
        return tile(runs, flip, a, b, *args)

    monkeypatch.setattr(_serial, "_grid_tile", spy)
    small = stack(x[:2], x[2:5])
    assert shapes == [(2, 4)]
    whole = stack(x)
    np.testing.assert_allclose(small.nngp, whole.nngp[:2, 2:5], rtol=1e-13)
    np.testing.assert_allclose(small.ntk, whole.ntk[:2, 2:5], rtol=1e-13)
    # A call of 40 rows keeps the buckets of multiples of 32 (one tile of 40 padded to 48).
    assert shapes[1:] == [(48, 48)]


def test_row_buckets():
    """Padded row counts: at least the rows, at most a block, under twice the rows below 32
    (a power of two), multiples of 32 up to 256 rows and of 128 above."""
    for block in (1, 7, 48, 2048):
        for n in range(1, min(block, 600) + 1):
            size = _tiling.padded(n, block)
            assert n <= size <= max(block, n)
            if n < 32:
                assert size < 2 * n or size == block
                assert size == block or size & (size - 1) == 0
            elif size < block:
                assert size % (32 if n <= 256 else 128) == 0


def test_numpy_activation_refused_twice_in_one_process():
    """A NumPy ufunc as activation is refused every time (a second jax.eval_shape of np.tanh
    used to kill the process with a segmentation fault), checked in a fresh process."""
    code = (
        "import numpy as np\n"
        "from ntk_sklearn.kernels import Activation\n"
        "for _ in range(3):\n"
        "    try:\n"
        "        Activation(np.tanh)\n"
        "    except ValueError as error:\n"
        "        assert 'np.tanh' in str(error)\n"
        "print('refused')\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "refused"
