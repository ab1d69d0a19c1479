"""Named evaluation protocols and the metric variants they need, each against a reference written from the papers'
evaluation code (DDColor, CT2, ColorFormer; see metrics/README.md for the files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorbench.metrics import METRICS
from colorbench.metrics import functional as MF
from colorbench.metrics.fid import InceptionFeatures, fid_inception_architecture
from colorbench.engine.protocols import PROTOCOLS, REAL_TRANSFORMS, Protocol, get_protocol
from colorbench.core.registry import UnknownNameError


def _images(n=6, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=g)
    x[0] = x[0, :1].expand(3, -1, -1)  # a grey image (colourfulness 0)
    x[1] = x[1] * 0.004 + 0.5  # an almost grey one (colourfulness < 1)
    return x


def reference_cf(bgr: np.ndarray) -> float:
    """The colourfulness function of DDColor's basicsr/metrics/colorfulness.py, CT2's segm/eval_colorfullness.py
    and ColorFormer's metric/colorful.py (they are the same code), on an OpenCV BGR array: ``(B, G, R) =
    cv2.split(img.astype(float))`` written as channel slicing; absolute rg and yb; numpy mean and population std."""
    b, g, r = (bgr[..., k].astype(float) for k in range(3))
    rg = np.absolute(r - g)
    yb = np.absolute(0.5 * (r + g) - b)
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def _hwc255(x: torch.Tensor, quantize: str = "none") -> np.ndarray:
    a = x.double().numpy().transpose(0, 2, 3, 1) * 255.0
    if quantize == "round":
        a = np.round(a)  # basicsr tensor2img: (img * 255.0).round() then astype(uint8)
    elif quantize == "truncate":
        a = np.floor(a)
    return a


@pytest.mark.parametrize("quantize", ["none", "round", "truncate"])
def test_absolute_colorfulness_matches_the_papers_code(quantize):
    x = _images()
    rgb = _hwc255(x, quantize)
    ref = np.array([reference_cf(im[..., ::-1]) for im in rgb])  # cv2.imread gives BGR: the channels read right
    m = METRICS.get("colorfulness")(formula="absolute", quantize=quantize)
    m.update(x[:4], x[:4]), m.update(x[4:], x[4:])  # streamed in two batches
    assert np.allclose(m.per_image_values()["colorfulness"].numpy(), ref, rtol=1e-9, atol=1e-9)
    assert abs(m.compute()["colorfulness"] - ref.mean()) < 1e-9 * ref.mean()
    # the signed formula (Hasler-Suesstrunk) differs on images where rg or yb change sign
    signed = MF.colorfulness(x).numpy()
    assert np.abs(signed - ref)[2:].min() > 1e-3


def test_channel_order_and_colorformer_filter():
    x = _images()
    rgb = _hwc255(x)
    misread = np.array([reference_cf(im) for im in rgb])  # an RGB array split as if it were BGR
    m = METRICS.get("colorfulness")(formula="absolute", channel_order="bgr")
    m.update(x, x)
    assert np.allclose(m.per_image_values()["colorfulness"].numpy(), misread, rtol=1e-9)
    # ColorFormer metric/colorful.py: `if cf > 1: colorful.append(cf)`, then np.mean(colorful)
    proper = np.array([reference_cf(im[..., ::-1]) for im in rgb])
    assert proper[0] < 1e-9 and proper[1] < 1  # the grey and the nearly grey image are dropped
    f = METRICS.get("colorfulness")(formula="absolute", exclude_at_most=1.0)
    f.update(x, x)
    assert abs(f.compute()["colorfulness"] - proper[proper > 1].mean()) < 1e-9
    assert "image_filter" in f.params() and f.params()["opponent_components"] == "absolute"
    with pytest.raises(ValueError, match="per_image_mean"):
        METRICS.get("colorfulness")(reduction="pooled", exclude_at_most=1.0)
    with pytest.raises(ValueError, match="unknown colorfulness formula"):
        METRICS.get("colorfulness")(formula="abs")


def test_delta_colorfulness_variant():
    x, y = _images(seed=1), _images(seed=2)
    ref_x = np.mean([reference_cf(im[..., ::-1]) for im in _hwc255(x, "round")])
    ref_y = np.mean([reference_cf(im[..., ::-1]) for im in _hwc255(y, "round")])
    m = METRICS.get("delta_colorfulness")(formula="absolute", quantize="round")
    m.update(x, y)
    assert abs(m.compute()["delta_colorfulness"] - abs(ref_x - ref_y)) < 1e-9


def test_ct2_ssim_is_skimage_uniform_with_data_range_225():
    """CT2 segm/metrics.py: measure.compare_ssim(gt, predicted, data_range=225, multichannel=True) on uint8 arrays
    (skimage's defaults: 7x7 uniform window, sample covariance); structural_similarity is its current name."""
    from skimage.metrics import structural_similarity

    x, y = _images(4, 32, 3), _images(4, 32, 4)
    xu, yu = (x * 255).round().to(torch.uint8), (y * 255).round().to(torch.uint8)
    ref = [structural_similarity(a, b, data_range=225, channel_axis=-1)
           for a, b in zip(yu.numpy().transpose(0, 2, 3, 1), xu.numpy().transpose(0, 2, 3, 1))]
    m = METRICS.get("ssim")(**PROTOCOLS["ct2-imagenet-val5k"].metric_options["ssim"])
    m.update(xu.float() / 255, yu.float() / 255)
    # tolerance: colorbench's float32 SSIM (metrics/README.md: 1e-6 against skimage)
    assert np.allclose(m.per_image_values()["ssim"].numpy(), ref, atol=1e-6)


def _reference_fid_features(net: nn.Module, images_01: torch.Tensor, mode: str) -> torch.Tensor:
    """The forward pass of INCEPTION_V3_FID in CT2's segm/metrics.py (DDColor's basicsr/metrics/custom_fid.py is
    the same code), with the blocks built from the same torchvision Inception3 modules. CT2 feeds it
    Normalize((0.5,)*3, (0.5,)*3) images ([-1, 1]); DDColor feeds the [0, 1] output of tensor_lab2rgb."""
    inp = images_01 * 2 - 1 if mode == "ct2" else images_01
    x = F.interpolate(inp, size=(299, 299), mode="bilinear")
    x = x.clone()
    x = x * 0.5 + 0.5
    x[:, 0] = x[:, 0] * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
    x[:, 1] = x[:, 1] * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
    x[:, 2] = x[:, 2] * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
    blocks = nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, nn.MaxPool2d(3, 2),
                           net.Conv2d_3b_1x1, net.Conv2d_4a_3x3, nn.MaxPool2d(3, 2),
                           net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a, net.Mixed_6b, net.Mixed_6c,
                           net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b, net.Mixed_7c,
                           nn.AdaptiveAvgPool2d((1, 1)))
    return blocks(x).flatten(1)


