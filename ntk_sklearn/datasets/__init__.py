"""Loaders for the image datasets of the neural-kernel literature.

Each loader downloads its files once (with a checksum) into a cache folder, or reads a
local file or folder given with ``path=``, and returns flattened float features in [0, 1]
with integer labels, as ``(X_train, y_train, X_test, y_test)`` or a
:class:`~sklearn.utils.Bunch` (``return_X_y=False``).

Every file is treated as hostile: headers are checked before data is read, sizes against the
file and the available memory before anything is allocated, no more data is decompressed than
a header declares, pickled CIFAR batches are interpreted without running them, and pixels,
labels, image shapes and splits are validated; anything else is refused with a ``ValueError``
(or ``MemoryError``) that names the file.
"""

from ._base import ChecksumError, DownloadError, get_data_home
from ._cifar import load_cifar10
from ._mnist import load_fashion_mnist, load_mnist

__all__ = [
    "ChecksumError",
    "DownloadError",
    "get_data_home",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
]
