"""Loaders for the standard datasets of the colorization papers, from their official on-disk formats.

Registered: ``cifar10``, ``ucmerced``, ``cyclegan-folder``, ``imagenet-val``, ``voc-seg``, ``flowers102``,
``celeba``, ``places365`` and ``image-folder``. Where torchvision has a dataset class (CIFAR10, Flowers102,
CelebA, Places365, VOCSegmentation, ImageFolder, ImageNet) it is used to read the official layout and label
files, to check the official md5 checksums it carries and, only with the ``download`` option, to download;
colorbench adds what it lacks (UC Merced, CycleGAN folders, the ImageNet-val protocol), the named resize/crop
policies, corrupt-file handling and the decode-once cache (:mod:`colorbench.datasets.cache`).

Every loader takes the options of :class:`StandardConfig`. The data root comes from the ``data_root`` option
(CLI ``--data-root``) or the environment variable ``COLORBENCH_DATA_ROOT``. When files are missing the error
lists the missing paths, the expected layout and where to get the files (URL and checksum). Each load records
in ``DatasetSplits.info`` the dataset, its source version and checksums, the split, sizes, the resize policy,
subset seeds, skipped corrupt files and a sha256 of the decoded splits.
"""

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
from colorbench.datasets.cache import (EntryWriter, cache_key, default_cache_dir, files_fingerprint,
                                       load_entry, relative)
from colorbench.datasets.imaging import (DECODER_VERSION, ICC_POLICIES, RESIZE_POLICIES, CorruptImageError,
                                         array_image, check_icc, check_policy, decode_image_info, decode_mask)
from colorbench.datasets.registry import register_dataset

