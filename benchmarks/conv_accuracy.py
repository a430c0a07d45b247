"""Convolutional NNGP/NTK kernels on the MNIST and CIFAR subsets: accuracy and cost.

For each input preprocessing, one pass over the image pairs computes the kernels of
``[Conv(3x3, SAME, w_std, b_std), Relu()] * depth + [Flatten(), Dense(w_std, b_std)]`` for every
depth up to ``--max-depth`` at once (the readout is applied after each block). Then, on the
training split only, 5-fold stratified cross-validation of kernel ridge regression on centred
one-hot targets (what ``NTKClassifier``/``NNGPClassifier`` fit at ``t=None``) chooses the
preprocessing, kernel (NNGP or NTK), depth and ``alpha`` (relative to the mean diagonal); the
chosen model is scored once on the test split. Every candidate's test accuracy is printed too,
for information, but the choice never looks at it.

``--windows`` adds readouts by local average pooling, ``AvgPool((w, w), strides=(1, 1))`` then
``Flatten()`` (window 1 is ``Flatten`` alone): those kernels come from the library's own stacks
(``serial``, which computes them on bands of nearby pixel pairs), one pass per depth
(``--min-depth`` to ``--max-depth``) and window, and CV chooses the window too.

``--flip`` averages every network over horizontal flips of its input images (the stacks'
``flip_invariant=True``): kernels ``(k(x, x') + k(x, mirror x')) / 2``, at twice the cost.

Preprocessing: ``std`` standardises each channel (training statistics) then scales every image
to unit norm; ``zca`` whitens with regularised ZCA (Shankar et al. 2020: eigenvalues shifted by
``--zca-reg`` times their mean) before the same normalisation; ``pool2`` averages 2x2 pixel blocks
after ``std``.

    python benchmarks/conv_accuracy.py --dataset cifar                  # 1,000 / 834
    python benchmarks/conv_accuracy.py --dataset mnist --prep pool2 std # 1,000 / 2,000
    python benchmarks/conv_accuracy.py --dataset mnist --prep pool2 --windows 1 2 3 \
        --min-depth 4 --max-depth 4                                     # local pooling
    python benchmarks/conv_accuracy.py --dataset cifar --prep pool2 std zca --flip
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import load_dataset  # noqa: E402

from ntk_sklearn.architectures import make_stack  # noqa: E402
from ntk_sklearn.kernels import Conv, Dense, Flatten, Relu  # noqa: E402
from ntk_sklearn.kernels._state import input_state  # noqa: E402

SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3)}


def preprocess(kind: str, train: np.ndarray, test: np.ndarray, shape, zca_reg: float):
    """Images (n, H, W, C) in float64, preprocessed with training statistics only."""
    a = train.reshape(-1, *shape).astype(np.float64)
    b = test.reshape(-1, *shape).astype(np.float64)
    mean, std = a.mean(axis=(0, 1, 2)), a.std(axis=(0, 1, 2)) + 1e-8
    a, b = (a - mean) / std, (b - mean) / std
    if kind == "zca":
        flat = a.reshape(len(a), -1)
        cov = flat.T @ flat / len(flat)
        evals, evecs = np.linalg.eigh(cov)
        evals = np.maximum(evals, 0) + zca_reg * evals.mean()
        whiten = (evecs / np.sqrt(evals)) @ evecs.T
        a = (flat @ whiten).reshape(a.shape)
        b = (b.reshape(len(b), -1) @ whiten).reshape(b.shape)
    if kind == "pool2":
        h, w, c = shape
        a = a.reshape(len(a), h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
        b = b.reshape(len(b), h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
    norm = lambda x: x / np.linalg.norm(x.reshape(len(x), -1), axis=1)[:, None, None, None]  # noqa: E731
    return norm(a) * np.sqrt(a[0].size), norm(b) * np.sqrt(b[0].size)


def depth_kernels(x1, x2, max_depth: int, w_std: float, b_std: float, block: int):
    """NNGP and NTK (n1, n2) for depths 1..max_depth: arrays (max_depth, 1, 2, n1, n2)."""
    conv, relu = Conv(w_std=w_std, b_std=b_std), Relu()
    flatten, dense = Flatten(), Dense(w_std, b_std)

    @jax.jit
    def tile(a, b):
        state = input_state(a, b, "diag", True)
        outs = []
        for _ in range(max_depth):
            state = relu.apply(conv.apply(state))
            out = dense.apply(flatten.apply(state))
            outs.append(jnp.stack([out.nngp, out.ntk])[None])
        return jnp.stack(outs)

    out = np.empty((max_depth, 1, 2, len(x1), len(x2)), np.float32)
    for i in range(0, len(x1), block):
        for j in range(0, len(x2), block):
            a, b = x1[i : i + block], x2[j : j + block]
            pad_a, pad_b = block - len(a), block - len(b)
            a = np.concatenate([a, np.zeros((pad_a, *a.shape[1:]), a.dtype)])
            b = np.concatenate([b, np.zeros((pad_b, *b.shape[1:]), b.dtype)])
            t = np.asarray(tile(a, b))
            out[..., i : i + block - pad_a, j : j + block - pad_b] = t[
                ..., : block - pad_a, : block - pad_b
            ]
    return out


def pooled_kernels(train, test, depths, windows, w_std: float, b_std: float, flip: bool = False):
    """NNGP and NTK of the library's stacks with a local-pooling readout: (depths, windows, 2, ...).

    Window 1 is ``Flatten``; window ``w > 1`` is ``AvgPool((w, w), strides=(1, 1))`` then
    ``Flatten``, which the stack computes on a band of the pixel pairs up to ``w − 1`` apart.
    One pass per depth and window: test x train, or train x train (one triangle) for
    ``test=None``.
    """
    rows = len(train) if test is None else len(test)
    out = np.empty((len(depths), len(windows), 2, rows, len(train)), np.float32)
    for d, depth in enumerate(depths):
        for w, window in enumerate(windows):
            stack = make_stack(
                "conv",
                depth=depth,
                w_std=w_std,
                b_std=b_std,
                image_shape=train.shape[1:],
                pooling="flatten" if window == 1 else f"local{window}",
                flip_invariant=flip,
            )
            k = stack(train) if test is None else stack(test, train)
            out[d, w] = np.stack([k.nngp, k.ntk])
    return out


def kernel_pass(x1, x2, depths, args) -> np.ndarray:
    """Kernels (depths, windows, 2, n1, n2) of x1 against x2 (one triangle when x1 is x2).

    With ``--flip`` the kernels of the networks averaged over horizontal flips,
    ``(k(x, x') + k(x, mirror x')) / 2``: the stacks' ``flip_invariant=True``, or one more pass
    with ``x2`` mirrored for the one-pass Flatten kernels.
    """
    if args.windows != [1]:
        test = None if x1 is x2 else x1
        return pooled_kernels(x2, test, depths, args.windows, args.w_std, args.b_std, args.flip)
    out = depth_kernels(x1, x2, depths[-1], args.w_std, args.b_std, args.block)
    if args.flip:
        out = (
            out + depth_kernels(x1, x2[:, :, ::-1], depths[-1], args.w_std, args.b_std, args.block)
        ) / 2
    return out[depths[0] - 1 :]


def cv_accuracy(k: np.ndarray, y: np.ndarray, alphas, folds: int = 5) -> np.ndarray:
    """Mean CV accuracy of kernel ridge on centred one-hot targets, for each relative alpha."""
    classes = np.unique(y)
    targets = (y[:, None] == classes[None, :]) - 1.0 / len(classes)
    scale = np.mean(np.diag(k))
    scores = np.zeros(len(alphas))
    for tr, va in StratifiedKFold(folds, shuffle=True, random_state=0).split(k, y):
        ktr = k[np.ix_(tr, tr)].astype(np.float64)
        evals, evecs = np.linalg.eigh(ktr)
        proj = evecs.T @ targets[tr]
        for a, alpha in enumerate(alphas):
            coef = evecs @ (proj / (evals + alpha * scale)[:, None])
            pred = k[np.ix_(va, tr)] @ coef
            scores[a] += np.mean(classes[pred.argmax(1)] == y[va]) / folds
    return scores


def test_accuracy(k_train, k_test, y, y_test, alpha) -> float:
    classes = np.unique(y)
    targets = (y[:, None] == classes[None, :]) - 1.0 / len(classes)
    k = k_train.astype(np.float64) + alpha * np.mean(np.diag(k_train)) * np.eye(len(k_train))
    coef = np.linalg.solve(k, targets)
    return float(np.mean(classes[(k_test @ coef).argmax(1)] == y_test))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(SHAPES), default="cifar")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--prep", nargs="+", default=["std", "zca"])
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--min-depth", type=int, default=1)
    parser.add_argument("--w-std", type=float, default=2**0.5)
    parser.add_argument("--b-std", type=float, default=0.1)
    parser.add_argument("--zca-reg", type=float, default=0.1)
    parser.add_argument("--block", type=int, default=16)
    parser.add_argument(
        "--windows",
        type=int,
        nargs="+",
        choices=[1, 2, 3, 4],
        default=[1],
        help="readout pooling windows: 1 = Flatten, w = AvgPool((w, w), strides=(1, 1))",
    )
    parser.add_argument(
        "--flip",
        action="store_true",
        help="average each kernel over horizontal flips: (k(x, x') + k(x, flip x')) / 2",
    )
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    X, y, X_test, y_test = load_dataset(args.dataset, args.n_train, None, seed=0)
    shape = SHAPES[args.dataset]
    alphas = np.logspace(-6, 0, 7)
    rows, best = [], None
    for prep in args.prep:
        a, b = preprocess(prep, X, X_test, shape, args.zca_reg)
        a, b = a.astype(np.float32), b.astype(np.float32)
        start = time.perf_counter()
        depths = list(range(args.min_depth, args.max_depth + 1))
        k_train, k_test = kernel_pass(a, a, depths, args), kernel_pass(b, a, depths, args)
        k_train = (k_train + np.swapaxes(k_train, -1, -2)) / 2  # exactly symmetric
        # depth_kernels computes every train pair, the stacks one triangle.
        train_pairs = len(a) ** 2 if args.windows == [1] else len(a) * (len(a) + 1) // 2
        pairs = train_pairs + len(b) * len(a)
        if args.flip:
            pairs *= 2  # each pair also with the second image mirrored
        seconds = time.perf_counter() - start
        print(
            f"{prep}: kernels of depths {depths}, windows {args.windows}, for "
            f"{pairs:,} pairs in {seconds:.0f} s ({pairs / seconds:,.0f} pairs/s, load "
            f"{os.getloadavg()[0]:.1f})",
            flush=True,
        )
        for d, depth in enumerate(depths):
            for w, window in enumerate(args.windows):
                for kind, name in enumerate(("nngp", "ntk")):
                    cv = cv_accuracy(k_train[d, w, kind], y, alphas)
                    i = int(np.argmax(cv))
                    acc = test_accuracy(
                        k_train[d, w, kind], k_test[d, w, kind], y, y_test, alphas[i]
                    )
                    row = {
                        "prep": prep,
                        "kernel": name,
                        "depth": depth,
                        "window": window,
                        "alpha": float(alphas[i]),
                        "cv_accuracy": round(100 * float(cv[i]), 2),
                        "test_accuracy": round(100 * acc, 2),
                        "kernel_seconds": round(seconds, 1),
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
                    if best is None or row["cv_accuracy"] > best["cv_accuracy"]:
                        best = row
    print(f"chosen by CV on the training split: {json.dumps(best)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "chosen": best}, indent=1))


if __name__ == "__main__":
    main()
