"""Batched colour conversions in torch: sRGB <-> CIE Lab (D65, 2° observer) and sRGB -> grey.

All functions take and return channel-first tensors ``(..., C, H, W)`` (any leading batch dims), work on CPU and
CUDA, in float32 and float64, and are differentiable (methods use them inside losses). The constants are those
of scikit-image's ``rgb2lab`` / ``lab2rgb`` (sRGB primaries, D65 white ``(0.95047, 1.0, 1.08883)``, CIE
thresholds 0.008856 and 7.787), so the results agree with scikit-image to float rounding; the tolerance is tested
in ``tests/test_color.py``.

Why by hand: scikit-image works on NumPy arrays one image at a time, on the CPU, and kornia is not a
dependency; colour conversion sits inside every training step, so it has to be batched torch on the
method's device.

Grey conventions (:data:`GREY_CONVENTIONS`) name how a colour image is turned into the grey input given to every
method; the convention is applied to all methods alike and recorded with each result:

* ``"bt601"`` (default): ITU-R BT.601 luma ``0.299 R' + 0.587 G' + 0.114 B'`` of the gamma-encoded sRGB values,
  as PIL's ``convert("L")`` and the handcrafted translation H_t of the SpyncoGan paper compute it.
* ``"cie-l"``: CIE L* of the image divided by 100.

Methods that work in Lab derive their L channel from the grey image with :func:`grey_to_lightness`, never from
the colour target.
"""

from __future__ import annotations

import torch
from torch import Tensor

from colorbench.core.grey import GREY_CONVENTIONS, Grey  # noqa: F401 (re-exported)

BT601_WEIGHTS = (0.299, 0.587, 0.114)
#: D65 reference white, 2° observer (scikit-image's default illuminant for rgb2lab).
D65_WHITE = (0.95047, 1.0, 1.08883)
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_EPS_LAB = 0.008856  # CIE epsilon (skimage's value)
_KAPPA_LIN = 7.787  # slope of the linear segment of f(t) (skimage's value)

#: Network scaling of Lab used by the pix2pix/CycleGAN reference colorization code: L/50 - 1, ab/110.
L_SCALE, AB_SCALE = 50.0, 110.0


def _check_channels(x: Tensor, n: int, name: str) -> None:
    if not torch.is_tensor(x):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 3 or x.shape[-3] != n:
        raise ValueError(f"{name}: expected shape (..., {n}, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got {x.dtype} (convert uint8 with x / 255)")


