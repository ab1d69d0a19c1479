"""pix2pix (Isola et al., CVPR 2017) for colorization: U-Net generator, conditional PatchGAN, GAN + λ·L1 loss.

Used as the adversarial baseline of Tarrés 2021 (§4.1.2). The generator maps L to ab; the discriminator sees
``cat(L, ab)`` (3 channels) and scores 70×70 patches (paper preset) as real or generated.

:class:`Pix2Pix` is also the one implementation of the paired conditional-GAN family: its options select the
generator (pix2pix U-Net, with IBN in the shallow encoder levels, or Zhang et al.'s colorful network), the
discriminator (PatchGAN, multi-scale PatchGANs, EBGAN's auto-encoder), the GAN loss (vanilla, LSGAN, WGAN with
weight clipping and ``n_critic``, EBGAN), the reconstruction terms (L1 or smooth L1, plus L2) and the optimizer.
``gorriz``, ``colorful-gan`` and the ``cgan-*`` methods are variants of it (a card and presets, no code);
``gorriz-featrec`` and its variant add one generator term through the ``gorriz.FeatureReconstruction`` mixin. Its defaults are pix2pix's, so
``pix2pix`` itself is unchanged. It is also registered as ``cgan`` (the supervised baseline of Shanis et al.),
whose settings are the ``cgan-paper`` preset.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from colorbench.datasets.base import Batch
from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.lab import LabConfig, LabConvention
from colorbench.methods.losses import GAN_MODES, GANLoss
from colorbench.methods.nets import (
    MIN_NUM_DOWNS,
    NORMS,
    AutoEncoderDiscriminator,
    ColorfulNet,
    MultiScaleDiscriminator,
    PatchDiscriminator,
    UnetGenerator,
    set_requires_grad,
)
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import AdamInitConfig, TrainableMethod
from colorbench.methods.unet_l1 import (
    SEED_THESIS,
    THESIS_MODE_CHOICE,
    THESIS_NUM_DOWNS,
    THESIS_PREDICTION,
    THESIS_SCALE,
    THESIS_SCHEDULE,
    THESIS_SCHEDULE_CHOICE,
)

PIX2PIX = "Isola, Zhu, Zhou, Efros, 'Image-to-Image Translation with Conditional Adversarial Networks', CVPR 2017"
SEED_CYCLEGAN_REPORT = "002_7b95aee0c78c4e8f.txt"

GENERATORS = ("unet", "colorful")
DISCRIMINATORS = ("patch", "autoencoder")
RECON_LOSSES = ("l1", "smooth_l1")
OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class Pix2PixConfig(AdamInitConfig, LabConfig):
    """Options of ``pix2pix``; the defaults are the ``isola2017`` preset (the reference implementation's defaults).

    Attributes:
        num_downs, ngf, dropout: U-Net generator (``unet_256`` = num_downs 8, ngf 64, dropout 0.5).
        ndf, n_layers_d: PatchGAN discriminator (``basic`` = ndf 64, 3 layers: 70×70 patches).
        norm: normalization in G and D (``"batch"``, ``"instance"``, ``"none"``).
        d_spectral_norm: spectral normalization on every D conv (not in pix2pix; for variants).
        gan_mode: ``"vanilla"`` (pix2pix), ``"lsgan"`` or ``"wgan"``.
        lambda_l1: weight of the L1 term in the generator loss (100).
        lr, beta1, beta2, init_type, init_gain: see :class:`AdamInitConfig`.
        generator: ``"unet"`` (pix2pix) or ``"colorful"`` (Zhang et al. 2016 network, width ``ngf``).
        ibn_layers_g: shallow U-Net encoder levels with IBN-Net instance-batch norm (0: none).
        discriminator: ``"patch"`` (PatchGAN; multi-scale when ``num_d`` > 1) or ``"autoencoder"`` (EBGAN).
        num_d: number of PatchGAN scales (pix2pixHD multi-scale discriminator when > 1).
        ibn_layers_d: first normalized PatchGAN layers with IBN (0: none).
        recon_loss: ``"l1"`` (pix2pix) or ``"smooth_l1"`` (Huber with ``smooth_l1_beta``, on ab/110).
        smooth_l1_beta: the Huber threshold of ``smooth_l1``.
        lambda_gan: weight of the adversarial term in the generator loss (1).
        lambda_l2: weight of an extra L2 (MSE) term (0: none).
        ebgan_margin: EBGAN margin m on the mean-squared reconstruction energy.
        n_critic: D updates per G update (WGAN: 5); D steps on every batch, G on every ``n_critic``-th one.
        clip_value: WGAN weight clipping of every D parameter to [-c, c] after each D step (0: none).
        optimizer: ``"adam"`` (betas ``beta1, beta2``) or ``"rmsprop"`` (WGAN).
        d_loss_factor: D's loss is this times the sum of its real and fake terms (pix2pix halves it: 0.5).
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
    generator: str = "unet"
    ibn_layers_g: int = 0
    discriminator: str = "patch"
    num_d: int = 1
    ibn_layers_d: int = 0
    recon_loss: str = "l1"
    smooth_l1_beta: float = 1.0
    lambda_gan: float = 1.0
    lambda_l2: float = 0.0
    ebgan_margin: float = 1.0
    n_critic: int = 1
    clip_value: float = 0.0
    optimizer: str = "adam"
    d_loss_factor: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, value, allowed in (("generator", self.generator, GENERATORS), ("discriminator", self.discriminator, DISCRIMINATORS),
                                     ("recon_loss", self.recon_loss, RECON_LOSSES), ("optimizer", self.optimizer, OPTIMIZERS)):
            if value not in allowed:
                raise ValueError(f"unknown {name} {value!r}; choose one of {allowed}")
        if (self.gan_mode == "ebgan") != (self.discriminator == "autoencoder"):
            raise ValueError("gan_mode 'ebgan' needs discriminator 'autoencoder' (its energy), and that discriminator "
                             f"only fits gan_mode 'ebgan'; got gan_mode={self.gan_mode!r}, discriminator={self.discriminator!r}")
        if self.num_d < 1 or self.n_critic < 1:
            raise ValueError(f"num_d and n_critic must be >= 1, got {self.num_d}, {self.n_critic}")
        if self.num_d > 1 and self.discriminator != "patch":
            raise ValueError("num_d > 1 (multi-scale) needs discriminator 'patch'")
        if min(self.lambda_gan, self.lambda_l2, self.clip_value, self.d_loss_factor) < 0 or self.ebgan_margin <= 0 or self.smooth_l1_beta <= 0:
            raise ValueError("lambda_gan, lambda_l2, clip_value, d_loss_factor must be >= 0 and ebgan_margin, smooth_l1_beta > 0")
        if self.generator == "unet" and not 0 <= self.ibn_layers_g <= self.num_downs - 2:
            raise ValueError(f"ibn_layers_g must be in [0, num_downs - 2 = {self.num_downs - 2}], got {self.ibn_layers_g}")
        if not 0 <= self.ibn_layers_d <= self.n_layers_d:
            raise ValueError(f"ibn_layers_d must be in [0, n_layers_d = {self.n_layers_d}], got {self.ibn_layers_d}")
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


@register_method("pix2pix", aliases=("cgan",))
class Pix2Pix(LabConvention, TrainableMethod):
    """pix2pix on L -> ab. One ``train_step`` updates D once, then G once, as the reference.

    ``train_step`` returns ``{"G_GAN", "G_L1", "D_real", "D_fake"}``: the generator's adversarial loss, its L1
    distance to the true ab (divided by 110; *not* multiplied by ``lambda_l1``), and D's losses on real and
    generated pairs (D's total loss is half their sum). Options of the family add ``"G_SmoothL1"`` (instead of
    ``"G_L1"`` with ``recon_loss="smooth_l1"``) and ``"G_L2"`` (with ``lambda_l2 > 0``); subclasses may add terms
    through :meth:`extra_generator_losses`. With ``n_critic > 1`` D steps on every batch and G on every
    ``n_critic``-th one; on the other steps the generator's losses are still computed (without a step) and
    reported, so every step returns the same keys.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="pix2pix",
        title="pix2pix: U-Net generator + conditional 70×70 PatchGAN, vanilla GAN + 100·L1, L -> ab",
        paper=PIX2PIX + "; as the adversarial baseline of Tarrés, master thesis, UPC / BBC, 2021, §4.1.2",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=(
            "Networks, losses and optimizer are the reference implementation's (junyanz/pytorch-CycleGAN-and-pix2pix, "
            "which has a colorization mode): the U-Net generator (ngf 64, batch norm, dropout 0.5), 'basic' "
            "PatchGAN D (3 layers, ndf 64, batch norm), vanilla GAN loss + λ = 100 L1, Adam lr 2e-4 betas (0.5, "
            "0.999), normal(0, 0.02) init, D loss halved.",
            "Paper preset = the thesis's pix2pix baseline (§4.1.2, Table 3): its U-Net has n = 7 downsamplings "
            "(§4.1.1, p. 18: 'The encoder consists of n=7 downsampling layers'; the reference's unet_128 depth, "
            "2×2 bottleneck at 256×256).",
            THESIS_SCHEDULE_CHOICE,
            THESIS_MODE_CHOICE,
            "Preset 'isola2017' = the reference implementation's own defaults (Isola et al. 2017): unet_256 "
            "(num_downs 8), batch size 1, 100 epochs at constant rate + 100 with linear decay, eval-mode test.",
            "D is conditional: it sees cat(L, ab), 3 channels (the reference's input_nc + output_nc).",
            "Lab scaling L/50 - 1, ab/110 (the reference's colorization code); the L input comes from the grey "
            "image under the run's grey convention.",
            "Test time in the quick and isola2017 presets: eval mode (batch-norm running statistics, no dropout) so "
            "colorize is deterministic; the reference's test script keeps train mode by default, using dropout as "
            "noise (prediction_mode 'train').",
            "Paper image size 256×256 (pix2pix and thesis §5.1.1, p. 24). The quick preset (32×32 images) uses num_downs 5, "
            "ngf 16, ndf 16, a 2-layer PatchGAN (34×34 receptive field, 6×6 score map) and batch size 32 so an "
            "epoch takes seconds on a CPU.",
            "Also registered as 'cgan': the supervised conditional-GAN baseline of Shanis, Saraf, Alapati (seed "
            "002, §3.5, §4.4) is pix2pix as implemented by the Keras-GAN zoo (eriklindernoren/Keras-GAN, "
            "pix2pix/pix2pix.py). Its settings are the 'cgan-paper' preset: least-squares GAN loss ('mse' on D's "
            "patch scores) + 100·L1 (the zoo's loss_weights [1, 100]), Adam 2e-4 / 0.5, batch 1, constant rate, "
            "100 epochs (the report's §4.4), a U-Net with 7 down-samplings (the zoo's d1…d7) at 256×256. Kept from "
            "pix2pix (one implementation): transposed-conv up-sampling (the zoo uses UpSampling2D + conv), the 70×70 "
            "PatchGAN (the zoo's D has 4 stride-2 convs, 16×16 patches at 256×256) and one D step on the summed "
            "real + fake loss (the zoo takes two). Overlay 'cgan-losses' sets its losses and constant rate on top "
            "of another preset (e.g. quick+cgan-losses).",
        ),
    )
    Config: ClassVar[type] = Pix2PixConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {
            **THESIS_SCHEDULE, "num_downs": THESIS_NUM_DOWNS, "ngf": 64, "ndf": 64, "n_layers_d": 3, "norm": "batch",
            "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0, **THESIS_PREDICTION,
        },
        "isola2017": {
            "batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "num_downs": 8, "ngf": 64, "ndf": 64,
            "n_layers_d": 3, "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0,
        },
        "thesis-prediction": dict(THESIS_PREDICTION),
        "cgan-losses": {"gan_mode": "lsgan", "lambda_l1": 100.0, "lr_decay_fraction": 0.0},
        "quick": {
            "batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "ndf": 16,
            "n_layers_d": 2, "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0,
        },
        "cgan-paper": {
            "batch_size": 1, "epochs": 100, "lr_decay_fraction": 0.0, "num_downs": 7, "ngf": 64, "ndf": 64,
            "n_layers_d": 3, "norm": "batch", "dropout": 0.5, "gan_mode": "lsgan", "lambda_l1": 100.0,
            "lr": 2e-4, "beta1": 0.5,
        },
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {
        "paper": THESIS_SCALE,
        "isola2017": PresetScale({"imagenet-val": 256}, "Isola et al. 2017, §4 and appendix 6.1: 256×256 images"),
        "cgan-paper": PresetScale({"flowers102": 256}, "Shanis et al., §4.4 (Keras-GAN pix2pix: img_rows = 256)"),
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        g = ColorfulNet.size_multiple if config.generator == "colorful" else 2**config.num_downs
        if config.discriminator == "autoencoder":
            g = max(g, 2**config.n_layers_d)
        return g

    def build_networks(self) -> None:
        c = self.config
        if c.generator == "colorful":
            self.G = ColorfulNet(1, 2, c.ngf)
        else:
            self.G = UnetGenerator(1, 2, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain, c.ibn_layers_g)
        if c.discriminator == "autoencoder":
            self.D = AutoEncoderDiscriminator(3, c.ndf, c.n_layers_d, c.norm, c.init_type, c.init_gain)
        elif c.num_d > 1:
            self.D = MultiScaleDiscriminator(3, c.ndf, c.n_layers_d, c.norm, c.d_spectral_norm, c.init_type, c.init_gain,
                                             c.ibn_layers_d, c.num_d)
        else:
            self.D = PatchDiscriminator(3, c.ndf, c.n_layers_d, c.norm, c.d_spectral_norm, c.init_type, c.init_gain, c.ibn_layers_d)
        self.gan_loss = GANLoss(c.gan_mode, margin=c.ebgan_margin)

    def _optimizer(self, params) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=c.lr)
        return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self._optimizer(self.G.parameters()), "D": self._optimizer(self.D.parameters())}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def recon_losses(self, fake: torch.Tensor, ab: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """The reconstruction terms of the generator loss: name -> (weight, unweighted value)."""
        c = self.config
        if c.recon_loss == "smooth_l1":
            terms = {"G_SmoothL1": (c.lambda_l1, F.smooth_l1_loss(fake, ab, beta=c.smooth_l1_beta))}
        else:
            terms = {"G_L1": (c.lambda_l1, F.l1_loss(fake, ab))}
        if c.lambda_l2 > 0:
            terms["G_L2"] = (c.lambda_l2, F.mse_loss(fake, ab))
        return terms

    def extra_generator_losses(self, L: torch.Tensor, fake: torch.Tensor, ab: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """Further generator terms of subclasses: name -> (weight, unweighted value). None here."""
        return {}

    def train_step(self, batch: Batch) -> dict[str, float]:
        c = self.config
        gray, rgb = self.prepare_batch(batch)
        self.set_train(True)
        L, ab = self.input_l(gray), self.target_ab(rgb)
        real_pair = torch.cat([L, ab], dim=1)
        g_step = self.steps % c.n_critic == c.n_critic - 1  # every step when n_critic == 1
        with self.training_rng():
            with self.autocast():
                fake = self.G(L).float()
            fake_pair = torch.cat([L, fake], dim=1)

            # D: real pairs -> real, generated pairs -> fake
            set_requires_grad(self.D, True)
            with self.autocast():
                scores_fake = self.D(fake_pair.detach())
                scores_real = self.D(real_pair)
            d_fake, d_real = self.gan_loss(scores_fake, False), self.gan_loss(scores_real, True)
            self.optimize(c.d_loss_factor * (d_fake + d_real), "D")
            if c.clip_value > 0:  # WGAN: keep the critic in a compact set of weights
                with torch.no_grad():
                    for p in self.D.parameters():
                        p.clamp_(-c.clip_value, c.clip_value)

            # G: fool D, and stay close to the true ab
            set_requires_grad(self.D, False)
            with torch.enable_grad() if g_step else torch.no_grad():
                with self.autocast():
                    scores = self.D(fake_pair)
                terms = {"G_GAN": (c.lambda_gan, self.gan_loss(scores, True))}
                terms.update(self.recon_losses(fake, ab))
                terms.update(self.extra_generator_losses(L, fake, ab))
                if g_step:
                    self.optimize(sum(w * v for w, v in terms.values()), "G")
            set_requires_grad(self.D, True)
        return self.finish_step({**{k: v for k, (_, v) in terms.items()}, "D_real": d_real, "D_fake": d_fake})
