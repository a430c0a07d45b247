"""Reader for the IDX format of MNIST-like datasets (plain or gzip-compressed).

The header (magic number, element type, dimensions) is read and checked first; only then is
the data read, straight into an array of exactly the size the header declares, and never more
than that: a file that is shorter, longer, or announces more than it can hold is refused
before its data is decompressed.
"""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
from numpy.typing import DTypeLike

from .._memory import check_memory

__all__ = ["IdxHeader", "read_idx", "read_idx_header"]

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
# Deflate encodes at most 258 bytes per match in at least 2 bits: a gzip file cannot expand
# by more than about 1032:1, so a header announcing more than that is inconsistent.
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 22
# Errors of a corrupt or truncated gzip stream.
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


@dataclass(frozen=True)
class IdxHeader:
    """What the header of an IDX file declares.

    Attributes
    ----------
    dtype : numpy.dtype
        Element type, big-endian as stored.
    shape : tuple of int
        Dimensions.
    offset : int
        Bytes of header before the data.
    compressed : bool
        Whether the file is gzip-compressed.
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    offset: int
    compressed: bool

    @property
    def nbytes(self) -> int:
        """Bytes of data the header announces."""
        return int(np.prod(self.shape, dtype=object)) * self.dtype.itemsize


def _open(path: str | os.PathLike[str]) -> tuple[BinaryIO, bool]:
    with open(path, "rb") as handle:
        compressed = handle.read(2) == _GZIP_MAGIC
    if compressed:
        return gzip.open(path, "rb"), True
    return open(path, "rb"), False


def _read_exactly(handle: BinaryIO, n: int, path: str, what: str) -> bytes:
    try:
        raw = handle.read(n)
    except _GZIP_ERRORS as exc:
        raise ValueError(f"{path!r} is a corrupt or truncated gzip file ({exc}).") from exc
    if len(raw) != n:
        raise ValueError(f"{path!r} is truncated (incomplete {what}).")
    return raw


def _parse_header(handle: BinaryIO, path: str, compressed: bool) -> IdxHeader:
    magic = _read_exactly(handle, 4, path, "IDX magic number")
    if magic[0] != 0 or magic[1] != 0 or magic[2] not in _IDX_DTYPES:
        raise ValueError(f"{path!r} is not an IDX file (bad magic number {magic.hex()}).")
    ndim = magic[3]
    if ndim == 0:
        raise ValueError(f"{path!r} is an IDX file with no dimensions.")
    dims = _read_exactly(handle, 4 * ndim, path, "IDX header")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    return IdxHeader(_IDX_DTYPES[magic[2]], shape, 4 + 4 * ndim, compressed)


def _check_header(
    header: IdxHeader,
    path: str,
    dtype: DTypeLike | None,
    shape: Sequence[int | None] | None,
) -> None:
    """Check the declared type and shape, and that the file can hold what it declares."""
    if dtype is not None and header.dtype != np.dtype(dtype).newbyteorder(">"):
        raise ValueError(
            f"{path!r} holds {header.dtype.name} elements; {np.dtype(dtype).name} was expected."
        )
    if shape is not None and (
        len(shape) != len(header.shape)
        or any(
            want is not None and want != got
            for want, got in zip(shape, header.shape, strict=False)  # lengths checked above
        )
    ):
        wanted = tuple("n" if s is None else s for s in shape)
        raise ValueError(
            f"{path!r} declares an array of shape {header.shape}; {wanted} was expected."
        )
    size = os.path.getsize(path)
    if header.compressed:
        if header.nbytes > _MAX_DEFLATE_RATIO * size:
            raise ValueError(
                f"{path!r} declares {header.nbytes} bytes of data (shape {header.shape}), more "
                f"than a gzip file of {size} bytes can hold."
            )
    elif size != header.offset + header.nbytes:
        raise ValueError(
            f"{path!r} holds {size - header.offset} bytes of data, but its IDX header "
            f"announces shape {header.shape} of {header.dtype.name} ({header.nbytes} bytes)."
        )


def read_idx_header(
    path: str | os.PathLike[str],
    *,
    dtype: DTypeLike | None = None,
    shape: Sequence[int | None] | None = None,
) -> IdxHeader:
    """Read and check the header of an IDX file, without reading its data.

    Parameters
    ----------
    path : str or path-like
        The IDX file, plain or gzip-compressed (detected from its content).
    dtype : data-type, default=None
        The element type the file must declare (any if None).
    shape : sequence of int or None, default=None
        The shape the file must declare; None entries match any size (any shape if None).

    Returns
    -------
    header : IdxHeader
        The declared element type and shape.

    Raises
    ------
    ValueError
        If the header is invalid or truncated, declares another type or shape, or declares
        more data than the file holds (a plain file must hold exactly the data declared).
    """
    name = os.fspath(path)
    handle, compressed = _open(path)
    with handle:
        header = _parse_header(handle, name, compressed)
    _check_header(header, name, dtype, shape)
    return header


def read_idx(
    path: str | os.PathLike[str],
    *,
    dtype: DTypeLike | None = None,
    shape: Sequence[int | None] | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read an IDX file (such as ``train-images-idx3-ubyte[.gz]``) into an array.

    The file may be gzip-compressed; this is detected from its content, not its name. The
    header is checked before anything else is read (see :func:`read_idx_header`), the memory
    the data needs before it is allocated, and exactly the declared number of bytes is read:
    a shorter file, or one with data after them, is refused.

    Parameters
    ----------
    path : str or path-like
        The IDX file.
    dtype : data-type, default=None
        The element type the file must hold (any if None).
    shape : sequence of int or None, default=None
        The shape the file must hold; None entries match any size (any shape if None).
    out : ndarray, default=None
        A C-contiguous array of the file's (native-order) type and shape to read into, such
        as a slice of a larger array; by default a new array is allocated.

    Returns
    -------
    array : ndarray
        The array with the shape and element type given by the file's header (in native
        byte order); ``out`` if given.

    Raises
    ------
    ValueError
        If the file is not a valid IDX file, is truncated or has trailing data, or does not
        hold the expected type or shape.
    MemoryError
        If the data does not fit in the available memory.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "labels-idx1-ubyte")
    >>> with open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 2, 1]))
    >>> read_idx(path, dtype=np.uint8, shape=(None,))
    array([7, 2, 1], dtype=uint8)
    """
    name = os.fspath(path)
    handle, compressed = _open(path)
    with handle:
        header = _parse_header(handle, name, compressed)
        _check_header(header, name, dtype, shape)
        native = header.dtype.newbyteorder("=")
        if out is None:
            check_memory(
                header.nbytes,
                f"Reading {name}",
                "Free memory, or pass a smaller file.",
            )
            out = np.empty(header.shape, dtype=native)
        elif out.shape != header.shape or out.dtype != native or not out.flags.c_contiguous:
            raise ValueError(
                f"out must be a C-contiguous {native.name} array of shape {header.shape} "
                f"to hold {name!r}, got {out.dtype.name} of shape {out.shape}."
            )
        buffer = memoryview(out.reshape(-1).view(np.uint8))
        filled = 0
        try:
            while filled < header.nbytes:
                n = handle.readinto(buffer[filled : filled + _CHUNK])
                if not n:
                    raise ValueError(
                        f"{name!r} is truncated: its IDX header announces shape {header.shape} "
                        f"of {header.dtype.name} ({header.nbytes} bytes) but it holds {filled}."
                    )
                filled += n
            trailing = handle.read(1)  # also checks the gzip CRC at the end of the stream
        except _GZIP_ERRORS as exc:
            raise ValueError(f"{name!r} is a corrupt or truncated gzip file ({exc}).") from exc
        if trailing:
            raise ValueError(
                f"{name!r} has data after the {header.nbytes} bytes its IDX header announces "
                f"(shape {header.shape} of {header.dtype.name})."
            )
    if header.dtype.itemsize > 1 and sys.byteorder == "little":
        out.byteswap(inplace=True)  # the file's bytes are big-endian
    return out
