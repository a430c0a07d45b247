"""Refuse, before allocating, arrays that cannot fit in memory."""

from __future__ import annotations

import os
from pathlib import Path


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable page cache)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Room left under a cgroup v2 memory limit (containers), or None without a limit."""
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit == "max":
            return None
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        return max(int(limit) - used, 0)
    except (OSError, ValueError):
        return None


def available_memory() -> int | None:
    """Bytes of memory available to this process, or None where the OS does not say.

    Linux: ``MemAvailable`` (not ``MemFree``, which leaves out page cache the kernel will
    reclaim), capped by the room under a cgroup limit. Elsewhere: the free physical pages.
    """
    candidates = [_meminfo_available(), _cgroup_available()]
    if candidates[0] is None:
        try:
            candidates[0] = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    known = [c for c in candidates if c is not None]
    return min(known) if known else None


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
