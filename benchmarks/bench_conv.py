"""Speed of the convolutional kernels (``serial`` stacks of ``Conv``/``Relu``) on real CIFAR images.

Main number: the NNGP + NTK of the 5-layer Flatten CNN
``[Conv((3, 3), SAME, w_std=√2, b_std=0.1), Relu()] * 5 + [Flatten(), Dense(√2, 0.1)]`` on the
shared CIFAR subset: train x train (1,000 images, ``x2=None``, one triangle) plus test x train
(834 x 1,000), as pairs/s and seconds. Issue target: under 10 s on 2 CPU cores (>= 20x faster
than neural-tangents' ~210 s).

The same run measures what this machine can do right now, so that busy cores can be told apart
from a slow kernel:

* ``ops/pair``: the elementwise operations of the stack per row pair, counted on its jaxpr
  (every arithmetic op, compare and select on one element counts 1, a dot product of length
  ``k`` counts ``2k``; scans count their length times; data movement counts 0);
* ``eltwise``: the rate of a fused elementwise loop (a degree-16 Horner polynomial, 32 ops per
  element) over one tile-sized array, and ``matmul``: a float32 matrix product's GFLOP/s;
* the kernel's op rate (``ops/pair x pairs/s``) as a fraction of both.

Then: a sweep of ``block_size`` (the default sizes tiles by memory) on a train x train subset;
an ablation of one tile (NNGP only; ``Relu`` replaced by ``Identity``; ``Conv`` only) showing
where the time goes; and a ``GlobalAvgPool`` stack ``[Conv, Relu] * 2 + [GlobalAvgPool, Dense]``
(all pixel pairs, ``(H·W)²`` covariances per pair) on 16 x 16 pairs of 32x32 images and 40 x 40
pairs of 16x16 (2x2-average-pooled) images (``--pool-n``); and the 5-layer CNN read out by local
average pooling ``AvgPool((w, w), strides=(1, 1))`` then ``Flatten`` (w = 2, 3: the pixel pairs
up to ``w − 1`` apart, a band of ``(2w − 1)²`` offsets) on ``--local-n`` x ``--local-n`` pairs,
as a ratio to the Flatten CNN's time on the same pairs in the same run; and the Flatten CNN at
depths 1, 2, 3 and 5 on the same pairs (two repeated layers already run as a loop).

The machine is shared: every measurement runs ``--repeats`` times (best kept) and is printed
with the 1-minute load average (``os.getloadavg``) next to it. Compilation is timed separately
(the first call on one block of rows, minus a second call).

    python benchmarks/bench_conv.py                # ~1.3 M pairs: minutes on a busy machine
    python benchmarks/bench_conv.py --quick        # subset sizes / 10, for checking
    python benchmarks/bench_conv.py --float64 --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ntk_sklearn.architectures import make_stack
from ntk_sklearn.kernels import (
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Identity,
    Relu,
    Serial,
    kernel_matrices,
    serial,
)

ROOT2 = math.sqrt(2.0)

#: Primitives counted as one operation per output element.
_ELEMENTWISE = {
    "abs",
    "add",
    "and",
    "atan2",
    "acos",
    "asin",
    "atan",
    "ceil",
    "clamp",
    "cos",
    "div",
    "eq",
    "exp",
    "expm1",
    "floor",
    "ge",
    "gt",
    "integer_pow",
    "le",
    "log",
    "log1p",
    "lt",
    "max",
    "min",
    "mul",
    "ne",
    "neg",
    "not",
    "or",
    "pow",
    "rem",
    "round",
    "rsqrt",
    "select_n",
    "sign",
    "sin",
    "sqrt",
    "square",
    "sub",
    "tan",
    "tanh",
}


# -- data and stacks -------------------------------------------------------------------------


def shared_dir() -> Path:
    """``$NTK_SKLEARN_SHARED``, else ``<project root>/../shared``."""
    env = os.environ.get("NTK_SKLEARN_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared"


def load_cifar(dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Train (1,000) and test (834) images, standardised per channel with the train statistics."""
    path = shared_dir() / "data" / "cifar100-10class-2k.npz"
    with np.load(path) as data:
        images, is_test = data["images"].astype(np.float64), data["is_test"].astype(bool)
    train, test = images[~is_test], images[is_test]
    mean, std = train.mean(axis=(0, 1, 2)), train.std(axis=(0, 1, 2))
    return ((train - mean) / std).astype(dtype), ((test - mean) / std).astype(dtype)


