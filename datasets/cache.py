"""Decode once: a disk cache of decoded dataset splits as memory-mapped uint8 ``.npy`` arrays.

An entry is a folder ``<cache dir>/<dataset>-<key[:20]>/`` holding, per split, ``<split>_rgb.npy``
(N, 3, H, W) uint8, ``<split>_labels.npy`` (N,) int64, optionally ``<split>_masks.npy`` (N, H, W) uint8, and
``meta.json`` (ids, class names, the dataset info and the full key). The key is a sha256 over everything that
decides the pixels: dataset name and loader version, the options that change the output, a fingerprint of the
source files (relative path, size, mtime) and the versions of the decoding libraries. A second load with the
same key memory-maps the arrays (copy-on-write, so the file is never changed) instead of decoding.

Entries are written to a temporary folder and renamed into place, so a crash never leaves a half entry and two
processes writing the same entry do not corrupt it.

Storage chosen by size. A split whose decoded RGB is larger than the ``cache_shard_above_bytes`` dataset option
(default 256 MiB, :data:`DEFAULT_SHARD_ABOVE_BYTES`) is written in shards of at most ``cache_shard_bytes`` (default
1 GiB, :data:`DEFAULT_SHARD_BYTES`):
``<split>_rgb.<k>.npy`` (and ``<split>_masks.<k>.npy``), each the same raw uint8 rows as the unsharded array,
read back as one split (:class:`colorbench.datasets.shards.ShardedRows`, indexed by a global row number, so the
seed's data order and a bit-identical resume do not change). Each shard is decoded into a temporary file, flushed,
hashed (sha256), renamed into place and described by a sidecar ``<split>.<k>.json`` (rows, bytes, mtime, sha256)
in a folder named by the key (``.partial-<dataset>-<key[:20]>``): a fill that is killed keeps its finished
shards, and the next load decodes only the others; on several machines each fills the same folder name from the
same key. On load each shard is checked by size and mtime against the recorded ones and fully re-hashed only when
they differ (a changed shard is an error naming it). A split's ``--skip-corrupt`` files stay zero rows in their
shard and the kept rows are an index (``<split>_keep.npy``), never a rewrite.

Why raw rows and not WebDataset tar shards of encoded images. Measured here (2 shared cores, load average 6-10
from other agents; CPU time, so less sensitive to the load than wall time) on 400 of the 256x256 JPEG-sourced
images of ``benchmarks/data_path_scale.py``, per image read at random (a seeded order needs random access;
``benchmarks/cache_formats.py`` --n 400 reproduces the table):

============================================  ===========  ==============
storage                                         on disk      CPU per read
============================================  ===========  ==============
raw uint8 rows, memory-mapped (this cache)      196.6 kB      0.04 ms
the source JPEG, decoded and resized per read    20.0 kB      1.19 ms
tar of lossless WebP + offset index              74.0 kB      2.91 ms
tar of PNG (level 1 / 6) + offset index      104.3 / 97.5 kB  3.89 / 3.57 ms
============================================  ===========  ==============

A re-encoded shard must be lossless (a lossy one would change the values against the decode), so it saves only
2-2.7x of disk for 80-100x the CPU per read: at today's ~31 training images/s on CPU a 3 ms decode per image is
~9 % of a step, against ~0.1 % for the raw gather, and it repeats every epoch. The raw format costs disk
(ImageNet's 1.28 M training images at 256x256: 252 GB) but no CPU, which is what a 2-core machine lacks; a set
too big for the disk is refused before filling, naming the bytes needed. (The raw reads above hit the page cache;
a cold read costs disk bandwidth, 196 kB per image, which the DataLoader workers overlap with the step.)
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
from colorbench.datasets.shards import ShardedRows
from colorbench.datasets.space import InsufficientSpaceError, require_space

__all__ = ["CACHE_ENV", "CACHE_FORMAT", "DEFAULT_SHARD_BYTES", "DEFAULT_SHARD_ABOVE_BYTES", "CacheEntry", "ShardChangedError", "cache_key", "relative", "default_cache_dir", "files_fingerprint",
           "load_entry", "EntryWriter", "InsufficientSpaceError", "require_space"]

#: Environment variable naming the cache folder (default: ``<data_root>/.colorbench-cache``).
CACHE_ENV = "COLORBENCH_CACHE_DIR"
#: Version of the on-disk layout; part of every key.
CACHE_FORMAT = "1"
SPLITS = ("train", "test")
#: Default ``cache_shard_bytes``: splits with more decoded RGB bytes than this are cached in shards of this size.
DEFAULT_SHARD_BYTES = 2**30
#: Default ``cache_shard_above_bytes``: splits with more decoded RGB bytes than this are sharded (and read with
#: ``preadv``, so what an epoch reads does not stay in the process's memory). Measured: a ``run`` over 20,000
#: images kept its 786 MB memory-mapped test split resident through training (peak 2.6 GB, README "Data path").
DEFAULT_SHARD_ABOVE_BYTES = 2**28


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
    user = _user_cache_dir()
    if _writable(user):
        return user
    raise ValueError(f"the data folder {root} is read-only and so is {user}: give the decoded-data cache a "
                          f"writable folder with --dataset-option cache_dir=DIR or ${CACHE_ENV}=DIR")


def builtin_cache_dir() -> Path | None:
    """Where a built-in dataset (no data folder) keeps its decoded arrays: ``$COLORBENCH_CACHE_DIR``, else the
    user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``colorbench/datasets``); None when neither can be
    written (the dataset is then decoded every time, as it would be without a cache)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    user = _user_cache_dir()
    return user if _writable(user) else None


