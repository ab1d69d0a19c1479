"""Tests of the standard dataset loaders (colorbench.datasets.standard) against tiny official-format fixtures.

The fixtures (colorbench.datasets.fixtures) are written in the exact official layouts and encodings, but cannot
match the official md5 checksums that torchvision verifies for CIFAR-10, Flowers102, CelebA and Places365. The
fixture ``bypass_md5`` therefore replaces torchvision's ``check_integrity`` in those modules by an
existence-only check; nothing else is bypassed, and ``test_official_md5_is_checked`` shows the real check
rejecting the fixture files by name.
"""

import json
import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat
from torchvision import transforms as T

from colorbench.datasets import DATASETS, fixtures as fx
from colorbench.datasets.imaging import RESIZE_POLICIES, CorruptImageError
from colorbench.datasets.standard import DATA_ROOT_ENV, VOC_CLASSES

STANDARD = ["cifar10", "ucmerced", "cyclegan-folder", "imagenet-val", "voc-seg", "flowers102", "celeba",
            "places365", "image-folder"]


def _exists_only(fpath, md5=None):
    return os.path.isfile(fpath)


@pytest.fixture
def bypass_md5(monkeypatch):
    for module in ("cifar", "flowers102", "celeba", "places365"):
        monkeypatch.setattr(f"torchvision.datasets.{module}.check_integrity", _exists_only)


@pytest.fixture(autouse=True)
def _no_env(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_ROOT_ENV, raising=False)
    monkeypatch.delenv("COLORBENCH_CACHE_DIR", raising=False)


def load(name, root, **options):
    return DATASETS.get(name)(data_root=str(root), **options).load()


def test_all_registered_with_documented_options():
    for name in STANDARD:
        cls = DATASETS.get(name)
        opts = cls.options()
        assert {"data_root", "size", "resize", "download", "skip_corrupt", "n_train", "subset_seed"} <= set(opts)
        assert opts["download"] is False  # never downloads unless asked
        assert opts["resize"] in RESIZE_POLICIES


# --------------------------------------------------------------------------------------------------------------
# each loader reads its official format correctly
# --------------------------------------------------------------------------------------------------------------


def test_cifar10_pixels_labels_and_split(tmp_path, bypass_md5):
    base = fx.write_cifar10(tmp_path, n_train=23, n_test=7)
    data = load("cifar10", tmp_path)
    batches = [pickle.load(open(base / f"data_batch_{i}", "rb"), encoding="latin1") for i in range(1, 6)]
    want = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32)
    assert torch.equal(data.train.rgb, torch.from_numpy(want))
    assert data.train.labels.tolist() == sum((b["labels"] for b in batches), [])
    test = pickle.load(open(base / "test_batch", "rb"), encoding="latin1")
    assert torch.equal(data.test.rgb, torch.from_numpy(test["data"].reshape(-1, 3, 32, 32)))
    assert data.train.class_names == fx.CIFAR10_CLASSES
    info = data.describe()
    assert info["source"]["files_md5"]["data_batch_1"] == "c99cafc152244af753f735de768cd75f"  # torchvision's list
    assert info["resize_policy"]["name"] == "none" and info["counts"] == {"train": 23, "test": 7}
    assert info["sha256"]["train"] == data.train.sha256()


def test_ucmerced_seeded_stratified_split(tmp_path):
    fx.write_ucmerced(tmp_path, classes=("agricultural", "beach"), per_class=5, size=(64, 64))
    a = load("ucmerced", tmp_path, size=64)
    assert (len(a.train), len(a.test)) == (8, 2)  # 80/20 per class
    assert sorted(a.train.ids + a.test.ids) == sorted(
        f"UCMerced_LandUse/Images/{c}/{c}{i:02d}.tif" for c in ("agricultural", "beach") for i in range(5))
    assert torch.bincount(a.test.labels).tolist() == [1, 1]
    assert a.info["split"]["seed"] == 0 and a.info["split"]["test_fraction"] == 0.2
    b = load("ucmerced", tmp_path, size=64, split_seed=1)
    assert set(a.test.ids) != set(b.test.ids)
    # the tif decodes to the same pixels PIL reads
    ref = np.asarray(Image.open(tmp_path / a.train.ids[0]).convert("RGB")).transpose(2, 0, 1)
    assert np.array_equal(a.train.rgb[0].numpy(), ref)


def test_cyclegan_sides(tmp_path):
    fx.write_cyclegan(tmp_path, size=48)
    a = load("cyclegan-folder", tmp_path, size=48)
    assert (len(a.train), len(a.test)) == (4, 2) and a.train.ids[0] == "trainA/00000.jpg"
    both = load("cyclegan-folder", tmp_path, size=48, side="both")
    assert (len(both.train), len(both.test)) == (9, 5)
    assert both.train.labels.tolist() == [0] * 4 + [1] * 5 and both.info["label"].startswith("domain")


