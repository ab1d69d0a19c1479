"""The standard datasets' common pipeline: options (:class:`StandardConfig`), the plan of files a loader
makes, decoding in threads into the decode-once cache, corrupt-file handling, subsets, and the helpers
the loaders share (class folders, stratified splits). One module per loader family sits beside it."""

from __future__ import annotations

from abc import abstractmethod
import dataclasses
import importlib.metadata
from collections import Counter
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from colorbench.datasets.base import IGNORE_INDEX, Dataset, DatasetSplits, ImageSet
from colorbench.datasets.shards import ShardedRows
from colorbench.datasets.cache import DEFAULT_SHARD_ABOVE_BYTES, DEFAULT_SHARD_BYTES, EntryWriter, cache_key, default_cache_dir, files_fingerprint, load_entry, relative
from colorbench.datasets.imaging import DECODER_VERSION, ICC_POLICIES, RESIZE_POLICIES, CorruptImageError, array_image, check_icc, check_policy, decode_image_info, decode_mask

#: Environment variable giving the data root when the ``data_root`` option is not set.
DATA_ROOT_ENV = "COLORBENCH_DATA_ROOT"

#: Pascal VOC's 21 segmentation classes (index = mask value; 255 = boundary / ignore).
VOC_CLASSES = [
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
]

_MAX_LISTED = 10  # missing / skipped files listed by name in errors and info


def resolve_data_root(option: str | None, dataset: str, create: bool = False) -> Path:
    """The data root: the ``data_root`` option, else ``$COLORBENCH_DATA_ROOT``; an error says how to set it."""
    value = option or os.environ.get(DATA_ROOT_ENV)
    if not value:
        raise ValueError(f"{dataset}: no data root given: pass --data-root DIR (dataset option data_root=DIR) or "
                         f"set the environment variable {DATA_ROOT_ENV}")
    root = Path(value).expanduser()
    if create:
        root.mkdir(parents=True, exist_ok=True)
    if not root.is_dir():
        raise FileNotFoundError(f"{dataset}: data root {root} is not a folder")
    return root


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _tv():
    import torchvision.datasets as tvd

    return tvd


