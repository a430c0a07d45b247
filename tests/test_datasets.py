"""Tests of the dataset loaders: local files (written here or shared), downloads (faked)."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from conftest import CONV_REFERENCE, FC_REFERENCE, VENDORED, load_reference, reference_path
from sklearn.utils import Bunch

from ntk_sklearn import _memory
from ntk_sklearn.datasets import (
    ChecksumError,
    DownloadError,
    _assemble,
    _base,
    _cifar,
    _idx,
    _mnist,
    _npz,
    get_data_home,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
)
from ntk_sklearn.datasets._base import RemoteFile, fetch_remote, sha256sum
from ntk_sklearn.datasets._idx import read_idx

IDX_NAMES = _mnist.IDX_NAMES
N_CLASSES = 10


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """No test may reach the network, nor write into the user's scikit-learn data folder."""

    def forbidden(url, *args, **kwargs):
        raise AssertionError(f"a test tried to download {url}")

    monkeypatch.setattr(_base, "urlopen", forbidden)
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "sklearn_home"))


def _fake_images(rng, n, shape):
    return rng.integers(0, 256, size=(n, *shape), dtype=np.uint8)


def _balanced_labels(rng, n):
    return rng.permutation(np.arange(n) % N_CLASSES).astype(np.uint8)


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    """Write ``array`` (uint8) as an IDX file with a real header."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture
def idx_arrays():
    rng = np.random.default_rng(0)
    return (
        _fake_images(rng, 60, (28, 28)),
        _balanced_labels(rng, 60),
        _fake_images(rng, 30, (28, 28)),
        _balanced_labels(rng, 30),
    )


def write_idx_folder(folder: Path, arrays, *, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in zip(IDX_NAMES, arrays, strict=True):
        write_idx(folder / (f"{name}.gz" if compress else name), array, compress=compress)
    return folder


@pytest.fixture
def cifar_arrays():
    """Six batches of (images HWC, labels): five training batches then the test batch."""
    rng = np.random.default_rng(1)
    return [(_fake_images(rng, 20, (32, 32, 3)), _balanced_labels(rng, 20)) for _ in range(6)]


def _batch_bytes(images, labels, *, protocol: int, numpy1: bool = False) -> bytes:
    # The real batches hold the red, green and blue planes of each image, one row per image.
    data = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
    raw = pickle.dumps({b"data": data, b"labels": labels.tolist()}, protocol=protocol)
    if numpy1:  # as pickled by numpy 1.x, like the published files
        assert b"numpy._core.multiarray\n" in raw
        raw = raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    return raw


CIFAR_NAMES = [f"class_{i}" for i in range(N_CLASSES)]
PROTOCOLS = (4, 2, 0, 5, 3, 1)


def write_cifar_folder(parent: Path, batches) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [*_cifar.TRAIN_BATCHES, _cifar.TEST_BATCH]
    for i, (name, (images, labels)) in enumerate(zip(names, batches, strict=True)):
        # Every pickle protocol; 2 with numpy 1.x's module names, as in the published files.
        raw = _batch_bytes(images, labels, protocol=PROTOCOLS[i], numpy1=i == 1)
        (folder / name).write_bytes(raw)
    meta = {b"label_names": [n.encode() for n in CIFAR_NAMES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return folder


def _expected_cifar(batches):
    train = batches[:5]
    X_train = np.concatenate([im for im, _ in train]).reshape(100, -1) / 255
    y_train = np.concatenate([lab for _, lab in train])
    X_test = batches[5][0].reshape(20, -1) / 255
    return X_train, y_train, X_test, batches[5][1]


def _rows(X):
    return {row.tobytes() for row in X}


def _assert_stratified(y_subset, y_population):
    """Class counts of the subset match the population's proportions within one sample."""
    proportions = np.bincount(y_population, minlength=N_CLASSES) / y_population.size
    counts = np.bincount(y_subset, minlength=N_CLASSES)
    np.testing.assert_array_less(np.abs(counts - proportions * y_subset.size), 1.0 + 1e-9)


# --------------------------------------------------------------------------- IDX files


def test_read_idx_header_and_big_endian_types(tmp_path):
    values = np.arange(-6, 6, dtype=">i4").reshape(3, 4)
    header = bytes([0, 0, 0x0C, 2]) + np.array([3, 4], dtype=">u4").tobytes()
    (tmp_path / "a.idx").write_bytes(header + values.tobytes())
    out = read_idx(tmp_path / "a.idx")
    assert out.shape == (3, 4)
    np.testing.assert_array_equal(out, np.arange(-6, 6).reshape(3, 4))


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"\x01\x02\x08\x01" + b"\x00" * 8, "not an IDX file"),
        (bytes([0, 0, 0x08, 3]) + b"\x00\x00", "truncated"),
        (bytes([0, 0, 0x08, 1]) + np.array([5], dtype=">u4").tobytes() + b"\x00" * 4, "bytes"),
    ],
)
def test_read_idx_rejects_invalid_files(tmp_path, payload, message):
    (tmp_path / "bad").write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("compress", [True, False])
def test_load_mnist_from_idx_folder(tmp_path, idx_arrays, compress):
    folder = write_idx_folder(tmp_path / "mnist", idx_arrays, compress=compress)
    X_train, y_train, X_test, y_test = load_mnist(path=folder)
    train_images, train_labels, test_images, test_labels = idx_arrays
    assert X_train.shape == (60, 784) and X_test.shape == (30, 784)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    # Without n_train/n_test, the whole splits come back in file order, scaled to [0, 1].
    np.testing.assert_array_equal(X_train, train_images.reshape(60, -1).astype(np.float32) / 255)
    np.testing.assert_array_equal(X_test, test_images.reshape(30, -1).astype(np.float32) / 255)
    np.testing.assert_array_equal(y_train, train_labels)
    np.testing.assert_array_equal(y_test, test_labels)
    assert X_train.min() == 0.0 and X_train.max() == 1.0


