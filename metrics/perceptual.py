"""Streaming LPIPS (the ``lpips`` package's network; backbone weights read from disk, never downloaded)."""

from __future__ import annotations

import importlib.metadata
import os
from typing import Any

import torch
from torch import Tensor

from colorbench.metrics import functional as MF
from colorbench.metrics.base import StreamingMetric, ValueBuffer
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.image_quality import cat_values
from colorbench.metrics.registry import register_metric


@register_metric("lpips")
class LearnedPerceptualSimilarity(StreamingMetric):
    """Mean over images of the per-image LPIPS distance (lower is more similar).

    Args:
        net: backbone, ``"alex"`` (default), ``"vgg"`` or ``"squeeze"``.
        weights_path: torchvision's ImageNet state-dict file of the backbone; default
            ``torch.hub.get_dir()/checkpoints/<torchvision file name>``.
        check_hash: check the file's SHA-256 prefix against torchvision's file name.
        random_backbone_for_tests: TEST ONLY: a seeded random backbone, so tests can check the plumbing
            offline. The values are not LPIPS, and ``params()`` says so.

    Raises:
        MetricUnavailable: at construction, if the backbone weights are not on disk (the message names the path).
    """

    name = "lpips"
    outputs = {"lpips": False}
    version = "1"
    per_image = True

    def __init__(self, *, net: str = "alex", weights_path: str | os.PathLike | None = None,
                 check_hash: bool = True, random_backbone_for_tests: bool = False) -> None:
        super().__init__()
        self.net = net
        self.check_hash = bool(check_hash)
        self.random_backbone_for_tests = bool(random_backbone_for_tests)
        self._path = None if random_backbone_for_tests else MF.lpips_backbone_path(net, weights_path)
        self._model()  # fail now (MetricUnavailable) rather than at the first update
        self.add_state("values", ValueBuffer(), reduce="cat")

    def _model(self, device: str = "cpu") -> torch.nn.Module:
        # cached per (net, file, device) by functional, so instances share one network
        return MF.cached_lpips_model(self.net, self._path, self.check_hash, self.random_backbone_for_tests, device)

    def update_inputs(self, inputs: MetricInputs) -> None:
        pred, target = inputs.pred, inputs.target
        self.values.append(MF.lpips_from_model(self._model(str(pred.device)), pred, target))

    def compute(self) -> dict[str, float]:
        return {"lpips": float(cat_values(self.values, self.name).mean())}

    def per_image_values(self) -> dict[str, Tensor]:
        return {"lpips": cat_values(self.values, self.name)}

    def params(self) -> dict[str, Any]:
        if self.random_backbone_for_tests:
            weights = "RANDOM backbone (test only; not LPIPS)"
        else:
            weights = os.path.basename(self._path)
        return {
            "input": "RGB (N,3,H,W) float in [0,1], scaled to [-1,1] for lpips",
            "net": self.net,
            "lpips_version": MF.LPIPS_VERSION,
            "lpips_package": importlib.metadata.version("lpips"),
            "backbone_weights": weights,
            "backbone_hash_checked": self.check_hash and not self.random_backbone_for_tests,
            "spatial": "mean",
            "compute_dtype": "float32",
            "reduction": "per_image_mean",
            "grey": "n/a",
        }
