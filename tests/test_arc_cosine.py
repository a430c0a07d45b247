"""The arc-cosine polynomials and the ReLU-family kernels built on them, against extended
precision."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ntk_sklearn.kernels import get_activation
from ntk_sklearn.kernels._arc_cosine import arc_cosine_terms

LONG = np.longdouble


def _rho_grid() -> np.ndarray:
    """Correlations over [-1, 1], dense near 0 and near both ends."""
    ends = 1 - np.logspace(-17, -1, 400)
    small = np.logspace(-300, -1, 200)
    return np.unique(np.concatenate([np.linspace(-1, 1, 20_001), ends, -ends, small, -small]))


def _g_series(eps: np.ndarray) -> np.ndarray:
    """``g = sin θ − θ cos θ`` for ``cos θ = 1 − eps`` (small eps) by power series.

    ``θ = 2 asin(sqrt(eps / 2))`` and ``g = Σ_k (−1)^{k+1} 2k θ^{2k+1} / (2k+1)!``: every term
    is computed without cancellation, unlike ``sqrt(1 − u²) − θ u``.
    """
    x = np.sqrt(eps.astype(LONG) / 2)
    asin = sum(
        math.factorial(2 * n) / (4**n * math.factorial(n) ** 2 * (2 * n + 1)) * x ** (2 * n + 1)
        for n in range(12)
    )
    theta = 2 * asin
    return sum(
        (-1) ** (k + 1) * 2 * k * theta ** (2 * k + 1) / math.factorial(2 * k + 1)
        for k in range(1, 12)
    )


def _truth(rho: np.ndarray):
    """``(θ, g)`` of ``u = |ρ|`` in x87 extended precision (64-bit significand); ``g`` by its
    power series (:func:`_g_series`) where ``sqrt(1 − u²) − θ u`` cancels (``u > 0.99``)."""
    u = np.abs(rho).astype(LONG)
    theta = np.arccos(u)
    g = np.sqrt((1 - u) * (1 + u)) - theta * u
    near = u > 0.99
    g[near] = _g_series(1 - np.abs(rho[near]))  # 1 − u exact there (Sterbenz)
    return theta, g


@pytest.mark.skipif(np.finfo(LONG).eps > 1e-18, reason="needs extended-precision longdouble")
@pytest.mark.parametrize("x64, dtype, tol", [(True, np.float64, 8e-16), (False, np.float32, 4e-7)])
def test_terms_match_extended_precision(x64, dtype, tol):
    rho = _rho_grid().astype(dtype)
    with jax.enable_x64(x64):
        u, theta, g = (np.asarray(a) for a in jax.jit(arc_cosine_terms)(jnp.asarray(rho)))
    assert theta.dtype == g.dtype == dtype
    true_theta, true_g = _truth(rho.astype(np.float64))
    np.testing.assert_array_equal(u, np.abs(rho))
    assert np.max(np.abs(theta - true_theta) / true_theta.clip(1e-300)) < tol
    # g falls to 0 like (1 - u)^{3/2}; relative accuracy wherever it is a normal number.
    normal = true_g > 1e-300
    assert np.max(np.abs(g - true_g)[normal] / true_g[normal]) < tol * 2


def test_exact_at_the_ends():
    with jax.enable_x64(True):
        u, theta, g = jax.jit(arc_cosine_terms)(jnp.asarray([1.0, -1.0, 0.0, -0.0]))
    np.testing.assert_array_equal(np.asarray(theta[:2]), 0.0)
    np.testing.assert_array_equal(np.asarray(g[:2]), 0.0)
    np.testing.assert_allclose(np.asarray(theta[2:]), np.pi / 2, rtol=2e-16)
    np.testing.assert_allclose(np.asarray(g[2:]), 1.0, rtol=2e-16)


def _textbook(rho: np.ndarray, slope: float):
    """Cho & Saul's ``(J, Jdot)`` for ``σ = relu(x) − slope·relu(−x)`` in extended precision."""
    r = rho.astype(LONG)
    theta = np.arccos(r)
    sin = np.sqrt((1 - r) * (1 + r))
    s, pi = LONG(slope), np.arccos(LONG(-1))
    a = (1 + s * s) * (pi - theta) + 2 * s * theta
    return ((1 - s) ** 2 * sin + a * r) / (2 * pi), a / (2 * pi)


