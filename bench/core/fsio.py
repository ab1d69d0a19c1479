"""Atomic file writes with a clear error when the disk is full.

Every file of a run directory is produced in memory first (a record's JSON, an ``.npz``, a PNG: all small),
then written to a temporary file next to its destination and moved into place with :func:`os.replace`. So a
reader sees either the old file or the complete new one, and knowing the size up front lets a full disk be
reported as "cannot write PATH: N bytes needed, M free" instead of a raw ``OSError``. On any failure the
temporary file is removed: no ``.tmp`` file and no empty file is left behind.

Two writers for what is not a small buffer: :func:`atomic_stream` (a file written in pieces, e.g. a download: the
caller checks it before it is moved into place) and :func:`atomic_write_dir` / :func:`publish_dir` (a folder of
files, renamed into place as a whole). Nothing else in colorbench calls ``os.replace`` (a test says so).
"""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

__all__ = ["DiskFullError", "WriteError", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "atomic_savez", "atomic_savefig", "atomic_write_with", "atomic_stream", "atomic_write_dir", "publish_dir",
           "tmp_path_for", "tmp_siblings"]

#: errno values that mean "no space" (full disk, exhausted quota).
_NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}


class WriteError(OSError):
    """A file of a run could not be written; the message names the path and the cause."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return str(self.strerror)


class DiskFullError(WriteError):
    """A file could not be written because the disk (or quota) is full; says how much space was needed."""


def tmp_path_for(path: Path, suffix: str = ".tmp", unique: bool = False) -> Path:
    """The temporary sibling of ``path``: same folder (so the final rename stays on one file system), hidden,
    and named by process (``.NAME.PID.tmp``) so that workers writing the same file never share one; ``unique``:
    by a random UUID instead (machines sharing a network file system may share process ids)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex if unique else os.getpid()}{suffix}")


def tmp_siblings(path: Path, suffix: str = ".tmp") -> list[Path]:
    """Every temporary sibling of ``path`` that :func:`tmp_path_for` may have named, by any process: e.g. those
    a writer killed from outside left behind. Whether they are stale is the caller's to know (it holds the lock
    that guards ``path``, so no live writer owns one)."""
    import glob

    path = Path(path)
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"))


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


def atomic_write_bytes(path: str | Path, data: bytes, unique_tmp: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + :func:`os.replace`); creates the parent folder.
    ``unique_tmp``: name the temporary file by a UUID, not the process id (see :func:`tmp_path_for`).

    Raises:
        DiskFullError: no space left; the message names ``path``, the bytes needed and the bytes free.
        WriteError: any other OS error (permissions, read-only file system, ...), naming ``path``.
    """
    path = Path(path)
    tmp = tmp_path_for(path, unique=unique_tmp)
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
        raise _write_error(exc, path, len(data)) from exc
    return path


def _write_error(exc: OSError, path: Path, needed: int | None) -> WriteError:
    """``exc`` (raised while writing ``path``) as a :class:`DiskFullError` or :class:`WriteError` naming ``path``."""
    if exc.errno in _NO_SPACE:
        free = _free_bytes(path.parent)
        have = "unknown" if free is None else _human(free)
        need = "" if needed is None else f"{_human(needed)} needed, "
        return DiskFullError(exc.errno, f"cannot write {path}: no space left on the device ({need}{have} free); "
                                        "free some space or choose another --out folder, then run again")
    return WriteError(exc.errno, f"cannot write {path}: {exc.strerror or exc}")


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


@contextmanager
def atomic_stream(path: str | Path, suffix: str = ".tmp") -> Iterator[BinaryIO]:
    """Write ``path`` in pieces: yields a binary file open on its temporary sibling (:func:`tmp_path_for` with
    ``suffix``); when the block ends normally the file is fsynced and moved into place with :func:`os.replace`.
    Any exception in the block (e.g. the caller's check of a downloaded file's hash) removes the temporary file
    and leaves ``path`` as it was. Creates the parent folder.

    Raises:
        DiskFullError, WriteError: as :func:`atomic_write_bytes` (the bytes needed are not known up front).
    """
    path = Path(path)
    tmp = tmp_path_for(path, suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        if _is_os_failure(exc):
            raise _write_error(exc, path, None) from exc
        raise


def _is_os_failure(exc: BaseException) -> bool:
    """An error of the operating system (it has an errno) that is not already one of ours."""
    return isinstance(exc, OSError) and exc.errno is not None and not isinstance(exc, WriteError)


def publish_file(tmp: str | Path, path: str | Path) -> Path:
    """Move the finished file ``tmp`` (written and closed by the caller, e.g. through ``os.pwrite`` row by row)
    into place at ``path`` in one rename on the same file system; an OS failure names the destination."""
    tmp, path = Path(tmp), Path(path)
    try:
        os.replace(tmp, path)
    except OSError as exc:
        if _is_os_failure(exc):
            raise _write_error(exc, path, None) from exc
        raise
    return path


def publish_dir(tmp: str | Path, path: str | Path, replace: bool = True) -> bool:
    """Move the finished folder ``tmp`` into place at ``path`` (same file system: one rename).

    Args:
        tmp: a folder the caller has filled (a hidden sibling of ``path``).
        path: the destination.
        replace: remove an existing ``path`` first (a reader may then briefly find no folder); False keeps an
            existing non-empty ``path`` (another process finished the same folder first) and removes ``tmp``.

    Returns:
        True if ``tmp`` is now ``path``; False if an existing folder was kept.
    """
    tmp, path = Path(tmp), Path(path)
    if replace:
        shutil.rmtree(path, ignore_errors=True)
    try:
        os.replace(tmp, path)  # atomic; fails on a non-empty destination folder
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if replace or not path.is_dir():
            raise
        return False
    return True


def atomic_write_dir(path: str | Path, fill: Callable[[Path], Any], replace: bool = True) -> Path:
    """Write a folder as a whole: ``fill(tmp)`` writes the files into a temporary sibling folder
    (``.NAME.PID.tmp``), which then replaces ``path`` (:func:`publish_dir`). On any error the temporary folder is
    removed; a full disk or another OS error while filling it raises :class:`DiskFullError` / :class:`WriteError`
    naming ``path``.
    """
    path = Path(path)
    tmp = tmp_path_for(path)
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if _is_os_failure(exc):
            raise _write_error(exc, path, None) from exc
        raise
    publish_dir(tmp, path, replace=replace)
    return path
