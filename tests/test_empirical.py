"""Tests of ntk_sklearn.empirical: empirical NTK/NNGP, the built-in MLP, Monte-Carlo kernels.

Truths used: J·Jᵀ built from ``jax.jacobian`` of the whole batch (independent of the per-example
code paths), the product of the model's outputs, a NumPy re-implementation of the MLP, and the
analytic kernels of ``fc_kernel``.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.empirical import (
    empirical_nngp,
    empirical_ntk,
    estimate_ntk_cost,
    init_mlp,
    mlp_apply,
    mlp_apply_fn,
    mlp_init,
    mlp_init_numpy,
    mlp_readout_features,
    monte_carlo_kernel,
)
from ntk_sklearn.kernels import Kernel, fc_kernel

METHODS = ["jacobian", "ntk_vector_products", "auto"]


def _nested_apply(p, x):
    w, b = p["hidden"]
    h = jnp.tanh(x @ w / 2 + b)
    return p["out"]["scale"] * jnp.sin(h @ p["out"]["w"]) + x @ p["skip"][0] / 4


def _nested_model():
    """A pure-JAX model with nested dict/tuple/list parameters and 3 outputs.

    Module-level functions: jit caches are keyed on the function object, so tests share them.
    """
    rng = np.random.default_rng(1)
    params = {
        "hidden": (rng.normal(size=(4, 6)), rng.normal(size=6)),
        "out": {"w": rng.normal(size=(6, 3)), "scale": np.array(0.7)},
        "skip": [rng.normal(size=(4, 3))],
    }
    return jax.tree_util.tree_map(jnp.asarray, params), _nested_apply


def _scalar_apply(p, x):
    return jnp.tanh(x @ p["w"]) @ p["v"] + 0.1 * (x**2).sum(axis=1)


def _scalar_model():
    """One output per example, as a 1-D array."""
    params = {"w": jnp.linspace(-1.0, 1.0, 8).reshape(4, 2), "v": jnp.array([0.3, -1.2])}
    return params, _scalar_apply


@partial(jax.jit, static_argnums=0)
def _batch_jacobian(apply_fn, params, x):
    """J (n, k, P) of the whole batch by ``jax.jacobian`` (reverse mode over all n·k outputs)."""
    n = x.shape[0]
    k = apply_fn(params, x).reshape(n, -1).shape[1]
    jac = jax.jacobian(lambda p: apply_fn(p, x))(params)  # leaves (n, *out, *leaf)
    return jnp.concatenate([leaf.reshape(n, k, -1) for leaf in jax.tree_util.tree_leaves(jac)], -1)


def _reference_ntk(apply_fn, params, x1, x2):
    """Θ[i, j, a, c] = Σ_p J1[i, a, p] J2[j, c, p]."""
    j1, j2 = _batch_jacobian(apply_fn, params, x1), _batch_jacobian(apply_fn, params, x2)
    return np.einsum("iap,jcp->ijac", np.asarray(j1), np.asarray(j2))


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    return rng.normal(size=(7, 4)), rng.normal(size=(5, 4))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("batch_size", [None, 3])
@pytest.mark.parametrize("same", [False, True])
def test_empirical_ntk_matches_jacobian_product(inputs, method, batch_size, same):
    with jax.enable_x64(True):
        params, apply_fn = _nested_model()
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x1, x2 = inputs
        ref = _reference_ntk(apply_fn, params, x1, x1 if same else x2)
        other = None if same else x2
        kwargs = {"method": method, "batch_size": batch_size}
        full = empirical_ntk(apply_fn, params, x1, other, outputs="full", **kwargs)
        mean = empirical_ntk(apply_fn, params, x1, other, **kwargs)
        trace = empirical_ntk(apply_fn, params, x1, other, outputs="sum", **kwargs)
    scale = np.abs(ref).max()
    assert full.dtype == np.float64 and full.shape == ref.shape
    np.testing.assert_allclose(full, ref, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(trace, np.einsum("ijaa->ij", ref), rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(mean, np.einsum("ijaa->ij", ref) / 3, rtol=0, atol=1e-10 * scale)
    if same:  # an exactly symmetric kernel, blocks mirrored
        np.testing.assert_array_equal(full, full.transpose(1, 0, 3, 2))


@pytest.mark.parametrize("method", METHODS)
def test_scalar_outputs_give_matrices(inputs, method):
    with jax.enable_x64(True):
        params, apply_fn = _scalar_model()
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        x1, x2 = inputs
        ref = _reference_ntk(apply_fn, params, x1, x2)[:, :, 0, 0]
        full = empirical_ntk(apply_fn, params, x1, x2, method=method, outputs="full")
        mean = empirical_ntk(apply_fn, params, x1, x2, method=method, batch_size=2)
    assert full.shape == (7, 5)
    np.testing.assert_allclose(full, ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mean, ref, rtol=1e-10, atol=1e-12)


def test_batching_matches_no_batching_for_many_blocks():
    with jax.enable_x64(True):
        params, apply_fn = init_mlp(jax.random.PRNGKey(3), 3, depth=2, width=16, n_outputs=2)
        x = np.random.default_rng(5).normal(size=(23, 3))
        whole = empirical_ntk(apply_fn, params, x, batch_size=23, method="jacobian")
        for method in ("jacobian", "ntk_vector_products"):
            for batch_size in (1, 10):
                blocked = empirical_ntk(apply_fn, params, x, method=method, batch_size=batch_size)
                np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-12)


def test_float32_without_x64(inputs):
    params, apply_fn = _nested_model()
    x1, _ = inputs
    ntk = empirical_ntk(apply_fn, params, x1)
    assert ntk.dtype == np.float32
    ref = np.einsum("ijaa->ij", _reference_ntk(apply_fn, params, x1, x1)) / 3
    np.testing.assert_allclose(ntk, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_auto_follows_cost_model():
    x = np.ones((20, 4))
    # Dense network, all 8 × 8 output pairs: contraction pays k² per entry, NTK-vector
    # products k, so the latter are estimated (and picked) cheaper.
    params, apply_fn = init_mlp(jax.random.PRNGKey(0), 4, depth=2, width=32, n_outputs=8)
    full = estimate_ntk_cost(apply_fn, params, x, outputs="full")
    assert full["ntk_vector_products"]["time"] < full["jacobian"]["time"]
    # Weight sharing (one 4 × 4 matrix applied 50 times): a forward pass costs far more than
    # 2 P FLOPs, which every NTK-vector product pays, so contraction is cheaper.
    shared = {"w": jnp.eye(4) * 0.9}

    def recurrent(p, z):
        for _ in range(50):
            z = jnp.tanh(z @ p["w"])
        return z

    mean = estimate_ntk_cost(recurrent, shared, x, outputs="mean")
    assert mean["jacobian"]["time"] < mean["ntk_vector_products"]["time"]
    assert all(c["time"] > 0 and c["batch_size"] >= 1 for c in (*full.values(), *mean.values()))


def test_empirical_nngp_is_output_product(inputs):
    with jax.enable_x64(True):
        params, apply_fn = _nested_model()
        x1, x2 = inputs
        out1, out2 = np.asarray(apply_fn(params, x1)), np.asarray(apply_fn(params, x2))
        mean = empirical_nngp(apply_fn, params, x1, x2, batch_size=2)
        full = empirical_nngp(apply_fn, params, x1, x2, outputs="full")
        sym = empirical_nngp(apply_fn, params, x1, outputs="sum")
    np.testing.assert_allclose(mean, out1 @ out2.T / 3, rtol=1e-12)
    np.testing.assert_allclose(full, np.einsum("ia,jc->ijac", out1, out2), rtol=1e-12)
    np.testing.assert_allclose(sym, out1 @ out1.T, rtol=1e-12)


def test_mlp_matches_numpy_reimplementation():
    with jax.enable_x64(True):
        params = mlp_init(jax.random.PRNGKey(0), 3, depth=2, width=5, n_outputs=2)
        x = np.random.default_rng(0).normal(size=(4, 3))
        out = np.asarray(
            mlp_apply(params, x, activation="leaky_relu", w_std=1.3, b_std=0.2, negative_slope=0.1)
        )
    h = x
    for index, layer in enumerate(params):
        w, b = np.asarray(layer["W"]), np.asarray(layer["b"])
        if index:
            h = np.where(h > 0, h, 0.1 * h)
        h = 1.3 * h @ w / np.sqrt(w.shape[0]) + 0.2 * b
    assert [p["W"].shape for p in params] == [(3, 5), (5, 5), (5, 2)]
    assert params[0]["W"].dtype == jnp.float64
    np.testing.assert_allclose(out, h, rtol=1e-12)
    assert mlp_apply_fn(activation="erf") is mlp_apply_fn(activation="erf")


def test_mlp_init_is_standard_normal():
    params = mlp_init(jax.random.PRNGKey(0), 200, depth=1, width=300)
    w = np.asarray(params[0]["W"])
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01


def _rel_err(estimate, exact):
    return np.linalg.norm(estimate - exact) / np.linalg.norm(exact)


def test_monte_carlo_ntk_converges_to_fc_kernel():
    x = np.random.default_rng(0).normal(size=(6, 5))
    args = {"activation": "relu", "w_std": 1.4, "b_std": 0.2}

    def rms_error(depth, width):
        """Root-mean-square relative error of 8 single networks' NTKs."""
        exact = fc_kernel(x, depth=depth, get="ntk", **args)
        errors = [
            _rel_err(
                monte_carlo_kernel(
                    x, depth=depth, width=width, n_samples=1, random_state=seed, get="ntk", **args
                ),
                exact,
            )
            for seed in range(8)
        ]
        return np.sqrt(np.mean(np.square(errors)))

    # Fluctuations shrink as width^(-1/2): a factor 4 per 16× width. Over 15 trials of other
    # seeds the smallest factor seen was 2.2; ask for 1.8.
    for depth, widths in ((1, (16, 256, 4096)), (2, (16, 256))):
        errors = [rms_error(depth, w) for w in widths]
        assert all(a > 1.8 * b for a, b in zip(errors[:-1], errors[1:], strict=False)), errors
    # Width 4096, one hidden layer, mean of 4 networks: error ≈ 1.2% (at most 2.0% over 20
    # seeds); ask for 4%.
    exact = fc_kernel(x, depth=1, get="ntk", **args)
    wide = monte_carlo_kernel(
        x, depth=1, width=4096, n_samples=4, random_state=0, get="ntk", **args
    )
    assert _rel_err(wide, exact) < 0.04


