"""Decoding one image file and the named resize/crop policies shared by the standard dataset loaders.

Images are decoded with Pillow and turned into 8-bit sRGB by :func:`to_rgb8`, which handles every mode Pillow
returns by what its values mean (``Image.convert("RGB")`` alone clips 16-bit grey to white): 1-bit, 8-bit,
16-bit and 32-bit grey are scaled to 0-255 and replicated, palettes expanded, alpha dropped, CMYK converted with
its ICC profile when it has one, YCbCr and CIE Lab converted to sRGB. An RGB or grey file with an embedded ICC
profile that is not sRGB (Adobe RGB, Display P3, a gamma-2.2 grey, ...) is converted to sRGB with LittleCMS under
the default ``icc="convert"`` (:data:`ICC_POLICIES`; ``"ignore"`` uses the stored values, as Pillow's
``convert("RGB")``, OpenCV's ``imread`` and hence the papers' code do). What was done to a file is returned as a
sentence (and counted per split in the dataset description, under ``conversions``). Segmentation masks must be palette ("P") or grey ("L") PNGs of class indices and are resized
with nearest neighbour only. Resizing uses torchvision's functional transforms on PIL images (so a policy means
exactly what ``transforms.Resize`` / ``transforms.CenterCrop`` mean in PyTorch code).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = ["ICC_POLICIES", "RESIZE_POLICIES", "CorruptImageError", "apply_policy", "check_icc", "check_policy", "decode_prediction",
           "decode_image", "decode_image_info", "decode_mask", "open_rgb8", "to_rgb8"]

#: The named resize/crop policies (recorded in every dataset's info).
RESIZE_POLICIES: dict[str, str] = {
    "resize-shorter-center-crop": "resize the shorter side to `size` (bicubic, aspect kept), then centre-crop "
                                  "size x size (torchvision Resize(size) + CenterCrop(size))",
    "resize": "resize to size x size (bicubic), aspect ratio not kept (torchvision Resize((size, size)))",
    "center-crop": "centre-crop size x size without resizing; an image smaller than size is an error",
    "none": "no resizing; every image must already be size x size (an error names the first that is not)",
}

#: What to do with an embedded ICC profile of an RGB or grey file (CMYK files always use theirs). Recorded as the
#: ``icc`` dataset option and in every prediction folder's record.
ICC_POLICIES: dict[str, str] = {
    "convert": "an embedded ICC profile that is not sRGB is converted to sRGB (LittleCMS, relative colorimetric); "
               "files without a profile, or with an sRGB one, are used as stored",
    "ignore": "embedded ICC profiles of RGB and grey files are ignored: the stored values are read as sRGB (as "
              "Pillow's convert('RGB') and OpenCV's imread do); each ignored non-sRGB profile is counted",
}


def check_icc(icc: str) -> None:
    if icc not in ICC_POLICIES:
        raise ValueError(f"unknown ICC policy {icc!r}; choose one of {list(ICC_POLICIES)}")


def _tv_functional() -> tuple[Any, Any]:
    """torchvision's functional transforms and InterpolationMode, imported when an image must be resized or
    cropped: importing torchvision imports torch._dynamo (through torchvision.ops), about as long again as torch
    itself, which every process that only reads a decoded cache or same-size files would pay for nothing."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    return TF, InterpolationMode


class CorruptImageError(ValueError):
    """An image or mask file that cannot be decoded (truncated, corrupt, not an image) or has the wrong form."""

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"cannot use image file {path}: {reason}")
        self.path = str(path)
        self.reason = reason


def check_policy(policy: str) -> None:
    if policy not in RESIZE_POLICIES:
        raise ValueError(f"unknown resize policy {policy!r}; choose one of {list(RESIZE_POLICIES)}")


def apply_policy(img: Image.Image, policy: str, size: int, *, mask: bool = False, path: Path | str = "") -> Image.Image:
    """Apply a named policy (see :data:`RESIZE_POLICIES`) to a PIL image; ``mask`` selects nearest neighbour."""
    w, h = img.size
    if policy == "none" or (w, h) == (size, size) and policy in RESIZE_POLICIES:
        if (w, h) != (size, size):
            raise CorruptImageError(path, f"is {w}x{h} (WxH) but policy 'none' needs {size}x{size}; choose another "
                                          f"resize policy or size")
        return img  # already size x size: every policy leaves it as it is
    TF, mode = _tv_functional()
    interp = mode.NEAREST if mask else mode.BICUBIC  # masks are never interpolated between class indices
    if policy == "resize-shorter-center-crop":
        if min(w, h) != size:
            img = TF.resize(img, size, interpolation=interp)
        return TF.center_crop(img, [size, size]) if img.size != (size, size) else img
    if policy == "resize":
        return TF.resize(img, [size, size], interpolation=interp)
    if policy == "center-crop":
        if w < size or h < size:
            raise CorruptImageError(path, f"is {w}x{h} (WxH), smaller than the {size}x{size} crop of policy "
                                          f"'center-crop'; use resize-shorter-center-crop")
        return TF.center_crop(img, [size, size])
    check_policy(policy)
    raise AssertionError("unreachable")


