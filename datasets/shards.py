"""One split stored in several row shards, seen as one uint8 array indexed by a global row number.

:class:`ShardedRows` is what :class:`colorbench.datasets.base.ImageSet` holds as ``rgb`` (and ``masks``) when the
decoded-data cache wrote a split in shards (``colorbench.datasets.cache``). It supports what the code reading an
``ImageSet`` does with a tensor: ``len``, ``shape``, ``dtype``, ``dim()``, indexing by an int, a slice, a list, a
numpy array or an index tensor (a gather that returns a new tensor, equal to indexing the unsharded array),
``split(k)`` into tensors of ``k`` rows, and :meth:`take` (a subset that stays an index, never a copy). Anything
else a tensor can do (``float()``, ``numpy()``, ...) gathers the whole split first, after checking that it fits
in the memory available now (:func:`colorbench.datasets.space.require_space` raises naming the bytes needed).

Shards opened from files are read with ``os.preadv`` into the output batch, not through the memory map: pages of a
mapped file count in the process's resident memory once touched, so an epoch of random gathers from a memory-mapped
3 GB split shows as 3 GB of RSS (measured by ``/usr/bin/time``); read into the batch, the rows sit in the kernel's
page cache, which the kernel shares and drops as it needs, and the process's memory stays flat in N.

Written by hand because no library offers a memory-mapped array over several files with numpy's fancy indexing
(``numpy.memmap`` is one file; dask and zarr would add a chunked-array runtime for what is one ``searchsorted``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from colorbench.datasets.space import require_space

__all__ = ["ShardedRows"]

_CHUNK_ROWS = 1024  # rows per step when a whole split is hashed or copied


class ShardedRows:
    """Rows ``(N, *row_shape)`` uint8 kept in shards (numpy arrays, usually read-only memmaps of ``.npy`` files).

    Args:
        shards: the shards in row order; all have the same row shape and dtype.
        index: the global rows this view shows, in order (None: all rows of all shards).
        paths: the ``.npy`` file of each shard (used to pickle the view by reference: a DataLoader or Ray worker
            re-opens the files instead of receiving the data).
    """

    def __init__(self, shards: Sequence[np.ndarray], index: np.ndarray | None = None,
                 paths: Sequence[str | Path] | None = None) -> None:
        if not shards:
            raise ValueError("ShardedRows needs at least one shard")
        row_shape, dtype = shards[0].shape[1:], shards[0].dtype
        for s in shards:
            if s.shape[1:] != row_shape or s.dtype != dtype:
                raise ValueError(f"shards differ: {s.dtype} {s.shape[1:]} vs {dtype} {row_shape}")
        self.shards = list(shards)
        self.paths = None if paths is None else [str(p) for p in paths]
        self.offsets = np.concatenate([[0], np.cumsum([len(s) for s in self.shards])]).astype(np.int64)
        self.index = None if index is None else np.asarray(index, dtype=np.int64)
        if self.index is not None and len(self.index) and (self.index.min() < 0 or self.index.max() >= self.offsets[-1]):
            raise IndexError(f"row index out of range for {self.offsets[-1]} rows")
        self._row_shape, self._np_dtype = tuple(row_shape), dtype
        self._row_bytes = int(np.prod(self._row_shape, dtype=np.int64)) * dtype.itemsize
        self._fds: list[int] | None = None
        self._fd_pid = -1

    @classmethod
    def open(cls, paths: Sequence[str | Path], index: np.ndarray | None = None) -> "ShardedRows":
        """Memory-map the ``.npy`` shards read-only (copy-on-write: writes stay in memory, the files never change)."""
        return cls([np.load(p, mmap_mode="c") for p in paths], index=index, paths=paths)

    def __reduce__(self):
        if self.paths is not None:
            return ShardedRows.open, (self.paths, self.index)
        return ShardedRows, ([np.asarray(s) for s in self.shards], self.index)

    # -- what an ImageSet's reader asks of a tensor ----------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.offsets[-1]) if self.index is None else len(self.index)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self._row_shape))

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(np.empty(0, dtype=self._np_dtype)).dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def ndim(self) -> int:
        return 1 + len(self._row_shape)

    def dim(self) -> int:
        return self.ndim

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def is_floating_point(self) -> bool:
        return False

    def cpu(self) -> "ShardedRows":
        return self

    def detach(self) -> "ShardedRows":
        return self

    def contiguous(self) -> "ShardedRows":
        return self

    def __repr__(self) -> str:
        return f"ShardedRows({len(self.shards)} shards, shape={tuple(self.shape)}, dtype={self.dtype})"

    def global_rows(self, key: Any) -> np.ndarray:
        """The global row numbers that ``self[key]`` reads (``key``: int, slice, list, array or index tensor)."""
        n = len(self)
        if isinstance(key, slice):
            local = np.arange(n, dtype=np.int64)[key]
        else:
            if isinstance(key, torch.Tensor):
                key = key.detach().cpu().numpy()
            local = np.asarray(key)
            if local.dtype == np.bool_:
                if local.shape != (n,):
                    raise IndexError(f"boolean index of shape {local.shape} for {n} rows")
                local = np.flatnonzero(local)
            elif not np.issubdtype(local.dtype, np.integer):
                raise IndexError(f"rows are indexed by integers, got {local.dtype}")
            local = local.astype(np.int64, copy=False)
            if local.size and (local.min() < -n or local.max() >= n):
                raise IndexError(f"row index out of range for {n} rows")
            local = np.where(local < 0, local + n, local)
        return local if self.index is None else self.index[local]

    def _files(self) -> list[int]:
        if self._fds is None or self._fd_pid != os.getpid():
            self._fds = [os.open(p, os.O_RDONLY) for p in self.paths]  # type: ignore[union-attr]
            self._fd_pid = os.getpid()
        return self._fds

    def __del__(self) -> None:
        if getattr(self, "_fds", None) is not None and self._fd_pid == os.getpid():
            for fd in self._fds:
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._fds = None

    def _gather(self, rows: np.ndarray) -> np.ndarray:
        flat = rows.reshape(-1)
        which = np.searchsorted(self.offsets, flat, side="right") - 1
        out = np.empty((len(flat), *self._row_shape), dtype=self._np_dtype)
        if self.paths is not None and hasattr(os, "preadv"):
            fds, size = self._files(), self._row_bytes
            view = out.reshape(len(flat), -1).view(np.uint8)
            for j, (s, g) in enumerate(zip(which.tolist(), flat.tolist())):
                at = self.shards[s].offset + (g - int(self.offsets[s])) * size
                if os.preadv(fds[s], [view[j]], at) != size:
                    raise OSError(f"short read from cache shard {self.paths[s]} (truncated?)")
            return out.reshape(*rows.shape, *self._row_shape)
        for s in np.unique(which):
            at = np.flatnonzero(which == s)
            local = flat[at] - self.offsets[s]
            if len(at) == len(flat):
                out[...] = self.shards[s][local]
            else:
                out[at] = self.shards[s][local]
        return out.reshape(*rows.shape, *self._row_shape)

    def __getitem__(self, key: Any) -> torch.Tensor:
        if isinstance(key, tuple):  # rows first, then the rest on the gathered tensor
            head = self[key[0]]
            return head[key[1:]] if isinstance(key[0], (int, np.integer)) else head[(slice(None), *key[1:])]
        if isinstance(key, (int, np.integer)):
            return torch.from_numpy(self._gather(self.global_rows(np.asarray([key])))[0])
        return torch.from_numpy(self._gather(self.global_rows(key)))

    def take(self, key: Any) -> "ShardedRows":
        """The rows ``key`` as a view: an index over the same shards, no pixel copied."""
        return ShardedRows(self.shards, index=self.global_rows(key), paths=self.paths)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive tensors of ``size`` rows, as ``Tensor.split`` gives them but gathered one at a time as they
        are iterated (never the whole split at once)."""
        return self.chunks(size)

    def chunks(self, size: int = _CHUNK_ROWS) -> Iterator[torch.Tensor]:
        """Consecutive tensors of ``size`` rows, gathered one at a time."""
        for start in range(0, len(self), size):
            yield self[start:start + size]

    def materialize(self) -> torch.Tensor:
        """The whole view as one in-memory tensor, after checking that it fits in the memory available now."""
        nbytes = len(self) * int(np.prod(self._row_shape, dtype=np.int64)) * self._np_dtype.itemsize
        require_space(nbytes, None, f"a whole sharded split {tuple(self.shape)} gathered into memory")
        out = np.empty((len(self), *self._row_shape), dtype=self._np_dtype)
        for start in range(0, len(self), _CHUNK_ROWS):
            out[start:start + _CHUNK_ROWS] = self[start:start + _CHUNK_ROWS].numpy()
        return torch.from_numpy(out)

    def numpy(self) -> np.ndarray:
        return self.materialize().numpy()

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def __getattr__(self, name: str) -> Any:
        # any other tensor method (float(), to(), mean(), ...) works on the whole split gathered into memory
        if name.startswith("_") or name in ("shards", "paths", "offsets", "index"):
            raise AttributeError(name)
        return getattr(self.materialize(), name)

