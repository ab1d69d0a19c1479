"""pix2pix (Isola et al., CVPR 2017) for colorization: U-Net generator, conditional PatchGAN, GAN + λ·L1 loss.

Used as the adversarial baseline of Tarrés 2021 (§4.1.2). The generator maps L to ab; the discriminator sees
``cat(L, ab)`` (3 channels) and scores 70×70 patches (paper preset) as real or generated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.datasets.base import Batch
from colorbench.methods.base import MethodCard
from colorbench.methods.lab import LabConfig, LabMethod
from colorbench.methods.losses import GAN_MODES, GANLoss
from colorbench.methods.nets import MIN_NUM_DOWNS, NORMS, PatchDiscriminator, UnetGenerator, set_requires_grad
from colorbench.methods.registry import register_method
from colorbench.methods.unet_l1 import SEED_THESIS

PIX2PIX = "Isola, Zhu, Zhou, Efros, 'Image-to-Image Translation with Conditional Adversarial Networks', CVPR 2017"


@dataclass
class Pix2PixConfig(LabConfig):
    """Options of ``pix2pix``; the defaults are the ``paper`` preset (the reference implementation's defaults).

    Attributes:
        num_downs, ngf, dropout: U-Net generator (``unet_256`` = num_downs 8, ngf 64, dropout 0.5).
        ndf, n_layers_d: PatchGAN discriminator (``basic`` = ndf 64, 3 layers: 70×70 patches).
        norm: normalization in G and D (``"batch"``, ``"instance"``, ``"none"``).
        d_spectral_norm: spectral normalization on every D conv (not in pix2pix; for variants).
        gan_mode: ``"vanilla"`` (pix2pix), ``"lsgan"`` or ``"wgan"``.
        lambda_l1: weight of the L1 term in the generator loss (100).
        lr, beta1, beta2: Adam, for G and D alike.
        init_type, init_gain: weight initialization.
    """

    batch_size: int = 1
    epochs: int = 200
    lr_decay_fraction: float = 0.5
    num_downs: int = 8
    ngf: int = 64
    dropout: float = 0.5
    ndf: int = 64
    n_layers_d: int = 3
    norm: str = "batch"
    d_spectral_norm: bool = False
    gan_mode: str = "vanilla"
    lambda_l1: float = 100.0
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    init_type: str = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.num_downs < MIN_NUM_DOWNS:
            raise ValueError(f"num_downs must be >= {MIN_NUM_DOWNS}, got {self.num_downs}")
        if self.n_layers_d < 1:
            raise ValueError(f"n_layers_d must be >= 1, got {self.n_layers_d}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}; choose one of {GAN_MODES}")
        if self.lambda_l1 < 0:
            raise ValueError(f"lambda_l1 must be >= 0, got {self.lambda_l1}")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"need lr > 0 and betas in [0, 1), got lr={self.lr}, betas=({self.beta1}, {self.beta2})")


@register_method("pix2pix")
class Pix2Pix(LabMethod):
    """pix2pix on L -> ab. One ``train_step`` updates D once, then G once, as the reference.

    ``train_step`` returns ``{"G_GAN", "G_L1", "D_real", "D_fake"}``: the generator's adversarial loss, its L1
    distance to the true ab (divided by 110; *not* multiplied by ``lambda_l1``), and D's losses on real and
    generated pairs (D's total loss is half their sum).
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="pix2pix",
        title="pix2pix: U-Net generator + conditional 70×70 PatchGAN, vanilla GAN + 100·L1, L -> ab",
        paper=PIX2PIX + "; as the adversarial baseline of Tarrés, master thesis, UPC / BBC, 2021, §4.1.2",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=(
            "Networks, losses and optimizer are the reference implementation's defaults (junyanz/pytorch-CycleGAN-"
            "and-pix2pix, which has a colorization mode): unet_256 generator (num_downs 8, ngf 64, batch norm, "
            "dropout 0.5), 'basic' PatchGAN D (3 layers, ndf 64, batch norm), vanilla GAN loss + λ = 100 L1, "
            "Adam lr 2e-4 betas (0.5, 0.999), normal(0, 0.02) init, batch size 1, 100 epochs at constant rate + "
            "100 with linear decay, D loss halved.",
            "D is conditional: it sees cat(L, ab), 3 channels (the reference's input_nc + output_nc).",
            "Lab scaling L/50 - 1, ab/110 (the reference's colorization code); the L input comes from the grey "
            "image under the run's grey convention.",
            "Test time: eval mode (batch-norm running statistics, no dropout) so colorize is deterministic; the "
            "reference's test script keeps train mode by default, using dropout as noise.",
            "Paper image size 256×256 (pix2pix and thesis §5.1.1). The quick preset (32×32 images) uses num_downs 5, "
            "ngf 16, ndf 16, a 2-layer PatchGAN (34×34 receptive field, 6×6 score map) and batch size 32 so an "
            "epoch takes seconds on a CPU.",
        ),
    )
    Config: ClassVar[type] = Pix2PixConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            "batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "num_downs": 8, "ngf": 64, "ndf": 64,
            "n_layers_d": 3, "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0,
        },
        "quick": {
            "batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "ndf": 16,
            "n_layers_d": 2, "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0,
        },
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2**config.num_downs

    def build_networks(self) -> None:
        c = self.config
        self.G = UnetGenerator(1, 2, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain)
        self.D = PatchDiscriminator(3, c.ndf, c.n_layers_d, c.norm, c.d_spectral_norm, c.init_type, c.init_gain)
        self.gan_loss = GANLoss(c.gan_mode)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {
            "G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
        }

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def train_step(self, batch: Batch) -> dict[str, float]:
        gray, rgb = self.prepare_batch(batch)
        self.set_train(True)
        L, ab = self.input_l(gray), self.target_ab(rgb)
        real_pair = torch.cat([L, ab], dim=1)
        with self.training_rng():
            with self.autocast():
                fake = self.G(L).float()
            fake_pair = torch.cat([L, fake], dim=1)

            # D: real pairs -> real, generated pairs -> fake; the loss is halved (slows D relative to G)
            set_requires_grad(self.D, True)
            with self.autocast():
                scores_fake = self.D(fake_pair.detach())
                scores_real = self.D(real_pair)
            d_fake, d_real = self.gan_loss(scores_fake, False), self.gan_loss(scores_real, True)
            self.optimize(0.5 * (d_fake + d_real), "D")

            # G: fool D, and stay close to the true ab
            set_requires_grad(self.D, False)
            with self.autocast():
                scores = self.D(fake_pair)
            g_gan, g_l1 = self.gan_loss(scores, True), F.l1_loss(fake, ab)
            self.optimize(g_gan + self.config.lambda_l1 * g_l1, "G")
            set_requires_grad(self.D, True)
        return self.finish_step({"G_GAN": g_gan, "G_L1": g_l1, "D_real": d_real, "D_fake": d_fake})
