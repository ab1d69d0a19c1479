"""Issue #11 item 2: every image mode Pillow can return decodes to the right 8-bit sRGB, checked against a known
image, and the dataset description says what was converted.

The known image is a horizontal grey gradient (and an RGB gradient for the colour modes); the expected 8-bit
values are computed here from the stored values (16-bit: round(v * 255 / 65535); float [0, 1]: round(v * 255)),
so each test fails if a mode is decoded by a blind ``convert("RGB")`` (16-bit grey came out ~255, all white).
"""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from colorbench.datasets import DATASETS
from colorbench.datasets.imaging import CorruptImageError, decode_image_info, to_rgb8

W, H = 16, 8
GREY16 = np.tile(np.linspace(0, 65535, W).round().astype(np.uint16), (H, 1))  # 0 .. 65535, left to right
GREY8 = np.tile(np.linspace(0, 255, W).round().astype(np.uint8), (H, 1))
RGB8 = np.stack([GREY8, GREY8[:, ::-1], np.full_like(GREY8, 77)], axis=2)


def _expected16(values: np.ndarray) -> np.ndarray:
    return np.floor(values.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)


def _grey3(grey: np.ndarray) -> np.ndarray:
    return np.repeat(grey[None], 3, axis=0)


def _png16(arr: np.ndarray) -> bytes:
    """A 16-bit-per-channel PNG (Pillow cannot write 16-bit RGB), by the PNG specification: IHDR, zlib IDAT of
    filter-0 scanlines of big-endian samples, IEND."""
    h, w, c = arr.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def _file_rgb(path):
    """The full-size decoded (3, H, W) array and the conversion sentence of a file."""
    img = Image.open(path)
    from colorbench.datasets.imaging import _raw_mode

    raw = _raw_mode(img)
    img.load()
    out, conversion = to_rgb8(img, path, raw)
    return img.mode, np.asarray(out).transpose(2, 0, 1), conversion


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_16_bit_grey(tmp_path, mode):
    if mode == "I;16":  # a real 16-bit greyscale PNG, the reported case
        path = tmp_path / "grey16.png"
        Image.fromarray(GREY16).save(path)
        got_mode, rgb, conversion = _file_rgb(path)
        assert got_mode == "I;16"
    else:
        dtype = ">u2" if mode == "I;16B" else "<u2"
        img = Image.frombytes(mode, (W, H), GREY16.astype(dtype).tobytes())
        out, conversion = to_rgb8(img)
        rgb = np.asarray(out).transpose(2, 0, 1)
    np.testing.assert_array_equal(rgb, _grey3(_expected16(GREY16)))
    assert rgb.mean() < 140  # was 254.9 (99.6 % of pixels at 255)
    assert "16-bit grey scaled to 8 bits" in conversion and "replicated" in conversion


def test_1_bit(tmp_path):
    path = tmp_path / "bw.png"
    Image.fromarray(GREY8 > 127).save(path)
    mode, rgb, conversion = _file_rgb(path)
    assert mode == "1"
    np.testing.assert_array_equal(rgb, _grey3(np.where(GREY8 > 127, 255, 0).astype(np.uint8)))
    assert "1-bit" in conversion


def test_8_bit_grey_and_grey_alpha(tmp_path):
    Image.fromarray(GREY8).save(tmp_path / "l.png")
    mode, rgb, conversion = _file_rgb(tmp_path / "l.png")
    assert mode == "L" and conversion == "grey replicated to RGB"
    np.testing.assert_array_equal(rgb, _grey3(GREY8))
    Image.fromarray(np.stack([GREY8, np.full_like(GREY8, 9)], axis=2), "LA").save(tmp_path / "la.png")
    mode, rgb, conversion = _file_rgb(tmp_path / "la.png")
    assert mode == "LA" and "alpha dropped" in conversion
    np.testing.assert_array_equal(rgb, _grey3(GREY8))


def test_32_bit_integer_and_float_grey(tmp_path):
    Image.fromarray(GREY16.astype(np.int32)).save(tmp_path / "i.tif")
    mode, rgb, conversion = _file_rgb(tmp_path / "i.tif")
    assert mode == "I" and "read as 16-bit" in conversion
    np.testing.assert_array_equal(rgb, _grey3(_expected16(GREY16)))

    unit = GREY16.astype(np.float32) / 65535
    Image.fromarray(unit).save(tmp_path / "f.tif")
    mode, rgb, conversion = _file_rgb(tmp_path / "f.tif")
    assert mode == "F" and "[0, 1] scaled" in conversion
    np.testing.assert_array_equal(rgb, _grey3(np.floor(unit.astype(np.float64) * 255 + 0.5).astype(np.uint8)))

    Image.fromarray(np.full((H, W), 1000.0, dtype=np.float32)).save(tmp_path / "far.tif")
    with pytest.raises(CorruptImageError, match=r"far\.tif.*values in \[1000, 1000\].*white level is unknown"):
        decode_image_info(tmp_path / "far.tif", "none", W)
    Image.fromarray(np.full((H, W), -5, dtype=np.int32)).save(tmp_path / "neg.tif")
    with pytest.raises(CorruptImageError, match=r"neg\.tif.*32-bit integer grey image with values in \[-5, -5\]"):
        decode_image_info(tmp_path / "neg.tif", "none", W)


