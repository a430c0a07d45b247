"""CIFAR-10: 32x32 colour images of 10 classes, as pickled Python batches."""

from __future__ import annotations

import io
import os
import pickle
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from sklearn.utils import Bunch

from ._assemble import ImageData, assemble
from ._base import RemoteFile, fetch_remote, get_data_home
from ._npz import read_npz

__all__ = ["load_cifar10"]

# SHA-256 of the archive as published by Keras (keras-team/keras,
# keras/src/datasets/cifar10.py, ``file_hash``) and torchvision (pytorch/vision,
# torchvision/prototype/datasets/_builtin/cifar.py); the author's page gives its MD5,
# c58f30108f718f92721af3b95e74349a.
CIFAR10_ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
)
BATCHES_FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META = "batches.meta"
CIFAR10_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_DESCR = (
    "CIFAR-10 (A. Krizhevsky, 2009): 32x32 colour images of 10 classes, 50,000 for training "
    "and 10,000 for testing. Features are in (height, width, channel) order: "
    "X.reshape(-1, 32, 32, 3) gives the images."
)


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler for CIFAR batches: allows only the few names that arrays and bytes need."""

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            # Python 3 pickles ``bytes`` with protocol 2 as ``_codecs.encode(str, "latin1")``.
            ("_codecs", "encode"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(
                f"CIFAR batch refers to {module}.{name}, which a CIFAR batch never needs."
            )
        # Batches pickled by numpy 1.x name ``numpy.core``, which numpy 2 renamed.
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        return super().find_class(module, name)


def _unpickle(raw: bytes) -> dict[str, Any]:
    """Load a CIFAR batch (pickled by Python 2 or 3) into a dict with ``str`` keys."""
    batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    if not isinstance(batch, dict):
        raise ValueError("A CIFAR batch must hold a dict.")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in batch.items()}


def _decode_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the images (n, 32, 32, 3) uint8 and labels (n,) of one batch."""
    batch = _unpickle(raw)
    if "data" not in batch or "labels" not in batch:
        raise ValueError(f"CIFAR batch {name} has no 'data' or 'labels' entry.")
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != labels.shape[0]:
        raise ValueError(
            f"CIFAR batch {name} has data of shape {data.shape} and {labels.shape[0]} "
            "labels; expected (n, 3072) and n labels."
        )
    # Rows are the red, green and blue planes (each 32x32, row-major); make them HWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _read_batches(read: Callable[[str], bytes | None], source: str) -> ImageData:
    """Read the CIFAR-10 batches through ``read(name)`` (None when a file is absent)."""
    parts = []
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        raw = read(name)
        if raw is None:
            raise FileNotFoundError(
                f"{source} has no CIFAR-10 batch {name!r}; expected the batches "
                f"{', '.join((*TRAIN_BATCHES, TEST_BATCH))}."
            )
        parts.append(_decode_batch(raw, name))
    meta = read(META)
    names = None
    if meta is not None:
        names = [
            n.decode() if isinstance(n, bytes) else str(n)
            for n in _unpickle(meta).get("label_names", [])
        ] or None
    is_test = np.concatenate(
        [
            np.full(labels.size, name == TEST_BATCH)
            for name, (_, labels) in zip((*TRAIN_BATCHES, TEST_BATCH), parts, strict=True)
        ]
    )
    return ImageData(
        np.concatenate([images for images, _ in parts]),
        np.concatenate([labels for _, labels in parts]),
        is_test,
        names,
        source,
    )


def _read_folder(folder: Path) -> ImageData:
    def read(name: str) -> bytes | None:
        file = folder / name
        return file.read_bytes() if file.is_file() else None

    return _read_batches(read, str(folder))


def _read_tar(archive: Path) -> ImageData:
    with tarfile.open(archive, "r:*") as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}

        def read(name: str) -> bytes | None:
            member = members.get(name)
            if member is None:
                return None
            handle = tar.extractfile(member)
            return None if handle is None else handle.read()

        return _read_batches(read, str(archive))


def _read_local(path: str | os.PathLike[str]) -> ImageData:
    path = Path(path).expanduser()
    if path.is_dir():
        if (path / TRAIN_BATCHES[0]).is_file():
            return _read_folder(path)
        if (path / BATCHES_FOLDER).is_dir():
            return _read_folder(path / BATCHES_FOLDER)
        if (path / CIFAR10_ARCHIVE.filename).is_file():
            return _read_tar(path / CIFAR10_ARCHIVE.filename)
        raise FileNotFoundError(
            f"{path} holds neither the CIFAR-10 python batches ({BATCHES_FOLDER}/"
            f"{TRAIN_BATCHES[0]}, ...) nor {CIFAR10_ARCHIVE.filename}."
        )
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    name = path.name.lower()
    if name.endswith(".npz"):
        return read_npz(path)
    if name.endswith((".tar.gz", ".tgz", ".tar")):
        return _read_tar(path)
    raise ValueError(
        f"Unknown file format: {path}. Pass the folder {BATCHES_FOLDER!r} (or its parent), "
        f"the archive {CIFAR10_ARCHIVE.filename!r}, or an .npz file with 'images' and "
        "'labels' arrays."
    )