__all__ = [
    "DATA_ROOT_ENV",
    "VOC_CLASSES",
    "StandardConfig",
    "StandardDataset",
    "resolve_data_root",
    "Cifar10", "UCMerced", "CycleGANFolder", "ImageNetVal", "VOCSeg", "Flowers102", "CelebA", "Places365",
    "ImageFolder",
]

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

    def __post_init__(self) -> None:
        check_policy(self.resize)
        check_icc(self.icc)
        for name in ("size", "subset_seed", "workers"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (1 if name == "size" else 0):
                raise ValueError(f"option {name!r} must be an int >= {1 if name == 'size' else 0}, got {v!r}")
        for name in ("n_train", "n_test"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"option {name!r} must be None or an int >= 1, got {v!r}")
        for name in ("download", "skip_corrupt", "cache"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"option {name!r} must be true or false, got {getattr(self, name)!r}")


#: Options that never change the decoded pixels (left out of the cache key and of info['params']).
_NOT_IN_KEY = ("data_root", "download", "cache", "cache_dir", "workers")


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
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
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
                         "path": None if entry.path is None else str(entry.path)}
        info["data_root"] = str(root)
        info["load_seconds"] = round(time.perf_counter() - t0, 3)
        return DatasetSplits(name=self.name, train=entry.sets["train"], test=entry.sets["test"], info=info)

    # -- decoding -----------------------------------------------------------------------------------------------

    def _decode(self, plan: Plan, cache_dir: Path | None, key: str, fingerprint: str) -> None:
        from colorbench.datasets.cache import CacheEntry

        cfg: StandardConfig = self.config
        writer = EntryWriter(cache_dir, self.name, key)
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
                sets[split] = ImageSet(
                    rgb=torch.from_numpy(arrays[f"{split}_rgb"]), labels=torch.from_numpy(arrays[f"{split}_labels"]),
                    ids=m["ids"], class_names=m["class_names"],
                    masks=torch.from_numpy(arrays[f"{split}_masks"]) if f"{split}_masks" in arrays else None,
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
        except BaseException:
            writer.abort()
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


# ---------------------------------------------------------------------------------------------------------------
# cifar10 (torchvision.datasets.CIFAR10)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cifar10Config(StandardConfig):
    """CIFAR-10 options (defaults: the native 32 x 32, no resizing; official 50,000 / 10,000 split)."""

    size: int = 32
    resize: str = "none"


@register_dataset("cifar10")
class Cifar10(StandardDataset):
    """CIFAR-10 from the official python pickle batches, read by ``torchvision.datasets.CIFAR10``."""

    name: ClassVar[str] = "cifar10"
    description: ClassVar[str] = "CIFAR-10, official python batches (50k train / 10k test, 32x32, 10 classes)"
    Config: ClassVar[type] = Cifar10Config

    def plan(self, root: Path) -> Plan:
        tvd = _tv()
        C = tvd.CIFAR10
        base = root / C.base_folder
        source = f"{C.url} (md5 {C.tgz_md5}), extracted into {root}"
        if self.config.download:
            C(str(root), train=True, download=True)
        files = [(base / f, md5) for f, md5 in C.train_list + C.test_list] + [(base / C.meta["filename"], C.meta["md5"])]
        layout = f"  {root}/{C.base_folder}/{{{', '.join(f.name for f, _ in files)}}}"
        hint = ""
        if not base.is_dir() and (root / "data_batch_1").exists():
            hint = f"the data root seems to be the {C.base_folder} folder itself; pass its parent folder"
        require(self.name, root, [f for f, _ in files], layout, source, hint)

        def arrays(train: bool):
            def load():
                try:
                    ds = C(str(root), train=train, download=False)
                except RuntimeError as exc:
                    raise diagnose_md5(self.name, files, source, exc) from exc
                split = "train" if train else "test"
                return ds.data, list(ds.targets), [f"{split}:{i}" for i in range(len(ds.data))], list(ds.classes)
            return load

        info = {
            "source": {"url": C.url, "archive_md5": C.tgz_md5,
                       "files_md5": {f.name: md5 for f, md5 in files}},
            "integrity": f"torchvision {_dist_version('torchvision')} CIFAR10 checks each file's md5 against the "
                         f"official list above when the splits are decoded",
            "split": {"train": "data_batch_1..5 (official)", "test": "test_batch (official)"},
            "label": "CIFAR-10 class (class_names from batches.meta)",
        }
        return Plan(train=SplitPlan("train", arrays=arrays(True)), test=SplitPlan("test", arrays=arrays(False)),
                    source_files=[f for f, _ in files], info=info)


# ---------------------------------------------------------------------------------------------------------------
# ucmerced (no torchvision class)
# ---------------------------------------------------------------------------------------------------------------

UCMERCED_URL = "http://weegee.vision.ucmerced.edu/datasets/UCMerced_LandUse.zip"


@dataclass(frozen=True)
class UCMercedConfig(StandardConfig):
    """UC Merced Land Use options: a stratified seeded 80/20 split (the SpyncoGan protocol), 256 x 256.

    Attributes:
        test_fraction: fraction of each class held out for test.
        split_seed: seed of the split (recorded).
    """

    resize: str = "resize"
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction(self.test_fraction, "test_fraction")


@register_dataset("ucmerced")
class UCMerced(StandardDataset):
    """UC Merced Land Use: ``UCMerced_LandUse/Images/<class>/<class>NN.tif`` (21 classes x 100 images)."""

    name: ClassVar[str] = "ucmerced"
    description: ClassVar[str] = "UC Merced Land Use (21 classes of 256x256 aerial tifs), seeded 80/20 split"
    Config: ClassVar[type] = UCMercedConfig

    def plan(self, root: Path) -> Plan:
        cfg: UCMercedConfig = self.config
        images = root / "UCMerced_LandUse" / "Images"
        layout = f"  {images}/<class>/<class>NN.tif   (21 class folders, e.g. agricultural/agricultural00.tif)"
        source = f"{UCMERCED_URL} (no official checksum is published; colorbench records the sha256 of the decoded splits)"
        if cfg.download and not images.is_dir():
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(UCMERCED_URL, str(root), md5=None)
        hint = "the data root seems to be the Images folder itself; pass the folder that contains UCMerced_LandUse/" \
            if (root / "agricultural").is_dir() else ""
        require(self.name, root, [images], layout, source, hint)
        samples, classes = _class_folder(self.name, images, layout)
        labels = [c for _, c in samples]
        train, test = _stratified_split(labels, len(classes), cfg.test_fraction, cfg.split_seed, self.name, classes)
        info = {
            "source": {"url": UCMERCED_URL, "md5": None},
            "integrity": "no official checksum exists; identify the data by the sha256 of the decoded splits",
            "split": {"rule": "per class, a seeded random test_fraction (at least 1 image) is test, the rest train "
                              "(SpyncoGan: random 80/20, no official split)",
                      "test_fraction": cfg.test_fraction, "seed": cfg.split_seed},
            "classes_found": len(classes),
            "label": "land-use class (folder name)",
        }
        return Plan(train=_files_plan("train", samples, train, classes, root),
                    test=_files_plan("test", samples, test, classes, root), source_files=[], info=info)


# ---------------------------------------------------------------------------------------------------------------
# cyclegan-folder (no torchvision class)
# ---------------------------------------------------------------------------------------------------------------

CYCLEGAN_URL = "https://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"


@dataclass(frozen=True)
class CycleGANConfig(StandardConfig):
    """CycleGAN folder options.

    Attributes:
        name: the dataset folder under the data root (e.g. ``cezanne2photo``).
        side: ``A`` or ``B`` (one domain: trainX -> train, testX -> test) or ``both`` (both domains, label = domain:
            0 = A, 1 = B).
    """

    name: str = "cezanne2photo"
    side: str = "A"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.side not in ("A", "B", "both"):
            raise ValueError(f"option 'side' must be 'A', 'B' or 'both', got {self.side!r}")
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ValueError(f"option 'name' must be a folder name like 'cezanne2photo', got {self.name!r}")


@register_dataset("cyclegan-folder")
class CycleGANFolder(StandardDataset):
    """A CycleGAN dataset folder ``<name>/{trainA,trainB,testA,testB}/`` (e.g. cezanne2photo: A = Cezanne paintings)."""

    name: ClassVar[str] = "cyclegan-folder"
    description: ClassVar[str] = "CycleGAN dataset layout trainA/trainB/testA/testB (one side, or both as domains)"
    Config: ClassVar[type] = CycleGANConfig

    def plan(self, root: Path) -> Plan:
        cfg: CycleGANConfig = self.config
        base = root / cfg.name
        url = CYCLEGAN_URL.format(name=cfg.name)
        sides = ("A", "B") if cfg.side == "both" else (cfg.side,)
        folders = [base / f"{s}{x}" for s in ("train", "test") for x in sides]
        layout = f"  {base}/{{trainA,trainB,testA,testB}}/<image>.jpg"
        if cfg.download and not all(f.is_dir() for f in folders):
            from torchvision.datasets.utils import download_and_extract_archive

            download_and_extract_archive(url, str(root), md5=None)
        hint = "the data root seems to be the dataset folder itself; pass its parent" if (root / "trainA").is_dir() else ""
        require(self.name, root, folders, layout, f"{url} (no official checksum is published)", hint)
        class_names = [f"domain {s}" for s in sides]
        splits = {}
        for split in ("train", "test"):
            paths, labels = [], []
            for k, s in enumerate(sides):
                found = _image_files(base / f"{split}{s}")
                if not found:
                    raise FileNotFoundError(f"{self.name}: no image files in {base / f'{split}{s}'}")
                paths += found
                labels += [k] * len(found)
            splits[split] = SplitPlan(name="+".join(f"{split}{s}" for s in sides), class_names=class_names,
                                      ids=[relative(p, base) for p in paths], labels=labels, paths=paths)
        info = {
            "source": {"url": url, "md5": None, "name": cfg.name},
            "integrity": "no official checksum exists; identify the data by the sha256 of the decoded splits",
            "split": {"train": [f"train{s}" for s in sides], "test": [f"test{s}" for s in sides], "side": cfg.side},
            "label": "domain (0 = A, 1 = B)" if cfg.side == "both" else f"0 (one domain: {cfg.side})",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[], info=info)


# ---------------------------------------------------------------------------------------------------------------
# imagenet-val (the thesis protocol; torchvision's ImageNet class only to unpack the official tarballs)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageNetValConfig(StandardConfig):
    """ILSVRC2012 validation protocol of Tarrés (2021): 50 images per class for training, 10 per class for test.

    Attributes:
        path: the ImageNet folder under the data root (holding ``val/<wnid>/``, optionally ``train/<wnid>/`` and
            torchvision's ``meta.bin``).
        train_per_class: validation images per class used for training (seeded choice).
        test_per_class: test images per class (seeded choice).
        test_from: ``train`` (from the ILSVRC2012 training images, the thesis' wording) or ``val`` (held out from the
            validation images, disjoint from the training choice; needs train_per_class + test_per_class <= 50).
        split_seed: seed of both choices.
    """

    resize: str = "resize"
    path: str = "imagenet"
    train_per_class: int = 50
    test_per_class: int = 10
    test_from: str = "train"
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_from not in ("train", "val"):
            raise ValueError(f"option 'test_from' must be 'train' or 'val', got {self.test_from!r}")
        for name in ("train_per_class", "test_per_class"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"option {name!r} must be an int >= 1, got {v!r}")


@register_dataset("imagenet-val")
class ImageNetVal(StandardDataset):
    """ImageNet (ILSVRC2012) validation images with labels in class folders ``val/<wnid>/*.JPEG``.

    This is the layout torchvision's ``ImageNet(root, split="val")`` writes when it unpacks the official
    ``ILSVRC2012_img_val.tar`` with ``ILSVRC2012_devkit_t12.tar.gz`` (it does so here when those tarballs are in the
    folder and ``val/`` is not), and the one the common ``valprep.sh`` script makes.
    """

    name: ClassVar[str] = "imagenet-val"
    description: ClassVar[str] = "ILSVRC2012 val protocol: 50/class train, 10/class test, 256x256 (Tarres 2021)"
    Config: ClassVar[type] = ImageNetValConfig

    def plan(self, root: Path) -> Plan:
        cfg: ImageNetValConfig = self.config
        tvd = _tv()
        base = root / cfg.path
        val = base / "val"
        layout = (f"  {val}/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG   (1000 class folders named by WordNet id)\n"
                  f"  {base}/train/<wnid>/*.JPEG   (only with test_from=train)\n"
                  f"  {base}/meta.bin   (optional: class names, written by torchvision from the devkit)\n"
                  f"  or, instead of val/: {base}/ILSVRC2012_img_val.tar and {base}/ILSVRC2012_devkit_t12.tar.gz "
                  f"(unpacked by torchvision)")
        source = ("https://image-net.org/download-images.php (login required; cannot be downloaded automatically): "
                  "ILSVRC2012_img_val.tar md5 29b22e2961454d5413ddabcf34fc5622, ILSVRC2012_devkit_t12.tar.gz md5 "
                  "fa75699e90414af021442c21a62c3abf")
        tars = [base / "ILSVRC2012_img_val.tar", base / "ILSVRC2012_devkit_t12.tar.gz"]
        if not val.is_dir() and all(t.is_file() for t in tars):
            tvd.ImageNet(str(base), split="val")  # md5-checks and unpacks the official tarballs into val/<wnid>/
        required = [val] + ([base / "train"] if cfg.test_from == "train" else [])
        hint = ("the test split of this protocol comes from train/ by default; with only the validation images "
                "pass test_from=val (and train_per_class=40)") if val.is_dir() else ""
        require(self.name, root, required, layout, source, hint)
        samples, wnids = _class_folder(self.name, val, layout)
        names = list(wnids)
        if (base / "meta.bin").is_file():
            wnid_to_classes = tvd.imagenet.load_meta_file(str(base))[0]
            names = [wnid_to_classes.get(w, (w,))[0] for w in wnids]
        by_class = [[p for p, c in samples if c == k] for k in range(len(wnids))]
        need = cfg.train_per_class + (cfg.test_per_class if cfg.test_from == "val" else 0)
        train_items, test_items = [], []
        for k, files in enumerate(by_class):
            if len(files) < need:
                raise ValueError(f"{self.name}: {val / wnids[k]} has {len(files)} images, the protocol needs {need} "
                                 f"(train_per_class={cfg.train_per_class}"
                                 + (f" + test_per_class={cfg.test_per_class} with test_from=val)" if cfg.test_from == "val" else ")"))
            rng = np.random.default_rng([cfg.split_seed, k])
            pick = rng.permutation(len(files))
            train_items += [(files[i], k) for i in sorted(pick[: cfg.train_per_class])]
            if cfg.test_from == "val":
                test_items += [(files[i], k) for i in sorted(pick[cfg.train_per_class : need])]
        if cfg.test_from == "train":
            train_dir = base / "train"
            for k, w in enumerate(wnids):
                folder = train_dir / w
                files = _image_files(folder) if folder.is_dir() else []
                if len(files) < cfg.test_per_class:
                    raise ValueError(f"{self.name}: {folder} has {len(files)} images, test_per_class needs "
                                     f"{cfg.test_per_class}")
                rng = np.random.default_rng([cfg.split_seed, k, 1])
                test_items += [(files[i], k) for i in sorted(rng.choice(len(files), cfg.test_per_class, replace=False))]
        mk = lambda nm, items: SplitPlan(nm, class_names=names, ids=[relative(p, base) for p, _ in items],  # noqa: E731
                                         labels=[k for _, k in items], paths=[Path(p) for p, _ in items])
        info = {
            "source": {"images": "ILSVRC2012 validation set (50,000 images, 50 per class)", "download": source},
            "integrity": "torchvision's ImageNet checks the official tarballs' md5 when it unpacks them; unpacked "
                         "folders are identified by the sha256 of the decoded splits",
            "split": {"train": f"{cfg.train_per_class} validation images per class (seeded)",
                      "test": f"{cfg.test_per_class} per class from {'train/' if cfg.test_from == 'train' else 'val/ (disjoint from train)'} (seeded)",
                      "seed": cfg.split_seed,
                      "protocol": "Tarres 2021: 50 val images per class for training, 10 per class test, 256x256"},
            "classes_found": len(wnids),
            "label": "ILSVRC2012 class (folder wnid; class names from meta.bin when present)",
        }
        return Plan(train=mk("val", train_items), test=mk(f"{cfg.test_from}", test_items), source_files=[], info=info)


# ---------------------------------------------------------------------------------------------------------------
# voc-seg (torchvision.datasets.VOCSegmentation)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VOCSegConfig(StandardConfig):
    """Pascal VOC 2012 segmentation options (standard partitions: train 1,464 / val 1,449; 256 x 256 as in the thesis).

    Attributes:
        train_split: VOC image set used for training (``train`` or ``trainval``).
        test_split: VOC image set used for test (``val``).
    """

    resize: str = "resize"
    train_split: str = "train"
    test_split: str = "val"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.train_split not in ("train", "trainval") or self.test_split not in ("val",):
            raise ValueError(f"voc-seg: train_split must be 'train' or 'trainval' and test_split 'val', got "
                             f"{self.train_split!r}, {self.test_split!r}")


@register_dataset("voc-seg")
class VOCSeg(StandardDataset):
    """Pascal VOC 2012 segmentation with per-pixel masks (255 = boundary/ignore), read by torchvision VOCSegmentation."""

    name: ClassVar[str] = "voc-seg"
    description: ClassVar[str] = "Pascal VOC 2012 segmentation (21 classes, masks; train 1464 / val 1449)"
    Config: ClassVar[type] = VOCSegConfig
    label_from_mask: ClassVar[bool] = True

    def plan(self, root: Path) -> Plan:
        cfg: VOCSegConfig = self.config
        tvd = _tv()
        from torchvision.datasets.voc import DATASET_YEAR_DICT

        meta = DATASET_YEAR_DICT["2012"]
        voc = root / meta["base_dir"]
        source = f"{meta['url']} (md5 {meta['md5']})"
        if cfg.download:
            tvd.VOCSegmentation(str(root), year="2012", image_set=cfg.train_split, download=True)
        sets = voc / "ImageSets" / "Segmentation"
        split_files = [sets / f"{s}.txt" for s in (cfg.train_split, cfg.test_split)]
        layout = (f"  {voc}/JPEGImages/<id>.jpg\n  {voc}/SegmentationClass/<id>.png   (palette PNG of class "
                  f"indices 0..20, 255 = boundary)\n  {voc}/ImageSets/Segmentation/{{train,val,trainval}}.txt")
        hint = "the data root seems to be VOCdevkit/ or VOC2012/ itself; pass the folder that contains VOCdevkit/" \
            if (root / "VOC2012").is_dir() or (root / "JPEGImages").is_dir() else ""
        require(self.name, root, [voc / "JPEGImages", voc / "SegmentationClass", *split_files], layout, source, hint)
        splits = {}
        for split, image_set in (("train", cfg.train_split), ("test", cfg.test_split)):
            ds = tvd.VOCSegmentation(str(root), year="2012", image_set=image_set, download=False)
            paths, masks = [Path(p) for p in ds.images], [Path(p) for p in ds.masks]
            missing = [p for pair in zip(paths, masks) for p in pair if not p.is_file()]
            if missing:
                raise missing_files_error(self.name, root, missing, layout, source,
                                          f"these ids are listed in {sets / (image_set + '.txt')}")
            splits[split] = SplitPlan(image_set, class_names=list(VOC_CLASSES), ids=[p.stem for p in paths],
                                      labels=[0] * len(paths), paths=paths, mask_paths=masks)
        info = {
            "source": {"url": meta["url"], "archive_md5": meta["md5"], "year": "2012"},
            "integrity": "torchvision checks the archive's md5 when it downloads; extracted files are identified by "
                         "the sha256 of the decoded splits",
            "split": {"train": cfg.train_split, "test": cfg.test_split},
            "label": "image label = the non-background class with most mask pixels (0 when only background); masks "
                     "index mask_class_names, 255 = boundary/ignore (resized with nearest neighbour)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=split_files, info=info,
                    mask_class_names=list(VOC_CLASSES))


# ---------------------------------------------------------------------------------------------------------------
# flowers102 (torchvision.datasets.Flowers102)
# ---------------------------------------------------------------------------------------------------------------

_FLOWERS_SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Flowers102Config(StandardConfig):
    """Oxford Flowers 102 options (official splits; ``train_split`` may be ``train+val``).

    Attributes:
        train_split: ``train``, ``val`` or ``train+val`` (official setid.mat splits).
        test_split: ``test`` or ``val``.
    """

    train_split: str = "train"
    test_split: str = "test"

    def __post_init__(self) -> None:
        super().__post_init__()
        tr = self.train_split.split("+")
        if not all(s in _FLOWERS_SPLITS for s in tr) or self.test_split not in _FLOWERS_SPLITS or self.test_split in tr:
            raise ValueError(f"flowers102: train_split must be train, val or train+val and test_split another "
                             f"official split, got {self.train_split!r}, {self.test_split!r}")


@register_dataset("flowers102")
class Flowers102(StandardDataset):
    """Oxford 102 Flowers: ``flowers-102/{jpg/, imagelabels.mat, setid.mat}``, read by torchvision Flowers102."""

    name: ClassVar[str] = "flowers102"
    description: ClassVar[str] = "Oxford 102 Flowers (official train/val/test splits from setid.mat)"
    Config: ClassVar[type] = Flowers102Config

    def plan(self, root: Path) -> Plan:
        cfg: Flowers102Config = self.config
        tvd = _tv()
        F = tvd.Flowers102
        base = root / "flowers-102"
        files = {k: (base / f, md5) for k, (f, md5) in F._file_dict.items()}
        source = "; ".join(f"{F._download_url_prefix}{f.name} (md5 {m})" for f, m in files.values())
        if cfg.download:
            F(str(root), split="train", download=True)
        layout = f"  {base}/jpg/image_NNNNN.jpg\n  {base}/imagelabels.mat\n  {base}/setid.mat"
        hint = "the data root seems to be the flowers-102 folder itself; pass its parent" if (root / "setid.mat").exists() else ""
        require(self.name, root, [base / "jpg", files["label"][0], files["setid"][0]], layout, source, hint)
        classes = list(getattr(F, "classes", [])) or [str(i) for i in range(102)]
        splits = {}
        for split, names in (("train", cfg.train_split.split("+")), ("test", [cfg.test_split])):
            paths, labels = [], []
            for s in names:
                try:
                    ds = F(str(root), split=s, download=False, loader=str)
                except RuntimeError as exc:
                    raise diagnose_md5(self.name, [files["label"], files["setid"]], source, exc) from exc
                for i in range(len(ds)):
                    p, y = ds[i]  # the loader returns the path: nothing is decoded here
                    paths.append(Path(p))
                    labels.append(int(y))
            splits[split] = SplitPlan(cfg.train_split if split == "train" else cfg.test_split, class_names=classes,
                                      ids=[p.name for p in paths], labels=labels, paths=paths)
        info = {
            "source": {"files_md5": {f.name: m for f, m in files.values()}, "url": F._download_url_prefix},
            "integrity": f"torchvision {_dist_version('torchvision')} Flowers102 checks the md5 of imagelabels.mat "
                         f"and setid.mat at every load",
            "split": {"train": cfg.train_split, "test": cfg.test_split, "rule": "official setid.mat splits"},
            "label": "flower class (imagelabels.mat, 0-based)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[files["label"][0], files["setid"][0]],
                    info=info)


# ---------------------------------------------------------------------------------------------------------------
# celeba (torchvision.datasets.CelebA)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CelebAConfig(StandardConfig):
    """CelebA (aligned and cropped faces) options.

    Attributes:
        test_split: the official partition used for test: ``test`` or ``valid``.
        label_attr: a CelebA attribute (e.g. ``Male``) giving a binary image label; empty: label 0 for all.
    """

    size: int = 128  # colorbench's choice: the aligned faces are 178x218; the paper gives no size
    test_split: str = "test"
    label_attr: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_split not in ("test", "valid"):
            raise ValueError(f"celeba: test_split must be 'test' or 'valid', got {self.test_split!r}")


@register_dataset("celeba")
class CelebA(StandardDataset):
    """CelebA aligned faces ``celeba/img_align_celeba/*.jpg`` with the official partition, read by torchvision CelebA."""

    name: ClassVar[str] = "celeba"
    description: ClassVar[str] = "CelebA aligned faces (official train / test partition; subsets with n_train/n_test)"
    Config: ClassVar[type] = CelebAConfig

    def plan(self, root: Path) -> Plan:
        cfg: CelebAConfig = self.config
        tvd = _tv()
        C = tvd.CelebA
        base = root / C.base_folder
        txt = [(base / f, md5) for _, md5, f in C.file_list if not f.endswith(".zip")]
        source = ("https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (Google Drive; download=true needs the gdown "
                  "package): " + ", ".join(f"{f} md5 {m}" for _, m, f in C.file_list))
        if cfg.download:
            C(str(root), split="train", download=True)
        layout = f"  {base}/img_align_celeba/NNNNNN.jpg\n" + "\n".join(f"  {f}" for f, _ in txt)
        hint = "the data root seems to be the celeba folder itself; pass its parent" \
            if (root / "img_align_celeba").is_dir() else ""
        require(self.name, root, [base / "img_align_celeba"] + [f for f, _ in txt], layout, source, hint)
        splits, class_names = {}, ["face"]
        for split, part in (("train", "train"), ("test", cfg.test_split)):
            try:
                ds = C(str(root), split=part, target_type=["attr"], download=False)
            except RuntimeError as exc:
                raise diagnose_md5(self.name, txt, source, exc) from exc
            names = [a for a in ds.attr_names if a]
            if cfg.label_attr:
                if cfg.label_attr not in names:
                    raise ValueError(f"celeba: unknown attribute {cfg.label_attr!r}; attributes are {names}")
                labels = ds.attr[:, names.index(cfg.label_attr)].tolist()
                class_names = [f"not {cfg.label_attr}", cfg.label_attr]
            else:
                labels = [0] * len(ds.filename)
            paths = [base / "img_align_celeba" / f for f in ds.filename]
            splits[split] = SplitPlan(part, class_names=class_names, ids=list(ds.filename), labels=labels, paths=paths)
        for sp in splits.values():
            sp.class_names = class_names
        info = {
            "source": {"files_md5": {f: m for _, m, f in C.file_list}, "images": "img_align_celeba (aligned & cropped)"},
            "integrity": f"torchvision {_dist_version('torchvision')} CelebA checks the md5 of the five annotation "
                         f"files at every load (not of the images)",
            "split": {"train": "train (list_eval_partition.txt = 0)", "test": cfg.test_split},
            "label": f"attribute {cfg.label_attr} (1 = present)" if cfg.label_attr else "none (0 for every image)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[f for f, _ in txt], info=info)


# ---------------------------------------------------------------------------------------------------------------
# places365 (torchvision.datasets.Places365)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Places365Config(StandardConfig):
    """Places365-Standard options: train = ``train-standard``, test = ``val`` (the test split has no labels).

    Attributes:
        small: the 256 x 256 images (``data_256_standard/``, ``val_256/``) instead of the large ones.
    """

    small: bool = True


@register_dataset("places365")
class Places365(StandardDataset):
    """Places365-Standard, read by torchvision Places365 (file lists with md5s; subsets via n_train / n_test)."""

    name: ClassVar[str] = "places365"
    description: ClassVar[str] = "Places365-Standard (train-standard / val; 365 scene classes; seeded subsets)"
    Config: ClassVar[type] = Places365Config

    def plan(self, root: Path) -> Plan:
        cfg: Places365Config = self.config
        tvd = _tv()
        P = tvd.Places365
        lists = [(root / P._CATEGORIES_META[0], P._CATEGORIES_META[1])] + \
            [(root / P._FILE_LIST_META[s][0], P._FILE_LIST_META[s][1]) for s in ("train-standard", "val")]
        archives = {s: P._IMAGES_META[(s, cfg.small)] for s in ("train-standard", "val")}
        source = (f"{P._BASE_URL}: {P._DEVKIT_META['standard'][0]} (md5 {P._DEVKIT_META['standard'][1]}), "
                  + ", ".join(f"{f} (md5 {m})" for f, m in archives.values()))
        if cfg.download:
            for s in ("train-standard", "val"):
                P(str(root), split=s, small=cfg.small, download=True, loader=str)
        sizes = "256" if cfg.small else "large"
        dirs = [root / f"data_{sizes}_standard", root / f"val_{sizes}"]
        layout = "\n".join(f"  {f}" for f, _ in lists) + "\n" + "\n".join(f"  {d}/..." for d in dirs)
        require(self.name, root, [f for f, _ in lists] + dirs, layout, source)
        splits, class_names = {}, None
        for split, s in (("train", "train-standard"), ("test", "val")):
            try:
                ds = P(str(root), split=s, small=cfg.small, download=False, loader=str)
            except RuntimeError as exc:
                raise diagnose_md5(self.name, lists, source, exc) from exc
            by_index = sorted(ds.class_to_idx.items(), key=lambda kv: kv[1])
            class_names = [c for c, _ in by_index]
            paths = [Path(p) for p, _ in ds.imgs]
            splits[split] = SplitPlan(s, class_names=class_names, ids=[relative(p, root) for p in paths],
                                      labels=[int(y) for _, y in ds.imgs], paths=paths)
        info = {
            "source": {"url": P._BASE_URL, "files_md5": {f.name: m for f, m in lists},
                       "archives_md5": {f: m for f, m in archives.values()}},
            "integrity": f"torchvision {_dist_version('torchvision')} Places365 checks the md5 of the category and "
                         f"file lists at every load (not of the images)",
            "split": {"train": "train-standard", "test": "val (official validation set; test has no labels)",
                      "small_images": cfg.small},
            "label": "scene class (categories_places365.txt index)",
        }
        return Plan(train=splits["train"], test=splits["test"], source_files=[f for f, _ in lists], info=info)


# ---------------------------------------------------------------------------------------------------------------
# image-folder (torchvision.datasets.ImageFolder)
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageFolderConfig(StandardConfig):
    """A user's own images in class sub-folders.

    Attributes:
        path: the folder (absolute, or relative to the data root; empty: the data root itself). With ``train/``
            and ``test/`` sub-folders (each holding class folders) those are the splits; otherwise the class
            folders are split per class with ``test_fraction`` and ``split_seed``.
        test_fraction: fraction of each class held out for test when there is no train/test layout.
        split_seed: seed of that split.
    """

    path: str = ""
    test_fraction: float = 0.2
    split_seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        _check_fraction(self.test_fraction, "test_fraction")


@register_dataset("image-folder")
class ImageFolder(StandardDataset):
    """Generic ``<path>/<class>/<image>`` (or ``<path>/{train,test}/<class>/<image>``), scanned by torchvision ImageFolder."""

    name: ClassVar[str] = "image-folder"
    description: ClassVar[str] = "your own images in class folders (train/ and test/, or a seeded per-class split)"
    Config: ClassVar[type] = ImageFolderConfig

    def plan(self, root: Path) -> Plan:
        cfg: ImageFolderConfig = self.config
        base = (root / cfg.path) if cfg.path else root
        layout = f"  {base}/<class>/<image>   or   {base}/train/<class>/<image> and {base}/test/<class>/<image>"
        require(self.name, root, [base], layout, "your own images")
        if (base / "train").is_dir() and (base / "test").is_dir():
            train_s, classes = _class_folder(self.name, base / "train", layout)
            test_s, test_classes = _class_folder(self.name, base / "test", layout)
            unknown = sorted(set(test_classes) - set(classes))
            if unknown:
                raise ValueError(f"{self.name}: {base / 'test'} has class folders {unknown} that {base / 'train'} lacks")
            remap = [classes.index(c) for c in test_classes]
            test_s = [(p, remap[c]) for p, c in test_s]
            train = _files_plan("train", train_s, np.arange(len(train_s)), classes, base)
            test = _files_plan("test", test_s, np.arange(len(test_s)), classes, base)
            split = {"rule": "the train/ and test/ folders"}
        else:
            samples, classes = _class_folder(self.name, base, layout)
            tr, te = _stratified_split([c for _, c in samples], len(classes), cfg.test_fraction, cfg.split_seed,
                                       self.name, classes)
            train = _files_plan("train", samples, tr, classes, base)
            test = _files_plan("test", samples, te, classes, base)
            split = {"rule": "per class, a seeded random test_fraction (at least 1 image) is test",
                     "test_fraction": cfg.test_fraction, "seed": cfg.split_seed}
        info = {"source": {"path": str(base)}, "integrity": "identified by the sha256 of the decoded splits",
                "split": split, "label": "class folder name"}
        return Plan(train=train, test=test, source_files=[], info=info)
