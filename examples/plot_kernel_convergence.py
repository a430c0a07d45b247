"""
Empirical NTK converges to the analytic NTK
===========================================

The empirical NTK of finite networks converges to the analytic (infinite-width) NTK.
For widths 16 → 4096, draw random networks of the built-in MLP (2 hidden layers, ReLU, NTK
parameterization), compute each one's empirical NTK on a few inputs and its relative Frobenius
error against ``fc_kernel``. The error of one network fluctuates as ``width^(-1/2)`` (Jacot et
al. 2018; Hanin & Nica 2020): the log-log slope fitted below should be close to -1/2.

Run ``python examples/plot_kernel_convergence.py [output.png]``; the figure is saved next to
this file unless a path is given. Measured: 45 s wall on 2 CPU cores shared with other jobs
(``time python examples/plot_kernel_convergence.py``); less on an idle machine.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ntk_sklearn.empirical import monte_carlo_kernel  # noqa: E402
from ntk_sklearn.kernels import fc_kernel  # noqa: E402

DEPTH, ACTIVATION, W_STD, B_STD = 2, "relu", 1.4, 0.1
WIDTHS = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
#: Independent networks per width: more where they are cheap, at least 3.
N_SEEDS = {w: max(3, min(16, 8192 // w)) for w in WIDTHS}


def main(out: Path) -> None:
    start = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(8, 5))
    arch = {"depth": DEPTH, "activation": ACTIVATION, "w_std": W_STD, "b_std": B_STD}
    exact = fc_kernel(x, get="ntk", **arch)

    errors = {}
    for width in WIDTHS:
        errors[width] = np.array(
            [
                np.linalg.norm(
                    monte_carlo_kernel(
                        x, width=width, n_samples=1, random_state=seed, get="ntk", **arch
                    )
                    - exact
                )
                / np.linalg.norm(exact)
                for seed in range(N_SEEDS[width])
            ]
        )
    rms = np.array([np.sqrt(np.mean(errors[w] ** 2)) for w in WIDTHS])  # rms over networks
    slope, intercept = np.polyfit(np.log(WIDTHS), np.log(rms), 1)

    print(f"{'width':>6}  {'networks':>8}  {'rms relative error':>18}")
    for width, err in zip(WIDTHS, rms, strict=True):
        print(f"{width:>6}  {N_SEEDS[width]:>8}  {err:>18.4f}")
    print(f"fitted log-log slope: {slope:.3f} (theory: -0.5)")

    fig, ax = plt.subplots(figsize=(5.5, 4))
    for i, width in enumerate(WIDTHS):
        ax.scatter(
            [width] * len(errors[width]),
            errors[width],
            s=10,
            color="0.6",
            label="one network" if i == 0 else None,
        )
    ax.plot(WIDTHS, rms, "o-", label="rms over networks")
    fit = np.exp(intercept) * np.asarray(WIDTHS, float) ** slope
    ax.plot(WIDTHS, fit, "--", label=f"fit: slope {slope:.2f}")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel(r"$\|\hat\Theta - \Theta_\infty\|_F \,/\, \|\Theta_\infty\|_F$")
    ax.set_title(f"Empirical NTK → analytic NTK ({DEPTH} hidden layers, {ACTIVATION})")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    print(f"saved {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    default = Path(__file__).with_suffix(".png")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
