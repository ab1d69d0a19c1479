"""U-Net with a shared decoder predicting one ab pair per semantic class (Tarrés 2021, §4.3.1 and §5.2).

``seg_output = "per-class-ab"`` (the paper and quick presets: the thesis's Table 5 model): the generator's last
layer outputs ``2·n_classes`` ab channels ("a pair of a and b channels for each considered semantic class",
§4.3.1, §5.2.1); the target of class c's pair is the real ab where the mask is c and 0 (no colour) elsewhere, and
the loss is the L1 over all ``2·n_classes`` channels at every labelled pixel (§4.3.1: "we match the original a and b
channels for each class with the generated a and b channels ... L1"). Colorizing sums the pairs over the classes
(the target pairs sum to the real ab), clipped to [-1, 1].

``seg_output = "per-class-ab+logits"`` (overlay preset ``class-head``): the thesis's suggestion of §5.2.2 —
the L1 only on the pixel's true class's pair — plus ``n_classes`` output channels of class logits trained with
cross-entropy; colorizing takes the ab pair of the predicted (argmax) class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.datasets.base import IGNORE_INDEX, Batch, ImageSet
from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.lab import LabConvention
from colorbench.methods.nets import UnetGenerator
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import TrainableMethod
from colorbench.methods.unet_l1 import SEED_THESIS, THESIS_PREDICTION, THESIS_VOC_SCALE, UNetL1Config

SEG_OUTPUTS = ("per-class-ab", "per-class-ab+logits")
THESIS = "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021"


@dataclass
class UNetSegConfig(UNetL1Config):
    """Options of ``unet-seg`` (those of ``unet-l1`` plus the classes); the defaults are the paper preset.

    Attributes:
        n_classes: semantic classes of the masks (Pascal VOC: 21 with the background).
        seg_output: ``"per-class-ab"`` (2·n_classes outputs, the thesis's Table 5 model) or
            ``"per-class-ab+logits"`` (3·n_classes: plus class logits with a cross-entropy head).
        lambda_seg: weight of the per-pixel cross-entropy of the class logits (``per-class-ab+logits`` only).
    """

    epochs: int = 48
    n_classes: int = 21
    seg_output: str = "per-class-ab"
    lambda_seg: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_classes < 1 or self.lambda_seg < 0:
            raise ValueError(f"need n_classes >= 1 and lambda_seg >= 0, got {self.n_classes}, {self.lambda_seg}")
        if self.seg_output not in SEG_OUTPUTS:
            raise ValueError(f"unknown seg_output {self.seg_output!r}; choose one of {SEG_OUTPUTS}")


@register_method("unet-seg")
class UNetSeg(LabConvention, TrainableMethod):
    """Shared-decoder U-Net: an ab pair per class (and, as an option, class logits). Needs per-pixel masks.

    ``train_step`` returns ``{"G_L1"}`` (thesis form: L1 of all class pairs against their targets, labelled
    pixels, ab/110) or, with the class head, ``{"G_L1", "G_seg"}`` (the true class's pair and the cross-entropy).
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
            "0.5) whose last layer outputs 2·n_classes ab channels (Tanh): 'a pair of a and b channels for each "
            "considered semantic class' (§5.2.1, p. 30; output shape [2·n_classes, H, W], §4.3.1, p. 22).",
            "Loss (paper and quick presets, seg_output 'per-class-ab'): the target of class c's pair is the real ab "
            "(ab/110) where the mask is c and 0 elsewhere; L1 over all 2·n_classes channels, averaged over the "
            "labelled pixels (unlabelled ones, IGNORE_INDEX, are left out). This is §4.3.1's 'we match the original "
            "a and b channels for each class with the generated a and b channels' with 'the regression L1 loss'; "
            "it pushes the pairs of absent classes to 0, the near-grey outcome §5.2.2 describes.",
            "Colorizing (the thesis does not say how Table 5's outputs were decoded): the sum of the pairs over the "
            "classes, clipped to [-1, 1] — the target pairs sum to the real ab at every labelled pixel, so no class "
            "prediction is needed.",
            "Option (overlay preset 'class-head', seg_output 'per-class-ab+logits'): the thesis's §5.2.2 suggestion — "
            "L1 only on the true class's pair ('only computing the loss over the present classes') — plus n_classes "
            "logit channels trained with per-pixel cross-entropy (weight lambda_seg = 1); colorize takes the pair "
            "of the argmax class. This was the earlier paper preset of colorbench.",
            "Paper preset: Pascal VOC's 21 classes (dataset voc-seg), 256×256, 48 epochs (thesis §5.2.1, p. 30), "
            "batch 16, Adam 2e-4 (0.5, 0.999), linear decay over the second half (as unet-l1; batch and optimizer "
            "not in the thesis), prediction mode 'train' (thesis §2.3.2). Quick preset: the shapes dataset's 8 "
            "classes, num_downs 5, ngf 16, 32×32, batch 32, 10 epochs, eval-mode prediction.",
            "Needs per-pixel masks: on a dataset without them training raises a ValueError (a failed row in a run).",
        ),
    )
    Config: ClassVar[type] = UNetSegConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 16, "epochs": 48, "lr_decay_fraction": 0.5, "num_downs": 7, "ngf": 64, "norm": "batch",
                  "dropout": 0.5, "n_classes": 21, "seg_output": "per-class-ab", **THESIS_PREDICTION},
        "quick": {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "norm": "batch",
                  "dropout": 0.5, "n_classes": 8, "seg_output": "per-class-ab"},
        "class-head": {"seg_output": "per-class-ab+logits", "lambda_seg": 1.0},
        "thesis-prediction": dict(THESIS_PREDICTION),
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": THESIS_VOC_SCALE}

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2**config.num_downs

    @property
    def has_logits(self) -> bool:
        return self.config.seg_output == "per-class-ab+logits"

    def build_networks(self) -> None:
        c = self.config
        channels = (3 if self.has_logits else 2) * c.n_classes
        self.G = UnetGenerator(1, channels, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain,
                               out_activation="none")

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def split_output(self, out: Tensor) -> tuple[Tensor, Tensor | None]:
        """Raw output -> (per-class ab ``(N, n_classes, 2, H, W)`` in [-1, 1], logits ``(N, n_classes, H, W)`` or
        None without the class head)."""
        n = self.config.n_classes
        ab = out[:, : 2 * n].tanh().unflatten(1, (n, 2))
        return ab, (out[:, 2 * n :] if self.has_logits else None)

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
            weight = known.float()
            if logits is None:  # the thesis: every class's pair against the real ab inside the class, 0 outside
                onehot = F.one_hot(cls, self.config.n_classes).permute(0, 3, 1, 2).float()  # (N, C, H, W)
                target = onehot[:, :, None] * ab[:, None]  # (N, C, 2, H, W)
                err = (pred_ab - target).abs().mean(dim=(1, 2))  # (N, H, W): mean over the 2·C channels
                l1 = (err * weight).sum() / weight.sum().clamp(min=1.0)
                self.optimize(l1, "G")
                return self.finish_step({"G_L1": l1})
            index = cls[:, None, None].expand(-1, 1, 2, -1, -1)  # (N, 1, 2, H, W)
            ab_of_class = pred_ab.gather(1, index).squeeze(1)  # the true class's pair at every pixel
            err = (ab_of_class - ab).abs().mean(1)  # (N, H, W)
            l1 = (err * weight).sum() / weight.sum().clamp(min=1.0)
            seg = F.cross_entropy(logits, masks.masked_fill(~known, -100), ignore_index=-100) if known.any() else logits.sum() * 0
            self.optimize(l1 + self.config.lambda_seg * seg, "G")
        return self.finish_step({"G_L1": l1, "G_seg": seg})

    def predict_ab(self, L: Tensor) -> Tensor:
        """The sum of the class pairs (thesis form), or the pair of the predicted class (class head)."""
        with self.autocast():
            out = self.G(L).float()
        pred_ab, logits = self.split_output(out)
        if logits is None:
            return pred_ab.sum(1).clamp(-1, 1)
        cls = logits.argmax(1)[:, None, None].expand(-1, 1, 2, -1, -1)
        return pred_ab.gather(1, cls).squeeze(1)