def test_load_fashion_mnist_subsets_and_bunch(tmp_path, idx_arrays):
    folder = write_idx_folder(tmp_path / "fashion", idx_arrays)
    data = load_fashion_mnist(
        path=folder, n_train=20, n_test=10, random_state=0, dtype=np.float64, return_X_y=False
    )
    assert isinstance(data, Bunch)
    assert data.X_train.shape == (20, 784) and data.X_train.dtype == np.float64
    assert data.X_test.shape == (10, 784)
    assert data.target_names[0] == "T-shirt/top" and data.target_names[9] == "Ankle boot"
    assert data.image_shape == (28, 28)
    # 6 (resp. 3) of each class in the file: a stratified subset of 20 (10) has 2 (1) each.
    np.testing.assert_array_equal(np.bincount(data.y_train), np.full(N_CLASSES, 2))
    np.testing.assert_array_equal(np.bincount(data.y_test), np.ones(N_CLASSES))
    # The indices refer to the training images followed by the test images.
    images = np.concatenate([idx_arrays[0], idx_arrays[2]]).reshape(90, -1) / 255
    np.testing.assert_array_equal(data.X_train, images[data.train_indices])
    np.testing.assert_array_equal(data.X_test, images[data.test_indices])
    assert data.train_indices.max() < 60 and data.test_indices.min() >= 60


def test_idx_folder_with_a_missing_file(tmp_path, idx_arrays):
    folder = write_idx_folder(tmp_path / "mnist", idx_arrays)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist(path=folder)


def test_idx_files_that_do_not_match(tmp_path, idx_arrays):
    arrays = list(idx_arrays)
    arrays[1] = arrays[1][:-1]  # one training label short
    folder = write_idx_folder(tmp_path / "mnist", arrays)
    with pytest.raises(ValueError, match="do not match"):
        load_mnist(path=folder)


# --------------------------------------------------------------------------- CIFAR batches


@pytest.mark.parametrize("where", ["batches folder", "parent folder", "tar.gz"])
def test_load_cifar10_from_python_batches(tmp_path, cifar_arrays, where):
    folder = write_cifar_folder(tmp_path / "src", cifar_arrays)
    if where == "batches folder":
        path = folder
    elif where == "parent folder":
        path = folder.parent
    else:
        path = tmp_path / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            tar.add(folder, arcname="cifar-10-batches-py")
    data = load_cifar10(path=path, return_X_y=False)
    X_train, y_train, X_test, y_test = _expected_cifar(cifar_arrays)
    assert data.X_train.shape == (100, 3072) and data.X_test.shape == (20, 3072)
    assert data.X_train.dtype == np.float32
    # Features are in (height, width, channel) order.
    np.testing.assert_allclose(data.X_train, X_train, rtol=1e-6)
    np.testing.assert_allclose(data.X_test, X_test, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train, y_train)
    np.testing.assert_array_equal(data.y_test, y_test)
    assert data.target_names == CIFAR_NAMES
    assert data.image_shape == (32, 32, 3)


