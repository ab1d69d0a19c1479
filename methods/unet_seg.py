"""U-Net with a shared decoder predicting one ab pair per semantic class (Tarrés 2021, §4.3.1 and §5.2).

The generator's last layer outputs ``2·n_classes`` ab channels ("a pair of a and b channels for each considered
semantic class"); training compares, at every labelled pixel, the ab pair of the pixel's true class with the real
ab by L1 (§4.3.1). To colorize without labels the network also predicts the class: ``n_classes`` more output
channels of per-pixel logits, trained with cross-entropy on the same masks; the colorized output takes, at each
pixel, the ab pair of the predicted (argmax) class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.datasets.base import IGNORE_INDEX, Batch, ImageSet
from colorbench.methods.base import MethodCard
from colorbench.methods.lab import LabMethod
from colorbench.methods.nets import UnetGenerator
from colorbench.methods.registry import register_method
from colorbench.methods.unet_l1 import SEED_THESIS, UNetL1Config

THESIS = "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021"


@dataclass
class UNetSegConfig(UNetL1Config):
    """Options of ``unet-seg`` (those of ``unet-l1`` plus the classes); the defaults are the paper preset.

    Attributes:
        n_classes: semantic classes of the masks (Pascal VOC: 21 with the background).
        lambda_seg: weight of the per-pixel cross-entropy of the class logits.
    """

    epochs: int = 48
    n_classes: int = 21
    lambda_seg: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_classes < 1 or self.lambda_seg < 0:
            raise ValueError(f"need n_classes >= 1 and lambda_seg >= 0, got {self.n_classes}, {self.lambda_seg}")


@register_method("unet-seg")
class UNetSeg(LabMethod):
    """Shared-decoder U-Net: per-class ab pairs + class logits. Needs per-pixel masks (``batch.masks``).

    ``train_step`` returns ``{"G_L1", "G_seg"}``: the L1 of the true class's ab pair (labelled pixels, ab/110) and
    the cross-entropy of the class logits.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="unet-seg",
        title="U-Net with a shared decoder predicting an ab pair per semantic class (needs masks)",
        paper=THESIS + ", §4.3.1 'Shared decoder' and §5.2",
        source=SEED_THESIS,
        paired=True,
        color_space="lab",
        needs_masks=True,
        choices=(
            "Network: the thesis's baseline U-Net (as unet-l1: pix2pix U-Net, num_downs 7, ngf 64, batch norm, dropout "
            "0.5) whose last layer outputs 2·n_classes ab channels (Tanh) — plus n_classes logit channels (see below).",
            "Loss: at every pixel with a known class, L1 between the true class's predicted ab pair and the real ab "
            "(ab/110), averaged over those pixels; the other classes' pairs get no gradient there (the thesis's "
            "suggestion in §5.2.2: 'only computing the loss over the present classes'). Unlabelled pixels "
            "(IGNORE_INDEX) are left out.",
            "Class prediction: the thesis says the output takes 'the a and b channels for each class' but not how a "
            "class is chosen without labels; here the same last layer also gives n_classes logits trained with "
            "per-pixel cross-entropy (weight lambda_seg = 1), and colorize uses the ab pair of the argmax class.",
            "Paper preset: Pascal VOC's 21 classes, 48 epochs (thesis §5.2.1), 256×256, batch 16, Adam 2e-4 (0.5, "
            "0.999), linear decay over the second half (as unet-l1). Quick preset: the shapes dataset's 8 classes, "
            "num_downs 5, ngf 16, 32×32, batch 32, 10 epochs.",
            "Needs per-pixel masks: on a dataset without them training raises a ValueError (a failed row in a run).",
        ),
    )
    Config: ClassVar[type] = UNetSegConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 16, "epochs": 48, "lr_decay_fraction": 0.5, "num_downs": 7, "ngf": 64, "norm": "batch",
                  "dropout": 0.5, "n_classes": 21, "lambda_seg": 1.0},
        "quick": {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "norm": "batch",
                  "dropout": 0.5, "n_classes": 8, "lambda_seg": 1.0},
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2**config.num_downs

    def build_networks(self) -> None:
        c = self.config
        self.G = UnetGenerator(1, 3 * c.n_classes, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain,
                               out_activation="none")

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def split_output(self, out: Tensor) -> tuple[Tensor, Tensor]:
        """Raw output -> (per-class ab ``(N, n_classes, 2, H, W)`` in [-1, 1], logits ``(N, n_classes, H, W)``)."""
        n = self.config.n_classes
        ab = out[:, : 2 * n].tanh().unflatten(1, (n, 2))
        return ab, out[:, 2 * n :]

    def check_masks(self, masks: Tensor | None, where: str) -> Tensor:
        if masks is None:
            raise ValueError(
                f"method 'unet-seg' needs per-pixel class masks ({where} has none): use a dataset with masks, e.g. "
                f"--dataset shapes"
            )
        known = masks[masks != IGNORE_INDEX]
        if known.numel() and (known.min() < 0 or known.max() >= self.config.n_classes):
            raise ValueError(
                f"method 'unet-seg': mask classes must lie in [0, n_classes = {self.config.n_classes}) or be "
                f"IGNORE_INDEX ({IGNORE_INDEX}), got values up to {int(known.max())}; set the n_classes option"
            )
        return masks

    def fit_start(self, train: ImageSet) -> None:
        """Fail early, before any training, on a training set without masks or with too many classes."""
        masks = self.check_masks(train.masks, "the training set")
        names = train.mask_class_names or []
        if len(names) > self.config.n_classes:
            raise ValueError(f"method 'unet-seg': the data has {len(names)} mask classes but n_classes is "
                             f"{self.config.n_classes}; set the n_classes option")
        del masks

    def train_step(self, batch: Batch) -> dict[str, float]:
        masks = self.check_masks(batch.masks, "this batch")
        gray, rgb = self.prepare_batch(batch)
        masks = masks.to(self.device).long()
        if masks.shape != (gray.shape[0], *gray.shape[-2:]):
            raise ValueError(f"unet-seg: masks of shape {tuple(masks.shape)} do not match the images {tuple(gray.shape)}")
        self.G.train()
        L, ab = self.input_l(gray), self.target_ab(rgb)
        known = masks != IGNORE_INDEX
        cls = masks.clamp(0, self.config.n_classes - 1)
        with self.training_rng():
            with self.autocast():
                out = self.G(L).float()
            pred_ab, logits = self.split_output(out)
            index = cls[:, None, None].expand(-1, 1, 2, -1, -1)  # (N, 1, 2, H, W)
            ab_of_class = pred_ab.gather(1, index).squeeze(1)  # the true class's pair at every pixel
            err = (ab_of_class - ab).abs().mean(1)  # (N, H, W)
            weight = known.float()
            l1 = (err * weight).sum() / weight.sum().clamp(min=1.0)
            seg = F.cross_entropy(logits, masks.masked_fill(~known, -100), ignore_index=-100) if known.any() else logits.sum() * 0
            self.optimize(l1 + self.config.lambda_seg * seg, "G")
        return self.finish_step({"G_L1": l1, "G_seg": seg})

    def predict_ab(self, L: Tensor) -> Tensor:
        """The ab pair of the predicted class at each pixel."""
        with self.autocast():
            out = self.G(L).float()
        pred_ab, logits = self.split_output(out)
        cls = logits.argmax(1)[:, None, None].expand(-1, 1, 2, -1, -1)
        return pred_ab.gather(1, cls).squeeze(1)
