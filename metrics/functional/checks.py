"""Input validation shared by the metric functions: image batches, reductions of per-image values, crops."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor


def check_images(x: Any, name: str = "images") -> None:
    """Raise TypeError/ValueError unless ``x`` is an ``(N, 3, H, W)`` finite float tensor in [0, 1] with N >= 1.

    The message names the problem and how to fix it.
    """
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor of shape (N, 3, H, W), got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(
            f"{name}: expected RGB images of shape (N, 3, H, W), got {tuple(x.shape)}; "
            "add the batch dimension with x[None], turn grey (N, 1, H, W) into RGB with "
            "colorbench.color.grey_to_rgb, and put channels first with x.permute(0, 3, 1, 2)"
        )
    if not x.is_floating_point():
        raise TypeError(_integer_input_message(x, name))
    if x.shape[0] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise ValueError(f"{name}: empty batch of shape {tuple(x.shape)}; pass at least one non-empty image")
    lo, hi = (float(v) for v in torch.aminmax(x.detach()))  # one pass; NaN propagates to both, inf shows in one
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"{name}: contains NaN or inf values; check the method's output (e.g. a diverged model)")
    if lo < 0.0 or hi > 1.0:
        raise ValueError(
            f"{name}: values must be in [0, 1], got min {lo!r} and max {hi!r}; "  # every digit: 1 + 1e-6 is not "1"
            "clamp colorized output with x.clamp(0, 1), and divide 0-255 images by 255"
        )


def _integer_input_message(x: Tensor, name: str) -> str:
    """The error for a non-float tensor: its dtype, its value range, and the conversion that fits that range."""
    if x.dtype == torch.bool or x.is_complex() or x.numel() == 0:
        return f"{name}: expected a floating-point tensor in [0, 1], got dtype {x.dtype}"
    lo, hi = int(x.min()), int(x.max())
    head = f"{name}: expected a floating-point tensor in [0, 1], got dtype {x.dtype} with values in [{lo}, {hi}]"
    if lo < 0:
        return f"{head}: negative integers are not image values (signed residuals or labels?); pass RGB in [0, 1]"
    if hi > 255:
        return (f"{head}: integers above 255 are not 8-bit images; for 16-bit images use x.float() / 65535, "
                "otherwise rescale to [0, 1]")
    return f"{head}: convert 8-bit (uint8) images with x.float() / 255"


def check_image_pair(pred: Any, target: Any) -> None:
    """Validate a (colorized, real) pair of batches: each as :func:`check_images`, same shape, same device."""
    check_images(pred, "pred")
    check_images(target, "target")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}; "
            "each colorized image must have the size of its real image (resize or crop them alike)"
        )
    if pred.device != target.device:
        raise ValueError(f"pred is on {pred.device} but target on {target.device}; move both to one device")


#: The reductions of the per-image functions (mse, psnr, ssim): None (default) keeps one value per image,
#: ``"per_image_mean"`` averages them; psnr also takes ``"global"`` (see :data:`PSNR_REDUCTIONS`).
PER_IMAGE_REDUCTIONS = (None, "per_image_mean")


def reduce_per_image(values: Tensor, reduction: str | None, name: str) -> Tensor:
    """``values`` (per image) as they are (``reduction=None``) or their mean (``"per_image_mean"``)."""
    if reduction not in PER_IMAGE_REDUCTIONS:
        raise ValueError(f"unknown {name} reduction {reduction!r}; choose None (per-image values) or 'per_image_mean'")
    return values if reduction is None else values.mean()


def check_crop_border(crop_border: int, height: int | None = None, width: int | None = None) -> None:
    """Raise ValueError unless ``crop_border`` is an int >= 0 that leaves pixels of an image of ``height`` x
    ``width`` (when given)."""
    if isinstance(crop_border, bool) or not isinstance(crop_border, int) or crop_border < 0:
        raise ValueError(f"crop_border must be an int >= 0 (pixels cut from each edge), got {crop_border!r}")
    if height is not None and width is not None and min(height, width) <= 2 * crop_border:
        raise ValueError(f"crop_border={crop_border} leaves no pixels of {height}x{width} images; use a smaller "
                         "crop_border or larger images")
