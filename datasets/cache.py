"""Decode once: a disk cache of decoded dataset splits as memory-mapped uint8 ``.npy`` arrays.

An entry is a folder ``<cache dir>/<dataset>-<key[:20]>/`` holding, per split, ``<split>_rgb.npy``
(N, 3, H, W) uint8, ``<split>_labels.npy`` (N,) int64, optionally ``<split>_masks.npy`` (N, H, W) uint8, and
``meta.json`` (ids, class names, the dataset info and the full key). The key is a sha256 over everything that
decides the pixels: dataset name and loader version, the options that change the output, a fingerprint of the
source files (relative path, size, mtime) and the versions of the decoding libraries. A second load with the
same key memory-maps the arrays (copy-on-write, so the file is never changed) instead of decoding.

Entries are written to a temporary folder and renamed into place, so a crash never leaves a half entry and two
processes writing the same entry do not corrupt it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

from colorbench.core.fsio import publish_dir
from colorbench.datasets.base import ImageSet

__all__ = ["CACHE_ENV", "CACHE_FORMAT", "CacheEntry", "cache_key", "relative", "default_cache_dir", "files_fingerprint",
           "load_entry", "EntryWriter", "InsufficientSpaceError", "require_space"]

#: Environment variable naming the cache folder (default: ``<data_root>/.colorbench-cache``).
CACHE_ENV = "COLORBENCH_CACHE_DIR"
#: Version of the on-disk layout; part of every key.
CACHE_FORMAT = "1"
SPLITS = ("train", "test")


def default_cache_dir(data_root: Path, option: str | None = None) -> Path:
    """The cache folder: the ``cache_dir`` option, else ``$COLORBENCH_CACHE_DIR``, else ``data_root/.colorbench-cache``
    when the data folder is writable, else the user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``colorbench/datasets``): a read-only data folder (a shared dataset mount) is never written into, and the
    entries are keyed by content, so their location changes no value.

    Raises:
        ValueError: neither the data folder nor the user's cache can be written; the message names the
            ``cache_dir`` option and ``$COLORBENCH_CACHE_DIR``.
    """
    if option:
        return Path(option).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    root = Path(data_root)
    if os.access(root if root.exists() else root.parent, os.W_OK):
        return root / ".colorbench-cache"
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorbench" / "datasets"
    probe = next((p for p in (user, *user.parents) if p.exists()), None)
    if probe is not None and os.access(probe, os.W_OK):
        return user
    raise ValueError(f"the data folder {root} is read-only and so is {user}: give the decoded-data cache a "
                          f"writable folder with --dataset-option cache_dir=DIR or ${CACHE_ENV}=DIR")


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys) plus the cache format version."""
    text = json.dumps({"cache_format": CACHE_FORMAT, **parts}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def files_fingerprint(root: Path, paths: Iterable[Path | str]) -> str:
    """sha256 over (path relative to ``root``, size, mtime in ns) of each file, in the given order.

    Cheap (one ``stat`` per file, no reading), and changes when a file is replaced, edited, added or removed
    from the list. Missing files raise FileNotFoundError naming the file.
    """
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            raise FileNotFoundError(f"source file {p} is missing") from None
        rel = relative(p, root)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def relative(path: Path | str, root: Path | str) -> str:
    """``path`` relative to ``root`` (a string prefix cut when possible: ``os.path.relpath`` is slow on 10^5 files)."""
    path, root = os.fspath(path), os.fspath(root).rstrip(os.sep)
    if path.startswith(root + os.sep):
        return path[len(root) + 1 :]
    return os.path.relpath(path, root)


@dataclass
class CacheEntry:
    """A cache entry read back: the splits (memory-mapped) and the metadata stored with them."""

    path: Path
    sets: dict[str, ImageSet]
    meta: dict[str, Any]


def entry_dir(cache_dir: Path, dataset: str, key: str) -> Path:
    return Path(cache_dir) / f"{dataset}-{key[:20]}"


def _mmap_tensor(path: Path) -> torch.Tensor:
    # mode "c" (copy-on-write): a writable array backed by the file; writes stay in memory, the file never changes.
    return torch.from_numpy(np.load(path, mmap_mode="c"))


def load_entry(cache_dir: Path, dataset: str, key: str) -> CacheEntry | None:
    """The entry for ``key``, or None if there is none (or it is incomplete or for another key)."""
    d = entry_dir(cache_dir, dataset, key)
    meta_path = d / "meta.json"
    if not meta_path.is_file():
        return None
    meta = json.loads(meta_path.read_text())
    if meta.get("key") != key:
        return None
    sets = {}
    for split in SPLITS:
        m = meta["splits"][split]
        masks_path = d / f"{split}_masks.npy"
        sets[split] = ImageSet(
            rgb=_mmap_tensor(d / f"{split}_rgb.npy"),
            labels=_mmap_tensor(d / f"{split}_labels.npy"),
            ids=m["ids"],
            class_names=m["class_names"],
            masks=_mmap_tensor(masks_path) if masks_path.is_file() else None,
            mask_class_names=m.get("mask_class_names"),
        )
    return CacheEntry(path=d, sets=sets, meta=meta)


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


def require_space(nbytes: int, folder: Path | None, what: str) -> None:
    """Refuse, before allocating, ``nbytes`` that do not fit on ``folder``'s disk (or in the memory available now
    when ``folder`` is None). Unknown free space (no ``/proc/meminfo``, an unreadable disk) is not refused."""
    if folder is None:
        free, where = _memory_available(), "memory available"
        fix = "enable the cache (cache=true, the default) so the split is memory-mapped from disk, or load fewer images"
    else:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:
            free = None
        where = f"free on the disk of {folder}"
        fix = f"free space there, or put the cache on a larger disk (cache_dir option or ${CACHE_ENV})"
    if free is not None and nbytes > free:
        raise InsufficientSpaceError(f"{what} needs {nbytes} bytes ({nbytes / 2**30:.2f} GiB); {free} bytes "
                                     f"({free / 2**30:.2f} GiB) are {where}. {fix}")


class EntryWriter:
    """Writes one entry: arrays are allocated as ``.npy`` memmaps in a temporary folder and filled in place.

    Usage: ``w = EntryWriter(cache_dir, name, key)``; ``rgb = w.array("train_rgb", shape)``; fill it;
    ``w.commit(meta)`` renames the folder into place (or discards it if another process got there first);
    ``w.abort()`` on error. With ``cache_dir=None`` arrays are plain in-memory arrays and nothing is written.
    """

    def __init__(self, cache_dir: Path | None, dataset: str, key: str) -> None:
        self.dataset, self.key = dataset, key
        self.final = None if cache_dir is None else entry_dir(cache_dir, dataset, key)
        self.tmp = None
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dataset}-", dir=cache_dir))
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, name: str, shape: tuple[int, ...], dtype: Any = np.uint8) -> np.ndarray:
        """A new whole-split array, after checking that it fits (on disk, or in memory without a cache)."""
        require_space(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize, self.tmp,
                      f"{self.dataset}: the decoded {name} array {tuple(shape)} {np.dtype(dtype)}")
        if self.tmp is None:
            arr = np.empty(shape, dtype=dtype)
        else:
            arr = np.lib.format.open_memmap(self.tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
        self.arrays[name] = arr
        return arr

    def shrink(self, name: str, keep: np.ndarray) -> np.ndarray:
        """Replace array ``name`` by its rows where ``keep`` is True (used after skipping corrupt files)."""
        old = self.arrays[name]
        if keep.all():
            return old
        index = np.flatnonzero(keep)
        if self.tmp is None:
            self.arrays[name] = old[index]
            return self.arrays[name]
        # copied in chunks into a new memmap beside the old one: never the whole split in memory
        part = self.tmp / f"{name}.shrink.npy"
        require_space(len(index) * int(np.prod(old.shape[1:], dtype=np.int64)) * old.dtype.itemsize, self.tmp,
                      f"{self.dataset}: the {name} array without the skipped files")
        new = np.lib.format.open_memmap(part, mode="w+", dtype=old.dtype, shape=(len(index), *old.shape[1:]))
        for start in range(0, len(index), 256):
            new[start:start + 256] = old[index[start:start + 256]]
        new.flush()
        del self.arrays[name], old, new
        os.replace(part, self.tmp / f"{name}.npy")
        self.arrays[name] = np.load(self.tmp / f"{name}.npy", mmap_mode="r+")
        return self.arrays[name]

    def put(self, name: str, values: np.ndarray) -> np.ndarray:
        arr = self.array(name, values.shape, values.dtype)
        arr[...] = values
        return arr

    def commit(self, meta: dict[str, Any]) -> Path | None:
        """Flush and move the entry into place; returns its folder (None when not caching)."""
        if self.tmp is None:
            return None
        for arr in self.arrays.values():
            if isinstance(arr, np.memmap):
                arr.flush()
        self.arrays.clear()
        (self.tmp / "meta.json").write_text(json.dumps({"key": self.key, **meta}, default=str))
        if self.final.exists() and not (self.final / "meta.json").is_file():
            shutil.rmtree(self.final, ignore_errors=True)  # an incomplete entry left by an older crash
        # one rename; an entry another process finished first is kept (and this folder removed)
        publish_dir(self.tmp, self.final, replace=False)
        self.tmp = None
        return self.final

    def abort(self) -> None:
        self.arrays.clear()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
