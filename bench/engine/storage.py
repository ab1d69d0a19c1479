"""Where the files of a run's cells live when the workers share no disk with the driver (``--storage``).

``--storage`` is a local folder (``PATH`` or ``file://PATH``: a mount every node sees) or any fsspec URI
(``s3://bucket/prefix``, ``gs://...``, ``memory://...``). Each run gets its own prefix, each cell a folder under it::

    STORAGE/<run dir name>-<hash of the run dir's path>/cells/<cell dir>/checkpoint/last.pt   epoch checkpoints
    STORAGE/<run dir name>-<hash ...>/cells/<cell dir>/checkpoint/final.pt  --save-checkpoints
    STORAGE/<run dir name>-<hash ...>/cells/<cell dir>/predictions.npz       the colorized test split (until fetched)
    STORAGE/<run dir name>-<hash ...>/files/<path in the run dir>            other files of a cell (cross-domain sets)

A cell that a Ray retry runs on another node finds its ``last.pt`` there and resumes from its last epoch. The
driver copies the cell's files and predictions into the run directory when the cell is done and then deletes the
cell's ``last.pt`` and ``predictions.npz``. Writes are whole-object: locally a complete temporary file renamed
into place (:mod:`colorbench.core.fsio`), elsewhere one ``pipe_file`` (a single PUT on object stores, which never
expose half an object), so a node killed mid-write leaves the previous checkpoint.

fsspec is imported when a URI is used: a plain folder needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://...`` locations other than ``file://`` (those need fsspec)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def normalize(storage: str) -> str:
    """``--storage`` as a location: an absolute local path for ``PATH`` and ``file://PATH``, else the URI.

    Raises:
        ValueError: an empty value, or a URI whose scheme fsspec does not know (naming the scheme).
    """
    text = str(storage).strip()
    if not text:
        raise ValueError("--storage is empty; give a folder every node sees, or an s3://, gs:// or memory:// URI")
    if text.startswith("file://"):
        text = text[len("file://"):]
    if not is_uri(text):
        return str(Path(text).expanduser().absolute())
    import fsspec

    scheme = text.split("://", 1)[0]
    try:
        fsspec.get_filesystem_class(scheme)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"--storage {storage}: fsspec cannot open {scheme}:// ({exc}); install its package (s3fs for "
                         "s3://, gcsfs for gs://) or give a folder every node sees") from None
    return text.rstrip("/")


def join(location: str, *parts: str) -> str:
    """``location/part/...`` for local paths and URIs alike."""
    if is_uri(location):
        return "/".join([location.rstrip("/"), *parts])
    return str(Path(location, *parts))


def run_prefix(storage: str, run_dir: str | Path) -> str:
    """The run's folder in the storage: ``<storage>/<run dir name>-<sha256 of its absolute path, 12 hex>``, so two
    runs with the same folder name on different drivers do not share checkpoints."""
    path = Path(run_dir).absolute()
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return join(normalize(storage), f"{path.name}-{digest}")


def _fs(location: str) -> tuple[Any, str]:
    import fsspec

    return fsspec.core.url_to_fs(location)


def write_bytes(location: str, data: bytes) -> None:
    """Write a whole file (atomically: the old content or the new one, never half)."""
    if not is_uri(location):
        from colorbench.core.fsio import atomic_write_bytes

        atomic_write_bytes(Path(location), data)
        return
    fs, path = _fs(location)
    parent = path.rsplit("/", 1)[0]
    if parent:
        fs.makedirs(parent, exist_ok=True)
    fs.pipe_file(path, data)


def read_bytes(location: str) -> bytes | None:
    """A file's content, or None when it does not exist."""
    if not is_uri(location):
        p = Path(location)
        return p.read_bytes() if p.is_file() else None
    fs, path = _fs(location)
    if not fs.isfile(path):
        return None
    return fs.cat_file(path)


def exists(location: str) -> bool:
    if not is_uri(location):
        return Path(location).is_file()
    fs, path = _fs(location)
    return bool(fs.isfile(path))


def remove(location: str) -> None:
    """Delete a file if it exists."""
    if not is_uri(location):
        Path(location).unlink(missing_ok=True)
        return
    fs, path = _fs(location)
    if fs.isfile(path):
        fs.rm_file(path)
