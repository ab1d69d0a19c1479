"""The two built-in offline datasets: ``photos`` (patches of real photographs) and ``shapes`` (procedural).

Neither downloads anything. ``photos`` cuts patches from colour photographs that ship inside installed packages
(scikit-image, scikit-learn, matplotlib); ``shapes`` draws seeded scenes of textured regions whose colour follows
from their class, with a per-pixel class mask. Both record in ``DatasetSplits.info`` everything that identifies
the data, including a sha256 of the decoded splits (:func:`imageset_sha256`), so two run records can show that
they used the same pixels.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from colorbench.datasets.base import Dataset, DatasetSplits, ImageSet
from colorbench.datasets.registry import register_dataset

__all__ = [
    "PHOTO_SOURCES",
    "DEFAULT_PHOTOS",
    "SHAPE_CLASSES",
    "PhotoSource",
    "Photos",
    "Shapes",
    "imageset_sha256",
    "generate_shapes",
]


def imageset_sha256(images: ImageSet) -> str:
    """sha256 over an :class:`ImageSet`'s tensors: rgb, labels and masks (if any), each prefixed by dtype and shape.

    Equal digests mean the same pixels, labels and masks in the same order (ids and class names are not hashed).
    """
    h = hashlib.sha256()
    for key, t in (("rgb", images.rgb), ("labels", images.labels), ("masks", images.masks)):
        if t is None:
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _tuple_of_names(value: Any, option: str) -> tuple[str, ...]:
    """Accept a tuple/list of names or a comma-separated string (as the CLI may pass it)."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"option {option!r} must be a list of names or a comma-separated string, got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"option {option!r} lists a name twice: {list(value)}")
    return tuple(value)


def _check_int(cfg: Any, name: str, minimum: int) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"option {name!r} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"option {name!r} must be >= {minimum}, got {value}")


