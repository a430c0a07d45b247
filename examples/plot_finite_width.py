"""
Finite-width fluctuations of the NTK
====================================

How wide is wide enough? At initialisation a width-``n`` network's empirical NTK ``Θ̂`` is random
and its typical relative deviation from the infinite-width NTK ``Θ`` grows like
``sqrt(depth / n)`` (Hanin & Nica 2019; Roberts, Yaida & Hanin 2022).
:func:`~ntk_sklearn.finite_width.finite_width_statistics` predicts it to order 1/n.

Left: the relative standard deviation ``sqrt(Σ_ab Var Θ̂_ab) / ‖Θ‖_F`` on three inputs for ReLU
networks (He initialisation, ``w_std = √2``) of depths 1-8, predicted (lines, widths 16-2048) and
measured over random networks of the built-in MLP (points, widths 16-256, 40 networks each;
error bars: the standard error of the estimate). Right: the width at which the predicted typical
deviation ``sqrt(std² + bias²)`` falls to 5 % of the limit, per depth: it grows linearly with
depth. At width 16 and depth 8 the networks are far from the 1/n regime and the measured
spread exceeds the first-order prediction.

Run ``python examples/plot_finite_width.py [output.png]``: 55 s of CPU time measured (with
Monte Carlo up to width 1024, since dropped), several minutes of wall time on a shared machine.
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

from ntk_sklearn.empirical import empirical_ntk, init_mlp  # noqa: E402
from ntk_sklearn.finite_width import finite_width_statistics  # noqa: E402

DEPTHS = [1, 2, 4, 8]
WIDTHS = 2 ** np.arange(4, 12)  # 16 ... 2048: predictions
MC_WIDTHS = [16, 64, 256]  # Monte Carlo (cost grows as depth · width²)
N_NETS = 40
ARCH = {"activation": "relu", "w_std": np.sqrt(2.0), "b_std": 0.0}
TARGET = 0.05


def measured_std(x, depth, width, limit):
    """sqrt(mean ‖Θ̂ − mean Θ̂‖²_F) / ‖Θ‖_F over N_NETS random networks, and its standard error."""
    ntks = []
    for seed in range(N_NETS):
        params, apply_fn = init_mlp(
            jax.random.PRNGKey(seed), x.shape[1], depth=depth, width=width, **ARCH
        )
        ntks.append(empirical_ntk(apply_fn, params, x))
    ntks = np.asarray(ntks, dtype=np.float64)
    sq = ((ntks - ntks.mean(0)) ** 2).sum(axis=(1, 2)) * N_NETS / (N_NETS - 1)
    norm = np.linalg.norm(limit)
    value = np.sqrt(sq.mean()) / norm
    return value, 0.5 * sq.std() / np.sqrt(N_NETS) / np.sqrt(sq.mean()) / norm


def main(out: Path) -> None:
    start = time.perf_counter()
    x = np.random.default_rng(0).normal(size=(3, 8))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    needed = []
    print(f"{'depth':>5} {'width':>6} {'predicted':>10} {'measured':>16}")
    for depth, color in zip(DEPTHS, plt.cm.viridis(np.linspace(0, 0.9, len(DEPTHS))), strict=True):
        # The 1/n statistics are exactly linear in 1/n: one call at n = 1 scales to any width.
        unit = finite_width_statistics(x, depth=depth, width=1, **ARCH)
        norm = np.linalg.norm(unit.ntk)
        std1 = np.sqrt(unit.ntk_var.sum()) / norm
        bias1 = np.linalg.norm(unit.ntk_mean - unit.ntk) / norm
        left.plot(WIDTHS, std1 / np.sqrt(WIDTHS), color=color, label=f"depth {depth}")
        # typical deviation sqrt(std1²/n + bias1²/n²) = TARGET, solved for n
        a = TARGET**2
        needed.append((std1**2 + np.sqrt(std1**4 + 4 * a * bias1**2)) / (2 * a))
        for width in MC_WIDTHS:
            value, err = measured_std(x, depth, width, unit.ntk)
            left.errorbar(width, value, yerr=err, fmt="o", color=color, ms=4)
            print(f"{depth:>5} {width:>6} {std1 / np.sqrt(width):>10.4f} {value:>9.4f} ± {err:.4f}")
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("width n")
    left.set_ylabel(r"relative std of the NTK  $\sqrt{\sum \mathrm{Var}\,\hat\Theta}/\|\Theta\|_F$")
    left.set_title("predicted (lines) vs random networks (points)")
    left.legend()
    right.plot(DEPTHS, needed, "o-")
    right.set_xlabel("depth")
    right.set_ylabel("width")
    right.set_title(f"width for the NTK within {TARGET:.0%} of the limit (predicted)")
    for depth, n in zip(DEPTHS, needed, strict=True):
        print(f"depth {depth}: width {n:,.0f} for a {TARGET:.0%} typical deviation")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"saved {out} ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    default = Path(__file__).with_suffix(".png")
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else default)
