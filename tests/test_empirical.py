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
    mlp_readout_features_fn,
    monte_carlo_kernel,
)
from ntk_sklearn.kernels import KernelMatrices, fc_kernel

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


@pytest.mark.slow
def test_batching_matches_no_batching_for_many_blocks():
    with jax.enable_x64(True):
        params, apply_fn = init_mlp(jax.random.PRNGKey(3), 3, depth=2, width=16, n_outputs=2)
        x = np.random.default_rng(5).normal(size=(23, 3))
        whole = empirical_ntk(apply_fn, params, x, batch_size=23, method="jacobian")
        for method in ("jacobian", "ntk_vector_products"):
            for batch_size in (1, 10):
                blocked = empirical_ntk(apply_fn, params, x, method=method, batch_size=batch_size)
                np.testing.assert_allclose(blocked, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.slow
def test_float32_without_x64(inputs):
    params, apply_fn = _nested_model()
    x1, _ = inputs
    ntk = empirical_ntk(apply_fn, params, x1)
    assert ntk.dtype == np.float32
    ref = np.einsum("ijaa->ij", _reference_ntk(apply_fn, params, x1, x1)) / 3
    np.testing.assert_allclose(ntk, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.slow
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


def test_empirical_nngp_refuses_a_users_model(inputs):
    """One set of params has no distribution over initialisations: no NNGP, and it says why."""
    params, apply_fn = _nested_model()
    x1, _ = inputs
    with pytest.raises(ValueError, match="no distribution over initialisations") as info:
        empirical_nngp(apply_fn, params, x1)
    assert "empirical_ntk" in str(info.value) and "monte_carlo_kernel" in str(info.value)
    params, f = init_mlp(jax.random.PRNGKey(0), 4, depth=1, width=8)
    with pytest.raises(TypeError, match=r"params\[0\]\['W'\] has dtype int"):
        empirical_nngp(f, [{"W": np.ones((4, 8), int), "b": np.ones(8)}, params[1]], x1)
    with pytest.raises(ValueError, match="non-empty list"):
        empirical_nngp(f, [], x1)
    # A wrapped built-in MLP is a user's function too.
    params, f = init_mlp(jax.random.PRNGKey(0), 4, depth=1, width=8)
    with pytest.raises(ValueError, match="built-in MLP"):
        empirical_nngp(lambda p, x: f(p, x), params, x1)


def _numpy_features(params, x, w_std, b_std):
    """φ(x) = [w_std h(x) / sqrt(n_L), b_std] of an erf MLP, in NumPy/SciPy."""
    from scipy.special import erf

    h = x
    for layer in params[:-1]:
        w, b = np.asarray(layer["W"]), np.asarray(layer["b"])
        h = erf(w_std * h @ w / np.sqrt(w.shape[0]) + b_std * b)
    return np.hstack([w_std * h / np.sqrt(h.shape[1]), np.full((len(x), 1), b_std)])


@pytest.mark.slow
def test_empirical_nngp_of_the_builtin_mlp_is_its_readout_covariance(inputs):
    x1, x2 = inputs
    arch = {"activation": "erf", "w_std": 1.3, "b_std": 0.4}
    with jax.enable_x64(True):
        params, f = init_mlp(jax.random.PRNGKey(2), 4, depth=2, width=7, n_outputs=3, **arch)
        mean = empirical_nngp(f, params, x1, x2, batch_size=2)
        total = empirical_nngp(f, params, x1, outputs="sum")
        full = empirical_nngp(f, params, x1, x2, outputs="full")
        features_fn = mlp_readout_features_fn(**arch)  # the same network's kernel
        same = empirical_nngp(features_fn, params, x1, x2)
    phi1 = _numpy_features(params, x1, 1.3, 0.4)
    phi2 = _numpy_features(params, x2, 1.3, 0.4)
    expected = phi1 @ phi2.T
    np.testing.assert_allclose(mean, expected, rtol=1e-12)
    np.testing.assert_allclose(total, 3 * phi1 @ phi1.T, rtol=1e-12)
    np.testing.assert_allclose(full, np.einsum("ij,ac->ijac", expected, np.eye(3)), rtol=1e-12)
    np.testing.assert_allclose(same, mean, rtol=1e-14)
    assert np.linalg.matrix_rank(total) == 7  # full rank, not the rank 3 of output products


@pytest.mark.slow
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


@pytest.mark.slow
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


@pytest.mark.slow
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
        out = np.asarray(mlp_apply_fn(**arch)(params, x))
        products = out @ out.T / out.shape[1]  # (1/k) Σ_a f_a(x) f_a(x')
        features = np.asarray(mlp_readout_features(params, x, **arch))
        nngp = empirical_nngp(mlp_apply_fn(**arch), params, x)
    np.testing.assert_array_equal(one.nngp, many.nngp)  # the readout is marginalised out
    assert not np.allclose(one.ntk, many.ntk)  # (the NTK averages its readout units)
    # 20000 readout units: the average output product is φ(x)·φ(x') up to ~1%.
    np.testing.assert_allclose(products, features @ features.T, atol=0.05 * np.abs(products).max())
    np.testing.assert_allclose(nngp, features @ features.T, rtol=1e-12)


@pytest.mark.slow
def test_monte_carlo_reproducible_and_nested():
    x = np.random.default_rng(2).normal(size=(4, 3))
    kwargs = {"depth": 1, "width": 32, "activation": "tanh"}
    a = monte_carlo_kernel(x, n_samples=3, random_state=7, **kwargs)
    b = monte_carlo_kernel(x, n_samples=3, random_state=7, **kwargs)
    c = monte_carlo_kernel(x, n_samples=3, random_state=8, **kwargs)
    assert isinstance(a, KernelMatrices)
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


def _nan_outputs(p, x):
    return x @ p["w"] + jnp.where(x[:, :1] > 0.5, jnp.nan, 0.0)  # NaN on some rows only


def _nan_gradient(p, x):
    return jnp.sqrt(jnp.abs(x @ p["w"]) * (x[:, :1] > 0))  # finite outputs, ∞ slope at 0


@pytest.mark.parametrize(
    ("fn", "params", "error", "match"),
    [
        (_scalar_apply, {"w": jnp.ones((4, 2), jnp.int32), "v": jnp.ones(2)}, TypeError, "int32"),
        (_scalar_apply, {"w": np.ones((4, 2)), "v": [1, 2]}, TypeError, r"params\['v'\]\[0\]"),
        (lambda p, x: x.sum(axis=1), {}, ValueError, "no parameters"),
        (lambda p, x: x.sum(axis=1) * 0, {"w": jnp.zeros(0)}, ValueError, "no parameters"),
        (_scalar_apply, {"w": jnp.full((4, 2), jnp.nan), "v": jnp.ones(2)}, ValueError, "NaN"),
        (_nan_outputs, {"w": jnp.ones((4, 2))}, ValueError, "returns NaN or infinity on row"),
        (_nan_gradient, {"w": jnp.ones((4, 2))}, ValueError, "gradient"),
        (lambda p, x: (x @ p["w"], x), {"w": jnp.ones((4, 2))}, ValueError, "one array"),
    ],
)
@pytest.mark.parametrize("method", ["jacobian", "ntk_vector_products"])
def test_bad_params_and_models_raise_clear_errors(fn, params, error, match, method):
    x = np.abs(np.random.default_rng(0).normal(size=(6, 4))) + 0.1
    x[3] = -1.0  # _nan_gradient: sqrt(0) on this row only
    with pytest.raises(error, match=match):
        empirical_ntk(fn, params, x, method=method, batch_size=4)


def test_model_built_for_other_inputs_names_both_shapes():
    params, apply_fn = _scalar_model()  # expects 4 features
    x = np.ones((3, 5))
    with pytest.raises(ValueError, match=r"fails on one row of x1.*\(1, 5\).*\(3, 5\)") as info:
        empirical_ntk(apply_fn, params, x)
    assert "(4, 2)" in str(info.value)  # the parameter shapes point to the expected input
    params, f = init_mlp(jax.random.PRNGKey(0), 4, depth=1, width=8)
    for call in (empirical_ntk, empirical_nngp):
        with pytest.raises(ValueError, match="5 features but the network was built for 4"):
            call(f, params, x)
    with pytest.raises(ValueError, match="5 features but the network was built for 4"):
        mlp_apply(params, x)


def test_a_model_returning_nan_never_gives_a_nan_kernel():
    params = {"w": jnp.ones((4, 2))}
    x = np.full((5, 4), 0.1)
    x[4] = 1.0
    with pytest.raises(ValueError, match="row 4 of x1"):
        empirical_ntk(_nan_outputs, params, x)
    with pytest.raises(ValueError, match="row 1 of x2"):
        empirical_ntk(_nan_outputs, params, x[:3], x[3:])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"w_std": "1"}, TypeError, "w_std must be a real number"),
        ({"b_std": None}, TypeError, "b_std must be a real number"),
        ({"w_std": True}, TypeError, "w_std"),
        ({"b_std": np.inf}, ValueError, "b_std must be a finite number >= 0"),
        ({"w_std": -0.5}, ValueError, "w_std must be a finite number >= 0"),
        ({"negative_slope": "0.1"}, TypeError, "negative_slope"),
        ({"width": 2.0}, ValueError, "width must be an integer >= 1"),
        ({"width": "8"}, ValueError, "width"),
        ({"depth": 1.5}, ValueError, "depth must be an integer >= 0"),
        ({"n_outputs": 0}, ValueError, "n_outputs"),
        ({"dtype": np.int32}, TypeError, "floating-point dtype"),
    ],
)
def test_mlp_arguments_are_validated(kwargs, error, match):
    args = {"depth": 1, "width": 8, **kwargs}
    with pytest.raises(error, match=match):
        init_mlp(jax.random.PRNGKey(0), 3, **args)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"w_std": "1"}, TypeError, "w_std must be a real number"),
        ({"n_samples": "2"}, ValueError, "n_samples must be an integer >= 1"),
        ({"n_samples": 2.0}, ValueError, "n_samples"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"batch_size": 2.5}, ValueError, "batch_size"),
        ({"n_outputs": -1}, ValueError, "n_outputs"),
        ({"depth": None}, ValueError, "depth"),
        ({"return_stderr": "yes"}, TypeError, "return_stderr"),
    ],
)
def test_monte_carlo_arguments_are_validated(kwargs, error, match):
    x = np.ones((3, 2))
    args = {"depth": 1, "width": 4, **kwargs}
    with pytest.raises(error, match=match):
        monte_carlo_kernel(x, **args)


