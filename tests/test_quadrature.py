"""Gaussian-expectation quadrature against scipy's adaptive quadrature and closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special

from ntk_sklearn.kernels._quadrature import (
    quadrature_diag_expectations,
    quadrature_expectations,
)

# name: (JAX function, NumPy function, NumPy derivative)
ACTIVATIONS = {
    "tanh": (jnp.tanh, np.tanh, lambda x: 1.0 - np.tanh(x) ** 2),
    "sigmoid": (jax.nn.sigmoid, special.expit, lambda x: special.expit(x) * special.expit(-x)),
    "softplus": (jax.nn.softplus, lambda x: np.logaddexp(0.0, x), special.expit),
    "silu": (
        jax.nn.silu,
        lambda x: x * special.expit(x),
        lambda x: special.expit(x) * (1.0 + x * special.expit(-x)),
    ),
    "elu": (
        jax.nn.elu,
        lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
        lambda x: np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))),
    ),
    # a generic smooth callable with algebraic (not exponential) saturation
    "arctan": (jnp.arctan, np.arctan, lambda x: 1.0 / (1.0 + x * x)),
}
N_POINTS = 64
RTOL = 1e-6


def _dfn(fn):
    return jax.grad(lambda x: jnp.sum(fn(x)))


def _expect(name, q1, q2, c, n_points=N_POINTS):
    fn = ACTIVATIONS[name][0]
    args = (jnp.asarray(q1, jnp.float64), jnp.asarray(q2, jnp.float64), jnp.asarray(c))
    return [np.asarray(e) for e in quadrature_expectations(fn, _dfn(fn), *args, n_points)]


def _diag(name, q, n_points=N_POINTS):
    fn = ACTIVATIONS[name][0]
    q = jnp.asarray(q, jnp.float64)
    return [np.asarray(e) for e in quadrature_diag_expectations(fn, _dfn(fn), q, n_points)]


def _gauss1(h, scale):
    """``E[h(Z)]``, Z ~ N(0, 1), adaptive, split at 0 and at the bend scale ``1/scale``."""
    pts = sorted({0.0, *(s * b for s in (-1, 1) for b in (1 / scale, 10 / scale) if b < 12)})
    edges = [-13.0, *pts, 13.0]

    def integrand(z):
        return h(z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)

    return sum(
        integrate.quad(integrand, a, b, epsabs=0, epsrel=1e-13, limit=400)[0]
        for a, b in zip(edges[:-1], edges[1:], strict=True)
    )


def _adaptive_pair(g1, g2, q1, q2, rho):
    """``E[g1(u) g2(v)]`` by nested adaptive quadrature over z1, z2 with
    ``u = s1 z1``, ``v = s2 (ρ z1 + sqrt(1 - ρ²) z2)``; each integral is split at its bend."""
    s1, s2 = math.sqrt(q1), math.sqrt(q2)
    rho_c = math.sqrt((1 - rho) * (1 + rho))
    sigma = s2 * rho_c

    def inner(z1):
        mean = s2 * rho * z1
        bend = -mean / sigma
        edges = [-13.0, 13.0]
        for p in (bend - 5 / sigma, bend, bend + 5 / sigma):
            if -13 < p < 13:
                edges.insert(-1, p)
        edges.sort()

        def integrand(z2):
            return g2(mean + sigma * z2) * math.exp(-0.5 * z2 * z2)

        val = sum(
            integrate.quad(integrand, a, b, epsabs=1e-15, epsrel=1e-12, limit=200)[0]
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        )
        return g1(s1 * z1) * val / math.sqrt(2 * math.pi)

    return _gauss1(inner, max(s1, s2 * abs(rho) / max(rho_c, 1e-3), 1.0))


def _close(got, want, scale, rtol=RTOL):
    """Relative error with an absolute floor of 1e-12 of the scale (for values near zero)."""
    return abs(got - want) <= rtol * abs(want) + 1e-12 * scale


@pytest.mark.slow
@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_one_dimensional_rule_against_adaptive(name):
    """Diagonal ``E[f(u)²]`` and the ``ρ = ±1`` edges, q from 1e-6 to 1e4 (ratio 1e3 at ρ = 1)."""
    _, f, df = ACTIVATIONS[name]
    qs = np.array([1e-6, 1e-2, 1.0, 30.0, 1e4])
    with jax.enable_x64(True):
        diag = _diag(name, qs)
        minus = _expect(name, qs, qs, -qs)
        ratio = _expect(name, qs, 1e-3 * qs, np.sqrt(1e-3) * qs)
    for i, q in enumerate(qs):
        s = math.sqrt(q)
        for k, g in enumerate((f, df)):
            scale = _gauss1(lambda z, g=g, s=s: g(s * z) ** 2, s)
            want = {
                "diag": scale,
                "minus": _gauss1(lambda z, g=g, s=s: g(s * z) * g(-s * z), s),
                "ratio": _gauss1(lambda z, g=g, s=s: g(s * z) * g(math.sqrt(1e-3) * s * z), s),
            }
            for label, got in (("diag", diag), ("minus", minus), ("ratio", ratio)):
                assert _close(got[k][i], want[label], scale), (label, q, k, got[k][i], want[label])


# (activation, q1, q2, ρ): large variances, ρ near ±1, unequal variances, elu's kink.
CASES = [
    # the review's |x| ≈ 9, w_std = 2.5 case
    pytest.param("tanh", 81 * 6.25, 81 * 6.25, 0.3, marks=pytest.mark.slow),
    ("tanh", 1e4, 1e4, 0.999),
    ("tanh", 1.0, 1e3, -0.5),
    ("sigmoid", 1e4, 10.0, 0.9),
    ("sigmoid", 50.0, 50.0, -(1 - 1e-12)),
    ("softplus", 1e4, 1e4, -0.999),
    ("softplus", 3.0, 3e3, 0.99),
    ("silu", 100.0, 1e3, -0.999),
    ("silu", 1e-6, 1e-3, 0.7),
    ("elu", 100.0, 100.0, -0.5),
    ("elu", 1e4, 10.0, 1 - 1e-12),
    ("arctan", 1e4, 1e4, 0.0),
    ("arctan", 2.0, 5.0, -0.9),
]


@pytest.mark.parametrize("name, q1, q2, rho", CASES)
def test_two_dimensional_rule_against_adaptive(name, q1, q2, rho):
    _, f, df = ACTIVATIONS[name]
    c = rho * math.sqrt(q1 * q2)
    with jax.enable_x64(True):
        got = _expect(name, q1, q2, c)
        d1, d2 = _diag(name, q1), _diag(name, q2)
    for k, g in enumerate((f, df)):
        want = _adaptive_pair(g, g, q1, q2, rho)
        scale = math.sqrt(abs(d1[k] * d2[k]))
        assert _close(got[k], want, scale), (k, float(got[k]), want)


def _relu_closed_form(q1, q2, c):
    """Arc-cosine kernel (Cho & Saul 2009)."""
    cos = np.clip(c / np.sqrt(q1 * q2), -1, 1)
    theta = np.arccos(cos)
    sin = np.sin(theta)
    return np.sqrt(q1 * q2) / (2 * np.pi) * (sin + (np.pi - theta) * cos), (np.pi - theta) / (
        2 * np.pi
    )


def _erf_closed_form(q1, q2, c):
    """Williams (1997)."""
    p = (1 + 2 * q1) * (1 + 2 * q2)
    return 2 / np.pi * np.arcsin(2 * c / np.sqrt(p)), 4 / np.pi / np.sqrt(p - 4 * c * c)


@pytest.mark.parametrize(
    "fn, closed_form, rtol",
    [
        # a kink on the rays a = 0 and b = 0 of the polar rule: resolved exactly
        pytest.param(jax.nn.relu, _relu_closed_form, 1e-8, marks=pytest.mark.slow),
        # Gaussian tails: slower convergence of the graded rules (module docstring)
        (jax.scipy.special.erf, _erf_closed_form, 1e-4),
    ],
)
def test_against_closed_forms_on_a_grid(fn, closed_form, rtol):
    q = np.array([1e-6, 1e-3, 1.0, 100.0, 1e4])
    rho = np.array([-0.999999, -0.9, -0.3, 0.0, 0.5, 0.99, 0.9999999])
    q1, q2, r = (a.ravel() for a in np.meshgrid(q, q, rho, indexing="ij"))
    keep = (q1 / q2 <= 1e3) & (q2 / q1 <= 1e3)
    q1, q2, r = q1[keep], q2[keep], r[keep]
    c = r * np.sqrt(q1 * q2)
    with jax.enable_x64(True):
        got = quadrature_expectations(fn, _dfn(fn), jnp.asarray(q1), jnp.asarray(q2), c, N_POINTS)
    want = closed_form(q1, q2, c)
    for k in range(2):
        scale = np.sqrt(closed_form(q1, q1, q1)[k] * closed_form(q2, q2, q2)[k])
        err = np.abs(np.asarray(got[k]) - want[k]) - (rtol * np.abs(want[k]) + 1e-12 * scale)
        assert np.all(err <= 0), (k, np.argmax(err), q1[np.argmax(err)], r[np.argmax(err)])


@pytest.mark.slow
def test_exact_edges():
    """ρ = 1 with q1 = q2 is the diagonal rule; ρ = -1 is E[f(u) f(-u)]; q = 0 is f(0)²."""
    q = np.array([1e-6, 0.5, 7.0, 1e4])
    zero = np.zeros(2)
    with jax.enable_x64(True):
        for name in ("tanh", "softplus", "elu"):
            _, f, df = ACTIVATIONS[name]
            fn = ACTIVATIONS[name][0]
            diag = _diag(name, np.concatenate([q, zero]))
            both = _expect(name, np.tile(q, 2), np.tile(q, 2), np.concatenate([q, -q]))
            zeros = _expect(name, zero, zero, zero)
            f0, df0 = fn(0.0), _dfn(fn)(jnp.float64(0.0))
            for k, (g, at_zero) in enumerate(((f, f0**2), (df, df0**2))):
                same, minus = both[k][: q.size], both[k][q.size :]
                np.testing.assert_allclose(same, diag[k][: q.size], rtol=1e-14, atol=0)
                for i, s in enumerate(np.sqrt(q)):
                    want = _gauss1(lambda z, g=g, s=s: g(s * z) * g(-s * z), s)
                    assert _close(minus[i], want, diag[k][i], rtol=1e-8), (name, k, q[i])
                assert np.all(diag[k][q.size :] == at_zero) and np.all(zeros[k] == at_zero)


# (q1, q2, c): generic, unequal, identical inputs, ρ = 1 with q1 != q2, opposite inputs, zeros.
GRAD_POINTS = np.array(
    [
        (2.0, 3.0, 0.7),
        (900.0, 0.9, -12.0),
        (4.0, 4.0, 4.0),
        (4.0, 9.0, 6.0),
        (4.0, 4.0, -4.0),
        (0.0, 0.0, 0.0),
        (0.0, 2.0, 0.0),
    ]
)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh", "elu"])
def test_gradients_finite_and_match_finite_differences(name):
    """Finite everywhere (ρ = ±1, q = 0 included); central differences where ρ is inside (-1, 1).

    Entries are independent, so the gradient of the sum over a batch of points gives each point's
    gradient in one call."""
    fn = ACTIVATIONS[name][0]
    dfn = _dfn(fn)
    q1, q2, c = GRAD_POINTS.T
    inside = (q1 > 0) & (q2 > 0) & (np.abs(c) < np.sqrt(q1 * q2))
    with jax.enable_x64(True):
        for k in range(2):
            value = jax.jit(lambda a, b, d, k=k: quadrature_expectations(fn, dfn, a, b, d, 32)[k])
            grads = jax.grad(lambda *args, v=value: jnp.sum(v(*args)), argnums=(0, 1, 2))
            g = np.stack([np.asarray(x) for x in grads(*map(jnp.asarray, (q1, q2, c)))])
            assert np.all(np.isfinite(g)), (k, g)
            for i in range(3):
                step = 1e-5 * np.maximum(np.abs(GRAD_POINTS[:, i]), 1.0)
                up, down = GRAD_POINTS.T.copy(), GRAD_POINTS.T.copy()
                up[i] += step
                down[i] -= step
                fd = (np.asarray(value(*up)) - np.asarray(value(*down))) / (2 * step)
                err = np.abs(g[i] - fd) - (1e-6 * np.abs(fd) + 1e-9)
                assert np.all(err[inside] <= 0), (k, i, g[i], fd)
        diag_grad = jax.grad(lambda q: quadrature_diag_expectations(fn, dfn, q, 32)[1])
        assert np.isfinite(float(diag_grad(jnp.float64(0.0))))


@pytest.mark.slow
def test_broadcasting_with_trailing_axes():
    """Tile shapes with a spatial axis give the entrywise values."""
    rng = np.random.default_rng(0)
    q1 = rng.uniform(0.1, 50, size=(3, 1, 2))
    q2 = rng.uniform(0.1, 50, size=(1, 4, 2))
    c = rng.uniform(-0.9, 0.9, size=(3, 4, 2)) * np.sqrt(q1 * q2)
    c[0, 0, 0] = np.sqrt(q1[0, 0, 0] * q2[0, 0, 0])  # an edge entry among the others
    with jax.enable_x64(True):
        e, e_dot = _expect("softplus", q1, q2, c, n_points=32)
        assert e.shape == e_dot.shape == (3, 4, 2)
        flat = _expect(
            "softplus",
            np.broadcast_to(q1, c.shape).ravel(),
            np.broadcast_to(q2, c.shape).ravel(),
            c.ravel(),
            n_points=32,
        )
    np.testing.assert_allclose(e.ravel(), flat[0], rtol=1e-13)
    np.testing.assert_allclose(e_dot.ravel(), flat[1], rtol=1e-13)


@pytest.mark.slow
def test_float32_is_finite_and_close():
    q1 = np.array([0.0, 1e-6, 1.0, 1e4, 1e8, 3.0, 3.0], np.float32)
    q2 = np.array([0.0, 1e-3, 2.0, 1e4, 1e8, 3.0, 3.0], np.float32)
    rho = np.array([0.0, 0.5, -0.3, 0.999, 0.2, 1.0, -1.0], np.float32)
    c = rho * np.sqrt(q1 * q2)
    for name in ("tanh", "elu"):
        fn = ACTIVATIONS[name][0]
        with jax.enable_x64(False):
            got = quadrature_expectations(fn, _dfn(fn), q1, q2, c, N_POINTS)
            diag = quadrature_diag_expectations(fn, _dfn(fn), q1, N_POINTS)
        assert all(a.dtype == jnp.float32 for a in (*got, *diag))
        assert all(np.all(np.isfinite(np.asarray(a))) for a in (*got, *diag))
        with jax.enable_x64(True):
            ref = _expect(name, q1.astype(np.float64), q2.astype(np.float64), c.astype(np.float64))
        for k in range(2):
            keep = q1 < 1e5  # f32 rounding of u = sqrt(q) z dominates beyond
            np.testing.assert_allclose(np.asarray(got[k])[keep], ref[k][keep], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("bad, error", [(4, ValueError), (5000, ValueError), (64.0, TypeError)])
def test_bad_n_points(bad, error):
    with pytest.raises(error, match="n_points"):
        quadrature_diag_expectations(jnp.tanh, _dfn(jnp.tanh), jnp.ones(2), bad)