def _open(path: Path | str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()  # decode now, so truncated files fail here ("image file is truncated")
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(path, f"{type(exc).__name__}: {exc}") from None
    return img


#: Version of the file decoding (:func:`to_rgb8`); part of the standard loaders' cache key. 2: every Pillow mode
#: by what its values mean (v1 used ``Image.convert("RGB")``, which clips 16-bit grey to white). 3: embedded
#: non-sRGB ICC profiles of RGB and grey files converted (``icc="convert"``; v2 ignored them).
DECODER_VERSION = "3"

_16BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_DROPPED = "alpha dropped (colours kept as stored, not composited over a background)"


def _grey_rgb(grey8: np.ndarray) -> Image.Image:
    return Image.fromarray(np.repeat(grey8[..., None], 3, axis=2), "RGB")


def _scale_16bit(values: np.ndarray) -> np.ndarray:
    """0-65535 -> 0-255, rounded to nearest (round(v * 255 / 65535), exact in integers)."""
    v = values.astype(np.int64)
    return ((v * 255 + 32767) // 65535).astype(np.uint8)


@dataclass(frozen=True)
class _EmbeddedProfile:
    """What :func:`_embedded_profile` learnt of an embedded ICC profile."""

    same_as_srgb: bool  # converting would change no value by more than _SRGB_TOLERANCE
    description: str
    space: str  # "RGB", "GRAY", ...
    transform: Any  # LittleCMS transform to sRGB (input mode "RGB" or "L"), None for other colour spaces


_PROFILES: dict[bytes, _EmbeddedProfile] = {}  # profile bytes -> what they are (most files share a few profiles)
_SRGB_TOLERANCE = 1  # 8-bit levels (see _embedded_profile)


def _embedded_profile(icc: bytes, path: Path | str) -> _EmbeddedProfile:
    """Parse an embedded profile and build its transform to sRGB once per distinct profile (cached by its bytes).

    Whether it is sRGB is decided by values, not by name: a 9x9x9 grid of RGB colours (or 256 grey levels) through
    the transform stays within :data:`_SRGB_TOLERANCE` level of the stored values, so converting would only add
    rounding (the many "sRGB IEC61966-2.1" profiles of cameras and editors differ in their bytes)."""
    from PIL import ImageCms

    cached = _PROFILES.get(icc)
    if cached is not None:
        return cached
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        space = profile.profile.xcolor_space.strip()
        desc = (profile.profile.profile_description or "").strip() or "unnamed"
        if space == "RGB":
            levels = np.linspace(0, 255, 9).round().astype(np.uint8)
            grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(1, -1, 3)
            probe = Image.fromarray(grid, "RGB")
        elif space == "GRAY":
            probe = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(1, -1), "L")
        else:
            facts = _EmbeddedProfile(False, desc, space, None)
            _PROFILES[icc] = facts
            return facts
        # NOCACHE: the transform is shared by the decoding threads, and LittleCMS's one-pixel cache is per transform
        transform = ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), probe.mode, "RGB",
                                            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                            flags=ImageCms.Flags.NOCACHE)
        out = np.asarray(ImageCms.applyTransform(probe, transform), dtype=np.int16)
        same = int(np.abs(out - np.asarray(probe.convert("RGB"), dtype=np.int16)).max()) <= _SRGB_TOLERANCE
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise CorruptImageError(path, f"its embedded ICC profile cannot be read ({exc}); re-save the file without "
                                      f"it, or pass icc='ignore' to read the stored values as sRGB") from None
    facts = _EmbeddedProfile(same, desc, space, transform)
    _PROFILES[icc] = facts
    return facts


