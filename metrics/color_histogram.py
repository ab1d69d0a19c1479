"""Streaming ab-histogram divergences (KL, JS) between the real and the colorized sets, per channel and joint.

State is the pooled histogram counts of the CIE a and b channels of both sets (memory independent of the number
of images); :meth:`compute` turns them into divergences with the same functions the functional API uses.
"""

from __future__ import annotations

from typing import Any

import torch

from colorbench.metrics import functional as MF
from colorbench.metrics.base import StreamingMetric
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.registry import register_metric


class _AbHistogramMetric(StreamingMetric):
    """Shared state and parameters of the ab-histogram metrics (not registered itself)."""

    per_image = False

    def __init__(self, *, bins: int = MF.AB_HISTOGRAM_BINS,
                 value_range: tuple[float, float] = MF.AB_HISTOGRAM_RANGE,
                 eps: float = MF.AB_HISTOGRAM_EPS, base: float | None = None) -> None:
        super().__init__()
        MF._check_bins(bins, value_range)
        MF._check_eps_base(eps, base)
        self.bins = bins
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.eps = float(eps)
        self.base = None if base is None else float(base)
        self.add_state("real_counts", torch.zeros(2, bins, dtype=torch.int64), reduce="sum")  # rows: a, b
        self.add_state("pred_counts", torch.zeros(2, bins, dtype=torch.int64), reduce="sum")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.real_counts = self.real_counts + inputs.ab_counts("target", self.bins, self.value_range)
        self.pred_counts = self.pred_counts + inputs.ab_counts("pred", self.bins, self.value_range)

    def _require_data(self) -> None:
        if int(self.real_counts[0].sum()) == 0:
            raise ValueError(f"{self.name}: compute() called before any update(); give it at least one batch")

    def histograms(self) -> dict[str, Any]:
        """Bin edges and pooled counts, as the run record stores them (plain lists)."""
        return {
            "edges": MF.ab_histogram_edges(self.bins, self.value_range),
            "real": {"a": self.real_counts[0].tolist(), "b": self.real_counts[1].tolist()},
            "pred": {"a": self.pred_counts[0].tolist(), "b": self.pred_counts[1].tolist()},
        }

    def params(self) -> dict[str, Any]:
        return {"input": "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real",
                "color_space": "CIE Lab, D65 (colorbench.color.rgb_to_lab, float64)", "channels": ["a", "b"],
                "pooling": "all pixels of all images", "bins": self.bins, "value_range": list(self.value_range),
                "out_of_range": "counted in the end bins", "eps": self.eps,
                "eps_use": "added to every bin probability, then renormalised",
                "log_base": "e" if self.base is None else self.base, "grey": "n/a"}


@register_metric("ab_histogram_kl")
class AbHistogramKL(_AbHistogramMetric):
    """KL(real ‖ colorized) of the pooled a and b histograms (natural log by default).

    Args:
        bins, value_range: uniform bins (default 256 over [-128, 128], width 1).
        eps: added to every bin probability before renormalising (default 1e-10), so KL stays finite.
        base: log base (None = e).
        direction: ``"real||pred"`` (default) or ``"pred||real"``.
    """

    name = "ab_histogram_kl"
    outputs = {"kl_a": False, "kl_b": False}
    version = "1"

    def __init__(self, *, bins: int = MF.AB_HISTOGRAM_BINS,
                 value_range: tuple[float, float] = MF.AB_HISTOGRAM_RANGE,
                 eps: float = MF.AB_HISTOGRAM_EPS, base: float | None = None,
                 direction: str = "real||pred") -> None:
        super().__init__(bins=bins, value_range=value_range, eps=eps, base=base)
        if direction not in MF.KL_DIRECTIONS:
            raise ValueError(f"unknown KL direction {direction!r}; choose one of {MF.KL_DIRECTIONS}")
        self.direction = direction

    def compute(self) -> dict[str, float]:
        self._require_data()
        return {
            f"kl_{ch}": MF.kl_divergence_from_counts(self.real_counts[i], self.pred_counts[i], eps=self.eps,
                                                     base=self.base, direction=self.direction)
            for i, ch in enumerate("ab")
        }

    def params(self) -> dict[str, Any]:
        return {**super().params(), "direction": self.direction}


