"""Benchmark ``empirical_ntk``: time per method against the cost of N forward+backward passes.

Model: the built-in MLP with ``depth`` hidden layers of ``width`` units (default: 3 hidden layers
of 1024, ReLU) on ``N`` random inputs of dimension 784, float32. For each method the kernel
``Θ(x, x)`` (``N × N``, outputs averaged) is computed once to warm up (compilation), then timed
``--repeats`` times; the table shows the median, and its ratio to the median time of one
forward+backward pass over the whole batch (``jax.grad`` of the summed outputs, jitted), which
is the cost of ``N`` forward+backward passes.

Usage::

    python benchmarks/bench_empirical.py            # N=1000, d=784, width 1024, depth 3
    python benchmarks/bench_empirical.py --quick    # N=200, width 256
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
from _timing import median_time  # benchmarks/ is on sys.path when run as a script

from ntk_sklearn.empirical import empirical_ntk, estimate_ntk_cost, init_mlp


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="N=200, width=256")
    parser.add_argument("--n", type=int, default=None, help="number of inputs (default 1000)")
    parser.add_argument("--width", type=int, default=None, help="hidden width (default 1024)")
    parser.add_argument("--depth", type=int, default=3, help="hidden layers (default 3)")
    parser.add_argument("--n-features", type=int, default=784)
    parser.add_argument("--n-outputs", type=int, default=1)
    parser.add_argument("--outputs", default="mean", choices=("mean", "sum", "full"))
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=["jacobian", "ntk_vector_products", "auto"])
    args = parser.parse_args(argv)
    n = args.n or (200 if args.quick else 1000)
    width = args.width or (256 if args.quick else 1024)

    key_params, key_x = jax.random.split(jax.random.PRNGKey(0))
    params, apply_fn = init_mlp(
        key_params,
        args.n_features,
        depth=args.depth,
        width=width,
        n_outputs=args.n_outputs,
        dtype=jnp.float32,
    )
    x = np.asarray(jax.random.normal(key_x, (n, args.n_features), jnp.float32))
    n_params = sum(p.size for p in jax.tree_util.tree_leaves(params))

    @jax.jit
    def forward_backward(p, x):
        return jax.grad(lambda q: apply_fn(q, x).sum())(p)

    x_dev = jnp.asarray(x)
    t_fb = median_time(lambda: jax.block_until_ready(forward_backward(params, x_dev)), args.repeats)
    cost = estimate_ntk_cost(apply_fn, params, x, outputs=args.outputs, batch_size=args.batch_size)

    print(
        f"device={jax.devices()[0].platform} N={n} d={args.n_features} depth={args.depth} "
        f"width={width} k={args.n_outputs} P={n_params:,} outputs={args.outputs!r} "
        f"batch_size={args.batch_size}"
    )
    chosen = min(cost, key=lambda m: cost[m]["time"])
    print(f"method='auto' picks {chosen!r} (least estimated FLOPs + 16 x bytes moved)")
    print(f"{'method':<22}{'batch':>6}{'est. Gflop-eq':>15}{'median s':>11}{'/ N fwd+bwd':>13}")
    print(f"{'N fwd+bwd (grad)':<22}{'':>6}{'':>15}{t_fb:>11.4f}{1.0:>13.1f}")
    results = {}
    for method in args.methods:

        def run(method=method):
            return empirical_ntk(
                apply_fn,
                params,
                x,
                method=method,
                outputs=args.outputs,
                batch_size=args.batch_size,
            )

        t = median_time(run, args.repeats)
        results[method] = run()
        info = cost[chosen if method == "auto" else method]
        print(
            f"{method:<22}{info['batch_size']:>6}{info['time'] / 1e9:>15.0f}{t:>11.3f}"
            f"{t / t_fb:>13.0f}"
        )
    ref = next(iter(results.values()))
    for method, kernel in results.items():
        err = np.abs(kernel - ref).max() / np.abs(ref).max()
        print(f"max |Θ_{method} - Θ_{next(iter(results))}| / max |Θ| = {err:.1e}")


if __name__ == "__main__":
    main()