def _user_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "colorbench" / "datasets"


def _writable(folder: Path) -> bool:
    """Whether ``folder`` can be created or written: its nearest existing ancestor (itself included) is writable."""
    probe = next((p for p in (folder, *folder.parents) if p.exists()), None)
    return probe is not None and os.access(probe, os.W_OK)


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


class ShardChangedError(ValueError):
    """A cache shard whose bytes are not the ones recorded when it was written."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def file_facts(path: Path) -> dict[str, Any]:
    """What a shard is recorded and checked by: file name, size, mtime (ns) and sha256 of its bytes."""
    st = os.stat(path)
    return {"file": Path(path).name, "bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": file_sha256(path)}


def check_shard(folder: Path, facts: dict[str, Any]) -> Path:
    """The shard file, checked cheaply: the recorded size and mtime, else its sha256 (raises ShardChangedError)."""
    path = Path(folder) / facts["file"]
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ShardChangedError(f"cache shard {path} is missing; delete the folder {folder} to decode the dataset "
                                f"again") from None
    if st.st_size == facts["bytes"] and st.st_mtime_ns == facts["mtime_ns"]:
        return path
    if st.st_size != facts["bytes"] or file_sha256(path) != facts["sha256"]:
        raise ShardChangedError(f"cache shard {path} changed since it was written ({st.st_size} bytes, recorded "
                                f"{facts['bytes']} bytes and sha256 {facts['sha256'][:16]}...); delete the folder "
                                f"{folder} to decode the dataset again")
    return path  # touched but the same bytes


def _sharded(folder: Path, shards: list[dict[str, Any]], part: str, keep: np.ndarray | None) -> ShardedRows:
    return ShardedRows.open([check_shard(folder, s[part]) for s in shards], index=keep)


def load_entry(cache_dir: Path, dataset: str, key: str) -> CacheEntry | None:
    """The entry for ``key``, or None if there is none (or it is incomplete or for another key).

    Raises:
        ShardChangedError: a shard of a sharded split is missing or its bytes changed.
    """
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
        if m.get("layout") == "shards":
            keep_path = d / f"{split}_keep.npy"
            keep = np.load(keep_path) if keep_path.is_file() else None
            rgb = _sharded(d, m["shards"], "rgb", keep)
            masks = _sharded(d, m["shards"], "masks", keep) if "masks" in m["shards"][0] else None
        else:
            masks_path = d / f"{split}_masks.npy"
            rgb = _mmap_tensor(d / f"{split}_rgb.npy")
            masks = _mmap_tensor(masks_path) if masks_path.is_file() else None
        sets[split] = ImageSet(
            rgb=rgb,
            labels=_mmap_tensor(d / f"{split}_labels.npy"),
            ids=m["ids"],
            class_names=m["class_names"],
            masks=masks,
            mask_class_names=m.get("mask_class_names"),
        )
    return CacheEntry(path=d, sets=sets, meta=meta)


class ShardFile:
    """A uint8 ``.npy`` file being filled row by row: ``f[i] = row`` writes the row at its offset (``os.pwrite``)
    instead of through a memory map, so that a filled gigabyte does not count in the process's resident memory."""

    def __init__(self, path: Path, shape: tuple[int, ...]) -> None:
        self.filename, self.shape = str(path), tuple(shape)
        header = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=self.shape)  # header + sparse rows
        self.offset = header.offset
        del header
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self.fd = os.open(path, os.O_RDWR)

    def __setitem__(self, i: int, row: np.ndarray) -> None:
        data = np.ascontiguousarray(row, dtype=np.uint8)
        if data.shape != self.shape[1:]:
            raise ValueError(f"a row of {self.filename} has shape {self.shape[1:]}, got {data.shape}")
        if os.pwrite(self.fd, data.data, self.offset + int(i) * self.row_bytes) != self.row_bytes:
            raise OSError(f"short write to {self.filename} (disk full?)")

    def read(self) -> np.ndarray:
        """The rows written so far, memory-mapped read-only."""
        return np.load(self.filename, mmap_mode="r")

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EntryWriter:
    """Writes one entry: arrays are allocated as ``.npy`` memmaps in a temporary folder and filled in place.

    Usage: ``w = EntryWriter(cache_dir, name, key)``; ``rgb = w.array("train_rgb", shape)``; fill it;
    ``w.commit(meta)`` renames the folder into place (or discards it if another process got there first);
    ``w.abort()`` on error. With ``cache_dir=None`` arrays are plain in-memory arrays and nothing is written.

    With ``resumable=True`` the temporary folder is named by the key (``.partial-<dataset>-<key[:20]>``) and
    kept when the fill is interrupted, so that the shards finished there (:meth:`shard`,
    :meth:`finish_shard`) are reused by the next fill of the same key.
    """

    def __init__(self, cache_dir: Path | None, dataset: str, key: str, *, resumable: bool = False) -> None:
        self.dataset, self.key, self.resumable = dataset, key, resumable and cache_dir is not None
        self.final = None if cache_dir is None else entry_dir(cache_dir, dataset, key)
        self.tmp = None
        if cache_dir is not None:
            Path(cache_dir).mkdir(parents=True, exist_ok=True)
            if self.resumable:
                self.tmp = Path(cache_dir) / f".partial-{dataset}-{key[:20]}"
                self.tmp.mkdir(exist_ok=True)
                for left in self.tmp.glob(".*.npy"):  # a killed fill's unfinished shard (its process is gone)
                    if not _process_alive(int(left.suffixes[-2].lstrip("."))):
                        left.unlink(missing_ok=True)
            else:
                self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dataset}-", dir=cache_dir))
        self.arrays: dict[str, np.ndarray] = {}

    # -- shards ---------------------------------------------------------------------------------------------------
    def finished_shard(self, split: str, k: int, start: int, stop: int) -> dict[str, Any] | None:
        """The sidecar of shard ``k`` of ``split`` if a fill finished it for rows ``start:stop`` and its files are
        unchanged (size and mtime, else sha256); None otherwise."""
        if self.tmp is None:
            return None
        side = self.tmp / f"{split}.{k:05d}.json"
        if not side.is_file():
            return None
        try:
            facts = json.loads(side.read_text())
            if (facts["start"], facts["stop"]) != (start, stop):
                return None
            for part in ("rgb", "masks"):
                if part in facts:
                    check_shard(self.tmp, facts[part])
        except (ValueError, KeyError, ShardChangedError):
            return None
        return facts

    def shard(self, split: str, part: str, k: int, shape: tuple[int, ...]) -> "ShardFile":
        """A new temporary ``.npy`` file for shard ``k`` of ``split``'s ``part`` (``rgb`` or ``masks``)."""
        return ShardFile(self.tmp / f".{split}_{part}.{k:05d}.{os.getpid()}.npy", shape)

    def finish_shard(self, split: str, k: int, start: int, stop: int, parts: dict[str, np.ndarray],
                     extra: dict[str, Any]) -> dict[str, Any]:
        """Flush, hash and rename the shard's temporary files into place, then write its sidecar (last, so a
        sidecar always describes finished files); returns the sidecar."""
        from colorbench.core.fsio import atomic_write_json, publish_file

        facts: dict[str, Any] = {"start": start, "stop": stop, **extra}
        for part, arr in parts.items():
            arr.close()
            final = publish_file(Path(arr.filename), self.tmp / f"{split}_{part}.{k:05d}.npy")
            facts[part] = file_facts(final)
        parts.clear()
        atomic_write_json(self.tmp / f"{split}.{k:05d}.json", facts)
        return facts

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
        for left in self.tmp.glob(f".*.{os.getpid()}.npy"):
            left.unlink(missing_ok=True)
        (self.tmp / "meta.json").write_text(json.dumps({"key": self.key, **meta}, default=str))
        if self.final.exists() and not (self.final / "meta.json").is_file():
            shutil.rmtree(self.final, ignore_errors=True)  # an incomplete entry left by an older crash
        # one rename; an entry another process finished first is kept (and this folder removed)
        publish_dir(self.tmp, self.final, replace=False)
        self.tmp = None
        return self.final

    def abort(self, keep_finished: bool = False) -> None:
        """Discard the temporary folder (a resumable writer keeps it, with its finished shards, when
        ``keep_finished``: the fill was interrupted, not refused)."""
        self.arrays.clear()
        if self.tmp is not None:
            if not (self.resumable and keep_finished):
                shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None
