"""``ddcolor``: Kang et al., "DDColor: Towards Photo-Realistic Image Colorization via Dual Decoders" (ICCV 2023),
with the authors' released weights (inference only).

The network is :class:`colorbench.methods.nets.ddcolor.DDColorNet`; the weights are one of the four files of the
authors' hub (``colorbench weights fetch ddcolor-paper ddcolor-paper-tiny ddcolor-modelscope ddcolor-artistic``),
read through :mod:`colorbench.core.weights` (SHA-256 checked) and loaded strictly; a missing file fails the row naming
the file, where to put it and the fetch command. Random weights are never used in their place.

Two inference settings of the authors are presets, and the difference between them is a named option recorded
with every result (``input_size``, ``chroma_upsampling``):

* ``paper`` — the paper's evaluation: images (and so the network input) at 256×256; the data pipeline
  (``basicsr/data/lab_dataset.py``) resizes every image with ``cv2.resize`` to ``gt_size`` 256, so the predicted ab
  has the image's size;
* ``paper-512`` (and ``modelscope-512``, ``artistic-512``, ``tiny-512``) — the released pipeline
  (``ddcolor/pipeline.py`` ``ColorizationPipeline.process``; modelscope's ``DDColorImageColorizationPipeline``):
  the image is resized to 512×512 (``cv2.resize``, bilinear, aspect ratio not kept), the network predicts ab at
  512×512, and the ab is resized back to the original size with ``F.interpolate``'s default *nearest* mode, then
  joined to the original full-resolution L;
* overlay ``native`` (``paper+native``): the network sees the image at its own size (sides padded by replication
  to multiples of 32 and the output cropped back), no resize at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.core.color import GREY_CONVENTIONS, grey_ab_to_rgb, grey_to_lightness, lab_to_rgb
from colorbench.datasets.base import Batch
from colorbench.methods.base import BaseConfig, Method, MethodCard, PresetScale
from colorbench.methods.nets.ddcolor import ENCODERS, STRIDE, DDColorNet, load_released
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import check_grey_input

DDCOLOR_PAPER = ("X. Kang, T. Yang, W. Ouyang, P. Ren, L. Li, X. Xie, 'DDColor: Towards Photo-Realistic Image "
                 "Colorization via Dual Decoders', ICCV 2023 (arXiv:2212.11613)")

#: Weights registry name -> the encoder of its network.
RELEASED_ENCODERS = {
    "ddcolor-paper": "convnext-l",
    "ddcolor-modelscope": "convnext-l",
    "ddcolor-artistic": "convnext-l",
    "ddcolor-paper-tiny": "convnext-t",
}
CHROMA_UPSAMPLING = ("nearest", "bilinear")


@dataclass
class DDColorConfig(BaseConfig):
    """Options of ``ddcolor`` (inference only: ``epochs`` stays 0).

    Attributes:
        weights: the released file, by weights-registry name (:data:`RELEASED_ENCODERS`); it fixes the encoder.
        input_size: side of the square the grey image is resized to for the network (256: the paper's
            evaluation; 512: the released pipeline; 0: the image's own size, padded to multiples of 32).
        chroma_upsampling: how the predicted ab is resized to the image's size when they differ: ``"nearest"``
            (the released pipeline: ``F.interpolate``'s default) or ``"bilinear"`` (``align_corners=False``).
        weights_path: the file elsewhere ("" = the weights registry's destination).
        check_hash: check the file's SHA-256 against the published one.
        chunk: images per forward pass (memory).
    """

    batch_size: int = 8
    epochs: int = 0
    weights: str = "ddcolor-paper"
    input_size: int = 256
    chroma_upsampling: str = "nearest"
    weights_path: str = ""
    check_hash: bool = True
    chunk: int = 4

    def __post_init__(self) -> None:
        if self.grey_convention not in GREY_CONVENTIONS:
            raise ValueError(f"unknown grey_convention {self.grey_convention!r}; choose one of {GREY_CONVENTIONS}")
        if self.weights not in RELEASED_ENCODERS:
            raise ValueError(f"unknown DDColor weights {self.weights!r}; choose one of {sorted(RELEASED_ENCODERS)}")
        if self.input_size < 0 or self.input_size % STRIDE:
            raise ValueError(f"input_size must be 0 (native) or a positive multiple of {STRIDE}, got {self.input_size}")
        if self.chroma_upsampling not in CHROMA_UPSAMPLING:
            raise ValueError(f"chroma_upsampling must be one of {CHROMA_UPSAMPLING}, got {self.chroma_upsampling!r}")
        if self.batch_size < 1 or self.epochs != 0 or self.chunk < 1:
            raise ValueError("need batch_size >= 1, chunk >= 1 and epochs == 0 (ddcolor is inference only)")

    @property
    def encoder(self) -> str:
        return RELEASED_ENCODERS[self.weights]


def resize_like_cv2_linear(gray: Tensor, size: int) -> Tensor:
    """``cv2.resize(img, (size, size))`` (INTER_LINEAR: bilinear, half-pixel centres, no antialiasing when
    shrinking), as the authors resize their float image; ``torch``'s bilinear ``align_corners=False`` without
    antialias samples the same points. Clipped to [0, 1]."""
    if tuple(gray.shape[-2:]) == (size, size):
        return gray
    return F.interpolate(gray, size=(size, size), mode="bilinear", align_corners=False, antialias=False).clamp(0, 1)


def grey_as_rgb(L: Tensor) -> Tensor:
    """The network's input: ``lab2rgb(L, 0, 0)`` (the authors' ``img_gray_rgb``), sRGB in [0, 1]."""
    zeros = torch.zeros_like(L)
    return lab_to_rgb(torch.cat([L, zeros, zeros], dim=1))


@register_method("ddcolor")
class DDColor(Method):
    """The authors' released DDColor networks (see the module docstring). Nothing is trained: ``train_step``
    returns ``{}`` and ``networks()`` is empty (checkpoints do not copy the released parameters); the network is
    ``self.net`` and :meth:`parameter_counts` reports it."""

    card: ClassVar[MethodCard] = MethodCard(
        name="ddcolor",
        title="DDColor (ICCV 2023): ConvNeXt encoder, pixel + colour-query decoders; the authors' released weights",
        paper=DDCOLOR_PAPER,
        source="", paired=True, color_space="lab", trainable=False,
        licence="MIT (colorbench's code, written from Apache-2.0 sources); released weights: Apache-2.0 "
                "(huggingface.co/piddnad/DDColor-models model card; piddnad/DDColor LICENSE)",
        # ImageNet for every file (ddcolor_modelscope: cleaned as BigColor's); ddcolor_artistic adds private images
        training_data=("ImageNet-1k train", "DDColor authors' private artistic images (ddcolor_artistic only)"),
        weights=tuple(RELEASED_ENCODERS),
        choices=(
            "Weights: the authors' hub files (huggingface.co/piddnad/DDColor-models: ddcolor_paper.pth, "
            "ddcolor_paper_tiny.pth, ddcolor_modelscope.pth, ddcolor_artistic.pth), SHA-256 checked; strict load "
            "(names and shapes), the unused encoder classifier head_cls dropped. Without the file the row fails "
            "naming it and `colorbench weights fetch <name>`.",
            "Network: written from the authors' basicsr/archs/ddcolor_arch.py (piddnad/DDColor 2adb63f; the same "
            "code is in the modelscope wheel); bit-identical outputs to the modelscope copy under the same weights "
            "(tests/test_ddcolor.py), DDColor-L and DDColor-T.",
            "Input: the grey image is read as L (the run's grey convention), resized to input_size with bilinear "
            "interpolation without antialiasing (cv2.resize INTER_LINEAR); the authors resize the colour image "
            "and take L after (the two differ by the non-linearity of L; unmeasured here), and their L comes from "
            "cv2.cvtColor (pipeline) or skimage (evaluation). The network sees lab2rgb(L, 0, 0), ImageNet-normalised.",
            "Output: ab in Lab units, resized to the image's size with chroma_upsampling (released pipeline: "
            "nearest) and joined to the full-resolution L; Lab -> sRGB by colorbench.core.color (skimage's formulas, "
            "clipped).",
            "paper preset: 256 (basicsr/data/lab_dataset.py resizes to gt_size 256 for evaluation); paper-512: "
            "the released pipeline (ddcolor/pipeline.py: input_size 512, F.interpolate default nearest for ab).",
            "Not trainable here: training (400k iterations of AdamW on ImageNet at 256, pixel L1 x0.1, VGG16-BN "
            "perceptual x5, PatchGAN-UNet adversarial x1, colourfulness x0.5; options/train/train_ddcolor.yml) and "
            "fine-tuning with those losses are not implemented (the discriminator and the ConvNeXt ImageNet-22k "
            "initialisation are not part of the released files).",
            "quick preset: DDColor-T at 64x64 input (CPU-friendly; values differ from the authors' settings).",
        ),
    )
    Config: ClassVar[type] = DDColorConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"weights": "ddcolor-paper", "input_size": 256, "chroma_upsampling": "nearest"},
        "paper-512": {"weights": "ddcolor-paper", "input_size": 512, "chroma_upsampling": "nearest"},
        "tiny": {"weights": "ddcolor-paper-tiny", "input_size": 256, "chroma_upsampling": "nearest"},
        "tiny-512": {"weights": "ddcolor-paper-tiny", "input_size": 512, "chroma_upsampling": "nearest"},
        "modelscope-512": {"weights": "ddcolor-modelscope", "input_size": 512, "chroma_upsampling": "nearest"},
        "artistic-512": {"weights": "ddcolor-artistic", "input_size": 512, "chroma_upsampling": "nearest"},
        "quick": {"weights": "ddcolor-paper-tiny", "input_size": 64, "chroma_upsampling": "nearest", "chunk": 8},
        # overlays
        "native": {"input_size": 0},
        "bilinear-ab": {"chroma_upsampling": "bilinear"},
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {
        "paper": PresetScale({}, "the network input is resized to 256 whatever the image size (the paper evaluates "
                                 "256x256 images: basicsr/data/lab_dataset.py gt_size 256)", any_size=True),
        "paper-512": PresetScale({}, "the released pipeline resizes any image to 512 (ddcolor/pipeline.py)",
                                 any_size=True),
    }

    # --- construction ----------------------------------------------------------------------------------------
    @classmethod
    def unavailable_reason(cls, preset: str) -> str | None:
        from colorbench.core import weights

        c = cls.make_config(preset)
        try:
            weights.require(c.weights, c.weights_path or None, check_hash=c.check_hash, who=f"ddcolor (preset {preset})")
        except weights.WeightsUnavailable as exc:
            return str(exc)
        return None

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        from colorbench.core import weights

        super().__init__(config, device, seed)
        c = self.config
        who = f"ddcolor (weights {c.weights})"
        path = weights.require(c.weights, c.weights_path or None, check_hash=c.check_hash, who=who)
        self.net, facts = load_released(c.encoder, path, who)
        self.net.to(self.device)
        stand_in = weights.stand_in(c.weights) is not None and not c.weights_path
        self._notes = {"weights_name": c.weights, "weights_file": str(path), "sha256_checked": c.check_hash and not stand_in,
                       "stand_in_for_tests": stand_in, **facts}

    @classmethod
    def describe(cls, preset: str = "quick") -> dict[str, Any]:
        """Card, options, architecture and parameter counts, built on the meta device: no weights file needed."""
        import dataclasses

        config = cls.make_config(preset)
        spec = ENCODERS[config.encoder]
        with torch.device("meta"):
            net = DDColorNet(config.encoder)
        parts = {"encoder": net.encoder, "pixel_decoder": nn.ModuleList([net.decoder.layers, net.decoder.last_shuf]),
                 "color_decoder": net.decoder.color_decoder, "refine": net.refine_net}
        scale = cls.preset_scale(preset)
        return {
            "card": cls.card.to_dict(),
            "preset": preset,
            "presets": sorted(cls.presets),
            "scale": dataclasses.asdict(scale) if scale is not None else None,
            "config": dataclasses.asdict(config),
            "parameters": {"G": sum(p.numel() for p in net.parameters())},
            "architecture": {
                "encoder": f"{config.encoder}: ConvNeXt depths {list(spec.depths)}, widths {list(spec.dims)}; "
                           "features = norm0..norm3 (strides 4, 8, 16, 32)",
                "pixel_decoder": "3 UnetBlockWide (x2 pixel shuffle + skip, 512, 512, 256 channels) + x4 pixel "
                                 "shuffle to full resolution (256 channels); spectral-normalised convolutions",
                "color_decoder": "100 colour queries, 9 layers (cross-attention to scales 1/16, 1/8, 1/4 in turn, "
                                 "self-attention, FFN 2048), 8 heads, width 256; queries x pixel features -> 100 maps",
                "refine": "1x1 spectral conv of [100 maps, normalised input] -> ab (Lab units)",
                "weights": config.weights,
                "input_size": config.input_size or "native (padded to multiples of 32)",
                "chroma_upsampling": config.chroma_upsampling,
                "parameters_by_part": {k: sum(p.numel() for p in m.parameters()) for k, m in parts.items()},
            },
        }

    # --- the contract ----------------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, float]:
        """Nothing to train: returns ``{}``."""
        return {}

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def parameter_counts(self) -> dict[str, int]:
        return {"G": sum(p.numel() for p in self.net.parameters())}

    def notes(self) -> dict[str, Any]:
        c = self.config
        return {"released_weights": self._notes, "encoder": c.encoder,
                "inference_size": c.input_size or "native", "chroma_upsampling": c.chroma_upsampling,
                "input_resize": "bilinear, no antialias (cv2.resize INTER_LINEAR)" if c.input_size else "none"}

    def caveats(self) -> list[str]:
        if self._notes["stand_in_for_tests"]:
            return ["TEST stand-in weights (random values), not the released DDColor file"]
        return []

    @torch.no_grad()
    def colorize(self, gray: Tensor) -> Tensor:
        check_grey_input(gray, "ddcolor.colorize")
        c = self.config
        self.net.eval()  # always eval: spectral norm in train mode would update its u, v buffers
        outs = []
        for g in gray.split(c.chunk):
            g = g.to(self.device).float()
            h, w = g.shape[-2:]
            if c.input_size:
                g_in = resize_like_cv2_linear(g, c.input_size)
            else:
                g_in = F.pad(g, (0, -w % STRIDE, 0, -h % STRIDE), mode="replicate")
            ab = self.net(grey_as_rgb(grey_to_lightness(g_in, c.grey_convention)))
            if not c.input_size:
                ab = ab[..., :h, :w]
            if tuple(ab.shape[-2:]) != (h, w):
                kw = {"align_corners": False} if c.chroma_upsampling == "bilinear" else {}
                ab = F.interpolate(ab, size=(h, w), mode=c.chroma_upsampling, **kw)
            outs.append(grey_ab_to_rgb(g, ab, c.grey_convention))
        return torch.cat(outs).to(gray.device)
