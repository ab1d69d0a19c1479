"""Zhang et al.'s "colorful image colorization" network as a regression generator (Fabbri & Islam, seed 003, §3).

``colorful-l1`` / ``colorful-l2``: the network alone, trained with an L1 or L2 loss on ab (the report's §3.2);
``colorful-gan``: the same network as the generator of a conditional GAN (the report's "Col. Col. (GAN)", §3.3),
on the pix2pix discriminator and losses (:class:`~colorbench.methods.pix2pix.Pix2Pix` with ``generator="colorful"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.cgan import FABBRI, FABBRI_SCALE, SEED_FABBRI
from colorbench.methods.lab import AbRegression, LabConfig, TrainableMethod
from colorbench.methods.nets import ColorfulNet
from colorbench.methods.pix2pix import PIX2PIX, Pix2Pix
from colorbench.methods.registry import Variant, register_method, register_variant

ZHANG = "Zhang, Isola, Efros, 'Colorful Image Colorization', ECCV 2016"
REGRESSION_LOSSES = ("l1", "l2")

_NET_CHOICES = (
    "Network: Zhang et al.'s eight conv blocks (2–3 conv 3×3 + ReLU, then batch norm; no pooling; stride-2 ends of "
    "blocks 1–3; dilation 2 in blocks 5–6; block 8 up-samples ×2), widths 64…512 as the released model; its 313-way "
    "classifier is replaced by a 1×1 conv to ab with Tanh (ab/110), up-sampled ×4 bilinearly as the released model's "
    "output (the report: 'the output layer of the network is adjusted to predict I_AB').",
    "Input L/50 − 1 (the harness's Lab convention; Zhang et al. centre L at 50 without scaling).",
    "Paper image size 256×256 (Zhang et al. trained on 256×256 ImageNet images); batch size 32 (the report); 16 "
    "epochs (the report's 100K iterations at batch 32 on CelebA's 195K training images).",
)


@dataclass
class ColorfulConfig(LabConfig):
    """Options of ``colorful-l1`` / ``colorful-l2``; the defaults are the paper preset of ``colorful-l1``.

    Attributes:
        width: channels of the first block (64 in Zhang et al.).
        loss: ``"l1"`` or ``"l2"`` on ab/110, averaged over pixels (the report's normalization constant λ).
        lr, beta1, beta2, weight_decay: Adam (Zhang et al.: 3e-5, (0.9, 0.99), 1e-3).
    """

    batch_size: int = 32
    epochs: int = 16
    width: int = 64
    loss: str = "l1"
    lr: float = 3e-5
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 1e-3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss not in REGRESSION_LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {REGRESSION_LOSSES}")
        if self.width < 4 or self.width % 4:
            raise ValueError(f"width must be a positive multiple of 4, got {self.width}")
        if self.lr <= 0 or self.weight_decay < 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError("need lr > 0, weight_decay >= 0 and betas in [0, 1)")


_REG_PAPER = {"batch_size": 32, "epochs": 16, "lr_decay_fraction": 0.0, "width": 64, "lr": 3e-5, "beta1": 0.9,
              "beta2": 0.99, "weight_decay": 1e-3}
_REG_QUICK = {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "width": 16, "lr": 1e-3, "beta1": 0.9,
              "beta2": 0.99, "weight_decay": 0.0}
_REG_CHOICES = _NET_CHOICES + (
    "Optimizer: Zhang et al.'s Adam lr 3e-5, betas (0.9, 0.99), weight decay 1e-3, constant rate (the report "
    "gives none).",
    "Quick preset: width 16 (32×32 images reach a 4×4 bottleneck), Adam lr 1e-3 without weight decay so 10 epochs "
    "of 32×32 images are enough to learn colours; linear decay over the second half.",
)


@register_method("colorful-l1")
class ColorfulL1(AbRegression, TrainableMethod):
    """Zhang et al.'s network regressing ab with an L1 loss. ``train_step`` returns ``{"G_L1": ...}``."""

    card: ClassVar[MethodCard] = MethodCard(
        name="colorful-l1",
        title="Zhang et al. 'colorful colorization' network as an ab regressor, L1 loss",
        paper=f"{FABBRI}, §3.2 (L1 loss); network of {ZHANG}",
        source=SEED_FABBRI, paired=True, color_space="lab", choices=_REG_CHOICES,
    )
    Config: ClassVar[type] = ColorfulConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {**_REG_PAPER, "loss": "l1"}, "quick": {**_REG_QUICK, "loss": "l1"}}
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": FABBRI_SCALE}

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return ColorfulNet.size_multiple

    def build_networks(self) -> None:
        self.G = ColorfulNet(1, 2, self.config.width)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2), weight_decay=c.weight_decay)}

    def regression_loss(self) -> str:
        return self.config.loss


ColorfulL2 = register_variant(Variant(
    "colorful-l2", ColorfulL1,
    MethodCard(
        name="colorful-l2",
        title="Zhang et al. 'colorful colorization' network as an ab regressor, L2 loss",
        paper=f"{FABBRI}, §3.2 (L2 loss); network of {ZHANG}",
        source=SEED_FABBRI, paired=True, color_space="lab", choices=_REG_CHOICES,
    ),
    {"loss": "l2"},
    doc="Zhang et al.'s network regressing ab with an L2 loss. ``train_step`` returns ``{\"G_L2\": ...}``.",
), __name__)


ColorfulGan = register_variant(Variant(
    "colorful-gan", Pix2Pix,
    MethodCard(
        name="colorful-gan",
        title="Zhang et al. network as the generator of a conditional GAN (PatchGAN D, GAN + 100·L1)",
        paper=f"{FABBRI}, §3.3 'Col. Col. (GAN)'; network of {ZHANG}; discriminator and losses of {PIX2PIX}",
        source=SEED_FABBRI, paired=True, color_space="lab",
        choices=_NET_CHOICES + (
            "The report does not describe this GAN; it uses its §4.1 objective (regular GAN loss, λ1 = 1, with "
            "λ2 = 100 L1, λ3 = 0 — see cgan-dcgan) on the pix2pix conditional 70×70 PatchGAN (ndf 64, 3 layers) "
            "that its §4 methods share. Adam 2e-4, betas (0.5, 0.999) for G and D (pix2pix's), constant rate.",
            "Quick preset: width 16, 16-wide 2-layer PatchGAN, 32×32 images, batch 32, 10 epochs, linear decay over "
            "the second half.",
        ),
    ),
    presets={
        "paper": {"batch_size": 32, "epochs": 16, "lr_decay_fraction": 0.0, "generator": "colorful", "ngf": 64,
                  "ndf": 64, "n_layers_d": 3, "norm": "batch", "gan_mode": "vanilla", "lambda_gan": 1.0,
                  "lambda_l1": 100.0, "d_loss_factor": 1.0},
        "quick": {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "generator": "colorful", "ngf": 16,
                  "ndf": 16, "n_layers_d": 2, "norm": "batch", "gan_mode": "vanilla", "lambda_gan": 1.0,
                  "lambda_l1": 100.0, "d_loss_factor": 1.0},
    },
    preset_scales={"paper": FABBRI_SCALE},
    doc="Zhang et al.'s network as the generator of a conditional GAN with the pix2pix PatchGAN. ``train_step`` "
        "returns ``{\"G_GAN\", \"G_L1\", \"D_real\", \"D_fake\"}``.",
), __name__)
