"""Reader for the IDX format of MNIST-like datasets (plain or gzip-compressed)."""

from __future__ import annotations

import gzip
import os

import numpy as np

__all__ = ["read_idx"]

# Element type code (third byte of the magic number) -> big-endian numpy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (such as ``train-images-idx3-ubyte[.gz]``) into an array.

    The file may be gzip-compressed; this is detected from its content, not its name.

    Parameters
    ----------
    path : str or path-like
        The IDX file.

    Returns
    -------
    array : ndarray
        The array with the shape and element type given by the file's header (in native
        byte order).

    Raises
    ------
    ValueError
        If the file is not a valid IDX file.
    """
    with open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    opener = gzip.open if compressed else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{os.fspath(path)!r} is not an IDX file (bad magic number).")
    dtype = _IDX_DTYPES[raw[2]]
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{os.fspath(path)!r} is truncated (incomplete IDX header).")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{os.fspath(path)!r} holds {len(raw) - header} bytes of data, but its IDX header "
            f"announces shape {shape} of {dtype.name} ({expected} bytes)."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))