def _apply_icc(original: Image.Image, rgb: Image.Image, done: str | None, icc: str,
               path: Path | str) -> tuple[Image.Image, str | None]:
    """The sRGB image and the conversion note after honouring ``original``'s embedded profile (see
    :data:`ICC_POLICIES`): ``rgb`` is ``original`` converted to 8-bit RGB by the mode rules."""
    icc_bytes = original.info.get("icc_profile")
    if not icc_bytes:
        return rgb, done

    def note(text: str) -> str:
        return text if done is None else f"{done}; {text}"

    try:
        profile = _embedded_profile(icc_bytes, path)
    except CorruptImageError:
        if icc == "ignore":  # the stored values are used either way
            return rgb, note("embedded ICC profile unreadable, ignored (icc='ignore')")
        raise
    if profile.same_as_srgb:
        return rgb, done
    grey_mode = original.mode in ("1", "L", "LA", "La", "I", "F") or original.mode in _16BIT_GREY
    if profile.space != ("GRAY" if grey_mode else "RGB"):
        return rgb, note(f"embedded {profile.space} ICC profile of a {original.mode} image ignored (does not match)")
    if icc == "ignore":
        return rgb, note(f"embedded non-sRGB ICC profile ignored (icc='ignore'): {profile.description}")
    from PIL import ImageCms

    image = rgb.convert("L") if grey_mode else rgb  # grey replicated to R = G = B: L is that grey exactly
    try:
        out = ImageCms.applyTransform(image, profile.transform)
    except (ImageCms.PyCMSError, OSError, ValueError) as exc:
        raise CorruptImageError(path, f"its embedded ICC profile ({profile.description}) cannot be applied ({exc}); "
                                      f"pass icc='ignore' to read the stored values as sRGB") from None
    return out, note("converted to sRGB from its embedded ICC profile (LittleCMS, relative colorimetric): "
                     f"{profile.description}")


def to_rgb8(img: Image.Image, path: Path | str = "", raw_mode: str = "",
            icc: str = "convert") -> tuple[Image.Image, str | None]:
    """Convert a decoded Pillow image of any mode to 8-bit sRGB ("RGB"); returns it and what was done (``None``
    for an 8-bit RGB file without a non-sRGB ICC profile, which is used as it is).

    Args:
        img: a loaded image.
        path: the file, for error messages.
        raw_mode: the decoder's raw mode (``"RGB;16B"`` for a 16-bit-per-channel PNG), to say what Pillow did.
        icc: what to do with an embedded ICC profile of an RGB or grey file (:data:`ICC_POLICIES`).

    Raises:
        CorruptImageError: a 32-bit integer or float image whose values have no known range, a mode Pillow
            cannot convert, or an embedded profile that cannot be read.
    """
    check_icc(icc)
    if img.mode in ("CMYK", "LAB"):  # their colour conversion is the profile's (CMYK) or fixed (Lab)
        return _mode_to_rgb8(img, path, raw_mode)
    rgb, done = _mode_to_rgb8(img, path, raw_mode)
    return _apply_icc(img, rgb, done, icc, path)