def test_fid_preprocessing_of_ct2_and_ddcolor_matches_their_code():
    torch.manual_seed(0)
    net = fid_inception_architecture("torchvision-1a9a5a14")  # torchvision's own blocks (no TF pooling changes)
    for mod in net.modules():  # random but fixed weights (the real file cannot be downloaded here)
        if isinstance(mod, nn.Conv2d):
            nn.init.normal_(mod.weight, std=0.05)
    net.eval()
    images = torch.rand(2, 3, 20, 20)
    feats = {}
    with torch.no_grad():
        for mode in ("ct2", "ddcolor"):
            ours = InceptionFeatures(net, preprocess=mode)(images)
            ref = _reference_fid_features(net, images, mode)
            # float32 convolutions; resize and the affine map commute up to rounding: measured < 1e-6 relative
            assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-5), (mode, (ours - ref).abs().max())
            feats[mode] = ours
    assert not torch.allclose(feats["ct2"], feats["ddcolor"], rtol=1e-3)  # the two codes feed different inputs
    with pytest.raises(ValueError, match="unknown FID preprocess"):
        InceptionFeatures(net, preprocess="tf")


def _reference_cv2_resize(img: np.ndarray, size: int) -> np.ndarray:
    """cv2.resize(img, (size, size)) with INTER_LINEAR on a float image, written out: the source coordinate of
    output pixel i is (i + 0.5) * in / out - 0.5, clamped to the image, linear weights, no antialiasing."""
    h, w = img.shape[:2]

    def axis(n_in: int, n_out: int):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0, n_in - 1)
        lo = np.floor(src).astype(int)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, src - lo

    y0, y1, fy = axis(h, size)
    x0, x1, fx = axis(w, size)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def test_real_image_preparation_of_the_protocols():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(300, 410, 3), dtype=np.uint8)
    dd = REAL_TRANSFORMS["ddcolor-resize-256"](img)
    ref = np.round(np.clip(_reference_cv2_resize(img.astype(np.float64) / 255.0, 256), 0, 1) * 255)
    assert dd.shape == (256, 256, 3) and np.abs(dd.astype(int) - ref).max() <= 1  # float32 vs float64 rounding
    ct = REAL_TRANSFORMS["ct2-center-crop-resize-256"](img)
    from PIL import Image

    # CT2 segm/data/coco.py: transforms.Compose([CenterCrop(min(w, h)), Resize(crop_size)]) on the PIL image
    crop = Image.fromarray(img).crop((55, 0, 355, 300)).resize((256, 256), Image.Resampling.BILINEAR)
    assert np.array_equal(ct, np.asarray(crop))


