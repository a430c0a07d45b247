"""Probabilities: held-out log-loss and accuracy of the classifiers' ``predict_proba``.

Compared on digits (1,257 / 540, ``compare.py``'s split) and the shared MNIST subset
(1,000 / 2,000, seed 0), inputs through ``NormScaler``, default hyperparameters:

* ``NTKClassifier``/``NNGPClassifier().predict_proba``: ``softmax(outputs / T)``, ``T`` fitted
  by the exact leave-one-out log-loss (the shipped method);
* "Gaussian argmax": the probability, under the ensemble's Gaussian (mean outputs, the
  predicted variance for every class, independent), that each class has the largest output,
  by 2,000 Monte-Carlo draws (the alternative considered);
* ``SVC(probability=True)`` (Platt scaling by internal 5-fold CV; RBF, C=1, gamma="scale");
* ``GaussianProcessClassifier(1.0 * RBF(√d))`` and ``GaussianProcessClassifier(NNGPKernel())``
  (Laplace, one-vs-rest; the RBF starts at the inputs' scale, ``‖x‖ = √d`` after
  ``NormScaler``: from 1.0 its optimizer ran to a length scale of 8,760 and 17 % accuracy on
  digits): each kernel optimized by
  scikit-learn on a stratified 300-sample subset (one binary fit per class, median in log
  space), then fixed and fitted on all training samples (``bench_gp.tuned_gpc``; the optimizer
  on all 1,257 digits took 560 s for one binary fit). The fit time covers both stages.

    python benchmarks/bench_proba.py [--dataset digits mnist]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from bench_gp import tuned_gpc
from compare import load_dataset
from sklearn.gaussian_process.kernels import RBF
from sklearn.metrics import accuracy_score, log_loss
from sklearn.svm import SVC

from ntk_sklearn import NNGPClassifier, NTKClassifier
from ntk_sklearn.gaussian_process import NNGPKernel
from ntk_sklearn.preprocessing import NormScaler


def _validate(model, x):
    return np.asarray(x, dtype=model.X_fit_.dtype)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", nargs="+", default=["digits", "mnist"])
    args = parser.parse_args()
    for name in args.dataset:
        n_train = None if name == "digits" else 1000
        x_tr, y_tr, x_te, y_te = load_dataset(name, n_train, None, 0)
        scaler = NormScaler().fit(x_tr)
        x_tr, x_te = scaler.transform(x_tr), scaler.transform(x_te)
        print(f"{name}: {len(y_tr)} train / {len(y_te)} test")
        print(f"  {'model':36s} {'log-loss':>9s} {'accuracy':>9s} {'fit s':>7s}")
        models = {
            "NTKClassifier predict_proba": NTKClassifier(),
            "NNGPClassifier predict_proba": NNGPClassifier(),
            "SVC(probability=True)": SVC(probability=True, random_state=0),
            "GPC(1.0*RBF(sqrt(d)))": 1.0 * RBF(np.sqrt(x_tr.shape[1])),
            "GPC(NNGPKernel())": NNGPKernel(),
        }
        for label, model in models.items():
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # SVC's probability=True
                if label.startswith("GPC"):
                    model, _ = tuned_gpc(model, x_tr, y_tr, 300)
                else:
                    model.fit(x_tr, y_tr)
            seconds = time.perf_counter() - start
            proba = model.predict_proba(x_te)
            acc = accuracy_score(y_te, model.classes_[proba.argmax(1)])
            print(
                f"  {label:36s} {log_loss(y_te, proba):9.4f} {100 * acc:8.2f}% {seconds:7.1f}",
                flush=True,
            )
            if hasattr(model, "temperature_"):
                mean, var = model._posterior(_validate(model, x_te), "diag")
                rng = np.random.default_rng(0)
                draws = mean[None] + np.sqrt(np.maximum(var, 0))[None, :, None] * (
                    rng.standard_normal((2000, *mean.shape))
                )
                winner = draws.argmax(axis=2)
                counts = np.stack([(winner == c).sum(0) for c in range(mean.shape[1])], axis=1)
                alt = (counts + 0.1) / (2000 + 0.1 * mean.shape[1])
                alt_label = label.replace("predict_proba", "Gaussian argmax")
                alt_acc = 100 * accuracy_score(y_te, alt.argmax(1))
                print(
                    f"  {alt_label:36s} {log_loss(y_te, alt):9.4f} {alt_acc:8.2f}%   "
                    f"(T={model.temperature_:.3g})"
                )


if __name__ == "__main__":
    main()
