"""The protocols of issue 26 (ColTran, BigColor, DeOldify, NTIRE 2019, DDColor COCO-Stuff / ADE20K): each source's
arithmetic re-implemented here from the file it was read from (cited in the protocol) and compared with colorbench's
on small fixtures; where the source's library is installed (Pillow, torchvision) it is the reference itself."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from colorbench.core.color import rgb_to_grey
from colorbench.metrics import functional as MF
from colorbench.engine import protocols as P
from colorbench.engine.protocols import PROTOCOLS, REAL_TRANSFORMS, get_protocol

NEW = ("coltran-imagenet-val5k", "bigcolor-imagenet-val", "deoldify-openimages", "ntire2019-div2k",
       "ddcolor-cocostuff", "ddcolor-ade20k")


@pytest.mark.parametrize("name", NEW)
def test_each_protocol_cites_its_files_with_a_version(name):
    p = get_protocol(name)
    assert p.code and p.paper and p.deviations
    # every source is pinned: a commit (7+ hex digits), an issue/comment number or a date
    for src in p.code:
        assert re.search(r"\b[0-9a-f]{7,40}\b|#\d+|\d{4}-\d{2}-\d{2}", src), src
    d = p.describe()
    assert d["name"] == name and d["version"] == "1"


# --- ColTran ---------------------------------------------------------------------------------------------------------
def _tf_skip_batch_skip(ids, samples, skip_samples, batch_size):
    """The author's FID script (google-research#896): ``real.skip(samples).batch(bs).skip(skip_samples // bs)``,
    then as many batches as the generated side has (``samples // bs``), flattened."""
    real = ids[samples:]
    batches = [real[i:i + batch_size] for i in range(0, len(real), batch_size)]
    batches = batches[skip_samples // batch_size:][: samples // batch_size]
    return [x for b in batches for x in b]


@pytest.mark.parametrize("samples, skip, bs", [(10, 10, 5), (12, 8, 4), (6, 12, 3)])
def test_coltran_reference_ids_follow_the_authors_dataset_skips(samples, skip, bs):
    ids = [f"id{i:03d}" for i in range(60)]
    colorized, reference = P.disjoint_reference_ids(ids, samples, skip)
    assert colorized == ids[:samples]
    assert reference == _tf_skip_batch_skip(ids, samples, skip, bs)
    assert not set(colorized) & set(reference)
    with pytest.raises(ValueError, match="needs 21 images"):
        P.disjoint_reference_ids(ids[:20], 7, 7)


def test_coltran_protocol_sets():
    p = get_protocol("coltran-imagenet-val5k")
    assert p.test_ids[0] == "ILSVRC2012_val_00000001" and p.test_ids[-1] == "ILSVRC2012_val_00005000"
    assert p.fid_reference_ids[0] == "ILSVRC2012_val_00010001" and p.fid_reference_ids[-1] == "ILSVRC2012_val_00015000"


def _tf_resize_with_crop_or_pad_offsets(h, w, target_h, target_w):
    """TensorFlow image_ops_impl.resize_image_with_crop_or_pad: ``offset_crop = max((size - target) // 2, 0)``."""
    return max((h - target_h) // 2, 0), max((w - target_w) // 2, 0)


@pytest.mark.parametrize("h, w", [(7, 12), (12, 7), (9, 9), (10, 15)])
def test_coltran_centre_crop_offsets_are_tensorflows(h, w):
    rgb = np.arange(h * w * 3, dtype=np.uint8).reshape(h, w, 3)
    side = min(h, w)
    top, left = _tf_resize_with_crop_or_pad_offsets(h, w, side, side)
    assert np.array_equal(P.tf_center_crop_square(rgb), rgb[top:top + side, left:left + side])


def test_coltran_area_resize_averages_blocks_at_integer_ratios():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)  # crop 40x40 (offset 4), then 4x -> 10x10
    out = P._coltran_center_crop_area(rgb, 10)
    crop = rgb[:, 4:44].astype(np.float64)
    blocks = crop.reshape(10, 4, 10, 4, 3).mean(axis=(1, 3))  # area resampling = box average at a 4x ratio
    assert np.array_equal(out, np.clip(np.round(blocks), 0, 255).astype(np.uint8))


def test_disjoint_fid_compares_with_the_reference_images(monkeypatch):
    """FID of the colorized set against other real images: the Frechet distance of the two sides' features, the
    sides may differ in number; without the reference images FID is missing, naming them."""
    from colorbench.metrics import fid as fid_mod

    class MeanFeatures(torch.nn.Module):  # TEST 64-d features (block means and second moments): no Inception offline
        def forward(self, x):
            return torch.cat([F.adaptive_avg_pool2d(x, 4).flatten(1), F.adaptive_avg_pool2d(x * x, 4).flatten(1)[:, :16]], 1)

    monkeypatch.setattr(fid_mod, "cached_fid_inception", lambda *a, **k: MeanFeatures())
    p = get_protocol("coltran-imagenet-val5k")
    rng = np.random.default_rng(0)
    pred = rng.integers(0, 256, (70, 3, 8, 8), dtype=np.uint8)
    real = rng.integers(0, 256, (70, 3, 8, 8), dtype=np.uint8)
    ref = rng.integers(0, 256, (90, 3, 8, 8), dtype=np.uint8) // 2
    values, _, _ = p.score(pred, real, ("fid",), batch_size=32, fid_real=None)
    assert values["fid"].value is None and "ILSVRC2012_val_00010001" in values["fid"].missing_reason
    monkeypatch.setitem(p.metric_options, "fid", {"weights": "pytorch-fid", "dims": 64})
    values, _, _ = p.score(pred, real, ("fid",), batch_size=32, fid_real=ref)

    def stats(a):
        f = MeanFeatures()(torch.from_numpy(a).double() / 255.0).double()
        return f.mean(0), torch.cov(f.T)

    want = MF.frechet_distance(*stats(pred), *stats(ref))
    assert values["fid"].value == pytest.approx(float(want), rel=1e-6)
    assert "10001" in values["fid"].params["fid_reference"]
    paired = MF.frechet_distance(*stats(pred), *stats(real))
    assert abs(values["fid"].value - float(paired)) > 1e-3  # the reference, not the colorized images' own reals


# --- BigColor ----------------------------------------------------------------------------------------------------------
def test_bigcolor_reports_classification_accuracy_as_missing_with_the_reason():
    p = get_protocol("bigcolor-imagenet-val")
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 16, 16), dtype=np.uint8)
    values, _, _ = p.score(x, x, ("psnr",))
    acc = values["classification_accuracy"]
    assert acc.value is None and "resnet50" in acc.missing_reason and "no classification-accuracy" in acc.missing_reason


