"""8-bit conventions: quantising [0, 1] images to 8-bit values, and reading 8-bit colours exactly."""

from __future__ import annotations

import torch
from torch import Tensor


#: 8-bit quantisation of [0, 1] values before the measure: none, round (the float32 product x*255 rounded half to
#: even, as basicsr's tensor2img; on 8-bit values k/255 it gives k exactly) or truncate (the exact product x*255
#: cast to uint8, as ``(255 * np.clip(x, 0, 1)).astype(np.uint8)`` on float64 values).
QUANTIZE_MODES = ("none", "round", "truncate")


def quantize_unit(images: Tensor, mode: str) -> Tensor:
    """[0, 1] floats -> the 8-bit values of ``mode`` (see :data:`QUANTIZE_MODES`), back on [0, 1] (float32)."""
    if mode == "none":
        return images
    if mode not in QUANTIZE_MODES:
        raise ValueError(f"unknown quantize mode {mode!r}; choose one of {QUANTIZE_MODES}")
    return eight_bit_values(images, mode).div_(255.0).float()


def eight_bit_values(x: Tensor, quantize: str) -> Tensor:
    """The 8-bit values (0-255, float64 integers) of [0, 1] images under ``quantize``: ``"round"`` (the float32
    product x*255 rounded half to even, as basicsr's ``tensor2img`` on its float32 array) or ``"truncate"`` (the
    exact product, truncated: ``(255 * np.clip(x, 0, 1)).astype(np.uint8)`` on the values upcast to float64)."""
    if quantize == "round":  # basicsr's tensor2img: (float32 array * 255.0).round()
        return x.float().mul(255.0).round_().double()
    # (255 * x).astype(uint8) of the exact product (a float32 value times 255 is exact in float64); values are
    # >= 0, so the cast truncates to the floor. A copy: x.double() of a float64 tensor is x itself
    return x.to(torch.float64, copy=True).mul_(255.0).floor_()


def exact_8bit_levels(pixels: Tensor, channel_dim: int = 0) -> Tensor:
    """``pixels`` in float64, with every 8-bit colour read exactly: a pixel whose three values are all 8-bit levels
    k/255 as stored in ``pixels``' dtype (float32 k/255: a decoded 8-bit file) gets the exact k/255, so 8-bit images
    convert as their uint8 values would. Other pixels are kept (upcast): a float colour is taken as 8-bit only when
    all three values coincide with levels (one value alone does, by chance, for ~1e-5 of float32 values).

    Args:
        pixels: float RGB values, the three channels along ``channel_dim``.
    """
    wide = pixels.double()
    level = torch.round(wide * 255.0).div_(255.0)
    is_8bit = (level.to(pixels.dtype) == pixels).all(dim=channel_dim, keepdim=True)
    return torch.where(is_8bit, level, wide)
