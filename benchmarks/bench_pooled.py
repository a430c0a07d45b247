"""Speed of the all-pixel-pair kernels (GlobalAvgPool readouts) on CIFAR images, in one run.

Measures, on ``--n`` x ``--n`` test x train pairs of the shared CIFAR subset (32x32x3), NNGP +
NTK, float32 (``--float64`` for float64):

* the fused elementwise rate of this machine now (``bench_conv.baselines``: a Horner loop over
  a tile-sized array), and the elementwise operations per pair counted on the jaxpr of the
  stack's tile (``bench_conv.ops_per_pair``);
* the CNTK-GAP of depth 2 ``[Conv(3x3, SAME, √2, 0.1), Relu()] * 2 + [GlobalAvgPool(), Dense]``
  by the pooled fast path (``kernels/_pooled.py``) and by the generic layer-by-layer ``"full"``
  layout in the same run (the speed-up), its op rate as a fraction of the elementwise rate, both
  with the fast path's own op count and with the issue's reference count of the naive
  algorithm (``--reference-ops``, 100 M per pair);
* Myrtle-5 and Myrtle-7 (``make_stack("myrtle", depth=4 | 6)``);
* the same stack on 2x2-average-pooled 16x16 images (``3 --n`` per side);
* peak RSS of the process (``ru_maxrss``) after compiling and at the end, next to one tile's
  widest array;
* with ``--nt-python``: neural-tangents 0.6.5 (in its own virtual environment, see
  ``benchmarks/README.md``) on the same pairs and stacks, its pairs/s, then ours again (the
  ratio takes the better of our two runs against neural-tangents' best of ``--repeats``); and
  the float64 largest relative difference of both kernels on ``--exact-n`` images.

    python benchmarks/bench_pooled.py --nt-python <python of a neural-tangents venv>
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_conv  # noqa: E402
from _timing import run_json_script  # noqa: E402

from ntk_sklearn.architectures import make_stack  # noqa: E402
from ntk_sklearn.kernels import _pooled  # noqa: E402

ROOT2 = math.sqrt(2.0)

_NT_SCRIPT = """
import json, sys, time
import numpy as np
import jax
jax.config.update("jax_enable_x64", True)
from neural_tangents import stax
data = json.loads(sys.stdin.read())
def conv():
    return stax.Conv(1, (3, 3), padding="SAME", W_std={w}, b_std=0.1)
_, _, kernel_fn = stax.serial(conv(), stax.Relu(), conv(), stax.Relu(), stax.GlobalAvgPool(),
                              stax.Dense(1, W_std={w}, b_std=0.1))
kernel_fn = jax.jit(kernel_fn, static_argnames="get")
out = {{}}
for size in ("32", "16"):
    x1 = np.asarray(data["x1_" + size], np.float32); x2 = np.asarray(data["x2_" + size], np.float32)
    jax.block_until_ready(kernel_fn(x1, x2, ("nngp", "ntk")))
    best = float("inf")
    for _ in range({repeats}):
        start = time.perf_counter()
        jax.block_until_ready(kernel_fn(x1, x2, ("nngp", "ntk")))
        best = min(best, time.perf_counter() - start)
    out["seconds_" + size] = best