def test_torchvision_grayscale_is_the_02989_grey_and_within_1e4_of_bt601():
    """BigColor's transforms.Grayscale and NTIRE 2019's Eq. 1 are the same weights; colorbench's bt601 differs by
    at most 0.0001 (|0.2989 - 0.299| + |0.5870 - 0.587| + |0.1140 - 0.114|)."""
    from torchvision.transforms import functional as TF

    x = torch.rand(3, 20, 20, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = torch.from_numpy(P.grey_02989(x.permute(1, 2, 0).numpy()))
    assert torch.allclose(TF.rgb_to_grayscale(x)[0], ours, atol=1e-12)
    assert (ours - rgb_to_grey(x[None], "bt601")[0, 0]).abs().max() <= 1e-4 + 1e-12


# --- DeOldify ----------------------------------------------------------------------------------------------------------
def test_deoldify_grey_is_pils_convert_la():
    rgb = np.random.default_rng(0).integers(0, 256, (33, 17, 3), dtype=np.uint8)
    rgb[0, :3] = [[255, 255, 255], [0, 0, 0], [128, 64, 200]]
    la = np.asarray(Image.fromarray(rgb).convert("LA"))
    assert np.array_equal(P.pil_la_grey(rgb), la[..., 0]) and (la[..., 1] == 255).all()
    # the notebook then converts back to RGB: three equal channels
    back = np.asarray(Image.fromarray(rgb).convert("LA").convert("RGB"))
    assert np.array_equal(back, np.repeat(P.pil_la_grey(rgb)[..., None], 3, axis=2))
    # PIL rounds 0.299 R + 0.587 G + 0.114 B to 8 bits (its fixed-point weights sum to 65536)
    exact = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(P.pil_la_grey(rgb) - exact).max() <= 0.5 + 1e-2


def test_pytorch_fid_resize_is_its_bilinear_299():
    rgb = np.random.default_rng(1).integers(0, 256, (100, 150, 3), dtype=np.uint8)
    out = REAL_TRANSFORMS["pytorch-fid-resize-299"](rgb)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    want = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy() * 255
    assert out.shape == (299, 299, 3) and np.abs(out - want).max() <= 0.5 + 1e-4
    same = np.random.default_rng(2).integers(0, 256, (299, 299, 3), dtype=np.uint8)
    assert np.array_equal(REAL_TRANSFORMS["pytorch-fid-resize-299"](same), same)


# --- NTIRE 2019 and DDColor's COCO-Stuff / ADE20K --------------------------------------------------------------------
def test_ntire_uses_div2k_validation_at_full_resolution():
    p = get_protocol("ntire2019-div2k")
    assert p.test_ids[0] == "0801" and p.test_ids[-1] == "0900" and len(p.test_ids) == 100
    assert p.real_transform is None and p.dataset_resize == {}
    assert p.metric_options["psnr"] == {"data_range": 255.0, "reduction": "per_image_mean"}


@pytest.mark.parametrize("name", ["ddcolor-cocostuff", "ddcolor-ade20k"])
def test_ddcolor_cocostuff_and_ade20k_resize_to_256_like_its_dataset(name):
    """basicsr/data/lab_dataset.py: ``cv2.resize(img, (256, 256))`` (bilinear, half-pixel centres, no antialias); a
    2x downscale of a 512 image is then the mean of each 2x2 block."""
    p = get_protocol(name)
    assert p.real_transform == "ddcolor-resize-256" and p.dataset_resize == {"resize": "resize", "size": 256}
    rgb = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    block = rgb.astype(np.float64).reshape(256, 2, 256, 2, 3).mean(axis=(1, 3))
    assert np.abs(REAL_TRANSFORMS[p.real_transform](rgb) - block).max() <= 0.5 + 1e-4
    assert p.metric_options == PROTOCOLS["ddcolor-imagenet-val50k"].metric_options
    if name == "ddcolor-ade20k":
        assert p.test_ids[0] == "ADE_val_00000001" and len(p.test_ids) == 2000


def test_evaluate_target_folder_gives_the_disjoint_reference_to_fid(monkeypatch, tmp_path):
    """``colorbench evaluate --protocol <disjoint FID> --target DIR``: the colorized ids are scored against their
    own reals (PSNR) and FID against the reference ids of the same folder."""
    import dataclasses

    from colorbench.metrics import fid as fid_mod
    from colorbench.engine.predictions import evaluate_folder
    from colorbench.results.rundir import RunDir

    class MeanFeatures(torch.nn.Module):  # TEST 64-d features: no Inception weights offline
        def forward(self, x):
            return torch.cat([F.adaptive_avg_pool2d(x, 4).flatten(1), F.adaptive_avg_pool2d(x * x, 4).flatten(1)[:, :16]], 1)

    monkeypatch.setattr(fid_mod, "cached_fid_inception", lambda *a, **k: MeanFeatures())
    rng = np.random.default_rng(0)
    (tmp_path / "real").mkdir()
    (tmp_path / "pred").mkdir()
    ids = [f"im{i:02d}" for i in range(12)]
    images = {i: rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in ids}
    for i in ids:
        Image.fromarray(images[i]).save(tmp_path / "real" / f"{i}.png")
    for i in ids[:4]:
        Image.fromarray(255 - images[i]).save(tmp_path / "pred" / f"{i}.png")
    proto = dataclasses.replace(get_protocol("coltran-imagenet-val5k"), test_ids=tuple(ids[:4]),
                                fid_reference_ids=tuple(ids[8:12]), real_transform=None, metrics=("psnr", "fid"),
                                metric_options={"fid": {"weights": "pytorch-fid", "dims": 64}})
    evaluate_folder(tmp_path / "pred", tmp_path / "out", "p", target=tmp_path / "real", protocol=proto,
                    device="cpu", log=lambda s: None)
    rec = RunDir(tmp_path / "out").records()[0]
    pred = np.stack([255 - images[i] for i in ids[:4]]).transpose(0, 3, 1, 2)
    ref = np.stack([images[i] for i in ids[8:12]]).transpose(0, 3, 1, 2)

    def stats(a):
        f = MeanFeatures()(torch.from_numpy(a).double() / 255.0).double()
        return f.mean(0), torch.cov(f.T)

    assert rec.metrics["fid"].value == pytest.approx(float(MF.frechet_distance(*stats(pred), *stats(ref))), rel=1e-6)
    assert "im08" in rec.metrics["fid"].params["fid_reference"]
    assert rec.metrics["psnr"].value is not None
