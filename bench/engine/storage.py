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

The same module fetches a dataset's raw files when ``--data-root`` is a URI (:func:`fetch_raw_folders`): once per
node, into a content-keyed folder of the node's cache (:func:`node_cache_dir`), under a file lock; the loaders then
read that folder as they read a local data root.

fsspec is imported when a URI is used: a plain folder needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

#: Environment variable naming a node's folder of decoded datasets and fetched raw data (default: the node user's
#: cache, ``$XDG_CACHE_HOME`` or ``~/.cache``, then ``colorbench/datasets``); ``--node-cache-dir`` sets it for a Ray run.
NODE_CACHE_ENV = "COLORBENCH_NODE_CACHE_DIR"


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


def node_cache_dir(option: str | None = None) -> Path:
    """This node's folder of decoded datasets and fetched raw data: ``option`` (``--node-cache-dir``), else
    ``$COLORBENCH_NODE_CACHE_DIR``, else the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``colorbench/datasets``)."""
    chosen = option or os.environ.get(NODE_CACHE_ENV)
    if chosen:
        return Path(chosen).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorbench" / "datasets"


def is_data_uri(location: Any) -> bool:
    """True for a ``--data-root`` that names a storage (``scheme://...``, ``file://`` included: fetched into the
    node's cache like any other) rather than a folder read in place."""
    return isinstance(location, str) and "://" in location


#: Keys of an fsspec file listing that say when a file last changed, in the order they are tried: ``mtime``
#: (local), ``LastModified`` (s3fs), ``updated`` (gcsfs), ``created`` (memory://).
_STAMP_KEYS = ("mtime", "LastModified", "updated", "created")


def _stamp_ns(info: dict[str, Any]) -> int | None:
    """A listed file's modification time in ns since the epoch, when the filesystem gives one."""
    for key in _STAMP_KEYS:
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return int(round(float(value) * 1e9))
        if isinstance(value, datetime):
            return int(round(value.timestamp() * 1e9))
        try:
            return int(round(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp() * 1e9))
        except ValueError:
            continue
    return None


def _listing(uri: str, folders: Sequence[str], what: str) -> tuple[Any, list[tuple[str, str, int, int | None]]]:
    """The files under ``uri/<folder>`` for each folder: ``(remote path, path relative to uri, size, stamp)``.

    Raises:
        ValueError: fsspec cannot open the scheme (naming its package).
        FileNotFoundError: a folder holds no file (naming its URI).
    """
    import fsspec

    scheme = uri.split("://", 1)[0]
    try:
        fs, base = fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as exc:
        raise ValueError(f"{what}: --data-root {uri}: fsspec cannot open {scheme}:// ({exc}); install its package "
                         "(s3fs for s3://, gcsfs for gs://) or give --data-root as a folder every worker sees") from None
    base = base.rstrip("/")
    files = []
    for folder in folders:
        top = f"{base}/{folder.strip('/')}" if folder.strip("/") else base
        found = fs.find(top, detail=True) if fs.exists(top) else {}
        listed = sorted((p, i) for p, i in found.items() if i.get("type", "file") == "file")
        if not listed:
            where = f"{uri.rstrip('/')}/{folder.strip('/')}" if folder.strip("/") else uri
            raise FileNotFoundError(f"{what}: --data-root {uri}: {where} does not exist or holds no file; check the "
                                    "URI (the data root that holds the dataset's folder)")
        for path, info in listed:
            rel = path[len(base):].lstrip("/")
            files.append((path, rel, int(info.get("size") or 0), _stamp_ns(info)))
    return fs, files


def fetch_raw_folders(uri: str, folders: Sequence[str], cache_dir: Path, what: str) -> tuple[Path, dict[str, Any]]:
    """Fetch the raw files of ``folders`` under the storage ``uri`` into this node's cache, once: a folder keyed by
    the listing (paths, sizes, modification times), filled by one process under a file lock (the others wait, then
    read it), written whole (a killed fetch leaves no half folder). Each file is streamed to disk (never a split in
    memory) and keeps the remote modification time where the storage gives one (to its precision), so every copy of
    the same listing, on any node, gets the same decoded-data cache key.

    Args:
        uri: the data root (``file://``, ``memory://``, ``s3://``, ``gs://``, any fsspec URI).
        folders: the loader's folders under the data root that hold every file it reads ("" for all).
        cache_dir: the node's cache (:func:`node_cache_dir`); the copy goes to ``<cache_dir>/raw/<key>``.
        what: the dataset's name, for messages.

    Returns:
        The local folder to read as the data root, and what to record about the copy.

    Raises:
        FileNotFoundError: a folder missing or empty in the storage (naming its URI).
        ValueError: fsspec cannot open the scheme, or a file changed size while it was fetched.
    """
    from filelock import FileLock

    from colorbench.core.fsio import atomic_write_dir, tmp_siblings
    from colorbench.datasets.space import require_space

    fs, files = _listing(uri, folders, what)
    key = hashlib.sha256(json.dumps([uri.rstrip("/"), sorted(folders), [f[1:] for f in files]]).encode()).hexdigest()[:24]
    raw = Path(cache_dir) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    local = raw / key
    record = {"uri": uri, "folders": list(folders), "files": len(files), "bytes": sum(f[2] for f in files),
              "key": key, "copy": str(local)}

    def fill(tmp: Path) -> None:
        targets = [tmp / rel for _, rel, _, _ in files]
        for (_, rel, _, _), t in zip(files, targets):
            if ".." in Path(rel).parts or Path(rel).is_absolute():
                raise ValueError(f"{what}: {uri}: the listed file {rel!r} would land outside the copy")
            t.parent.mkdir(parents=True, exist_ok=True)
        fs.get([p for p, _, _, _ in files], [str(t) for t in targets])  # one file at a time, streamed to disk
        for (path, rel, size, stamp), t in zip(files, targets):
            got = t.stat().st_size
            if got != size:
                raise ValueError(f"{what}: {uri}: {rel} was listed with {size} bytes but {got} arrived (changed "
                                 "while it was fetched?); run again")
            if stamp is not None:
                os.utime(t, ns=(stamp, stamp))

    with FileLock(str(raw / f".lock-{key}")):  # one process per node fetches; the others wait, then read the copy
        if not local.is_dir():
            for stale in tmp_siblings(local):  # a fetch killed from outside (we hold the lock: none is live)
                shutil.rmtree(stale, ignore_errors=True)
            require_space(record["bytes"], raw, f"{what}: fetching {len(files)} files of {uri}",
                          fix="free space there, or give the node cache on a larger disk (--node-cache-dir or "
                              "$COLORBENCH_NODE_CACHE_DIR)")
            atomic_write_dir(local, fill, replace=False)
    return local, record