@pytest.mark.parametrize(("depth", "activation"), [(1, "erf"), (2, "relu")])
def test_monte_carlo_nngp_within_sampling_error(depth, activation):
    x = np.random.default_rng(1).normal(size=(5, 3))
    kwargs = {"depth": depth, "activation": activation, "w_std": 1.5, "b_std": 0.3}
    with jax.enable_x64(True):
        mean, stderr = monte_carlo_kernel(
            x, width=256, n_samples=40, random_state=0, get="nngp", return_stderr=True, **kwargs
        )
        exact = fc_kernel(x, get="nngp", **kwargs)
        other = fc_kernel(x, get="nngp", **{**kwargs, "depth": depth + 1})
    z = np.abs(mean - exact) / stderr
    assert np.all(stderr > 0) and np.all(stderr < 0.1 * np.abs(exact).max())
    # Largest of the 15 |z| over 30 other seeds: at most 3.7 (erf) and 4.4 (relu); ask for 5.
    assert z.max() < 5, z
    # The test has power: the kernel of one layer more is far outside the same error bars
    # (|z| >= 20 over those 30 seeds).
    assert np.any(np.abs(mean - other) > 10 * stderr)


def test_monte_carlo_nngp_is_readout_covariance():
    """One network's NNGP sample is E[f_a(x) f_a(x')] over its readout weights and bias."""
    x = np.random.default_rng(3).normal(size=(4, 3))
    arch = {"activation": "tanh", "w_std": 1.2, "b_std": 0.4}
    with jax.enable_x64(True):
        one = monte_carlo_kernel(x, depth=2, width=8, random_state=5, n_samples=1, **arch)
        # The same hidden layers (same seed), 3 readout units instead of 1.
        many = monte_carlo_kernel(
            x, depth=2, width=8, random_state=5, n_samples=1, n_outputs=3, **arch
        )
        params = mlp_init_numpy(np.random.default_rng(0), 3, depth=2, width=8, n_outputs=20000)
        products = empirical_nngp(mlp_apply_fn(**arch), params, x)  # (1/k) Σ_a f_a(x) f_a(x')
        features = np.asarray(mlp_readout_features(params, x, **arch))
    np.testing.assert_array_equal(one.nngp, many.nngp)  # the readout is marginalised out
    assert not np.allclose(one.ntk, many.ntk)  # (the NTK averages its readout units)
    # 20000 readout units: the average output product is φ(x)·φ(x') up to ~1%.
    np.testing.assert_allclose(products, features @ features.T, atol=0.05 * np.abs(products).max())


