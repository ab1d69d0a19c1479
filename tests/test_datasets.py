"""Tests of the built-in offline datasets ``photos`` and ``shapes`` (colorbench.datasets.builtin)."""

import json
import re
import socket

import numpy as np
import pytest
import torch
from scipy import ndimage

from colorbench.core.grey import Grey
from colorbench.core.color import rgb_to_grey, rgb_to_lab
from colorbench.datasets import DATASETS, Batch, DatasetSplits, ImageSet
from colorbench.datasets import builtin
from colorbench.datasets.builtin import (
    DEFAULT_PHOTOS,
    PHOTO_SOURCES,
    SHAPE_CLASSES,
    PhotoSource,
    hsv_to_rgb_channels_first,
    imageset_sha256,
)


def load(name, **options) -> DatasetSplits:
    return DATASETS.get(name)(**options).load()


@pytest.fixture(scope="module")
def photos() -> DatasetSplits:
    return load("photos")


@pytest.fixture(scope="module")
def shapes() -> DatasetSplits:
    return load("shapes", n_train=300, n_test=150)


def photo_coords(images: ImageSet):
    """(photo, y, x) per patch, parsed from the ids."""
    out = []
    for i in images.ids:
        photo, y, x = i.split(":")
        out.append((photo, int(y), int(x)))
    return out


def check_disjoint(data: DatasetSplits) -> None:
    """No pixel in both splits, and every train pixel at least 2*margin+1 (Chebyshev) from every test pixel."""
    size = data.train.image_size[0]
    gap = 2 * data.info["split"]["margin"]
    for photo in data.train.class_names:
        h, w = data.info["sources"][photo]["height"], data.info["sources"][photo]["width"]
        masks = {}
        for split in ("train", "test"):
            m = np.zeros((h, w), dtype=bool)
            for p, y, x in photo_coords(getattr(data, split)):
                if p == photo:
                    m[y : y + size, x : x + size] = True
            masks[split] = m
        assert masks["train"].any() and masks["test"].any(), photo
        assert not (masks["train"] & masks["test"]).any(), f"{photo}: a pixel is in both splits"
        if gap:
            near_test = ndimage.binary_dilation(masks["test"], structure=np.ones((3, 3), bool), iterations=gap)
            assert not (near_test & masks["train"]).any(), f"{photo}: a train patch is within {gap} px of a test patch"


# ----------------------------------------------------------------------------------------------------------- photos


def test_photos_is_registered_with_defaults():
    assert "photos" in DATASETS and "shapes" in DATASETS
    opts = DATASETS.get("photos").options()
    assert opts["size"] == 32 and tuple(opts["photos"]) == DEFAULT_PHOTOS


def test_photos_default_counts_shapes_and_labels(photos):
    cfg = builtin.PhotosConfig()
    assert photos.train.class_names == list(DEFAULT_PHOTOS) and photos.info["skipped_photos"] == {}
    assert len(photos.train) == cfg.train_per_photo * len(DEFAULT_PHOTOS)
    assert len(photos.test) == cfg.test_per_photo * len(DEFAULT_PHOTOS)
    for s in (photos.train, photos.test):
        assert s.rgb.dtype == torch.uint8 and s.rgb.shape[1:] == (3, 32, 32)
        assert s.labels.dtype == torch.int64 and s.masks is None
        assert int(s.labels.min()) >= 0 and int(s.labels.max()) < len(s.class_names)
        assert s.class_names == photos.train.class_names
        for label, i in zip(s.labels.tolist(), s.ids):
            assert re.fullmatch(r"[a-z_]+:\d+:\d+", i) and i.split(":")[0] == s.class_names[label]
    assert len(set(photos.train.ids)) == len(photos.train)  # drawn without replacement


def test_photos_patches_match_their_source_coordinates(photos):
    # the disjointness test reads coordinates from the ids, so check the ids say where the pixels came from
    for s in (photos.train, photos.test):
        for k, (photo, y, x) in enumerate(photo_coords(s)):
            src = builtin._decode_photo(photo)[0]
            np.testing.assert_array_equal(s.rgb[k].permute(1, 2, 0).numpy(), src[y : y + 32, x : x + 32])


def test_photos_train_test_disjoint_in_pixels(photos):
    check_disjoint(photos)