# ---------------------------------------------------------------------------------------------------------------
# Config and the shared load pipeline
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandardConfig:
    """Options shared by every standard dataset.

    Attributes:
        data_root: folder holding the datasets (default: ``$COLORBENCH_DATA_ROOT``).
        size: output image side; every image becomes size x size under ``resize``.
        resize: a policy of :data:`colorbench.datasets.imaging.RESIZE_POLICIES`.
        icc: what to do with an embedded ICC profile of an RGB or grey file
            (:data:`colorbench.datasets.imaging.ICC_POLICIES`: ``"convert"`` to sRGB, or ``"ignore"`` it as
            Pillow's ``convert("RGB")`` does); changes the pixels of such files, so it is part of the cache key.
        download: download (with checksum verification) when files are missing; never done unless asked.
        skip_corrupt: skip undecodable files and count them in ``info['skipped_corrupt']`` instead of failing.
        n_train: a random subset of this many training images (None: all); drawn with ``subset_seed``.
        n_test: the same for the test split.
        subset_seed: seed of the subsets (recorded).
        cache: keep the decoded splits as memory-mapped arrays (second load reads them instead of decoding).
        cache_dir: cache folder (default ``$COLORBENCH_CACHE_DIR`` or ``<data_root>/.colorbench-cache``).
        workers: decoding threads (0: min(8, CPU count)); does not change the result.
        train_limit: train on a seeded subset of this many of the decoded training images (None: all), drawn
            with ``subset_seed`` after decoding: unlike ``n_train`` the whole split is still decoded and cached (the
            subset is an index over it); for measuring a large split's data path without a full epoch.
        cache_shard_above_bytes: a split whose decoded RGB is larger than this many bytes is cached in shards
            (default 256 MiB; 0: never sharded), filled shard by shard and resumably and read with ``preadv``
            (``colorbench.datasets.cache``); does not change the result, recorded in ``info['cache']``.
        cache_shard_bytes: the most decoded RGB bytes in one shard (default 1 GiB).
    """

    data_root: str | None = None
    size: int = 256
    resize: str = "resize-shorter-center-crop"
    icc: str = "convert"
    download: bool = False
    skip_corrupt: bool = False
    n_train: int | None = None
    n_test: int | None = None
    subset_seed: int = 0
    cache: bool = True
    cache_dir: str | None = None
    workers: int = 0
    train_limit: int | None = None
    cache_shard_above_bytes: int = DEFAULT_SHARD_ABOVE_BYTES
    cache_shard_bytes: int = DEFAULT_SHARD_BYTES

    def __post_init__(self) -> None:
        check_policy(self.resize)
        check_icc(self.icc)
        if isinstance(self.cache_shard_bytes, bool) or not isinstance(self.cache_shard_bytes, int) or self.cache_shard_bytes < 1:
            raise ValueError(f"option 'cache_shard_bytes' must be an int >= 1, got {self.cache_shard_bytes!r}")
        for name in ("size", "subset_seed", "workers", "cache_shard_above_bytes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "size" else 0):
                raise ValueError(f"option {name!r} must be an int >= {1 if name == 'size' else 0}, got {v!r}")
        for name in ("n_train", "n_test", "train_limit"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"option {name!r} must be None or an int >= 1, got {v!r}")
        for name in ("download", "skip_corrupt", "cache"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"option {name!r} must be true or false, got {getattr(self, name)!r}")


#: Options that never change the decoded pixels (left out of the cache key and of info['params']).
_NOT_IN_KEY = ("data_root", "download", "cache", "cache_dir", "workers", "cache_shard_above_bytes", "cache_shard_bytes",
               "train_limit")


@dataclass
class SplitPlan:
    """What one split consists of, before decoding.

    Either ``paths`` (image files, decoded with Pillow) or ``arrays`` (a callable returning already decoded
    ``(N, H, W, 3)`` uint8 images, labels, ids and class names: CIFAR's pickles) is set.
    """

    name: str  # the dataset's own name of the split (e.g. "train", "val", "trainA")
    class_names: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    paths: list[Path] | None = None
    mask_paths: list[Path] | None = None
    arrays: Callable[[], tuple[np.ndarray, list[int], list[str], list[str]]] | None = None

    def take(self, index: np.ndarray) -> "SplitPlan":
        pick = lambda xs: None if xs is None else [xs[i] for i in index]  # noqa: E731
        return dataclasses.replace(self, ids=pick(self.ids), labels=pick(self.labels), paths=pick(self.paths),
                                   mask_paths=pick(self.mask_paths))


@dataclass
class Plan:
    """A dataset's splits before decoding, the extra source files (label files) and what to record."""

    train: SplitPlan
    test: SplitPlan
    source_files: list[Path]
    info: dict[str, Any]
    mask_class_names: list[str] | None = None


def subset_index(n: int, want: int | None, seed: int, split: str) -> np.ndarray:
    """Indices of a seeded random subset of ``want`` of ``n`` items, in their original order (all if None)."""
    if want is None or want >= n:
        return np.arange(n)
    rng = np.random.default_rng([seed, {"train": 0, "train-limit": 2}.get(split, 1)])
    return np.sort(rng.choice(n, size=want, replace=False))


def missing_files_error(dataset: str, root: Path, missing: list[Path], layout: str, source: str,
                        hint: str = "") -> FileNotFoundError:
    listed = "\n".join(f"  - {p}" for p in missing[:_MAX_LISTED])
    more = f"\n  ... and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
    return FileNotFoundError(
        f"{dataset}: files missing under the data root {root}:\n{listed}{more}\n"
        f"Expected layout:\n{layout}\nGet it from: {source}\n"
        f"(or pass the dataset option download=true to download it when this machine is online)"
        + (f"\nHint: {hint}" if hint else "")
    )


def require(dataset: str, root: Path, paths: list[Path], layout: str, source: str, hint: str = "") -> None:
    missing = [p for p in paths if not p.exists()]
    if missing:
        raise missing_files_error(dataset, root, missing, layout, source, hint)


def diagnose_md5(dataset: str, files: list[tuple[Path, str]], source: str, cause: Exception) -> Exception:
    """After torchvision refused the files: name each missing file or md5 mismatch (official md5 from torchvision)."""
    from torchvision.datasets.utils import calculate_md5

    problems = []
    for path, md5 in files:
        if not path.is_file():
            problems.append(f"  - {path}: missing (official md5 {md5})")
        else:
            actual = calculate_md5(path)
            if actual != md5:
                problems.append(f"  - {path}: md5 {actual}, expected the official {md5} (corrupt or not the "
                                f"official release)")
    if not problems:
        return cause
    return RuntimeError(f"{dataset}: integrity check failed:\n" + "\n".join(problems) + f"\nGet the official "
                        f"files from: {source}")


class StandardDataset(Dataset):
    """Shared pipeline: plan the splits, look up the cache, else decode (threads) and fill the cache.

    Subclasses implement :meth:`plan` (find the official files; may download) and set ``version``.
    """

    version: ClassVar[str] = "1"  # loader version: part of the cache key; bump when decoding changes
    Config: ClassVar[type] = StandardConfig

    @abstractmethod
    def plan(self, root: Path) -> Plan:
        """Find (or download) the official files under ``root`` and say how to decode them."""

    def raw_folders(self) -> list[str] | None:
        """The folders under the data root (relative, ``/``-separated) that hold every file this loader reads, so
        that a data root given as a storage URI can be fetched (``colorbench.engine.storage.fetch_raw_folders``);
        None (the default): the loader reads other files too (archives, label lists, torchvision's checks)."""
        return None

    def params(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.config)
        return {k: v for k, v in d.items() if k not in _NOT_IN_KEY}

    def load(self) -> DatasetSplits:
        cfg: StandardConfig = self.config
        t0 = time.perf_counter()
        root = resolve_data_root(cfg.data_root, self.name, create=cfg.download)
        plan = self.plan(root)
        for split, want in (("train", cfg.n_train), ("test", cfg.n_test)):
            sp: SplitPlan = getattr(plan, split)
            if sp.paths is not None:
                setattr(plan, split, sp.take(subset_index(len(sp.paths), want, cfg.subset_seed, split)))
        files = list(plan.source_files)
        for sp in (plan.train, plan.test):
            files += sp.paths or []
            files += sp.mask_paths or []
        fingerprint = files_fingerprint(root, files)
        key = cache_key({
            "dataset": self.name, "loader_version": self.version, "decoder_version": DECODER_VERSION,
            "params": self.params(), "sources": fingerprint, "versions": {d: _dist_version(d) for d in ("Pillow", "torchvision", "numpy")},
        })
        cache_dir = default_cache_dir(root, cfg.cache_dir) if cfg.cache else None
        entry = load_entry(cache_dir, self.name, key) if cache_dir is not None else None
        if entry is None:
            self._decode(plan, cache_dir, key, fingerprint)
            entry = load_entry(cache_dir, self.name, key) if cache_dir is not None else self._memory
            hit = False
        else:
            hit = True
        info = dict(entry.meta["info"])
        info["cache"] = {"enabled": cache_dir is not None, "hit": hit, "key": key,
                         "path": None if entry.path is None else str(entry.path),
                         "shard_above_bytes": cfg.cache_shard_above_bytes, "shard_bytes": cfg.cache_shard_bytes,
                         "layout": {split: _layout(entry.meta["splits"][split]) for split in ("train", "test")}}
        info["data_root"] = str(root)
        train = entry.sets["train"]
        if cfg.train_limit is not None and cfg.train_limit < len(train):
            keep = subset_index(len(train), cfg.train_limit, cfg.subset_seed, "train-limit")
            info["train_limit"] = {"n": cfg.train_limit, "of": len(train), "seed": cfg.subset_seed,
                                   "rule": "seeded choice without replacement among the decoded training images, "
                                           "kept in order; the whole split is decoded and cached",
                                   "sha256": None}
            train = train.subset(keep)
            info["train_limit"]["sha256"] = train.sha256()
        info["load_seconds"] = round(time.perf_counter() - t0, 3)
        return DatasetSplits(name=self.name, train=train, test=entry.sets["test"], info=info)

    # -- decoding -----------------------------------------------------------------------------------------------

    def _decode(self, plan: Plan, cache_dir: Path | None, key: str, fingerprint: str) -> None:
        from colorbench.datasets.cache import CacheEntry

        cfg: StandardConfig = self.config
        # a fill with a sharded split is resumable: its folder is named by the key and keeps finished shards
        sharded = cfg.cache_shard_above_bytes > 0 and any(
            sp.paths is not None and len(sp.paths) * 3 * cfg.size ** 2 > cfg.cache_shard_above_bytes
            for sp in (plan.train, plan.test))
        writer = EntryWriter(cache_dir, self.name, key, resumable=sharded)
        try:
            sets_meta, skipped, counts, conversions = {}, {}, {}, {}
            for split in ("train", "test"):
                sp: SplitPlan = getattr(plan, split)
                sets_meta[split], skipped[split] = self._decode_split(writer, split, sp, plan, cfg)
                conversions[split] = sets_meta[split].pop("conversions", {})
                counts[split] = len(sets_meta[split]["ids"])
                if counts[split] == 0:
                    raise ValueError(f"{self.name}: the {split} split ({sp.name}) has no usable image")
            arrays = writer.arrays
            sets = {}
            for split in ("train", "test"):
                m = sets_meta[split]
                if m.get("layout") == "shards":
                    keep = arrays.get(f"{split}_keep")
                    rgb: Any = ShardedRows.open([writer.tmp / s["rgb"]["file"] for s in m["shards"]], index=keep)
                    masks: Any = (ShardedRows.open([writer.tmp / s["masks"]["file"] for s in m["shards"]], index=keep)
                                  if "masks" in m["shards"][0] else None)
                else:
                    rgb = torch.from_numpy(arrays[f"{split}_rgb"])
                    masks = torch.from_numpy(arrays[f"{split}_masks"]) if f"{split}_masks" in arrays else None
                sets[split] = ImageSet(
                    rgb=rgb, labels=torch.from_numpy(arrays[f"{split}_labels"]),
                    ids=m["ids"], class_names=m["class_names"], masks=masks,
                    mask_class_names=m.get("mask_class_names"),
                )
            info = {
                "dataset": self.name,
                "loader_version": self.version,
                **plan.info,
                "params": self.params(),
                "resize_policy": {"name": cfg.resize, "size": cfg.size, "meaning": RESIZE_POLICIES[cfg.resize]},
                "icc_policy": {"name": cfg.icc, "meaning": ICC_POLICIES[cfg.icc]},
                "subset": {"n_train": cfg.n_train, "n_test": cfg.n_test, "seed": cfg.subset_seed,
                           "rule": "seeded choice without replacement, kept in source order"},
                "counts": counts,
                "skipped_corrupt": {s: {"count": len(v), "files": v[:_MAX_LISTED]} for s, v in skipped.items()},
                "decoder": f"Pillow {_dist_version('Pillow')}, torchvision {_dist_version('torchvision')}",
                # what was done to files that were not 8-bit RGB (alpha dropped, palette expanded, 16-bit grey
                # scaled and replicated, ...): per split, sentence -> number of files
                "conversions": conversions,
                "source_fingerprint": fingerprint,
                "sha256": {s: sets[s].sha256() for s in sets},
            }
            meta = {"info": info, "splits": sets_meta}
            self._memory = CacheEntry(path=None, sets=sets, meta=meta) if cache_dir is None else None
            del sets
            writer.commit(meta)
        except BaseException as exc:
            # interrupted (Ctrl-C, a signal): keep the finished shards for the next fill; refused: discard them
            writer.abort(keep_finished=not isinstance(exc, Exception))
            raise

    def _decode_split(self, writer: EntryWriter, split: str, sp: SplitPlan, plan: Plan,
                      cfg: StandardConfig) -> tuple[dict[str, Any], list[str]]:
        S = cfg.size
        if sp.arrays is not None:
            data, labels, ids, class_names = sp.arrays()
            index = subset_index(len(data), cfg.n_train if split == "train" else cfg.n_test, cfg.subset_seed, split)
            rgb = writer.array(f"{split}_rgb", (len(index), 3, S, S))
            if cfg.resize == "none" and data.shape[1:3] == (S, S):
                rgb[...] = data[index].transpose(0, 3, 1, 2)  # already size x size: no per-image work
            else:
                for row, i in enumerate(index):
                    rgb[row] = array_image(data[i], cfg.resize, S, f"{sp.name}[{i}]")
            writer.put(f"{split}_labels", np.asarray([labels[i] for i in index], dtype=np.int64))
            return {"ids": [ids[i] for i in index], "class_names": list(class_names)}, []

        paths, n = sp.paths, len(sp.paths)
        if writer.tmp is not None and 0 < cfg.cache_shard_above_bytes < n * 3 * S * S:
            return self._decode_split_sharded(writer, split, sp, plan, cfg)
        rgb = writer.array(f"{split}_rgb", (n, 3, S, S))
        masks = writer.array(f"{split}_masks", (n, S, S)) if sp.mask_paths is not None else None
        valid = set(range(len(plan.mask_class_names or []))) | {IGNORE_INDEX}
        ok = np.ones(n, dtype=bool)
        converted: list[str | None] = [None] * n

        def work(i: int) -> CorruptImageError | None:
            try:
                rgb[i], wh, converted[i] = decode_image_info(paths[i], cfg.resize, S, cfg.icc)
                if masks is not None:
                    masks[i] = decode_mask(sp.mask_paths[i], cfg.resize, S, wh, valid)
            except CorruptImageError as exc:
                return exc  # names the image or the mask file
            return None

        workers = cfg.workers or min(8, os.cpu_count() or 1)
        skipped: list[str] = []
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, err in enumerate(pool.map(work, range(n), chunksize=1) if workers > 1 else map(work, range(n))):
                if err is None:
                    continue
                if not cfg.skip_corrupt:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise CorruptImageError(err.path, f"{err.reason} (dataset {self.name}, split {sp.name}; pass "
                                                      f"skip_corrupt=true / --skip-corrupt to skip such files and "
                                                      f"count them in the record)")
                ok[i] = False
                skipped.append(str(err))
        labels = np.asarray(sp.labels, dtype=np.int64)
        if masks is not None and getattr(self, "label_from_mask", False):
            labels = _dominant_object(np.asarray(masks), len(plan.mask_class_names))
        writer.shrink(f"{split}_rgb", ok)
        if masks is not None:
            writer.shrink(f"{split}_masks", ok)
        writer.put(f"{split}_labels", labels[ok])
        meta = {"ids": [x for x, k in zip(sp.ids, ok) if k], "class_names": list(sp.class_names)}
        meta["conversions"] = dict(Counter(c for c, k in zip(converted, ok) if k and c is not None))
        if masks is not None:
            meta["mask_class_names"] = list(plan.mask_class_names)
        return meta, skipped


    def _decode_split_sharded(self, writer: EntryWriter, split: str, sp: SplitPlan, plan: Plan,
                              cfg: StandardConfig) -> tuple[dict[str, Any], list[str]]:
        """Decode a split of files into shards of ``cache_shard_bytes``, reusing the shards a killed fill finished;
        the same rows, labels, ids and skipped files as the unsharded path."""
        from colorbench.datasets.cache import require_space

        S, paths, n = cfg.size, sp.paths, len(sp.paths)
        with_masks = sp.mask_paths is not None
        row_bytes = 3 * S * S + (S * S if with_masks else 0)
        per_shard = max(1, cfg.cache_shard_bytes // (3 * S * S))
        bounds = [(start, min(n, start + per_shard)) for start in range(0, n, per_shard)]
        done = {k: writer.finished_shard(split, k, a, b) for k, (a, b) in enumerate(bounds)}
        todo = [k for k, facts in done.items() if facts is None]
        require_space(sum(bounds[k][1] - bounds[k][0] for k in todo) * row_bytes, writer.tmp,
                      f"{self.name}: the {len(todo)} cache shards of split {sp.name} still to decode "
                      f"({n} images in {len(bounds)} shards)")
        valid = set(range(len(plan.mask_class_names or []))) | {IGNORE_INDEX}
        workers = cfg.workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for k in todo:
                start, stop = bounds[k]
                rgb = writer.shard(split, "rgb", k, (stop - start, 3, S, S))
                masks = writer.shard(split, "masks", k, (stop - start, S, S)) if with_masks else None
                converted: list[str | None] = [None] * (stop - start)

                def work(i: int) -> CorruptImageError | None:
                    try:
                        rgb[i - start], wh, converted[i - start] = decode_image_info(paths[i], cfg.resize, S, cfg.icc)
                        if masks is not None:
                            masks[i - start] = decode_mask(sp.mask_paths[i], cfg.resize, S, wh, valid)
                    except CorruptImageError as exc:
                        return exc
                    return None

                bad: list[list[Any]] = []
                rows = range(start, stop)
                for i, err in zip(rows, pool.map(work, rows, chunksize=1) if workers > 1 else map(work, rows)):
                    if err is None:
                        continue
                    if not cfg.skip_corrupt:
                        raise CorruptImageError(err.path, f"{err.reason} (dataset {self.name}, split {sp.name}; pass "
                                                          f"skip_corrupt=true / --skip-corrupt to skip such files and "
                                                          f"count them in the record)")
                    bad.append([i, str(err)])
                extra: dict[str, Any] = {"bad": bad, "converted": [[start + j, c] for j, c in enumerate(converted) if c]}
                if masks is not None and getattr(self, "label_from_mask", False):
                    extra["mask_labels"] = _dominant_object(masks.read(), len(plan.mask_class_names)).tolist()
                parts = {"rgb": rgb} if masks is None else {"rgb": rgb, "masks": masks}
                del rgb, masks
                done[k] = writer.finish_shard(split, k, start, stop, parts, extra)
        shards = [done[k] for k in range(len(bounds))]
        ok = np.ones(n, dtype=bool)
        skipped: list[str] = []
        converted_all: list[str | None] = [None] * n
        for facts in shards:
            for i, message in facts["bad"]:
                ok[i] = False
                skipped.append(message)
            for i, c in facts["converted"]:
                converted_all[i] = c
        labels = np.asarray(sp.labels, dtype=np.int64)
        if with_masks and getattr(self, "label_from_mask", False):
            labels = np.asarray([x for facts in shards for x in facts["mask_labels"]], dtype=np.int64)
        writer.put(f"{split}_labels", labels[ok])
        if not ok.all():
            writer.put(f"{split}_keep", np.flatnonzero(ok).astype(np.int64))
        meta = {"ids": [x for x, k in zip(sp.ids, ok) if k], "class_names": list(sp.class_names),
                "layout": "shards", "shards": [{p: facts[p] for p in ("start", "stop", "rgb", "masks") if p in facts}
                                                for facts in shards]}
        meta["conversions"] = dict(Counter(c for c, k in zip(converted_all, ok) if k and c is not None))
        if with_masks:
            meta["mask_class_names"] = list(plan.mask_class_names)
        return meta, skipped


def _layout(split_meta: dict[str, Any]) -> dict[str, Any]:
    """How a split is stored in the cache (for ``info['cache']['layout']``)."""
    if split_meta.get("layout") != "shards":
        return {"format": "raw uint8 .npy", "shards": 1}
    shards = split_meta["shards"]
    return {"format": "raw uint8 .npy shards", "shards": len(shards),
            "rows_per_shard": shards[0]["stop"] - shards[0]["start"],
            "sha256": [s["rgb"]["sha256"] for s in shards]}


def _dominant_object(masks: np.ndarray, n_classes: int) -> np.ndarray:
    """Per mask, the non-background class with most pixels (0 = background when there is none)."""
    out = np.zeros(len(masks), dtype=np.int64)
    for i, m in enumerate(masks):
        counts = np.bincount(m.ravel(), minlength=256)[:n_classes]
        counts[0] = 0
        out[i] = int(counts.argmax()) if counts.max() > 0 else 0
    return out


# ---------------------------------------------------------------------------------------------------------------
# helpers for folder datasets
# ---------------------------------------------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    """Image files directly in ``folder`` (torchvision's IMG_EXTENSIONS), sorted by name."""
    from torchvision.datasets.folder import IMG_EXTENSIONS

    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMG_EXTENSIONS and not p.name.startswith("."))


def _class_folder(dataset: str, folder: Path, layout: str) -> tuple[list[tuple[str, int]], list[str]]:
    """torchvision ImageFolder's scan of ``folder/<class>/<image>``: (samples, classes), with a clear error."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, ImageFolder as TVImageFolder

    class _Visible(TVImageFolder):
        # Hidden entries are never classes or images: the cache folder (.colorbench-cache) may live in the data
        # root, and macOS leaves "._name.jpg" resource forks that are not images.
        def find_classes(self, directory):
            classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
            if not classes:
                raise FileNotFoundError(f"Couldn't find any class folder in {directory}.")
            return classes, {c: i for i, c in enumerate(classes)}

    def visible_image(path: str) -> bool:
        name = os.path.basename(path)
        return not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS)

    try:
        ds = _Visible(str(folder), loader=str, is_valid_file=visible_image)
    except FileNotFoundError as exc:
        raise FileNotFoundError(f"{dataset}: {folder} does not have the expected class-folder layout ({exc}).\n"
                                f"Expected layout:\n{layout}") from None
    return ds.samples, ds.classes


def _stratified_split(labels: list[int], n_classes: int, test_fraction: float, seed: int,
                      dataset: str, class_names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded random ``test_fraction`` (at least 1) goes to test, the rest to train."""
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    train, test = [], []
    for c in range(n_classes):
        idx = np.flatnonzero(labels_arr == c)
        if len(idx) < 2:
            raise ValueError(f"{dataset}: class {class_names[c]!r} has {len(idx)} image(s); a train/test split "
                             f"needs at least 2 per class")
        perm = idx[rng.permutation(len(idx))]
        n_test = min(len(idx) - 1, max(1, int(round(len(idx) * test_fraction))))
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _check_fraction(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ValueError(f"option {name!r} must be a number in (0, 1), got {value!r}")


def _files_plan(name: str, samples: list[tuple[Path, int]], index: np.ndarray, classes: list[str],
                root: Path) -> SplitPlan:
    return SplitPlan(
        name=name, class_names=list(classes),
        ids=[relative(samples[i][0], root) for i in index],
        labels=[int(samples[i][1]) for i in index],
        paths=[Path(samples[i][0]) for i in index],
    )