def test_palette_with_and_without_transparency(tmp_path):
    pal = Image.fromarray(RGB8).quantize(colors=64)
    pal.save(tmp_path / "p.png")
    expected = np.asarray(pal.convert("RGB")).transpose(2, 0, 1)  # the palette's own colours
    mode, rgb, conversion = _file_rgb(tmp_path / "p.png")
    assert mode == "P" and conversion == "palette expanded to RGB"
    np.testing.assert_array_equal(rgb, expected)
    pal.save(tmp_path / "pt.png", transparency=0)
    mode, rgb, conversion = _file_rgb(tmp_path / "pt.png")
    assert mode == "P" and "alpha dropped" in conversion
    np.testing.assert_array_equal(rgb, expected)
    out, conversion = to_rgb8(pal.convert("PA"))
    assert "palette expanded" in conversion and "alpha dropped" in conversion
    np.testing.assert_array_equal(np.asarray(out).transpose(2, 0, 1), expected)


def test_rgba_drops_alpha_without_compositing(tmp_path):
    alpha = np.tile(np.linspace(0, 255, W).astype(np.uint8), (H, 1))
    Image.fromarray(np.concatenate([RGB8, alpha[..., None]], axis=2), "RGBA").save(tmp_path / "rgba.png")
    mode, rgb, conversion = _file_rgb(tmp_path / "rgba.png")
    assert mode == "RGBA" and "alpha dropped" in conversion
    np.testing.assert_array_equal(rgb, RGB8.transpose(2, 0, 1))


def test_cmyk_and_ycbcr(tmp_path):
    cmyk = np.stack([255 - RGB8[..., 0], 255 - RGB8[..., 1], 255 - RGB8[..., 2], np.zeros_like(GREY8)], axis=2)
    Image.fromarray(cmyk, "CMYK").save(tmp_path / "cmyk.tif")  # no ICC profile: C = 255 - R, K = 0
    mode, rgb, conversion = _file_rgb(tmp_path / "cmyk.tif")
    assert mode == "CMYK" and "without a colour profile" in conversion
    np.testing.assert_array_equal(rgb, RGB8.transpose(2, 0, 1))
    ycc = Image.fromarray(RGB8).convert("YCbCr")
    out, conversion = to_rgb8(ycc)
    assert "YCbCr" in conversion
    y, cb, cr = (np.asarray(ycc, dtype=np.float64)[..., i] for i in range(3))
    want = np.stack([y + 1.402 * (cr - 128), y - 0.344136 * (cb - 128) - 0.714136 * (cr - 128),
                     y + 1.772 * (cb - 128)], axis=2)  # JFIF full-range BT.601 (ITU-T T.871 §7)
    assert np.abs(np.asarray(out) - np.clip(want, 0, 255)).max() <= 1.0  # Pillow's fixed point


def test_cmyk_with_an_icc_profile_uses_it(tmp_path):
    from PIL import ImageCms

    cmyk = np.stack([255 - RGB8[..., 0], 255 - RGB8[..., 1], 255 - RGB8[..., 2], np.zeros_like(GREY8)], axis=2)
    img = Image.fromarray(cmyk, "CMYK")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    img.info["icc_profile"] = srgb  # not a CMYK profile: LittleCMS refuses it, and the error names the file
    with pytest.raises(CorruptImageError, match="ICC profile cannot be used"):
        to_rgb8(img, "x.tif")


@pytest.mark.parametrize("channels", [3, 4])
def test_16_bit_rgb(tmp_path, channels):
    rng = np.random.default_rng(0)
    values = rng.integers(0, 65536, (H, W, channels)).astype(np.uint16)
    (tmp_path / "rgb16.png").write_bytes(_png16(values))
    mode, rgb, conversion = _file_rgb(tmp_path / "rgb16.png")
    assert mode in ("RGB", "RGBA") and "16 bits per channel reduced to 8" in conversion
    err = np.abs(rgb.astype(int) - _expected16(values[..., :3]).transpose(2, 0, 1).astype(int))
    assert err.max() <= 1  # Pillow keeps the high byte: within one level of round(v * 255 / 65535)


def test_8_bit_rgb_is_used_as_it_is(tmp_path):
    Image.fromarray(RGB8).save(tmp_path / "rgb.png")
    mode, rgb, conversion = _file_rgb(tmp_path / "rgb.png")
    assert mode == "RGB" and conversion is None
    np.testing.assert_array_equal(rgb, RGB8.transpose(2, 0, 1))


def test_dataset_description_counts_the_conversions(tmp_path):
    folder = tmp_path / "mine" / "things"
    folder.mkdir(parents=True)
    for i in range(3):
        Image.fromarray(GREY16).save(folder / f"grey16_{i}.png")
    alpha = np.full((H, W, 1), 200, dtype=np.uint8)
    for i in range(2):
        Image.fromarray(np.concatenate([RGB8, alpha], axis=2), "RGBA").save(folder / f"rgba_{i}.png")
    for i in range(2):
        Image.fromarray(RGB8).save(folder / f"rgb_{i}.png")
    data = DATASETS.get("image-folder")(data_root=str(tmp_path), path="mine", size=8, resize="resize",
                                        test_fraction=0.3, cache=False).load()
    conversions = data.describe()["conversions"]
    merged: dict[str, int] = {}
    for split in ("train", "test"):
        for text, count in conversions[split].items():
            merged[text] = merged.get(text, 0) + count
    assert merged == {"16-bit grey scaled to 8 bits (v·255/65535), replicated to RGB": 3,
                      "alpha dropped (colours kept as stored, not composited over a background)": 2}
    grey_ids = [i for i, name in enumerate(data.train.ids) if "grey16" in name]
    assert grey_ids and float(data.train.rgb[grey_ids].float().mean()) < 200  # not white
