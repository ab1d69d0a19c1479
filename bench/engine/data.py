"""The data a cell trains and evaluates on: one dataset per process, the data order of a seed (:class:`EpochSampler`,
resumable mid-epoch and sliceable by rank), the training loader (:func:`make_train_loader`, gathering in DataLoader
worker processes or in process), paired and unpaired training batches, the sample images."""

from __future__ import annotations

import copy
import functools
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch

from colorbench.datasets import DATASETS, DatasetSplits, ImageSet
from colorbench.core.color import rgb_to_grey
from colorbench.datasets.base import Batch
from colorbench.methods import METHODS
from colorbench.engine import storage
from colorbench.engine.protocols import get_protocol
from colorbench.engine.spec import RunSpec, dataset_options_for


@functools.lru_cache(maxsize=4)
def _load_dataset_cached(name: str, options: tuple[tuple[str, Any], ...]) -> DatasetSplits:
    return DATASETS.get(name)(**dict(options)).load()


def load_dataset(spec: RunSpec, name: str | None = None, node_cache: str | None = None) -> DatasetSplits:
    """Load (once per process) one dataset of the spec, with the protocol's resize options (unless given) and
    only the protocol's test images (colorbench.engine.protocols). A ``data_root`` that is a storage URI is
    fetched first into this node's cache (``node_cache``, else ``--node-cache-dir``, else
    :func:`colorbench.engine.storage.node_cache_dir`: :func:`local_data_root`) and read from there; the record
    keeps the URI."""
    name = name or spec.dataset_names()[0]
    proto = get_protocol(spec.protocol)
    given = proto.dataset_options(name, dict(dataset_options_for(spec, name)))

    def load(given: dict[str, Any]) -> DatasetSplits:
        options = tuple(sorted(given.items()))
        try:
            hash(options)
        except TypeError:  # an unhashable option value (a list): no cache
            return DATASETS.get(name)(**dict(options)).load()
        return _load_dataset_cached(name, options)

    return proto.restrict_test(load_via_node_copy(name, given, load, node_cache or spec.node_cache_dir))


def load_via_node_copy(name: str, options: dict[str, Any], load: Callable[[dict[str, Any]], DatasetSplits],
                       node_cache: str | None = None) -> DatasetSplits:
    """``load(options)``; when the ``data_root`` option is a storage URI, its files are first fetched into this
    node's cache (:func:`local_data_root`) and ``load`` reads that copy; the loaded info then keeps what the user
    gave (``data_root``) and where this node read it (``raw_copy``). Used by ``run`` and ``evaluate``."""
    if not storage.is_data_uri(options.get("data_root")):
        return load(options)
    local, raw_copy = local_data_root(name, options, node_cache)
    data = load({**options, "data_root": local})
    data.info["data_root"], data.info["raw_copy"] = raw_copy["uri"], raw_copy
    return data


@functools.lru_cache(maxsize=8)
def _fetched(name: str, uri: str, folders: tuple[str, ...], cache_dir: str) -> tuple[str, dict[str, Any]]:
    """The node's copy of the URI's folders, fetched once per process (callers copy the record before changing it)."""
    local, record = storage.fetch_raw_folders(uri, folders, Path(cache_dir), name)
    return str(local), record


def uri_datasets() -> list[str]:
    """The registered datasets whose raw files can come from a storage URI (their loader names its folders:
    ``raw_folders``)."""
    from colorbench.datasets.standard.pipeline import StandardDataset

    return [n for n, cls in DATASETS.items()
            if isinstance(cls, type) and issubclass(cls, StandardDataset)
            and cls.raw_folders is not StandardDataset.raw_folders]


def local_data_root(name: str, options: dict[str, Any], node_cache: str | None = None) -> tuple[str, dict[str, Any]]:
    """The local folder to read dataset ``name`` from when its ``data_root`` option is a storage URI: the loader's
    folders (:meth:`~colorbench.datasets.standard.pipeline.StandardDataset.raw_folders`) fetched once per node
    into its cache (:func:`colorbench.engine.storage.fetch_raw_folders`, under ``node_cache`` or
    :func:`colorbench.engine.storage.node_cache_dir`), and what to record about the copy.

    Raises:
        ValueError: the loader cannot read from a URI (naming ``--data-root PATH``), or ``download=true``.
        FileNotFoundError: the URI holds none of the loader's files (naming it).
    """
    uri = options["data_root"]
    loader = DATASETS.get(name)(**options)
    folders = getattr(loader, "raw_folders", lambda: None)()
    if folders is None:
        able = ", ".join(uri_datasets()) or "none"
        raise ValueError(f"dataset {name} cannot read its files from a storage URI (--data-root {uri}): it reads "
                         "more than a folder of images (archives, label files). Give --data-root PATH, a folder every "
                         f"worker sees (e.g. the bucket mounted at the same path on each node); URIs work for {able}")
    if options.get("download"):
        raise ValueError(f"dataset {name}: download=true cannot write into --data-root {uri} (a storage URI); "
                         "download into a local --data-root, or upload the files to the storage first")
    local, record = _fetched(name, uri, tuple(folders), str(storage.node_cache_dir(node_cache)))
    return local, copy.deepcopy(record)


