"""Cache folder and checksummed downloads for the dataset loaders.

Only the standard library is used for networking (:mod:`urllib`). A file is streamed into a
temporary file next to its final place, its SHA-256 is checked, and only then is it renamed
into the cache, so an interrupted or corrupted download never leaves a file that looks valid.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

from sklearn.datasets import get_data_home as _sklearn_data_home

__all__ = [
    "ChecksumError",
    "DownloadError",
    "RemoteFile",
    "fetch_remote",
    "get_data_home",
    "sha256sum",
]

_CHUNK = 1 << 20


class DownloadError(ConnectionError):
    """A dataset file could not be downloaded (offline, timeout, HTTP error, ...)."""


class ChecksumError(OSError):
    """A downloaded file does not have its published SHA-256 checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """A file to download, with its published SHA-256 checksum.

    Parameters
    ----------
    filename : str
        Name of the file in the cache folder.
    url : str
        Where to download it from.
    sha256 : str
        Published SHA-256 checksum of the file, as 64 hexadecimal digits.
    """

    filename: str
    url: str
    sha256: str


def get_data_home(data_home: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder where ``ntk_sklearn`` caches downloaded datasets.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. By default, ``ntk_sklearn`` inside scikit-learn's data folder
        (``~/scikit_learn_data/ntk_sklearn``, or ``$SCIKIT_LEARN_DATA/ntk_sklearn`` when that
        environment variable is set).

    Returns
    -------
    data_home : pathlib.Path
        The folder, created if it did not exist.
    """
    if data_home is None:
        home = Path(_sklearn_data_home()) / "ntk_sklearn"
    else:
        home = Path(data_home).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 checksum of a file as 64 hexadecimal digits.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    digest : str
        The hexadecimal SHA-256 digest.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _offline_hint(dataset: str) -> str:
    return (
        f"Download the {dataset} files yourself and pass their file or folder with "
        f"`path=...`, or check your connection (and `timeout=`)."
    )


def fetch_remote(
    remote: RemoteFile,
    folder: str | os.PathLike[str],
    *,
    dataset: str,
    download_if_missing: bool = True,
    timeout: float | None = 60.0,
) -> Path:
    """Return the cached copy of ``remote`` in ``folder``, downloading it if missing.

    A download is checked against ``remote.sha256`` before it is moved, atomically, into
    place. A file already in the cache is trusted (it was checked when it was downloaded).

    Parameters
    ----------
    remote : RemoteFile
        The file to fetch.
    folder : str or path-like
        The cache folder of the dataset; created if missing.
    dataset : str
        Name of the dataset, used in error messages.
    download_if_missing : bool, default=True
        If False, raise :class:`FileNotFoundError` instead of downloading.
    timeout : float or None, default=60.0
        Seconds to wait for the connection and for each read; None waits forever.

    Returns
    -------
    path : pathlib.Path
        The cached file.

    Raises
    ------
    FileNotFoundError
        If the file is not cached and ``download_if_missing`` is False.
    DownloadError
        If the download fails (no network, timeout, HTTP error).
    ChecksumError
        If the downloaded bytes do not have the published checksum; nothing is kept.
    """
    folder = Path(folder)
    target = folder / remote.filename
    if target.is_file():
        return target
    if not download_if_missing:
        raise FileNotFoundError(
            f"{target} is not in the cache and download_if_missing=False. " + _offline_hint(dataset)
        )
    folder.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(handle, "wb") as out:
            try:
                with urlopen(remote.url, timeout=timeout) as response:
                    while chunk := response.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            except (URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
                raise DownloadError(
                    f"Could not download {dataset} from {remote.url}: {exc}. "
                    + _offline_hint(dataset)
                ) from exc
        actual = digest.hexdigest()
        if actual != remote.sha256:
            raise ChecksumError(
                f"Checksum mismatch for {remote.filename} downloaded from {remote.url}: "
                f"expected sha256 {remote.sha256}, got {actual}. The file was deleted. "
                + _offline_hint(dataset)
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
