"""Embedded ICC profiles of RGB and grey files: converted to sRGB by default (``icc="convert"``), used as stored
with ``icc="ignore"`` (what the papers' Pillow/OpenCV code does), and recorded either way, for dataset files,
prediction folders and ``--target`` folders.

The expected sRGB values are computed here independently of LittleCMS, from the colour-space definitions: Adobe RGB
(1998) decodes with gamma 563/256, its primaries give the linear RGB -> XYZ (D65) matrix, and sRGB's inverse
matrix and transfer function give the 8-bit values. The test profiles are written by
``colorbench.datasets.fixtures.rgb_profile`` / ``grey_profile`` (Pillow can create only sRGB, Lab and XYZ ones).
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from colorbench.datasets import DATASETS, fixtures as fx
from colorbench.datasets.imaging import CorruptImageError, ICC_POLICIES, decode_image_info, to_rgb8
from colorbench.engine.protocols import get_protocol
from colorbench.engine.predictions import read_prediction_folder, read_target_folder

SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
#: Adobe RGB colours: a saturated green (outside sRGB's gamut: clipped), an orange, mid grey, white, black, a
#: purple.
COLOURS = np.array([[[50, 200, 50], [200, 100, 50], [128, 128, 128], [255, 255, 255], [0, 0, 0], [90, 40, 160]]],
                   dtype=np.uint8)


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    v = np.clip(linear, 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)


def adobe_to_srgb(rgb8: np.ndarray) -> np.ndarray:
    """8-bit Adobe RGB (1998) -> 8-bit sRGB by the definitions (both D65: no adaptation), clipped to the gamut."""
    linear = (rgb8.astype(np.float64) / 255.0) ** (563 / 256)
    m = np.linalg.inv(fx.rgb_to_xyz_matrix(SRGB_PRIMARIES)) @ fx.rgb_to_xyz_matrix(fx.ADOBE_RGB_PRIMARIES)
    return np.round(_srgb_encode(linear @ m.T) * 255.0).astype(np.int64)


def _png(array: np.ndarray, mode: str | None = None, icc: bytes | None = None, fmt: str = "PNG") -> Image.Image:
    buf = io.BytesIO()
    kwargs = {"icc_profile": icc} if icc else {}
    Image.fromarray(array, mode).save(buf, fmt, **kwargs)
    buf.seek(0)
    img = Image.open(buf)
    img.load()
    return img


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def test_an_adobe_rgb_file_is_converted_to_srgb_as_the_colour_space_definitions_say():
    img = _png(COLOURS, icc=fx.rgb_profile())
    rgb, done = to_rgb8(img, "adobe.png")
    got = np.asarray(rgb, dtype=np.int64)
    want = adobe_to_srgb(COLOURS)
    assert np.abs(got - want).max() <= 2, (got, want)  # LittleCMS's 16-bit pipeline vs float64 here
    assert np.abs(got - COLOURS).max() > 40  # the stored values are not sRGB: the test fails without conversion
    assert done.startswith("converted to sRGB from its embedded ICC profile") and "Adobe RGB (1998)" in done
    # the same file read as stored (the papers' code): values unchanged, the ignored profile said
    stored, note = to_rgb8(img, "adobe.png", icc="ignore")
    assert np.array_equal(np.asarray(stored), COLOURS) and "ignored (icc='ignore')" in note


def test_srgb_tagged_and_untagged_files_are_used_as_stored():
    for icc in (_srgb_icc(), None):
        for policy in ICC_POLICIES:
            rgb, done = to_rgb8(_png(COLOURS, icc=icc), "srgb.png", icc=policy)
            assert np.array_equal(np.asarray(rgb), COLOURS) and done is None


def test_a_grey_file_with_a_gamma_22_profile_and_mismatched_or_broken_profiles():
    grey = np.arange(0, 256, 15, dtype=np.uint8).reshape(1, -1)
    rgb, done = to_rgb8(_png(grey, "L", fx.grey_profile()), "grey.png")
    want = np.round(_srgb_encode((grey.astype(np.float64) / 255) ** (563 / 256)) * 255).astype(np.int64)
    got = np.asarray(rgb, dtype=np.int64)
    assert np.abs(got - want[..., None]).max() <= 2 and (got[..., 0] == got[..., 2]).all()
    assert np.abs(got[..., 0] - grey).max() >= 2  # gamma 2.2 is not sRGB's curve: the conversion moved values
    assert done == ("grey replicated to RGB; converted to sRGB from its embedded ICC profile (LittleCMS, relative "
                    "colorimetric): Gray gamma 2.2 (colorbench test fixture)")
    rgb, done = to_rgb8(_png(grey, "L", fx.rgb_profile()), "grey-rgb-profile.png")  # an RGB profile on grey data
    assert np.array_equal(np.asarray(rgb)[..., 0], grey) and "embedded RGB ICC profile of a L image ignored" in done
    broken = fx.rgb_profile()[:60]
    with pytest.raises(CorruptImageError, match=r"broken\.png.*ICC profile cannot be read.*icc='ignore'"):
        to_rgb8(_png(COLOURS, icc=broken), "broken.png")
    rgb, done = to_rgb8(_png(COLOURS, icc=broken), "broken.png", icc="ignore")  # what the error suggests works
    assert np.array_equal(np.asarray(rgb), COLOURS) and done == "embedded ICC profile unreadable, ignored (icc='ignore')"
    with pytest.raises(ValueError, match="unknown ICC policy"):
        to_rgb8(_png(COLOURS), "x.png", icc="assume-srgb")


def test_alpha_and_jpeg_files_with_a_profile_are_converted():
    rgba = np.concatenate([COLOURS, np.full(COLOURS.shape[:2] + (1,), 128, np.uint8)], axis=2)
    rgb, done = to_rgb8(_png(rgba, "RGBA", fx.rgb_profile()), "a.png")
    assert np.abs(np.asarray(rgb, dtype=np.int64) - adobe_to_srgb(COLOURS)).max() <= 2
    assert done.startswith("alpha dropped") and "converted to sRGB" in done
    flat = np.repeat(np.repeat(COLOURS, 8, axis=0), 8, axis=1)  # 8x8 blocks: JPEG keeps them nearly exact
    jpeg = _png(flat, icc=fx.rgb_profile(), fmt="JPEG")
    rgb, done = to_rgb8(jpeg, "a.jpg")
    assert "converted to sRGB" in done
    assert np.abs(np.asarray(rgb, dtype=np.int64)[4::8, 4::8] - adobe_to_srgb(COLOURS)).max() <= 6


def test_dataset_files_follow_the_icc_option_which_is_recorded_and_keyed(tmp_path):
    fx.write_image_folder(tmp_path / "imgs", classes=("x",), per_class=4, size=(24, 24), ext=".png")
    tagged = tmp_path / "imgs" / "x" / "00001.png"
    stored = np.asarray(Image.open(tagged).convert("RGB"))
    Image.fromarray(stored).save(tagged, icc_profile=fx.rgb_profile())
    load = lambda **kw: DATASETS.get("image-folder")(data_root=str(tmp_path), path="imgs", size=24, resize="none",
                                                       test_fraction=0.5, **kw).load()
    converted, ignored = load(), load(icc="ignore")
    assert converted.info["cache"]["key"] != ignored.info["cache"]["key"]
    assert converted.info["params"]["icc"] == "convert" and ignored.info["icc_policy"]["name"] == "ignore"
    for data in (converted, ignored):
        conversions = {k: v for split in data.info["conversions"].values() for k, v in split.items()}
        assert sum(conversions.values()) == 1, conversions
    (note,) = {k for split in converted.info["conversions"].values() for k in split}
    assert note.startswith("converted to sRGB from its embedded ICC profile")
    split = "train" if any("00001" in i for i in converted.train.ids) else "test"
    sets = {name: getattr(d, split) for name, d in (("convert", converted), ("ignore", ignored))}
    k = next(n for n, i in enumerate(sets["convert"].ids) if "00001" in i)
    want = adobe_to_srgb(stored[None])[0]
    assert np.abs(sets["convert"].rgb[k].permute(1, 2, 0).numpy().astype(np.int64) - want).max() <= 2
    assert np.array_equal(sets["ignore"].rgb[k].permute(1, 2, 0).numpy(), stored)
    others = [n for n, i in enumerate(sets["convert"].ids) if not "00001" in i]
    assert np.array_equal(sets["convert"].rgb[others].numpy(), sets["ignore"].rgb[others].numpy())
    rgb, _, done = decode_image_info(tagged, "none", 24, icc="ignore")
    assert np.array_equal(rgb.transpose(1, 2, 0), stored) and "ignored" in done


def test_prediction_and_target_folders_follow_the_protocols_icc(tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    big = np.repeat(np.repeat(COLOURS, 4, axis=0), 4, axis=1)  # 4 x 24
    Image.fromarray(big).save(pred / "a.png", icc_profile=fx.rgb_profile())
    Image.fromarray(big).save(pred / "b.png")
    conv = read_prediction_folder(pred, ["a", "b"], (4, 24))
    kept = read_prediction_folder(pred, ["a", "b"], (4, 24), icc="ignore")
    assert np.abs(conv.pred[0].transpose(1, 2, 0).astype(np.int64) - adobe_to_srgb(big)).max() <= 2
    assert np.array_equal(kept.pred[0].transpose(1, 2, 0), big) and np.array_equal(conv.pred[1], kept.pred[1])
    assert sum(conv.conversions.values()) == 1 and "converted to sRGB" in next(iter(conv.conversions))
    assert "ignored (icc='ignore')" in next(iter(kept.conversions))
    # the papers' protocols read files as their code did (profiles ignored); colorbench's converts
    ct2, ours = get_protocol("ct2-imagenet-val5k"), get_protocol("colorbench")
    assert (ct2.icc, get_protocol("ddcolor-imagenet-val50k").icc, ours.icc) == ("ignore", "ignore", "convert")
    assert ct2.dataset_options("imagenet-val", {})["icc"] == "ignore"
    assert ct2.dataset_options("imagenet-val", {"icc": "convert"})["icc"] == "convert"  # the user's choice stays
    real, ids, desc = read_target_folder(pred, ours)
    assert desc["icc"] == "convert" and np.abs(real[ids.index("a")].transpose(1, 2, 0).astype(np.int64)
                                               - adobe_to_srgb(big)).max() <= 2
