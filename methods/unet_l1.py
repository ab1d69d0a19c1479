"""U-Net + L1: the regression baseline of Tarrés 2021 (§4.1.1), a pix2pix U-Net trained with an L1 loss only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.lab import AbRegression, LabConfig
from colorbench.methods.nets import MIN_NUM_DOWNS, NORMS, UnetGenerator
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import AdamInitConfig, TrainableMethod

SEED_THESIS = "001_185158beffacbb1e.txt"
THESIS = (
    "Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss', master thesis, UPC / BBC, 2021, "
    "§4.1.1 'Colourisation loss only'"
)
#: The thesis's ImageNet protocol: 256×256 images (§5.1.1, p. 24: "All images were resized to 256 x 256 pixels").
THESIS_SCALE = PresetScale({"imagenet-val": 256}, "Tarrés 2021, §5.1.1, p. 24: ImageNet images resized to 256×256")
#: The thesis's Pascal VOC protocol of the segmentation model (§5.2.1, p. 30).
THESIS_VOC_SCALE = PresetScale({"voc-seg": 256}, "Tarrés 2021, §5.2.1, p. 30: Pascal VOC images resized to 256×256")
#: Overlay: the thesis's prediction mode (§2.3.2, p. 13: dropout and batch statistics "both during training and
#: prediction").
THESIS_PREDICTION = {"prediction_mode": "train"}
#: The thesis's U-Net depth (§4.1.1, p. 18: "The encoder consists of n=7 downsampling layers").
THESIS_NUM_DOWNS = 7
#: Schedule of the thesis's ImageNet models. The thesis gives one epoch count, 23, for its final model (§5.1.1,
#: p. 24: "This configuration was trained for 23 epochs, during 36 hours") and no batch size anywhere; its Table 3
#: (p. 26) compares U-Net, pix2pix, Górriz and the feature-loss model trained in one PyTorch code base, so their
#: paper presets share this schedule; batch 16 and pix2pix's linear decay over the second half are our choices.
THESIS_SCHEDULE = {"batch_size": 16, "epochs": 23, "lr_decay_fraction": 0.5}
THESIS_SCHEDULE_CHOICE = (
    "Paper preset schedule: 23 epochs at batch size 16, linear decay over the second half. Source: the thesis gives "
    "23 epochs only for its final (feature-loss) model (§5.1.1, p. 24) and no batch size or epoch count for the "
    "baselines; Table 3 (p. 26) compares the four ImageNet models from one PyTorch code base, so they share the "
    "23 epochs here; batch 16 and the decay are our choices (not in the thesis)."
)
THESIS_MODE_CHOICE = (
    "Prediction mode: the paper preset colorizes as the thesis does (§2.3.2, p. 13: dropout and batch "
    "normalization 'both during training and prediction', batch statistics 'not fixated'): prediction_mode = "
    "'train' (dropout drawn from a generator seeded with the method seed at every call; batch statistics of the "
    "batch being colorized, so the output depends on the evaluation batch). The quick preset keeps 'eval' "
    "(running statistics, no dropout: deterministic per image); 'quick+thesis-prediction' gives the thesis's mode "
    "at quick scale."
)


@dataclass
class UNetL1Config(AdamInitConfig, LabConfig):
    """Options of ``unet-l1``; the defaults are the ``paper`` preset's (but prediction_mode "eval").

    Attributes:
        num_downs: U-Net depth; image sides must be multiples of ``2**num_downs`` (the thesis's n = 7).
        ngf: filters of the outermost U-Net level.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout in the ``num_downs - 5`` inner decoder blocks (pix2pix's U-Net: 0.5).
        lr, beta1, beta2, init_type, init_gain: see :class:`AdamInitConfig`.
    """

    batch_size: int = 16
    epochs: int = 23
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
class UNetL1(AbRegression, TrainableMethod):
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
            "Dropout 0.5 in the num_downs - 5 inner decoder blocks, as the pix2pix U-Net (thesis silent); at "
            "test time as prediction_mode says (below).",
            "Lab scaling L/50 - 1 and ab/110 (pix2pix colorization code); the L input comes from the grey image "
            "under the run's grey convention, not from the colour target.",
            "Optimizer: Adam lr 2e-4, betas (0.5, 0.999), normal(0, 0.02) init — pix2pix's, since the thesis is "
            "silent.",
            THESIS_SCHEDULE_CHOICE,
            THESIS_MODE_CHOICE,
            "Paper image size 256×256 on the thesis's ImageNet protocol (dataset imagenet-val; §5.1.1, p. 24): a "
            "run of the paper preset on other sizes stops and says what to pass. The quick preset uses num_downs "
            "5, ngf 16 for 32×32 images.",
        ),
    )
    Config: ClassVar[type] = UNetL1Config
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {**THESIS_SCHEDULE, "num_downs": THESIS_NUM_DOWNS, "ngf": 64, "norm": "batch", "dropout": 0.5,
                  **THESIS_PREDICTION},
        "quick": {"batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "norm": "batch", "dropout": 0.5},
        "thesis-prediction": dict(THESIS_PREDICTION),
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": THESIS_SCALE}

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2**config.num_downs

    def build_networks(self) -> None:
        c = self.config
        self.G = UnetGenerator(1, 2, c.num_downs, c.ngf, c.norm, c.dropout, c.init_type, c.init_gain)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}
