"""Górriz et al. 2019 (BBC) and its feature-reconstruction variant (Tarrés 2021): the thesis's §4.1.3 and §4.2.

``gorriz``: pix2pix with IBN-Net normalization (instance norm added to the shallow layers, batch norm kept
throughout) in the generator and the discriminator, spectral normalization in the discriminator, multi-scale
discriminators (the same PatchGAN on the input at several scales) and a smooth-L1 colourisation loss.

``gorriz-featrec``: the same plus the feature reconstruction loss of Johnson et al. on ImageNet VGG16
``block3_conv3`` (weight 1e-5, thesis §5.1.1) with the input the thesis's Keras VGG16 took ("caffe"
preprocessing), weights from the torch hub cache or a path; without them the method fails naming the file.
``gorriz-featrec-selftrained``: the variant whose feature network colorbench trains on the run's own images.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from colorbench.core.color import lab_to_rgb
from colorbench.datasets.base import ImageSet
from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.nets.features import (
    FEATURE_BACKBONES,
    WEIGHT_KINDS,
    build_feature_network,
    feature_reconstruction_loss,
    file_sha256,
    find_pretrained,
    load_pretrained_trunk,
    missing_weights_message,
    train_feature_classifier,
)
from colorbench.methods.pix2pix import Pix2Pix, Pix2PixConfig
from colorbench.methods.registry import Variant, register_method, register_variant
from colorbench.methods.unet_l1 import (
    SEED_THESIS,
    THESIS_MODE_CHOICE,
    THESIS_NUM_DOWNS,
    THESIS_PREDICTION,
    THESIS_SCALE,
    THESIS_SCHEDULE,
    THESIS_SCHEDULE_CHOICE,
)

GORRIZ = ("Górriz Blanch, Mrak, Smeaton, O'Connor, 'End-to-End Conditional GAN-based Architectures for Image "
          "Colourisation', IEEE MMSP 2019")
THESIS = "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021"

_GORRIZ_CHOICES = (
    "Generator: the pix2pix U-Net with the thesis's n = 7 downsamplings (§4.1.1, p. 18; ngf 64, dropout 0.5), as "
    "the thesis's baselines; IBN-Net "
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
    THESIS_SCHEDULE_CHOICE,
    THESIS_MODE_CHOICE,
    "256×256 images on the thesis's ImageNet protocol (dataset imagenet-val; §5.1.1, p. 24).",
    "Quick preset: 32×32 images, num_downs 5, ngf = ndf = 16, 2-layer PatchGANs at 2 scales (a third scale, 8×8, "
    "would give an empty score map), batch 32, 10 epochs.",
)
_GORRIZ_PAPER = {
    **THESIS_SCHEDULE, "num_downs": THESIS_NUM_DOWNS, "ngf": 64, "ndf": 64, "n_layers_d": 3,
    "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0, "recon_loss": "smooth_l1",
    "d_spectral_norm": True, "num_d": 3, "ibn_layers_g": 3, "ibn_layers_d": 2, **THESIS_PREDICTION,
}
_GORRIZ_QUICK = {
    "batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "ndf": 16, "n_layers_d": 2,
    "norm": "batch", "dropout": 0.5, "gan_mode": "vanilla", "lambda_l1": 100.0, "recon_loss": "smooth_l1",
    "d_spectral_norm": True, "num_d": 2, "ibn_layers_g": 2, "ibn_layers_d": 1,
}


#: Górriz et al. 2019: pix2pix + IBN + spectral norm + multi-scale D + smooth L1 (see the card's choices);
#: ``train_step`` returns ``{"G_GAN", "G_SmoothL1", "D_real", "D_fake"}``.
Gorriz = register_variant(Variant(
    "gorriz", Pix2Pix,
    MethodCard(
        name="gorriz",
        title="Górriz et al. (BBC): pix2pix + IBN norm, spectral-norm multi-scale PatchGANs, smooth-L1 loss",
        paper=GORRIZ + "; as the BBC baseline of " + THESIS + ", §4.1.3",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=_GORRIZ_CHOICES,
    ),
    presets={"paper": _GORRIZ_PAPER, "quick": _GORRIZ_QUICK, "thesis-prediction": dict(THESIS_PREDICTION)},
    preset_scales={"paper": THESIS_SCALE},
    doc="Górriz et al. 2019: pix2pix + IBN + spectral norm + multi-scale D + smooth L1 (see the card's choices). "
        "``train_step`` returns ``{\"G_GAN\", \"G_SmoothL1\", \"D_real\", \"D_fake\"}``.",
), __name__)


@dataclass
class GorrizFeatRecConfig(Pix2PixConfig):
    """Options of ``gorriz-featrec``: those of ``gorriz`` plus the feature reconstruction loss.

    Attributes:
        lambda_feat: weight of the feature reconstruction loss (thesis §5.1.1, p. 24: 0.00001).
        feature_backbone: ``"vgg16"`` (``block3_conv3``, thesis §5.1.1) or ``"resnet50"`` (``layer1``).
        feature_weights_kind: ``"caffe"`` (the original Caffe VGG16 — the weights of the thesis's Keras VGG16 —
            with Keras's "caffe" preprocessing: BGR, 0-255, ImageNet mean subtracted) or ``"torchvision"``
            (torchvision's checkpoint with its own [0, 1] mean/std normalization).
        feature_weights: path of the weights file; "" looks in the torch hub cache (no download).
        feature_width, feature_epochs, feature_lr, feature_batch_size: only ``gorriz-featrec-selftrained``: the
            VGG16-shaped network it trains on the run's own data (width) and its training (Adam) in ``fit_start``.
    """

    lambda_feat: float = 1e-5
    feature_backbone: str = "vgg16"
    feature_weights_kind: str = "caffe"
    feature_weights: str = ""
    feature_width: int = 64
    feature_epochs: int = 5
    feature_lr: float = 1e-3
    feature_batch_size: int = 64

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.feature_backbone not in FEATURE_BACKBONES:
            raise ValueError(f"unknown feature_backbone {self.feature_backbone!r}; choose one of {FEATURE_BACKBONES}")
        if self.feature_weights_kind not in WEIGHT_KINDS:
            raise ValueError(f"unknown feature_weights_kind {self.feature_weights_kind!r}; choose one of {WEIGHT_KINDS}")
        if self.feature_weights_kind == "caffe" and self.feature_backbone != "vgg16":
            raise ValueError("feature_weights_kind 'caffe' exists only for feature_backbone 'vgg16'; use 'torchvision'")
        if self.lambda_feat < 0 or self.feature_width < 1 or self.feature_epochs < 1 or self.feature_lr <= 0 or self.feature_batch_size < 1:
            raise ValueError("lambda_feat must be >= 0; feature_width, feature_epochs, feature_batch_size >= 1; feature_lr > 0")


_FEATREC_CHOICES = _GORRIZ_CHOICES + (
    "Feature reconstruction loss as the thesis computed it (§4.2, §5.1.1, p. 24): Johnson et al.'s squared, "
    "normalized Euclidean distance ||φ(ŷ) − φ(y)||² / (C·H·W) (batch-averaged) between the activations of VGG16 "
    "block3_conv3 (after its ReLU, as Keras's layer output) for the generated and the real image, weight "
    "λ_feat = 0.00001 in the generator loss. Both images are rebuilt in sRGB from the input's L and the predicted "
    "or true ab (so only colour differs).",
    "Network input: the thesis used Keras's VGG16 (Keras Applications [37]), whose ImageNet weights are the "
    "original Caffe VGG16 and take 'caffe' preprocessing: RGB -> BGR, 0-255, minus the BGR means (103.939, "
    "116.779, 123.68), no scaling. feature_weights_kind = 'caffe' (paper and quick presets) uses those weights "
    "(file vgg16-00b39a1b.pth, J. Johnson's conversion of the Caffe model to torchvision's layout) with that "
    "preprocessing, so the term has the thesis's size. An input difference is 255× larger under caffe "
    "preprocessing than in [0, 1] RGB, and 255·σ_c ≈ 57–58× larger than under torchvision's mean/std "
    "normalization (σ = 0.229, 0.224, 0.225), i.e. ≈ 3,300× in a squared feature distance for a network that is "
    "linear in its input: why a torchvision-normalized term was ~1e-11 next to the L1 term. "
    "feature_weights_kind = 'torchvision' (vgg16-397923af.pth with torchvision's own normalization) is an option, "
    "not the thesis's computation: each kind of weights gets the preprocessing it was trained for.",
    "Weights: looked up in torch.hub.get_dir()/checkpoints or at the feature_weights path; nothing is downloaded. "
    "Without them the method fails before training (a failed row) naming the file and where to put it; no other "
    "network is used in its place. The variant gorriz-featrec-selftrained (a separate method) trains its own "
    "feature network on the run's images instead.",
    "Backbone selectable: vgg16 (block3_conv3) or resnet50 (layer1: same 1/4 resolution and 256 channels as "
    "block3_conv3; the thesis does not name the ResNet50 layer; torchvision weights only).",
    "Quick preset: as gorriz's (same weights requirement and loss).",
)


class FeatureReconstruction:
    """Mixin (not a ``Method``; list it before :class:`~colorbench.methods.pix2pix.Pix2Pix`) adding to pix2pix
    λ·feature reconstruction loss on a frozen feature network "F": pretrained ImageNet weights
    (``feature_network = "pretrained"``, ``gorriz-featrec``) or a network trained by :meth:`fit_start` on the run's
    images (``"selftrained"``, the variant ``gorriz-featrec-selftrained``).

    ``train_step`` returns ``{"G_GAN", "G_SmoothL1", "G_feat", "D_real", "D_fake"}`` (unweighted values; the
    generator loss is ``1·G_GAN + λ_l1·G_SmoothL1 + λ_feat·G_feat``). The pretrained weights are loaded at
    construction when found; without them :meth:`fit_start` and :meth:`train_step` raise ``FileNotFoundError``
    naming the file to put where (F's random initial weights are never used).
    """

    Config: ClassVar[type] = GorrizFeatRecConfig
    frozen_networks: ClassVar[tuple[str, ...]] = ("F",)
    #: where F's weights come from: "pretrained" (ImageNet file, gorriz-featrec) or "selftrained" (the variant)
    feature_network: ClassVar[str] = "pretrained"

    def build_networks(self) -> None:
        super().build_networks()
        c = self.config
        self._warned = False
        if self.feature_network == "selftrained":
            self.F = build_feature_network("vgg16", c.feature_width)
            self.feature_preprocess = "torchvision"
            self.feature_source = "not ready: fit_start trains the feature network on the training set"
            self.feature_ready = False
        else:
            self.F = build_feature_network(c.feature_backbone, 64)
            self.feature_preprocess = c.feature_weights_kind
            path = find_pretrained(c.feature_backbone, c.feature_weights, c.feature_weights_kind)
            if path is not None:
                load_pretrained_trunk(self.F, c.feature_backbone, path)
                self.feature_source = (f"pretrained ImageNet {c.feature_backbone} weights ({c.feature_weights_kind} "
                                       f"kind, {c.feature_weights_kind} preprocessing) from {path} (sha256 "
                                       f"{file_sha256(path)})")
                self.feature_ready = True
            else:
                self.feature_source = "missing: " + missing_weights_message(
                    "gorriz-featrec", c.feature_backbone, c.feature_weights_kind)
                self.feature_ready = False
        self.F.eval()
        for p in self.F.parameters():
            p.requires_grad_(False)

    @classmethod
    def unavailable_reason(cls, preset: str) -> str | None:
        c = cls.make_config(preset)
        if cls.feature_network != "pretrained" or c.lambda_feat == 0:
            return None
        try:
            found = find_pretrained(c.feature_backbone, c.feature_weights, c.feature_weights_kind)
        except FileNotFoundError as exc:
            return str(exc)
        return None if found is not None else missing_weights_message(cls.card.name, c.feature_backbone,
                                                                      c.feature_weights_kind)

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "F": self.F}

    def set_train(self, mode: bool = True) -> None:
        super().set_train(mode)
        self.F.eval()  # frozen: batch-norm statistics (ResNet) and dropout never change

    def _require_features(self) -> None:
        if not self.feature_ready:
            raise FileNotFoundError(self.feature_source.removeprefix("missing: "))

    def fit_start(self, train: ImageSet) -> None:
        """Fail before any training when the pretrained weights are missing; with a self-trained feature network
        (``feature_network = "selftrained"``), train it on ``train`` (once)."""
        if self.feature_network == "selftrained":
            self._train_features(train)
        elif self.config.lambda_feat > 0:
            self._require_features()

    def notes(self) -> dict[str, Any]:
        return {"feature_network": self.feature_source, "feature_preprocessing": self.feature_preprocess}

    def caveats(self) -> list[str]:
        if self.feature_source.startswith("pretrained"):
            return []
        return [f"substitute feature network, not the paper's ImageNet {self.config.feature_backbone}: "
                f"{self.feature_source}"]

    def extra_generator_losses(self, L: Tensor, fake: Tensor, ab: Tensor) -> dict[str, tuple[float, Tensor]]:
        """The weighted feature term. A self-trained feature network without ``fit_start`` (direct API use) leaves
        the term out with a warning until it is trained: its random initial weights are never used."""
        c = self.config
        if c.lambda_feat == 0:
            return {}
        if self.feature_network == "selftrained" and not self.feature_ready:
            if not self._warned:
                warnings.warn(f"{self.card.name}: fit_start has not trained the feature network yet; "
                              "training without the feature loss until then", RuntimeWarning, stacklevel=3)
                self._warned = True
            return {}
        self._require_features()
        L_star = (L + 1.0) * 50.0
        fake_rgb = lab_to_rgb(torch.cat([L_star, fake * 110.0], dim=1))
        real_rgb = lab_to_rgb(torch.cat([L_star, ab * 110.0], dim=1))
        with self.autocast():
            loss = feature_reconstruction_loss(self.F, fake_rgb, real_rgb, self.feature_preprocess)
        return {"G_feat": (c.lambda_feat, loss.float())}

    def _train_features(self, train: ImageSet) -> None:
        """Train the self-trained feature network on ``train`` (once) and freeze it."""
        if self.feature_ready:
            return
        c = self.config
        info = train_feature_classifier(
            self.F, train.rgb, train.labels, epochs=c.feature_epochs, lr=c.feature_lr,
            batch_size=c.feature_batch_size, seed=self.seed, device=self.device,
        )
        task = "its image labels" if info["task"] == "labels" else "rotation prediction (the set has one label)"
        self.feature_source = (
            f"trained by colorbench (not ImageNet weights): VGG16-shaped network, width {c.feature_width}, up to "
            f"block3_conv3, trained as a {info['classes']}-way classifier on {task} for {info['epochs']} epochs on "
            f"the run's {info['images']} training images (final training accuracy {info['train_accuracy']:.3f}), "
            f"then frozen"
        )
        self.feature_ready = True
        self.set_train(True)


    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["feature_source"], state["feature_ready"] = self.feature_source, self.feature_ready
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.feature_source = state.get("feature_source", self.feature_source)
        self.feature_ready = bool(state.get("feature_ready", self.feature_ready))
        self.F.eval()


@register_method("gorriz-featrec")
class GorrizFeatRec(FeatureReconstruction, Pix2Pix):
    """``gorriz`` + λ·feature reconstruction loss on a frozen, pretrained ImageNet feature network "F" (see
    :class:`FeatureReconstruction`)."""

    card: ClassVar[MethodCard] = MethodCard(
        name="gorriz-featrec",
        title="Górriz et al. + feature reconstruction loss on ImageNet VGG16 block3_conv3 (Tarrés 2021)",
        paper=THESIS + ", §4.2 and §5.1.1; feature loss of Johnson, Alahi, Fei-Fei, ECCV 2016; base model " + GORRIZ,
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        choices=_FEATREC_CHOICES,
        licence="MIT (colorbench's code); the feature network's ImageNet weights: their publishers' licences "
                "(`colorbench weights list vgg16-caffe vgg16 resnet50`; not verified here)",
        training_data=("ImageNet-1k train",),  # the frozen feature network F only; G and D train on the run's data
        weights=("vgg16-caffe", "vgg16", "resnet50"),
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {**_GORRIZ_PAPER, "lambda_feat": 1e-5, "feature_backbone": "vgg16", "feature_weights_kind": "caffe"},
        "quick": {**_GORRIZ_QUICK, "lambda_feat": 1e-5, "feature_backbone": "vgg16", "feature_weights_kind": "caffe"},
        "thesis-prediction": dict(THESIS_PREDICTION),
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": THESIS_SCALE}


_SELFTRAINED_CARD = MethodCard(
    name="gorriz-featrec-selftrained",
    title="gorriz-featrec with a feature network trained on the run's own images (not ImageNet VGG16)",
    paper=THESIS + ", §4.2 (variant: the loss network is not the thesis's pretrained VGG16)",
    source=SEED_THESIS,
    paired=True,
    color_space="lab",
    choices=_GORRIZ_CHOICES + (
        "Feature reconstruction loss as gorriz-featrec (Johnson et al.'s normalized squared distance at the "
        "block3_conv3 position, weight λ_feat) but the loss network is NOT the thesis's ImageNet VGG16: "
        "fit_start trains a VGG16-shaped trunk (width feature_width, conv1_1…conv3_3) as a classifier on the "
        "run's training images — their labels if there are at least 2 classes, else rotation prediction "
        "(Gidaris et al. 2018) — for feature_epochs epochs (Adam, feature_lr), then freezes it. Its input is "
        "[0, 1] RGB normalized by torchvision's ImageNet mean/std (the network is trained on that input).",
        "The term's size is therefore not the thesis's: in a recorded quick run the unweighted term was "
        "2.0e-6, so at λ_feat = 1e-5 it added ~2e-11 to a generator loss whose 100·smooth-L1 term was ~3.6; "
        "this variant is kept for comparison, under its own name.",
        "Quick preset: an 8-wide network trained 2 epochs.",
    ),
)

#: ``gorriz-featrec`` whose feature network is trained by colorbench on the run's own training images. Not the
#: thesis's model (which used ImageNet VGG16): a variant for machines without the weights file, named as such.
#: ``fit_start`` trains a VGG16-shaped trunk (width ``feature_width``) as a classifier on the training set and
#: freezes it; the record's ``config.notes.feature_network`` says what was trained.
GorrizFeatrecSelftrained = register_variant(Variant(
    "gorriz-featrec-selftrained", Pix2Pix, _SELFTRAINED_CARD,
    presets={
        "paper": {**_GORRIZ_PAPER, "lambda_feat": 1e-5, "feature_width": 64, "feature_epochs": 5},
        "quick": {**_GORRIZ_QUICK, "lambda_feat": 1e-5, "feature_width": 8, "feature_epochs": 2},
        "thesis-prediction": dict(THESIS_PREDICTION),
    },
    preset_scales={"paper": THESIS_SCALE},
    switches={"feature_network": "selftrained"},
    mixins=(FeatureReconstruction,),
    doc="``gorriz-featrec`` whose feature network is trained by colorbench on the run's own training images "
        "(not the thesis's ImageNet VGG16).",
), __name__)
