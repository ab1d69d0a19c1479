"""Issue 24: the places where colorbench's metrics did not agree with the references to the last digit.

Each test compares colorbench with a reference written from the reference's own arithmetic (scikit-image's float64
SSIM; DDColor's ``tensor2img`` and colourfulness function; CT2's/ColorFormer's colourfulness on ``cv2.imread`` 8-bit
arrays; ``numpy.histogram`` of scikit-image's ``rgb2lab`` of 8-bit images; basicsr's ``calculate_psnr``) on real
photographs with realistic colorizations, and each failed on the code before the fix (recorded in the docstrings).

Tolerances (absolute unless said; measured in brackets):
* SSIM, RGB and luma, default computation vs skimage's float64 on images with near-black regions: 1e-6
  (RGB ~1e-14; luma ~1e-8, from the float32 grey the method is given; on the same grey values ~1e-14). Before:
  up to 7e-6.
* colourfulness under DDColor's and CT2's protocols: the per-image 8-bit moments equal exactly, the values 1e-12
  relative. Before: 2.8e-6 (DDColor), 1.2e-6 (CT2) per image.
* ab histograms of 8-bit images: counts equal exactly. Before: 13 of 6.6 M values one bin off.
* ab values on a bin edge: counts equal exactly under the shared tie rule. Before: 286 k of 4.7 M values.
* DDColor's PSNR: 1e-10 dB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import color as skcolor
from skimage import data as skdata
from skimage.metrics import structural_similarity

from colorbench.metrics import METRICS
from colorbench.metrics import functional as MF


def _letterbox(img: np.ndarray, pad: int) -> np.ndarray:
    """``img`` (H, W, 3) uint8 inside black bars of ``pad`` pixels (a letterboxed or framed photograph)."""
    out = np.zeros((img.shape[0] + 2 * pad, img.shape[1] + 2 * pad, 3), np.uint8)
    out[pad:-pad, pad:-pad] = img
    return out


def _recolour(rgb: np.ndarray, scale: float, da: float, db: float) -> np.ndarray:
    """A realistic colorization of ``rgb`` (float in [0, 1]): its L* kept, a and b scaled and shifted (muted,
    tinted colours, as a colorization network's), back to sRGB and clipped."""
    lab = skcolor.rgb2lab(rgb)
    lab[..., 1] = lab[..., 1] * scale + da
    lab[..., 2] = lab[..., 2] * scale + db
    return np.clip(skcolor.lab2rgb(lab), 0.0, 1.0)


@pytest.fixture(scope="module")
def near_black_pairs():
    """(name, colorized, real) float32 (1, 3, H, W) pairs on images with near-black regions: skimage's retina
    (its black surround; every fourth pixel, 353x353, and a 256x256 corner crop) and four photographs in black bars;
    colorizations: two Lab recolourings and the BT.601 grey."""
    retina = skdata.retina()
    images = {"retina": retina[::4, ::4], "retina-corner": retina[:256, :256]}
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        images[f"{name}-letterboxed"] = _letterbox(getattr(skdata, name)()[:128, :128], 24)
    pairs = []
    for name, img in images.items():
        real = img / 255.0
        grey = np.repeat((real @ np.array([0.299, 0.587, 0.114]))[..., None], 3, axis=-1)
        for k, fake in enumerate((_recolour(real, 0.6, 6.0, -8.0), _recolour(real, 0.3, -4.0, 12.0), grey)):
            as_t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None].float()  # noqa: E731
            pairs.append((f"{name}/{k}", as_t(fake), as_t(real)))
    return pairs