def test_imagenet_val_protocol(tmp_path):
    fx.write_imagenet(tmp_path, val_per_class=5, train_per_class=3)
    data = load("imagenet-val", tmp_path, size=32, train_per_class=4, test_per_class=2)
    assert torch.bincount(data.train.labels).tolist() == [4, 4] and torch.bincount(data.test.labels).tolist() == [2, 2]
    assert all(i.startswith("val/") for i in data.train.ids) and all(i.startswith("train/") for i in data.test.ids)
    assert data.train.class_names == ["class n01440764", "class n01443537"]  # from meta.bin
    held = load("imagenet-val", tmp_path, size=32, train_per_class=3, test_per_class=2, test_from="val")
    assert not set(held.train.ids) & set(held.test.ids) and len(held.test) == 4
    with pytest.raises(ValueError, match=r"n01440764 has 5 images, the protocol needs 7"):
        load("imagenet-val", tmp_path, size=32, train_per_class=5, test_per_class=2, test_from="val")


def test_voc_masks_nearest_and_labels(tmp_path):
    voc = fx.write_voc_seg(tmp_path, n_train=3, n_val=2)
    data = load("voc-seg", tmp_path, size=64)
    assert data.train.masks.shape == (3, 64, 64) and data.train.mask_class_names == VOC_CLASSES
    assert len(data.test) == 2
    for i, name in enumerate(data.train.ids):
        png = Image.open(voc / "SegmentationClass" / f"{name}.png")
        assert png.mode == "P"
        ref = np.asarray(T.Resize((64, 64), interpolation=T.InterpolationMode.NEAREST)(png))
        assert np.array_equal(data.train.masks[i].numpy(), ref)
        values = set(np.unique(np.asarray(png)).tolist())
        assert set(data.train.masks[i].unique().tolist()) <= values  # nearest: no invented class values
        obj = max(values - {0, 255})
        assert int(data.train.labels[i]) == obj  # dominant object class


def test_flowers102_labels_follow_mat_files(tmp_path, bypass_md5):
    base = fx.write_flowers102(tmp_path)
    data = load("flowers102", tmp_path, size=32)
    labels = loadmat(base / "imagelabels.mat", squeeze_me=True)["labels"]
    setid = loadmat(base / "setid.mat", squeeze_me=True)
    assert data.train.ids == [f"image_{i:05d}.jpg" for i in setid["trnid"]]
    assert data.train.labels.tolist() == [int(labels[i - 1]) - 1 for i in setid["trnid"]]
    assert data.test.ids == [f"image_{i:05d}.jpg" for i in setid["tstid"]]
    both = load("flowers102", tmp_path, size=32, train_split="train+val")
    assert len(both.train) == len(setid["trnid"]) + len(setid["valid"])


def test_celeba_partition_and_attribute(tmp_path, bypass_md5):
    base = fx.write_celeba(tmp_path, partition=(0, 0, 0, 1, 2, 2))
    data = load("celeba", tmp_path, size=32, label_attr="Male")
    assert data.train.ids == ["000001.jpg", "000002.jpg", "000003.jpg"] and data.test.ids == ["000005.jpg", "000006.jpg"]
    rows = (base / "list_attr_celeba.txt").read_text().splitlines()[2:]
    male = fx.CELEBA_ATTRS.index("Male")
    assert data.train.labels.tolist() == [int(r.split()[1 + male] == "1") for r in rows[:3]]
    with pytest.raises(ValueError, match="unknown attribute 'Mal'"):
        load("celeba", tmp_path, size=32, label_attr="Mal")


def test_places365_lists_and_subset(tmp_path, bypass_md5):
    fx.write_places365(tmp_path, train_per_class=3, n_val=4)
    data = load("places365", tmp_path, size=32)
    assert data.train.class_names == ["/a/airfield", "/b/beach", "/c/canyon"]
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2] and len(data.test) == 4
    sub = load("places365", tmp_path, size=32, n_train=4, subset_seed=3)
    assert len(sub.train) == 4 and set(sub.train.ids) <= set(data.train.ids)
    assert sub.info["subset"] == {"n_train": 4, "n_test": None, "seed": 3, "rule": sub.info["subset"]["rule"]}
    again = load("places365", tmp_path, size=32, n_train=4, subset_seed=3, cache=False)
    assert again.train.ids == sub.train.ids and torch.equal(again.train.rgb, sub.train.rgb)


