"""The new layers' NNGP against Monte Carlo over wide random networks written in plain JAX
(width 512): a residual CNN, a LayerNorm MLP, and linearly scaled softmax attention.

Each network's readout covariance ``w² φ(x)·φ(x')/n + b²`` is one sample; their mean must be
within 5 standard errors of the analytic NNGP (plus the O(1/width) bias, bounded at 1e-2 of
the largest entry)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.kernels import (
    Conv,
    Dense,
    FanInSum,
    FanOut,
    Flatten,
    GlobalAvgPool,
    GlobalSelfAttention,
    Identity,
    LayerNorm,
    Relu,
    parallel,
    serial,
)

pytestmark = pytest.mark.slow  # each test takes 10-100 s on 2 shared cores

WIDTH = 512
HP = jax.lax.Precision.HIGHEST


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _check(samples, analytic):
    samples = np.asarray(samples)
    mean = samples.mean(0)
    stderr = samples.std(0, ddof=1) / np.sqrt(len(samples))
    scale = np.abs(analytic).max()
    assert np.all(np.abs(mean - analytic) <= 5 * stderr + 1e-2 * scale), (
        np.abs(mean - analytic).max() / scale
    )


def _conv(h, w, fan_in):
    z = jax.lax.conv_general_dilated(
        h, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=HP
    )
    return z / np.sqrt(fan_in)


def test_residual_cnn_matches_wide_networks():
    """conv → [relu, conv] + identity → relu → GAP, 3x3 SAME convolutions, 4x4 images."""
    x = np.random.default_rng(0).normal(size=(4, 4, 4, 2))
    w1, w2, b = 1.4, 1.3, 0.1
    stack = serial(
        Conv((3, 3), w_std=w1, b_std=b),
        FanOut(2),
        parallel(serial(Relu(), Conv((3, 3), w_std=w2, b_std=b)), Identity()),
        FanInSum(),
        Relu(),
        GlobalAvgPool(),
        Dense(1.0, 0.0),
    )
    analytic = stack(x, get="nngp")

    @jax.jit
    def sample(key):
        k = jax.random.split(key, 4)
        z = w1 * _conv(x, jax.random.normal(k[0], (3, 3, 2, WIDTH)), 18) + b * jax.random.normal(
            k[1], (WIDTH,)
        )
        branch = w2 * _conv(
            jax.nn.relu(z), jax.random.normal(k[2], (3, 3, WIDTH, WIDTH)), 9 * WIDTH
        ) + b * jax.random.normal(k[3], (WIDTH,))
        phi = jax.nn.relu(z + branch).mean(axis=(1, 2))
        return phi @ phi.T / WIDTH

    samples = [sample(jax.random.PRNGKey(seed)) for seed in range(40)]
    _check(samples, analytic)


def test_layernorm_mlp_matches_wide_networks():
    x = np.random.default_rng(1).normal(size=(5, 6))
    stack = serial(
        Dense(1.3, 0.2), LayerNorm(), Relu(), Dense(1.2, 0.1), LayerNorm(), Relu(), Dense(1.0)
    )
    analytic = stack(x, get="nngp")

    def layer_norm(z):
        mean = z.mean(-1, keepdims=True)
        return (z - mean) / jnp.sqrt(((z - mean) ** 2).mean(-1, keepdims=True) + 1e-12)

    @jax.jit
    def sample(key):
        k = jax.random.split(key, 4)
        z = 1.3 * x @ jax.random.normal(k[0], (6, WIDTH)) / np.sqrt(6) + 0.2 * jax.random.normal(
            k[1], (WIDTH,)
        )
        h = jax.nn.relu(layer_norm(z))
        z = 1.2 * h @ jax.random.normal(k[2], (WIDTH, WIDTH)) / np.sqrt(WIDTH) + 0.1 * (
            jax.random.normal(k[3], (WIDTH,))
        )
        phi = jax.nn.relu(layer_norm(z))
        return phi @ phi.T / WIDTH

    _check([sample(jax.random.PRNGKey(seed)) for seed in range(60)], analytic)


def test_attention_matches_wide_networks():
    """neural-tangents' finite attention with linear scaling (tied keys and queries, logits
    ``w_q w_k / (C·d_key) · Q Kᵀ``), on sequences of length 5, then Flatten."""
    x = np.random.default_rng(2).normal(size=(4, 5, 3))
    wk, wv, wq, wo, b = 1.1, 1.2, 0.9, 1.0, 0.1
    stack = serial(GlobalSelfAttention(1, wk, wv, wq, wo, b), Flatten(), Dense(1.0))
    analytic = stack(x, get="nngp")
    d_key = d_val = WIDTH
    c_in = x.shape[-1]

    @jax.jit
    def sample(key):
        k = jax.random.split(key, 4)
        keys = x @ jax.random.normal(k[0], (c_in, d_key))
        logits = wq * wk * jnp.einsum("npk,nqk->npq", keys, keys) / (c_in * d_key)
        values = x @ jax.random.normal(k[1], (c_in, d_val))
        heads = jax.nn.softmax(logits, axis=-1) @ values
        out = wo * wv * heads @ jax.random.normal(k[2], (d_val, WIDTH)) / np.sqrt(d_val * c_in)
        out = out + b * jax.random.normal(k[3], (WIDTH,))
        phi = out.reshape(len(x), -1)
        return phi @ phi.T / phi.shape[1]

    _check([sample(jax.random.PRNGKey(seed)) for seed in range(60)], analytic)
