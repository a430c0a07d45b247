"""Refuse, before allocating, arrays that cannot fit in memory.

:func:`available_memory` is the one answer to "how many more bytes may this process allocate":
the smallest of the machine's ``MemAvailable``, the room under every cgroup memory limit above
the process (v1 and v2, containers), and the room under the address-space and data limits
(``RLIMIT_AS``, ``RLIMIT_DATA``: ``ulimit -v``, batch schedulers), each less what the process
already uses. Every memory plan of the package calls it (through :func:`check_memory`).
"""

from __future__ import annotations

import os
import resource
from pathlib import Path

#: cgroup v1 reports "no limit" as a number near 2**63.
_NO_LIMIT = 2**60
_CGROUP_ROOT = Path("/sys/fs/cgroup")


def _meminfo_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` (free memory plus reclaimable page cache)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_paths() -> list[tuple[str, Path]]:
    """``(version, folder)`` of this process's memory cgroup and of each parent, v2 and v1."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            version, root = "v2", _CGROUP_ROOT
        elif "memory" in controllers.split(","):
            version, root = "v1", _CGROUP_ROOT / "memory"
        else:
            continue
        rel = Path(path.lstrip("/"))
        for folder in [root / rel, *[root / p for p in rel.parents]]:
            found.append((version, folder))
    # Inside a container the namespace's root is the container's own cgroup.
    found += [("v2", _CGROUP_ROOT), ("v1", _CGROUP_ROOT / "memory")]
    return found


def _cgroup_room(version: str, folder: Path) -> int | None:
    """Limit minus usage of one cgroup folder; None without a limit or without the files."""
    names = (
        ("memory.max", "memory.current")
        if version == "v2"
        else ("memory.limit_in_bytes", "memory.usage_in_bytes")
    )
    try:
        limit = (folder / names[0]).read_text().strip()
        if limit == "max" or int(limit) >= _NO_LIMIT:
            return None
        used = int((folder / names[1]).read_text().strip())
    except (OSError, ValueError):
        return None
    return max(int(limit) - used, 0)


def _cgroup_available() -> int | None:
    """Room left under the tightest cgroup memory limit over this process, or None."""
    rooms = {_cgroup_room(v, f) for v, f in dict.fromkeys(_cgroup_paths())}
    known = [r for r in rooms if r is not None]
    return min(known) if known else None


def _process_sizes() -> dict[str, int]:
    """``VmSize`` (address space) and ``VmData`` (data segment) of this process, in bytes."""
    sizes = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmSize", "VmData"):
                sizes[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    if "VmSize" not in sizes:
        try:  # statm: the address space in pages, first field
            pages = int(Path("/proc/self/statm").read_text().split()[0])
            sizes["VmSize"] = pages * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError, AttributeError):
            pass
    return sizes


def _rlimit_available() -> dict[str, int]:
    """Room under ``RLIMIT_AS`` and ``RLIMIT_DATA`` (soft limits) given what is in use."""
    rooms = {}
    sizes = None
    for name, used_key in (("RLIMIT_AS", "VmSize"), ("RLIMIT_DATA", "VmData")):
        limit = getattr(resource, name, None)
        if limit is None:
            continue
        soft, _ = resource.getrlimit(limit)
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        sizes = _process_sizes() if sizes is None else sizes
        rooms[name] = max(soft - sizes.get(used_key, 0), 0)
    return rooms


def memory_limits() -> dict[str, int]:
    """Bytes this process may still allocate under each limit the OS reports.

    Keys: ``"MemAvailable"`` (or ``"free pages"`` where there is no ``/proc/meminfo``),
    ``"cgroup limit"``, ``"RLIMIT_AS"`` (address-space limit less the current address space),
    ``"RLIMIT_DATA"`` (data limit less the current data segment); only those that apply.
    """
    limits = {}
    meminfo = _meminfo_available()
    if meminfo is not None:
        limits["MemAvailable"] = meminfo
    else:
        try:
            limits["free pages"] = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (AttributeError, ValueError, OSError):
            pass
    cgroup = _cgroup_available()
    if cgroup is not None:
        limits["cgroup limit"] = cgroup
    limits.update(_rlimit_available())
    return limits


def available_memory() -> int | None:
    """Bytes this process may still allocate, or None where the OS does not say.

    The smallest of :func:`memory_limits`: ``MemAvailable`` (not ``MemFree``, which leaves out
    page cache the kernel will reclaim), the room under every cgroup memory limit above the
    process, and the room under ``RLIMIT_AS`` and ``RLIMIT_DATA`` (``ulimit -v`` / ``-d``).
    """
    limits = memory_limits()
    return min(limits.values()) if limits else None


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
    if available is None or n_bytes <= available:
        return
    limits = memory_limits()
    binding = min(limits, key=limits.__getitem__) if limits else None
    # Named when it is the limit just read (a test may replace available_memory).
    named = binding is not None and abs(limits[binding] - available) <= 0.1 * available + 2**20
    raise MemoryError(
        f"{what} needs about {n_bytes / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB "
        f"is available{f' (limited by {binding})' if named else ''}. {advice}"
    )