def test_monte_carlo_reproducible_and_nested():
    x = np.random.default_rng(2).normal(size=(4, 3))
    kwargs = {"depth": 1, "width": 32, "activation": "tanh"}
    a = monte_carlo_kernel(x, n_samples=3, random_state=7, **kwargs)
    b = monte_carlo_kernel(x, n_samples=3, random_state=7, **kwargs)
    c = monte_carlo_kernel(x, n_samples=3, random_state=8, **kwargs)
    assert isinstance(a, Kernel)
    np.testing.assert_array_equal(a.ntk, b.ntk)
    np.testing.assert_array_equal(a.nngp, b.nngp)
    assert not np.allclose(a.ntk, c.ntk)
    # Sample s is drawn from default_rng([seed, s]): runs of any length share their first
    # samples, so the two-sample standard error |s1 − s2| / 2 is |one − two|.
    one = monte_carlo_kernel(x, n_samples=1, random_state=7, get="ntk", **kwargs)
    two, stderr = monte_carlo_kernel(
        x, n_samples=2, random_state=7, get="ntk", return_stderr=True, **kwargs
    )
    np.testing.assert_allclose(stderr, np.abs(one - two), rtol=1e-4, atol=1e-6)
    rng_a = monte_carlo_kernel(x, random_state=np.random.default_rng(0), get="ntk", **kwargs)
    rng_b = monte_carlo_kernel(x, random_state=np.random.default_rng(0), get="ntk", **kwargs)
    np.testing.assert_array_equal(rng_a, rng_b)
    assert not np.allclose(one, two)
    two_b = monte_carlo_kernel(x, x[:2], n_samples=2, random_state=7, get="ntk", **kwargs)
    np.testing.assert_allclose(two_b, two[:, :2], rtol=1e-5)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, p, x: empirical_ntk(f, p, x, method="svd"), "method"),
        (lambda f, p, x: empirical_ntk(f, p, x, outputs="trace"), "outputs"),
        (lambda f, p, x: empirical_ntk(f, p, x, batch_size=0), "batch_size"),
        (lambda f, p, x: empirical_ntk(f, p, x[:0]), "at least one sample"),
        (lambda f, p, x: empirical_ntk(f, p, x, x[:, :2]), "same shape"),
        (lambda f, p, x: empirical_ntk(f, p, np.full_like(x, np.nan)), "NaN"),
        (lambda f, p, x: empirical_ntk("f", p, x), "callable"),
        (lambda f, p, x: empirical_ntk(lambda q, z: f(q, z).sum(), p, x), "first axis"),
        (lambda f, p, x: empirical_nngp(f, p, x, outputs="max"), "outputs"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=0), "width"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=4, n_samples=0), "n_samples"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=-1, width=4), "depth"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=4, get="cov"), "get"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=4, w_std=-1.0), "w_std"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=4, activation="nope"), "activation"),
        (lambda f, p, x: monte_carlo_kernel(x[0], depth=1, width=4), "2-D"),
        (lambda f, p, x: monte_carlo_kernel(x, x[:, :2], depth=1, width=4), "features"),
        (lambda f, p, x: monte_carlo_kernel(x, depth=1, width=4, random_state="a"), "random"),
        (
            lambda f, p, x: monte_carlo_kernel(
                x, depth=1, width=4, n_samples=1, return_stderr=True
            ),
            "n_samples >= 2",
        ),
        (lambda f, p, x: mlp_init(jax.random.PRNGKey(0), 0, depth=1, width=3), "n_features"),
    ],
)
def test_bad_inputs_raise(call, match):
    params, apply_fn = _scalar_model()
    x = np.random.default_rng(0).normal(size=(3, 4))
    with pytest.raises(ValueError, match=match):
        call(apply_fn, params, x)


@pytest.mark.parametrize(
    "name",
    [
        "ntk_sklearn.empirical._ntk",
        "ntk_sklearn.empirical._nngp",
        "ntk_sklearn.empirical._mlp",
        "ntk_sklearn.empirical._monte_carlo",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
