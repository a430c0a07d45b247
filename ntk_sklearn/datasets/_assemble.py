"""Turn loaded images into the loaders' return value: features, labels, split, Bunch."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike
from sklearn.utils import Bunch

from ._split import split_indices

__all__ = ["ImageData", "assemble"]


@dataclass
class ImageData:
    """Images and labels as read from a source, before any split or scaling.

    Attributes
    ----------
    images : ndarray of shape (n_samples, ...)
        ``uint8`` pixels (or floats already in [0, 1]).
    labels : ndarray of shape (n_samples,)
        Integer class labels.
    is_test : ndarray of shape (n_samples,) of bool, or None
        The source's own train/test split, or None if it has none.
    target_names : list of str or None
        Class names, if the source has them.
    source : str
        Where the data came from (file or folder), for the description.
    descr : str or None
        A description of the data; None for the loader's own description of its dataset.
    """

    images: np.ndarray
    labels: np.ndarray
    is_test: np.ndarray | None
    target_names: list[str] | None
    source: str
    descr: str | None = None

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim < 2:
            raise ValueError(f"images must have one row per sample, got shape {images.shape}.")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"labels must have shape ({images.shape[0]},) to match the images, "
                f"got {labels.shape}."
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be integers, got dtype {labels.dtype}.")
        if not (images.dtype == np.uint8 or np.issubdtype(images.dtype, np.floating)):
            raise ValueError(f"images must be uint8 or floating point, got dtype {images.dtype}.")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)
        if self.is_test is not None:
            is_test = np.asarray(self.is_test)
            if is_test.shape != labels.shape:
                raise ValueError(f"is_test must have shape {labels.shape}, got {is_test.shape}.")
            self.is_test = is_test.astype(bool)


def _features(images: np.ndarray, dtype: DTypeLike) -> np.ndarray:
    """Flatten images to rows; scale ``uint8`` pixels to [0, 1]."""
    X = images.reshape(images.shape[0], -1).astype(dtype)
    if images.dtype == np.uint8:
        X /= 255
    return X


def assemble(
    data: ImageData,
    *,
    n_train: int | None,
    n_test: int | None,
    random_state: int | np.random.RandomState | None,
    dtype: DTypeLike,
    return_X_y: bool,
    default_target_names: Sequence[str],
    descr: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | Bunch:
    """Split, flatten and scale ``data`` into the loaders' return value.

    See :func:`ntk_sklearn.datasets.load_mnist` for the meaning of the arguments and the
    returned value.
    """
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise ValueError(f"dtype must be a floating point type, got {dtype!r}.")
    train, test = split_indices(
        data.labels, data.is_test, n_train=n_train, n_test=n_test, random_state=random_state
    )
    X_train = _features(data.images[train], dtype)
    X_test = _features(data.images[test], dtype)
    y_train = data.labels[train]
    y_test = data.labels[test]
    if return_X_y:
        return X_train, y_train, X_test, y_test
    target_names = data.target_names
    if target_names is None:
        n_classes = int(data.labels.max()) + 1 if data.labels.size else 0
        if n_classes <= len(default_target_names):
            target_names = list(default_target_names)
        else:
            target_names = [str(label) for label in range(n_classes)]
    return Bunch(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        target_names=list(target_names),
        image_shape=tuple(data.images.shape[1:]),
        train_indices=train,
        test_indices=test,
        source=data.source,
        DESCR=f"{data.descr or descr}\nLoaded from: {data.source}",
    )
