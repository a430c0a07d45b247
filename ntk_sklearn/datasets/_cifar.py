"""CIFAR-10: 32x32 colour images of 10 classes, as pickled Python batches."""

from __future__ import annotations

import gzip
import os
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike
from sklearn.utils import Bunch

from .._memory import check_memory
from ._assemble import ImageData, assemble
from ._base import RemoteFile, fetch_remote, get_data_home
from ._npz import read_npz
from ._safe_pickle import UnsafePickleError, safe_loads

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

IMAGE_SHAPE = (32, 32, 3)
_ROW = 3 * 32 * 32
# Errors of a corrupt or truncated archive or compressed stream.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile)


def _batch_dict(raw: bytes, name: str) -> dict[str, Any]:
    """Parse one pickled batch (see :mod:`._safe_pickle`) into a dict with ``str`` keys."""
    # A batch takes about 10 opcodes per image (its label and file name): allow 32 per
    # 3072 bytes of file, so that the objects take about as much memory as the file.
    max_opcodes = 1000 + 32 * (len(raw) // _ROW)
    try:
        batch = safe_loads(raw, max_opcodes=max_opcodes)
    except UnsafePickleError as exc:
        raise ValueError(f"{name} is not a valid CIFAR batch: {exc}") from exc
    if not isinstance(batch, dict):
        raise ValueError(f"{name} is not a valid CIFAR batch: it holds no dict.")
    out = {}
    for key, value in batch.items():
        text = key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)
        if text in out:
            raise ValueError(f"{name} is not a valid CIFAR batch: key {text!r} appears twice.")
        out[text] = value
    return out


def _decode_batch(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the pixel rows (n, 3072) uint8, as stored, and labels (n,) of one batch."""
    batch = _batch_dict(raw, name)
    if "data" not in batch or "labels" not in batch:
        hint = " (it looks like CIFAR-100, which has fine_labels)" if "fine_labels" in batch else ""
        raise ValueError(
            f"CIFAR-10 batch {name} has no 'data' or 'labels' entry{hint}; found {sorted(batch)}."
        )
    data, labels = batch["data"], batch["labels"]
    if not (
        isinstance(data, np.ndarray)
        and data.dtype == np.uint8
        and data.ndim == 2
        and data.shape[0] > 0
        and data.shape[1] == _ROW
    ):
        described = (
            f"{data.dtype} array of shape {data.shape}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise ValueError(
            f"CIFAR batch {name} has data of type {described}; expected uint8 pixels of shape "
            f"(n, {_ROW})."
        )
    if isinstance(labels, np.ndarray):
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise ValueError(f"CIFAR batch {name} has labels that are not integers.")
        labels = labels.tolist()
    if not isinstance(labels, list | tuple) or any(type(y) is not int for y in labels):
        raise ValueError(f"CIFAR batch {name} has labels that are not a list of integers.")
    if len(labels) != data.shape[0]:
        raise ValueError(
            f"CIFAR batch {name} has data of shape {data.shape} and {len(labels)} labels; "
            "expected (n, 3072) and n labels."
        )
    if min(labels) < 0 or max(labels) >= len(CIFAR10_NAMES):
        raise ValueError(
            f"CIFAR batch {name} holds labels in [{min(labels)}, {max(labels)}]; CIFAR-10 "
            "labels are 0-9."
        )
    return data, np.array(labels, dtype=np.int64)


def _decode_meta(raw: bytes, name: str) -> list[str]:
    """The class names of ``batches.meta``."""
    meta = _batch_dict(raw, name)
    names = meta.get("label_names")
    if not (
        isinstance(names, list)
        and len(names) == len(CIFAR10_NAMES)
        and all(isinstance(n, bytes | str) and 0 < len(n) <= 100 for n in names)
    ):
        raise ValueError(
            f"{name} is not a valid CIFAR-10 batches.meta: label_names must be a list of "
            f"{len(CIFAR10_NAMES)} short strings."
        )
    return [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]


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
        parts.append(_decode_batch(raw, f"{source}/{name}"))
    meta = read(META)
    names = None if meta is None else _decode_meta(meta, f"{source}/{META}")
    sizes = [labels.size for _, labels in parts]
    n_total = sum(sizes)
    check_memory(
        n_total * _ROW,
        f"The CIFAR-10 images of {source}",
        "Free memory, or use a machine with more memory.",
    )
    images = np.empty((n_total, *IMAGE_SHAPE), dtype=np.uint8)
    start = 0
    for data, labels in parts:
        # Rows are the red, green and blue planes (each 32x32, row-major); make them HWC.
        images[start : start + labels.size] = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        start += labels.size
    is_test = np.arange(n_total) >= n_total - sizes[-1]
    labels = np.concatenate([labels for _, labels in parts])
    return ImageData(images, labels, is_test, names, source)


def _read_file(file: Path) -> bytes | None:
    """The bytes of a regular file (None if absent), once its size fits in memory."""
    if not file.is_file():
        return None
    check_memory(file.stat().st_size, f"Reading {file}", "Free memory.")
    return file.read_bytes()


def _read_folder(folder: Path) -> ImageData:
    return _read_batches(lambda name: _read_file(folder / name), str(folder))


def _read_tar(archive: Path) -> ImageData:
    """Read the batches from a (compressed) tar archive, in one pass, without extracting it.

    Members are read in the archive's order, each once its declared size fits in memory;
    reading stops as soon as every batch and ``batches.meta`` has been found.
    """
    wanted = {*TRAIN_BATCHES, TEST_BATCH, META}
    found: dict[str, bytes] = {}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isfile() or name not in wanted:
                    continue
                if name in found:
                    raise ValueError(f"{archive} holds two files named {name}.")
                check_memory(member.size, f"Reading {name} from {archive}", "Free memory.")
                with tar.extractfile(member) as handle:  # a regular file: never None
                    raw = handle.read(member.size)
                if len(raw) != member.size:
                    raise ValueError(f"{archive} is truncated (in {member.name}).")
                found[name] = raw
                if len(found) == len(wanted):
                    break
    except _ARCHIVE_ERRORS as exc:
        raise ValueError(f"{archive} is a corrupt or truncated archive ({exc}).") from exc
    return _read_batches(found.get, str(archive))


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
        an ``.npz`` file with ``images`` (shape (n, 32, 32, 3); ``uint8``, integers in 0-255
        or floats in [0, 1]) and ``labels`` (integers 0-9, or indices of ``class_names``)
        arrays and optionally ``is_test`` (bool or 0/1: 1 for test samples; both parts
        non-empty) and ``class_names``. Without
        ``is_test``, the samples are split into disjoint stratified train and test sets of
        ``n_train`` and ``n_test`` samples (one of them None: the rest; both None: 20 % test).
        The batches are Python pickles, but no pickle is ever run: their opcodes are
        interpreted by a reader that builds only plain data and numpy integer arrays whose
        shape, type and size it has checked, and calls nothing the file names.
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
        if ``path`` is of an unknown format, or if a file is invalid, corrupt or truncated,
        or holds anything else than 32x32x3 pixels in 0-255 and labels 0-9 (or ``class_names``
        indices); the message names the file.
    MemoryError
        If the images do not fit in the available memory (checked before allocating).
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
        image_shape=IMAGE_SHAPE,
        dataset="CIFAR-10",
    )
