"""
Gradient descent of a wide network against NTK theory
=====================================================

A wide network trained by gradient descent, against the NTK theory of its training dynamics.
A finite network (built-in MLP: 2 hidden layers of 1024 units, erf, NTK parameterization) is
trained by full-batch gradient descent on ``0.5 · mean((f − y)²)`` for a small 1-D regression.
The theory (Jacot et al. 2018; Lee et al. 2019) says that, for wide networks, the outputs
evolve like those of the linearised network, with the (analytic) NTK ``Θ``:

    f_t(x) = f_0(x) + Θ(x, X) Θ⁻¹ (I − exp(−η t Θ / y.size)) (y − f_0(X)),

whose average over initialisations (``f_0`` averaged out) is what
``NTKRegressor(t=t).predict`` returns. To compare one network with that mean, we train the
centred network ``g = f − f_0`` (equivalently: ``f`` on the targets ``y + f_0(X)``, then
subtract ``f_0``), whose initial output is zero. Curves: the network, its linearisation
around the initial weights (``ntk_sklearn.training.linearize``), and
``NTKRegressor.predict_trajectory`` at the same times ``t`` (gradient-descent steps). In the
first few steps the difference from the theory is mostly the discretisation of time (gradient
descent takes steps of ``η``, the theory is gradient flow); later it is the finite width
(the empirical NTK differs from the analytic one by ``O(width^(-1/2))``).

Run ``python examples/plot_dynamics_vs_theory.py [output.png]``. Measured: 72 s wall on 2 CPU
cores shared with other jobs (``time python examples/plot_dynamics_vs_theory.py``); less on
an idle machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ntk_sklearn import NTKRegressor  # noqa: E402
from ntk_sklearn.empirical import init_mlp  # noqa: E402
from ntk_sklearn.kernels import fc_kernel  # noqa: E402
from ntk_sklearn.training import linearize, train_gd  # noqa: E402

ARCH = {"depth": 2, "activation": "erf", "w_std": 1.5, "b_std": 0.5}
WIDTH = 1024
CHECKPOINTS = np.unique(np.round(np.logspace(0, 3, 16)).astype(int))  # steps 1 … 1000
SHOWN = [6, 40, 1000]  # times drawn in the function panels (members of CHECKPOINTS)


def trajectory(apply_fn, params, x, targets, x_test, learning_rate):
    """Test outputs at every checkpoint, training from one checkpoint to the next."""
    outputs, done = [], 0
    for step in CHECKPOINTS:
        traj = train_gd(
            apply_fn,
            params,
            x,
            targets,
            learning_rate=learning_rate,
            n_steps=int(step - done),
            x_test=x_test,
        )
        params, done = traj.final_params, step
        outputs.append(traj.test_outputs[-1][:, 0])
    return np.array(outputs)


def main(out: Path) -> None:
    start = time.perf_counter()
    x = np.linspace(-1.0, 1.0, 12).reshape(-1, 1)
    y = np.sin(3.0 * x[:, 0]) + 0.5 * x[:, 0]
    x_test = np.linspace(-1.5, 1.5, 121).reshape(-1, 1)

    # A small step, η · λ_max(Θ) / y.size = 1/4 (analytic NTK of the training inputs), so that
    # gradient descent stays close to the gradient flow of the theory: per step the top mode
    # decays by 1 − 1/4 instead of exp(−1/4).
    lam_max = np.linalg.eigvalsh(fc_kernel(x, get="ntk", **ARCH)).max()
    learning_rate = 0.25 * y.size / lam_max

    params0, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, width=WIDTH, **ARCH)
    f0_train = np.asarray(apply_fn(params0, x))[:, 0]
    f0_test = np.asarray(apply_fn(params0, x_test))[:, 0]
    shifted = (y + f0_train)[:, None]  # training f on y + f_0(X) trains g = f − f_0 on y
    net = trajectory(apply_fn, params0, x, shifted, x_test, learning_rate) - f0_test
    lin = trajectory(linearize(apply_fn, params0), params0, x, shifted, x_test, learning_rate)
    lin -= f0_test

    theory = NTKRegressor(**ARCH, alpha=0.0, learning_rate=learning_rate, normalize_y=False).fit(
        x, y
    )
    ntk = theory.predict_trajectory(x_test, CHECKPOINTS.astype(float))

    scale = np.sqrt(np.mean(y**2))
    dev_theory = np.sqrt(np.mean((net - ntk) ** 2, axis=1)) / scale
    dev_lin = np.sqrt(np.mean((net - lin) ** 2, axis=1)) / scale
    print(f"width {WIDTH}, learning rate {learning_rate:.3f}, {CHECKPOINTS[-1]} steps")
    print(
        f"{'step':>6} {'rms(net − NTKRegressor)/rms(y)':>31} {'rms(net − linearised)/rms(y)':>30}"
    )
    for step, a, b in zip(CHECKPOINTS, dev_theory, dev_lin, strict=True):
        print(f"{step:>6} {a:>31.4f} {b:>30.4f}")

    fig, axes = plt.subplots(1, len(SHOWN) + 1, figsize=(4 * (len(SHOWN) + 1), 3.6))
    for ax, step in zip(axes, SHOWN, strict=False):
        i = int(np.searchsorted(CHECKPOINTS, step))
        ax.plot(x_test[:, 0], net[i], label="network (centred)", lw=2)
        ax.plot(x_test[:, 0], lin[i], ":", label="linearised network", lw=2)
        ax.plot(x_test[:, 0], ntk[i], "--", label="NTKRegressor", color="k")
        ax.scatter(x[:, 0], y, color="C3", s=15, zorder=3, label="training data")
        ax.set_title(f"t = {CHECKPOINTS[i]} steps")
        ax.set_xlabel("x")
    axes[0].legend(fontsize=8)
    ax = axes[-1]
    ax.plot(CHECKPOINTS, dev_theory, "o-", label="network vs NTKRegressor")
    ax.plot(CHECKPOINTS, dev_lin, "s-", label="network vs linearised")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient-descent step t")
    ax.set_ylabel("rms difference on test grid / rms(y)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"saved {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    default = Path(__file__).with_suffix(".png")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
