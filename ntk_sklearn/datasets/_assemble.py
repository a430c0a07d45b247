"""Turn loaded images into the loaders' return value: features, labels, split, Bunch.

Whatever the source, images and labels are checked here before any feature is computed:
pixels are ``uint8`` (or integers in 0-255, or finite floats in [0, 1]), labels are class
indices of the dataset, the split has both training and test samples, and each image has the
dataset's shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike
from sklearn.utils import Bunch

from .._memory import check_memory
from ._split import split_indices

__all__ = ["ImageData", "assemble"]

# Rows of features converted at a time: bounds the temporary copies to a few MiB.
_CHUNK_BYTES = 1 << 22


@dataclass
class ImageData:
    """Images and labels as read from a source, before any split or scaling.

    Construction checks the arrays (and converts integer pixels in 0-255 to ``uint8``);
    errors name ``source``.

    Attributes
    ----------
    images : ndarray of shape (n_samples, ...)
        ``uint8`` pixels (or floats already in [0, 1]).
    labels : ndarray of shape (n_samples,)
        Non-negative integer class labels.
    is_test : ndarray of shape (n_samples,) of bool, or None
        The source's own train/test split, or None if it has none.
    target_names : list of str or None
        Class names, if the source has them.
    source : str
        Where the data came from (file or folder), for the description and error messages.
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
        src = self.source
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        if images.ndim < 2 or images.shape[0] == 0:
            raise ValueError(
                f"{src}: images must have one row per sample (at least one), got shape "
                f"{images.shape}."
            )
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{src}: labels must have shape ({images.shape[0]},) to match the images, "
                f"got {labels.shape}."
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_:
            raise ValueError(f"{src}: labels must be integers, got dtype {labels.dtype}.")
        if labels.min() < 0:
            raise ValueError(f"{src}: labels must be class indices >= 0, found {labels.min()}.")
        self.images = _checked_pixels(images, src)
        self.labels = labels.astype(np.int64, copy=False)
        if self.is_test is not None:
            is_test = np.asarray(self.is_test)
            if is_test.shape != labels.shape:
                raise ValueError(
                    f"{src}: is_test must have shape {labels.shape}, got {is_test.shape}."
                )
            if is_test.dtype != np.bool_:
                if not np.issubdtype(is_test.dtype, np.integer) or np.any(
                    (is_test != 0) & (is_test != 1)
                ):
                    raise ValueError(
                        f"{src}: is_test must be bool or 0/1 integers (1 = test sample), got "
                        f"{is_test.dtype} values outside {{0, 1}}."
                    )
                is_test = is_test.astype(bool)
            n_test = int(is_test.sum())
            if n_test in (0, is_test.size):
                kind = "test" if n_test == 0 else "training"
                raise ValueError(
                    f"{src}: is_test marks no {kind} sample; the file's split needs both "
                    "training and test samples (or drop is_test to split the samples here)."
                )
            self.is_test = is_test
        if self.target_names is not None and len(self.target_names) == 0:
            raise ValueError(f"{src}: the list of class names is empty.")


def _checked_pixels(images: np.ndarray, source: str) -> np.ndarray:
    """``uint8`` images as they are; integers in 0-255 as ``uint8``; floats in [0, 1]."""
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer) and images.dtype != np.bool_:
        low, high = images.min(), images.max()
        if low < 0 or high > 255:
            raise ValueError(
                f"{source}: integer pixels must be in 0-255, found values in [{low}, {high}]."
            )
        check_memory(images.size, f"Converting the pixels of {source}", "Store uint8 pixels.")
        return images.astype(np.uint8)
    if np.issubdtype(images.dtype, np.floating):
        finite = np.isfinite(images)
        if not finite.all():
            raise ValueError(
                f"{source}: {images.size - int(finite.sum())} pixels are NaN or infinite."
            )
        low, high = images.min(), images.max()
        if low < 0 or high > 1:
            raise ValueError(
                f"{source}: float pixels must be in [0, 1], found values in [{low}, {high}]; "
                "store uint8 pixels (0-255) instead."
            )
        return images
    raise ValueError(f"{source}: images must be uint8 or floating point, got {images.dtype}.")


def _dataset_images(data: ImageData, image_shape: tuple[int, ...], dataset: str) -> np.ndarray:
    """The images as (n, *image_shape); also accepts flattened grey images, or (h, w, 1)."""
    shape = data.images.shape[1:]
    accepted = {image_shape}
    if len(image_shape) == 2:  # grey: rows of h*w pixels, or one channel
        accepted |= {(math.prod(image_shape),), (*image_shape, 1)}
    if shape not in accepted:
        raise ValueError(
            f"{data.source} holds images of shape {shape}, but {dataset} images have shape "
            f"{image_shape}: is it a file of another dataset?"
        )
    return data.images.reshape(data.images.shape[0], *image_shape)


def _features(images: np.ndarray, indices: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Rows ``indices`` of the images, flattened, as ``dtype``; ``uint8`` scaled to [0, 1].

    Converted a few MiB at a time, so that no full-size copy of the pixels is made.
    """
    flat = images.reshape(images.shape[0], -1)
    X = np.empty((indices.size, flat.shape[1]), dtype=dtype)
    rows = max(1, _CHUNK_BYTES // max(1, X.shape[1] * X.itemsize))
    for start in range(0, indices.size, rows):
        block = X[start : start + rows]
        block[...] = flat[indices[start : start + rows]]
        if images.dtype == np.uint8:
            block /= 255
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
    image_shape: tuple[int, ...],
    dataset: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | Bunch:
    """Check, split, flatten and scale ``data`` into the loaders' return value.

    See :func:`ntk_sklearn.datasets.load_mnist` for the meaning of the arguments and the
    returned value; ``image_shape`` is the shape of one image of the dataset named
    ``dataset``, and its classes are ``data.target_names`` or else ``default_target_names``.
    """
    try:
        dtype = np.dtype(dtype)
    except TypeError as exc:
        raise ValueError(f"dtype must be a floating point type, got {dtype!r}.") from exc
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating point type, got {dtype!r}.")
    images = _dataset_images(data, image_shape, dataset)
    target_names = list(data.target_names or default_target_names)
    if data.labels.max() >= len(target_names):
        raise ValueError(
            f"{data.source} holds label {data.labels.max()}, but {dataset} has "
            f"{len(target_names)} classes (labels 0-{len(target_names) - 1})."
        )
    train, test = split_indices(
        data.labels, data.is_test, n_train=n_train, n_test=n_test, random_state=random_state
    )
    check_memory(
        (train.size + test.size) * images[0].size * dtype.itemsize,
        f"The {dataset} features",
        "Pass a smaller n_train / n_test, or dtype=np.float32.",
    )
    X_train = _features(images, train, dtype)
    X_test = _features(images, test, dtype)
    y_train = data.labels[train]
    y_test = data.labels[test]
    if return_X_y:
        return X_train, y_train, X_test, y_test
    return Bunch(
        X_train=X_train,
        y_train=y_train,
        X_test=X_test,
        y_test=y_test,
        target_names=target_names,
        image_shape=image_shape,
        train_indices=train,
        test_indices=test,
        source=data.source,
        DESCR=f"{data.descr or descr}\nLoaded from: {data.source}",
    )
