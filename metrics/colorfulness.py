"""Streaming colourfulness (Hasler and Suesstrunk 2003) of the colorized set, and its difference to the real set.

State is five float64 moments per image (pixel count, sums of rg, yb, rg^2, yb^2; see
``functional.colorfulness_moments``), so both reductions (mean of per-image values, or all pixels pooled) come
from one state and merging is concatenation.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from colorbench.metrics import functional as MF
from colorbench.metrics.base import StreamingMetric, ValueBuffer
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.image_quality import cat_values
from colorbench.metrics.registry import register_metric

_FORMULA = "M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2); rg = R-G, yb = (R+G)/2-B"
_FORMULA_ABS = "M = sqrt(std_rg^2 + std_yb^2) + 0.3 sqrt(mean_rg^2 + mean_yb^2); rg = |R-G|, yb = |(R+G)/2-B|"


def _reduce(moments: Tensor, reduction: str) -> float:
    if reduction == "pooled":
        return float(MF.colorfulness_from_moments(moments.sum(dim=0)))
    return float(MF.colorfulness_from_moments(moments).mean())


class _ColorfulnessBase(StreamingMetric):
    def __init__(self, *, reduction: str = "per_image_mean", formula: str = "signed", channel_order: str = "rgb",
                 quantize: str = "none") -> None:
        super().__init__()
        if reduction not in MF.COLORFULNESS_REDUCTIONS:
            raise ValueError(f"unknown colorfulness reduction {reduction!r}; choose one of "
                             f"{MF.COLORFULNESS_REDUCTIONS}")
        if formula not in MF.COLORFULNESS_FORMULAS:
            raise ValueError(f"unknown colorfulness formula {formula!r}; choose one of {MF.COLORFULNESS_FORMULAS}")
        if channel_order not in MF.COLORFULNESS_CHANNEL_ORDERS:
            raise ValueError(f"unknown channel order {channel_order!r}; choose one of "
                             f"{MF.COLORFULNESS_CHANNEL_ORDERS}")
        if quantize not in MF.QUANTIZE_MODES:
            raise ValueError(f"unknown quantize mode {quantize!r}; choose one of {MF.QUANTIZE_MODES}")
        self.reduction, self.formula, self.channel_order, self.quantize = reduction, formula, channel_order, quantize

    def _moments(self, inputs: MetricInputs, side: str) -> Tensor:
        if (self.formula, self.channel_order, self.quantize) == ("signed", "rgb", "none"):
            return inputs.colorfulness_moments(side)  # shared with the other colourfulness metric
        key = ("cf_moments_variant", side, self.formula, self.channel_order, self.quantize)
        return inputs.memo(key, lambda: MF.colorfulness_moments_variant_unchecked(
            inputs.image(side), self.formula, self.channel_order, self.quantize))

    def params(self) -> dict[str, Any]:
        formula = _FORMULA if self.formula == "signed" else _FORMULA_ABS
        return {"formula": f"Hasler & Suesstrunk 2003, eq. 3 ({self.formula}): " + formula,
                "opponent_components": self.formula, "channel_order": self.channel_order,
                "quantize": self.quantize,
                "scale": "sRGB 0-255 (gamma-encoded, no linearisation)", "std": "population (ddof=0)",
                "reduction": self.reduction,
                "reduction_meaning": ("mean over images of per-image M" if self.reduction == "per_image_mean"
                                      else "M of all pixels of the set pooled"),
                "grey": "n/a"}


@register_metric("colorfulness")
class Colorfulness(_ColorfulnessBase):
    """Colourfulness of the colorized set (higher = more colourful; the real set's value is the reference).

    Args:
        reduction: ``"per_image_mean"`` (default: mean of per-image colourfulness) or ``"pooled"``.
        formula: ``"signed"`` (default; the paper's rg, yb) or ``"absolute"`` (|rg|, |yb|: the evaluation code
            of DDColor, CT2 and ColorFormer). The two differ whenever rg or yb change sign within an image.
        channel_order: ``"rgb"`` (default) or ``"bgr"`` (R and B swapped, as code that cv2-splits an RGB array).
        quantize: ``"none"`` (default: the float output), ``"round"`` or ``"truncate"`` to 8 bits first.
        exclude_at_most: None (default) or a threshold: images whose colourfulness is <= it are left out of the
            mean (ColorFormer's ``metric/colorful.py`` keeps only ``cf > 1``); only with ``per_image_mean``.
    """

    name = "colorfulness"
    outputs = {"colorfulness": True}
    # 2 (2026-12-02): summation order of the faster kernels (issue #13), < 1e-13 relative.
    version = "3"  # 2026-12-07: quantize="round" rounds the float32 product x*255, as tensor2img (issue #24)
    per_image = True

    def __init__(self, *, reduction: str = "per_image_mean", formula: str = "signed", channel_order: str = "rgb",
                 quantize: str = "none", exclude_at_most: float | None = None) -> None:
        super().__init__(reduction=reduction, formula=formula, channel_order=channel_order, quantize=quantize)
        if exclude_at_most is not None and reduction != "per_image_mean":
            raise ValueError("exclude_at_most (an image filter) needs reduction='per_image_mean'")
        self.exclude_at_most = None if exclude_at_most is None else float(exclude_at_most)
        self.add_state("moments", ValueBuffer(width=5), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.moments.append(self._moments(inputs, "pred"))

    def compute(self) -> dict[str, float]:
        moments = cat_values(self.moments, self.name)
        if self.exclude_at_most is None:
            return {"colorfulness": _reduce(moments, self.reduction)}
        values = MF.colorfulness_from_moments(moments)
        kept = values[values > self.exclude_at_most]
        return {"colorfulness": float(kept.mean()) if len(kept) else float("nan")}

    def per_image_values(self) -> dict[str, Tensor]:
        """Every image's value (the excluded ones too, so the values stay aligned with the image ids)."""
        return {"colorfulness": MF.colorfulness_from_moments(cat_values(self.moments, self.name))}

    def params(self) -> dict[str, Any]:
        out = super().params()
        if self.exclude_at_most is not None:
            out["image_filter"] = f"images with colourfulness <= {self.exclude_at_most:g} left out of the mean"
        return out


@register_metric("delta_colorfulness")
class DeltaColorfulness(_ColorfulnessBase):
    """|colourfulness(real set) - colourfulness(colorized set)|, each set reduced first (lower is better).

    A grey output gives exactly the real set's colourfulness. Set-level, so no per-image values.

    Args:
        reduction: ``"per_image_mean"`` (default) or ``"pooled"``, applied to each set.
        formula, channel_order, quantize: as :class:`Colorfulness`, applied to both sets.
    """

    name = "delta_colorfulness"
    outputs = {"delta_colorfulness": False}
    # 2 (2026-12-02): summation order of the faster kernels (issue #13), < 1e-13 relative.
    version = "3"  # 2026-12-07: quantize="round" rounds the float32 product x*255, as tensor2img (issue #24)
    per_image = False

    def __init__(self, *, reduction: str = "per_image_mean", formula: str = "signed", channel_order: str = "rgb",
                 quantize: str = "none") -> None:
        super().__init__(reduction=reduction, formula=formula, channel_order=channel_order, quantize=quantize)
        self.add_state("pred_moments", ValueBuffer(width=5), reduce="cat")
        self.add_state("real_moments", ValueBuffer(width=5), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.pred_moments.append(self._moments(inputs, "pred"))
        self.real_moments.append(self._moments(inputs, "target"))

    def compute(self) -> dict[str, float]:
        real = _reduce(cat_values(self.real_moments, self.name), self.reduction)
        pred = _reduce(cat_values(self.pred_moments, self.name), self.reduction)
        return {"delta_colorfulness": abs(real - pred)}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "input": "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real",
                "difference": "|C(real set) - C(colorized set)|"}
