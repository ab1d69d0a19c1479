"""The grey baseline: the input itself, replicated to RGB, with no colour added.

Not a floor: it keeps its input's structure exactly (luma SSIM 1) and, since a colorization that guesses wrong
is penalised more than no colour at all, it often beats trained GANs on MSE, PSNR and SSIM. It is the reference
for "did adding colour help": a method should beat it on the colour metrics (ab histograms, ΔCF, the study)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from colorbench.core.color import grey_to_rgb
from colorbench.datasets.base import Batch
from colorbench.methods.base import BaseConfig, Method, MethodCard
from colorbench.methods.lab import check_grey_input
from colorbench.methods.registry import register_method


@dataclass
class GrayConfig(BaseConfig):
    """No options beyond the shared ones; nothing is trained, so ``epochs`` is 0 in both presets."""

    def __post_init__(self) -> None:
        BaseConfig.__post_init__(self)  # the grey convention, parsed to a Grey


@register_method("gray", aliases=("grey",))
class Gray(Method):
    """Returns the grey input as an RGB image (R = G = B = grey).

    Every colorization should beat it on colour metrics; on metrics that only see structure it is a ceiling.
    It has no parameters: :meth:`train_step` does nothing and returns ``{}``, :meth:`networks` is empty.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="gray",
        title="Grey input replicated to RGB (no colour)",
        paper="Baseline; no paper (the zero-effort colorization every method is compared with)",
        source="",
        paired=False,
        color_space="none",
        trainable=False,
        choices=(
            "The output is the grey input as given (R = G = B = grey, under the run's grey convention); with "
            "'bt601' its BT.601 luma equals the input exactly.",
            "No parameters: train_step returns {} and epochs is 0 in both presets.",
        ),
    )
    Config: ClassVar[type] = GrayConfig
    presets: ClassVar[dict] = {"paper": {"epochs": 0}, "quick": {"epochs": 0}}

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Nothing to learn: returns ``{}``."""
        return {}

    @torch.no_grad()
    def colorize(self, gray: Tensor) -> Tensor:
        """``(N, 1, H, W)`` grey in [0, 1] -> ``(N, 3, H, W)`` with the grey in each channel (same device)."""
        check_grey_input(gray, "gray.colorize")
        return grey_to_rgb(gray.float())

    def networks(self) -> dict[str, nn.Module]:
        return {}
