"""Atomic file writes with a clear error when the disk is full.

Every file of a run directory is produced in memory first (a record's JSON, an ``.npz``, a PNG: all small),
then written to a temporary file next to its destination and moved into place with :func:`os.replace`. So a
reader sees either the old file or the complete new one, and knowing the size up front lets a full disk be
reported as "cannot write PATH: N bytes needed, M free" instead of a raw ``OSError``. On any failure the
temporary file is removed: no ``.tmp`` file and no empty file is left behind.
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable

__all__ = ["DiskFullError", "WriteError", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_savez", "atomic_savefig", "atomic_write_with", "tmp_path_for"]

#: errno values that mean "no space" (full disk, exhausted quota).
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class WriteError(OSError):
    """A file of a run could not be written; the message names the path and the cause."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)


class DiskFullError(WriteError):
    """A file could not be written because the disk (or quota) is full; says how much space was needed."""


def tmp_path_for(path: Path) -> Path:
    """The temporary sibling of ``path``: same folder (so the final rename stays on one file system), hidden,
    and named by process so that workers writing the same file never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _free_bytes(folder: Path) -> int | None:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit} ({n} bytes)"
        size /= 1024
    raise AssertionError("unreachable")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + :func:`os.replace`); creates the parent folder.

    Raises:
        DiskFullError: no space left; the message names ``path``, the bytes needed and the bytes free.
        WriteError: any other OS error (permissions, read-only file system, ...), naming ``path``.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if exc.errno in _NO_SPACE:
            free = _free_bytes(path.parent)
            have = "unknown" if free is None else _human(free)
            raise DiskFullError(
                exc.errno, f"cannot write {path}: no space left on the device ({_human(len(data))} needed, "
                           f"{have} free); free some space or choose another --out folder, then run again") from exc
        raise WriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any, **dumps_kwargs: Any) -> Path:
    """``obj`` as indented JSON (``dumps_kwargs`` go to :func:`json.dumps`)."""
    return atomic_write_text(path, json.dumps(obj, indent=2, **dumps_kwargs))


def atomic_write_with(path: str | Path, writer: Callable[[io.BytesIO], Any]) -> Path:
    """Let ``writer`` fill an in-memory buffer (e.g. ``frame.to_csv``, ``fig.savefig``), then write it atomically."""
    buf = io.BytesIO()
    writer(buf)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_savez(path: str | Path, **arrays: Any) -> Path:
    """:func:`numpy.savez_compressed` to ``path`` (which should end in ``.npz``), atomically."""
    import numpy as np

    return atomic_write_with(path, lambda buf: np.savez_compressed(buf, **arrays))


def atomic_savefig(fig: Any, path: str | Path, **savefig_kwargs: Any) -> Path:
    """``fig.savefig`` to ``path`` atomically; the format comes from the path's suffix."""
    path = Path(path)
    fmt = savefig_kwargs.pop("format", path.suffix.lstrip(".") or "png")
    return atomic_write_with(path, lambda buf: fig.savefig(buf, format=fmt, **savefig_kwargs))
