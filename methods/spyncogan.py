"""SpyncoGan (Ratajczak et al., SUMAC 2019): a pseudo-cyclic GAN with a Handcrafted Translation and Output Spatial
Pyramids, and its ablations (Tables 1-2 of the paper).

One generator G (grey -> colour, with N = 3 pyramid outputs G1, G2, G3) and one discriminator D (colour images).
The second generator of a cycle is replaced by H_t, the fixed 1×1 conv ``0.299 R + 0.587 G + 0.114 B``. With I a
grey image (domain A) and J a colour image (domain B), all in [-1, 1], and G's input replicated over 3 channels:

* identity (Eq. 4): ``Σ α_i |G_i(J) - J|₁``;
* cycles (Eq. 5-7): ``Σ β_i |G_i(H_t(J)) - J|₁ + Σ β_i |H_t(G_i(I)) - I|₁``;
* GAN, least squares (Eq. 8 with its erratum): G minimizes ``Σ γ_i (1 - D(G_i(I)))²``; D minimizes
  ``½ [(1 - D(J))² + Σ γ_i D(G_i(I))² / Σ γ_i]`` (on pooled fakes, one pool per output);
* contours (Eq. 9): ``Σ ζ_i |S(H_t(G_i(I))) - S(I)|₁`` with the Sobel operator S;

with α = (5, 3, 2), β = (10, 6, 4), γ = (1, 1, 1), ζ = (1, 0, 0). The output ablation L^1 keeps only i = 1 in every
sum (all three outputs still exist and can be evaluated); the contours ablation drops Eq. 9.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.datasets.base import Batch
from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.cyclegan import QUICK_CHOICE, QUICK_UNPAIRED, SEED_SPYNCOGAN
from colorbench.methods.losses import GANLoss
from colorbench.methods.nets import (
    NORMS,
    HandcraftedTranslation,
    ImagePool,
    SeparablePatchDiscriminator,
    SpyncoGenerator,
    add_to_input,
    set_requires_grad,
    sobel_edges,
)
from colorbench.methods.registry import Variant, register_method, register_variant
from colorbench.methods.trainable import AdamInitConfig, TrainableConfig, TrainableMethod

SPYNCOGAN = (
    "Ratajczak, Crispim-Junior, Fervers, Faure, Tougne, 'Pseudo-Cyclic Network for Unsupervised Colorization with "
    "Handcrafted Translation and Output Spatial Pyramids', SUMAC (ACM MM workshop) 2019"
)
#: The number of pyramid outputs, fixed by the paper (§4.1: "a constant number of output (N = 3)").
N_OUTPUTS = 3
#: §5.1: CIFAR-10 thumbnails (32 × 32), UCMerced Land Use, Cezanne paintings and Landscape photos (256 × 256).
SPYNCOGAN_SCALE = PresetScale({"cifar10": 32, "ucmerced": 256, "cyclegan-folder": 256},
                              "Ratajczak et al. 2019, §5.1: CIFAR-10 at 32×32; UCMerced, Cezanne, Landscape at 256×256")
OUTPUT_NAMES = tuple(f"G{i}" for i in range(1, N_OUTPUTS + 1))


@dataclass
class SpyncoGanConfig(AdamInitConfig, TrainableConfig):
    """Options of ``spyncogan`` and its ablations; the defaults are the ``paper`` preset.

    Attributes:
        enc_channels: encoder filters: a 7×7 conv, then separable stride-2 convs (3 entries: one down-sampling per
            extra pyramid output).
        n: filters of the residual and decoder layers (256) — constant, as the shared mapping needs.
        n_res_blocks: residual blocks of two classical 3×3 convs (3: the paper's "6 convolutional blocks").
        down_kernel, up_kernel, map_kernel: kernels of the separable down/up convs and of the shared mapping conv.
        upsample_mode: interpolation before the up-sampling convs and for the pyramid rescaling.
        norm: normalization of the conv blocks (instance norm).
        ndf, n_layers_d: the discriminator (separable 70×70 PatchGAN: ndf 64, 3 layers).
        alpha, beta, gamma, zeta: per-output weights of the identity, cycle, GAN and contours losses.
        loss_outputs: how many outputs enter the losses: 3 (L^{1,2,3}) or 1 (L^1, the output ablation).
        pool_size: fakes kept in each output's image pool (50, as CycleGAN; 0 disables them).
        output_skip: False (the paper): each pyramid output is ``tanh(z_i)``. True (quick presets only): output
            G_i is ``tanh(z_i + atanh(x_i))`` with ``x_i`` the input at G_i's scale (average-pooled by 2^(i-1),
            then upsampled as G_i is; ``nets.add_to_input``), so an untrained G returns its input and training
            learns the colours; the network, losses and steps are unchanged.
        lr, beta1, beta2, init_type, init_gain: see :class:`AdamInitConfig`.
    """

    batch_size: int = 1
    epochs: int = 100
    lr_decay_fraction: float = 0.5
    enc_channels: tuple[int, ...] = (64, 128, 256)
    n: int = 256
    n_res_blocks: int = 3
    down_kernel: int = 3
    up_kernel: int = 3
    map_kernel: int = 7
    upsample_mode: str = "nearest"
    norm: str = "instance"
    ndf: int = 64
    n_layers_d: int = 3
    alpha: tuple[float, ...] = (5.0, 3.0, 2.0)
    beta: tuple[float, ...] = (10.0, 6.0, 4.0)
    gamma: tuple[float, ...] = (1.0, 1.0, 1.0)
    zeta: tuple[float, ...] = (1.0, 0.0, 0.0)
    loss_outputs: int = 3
    pool_size: int = 50
    output_skip: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.grey_convention != "bt601":
            raise ValueError(
                f"SpyncoGan needs grey_convention 'bt601', got '{self.grey_convention}': its handcrafted translation "
                f"H_t is the fixed BT.601 luma 0.299 R + 0.587 G + 0.114 B of the RGB output and its cycle loss "
                f"compares H_t(G(I)) with the grey input I, so a grey made another way (cie-l: L*/100, not a linear "
                f"function of RGB) would train G towards the wrong lightness. Run it with --grey bt601"
            )
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        for name in ("alpha", "beta", "gamma", "zeta"):
            value = tuple(float(v) for v in getattr(self, name))
            if len(value) != N_OUTPUTS or min(value) < 0:
                raise ValueError(f"{name} must be {N_OUTPUTS} weights >= 0 (one per pyramid output), got {value}")
            setattr(self, name, value)
        if len(self.enc_channels) != N_OUTPUTS or min(self.enc_channels) < 1 or self.n < 1 or self.n_res_blocks < 0:
            raise ValueError(f"bad network sizes: enc_channels={self.enc_channels} (need {N_OUTPUTS}), n={self.n}, "
                             f"n_res_blocks={self.n_res_blocks}")
        if self.loss_outputs not in (1, N_OUTPUTS):
            raise ValueError(f"loss_outputs must be 1 (L^1) or {N_OUTPUTS} (L^1,2,3), got {self.loss_outputs}")
        if sum(self.gamma[: self.loss_outputs]) <= 0:
            raise ValueError(f"gamma must give a positive weight to at least one of the {self.loss_outputs} outputs in the losses")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")
        if self.upsample_mode not in ("nearest", "bilinear"):
            raise ValueError(f"unknown upsample_mode {self.upsample_mode!r}; choose 'nearest' or 'bilinear'")
        if self.pool_size < 0 or self.ndf < 1 or self.n_layers_d < 1:
            raise ValueError(f"need pool_size >= 0, ndf >= 1, n_layers_d >= 1, got {self.pool_size}, {self.ndf}, {self.n_layers_d}")


_CHOICES = (
    "Figure 4 (the layer table) is an image missing from the text, so the generator follows what the text states "
    "and CycleGAN's reference elsewhere: conv 7×7 to 64 + IN + ReLU (classical: not a down/up-sampling layer); two "
    "separable 3×3 stride-2 conv blocks to 128 and 256; residual layers of 6 classical 3×3 conv blocks at n = 256 "
    "(3 residual blocks: the text's 'residual layers (6 convolutional blocks)'); a decoder of two blocks 'nearest "
    "×2, separable 3×3 conv at n = 256, IN, ReLU'; the OSP outputs are the residual output (G3, 1/4 scale), the "
    "first decoder block (G2, 1/2) and the second (G1, full scale), upsampled by nearest interpolation and mapped "
    "by one shared reflect-padded 7×7 conv to RGB + Tanh (CycleGAN's output layer).",
    "'Separable' is spatial separability as in the cited Mamalet & Garcia 2012 (a k×1 conv then a 1×k conv, both "
    "biased), since the paper states it did not use depthwise or grouped convolutions.",
    "Parameter counts of the paper preset: G 4,744,451 (paper: ≈ 4.978 M, -4.7 %), D 2,085,510 (paper: ≈ 2.085 M). "
    "The D count is matched by the 70×70 PatchGAN (C64-C128-C256-C512, 4×4 kernels, LeakyReLU 0.2, no IN on the "
    "first layer) with every conv separable (4×1 + 1×4), which we take as the paper's D. The G gap (233 k) is in "
    "the unknown kernel sizes: e.g. separable 4×4 up-sampling convs with a 3×3 mapping would give 4,975,875, but "
    "even kernels with the stated 'padding of half the filter size' change the feature size, so odd kernels were "
    "kept (down_kernel, up_kernel, map_kernel are options). 6 CycleGAN residual blocks (12 convs) alone would hold "
    "7.08 M parameters, which rules them out.",
    "G's input is the grey replicated over 3 channels (the paper does this for the identity loss); images in "
    "[-1, 1]; H_t's weights sum to 1, so it maps [-1, 1] RGB to [-1, 1] grey. colorize returns (G1 + 1) / 2 "
    "clipped to [0, 1]; G2 and G3 are alternative outputs (colorbench run --all-outputs).",
    "Grey convention: with bt601 (the default) the run's grey is exactly H_t of the colour image; other conventions "
    "are refused with a clear error (H_t could not reproduce them).",
    "GAN loss (Eq. 8 with its erratum): least squares as CycleGAN's lsgan: G minimizes Σ γ_i MSE(D(G_i(I)), 1); D "
    "minimizes ½[MSE(D(J), 1) + Σ γ_i MSE(D(pool_i(G_i(I))), 0) / Σ γ_i] — one D judges every output ('a single, "
    "scale consistent, discriminator for all the outputs'); the γ-weighted mean keeps real and fake terms balanced "
    "as in CycleGAN's ½(real + fake).",
    "Contours loss (Eq. 9): unnormalized Sobel kernels (horizontal and vertical, replicate padding), mean absolute "
    "difference over both responses.",
    "Training as CycleGAN where the paper is silent: generator step with D frozen, then D; image pools of 50 fakes "
    "(one per output); Adam betas (0.5, 0.999), normal(0, 0.02) init, batch size 1. From the paper: lr 2e-4, 100 "
    "epochs, linear decay after half.",
    "Quick preset (32×32): enc (8, 16, 16), n 16, 1 residual block, 3×3 mapping, ndf 8, 2-layer D, batch 32, 6 "
    "epochs (3 constant + 3 decaying); loss weights as the paper.",
    QUICK_CHOICE + " Each pyramid output G_i is re-based on the input at its own scale (average-pooled by "
    "2^(i-1), upsampled as G_i is), so G2 and G3 stay coarse. Measured with output_skip at lr 2e-4: PSNR 23.56, "
    "luma SSIM 1.000, but colourfulness 6.9 (almost grey); lr 1e-3 is for the colours. A quick step takes 0.96 "
    "of the old one's time.",
)


@register_method("spyncogan")
class SpyncoGan(TrainableMethod):
    """SpyncoGan with the full loss L^{1,2,3} (see the module docstring).

    ``train_step`` returns ``{"identity", "cycle_BAB", "cycle_ABA", "G_GAN", "contours", "D_real", "D_fake"}``: the
    weighted sums of Eq. 4, 6, 7, the generator part of Eq. 8 and Eq. 9 as they enter the total loss (contours only
    when some ζ_i > 0), and D's MSE on real images and (γ-weighted mean) on pooled fakes.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="spyncogan",
        title="SpyncoGan: pseudo-cyclic GAN, handcrafted translation H_t, Output Spatial Pyramids (L^{1,2,3})",
        paper=SPYNCOGAN,
        source=SEED_SPYNCOGAN,
        paired=False,
        color_space="rgb",
        choices=_CHOICES,
    )
    Config: ClassVar[type] = SpyncoGanConfig
    output_names: ClassVar[tuple[str, ...]] = OUTPUT_NAMES
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": SPYNCOGAN_SCALE}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 1, "epochs": 100, "lr_decay_fraction": 0.5, "enc_channels": (64, 128, 256), "n": 256,
                  "n_res_blocks": 3, "map_kernel": 7, "ndf": 64, "n_layers_d": 3},
        "quick": {"batch_size": 32, "epochs": 6, "lr_decay_fraction": 0.5, "enc_channels": (8, 16, 16), "n": 16,
                  "n_res_blocks": 1, "map_kernel": 3, "ndf": 8, "n_layers_d": 2, **QUICK_UNPAIRED},
    }

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__(config, device, seed)
        self.pools = [ImagePool(self.config.pool_size) for _ in range(N_OUTPUTS)]

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2 ** (N_OUTPUTS - 1)

    def build_networks(self) -> None:
        c = self.config
        self.G = SpyncoGenerator(3, 3, c.enc_channels, c.n, c.n_res_blocks, N_OUTPUTS, c.down_kernel, c.up_kernel,
                                 c.map_kernel, c.upsample_mode, c.norm, c.init_type, c.init_gain)
        self.D = SeparablePatchDiscriminator(3, c.ndf, c.n_layers_d, c.norm, c.init_type, c.init_gain)
        self.H_t = HandcraftedTranslation()
        self.gan_loss = GANLoss("lsgan")

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        self.H_t.to(self.device)  # a fixed buffer, in no optimizer
        return {
            "G": torch.optim.Adam(self.G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(self.D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2)),
        }

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    def gen(self, x: Tensor, k: int) -> list[Tensor]:
        """G's first ``k`` pyramid outputs on ``x`` (3 channels in [-1, 1]), re-based on ``x`` at each output's
        scale with ``output_skip``."""
        outs = self.G(x, outputs=k)
        if not self.config.output_skip:
            return outs
        size = tuple(x.shape[-2:])
        bases = [x] + [self.G._up(F.avg_pool2d(x, 2**i), size) for i in range(1, k)]
        return [add_to_input(b, o) for b, o in zip(bases, outs)]

    # --- colorization --------------------------------------------------------------------------------------------
    def _outputs(self, gray: Tensor, k: int) -> list[Tensor]:
        with self.autocast():
            outs = self.gen((gray * 2 - 1).expand(-1, 3, -1, -1), k)
        return [((o.float() + 1) / 2).clamp(0, 1) for o in outs]

    def predict(self, gray: Tensor) -> Tensor:
        """G1, the final (full-scale) output."""
        return self._outputs(gray, 1)[0]

    def colorize_output(self, gray: Tensor, output: str) -> Tensor:
        """Like :meth:`colorize` for one pyramid output ``"G1"``, ``"G2"`` or ``"G3"``."""
        if output not in self.output_names:
            raise ValueError(f"method {self.card.name!r} has no output {output!r}; outputs: {list(self.output_names)}")
        i = self.output_names.index(output)
        return self.run_pure(gray, lambda g: self._outputs(g, i + 1)[i], f"{self.card.name}.colorize_output")

    # --- training ----------------------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, float]:
        gray, rgb = self.prepare_batch(batch)
        c = self.config
        k = c.loss_outputs
        self.set_train(True)
        I, J = gray * 2 - 1, rgb * 2 - 1
        zero = I.new_zeros(())
        with self.training_rng():
            with self.autocast():
                fakes = [o.float() for o in self.gen(I.expand(-1, 3, -1, -1), k)]
                idt = [o.float() for o in self.gen(J, k)]
                bab = [o.float() for o in self.gen(self.H_t(J).expand(-1, 3, -1, -1), k)]
            set_requires_grad(self.D, False)
            with self.autocast():
                scores = [self.D(f) for f in fakes]
            edges_i = sobel_edges(I) if any(c.zeta[:k]) else None
            identity, cycle_bab, cycle_aba, g_gan, contours = zero, zero, zero, zero, zero
            for i in range(k):
                identity = identity + c.alpha[i] * F.l1_loss(idt[i], J)
                cycle_bab = cycle_bab + c.beta[i] * F.l1_loss(bab[i], J)
                grey_back = self.H_t(fakes[i])
                cycle_aba = cycle_aba + c.beta[i] * F.l1_loss(grey_back, I)
                g_gan = g_gan + c.gamma[i] * self.gan_loss(scores[i], True)
                if c.zeta[i] > 0:
                    contours = contours + c.zeta[i] * F.l1_loss(sobel_edges(grey_back), edges_i)
            self.optimize(identity + cycle_bab + cycle_aba + g_gan + contours, "G")

            set_requires_grad(self.D, True)
            pooled = [self.pools[i].query(fakes[i]) for i in range(k)]
            with self.autocast():
                d_real = self.gan_loss(self.D(J), True)
                d_fake = sum(c.gamma[i] * self.gan_loss(self.D(pooled[i]), False) for i in range(k)) / sum(c.gamma[:k])
            self.optimize(0.5 * (d_real + d_fake), "D")
        losses = {"identity": identity, "cycle_BAB": cycle_bab, "cycle_ABA": cycle_aba, "G_GAN": g_gan}
        if any(c.zeta[:k]):
            losses["contours"] = contours
        losses.update({"D_real": d_real, "D_fake": d_fake})
        return self.finish_step(losses)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["pools"] = [p.state_dict() for p in self.pools]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        for pool, s in zip(self.pools, state.get("pools", [])):
            pool.load_state_dict(s, self.device)


