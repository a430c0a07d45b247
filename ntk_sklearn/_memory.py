"""Refuse, before allocating, arrays that cannot fit in memory."""

from __future__ import annotations

import os


def available_memory() -> int | None:
    """Bytes of memory available to this process, or None where the OS does not say."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_memory(n_bytes: int, what: str, advice: str) -> None:
    """Raise ``MemoryError`` if ``n_bytes`` exceed the available memory.

    Parameters
    ----------
    n_bytes : int
        Estimated size of what is about to be allocated.
    what : str
        What needs it, for the message.
    advice : str
        What the user can change, for the message.
    """
    available = available_memory()
    if available is not None and n_bytes > available:
        raise MemoryError(
            f"{what} needs about {n_bytes / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB "
            f"is available. {advice}"
        )