def _python2_batch(rows: np.ndarray, labels: list[int]) -> bytes:
    """A batch as cPickle (protocol 2) wrote the published files: Python 2 ``str`` opcodes."""

    def string(text: bytes) -> bytes:  # SHORT_BINSTRING, or BINSTRING past 255 bytes
        if len(text) < 256:
            return b"U" + bytes([len(text)]) + text
        return b"T" + struct.pack("<I", len(text)) + text

    n = rows.shape[0]
    dtype = (
        b"cnumpy\ndtype\n"
        + string(b"u1")
        + b"K\x00K\x01\x87R"
        + b"(K\x03"
        + string(b"|")
        + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    array = (
        b"cnumpy.core.multiarray\n_reconstruct\nq\x01cnumpy\nndarray\nK\x00\x85"
        + string(b"b")
        + b"\x87R"
        + b"(K\x01M"
        + struct.pack("<H", n)
        + b"M\x00\x0c\x86"
        + dtype
        + b"\x89"
        + string(rows.tobytes())
        + b"tb"
    )
    items = b"(K" + b"K".join(bytes([y]) for y in labels) + b"e"
    return (
        b"\x80\x02}q\x00(" + string(b"data") + array
        + string(b"labels") + b"]" + items
        + string(b"batch_label") + string(b"training batch 1 of 5") + b"u."
    )  # fmt: skip


def test_cifar_batches_as_published_by_python2(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    names = [*_cifar.TRAIN_BATCHES, _cifar.TEST_BATCH]
    for name, (images, labels) in zip(names, cifar_arrays, strict=True):
        rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
        (folder / name).write_bytes(_python2_batch(rows, labels.tolist()))
    X_train, y_train, X_test, y_test = load_cifar10(path=folder)
    expected = _expected_cifar(cifar_arrays)
    for actual, wanted in zip((X_train, y_train, X_test, y_test), expected, strict=True):
        np.testing.assert_allclose(actual, wanted, rtol=1e-6)
    # The batch is what the real unpickler reads too.
    batch = pickle.loads(_python2_batch(rows, labels.tolist()), encoding="bytes")
    np.testing.assert_array_equal(batch[b"data"], rows)


def test_cifar_batches_cannot_run_code(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [datetime.date(2020, 1, 1)]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_3 .*datetime\.date"):
        load_cifar10(path=folder)


def test_cifar_batch_of_wrong_shape(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    bad = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "test_batch").write_bytes(pickle.dumps(bad))
    with pytest.raises(ValueError, match="test_batch"):
        load_cifar10(path=folder)


# --------------------------------------------------------------------------- npz files


def test_shared_mnist_npz_stratified_disjoint_deterministic(shared):
    path = shared / "data" / "mnist-10k.npz"
    X_train, y_train, X_test, y_test = load_mnist(
        path=path, n_train=1000, n_test=2000, random_state=0
    )
    assert X_train.shape == (1000, 784) and X_test.shape == (2000, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= X_train.min() and X_train.max() <= 1.0 and X_train.max() > 0.99
    with np.load(path) as npz:
        labels = npz["labels"].astype(np.int64)
        images = npz["images"]
    _assert_stratified(y_train, labels)
    _assert_stratified(y_test, labels)
    # The 10,000 images are distinct, so disjoint splits share no row.
    assert not _rows(X_train) & _rows(X_test)
    # Every returned row is an image of the file with its own label.
    data = load_mnist(path=path, n_train=1000, n_test=2000, random_state=0, return_X_y=False)
    np.testing.assert_array_equal(data.X_train, X_train)
    np.testing.assert_array_equal(
        data.X_train, images[data.train_indices].reshape(1000, -1).astype(np.float32) / 255
    )
    np.testing.assert_array_equal(data.y_test, labels[data.test_indices])
    assert not set(data.train_indices) & set(data.test_indices)
    # Same seed, same subsets; another seed, other subsets.
    again = load_mnist(path=path, n_train=1000, n_test=2000, random_state=0)
    for a, b in zip((X_train, y_train, X_test, y_test), again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = load_mnist(path=path, n_train=1000, n_test=2000, random_state=1)
    assert _rows(other[0]) != _rows(X_train)


def test_shared_cifar_npz_uses_its_own_split(shared):
    path = shared / "data" / "cifar100-10class-2k.npz"
    data = load_cifar10(path=path, return_X_y=False)
    assert data.X_train.shape == (1000, 3072) and data.X_test.shape == (834, 3072)
    assert data.X_train.dtype == np.float32
    assert 0.0 <= data.X_train.min() and data.X_test.max() <= 1.0
    with np.load(path) as npz:
        is_test = npz["is_test"].astype(bool)
        images = npz["images"]
        labels = npz["labels"]
        names = [str(n) for n in npz["class_names"]]
    # Without n_train/n_test, the file's own split, in file order.
    np.testing.assert_array_equal(data.y_train, labels[~is_test])
    np.testing.assert_array_equal(data.y_test, labels[is_test])
    np.testing.assert_array_equal(
        data.X_test, images[is_test].reshape(834, -1).astype(np.float32) / 255
    )
    assert data.target_names == names
    assert data.image_shape == (32, 32, 3)
    # Subsets are drawn from the file's own parts, stratified (100 per class in train).
    X_train, y_train, X_test, y_test = load_cifar10(
        path=path, n_train=200, n_test=100, random_state=3
    )
    np.testing.assert_array_equal(np.bincount(y_train), np.full(N_CLASSES, 20))
    _assert_stratified(y_test, labels[is_test])
    assert _rows(X_train) <= _rows(data.X_train)
    assert _rows(X_test) <= _rows(data.X_test)


def _write_npz(path, n=200, with_split=False, **extra):
    rng = np.random.default_rng(2)
    arrays = {"images": _fake_images(rng, n, (28, 28)), "labels": _balanced_labels(rng, n)}
    if with_split:
        arrays["is_test"] = (np.arange(n) % 4 == 0).astype(np.uint8)
    np.savez(path, **arrays, **extra)
    return arrays


def test_npz_without_split_default_sizes(tmp_path):
    arrays = _write_npz(tmp_path / "d.npz")
    X_train, y_train, X_test, y_test = load_mnist(path=tmp_path / "d.npz", random_state=0)
    assert (len(y_train), len(y_test)) == (160, 40)  # 20 % test
    assert X_train.shape == (160, 784)
    assert not _rows(X_train) & _rows(X_test)
    np.testing.assert_array_equal(np.bincount(y_test), np.full(N_CLASSES, 4))
    # A single size takes the rest for the other set.
    _, y_train, _, y_test = load_mnist(path=tmp_path / "d.npz", n_train=50, random_state=0)
    assert (len(y_train), len(y_test)) == (50, 150)
    _, y_train, _, y_test = load_mnist(path=tmp_path / "d.npz", n_test=30, random_state=0)
    assert (len(y_train), len(y_test)) == (170, 30)
    # Default class names of the loader when the file has none.
    data = load_mnist(path=tmp_path / "d.npz", random_state=0, return_X_y=False)
    assert data.target_names == [str(d) for d in range(10)]
    assert data.image_shape == arrays["images"].shape[1:]


def test_npz_random_state_instance_and_float_dtype(tmp_path):
    _write_npz(tmp_path / "d.npz")
    rng = np.random.RandomState(0)
    first = load_mnist(path=tmp_path / "d.npz", n_train=50, n_test=50, random_state=rng)
    second = load_mnist(path=tmp_path / "d.npz", n_train=50, n_test=50, random_state=rng)
    assert _rows(first[0]) != _rows(second[0])  # the generator moved on
    X64 = load_mnist(path=tmp_path / "d.npz", dtype=np.float64, random_state=0)[0]
    assert X64.dtype == np.float64


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 0}, "n_train must be a positive integer"),
        ({"n_test": -3}, "n_test must be a positive integer"),
        ({"n_train": 2.5}, "n_train must be a positive integer"),
        ({"n_train": True}, "n_train must be a positive integer"),
        ({"n_train": 151}, "n_train=151 is larger than the 150 training samples"),
        ({"n_test": 51}, "n_test=51 is larger than the 50 test samples"),
        ({"dtype": np.int32}, "dtype must be a floating point type"),
    ],
)
def test_invalid_sizes_with_a_fixed_split(tmp_path, kwargs, message):
    _write_npz(tmp_path / "d.npz", with_split=True)
    with pytest.raises(ValueError, match=message):
        load_mnist(path=tmp_path / "d.npz", **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_train": 150, "n_test": 51}, r"n_train \+ n_test = 150 \+ 51 is larger than the 200"),
        ({"n_train": 200}, "n_train=200 must be smaller than the 200 samples"),
        ({"n_test": 250}, "n_test=250 must be smaller than the 200 samples"),
    ],
)
def test_invalid_sizes_without_a_split(tmp_path, kwargs, message):
    _write_npz(tmp_path / "d.npz")
    with pytest.raises(ValueError, match=message):
        load_mnist(path=tmp_path / "d.npz", **kwargs)


