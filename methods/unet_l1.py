"""U-Net + L1: the regression baseline of Tarrés 2021 (§4.1.1), a pix2pix U-Net trained with an L1 loss only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from colorbench.methods.base import MethodCard
from colorbench.methods.lab import AbRegressionMethod, LabConfig
from colorbench.methods.nets import MIN_NUM_DOWNS, NORMS, UnetGenerator
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import AdamInitConfig

SEED_THESIS = "001_185158beffacbb1e.txt"
THESIS = (
    "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021, "
    "§4.1.1 'Colourisation loss only'"
)


@dataclass
class UNetL1Config(AdamInitConfig, LabConfig):
    """Options of ``unet-l1``; the defaults are the ``paper`` preset.

    Attributes:
        num_downs: U-Net depth; image sides must be multiples of ``2**num_downs`` (the thesis's n = 7).
        ngf: filters of the outermost U-Net level.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout in the ``num_downs - 5`` inner decoder blocks (pix2pix's U-Net: 0.5).
        lr, beta1, beta2, init_type, init_gain: see :class:`AdamInitConfig`.
    """

    batch_size: int = 16
    epochs: int = 200
    lr_decay_fraction: float = 0.5
    num_downs: int = 7
    ngf: int = 64
    norm: str = "batch"
    dropout: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_downs < MIN_NUM_DOWNS:
            raise ValueError(f"num_downs must be >= {MIN_NUM_DOWNS}, got {self.num_downs}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")


@register_method("unet-l1", aliases=("unet",))
class UNetL1(AbRegressionMethod):
    """U-Net predicting ab from L, trained with the L1 distance to the true ab (both divided by 110).

    ``train_step`` returns ``{"G_L1": mean |ab_pred - ab_true| / 110}``.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="unet-l1",
        title="U-Net regression of ab from L with an L1 loss (no adversarial loss)",
        paper=THESIS + "; U-Net of Ronneberger et al. 2015 in the pix2pix form of Isola et al., CVPR 2017",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=(
            "Generator: the pix2pix U-Net (4×4 stride-2 convs, LeakyReLU 0.2 / ReLU, batch norm, Tanh ab), since "
            "the thesis chose this U-Net to reuse it as the pix2pix generator; depth num_downs = 7 (the thesis's "
            "n = 7 downsampling layers), so 256×256 inputs reach a 2×2 bottleneck.",
            "Dropout 0.5 in the num_downs - 5 inner decoder blocks, as the pix2pix U-Net (thesis silent); off at "
            "test time (eval mode).",
            "Lab scaling L/50 - 1 and ab/110 (pix2pix colorization code); the L input comes from the grey image "
            "under the run's grey convention, not from the colour target.",
            "Optimizer: Adam lr 2e-4, betas (0.5, 0.999), normal(0, 0.02) init — pix2pix's, since the thesis is "
            "silent.",
            "Batch size 16 (thesis silent; pix2pix's batch 1 would make 50,000-image ImageNet epochs very slow).",
            "Epochs: pix2pix's 100 at constant rate + 100 with linear decay (thesis silent for this baseline).",
            "Paper image size 256×256 (thesis §5.1.1); the quick preset uses num_downs 5, ngf 16 for 32×32 images.",
        ),
    )
    Config: ClassVar[type] = UNetL1Config
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 16, "epochs": 200, "lr_decay_fraction": 0.5, "num_downs": 7, "ngf": 64, "norm": "batch", "dropout": 0.5},
        "quick": {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "norm": "batch", "dropout": 0.5},
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2**config.num_downs

    def build_networks(self) -> None:
        c = self.config
        self.G = UnetGenerator(1, 2, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}
