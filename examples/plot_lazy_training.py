"""
Lazy training: wide networks barely move
========================================

Wide networks fit the data while their weights and their NTK barely move.
Networks of widths 10, 100 and 1000 (built-in MLP, 2 hidden layers, erf, NTK parameterization)
are trained by full-batch gradient descent on a small 1-D regression, with the same learning
rate (in NTK parameterization the kernel, hence the speed of training, does not depend on the
width). During training we record the loss, the relative weight change
``‖w_t − w_0‖ / ‖w_0‖`` and the relative change of the empirical NTK on the training inputs
``‖Θ_t − Θ_0‖_F / ‖Θ_0‖_F``; both shrink like ``width^(-1/2)`` (Jacot et al. 2018; Lee et al.
2019), while the loss curves nearly coincide. The lazy-training criterion κ of Chizat, Oyallon &
Bach (2019) at initialisation is printed for each width.

Run ``python examples/plot_lazy_training.py [output.png]``. Measured: 63 s wall on 2 CPU cores
shared with other jobs (``time python examples/plot_lazy_training.py``); less on an idle
machine.
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
from jax.flatten_util import ravel_pytree  # noqa: E402

from ntk_sklearn.empirical import empirical_ntk, init_mlp  # noqa: E402
from ntk_sklearn.training import lazy_training_kappa, train_gd  # noqa: E402

WIDTHS = [10, 100, 1000]
ARCH = {"depth": 2, "activation": "erf", "w_std": 1.5, "b_std": 0.5}
LEARNING_RATE, N_STEPS = 0.2, 1000
#: Log-spaced checkpoints: most of the motion happens in the first few dozen steps.
CHECKPOINTS = np.unique(np.round(np.logspace(0, np.log10(N_STEPS), 30)).astype(int))


def main(out: Path) -> None:
    start = time.perf_counter()
    x = np.linspace(-1.0, 1.0, 16).reshape(-1, 1)
    y = np.sin(3.0 * x) + 0.5 * x

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    print(
        f"{'width':>6} {'params':>9} {'kappa(w0)':>10} {'final loss':>11} "
        f"{'weight change':>14} {'NTK change':>11}"
    )
    for width in WIDTHS:
        params0, apply_fn = init_mlp(jax.random.PRNGKey(0), 1, width=width, **ARCH)
        w0 = ravel_pytree(params0)[0]
        ntk0 = empirical_ntk(apply_fn, params0, x)
        params, done = params0, 0
        loss, weight_change, ntk_change = [], [], []
        for step in CHECKPOINTS:  # train_gd from one checkpoint to the next
            traj = train_gd(
                apply_fn, params, x, y, learning_rate=LEARNING_RATE, n_steps=int(step - done)
            )
            params, done = traj.final_params, step
            loss.append(traj.loss[-1])
            weight_change.append(
                float(np.linalg.norm(ravel_pytree(params)[0] - w0) / np.linalg.norm(w0))
            )
            ntk = empirical_ntk(apply_fn, params, x)
            ntk_change.append(float(np.linalg.norm(ntk - ntk0) / np.linalg.norm(ntk0)))
        kappa = lazy_training_kappa(apply_fn, params0, x, y)
        print(
            f"{width:>6} {w0.size:>9,} {kappa:>10.3f} {loss[-1]:>11.2e} "
            f"{weight_change[-1]:>14.2e} {ntk_change[-1]:>11.2e}"
        )
        label = f"width {width}"
        axes[0].plot(CHECKPOINTS, loss, label=label)
        axes[1].plot(CHECKPOINTS, weight_change, label=label)
        axes[2].plot(CHECKPOINTS, ntk_change, label=label)

    axes[0].set_yscale("log")
    axes[0].set_title("training loss  0.5·mean((f − y)²)")
    axes[1].set_yscale("log")
    axes[1].set_title(r"relative weight change $\|w_t - w_0\| / \|w_0\|$")
    axes[2].set_yscale("log")
    axes[2].set_title(r"relative NTK change $\|\Theta_t - \Theta_0\|_F / \|\Theta_0\|_F$")
    for ax in axes:
        ax.set_xscale("log")
        ax.set_xlabel("gradient-descent step")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"saved {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    default = Path(__file__).with_suffix(".png")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