def test_image_folder_layouts(tmp_path):
    fx.write_image_folder(tmp_path / "split", per_class=3, split=True)
    a = load("image-folder", tmp_path, path="split", size=24)
    assert (len(a.train), len(a.test)) == (6, 6) and a.train.class_names == ["cats", "dogs"]
    fx.write_image_folder(tmp_path / "flat", per_class=5)
    b = load("image-folder", tmp_path, path="flat", size=24)
    assert (len(b.train), len(b.test)) == (8, 2)


# --------------------------------------------------------------------------------------------------------------
# resize policies
# --------------------------------------------------------------------------------------------------------------


def test_resize_policies_match_torchvision_transforms(tmp_path):
    fx.write_image_folder(tmp_path, classes=("x",), per_class=2, size=(70, 50), ext=".png")
    src = Image.open(tmp_path / "x" / "00000.png").convert("RGB")
    cases = {
        "resize-shorter-center-crop": T.Compose([T.Resize(32, T.InterpolationMode.BICUBIC), T.CenterCrop(32)]),
        "resize": T.Resize((32, 32), T.InterpolationMode.BICUBIC),
        "center-crop": T.CenterCrop(32),
    }
    for policy, tf in cases.items():
        data = load("image-folder", tmp_path, size=32, resize=policy, test_fraction=0.5)
        ids, rgb = data.train.ids + data.test.ids, torch.cat([data.train.rgb, data.test.rgb])
        got = rgb[ids.index("x/00000.png")]
        assert np.array_equal(got.numpy().transpose(1, 2, 0), np.asarray(tf(src))), policy
        assert data.info["resize_policy"]["name"] == policy
    with pytest.raises(CorruptImageError, match=r"x/0000[01].png: is 70x50 .* policy 'none' needs 32x32"):
        load("image-folder", tmp_path, size=32, resize="none", test_fraction=0.5)
    with pytest.raises(CorruptImageError, match="smaller than the 64x64 crop"):
        load("image-folder", tmp_path, size=64, resize="center-crop", test_fraction=0.5)
    with pytest.raises(ValueError, match="unknown resize policy 'squash'"):
        DATASETS.get("image-folder")(data_root=str(tmp_path), resize="squash")


# --------------------------------------------------------------------------------------------------------------
# cache
# --------------------------------------------------------------------------------------------------------------


def test_cache_hit_identical_and_invalidated(tmp_path, monkeypatch):
    fx.write_image_folder(tmp_path / "imgs", per_class=4)
    first = load("image-folder", tmp_path, path="imgs", size=16)
    assert first.info["cache"]["hit"] is False
    second = load("image-folder", tmp_path, path="imgs", size=16)
    assert second.info["cache"]["hit"] is True and second.info["cache"]["key"] == first.info["cache"]["key"]
    assert torch.equal(first.train.rgb, second.train.rgb) and second.train.ids == first.train.ids
    assert second.info["sha256"] == first.info["sha256"] and second.train.sha256() == first.info["sha256"]["train"]
    assert str(first.info["cache"]["path"]).startswith(str(tmp_path / ".colorbench-cache"))
    # another size is another entry
    assert load("image-folder", tmp_path, path="imgs", size=8).info["cache"]["hit"] is False
    # a replaced source file invalidates the entry
    target = tmp_path / "imgs" / "cats" / "00000.jpg"
    Image.fromarray(np.zeros((50, 50, 3), np.uint8)).save(target)
    os.utime(target, ns=(1, 1))
    third = load("image-folder", tmp_path, path="imgs", size=16)
    assert third.info["cache"]["hit"] is False and third.info["sha256"] != first.info["sha256"]
    # COLORBENCH_CACHE_DIR moves the cache
    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path / "elsewhere"))
    moved = load("image-folder", tmp_path, path="imgs", size=16)
    assert moved.info["cache"]["path"].startswith(str(tmp_path / "elsewhere")) and not moved.info["cache"]["hit"]
    # the memory-mapped copy-on-write arrays can be written without touching the cache file
    again = load("image-folder", tmp_path, path="imgs", size=16)
    again.train.rgb[0].zero_()
    assert torch.equal(load("image-folder", tmp_path, path="imgs", size=16).train.rgb, moved.train.rgb)


# --------------------------------------------------------------------------------------------------------------
# errors: missing files, wrong layouts, corrupt files
# --------------------------------------------------------------------------------------------------------------


def test_data_root_from_env_or_clear_error(tmp_path, monkeypatch):
    fx.write_image_folder(tmp_path, per_class=3)
    with pytest.raises(ValueError, match=f"--data-root DIR .* {DATA_ROOT_ENV}"):
        DATASETS.get("image-folder")().load()
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert DATASETS.get("image-folder")(size=16).load().info["data_root"] == str(tmp_path)


