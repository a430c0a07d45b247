"""Memory under a limit: the room this process may still allocate is the smallest of
MemAvailable, cgroup limits and RLIMIT_AS/RLIMIT_DATA, and every plan refuses before allocating.

The limits are set with ``resource.setrlimit`` in a fresh Python process (a limit cannot be
raised again, so never in the test process itself).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ntk_sklearn import _memory

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def _run_capped(code: str, cap_gib: float = 6.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a new interpreter whose address space is capped at ``cap_gib`` GiB."""
    prelude = textwrap.dedent(
        f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, ({int(cap_gib * GIB)}, resource.RLIM_INFINITY))
        """
    )
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow  # a fresh interpreter importing JAX
def test_available_memory_is_below_the_address_space_cap():
    out = _run_capped(
        """
        import jax.numpy as jnp
        from ntk_sklearn import _memory
        jnp.ones(3).block_until_ready()  # JAX's runtime is part of the address space
        limits = _memory.memory_limits()
        size = _memory._process_sizes()["VmSize"]
        print(limits["RLIMIT_AS"], size, _memory.available_memory())
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    room, size, available = map(int, out.stdout.split())
    assert room == 6 * GIB - size  # the cap less the address space in use
    assert available <= room
    assert size > 0


@pytest.mark.slow  # a fresh interpreter importing JAX
def test_cg_fit_beyond_the_address_space_cap_is_refused_before_allocating():
    # 40,000 rows in float32: a 6.0 GiB kernel under a 6 GiB cap (MemAvailable here is larger:
    # the plan used to accept it and the fit died in an allocation).
    out = _run_capped(
        """
        import numpy as np
        from ntk_sklearn import NNGPClassifier
        X = np.random.default_rng(0).normal(size=(40_000, 4))
        y = (X[:, 0] > 0).astype(int)
        try:
            NNGPClassifier(solver="cg", dtype="float32").fit(X, y)
        except MemoryError as err:
            print("REFUSED", err)
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "REFUSED Fitting on 40000 samples (training kernel 5.96 GiB" in out.stdout
    assert "limited by RLIMIT_AS" in out.stdout
    # The advice fits a float32 fit: fewer samples, not "use float32".
    assert "Use fewer training samples" in out.stdout
    assert "dtype='float32'" not in out.stdout


@pytest.mark.slow  # a fresh interpreter importing JAX
def test_evidence_optimizer_beyond_the_cap_is_refused_naming_its_parts():
    out = _run_capped(
        """
        import numpy as np
        from ntk_sklearn import NTKRegressor
        X = np.random.default_rng(0).normal(size=(6_000, 3))
        try:
            NTKRegressor(optimizer="fmin_l_bfgs_b").fit(X, X[:, 0])
        except MemoryError as err:
            print("REFUSED", err)
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "REFUSED The log marginal likelihood and its gradient on 6000 samples" in text
    assert "kernel recursion over" in text and "Cholesky factor" in text
    assert "limited by RLIMIT_AS" in text and "on a subset of the samples" in text


def test_direct_fit_plan_counts_the_jax_copies(monkeypatch):
    import numpy as np

    from ntk_sklearn import NTKRegressor

    monkeypatch.setattr(_memory, "available_memory", lambda: 2**20)
    with pytest.raises(MemoryError, match="training kernels .*JAX copies of the kernel"):
        NTKRegressor(solver="cholesky").fit(np.arange(600.0).reshape(300, 2), np.arange(300.0))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_cgroup_limits_are_read_at_every_level(tmp_path, monkeypatch, version):
    names = (
        ("memory.max", "memory.current")
        if version == "v2"
        else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    )
    outer, inner = tmp_path / "outer", tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    (outer / names[0]).write_text(str(10 * GIB))
    (outer / names[1]).write_text(str(7 * GIB))  # 3 GiB of room: the tightest
    unlimited = "max" if version == "v2" else "9223372036854771712"
    (inner / names[0]).write_text(unlimited)
    (inner / names[1]).write_text(str(GIB))
    monkeypatch.setattr(_memory, "_cgroup_paths", lambda: [(version, inner), (version, outer)])
    assert _memory._cgroup_available() == 3 * GIB
    monkeypatch.setattr(_memory, "_meminfo_available", lambda: 100 * GIB)
    assert _memory.memory_limits()["cgroup limit"] == 3 * GIB
    assert _memory.available_memory() <= 3 * GIB


@pytest.mark.slow  # a fresh interpreter importing JAX
def test_model_of_2_5e9_parameters_is_refused_before_allocating():
    # A broadcast array: 2.5e9 parameters that take no memory until copied.
    out = _run_capped(
        """
        import numpy as np, jax.numpy as jnp
        from ntk_sklearn import NTKRegressor
        from ntk_sklearn.empirical import empirical_ntk
        w = np.broadcast_to(np.float32(1e-3), (50_000, 50_000))
        x = np.random.default_rng(0).normal(size=(4, 50_000)).astype(np.float32)
        apply = lambda p, z: jnp.tanh(z @ p["w"])[:, :1]
        for run in (lambda: NTKRegressor(kernel=(apply, {"w": w})).fit(x, np.arange(4.0)),
                    lambda: empirical_ntk(apply, {"w": jnp.zeros((1, 1))} | {"w": w}, x)):
            try:
                run()
            except MemoryError as err:
                print("REFUSED", err)
        """
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.splitlines()
    assert len(lines) == 2, out.stdout
    assert "2500000000 parameters as JAX arrays in float64 needs about 27.9 GiB" in lines[0]
    assert "RLIMIT_AS" in lines[0]
    assert (
        "Copying the 2500000000 parameters of the model into JAX arrays needs about 9.3"
        in (lines[1])
    )


def test_small_fit_plans_small_tiles(monkeypatch):
    import numpy as np

    from ntk_sklearn import NTKRegressor

    # The tiles were planned at 2 × 256 MiB whatever the size: a 30-sample fit was refused
    # whenever less than half a GiB was free (seen on a loaded machine).
    monkeypatch.setattr(_memory, "available_memory", lambda: 64 * 2**20)
    x = np.random.default_rng(0).normal(size=(30, 4))
    model = NTKRegressor().fit(x, x[:, 0])
    assert model.predict(x[:2]).shape == (2,)
    with pytest.raises(MemoryError, match="kernel tiles 0.50 GiB"):  # large n: full tiles
        NTKRegressor(solver="cg").fit(np.repeat(x, 200, axis=0), np.repeat(x[:, 0], 200))