def avg_pool_2x2(x: np.ndarray) -> np.ndarray:
    """Images ``(n, H, W, C)`` to ``(n, H/2, W/2, C)`` by 2x2 means."""
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


def conv() -> Conv:
    return Conv((3, 3), padding="SAME", w_std=ROOT2, b_std=0.1)


def flatten_cnn(activation: Callable = Relu, depth: int = 5) -> Serial:
    """``[Conv, activation] * depth + [Flatten, Dense]`` (the issue's 5-layer CNN)."""
    return serial(*([conv(), activation()] * depth), Flatten(), Dense(ROOT2, 0.1))


def conv_only_cnn(depth: int = 5) -> Serial:
    return serial(*([conv()] * depth), Flatten(), Dense(ROOT2, 0.1))


def local_cnn(window: int, depth: int = 5) -> Serial:
    """``[Conv, Relu] * depth + [AvgPool((w, w), strides=(1, 1)), Flatten, Dense]``."""
    return make_stack(
        "conv",
        depth=depth,
        w_std=ROOT2,
        b_std=0.1,
        image_shape=(32, 32, 3),
        pooling=f"local{window}",
    )


def pool_cnn() -> Serial:
    """``[Conv, Relu] * 2 + [GlobalAvgPool, Dense]`` (carries all pixel pairs)."""
    return serial(*([conv(), Relu()] * 2), GlobalAvgPool(), Dense(ROOT2, 0.1))


# -- measuring -------------------------------------------------------------------------------


def load() -> float:
    return os.getloadavg()[0]


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    """Seconds of one ``fn()`` call and the load average at its end."""
    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start, load()


def best_of(fn: Callable[[], object], repeats: int) -> dict:
    """Best (shortest) of ``repeats`` calls, with every time and its load average."""
    runs = [timed(fn) for _ in range(repeats)]
    best = min(runs)
    return {"seconds": best[0], "load": best[1], "all": runs}


def count_ops(jaxpr) -> float:
    """Elementwise operations of a jaxpr (see the module docstring), scans unrolled."""
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        inner = [
            getattr(v, "jaxpr", v)
            for v in eqn.params.values()
            if hasattr(v, "eqns") or hasattr(getattr(v, "jaxpr", None), "eqns")
        ]
        if name == "scan":
            total += eqn.params["length"] * count_ops(eqn.params["jaxpr"].jaxpr)
        elif inner:
            total += sum(count_ops(j) for j in inner)
        elif name in _ELEMENTWISE:
            total += math.prod(eqn.outvars[0].aval.shape)
        elif name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            k = math.prod(eqn.invars[0].aval.shape[d] for d in contract)
            total += 2.0 * k * math.prod(eqn.outvars[0].aval.shape)
        elif name.startswith("reduce_") or name == "reduce":
            total += math.prod(eqn.invars[0].aval.shape)
    return total


def ops_per_pair(stack: Serial, row_shape: tuple[int, ...], dtype, block: int = 16) -> float:
    """Elementwise operations per row pair of the NNGP + NTK of ``stack`` (one ``block``² tile)."""
    spec = jax.ShapeDtypeStruct((block, *row_shape), dtype)
    closed = jax.make_jaxpr(lambda a, b: kernel_matrices(stack, a, b))(spec, spec)
    return count_ops(closed.jaxpr) / block**2