e1 = np.asarray(data["e1"], np.float64); e2 = np.asarray(data["e2"], np.float64)
k = kernel_fn(e1, e2, ("nngp", "ntk"))
out["nngp64"] = np.asarray(k.nngp).tolist(); out["ntk64"] = np.asarray(k.ntk).tolist()
print(json.dumps(out))
"""


def cntk_gap():
    return make_stack(
        "conv", depth=2, w_std=ROOT2, b_std=0.1, image_shape=(32, 32, 3), pooling="gap"
    )


def myrtle(depth: int):
    return make_stack("myrtle", depth=depth, w_std=ROOT2, b_std=0.1, image_shape=(32, 32, 3))


def _timed_pairs(stack, x1, x2, repeats: int) -> dict:
    stack(x1, x2)  # compiles
    r = bench_conv.best_of(lambda: stack(x1, x2), repeats)
    return {
        "pairs_per_s": len(x1) * len(x2) / r["seconds"],
        "seconds": r["seconds"],
        "load": r["load"],
    }


@contextlib.contextmanager
def generic_path():
    """The generic layer-by-layer full layout (the fast path switched off)."""
    supports = _pooled.supports
    _pooled.supports = lambda *args: False
    jax.clear_caches()
    try:
        yield
    finally:
        _pooled.supports = supports
        jax.clear_caches()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="rows of x1 and x2 (n x n pairs)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--reference-ops", type=float, default=100e6)
    parser.add_argument("--exact-n", type=int, default=3, help="images per side, float64 check")
    parser.add_argument("--skip-generic", action="store_true")
    parser.add_argument("--skip-myrtle", action="store_true")
    parser.add_argument("--nt-python", help="a Python with neural-tangents 0.6.5 (JAX 0.4.23)")
    parser.add_argument(
        "--rss-n",
        type=int,
        default=120,
        help="rows per side of the memory measurement (16x16 images, a fresh process)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--rss-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_only:
        print(json.dumps(memory(args.rss_n)))
        return
    dtype = np.dtype(np.float64 if args.float64 else np.float32)
    results: dict = {"dtype": dtype.name, "cpus": os.cpu_count(), "jax": jax.__version__}
    with jax.enable_x64(args.float64):
        run(args, dtype, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))


def memory(n: int) -> dict:
    """Peak RSS of one ``n x n`` CNTK-GAP call on 16x16 images (float32), from a process that
    has only loaded the data and compiled the tiles (on 2 rows), against the output and the
    tiles in flight (2 per device, each its widest array and ``_WORK_FACTOR`` more)."""
    train, test = bench_conv.load_cifar(np.float32)
    x1, x2 = bench_conv.avg_pool_2x2(test[:n]), bench_conv.avg_pool_2x2(train[:n])
    stack = cntk_gap()
    block = stack._block_size(x1.shape[1:], x1.dtype, None, True)
    stack(x1[:block], x2[:block])  # compiles the tile
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    stack(x1, x2)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    output = 2 * n * n * 4
    widest = block**2 * _pooled.pair_size(stack.layers, x1.shape[1:]) * 4
    tiles = 2 * len(jax.local_devices()) * widest * 4  # _WORK_FACTOR arrays each
    return {"rss_before": before, "rss_after": after, "output": output, "tiles": tiles}


def run(args, dtype, results) -> None:
    train, test = bench_conv.load_cifar(dtype)
    n, n16 = args.n, 3 * args.n
    x1, x2 = test[:n], train[:n]
    y1, y2 = bench_conv.avg_pool_2x2(test[:n16]), bench_conv.avg_pool_2x2(train[:n16])
    stack = cntk_gap()
    print(f"{dtype.name}, {n}x{n} pairs of 32x32x3 CIFAR images, load {os.getloadavg()[0]:.2f}")
    stack(x1[:1], x2[:1])
    stack(y1[:2], y2[:2])  # compiled
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base = bench_conv.baselines(stack._pair_size(x1.shape[1:]), dtype, args.repeats)
    ops = bench_conv.ops_per_pair(stack, x1.shape[1:], dtype, block=1)
    results.update(base, ops_per_pair=ops)
    rate = base["eltwise_gops"] * 1e9
    print(
        f"fused elementwise {base['eltwise_gops']:.1f} Gop/s (load {base['eltwise_load']:.2f}); "
        f"CNTK-GAP: {ops / 1e6:.1f} M ops/pair counted on the fast path's jaxpr"
    )
    fast = _timed_pairs(stack, x1, x2, args.repeats)
    fast16 = _timed_pairs(stack, y1, y2, args.repeats)
    results["cntk_gap"], results["cntk_gap_16"] = fast, fast16
    print(
        f"CNTK-GAP depth 2, 32x32, fast path: {fast['pairs_per_s']:.1f} pairs/s (load "
        f"{fast['load']:.2f}): {fast['pairs_per_s'] * ops / rate:.1%} of the elementwise rate by "
        f"its own op count, {fast['pairs_per_s'] * args.reference_ops / rate:.1%} by the "
        f"reference {args.reference_ops / 1e6:.0f} M ops/pair"
    )
    print(
        f"CNTK-GAP depth 2, 16x16 (2x2-pooled), {n16}x{n16} pairs: "
        f"{fast16['pairs_per_s']:.1f} pairs/s (load {fast16['load']:.2f})"
    )
    if not args.skip_generic:
        m = max(n // 2, 1)
        with generic_path():
            slow = _timed_pairs(stack, x1[:m], x2[:m], 1)
            slow16 = _timed_pairs(stack, y1[:n], y2[:n], 1)
        results["cntk_gap_generic"], results["cntk_gap_16_generic"] = slow, slow16
        print(
            f"generic full layout: 32x32 {slow['pairs_per_s']:.1f} pairs/s (fast path "
            f"{fast['pairs_per_s'] / slow['pairs_per_s']:.1f}x), 16x16 "
            f"{slow16['pairs_per_s']:.1f} pairs/s "
            f"({fast16['pairs_per_s'] / slow16['pairs_per_s']:.1f}x), load {slow16['load']:.2f}"
        )
    if not args.skip_myrtle:
        for depth, name in ((4, "Myrtle-5"), (6, "Myrtle-7")):
            r = _timed_pairs(myrtle(depth), x1, x2, args.repeats)
            results[name] = r
            print(f"{name}, 32x32: {r['pairs_per_s']:.1f} pairs/s (load {r['load']:.2f})")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    tile = stack._block_size(x1.shape[1:], dtype, None, True) ** 2
    arrays = tile * _pooled.pair_size(stack.layers, x1.shape[1:]) * dtype.itemsize
    results.update(peak_rss_bytes=rss, rss_after_compile_bytes=rss_start)
    print(
        f"peak RSS {rss / 2**20:.0f} MiB, {rss_start / 2**20:.0f} MiB after loading and compiling "
        f"(one tile's widest array: {arrays / 2**20:.1f} MiB, 2 tiles in flight)"
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--rss-only", "--rss-n", str(args.rss_n)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == 0:
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        results["memory"] = m
        growth = m["rss_after"] - m["rss_before"]
        print(
            f"memory ({args.rss_n}x{args.rss_n} pairs of 16x16 images, fresh process): peak RSS "
            f"grew {growth / 2**20:.1f} MiB during the call, against {m['output'] / 2**20:.2f} "
            f"MiB of output + {m['tiles'] / 2**20:.1f} MiB of tiles in flight "
            f"({growth / (m['output'] + m['tiles']):.2f}x)"
        )
    if args.nt_python:
        e = args.exact_n
        with jax.enable_x64(True):
            e1, e2 = (t[:e].astype(np.float64) for t in bench_conv.load_cifar(np.float64))
            ours64 = cntk_gap()(e1, e2)
        script = _NT_SCRIPT.format(w=ROOT2, repeats=args.repeats)
        data = {
            "x1_32": x1.tolist(),
            "x2_32": x2.tolist(),
            "x1_16": y1.tolist(),
            "x2_16": y2.tolist(),
            "e1": e1.tolist(),
            "e2": e2.tolist(),
        }
        nt = run_json_script(args.nt_python, script, data)
        if nt is None:
            return
        nt_load = os.getloadavg()[0]
        # Ours again right after, so that both sides see the same machine.
        again = _timed_pairs(stack, x1, x2, args.repeats)
        again16 = _timed_pairs(stack, y1, y2, args.repeats)
        ours = max(fast["pairs_per_s"], again["pairs_per_s"])
        ours16 = max(fast16["pairs_per_s"], again16["pairs_per_s"])
        nt32, nt16 = n * n / nt["seconds_32"], n16 * n16 / nt["seconds_16"]
        diffs = {
            name: float(
                np.abs(getattr(ours64, name) - np.asarray(nt[f"{name}64"])).max()
                / np.abs(np.asarray(nt[f"{name}64"])).max()
            )
            for name in ("nngp", "ntk")
        }
        results["neural_tangents"] = {
            "pairs_per_s_32": nt32,
            "pairs_per_s_16": nt16,
            "load": nt_load,
            "ours_again_32": again,
            "ours_again_16": again16,
            "float64_max_rel_diff": diffs,
        }
        print(
            f"neural-tangents 0.6.5 (float32, jit), load {nt_load:.2f}: 32x32 {nt32:.2f} pairs/s, "
            f"16x16 {nt16:.1f} pairs/s; ours (best of before and after, after: "
            f"{again['pairs_per_s']:.1f} and {again16['pairs_per_s']:.1f} pairs/s at load "
            f"{again16['load']:.2f}) {ours / nt32:.1f}x and {ours16 / nt16:.1f}x per pair"
        )
        print(
            f"float64 max relative difference to neural-tangents on {e}x{e} 32x32 pairs: NNGP "
            f"{diffs['nngp']:.1e}, NTK {diffs['ntk']:.1e}"
        )


if __name__ == "__main__":
    main()
