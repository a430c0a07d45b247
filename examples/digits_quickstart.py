"""NTK and NNGP classifiers beside an RBF SVM on scikit-learn's digits (about a minute).

    python examples/digits_quickstart.py
"""

from __future__ import annotations

import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from ntk_sklearn import NNGPClassifier, NTKClassifier
from ntk_sklearn.preprocessing import NormScaler


def main() -> None:
    x, y = load_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.5, stratify=y, random_state=0
    )
    models = {
        "NTKClassifier": make_pipeline(NormScaler(), NTKClassifier(alpha=1e-3)),
        "NNGPClassifier": make_pipeline(NormScaler(), NNGPClassifier(alpha=1e-3)),
        "SVC(rbf)": make_pipeline(StandardScaler(), SVC()),
    }
    print(f"digits: {len(y_train)} train / {len(y_test)} test")
    for name, model in models.items():
        start = time.perf_counter()
        accuracy = model.fit(x_train, y_train).score(x_test, y_test)
        print(f"{name:>15}: accuracy {accuracy:.4f}  ({time.perf_counter() - start:.1f}s)")


if __name__ == "__main__":
    main()