def baselines(tile_elements: int, dtype, repeats: int) -> dict:
    """Elementwise op rate (fused Horner loop) and matmul FLOP rate of this machine, now."""
    x = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.0, tile_elements).astype(dtype))

    @jax.jit
    def horner(v):
        acc = jnp.ones_like(v)
        for _ in range(16):  # 16 multiply-adds: 32 operations per element
            acc = acc * v + 0.5
        return acc

    n = 2048
    m = jnp.asarray(np.random.default_rng(1).normal(size=(n, n)).astype(dtype))
    matmul = jax.jit(lambda a: jnp.matmul(a, a, precision=jax.lax.Precision.HIGHEST))
    horner(x).block_until_ready()
    matmul(m).block_until_ready()
    eltwise = best_of(lambda: horner(x), max(repeats, 3))
    mm = best_of(lambda: matmul(m), max(repeats, 3))
    return {
        "eltwise_gops": 32 * tile_elements / eltwise["seconds"] / 1e9,
        "eltwise_load": eltwise["load"],
        "matmul_gflops": 2 * n**3 / mm["seconds"] / 1e9,
        "matmul_load": mm["load"],
    }


def compile_time(stack: Serial, x: np.ndarray, block: int | None) -> dict:
    """First call on one block of rows (compiles the tile) minus a second call."""
    rows = x[: stack._block_size(x.shape[1:], x.dtype, block, True)]
    first, _ = timed(lambda: stack(rows, block_size=block))
    second, lo = timed(lambda: stack(rows, block_size=block))
    return {"rows": len(rows), "first_s": first, "compile_s": max(first - second, 0.0), "load": lo}


def main_kernel(stack, train, test, block, repeats) -> dict:
    """Train x train (triangle) plus test x train, best of ``repeats``."""
    n_pairs = len(train) * (len(train) + 1) // 2 + len(test) * len(train)
    comp = compile_time(stack, train, block)

    runs = []
    for _ in range(repeats):
        t_train, _ = timed(lambda: stack(train, block_size=block))
        t_test, lo = timed(lambda: stack(test, train, block_size=block))
        runs.append((t_train + t_test, t_train, t_test, lo))
    total, t_train, t_test, lo = min(runs)
    return {
        "block_size": block,
        "tile": stack._block_size(train.shape[1:], train.dtype, block, True),
        "pairs": n_pairs,
        "seconds": total,
        "train_s": t_train,
        "test_s": t_test,
        "pairs_per_s": n_pairs / total,
        "load": lo,
        "all": runs,
        **{f"compile_{k}": v for k, v in comp.items()},
    }


def tile_ablation(train: np.ndarray, block: int, repeats: int) -> list[dict]:
    """One ``block`` x ``block`` tile of stack variants, through the public tiled call."""
    a, b = train[:block], train[block : 2 * block]
    variants = [
        ("Conv+Relu, NNGP+NTK", flatten_cnn(), ("nngp", "ntk")),
        ("Conv+Relu, NNGP only", flatten_cnn(), "nngp"),
        ("Conv+Identity, NNGP+NTK", flatten_cnn(Identity), ("nngp", "ntk")),
        ("Conv only, NNGP+NTK", conv_only_cnn(), ("nngp", "ntk")),
    ]
    out = []
    for name, stack, get in variants:
        stack(a, b, get=get, block_size=block)  # compile
        r = best_of(lambda s=stack, g=get: s(a, b, get=g, block_size=block), repeats)
        out.append(
            {
                "variant": name,
                "seconds": r["seconds"],
                "load": r["load"],
                "pairs_per_s": block * block / r["seconds"],
            }
        )
    return out


def pool_kernel(x1: np.ndarray, x2: np.ndarray, repeats: int) -> dict:
    stack = pool_cnn()
    comp = compile_time(stack, x1, None)
    r = best_of(lambda: stack(x1, x2), repeats)
    return {
        "image": list(x1.shape[1:3]),
        "pairs": len(x1) * len(x2),
        "tile": stack._block_size(x1.shape[1:], x1.dtype, None, True),
        "seconds": r["seconds"],
        "pairs_per_s": len(x1) * len(x2) / r["seconds"],
        "load": r["load"],
        "compile_s": comp["compile_s"],
    }


