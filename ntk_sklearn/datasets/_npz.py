"""Reader for image datasets stored as ``.npz`` files.

``numpy.load`` allocates each array from the shape its header declares before reading its
data, so a tiny file can ask for any amount of memory. Here every array's header is read
first, checked against the size the archive records for it and the memory available, and
only then is the array read, up to exactly its declared size.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .._memory import check_memory
from ._assemble import ImageData

__all__ = ["read_npz"]

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_NPY_MAGIC = b"\x93NUMPY"
# Deflate cannot expand data by more than about 1032:1 (258-byte matches in 2 bits).
_MAX_DEFLATE_RATIO = 1032
_CHUNK = 1 << 22
# Array name -> what kinds of element types it may have (numpy dtype.kind).
_ARRAYS = {"images": "uif", "labels": "iu", "is_test": "biu", "class_names": "US"}


def _read_array(archive: zipfile.ZipFile, name: str, path: Path) -> np.ndarray:
    """Read ``name.npy`` from the archive once its header agrees with its recorded size."""
    info = archive.getinfo(f"{name}.npy")
    if info.compress_type == zipfile.ZIP_STORED:
        consistent = info.file_size == info.compress_size
    else:
        consistent = info.file_size <= _MAX_DEFLATE_RATIO * info.compress_size + 1024
    if not consistent:
        raise ValueError(
            f"{path}: {name}.npy claims {info.file_size} bytes stored in {info.compress_size}; "
            "the archive is corrupt."
        )
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"{path}: {name}.npy has unsupported .npy format {version}.")
        if dtype.kind not in _ARRAYS[name] or dtype.fields is not None or dtype.subdtype:
            raise ValueError(f"{path}: the {name} array has the unsupported type {dtype}.")
        nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if member.tell() + nbytes != info.file_size:
            raise ValueError(
                f"{path}: {name}.npy declares shape {shape} of {dtype} ({nbytes} bytes) but "
                f"holds {info.file_size - member.tell()} bytes of data."
            )
        check_memory(nbytes, f"Reading {name} from {path}", "Free memory, or use a smaller file.")
        array = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
        buffer = memoryview(array.reshape(-1, order="A").view(np.uint8))
        filled = 0
        while filled < nbytes:
            n = member.readinto(buffer[filled : filled + _CHUNK])
            if not n:
                raise ValueError(f"{path}: {name}.npy is truncated.")
            filled += n
        if member.read(1):  # reaching the end also checks the member's CRC
            raise ValueError(f"{path}: {name}.npy has data after its declared shape {shape}.")
    return array


def read_npz(path: str | os.PathLike[str]) -> ImageData:
    """Read an ``.npz`` file with ``images`` and ``labels`` arrays.

    Optional arrays: ``is_test`` (bool, or integers 0/1: 1 marks a test sample; defines the
    split) and ``class_names`` (strings). No pickled object is ever loaded; each array's
    header is checked against its stored size and the available memory before the array is
    allocated.

    Parameters
    ----------
    path : str or path-like
        The ``.npz`` file.

    Returns
    -------
    data : ImageData
        The images, labels, split and class names.

    Raises
    ------
    ValueError
        If the file is not a valid ``.npz`` archive (for instance a ``.npy`` file renamed, or
        a truncated file), lacks ``images`` or ``labels``, or holds arrays of the wrong type
        or inconsistent size.
    MemoryError
        If an array does not fit in the available memory.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> path = os.path.join(tempfile.mkdtemp(), "d.npz")
    >>> np.savez(path, images=np.zeros((4, 28, 28), np.uint8), labels=np.arange(4))
    >>> read_npz(path).images.shape
    (4, 28, 28)
    """
    path = Path(path)
    with open(path, "rb") as handle:
        magic = handle.read(6)
    if magic == _NPY_MAGIC:
        raise ValueError(
            f"{path} is a .npy file (a single array), not an .npz archive; save the images "
            "and labels together with numpy.savez(path, images=..., labels=...)."
        )
    if magic[:4] not in _ZIP_MAGIC:
        raise ValueError(f"{path} is not an .npz archive (no zip signature).")
    try:
        with zipfile.ZipFile(path) as archive:
            files = {n.removesuffix(".npy") for n in archive.namelist() if n.endswith(".npy")}
            missing = {"images", "labels"} - files
            if missing:
                raise ValueError(
                    f"{path} has no {' or '.join(sorted(missing))} array; an image .npz needs "
                    f"'images' and 'labels' (found {sorted(files)})."
                )
            arrays = {name: _read_array(archive, name, path) for name in _ARRAYS if name in files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is a corrupt or truncated .npz archive ({exc}).") from exc
    names = arrays.get("class_names")
    if names is not None and names.ndim != 1:
        raise ValueError(f"{path}: class_names must be one-dimensional, got shape {names.shape}.")
    target_names = None
    if names is not None:
        target_names = [
            n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names.tolist()
        ]
    images, is_test = arrays["images"], arrays.get("is_test")
    split = "its own train/test split (is_test)" if is_test is not None else "no split of its own"
    data = ImageData(images, arrays["labels"], is_test, target_names, str(path))
    data.descr = f"{len(images)} images of shape {images.shape[1:]} from an .npz file with {split}."
    return data
