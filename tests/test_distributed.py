"""Sharded fits on JAX's engine (2 devices, 2 processes), progress output and the memory plan.

Each sharded run is a fresh Python process (the device count is fixed at JAX's start-up); its
predictions are compared with the same estimator fitted here on one device, by a direct solver.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from sklearn.datasets import load_digits

from ntk_sklearn import NNGPClassifier, NTKClassifier, NTKRegressor, _memory, _progress
from ntk_sklearn._progress import Progress

# One fit script for both runs: sharded CG (and Lanczos) fits on the digits, 301 training rows
# (odd: padded to the device count), predictions saved to the .npz named by argv[1].
_FIT = textwrap.dedent(
    """
    import sys
    import numpy as np
    import jax
    from sklearn.datasets import load_digits
    from ntk_sklearn import NTKClassifier, NTKRegressor

    X, y = load_digits(return_X_y=True)
    X, X_test = X[:301] / 16, X[301:351] / 16
    w = np.linspace(0.5, 2.0, 301)
    reg = NTKRegressor(solver="cg", tol=1e-10, depth=2).fit(X, y[:301].astype(float), w)
    clf = NTKClassifier(solver="cg", tol=1e-10, t=5.0).fit(X, y[:301])
    mean, std = reg.predict(X_test, return_std=True)
    np.savez(
        sys.argv[1],
        mean=mean,
        std=std,
        dec=clf.decision_function(X_test),
        devices=jax.device_count(),
        processes=jax.process_count(),
        shards=len(reg.train_kernel_.sharding.device_set),
    )
    """
)

_DISTRIBUTED = textwrap.dedent(
    """
    import sys
    import jax

    process, port = int(sys.argv[2]), int(sys.argv[3])
    jax.distributed.initialize(
        coordinator_address=f"localhost:{port}",
        num_processes=2,
        process_id=process,
        initialization_timeout=120,
    )
    """
)


@pytest.fixture(scope="module")
def expected():
    """The same fits on one device with direct solvers (Cholesky and eigendecomposition)."""
    X, y = load_digits(return_X_y=True)
    X, X_test = X[:301] / 16, X[301:351] / 16
    w = np.linspace(0.5, 2.0, 301)
    reg = NTKRegressor(solver="cholesky", depth=2).fit(X, y[:301].astype(float), w)
    clf = NTKClassifier(solver="eigh", t=5.0).fit(X, y[:301])
    mean, std = reg.predict(X_test, return_std=True)
    return {"mean": mean, "std": std, "dec": clf.decision_function(X_test)}


def _env(**extra) -> dict:
    env = dict(os.environ, JAX_PLATFORMS="cpu", **extra)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


def _check(result, expected, devices: int, processes: int) -> None:
    assert int(result["devices"]) == devices
    assert int(result["processes"]) == processes
    assert int(result["shards"]) == devices  # the training kernel lives on every device
    for name in ("mean", "std", "dec"):
        scale = np.abs(expected[name]).max()
        np.testing.assert_allclose(result[name], expected[name], rtol=0, atol=1e-8 * scale)


@pytest.mark.slow
def test_two_devices_equal_one(tmp_path, expected):
    script = tmp_path / "fit.py"
    script.write_text(_FIT)
    out = tmp_path / "two_devices.npz"
    env = _env(XLA_FLAGS="--xla_force_host_platform_device_count=2")
    run = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    _check(np.load(out), expected, devices=2, processes=1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_equal_one(tmp_path, expected):
    """``jax.distributed`` on localhost, CPU collectives: each process computes its own rows."""
    script = tmp_path / "fit.py"
    script.write_text(_DISTRIBUTED + _FIT)
    port = _free_port()
    outs = [tmp_path / f"process{i}.npz" for i in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(outs[i]), str(i), str(port)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        logs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, logs, strict=True):
        assert p.returncode == 0, err[-3000:]
    for out in outs:
        _check(np.load(out), expected, devices=2, processes=2)


# -- verbose ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_silent_by_default(capsys):
    X, y = load_digits(return_X_y=True)
    NTKClassifier(solver="cg").fit(X[:200] / 16, y[:200]).predict(X[:10] / 16)
    assert capsys.readouterr().out == ""


@pytest.mark.slow
def test_verbose_reports_memory_tiles_and_cg(capsys):
    X, y = load_digits(return_X_y=True)
    model = NTKClassifier(solver="cg", verbose=2, block_size=64).fit(X[:300] / 16, y[:300])
    out = capsys.readouterr().out
    assert "memory plan of the fit on 300 samples: training kernel" in out
    assert "GiB free" in out or "available: unknown" in out
    # 300 rows in 5 blocks of 60: the 15 tiles of one triangle, each reported, then the end.
    tiles = [line for line in out.splitlines() if "NTK 300x300:" in line]
    assert len(tiles) == 15 and tiles[-1].startswith("[ntk_sklearn] NTK 300x300: 15/15 tiles")
    assert "about" in tiles[0] and "left" in tiles[0]
    cg = [line for line in out.splitlines() if line.startswith("[ntk_sklearn] CG")]
    assert len(cg) == model.n_iter_ + 1  # one per iteration, then the summary
    residuals = [float(line.split("relative residual ")[1].split()[0].rstrip(",)")) for line in cg]
    assert residuals[-1] <= 1e-6 < residuals[0]
    assert f"CG: {model.n_iter_} iterations" in cg[-1]


def test_progress_lines_on_a_fake_clock(capsys, monkeypatch):
    """The lines a Progress prints, with time from a fake clock (no real timing involved)."""
    now = [100.0]
    monkeypatch.setattr(_progress.time, "perf_counter", lambda: now[0])
    progress = Progress("work", total=4, verbose=1)
    now[0] += 5.0
    progress.step()  # verbose=1: nothing before INTERVAL seconds
    assert capsys.readouterr().out == ""
    now[0] += _progress.INTERVAL  # 15 s for 2 of 4 steps: about 15 s left
    progress.step()
    assert capsys.readouterr().out == (
        "[ntk_sklearn] work: 2/4 tiles (50%), 15 s elapsed, about 15 s left\n"
    )
    now[0] += 170.0
    progress.step(2)
    assert capsys.readouterr().out == "[ntk_sklearn] work: 4/4 tiles (100%) in 3 min 05 s\n"


# -- the memory plan ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "solver", "parts"),
    [
        (NTKRegressor, "cholesky", "training kernels"),  # NNGP and NTK
        (NNGPClassifier, "eigh", "training kernel 0"),
        (NTKClassifier, "cg", "training kernel 0"),
    ],
)
def test_memory_plan_refuses_before_allocating(monkeypatch, cls, solver, parts):
    X, y = load_digits(return_X_y=True)
    calls = []
    monkeypatch.setattr(_memory, "available_memory", lambda: 2**20)
    monkeypatch.setattr(cls, "_kernels", lambda *a, **k: calls.append(a))
    with pytest.raises(MemoryError, match=f"Fitting on 500 samples \\({parts}.*{solver} solver"):
        cls(solver=solver).fit(X[:500], y[:500])
    assert calls == []  # nothing was computed