def _mode_to_rgb8(img: Image.Image, path: Path | str, raw_mode: str) -> tuple[Image.Image, str | None]:
    """:func:`to_rgb8` by the image mode alone (embedded RGB and grey profiles not looked at)."""
    mode = img.mode
    if mode == "RGB":
        if ";16" in raw_mode:
            return img, "16 bits per channel reduced to 8 by Pillow (high byte, within 1 level of v·255/65535)"
        return img, None
    if mode == "1":
        return _grey_rgb(np.asarray(img.convert("L"))), "1-bit black/white expanded to 0/255, grey replicated to RGB"
    if mode == "L":
        return img.convert("RGB"), "grey replicated to RGB"
    if mode in _16BIT_GREY:  # numpy reads the byte order of each mode
        return _grey_rgb(_scale_16bit(np.asarray(img))), "16-bit grey scaled to 8 bits (v·255/65535), replicated to RGB"
    if mode == "I":
        values = np.asarray(img)
        lo, hi = int(values.min()), int(values.max())
        if lo < 0 or hi > 65535:
            raise CorruptImageError(path, f"32-bit integer grey image with values in [{lo}, {hi}]: not an 8- or 16-bit "
                                          f"range, so its white level is unknown; save it as an 8- or 16-bit PNG")
        return _grey_rgb(_scale_16bit(values)), ("32-bit integer grey read as 16-bit (0-65535), scaled to 8 bits, "
                                                 "replicated to RGB")
    if mode == "F":
        values = np.asarray(img, dtype=np.float64)
        if not np.isfinite(values).all():
            raise CorruptImageError(path, "floating-point grey image with NaN or infinite values")
        lo, hi = float(values.min()), float(values.max())
        if lo >= 0.0 and hi <= 1.0:
            return _grey_rgb(np.round(values * 255.0).astype(np.uint8)), ("floating-point grey in [0, 1] scaled to 8 "
                                                                          "bits (v·255), replicated to RGB")
        if lo >= 0.0 and hi <= 255.0:
            return _grey_rgb(np.round(values).astype(np.uint8)), ("floating-point grey in [0, 255] rounded to 8 bits, "
                                                                  "replicated to RGB")
        raise CorruptImageError(path, f"floating-point grey image with values in [{lo:.6g}, {hi:.6g}]: neither a [0, 1] "
                                      f"nor a [0, 255] range, so its white level is unknown; save it as an 8- or "
                                      f"16-bit PNG")
    if mode in ("LA", "La"):
        grey = np.asarray(img.convert("LA") if mode == "La" else img)[..., 0]
        return _grey_rgb(grey), f"grey replicated to RGB, {_ALPHA_DROPPED}"
    if mode == "P":
        if "transparency" in img.info:
            return img.convert("RGBA").convert("RGB"), f"palette expanded to RGB, {_ALPHA_DROPPED}"
        return img.convert("RGB"), "palette expanded to RGB"
    if mode == "PA":
        return img.convert("RGBA").convert("RGB"), f"palette expanded to RGB, {_ALPHA_DROPPED}"
    if mode in ("RGBA", "RGBa", "RGBX"):
        done = "padding byte dropped" if mode == "RGBX" else _ALPHA_DROPPED
        if ";16" in raw_mode:
            done += "; 16 bits per channel reduced to 8 by Pillow (high byte)"
        return (img.convert("RGBA") if mode == "RGBa" else img).convert("RGB"), done
    if mode == "CMYK":
        icc = img.info.get("icc_profile")
        if icc:
            from PIL import ImageCms

            try:
                rgb = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                                                ImageCms.createProfile("sRGB"), outputMode="RGB")
            except (ImageCms.PyCMSError, OSError) as exc:
                raise CorruptImageError(path, f"CMYK image whose embedded ICC profile cannot be used ({exc})") from None
            return rgb, "CMYK converted to sRGB with its embedded ICC profile (LittleCMS, perceptual intent)"
        return img.convert("RGB"), ("CMYK without a colour profile converted by Pillow's formula "
                                    "R = (255 - C)(255 - K)/255 (colours approximate)")
    if mode == "YCbCr":
        return img.convert("RGB"), "YCbCr converted to RGB (JPEG full-range BT.601)"
    if mode == "LAB":
        from PIL import ImageCms

        transform = ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")
        return ImageCms.applyTransform(img, transform), "CIE Lab converted to sRGB (LittleCMS, D50 Lab)"
    try:
        return img.convert("RGB"), f"mode {mode} converted to RGB by Pillow"
    except (ValueError, OSError) as exc:
        raise CorruptImageError(path, f"image mode {mode!r} cannot be converted to RGB ({exc})") from None


def _raw_mode(img: Image.Image) -> str:
    """The decoder's raw mode of an opened, not yet loaded image ("RGB;16B" for 16-bit PNG), or ""."""
    try:
        return str(img.tile[0][3]) if img.tile else ""
    except (IndexError, TypeError):
        return ""


def open_rgb8(path: Path | str, icc: str = "convert") -> tuple[Image.Image, str | None, dict[str, str]]:
    """Open and decode an image file of any Pillow mode and convert it with :func:`to_rgb8` (``icc``: see
    :data:`ICC_POLICIES`).

    Returns the 8-bit RGB image, what :func:`to_rgb8` did (``None``: nothing) and the file's facts:
    ``format`` (Pillow's, lower case: ``"png"``, ``"jpeg"``), ``mode`` (as decoded) and ``raw_mode`` (the
    decoder's, ``"RGB;16B"`` for a 16-bit-per-channel PNG).

    Raises:
        CorruptImageError: the file cannot be decoded (truncated, corrupt, not an image) or converted.
        FileNotFoundError: no such file.
    """
    try:
        img = Image.open(path)
        raw_mode = _raw_mode(img)
        img.load()  # decode now, so truncated files fail here ("image file is truncated")
    except FileNotFoundError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise CorruptImageError(path, f"{type(exc).__name__}: {exc}") from None
    facts = {"format": (img.format or "unknown").lower(), "mode": img.mode, "raw_mode": raw_mode}
    rgb, conversion = to_rgb8(img, path, raw_mode, icc)
    return rgb, conversion, facts


