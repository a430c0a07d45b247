"""Analytic kernels against neural-tangents, closed forms, quadrature and Monte Carlo."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from ntk_sklearn.kernels import (
    Nonlinearity,
    fc_kernel,
    fc_kernel_diag,
    get_activation,
    register_activation,
)

CLOSED_FORMS = ("relu", "erf", "identity", "leaky_relu", "abs", "gelu")


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _cases(meta, activations):
    return [c for c in meta if c["kind"] == "kernel" and c["activation"] in activations]


def _kw(case):
    kw = {k: case[k] for k in ("depth", "activation", "w_std", "b_std")}
    kw["negative_slope"] = case.get("negative_slope", 0.01)
    return kw


def _aligned_mask(shape, pairs):
    mask = np.zeros(shape, bool)
    for i, j in pairs:
        mask[i, j] = True
    return mask


@pytest.mark.slow
def test_reference_closed_forms(reference, reference_is_full):
    """63 neural-tangents cases: 1e-10 of the largest entry, 1e-7 at correlation ±1 pairs."""
    data, meta = reference
    cases = _cases(meta, CLOSED_FORMS)
    assert len(cases) == (54 if reference_is_full else 12)
    assert {c["activation"] for c in cases} == set(CLOSED_FORMS)
    x1, x2 = data["x1"], data["x2"]
    # x2[0] == x1[0] (correlation +1), x2[1] == -x1[1] (correlation -1); diagonal of x1 with x1.
    aligned = {"12": _aligned_mask((9, 6), [(0, 0), (1, 1)]), "11": np.eye(9, dtype=bool)}
    for case in cases:
        k12 = fc_kernel(x1, x2, **_kw(case))
        k11 = fc_kernel(x1, **_kw(case))
        for name in ("nngp", "ntk"):
            for suffix, k in (("12", k12), ("11", k11)):
                ref = data[f"k{case['index']}_{name}_{suffix}"]
                err = np.abs(getattr(k, name) - ref) / np.abs(ref).max()
                mask = aligned[suffix]
                assert err[~mask].max() < 1e-10, (case, name, suffix)
                assert err[mask].max() < 1e-7, (case, name, suffix)


def _exact_diag(case, x):
    """Diagonal by the θ = 0 recursion written independently in NumPy (scipy for GELU)."""
    w2, b2 = case["w_std"] ** 2, case["b_std"] ** 2
    q = w2 * np.sum(x * x, axis=1) / x.shape[1] + b2
    t = q.copy()
    for _ in range(case["depth"]):
        act = case["activation"]
        if act in ("relu", "leaky_relu", "abs"):
            s = {"relu": 0.0, "abs": -1.0}.get(act, case.get("negative_slope"))
            e, e_dot = 0.5 * (1 + s * s) * q, np.full_like(q, 0.5 * (1 + s * s))
        elif act == "erf":
            e = 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q))
            e_dot = 4 / np.pi / np.sqrt(1 + 4 * q)
        elif act == "identity":
            e, e_dot = q, np.ones_like(q)
        else:  # gelu: x Φ(x), derivative Φ(x) + x φ(x), by adaptive quadrature
            from scipy.stats import norm

            def gauss(f, v):
                return integrate.quad(
                    lambda z: f(np.sqrt(v) * z) * norm.pdf(z),
                    -40,
                    40,
                    epsabs=0,
                    epsrel=1e-13,
                    limit=200,
                )[0]

            e = np.array([gauss(lambda u: (u * norm.cdf(u)) ** 2, v) for v in q])
            e_dot = np.array([gauss(lambda u: (norm.cdf(u) + u * norm.pdf(u)) ** 2, v) for v in q])
        q_next = w2 * e + b2
        t = q_next + t * w2 * e_dot
        q = q_next
    return q, t


@pytest.mark.slow
def test_diagonal_is_exact(reference):
    """At θ = 0 we are better than the reference: 1e-13 of the exact value (1e-11 for GELU)."""
    data, meta = reference
    x1 = data["x1"]
    for case in _cases(meta, CLOSED_FORMS):
        k = fc_kernel(x1, **_kw(case))
        q, t = _exact_diag(case, x1)
        tol = 1e-11 if case["activation"] == "gelu" else 1e-13
        np.testing.assert_allclose(np.diag(k.nngp), q, rtol=tol, atol=0)
        np.testing.assert_allclose(np.diag(k.ntk), t, rtol=tol, atol=0)
        d = fc_kernel_diag(x1, **_kw(case))
        np.testing.assert_allclose(d.nngp, q, rtol=tol, atol=0)
        np.testing.assert_allclose(d.ntk, t, rtol=tol, atol=0)


def _tanh_truth(case, x1, x2, i, j):
    """Depth-1 tanh NNGP/NTK entry by adaptive 2-D integration (scipy.dblquad)."""
    w2, b2 = case["w_std"] ** 2, case["b_std"] ** 2
    d = x1.shape[1]
    q1, q2, c = (w2 * a @ b / d + b2 for a, b in ((x1[i], x1[i]), (x2[j], x2[j]), (x1[i], x2[j])))
    chol = np.linalg.cholesky(np.array([[q1, c], [c, q2]]))

    def gauss2(f):
        def integrand(z2, z1):
            u, v = chol[0, 0] * z1, chol[1, 0] * z1 + chol[1, 1] * z2
            return f(u) * f(v) * np.exp(-0.5 * (z1 * z1 + z2 * z2)) / (2 * np.pi)

        return integrate.dblquad(integrand, -12, 12, -12, 12, epsabs=1e-13, epsrel=1e-12)[0]

    nngp = w2 * gauss2(np.tanh) + b2
    ntk = nngp + c * w2 * gauss2(lambda u: 1 / np.cosh(u) ** 2)
    return nngp, ntk


@pytest.mark.slow
@pytest.mark.parametrize("index, points", [(54, 64), (55, 128)])
def test_tanh_quadrature_against_adaptive_integration(reference, index, points):
    data, meta = reference
    (case,) = [c for c in meta if c["kind"] == "kernel" and c["index"] == index]
    x1, x2 = data["x1"], data["x2"]
    k = fc_kernel(x1, x2, quadrature_points=points, **_kw(case))
    for i, j in [(2, 3), (4, 5), (7, 1)]:
        nngp, ntk = _tanh_truth(case, x1, x2, i, j)
        np.testing.assert_allclose(k.nngp[i, j], nngp, rtol=1e-6)
        np.testing.assert_allclose(k.ntk[i, j], ntk, rtol=1e-6)


@pytest.mark.slow
def test_tanh_reference(reference):
    """neural-tangents' tanh uses Gauss-Hermite (deg 101), which is itself off by up to ~5e-4 of
    the largest entry at w_std = 1.5 (see the adaptive-integration test above); we match it to
    that, and to 1e-5 where its quadrature is accurate (w_std = 1)."""
    data, meta = reference
    for case in _cases(meta, ("tanh",)):
        tol = 1e-5 if case["w_std"] == 1.0 else 1e-3
        for suffix, args in (("12", (data["x1"], data["x2"])), ("11", (data["x1"],))):
            k = fc_kernel(*args, quadrature_points=128, **_kw(case))
            for name in ("nngp", "ntk"):
                ref = data[f"k{case['index']}_{name}_{suffix}"]
                err = np.abs(getattr(k, name) - ref).max() / np.abs(ref).max()
                assert err < tol, (case, name, suffix, err)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["erf", "sin", "gelu", "identity", "relu"])
def test_quadrature_matches_closed_forms(name):
    """Any callable goes through quadrature; on activations with closed forms it must agree."""
    x = np.random.default_rng(0).normal(size=(6, 4))
    closed = fc_kernel(x, depth=2, activation=name, w_std=1.2, b_std=0.1)
    fn = get_activation(name).fn
    quad = fc_kernel(x, depth=2, activation=lambda z: fn(z), w_std=1.2, b_std=0.1)
    # relu (kink, and a step for a derivative) converges only algebraically; smooth ones to 1e-6.
    tol = 1e-2 if name == "relu" else 1e-6
    for a, b in ((quad.nngp, closed.nngp), (quad.ntk, closed.ntk)):
        assert np.abs(a - b).max() / np.abs(b).max() < tol


@pytest.mark.slow
def test_register_activation_extends_the_set():
    """One small definition adds a closed form: σ(x) = x², E[u²v²] = q1 q2 + 2c², E[4uv] = 4c."""

    def square(negative_slope):
        return Nonlinearity(
            "square",
            lambda x: x * x,
            lambda q1, q2, c: (q1 * q2 + 2 * c * c, 4 * c),
            lambda q: (3 * q * q, 4 * q),
        )

    register_activation("square", square)
    x = np.random.default_rng(1).normal(size=(5, 3)) * 0.5
    closed = fc_kernel(x, depth=2, activation="square")
    quad = fc_kernel(x, depth=2, activation=lambda z: z * z)
    np.testing.assert_allclose(closed.ntk, quad.ntk, rtol=1e-9)
    np.testing.assert_allclose(closed.nngp, quad.nngp, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_monte_carlo_nngp_of_wide_networks(activation):
    """Average over random width-2048 networks of the readout covariance; within 5 std errors.

    Written independently of the package's MLP: given the last hidden layer h(x), the readout
    ``w/sqrt(n) W h + b β`` has covariance ``w² h(x)·h(x')/n + b²`` over (W, β).
    """
    rng = np.random.default_rng(42)
    x = rng.normal(size=(5, 8))
    depth, width, w_std, b_std, n_nets = 2, 2048, 1.3, 0.2, 24
    act = {"relu": lambda z: np.maximum(z, 0), "erf": __import__("scipy.special").special.erf}[
        activation
    ]
    samples = []
    for _ in range(n_nets):
        h, fan_in = x, x.shape[1]
        for _ in range(depth):
            w = rng.normal(size=(fan_in, width))
            b = rng.normal(size=width)
            h = act(w_std / np.sqrt(fan_in) * h @ w + b_std * b)
            fan_in = width
        samples.append(w_std**2 * h @ h.T / width + b_std**2)
    samples = np.array(samples)
    mean, stderr = samples.mean(0), samples.std(0, ddof=1) / np.sqrt(n_nets)
    analytic = fc_kernel(x, depth=depth, activation=activation, w_std=w_std, b_std=b_std).nngp
    assert np.all(np.abs(mean - analytic) < 5 * stderr + 1e-12)
    # and the test has power: one layer more is outside the same error bars.
    other = fc_kernel(x, depth=depth + 1, activation=activation, w_std=w_std, b_std=b_std).nngp
    assert np.any(np.abs(mean - other) > 5 * stderr)


@pytest.mark.parametrize("activation", ["relu", "erf", "gelu", "abs", "leaky_relu", "sin"])
def test_symmetric_positive_semidefinite(activation):
    x = np.random.default_rng(3).normal(size=(40, 10))
    x[1] = x[0]
    x[2] = -x[0]
    k = fc_kernel(x, depth=3, activation=activation, w_std=1.4, b_std=0.3)
    for m in k:
        np.testing.assert_array_equal(m, m.T)
        eig = np.linalg.eigvalsh(m)
        assert eig.min() >= -1e-10 * np.abs(m).max()


@pytest.mark.parametrize(
    "activation",
    ["relu", "erf", "abs", "sign", "sin"]
    + [pytest.param(a, marks=pytest.mark.slow) for a in ("gelu", "tanh")],
)
def test_extreme_inputs_stay_finite(activation):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(6, 5))
    x = np.vstack([x, x[:1], -x[:1], np.zeros((1, 5)), 1e8 * x[1:2], 1e-8 * x[2:3]])
    depth = 10 if activation == "tanh" else 50
    for b_std in (0.0, 0.1):
        k = fc_kernel(x, depth=depth, activation=activation, w_std=1.0, b_std=b_std)
        assert np.isfinite(k.nngp).all() and np.isfinite(k.ntk).all()
        d = fc_kernel_diag(x, depth=depth, activation=activation, w_std=1.0, b_std=b_std)
        np.testing.assert_allclose(np.diag(k.ntk), d.ntk, rtol=1e-12)


@pytest.mark.slow
def test_float32_close_to_float64():
    """float32 is within 1e-5 of the largest entry for depth-3 ReLU on unit-scale data."""
    x = np.random.default_rng(5).normal(size=(50, 20))
    k64 = fc_kernel(x, depth=3, w_std=1.4, b_std=0.1)
    with jax.enable_x64(False):
        k32 = fc_kernel(x.astype(np.float32), depth=3, w_std=1.4, b_std=0.1)
    assert k32.ntk.dtype == np.float32 and k64.ntk.dtype == np.float64
    for a, b in zip(k32, k64, strict=True):
        assert np.abs(a - b).max() / np.abs(b).max() < 1e-5


@pytest.mark.slow
def test_blocks_and_get_forms_agree():
    rng = np.random.default_rng(6)
    x1, x2 = rng.normal(size=(70, 9)), rng.normal(size=(33, 9))
    full = fc_kernel(x1, x2, depth=2, activation="erf", b_std=0.2)
    blocked = fc_kernel(x1, x2, depth=2, activation="erf", b_std=0.2, block_size=16)
    np.testing.assert_allclose(blocked.ntk, full.ntk, rtol=1e-13)
    sym = fc_kernel(x1, depth=2, activation="erf", b_std=0.2)
    sym_blocked = fc_kernel(x1, depth=2, activation="erf", b_std=0.2, block_size=16)
    np.testing.assert_allclose(sym_blocked.nngp, sym.nngp, rtol=1e-13)
    np.testing.assert_array_equal(sym_blocked.nngp, sym_blocked.nngp.T)
    np.testing.assert_allclose(
        fc_kernel(x1, x1, depth=2, activation="erf", b_std=0.2).ntk, sym.ntk, rtol=1e-12
    )
    only = fc_kernel(x1, x2, depth=2, activation="erf", b_std=0.2, get="ntk")
    np.testing.assert_array_equal(only, full.ntk)
    pair = fc_kernel(x1, x2, depth=2, activation="erf", b_std=0.2, get=("nngp",))
    assert pair.ntk is None
    np.testing.assert_array_equal(pair.nngp, full.nngp)


def test_inputs_not_modified():
    x = np.random.default_rng(7).normal(size=(10, 3))
    before = x.copy()
    fc_kernel(x, depth=2)
    np.testing.assert_array_equal(x, before)


@pytest.mark.slow
def test_tiles_spread_over_several_devices():
    """With two (virtual CPU) devices, tiles go to both and the result is unchanged."""
    code = textwrap.dedent(
        """
        import jax, numpy as np
        from ntk_sklearn.kernels import fc_kernel
        assert len(jax.devices()) == 2
        x = np.random.default_rng(0).normal(size=(90, 7))
        with jax.enable_x64(True):
            a = fc_kernel(x, depth=3, block_size=20)
            b = fc_kernel(x, depth=3, block_size=1000)
        assert np.abs(a.ntk - b.ntk).max() <= 1e-13 * np.abs(b.ntk).max()
        print("ok")
        """
    )
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"activation": "swishy"}, "Unknown activation"),
        ({"depth": -1}, "depth"),
        ({"depth": 1.5}, "depth"),
        ({"w_std": -1.0}, "w_std"),
        ({"b_std": float("nan")}, "b_std"),
        ({"get": "kernel"}, "get"),
        ({"block_size": 0}, "block_size"),
        ({"quadrature_points": 1}, "quadrature_points"),
    ],
)
def test_bad_arguments(kwargs, message):
    x = np.ones((3, 2))
    kwargs = {"depth": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        fc_kernel(x, **kwargs)


@pytest.mark.parametrize(
    "x1, x2, message",
    [
        (np.ones(3), None, "2-D"),
        (np.ones((3, 2)), np.ones((3, 4)), "same number of features"),
        (np.array([[1.0, np.nan]]), None, "NaN"),
        (np.ones((2, 2)), np.array([[np.inf, 1.0]]), "NaN or infinity"),
        (np.array([["a", "b"]]), None, "numeric"),
        (np.ones((0, 2)), None, "at least one row"),
    ],
)
def test_bad_inputs(x1, x2, message):
    with pytest.raises(ValueError, match=message):
        fc_kernel(x1, x2, depth=1)


def test_refuses_outputs_that_do_not_fit(monkeypatch):
    from ntk_sklearn import _memory

    monkeypatch.setattr(_memory, "available_memory", lambda: 1000)
    with pytest.raises(MemoryError, match="float32"):
        fc_kernel(np.ones((20, 3)), depth=1)


def test_jax_array_inputs():
    x = jnp.asarray(np.random.default_rng(8).normal(size=(4, 3)))
    np.testing.assert_allclose(fc_kernel(x, depth=1).ntk, fc_kernel(np.asarray(x), depth=1).ntk)
