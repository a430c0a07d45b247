"""``ntk_sklearn.finite_width``: the 1/n statistics against random finite networks.

Truth: Monte Carlo over networks built here in plain JAX, independently of the recursions
(parameters drawn with ``jax.random``, the empirical NTK by ``jax.jacobian`` over every
parameter, the empirical NNGP ``b² + w²/n_L Σ σσ``), plus exact structure: one hidden layer
(no mean shift, covariance an average of n independent neurons), exact 1/n scaling, pair
symmetries, and ReLU's closed form on the diagonal.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.finite_width import finite_width_statistics
from ntk_sklearn.kernels import fc_kernel, get_activation

X3 = np.random.default_rng(1).normal(size=(3, 4))


def random_networks(x, widths, activation, w_std, b_std, n_nets, seed=0, batch=1000):
    """Empirical NNGP and NTK (N, N) of ``n_nets`` random networks (float64)."""
    fn = get_activation(activation).fn
    sizes = [x.shape[1], *widths, 1]

    def one(key):
        params = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
            key, k1, k2 = jax.random.split(key, 3)
            params.append(
                (jax.random.normal(k1, (fan_in, fan_out)), jax.random.normal(k2, (fan_out,)))
            )

        def forward(ps):
            h = jnp.asarray(x)
            for i, (w, b) in enumerate(ps):
                z = w_std / jnp.sqrt(h.shape[1]) * h @ w + b_std * b
                if i < len(ps) - 1:
                    h = fn(z)
            return z[:, 0], h

        out, h = forward(params)
        nngp = b_std**2 + w_std**2 * (h @ h.T) / h.shape[1]
        jac = jax.jacobian(lambda ps: forward(ps)[0])(params)
        flat = jnp.concatenate(
            [j.reshape(x.shape[0], -1) for j in jax.tree_util.tree_leaves(jac)], 1
        )
        return nngp, flat @ flat.T

    run = jax.jit(jax.vmap(one))
    keys = jax.random.split(jax.random.PRNGKey(seed), n_nets)
    with jax.enable_x64(True):
        parts = [run(keys[i : i + batch]) for i in range(0, n_nets, batch)]
    return tuple(np.concatenate([np.asarray(p[j]) for p in parts]) for j in range(2))


def _covariance_and_stderr(samples):
    """Sample covariance of the flattened entries and its standard error."""
    s = samples.reshape(samples.shape[0], -1)
    centred = s - s.mean(0)
    prods = centred[:, :, None] * centred[:, None, :]
    cov = prods.mean(0) * s.shape[0] / (s.shape[0] - 1)
    return cov, prods.std(0) / np.sqrt(s.shape[0])


def _check_against_monte_carlo(activation, depth, w_std, b_std, widths_list, n_nets, tol):
    """n·Cov and n·(mean − limit) within 4 standard errors plus ``tol·depth/n`` of the scale."""
    n_in = X3.shape[0]
    report = []
    for widths in widths_list:
        n = widths[-1]
        pred = finite_width_statistics(
            X3, depth=depth, width=widths, activation=activation, w_std=w_std, b_std=b_std
        )
        samples = random_networks(X3, widths, activation, w_std, b_std, n_nets)
        for name, sample, limit, mean, cov in (
            ("nngp", samples[0], pred.nngp, pred.nngp_mean, pred.nngp_cov),
            ("ntk", samples[1], pred.ntk, pred.ntk_mean, pred.ntk_cov),
        ):
            mc_cov, mc_se = _covariance_and_stderr(sample)
            want = cov.reshape(n_in * n_in, n_in * n_in)
            scale = np.max(np.abs(want))
            allowance = tol * depth / n * scale
            err = np.abs(mc_cov - want)
            assert np.all(err <= 4 * mc_se + allowance), (name, n, np.max(err / scale))
            shift_mc = sample.mean(0) - limit
            shift_se = sample.std(0) / np.sqrt(n_nets)
            shift = mean - limit
            # the O(1/n²) part of the mean: O(1/n) of its own scale, that of shift and Cov/K
            mean_scale = np.abs(shift).max() + scale / np.abs(limit).max()
            err_mean = np.abs(shift_mc - shift)
            assert np.all(err_mean <= 4 * shift_se + tol * depth / n * mean_scale), (
                name,
                n,
                err_mean,
                shift_se,
            )
            report.append((name, n, float(np.max(err / scale))))
    return report


@pytest.mark.slow
@pytest.mark.parametrize(
    "activation, depth, w_std, b_std, widths_list",
    [
        ("relu", 2, 1.4, 0.0, [(48, 48), (96, 96)]),
        ("erf", 3, 1.3, 0.3, [(32, 48, 40), (64, 96, 80)]),
        ("tanh", 2, 1.5, 0.2, [(32, 48), (64, 96)]),
    ],
)
def test_statistics_match_random_networks(activation, depth, w_std, b_std, widths_list):
    report = _check_against_monte_carlo(activation, depth, w_std, b_std, widths_list, 3000, tol=3.0)
    print(report)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["erf", "relu"])
def test_one_hidden_layer_is_an_average_of_independent_neurons(activation):
    """Depth 1: no mean shift; Cov K̂ = w⁴ Cov[σσ, σσ]/n exactly (here: by a large sample)."""
    w, b, n = 1.3, 0.2, 50
    st = finite_width_statistics(X3, depth=1, width=n, activation=activation, w_std=w, b_std=b)
    np.testing.assert_allclose(st.nngp_mean, st.nngp, rtol=0, atol=1e-15)
    np.testing.assert_allclose(st.ntk_mean, st.ntk, rtol=0, atol=1e-15)
    k1 = b * b + w * w * X3 @ X3.T / X3.shape[1]
    u = np.random.default_rng(0).multivariate_normal(np.zeros(3), k1, size=1_000_000)
    sigma = np.asarray(get_activation(activation).fn(jnp.asarray(u)))
    prods = (sigma[:, :, None] * sigma[:, None, :]).reshape(len(u), -1)
    want = w**4 * np.cov(prods.T) / n
    scale = np.abs(want).max()
    np.testing.assert_allclose(st.nngp_cov.reshape(9, 9), want, atol=0.01 * scale)


def test_predictions_scale_exactly_as_one_over_width():
    kw = dict(depth=3, activation="erf", w_std=1.2, b_std=0.1)
    a = finite_width_statistics(X3[:2], width=[10, 20, 30], **kw)
    b = finite_width_statistics(X3[:2], width=[30, 60, 90], **kw)
    for name in ("nngp_cov", "ntk_cov", "nngp_var", "ntk_var"):
        np.testing.assert_allclose(getattr(b, name), getattr(a, name) / 3, rtol=1e-12, atol=1e-15)
    for name in ("nngp", "ntk"):
        shift_a = getattr(a, name + "_mean") - getattr(a, name)
        shift_b = getattr(b, name + "_mean") - getattr(b, name)
        np.testing.assert_allclose(shift_b, shift_a / 3, rtol=1e-10, atol=1e-15)


@pytest.mark.slow
def test_four_index_symmetries_and_limits():
    st = finite_width_statistics(X3, depth=2, width=20, activation="tanh", b_std=0.3)
    for cov in (st.nngp_cov, st.ntk_cov):
        np.testing.assert_allclose(cov, cov.transpose(2, 3, 0, 1), atol=1e-12)
        np.testing.assert_allclose(cov, cov.transpose(1, 0, 2, 3), atol=1e-12)
        np.testing.assert_allclose(cov, cov.transpose(0, 1, 3, 2), atol=1e-12)
        eig = np.linalg.eigvalsh(0.5 * (cov.reshape(9, 9) + cov.reshape(9, 9).T))
        assert eig.min() > -1e-6 * eig.max()  # a covariance
    with jax.enable_x64(True):
        ref = fc_kernel(X3, depth=2, activation="tanh", b_std=0.3)
    np.testing.assert_allclose(st.nngp, ref.nngp, rtol=1e-10)
    np.testing.assert_allclose(st.ntk, ref.ntk, rtol=1e-10)


def test_relu_diagonal_closed_form():
    """ReLU, b = 0 (Hanin 2018; Hanin & Nica 2019): Var K̂(x, x) / K(x, x)² = 5 Σ_l 1/n_l, and
    no mean shift on the diagonal (the map is linear there)."""
    widths = [16, 40, 25]
    st = finite_width_statistics(X3, depth=3, width=widths, w_std=1.4)
    d = np.diag(st.nngp)
    np.testing.assert_allclose(
        np.diag(st.nngp_var) / d**2, 5 * sum(1 / n for n in widths), rtol=2e-3
    )
    np.testing.assert_allclose(np.diag(st.nngp_mean), d, rtol=1e-10)


@pytest.mark.slow
def test_diagonal_mode_matches_full():
    x = np.random.default_rng(3).normal(size=(4, 3))
    kw = dict(depth=2, width=[30, 50], activation="erf", w_std=1.1, b_std=0.2)
    full = finite_width_statistics(x, **kw)
    diag = finite_width_statistics(x, covariance="diagonal", **kw)
    assert diag.nngp_cov is None and diag.ntk_cov is None
    for name in ("nngp", "ntk", "nngp_mean", "ntk_mean", "nngp_var", "ntk_var"):
        want = getattr(full, name)
        np.testing.assert_allclose(getattr(diag, name), want, atol=2e-3 * np.abs(want).max())


def test_errors():
    with pytest.raises(ValueError, match="covariance='diagonal'"):
        finite_width_statistics(np.ones((7, 2)), depth=1, width=4)
    with pytest.raises(ValueError, match="one per hidden layer"):
        finite_width_statistics(X3, depth=2, width=[4])
    with pytest.raises(ValueError, match="width"):
        finite_width_statistics(X3, depth=2, width=0)
    with pytest.raises(ValueError, match="depth"):
        finite_width_statistics(X3, depth=0, width=3)
    with pytest.raises(ValueError, match="covariance"):
        finite_width_statistics(X3, depth=1, width=3, covariance="all")
    with pytest.raises(ValueError, match="NaN"):
        finite_width_statistics(np.array([[np.nan, 1.0]]), depth=1, width=3)
    x = X3.copy()
    finite_width_statistics(x, depth=1, width=3)
    np.testing.assert_array_equal(x, X3)


@pytest.mark.slow
def test_ntk_fluctuation_of_the_builtin_mlp():
    """The predicted spread matches the deviation measured over initialisations."""
    from ntk_sklearn.empirical import init_mlp
    from ntk_sklearn.training import ntk_fluctuation

    x = np.linspace(-1.0, 1.0, 4).reshape(-1, 1)
    arch = dict(depth=2, width=64, activation="erf", w_std=1.5, b_std=0.5)
    squares = []
    for seed in range(40):
        params, apply_fn = init_mlp(jax.random.PRNGKey(seed), 1, **arch)
        fl = ntk_fluctuation(apply_fn, params, x)
        squares.append(fl.measured_relative_deviation**2)
    assert fl.widths == (64, 64)
    predicted = fl.predicted_relative_std**2 + fl.predicted_relative_bias**2
    se = np.std(squares) / np.sqrt(len(squares))
    assert abs(np.mean(squares) - predicted) <= 3 * se + 0.1 * predicted, (
        np.mean(squares),
        predicted,
        se,
    )
    with pytest.raises(ValueError, match="built-in MLP"):
        ntk_fluctuation(lambda p, x: x @ p, np.ones((1, 1)), x)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["ntk_sklearn.finite_width._statistics", "ntk_sklearn.training._fluctuation"]
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