@pytest.mark.slow
def test_stds_given_as_numpy_or_jax_scalars_are_the_same_network():
    x = np.random.default_rng(0).normal(size=(4, 3))
    params = mlp_init(jax.random.PRNGKey(0), 3, depth=1, width=8)
    plain = mlp_apply(params, x, w_std=1.5, b_std=0.5)
    for w_std, b_std in ((np.float32(1.5), np.float64(0.5)), (jnp.asarray(1.5), jnp.asarray(0.5))):
        out = mlp_apply(params, x, w_std=w_std, b_std=b_std)
        np.testing.assert_allclose(out, plain, rtol=1e-6)
    assert mlp_apply_fn(w_std=jnp.asarray(1.5)) is mlp_apply_fn(w_std=1.5)


def test_huge_networks_are_refused_before_allocating(monkeypatch):
    from ntk_sklearn import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**30)
    x = np.ones((3, 2))
    # depth 2, width 10**5: 10^10 weights, 74.5 GiB in float64 (the draw and the copy).
    with pytest.raises(MemoryError, match="width=100000"):
        monte_carlo_kernel(x, depth=2, width=10**5)
    with pytest.raises(MemoryError, match="parameters"):
        init_mlp(jax.random.PRNGKey(0), 2, depth=2, width=10**5)
    with pytest.raises(MemoryError, match="parameters"):
        mlp_init_numpy(np.random.default_rng(0), 2, depth=2, width=10**5)
    # One row's Jacobian: 10 outputs × 2·10^7 parameters × 4 bytes = 0.75 GiB; contraction
    # holds two of them.
    big = {"w": jnp.zeros((2 * 10**6, 10), jnp.float32)}
    with pytest.raises(MemoryError, match="batch_size=1"):
        empirical_ntk(lambda p, z: z @ p["w"][:2], big, x, method="jacobian")
    params, apply_fn = _scalar_model()
    with pytest.raises(MemoryError, match="empirical NTK"):  # 20000² × 4 bytes = 1.5 GiB
        empirical_ntk(apply_fn, params, np.ones((20000, 4)))


