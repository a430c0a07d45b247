"""Solvers of the training-kernel systems against dense linear algebra (NumPy/SciPy)."""

import doctest
import importlib
import os
import pickle
import subprocess
import sys
import textwrap
import warnings

import jax
import numpy as np
import pytest
import scipy.linalg
from sklearn.exceptions import ConvergenceWarning

from ntk_sklearn.kernels import fc_kernel
from ntk_sklearn.solvers import (
    CGSolver,
    CholeskySolver,
    EighSolver,
    choose_solver,
    make_solver,
    nystrom_factor,
    pivoted_cholesky,
    solver_memory,
)


def ntk(n, alpha, seed=0, dim=8):
    """ReLU NTK (depth 3) of ``n`` unit-norm Gaussian rows, plus ``alpha`` on its diagonal."""
    x = np.random.default_rng(seed).normal(size=(n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with jax.enable_x64(True):
        k = fc_kernel(x, depth=3, b_std=0.1, get="ntk")
    return k + alpha * np.eye(n)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module")
def kernel():
    return ntk(500, 1e-3)


@pytest.fixture(scope="module")
def rhs():
    return np.random.default_rng(1).normal(size=(500, 10))


@pytest.mark.parametrize("preconditioner", ["nystrom", "pivoted_cholesky", None])
def test_cg_matches_cholesky(kernel, rhs, preconditioner):
    exact = scipy.linalg.cho_solve(scipy.linalg.cho_factor(kernel), rhs)
    solver = CGSolver(tol=1e-10, preconditioner=preconditioner, rank=50).fit(kernel)
    out = solver.apply(rhs)
    assert out.shape == rhs.shape and out.dtype == np.float64
    assert rel(out, exact) < 1e-6
    assert solver.residual_ <= 1e-10
    assert rel(CholeskySolver().fit(kernel).apply(rhs), exact) < 1e-10


def test_cg_float32_kernel_accumulates_in_float64(kernel, rhs):
    """A float32 kernel is stored in float32; the answer is that of its float64 upcast."""
    k32 = kernel.astype(np.float32)
    before = k32.copy()
    exact = np.linalg.solve(k32.astype(np.float64), rhs)
    out = CGSolver(tol=1e-10, rank=50).fit(k32).apply(rhs)
    assert rel(out, exact) < 1e-6
    np.testing.assert_array_equal(k32, before)
    # kernel_dtype="float32" stores a float64 kernel as float32: the same system.
    solver = CGSolver(tol=1e-10, rank=50, kernel_dtype="float32").fit(kernel)
    assert solver.kernel_.dtype == np.float32
    assert rel(solver.apply(rhs), exact) < 1e-6


def expm_reference(k, b, s):
    """``K⁻¹ (I - e^{-sK}) b = ∫₀ˢ e^{-uK} du b`` by SciPy's matrix exponential.

    Van Loan's block form: ``expm([[-sK, sI], [0, 0]])`` has ``∫₀ˢ e^{-uK} du`` as its upper
    right block; no inverse and no cancellation for small ``s``.
    """
    n = k.shape[0]
    block = np.zeros((2 * n, 2 * n))
    block[:n, :n], block[:n, n:] = -s * k, s * np.eye(n)
    return scipy.linalg.expm(block)[:n, n:] @ b


@pytest.mark.parametrize(
    "t", [1e5, *(pytest.param(t, marks=pytest.mark.slow) for t in (1e-3, 1.0, 300.0, 1e9))]
)
def test_finite_t_lanczos_matches_eigh(kernel, rhs, t):
    rate = 1.0 / rhs.size
    eig = EighSolver().fit(kernel, rate)
    exact = eig.apply(rhs, t)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        out = CGSolver(tol=1e-10).fit(kernel, rate).apply(rhs, t)
    assert rel(out, exact) < 1e-6
    if t <= 300:  # scipy's expm is an independent truth where e^{-sK} is not below rounding
        assert rel(exact, expm_reference(kernel, rhs, rate * t)) < 1e-9


@pytest.mark.slow
def test_singular_kernel_keeps_null_space_growing():
    """alpha=0, rank-20 linear kernel: A_t b = g_t(K) b with g_t(0) = r t on the null space."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 20))
    k = x @ x.T / 20
    b = rng.normal(size=(300, 3))
    rate, t = 0.01, 50.0
    u, sv, _ = np.linalg.svd(x, full_matrices=False)
    lam = sv**2 / 20  # the non-zero eigenvalues of K, eigenvectors u
    null_part = b - u @ (u.T @ b)
    # Independent truth: g_t(λ) = (1 - e^{-r t λ}) / λ on the range, r·t on the null space.
    exact = u @ ((-np.expm1(-rate * t * lam) / lam)[:, None] * (u.T @ b)) + rate * t * null_part
    for solver in (EighSolver(), CGSolver(tol=1e-10)):
        out = solver.fit(k, rate).apply(b, t)
        np.testing.assert_allclose(out - u @ (u.T @ out), rate * t * null_part, atol=1e-8)
        assert rel(out, exact) < 1e-6


@pytest.mark.slow
def test_preconditioner_cuts_iterations():
    k = ntk(400, 1e-6, seed=3)
    b = np.random.default_rng(4).normal(size=(400, 4))
    iters = {}
    for pre in ("nystrom", "pivoted_cholesky", None):
        solver = CGSolver(tol=1e-8, preconditioner=pre, rank=60, max_iter=4000).fit(k)
        solver.apply(b)
        iters[pre] = solver.n_iter_
    assert iters["nystrom"] < iters[None]
    assert iters["pivoted_cholesky"] < iters[None]


def test_non_convergence_warns(kernel, rhs):
    solver = CGSolver(tol=1e-10, max_iter=3, preconditioner=None).fit(kernel)
    with pytest.warns(ConvergenceWarning, match="alpha.*max_iter.*rank"):
        solver.apply(rhs)
    assert solver.residual_ > 1e-10 and solver.n_iter_ == 3
    with pytest.warns(ConvergenceWarning, match="Lanczos"):
        solver.apply(rhs, t=1e6)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"tol": 0}, "tol"),
        ({"tol": -1e-3}, "tol"),
        ({"tol": "1e-6"}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"max_iter": 2.5}, "max_iter"),
        ({"rank": -1}, "rank"),
        ({"preconditioner": "ilu"}, "preconditioner"),
        ({"kernel_dtype": "float16"}, "kernel_dtype"),
    ],
)
def test_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        CGSolver(**params)


@pytest.mark.slow
def test_invalid_inputs(kernel):
    solver = CGSolver().fit(kernel)
    with pytest.raises(ValueError, match="B must have shape"):
        solver.apply(np.ones((3, 2)))
    with pytest.raises(ValueError, match="t must be >= 0"):
        solver.apply(np.ones(500), t=-1.0)
    with pytest.raises(ValueError, match="square"):
        CGSolver().fit(np.ones((3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        CholeskySolver().fit(np.full((2, 2), np.nan))
    with pytest.raises(TypeError, match="float32 or float64"):
        EighSolver().fit(np.eye(3, dtype=int))
    with pytest.raises(ValueError, match="rate"):
        EighSolver().fit(kernel, rate=0.0)
    with pytest.raises(ValueError, match="EighSolver"):
        CholeskySolver().fit(kernel).apply(np.ones(500), t=1.0)
    with pytest.raises(RuntimeError, match="not fitted"):
        CGSolver().apply(np.ones(3))


def test_cholesky_jitter_and_failure():
    x = np.random.default_rng(5).normal(size=(50, 5))
    singular = x @ x.T  # rank 5
    with pytest.warns(RuntimeWarning, match="Increase alpha"):
        solver = CholeskySolver().fit(singular)
    assert solver.jitter_ > 0
    with pytest.raises(np.linalg.LinAlgError, match="Increase alpha"):
        CholeskySolver().fit(-np.eye(4))


@pytest.mark.slow
def test_eigh_apply_times_matches_expm(kernel, rhs):
    k, b = kernel[:120, :120], rhs[:120, :2]
    rate = 0.5
    times = [0.0, 0.1, 10.0, np.inf]
    out = EighSolver().fit(k, rate).apply_times(b, times)
    assert out.shape == (4, 120, 2)
    np.testing.assert_array_equal(out[0], 0.0)
    for got, t in zip(out[1:3], times[1:3], strict=True):
        assert rel(got, expm_reference(k, b, rate * t)) < 1e-8
    assert rel(out[3], np.linalg.solve(k, b)) < 1e-8


@pytest.mark.slow
def test_one_dimensional_rhs_and_t_zero(kernel, rhs):
    solver = CGSolver(tol=1e-10).fit(kernel, 0.1)
    np.testing.assert_allclose(solver.apply(rhs[:, 0]), solver.apply(rhs)[:, 0], rtol=1e-9)
    np.testing.assert_array_equal(solver.apply(rhs, 0.0), 0.0)
    zero = solver.apply(np.zeros_like(rhs))
    np.testing.assert_array_equal(zero, 0.0)


@pytest.mark.slow
def test_fitted_solvers_pickle(kernel, rhs):
    for name in ("cholesky", "eigh", "cg"):
        solver = make_solver(name).fit(kernel, 0.1)
        clone = pickle.loads(pickle.dumps(solver))
        np.testing.assert_allclose(clone.apply(rhs), solver.apply(rhs), rtol=1e-12)


def test_low_rank_factors_reproduce_the_kernel():
    k = ntk(150, 0.0, seed=6)
    f, pivots = pivoted_cholesky(k, rank=150)
    assert len(set(pivots.tolist())) == len(pivots)
    assert np.abs(k - f @ f.T).max() < 1e-8 * np.abs(k).max()
    # Greedy pivots of rank r beat the best rank-r error by a modest factor only.
    f10, _ = pivoted_cholesky(k, rank=10)
    best = np.linalg.eigvalsh(k)[-11]
    assert np.linalg.norm(k - f10 @ f10.T, 2) < 50 * best
    for columns in ("random", "pivoted"):
        f = nystrom_factor(k, 150, columns=columns)
        assert np.abs(k - f @ f.T).max() < 1e-6 * np.abs(k).max()


def test_memory_and_choice():
    gib = 2**30
    assert solver_memory(1000, 10, "float64", "cholesky") == (2 * 1000**2 + 10_000) * 8
    assert solver_memory(1000, 10, "float32", "eigh") < solver_memory(1000, 10, "float64", "eigh")
    with pytest.raises(ValueError, match="name"):
        solver_memory(10, 1, "float64", "lu")
    assert choose_solver(2000, 10, None, False, "float64", 16 * gib) == "cholesky"
    assert choose_solver(2000, 10, 5.0, False, "float64", 16 * gib) == "eigh"
    assert choose_solver(20_000, 10, 5.0, False, "float64", 64 * gib) == "cg"
    # A factorization that does not fit goes to CG, even with a covariance.
    assert choose_solver(20_000, 10, None, True, "float64", 4 * gib) == "cg"
    assert choose_solver(20_000, 10, None, True, "float64", 64 * gib) == "cholesky"


_SHARDED = textwrap.dedent(
    """
    import jax, numpy as np
    from ntk_sklearn.solvers import CGSolver, shard_rows
    assert len(jax.devices()) == 2, jax.devices()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 6)); x /= np.linalg.norm(x, axis=1, keepdims=True)
    k = np.exp(x @ x.T) + 1e-2 * np.eye(256)
    b = rng.normal(size=(256, 5))
    from jax.sharding import AxisType
    meshes = [jax.make_mesh((2,), ("rows",)), jax.make_mesh((2,), ("rows",), (AxisType.Auto,))]
    for mesh, dtype in [(m, d) for m in meshes for d in (np.float64, np.float32)]:
        kd = k.astype(dtype)
        ks = shard_rows(kd, mesh)
        assert len(ks.sharding.device_set) == 2
        for t in (None, 3.0):
            a = CGSolver(tol=1e-10, rank=20).fit(kd, 0.5).apply(b, t)
            s = CGSolver(tol=1e-10, rank=20).fit(ks, 0.5)
            out = s.apply(b, t)
            assert len(s.kernel_.sharding.device_set) == 2
            err = np.linalg.norm(out - a) / np.linalg.norm(a)
            assert err < 1e-9, (dtype, t, err)
    print("OK")
    """
)


@pytest.mark.slow
def test_sharded_cg_equals_unsharded():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", _SHARDED], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout


@pytest.mark.parametrize(
    "name",
    [
        "ntk_sklearn.solvers",
        "ntk_sklearn.solvers._base",
        "ntk_sklearn.solvers._cg",
        "ntk_sklearn.solvers._direct",
        "ntk_sklearn.solvers._preconditioners",
        "ntk_sklearn.solvers._sharding",
    ],
)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