def _check_float(cfg: Any, name: str, low: float, high: float) -> None:
    value = getattr(cfg, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"option {name!r} must be a number, got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ValueError(f"option {name!r} must be in [{low}, {high}], got {value}")


def _params(cfg: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


# ---------------------------------------------------------------------------------------------------------------
# photos
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PhotoSource:
    """A colour photograph shipped inside an installed package.

    Attributes:
        name: the photo's name in colorbench (its class name).
        distribution: the pip distribution that ships it (its version is recorded).
        package: the import package whose folder holds the file (found without importing it).
        path: the file's path inside that package folder.
    """

    name: str
    distribution: str
    package: str
    path: str

    def locate(self) -> Path:
        """The file on disk; raises FileNotFoundError naming the photo if it is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"photos: source photo {self.name!r} needs the package {self.package!r} "
                f"(pip distribution {self.distribution!r}), which is not installed"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / self.path
        if not path.is_file():
            raise FileNotFoundError(
                f"photos: source photo {self.name!r} is missing: expected {path} in {self.distribution} "
                f"{_dist_version(self.distribution)} (this dataset never downloads; choose other photos with the "
                f"`photos` option)"
            )
        return path


def _dist_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# Only files that are inside the installed distributions: scikit-image 0.26 keeps these in ``skimage/data`` (its
# ``_fetchers._fetch`` finds them there before it would ever ask pooch); the other ``skimage.data`` colour images
# (eagle is grey; skin, lily, ... are download-only) are left out. Not photographs, so also left out:
# ``color.png`` (colour wheel), ``chessboard_RGB.png``, ``phantom.png``, ``logo.png``.
PHOTO_SOURCES: dict[str, PhotoSource] = {
    s.name: s
    for s in (
        PhotoSource("astronaut", "scikit-image", "skimage", "data/astronaut.png"),
        PhotoSource("chelsea", "scikit-image", "skimage", "data/chelsea.png"),
        PhotoSource("coffee", "scikit-image", "skimage", "data/coffee.png"),
        PhotoSource("hubble_deep_field", "scikit-image", "skimage", "data/hubble_deep_field.jpg"),
        PhotoSource("immunohistochemistry", "scikit-image", "skimage", "data/ihc.png"),
        PhotoSource("motorcycle_left", "scikit-image", "skimage", "data/motorcycle_left.png"),
        PhotoSource("motorcycle_right", "scikit-image", "skimage", "data/motorcycle_right.png"),
        PhotoSource("retina", "scikit-image", "skimage", "data/retina.jpg"),
        PhotoSource("rocket", "scikit-image", "skimage", "data/rocket.jpg"),
        PhotoSource("china", "scikit-learn", "sklearn", "datasets/images/china.jpg"),
        PhotoSource("flower", "scikit-learn", "sklearn", "datasets/images/flower.jpg"),
        PhotoSource("grace_hopper", "matplotlib", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    )
}

#: The default photo list. ``motorcycle_right`` is left out: it is the other view of a stereo pair, so its test
#: blocks would show the same scene as ``motorcycle_left``'s training blocks (content leak across the split).
DEFAULT_PHOTOS: tuple[str, ...] = tuple(n for n in PHOTO_SOURCES if n != "motorcycle_right")


@functools.lru_cache(maxsize=None)
def _decode_photo(name: str, icc: str = "convert") -> tuple[np.ndarray, str, str, str | None]:
    """Read and decode one photo once per process: ``(H, W, 3)`` uint8 sRGB (read-only), file sha256, file path,
    and what :func:`colorbench.datasets.imaging.to_rgb8` did (``rocket`` is Adobe RGB (1998): converted to sRGB
    under ``icc="convert"``; the other photos are sRGB or untagged)."""
    from PIL import Image  # Pillow decodes PNG/JPEG; a dependency of matplotlib and torchvision

    from colorbench.datasets.imaging import to_rgb8

    path = PHOTO_SOURCES[name].locate()
    raw = path.read_bytes()
    with Image.open(io.BytesIO(raw)) as im:
        if im.mode not in ("RGB", "RGBA"):
            raise ValueError(f"photos: source photo {name!r} ({path}) is {im.mode!r}, not an RGB colour photo")
        im.load()
        rgb_img, conversion = to_rgb8(im, path, icc=icc)  # RGBA -> RGB drops alpha
        rgb = np.asarray(rgb_img)
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    rgb.setflags(write=False)
    return rgb, hashlib.sha256(raw).hexdigest(), str(path), conversion


def _box_std(gray: np.ndarray, size: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A function giving the grey standard deviation over the size x size windows at (ys, xs) (integral images)."""
    s1 = np.pad(gray.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    s2 = np.pad((gray * gray).cumsum(0).cumsum(1), ((1, 0), (1, 0)))

    def std(ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        def box(t: np.ndarray) -> np.ndarray:
            return t[ys + size, xs + size] - t[ys, xs + size] - t[ys + size, xs] + t[ys, xs]

        mean = box(s1) / size**2
        return np.sqrt(np.maximum(box(s2) / size**2 - mean * mean, 0.0))

    return std


@dataclass(frozen=True)
class PhotosConfig:
    """Options of the ``photos`` dataset.

    Attributes:
        size: patch side in pixels.
        photos: names from :data:`PHOTO_SOURCES` (a list or a comma-separated string).
        train_per_photo: training patches drawn per photo (fewer when the photo has fewer candidates).
        test_per_photo: test patches drawn per photo (fewer when the photo has fewer candidates).
        test_fraction: share of each photo's blocks that go to the test split (at least one block).
        block: side of the split blocks in pixels; 0 means ``max(128, size)``.
        margin: gap kept between a patch and its block's border (shrunk to fit when the block is barely larger
            than a patch), so patches of neighbouring blocks are at least ``2 * margin`` pixels apart.
        stride: step of the candidate patch positions inside a block; 0 means ``max(1, size // 4)``.
        min_gray_std: candidates whose BT.601 grey standard deviation (0-255 scale) is below this are dropped
            (the black surround of ``retina``); 0 keeps all.
        seed: chooses the test blocks and the patches.
        icc: embedded ICC profiles (:data:`colorbench.datasets.imaging.ICC_POLICIES`): ``"convert"`` turns
            ``rocket`` (Adobe RGB (1998)) into sRGB; ``"ignore"`` reads its stored values, as version 1 did.
    """

    size: int = 32
    photos: tuple[str, ...] = DEFAULT_PHOTOS
    train_per_photo: int = 192
    test_per_photo: int = 48
    test_fraction: float = 0.2
    block: int = 0
    margin: int = 8
    stride: int = 0
    min_gray_std: float = 1.0
    seed: int = 0
    icc: str = "convert"

    def __post_init__(self) -> None:
        from colorbench.datasets.imaging import check_icc

        check_icc(self.icc)
        object.__setattr__(self, "photos", _tuple_of_names(self.photos, "photos"))
        unknown = [p for p in self.photos if p not in PHOTO_SOURCES]
        if unknown:
            raise ValueError(f"photos: unknown photo(s) {unknown}; known photos are {sorted(PHOTO_SOURCES)}")
        if not self.photos:
            raise ValueError("photos: option 'photos' is empty")
        for name, minimum in (("size", 1), ("train_per_photo", 1), ("test_per_photo", 1), ("block", 0),
                              ("margin", 0), ("stride", 0), ("seed", 0)):
            _check_int(self, name, minimum)
        _check_float(self, "test_fraction", 0.0, 1.0)
        if not 0.0 < self.test_fraction < 1.0:
            raise ValueError(f"option 'test_fraction' must be strictly between 0 and 1, got {self.test_fraction}")
        _check_float(self, "min_gray_std", 0.0, 255.0)
        if self.block and self.block < self.size:
            raise ValueError(f"option 'block' ({self.block}) must be 0 (auto) or at least 'size' ({self.size})")


def _sample_photo(
    rgb: np.ndarray, rng: np.random.Generator, cfg: PhotosConfig, block: int, margin: int, stride: int
) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, int]]:
    """Split one photo's blocks into train/test and draw patch positions in each (see the split policy).

    Returns the grid description, the chosen ``(n, 2)`` top-left ``(y, x)`` positions per split (raster order),
    and the counts (drawn, candidates, near-flat candidates dropped) per split.
    """
    height, width = rgb.shape[:2]
    rows, cols = height // block, width // block
    y0, x0 = (height - rows * block) // 2, (width - cols * block) // 2  # centre the grid
    n_cells = rows * cols
    n_test = min(n_cells - 1, max(1, round(cfg.test_fraction * n_cells)))
    test_cells = np.sort(rng.permutation(n_cells)[:n_test])
    is_test = np.zeros(n_cells, dtype=bool)
    is_test[test_cells] = True
    window_std = _box_std(rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114]), cfg.size)  # BT.601, 0-255
    offsets = np.arange(margin, block - margin - cfg.size + 1, stride)

    chosen: dict[str, np.ndarray] = {}
    count: dict[str, int] = {}
    for split, cells, wanted in (("train", np.flatnonzero(~is_test), cfg.train_per_photo),
                                 ("test", np.flatnonzero(is_test), cfg.test_per_photo)):
        shape = (len(cells), len(offsets), len(offsets))  # (cell, offset y, offset x)
        ys = np.broadcast_to((y0 + (cells // cols) * block)[:, None, None] + offsets[None, :, None], shape).ravel()
        xs = np.broadcast_to((x0 + (cells % cols) * block)[:, None, None] + offsets[None, None, :], shape).ravel()
        keep = window_std(ys, xs) >= cfg.min_gray_std
        ys, xs = ys[keep], xs[keep]
        pick = rng.choice(len(ys), size=min(wanted, len(ys)), replace=False)
        pick = pick[np.lexsort((xs[pick], ys[pick]))]  # raster order within the photo
        chosen[split] = np.stack([ys[pick], xs[pick]], axis=1)
        count.update({split: len(pick), f"{split}_candidates": int(keep.sum()),
                      f"{split}_flat_dropped": int((~keep).sum())})
    grid = {"rows": rows, "cols": cols, "y0": y0, "x0": x0,
            "test_blocks": [[int(c // cols), int(c % cols)] for c in test_cells]}
    return grid, chosen, count


_PHOTOS_SPLIT_POLICY = (
    "Each photo is tiled by a centred grid of square blocks (side `block`); a seeded permutation of the blocks "
    "puts round(test_fraction * n_blocks) of them (at least 1, at most n_blocks - 1) in the test split and the "
    "rest in train. Every patch lies wholly inside one block, at least `margin` pixels from the block's border, "
    "so no pixel is in both splits and train and test patches are at least 2 * margin pixels apart. Candidate "
    "positions lie on a `stride` grid inside each block; near-flat candidates (grey std < min_gray_std) are "
    "dropped; `train_per_photo` / `test_per_photo` are drawn without replacement. Photos with fewer than two "
    "blocks, or no candidate in a split, are skipped (listed in `skipped_photos`); nothing is resized."
)


@register_dataset("photos")
class Photos(Dataset):
    """Patches of real colour photographs shipped inside scikit-image, scikit-learn and matplotlib (no download).

    Label = source photo; id = ``"{photo}:{y}:{x}"`` (top-left corner of the patch in the photo). Train and test
    patches come from disjoint blocks of each photo (see ``info["split_policy"]``).
    """

    name: ClassVar[str] = "photos"
    description: ClassVar[str] = "patches of real colour photos bundled with scikit-image/scikit-learn/matplotlib"
    #: 2 (2026-12-02): photos with an embedded non-sRGB ICC profile (``rocket``) converted to sRGB (option ``icc``)
    version: ClassVar[str] = "2"
    Config: ClassVar[type] = PhotosConfig

    def load(self) -> DatasetSplits:
        """The splits, from the decoded-data cache when an earlier load of the same photos (file bytes and the
        versions of the packages that ship them), options, decoder and numpy stored them; else decoded and
        sampled (about 0.5 s for the default photos) and stored. Every process of a run (each pool worker, each
        Ray task) loads the dataset: from the cache they share one memory-mapped copy."""
        from colorbench.datasets.cache import builtin_cache_dir, cache_key, file_sha256, load_entry

        cfg: PhotosConfig = self.config
        files = {name: [file_sha256(PHOTO_SOURCES[name].locate()), _dist_version(PHOTO_SOURCES[name].distribution)]
                 for name in cfg.photos}
        key = cache_key({"dataset": self.name, "version": self.version, "params": _params(cfg), "files": files,
                         "pillow": _dist_version("Pillow"), "numpy": np.__version__})
        cache_dir = builtin_cache_dir()
        entry = load_entry(cache_dir, self.name, key) if cache_dir is not None else None
        if entry is not None:
            return DatasetSplits(name=self.name, train=entry.sets["train"], test=entry.sets["test"],
                                 info=entry.meta["info"])
        data = self._decode(cfg)
        data.info = json.loads(json.dumps(data.info))  # as a cached load gives it back (lists, not tuples)
        if cache_dir is not None:
            _store(cache_dir, self.name, key, data)
        return data

    def _decode(self, cfg: PhotosConfig) -> DatasetSplits:
        size = cfg.size
        block = cfg.block or max(128, size)
        margin = min(cfg.margin, (block - size) // 2)
        stride = cfg.stride or max(1, size // 4)

        kept: list[str] = []
        patches: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        positions: dict[str, list[np.ndarray]] = {"train": [], "test": []}
        sources: dict[str, Any] = {}
        grids: dict[str, Any] = {}
        counts: dict[str, Any] = {}
        skipped: dict[str, str] = {}
        for name in cfg.photos:
            rgb, file_sha, _, conversion = _decode_photo(name, cfg.icc)
            src = PHOTO_SOURCES[name]
            height, width = rgb.shape[:2]
            sources[name] = {
                "distribution": src.distribution, "version": _dist_version(src.distribution),
                "file": f"{src.package}/{src.path}", "file_sha256": file_sha, "height": height, "width": width,
                "conversion": conversion,
            }
            if (height // block) * (width // block) < 2:
                skipped[name] = f"{height}x{width} holds fewer than 2 blocks of {block} px"
                continue
            # one stream per (seed, photo): adding or removing a photo does not change the others' patches
            rng = np.random.default_rng([cfg.seed, zlib.crc32(name.encode())])
            grid, chosen, count = _sample_photo(rgb, rng, cfg, block, margin, stride)
            if count["train"] == 0 or count["test"] == 0:
                skipped[name] = "no candidate patch left in a split (all near-flat)"
                continue
            kept.append(name)
            grids[name], counts[name] = grid, count
            for split, pos in chosen.items():
                patches[split].append(np.stack([rgb[y : y + size, x : x + size] for y, x in pos]))
                positions[split].append(pos)

        if not kept:
            raise ValueError(f"photos: no photo can give {size}x{size} patches under the split policy: {skipped}")
        sets = {}
        for split in ("train", "test"):
            rgb = torch.from_numpy(np.ascontiguousarray(np.concatenate(patches[split]).transpose(0, 3, 1, 2)))
            labels = torch.cat([torch.full((len(p),), i, dtype=torch.long) for i, p in enumerate(positions[split])])
            ids = [f"{name}:{y}:{x}" for name, pos in zip(kept, positions[split]) for y, x in pos.tolist()]
            sets[split] = ImageSet(rgb=rgb, labels=labels, ids=ids, class_names=list(kept))

        info = {
            "version": self.version,
            "params": _params(cfg),
            "sources": sources,
            "decoder": f"Pillow {_dist_version('Pillow')}",
            "split_policy": _PHOTOS_SPLIT_POLICY,
            "split": {"block": block, "margin": margin, "stride": stride, "grids": grids},
            "counts_per_photo": counts,
            "skipped_photos": skipped,
            "label": "source photo (class_names = photo names)",
            "sha256": {split: imageset_sha256(s) for split, s in sets.items()},
        }
        return DatasetSplits(name=self.name, train=sets["train"], test=sets["test"], info=info)


def _store(cache_dir: Path, dataset: str, key: str, data: DatasetSplits) -> None:
    """Keep ``data`` in the decoded-data cache under ``key``; a cache that cannot be written (full disk, no
    permission) is skipped: the next load decodes again."""
    from colorbench.datasets.cache import EntryWriter

    try:
        writer = EntryWriter(cache_dir, dataset, key)
    except OSError:
        return
    try:
        splits = {}
        for split in ("train", "test"):
            s = getattr(data, split)
            writer.put(f"{split}_rgb", s.rgb.numpy())
            writer.put(f"{split}_labels", s.labels.numpy())
            splits[split] = {"ids": list(s.ids), "class_names": list(s.class_names)}
        writer.commit({"splits": splits, "info": data.info})
    except (OSError, ValueError, MemoryError):
        writer.abort()


# ---------------------------------------------------------------------------------------------------------------
# shapes
# ---------------------------------------------------------------------------------------------------------------

# A texture maker ``f(rng, n, S, yy, xx, geometry, hue_jitter)`` returns HSV fields (h, s, v) for n images,
# each broadcastable to (n, S, S); yy and xx are pixel-centre coordinates. ``geometry`` holds the shape centre
# ``cy, cx`` and radius ``r`` per image (pixels), or is None for the background. Lengths scale with S / 32.

#: The classes: their colour and the structure their grey (BT.601 luma) shows.
SHAPE_CLASSES: dict[str, str] = {
    "sky": "blue, smooth vertical gradient (lighter and paler downwards), no texture",
    "grass": "green, fine vertical blade streaks (high-frequency noise smoothed vertically)",
    "brick": "red bricks in running bond with a pale grey mortar grid",
    "sun": "yellow centre to orange rim, bright smooth radial glow; as a shape always a disk",
    "water": "blue-cyan, smooth horizontal waves",
    "wood": "brown, near-vertical wavy grain rings with fine streaks",
    "sand": "pale beige, bright with fine low-contrast speckle",
    "stone": "achromatic grey, blotchy medium-scale noise",
}


def _jitter(rng: np.random.Generator, n: int, hue: float, hue_jitter: float) -> tuple:
    """Per-image hue (base + uniform jitter), saturation scale and value offset, each shaped (n, 1, 1)."""
    h = hue + rng.uniform(-hue_jitter, hue_jitter, (n, 1, 1))
    s = rng.uniform(0.85, 1.1, (n, 1, 1))
    v = rng.uniform(-0.05, 0.05, (n, 1, 1))
    return h, s, v


def _standard_noise(rng: np.random.Generator, n: int, S: int, sigma: tuple[float, float]) -> np.ndarray:
    """Gaussian-smoothed white noise (per image, axes y and x), rescaled to zero mean and unit std."""
    from scipy import ndimage

    z = ndimage.gaussian_filter(rng.standard_normal((n, S, S), dtype=np.float32), sigma=(0, *sigma), mode="wrap")
    z -= z.mean(axis=(1, 2), keepdims=True)
    return z / (z.std(axis=(1, 2), keepdims=True) + 1e-8)


def _rotated(yy: np.ndarray, xx: np.ndarray, angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return yy * c + xx * s, -yy * s + xx * c


def _sky(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.58, hj)
    t = np.clip(_rotated(yy, xx, rng.uniform(-0.3, 0.3, (n, 1, 1)))[0] / S, 0, 1)
    t = t + 0.004 * rng.standard_normal((n, S, S), dtype=np.float32)
    return h, (0.62 - 0.32 * t) * sj, 0.72 + 0.25 * t + vj


def _grass(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.29, hj)
    z = np.clip(_standard_noise(rng, n, S, (1.5 * S / 32, 0.3)), -2, 2)
    return h + 0.02 * z, 0.75 * sj + 0.05 * z, 0.38 + 0.13 * z + vj


def _brick(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.02, hj)
    bh = S / rng.uniform(4.5, 6.5, (n, 1, 1))  # row height
    bw = 2 * bh
    mortar = np.maximum(1.0, 0.15 * bh)
    y = yy + rng.uniform(0, 100, (n, 1, 1))
    row = np.floor(y / bh)
    x = xx + rng.uniform(0, 100, (n, 1, 1)) + (row % 2) * bw / 2
    col = np.floor(x / bw)
    is_mortar = ((y - row * bh) < mortar) | ((x - col * bw) < mortar)
    per_brick = np.modf(np.abs(np.sin(row * 12.9898 + col * 78.233)) * 43758.5453)[0] - 0.5  # fixed hash
    noise = 0.03 * rng.standard_normal((n, S, S), dtype=np.float32)
    hue = np.where(is_mortar, h, h + 0.02 * per_brick)
    sat = np.where(is_mortar, 0.08, 0.72 * sj)
    val = np.where(is_mortar, 0.8, 0.52 + 0.16 * per_brick + vj) + noise
    return hue, sat, val


def _sun(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.14, hj)
    if geom is None:  # background: a large glow centred anywhere in the image
        cy, cx = rng.uniform(0, S, (2, n, 1, 1))
        r = rng.uniform(0.5, 0.9, (n, 1, 1)) * S
    else:
        cy, cx, r = geom["cy"], geom["cx"], geom["r"]
    d = np.clip(np.hypot(yy - cy, xx - cx) / r, 0, 1.5)
    return h - 0.06 * d, np.clip(0.5 + 0.4 * d, 0, 1) * sj, 1.0 - 0.1 * d * d + vj


def _water(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.53, hj)
    y, x = _rotated(yy, xx, rng.uniform(-0.2, 0.2, (n, 1, 1)))
    period = S / rng.uniform(4, 6, (n, 1, 1))
    ph1, ph2 = rng.uniform(0, 2 * np.pi, (2, n, 1, 1))
    w = np.sin(2 * np.pi * (y / period + 0.12 * np.sin(np.pi * x / period + ph2)) + ph1)
    return h + 0.02 * w, (0.65 - 0.1 * w) * sj, 0.55 + 0.15 * w + vj


def _wood(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.075, hj)
    along, across = _rotated(yy, xx, rng.uniform(-0.35, 0.35, (n, 1, 1)))  # grain runs near-vertically
    period = S / rng.uniform(3, 5, (n, 1, 1))
    ph1, ph2 = rng.uniform(0, 2 * np.pi, (2, n, 1, 1))
    rings = np.sin(2 * np.pi * (across / period + 0.35 * np.sin(2 * np.pi * along / (3 * period) + ph2)) + ph1)
    streak = np.clip(_standard_noise(rng, n, S, (2.0 * S / 32, 0.3)), -2, 2)
    return h, (0.65 + 0.05 * rings) * sj, 0.42 + 0.1 * rings + 0.03 * streak + vj


def _sand(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.12, hj)
    speckle = 2 * rng.random((n, S, S), dtype=np.float32) - 1
    return h, 0.35 * sj + 0.03 * speckle, 0.84 + 0.07 * speckle + vj


def _stone(rng, n, S, yy, xx, geom, hj):
    h, sj, vj = _jitter(rng, n, 0.08, hj)
    z = np.clip(_standard_noise(rng, n, S, (2.0 * S / 32, 2.0 * S / 32)), -2.5, 2.5)
    return h, 0.05 * sj, 0.5 + 0.12 * z + vj


_TEXTURES: dict[str, Callable[..., tuple]] = {
    "sky": _sky, "grass": _grass, "brick": _brick, "sun": _sun,
    "water": _water, "wood": _wood, "sand": _sand, "stone": _stone,
}
assert list(_TEXTURES) == list(SHAPE_CLASSES)


def hsv_to_rgb_channels_first(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """HSV -> RGB, branch-free: ``c = v - v * s * clip(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6``, n = 5, 3, 1.

    Hue wraps (taken mod 1); s and v are clipped to [0, 1]. Returns ``(3, *h.shape)`` in the dtype of ``h``.
    Written here because matplotlib's ``hsv_to_rgb`` (the reference in the tests) wants channels-last float64
    and took most of the generation time; this form is vectorized over channels-first float32 fields.
    """
    s, v = np.clip(s, 0, 1), np.clip(v, 0, 1)
    h6 = (h - np.floor(h)) * 6  # in [0, 6)
    vs = v * s
    out = np.empty((3, *h.shape), dtype=h.dtype)
    for ch, n in enumerate((5, 3, 1)):
        k = h6 + n
        k -= 6 * (k >= 6)  # (n + 6h) mod 6, as n + 6h < 12
        out[ch] = v - vs * np.clip(np.minimum(k, 4 - k), 0, 1)
    return out


def _chunk_images(S: int) -> int:
    """Images generated per random stream (bounds memory at ~4M pixels per float array)."""
    return max(1, (1 << 22) // (S * S))


def generate_shapes(
    n: int, size: int, classes: tuple[str, ...], seed: int, split: int, max_shapes: int = 3, hue_jitter: float = 0.03
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw ``n`` procedural scenes.

    Each scene has a background class and 1..``max_shapes`` ellipses / rotated rectangles (``sun``: disks) of
    other classes, painted in order. Scenes are drawn in chunks of :func:`_chunk_images` images, chunk ``k``
    from the stream ``(seed, split, k)``, so the result depends only on the arguments.

    Returns:
        rgb ``(n, 3, S, S)`` uint8, masks ``(n, S, S)`` uint8 (index into ``classes``), labels ``(n,)`` int64
        (the class covering most pixels; ties go to the lower index).
    """
    C, S = len(classes), size
    chunk = _chunk_images(S)
    rgb_out = np.empty((n, 3, S, S), dtype=np.uint8)
    mask_out = np.empty((n, S, S), dtype=np.uint8)
    grid = np.arange(S, dtype=np.float32) + 0.5
    yy, xx = grid[None, :, None], grid[None, None, :]
    textures = [_TEXTURES[c] for c in classes]
    sun = classes.index("sun") if "sun" in classes else -1
    for k, start in enumerate(range(0, n, chunk)):
        m = min(chunk, n - start)
        rng = np.random.default_rng([seed, split, k])
        bg = rng.integers(C, size=m)
        n_shapes = rng.integers(1, max_shapes + 1, size=m)
        hsv = np.empty((3, m, S, S), dtype=np.float32)
        cls_map = np.broadcast_to(bg[:, None, None], (m, S, S)).copy()
        for c, tex in enumerate(textures):
            idx = np.flatnonzero(bg == c)
            if len(idx):
                hsv[:, idx] = np.broadcast_arrays(*tex(rng, len(idx), S, yy, xx, None, hue_jitter))
        for layer in range(max_shapes):
            active = layer < n_shapes
            cls = (bg + rng.integers(1, C, size=m)) % C  # any class but the background
            cy, cx = rng.uniform(0.1 * S, 0.9 * S, (2, m, 1, 1))
            a, b = rng.uniform(0.12 * S, 0.3 * S, (2, m, 1, 1))
            angle = rng.uniform(0, np.pi, (m, 1, 1))
            rect = rng.random((m, 1, 1)) < 0.5
            is_sun = (cls == sun)[:, None, None]
            b = np.where(is_sun, a, b)
            u, v = _rotated(yy - cy, xx - cx, angle)
            inside = np.where(rect & ~is_sun, (np.abs(u) <= a) & (np.abs(v) <= b), (u / a) ** 2 + (v / b) ** 2 <= 1)
            inside &= active[:, None, None]
            cls_map[inside] = cls[np.nonzero(inside)[0]]
            for c, tex in enumerate(textures):
                idx = np.flatnonzero(active & (cls == c))
                if not len(idx):
                    continue
                geom = {"cy": cy[idx], "cx": cx[idx], "r": a[idx]}
                fields = np.broadcast_arrays(*tex(rng, len(idx), S, yy, xx, geom, hue_jitter))
                sel = inside[idx]
                for ch in range(3):
                    hsv[ch, idx] = np.where(sel, fields[ch], hsv[ch, idx])
        rgb = hsv_to_rgb_channels_first(hsv[0], hsv[1], hsv[2])
        rgb_out[start : start + m] = np.rint(rgb * 255).astype(np.uint8).transpose(1, 0, 2, 3)
        mask_out[start : start + m] = cls_map
    flat = mask_out.reshape(n, -1).astype(np.int64) + C * np.arange(n)[:, None]
    labels = np.bincount(flat.ravel(), minlength=n * C).reshape(n, C).argmax(1)
    return rgb_out, mask_out, labels


@dataclass(frozen=True)
class ShapesConfig:
    """Options of the ``shapes`` dataset.

    Attributes:
        size: image side in pixels.
        n_train: number of training images.
        n_test: number of test images.
        seed: seeds both splits (train and test use different streams; the test set does not depend on n_train).
        classes: class names from :data:`SHAPE_CLASSES` (at least 2; a list or a comma-separated string).
        max_shapes: each image has 1..max_shapes shapes over its background.
        hue_jitter: per-region hue jitter, as a fraction of the hue circle (0.03 = +-10.8 degrees).
    """

    size: int = 32
    n_train: int = 2000
    n_test: int = 500
    seed: int = 0
    classes: tuple[str, ...] = tuple(SHAPE_CLASSES)
    max_shapes: int = 3
    hue_jitter: float = 0.03

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", _tuple_of_names(self.classes, "classes"))
        unknown = [c for c in self.classes if c not in SHAPE_CLASSES]
        if unknown:
            raise ValueError(f"shapes: unknown class(es) {unknown}; known classes are {list(SHAPE_CLASSES)}")
        if len(self.classes) < 2:
            raise ValueError(f"shapes: option 'classes' needs at least 2 classes, got {list(self.classes)}")
        for name, minimum in (("size", 8), ("n_train", 1), ("n_test", 1), ("seed", 0), ("max_shapes", 1)):
            _check_int(self, name, minimum)
        _check_float(self, "hue_jitter", 0.0, 0.5)


@register_dataset("shapes")
class Shapes(Dataset):
    """Procedural scenes of textured regions whose colour is characteristic of their class, with per-pixel masks.

    The grey (BT.601 luma) of each class shows its own structure (gradient, streaks, mortar grid, waves, ...), so a
    network can infer colour from grey. Label = the class covering most pixels (usually the background).
    """

    name: ClassVar[str] = "shapes"
    description: ClassVar[str] = "procedural textured scenes with per-pixel class masks (seeded, any size)"
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = ShapesConfig

    def load(self) -> DatasetSplits:
        cfg: ShapesConfig = self.config
        classes = list(cfg.classes)
        sets = {}
        for split_id, (split, n) in enumerate((("train", cfg.n_train), ("test", cfg.n_test))):
            rgb, masks, labels = generate_shapes(n, cfg.size, cfg.classes, cfg.seed, split_id, cfg.max_shapes,
                                                 cfg.hue_jitter)
            sets[split] = ImageSet(
                rgb=torch.from_numpy(rgb), labels=torch.from_numpy(labels), ids=[f"{split}:{i}" for i in range(n)],
                class_names=classes, masks=torch.from_numpy(masks), mask_class_names=classes,
            )
        info = {
            "version": self.version,
            "params": _params(cfg),
            "generator": "numpy PCG64 streams (seed, split, chunk) with split 0 = train, 1 = test; "
                         f"{_chunk_images(cfg.size)} images per chunk; numpy {np.__version__}",
            "split_policy": "train and test are drawn from independent streams of the same generator",
            "classes": {c: SHAPE_CLASSES[c] for c in classes},
            "label": "the mask class covering most pixels (ties: lower index); masks index mask_class_names",
            "sha256": {split: imageset_sha256(s) for split, s in sets.items()},
        }
        return DatasetSplits(name=self.name, train=sets["train"], test=sets["test"], info=info)