def test_sizes_using_every_sample_without_a_split(tmp_path):
    _write_npz(tmp_path / "d.npz")
    _, y_train, _, y_test = load_mnist(path=tmp_path / "d.npz", n_train=150, n_test=50)
    assert (len(y_train), len(y_test)) == (150, 50)


@pytest.mark.parametrize("loader", [load_mnist, load_cifar10])
def test_unknown_file_format(tmp_path, loader):
    path = tmp_path / "images.csv"
    path.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="Unknown file format"):
        loader(path=path)


@pytest.mark.parametrize("loader", [load_mnist, load_fashion_mnist, load_cifar10])
def test_missing_path(tmp_path, loader):
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        loader(path=tmp_path / "nothing-here.npz")


def test_npz_without_labels(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="no labels array"):
        load_mnist(path=tmp_path / "d.npz")


def test_npz_with_labels_of_the_wrong_length(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 28, 28), np.uint8), labels=np.zeros(3, int))
    with pytest.raises(ValueError, match="labels must have shape"):
        load_mnist(path=tmp_path / "d.npz")


# --------------------------------------------------------------------------- downloads


class FakeServer:
    """Stands in for ``urlopen``: serves local files by URL, records the calls."""

    def __init__(self, files: dict[str, bytes] | None = None, error: Exception | None = None):
        self.files = files or {}
        self.error = error
        self.calls: list[tuple[str, float | None]] = []

    def __call__(self, url, timeout=None):
        self.calls.append((url, timeout))
        if self.error is not None:
            raise self.error
        return io.BytesIO(self.files[url])


def _cached_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    "loader, url",
    [
        (load_mnist, "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz"),
        (
            load_fashion_mnist,
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        ),
        (load_cifar10, "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"),
    ],
)
@pytest.mark.parametrize(
    "error", [URLError("[Errno -3] Temporary failure in name resolution"), TimeoutError("slow")]
)
def test_offline_error_says_how_to_load_local_files(monkeypatch, tmp_path, loader, url, error):
    server = FakeServer(error=error)
    monkeypatch.setattr(_base, "urlopen", server)
    with pytest.raises(DownloadError, match=r"path=") as info:
        loader(data_home=tmp_path / "cache", timeout=7.5)
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, OSError)
    assert url in str(info.value)
    assert server.calls == [(url, 7.5)]
    assert _cached_files(tmp_path / "cache") == []  # no partial file left behind


def test_download_if_missing_false(monkeypatch, tmp_path):
    server = FakeServer(error=AssertionError("must not be called"))
    monkeypatch.setattr(_base, "urlopen", server)
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        load_mnist(data_home=tmp_path, download_if_missing=False)
    assert server.calls == []


def test_checksum_mismatch_deletes_the_download(monkeypatch, tmp_path, idx_arrays):
    # Serve a real IDX file, but not the published one.
    source = write_idx_folder(tmp_path / "src", idx_arrays)
    wrong = (source / "train-images-idx3-ubyte.gz").read_bytes()
    published = _mnist.MNIST.files[0]
    server = FakeServer({published.url: wrong})
    monkeypatch.setattr(_base, "urlopen", server)
    with pytest.raises(ChecksumError, match="Checksum mismatch") as info:
        load_mnist(data_home=tmp_path / "cache")
    message = str(info.value)
    assert published.sha256 in message
    assert hashlib.sha256(wrong).hexdigest() in message
    assert "path=" in message
    assert _cached_files(tmp_path / "cache") == []


def test_download_verifies_and_caches(monkeypatch, tmp_path, idx_arrays):
    """The whole download path, with files whose checksums the test knows."""
    source = write_idx_folder(tmp_path / "src", idx_arrays)
    files = tuple(
        RemoteFile(f"{n}.gz", f"https://example.invalid/{n}.gz", sha256sum(source / f"{n}.gz"))
        for n in IDX_NAMES
    )
    fake = _mnist._IdxDataset("Fake", "fake", files, _mnist.MNIST.target_names, "fake data")
    monkeypatch.setattr(_mnist, "MNIST", fake)
    server = FakeServer({f.url: (source / f.filename).read_bytes() for f in files})
    monkeypatch.setattr(_base, "urlopen", server)

    X_train, y_train, X_test, y_test = load_mnist(data_home=tmp_path / "cache")
    np.testing.assert_array_equal(y_train, idx_arrays[1])
    np.testing.assert_array_equal(X_test, idx_arrays[2].reshape(30, -1).astype(np.float32) / 255)
    assert [url for url, _ in server.calls] == [f.url for f in files]
    assert _cached_files(tmp_path / "cache") == sorted(f.filename for f in files)

    # A second call reads the cache and does not download again.
    monkeypatch.setattr(_base, "urlopen", FakeServer(error=URLError("offline")))
    again = load_mnist(data_home=tmp_path / "cache", download_if_missing=False)
    np.testing.assert_array_equal(again[0], X_train)


def test_fetch_remote_writes_atomically(monkeypatch, tmp_path):
    payload = b"some bytes" * 1000
    remote = RemoteFile(
        "f.bin", "https://example.invalid/f.bin", hashlib.sha256(payload).hexdigest()
    )

    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() > 0:
                raise ConnectionResetError("peer went away")
            return super().read(100)

    monkeypatch.setattr(_base, "urlopen", lambda url, timeout=None: Broken(payload))
    with pytest.raises(DownloadError, match="peer went away"):
        fetch_remote(remote, tmp_path, dataset="test")
    assert _cached_files(tmp_path) == []

    monkeypatch.setattr(_base, "urlopen", FakeServer({remote.url: payload}))
    path = fetch_remote(remote, tmp_path, dataset="test")
    assert path == tmp_path / "f.bin" and path.read_bytes() == payload
    assert _cached_files(tmp_path) == ["f.bin"]


