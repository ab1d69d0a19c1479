"""Streaming full-reference metrics: MSE, PSNR, SSIM, sum of absolute differences and the SSIM of the luminance
against the grey input (per-image values, computed by ``functional``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from colorbench.core.grey import Grey
from colorbench.metrics import functional as MF
from colorbench.metrics.base import StreamingMetric, ValueBuffer
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.registry import register_metric

_INPUT = "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real"


def cat_values(buffer: ValueBuffer, metric: str) -> Tensor:
    """The per-image values accumulated so far; a clear error if nothing was accumulated."""
    if len(buffer) == 0:
        raise ValueError(f"{metric}: compute() called before any update(); give it at least one batch")
    return buffer.tensor()


@register_metric("mse")
class MeanSquaredError(StreamingMetric):
    """Mean over images of the per-image MSE on the 0-255 scale (averaged over pixels and RGB channels)."""

    name = "mse"
    outputs = {"mse": False}
    version = "2"  # 2026-12-02: summation order of the faster kernels (issue #13), < 1e-13 relative
    per_image = True

    def __init__(self) -> None:
        super().__init__()
        self.add_state("values", ValueBuffer(), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.values.append(inputs.mse())

    def compute(self) -> dict[str, float]:
        return {"mse": float(cat_values(self.values, self.name).mean())}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"mse": cat_values(self.values, self.name)}

    def params(self) -> dict[str, Any]:
        return {"input": _INPUT, "scale": "0-255", "average": "pixels and RGB channels",
                "reduction": "per_image_mean", "grey": "n/a"}


@register_metric("psnr")
class PeakSignalNoiseRatio(StreamingMetric):
    """PSNR in dB, peak 255 on the 0-255 scale.

    Args:
        data_range: peak value (the value does not depend on it; see ``functional.psnr_from_mse``).
        reduction: ``"per_image_mean"`` (default, mean of per-image PSNR; +inf if any image is identical) or
            ``"global"`` (PSNR of the MSE pooled over all pixels of all images).
        crop_border: pixels cut from each edge of both images first (default 0; basicsr's ``crop_border``, 4 in
            DDColor's options).
        quantize: ``"none"`` (default: the float images), ``"round"`` (both images made 8-bit as basicsr's
            ``tensor2img``: DDColor's validation) or ``"truncate"`` first (``functional.mse_8bit_cropped``).
    """

    name = "psnr"
    outputs = {"psnr": True}
    version = "2"  # 2026-12-02: summation order of the faster kernels (issue #13), < 1e-13 relative
    per_image = True

    def __init__(self, *, data_range: float = 255.0, reduction: str = "per_image_mean", crop_border: int = 0,
                 quantize: str = "none") -> None:
        super().__init__()
        if reduction not in MF.PSNR_REDUCTIONS:
            raise ValueError(f"unknown PSNR reduction {reduction!r}; choose one of {MF.PSNR_REDUCTIONS}")
        if not data_range > 0:
            raise ValueError(f"data_range must be positive, got {data_range}")
        MF.check_crop_border(crop_border)
        if quantize not in MF.QUANTIZE_MODES:
            raise ValueError(f"unknown quantize mode {quantize!r}; choose one of {MF.QUANTIZE_MODES}")
        self.data_range = float(data_range)
        self.reduction = reduction
        self.crop_border, self.quantize = crop_border, quantize
        self.add_state("mse_values", ValueBuffer(), reduce="cat")
        self.add_state("num_pixels", ValueBuffer(), reduce="cat")  # per image, for the "global" reduction

    def input_problem(self, height: int, width: int) -> str | None:
        if min(height, width) <= 2 * self.crop_border:
            return (f"psnr with crop_border={self.crop_border} needs images larger than {2 * self.crop_border} "
                    f"pixels on each side, got {height}x{width}")
        return None

    def update_inputs(self, inputs: MetricInputs) -> None:
        if (self.crop_border, self.quantize) == (0, "none"):
            values = inputs.mse()
        else:
            key = ("mse_8bit_cropped", self.crop_border, self.quantize)
            values = inputs.memo(key, lambda: MF.mse_8bit_cropped(inputs.pred, inputs.target, self.crop_border,
                                                                  self.quantize))
        self.mse_values.append(values)
        pixels = (inputs.pred.shape[2] - 2 * self.crop_border) * (inputs.pred.shape[3] - 2 * self.crop_border)
        self.num_pixels.append(torch.full_like(values, float(pixels)))

    def compute(self) -> dict[str, float]:
        mse = cat_values(self.mse_values, self.name)
        value = MF.psnr_from_mse(mse, self.data_range, self.reduction, self.num_pixels.tensor())
        return {"psnr": float(value)}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"psnr": MF.psnr_from_mse(cat_values(self.mse_values, self.name), self.data_range, None)}

    def params(self) -> dict[str, Any]:
        return {"input": _INPUT, "scale": "0-255", "data_range": self.data_range, "reduction": self.reduction,
                "crop_border": self.crop_border, "quantize": self.quantize, "identical_images": "+inf", "grey": "n/a"}


@register_metric("ssim")
class StructuralSimilarity(StreamingMetric):
    """Mean over images of the per-image SSIM (Wang et al. 2004, as scikit-image; see ``functional.ssim``).

    Args:
        variant: ``"gaussian"`` (default: 11x11 Gaussian window, sigma 1.5, population covariance) or
            ``"uniform"`` (scikit-image's default: 7x7 uniform window, sample covariance).
        data_range, k1, k2: SSIM constants C1 = (k1 data_range)^2, C2 = (k2 data_range)^2.
        compute_dtype: ``"float64"`` (default, 1e-10 from scikit-image, also near black regions) or
            ``"float32"`` (~2x faster kernel; up to ~1e-5 off where a window's mean is far from the image's).
    """

    name = "ssim"
    outputs = {"ssim": True}
    # 2: float32 computation by default (v1 computed in float64; values differ by < 1e-6). 3: the float32 path
    # centres each channel in float32 (v2: in float64); values differ from v2 by < 4e-7, from skimage by < 1e-6.
    # 4 (2026-12-02): float32 rounding of the faster kernel (issue #13): values move by < 1e-7.
    version = "5"  # 2026-12-07: float64 by default (issue #24): values move by up to ~1e-5 near black regions
    per_image = True

    def __init__(self, *, variant: str = "gaussian", data_range: float = 255.0, k1: float = 0.01,
                 k2: float = 0.03, compute_dtype: str = "float64") -> None:
        super().__init__()
        MF.ssim_settings(variant)  # validates the name
        if compute_dtype not in MF.SSIM_COMPUTE_DTYPES:
            raise ValueError(f"unknown SSIM compute_dtype {compute_dtype!r}; choose one of {MF.SSIM_COMPUTE_DTYPES}")
        self.variant = variant
        self.data_range, self.k1, self.k2 = float(data_range), float(k1), float(k2)
        self.compute_dtype = compute_dtype
        self.add_state("values", ValueBuffer(), reduce="cat")

    def input_problem(self, height: int, width: int) -> str | None:
        win = MF.ssim_settings(self.variant)["win_size"]
        if height < win or width < win:
            return (f"SSIM ({self.variant} window) needs images of at least {win}x{win} pixels, got {height}x{width}; "
                    f"use larger images (--image-size) or the uniform 7x7 variant")
        return None

    def update_inputs(self, inputs: MetricInputs) -> None:
        key = ("ssim", self.variant, self.data_range, self.k1, self.k2, self.compute_dtype)
        self.values.append(inputs.memo(key, lambda: MF.ssim_unchecked(
            inputs.pred, inputs.target, self.variant, self.data_range, self.k1, self.k2, self.compute_dtype)))

    def compute(self) -> dict[str, float]:
        return {"ssim": float(cat_values(self.values, self.name).mean())}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"ssim": cat_values(self.values, self.name)}

    def params(self) -> dict[str, Any]:
        return {"input": _INPUT, "variant": self.variant, **MF.ssim_settings(self.variant),
                "data_range": self.data_range, "k1": self.k1, "k2": self.k2,
                "average": "valid region ((win_size-1)//2 border cropped), then RGB channels",
                "reduction": "per_image_mean", "compute_dtype": self.compute_dtype, "reference": "skimage",
                "grey": "n/a"}


@register_metric("sum_abs_diff")
class SumAbsoluteDifference(StreamingMetric):
    """Mean over images of the per-image sum of absolute pixel differences (Shanis et al., sec. 4.2).

    Args:
        scale: ``"0-255"`` (default), ``"0-1"`` or ``"-1-1"``; see ``functional.sum_abs_diff``.
        quantize: round both images to 8-bit integers first.
    """

    name = "sum_abs_diff"
    outputs = {"sum_abs_diff": False}
    version = "2"  # 2026-12-02: new kernel (issue #13); no value moved in the comparison
    per_image = True

    def __init__(self, *, scale: str = "0-255", quantize: bool = False) -> None:
        super().__init__()
        if scale not in MF.SUM_ABS_DIFF_SCALES:
            raise ValueError(f"unknown sum_abs_diff scale {scale!r}; choose one of {tuple(MF.SUM_ABS_DIFF_SCALES)}")
        self.scale, self.quantize = scale, bool(quantize)
        self.add_state("values", ValueBuffer(), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        stats = None if self.quantize else inputs.difference_statistics()
        self.values.append(MF.sum_abs_diff_unchecked(inputs.pred, inputs.target, self.scale, self.quantize, stats))

    def compute(self) -> dict[str, float]:
        return {"sum_abs_diff": float(cat_values(self.values, self.name).mean())}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"sum_abs_diff": cat_values(self.values, self.name)}

    def params(self) -> dict[str, Any]:
        return {"input": _INPUT, "scale": self.scale, "quantize_8bit": self.quantize,
                "sum": "all pixels and the 3 RGB channels of an image (grows with image size)",
                "reduction": "per_image_mean", "source": "Shanis et al., Image Colorization using CycleGAN, 4.2",
                "grey": "n/a"}


@register_metric("luma_ssim")
class LumaStructuralSimilarity(StreamingMetric):
    """Mean over images of the SSIM between the grey of the colorization and the grey input it was given.

    A colorization must keep its input's structure: only the colours are the method's to choose. The grey of the
    real image under the run's grey convention is exactly the grey the method was given, so this compares the
    output's grey with the input (see ``functional.luma_ssim``). The grey baseline scores 1; structure-less output
    scores near 0; the leaderboard marks rows below their dataset's threshold (:func:`structure_references`,
    recorded with every record; ``colorbench.reports.tables.structure_threshold``).

    Args:
        grey_convention: how both images are turned into grey, ``"bt601"`` (BT.601 luma of the gamma-encoded RGB)
            or ``"cie-l"`` (L*/100); the runner passes the run's convention. The default exists so that
            ``METRICS.get("luma_ssim")()`` works; it is recorded in ``params()["grey"]`` either way.
        variant, data_range, k1, k2, compute_dtype: as the ``ssim`` metric.
    """

    name = "luma_ssim"
    outputs = {"luma_ssim": True}
    # 2 (2026-12-02): float32 rounding of the faster kernel (issue #13): values move by < 1e-7.
    version = "3"  # 2026-12-07: float64 by default (issue #24): values move by up to ~1e-5 near black regions
    per_image = True
    takes_grey_convention = True

    def __init__(self, *, grey_convention: Grey = Grey.BT601, variant: str = "gaussian", data_range: float = 255.0,
                 k1: float = 0.01, k2: float = 0.03, compute_dtype: str = "float64") -> None:
        super().__init__()
        grey_convention = Grey.parse(grey_convention)
        MF.ssim_settings(variant)  # validates the name
        if compute_dtype not in MF.SSIM_COMPUTE_DTYPES:
            raise ValueError(f"unknown SSIM compute_dtype {compute_dtype!r}; choose one of {MF.SSIM_COMPUTE_DTYPES}")
        self.grey_convention, self.variant = grey_convention, variant
        self.data_range, self.k1, self.k2 = float(data_range), float(k1), float(k2)
        self.compute_dtype = compute_dtype
        self.add_state("values", ValueBuffer(), reduce="cat")

    def input_problem(self, height: int, width: int) -> str | None:
        return StructuralSimilarity.input_problem(self, height, width)  # the same window

    def update_inputs(self, inputs: MetricInputs) -> None:
        conv = self.grey_convention
        grey = {side: inputs.memo(("grey", side, conv), lambda side=side: MF.luma(inputs.image(side), conv))
                for side in ("pred", "target")}
        key = ("luma_ssim", conv, self.variant, self.data_range, self.k1, self.k2, self.compute_dtype)
        self.values.append(inputs.memo(key, lambda: MF.luma_ssim_unchecked(
            grey["pred"], grey["target"], self.variant, self.data_range, self.k1, self.k2, self.compute_dtype)))

    def compute(self) -> dict[str, float]:
        return {"luma_ssim": float(cat_values(self.values, self.name).mean())}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"luma_ssim": cat_values(self.values, self.name)}

    def params(self) -> dict[str, Any]:
        return {"input": _INPUT + "; both turned into grey under `grey`", "grey": self.grey_convention,
                "compared": "grey of pred vs grey of target (= the grey input the method was given)",
                "variant": self.variant, **MF.ssim_settings(self.variant), "data_range": self.data_range,
                "k1": self.k1, "k2": self.k2, "average": "valid region ((win_size-1)//2 border cropped)",
                "reduction": "per_image_mean", "compute_dtype": self.compute_dtype, "reference": "skimage"}


#: The rule of :func:`structure_references` (recorded with the references).
STRUCTURE_REFERENCE_RULE = (
    "luma SSIM, on the evaluated real images, of two reference colorizations: each image's flat mean colour (no "
    "structure at all) and a 7x7 box blur of the image (structure kept, detail lost); the threshold is midway "
    "between them. On the built-in photos (528 test patches of 32x32, bt601) they score 0.58 and 0.76 (threshold "
    "0.67, near the 0.7 that colorbench.reports.tables.LUMA_SSIM_THRESHOLD fixed by hand for them); on shapes "
    "(500 of 32x32), whose sharp edges a blur hurts more, 0.22 and 0.45 (threshold 0.34)")


#: Images whose reference colorizations are made at once by :func:`structure_reference_values` (a float32 copy,
#: the flat and blurred references and their grey: ~13 MB per 256x256 image, so 32 images hold ~0.4 GB where
#: the whole 256-image batch held ~3 GB at its peak in a 50,000-image evaluate).
STRUCTURE_REFERENCE_SUB_BATCH = 32


def box_mean(padded: Tensor, k: int, group: int = 4) -> Tensor:
    """``torch.nn.functional.avg_pool2d(padded, k, stride=1)`` of float32 ``(N, C, H, W)``, the same values to the
    bit, 2-4x faster on the CPU.

    avg_pool2d's CPU kernel adds each window's k*k values one after another in row-major order, then divides by
    k*k; this adds the k*k shifted views in that order, one whole plane per addition (vectorised), ``group``
    images at a time so that the sum stays in the cache. Measured (1 thread, 32 images of 256x256, load ~2):
    avg_pool2d 9.0-12.6 ms per image, this 2.4-2.5 ms; exact equality is tested."""
    h, w = padded.shape[-2] - k + 1, padded.shape[-1] - k + 1
    out = torch.empty(padded.shape[:-2] + (h, w), dtype=padded.dtype, device=padded.device)
    for start in range(0, len(padded), group):
        x = padded[start:start + group]
        acc = out[start:start + group]
        acc.copy_(x[..., 0:h, 0:w])
        for dy in range(k):
            for dx in range(k):
                if dy or dx:
                    acc.add_(x[..., dy:dy + h, dx:dx + w])
        acc.div_(k * k)
    return out


def structure_reference_values(real: Tensor, grey_convention: Grey,
                               sub_batch: int = STRUCTURE_REFERENCE_SUB_BATCH) -> dict[str, Tensor]:
    """Per-image luma SSIM (float64 ``(N,)``) of the two reference colorizations of ``real`` ``(N, 3, H, W)``
    (uint8, or float in [0, 1]), ``{"flat": ..., "blur7": ...}``: ``flat`` is each channel's mean everywhere,
    ``blur7`` a 7x7 box blur (replicate padding, clamped to [0, 1]). Computed ``sub_batch`` images at a time;
    every value is a function of its own image only, so any ``sub_batch`` gives the same values to the bit."""
    flats, blurs = [], []
    for start in range(0, len(real), sub_batch):
        x = real[start:start + sub_batch]
        if x.is_floating_point():
            MF.check_image_pair(x, x)  # range and finiteness (uint8 images are in range by construction)
        x = x.float().div_(255.0) if not x.is_floating_point() else x.float()
        grey = MF.luma(x, grey_convention)  # the real image's grey, once for both references
        flat = x.mean(dim=(2, 3), keepdim=True).expand_as(x).contiguous()
        flats.append(MF.luma_ssim_unchecked(MF.luma(flat, grey_convention), grey))
        del flat
        blur = box_mean(torch.nn.functional.pad(x, (3, 3, 3, 3), mode="replicate"), 7)
        blurs.append(MF.luma_ssim_unchecked(MF.luma(blur.clamp_(0.0, 1.0), grey_convention), grey))
    return {"flat": torch.cat(flats), "blur7": torch.cat(blurs)}


def structure_references(real: Tensor, grey_convention: Grey, batch: int = 256) -> dict[str, Any] | None:
    """The luma SSIM of two reference colorizations of the real images ``(N, 3, H, W)`` (uint8, or float in [0, 1])
    and the "structure lost" threshold midway between them (see :data:`STRUCTURE_REFERENCE_RULE`), or None when
    the images are smaller than the SSIM window.

    The leaderboards mark a method whose luma SSIM is below the threshold (``colorbench.reports.tables``): what
    SSIM gives a structure-less output depends on the images (flat patches score high), so the threshold is
    placed on each dataset's own scale rather than fixed.
    """
    h, w = real.shape[-2:]
    win = MF.ssim_settings("gaussian")["win_size"]
    if h < win or w < win:
        return None
    sums = {"flat": 0.0, "blur7": 0.0}
    n = 0
    for start in range(0, len(real), batch):
        x = real[start:start + batch]
        for key, values in structure_reference_values(x, grey_convention).items():
            sums[key] += float(values.sum())
        n += len(x)
    flat, blur = sums["flat"] / n, sums["blur7"] / n
    return {"grey": grey_convention, "flat": flat, "blur7": blur, "threshold": (flat + blur) / 2, "n_images": n,
            "rule": STRUCTURE_REFERENCE_RULE}
