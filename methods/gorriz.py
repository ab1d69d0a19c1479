"""Górriz et al. 2019 (BBC) and its feature-reconstruction variant (Tarrés 2021): the thesis's §4.1.3 and §4.2.

``gorriz``: pix2pix with IBN-Net normalization (instance norm added to the shallow layers, batch norm kept
throughout) in the generator and the discriminator, spectral normalization in the discriminator, multi-scale
discriminators (the same PatchGAN on the input at several scales) and a smooth-L1 colourisation loss.

``gorriz-featrec``: the same plus the feature reconstruction loss of Johnson et al. on VGG16 ``block3_conv3``
(weight 1e-5, thesis §5.1.1), with ImageNet weights from the torch hub cache or a path; without them, a classifier
trained by colorbench on the run's own training set (in :meth:`GorrizFeatRec.fit_start`) is the feature network,
and the run's record says so (``config.notes.feature_network``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from colorbench.color import lab_to_rgb
from colorbench.datasets.base import ImageSet
from colorbench.methods.base import MethodCard
from colorbench.methods.nets.features import (
    FEATURE_BACKBONES,
    build_feature_network,
    feature_reconstruction_loss,
    find_pretrained,
    load_pretrained_trunk,
    pretrained_file_name,
    train_feature_classifier,
)
from colorbench.methods.pix2pix import Pix2Pix, Pix2PixConfig
from colorbench.methods.registry import register_method
from colorbench.methods.unet_l1 import SEED_THESIS

GORRIZ = ("Górriz Blanch, Mrak, Smeaton, O'Connor, 'End-to-End Conditional GAN-based Architectures for Image "
          "Colourisation', IEEE MMSP 2019")
THESIS = "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021"

_GORRIZ_CHOICES = (
    "Generator: the pix2pix U-Net 256 (num_downs 8, ngf 64, dropout 0.5), as the thesis's baselines; IBN-Net "
    "'IBN-a' normalization (half the channels instance-normalized with affine parameters, half batch-normalized) "
    "after the down-convolutions of the 3 shallowest normalized encoder levels (those whose width grows, 2ngf, 4ngf, "
    "8ngf: IBN-Net puts IN in the shallow stages only, conv2_x–conv4_x of 5), batch norm everywhere else. The quick "
    "preset (num_downs 5) uses IBN in 2 levels so its deepest normalized level stays BN-only.",
    "Discriminator: pix2pixHD's multi-scale discriminator (Wang et al. 2018), the source Górriz et al. cite: 3 "
    "identical conditional 70×70 PatchGANs (ndf 64, 3 layers) on cat(L, ab) at full, 1/2 and 1/4 resolution (3×3 "
    "average pool, stride 2); spectral normalization on every conv; IBN in the first 2 of the 3 normalized layers, "
    "batch norm in the last. Their adversarial losses are averaged (pix2pixHD sums them; only a scale factor).",
    "Colourisation loss: smooth L1 (Huber, threshold 1 — the PyTorch / Keras default) on ab/110, weight λ = 100 "
    "(pix2pix's L1 weight; the thesis gives none). On this scale errors below 110 ab units are in the quadratic "
    "part, so the loss is 0.5·squared error for nearly every pixel.",
    "GAN loss vanilla (BCE), D loss halved, Adam 2e-4, betas (0.5, 0.999), normal(0, 0.02) init: pix2pix's.",
    "Batch size 16 and 23 epochs (the thesis trained its final model 23 epochs; batch size not given), linear "
    "decay over the second half; 256×256 images (thesis §5.1.1).",
    "Quick preset: 32×32 images, num_downs 5, ngf = ndf = 16, 2-layer PatchGANs at 2 scales (a third scale, 8×8, "
    "would give an empty score map), batch 32, 10 epochs.",
)
_GORRIZ_PAPER = {
    "batch_size": 16, "epochs": 23, "lr_decay_fraction": 0.5, "num_downs": 8, "ngf": 64, "ndf": 64, "n_layers_d": 3,
    "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0, "recon_loss": "smooth_l1",
    "d_spectral_norm": True, "num_d": 3, "ibn_layers_g": 3, "ibn_layers_d": 2,
}
_GORRIZ_QUICK = {
    "batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "ndf": 16, "n_layers_d": 2,
    "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0, "recon_loss": "smooth_l1",
    "d_spectral_norm": True, "num_d": 2, "ibn_layers_g": 2, "ibn_layers_d": 1,
}


@register_method("gorriz")
class Gorriz(Pix2Pix):
    """Górriz et al. 2019: pix2pix + IBN + spectral norm + multi-scale D + smooth L1 (see the card's choices).

    ``train_step`` returns ``{"G_GAN", "G_SmoothL1", "D_real", "D_fake"}``.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="gorriz",
        title="Górriz et al. (BBC): pix2pix + IBN norm, spectral-norm multi-scale PatchGANs, smooth-L1 loss",
        paper=GORRIZ + "; as the BBC baseline of " + THESIS + ", §4.1.3",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=_GORRIZ_CHOICES,
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": _GORRIZ_PAPER, "quick": _GORRIZ_QUICK}


@dataclass
class GorrizFeatRecConfig(Pix2PixConfig):
    """Options of ``gorriz-featrec``: those of ``gorriz`` plus the feature reconstruction loss.

    Attributes:
        lambda_feat: weight of the feature reconstruction loss (thesis: 0.00001).
        feature_backbone: ``"vgg16"`` (``block3_conv3``) or ``"resnet50"`` (``layer1``).
        feature_weights: path of ImageNet weights; "" looks in the torch hub cache (no download).
        feature_width: width of the VGG16-shaped network trained on the run's data when no weights exist.
        feature_epochs, feature_lr, feature_batch_size: its training (Adam) in ``fit_start``.
    """

    lambda_feat: float = 1e-5
    feature_backbone: str = "vgg16"
    feature_weights: str = ""
    feature_width: int = 64
    feature_epochs: int = 5
    feature_lr: float = 1e-3
    feature_batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feature_backbone not in FEATURE_BACKBONES:
            raise ValueError(f"unknown feature_backbone {self.feature_backbone!r}; choose one of {FEATURE_BACKBONES}")
        if self.lambda_feat < 0 or self.feature_width < 1 or self.feature_epochs < 1 or self.feature_lr <= 0 or self.feature_batch_size < 1:
            raise ValueError("lambda_feat must be >= 0; feature_width, feature_epochs, feature_batch_size >= 1; feature_lr > 0")


@register_method("gorriz-featrec")
class GorrizFeatRec(Gorriz):
    """``gorriz`` + λ·feature reconstruction loss on a frozen feature network "F".

    ``train_step`` returns ``{"G_GAN", "G_SmoothL1", "G_feat", "D_real", "D_fake"}``. Where F comes from is
    :attr:`feature_source` (also in :meth:`notes`, which the runner stores in the record): pretrained ImageNet
    weights when found at construction; otherwise F is trained on the run's training set in :meth:`fit_start`.
    If ``train_step`` runs before either (direct API use without ``fit_start``), the feature term is left out
    with a warning, and ``feature_source`` says so: F's random initial weights are never used.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="gorriz-featrec",
        title="Górriz et al. + feature reconstruction loss on VGG16 block3_conv3 (Tarrés 2021)",
        paper=THESIS + ", §4.2 and §5.1.1; feature loss of Johnson, Alahi, Fei-Fei, ECCV 2016; base model " + GORRIZ,
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=_GORRIZ_CHOICES + (
            "Feature reconstruction loss: Johnson et al.'s squared, normalized Euclidean distance "
            "||φ(ŷ) − φ(y)||² / (C·H·W) between activations of VGG16 block3_conv3 (after its ReLU, as Keras's "
            "layer output) for the generated and the real image, weight 1e-5 (thesis §5.1.1). Both images are "
            "rebuilt in sRGB from the input's L and the predicted or true ab (so only colour differs), then "
            "ImageNet-normalized. At this weight and normalization the term is small next to 100·smooth-L1; the "
            "thesis's Keras code may have normalized differently — not stated.",
            "Backbone selectable: vgg16 (block3_conv3) or resnet50 (layer1: same 1/4 resolution and 256 channels as "
            "block3_conv3; the thesis does not name the ResNet50 layer).",
            "Weights: torchvision's ImageNet checkpoints (vgg16-397923af.pth, resnet50-0676ba61.pth) from "
            "torch.hub.get_dir()/checkpoints or the feature_weights path; nothing is downloaded. Without them "
            "(offline), fit_start trains a VGG16-shaped network (width feature_width) as a classifier on the run's "
            "training images — their labels if there are at least 2 classes, else rotation prediction (Gidaris et "
            "al. 2018) — for feature_epochs epochs, then freezes it. The record's config.notes.feature_network "
            "says which was used.",
            "Quick preset: as gorriz's, with an 8-wide fallback feature network trained 2 epochs.",
        ),
    )
    Config: ClassVar[type] = GorrizFeatRecConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {**_GORRIZ_PAPER, "lambda_feat": 1e-5, "feature_backbone": "vgg16", "feature_width": 64, "feature_epochs": 5},
        "quick": {**_GORRIZ_QUICK, "lambda_feat": 1e-5, "feature_backbone": "vgg16", "feature_width": 8, "feature_epochs": 2},
    }

    def build_networks(self) -> None:
        super().build_networks()
        c = self.config
        path = find_pretrained(c.feature_backbone, c.feature_weights)
        if path is not None:
            self.F = build_feature_network(c.feature_backbone, 64)
            load_pretrained_trunk(self.F, c.feature_backbone, path)
            self.feature_source = f"pretrained ImageNet {c.feature_backbone} weights from {path}"
            self.feature_ready = True
        else:
            self.F = build_feature_network(c.feature_backbone if c.feature_backbone == "vgg16" else "vgg16", c.feature_width)
            self.feature_source = (
                f"not ready: no pretrained {c.feature_backbone} weights ({pretrained_file_name(c.feature_backbone)} is "
                f"not in {torch.hub.get_dir()}/checkpoints and no feature_weights path was given); fit_start trains one "
                f"on the training set"
            )
            self.feature_ready = False
        self.F.eval()
        for p in self.F.parameters():
            p.requires_grad_(False)
        self._warned = False

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "F": self.F}

    def set_train(self, mode: bool = True) -> None:
        super().set_train(mode)
        self.F.eval()  # frozen: batch-norm statistics (ResNet) and dropout never change

    def fit_start(self, train: ImageSet) -> None:
        """Train the fallback feature network on ``train`` when no pretrained weights were found."""
        if self.feature_ready:
            return
        c = self.config
        info = train_feature_classifier(
            self.F, train.rgb, train.labels, epochs=c.feature_epochs, lr=c.feature_lr,
            batch_size=c.feature_batch_size, seed=self.seed, device=self.device,
        )
        task = "its image labels" if info["task"] == "labels" else "rotation prediction (the set has one label)"
        self.feature_source = (
            f"trained by colorbench (no pretrained {c.feature_backbone} weights found): VGG16-shaped network, width "
            f"{c.feature_width}, up to block3_conv3, trained as a {info['classes']}-way classifier on {task} for "
            f"{info['epochs']} epochs on the run's {info['images']} training images (final training accuracy "
            f"{info['train_accuracy']:.3f}), then frozen"
        )
        self.feature_ready = True
        self.set_train(True)

    def notes(self) -> dict[str, Any]:
        return {"feature_network": self.feature_source}

    def caveats(self) -> list[str]:
        if self.feature_source.startswith("pretrained"):
            return []
        return [f"substitute feature network (no pretrained {self.config.feature_backbone} ImageNet weights): "
                f"{self.feature_source}"]

    def extra_generator_losses(self, L: Tensor, fake: Tensor, ab: Tensor) -> dict[str, tuple[float, Tensor]]:
        c = self.config
        if c.lambda_feat == 0:
            return {}
        if not self.feature_ready:
            if not self._warned:
                warnings.warn(f"gorriz-featrec: {self.feature_source}; training without the feature loss until then",
                              RuntimeWarning, stacklevel=3)
                self._warned = True
            return {}
        L_star = (L + 1.0) * 50.0
        fake_rgb = lab_to_rgb(torch.cat([L_star, fake * 110.0], dim=1))
        real_rgb = lab_to_rgb(torch.cat([L_star, ab * 110.0], dim=1))
        with self.autocast():
            loss = feature_reconstruction_loss(self.F, fake_rgb, real_rgb)
        return {"G_feat": (c.lambda_feat, loss.float())}

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["feature_source"], state["feature_ready"] = self.feature_source, self.feature_ready
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.feature_source = state.get("feature_source", self.feature_source)
        self.feature_ready = bool(state.get("feature_ready", self.feature_ready))
        self.F.eval()