def load_cifar10(
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    random_state: int | np.random.RandomState | None = None,
    data_home: str | os.PathLike[str] | None = None,
    path: str | os.PathLike[str] | None = None,
    download_if_missing: bool = True,
    timeout: float | None = 60.0,
    dtype: DTypeLike = np.float32,
    return_X_y: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | Bunch:
    """Load CIFAR-10 (10 classes, 32x32 colour images).

    By default the archive ``cifar-10-python.tar.gz`` (163 MiB) is downloaded once from
    ``https://www.cs.toronto.edu/~kriz/`` into ``data_home/cifar10``, its published SHA-256
    checksum is verified, and the batches are read from the archive without extracting it.
    Pass ``path`` to read local files instead.

    Parameters
    ----------
    n_train : int, default=None
        Number of training samples: a stratified random subset of the training set. None
        keeps the whole training set in its original order.
    n_test : int, default=None
        Number of test samples, chosen like ``n_train`` from the test set.
    random_state : int, RandomState instance or None, default=None
        Seed of the stratified subsets; pass an int for reproducible subsets.
    data_home : str or path-like, default=None
        The cache folder; by default ``~/scikit_learn_data/ntk_sklearn``.
    path : str or path-like, default=None
        Load this local file or folder instead: the folder ``cifar-10-batches-py`` of the
        python batches (or a folder holding it), the archive ``cifar-10-python.tar.gz``, or
        an ``.npz`` file with ``images`` (uint8, shape (n, 32, 32, 3)) and ``labels`` arrays
        and optionally ``is_test`` (non-zero for test samples) and ``class_names``. Without
        ``is_test``, the samples are split into disjoint stratified train and test sets of
        ``n_train`` and ``n_test`` samples (one of them None: the rest; both None: 20 % test).
        The batches are Python pickles; they are read with an unpickler that only accepts
        numpy arrays, lists and dicts.
    download_if_missing : bool, default=True
        If False, raise :class:`FileNotFoundError` when the archive is not in the cache.
    timeout : float or None, default=60.0
        Seconds to wait for the connection and each read of the download.
    dtype : floating dtype, default=np.float32
        Type of the returned features.
    return_X_y : bool, default=True
        If True, return the tuple ``(X_train, y_train, X_test, y_test)``; otherwise a
        :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    X_train : ndarray of shape (n_train, 3072)
        Flattened images in (height, width, channel) order, so that
        ``X_train.reshape(-1, 32, 32, 3)`` gives the images; ``uint8`` pixels divided by
        255 into [0, 1].
    y_train : ndarray of shape (n_train,) of int64
        Class labels 0-9.
    X_test : ndarray of shape (n_test, 3072)
        Test images, like ``X_train``.
    y_test : ndarray of shape (n_test,) of int64
        Test labels.
    data : :class:`~sklearn.utils.Bunch`
        Returned instead when ``return_X_y=False``: the four arrays above as attributes
        ``X_train``, ``y_train``, ``X_test``, ``y_test``, and ``target_names`` (class names,
        from ``batches.meta`` or the ``.npz`` ``class_names``), ``image_shape``
        (``(32, 32, 3)``), ``train_indices`` and ``test_indices`` (selected rows of the
        source, train samples first then test samples), ``source`` and ``DESCR``.

    Raises
    ------
    ValueError
        If ``n_train`` or ``n_test`` is not positive or larger than the samples available,
        or if ``path`` is of an unknown format.
    DownloadError
        If the archive must be downloaded and cannot be (for instance offline).
    ChecksumError
        If the downloaded archive does not have its published checksum (it is deleted).

    Examples
    --------
    >>> from ntk_sklearn.datasets import load_cifar10
    >>> X_train, y_train, X_test, y_test = load_cifar10(
    ...     n_train=500, n_test=100, random_state=0)  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (500, 3072)
    """
    if path is not None:
        data = _read_local(path)
    else:
        archive = fetch_remote(
            CIFAR10_ARCHIVE,
            get_data_home(data_home) / "cifar10",
            dataset="CIFAR-10",
            download_if_missing=download_if_missing,
            timeout=timeout,
        )
        data = _read_tar(archive)
    return assemble(
        data,
        n_train=n_train,
        n_test=n_test,
        random_state=random_state,
        dtype=dtype,
        return_X_y=return_X_y,
        default_target_names=CIFAR10_NAMES,
        descr=_DESCR,
    )