def test_photos_loads_offline_without_touching_the_network(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("photos tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    builtin._decode_photo.cache_clear()  # read and decode the files again, under the guard
    data = load("photos", photos="astronaut,china,grace_hopper", train_per_photo=8, test_per_photo=4)
    assert data.train.class_names == ["astronaut", "china", "grace_hopper"] and len(data.train) == 24
    assert {s["distribution"] for s in data.info["sources"].values()} == {"scikit-image", "scikit-learn", "matplotlib"}


def test_photos_all_sources_are_rgb_photos():
    for name in PHOTO_SOURCES:
        rgb, file_sha, path, conversion = builtin._decode_photo(name)
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, name
        assert len(file_sha) == 64 and path.endswith(PHOTO_SOURCES[name].path)
        # rocket.jpg carries an Adobe RGB (1998) profile (converted to sRGB); the others are sRGB or untagged
        if name == "rocket":
            assert conversion.startswith("converted to sRGB") and "Adobe RGB (1998)" in conversion
            stored = builtin._decode_photo(name, "ignore")
            assert stored[3].startswith("embedded non-sRGB ICC profile ignored")
            assert np.abs(stored[0].astype(int) - rgb).max() > 10  # Adobe RGB's green is not sRGB's
        else:
            assert conversion is None, (name, conversion)


def test_photos_deterministic_and_seeded(photos):
    again = load("photos")
    assert again.info["sha256"] == photos.info["sha256"]
    assert torch.equal(again.train.rgb, photos.train.rgb) and again.test.ids == photos.test.ids
    assert photos.info["sha256"] == {"train": imageset_sha256(photos.train), "test": imageset_sha256(photos.test)}
    other = load("photos", seed=1)
    assert other.info["sha256"]["train"] != photos.info["sha256"]["train"]
    assert other.info["sha256"]["test"] != photos.info["sha256"]["test"]


def test_photos_other_photos_do_not_change_a_photos_patches(photos):
    # one random stream per (seed, photo): dropping photos from the list leaves the others' patches unchanged
    sub = load("photos", photos=["coffee", "astronaut"])
    assert sub.train.class_names == ["coffee", "astronaut"]
    for split in ("train", "test"):
        full, part = getattr(photos, split), getattr(sub, split)
        for photo in ("coffee", "astronaut"):
            a = [k for k, i in enumerate(full.ids) if i.startswith(photo + ":")]
            b = [k for k, i in enumerate(part.ids) if i.startswith(photo + ":")]
            assert [full.ids[k] for k in a] == [part.ids[k] for k in b]
            assert torch.equal(full.rgb[a], part.rgb[b])


def test_photos_near_flat_patches_are_dropped(photos):
    for s in (photos.train, photos.test):
        gray = rgb_to_grey(s.rgb.double() / 255.0, Grey.BT601)[:, 0] * 255.0  # BT.601, 0-255
        assert float(gray.flatten(1).std(1, unbiased=False).min()) >= builtin.PhotosConfig().min_gray_std
    assert photos.info["counts_per_photo"]["retina"]["train_flat_dropped"] > 0  # retina's black surround


@pytest.mark.parametrize("size", [64, 256])
def test_photos_larger_sizes(size):
    data = load("photos", size=size)
    assert data.train.rgb.shape[1:] == (3, size, size) and data.test.rgb.shape[1:] == (3, size, size)
    assert len(data.train) > 0 and len(data.test) > 0
    for s in (data.train, data.test):
        assert int(s.labels.max()) < len(s.class_names)
    kept, skipped = set(data.train.class_names), set(data.info["skipped_photos"])
    assert kept | skipped == set(DEFAULT_PHOTOS) and not kept & skipped
    if size == 256:  # chelsea is 300x451: fewer than two 256-px blocks
        assert "chelsea" in skipped and "fewer than 2 blocks" in data.info["skipped_photos"]["chelsea"]
    check_disjoint(data)


def test_photos_bad_options():
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['sizes'\]"):
        DATASETS.get("photos")(sizes=64)
    with pytest.raises(ValueError, match="unknown photo.*'lena'"):
        DATASETS.get("photos")(photos=["astronaut", "lena"])
    with pytest.raises(TypeError, match="'size' must be an int"):
        DATASETS.get("photos")(size="64")
    with pytest.raises(ValueError, match="test_fraction"):
        DATASETS.get("photos")(test_fraction=1.0)
    with pytest.raises(ValueError, match="no photo can give 2000x2000 patches"):
        load("photos", size=2000)


def test_photos_missing_source_is_named(monkeypatch):
    monkeypatch.setitem(PHOTO_SOURCES, "nowhere", PhotoSource("nowhere", "scikit-image", "skimage", "data/nowhere.png"))
    with pytest.raises(FileNotFoundError, match="source photo 'nowhere' is missing"):
        load("photos", photos=["astronaut", "nowhere"])
    monkeypatch.setitem(PHOTO_SOURCES, "ghost", PhotoSource("ghost", "ghost-dist", "ghost_pkg_not_installed", "a.png"))
    with pytest.raises(FileNotFoundError, match="'ghost' needs the package 'ghost_pkg_not_installed'"):
        load("photos", photos=["ghost"])
    builtin._decode_photo.cache_clear()


# ----------------------------------------------------------------------------------------------------------- shapes


def test_shapes_counts_sizes_and_masks():
    data = load("shapes", size=48, n_train=20, n_test=7, classes="sky,grass,brick")
    for s, n in ((data.train, 20), (data.test, 7)):
        assert s.rgb.dtype == torch.uint8 and s.rgb.shape == (n, 3, 48, 48)
        assert s.masks.dtype == torch.uint8 and s.masks.shape == (n, 48, 48)
        assert s.class_names == s.mask_class_names == ["sky", "grass", "brick"]
        assert int(s.masks.max()) < 3 and int(s.labels.max()) < 3


def test_shapes_label_is_majority_mask_class(shapes):
    for s in (shapes.train, shapes.test):
        n_classes = len(s.mask_class_names)
        assert set(s.masks.unique().tolist()) == set(range(n_classes))
        counts = torch.nn.functional.one_hot(s.masks.long().flatten(1), n_classes).sum(1)
        assert torch.equal(s.labels, counts.argmax(1))  # argmax: first maximum on ties, as documented
        assert (s.masks.flatten(1).long() != s.labels[:, None]).any(1).all()  # every image has a shape on it


def test_shapes_deterministic_and_seeded(shapes):
    again = load("shapes", n_train=300, n_test=150)
    assert again.info["sha256"] == shapes.info["sha256"] and torch.equal(again.train.masks, shapes.train.masks)
    assert shapes.info["sha256"]["test"] == imageset_sha256(shapes.test)
    other = load("shapes", n_train=300, n_test=150, seed=1)
    assert other.info["sha256"]["train"] != shapes.info["sha256"]["train"]
    # the test split has its own stream: it does not depend on n_train
    assert load("shapes", n_train=10, n_test=150).info["sha256"]["test"] == shapes.info["sha256"]["test"]
    assert load("shapes", n_train=300, n_test=150, hue_jitter=0.0).info["sha256"] != shapes.info["sha256"]


def test_shapes_chunks_are_seeded_streams(monkeypatch):
    monkeypatch.setattr(builtin, "_chunk_images", lambda size: 4)  # several chunks on a small set
    a = load("shapes", n_train=10, n_test=3)
    b = load("shapes", n_train=10, n_test=3)
    assert a.info["sha256"] == b.info["sha256"] and a.train.rgb.shape == (10, 3, 32, 32)
    assert not torch.equal(a.train.rgb[:4], a.train.rgb[4:8])


def _region_stats(s: ImageSet, min_pixels: int = 60):
    """Per (image, class) region: mean Lab ab, and grey features (mean, std, mean |d/dx|, mean |d/dy|)."""
    rgb = s.rgb.float() / 255.0
    ab = rgb_to_lab(rgb)[:, 1:]
    g = rgb_to_grey(rgb, Grey.BT601)[:, 0] * 255.0
    m = s.masks.long()
    dx, dy = (g[:, :, 1:] - g[:, :, :-1]).abs(), (g[:, 1:] - g[:, :-1]).abs()
    abs_, feats, ys = [], [], []
    for c in range(len(s.mask_class_names)):
        sel = (m == c).float()
        n = sel.sum((1, 2))
        keep = n >= min_pixels
        selx = sel[:, :, 1:] * sel[:, :, :-1]
        sely = sel[:, 1:] * sel[:, :-1]
        mean = (g * sel).sum((1, 2)) / n.clamp(min=1)
        std = (((g - mean[:, None, None]) ** 2 * sel).sum((1, 2)) / n.clamp(min=1)).sqrt()
        fx = (dx * selx).sum((1, 2)) / selx.sum((1, 2)).clamp(min=1)
        fy = (dy * sely).sum((1, 2)) / sely.sum((1, 2)).clamp(min=1)
        abs_.append(((ab * sel[:, None]).sum((2, 3)) / n.clamp(min=1)[:, None])[keep])
        feats.append(torch.stack([mean, std, fx, fy], 1)[keep])
        ys.append(torch.full((int(keep.sum()),), c))
    return torch.cat(abs_).numpy(), torch.cat(feats).numpy(), torch.cat(ys).numpy()


@pytest.fixture(scope="module")
def shape_regions(shapes):
    return {"train": _region_stats(shapes.train), "test": _region_stats(shapes.test)}


def test_shapes_colour_is_characteristic_of_the_class(shape_regions):
    ab_tr, _, y_tr = shape_regions["train"]
    ab_te, _, y_te = shape_regions["test"]
    centroids = np.stack([ab_tr[y_tr == c].mean(0) for c in range(len(SHAPE_CLASSES))])
    pred = ((ab_te[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
    # Measured 0.925 / 0.948 / 0.937 for seeds 0 / 1 / 2 (300 / 150 images) when this test was written.
    assert (pred == y_te).mean() >= 0.85
    stone = list(SHAPE_CLASSES).index("stone")
    assert np.abs(centroids[stone]).max() < 5  # the achromatic class has (almost) no colour; measured 2.0
    others = np.delete(centroids, stone, axis=0)
    assert np.hypot(*others.T).min() > 15  # chromatic classes have chroma; measured min 22.3 (water), seeds 0-2


def test_shapes_grey_structure_tells_the_class(shape_regions):
    # colour must be inferable from grey: grey texture features alone identify a region's class
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

    _, f_tr, y_tr = shape_regions["train"]
    _, f_te, y_te = shape_regions["test"]
    acc = LinearDiscriminantAnalysis().fit(f_tr, y_tr).score(f_te, y_te)
    # Measured 0.945 / 0.976 / 0.967 for seeds 0 / 1 / 2 (300 / 150 images) when written; chance is 1/8.
    assert acc >= 0.85


def test_shapes_hue_jitter_varies_colour_within_class():
    still = load("shapes", n_train=80, n_test=1, hue_jitter=0.0)
    jittered = load("shapes", n_train=80, n_test=1, hue_jitter=0.08)
    sky = list(SHAPE_CLASSES).index("sky")
    spread = []
    for data in (still, jittered):
        ab, _, y = _region_stats(data.train)
        spread.append(np.arctan2(ab[y == sky, 1], ab[y == sky, 0]).std())
    assert spread[1] > 2 * spread[0]  # measured 0.03 -> 0.61 rad (seed 0)


def test_shapes_bad_options():
    with pytest.raises(ValueError, match="unknown class.*'lava'"):
        DATASETS.get("shapes")(classes=["sky", "lava"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        DATASETS.get("shapes")(classes=["sky"])
    with pytest.raises(ValueError, match="'n_train' must be >= 1"):
        DATASETS.get("shapes")(n_train=0)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['n_classes'\]"):
        DATASETS.get("shapes")(n_classes=3)


def test_hsv_to_rgb_matches_matplotlib():
    from matplotlib.colors import hsv_to_rgb

    hsv = np.random.default_rng(0).random((3, 64, 64)).astype(np.float32)
    ours = hsv_to_rgb_channels_first(hsv[0] + 2.0, hsv[1], hsv[2])  # hue wraps
    ref = hsv_to_rgb(hsv.transpose(1, 2, 0).astype(np.float64)).transpose(2, 0, 1)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


# ----------------------------------------------------------------------------------------------------- sample format


@pytest.mark.parametrize("name", ["photos", "shapes"])
def test_sample_format(name, photos, shapes):
    data = {"photos": photos, "shapes": shapes}[name]
    s = data.test
    item = s[3]
    assert item["rgb"].dtype == torch.uint8 and item["rgb"].shape == (3, *s.image_size)
    assert item["gray"].shape == (1, *s.image_size) and item["gray"].dtype == torch.float32
    assert torch.allclose(item["gray"], rgb_to_grey(s.rgb[3].float() / 255.0, Grey.BT601))
    assert item["label"] == int(s.labels[3]) and item["id"] == s.ids[3]
    assert (item["mask"] is None) == (name == "photos")

    batch = s.make_batch(torch.tensor([0, 5, 2]), grey_convention=Grey.BT601)
    assert isinstance(batch, Batch) and len(batch) == 3 and batch.ids == [s.ids[0], s.ids[5], s.ids[2]]
    assert batch.rgb.shape == (3, 3, *s.image_size) and 0.0 <= float(batch.rgb.min()) <= float(batch.rgb.max()) <= 1.0
    assert batch.gray.shape == (3, 1, *s.image_size)
    if name == "shapes":
        assert batch.masks.dtype == torch.int64 and torch.equal(batch.masks[1], s.masks[5].long())

    sizes = [len(b) for b in s.batches(64, grey_convention=Grey.BT601)]
    assert sum(sizes) == len(s) and max(sizes) == 64
    seen = [i for b in s.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=True, grey_convention=Grey.BT601)
            for i in b.ids]
    assert len(seen) == len(s) // 64 * 64 and len(set(seen)) == len(seen)


@pytest.mark.parametrize("name", ["photos", "shapes"])
def test_describe_is_json_and_identifies_the_data(name, photos, shapes):
    data = {"photos": photos, "shapes": shapes}[name]
    d = json.loads(json.dumps(data.describe()))
    assert d["name"] == name and d["n_train"] == len(data.train) and d["version"] == {"photos": "2", "shapes": "1"}[name]
    assert set(d["sha256"]) == {"train", "test"} and all(len(h) == 64 for h in d["sha256"].values())
    assert d["split_policy"] and d["label"]
    # the recorded params rebuild the same data
    assert load(name, **d["params"]).info["sha256"] == d["sha256"]


def test_photos_are_kept_decoded_and_a_cached_load_equals_a_decoded_one(tmp_path, monkeypatch):
    """The second load of the same photos and options reads the decoded-data cache (no decoding); its splits,
    ids and info are those of the decoded load. Other options, or another version of a package that ships the
    photos, are other entries; without a writable cache every load decodes."""
    from colorbench.datasets import cache

    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path))
    opts = dict(photos="astronaut,china", train_per_photo=8, test_per_photo=4)
    decoded = load("photos", **opts)
    assert [p.name.startswith("photos-") for p in tmp_path.iterdir()] == [True]
    real_decode, calls = builtin.Photos._decode, []
    monkeypatch.setattr(builtin.Photos, "_decode", lambda self, cfg: calls.append(cfg) or real_decode(self, cfg))
    cached = load("photos", **opts)
    assert calls == []  # read from the cache
    for split in ("train", "test"):
        a, b = getattr(decoded, split), getattr(cached, split)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.labels, b.labels) and a.rgb.dtype == b.rgb.dtype
        assert a.ids == b.ids and a.class_names == b.class_names and b.masks is None
    assert cached.info == decoded.info and cached.describe() == decoded.describe()
    assert json.dumps(cached.describe(), sort_keys=True) == json.dumps(decoded.describe(), sort_keys=True)
    load("photos", **{**opts, "train_per_photo": 6})  # other options: decoded, and a second entry
    assert len(calls) == 1 and len(list(tmp_path.iterdir())) == 2
    real_version = builtin._dist_version
    monkeypatch.setattr(builtin, "_dist_version", lambda d: "99.0" if d == "scikit-image" else real_version(d))
    load("photos", **opts)  # the package that ships astronaut.png changed version: decoded again
    assert len(calls) == 2 and len(list(tmp_path.iterdir())) == 3
    monkeypatch.setattr(cache, "builtin_cache_dir", lambda: None)  # nowhere to write: decoded every time
    load("photos", **opts), load("photos", **opts)
    assert len(calls) == 4 and len(list(tmp_path.iterdir())) == 3
