"""Tests of ntk_sklearn.training: gradient descent, linearisation, the lazy-training criterion.

Truths used: a NumPy gradient-descent loop on a linear model, the exact discrete dynamics of
a linear model (I − η Θ / y.size)^t, finite differences, and dense Jacobians/Hessians from
``jax.jacobian``/``jax.hessian`` on small models.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from ntk_sklearn.empirical import empirical_ntk, init_mlp
from ntk_sklearn.training import (
    lazy_training_kappa,
    lazy_training_norms,
    linearize,
    mse_loss,
    train_gd,
)


@pytest.fixture(scope="module")
def data():
    x = np.linspace(-1.0, 1.0, 8).reshape(-1, 1)
    return x, np.sin(3 * x)


def test_train_gd_matches_numpy_loop_on_linear_model():
    rng = np.random.default_rng(0)
    x, y, w0 = rng.normal(size=(6, 3)), rng.normal(size=(6, 2)), rng.normal(size=(3, 2))
    with jax.enable_x64(True):
        traj = train_gd(
            lambda w, z: z @ w, jnp.asarray(w0), x, y, learning_rate=0.3, n_steps=7, record_every=3
        )
    w, losses = w0.copy(), []
    for step in range(8):
        if step in (0, 3, 6, 7):
            losses.append(0.5 * np.mean((x @ w - y) ** 2))
        if step < 7:
            w -= 0.3 * x.T @ (x @ w - y) / y.size  # ∇ of 0.5 · mean((xw − y)²)
    np.testing.assert_array_equal(traj.steps, [0, 3, 6, 7])
    np.testing.assert_allclose(traj.loss, losses, rtol=1e-12)
    np.testing.assert_allclose(traj.final_params, w, rtol=1e-12)
    np.testing.assert_allclose(traj.train_outputs[-1], x @ w, rtol=1e-12)
    assert traj.test_outputs is None and traj.params is None


@pytest.mark.slow
def test_train_gd_decreases_loss_and_records(data):
    x, y = data
    params, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, depth=2, width=64, activation="erf")
    traj = train_gd(
        apply_fn,
        params,
        x,
        y.ravel(),  # (n,) targets for (n, 1) outputs
        learning_rate=1.0,
        n_steps=200,
        record_every=50,
        x_test=x[:3] + 0.05,
        record_params=True,
    )
    assert traj.steps.tolist() == [0, 50, 100, 150, 200]
    assert np.all(np.diff(traj.loss) < 0) and traj.loss[-1] < 0.2 * traj.loss[0]
    assert traj.train_outputs.shape == (5, 8, 1) and traj.test_outputs.shape == (5, 3, 1)
    assert len(traj.params) == 5
    np.testing.assert_allclose(
        traj.test_outputs[2], apply_fn(traj.params[2], x[:3] + 0.05), rtol=1e-5
    )
    np.testing.assert_allclose(
        traj.loss[-1], float(mse_loss(apply_fn(traj.final_params, x), y)), rtol=1e-5
    )


@pytest.mark.slow
def test_linearized_training_follows_discrete_kernel_dynamics(data):
    """For f_lin, gradient descent is exactly f_{t+1} − y = (I − η Θ / y.size)(f_t − y)."""
    x, y = data
    with jax.enable_x64(True):
        params, apply_fn = init_mlp(jax.random.PRNGKey(1), 1, depth=1, width=32, b_std=0.5)
        f_lin = linearize(apply_fn, params)
        theta = empirical_ntk(apply_fn, params, x)  # (8, 8): one output unit
        eta, steps = 0.5, 40
        traj = train_gd(f_lin, params, x, y, learning_rate=eta, n_steps=steps, record_every=steps)
        f0 = np.asarray(apply_fn(params, x))
    step = np.eye(8) - eta * theta / y.size
    expected = y + np.linalg.matrix_power(step, steps) @ (f0 - y)
    np.testing.assert_allclose(traj.train_outputs[-1], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.slow
def test_linearize_is_first_order_taylor():
    with jax.enable_x64(True):
        params, apply_fn = init_mlp(
            jax.random.PRNGKey(2), 3, depth=2, width=16, n_outputs=2, activation="tanh"
        )
        f_lin = linearize(apply_fn, params)
        x = np.random.default_rng(0).normal(size=(5, 3))
        leaves, treedef = jax.tree_util.tree_flatten(params)
        keys = jax.random.split(jax.random.PRNGKey(3), len(leaves))
        direction = jax.tree_util.tree_unflatten(
            treedef,
            [jax.random.normal(k, leaf.shape) for k, leaf in zip(keys, leaves, strict=True)],
        )

        def moved(eps):
            return jax.tree_util.tree_map(lambda p, d: p + eps * d, params, direction)

        np.testing.assert_allclose(f_lin(params, x), apply_fn(params, x), rtol=1e-14)
        errors = []
        for eps in (1e-2, 5e-3, 2.5e-3):
            errors.append(float(jnp.abs(f_lin(moved(eps), x) - apply_fn(moved(eps), x)).max()))
        # first derivative agrees with central finite differences
        h = 1e-5
        fd = (apply_fn(moved(h), x) - apply_fn(moved(-h), x)) / (2 * h)
        slope = (f_lin(moved(1.0), x) - f_lin(params, x)) / 1.0
    np.testing.assert_allclose(slope, fd, rtol=1e-6, atol=1e-8)
    # error O(ε²): halving ε divides it by ≈ 4
    ratios = np.array(errors[:-1]) / np.array(errors[1:])
    assert np.all((ratios > 3.5) & (ratios < 4.5)), ratios


def _dense_derivatives(apply_fn, params, x):
    """Dense Jacobian (m, P) and second derivative (m, P, P) of the flattened outputs."""
    w0, unravel = ravel_pytree(params)

    @jax.jit
    def derivatives(w):
        def y(v):
            return apply_fn(unravel(v), x).reshape(-1)

        return jax.jacobian(y)(w), jax.hessian(y)(w)

    jac, hess = derivatives(w0)
    return np.asarray(jac), np.asarray(hess)


@pytest.mark.slow
def test_lazy_norms_against_dense_derivatives():
    with jax.enable_x64(True):
        x = np.random.default_rng(0).normal(size=(4, 2))
        params, apply_fn = init_mlp(
            jax.random.PRNGKey(4), 2, depth=1, width=5, activation="tanh", b_std=0.3
        )
        norms = lazy_training_norms(apply_fn, params, x, n_iter=300)
        jac, hess = _dense_derivatives(apply_fn, params, x)  # (4, P), (4, P, P)
        # one scalar output: the second-derivative norm is the Hessian's spectral norm
        norms1 = lazy_training_norms(apply_fn, params, x[:1], n_iter=300)
    np.testing.assert_allclose(norms.jacobian_norm, np.linalg.norm(jac, 2), rtol=1e-8)
    np.testing.assert_allclose(norms1.hessian_norm, np.linalg.norm(hess[0], 2), rtol=1e-6)
    # several outputs: max_i ‖H_i‖ <= ‖D²y‖ <= (Σ_i ‖H_i‖²)^(1/2)
    per_output = np.array([np.linalg.norm(h, 2) for h in hess])
    assert per_output.max() * (1 - 1e-8) <= norms.hessian_norm
    assert norms.hessian_norm <= np.sqrt((per_output**2).sum()) * (1 + 1e-8)
    # and it is attained: compare with the best of many random unit directions
    rng = np.random.default_rng(1)
    u = rng.normal(size=(2000, hess.shape[1]))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    sampled = np.linalg.norm(np.einsum("ipq,np,nq->ni", hess, u, u), axis=1).max()
    assert norms.hessian_norm >= sampled


@pytest.mark.slow
def test_kappa_decreases_with_width_and_alpha(data):
    x, y = data
    kappas = []
    for width in (16, 128, 1024):
        params, apply_fn = init_mlp(jax.random.PRNGKey(5), 1, depth=1, width=width, b_std=0.5)
        kappas.append(lazy_training_kappa(apply_fn, params, x, y, n_iter=30, random_state=0))
    # κ ~ width^(-1/2): a factor sqrt(8) ≈ 2.8 per step; ask for 1.5.
    assert kappas[0] > 1.5 * kappas[1] > 1.5**2 * kappas[2], kappas
    alphas = np.array([0.5, 1.0, 4.0, 16.0])
    centred = lazy_training_kappa(apply_fn, params, x, y, alpha=alphas, n_iter=30)
    np.testing.assert_allclose(centred, centred[1] / alphas, rtol=1e-6)  # κ_α = κ_1 / α
    raw = lazy_training_kappa(apply_fn, params, x, y, alpha=alphas, center=False, n_iter=30)
    norms = lazy_training_norms(apply_fn, params, x, n_iter=30)
    residual = np.linalg.norm(alphas[:, None] * norms.outputs.ravel() - y.ravel(), axis=1)
    expected = residual * norms.hessian_norm / (alphas * norms.jacobian_norm**2)
    np.testing.assert_allclose(raw, expected, rtol=1e-6)
    assert isinstance(lazy_training_kappa(apply_fn, params, x, y, n_iter=5), float)
    again = lazy_training_kappa(apply_fn, params, x, y, alpha=alphas, n_iter=30)
    np.testing.assert_array_equal(again, centred)  # seeded


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=0.0, n_steps=3), "learning_rate"),
        (lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=1.0, n_steps=-1), "n_steps"),
        (
            lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=1.0, n_steps=2, record_every=0),
            "record_every",
        ),
        (lambda f, p, x, y: train_gd(f, p, x, y[:3], learning_rate=1.0, n_steps=2), "shape"),
        (lambda f, p, x, y: train_gd(f, p, x, y * np.nan, learning_rate=1.0, n_steps=2), "finite"),
        (lambda f, p, x, y: train_gd(None, p, x, y, learning_rate=1.0, n_steps=2), "callable"),
        (lambda f, p, x, y: lazy_training_kappa(f, p, x, y, alpha=0.0), "alpha"),
        (lambda f, p, x, y: lazy_training_kappa(f, p, x, y[:3]), "targets"),
        (lambda f, p, x, y: lazy_training_norms(f, p, x, n_iter=0), "n_iter"),
        (lambda f, p, x, y: linearize(3, p), "callable"),
    ],
)
def test_bad_inputs_raise(data, call, match):
    x, y = data
    params, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, depth=1, width=4)
    with pytest.raises(ValueError, match=match):
        call(apply_fn, params, x, y)


def _sqrt_model(p, x):
    return jnp.sqrt(x @ p["w"])  # NaN for inputs with a negative projection


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f, p, x, y: train_gd(f, p, x, y, learning_rate="1", n_steps=2), TypeError, "lea"),
        (
            lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=jnp.nan, n_steps=2),
            ValueError,
            "learning_rate must be a finite number > 0",
        ),
        (
            lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=1.0, n_steps=2.0),
            ValueError,
            "n_steps",
        ),
        (
            lambda f, p, x, y: train_gd(
                f, p, x, y, learning_rate=1.0, n_steps=2, x_test=np.ones((2, 3))
            ),
            ValueError,
            "x_test",
        ),
        (
            lambda f, p, x, y: train_gd(f, p, np.ones((8, 3)), y, learning_rate=1.0, n_steps=2),
            ValueError,
            r"fails on one row of x .*\(1, 3\)",
        ),
        (
            lambda f, p, x, y: train_gd(
                f,
                [{"W": np.ones((1, 4), int), "b": np.ones(4)}, p[1]],
                x,
                y,
                learning_rate=1.0,
                n_steps=2,
            ),
            TypeError,
            "int",
        ),
        (
            lambda f, p, x, y: train_gd(
                _sqrt_model, {"w": jnp.ones((1, 1))}, x, y, learning_rate=1.0, n_steps=2
            ),
            ValueError,
            "row 0 of x",
        ),
        (
            lambda f, p, x, y: train_gd(f, p, x, y, learning_rate=1e4, n_steps=50),
            ValueError,
            "diverged",
        ),
        (lambda f, p, x, y: lazy_training_kappa(f, p, x, y, alpha="2"), TypeError, "alpha"),
        (lambda f, p, x, y: lazy_training_kappa(f, p, x, y.astype(str)), TypeError, "y must"),
        (lambda f, p, x, y: lazy_training_norms(f, {}, x), ValueError, "no parameters"),
        (
            lambda f, p, x, y: lazy_training_norms(_sqrt_model, {"w": jnp.ones((1, 1))}, x),
            ValueError,
            "NaN or infinite",
        ),
        (lambda f, p, x, y: lazy_training_norms(f, p, np.ones((8, 2))), ValueError, "(1, 2)"),
        (lambda f, p, x, y: linearize(f, {"w": np.arange(3)}), TypeError, "int"),
    ],
)
def test_bad_inputs_give_clear_errors(data, call, error, match):
    x, y = data
    params, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, depth=1, width=4)
    with pytest.raises(error, match=match):
        call(apply_fn, params, x, y)


def test_learning_rate_as_a_numpy_or_jax_scalar(data):
    x, y = data
    params, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, depth=1, width=4)
    runs = [
        train_gd(apply_fn, params, x, y, learning_rate=lr, n_steps=3).loss
        for lr in (0.5, np.float32(0.5), jnp.asarray(0.5))
    ]
    np.testing.assert_array_equal(runs[1], runs[0])
    np.testing.assert_array_equal(runs[2], runs[0])


@pytest.mark.parametrize(
    "name",
    [
        "ntk_sklearn.training._gd",
        pytest.param("ntk_sklearn.training._lazy", marks=pytest.mark.slow),
        "ntk_sklearn.training._linearize",
    ],
)
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