SKIMAGE_GAUSSIAN = dict(data_range=255, gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


@pytest.mark.parametrize("variant", ["gaussian", "uniform"])
def test_ssim_and_luma_ssim_agree_with_skimage_near_black(near_black_pairs, variant):
    """The default SSIM and luma SSIM (what the protocols use) against skimage's float64 on float64 copies of the
    same float32 values, within 1e-6. Failed before the fix (float32 E[x^2] - E[x]^2 with the window mean far from
    the channel mean): up to 6.7e-6 (SSIM) and 7.4e-6 (luma SSIM) here."""
    kw = SKIMAGE_GAUSSIAN if variant == "gaussian" else dict(data_range=255)
    weights = np.array([0.299, 0.587, 0.114])
    worst = {"ssim": 0.0, "luma": 0.0, "luma-same-grey": 0.0}
    for name, p, t in near_black_pairs:
        pn, tn = p[0].permute(1, 2, 0).double().numpy(), t[0].permute(1, 2, 0).double().numpy()
        want = structural_similarity(tn * 255, pn * 255, channel_axis=-1, **kw)
        worst["ssim"] = max(worst["ssim"], abs(float(MF.ssim(p, t, variant=variant)[0]) - want))
        want_luma = structural_similarity(tn @ weights * 255, pn @ weights * 255, **kw)
        got_luma = float(MF.luma_ssim(p, t, "bt601", variant=variant)[0])
        worst["luma"] = max(worst["luma"], abs(got_luma - want_luma))
        # on the grey values colorbench compares (the float32 grey the method is given): to float64 rounding
        gp, gt = (MF.luma(x, "bt601")[0, 0].double().numpy() for x in (p, t))
        worst["luma-same-grey"] = max(worst["luma-same-grey"],
                                      abs(got_luma - structural_similarity(gt * 255, gp * 255, **kw)))
    assert worst["ssim"] < 1e-6 and worst["luma"] < 1e-6 and worst["luma-same-grey"] < 1e-10, worst
    # the streaming metrics give the same values (they share the kernel)
    name, p, t = near_black_pairs[0]
    metric = METRICS.get("ssim")(variant=variant)
    metric.update(p, t)
    assert metric.compute()["ssim"] == float(MF.ssim(p, t, variant=variant)[0])


# --- colourfulness under the papers' protocols -----------------------------------------------------------------


def reference_cf(bgr: np.ndarray) -> float:
    """The colourfulness function of DDColor's ``basicsr/metrics/colorfulness.py`` (``calculate_cf``), CT2's
    ``segm/eval_colorfullness.py`` and ColorFormer's ``metric/colorful.py`` (the same code) on an 8-bit OpenCV
    BGR array: ``(B, G, R) = cv2.split(img.astype('float'))`` (written as slicing), rg = |R - G|,
    yb = |(R + G)/2 - B|, numpy means and population standard deviations."""
    b, g, r = (bgr[..., k].astype(float) for k in range(3))
    rg, yb = np.absolute(r - g), np.absolute(0.5 * (r + g) - b)
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def reference_tensor2img(x: torch.Tensor) -> np.ndarray:
    """basicsr's ``tensor2img(x)`` (DDColor ``basicsr/utils/img_util.py``) of one ``(3, H, W)`` RGB tensor:
    ``float()``, clamp to [0, 1], (x - 0) / (1 - 0), to an HWC numpy array, RGB -> BGR, ``(img * 255.0).round()``
    on the float32 array (numpy keeps float32 for a Python-float factor; round half to even), ``astype(uint8)``."""
    img = x.float().clamp(0, 1).numpy().transpose(1, 2, 0)[..., ::-1]
    product = img * 255.0
    assert product.dtype == np.float32
    return product.round().astype(np.uint8)


def _float32_colorizations() -> torch.Tensor:
    """Float32 colorizations as a network's Lab output gives them: photographs' L* with muted, shifted ab, back
    to sRGB by colorbench's float32 lab_to_rgb (so x*255 falls anywhere between 8-bit levels), plus an image made of
    the float32 values at which the float32 and float64 products x*255 round differently (x = 0.8058823347091675:
    205.5 in float32, 205.4999954 in float64)."""
    from colorbench.core import color

    photos = [getattr(skdata, n)()[:96, :96] for n in ("astronaut", "chelsea", "coffee")]
    rgb = torch.from_numpy(np.stack(photos)).permute(0, 3, 1, 2).float() / 255.0
    lab = color.rgb_to_lab(rgb)
    lab = torch.cat((lab[:, :1], lab[:, 1:] * 0.7 + torch.tensor([4.0, -6.0]).view(2, 1, 1)), dim=1)
    out = color.lab_to_rgb(lab).clamp(0, 1)
    # every float32 x in (0, 1) whose float32 product x*255 is a half-integer while the exact product is not
    ties = []
    for k in range(255):
        x = np.float32((k + 0.5) / 255)
        for cand in (np.nextafter(x, np.float32(0)), x, np.nextafter(x, np.float32(1))):
            if float(cand * np.float32(255.0)) == k + 0.5 and float(cand) * 255.0 != k + 0.5:
                ties.append(float(cand))
    assert 0.8058823347091675 in ties and len(ties) > 20
    tie_img = torch.tensor(ties * (96 * 96 * 3 // len(ties) + 1), dtype=torch.float32)[: 96 * 96 * 3]
    return torch.cat((out, tie_img.view(1, 3, 96, 96)))


def test_ddcolor_colorfulness_reproduces_tensor2img_and_calculate_cf():
    """DDColor protocol colourfulness == calculate_cf(tensor2img(x)) image by image (1e-12 relative; the 8-bit
    moments exactly). Failed before the fix (the float64 product x*255 rounded): 2.8e-6 off on the tie image."""
    from colorbench.engine.protocols import get_protocol

    x = _float32_colorizations()
    ref = np.array([reference_cf(reference_tensor2img(im)) for im in x])
    options = get_protocol("ddcolor-imagenet-val50k").metric_options["colorfulness"]
    metric = METRICS.get("colorfulness")(**options)
    metric.update(x, x)
    np.testing.assert_allclose(metric.per_image_values()["colorfulness"].numpy(), ref, rtol=1e-12, atol=0)
    # the 8-bit values themselves: the moments of the rounded image are the reference's sums, exactly
    bgr = reference_tensor2img(x[-1]).astype(float)
    rg, yb = np.abs(bgr[..., 2] - bgr[..., 1]), np.abs(0.5 * (bgr[..., 2] + bgr[..., 1]) - bgr[..., 0])
    moments = MF.colorfulness_moments_variant(x[-1:], "absolute", "rgb", "round")[0].tolist()
    assert moments == [rg.size, rg.sum(), yb.sum(), (rg**2).sum(), (yb**2).sum()]


def test_ct2_and_colorformer_colorfulness_on_8bit_files_are_exact():
    """CT2's eval_colorfullness.py and ColorFormer's metric/colorful.py read the 8-bit files with cv2.imread;
    colorbench reads them as float32 k/255. With the ct2 protocol (and the ColorFormer filter cf > 1) the values
    equal the papers' code on the uint8 arrays (1e-12 relative). Failed before the fix (quantize="none": the
    float64 product k/255*255 is not k): 1.2e-6 off on the near-grey image."""
    from colorbench.engine.protocols import get_protocol

    x = _float32_colorizations()
    near_grey = x[:1] * 0.02 + 0.5  # a nearly grey colorization (sepia-like, colourfulness < 1)
    files = (torch.cat((x, near_grey)) * 255.0).floor().to(torch.uint8)  # as CT2 saves: truncated 8 bits
    ref = np.array([reference_cf(f.permute(1, 2, 0).numpy()[..., ::-1]) for f in files])  # cv2.imread: BGR
    protocol = get_protocol("ct2-imagenet-val5k")
    values, per_image, _ = protocol.score(files.numpy(), files.numpy(), ["colorfulness"])
    np.testing.assert_allclose(per_image["colorfulness"], ref, rtol=1e-12, atol=0)
    assert values["colorfulness"].params["quantize"] == "round"
    # ColorFormer: the same function, mean over images with cf > 1
    cf = METRICS.get("colorfulness")(formula="absolute", quantize="round", exclude_at_most=1.0)
    cf.update(files.float() / 255.0, files.float() / 255.0)
    assert ref[-1] < 1 and cf.compute()["colorfulness"] == pytest.approx(ref[ref > 1].mean(), rel=1e-12, abs=0)


# --- ab histograms: 8-bit images and values on bin edges --------------------------------------------------------

#: The 39 8-bit colours (of all 16,777,216) whose a or b bin (256 bins of width 1) differs between the float64 Lab
#: of the exact k/255 and of float32 k/255: found by converting every 8-bit colour both ways with
#: colorbench.core.color.rgb_to_lab in float64 (2026-12-07, issue 24; each within 3e-6 of a bin edge, checked below).
FLOAT32_MISBINNED_8BIT = (
    (6, 119, 128), (10, 207, 161), (30, 124, 90), (33, 191, 132), (43, 96, 122), (45, 242, 180), (53, 158, 254),
    (55, 197, 146), (64, 26, 21), (75, 39, 168), (84, 144, 130), (89, 136, 84), (101, 114, 164), (103, 141, 133),
    (111, 77, 113), (122, 104, 114), (125, 95, 134), (132, 178, 10), (141, 49, 225), (146, 214, 41), (151, 129, 37),
    (157, 118, 155), (158, 120, 21), (160, 107, 141), (165, 118, 137), (166, 62, 53), (166, 204, 54), (172, 38, 57),
    (173, 217, 153), (179, 161, 125), (185, 137, 193), (187, 156, 42), (210, 159, 191), (215, 40, 206),
    (222, 193, 143), (227, 148, 95), (248, 248, 148), (248, 9, 188), (252, 158, 217),
)


def reference_ab_counts(rgb_hwc: np.ndarray, bins: int = 256, joint: bool = False) -> np.ndarray:
    """numpy.histogram (histogram2d for ``joint``) over [-128, 128] of scikit-image's rgb2lab a and b (uint8
    images: skimage's own conversion of the 8-bit values), under colorbench's documented edge tie rule: each value
    plus AB_EDGE_TIE (1e-9), so a value on an edge counts in the bin the edge starts."""
    lab = skcolor.rgb2lab(rgb_hwc).reshape(-1, 3)
    a, b = lab[:, 1] + MF.AB_EDGE_TIE, lab[:, 2] + MF.AB_EDGE_TIE
    if joint:
        return np.histogram2d(a, b, bins=bins, range=[(-128, 128)] * 2)[0].astype(np.int64)
    return np.stack([np.histogram(v, bins=bins, range=(-128, 128))[0] for v in (a, b)])


def _check_histograms(pred: torch.Tensor, target: torch.Tensor, pred_hwc: np.ndarray, target_hwc: np.ndarray):
    """colorbench's per-channel and joint counts equal the reference exactly; KL and JS equal scipy's on them."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy

    for joint, bins in ((False, 256), (True, 64)):
        count = MF.ab_joint_histogram_counts if joint else MF.ab_histogram_counts
        for x, ref in ((pred, pred_hwc), (target, target_hwc)):
            np.testing.assert_array_equal(count(x, bins).numpy(), reference_ab_counts(ref, bins, joint))
    probs = lambda c: (c / c.sum() + MF.AB_HISTOGRAM_EPS) / (c / c.sum() + MF.AB_HISTOGRAM_EPS).sum()  # noqa: E731
    real, fake = reference_ab_counts(target_hwc), reference_ab_counts(pred_hwc)
    kl, js = MF.ab_histogram_kl(pred, target), MF.ab_histogram_js(pred, target)
    for i, ch in enumerate("ab"):
        p, q = probs(real[i].astype(float)), probs(fake[i].astype(float))
        assert kl[ch] == pytest.approx(entropy(p, q), rel=1e-12) and js[ch] == pytest.approx(
            jensenshannon(p, q) ** 2, rel=1e-12)


def test_ab_histograms_of_8bit_images_bin_the_8bit_values():
    """8-bit images (float32 k/255, as decoded files are) are binned as skimage bins the uint8 arrays. Failed
    before the fix (float64 Lab of float32 k/255): the 39 colours of FLOAT32_MISBINNED_8BIT one bin off."""
    from colorbench.core.color import rgb_to_lab

    colours = np.array(FLOAT32_MISBINNED_8BIT, dtype=np.uint8)
    exact = rgb_to_lab(torch.from_numpy(colours / 255.0).T[..., None])[1:, :, 0]
    assert float((exact - exact.round()).abs().min(dim=0).values.max()) < 3e-6  # each near an edge
    real = skdata.coffee()[:64, :64].copy()  # a photograph, with the 39 colours in its first row
    real[0, : len(colours)] = colours
    fake = (np.clip(_recolour(real / 255.0, 0.5, 5.0, -5.0), 0, 1) * 255).round().astype(np.uint8)
    fake[-1, : len(colours)] = colours
    as_t = lambda u8: torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255.0  # noqa: E731
    _check_histograms(as_t(fake), as_t(real), fake, real)


def test_ab_values_on_bin_edges_bin_as_the_reference():
    """Colorizations whose a and b are exactly on bin edges (integers: a sepia tint of constant (a, b) = (6, 18) on
    a photograph's L*, and ab quantised to multiples of 10 as a classification network's grid), float64 RGB:
    colorbench and skimage + numpy.histogram agree under the shared tie rule, every count. Failed before the fix
    (plain floor: the two float64 conversions round on-edge values to different sides)."""
    photo = skdata.astronaut()[100:164, 180:244] / 255.0
    lab = skcolor.rgb2lab(photo)
    sepia = lab.copy()
    sepia[..., 1:] = (6.0, 18.0)
    grid = lab.copy()
    grid[..., 1:] = np.round(lab[..., 1:] / 10.0) * 10.0
    outputs = [np.clip(skcolor.lab2rgb(x), 0.0, 1.0) for x in (sepia, grid)]
    back = [skcolor.rgb2lab(x)[..., 1:] for x in outputs]
    on_edge = sum(int((np.abs(v - np.round(v)) < 1e-9).sum()) for v in back)
    assert on_edge > 10_000  # most values sit on an edge (to ~1e-13)
    as_t = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1)[None]  # noqa: E731
    pred = torch.cat([as_t(x) for x in outputs])
    target = torch.cat([as_t(photo)] * 2)
    _check_histograms(pred, target, np.concatenate(outputs, axis=0), np.concatenate([photo] * 2, axis=0))


# --- DDColor's PSNR -------------------------------------------------------------------------------------------


def reference_calculate_psnr(img: np.ndarray, img2: np.ndarray, crop_border: int) -> float:
    """basicsr's ``calculate_psnr(img, img2, crop_border, input_order='HWC', test_y_channel=False)``
    (``basicsr/metrics/psnr_ssim.py``): crop, float64, ``np.mean((img - img2)**2)``, +inf for 0, else
    ``10 log10(255^2 / mse)``."""
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border, ...]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border, ...]
    mse = np.mean((img.astype(np.float64) - img2.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 * 255.0 / mse))


def test_ddcolor_protocol_psnr_is_calculate_psnr_on_tensor2img_images():
    """The ddcolor protocol's PSNR == DDColor's validation: calculate_psnr(tensor2img(output), tensor2img(real),
    crop_border=4) per image, averaged (1e-10 dB; the choice recorded in the params). Failed before the fix
    (float images, no crop: 4.3 dB off here, with a dark band at the edge; -0.27 ... +0.39 dB on DDColor's outputs
    as the issue measured)."""
    from colorbench.engine.protocols import get_protocol

    x = _float32_colorizations()[:3]
    real = torch.from_numpy(np.stack([getattr(skdata, n)()[:96, :96] for n in ("astronaut", "chelsea", "coffee")]))
    real = real.permute(0, 3, 1, 2).float() / 255.0  # the protocol keeps real images 8-bit
    pred = x.clone()
    pred[:, :, :6] = 0.0  # a dark band at the top, which the 4-pixel crop partly removes
    ref = [reference_calculate_psnr(reference_tensor2img(p), reference_tensor2img(t), 4) for p, t in zip(pred, real)]
    protocol = get_protocol("ddcolor-imagenet-val50k")
    metric = METRICS.get("psnr")(**protocol.metric_options["psnr"])
    metric.update(pred[:2], real[:2]), metric.update(pred[2:], real[2:])
    np.testing.assert_allclose(metric.per_image_values()["psnr"].numpy(), ref, rtol=0, atol=1e-10)
    assert metric.compute()["psnr"] == pytest.approx(np.mean(ref), abs=1e-10)
    assert metric.params()["crop_border"] == 4 and metric.params()["quantize"] == "round"
    float_psnr = MF.psnr(pred, real).numpy()
    assert np.abs(float_psnr - ref).max() > 0.01  # the convention matters at the printed digits
    # identical images give +inf, as calculate_psnr; a crop that leaves nothing is refused with the reason
    same = METRICS.get("psnr")(crop_border=4, quantize="round")
    same.update(real, real)
    assert same.compute()["psnr"] == float("inf")
    assert "crop_border=4" in same.input_problem(8, 96)
    with pytest.raises(ValueError, match="crop_border"):
        METRICS.get("psnr")(crop_border=-1)