def test_protocol_lookup_and_test_image_list():
    assert {"colorbench", "ddcolor-imagenet-val50k", "ct2-imagenet-val5k"} <= set(PROTOCOLS)
    with pytest.raises(UnknownNameError, match="Did you mean: ct2-imagenet-val5k"):
        get_protocol("ct2-imagenet-val5")
    ct2 = get_protocol("ct2-imagenet-val5k")
    assert len(ct2.test_ids) == 5000 and ct2.test_ids[0] == "ILSVRC2012_val_00000001"
    ids = [f"val/n{k % 7:08d}/ILSVRC2012_val_{k:08d}.JPEG" for k in range(5100, 0, -1)]  # shuffled, extra
    picked, _ = ct2.select_test_images(ids)
    assert len(picked) == 5000 and picked[0].endswith("ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(ValueError, match=r"4000 of those 5000 images are not in the test set.*ILSVRC2012_val_00001001"):
        ct2.select_test_images(ids[-1000:])
    assert get_protocol("colorbench").select_test_images(["a", "b"]) == (["a", "b"], None)
    # every protocol's metric options build
    for p in PROTOCOLS.values():
        metrics, missing = p.build_metrics([m for m in p.metrics if m not in ("fid", "lpips")])
        assert set(metrics) == {m for m in p.metrics if m not in ("fid", "lpips")} and not missing


def test_run_records_the_protocol_and_refuses_a_test_set_without_its_images(tmp_path):
    from colorbench.results.rundir import load_records
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = dict(methods=("gray",), dataset="shapes", dataset_options=(("n_test", 8), ("n_train", 8), ("size", 32)),
                progress=False, n_samples=2, metrics=("colorfulness", "psnr"))
    with pytest.raises(ValueError, match="protocol 'ct2-imagenet-val5k' scores the first 5,000 ImageNet"):
        run(RunSpec(**spec, protocol="ct2-imagenet-val5k"), out=tmp_path / "ct2", log=lambda s: None)
    out = run(RunSpec(**spec), out=tmp_path / "cb", log=lambda s: None)
    rec = load_records(out)[0]
    assert all(mv.params["protocol"] == "colorbench" and mv.params["protocol_version"] == "2"
               for mv in rec.metrics.values())
    with pytest.raises(UnknownNameError, match="Unknown protocol"):
        RunSpec(**spec, protocol="nope")


def test_protocol_is_frozen_data():
    p = get_protocol("ddcolor-imagenet-val50k")
    assert isinstance(p, Protocol) and p.ident == "ddcolor-imagenet-val50k/2"  # v2: basicsr PSNR (issue 24)
    assert p.metric_options["fid"] == {"weights": "torchvision-1a9a5a14", "preprocess": "ddcolor"}
    assert any("color_model.py" in c for c in p.code) and p.describe()["test_ids"].startswith("50000 ids")