def test_published_checksums_are_sha256():
    remotes = [*_mnist.MNIST.files, *_mnist.FASHION_MNIST.files, _cifar.CIFAR10_ARCHIVE]
    shas = [r.sha256 for r in remotes]
    assert all(len(s) == 64 and set(s) <= set("0123456789abcdef") for s in shas)
    assert len(set(shas)) == len(shas) == 9
    assert all(r.url.endswith(r.filename) for r in remotes)


def test_get_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("SCIKIT_LEARN_DATA", str(tmp_path / "skl"))
    assert get_data_home() == tmp_path / "skl" / "ntk_sklearn"
    assert get_data_home().is_dir()
    assert get_data_home(tmp_path / "mine") == tmp_path / "mine"
    assert (tmp_path / "mine").is_dir()


# --------------------------------------------------------------------------- hostile files


def _idx_header(code: int, shape) -> bytes:
    return bytes([0, 0, code, len(shape)]) + np.asarray(shape, dtype=">u4").tobytes()


class _Reduce:
    """Pickles as ``func(*args)``, then BUILD with ``state`` if one is given."""

    def __init__(self, *reduce_value):
        self.reduce_value = reduce_value

    def __reduce__(self):
        return self.reduce_value


_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]  # numpy's array reconstructor


@pytest.fixture
def no_large_allocation(monkeypatch):
    """Fail if anything asks check_memory for more than 64 MiB (the files here are tiny)."""
    asked = []

    def check(n_bytes, what, advice):
        asked.append(n_bytes)
        assert n_bytes <= 1 << 26, f"{what} asked for {n_bytes} bytes"

    for module in (_idx, _npz, _cifar, _mnist, _assemble):
        monkeypatch.setattr(module, "check_memory", check)
    return asked


@pytest.mark.parametrize("compress", [True, False])
def test_idx_header_declaring_huge_dims_is_refused_before_reading(
    tmp_path, compress, no_large_allocation
):
    path = tmp_path / "train-images-idx3-ubyte"
    payload = _idx_header(0x08, (2**32 - 1, 28, 28)) + bytes(1000)
    path.write_bytes(gzip.compress(payload) if compress else payload)
    message = "more than a gzip file" if compress else "IDX header announces"
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert path.name in str(info.value)
    assert no_large_allocation == []


def test_idx_reads_no_more_than_the_header_declares(tmp_path, monkeypatch):
    """A gzip bomb behind a small header: at most one byte past the declared data is read."""
    path = tmp_path / "bomb.gz"
    declared = _idx_header(0x08, (1, 28, 28)) + bytes(784)
    path.write_bytes(gzip.compress(declared + bytes(64 << 20)))  # 64 MiB more, 64 KiB on disk
    assert path.stat().st_size < 1 << 17
    read_sizes = []

    class CountingGzipFile(gzip.GzipFile):
        def read(self, size=-1):
            data = super().read(size)
            read_sizes.append(len(data))
            return data

    monkeypatch.setattr(gzip, "open", lambda name, mode: CountingGzipFile(name, mode))
    with pytest.raises(ValueError, match="has data after the 784 bytes"):
        read_idx(path)
    assert sum(read_sizes) == len(declared) + 1


@pytest.mark.parametrize(
    "payload, message",
    [
        (_idx_header(0x08, (3, 28, 28)) + bytes(2 * 784), "truncated"),
        (_idx_header(0x08, (2, 28, 28)) + bytes(2 * 784 + 1), "has data after"),
        (b"\x00\x00\x08", "truncated"),
        (_idx_header(0x08, ()), "no dimensions"),
        (b"\x1f\x8b\x00\x00", "not an IDX file"),  # gzip magic, but not gzip inside
    ],
)
def test_idx_inconsistent_gzip_files(tmp_path, payload, message):
    path = tmp_path / "odd-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(payload))
    with pytest.raises(ValueError, match=message) as info:
        read_idx(path)
    assert path.name in str(info.value)


def test_idx_plain_file_with_trailing_data(tmp_path):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(_idx_header(0x08, (3,)) + bytes([1, 2, 3, 4]))
    with pytest.raises(ValueError, match="holds 4 bytes of data, but its IDX header announces"):
        read_idx(path)