def test_missing_files_name_what_to_put_where(tmp_path, bypass_md5):
    base = fx.write_cifar10(tmp_path, n_train=5, n_test=2)
    (base / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError) as err:
        load("cifar10", tmp_path)
    msg = str(err.value)
    assert str(base / "batches.meta") in msg and "cifar-10-python.tar.gz" in msg
    assert "c58f30108f718f92721af3b95e74349a" in msg and "download=true" in msg
    with pytest.raises(FileNotFoundError, match="seems to be the cifar-10-batches-py folder itself"):
        load("cifar10", base)

    voc = fx.write_voc_seg(tmp_path / "v", n_train=2, n_val=1)
    name = (voc / "ImageSets/Segmentation/train.txt").read_text().split()[0]
    (voc / "SegmentationClass" / f"{name}.png").unlink()
    with pytest.raises(FileNotFoundError, match=f"{name}.png(.|\n)*listed in .*train.txt"):
        load("voc-seg", tmp_path / "v")

    fl = fx.write_flowers102(tmp_path / "f")
    (fl / "setid.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"setid.mat(.|\n)*a5357ecc9cb78c4bef273ce3793fc85c"):
        load("flowers102", tmp_path / "f")

    with pytest.raises(FileNotFoundError, match=r"UCMerced_LandUse/Images(.|\n)*UCMerced_LandUse.zip"):
        load("ucmerced", tmp_path / "f")


def test_official_md5_is_checked(tmp_path):
    """Without the bypass, torchvision's md5 check rejects the fixture and the error names the file."""
    base = fx.write_cifar10(tmp_path, n_train=5, n_test=2)
    with pytest.raises(RuntimeError, match=rf"{base / 'data_batch_1'}: md5 \w+, expected the official "
                                           r"c99cafc152244af753f735de768cd75f"):
        load("cifar10", tmp_path, cache=False)


def test_corrupt_files_error_or_skip(tmp_path):
    fx.write_image_folder(tmp_path, per_class=4, split=True)
    bad = fx.truncate_file(tmp_path / "train" / "dogs" / "00002.jpg", 0.3)
    (tmp_path / "train" / "cats" / "00001.jpg").write_bytes(b"not an image")
    with pytest.raises(CorruptImageError, match=r"train/cats/00001.jpg.*--skip-corrupt"):
        load("image-folder", tmp_path, size=16)
    data = load("image-folder", tmp_path, size=16, skip_corrupt=True)
    assert len(data.train) == 6 and len(data.test) == 8
    skipped = data.info["skipped_corrupt"]["train"]
    assert skipped["count"] == 2 and any(str(bad) in f for f in skipped["files"])
    assert "train/dogs/00002.jpg" not in data.train.ids
    assert data.train.labels.tolist() == [0, 0, 0, 1, 1, 1]


def test_voc_rejects_colour_coded_masks(tmp_path):
    voc = fx.write_voc_seg(tmp_path, n_train=2, n_val=1)
    name = (voc / "ImageSets/Segmentation/val.txt").read_text().split()[0]
    png = voc / "SegmentationClass" / f"{name}.png"
    Image.open(png).convert("RGB").save(png)
    with pytest.raises(CorruptImageError, match=rf"{name}.png.*palette \(P\)"):
        load("voc-seg", tmp_path, size=32)


# --------------------------------------------------------------------------------------------------------------
# end to end
# --------------------------------------------------------------------------------------------------------------


def test_cli_run_cifar10_end_to_end(tmp_path, bypass_md5, capsys):
    from colorbench.commands.cli import main

    fx.write_cifar10(tmp_path / "data", n_train=40, n_test=10)
    out = tmp_path / "run"
    rc = main(["run", "--dataset", "cifar10", "--data-root", str(tmp_path / "data"), "--methods", "gray",
               "--metrics", "psnr,ssim", "--out", str(out), "--no-progress"])
    assert rc == 0
    run = json.loads((out / "run.json").read_text())
    assert run["dataset"]["name"] == "cifar10" and run["dataset"]["counts"] == {"train": 40, "test": 10}
    assert run["dataset"]["source"]["archive_md5"] == "c58f30108f718f92721af3b95e74349a"
    assert run["spec"]["dataset_options"]["data_root"] == str(tmp_path / "data")
    record = json.loads((out / "cells" / "cifar10__gray__quick__s0" / "record.json").read_text())
    assert record["dataset"]["sha256"] == run["dataset"]["sha256"]
    assert "psnr" in json.dumps(record["metrics"])