@register_metric("ab_histogram_js")
class AbHistogramJS(_AbHistogramMetric):
    """Jensen-Shannon divergence (not distance) of the pooled a and b histograms, in [0, ln 2] by default.

    Args:
        bins, value_range, eps, base: as :class:`AbHistogramKL`.
    """

    name = "ab_histogram_js"
    outputs = {"js_a": False, "js_b": False}
    version = "1"

    def compute(self) -> dict[str, float]:
        self._require_data()
        return {
            f"js_{ch}": MF.js_divergence_from_counts(self.real_counts[i], self.pred_counts[i], eps=self.eps,
                                                     base=self.base)
            for i, ch in enumerate("ab")
        }

    def params(self) -> dict[str, Any]:
        return {**super().params(), "direction": "symmetric", "quantity": "divergence (jensenshannon**2)"}


class _AbJointHistogramMetric(StreamingMetric):
    """Shared state of the joint (a, b) histogram metrics: ``bins x bins`` counts per set (not registered)."""

    per_image = False

    def __init__(self, *, bins: int = MF.AB_JOINT_BINS,
                 value_range: tuple[float, float] = MF.AB_HISTOGRAM_RANGE,
                 eps: float = MF.AB_HISTOGRAM_EPS, base: float | None = None) -> None:
        super().__init__()
        MF._check_bins(bins, value_range)
        MF._check_eps_base(eps, base)
        self.bins = bins
        self.value_range = (float(value_range[0]), float(value_range[1]))
        self.eps = float(eps)
        self.base = None if base is None else float(base)
        self.add_state("real_counts", torch.zeros(bins, bins, dtype=torch.int64), reduce="sum")  # rows a, cols b
        self.add_state("pred_counts", torch.zeros(bins, bins, dtype=torch.int64), reduce="sum")

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.real_counts = self.real_counts + inputs.ab_joint_counts("target", self.bins, self.value_range)
        self.pred_counts = self.pred_counts + inputs.ab_joint_counts("pred", self.bins, self.value_range)

    def _require_data(self) -> None:
        if int(self.real_counts.sum()) == 0:
            raise ValueError(f"{self.name}: compute() called before any update(); give it at least one batch")

    def params(self) -> dict[str, Any]:
        return {"input": "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real",
                "color_space": "CIE Lab, D65 (colorbench.color.rgb_to_lab, float64)", "channels": "joint (a, b)",
                "pooling": "all pixels of all images", "bins": [self.bins, self.bins],
                "value_range": list(self.value_range), "out_of_range": "counted in the end bins",
                "eps": self.eps, "eps_use": "added to every cell probability, then renormalised",
                "log_base": "e" if self.base is None else self.base, "grey": "n/a"}


@register_metric("ab_joint_histogram_kl")
class AbJointHistogramKL(_AbJointHistogramMetric):
    """KL(real ‖ colorized) of the pooled joint (a, b) histograms (default 64 x 64 bins of width 4).

    Args:
        bins: bins per axis; value_range, eps, base, direction: as :class:`AbHistogramKL`.
    """

    name = "ab_joint_histogram_kl"
    outputs = {"kl_ab": False}
    version = "1"

    def __init__(self, *, bins: int = MF.AB_JOINT_BINS,
                 value_range: tuple[float, float] = MF.AB_HISTOGRAM_RANGE,
                 eps: float = MF.AB_HISTOGRAM_EPS, base: float | None = None,
                 direction: str = "real||pred") -> None:
        super().__init__(bins=bins, value_range=value_range, eps=eps, base=base)
        if direction not in MF.KL_DIRECTIONS:
            raise ValueError(f"unknown KL direction {direction!r}; choose one of {MF.KL_DIRECTIONS}")
        self.direction = direction

    def compute(self) -> dict[str, float]:
        self._require_data()
        return {"kl_ab": MF.kl_divergence_from_counts(self.real_counts, self.pred_counts, eps=self.eps,
                                                      base=self.base, direction=self.direction)}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "direction": self.direction}


@register_metric("ab_joint_histogram_js")
class AbJointHistogramJS(_AbJointHistogramMetric):
    """Jensen-Shannon divergence of the pooled joint (a, b) histograms, in [0, ln 2] by default."""

    name = "ab_joint_histogram_js"
    outputs = {"js_ab": False}
    version = "1"

    def compute(self) -> dict[str, float]:
        self._require_data()
        return {"js_ab": MF.js_divergence_from_counts(self.real_counts, self.pred_counts, eps=self.eps,
                                                      base=self.base)}

    def params(self) -> dict[str, Any]:
        return {**super().params(), "direction": "symmetric", "quantity": "divergence (jensenshannon**2)"}