@pytest.mark.parametrize("cut", ["end", "crc"])
def test_truncated_or_corrupt_gzip(tmp_path, idx_arrays, cut):
    folder = write_idx_folder(tmp_path / "mnist", idx_arrays)
    path = folder / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    if cut == "end":
        raw = raw[: len(raw) // 2]
    else:
        raw[-6] ^= 0xFF  # the CRC-32 of the trailer
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz.* corrupt or truncated"):
        load_mnist(path=folder)


def test_idx_values_and_big_endian_floats(tmp_path):
    values = np.array([[0.5, -2.0], [np.pi, 1e300]], dtype=">f8")
    (tmp_path / "f.idx").write_bytes(_idx_header(0x0E, (2, 2)) + values.tobytes())
    out = read_idx(tmp_path / "f.idx")
    assert out.dtype == np.float64 and out.dtype.isnative
    np.testing.assert_array_equal(out, values.astype(np.float64))
    with pytest.raises(ValueError, match="float64 elements; uint8 was expected"):
        read_idx(tmp_path / "f.idx", dtype=np.uint8)
    with pytest.raises(ValueError, match=r"out must be a C-contiguous float64 array of shape"):
        read_idx(tmp_path / "f.idx", out=np.empty((2, 3)))


@pytest.mark.parametrize(
    "index, array, message",
    [
        (0, np.zeros((60, 32, 32), np.uint8), r"shape \(60, 32, 32\); \('n', 28, 28\)"),
        (1, np.full(60, 10, np.uint8), "holds label 10; the labels of this dataset are 0-9"),
        (2, np.zeros((30, 28, 28, 1), np.uint8), r"shape \(30, 28, 28, 1\)"),
        (3, np.zeros((30, 1), np.uint8), r"shape \(30, 1\); \('n',\)"),
    ],
)
def test_idx_folder_of_the_wrong_shape_or_labels(tmp_path, idx_arrays, index, array, message):
    arrays = list(idx_arrays)
    arrays[index] = array
    folder = write_idx_folder(tmp_path / "mnist", arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_fashion_mnist(path=folder)
    assert IDX_NAMES[index] in str(info.value)


def test_idx_float_images_are_refused(tmp_path, idx_arrays):
    folder = write_idx_folder(tmp_path / "mnist", idx_arrays)
    images = np.full((60, 28, 28), np.nan, dtype=">f4")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(_idx_header(0x0D, images.shape) + images.tobytes())
    )
    with pytest.raises(ValueError, match="holds float32 elements; uint8 was expected"):
        load_mnist(path=folder)


def _batch_with(tmp_path, cifar_arrays, batch, name="data_batch_2", protocol=2) -> Path:
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return folder


@pytest.mark.parametrize(
    "data, message",
    [
        # numpy.ndarray((2**33,), "u1"): the constructor would allocate 8 GiB.
        (_Reduce(np.ndarray, ((1 << 33,), "u1")), "a call to ndarray"),
        # An ndarray created but never given data (it would hold uninitialised memory).
        (_Reduce(_RECONSTRUCT, (np.ndarray, (0,), b"b")), "created without its data"),
        # Shapes that do not match the bytes stored, small or huge.
        (
            _Reduce(
                _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (5, 3072), np.dtype("u1"), 0, b"0")
            ),
            "needs 15360 bytes, but the file holds 1",
        ),
        (
            _Reduce(
                _RECONSTRUCT, (np.ndarray, (0,), b"b"), (1, (1 << 40, 3072), np.dtype("u1"), 0, b"")
            ),
            "needs 3377699720527872 bytes",
        ),
        (np.zeros((1, 3072), dtype=object), "dtype 'O8' is refused"),
        (np.zeros((1, 3072), dtype=np.float64), "dtype 'f8' is refused"),
        (np.full((1, 3072), 300, dtype=np.int64), r"data of type int64 array of shape \(1, 3072\)"),
        (np.zeros((1, 1024), dtype=np.uint8), r"data of type uint8 array of shape \(1, 1024\)"),
    ],
)
def test_hostile_cifar_data(tmp_path, cifar_arrays, no_large_allocation, data, message):
    batch = {b"data": data, b"labels": [0]}
    assert len(pickle.dumps(batch, protocol=2)) < 400 or isinstance(data, np.ndarray)
    folder = _batch_with(tmp_path, cifar_arrays, batch)
    with pytest.raises(ValueError, match=message) as info:
        load_cifar10(path=folder)
    assert "data_batch_2" in str(info.value)


@pytest.mark.parametrize(
    "labels, message",
    [
        ([10], r"labels in \[10, 10\]; CIFAR-10 labels are 0-9"),
        ([-1], r"labels in \[-1, -1\]"),
        ([True], "not a list of integers"),
        ([0.0], "not a list of integers"),
        ([0, 1], "1 labels|2 labels"),
        (np.array([[0]]), "not integers"),
    ],
)
def test_cifar_labels_out_of_range_or_of_the_wrong_type(tmp_path, cifar_arrays, labels, message):
    batch = {b"data": np.zeros((1, 3072), np.uint8), b"labels": labels}
    folder = _batch_with(tmp_path, cifar_arrays, batch, name="test_batch", protocol=4)
    with pytest.raises(ValueError, match=message) as info:
        load_cifar10(path=folder)
    assert "test_batch" in str(info.value)


@pytest.mark.parametrize(
    "damage", ["truncated", "trailing", "not a dict", "cifar-100", "opcode flood"]
)
def test_malformed_cifar_batches(tmp_path, cifar_arrays, damage):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    path = folder / "data_batch_5"
    raw = path.read_bytes()
    if damage == "truncated":
        raw, message = raw[:181], "truncated"
    elif damage == "trailing":
        raw, message = raw + b"\x00", "1 bytes of trailing data"
    elif damage == "opcode flood":  # 50,000 empty lists: 3 MB of objects from 50 kB
        raw, message = b"\x80\x02" + b"]" * 50_000 + b".", "more than 1512 opcodes"
    elif damage == "not a dict":
        raw, message = pickle.dumps([1, 2]), "holds no dict"
    else:
        batch = {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [3]}
        raw, message = pickle.dumps(batch), "looks like CIFAR-100"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match=message) as info:
        load_cifar10(path=folder)
    assert "data_batch_5" in str(info.value)


