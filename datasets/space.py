"""Refuse a whole-set allocation, in memory or on disk, that would not fit, before making it."""

from __future__ import annotations

import shutil
from pathlib import Path

__all__ = ["InsufficientSpaceError", "require_space"]


class InsufficientSpaceError(MemoryError, ValueError):
    """A whole-set array that would not fit where it is about to be allocated; says how many bytes it needs (a
    ValueError too, so the CLI reports it as a bad request, without a traceback)."""


def _memory_available() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def require_space(nbytes: int, folder: Path | None, what: str, fix: str | None = None) -> None:
    """Refuse, before allocating, ``nbytes`` that do not fit on ``folder``'s disk (or in the memory available now
    when ``folder`` is None). Unknown free space (no ``/proc/meminfo``, an unreadable disk) is not refused.
    ``fix`` replaces the message's advice on what to do."""
    if folder is None:
        free, where = _memory_available(), "memory available"
        fix_default = "enable the cache (cache=true, the default) so the split is memory-mapped from disk, or load fewer images"
    else:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        where = f"free on the disk of {folder}"
        fix_default = "free space there, or put the cache on a larger disk (cache_dir option or $COLORBENCH_CACHE_DIR)"
    fix = fix or fix_default
    if free is not None and nbytes > free:
        raise InsufficientSpaceError(f"{what} needs {nbytes} bytes ({nbytes / 2**30:.2f} GiB); {free} bytes "
                                     f"({free / 2**30:.2f} GiB) are {where}. {fix}")
