"""Tests of the dataset loaders: local files (written here or shared), downloads (faked)."""

from __future__ import annotations

import datetime
import gzip
import hashlib
import io
import pickle
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
from sklearn.utils import Bunch

from ntk_sklearn.datasets import (
    ChecksumError,
    DownloadError,
    _base,
    _cifar,
    _mnist,
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


def write_cifar_folder(parent: Path, batches) -> Path:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [*_cifar.TRAIN_BATCHES, _cifar.TEST_BATCH]
    for i, (name, (images, labels)) in enumerate(zip(names, batches, strict=True)):
        # Mix the pickle flavours: protocol 2 as in the published (Python 2) files, and 4.
        raw = _batch_bytes(images, labels, protocol=2 if i % 2 else 4, numpy1=i == 1)
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


def test_cifar_batches_cannot_run_code(tmp_path, cifar_arrays):
    folder = write_cifar_folder(tmp_path, cifar_arrays)
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [datetime.date(2020, 1, 1)]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match="datetime"):
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
    arrays = {"images": _fake_images(rng, n, (8, 8)), "labels": _balanced_labels(rng, n)}
    if with_split:
        arrays["is_test"] = (np.arange(n) % 4 == 0).astype(np.uint8)
    np.savez(path, **arrays, **extra)
    return arrays


def test_npz_without_split_default_sizes(tmp_path):
    arrays = _write_npz(tmp_path / "d.npz")
    X_train, y_train, X_test, y_test = load_mnist(path=tmp_path / "d.npz", random_state=0)
    assert (len(y_train), len(y_test)) == (160, 40)  # 20 % test
    assert X_train.shape == (160, 64)
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
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 2, 2), np.uint8))
    with pytest.raises(ValueError, match="no labels array"):
        load_mnist(path=tmp_path / "d.npz")


def test_npz_with_labels_of_the_wrong_length(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((4, 2, 2), np.uint8), labels=np.zeros(3, int))
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