def test_cifar_meta_of_the_wrong_form(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": b"cat,dog"}))
    with pytest.raises(ValueError, match="batches.meta.*label_names must be a list of 10"):
        load_cifar10(path=folder)


def test_truncated_cifar_archive(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path / "src", cifar_arrays)
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cifar-10-python.tar.gz is a corrupt or truncated"):
        load_cifar10(path=path)


def _write_npz_arrays(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        ({"images": np.full((20, 28, 28), np.nan)}, "15680 pixels are NaN or infinite"),
        ({"images": np.full((20, 28, 28), 1.5)}, r"float pixels must be in \[0, 1\]"),
        ({"images": np.full((20, 28, 28), 256, np.int16)}, r"integer pixels must be in 0-255"),
        ({"images": np.full((20, 28, 28), -1, np.int16)}, r"integer pixels must be in 0-255"),
        ({"images": np.zeros((20, 28, 28), bool)}, "unsupported type bool"),
        ({"images": np.zeros((20, 32, 32, 3), np.uint8)}, r"images of shape \(32, 32, 3\)"),
        ({"labels": np.full(20, -1)}, "labels must be class indices >= 0, found -1"),
        ({"labels": np.full(20, 10)}, "holds label 10, but MNIST has 10 classes"),
        ({"labels": np.zeros(20)}, "unsupported type float64"),
        ({"is_test": np.zeros(20, bool)}, "is_test marks no test sample"),
        ({"is_test": np.ones(20, np.uint8)}, "is_test marks no training sample"),
        ({"is_test": np.full(20, 2)}, "is_test must be bool or 0/1 integers"),
        ({"images": np.zeros((0, 28, 28), np.uint8), "labels": np.zeros(0, int)}, "at least one"),
    ],
)
def test_npz_with_invalid_values(tmp_path, change, message):
    arrays = {"images": np.zeros((20, 28, 28), np.uint8), "labels": np.arange(20) % 10}
    arrays.update(change)
    path = _write_npz_arrays(tmp_path / "hostile.npz", **arrays)
    with pytest.raises(ValueError, match=message) as info:
        load_mnist(path=path)
    assert "hostile.npz" in str(info.value)


def test_npz_that_is_a_renamed_npy_or_truncated(tmp_path):
    np.save(tmp_path / "images.npy", np.zeros((4, 28, 28), np.uint8))
    (tmp_path / "images.npy").rename(tmp_path / "renamed.npz")
    with pytest.raises(ValueError, match="renamed.npz is a .npy file"):
        load_mnist(path=tmp_path / "renamed.npz")
    path = _write_npz_arrays(
        tmp_path / "cut.npz", images=np.zeros((9, 28, 28), np.uint8), labels=np.arange(9)
    )
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(ValueError, match="cut.npz is a corrupt or truncated .npz archive"):
        load_mnist(path=path)
    (tmp_path / "text.npz").write_text("images,labels\n")
    with pytest.raises(ValueError, match="text.npz is not an .npz archive"):
        load_mnist(path=tmp_path / "text.npz")


