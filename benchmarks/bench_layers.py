"""Speed of the new layer families: a WideResNet-style kernel and self-attention on sequences.

Measures pairs/s (NNGP + NTK, float32 and float64 as chosen) of

* ``resnet``: ``make_stack("resnet", depth=1)`` (a stem, three residual groups of one block,
  strides 1, 2, 2, GlobalAvgPool) on ``--image-size``-pixel images with 3 channels
  (default 16x16), and a plain serial CNN of the same depth (7 convolutions, GlobalAvgPool) on
  the same pairs, for the "residual stacks no slower per layer than serial ones" ratio;
* ``attention``: ``Conv((1,)), GlobalSelfAttention(), Relu(), GlobalAvgPool(), Dense()`` on
  sequences of length ``--length`` (default 64) with 8 channels;

and, with ``--nt-python PATH`` (a Python with neural-tangents 0.6.5 and JAX 0.4.23 installed,
never a dependency of this package), the same kernels computed by neural-tangents'
``kernel_fn`` in that interpreter on the same inputs, as a ratio measured in the same run.

The machine is shared: every measurement runs ``--repeats`` times (best kept), printed with the
1-minute load average. Compilation is excluded (a first call on the same shapes).

    python benchmarks/bench_layers.py                      # ours only
    python benchmarks/bench_layers.py --nt-python /tmp/ntvenv/bin/python
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np

from ntk_sklearn.architectures import make_stack
from ntk_sklearn.kernels import (
    Conv,
    Dense,
    GlobalAvgPool,
    GlobalSelfAttention,
    Relu,
    serial,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import run_json_script  # noqa: E402

#: neural-tangents' versions of the stacks (run in its own interpreter).
_NT_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    import numpy as np
    import jax
    jax.config.update("jax_enable_x64", {x64})
    from neural_tangents import stax

    def block(channels, strides, mismatch):
        main = stax.serial(stax.Relu(), stax.Conv(channels, (3, 3), strides, "SAME", 1.0, 0.0),
                           stax.Relu(), stax.Conv(channels, (3, 3), (1, 1), "SAME", 1.0, 0.0))
        short = (stax.Conv(channels, (3, 3), strides, "SAME", 1.0, 0.0) if mismatch
                 else stax.Identity())
        return stax.serial(stax.FanOut(2), stax.parallel(main, short), stax.FanInSum())

    stacks = {{
        "resnet": stax.serial(
            stax.Conv(16, (3, 3), (1, 1), "SAME", 1.0, 0.0),
            block(16, (1, 1), True), block(32, (2, 2), True), block(64, (2, 2), True),
            stax.GlobalAvgPool(), stax.Dense(1, 1.0, 0.0)),
        "attention": stax.serial(
            stax.Conv(64, (1,), (1,), "SAME", 1.0, 0.0),
            stax.GlobalSelfAttention(64, 64, 64, 1, linear_scaling=True),
            stax.Relu(), stax.GlobalAvgPool(), stax.Dense(1, 1.0, 0.0)),
    }}
    out = {{}}
    for name, (x1, x2) in {inputs}.items():
        kernel_fn = jax.jit(stacks[name][2], static_argnames="get")
        x1, x2 = np.asarray(x1, {dtype}), np.asarray(x2, {dtype})
        jax.block_until_ready(kernel_fn(x1, x2, get=("nngp", "ntk")))
        best = float("inf")
        for _ in range({repeats}):
            start = time.perf_counter()
            k = jax.block_until_ready(kernel_fn(x1, x2, get=("nngp", "ntk")))
            best = min(best, time.perf_counter() - start)
        out[name] = {{"seconds": best, "ntk": np.asarray(k.ntk).tolist()}}
    print(json.dumps(out))
    """
)


def _serial_cnn():
    conv = Conv((3, 3))
    return serial(conv, *[Relu(), conv] * 6, GlobalAvgPool(), Dense())


def _attention():
    return serial(Conv((1,)), GlobalSelfAttention(), Relu(), GlobalAvgPool(), Dense())


def _best(fn, repeats: int) -> float:
    fn()  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--n", type=int, default=32, help="rows of x1 and of x2 (n x n pairs)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--float64", action="store_true")
    parser.add_argument("--nt-python", help="a Python with neural-tangents 0.6.5 (JAX 0.4.23)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    dtype = np.float64 if args.float64 else np.float32
    s, n = args.image_size, args.n
    images = rng.normal(size=(2, n, s, s, 3)).astype(dtype)
    seqs = rng.normal(size=(2, n, args.length, 8)).astype(dtype)
    cases = {
        "resnet": (make_stack("resnet", depth=1, image_shape=(s, s, 3)), images),
        "serial CNN (7 convs, GAP)": (_serial_cnn(), images),
        "attention": (_attention(), seqs),
    }
    results = {}
    with jax.enable_x64(args.float64):
        for name, (stack, (x1, x2)) in cases.items():
            seconds = _best(lambda stack=stack, x1=x1, x2=x2: stack(x1, x2), args.repeats)
            results[name] = {"seconds": seconds, "pairs_per_s": n * n / seconds}
            load = os.getloadavg()[0]
            print(f"{name:28s} {n * n / seconds:12.1f} pairs/s  ({seconds:.3f} s, load {load:.1f})")
        ours_ntk = {
            name: cases[name][0](*cases[name][1], get="ntk") for name in ("resnet", "attention")
        }
    layers_resnet = 1 + 3 * 2 + 3  # convolutions of the ResNet (with the strided shortcuts)
    per_layer = (results["resnet"]["seconds"] / layers_resnet) / (
        results["serial CNN (7 convs, GAP)"]["seconds"] / 7
    )
    print(f"resnet time per convolution / serial CNN's: {per_layer:.2f}")
    if args.nt_python:
        inputs = {"resnet": images.tolist(), "attention": seqs.tolist()}
        script = _NT_SCRIPT.format(
            x64=args.float64,
            inputs="json.loads(sys.stdin.read())",
            dtype=f"np.{np.dtype(dtype).name}",
            repeats=args.repeats,
        )
        nt = run_json_script(args.nt_python, script, inputs)
        if nt is None:
            return
        for name in ("resnet", "attention"):
            ratio = nt[name]["seconds"] / results[name]["seconds"]
            ref = np.asarray(nt[name]["ntk"])
            err = np.abs(ours_ntk[name] - ref).max() / np.abs(ref).max()
            print(
                f"{name:12s} neural-tangents {n * n / nt[name]['seconds']:10.1f} pairs/s; ours "
                f"{ratio:.1f}x faster per pair (NTK max rel. difference {err:.1e})"
            )


if __name__ == "__main__":
    main()