def servable_methods(names: Sequence[str], train: ImageSet, preset: str) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into the methods that can train on ``train`` under ``preset`` and the others with the
    reason (:meth:`Method.unsupported_reason`, :meth:`Method.unavailable_reason`)."""
    keep, skipped = [], {}
    for name in names:
        cls = METHODS.get(name)
        reason = cls.unsupported_reason(train) or cls.unavailable_reason(preset)
        if reason is None:
            keep.append(name)
        else:
            skipped[name] = reason
    return keep, skipped


def sample_indices(n: int, k: int) -> torch.Tensor:
    """``k`` test indices spread evenly over the test set (so the grid shows different sources)."""
    k = min(k, n)
    return torch.linspace(0, n - 1, k).round().long() if k else torch.zeros(0, dtype=torch.long)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def unpaired_domains(n: int, unpaired_protocol: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the grey domain A and the colour domain B of the training split for unpaired methods.

    ``disjoint`` (default): A and B are the two halves of a seeded permutation, so no image is seen both as grey
    and as colour and no pair can leak. ``shuffled``: both are the whole split, shuffled independently each
    epoch (what the unpaired papers did).
    """
    if unpaired_protocol == "shuffled":
        return torch.arange(n), torch.arange(n)
    if n < 2:
        raise ValueError(f"the disjoint unpaired protocol needs at least 2 training images, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2 :].sort().values


def training_batches(
    train: ImageSet, paired: bool, batch_size: int, order: torch.Generator, device: torch.device, spec: RunSpec,
    seed: int | None = None,
):
    """One epoch of training batches: paired ones, or unpaired ones (grey from domain A, colour from domain B).

    Unpaired batches hold as many colour as grey images: when the domains differ in size (the ``disjoint``
    halves of an odd split differ by one image) each epoch uses the first ``min(len(A), len(B))`` images of each
    shuffled domain, so the image left out changes from epoch to epoch.
    """
    if paired:
        yield from train.batches(batch_size, shuffle=True, generator=order, device=device, grey_convention=spec.grey_convention)
        return
    dom_a, dom_b = unpaired_domains(len(train), spec.unpaired_protocol, spec.seed if seed is None else seed)
    n = min(len(dom_a), len(dom_b))
    a = dom_a[torch.randperm(len(dom_a), generator=order)][:n]
    b = dom_b[torch.randperm(len(dom_b), generator=order)][:n]
    for start in range(0, n, batch_size):
        ga = train.make_batch(a[start : start + batch_size], device, grey_convention=spec.grey_convention)
        cb = train.make_batch(b[start : start + batch_size], device, grey_convention=spec.grey_convention)
        yield Batch(gray=ga.gray, rgb=cb.rgb, labels=ga.labels, ids=ga.ids, masks=ga.masks,
                    grey_convention=spec.grey_convention, paired=False, rgb_ids=cb.ids)


class EpochSampler:
    """The training order of a seed: for each epoch the batches of image indices, in exactly the order
    :func:`training_batches` gives (one ``torch.Generator().manual_seed(seed)`` kept across epochs; paired: one
    ``randperm(n)`` per epoch; unpaired: one ``randperm`` per domain per epoch, each cut to the smaller domain).

    Iterating the sampler yields the rest of the current epoch (the next epoch when the current one is finished).
    A paired item is a ``(B,)`` index tensor; an unpaired item a pair ``(grey indices from A, colour indices from
    B)``. :meth:`state_dict` holds the epoch, the number of batches consumed in it (:meth:`mark_consumed`, called
    by the loader as each batch reaches the training loop, not as it is prefetched) and the generator state before
    the epoch was drawn, so a run killed mid-epoch resumes with the same remaining batches.

    With ``world > 1`` rank ``r`` gets items ``r::world`` of each global batch (every rank draws the same global
    order), so ``world`` processes together see exactly the batches of one process with the global batch size.

    Args:
        n: images in the training split.
        paired: paired batches (one index list) or unpaired ones (grey domain A, colour domain B).
        batch_size: the global batch size.
        seed: seed of the data order (the cell's seed).
        unpaired_protocol: ``disjoint`` or ``shuffled`` (:func:`unpaired_domains`).
        domain_seed: seed of the disjoint halves (default: ``seed``).
        rank, world: this process's rank and the number of processes.
    """

    def __init__(self, n: int, *, paired: bool, batch_size: int, seed: int, unpaired_protocol: str = "disjoint",
                 domain_seed: int | None = None, rank: int = 0, world: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"need 0 <= rank < world, got rank={rank}, world={world}")
        self.n, self.paired, self.batch_size = n, paired, batch_size
        self.rank, self.world = rank, world
        self.generator = torch.Generator().manual_seed(seed)
        self.domains = None if paired else unpaired_domains(n, unpaired_protocol, seed if domain_seed is None else domain_seed)
        self.epoch = 0  # the epoch whose batches are drawn (0: none yet)
        self.position = 0  # batches of that epoch consumed
        self._state_before: torch.Tensor | None = None  # generator state before the current epoch was drawn
        self._batches: list[Any] = []

    def __len__(self) -> int:
        """Batches per epoch."""
        n = self.n if self.paired else min(len(self.domains[0]), len(self.domains[1]))  # type: ignore[index]
        return math.ceil(n / self.batch_size)

    @property
    def epoch_finished(self) -> bool:
        return self.epoch == 0 or self.position >= len(self._batches)

    def _draw(self) -> None:
        self._state_before = self.generator.get_state()
        if self.paired:
            order = torch.randperm(self.n, generator=self.generator)
            self._batches = [order[s : s + self.batch_size] for s in range(0, self.n, self.batch_size)]
        else:
            dom_a, dom_b = self.domains  # type: ignore[misc]
            k = min(len(dom_a), len(dom_b))
            a = dom_a[torch.randperm(len(dom_a), generator=self.generator)][:k]
            b = dom_b[torch.randperm(len(dom_b), generator=self.generator)][:k]
            self._batches = [(a[s : s + self.batch_size], b[s : s + self.batch_size]) for s in range(0, k, self.batch_size)]

    def start_epoch(self) -> int:
        """Draw the next epoch unless the current one is unfinished (a resumed one); returns its number."""
        if self.epoch_finished:
            self._draw()
            self.epoch += 1
            self.position = 0
        return self.epoch

    def _local(self, item: Any) -> Any:
        if self.world == 1:
            return item
        if self.paired:
            return item[self.rank :: self.world]
        return item[0][self.rank :: self.world], item[1][self.rank :: self.world]

    def __iter__(self) -> Iterator[Any]:
        self.start_epoch()
        for i in range(self.position, len(self._batches)):
            yield self._local(self._batches[i])

    def global_size(self, index: int) -> int:
        """Images in batch ``index`` of the current epoch over all the ranks together (the global batch)."""
        item = self._batches[index]
        return len(item) if self.paired else len(item[0])

    def remaining(self) -> int:
        """Batches of the current epoch not consumed yet (after :meth:`start_epoch`)."""
        return len(self._batches) - self.position

    def mark_consumed(self) -> None:
        """One more batch of the current epoch reached the training loop."""
        self.position += 1

    def state_dict(self) -> dict[str, Any]:
        """Epoch, batches consumed in it and the generator state before it was drawn (enough to redraw it)."""
        before = self._state_before if self.epoch else self.generator.get_state()
        return {"epoch": self.epoch, "position": self.position, "generator": before.clone(),
                "n": self.n, "batch_size": self.batch_size, "paired": self.paired}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("n", "batch_size", "paired"):
            if key in state and state[key] != getattr(self, key):
                raise ValueError(f"sampler state of another order ({key}={state[key]!r}, this sampler has "
                                 f"{getattr(self, key)!r}); the checkpoint belongs to another training set or batch size")
        self.generator.set_state(state["generator"])
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        if self.epoch:
            self._draw()  # the same batches again, and the generator where it was after drawing them

    def load_epoch_end_state(self, generator_state: torch.Tensor, epoch: int) -> None:
        """Resume from an older checkpoint holding only the generator state after ``epoch`` finished."""
        self.generator.set_state(generator_state)
        self.epoch, self.position, self._batches = int(epoch), 0, []


class _GatherDataset(torch.utils.data.Dataset):
    """Map-style dataset whose items are whole batches: an index tensor (or an unpaired pair) -> uint8 arrays.

    Runs in the DataLoader's workers (or in process): only the gather, no float conversion (that happens on the
    training device, identically to :meth:`ImageSet.make_batch`)."""

    def __init__(self, train: ImageSet) -> None:
        self.train = train

    def __len__(self) -> int:
        return len(self.train)

    def _take(self, index: torch.Tensor, with_extras: bool) -> dict[str, Any]:
        t = self.train
        out: dict[str, Any] = {"rgb": t.rgb[index], "ids": [t.ids[i] for i in index.tolist()]}
        if with_extras:
            out["labels"] = t.labels[index]
            out["masks"] = None if t.masks is None else t.masks[index]
        return out

    def __getitem__(self, item: Any) -> dict[str, Any]:
        if isinstance(item, tuple):
            return {"a": self._take(item[0], True), "b": self._take(item[1], False)}
        return self._take(item, True)


def _identity(x: Any) -> Any:
    return x


class TrainLoader:
    """One epoch of training batches per iteration (see :func:`make_train_loader`)."""

    def __init__(self, train: ImageSet, sampler: EpochSampler, *, workers: int, device: torch.device | str,
                 grey_convention: str, pin_memory: bool, prefetch: int) -> None:
        self.train, self.sampler, self.workers = train, sampler, workers
        self.device, self.grey_convention, self.pin_memory = torch.device(device), grey_convention, pin_memory
        self.dataset = _GatherDataset(train)
        self._loader = None
        if workers > 0:
            self._loader = torch.utils.data.DataLoader(
                self.dataset, batch_size=None, sampler=sampler, num_workers=workers, collate_fn=_identity,
                pin_memory=pin_memory, persistent_workers=True, prefetch_factor=prefetch)

    def __len__(self) -> int:
        return len(self.sampler)

    def _to_device(self, part: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        rgb = part["rgb"]
        if self.pin_memory and self._loader is None:
            rgb = rgb.pin_memory()
        rgb = rgb.to(self.device, non_blocking=True).float().div_(255.0)  # as ImageSet.make_batch
        labels = part["labels"].to(self.device, non_blocking=True) if "labels" in part else None
        masks = part.get("masks")
        masks = None if masks is None else masks.to(self.device, non_blocking=True).long()
        return rgb, labels, masks

    def _batch(self, item: dict[str, Any]) -> Batch:
        if "a" not in item:
            rgb, labels, masks = self._to_device(item)
            return Batch(gray=rgb_to_grey(rgb, self.grey_convention), rgb=rgb, labels=labels, ids=item["ids"],
                         masks=masks, grey_convention=self.grey_convention)
        rgb_a, labels, masks = self._to_device(item["a"])
        rgb_b, _, _ = self._to_device(item["b"])
        return Batch(gray=rgb_to_grey(rgb_a, self.grey_convention), rgb=rgb_b, labels=labels, ids=item["a"]["ids"],
                     masks=masks, grey_convention=self.grey_convention, paired=False, rgb_ids=item["b"]["ids"])

    def __iter__(self) -> Iterator[Batch]:
        self.sampler.start_epoch()
        items = iter(self._loader) if self._loader is not None else (self.dataset[i] for i in self.sampler)
        for item in items:
            batch = self._batch(item)
            self.sampler.mark_consumed()
            yield batch

    def close(self) -> None:
        """Stop the worker processes (they also stop when the loader is garbage-collected)."""
        if self._loader is not None:
            it = getattr(self._loader, "_iterator", None)
            if it is not None and hasattr(it, "_shutdown_workers"):
                it._shutdown_workers()
            self._loader = None


def default_loader_workers(device: torch.device | str) -> int:
    """Loader worker processes when none are asked for: 0 (gather in process) on the CPU, where a memory-mapped
    gather is ~1 % of a step and workers only add inter-process copies (measured: README, "Data path"); on
    CUDA up to 4, so that the gather and the pinned copy overlap the step."""
    if torch.device(device).type != "cuda":
        return 0
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def make_train_loader(train: ImageSet, sampler: EpochSampler, *, workers: int | None, device: torch.device | str,
                      grey_convention: str, pin_memory: bool | None = None, prefetch: int = 2) -> TrainLoader:
    """The training batches of ``sampler`` as :class:`Batch` on ``device``; each iteration is one epoch.

    Args:
        train: the training split.
        sampler: the data order (:class:`EpochSampler`); its position advances as batches are consumed.
        workers: DataLoader worker processes gathering batches (persistent, ``prefetch`` batches each); 0 gathers
            in process; None: :func:`default_loader_workers`.
        device: where the batches go (float RGB in [0, 1] and grey under ``grey_convention``, exactly as
            :meth:`ImageSet.make_batch` makes them).
        pin_memory: pinned host memory and non-blocking copies (default: on CUDA).
    """
    device = torch.device(device)
    workers = default_loader_workers(device) if workers is None else int(workers)
    if workers < 0:
        raise ValueError(f"loader workers must be >= 0, got {workers}")
    pin = device.type == "cuda" if pin_memory is None else bool(pin_memory and torch.cuda.is_available())
    return TrainLoader(train, sampler, workers=workers, device=device, grey_convention=grey_convention,
                       pin_memory=pin, prefetch=prefetch)


def n_training_batches(n: int, paired: bool, batch_size: int, unpaired_protocol: str) -> int:
    if not paired and unpaired_protocol == "disjoint":
        n = n // 2
    return math.ceil(n / batch_size)