def _npz_with_header(path, shape, data: bytes, dtype="|u1"):
    """An .npz whose images.npy declares ``shape`` but holds ``data``."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    labels = io.BytesIO()
    np.lib.format.write_array(labels, np.zeros(3, np.int64))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("images.npy", header.getvalue() + data)
        archive.writestr("labels.npy", labels.getvalue())
    return path


@pytest.mark.parametrize(
    "shape, data, message",
    [
        ((10**9, 28, 28), bytes(3 * 784), "declares shape .* but holds 2352 bytes"),
        ((3, 28, 28), bytes(3 * 784 + 5), "declares shape .* but holds 2357 bytes"),
        ((3, 28, 28), bytes(784), "declares shape .* but holds 784 bytes"),
    ],
)
def test_npz_arrays_whose_header_lies(tmp_path, no_large_allocation, shape, data, message):
    path = _npz_with_header(tmp_path / "liar.npz", shape, data)
    with pytest.raises(ValueError, match=message) as info:
        load_mnist(path=path)
    assert "liar.npz" in str(info.value)


def test_npz_object_arrays_are_never_unpickled(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, images=np.zeros((3, 28, 28), np.uint8), labels=np.array([0, 1, "x"], object))
    with pytest.raises(ValueError, match="objects.npz: the labels array has the unsupported type"):
        load_mnist(path=path)


@pytest.mark.parametrize(
    "images",
    [
        np.arange(20 * 784).reshape(20, 28, 28) % 256,  # int64 pixels in 0-255
        (np.arange(20 * 784).reshape(20, 784) % 256).astype(np.uint8),  # flattened rows
        (np.arange(20 * 784).reshape(20, 28, 28, 1) % 256).astype(np.uint8),  # one channel
    ],
)
def test_npz_pixels_accepted_as_integers_or_in_other_grey_layouts(tmp_path, images):
    path = _write_npz_arrays(
        tmp_path / "d.npz", images=images, labels=np.arange(20) % 10, is_test=np.arange(20) >= 15
    )
    data = load_mnist(path=path, return_X_y=False)
    expected = (np.arange(20 * 784).reshape(20, 784) % 256).astype(np.float32) / 255
    np.testing.assert_array_equal(data.X_train, expected[:15])
    np.testing.assert_array_equal(data.X_test, expected[15:])
    assert data.image_shape == (28, 28)


def test_npz_float_pixels_and_class_names(tmp_path):
    """Float pixels in [0, 1] are kept as they are; class_names allow more than 10 classes."""
    rng = np.random.default_rng(3)
    images = rng.uniform(size=(24, 32, 32, 3))
    labels = np.arange(24) % 12
    names = np.array([f"c{i}" for i in range(12)])
    path = _write_npz_arrays(tmp_path / "f.npz", images=images, labels=labels, class_names=names)
    data = load_cifar10(path=path, n_test=12, random_state=0, dtype=np.float64, return_X_y=False)
    np.testing.assert_array_equal(data.X_test, images.reshape(24, -1)[data.test_indices])
    assert data.target_names == list(names)
    np.testing.assert_array_equal(np.bincount(data.y_test), np.ones(12))
    labels[0] = 12
    path = _write_npz_arrays(tmp_path / "f.npz", images=images, labels=labels, class_names=names)
    with pytest.raises(ValueError, match="holds label 12, but CIFAR-10 has 12 classes"):
        load_cifar10(path=path)


@pytest.mark.parametrize(
    "loader, shared_file",
    [(load_mnist, "cifar100-10class-2k.npz"), (load_cifar10, "mnist-10k.npz")],
)
def test_a_file_of_another_dataset_is_refused(shared, loader, shared_file):
    with pytest.raises(ValueError, match=f"{shared_file} holds images of shape .* another dataset"):
        loader(path=shared / "data" / shared_file)


def test_mnist_loader_refuses_cifar_files(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        load_mnist(path=folder)
    with pytest.raises(ValueError, match="Unknown file format"):
        load_mnist(path=folder / "data_batch_1")
    rng = np.random.default_rng(4)
    path = _write_npz_arrays(
        tmp_path / "c.npz", images=_fake_images(rng, 20, (32, 32, 3)), labels=np.arange(20) % 10
    )
    with pytest.raises(ValueError, match=r"c.npz holds images of shape \(32, 32, 3\)"):
        load_mnist(path=path)


@pytest.mark.parametrize("source", ["idx", "cifar", "npz"])
def test_memory_is_checked_before_allocating(
    tmp_path, monkeypatch, idx_arrays, cifar_arrays, source
):
    if source == "idx":
        path, loader = write_idx_folder(tmp_path / "mnist", idx_arrays), load_mnist
    elif source == "cifar":
        path, loader = write_cifar_folder(tmp_path, cifar_arrays), load_cifar10
    else:
        path, loader = tmp_path / "d.npz", load_mnist
        _write_npz(path)
    loader(path=path)  # fits
    monkeypatch.setattr(_memory, "available_memory", lambda: 40_000)
    allocated = []
    monkeypatch.setattr(np, "empty", lambda *a, **k: allocated.append(a) or pytest.fail("alloc"))
    with pytest.raises(MemoryError, match=r"GiB is available"):
        loader(path=path)
    assert allocated == []


# --------------------------------------------------------------------------- Fashion-MNIST

# Where the Debian package dataset-fashion-mnist installs the four IDX files (override with
# FASHION_MNIST_DIR); the test is skipped where neither exists.
FASHION_MNIST_DIR = Path(os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


@pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not found in {FASHION_MNIST_DIR} (apt-get install "
    "dataset-fashion-mnist, or set FASHION_MNIST_DIR)",
)
def test_fashion_mnist_from_the_debian_package():
    data = load_fashion_mnist(path=FASHION_MNIST_DIR, return_X_y=False)
    assert data.X_train.shape == (60000, 784) and data.X_test.shape == (10000, 784)
    assert data.X_train.dtype == np.float32 and data.y_train.dtype == np.int64
    # Fashion-MNIST has exactly 6,000 training and 1,000 test images of each class.
    np.testing.assert_array_equal(np.bincount(data.y_train), np.full(N_CLASSES, 6000))
    np.testing.assert_array_equal(np.bincount(data.y_test), np.full(N_CLASSES, 1000))
    assert data.X_train.min() == 0.0 and data.X_train.max() == 1.0
    # The test split against an independent decoding of the files (16- and 8-byte headers).
    images = gzip.decompress((FASHION_MNIST_DIR / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((FASHION_MNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    expected = np.frombuffer(images, np.uint8, offset=16).reshape(10000, 784)
    np.testing.assert_array_equal(data.X_test, expected.astype(np.float32) / 255)
    np.testing.assert_array_equal(data.y_test, np.frombuffer(labels, np.uint8, offset=8))
    assert data.target_names[data.y_test[0]] == "Ankle boot"  # the first test image


# --------------------------------------------------------------------------- golden values


def test_vendored_reference_covers_every_activation():
    data, cases = load_reference(VENDORED / "nt_fc_subset.npz")
    kernels = [c for c in cases if c["kind"] == "kernel"]
    activations = {"relu", "erf", "identity", "leaky_relu", "abs", "gelu", "tanh"}
    assert {c["activation"] for c in kernels} == activations
    assert {c["depth"] for c in kernels} == {1, 3}
    assert {54, 55} <= {c["index"] for c in kernels}  # the tanh cases of test_kernels
    assert [c["index"] for c in cases if c["kind"] == "dynamics"] == [0]
    for case in kernels:
        for name in ("nngp", "ntk"):
            assert data[f"k{case['index']}_{name}_12"].shape == (9, 6)
            assert data[f"k{case['index']}_{name}_11"].shape == (9, 9)
    assert data["d0_ntk_cov_t"].shape == (len(data["dyn_times"]), 7, 7)
    conv, conv_cases = load_reference(VENDORED / "nt_conv_public.npz")
    assert len(conv_cases) == 10 and conv["x1"].shape == (5, 6, 6, 2)


def test_vendored_reference_is_an_exact_subset_of_the_shared_file(shared):
    full_path = shared / "reference" / "nt_fc_public.npz"
    if not full_path.is_file():
        pytest.skip(f"{full_path} not found")
    full, full_cases = load_reference(full_path)
    subset, cases = load_reference(VENDORED / "nt_fc_subset.npz")
    assert all(case in full_cases for case in cases)
    for key, value in subset.items():
        if key != "meta_json":
            assert value.dtype == full[key].dtype
            np.testing.assert_array_equal(value, full[key], err_msg=key)
    conv = shared / "reference" / "nt_conv_public.npz"
    assert conv.read_bytes() == (VENDORED / "nt_conv_public.npz").read_bytes()


def test_reference_fixtures_fall_back_to_the_vendored_files(monkeypatch, tmp_path):
    monkeypatch.setenv("NTK_SKLEARN_SHARED", str(tmp_path / "absent"))
    assert reference_path(*FC_REFERENCE) == (VENDORED / "nt_fc_subset.npz", False)
    assert reference_path(*CONV_REFERENCE) == (VENDORED / "nt_conv_public.npz", False)
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "nt_fc_public.npz").write_bytes(b"")
    monkeypatch.setenv("NTK_SKLEARN_SHARED", str(tmp_path))
    assert reference_path(*FC_REFERENCE) == (tmp_path / "reference" / "nt_fc_public.npz", True)