def decode_image_info(path: Path | str, policy: str, size: int,
                      icc: str = "convert") -> tuple[np.ndarray, tuple[int, int], str | None]:
    """:func:`decode_image` that also returns what :func:`to_rgb8` did to the file (``None``: nothing)."""
    img, conversion, _ = open_rgb8(path, icc)
    original = img.size
    img = apply_policy(img, policy, size, path=path)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1), original, conversion


def decode_image(path: Path | str, policy: str, size: int, icc: str = "convert") -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image file of any Pillow mode to ``(3, size, size)`` uint8 sRGB under ``policy`` (see
    :func:`to_rgb8`; ``icc``: :data:`ICC_POLICIES`); CorruptImageError names the file.

    Returns the array and the file's original (W, H).
    """
    rgb, original, _ = decode_image_info(path, policy, size, icc)
    return rgb, original


def array_image(hwc: np.ndarray, policy: str, size: int, name: str) -> np.ndarray:
    """Apply a policy to an already decoded ``(H, W, 3)`` uint8 image; returns ``(3, size, size)``."""
    if policy == "none" and hwc.shape[:2] == (size, size):
        return hwc.transpose(2, 0, 1)
    img = apply_policy(Image.fromarray(hwc), policy, size, path=name)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def decode_mask(path: Path | str, policy: str, size: int, image_size: tuple[int, int], valid: set[int]) -> np.ndarray:
    """Decode a class-index mask (palette or grey PNG) to ``(size, size)`` uint8 under ``policy`` (nearest).

    Args:
        image_size: the (W, H) of the image the mask belongs to; a mask of another size is an error.
        valid: the allowed index values (e.g. 0..20 and 255 for Pascal VOC).
    """
    img = _open(path)
    if img.mode not in ("P", "L"):
        raise CorruptImageError(path, f"a segmentation mask must be a palette (P) or grey (L) PNG of class "
                                      f"indices, got mode {img.mode!r} (colour-coded masks are not indices)")
    if img.size != tuple(image_size):
        raise CorruptImageError(path, f"mask is {img.size[0]}x{img.size[1]} but its image is "
                                      f"{image_size[0]}x{image_size[1]}")
    values = np.unique(np.asarray(img))
    bad = [int(v) for v in values if int(v) not in valid]
    if bad:
        raise CorruptImageError(path, f"mask holds index value(s) {bad[:10]} outside the dataset's classes")
    img = apply_policy(img, policy, size, mask=True, path=path)
    return np.asarray(img, dtype=np.uint8)


def decode_prediction(path: str | Path, icc: str = "convert") -> tuple[np.ndarray, dict[str, Any]]:
    """``(H, W, 3)`` uint8 RGB of an image file and facts about it: ``format``, ``mode`` (as decoded; a 16-bit RGB
    PNG says that Pillow kept the high byte), ``bits`` (per channel) and ``conversion`` (what
    :func:`colorbench.datasets.imaging.to_rgb8`, the project's one decoder, did; ``None``: nothing). ``icc``: what
    to do with an embedded non-sRGB ICC profile (:data:`colorbench.datasets.imaging.ICC_POLICIES`).

    A floating-point (mode ``F``) file is refused: ``to_rgb8`` guesses its white level from its value range
    ([0, 1] or [0, 255]), which is ambiguous for a dark image, and a scored colorization must not rest on a guess.

    Raises:
        CorruptImageError: the file cannot be decoded (truncated, not an image, a mode with no known range).
    """
    rgb_img, conversion, facts = open_rgb8(path, icc)
    mode, raw_mode = facts["mode"], facts["raw_mode"]
    if mode == "F":
        raise CorruptImageError(path, "floating-point (mode F) images are not 8- or 16-bit colorizations (their white "
                                      "level is a guess); save 8-bit RGB PNGs")
    rgb = np.asarray(rgb_img, dtype=np.uint8)
    bits = _bit_depth(mode, raw_mode)
    if bits == 16 and mode in ("RGB", "RGBA"):
        mode = f"{mode} (16-bit PNG: Pillow keeps the high byte)"
    return rgb, {"format": facts["format"], "mode": mode, "bits": bits, "conversion": conversion}


def _bit_depth(mode: str, raw_mode: str) -> int:
    """Bits per channel of the file, from the decoded mode and the decoder's raw mode (``RGB;16B``: 16)."""
    if mode.startswith("I;16") or ";16" in raw_mode:
        return 16
    if mode in ("I", "F"):
        return 32
    return 1 if mode == "1" else 8