def _ablation(name: str, title: str, what: str, options: dict[str, Any]) -> Variant:
    """A SpyncoGan variant whose presets set ``options`` on top of SpyncoGan's."""
    card = MethodCard(
        name=name, title=title, paper=SPYNCOGAN + ", §6.2.1 (" + what + ")", source=SEED_SPYNCOGAN, paired=False,
        color_space="rgb", choices=(f"Ablation of spyncogan: {what}; options {options} on top of its presets.",) + _CHOICES,
    )
    return Variant(name, SpyncoGan, card, options, doc=f"SpyncoGan ablation: {what}.")


NO_CONTOURS = {"zeta": (0.0, 0.0, 0.0)}
SpyncoganL1 = register_variant(_ablation(
    "spyncogan-l1", "SpyncoGan, output ablation: only G1 in the losses (L^1)",
    "output ablation, Table 1: the loss L^1 uses only the final output G1", {"loss_outputs": 1}), __name__)
SpyncoganNocontours = register_variant(_ablation(
    "spyncogan-nocontours", "SpyncoGan, contours-loss ablation: L^{1,2,3} without the contours loss",
    "contours-loss ablation, Table 2: L^{1,2,3} without L_contours", NO_CONTOURS), __name__)
SpyncoganL1Nocontours = register_variant(_ablation(
    "spyncogan-l1-nocontours", "SpyncoGan, both ablations: L^1 without the contours loss",
    "output and contours-loss ablation, Table 2: L^1 without L_contours", {"loss_outputs": 1, **NO_CONTOURS}), __name__)
