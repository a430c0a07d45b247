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


def make_model(kernel, shape, window, depth, pooling, flip, dtype, memory, w_std, b_std):
    """The candidate's Pipeline of public classes."""
    pooled = (shape[0] // window, shape[1] // window, shape[2])
    return make_pipeline(
        make_image_preprocessor(shape, window=window),
        ESTIMATORS[kernel](
            architecture="conv",
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
    parser.add_argument("--flip", choices=["yes", "no"], help="flip_invariant (CIFAR: yes)")
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
    flip = defaults["flip"] if args.flip is None else args.flip == "yes"
    X, y, X_test, y_test = load_dataset(args.dataset, args.n_train, None, seed=0)
    if args.subset:
        X, y = stratified_subset(X, y, args.subset[0], seed=0)
        X_test, y_test = stratified_subset(X_test, y_test, args.subset[1], seed=0)
    shape = SHAPES[args.dataset]
    print(
        f"{args.dataset}: {len(X)} training / {len(X_test)} test images, kernels {kernels}, "
        f"depths {depths}, poolings {poolings}, flip_invariant={flip}, {args.dtype}",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as scratch:
        memory = args.memory or scratch
        rows, best = [], None
        for depth in depths:
            for pooling in poolings:
                for kernel in kernels:
                    model = make_model(
                        kernel,
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
                        "kernel": kernel,
                        "depth": depth,
                        "pooling": pooling,
                        "flip_invariant": flip,
                        "alpha": cv.alpha_,
                        "relative_alpha": float(
                            cv.alpha_ / cv.alphas_[0] * cv.get_params()["alphas"][0]
                        ),
                        "cv_accuracy": round(100 * cv.best_score_, 2),
                        "test_accuracy": round(100 * accuracy, 2),
                        "fit_seconds": round(fit_seconds, 1),
                        "kernel_seconds": round(cv.kernel_time_, 1),
                        "predict_seconds": round(test_seconds, 1),
                        "load": round(os.getloadavg()[0], 1),
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