def _matrix(rows, like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply_matrix(m: Tensor, x: Tensor) -> Tensor:
    # (3,3) applied over the channel axis of (..., 3, H, W)
    return torch.einsum("ij,...jhw->...ihw", m, x)


def srgb_to_linear(rgb: Tensor) -> Tensor:
    """Inverse sRGB gamma (IEC 61966-2-1), elementwise."""
    # in-place steps on one new tensor: the colour conversion is a large share of the ab-histogram metrics' time
    power = torch.clamp(rgb, min=0.04045).add_(0.055).div_(1.055).pow_(2.4)
    return torch.where(rgb > 0.04045, power, rgb / 12.92)


def linear_to_srgb(lin: Tensor) -> Tensor:
    """sRGB gamma encoding, elementwise."""
    safe = torch.clamp(lin, min=0.0031308)
    return torch.where(lin > 0.0031308, 1.055 * safe ** (1 / 2.4) - 0.055, 12.92 * lin)


def _f(t: Tensor) -> Tensor:
    root = torch.clamp(t, min=_EPS_LAB).pow_(1.0 / 3.0)
    return torch.where(t > _EPS_LAB, root, t * _KAPPA_LIN + 16.0 / 116.0)


def _f_inv(t: Tensor) -> Tensor:
    return torch.where(t > 0.2068966, t**3, (t - 16.0 / 116.0) / _KAPPA_LIN)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> CIE Lab (L in [0, 100], a and b roughly in [-128, 127]), D65.

    Args:
        rgb: ``(..., 3, H, W)`` float tensor.
    """
    _check_channels(rgb, 3, "rgb_to_lab")
    xyz = _apply_matrix(_matrix(_XYZ_FROM_RGB, rgb), srgb_to_linear(rgb))
    white = torch.tensor(D65_WHITE, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    fx, fy, fz = _f(xyz / white).unbind(-3)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)
    return lab


def lab_to_rgb(lab: Tensor, clamp: bool = True) -> Tensor:
    """CIE Lab (D65) -> sRGB. With ``clamp`` (default, as scikit-image) the result is clipped to [0, 1].

    Like scikit-image, a negative z (b far above the gamut) is set to 0 before the inverse transform.
    """
    _check_channels(lab, 3, "lab_to_rgb")
    L, a, b = lab.unbind(-3)
    fy = (L + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = torch.clamp(fy - b / 200.0, min=0.0)
    white = torch.tensor(D65_WHITE, dtype=lab.dtype, device=lab.device).view(3, 1, 1)
    xyz = _f_inv(torch.stack((fx, fy, fz), dim=-3)) * white
    rgb_from_xyz = torch.linalg.inv(_matrix(_XYZ_FROM_RGB, lab).double()).to(lab.dtype)
    rgb = linear_to_srgb(_apply_matrix(rgb_from_xyz, xyz))
    return rgb.clamp(0.0, 1.0) if clamp else rgb


def rgb_to_grey(rgb: Tensor, convention: Grey) -> Tensor:
    """sRGB ``(..., 3, H, W)`` in [0, 1] -> grey ``(..., 1, H, W)`` in [0, 1] under a named convention."""
    _check_channels(rgb, 3, "rgb_to_grey")
    if convention == "bt601":
        w = torch.tensor(BT601_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
        return (rgb * w).sum(dim=-3, keepdim=True)
    if convention == "cie-l":
        return rgb_to_lab(rgb)[..., :1, :, :] / 100.0
    raise ValueError(f"unknown grey convention {convention!r}; choose one of {GREY_CONVENTIONS}")


def grey_to_lightness(gray: Tensor, convention: Grey) -> Tensor:
    """The CIE L* (0-100) a Lab method uses for a grey input, ``(..., 1, H, W)`` -> ``(..., 1, H, W)``.

    For ``bt601`` the grey value g is read as the neutral sRGB colour (g, g, g), whose L* is 116 f(lin(g)) - 16
    (a and b are 0). For ``cie-l`` the grey already is L*/100.
    """
    _check_channels(gray, 1, "grey_to_lightness")
    if convention == "bt601":
        return 116.0 * _f(srgb_to_linear(gray)) - 16.0
    if convention == "cie-l":
        return gray * 100.0
    raise ValueError(f"unknown grey convention {convention!r}; choose one of {GREY_CONVENTIONS}")


def grey_ab_to_rgb(gray: Tensor, ab: Tensor, convention: Grey) -> Tensor:
    """Combine a grey input (its L derived by :func:`grey_to_lightness`) with predicted ab -> sRGB in [0, 1]."""
    _check_channels(ab, 2, "grey_ab_to_rgb(ab)")
    L = grey_to_lightness(gray, convention)
    return lab_to_rgb(torch.cat((L, ab), dim=-3))


def grey_to_rgb(gray: Tensor) -> Tensor:
    """Replicate a grey image to three channels."""
    _check_channels(gray, 1, "grey_to_rgb")
    return gray.expand(*gray.shape[:-3], 3, *gray.shape[-2:]).contiguous()


def normalize_l(L: Tensor) -> Tensor:
    """L* in [0, 100] -> [-1, 1] (pix2pix colorization convention)."""
    return L / L_SCALE - 1.0


def normalize_ab(ab: Tensor) -> Tensor:
    """ab -> roughly [-1, 1] by dividing by 110 (pix2pix colorization convention)."""
    return ab / AB_SCALE


def denormalize_ab(ab_n: Tensor) -> Tensor:
    return ab_n * AB_SCALE
