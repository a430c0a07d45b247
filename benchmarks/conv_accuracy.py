"""Convolutional NNGP/NTK classifiers on the MNIST and CIFAR subsets, through public classes only.

Each candidate model is one scikit-learn ``Pipeline``::

    make_pipeline(
        make_image_preprocessor(image_shape, window=2),   # ChannelStandardizer, ImageAvgPool,
                                                          # NormScaler(center=False): "pool2"
        NTKClassifierCV(architecture="conv", image_shape=pooled_shape, depth=..., pooling=...,
                        flip_invariant=..., w_std=2**0.5, b_std=0.1,
                        alphas=np.logspace(-6, 0, 7), alphas_relative=True,
                        cv=StratifiedKFold(5, shuffle=True, random_state=0)),
    )

``fit`` computes the kernel of the training images once and chooses ``alpha`` (relative to the
mean diagonal of that kernel, neural-tangents' ``diag_reg`` convention) by 5-fold stratified CV
of the classifier at ``t=None`` (kernel ridge on centred one-hot targets) on the training split
only. Across candidates (kernel NTK/NNGP, depth, readout pooling) the one with the best CV
accuracy (``best_score_``) is chosen, and only it is scored on the test split; every candidate's
test accuracy is printed for information, the choice never looks at it. A kernel cache
(``memory=``, a temporary folder unless ``--memory`` names one) lets the NNGP candidate reuse the
NNGP that the NTK candidate of the same network computed (so NTK candidates come first).

The defaults are the models the earlier search of this benchmark chose (README, "Convolutional
kernels"): CIFAR, NTK/NNGP, depth 2, local 3x3 pooling readout, ``flip_invariant=True`` on
2x2-pooled 16x16 images (60.43 %); MNIST, NNGP/NTK, depth 4, local 3x3 pooling on 2x2-pooled
14x14 images (98.05 %). Lists of depths and poolings search more (one kernel pass each).

    python benchmarks/conv_accuracy.py --dataset cifar                      # 1,000 / 834
    python benchmarks/conv_accuracy.py --dataset mnist                      # 1,000 / 2,000
    python benchmarks/conv_accuracy.py --dataset mnist --depths 2 4 --poolings flatten local2
    python benchmarks/conv_accuracy.py --dataset cifar --subset 200 200     # a quick check

Full resolution (``--window 1``: no input pooling) with the all-pixel-pair kernels: the CNTK with
a global average readout (``--poolings gap``) and the Myrtle networks (``--architectures
myrtle``; ``--myrtle-depths 4 6``: Myrtle-5 and Myrtle-7), with and without flips
(``--flip yes no``)::

    python benchmarks/conv_accuracy.py --dataset cifar --window 1 --architectures conv myrtle \
        --depths 2 --myrtle-depths 4 --poolings gap --flip no yes --subset 200 834

A candidate is one (architecture, depth, readout pooling, flips, kernel); Myrtle ignores the
pooling (its readout is always the global average). With ``--subset`` each row also gives the
seconds per computed pair and the time the same network's kernels (NTK and NNGP, in one pass)
would take on the full split (1,000 training images, ``--n-train`` for MNIST), extrapolated from
its pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import load_dataset, stratified_subset  # noqa: E402

from ntk_sklearn import NNGPClassifierCV, NTKClassifierCV  # noqa: E402
from ntk_sklearn.preprocessing import make_image_preprocessor  # noqa: E402

SHAPES = {"mnist": (28, 28, 1), "cifar": (32, 32, 3)}
#: The models chosen by the earlier search (README): kernels, depth, readout pooling, flips.
DEFAULTS = {
    "cifar": {"kernels": ["ntk", "nngp"], "depths": [2], "poolings": ["local3"], "flip": True},
    "mnist": {"kernels": ["ntk", "nngp"], "depths": [4], "poolings": ["local3"], "flip": False},
}
ESTIMATORS = {"ntk": NTKClassifierCV, "nngp": NNGPClassifierCV}


def make_model(
    kernel, architecture, shape, window, depth, pooling, flip, dtype, memory, w_std, b_std
):
    """The candidate's Pipeline of public classes."""
    pooled = (shape[0] // window, shape[1] // window, shape[2])
    return make_pipeline(
        make_image_preprocessor(shape, window=window),
        ESTIMATORS[kernel](
            architecture=architecture,
            image_shape=pooled,
            depth=depth,
            pooling=pooling,
            flip_invariant=flip,
            w_std=w_std,
            b_std=b_std,
            alphas=np.logspace(-6, 0, 7),
            alphas_relative=True,
            cv=StratifiedKFold(5, shuffle=True, random_state=0),
            dtype=dtype,
            memory=memory,
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=tuple(SHAPES), default="cifar")
    parser.add_argument("--n-train", type=int, default=1000, help="MNIST training images")
    parser.add_argument(
        "--subset", type=int, nargs=2, metavar=("TRAIN", "TEST"), help="stratified subsets"
    )
    parser.add_argument("--kernels", nargs="+", choices=tuple(ESTIMATORS))
    parser.add_argument("--depths", type=int, nargs="+")
    parser.add_argument(
        "--poolings", nargs="+", choices=["flatten", "local2", "local3", "local4", "gap"]
    )
    parser.add_argument("--architectures", nargs="+", choices=["conv", "myrtle"], default=["conv"])
    parser.add_argument(
        "--myrtle-depths", type=int, nargs="+", default=[4], help="4: Myrtle-5, 6: Myrtle-7"
    )
    parser.add_argument(
        "--flip", nargs="+", choices=["yes", "no"], help="flip_invariant (CIFAR: yes)"
    )
    parser.add_argument("--window", type=int, default=2, help="input pooling (1: none)")
    parser.add_argument("--w-std", type=float, default=2**0.5)
    parser.add_argument("--b-std", type=float, default=0.1)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float32")
    parser.add_argument("--memory", help="kernel cache folder (default: a temporary one)")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    defaults = DEFAULTS[args.dataset]
    kernels = args.kernels or defaults["kernels"]
    depths = args.depths or defaults["depths"]
    poolings = args.poolings or defaults["poolings"]
    flips = [defaults["flip"]] if args.flip is None else [f == "yes" for f in args.flip]
    X, y, X_test, y_test = load_dataset(args.dataset, args.n_train, None, seed=0)
    full_pairs = _pairs(len(X), len(X_test))
    if args.subset:
        X, y = stratified_subset(X, y, args.subset[0], seed=0)
        X_test, y_test = stratified_subset(X_test, y_test, args.subset[1], seed=0)
    shape = SHAPES[args.dataset]
    print(
        f"{args.dataset}: {len(X)} training / {len(X_test)} test images, kernels {kernels}, "
        f"architectures {args.architectures}, depths {depths}, poolings {poolings}, "
        f"flip_invariant {flips}, window {args.window}, {args.dtype}",
        flush=True,
    )
    pairs = _pairs(len(X), len(X_test))
    with tempfile.TemporaryDirectory() as scratch:
        memory = args.memory or scratch
        rows, best, computed = [], None, set()
        for architecture, depth, pooling, flip, kernel in _candidates(
            args.architectures, depths, args.myrtle_depths, poolings, flips, kernels
        ):
            model = make_model(
                kernel,
                architecture,
                shape,
                args.window,
                depth,
                pooling,
                flip,
                args.dtype,
                memory,
                args.w_std,
                args.b_std,
            )
            start = time.perf_counter()
            model.fit(X, y)
            fit_seconds = time.perf_counter() - start
            start = time.perf_counter()
            accuracy = model.score(X_test, y_test)
            test_seconds = time.perf_counter() - start
            cv = model[-1]
            row = {
                "architecture": architecture,
                "kernel": kernel,
                "depth": depth,
                "pooling": pooling,
                "flip_invariant": flip,
                "alpha": cv.alpha_,
                "relative_alpha": float(cv.alpha_ / cv.alphas_[0] * cv.get_params()["alphas"][0]),
                "cv_accuracy": round(100 * cv.best_score_, 2),
                "test_accuracy": round(100 * accuracy, 2),
                "fit_seconds": round(fit_seconds, 1),
                "kernel_seconds": round(cv.kernel_time_, 1),
                "predict_seconds": round(test_seconds, 1),
                "load": round(os.getloadavg()[0], 1),
            }
            network = (architecture, depth, pooling, flip)
            if pairs != full_pairs and network not in computed:
                # The kernel passes (training triangle in fit, test x train in score) scale with
                # their pairs. The network's next kernel (NNGP after NTK) comes from the cache.
                computed.add(network)
                per_pair = (cv.kernel_time_ + test_seconds) / pairs
                row["seconds_per_pair"] = float(f"{per_pair:.3g}")
                row["extrapolated_full_seconds"] = round(per_pair * full_pairs)
            rows.append(row)
            print(json.dumps(row), flush=True)
            if best is None or row["cv_accuracy"] > best["cv_accuracy"]:
                best = row
    print(f"chosen by CV on the training split: {json.dumps(best)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "chosen": best}, indent=1))


def _pairs(n_train: int, n_test: int) -> int:
    """Kernel entries a candidate computes: the training triangle, then test x train."""
    return n_train * (n_train + 1) // 2 + n_test * n_train


def _candidates(architectures, depths, myrtle_depths, poolings, flips, kernels):
    """(architecture, depth, pooling, flip, kernel), the NTK and NNGP of one network adjacent
    (the second reuses the first's cached kernels); Myrtle's readout is always global."""
    for architecture in architectures:
        for depth in myrtle_depths if architecture == "myrtle" else depths:
            for pooling in ["gap"] if architecture == "myrtle" else poolings:
                for flip in flips:
                    for kernel in kernels:
                        yield architecture, depth, pooling, flip, kernel


if __name__ == "__main__":
    main()