@pytest.mark.slow
def test_float64_blocks_honour_the_memory_budget(monkeypatch):
    """In float64 the default batch size shrinks so that a block still fits the budget."""
    from ntk_sklearn.empirical import _cost, _ntk

    monkeypatch.setattr(_cost, "MEMORY_BUDGET", 2**20)  # 1 MiB
    x = np.random.default_rng(0).normal(size=(40, 3))
    sizes = {}
    for dtype in ("float32", "float64"):
        with jax.enable_x64(dtype == "float64"):
            params, f = init_mlp(jax.random.PRNGKey(0), 3, depth=1, width=64, n_outputs=4)
            rows = np.asarray(x, dtype)
            sizes[dtype] = _ntk._plan(f, params, rows, None, "jacobian", "mean", None).batch_size
            fn = _ntk.StaticFn(f)
            # XLA's own account of a block pair's memory at the chosen batch size.
            used = _ntk._compiled_bytes("jacobian", fn, params, rows, rows, sizes[dtype], False)
            assert used <= 2**20
    with jax.enable_x64(True):
        rows = np.asarray(x, np.float64)
        # The budget binds: one block of all 40 rows would not fit in float64.
        assert _ntk._compiled_bytes("jacobian", fn, params, rows, rows, 40, False) > 2**20
        blocked = empirical_ntk(f, params, rows, method="jacobian")
        whole = empirical_ntk(f, params, rows, method="jacobian", batch_size=40)
    assert sizes["float64"] < sizes["float32"]
    np.testing.assert_allclose(blocked, whole, rtol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("ntk_sklearn.empirical._ntk", marks=pytest.mark.slow),
        "ntk_sklearn.empirical._nngp",
        pytest.param("ntk_sklearn.empirical._mlp", marks=pytest.mark.slow),
        pytest.param("ntk_sklearn.empirical._monte_carlo", marks=pytest.mark.slow),
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
