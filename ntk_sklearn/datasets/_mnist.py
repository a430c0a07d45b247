"""MNIST and Fashion-MNIST: 28x28 grey images of 10 classes, as IDX files."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike
from sklearn.utils import Bunch

from .._memory import check_memory
from ._assemble import ImageData, assemble
from ._base import RemoteFile, fetch_remote, get_data_home
from ._idx import read_idx, read_idx_header
from ._npz import read_npz

__all__ = ["load_fashion_mnist", "load_mnist"]

# The four IDX files of MNIST-like datasets, in the order (train images, train labels,
# test images, test labels).
IDX_NAMES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
IMAGE_SHAPE = (28, 28)


@dataclass(frozen=True)
class _IdxDataset:
    name: str
    folder: str
    files: tuple[RemoteFile, ...]
    target_names: tuple[str, ...]
    descr: str


_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"

# SHA-256 of the .gz files, as published by torchvision (pytorch/vision,
# torchvision/prototype/datasets/_builtin/mnist.py, classes MNIST and FashionMNIST) and
# used by many independent projects; the files are the same on every mirror.
MNIST = _IdxDataset(
    name="MNIST",
    folder="mnist",
    files=tuple(
        RemoteFile(f"{name}.gz", f"{_MNIST_URL}{name}.gz", sha)
        for name, sha in zip(
            IDX_NAMES,
            (
                "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
            ),
            strict=True,
        )
    ),
    target_names=tuple(str(digit) for digit in range(10)),
    descr=(
        "MNIST handwritten digits (Y. LeCun, C. Cortes, C. J. C. Burges; CC BY-SA 3.0): "
        "28x28 grey images of the digits 0-9, 60,000 for training and 10,000 for testing."
    ),
)

FASHION_MNIST = _IdxDataset(
    name="Fashion-MNIST",
    folder="fashion_mnist",
    files=tuple(
        RemoteFile(f"{name}.gz", f"{_FASHION_URL}{name}.gz", sha)
        for name, sha in zip(
            IDX_NAMES,
            (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
            ),
            strict=True,
        )
    ),
    target_names=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    descr=(
        "Fashion-MNIST (H. Xiao, K. Rasul, R. Vollgraf, Zalando Research; MIT licence): "
        "28x28 grey images of 10 kinds of clothing, 60,000 for training and 10,000 for "
        "testing."
    ),
)


def _find_idx_file(folder: Path, name: str) -> Path:
    """Find the IDX file ``name`` in ``folder``, gzip-compressed or not."""
    dotted = name.replace("-idx", ".idx")  # e.g. train-images.idx3-ubyte
    for candidate in (f"{name}.gz", name, f"{dotted}.gz", dotted):
        if (folder / candidate).is_file():
            return folder / candidate
    raise FileNotFoundError(
        f"{folder} has no {name}.gz (nor {name}); a local IDX folder needs the four files "
        f"{', '.join(n + '.gz' for n in IDX_NAMES)} (compressed or not)."
    )


def _read_idx_files(paths: list[Path], source: str, n_classes: int) -> ImageData:
    """Read (train images, train labels, test images, test labels) into one ImageData.

    The four headers are checked first (28x28 ``uint8`` images, ``uint8`` labels, as many
    labels as images); the images of both files are then read into one array allocated once.
    """
    train_images, train_labels, test_images, test_labels = paths
    counts = []
    for images, labels in ((train_images, train_labels), (test_images, test_labels)):
        n_images = read_idx_header(images, dtype=np.uint8, shape=(None, *IMAGE_SHAPE)).shape[0]
        n_labels = read_idx_header(labels, dtype=np.uint8, shape=(None,)).shape[0]
        if n_images != n_labels:
            raise ValueError(
                f"The IDX files of {source} do not match: {images.name} holds {n_images} "
                f"images but {labels.name} holds {n_labels} labels."
            )
        counts.append(n_images)
    n_train, n_total = counts[0], counts[0] + counts[1]
    check_memory(
        n_total * (math.prod(IMAGE_SHAPE) + 1),
        f"Reading the images of {source}",
        "Free memory, or use a machine with more memory.",
    )
    images = np.empty((n_total, *IMAGE_SHAPE), dtype=np.uint8)
    labels = np.empty(n_total, dtype=np.uint8)
    for part, (image_file, label_file) in zip(
        (slice(0, n_train), slice(n_train, n_total)),
        ((train_images, train_labels), (test_images, test_labels)),
        strict=True,
    ):
        read_idx(image_file, dtype=np.uint8, shape=(None, *IMAGE_SHAPE), out=images[part])
        read_idx(label_file, dtype=np.uint8, shape=(None,), out=labels[part])
        if labels[part].size and labels[part].max() >= n_classes:
            raise ValueError(
                f"{label_file} holds label {labels[part].max()}; the labels of this dataset "
                f"are 0-{n_classes - 1}."
            )
    is_test = np.arange(n_total) >= n_train
    return ImageData(images, labels, is_test, None, source)


def _read_local(path: str | os.PathLike[str], n_classes: int) -> ImageData:
    path = Path(path).expanduser()
    if path.is_dir():
        files = [_find_idx_file(path, name) for name in IDX_NAMES]
        return _read_idx_files(files, str(path), n_classes)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: {path}")
    if path.suffix.lower() == ".npz":
        return read_npz(path)
    raise ValueError(
        f"Unknown file format: {path}. Pass a folder with the four IDX files "
        f"({', '.join(n + '.gz' for n in IDX_NAMES)}) or an .npz file with 'images' and "
        "'labels' arrays."
    )


def _load_idx_dataset(
    dataset: _IdxDataset,
    *,
    n_train: int | None,
    n_test: int | None,
    random_state: int | np.random.RandomState | None,
    data_home: str | os.PathLike[str] | None,
    path: str | os.PathLike[str] | None,
    download_if_missing: bool,
    timeout: float | None,
    dtype: DTypeLike,
    return_X_y: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | Bunch:
    n_classes = len(dataset.target_names)
    if path is not None:
        data = _read_local(path, n_classes)
    else:
        folder = get_data_home(data_home) / dataset.folder
        paths = [
            fetch_remote(
                remote,
                folder,
                dataset=dataset.name,
                download_if_missing=download_if_missing,
                timeout=timeout,
            )
            for remote in dataset.files
        ]
        data = _read_idx_files(paths, str(folder), n_classes)
    return assemble(
        data,
        n_train=n_train,
        n_test=n_test,
        random_state=random_state,
        dtype=dtype,
        return_X_y=return_X_y,
        default_target_names=dataset.target_names,
        descr=dataset.descr,
        image_shape=IMAGE_SHAPE,
        dataset=dataset.name,
    )


def load_mnist(
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
    """Load the MNIST handwritten digits (10 classes, 28x28 grey images).

    By default the four IDX files are downloaded once from
    ``https://ossci-datasets.s3.amazonaws.com/mnist/`` into ``data_home/mnist``, and their
    published SHA-256 checksums are verified. Pass ``path`` to read local files instead.

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
        The cache folder; by default ``~/scikit_learn_data/ntk_sklearn`` (see
        :func:`get_data_home`).
    path : str or path-like, default=None
        Load this local file or folder instead of the cache: a folder with the four IDX files
        (``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``, compressed or not), or
        an ``.npz`` file with ``images`` (shape (n, 28, 28), (n, 784) or (n, 28, 28, 1);
        ``uint8``, integers in 0-255 or floats in [0, 1]) and ``labels`` (integers 0-9, or
        indices of ``class_names``) arrays and optionally ``is_test`` (bool or 0/1: 1 for
        test samples; both parts non-empty) and ``class_names``. Without
        ``is_test``, the samples are split into disjoint stratified train and test sets of
        ``n_train`` and ``n_test`` samples (one of them None: the rest; both None: 20 % test).
    download_if_missing : bool, default=True
        If False, raise :class:`FileNotFoundError` when the files are not in the cache.
    timeout : float or None, default=60.0
        Seconds to wait for the connection and each read of a download.
    dtype : floating dtype, default=np.float32
        Type of the returned features. The pixels stay ``uint8`` until this conversion,
        done a few MiB at a time: the peak memory is the ``uint8`` images plus the result.
    return_X_y : bool, default=True
        If True, return the tuple ``(X_train, y_train, X_test, y_test)``; otherwise a
        :class:`~sklearn.utils.Bunch`.

    Returns
    -------
    X_train : ndarray of shape (n_train, 784)
        Flattened images (row-major), ``uint8`` pixels divided by 255 into [0, 1].
    y_train : ndarray of shape (n_train,) of int64
        Digit labels 0-9.
    X_test : ndarray of shape (n_test, 784)
        Test images, like ``X_train``.
    y_test : ndarray of shape (n_test,) of int64
        Test labels.
    data : :class:`~sklearn.utils.Bunch`
        Returned instead when ``return_X_y=False``, with the four arrays above as attributes
        ``X_train``, ``y_train``, ``X_test``, ``y_test``, and ``target_names`` (class names),
        ``image_shape`` (``(28, 28)``), ``train_indices`` and ``test_indices`` (rows of the
        source, train samples first then test samples, that were selected), ``source`` and
        ``DESCR``.

    Raises
    ------
    ValueError
        If ``n_train`` or ``n_test`` is not positive or larger than the samples available,
        if ``path`` is of an unknown format, or if a file is invalid, corrupt or truncated,
        or holds anything else than 28x28 grey pixels in 0-255 and labels 0-9 (or
        ``class_names`` indices); the message names the file.
    MemoryError
        If the images do not fit in the available memory (checked before allocating).
    DownloadError
        If the files must be downloaded and cannot be (for instance offline).
    ChecksumError
        If a downloaded file does not have its published checksum (it is deleted).

    Examples
    --------
    >>> from ntk_sklearn.datasets import load_mnist
    >>> X_train, y_train, X_test, y_test = load_mnist(
    ...     n_train=1000, n_test=500, random_state=0)  # doctest: +SKIP
    >>> X_train.shape, X_test.shape  # doctest: +SKIP
    ((1000, 784), (500, 784))
    """
    return _load_idx_dataset(
        MNIST,
        n_train=n_train,
        n_test=n_test,
        random_state=random_state,
        data_home=data_home,
        path=path,
        download_if_missing=download_if_missing,
        timeout=timeout,
        dtype=dtype,
        return_X_y=return_X_y,
    )


def load_fashion_mnist(
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
    """Load Fashion-MNIST (10 classes of clothing, 28x28 grey images).

    By default the four IDX files are downloaded once from Zalando's
    ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/`` into
    ``data_home/fashion_mnist``, and their published SHA-256 checksums are verified (the
    server is plain HTTP, so the checksum is what guarantees the content). Pass ``path`` to
    read local files instead.

    The parameters, the returned values and the errors are those of :func:`load_mnist`;
    ``y`` holds the class indices of ``target_names`` (``"T-shirt/top"``, ``"Trouser"``,
    ..., ``"Ankle boot"``).

    Parameters
    ----------
    n_train : int, default=None
        Number of training samples (stratified random subset); None keeps all, in order.
    n_test : int, default=None
        Number of test samples, chosen like ``n_train``.
    random_state : int, RandomState instance or None, default=None
        Seed of the stratified subsets.
    data_home : str or path-like, default=None
        The cache folder; by default ``~/scikit_learn_data/ntk_sklearn``.
    path : str or path-like, default=None
        A local folder with the four IDX files or an ``.npz`` file (see :func:`load_mnist`).
    download_if_missing : bool, default=True
        If False, raise :class:`FileNotFoundError` when the files are not in the cache.
    timeout : float or None, default=60.0
        Seconds to wait for the connection and each read of a download.
    dtype : floating dtype, default=np.float32
        Type of the returned features.
    return_X_y : bool, default=True
        If True, return ``(X_train, y_train, X_test, y_test)``; otherwise a Bunch.

    Returns
    -------
    X_train, y_train, X_test, y_test : ndarray
        Features of shape (n, 784) in [0, 1] and int64 labels 0-9, or a
        :class:`~sklearn.utils.Bunch` when ``return_X_y=False`` (see :func:`load_mnist`).

    Examples
    --------
    >>> from ntk_sklearn.datasets import load_fashion_mnist
    >>> data = load_fashion_mnist(n_train=100, return_X_y=False)  # doctest: +SKIP
    >>> data.target_names[9]  # doctest: +SKIP
    'Ankle boot'
    """
    return _load_idx_dataset(
        FASHION_MNIST,
        n_train=n_train,
        n_test=n_test,
        random_state=random_state,
        data_home=data_home,
        path=path,
        download_if_missing=download_if_missing,
        timeout=timeout,
        dtype=dtype,
        return_X_y=return_X_y,
    )
