"""
1-D convolutional kernels on time series (GunPoint)
===================================================

The NTK of an infinitely wide 1-D CNN (``architecture="conv1d"``: convolutions along the time
axis, ``image_shape=(length, channels)``) and of a residual 1-D network built from layers
(``FanOut``/``parallel``/``FanInSum``), against an RBF SVC tuned by cross-validation, on
GunPoint: a real UCR time-series data set (hand motions, 50 training and 150 test series of
150 steps, 2 classes) that ships inside the ``sktime`` package (``pip install sktime``; its
data files are read directly, nothing is downloaded).

Each series is standardised to zero mean and unit variance (the UCR convention). The plot
shows a few series of each class and the test accuracies.
"""

import importlib.util
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV
from sklearn.svm import SVC

from ntk_sklearn import NTKClassifier
from ntk_sklearn.kernels import (
    Conv,
    Dense,
    FanInSum,
    FanOut,
    GlobalAvgPool,
    Identity,
    Relu,
    parallel,
    serial,
)


def load_ucr(name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A univariate UCR data set from the ``.ts`` files that sktime ships (not imported)."""
    spec = importlib.util.find_spec("sktime")
    if spec is None:
        raise SystemExit("This example reads GunPoint from the sktime package: pip install sktime")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    rows, labels = [], []
    with open(folder / f"{name}_{split}.ts") as f:
        in_data = False
        for line in f:
            line = line.strip()
            if not in_data:
                in_data = line.lower() == "@data"
                continue
            if line:
                values, label = line.rsplit(":", 1)
                rows.append([float(v) for v in values.split(",")])
                labels.append(label)
    return np.array(rows), np.array(labels)


X_train, y_train = load_ucr("GunPoint", "TRAIN")
X_test, y_test = load_ucr("GunPoint", "TEST")


def standardise(x):
    return (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)


X_train, X_test = standardise(X_train), standardise(X_test)
length = X_train.shape[1]
print(f"GunPoint: {len(X_train)} train / {len(X_test)} test series of {length} steps")

models = {
    "1-D CNN NTK (conv1d, GAP)": NTKClassifier(
        architecture="conv1d",
        image_shape=(length, 1),
        depth=2,
        filter_size=9,
        pooling="gap",
        w_std=1.4,
        b_std=0.1,
        alpha=1e-3,
    ),
    "residual 1-D NTK (layers=)": NTKClassifier(
        layers=serial(
            Conv((9,)),
            FanOut(2),
            parallel(serial(Relu(), Conv((9,)), Relu(), Conv((9,))), Identity()),
            FanInSum(),
            Relu(),
            GlobalAvgPool(),
            Dense(),
        ),
        image_shape=(length, 1),
        w_std=1.4,
        b_std=0.1,
        alpha=1e-3,
    ),
    "RBF SVC (tuned)": GridSearchCV(
        SVC(), {"C": [0.1, 1, 10, 100], "gamma": ["scale", 1e-3, 1e-2, 1e-1]}, cv=5
    ),
}
scores = {}
for name, model in models.items():
    scores[name] = model.fit(X_train, y_train).score(X_test, y_test)
    print(f"{name:28s} test accuracy {scores[name]:.3f}")

fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(10, 3.5))
for label, color in zip(np.unique(y_train), ["C0", "C1"], strict=True):
    for row in X_train[y_train == label][:4]:
        ax0.plot(row, color=color, alpha=0.7)
ax0.set(title="GunPoint series (two classes)", xlabel="time step")
ax1.barh(list(scores), list(scores.values()), color=["C2", "C3", "C7"])
ax1.set(xlim=(0.5, 1.0), title="test accuracy")
fig.tight_layout()
plt.show()
