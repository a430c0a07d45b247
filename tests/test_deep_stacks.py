"""Very deep stacks: repeated layers are one compiled loop body whose stds are stacked arrays
(compile time flat in the depth), exact against a closed form, and stacks too deep to finish
are refused before any work."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn import NTKRegressor
from ntk_sklearn.kernels import (
    Conv,
    Dense,
    Flatten,
    Identity,
    Relu,
    _compiled_tiles,
    _composition,
    _serial,
    fc_stack,
    kernel_matrices,
    serial,
)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _linear_stack(w, b, images: bool):
    """``[Conv((1, 1)) or Dense, Identity()] * len(w)`` with the given stds, then a readout."""

    def weight(wi, bi):
        return Conv((1, 1), w_std=wi, b_std=bi) if images else Dense(wi, bi)

    body = [layer for wi, bi in zip(w, b, strict=True) for layer in (weight(wi, bi), Identity())]
    return serial(*body, *([Flatten(), Dense()] if images else [Dense()]))


def _linear_closed_form(s0, w, b):
    """A deep linear network's kernels: ``Σ' = w² Σ + b²``, ``Θ' = w² Θ + Σ'`` per layer
    (identity activations keep both), from ``Σ⁰ = s0`` and ``Θ⁰ = 0``; then ``Dense()``."""
    sigma, theta = s0, np.zeros_like(s0)
    for wi, bi in zip(w, b, strict=True):
        sigma = wi**2 * sigma + bi**2
        theta = wi**2 * theta + sigma
    return sigma, theta + sigma


@pytest.mark.parametrize("images", [False, True], ids=["vectors", "images"])
def test_deep_stack_with_different_stds_per_layer_matches_the_closed_form(images):
    """500 weight layers, each with its own stds: one loop whose stds are stacked arrays."""
    rng = np.random.default_rng(0)
    depth = 500
    w, b = rng.uniform(0.98, 1.02, depth), rng.uniform(0.0, 0.05, depth)
    stack = _linear_stack(w, b, images)
    shape = (2, 3, 2) if images else (4,)
    x1, x2 = rng.normal(size=(3, *shape)), rng.normal(size=(2, *shape))
    # Σ⁰ = x·x'/fan_in (per pixel); every map is linear, so Flatten's pixel mean goes last.
    s0 = np.einsum("i...c,j...c->ij...", x1, x2) / shape[-1]
    sigma, theta = _linear_closed_form(s0, w, b)
    if images:
        sigma, theta = sigma.mean(axis=(-2, -1)), theta.mean(axis=(-2, -1))
    got = stack(x1, x2)
    np.testing.assert_allclose(got.nngp, sigma, rtol=1e-11)
    np.testing.assert_allclose(got.ntk, theta, rtol=1e-11)
    runs = _composition._runs(stack.layers, stack.layouts(shape), np.float64)
    assert max(run.count for run in runs) == depth  # one run of repeated groups


def test_compiled_tile_takes_the_same_arguments_at_any_depth():
    """The tile's compiled function has the same parameters at depth 10 and 1,000: the
    repeated groups' stds arrive as one array per leaf, not one argument per layer."""
    x = jnp.zeros((2, 3, 3, 1))

    def tile(depth):
        stack = serial(*[Conv(w_std=1.4, b_std=0.1), Relu()] * depth, Flatten(), Dense())
        runs = _composition._runs(stack.layers, stack.layouts(x.shape[1:]), np.float64)
        lowered = jax.jit(_compiled_tiles._grid_kernels, static_argnums=(3, 4)).lower(
            runs, x, x, False, True
        )
        return len(jax.tree_util.tree_leaves(runs)), lowered.as_text().count("\n")

    shallow, deep = tile(10), tile(1000)
    assert shallow == deep


def test_traced_stds_shared_by_every_layer_are_broadcast():
    """``replace_stds`` with a traced std (the estimators' evidence) gives every layer the same
    tracer: it is broadcast, not stacked once per layer; gradients match central differences."""
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 5)))

    @jax.jit
    def total(w):
        stack = fc_stack(200, "identity", w_std=w, b_std=0.01)
        return kernel_matrices(stack, x, get="ntk").ntk.sum()

    assert "concatenate" not in str(jax.make_jaxpr(total)(1.0))
    h = 1e-6
    fd = (total(1.0 + h) - total(1.0 - h)) / (2 * h)
    np.testing.assert_allclose(jax.grad(total)(1.0), fd, rtol=1e-6)


def test_twenty_thousand_layers_on_small_images():
    """The issue's 20,000-layer stack on 2x2 images (it hung): exact against the closed form."""
    rng = np.random.default_rng(2)
    depth = 10_000  # 20,000 layers with the activations
    w, b = rng.uniform(0.999, 1.001, depth), rng.uniform(0.0, 0.01, depth)
    stack = _linear_stack(w, b, images=True)
    x = rng.normal(size=(3, 2, 2, 1))
    s0 = np.einsum("ihwc,jhwc->ijhw", x, x)  # one channel
    sigma, theta = _linear_closed_form(s0, w, b)
    got = stack(x)
    np.testing.assert_allclose(got.nngp, sigma.mean(axis=(-2, -1)), rtol=1e-9)
    np.testing.assert_allclose(got.ntk, theta.mean(axis=(-2, -1)), rtol=1e-9)


def test_too_many_layers_are_refused_before_any_work():
    message = r"serial takes at most 100,000 layers; got 20,000,001"
    with pytest.raises(ValueError, match=message):
        fc_stack(10**7)
    with pytest.raises(ValueError, match=message):
        NTKRegressor(depth=10**7).fit(np.eye(3), np.arange(3.0))
    with pytest.raises(ValueError, match="got 100,001"):
        serial(serial(*[Relu()] * 100_000), Dense())
    assert len(serial(*[Relu()] * 99_999, Dense()).layers) == _serial.MAX_LAYERS
