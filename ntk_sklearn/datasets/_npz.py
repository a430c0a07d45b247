"""Reader for image datasets stored as ``.npz`` files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ._assemble import ImageData

__all__ = ["read_npz"]


def read_npz(path: str | os.PathLike[str]) -> ImageData:
    """Read an ``.npz`` file with ``images`` and ``labels`` arrays.

    Optional arrays: ``is_test`` (non-zero marks a test sample; defines the split) and
    ``class_names`` (strings). The file is read with ``allow_pickle=False``.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    data : ImageData
        The images, labels, split and class names.
    """
    path = Path(path)
    with np.load(path, allow_pickle=False) as archive:
        missing = {"images", "labels"} - set(archive.files)
        if missing:
            raise ValueError(
                f"{path} has no {' or '.join(sorted(missing))} array; an image .npz needs "
                f"'images' and 'labels' (found {sorted(archive.files)})."
            )
        images = archive["images"]
        labels = archive["labels"]
        is_test = archive["is_test"] if "is_test" in archive.files else None
        names = archive["class_names"] if "class_names" in archive.files else None
    target_names = None if names is None else [str(name) for name in names.tolist()]
    split = "its own train/test split (is_test)" if is_test is not None else "no split of its own"
    descr = f"{images.shape[0]} images of shape {images.shape[1:]} from an .npz file, with {split}."
    return ImageData(images, labels, is_test, target_names, source=str(path), descr=descr)
