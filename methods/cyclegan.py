"""CycleGAN (Zhu et al., ICCV 2017) for unpaired colorization, its capsule and stochastic variants (Shanis et al.),
and Col-Cycle (Ratajczak et al., IGARSS 2019), the fully cyclic baseline of SpyncoGan.

All four share one training step, the reference CycleGAN's (junyanz/pytorch-CycleGAN-and-pix2pix): domain A is
grey, domain B colour; G: A -> B colorizes, F: B -> A translates back; D_B judges colour images, D_A grey ones.

* generator step (D frozen): ``GAN(D_B(G(a)), real) + GAN(D_A(F(b)), real) + λ_A |F(G(a)) - a|₁ +
  λ_B |G(F(b)) - b|₁ + λ_id (λ_B |G(b) - b|₁ + λ_A |F(a) - a|₁)``;
* discriminator step: ``½ [GAN(D_B(b), real) + GAN(D_B(pool_B(G(a))), fake)]`` and the same for D_A, with image
  pools of the last 50 fakes.

Images are in [-1, 1]: grey ``2·gray - 1`` replicated over ``grey_channels`` channels, colour ``2·rgb - 1``;
``colorize`` returns ``(G(a) + 1) / 2`` clipped to [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.datasets.base import Batch
from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.losses import GAN_MODES, GANLoss
from colorbench.methods.nets import (
    NORMS,
    CapsuleDiscriminator,
    ColCycleGenerator,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    SeparablePatchDiscriminator,
    add_to_input,
    set_requires_grad,
)
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import AdamInitConfig, TrainableConfig, TrainableMethod

SEED_CYCLEGAN = "002_7b95aee0c78c4e8f.txt"
SEED_SPYNCOGAN = "000_0b618b294f02e353.txt"
CYCLEGAN = "Zhu, Park, Isola, Efros, 'Unpaired Image-to-Image Translation using Cycle-Consistent Adversarial Networks', ICCV 2017"
SHANIS = "Shanis, Saraf, Alapati, 'Image Colorization using CycleGAN', course report, University at Buffalo"
COLCYCLE = (
    "Ratajczak, Crispim-Junior, Faure, Fervers, Tougne, 'Toward an Unsupervised Colorization Framework for Historical "
    "Land Use Classification', IGARSS 2019 (Col-Cycle); as the baseline of Ratajczak et al., SUMAC 2019, §6.2.2"
)

#: Overlay: the optimizer and losses of Shanis et al. (seed 002, §4.1: Adam "β1 = 0.9 and β2 = 0.999", lr 0.0002;
#: Eq. 3 is GAN + λ·cycle, with no identity term).
SEED002 = {"beta1": 0.9, "beta2": 0.999, "lambda_identity": 0.0}
#: Overlay: CycleGAN's own settings (Zhu et al. 2017 and the reference implementation: Adam β1 = 0.5, identity loss
#: 0.5·λ = 5).
ZHU2017 = {"beta1": 0.5, "beta2": 0.999, "lambda_identity": 0.5}
#: Image size of the report's experiments (Oxford Flowers; §4.2: "original dimensions i.e. 128 × 128").
SEED002_SCALE = PresetScale({"flowers102": 128}, "Shanis et al., §4.2: images of 'original dimensions i.e. 128 × 128'")
ZHU2017_SCALE = PresetScale({"cyclegan-folder": 256}, "Zhu et al. 2017, §7.1 / the reference: 256×256 images")
SEED002_CHOICE = (
    "Paper preset = the report's settings (seed 002, §4.1, p. 6 and Eq. 3): Adam lr 2e-4 with β1 = 0.9, β2 = 0.999 "
    "for generators and discriminators, batch size 1, 200 epochs, and no identity loss (Eq. 3: L_GAN(G) + "
    "L_GAN(F) + λ·L_cyc, λ = 10); 128×128 Oxford Flowers images (dataset flowers102; §4.2). Kept from the "
    "reference where the report is silent: least-squares GAN loss (its Keras-GAN CycleGAN compiles D with 'mse'), "
    "image pools, linear decay over the second half. Preset 'zhu2017' = CycleGAN's own settings (β1 = 0.5, "
    "identity loss 0.5·λ = 5, 256×256); overlays 'seed002' / 'zhu2017-losses' set only these options (e.g. "
    "quick+seed002). The quick preset is tuned separately and keeps the reference's β1 = 0.5 and identity loss."
)

#: Choices shared by every method of this module (the reference CycleGAN's defaults).
REFERENCE_CHOICES = (
    "Training step of the reference CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix, cycle_gan_model.py): generator "
    "step first with both D frozen, then both D on ½(real + pooled fake); least-squares GAN loss (lsgan), L1 cycle "
    "losses λ_A = λ_B = 10, identity loss weight 0.5·λ, image pools of 50 fakes, Adam lr 2e-4 betas (0.5, 0.999), "
    "normal(0, 0.02) init, batch size 1.",
    "Domain A is the grey image replicated over 3 channels (grey_channels = 3), as when the reference loads grey "
    "images as RGB files; this is what makes the identity loss (G(b) ≈ b, F(a) ≈ a) possible, which needs as many "
    "input as output channels. grey_channels = 1 is available with lambda_identity = 0.",
    "Images in [-1, 1] (2x - 1), Tanh outputs; colorize returns (G(a) + 1) / 2 clipped to [0, 1], in RGB: the grey "
    "input's lightness is not imposed on the output (colour space 'rgb').",
    "Grey convention: the method colorizes whatever grey it is given; under --grey cie-l, domain A is L*/100 and "
    "nothing in the method assumes BT.601.",
    "Unpaired data: each batch has grey images from domain A and different colour images from domain B "
    "(runner protocol 'disjoint' by default, or 'shuffled'); a paired batch is used the same way (its pairing is "
    "ignored).",
    "The image pool draws from the method's own RNG stream (the reference uses Python's random) and is saved in "
    "checkpoints, so training resumes identically.",
)


@dataclass
class UnpairedConfig(AdamInitConfig, TrainableConfig):
    """Options of the cycle-consistent training step (shared by the CycleGAN family and Col-Cycle).

    Attributes:
        lambda_a, lambda_b: weights of the A -> B -> A and B -> A -> B cycle losses (10, 10).
        lambda_identity: identity loss weight, relative to lambda (0.5 in CycleGAN; 0 disables it).
        gan_mode: ``"lsgan"`` (CycleGAN), ``"vanilla"`` or ``"wgan"``.
        pool_size: fakes kept in each image pool (50; 0 disables the pools).
        grey_channels: channels of domain A: 3 (grey replicated, needed by the identity loss) or 1.
        output_skip: False (the papers): each generator outputs ``tanh(z)``. True (quick presets only): it
            outputs ``tanh(z + atanh(x))`` for its input ``x`` (``nets.add_to_input``), so an untrained
            generator is the identity and training learns the change (colours for G, their removal for F);
            the networks, losses and steps are unchanged.
        lr, beta1, beta2, init_type, init_gain: see :class:`AdamInitConfig`.
    """

    batch_size: int = 1
    epochs: int = 200
    lr_decay_fraction: float = 0.5
    lambda_a: float = 10.0
    lambda_b: float = 10.0
    lambda_identity: float = 0.5
    gan_mode: str = "lsgan"
    pool_size: int = 50
    grey_channels: int = 3
    output_skip: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if min(self.lambda_a, self.lambda_b, self.lambda_identity) < 0:
            raise ValueError(f"loss weights must be >= 0, got lambda_a={self.lambda_a}, lambda_b={self.lambda_b}, "
                             f"lambda_identity={self.lambda_identity}")
        if self.gan_mode not in GAN_MODES:
            raise ValueError(f"unknown gan_mode {self.gan_mode!r}; choose one of {GAN_MODES}")
        if self.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {self.pool_size}")
        if self.grey_channels not in (1, 3):
            raise ValueError(f"grey_channels must be 1 or 3, got {self.grey_channels}")
        if self.grey_channels == 1 and self.output_skip:
            raise ValueError("output_skip needs grey_channels=3: F (colour -> grey) is re-based on its input, so "
                             "both domains must have 3 channels")
        if self.grey_channels == 1 and self.lambda_identity > 0:
            raise ValueError("grey_channels=1 needs lambda_identity=0: the identity loss feeds colour images to the "
                             "grey -> colour generator, so both domains must have 3 channels")


class CycleConsistency(ABC):
    """Mixin of the shared CycleGAN training step (not a :class:`~colorbench.methods.base.Method`: list it before
    :class:`~colorbench.methods.trainable.TrainableMethod`, so methods stay within three levels of ``Method``); the
    method class builds the networks (:meth:`build_pair`) and may add noise.

    ``train_step`` returns ``{"G_GAN", "F_GAN", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}``: the two
    generators' adversarial losses, the cycle L1 distances and identity L1 distances (unweighted; identity terms
    only when ``lambda_identity > 0``), and each discriminator's loss (½(real + fake)).
    """

    Config: ClassVar[type] = UnpairedConfig
    #: option values a registered variant requires (checked at construction with a clear error)
    pinned: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        cfg = config if config is not None else self.Config()
        for key, value in self.pinned.items():
            if getattr(cfg, key, value) != value:
                raise ValueError(f"method {self.card.name!r} needs {key}={value!r}, got {getattr(cfg, key)!r}")
        super().__init__(config, device, seed)
        self.pool_a, self.pool_b = ImagePool(self.config.pool_size), ImagePool(self.config.pool_size)

    # --- hooks -----------------------------------------------------------------------------------------------
    @abstractmethod
    def build_pair(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """``(G, F, D_A, D_B)``: G grey -> colour, F colour -> grey, D_A judges grey, D_B colour images."""

    def noise(self, n: int, generator: torch.Generator | None = None, zero: bool = False) -> Tensor | None:
        """Noise for G (stochastic variants); None for deterministic generators."""
        return None

    def gen(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        """G (grey -> colour) on ``x``, re-based on ``x`` with ``output_skip``."""
        return self._skip(x, self.G(x) if z is None else self.G(x, z))

    def inv(self, x: Tensor) -> Tensor:
        """F (colour -> grey) on ``x``, re-based on ``x`` with ``output_skip``."""
        return self._skip(x, self.F(x))

    def _skip(self, x: Tensor, out: Tensor) -> Tensor:
        return add_to_input(x, out) if self.config.output_skip else out

    # --- construction ----------------------------------------------------------------------------------------
    def build_networks(self) -> None:
        self.G, self.F, self.D_A, self.D_B = self.build_pair()
        self.gan_loss = GANLoss(self.config.gan_mode)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {
            "G": torch.optim.Adam(itertools.chain(self.G.parameters(), self.F.parameters()), lr=c.lr, betas=(c.beta1, c.beta2)),
            "D": torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr=c.lr, betas=(c.beta1, c.beta2)),
        }

    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "F": self.F, "D_A": self.D_A, "D_B": self.D_B}

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 4

    # --- conventions ---------------------------------------------------------------------------------------------
    def to_domain_a(self, gray: Tensor) -> Tensor:
        """Grey in [0, 1] ``(N, 1, H, W)`` -> domain A in [-1, 1] with ``grey_channels`` channels."""
        return (gray * 2 - 1).expand(-1, self.config.grey_channels, -1, -1)

    def predict(self, gray: Tensor) -> Tensor:
        """G on the grey, with zero noise for stochastic variants (the prior's mode: deterministic)."""
        with self.autocast():
            out = self.gen(self.to_domain_a(gray), self.noise(gray.shape[0], zero=True)).float()
        return ((out + 1) / 2).clamp(0, 1)

    # --- training ----------------------------------------------------------------------------------------------
    def train_step(self, batch: Batch) -> dict[str, float]:
        gray, rgb = self.prepare_batch(batch)
        c = self.config
        self.set_train(True)
        real_a, real_b = self.to_domain_a(gray), rgb * 2 - 1
        n = real_a.shape[0]
        with self.training_rng():
            with self.autocast():
                fake_b = self.gen(real_a, self.noise(n)).float()
                rec_a = self.inv(fake_b).float()
                fake_a = self.inv(real_b).float()
                rec_b = self.gen(fake_a, self.noise(n)).float()

            # generators: fool both D, close both cycles, keep identities
            set_requires_grad([self.D_A, self.D_B], False)
            with self.autocast():
                g_gan = self.gan_loss(self.D_B(fake_b), True)
                f_gan = self.gan_loss(self.D_A(fake_a), True)
            cycle_a, cycle_b = F.l1_loss(rec_a, real_a), F.l1_loss(rec_b, real_b)
            total = g_gan + f_gan + c.lambda_a * cycle_a + c.lambda_b * cycle_b
            losses = {"G_GAN": g_gan, "F_GAN": f_gan, "cycle_A": cycle_a, "cycle_B": cycle_b}
            if c.lambda_identity > 0:
                with self.autocast():
                    idt_b = self.gen(real_b, self.noise(n)).float()
                    idt_a = self.inv(real_a).float()
                losses["idt_A"] = F.l1_loss(idt_a, real_a)
                losses["idt_B"] = F.l1_loss(idt_b, real_b)
                total = total + c.lambda_identity * (c.lambda_b * losses["idt_B"] + c.lambda_a * losses["idt_A"])
            self.optimize(total, "G")

            # discriminators: real -> real, pooled fakes -> fake, each halved
            set_requires_grad([self.D_A, self.D_B], True)
            pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
            with self.autocast():
                d_b = 0.5 * (self.gan_loss(self.D_B(real_b), True) + self.gan_loss(self.D_B(pooled_b), False))
                d_a = 0.5 * (self.gan_loss(self.D_A(real_a), True) + self.gan_loss(self.D_A(pooled_a), False))
            self.optimize(d_a + d_b, "D")
        losses.update({"D_A": d_a, "D_B": d_b})
        return self.finish_step(losses)

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["pools"] = {"A": self.pool_a.state_dict(), "B": self.pool_b.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        if "pools" in state:
            self.pool_a.load_state_dict(state["pools"]["A"], self.device)
            self.pool_b.load_state_dict(state["pools"]["B"], self.device)


#: What the quick presets of the unpaired methods (this module's and SpyncoGan's) set on top of their small
#: networks; see QUICK_CHOICE. The cycle-consistent methods also drop the identity loss (QUICK_CYCLE).
QUICK_UNPAIRED: dict[str, Any] = {"output_skip": True, "lr": 1e-3}
QUICK_CYCLE: dict[str, Any] = {**QUICK_UNPAIRED, "lambda_identity": 0.0}
QUICK_CHOICE = (
    "Quick preset, output_skip and lr (issue 11): with the papers' tanh(z) output and lr 2e-4, 6 epochs of these "
    "small networks on the built-in photos (32×32) gave structure-less output: blobs and checkerboards, PSNR "
    "11.6-12.5 dB against the grey baseline's 23.6, luma SSIM 0.40-0.50 (cyclegan 0.40, -capsule 0.44, "
    "-stochastic 0.42, col-cycle 0.44, spyncogan 0.50; gray 1.0, pix2pix 0.99). The first layer's instance norm "
    "removes each image's mean brightness and contrast, which an untrained generator has to relearn, and ~200 "
    "steps were not enough. So the quick presets (only) re-base each generator's Tanh output on its input, "
    "tanh(z + atanh(x)) (nets.add_to_input): an untrained generator is the identity and training learns the "
    "change; and lr is 1e-3 (measured on cyclegan: output_skip at lr 2e-4 gave PSNR 22.72, luma SSIM 0.975, "
    "colourfulness 12.4; at 1e-3: 22.85, 0.994, 9.6). The networks, losses and steps are the papers'; the paper "
    "presets keep tanh(z) and lr 2e-4."
)
QUICK_CYCLE_CHOICE = (
    "Quick preset, lambda_identity 0 (issue 11): with the re-based output the identity loss G(b) ≈ b, F(a) ≈ a "
    "only holds the generators where they start, and G stayed grey (cyclegan, output_skip, lr 1e-3: "
    "colourfulness 9.6, real photos ~32, JS a/b 0.30/0.34); without it G colours (colourfulness 34.7, JS "
    "0.16/0.26, PSNR 20.2, luma SSIM 0.90; cycle weights 2 instead of 10 gave PSNR 21.9, luma SSIM 0.95, JS "
    "0.17/0.17 but paler output, so the papers' 10 were kept). The report's own loss (Eq. 3, the paper preset) "
    "has no identity term either. Dropping it also saves two of the six generator passes of a step: a quick "
    "step takes 0.70 (cyclegan), 0.71 (col-cycle), 0.74 (cyclegan-stochastic) of the old quick step's time "
    "(batch of 32, measured interleaved in one process). Colours are sepia-like tints with a dot pattern of the transposed convolutions, not "
    "object colours: 6 epochs of these small networks learn the colour distribution, not what is what."
)
# --- the CycleGAN family ------------------------------------------------------------------------------------------
DISCRIMINATORS = ("patchgan", "capsule")


@dataclass
class CycleGANConfig(UnpairedConfig):
    """Options of ``cyclegan`` and its variants; the defaults are ``cyclegan``'s ``paper`` preset.

    Attributes:
        ngf, n_blocks, norm, dropout: ResNet generators (``resnet_6blocks``: ngf 64, 6 blocks, instance norm,
            no dropout).
        discriminator: ``"patchgan"`` (CycleGAN) or ``"capsule"`` (``cyclegan-capsule``).
        ndf, n_layers_d: PatchGAN discriminators (ndf 64, 3 layers: 70×70 patches).
        caps_input_size, caps_conv_channels, caps_kernel, caps_primary_maps, caps_primary_dim, caps_digit_caps,
            caps_digit_dim, caps_routing_iters: capsule discriminators (see ``CapsuleDiscriminator``).
        noise_dim: length of the Gaussian noise fed to G's conditional instance norms (``cyclegan-stochastic``;
            0 for the deterministic variants).
    """

    ngf: int = 64
    n_blocks: int = 6
    norm: str = "instance"
    dropout: bool = False
    discriminator: str = "patchgan"
    ndf: int = 64
    n_layers_d: int = 3
    caps_input_size: int = 32
    caps_conv_channels: int = 256
    caps_kernel: int = 9
    caps_primary_maps: int = 32
    caps_primary_dim: int = 8
    caps_digit_caps: int = 10
    caps_digit_dim: int = 16
    caps_routing_iters: int = 3
    noise_dim: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.ngf < 1 or self.n_blocks < 0 or self.ndf < 1 or self.n_layers_d < 1 or self.noise_dim < 0:
            raise ValueError(f"bad network sizes: ngf={self.ngf}, n_blocks={self.n_blocks}, ndf={self.ndf}, "
                             f"n_layers_d={self.n_layers_d}, noise_dim={self.noise_dim}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")
        if self.discriminator not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {self.discriminator!r}; choose one of {DISCRIMINATORS}")


@register_method("cyclegan")
class CycleGAN(CycleConsistency, TrainableMethod):
    """CycleGAN with ResNet generators and PatchGAN discriminators (see the module docstring)."""

    card: ClassVar[MethodCard] = MethodCard(
        name="cyclegan",
        title="CycleGAN: two ResNet generators, two 70×70 PatchGANs, LSGAN + cycle + identity losses, grey <-> RGB",
        paper=CYCLEGAN + "; for colorization as in " + SHANIS + ", §3.1-3.2, §4.1",
        source=SEED_CYCLEGAN,
        paired=False,
        color_space="rgb",
        choices=REFERENCE_CHOICES + (
            "Generators: the reference resnet_6blocks (ngf 64, instance norm, no dropout: 7,837,699 parameters each, "
            "the reference's 7.838 M); discriminators: the 'basic' 70×70 PatchGAN with instance norm (2,764,737 "
            "parameters each on 3 channels, the reference's 2.765 M). The report used a Keras port of the same "
            "architecture.",
            "Paper preset: 200 epochs (100 constant + 100 linear decay), as the reference and the report's 200 epochs. "
            "Images of any size divisible by 4 (the reference trains on 256×256 crops).",
            SEED002_CHOICE,
            "Quick preset (32×32): ngf 8, 1 residual block, ndf 8, 2-layer PatchGAN (34×34 receptive field), batch "
            "32, 6 epochs (3 constant + 3 decaying); a step runs ~6 small generator passes, so a 650-pair epoch "
            "takes ~10 s on one CPU core.",
            QUICK_CHOICE,
            QUICK_CYCLE_CHOICE,
        ),
    )
    Config: ClassVar[type] = CycleGANConfig
    pinned: ClassVar[dict[str, Any]] = {"discriminator": "patchgan", "noise_dim": 0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "ngf": 64, "n_blocks": 6, "ndf": 64, "n_layers_d": 3,
                  **SEED002},
        "quick": {"batch_size": 32, "epochs": 6, "lr_decay_fraction": 0.5, "ngf": 8, "n_blocks": 1, "ndf": 8, "n_layers_d": 2,
                  **QUICK_CYCLE},
        "zhu2017": {"batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "ngf": 64, "n_blocks": 6, "ndf": 64,
                    "n_layers_d": 3, **ZHU2017},
        "seed002": dict(SEED002),
        "zhu2017-losses": dict(ZHU2017),
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {"paper": SEED002_SCALE, "zhu2017": ZHU2017_SCALE}

    def build_generator(self, in_channels: int, out_channels: int, noise_dim: int = 0) -> nn.Module:
        c = self.config
        return ResnetGenerator(in_channels, out_channels, c.ngf, c.n_blocks, c.norm, c.dropout, noise_dim, c.init_type, c.init_gain)

    def build_discriminator(self, in_channels: int) -> nn.Module:
        c = self.config
        if c.discriminator == "capsule":
            return CapsuleDiscriminator(
                in_channels, c.caps_input_size, c.caps_conv_channels, c.caps_kernel, c.caps_primary_maps,
                c.caps_primary_dim, c.caps_digit_caps, c.caps_digit_dim, c.caps_routing_iters,
                sigmoid_output=c.gan_mode == "lsgan", init_type=c.init_type, init_gain=c.init_gain,
            )
        return PatchDiscriminator(in_channels, c.ndf, c.n_layers_d, c.norm, False, c.init_type, c.init_gain)

    def build_pair(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        k = self.config.grey_channels
        G = self.build_generator(k, 3, self.config.noise_dim)
        F_ = self.build_generator(3, k)
        return G, F_, self.build_discriminator(k), self.build_discriminator(3)


@register_method("cyclegan-capsule")
class CycleGANCapsule(CycleGAN):
    """CycleGAN whose two discriminators are capsule networks with dynamic routing (sigmoid output, MSE loss)."""

    card: ClassVar[MethodCard] = MethodCard(
        name="cyclegan-capsule",
        title="CycleGAN with capsule-network discriminators (dynamic routing, 32×32 input, sigmoid + MSE loss)",
        paper=SHANIS + ", §3.4, §4.2; capsules of Sabour, Frosst, Hinton, NeurIPS 2017; CapsuleGAN of Jaiswal et al. 2018",
        source=SEED_CYCLEGAN,
        paired=False,
        color_space="rgb",
        choices=REFERENCE_CHOICES + (
            "Both discriminators are capsule networks; the input is rescaled to 32×32 (bilinear, antialiased) as in "
            "the report. Layers as Sabour et al. (the report gives no sizes): conv 9×9 to 256 channels + "
            "LeakyReLU(0.2), one primary capsule layer (conv 9×9 stride 2, 32 maps of 8-D capsules), one digit "
            "capsule layer (10 capsules of 16-D) with 3 routing iterations (the report's 'three softmax digit "
            "capsule layers', read as the three softmax routing steps), then a dense layer to one unit.",
            "Loss: the report's better option, a sigmoid on the last unit with the MSE to 1 (real) / 0 (fake), i.e. "
            "gan_mode 'lsgan' on sigmoid outputs; gan_mode 'vanilla' gives the report's BCE variant (raw logit + "
            "BCE-with-logits).",
            "Generators as cyclegan (resnet_6blocks); 200 epochs as the report's CycleGAN.",
            SEED002_CHOICE,
            "Quick preset: ngf 8, 1 residual block, batch 32, 6 epochs; capsule D with 16 conv channels, 5×5 kernels, 4 primary maps "
            "of 4-D capsules, 4 digit capsules of 8-D.",
            QUICK_CHOICE,
            QUICK_CYCLE_CHOICE,
        ),
    )
    pinned: ClassVar[dict[str, Any]] = {"discriminator": "capsule", "noise_dim": 0}
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "ngf": 64, "n_blocks": 6, "discriminator": "capsule",
                  **SEED002},
        "zhu2017": {"batch_size": 1, "epochs": 200, "lr_decay_fraction": 0.5, "ngf": 64, "n_blocks": 6,
                    "discriminator": "capsule", **ZHU2017},
        "seed002": {**SEED002, "discriminator": "capsule"},
        "zhu2017-losses": {**ZHU2017, "discriminator": "capsule"},
        "quick": {
            "batch_size": 32, "epochs": 6, "lr_decay_fraction": 0.5, "ngf": 8, "n_blocks": 1, "discriminator": "capsule",
            "caps_conv_channels": 16, "caps_kernel": 5, "caps_primary_maps": 4, "caps_primary_dim": 4,
            "caps_digit_caps": 4, "caps_digit_dim": 8, **QUICK_CYCLE,
        },
    }


@register_method("cyclegan-stochastic")
class CycleGANStochastic(CycleGAN):
    """CycleGAN whose colorizing generator G takes Gaussian noise through conditional instance norms.

    ``colorize`` uses zero noise (deterministic); :meth:`sample` draws ``n`` noise vectors per image.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="cyclegan-stochastic",
        title="Stochastic CycleGAN: Gaussian noise into the grey -> colour generator's conditional instance norms",
        paper=SHANIS + ", §3.3, §4.3; conditional instance normalization of Dumoulin, Shlens, Kudlur, ICLR 2017",
        source=SEED_CYCLEGAN,
        paired=False,
        color_space="rgb",
        stochastic=True,
        choices=REFERENCE_CHOICES + (
            "Every normalization layer of G (grey -> colour) is a conditional instance norm: γ(z) = 1 + W_γ z, "
            "β(z) = W_β z, with z ~ N(0, I) of noise_dim = 8 values per image (the report gives no size; 8 is the "
            "latent size of BicycleGAN). A fresh z is drawn for every pass of G in training (translation, cycle "
            "B -> A -> B, identity). F is deterministic, as in the report (noise in G only).",
            "colorize uses z = 0 (the prior's mode) so it is deterministic and pure; sample(gray, n, seed) draws n "
            "noise vectors per image from a generator seeded with seed: the runner's output diversity measures "
            "whether G uses its noise (the report found it did not: the cycle loss makes G ignore it).",
            "Networks otherwise as cyclegan: resnet_6blocks (plus the CIN linear maps), 70×70 PatchGANs, 200 epochs.",
            SEED002_CHOICE,
            "Quick preset: as cyclegan's, noise_dim 8.",
            QUICK_CHOICE,
            QUICK_CYCLE_CHOICE,
        ),
    )
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {**CycleGAN.presets["paper"], "noise_dim": 8},
        "quick": {**CycleGAN.presets["quick"], "noise_dim": 8},
        "zhu2017": {**CycleGAN.presets["zhu2017"], "noise_dim": 8},
        "seed002": {**SEED002, "noise_dim": 8},
        "zhu2017-losses": {**ZHU2017, "noise_dim": 8},
    }

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        cfg = config if config is not None else self.Config()
        if getattr(cfg, "noise_dim", 1) < 1:
            raise ValueError(f"method {self.card.name!r} needs noise_dim >= 1, got {cfg.noise_dim}")
        super().__init__(config, device, seed)

    pinned: ClassVar[dict[str, Any]] = {"discriminator": "patchgan"}

    def noise(self, n: int, generator: torch.Generator | None = None, zero: bool = False) -> Tensor | None:
        shape = (n, self.config.noise_dim)
        if zero:
            return torch.zeros(shape, device=self.device)
        return torch.randn(shape, device=self.device, generator=generator)

    def sample(self, gray: Tensor, n: int, seed: int) -> Tensor:
        """``n`` colorizations of each grey image ``(n, N, 3, H, W)``, noise drawn from a generator seeded with
        ``seed`` (pure: no state changes; the same seed gives the same samples)."""
        if n < 1:
            raise ValueError(f"sample needs n >= 1, got {n}")

        def draw(g: Tensor) -> Tensor:
            gen = torch.Generator(device=self.device).manual_seed(seed)
            a = self.to_domain_a(g)
            outs = []
            for _ in range(n):
                with self.autocast():
                    out = self.gen(a, self.noise(g.shape[0], generator=gen)).float()
                outs.append(((out + 1) / 2).clamp(0, 1))
            return torch.stack(outs)

        return self.run_pure(gray, draw, f"{self.card.name}.sample")


# --- Col-Cycle --------------------------------------------------------------------------------------------------
@dataclass
class ColCycleConfig(UnpairedConfig):
    """Options of ``col-cycle``; the defaults are the ``paper`` preset.

    Attributes:
        enc_channels: encoder filters (first a 7×7 conv, then separable stride-2 convs); the decoder goes back
            through them in reverse (decreasing filter counts, as CycleGAN).
        n: filters of the residual layers (256, as SpyncoGan).
        n_res_blocks: residual blocks of two 3×3 convs (3: the "6 convolutional blocks" of SpyncoGan).
        down_kernel, up_kernel, map_kernel: kernels of the separable down/up convs and the output conv.
        norm: normalization (instance).
        ndf, n_layers_d: the separable PatchGAN discriminators (as SpyncoGan's).
    """

    epochs: int = 100
    enc_channels: tuple[int, ...] = (64, 128, 256)
    n: int = 256
    n_res_blocks: int = 3
    down_kernel: int = 3
    up_kernel: int = 3
    map_kernel: int = 7
    norm: str = "instance"
    ndf: int = 64
    n_layers_d: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        self.enc_channels = tuple(int(c) for c in self.enc_channels)
        if not self.enc_channels or min(self.enc_channels) < 1 or self.n < 1 or self.n_res_blocks < 0:
            raise ValueError(f"bad network sizes: enc_channels={self.enc_channels}, n={self.n}, n_res_blocks={self.n_res_blocks}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose one of {NORMS}")


@register_method("col-cycle")
class ColCycle(CycleConsistency, TrainableMethod):
    """Col-Cycle: the fully cyclic network SpyncoGan is compared with (two generators, two discriminators)."""

    card: ClassVar[MethodCard] = MethodCard(
        name="col-cycle",
        title="Col-Cycle: fully cyclic baseline of SpyncoGan (two generators + two discriminators, no H_t, no OSP)",
        paper=COLCYCLE,
        source=SEED_SPYNCOGAN,
        paired=False,
        color_space="rgb",
        choices=REFERENCE_CHOICES[1:] + (
            "Only what SUMAC 2019 §6.2.2 says of Col-Cycle is known here (the IGARSS paper is not in the seeds): two "
            "DCGANs with the same layers and filters as SpyncoGan but without H_t and OSP, decreasing filter counts "
            "in the decoders as CycleGAN, nearest-neighbour up-sampling before convolution, trained as SpyncoGan "
            "(lr 2e-4, 100 epochs, linear decay after half).",
            "So each generator is SpyncoGan's encoder (conv 7×7 64, separable stride-2 convs to 128 and 256) and "
            "residual layers (3 blocks of two 3×3 convs at 256), then nearest ×2 + separable 3×3 conv to 128, to 64, "
            "and a 7×7 output conv + Tanh (4,113,475 parameters on 3 -> 3 channels); each discriminator is "
            "SpyncoGan's separable 70×70 PatchGAN (2,085,510).",
            "Losses and steps: the reference CycleGAN's (lsgan, λ = 10 cycles, identity 0.5·λ, pools of 50, Adam "
            "(0.5, 0.999), batch 1) since the baseline is built on CycleGAN.",
            "Quick preset (32×32): enc (8, 16, 16), n 16, 1 residual block, ndf 8, 2-layer D, batch 32, 6 epochs.",
            QUICK_CHOICE,
            QUICK_CYCLE_CHOICE,
        ),
    )
    Config: ClassVar[type] = ColCycleConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"batch_size": 1, "epochs": 100, "lr_decay_fraction": 0.5, "enc_channels": (64, 128, 256), "n": 256,
                  "n_res_blocks": 3, "ndf": 64, "n_layers_d": 3},
        "quick": {"batch_size": 32, "epochs": 6, "lr_decay_fraction": 0.5, "enc_channels": (8, 16, 16), "n": 16,
                  "n_res_blocks": 1, "ndf": 8, "n_layers_d": 2, **QUICK_CYCLE},
    }
    preset_scales: ClassVar[dict[str, PresetScale]] = {
        "paper": PresetScale({"cifar10": 32, "ucmerced": 256, "cyclegan-folder": 256},
                             "Ratajczak et al. 2019, §5.1 and §6.2.2 (Col-Cycle trained as SpyncoGan): CIFAR-10 at "
                             "32×32; UCMerced, Cezanne, Landscape at 256×256"),
    }

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        return 2 ** (len(config.enc_channels) - 1)

    def build_pair(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        c = self.config

        def gen(i: int, o: int) -> nn.Module:
            return ColCycleGenerator(i, o, c.enc_channels, c.n, c.n_res_blocks, c.down_kernel, c.up_kernel, c.map_kernel,
                                     c.norm, c.init_type, c.init_gain)

        def disc(i: int) -> nn.Module:
            return SeparablePatchDiscriminator(i, c.ndf, c.n_layers_d, c.norm, c.init_type, c.init_gain)

        k = c.grey_channels
        return gen(k, 3), gen(3, k), disc(k), disc(3)
