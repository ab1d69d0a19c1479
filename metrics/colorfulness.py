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


def _reduce(moments: Tensor, reduction: str) -> float:
    if reduction == "pooled":
        return float(MF.colorfulness_from_moments(moments.sum(dim=0)))
    return float(MF.colorfulness_from_moments(moments).mean())


class _ColorfulnessBase(StreamingMetric):
    def __init__(self, *, reduction: str = "per_image_mean") -> None:
        super().__init__()
        if reduction not in MF.COLORFULNESS_REDUCTIONS:
            raise ValueError(f"unknown colorfulness reduction {reduction!r}; choose one of "
                             f"{MF.COLORFULNESS_REDUCTIONS}")
        self.reduction = reduction

    def params(self) -> dict[str, Any]:
        return {"formula": "Hasler & Suesstrunk 2003, eq. 3: " + _FORMULA,
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
    """

    name = "colorfulness"
    outputs = {"colorfulness": True}
    version = "1"
    per_image = True

    def __init__(self, *, reduction: str = "per_image_mean") -> None:
        super().__init__(reduction=reduction)
        self.add_state("moments", ValueBuffer(width=5), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.moments.append(inputs.colorfulness_moments("pred"))

    def compute(self) -> dict[str, float]:
        return {"colorfulness": _reduce(cat_values(self.moments, self.name), self.reduction)}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"colorfulness": MF.colorfulness_from_moments(cat_values(self.moments, self.name))}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "input": "RGB (N,3,H,W) float in [0,1]; the colorized set (pred) only"}


@register_metric("delta_colorfulness")
class DeltaColorfulness(_ColorfulnessBase):
    """|colourfulness(real set) - colourfulness(colorized set)|, each set reduced first (lower is better).

    A grey output gives exactly the real set's colourfulness. Set-level, so no per-image values.

    Args:
        reduction: ``"per_image_mean"`` (default) or ``"pooled"``, applied to each set.
    """

    name = "delta_colorfulness"
    outputs = {"delta_colorfulness": False}
    version = "1"
    per_image = False

    def __init__(self, *, reduction: str = "per_image_mean") -> None:
        super().__init__(reduction=reduction)
        self.add_state("pred_moments", ValueBuffer(width=5), reduce="cat")
        self.add_state("real_moments", ValueBuffer(width=5), reduce="cat")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.pred_moments.append(inputs.colorfulness_moments("pred"))
        self.real_moments.append(inputs.colorfulness_moments("target"))

    def compute(self) -> dict[str, float]:
        real = _reduce(cat_values(self.real_moments, self.name), self.reduction)
        pred = _reduce(cat_values(self.pred_moments, self.name), self.reduction)
        return {"delta_colorfulness": abs(real - pred)}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "input": "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real",
                "difference": "|C(real set) - C(colorized set)|"}
