"""Speed and memory of the analytic kernels (``fc_kernel``).

Speed: the NNGP+NTK of a depth-3 ReLU network on N rows of dimension 784 (float32), divided by
the time of the Gram matrix ``X @ X.T`` (jit-compiled JAX, same dtype) measured in the same run:
medians of several runs after a warm-up. A ratio is robust to how busy this shared machine is.

Memory: the same kernels for a larger N with a given ``block_size``, run in a fresh process whose
peak resident memory (``ru_maxrss``) is compared with the size of the two output arrays.

    python benchmarks/bench_kernels.py                 # N = 5,000 speed, N = 20,000 memory
    python benchmarks/bench_kernels.py --n 2000 --memory-n 5000   # quicker
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_time  # benchmarks/ is on sys.path when run as a script


def speed(n: int, dim: int, depth: int, repeats: int) -> dict:
    from ntk_sklearn.kernels import fc_kernel

    x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
    gram = jax.jit(lambda a: jnp.matmul(a, a.T, precision=jax.lax.Precision.HIGHEST))
    x_dev = jnp.asarray(x)

    def baseline():
        np.asarray(gram(x_dev))

    def kernel():
        fc_kernel(x, depth=depth, activation="relu", w_std=1.4, b_std=0.1)

    t_gram = median_time(baseline, repeats)
    t_kernel = median_time(kernel, repeats)
    return {
        "n": n,
        "dim": dim,
        "depth": depth,
        "gram_s": t_gram,
        "kernel_s": t_kernel,
        "ratio": t_kernel / t_gram,
    }


_MEMORY_CHILD = """
import resource, sys, time
import numpy as np
from ntk_sklearn.kernels import fc_kernel
n, dim, block = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
x = np.random.default_rng(0).normal(size=(n, dim)).astype(np.float32)
fc_kernel(x[:300], depth=3, block_size=block)  # import and compile first: not part of the peak
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
start = time.perf_counter()
k = fc_kernel(x, depth=3, activation="relu", w_std=1.4, b_std=0.1, block_size=block)
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(before, peak, k.nngp.nbytes + k.ntk.nbytes, elapsed)
"""


def memory(n: int, dim: int, block: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(n), str(dim), str(block)],
        capture_output=True,
        text=True,
        check=True,
    )
    before, peak, output, elapsed = (float(v) for v in out.stdout.split())
    return {
        "n": n,
        "block_size": block,
        "output_gib": output / 2**30,
        "peak_rss_gib": peak / 2**30,
        "rss_before_gib": before / 2**30,
        "peak_over_output": peak / output,
        "growth_over_output": (peak - before) / output,
        "seconds": elapsed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--dim", type=int, default=784)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--memory-n", type=int, default=20000)
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    print(f"devices: {jax.devices()}")
    s = speed(args.n, args.dim, args.depth, args.repeats)
    print(
        f"speed  N={s['n']} d={s['dim']} depth={s['depth']} relu float32: "
        f"kernel {s['kernel_s']:.3f}s, gram {s['gram_s']:.3f}s, ratio {s['ratio']:.2f}"
    )
    results = {"speed": s}
    if args.memory_n:
        m = memory(args.memory_n, args.dim, args.block_size)
        print(
            f"memory N={m['n']} block={m['block_size']}: output {m['output_gib']:.2f} GiB, "
            f"peak RSS {m['peak_rss_gib']:.2f} GiB ({m['peak_over_output']:.2f}x output; "
            f"growth during the call {m['growth_over_output']:.2f}x output), {m['seconds']:.1f}s"
        )
        results["memory"] = m
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
