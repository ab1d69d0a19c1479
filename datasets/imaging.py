"""Decoding one image file and the named resize/crop policies shared by the standard dataset loaders.

Images are decoded with Pillow and converted to RGB with ``Image.convert("RGB")`` (grey, CMYK and palette
files included); segmentation masks must be palette ("P") or grey ("L") PNGs of class indices and are resized
with nearest neighbour only. Resizing uses torchvision's functional transforms on PIL images (so a policy means
exactly what ``transforms.Resize`` / ``transforms.CenterCrop`` mean in PyTorch code).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

__all__ = ["RESIZE_POLICIES", "CorruptImageError", "apply_policy", "check_policy", "decode_image", "decode_mask"]

#: The named resize/crop policies (recorded in every dataset's info).
RESIZE_POLICIES: dict[str, str] = {
    "resize-shorter-center-crop": "resize the shorter side to `size` (bicubic, aspect kept), then centre-crop "
                                  "size x size (torchvision Resize(size) + CenterCrop(size))",
    "resize": "resize to size x size (bicubic), aspect ratio not kept (torchvision Resize((size, size)))",
    "center-crop": "centre-crop size x size without resizing; an image smaller than size is an error",
    "none": "no resizing; every image must already be size x size (an error names the first that is not)",
}

#: Masks are never interpolated between class indices.
_MASK_INTERP = InterpolationMode.NEAREST
_IMAGE_INTERP = InterpolationMode.BICUBIC


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
    interp = _MASK_INTERP if mask else _IMAGE_INTERP
    if policy == "resize-shorter-center-crop":
        if min(w, h) != size:
            img = TF.resize(img, size, interpolation=interp)
        return TF.center_crop(img, [size, size]) if img.size != (size, size) else img
    if policy == "resize":
        return img if (w, h) == (size, size) else TF.resize(img, [size, size], interpolation=interp)
    if policy == "center-crop":
        if w < size or h < size:
            raise CorruptImageError(path, f"is {w}x{h} (WxH), smaller than the {size}x{size} crop of policy "
                                          f"'center-crop'; use resize-shorter-center-crop")
        return TF.center_crop(img, [size, size]) if (w, h) != (size, size) else img
    if policy == "none":
        if (w, h) != (size, size):
            raise CorruptImageError(path, f"is {w}x{h} (WxH) but policy 'none' needs {size}x{size}; choose another "
                                          f"resize policy or size")
        return img
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


def decode_image(path: Path | str, policy: str, size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decode an image file to ``(3, size, size)`` uint8 RGB under ``policy``; CorruptImageError names the file.

    Returns the array and the file's original (W, H).
    """
    img = _open(path)
    original = img.size
    if img.mode != "RGB":
        img = img.convert("RGB")
    img = apply_policy(img, policy, size, path=path)
    return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1), original


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
