"""Compile + run time of very deep stacks against their depth.

Each depth runs in a fresh process (nothing compiled before it) with a time limit: the stack
``[Conv((3, 3), w_std=1.4, b_std=0.1), Relu()] * (layers // 2) + [Flatten(), Dense(1.4, 0.1)]``
on 4 x 4 pairs of 2 x 2 images (``--images``), or ``[Dense(1.4, 0.1), Relu()] * (layers // 2)
+ [Dense(1.4, 0.1)]`` on 4 x 4 pairs of 8-feature vectors (``--vectors``), float64. A repeated
group of layers is one compiled loop body whose ``w_std``/``b_std`` are stacked arrays, so the
compile time should not grow with the depth; what grows is the Python work per layer (building,
checking) and the loop's run time.

    python benchmarks/bench_depth.py                     # 1,000 to 20,000 layers
    python benchmarks/bench_depth.py --layers 1000 100000 --timeout 300
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = """
import json, sys, time
t0 = time.perf_counter()
import jax
import numpy as np
from ntk_sklearn.kernels import Conv, Dense, Flatten, Relu, serial
layers, vectors = int(sys.argv[1]), sys.argv[2] == "vectors"
rng = np.random.default_rng(0)
with jax.enable_x64(True):
    if vectors:
        stack = serial(*[Dense(1.4, 0.1), Relu()] * (layers // 2), Dense(1.4, 0.1))
        x = rng.normal(size=(4, 8))
    else:
        group = [Conv((3, 3), w_std=1.4, b_std=0.1), Relu()]
        stack = serial(*group * (layers // 2), Flatten(), Dense(1.4, 0.1))
        x = rng.normal(size=(4, 2, 2, 1))
    t1 = time.perf_counter()
    k = stack(x)
    t2 = time.perf_counter()
    stack(x)
    t3 = time.perf_counter()
print(json.dumps({"build_s": t1 - t0, "first_call_s": t2 - t1, "second_call_s": t3 - t2,
                  "finite": bool(np.isfinite(k.ntk).all())}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1000, 4000, 16000, 20000])
    parser.add_argument("--vectors", action="store_true", help="a dense stack on vectors")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per depth")
    args = parser.parse_args()
    kind = "vectors" if args.vectors else "images"
    print(f"{kind}; load average {os.getloadavg()[0]:.2f} at start")
    for layers in args.layers:
        start = time.perf_counter()
        try:
            done = subprocess.run(
                [sys.executable, "-c", CHILD, str(layers), kind],
                capture_output=True,
                text=True,
                timeout=args.timeout,
            )
        except subprocess.TimeoutExpired:
            print(f"{layers:>8} layers: no answer in {args.timeout:.0f} s")
            continue
        wall = time.perf_counter() - start
        if done.returncode != 0:
            print(f"{layers:>8} layers: exit {done.returncode}: {done.stderr.strip()[-300:]}")
            continue
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{layers:>8} layers: first call (compile + run) {r['first_call_s']:7.2f} s, "
            f"second call {r['second_call_s']:6.3f} s, process {wall:6.1f} s, "
            f"finite {r['finite']}, load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