@pytest.mark.skipif(np.finfo(LONG).eps > 1e-18, reason="needs extended-precision longdouble")
@pytest.mark.parametrize(
    "name, slope",
    [("relu", 0.0), ("leaky_relu", 0.2), ("leaky_relu", -0.5), ("leaky_relu", 2.0), ("abs", -1.0)],
)
def test_relu_family_matches_textbook(name, slope):
    """``T/sqrt(q1 q2) = J(ρ)`` and ``Tdot`` against Cho & Saul's formula, near ±1 too."""
    rho = _rho_grid()
    nl = get_activation(name, slope if name == "leaky_relu" else 0.01, 64)
    with jax.enable_x64(True):
        ones = jnp.ones_like(jnp.asarray(rho))
        j, j_dot = (np.asarray(a) for a in nl.correlated(ones, ones, jnp.asarray(rho)))
    true_j, true_j_dot = _textbook(rho, slope)
    scale = max(1.0, slope * slope)
    # Absolute error relative to the largest value (J tends to 0 at ρ = -1 for relu).
    assert np.max(np.abs(j - true_j)) < 8e-16 * scale
    assert np.max(np.abs(j_dot - true_j_dot)) < 8e-16 * scale


@pytest.mark.parametrize("name, slope", [("relu", 0.0), ("abs", -1.0)])
def test_relu_and_abs_relative_accuracy_near_antipodal(name, slope):
    """``J ~ (1 + ρ)^{3/2}`` as ``ρ → −1``: full relative accuracy (nothing cancels)."""
    eps = np.logspace(-15, -2, 300)
    rho = -1 + eps
    eps = 1 + rho  # exact (Sterbenz): the ε of the float64 correlations
    nl = get_activation(name, 0.01, 64)
    with jax.enable_x64(True):
        ones = jnp.ones_like(jnp.asarray(rho))
        j = np.asarray(nl.correlated(ones, ones, jnp.asarray(rho))[0])
    # J(−u) = (1 − s)² g(u) / (2π) − s·u: relu g/(2π); abs 2g/π + u.
    g = _g_series(eps)
    truth = g / (2 * np.pi) if slope == 0 else 2 * g / np.pi + (1 - eps)
    np.testing.assert_allclose(j, truth.astype(np.float64), rtol=1e-15)


@pytest.mark.parametrize("slope", [0.0, 0.3, -1.0])
def test_relu_family_derivatives(slope):
    """``J' = Tdot`` (Price's theorem) and ``Tdot' = k / sin θ`` against central differences;
    finite first and second derivatives at ``ρ = ±1``, where the rules take ``1/sin θ`` as 0."""
    nl = get_activation("leaky_relu", slope, 64)
    with jax.enable_x64(True):

        def pair(rho):
            one = jnp.ones_like(rho)
            return nl.correlated(one, one, rho)

        def j(rho):
            return pair(rho)[0]

        def j_dot(rho):
            return pair(rho)[1]

        inner = jnp.asarray([-0.7, -0.1, 0.2, 0.9])
        h = 1e-6
        for fn in (j, j_dot):
            grad = np.asarray(jax.vmap(jax.grad(fn))(inner))
            up, down = np.asarray(jax.vmap(fn)(inner + h)), np.asarray(jax.vmap(fn)(inner - h))
            np.testing.assert_allclose(grad, (up - down) / (2 * h), rtol=1e-8)
        ends = jnp.asarray([-1.0, 1.0])
        first = np.asarray(jax.vmap(jax.grad(j))(ends))
        second = np.asarray(jax.vmap(jax.grad(jax.grad(j)))(ends))
        # Tdot at ρ = -1 and +1 in closed form (θ' = π and 0 in Cho & Saul's A / 2π): s, (1 + s²)/2.
        np.testing.assert_allclose(first, [slope, 0.5 * (1 + slope**2)], rtol=1e-15)
        np.testing.assert_array_equal(second, 0.0)