# -- command line ----------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="subset sizes / 10 (for checking)")
    parser.add_argument("--float64", action="store_true", help="float64 (default float32)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per measurement (best kept)")
    parser.add_argument(
        "--block-sizes",
        type=int,
        nargs="*",
        default=[8, 16, 32, 128],
        help="explicit block sizes to compare with the default",
    )
    parser.add_argument(
        "--main-block-size",
        type=int,
        default=None,
        help="block_size of the main measurement (default: the kernel's own choice)",
    )
    parser.add_argument("--sweep-n", type=int, default=256, help="train rows of the block sweep")
    parser.add_argument(
        "--pool-n",
        type=int,
        nargs=2,
        default=[16, 40],
        metavar=("N32", "N16"),
        help="rows per side of the pool stack on 32x32 and on 16x16 images",
    )
    parser.add_argument(
        "--local-n", type=int, default=128, help="rows per side, local pooling and depths"
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=["main", "sweep", "ablation", "pool", "local", "depth"],
        help="parts to skip",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    scope = jax.enable_x64(True) if args.float64 else contextlib.nullcontext()
    with scope:
        run(args)


def run(args) -> None:
    dtype = np.dtype(np.float64 if args.float64 else np.float32)
    scale = 10 if args.quick else 1
    train, test = load_cifar(dtype)
    train, test = train[: len(train) // scale], test[: len(test) // scale]
    stack = flatten_cnn()
    default_tile = stack._block_size(train.shape[1:], dtype, None, True)
    results: dict = {
        "dtype": dtype.name,
        "devices": [str(d) for d in jax.devices()],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "load_at_start": load(),
    }
    print(f"devices {results['devices']}, {dtype.name}, load average {load():.2f}", flush=True)

    per_pair = ops_per_pair(stack, train.shape[1:], dtype)
    base = baselines(default_tile**2 * train.shape[1] * train.shape[2], dtype, args.repeats)
    results.update(ops_per_pair=per_pair, **base)
    print(f"stack: {per_pair / 1e6:.3f} M elementwise ops per pair (jaxpr count)")
    print(
        f"baseline: fused elementwise {base['eltwise_gops']:.1f} Gop/s (load "
        f"{base['eltwise_load']:.2f}), float32-tile-sized; matmul {base['matmul_gflops']:.1f} "
        f"GFLOP/s (load {base['matmul_load']:.2f})",
        flush=True,
    )

    if "main" not in args.skip:
        m = main_kernel(stack, train, test, args.main_block_size, args.repeats)
        gops = per_pair * m["pairs_per_s"] / 1e9
        m.update(
            gops=gops,
            frac_eltwise=gops / base["eltwise_gops"],
            frac_matmul=gops / base["matmul_gflops"],
        )
        results["main"] = m
        print(
            f"Flatten CNN {len(train)}x{len(train)} + {len(test)}x{len(train)} "
            f"({m['pairs']} pairs), block_size={m['block_size']} (tile {m['tile']}): "
            f"{m['seconds']:.2f} s (train {m['train_s']:.2f} + test {m['test_s']:.2f}), "
            f"{m['pairs_per_s']:.0f} pairs/s, load {m['load']:.2f}; compile "
            f"{m['compile_compile_s']:.2f} s (first call on {m['compile_rows']} rows "
            f"{m['compile_first_s']:.2f} s)",
            flush=True,
        )
        print(
            f"  all runs (total, train, test, load): "
            f"{[tuple(round(v, 2) for v in r) for r in m['all']]}"
        )
        print(
            f"  {gops:.2f} Gop/s = {m['frac_eltwise']:.1%} of the fused elementwise rate, "
            f"{m['frac_matmul']:.1%} of the matmul rate; "
            + (
                "(--quick: the 10 s target is for the full sizes)"
                if args.quick
                else f"target 10 s: {'met' if m['seconds'] < 10 else 'missed'} "
                f"(x{210 / m['seconds']:.1f} vs neural-tangents' ~210 s)"
            ),
            flush=True,
        )

    if "sweep" not in args.skip:
        n = min(args.sweep_n // scale, len(train))
        sub = train[:n]
        sweep = []
        for block in [None, *args.block_sizes]:
            comp = compile_time(stack, sub, block)
            r = best_of(lambda b=block: stack(sub, block_size=b), args.repeats)
            pairs = n * (n + 1) // 2
            row = {
                "block_size": block,
                "tile": min(n, stack._block_size(sub.shape[1:], dtype, block, True)),
                "seconds": r["seconds"],
                "pairs_per_s": pairs / r["seconds"],
                "load": r["load"],
                "compile_s": comp["compile_s"],
            }
            sweep.append(row)
            print(
                f"sweep {n}x{n} block_size={block} (tile {row['tile']}): {row['seconds']:.2f} s, "
                f"{row['pairs_per_s']:.0f} pairs/s, load {row['load']:.2f}, compile "
                f"{row['compile_s']:.2f} s",
                flush=True,
            )
        fastest = max(sweep, key=lambda r: r["pairs_per_s"])
        print(f"  fastest: block_size={fastest['block_size']} (tile {fastest['tile']})")
        results["sweep"] = sweep

    if "ablation" not in args.skip:
        block = min(default_tile, len(train) // 2)
        results["ablation"] = tile_ablation(train, block, args.repeats)
        for row in results["ablation"]:
            print(
                f"tile {block}x{block} {row['variant']:24s} {row['seconds'] * 1e3:8.1f} ms, "
                f"{row['pairs_per_s']:.0f} pairs/s, load {row['load']:.2f}",
                flush=True,
            )

    if "pool" not in args.skip:
        n32, n16 = (max(n // scale, 2) for n in args.pool_n)
        pools = []
        for name, n, (x1, x2) in [
            ("32x32", n32, (test[:n32], train[:n32])),
            ("16x16", n16, (avg_pool_2x2(test[:n16]), avg_pool_2x2(train[:n16]))),
        ]:
            p = pool_kernel(x1, x2, args.repeats)
            pools.append(p)
            print(
                f"GlobalAvgPool CNN {name} {n}x{n} pairs (tile {p['tile']}): "
                f"{p['seconds']:.2f} s, {p['pairs_per_s']:.1f} pairs/s, load {p['load']:.2f}, "
                f"compile {p['compile_s']:.2f} s",
                flush=True,
            )
        results["pool"] = pools

    if "local" not in args.skip:
        n = max(args.local_n // scale, 2)
        x1, x2 = test[:n], train[:n]
        flatten = flatten_cnn()
        flatten(x1, x2)  # compile
        flat = best_of(lambda: flatten(x1, x2), args.repeats)
        local = []
        for window in (2, 3):
            stack = local_cnn(window)
            stack(x1, x2)  # compile
            r = best_of(lambda stack=stack: stack(x1, x2), args.repeats)
            row = {
                "window": window,
                "layout": str(stack.layouts(x1.shape[1:])[0]),
                "pairs_per_s": n * n / r["seconds"],
                "ratio_to_flatten": r["seconds"] / flat["seconds"],
                "load": r["load"],
            }
            local.append(row)
            print(
                f"local pooling {window}x{window} CNN, {n}x{n} pairs ({row['layout']}): "
                f"{row['pairs_per_s']:.0f} pairs/s, {row['ratio_to_flatten']:.1f}x the Flatten "
                f"CNN's time ({n * n / flat['seconds']:.0f} pairs/s), load {row['load']:.2f}",
                flush=True,
            )
        results["local"] = local

    if "depth" not in args.skip:
        n = max(args.local_n // scale, 2)
        x1, x2 = test[:n], train[:n]
        depths = []
        for depth in (1, 2, 3, 5):
            stack = flatten_cnn(depth=depth)
            stack(x1, x2)  # compile
            r = best_of(lambda stack=stack: stack(x1, x2), args.repeats)
            depths.append({"depth": depth, "pairs_per_s": n * n / r["seconds"], "load": r["load"]})
            print(
                f"Flatten CNN of depth {depth}, {n}x{n} pairs: {n * n / r['seconds']:.0f} "
                f"pairs/s, load {r['load']:.2f}",
                flush=True,
            )
        results["depth"] = depths

    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2, default=str)


if __name__ == "__main__":
    main()
