"""Shared machinery of the methods whose networks predict ab from L (paired or unpaired).

:class:`LabConvention` is a mixin (not a :class:`~colorbench.methods.base.Method`) that a Lab method lists before
:class:`~colorbench.methods.trainable.TrainableMethod` (seeding, own RNG stream, AMP, pure colorize, finite-loss
check, linear LR decay; see that module): ``class Pix2Pix(LabConvention, TrainableMethod)``. A method module then
only builds its networks and writes its ``train_step``. The convention:

* input ``normalize_l(grey_to_lightness(gray, convention))`` in [-1, 1]; output Tanh ab in [-1, 1], times 110,
  combined with the input's L into sRGB (``colorbench.core.color.grey_ab_to_rgb``); training targets
  ``rgb_to_lab(rgb)[ab] / 110``. Colour conversion always runs in float32.

:class:`AbRegression` (a mixin over :class:`LabConvention`) is the regression step of ``unet-l1`` and
``colorful-l1/l2``. Mixins rather than ``Method`` subclasses keep every method within three levels of ``Method``
(issue 21).

``TrainableMethod``, ``check_grey_input``, ``linear_decay_factor`` and ``AMP_DTYPES`` live in
``colorbench.methods.trainable`` and are re-exported here for the modules that import them from this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.core.color import denormalize_ab, grey_ab_to_rgb, grey_to_lightness, normalize_ab, normalize_l, rgb_to_lab
from colorbench.datasets.base import Batch
from colorbench.methods.trainable import (  # noqa: F401 - re-exported
    AMP_DTYPES,
    TrainableConfig,
    TrainableMethod,
    check_grey_input,
    linear_decay_factor,
)


@dataclass
class LabConfig(TrainableConfig):
    """Options shared by the Lab methods: those of :class:`~colorbench.methods.trainable.TrainableConfig`
    (``batch_size``, ``epochs``, ``grey_convention``, ``lr_decay_fraction``, ``amp``, ``amp_dtype``)."""


class LabConvention:
    """Mixin of the methods that predict normalized ab from normalized L with a generator network; list it before
    :class:`~colorbench.methods.trainable.TrainableMethod`, whose abstract ``predict`` it provides.

    The method class implements :meth:`build_networks` (create the networks as attributes; called on the CPU under
    the seed), :meth:`build_optimizers`, :meth:`networks` and :meth:`train_step`; they may override
    :meth:`predict_ab` (what :meth:`colorize` runs) and :meth:`size_multiple_of`.
    """

    Config: ClassVar[type] = LabConfig

    def predict_ab(self, L: Tensor) -> Tensor:
        """Normalized L ``(N, 1, H, W)`` -> normalized ab ``(N, 2, H, W)`` in float32, with the generator "G"."""
        with self.autocast():
            return self.networks()["G"](L).float()

    def predict(self, gray: Tensor) -> Tensor:
        """Grey in [0, 1] -> sRGB: the input's L* with the ab of :meth:`predict_ab` (what colorize runs)."""
        return self.ab_to_rgb(gray, self.predict_ab(self.input_l(gray)))

    # --- Lab conventions -----------------------------------------------------------------------------------
    def input_l(self, gray: Tensor) -> Tensor:
        """Grey in [0, 1] -> the network input: L* of the grey (under the configured convention) in [-1, 1]."""
        return normalize_l(grey_to_lightness(gray.float(), self.config.grey_convention))

    @staticmethod
    def target_ab(rgb: Tensor) -> Tensor:
        """sRGB in [0, 1] -> the training target: its Lab ab divided by 110 (roughly [-1, 1])."""
        return normalize_ab(rgb_to_lab(rgb.float())[:, 1:])

    def ab_to_rgb(self, gray: Tensor, ab: Tensor) -> Tensor:
        """Combine the grey input's L with normalized ab -> sRGB in [0, 1] (float32; out-of-gamut clipped)."""
        return grey_ab_to_rgb(gray.float(), denormalize_ab(ab.float()), self.config.grey_convention)


class AbRegression(LabConvention):
    """Mixin (over :class:`LabConvention`) of a generator ``self.G`` regressing normalized ab from L with an L1 or
    L2 loss, no adversary (``unet-l1``, ``colorful-l1``, ``colorful-l2``): ``class UNetL1(AbRegression,
    TrainableMethod)``. ``train_step`` returns ``{"G_L1": ...}`` or ``{"G_L2": ...}``.
    """

    def regression_loss(self) -> str:
        """``"l1"`` or ``"l2"``; subclasses with a ``loss`` option override this."""
        return "l1"

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G}

    def train_step(self, batch: Batch) -> dict[str, float]:
        gray, rgb = self.prepare_batch(batch)
        self.G.train()
        L, ab = self.input_l(gray), self.target_ab(rgb)
        kind = self.regression_loss()
        with self.training_rng():
            with self.autocast():
                pred = self.G(L).float()
            loss = F.l1_loss(pred, ab) if kind == "l1" else F.mse_loss(pred, ab)
            self.optimize(loss, "G")
        return self.finish_step({f"G_{kind.upper()}": loss})
