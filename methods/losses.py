"""Losses shared by the methods: the adversarial loss of every (c)GAN method.

``GANLoss(mode)(scores, target_is_real)`` hides how each GAN formulation turns discriminator scores into a loss:

* ``"vanilla"``: the original GAN (Goodfellow et al. 2014), binary cross-entropy on raw scores (logits),
  as pix2pix's ``gan_mode="vanilla"``;
* ``"lsgan"``: least squares (Mao et al. 2017) with the labels a = 0 (fake), b = 1 (real), c = 1 (the generator's
  target), i.e. the MSE to 0 or 1, as pix2pix's ``gan_mode="lsgan"``;
* ``"wgan"``: the Wasserstein critic loss (Arjovsky et al. 2017), ``-mean(scores)`` for real and ``mean(scores)``
  for fake (the gradient penalty of WGAN-GP is separate, see :func:`gradient_penalty`);
* ``"ebgan"``: the energy-based GAN (Zhao et al. 2017), whose "scores" are energies ``D(x) >= 0`` (an
  auto-encoder's reconstruction error, one per sample): ``mean(D(x))`` for real and ``mean(max(0, m - D(x)))`` for
  fake, with margin ``m``; the generator minimizes ``mean(D(G(z)))`` (its call with ``target_is_real=True``).

For the generator, call the loss with ``target_is_real=True`` on the scores of its fakes. A list of score maps
(multi-scale discriminators) gives the mean of the per-map losses. Losses are computed in float32, also under AMP.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GAN_MODES = ("vanilla", "lsgan", "wgan", "ebgan")


class GANLoss(nn.Module):
    """Adversarial loss on discriminator scores for a named GAN formulation.

    Args:
        mode: ``"vanilla"``, ``"lsgan"``, ``"wgan"`` or ``"ebgan"``.
        real_label: target for real samples (vanilla / lsgan); 1.0 in pix2pix.
        fake_label: target for fake samples (vanilla / lsgan); 0.0 in pix2pix.
        margin: the EBGAN margin ``m`` (``"ebgan"`` only).
    """

    def __init__(self, mode: str = "vanilla", real_label: float = 1.0, fake_label: float = 0.0, margin: float = 1.0) -> None:
        super().__init__()
        if mode not in GAN_MODES:
            raise ValueError(f"unknown GAN loss mode {mode!r}; choose one of {GAN_MODES}")
        if margin <= 0:
            raise ValueError(f"GANLoss: the EBGAN margin must be > 0, got {margin}")
        self.mode, self.margin = mode, float(margin)
        self.real_label, self.fake_label = float(real_label), float(fake_label)

    def _single(self, scores: Tensor, target_is_real: bool) -> Tensor:
        scores = scores.float()
        if self.mode == "wgan":
            return -scores.mean() if target_is_real else scores.mean()
        if self.mode == "ebgan":
            return scores.mean() if target_is_real else F.relu(self.margin - scores).mean()
        target = torch.full_like(scores, self.real_label if target_is_real else self.fake_label)
        if self.mode == "vanilla":
            return F.binary_cross_entropy_with_logits(scores, target)
        return F.mse_loss(scores, target)

    def forward(self, scores: Tensor | Sequence[Tensor], target_is_real: bool) -> Tensor:
        """Loss of ``scores`` (one map or a list of maps) against the real or the fake target."""
        if isinstance(scores, Tensor):
            return self._single(scores, target_is_real)
        if len(scores) == 0:
            raise ValueError("GANLoss got an empty list of score maps")
        return torch.stack([self._single(s, target_is_real) for s in scores]).mean()

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}" + (f", margin={self.margin}" if self.mode == "ebgan" else "")


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor, weight: float = 10.0, *,
                     alpha: Tensor | None = None, norm_over: str = "sample", reduction: str = "mean") -> Tensor:
    """WGAN-GP gradient penalty (Gulrajani et al. 2017): ``weight * E[(||∇D(x̂)||₂ - 1)²]`` on random
    interpolates x̂ = α·real + (1-α)·fake.

    Args:
        alpha: mixing weights ``(B,)``, one per sample (default: drawn from the global RNG).
        norm_over: ``"sample"`` (the paper: the norm of a sample's whole gradient) or ``"pixel"`` (SinGAN's
            ``calc_gradient_penalty``: the norm over channels at each pixel, the penalty averaged over pixels).
        reduction: ``"mean"`` over samples, or ``"none"`` for one value per sample ``(B,)``.
    """
    if real.shape != fake.shape:
        raise ValueError(f"gradient_penalty: real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    if norm_over not in ("sample", "pixel") or reduction not in ("mean", "none"):
        raise ValueError(f"gradient_penalty: norm_over must be 'sample' or 'pixel' and reduction 'mean' or 'none', "
                         f"got {norm_over!r}, {reduction!r}")
    shape = (real.shape[0], *([1] * (real.dim() - 1)))
    if alpha is None:
        alpha = torch.rand(shape, device=real.device, dtype=real.dtype)
    else:
        alpha = alpha.reshape(shape).to(real)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(mixed)
    (grad,) = torch.autograd.grad(scores.float().sum(), mixed, create_graph=True)
    if norm_over == "sample":
        per_sample = (grad.flatten(1).norm(2, dim=1) - 1.0) ** 2
    else:
        per_sample = ((grad.norm(2, dim=1) - 1) ** 2).flatten(1).mean(1)
    return weight * (per_sample.mean() if reduction == "mean" else per_sample)