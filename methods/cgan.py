"""The conditional-GAN loss family of Fabbri & Islam (seed 003, §4): cGAN-DCGAN, -LSGAN, -EBGAN and -WGAN.

Each is the pix2pix generator/discriminator (:class:`~colorbench.methods.pix2pix.Pix2Pix`, one implementation)
with a GAN formulation selected by its options, and the generator objective ``λ1·L_GAN + λ2·L1 + λ3·L2`` of the
report's §4.1–4.4. The methods differ only in their card and options: each is a
:class:`~colorbench.methods.registry.Variant` of pix2pix over the family's presets :data:`CGAN_PRESETS`.
"""

from __future__ import annotations

from colorbench.methods.base import MethodCard, PresetScale
from colorbench.methods.pix2pix import PIX2PIX, Pix2Pix
from colorbench.methods.registry import Variant, register_variant

SEED_FABBRI = "003_0be5b44764616518.txt"
FABBRI = "Fabbri, Islam, 'Automatic Image Colorization using Generative Adversarial Networks', course report (draft), 2017"

_COMMON_CHOICES = (
    "Networks: the pix2pix U-Net 256 generator (num_downs 8, ngf 64, batch norm, dropout 0.5 — the report's 'noise "
    "in the form of dropout in the generator') and the conditional 70×70 PatchGAN (ndf 64, 3 layers) on cat(L, ab), "
    "as the report's §4 builds on pix2pix and its authors' code has a pix2pix architecture; 256×256 images.",
    "Generator objective λ1·GAN + λ2·L1 + λ3·L2 on ab/110 with λ1 = 1, λ2 = 100, λ3 = 0: the report gives no values; "
    "its authors' code (cameronfabbri/Colorizing-Images-Using-Adversarial-Networks) has GAN_WEIGHT, L1_WEIGHT and "
    "L2_WEIGHT options and pix2pix's L1 weight 100; λ3 (L2) is an option (lambda_l2).",
    "Batch size 32 and 16 epochs (the report: 100K iterations at batch 32 on CelebA's 195K training images ≈ 16 "
    "epochs), constant learning rate.",
    "Quick preset: pix2pix's quick networks (num_downs 5, ngf = ndf = 16, 2-layer PatchGAN), 32×32 images, batch 32, "
    "10 epochs, linear decay over the second half.",
    "L1 + L2 together (λ3 > 0, which §4.1–4.4's objective allows): preset 'paper-l1l2' and overlay 'l1-l2' set "
    "λ3 = 100 (= λ2; the report gives no value); the generator then reports G_L2 beside G_L1.",
)
#: The report's datasets (§3.2: CelebA, and Places2 in a separate training); it gives no image size: 256×256 is
#: the size of the pix2pix networks and of Zhang et al.'s training images.
FABBRI_SCALE = PresetScale({"celeba": 256, "places365": 256},
                           "Fabbri & Islam §3.2: CelebA / Places2; no size given, 256×256 as pix2pix and Zhang et al.")
#: Overlay: λ3 > 0, the L1 + L2 objective of §4.1–4.4 (λ1·GAN + λ2·L1 + λ3·L2; the report allows any λ3 and gives
#: no value: λ3 = λ2 = 100 puts the two reconstruction terms on the same footing).
L1_L2 = {"lambda_l2": 100.0}
_PAPER = {
    "batch_size": 32, "epochs": 16, "lr_decay_fraction": 0.0, "num_downs": 8, "ngf": 64, "ndf": 64, "n_layers_d": 3,
    "norm": "batch", "dropout": 0.5, "lambda_gan": 1.0, "lambda_l1": 100.0, "lambda_l2": 0.0,
}
_QUICK = {
    "batch_size": 32, "epochs": 10, "lr_decay_fraction": 0.5, "num_downs": 5, "ngf": 16, "ndf": 16, "n_layers_d": 2,
    "norm": "batch", "dropout": 0.5, "lambda_gan": 1.0, "lambda_l1": 100.0, "lambda_l2": 0.0,
}


#: The family's presets, before each loss's options: the paper's and the quick networks, the paper's with the
#: L1 + L2 objective, and the overlay ``l1-l2`` (kept as it is: it sets λ3 only).
CGAN_PRESETS = {"paper": _PAPER, "quick": _QUICK, "paper-l1l2": {**_PAPER, **L1_L2}, "l1-l2": L1_L2}
_SCALES = {"paper": FABBRI_SCALE, "paper-l1l2": FABBRI_SCALE}


def _cgan(name: str, doc: str, title: str, loss_paper: str, options: dict[str, object], *choices: str) -> Variant:
    card = MethodCard(
        name=name, title=title, paper=f"{FABBRI}, §4; GAN loss: {loss_paper}; networks: {PIX2PIX}",
        source=SEED_FABBRI, paired=True, color_space="lab", choices=_COMMON_CHOICES + choices,
    )
    return Variant(name, Pix2Pix, card, options, presets=CGAN_PRESETS, overlays=("l1-l2",), preset_scales=_SCALES,
                   doc=doc)


CganDcgan = register_variant(_cgan(
    "cgan-dcgan", "Conditional DCGAN loss (BCE on D's logits) + λ2·L1 + λ3·L2 (report §4.1).",
    "pix2pix networks with the regular (DCGAN, BCE) conditional GAN loss + L1 + L2",
    "Goodfellow et al. 2014 / Radford et al. 2016 (DCGAN)", {"gan_mode": "vanilla", "d_loss_factor": 1.0},
    "D maximizes log D(x, y) + log(1 − D(x, G(x))) (the report's L_DCGAN, not halved: d_loss_factor 1); G "
    "minimizes −log D(x, G(x)) (the non-saturating form, as pix2pix). Adam 2e-4, betas (0.5, 0.999).",
), __name__)

CganLsgan = register_variant(_cgan(
    "cgan-lsgan", "Conditional least-squares GAN (a = 0, b = 1, c = 1) + λ2·L1 + λ3·L2 (report §4.2).",
    "pix2pix networks with the least-squares conditional GAN loss (a=0, b=1, c=1) + L1 + L2",
    "Mao et al., 'Least Squares Generative Adversarial Networks', ICCV 2017",
    {"gan_mode": "lsgan", "d_loss_factor": 0.5, "lambda_gan": 0.5},
    "D minimizes ½E[(D(x, y) − 1)²] + ½E[D(x, G(x))²] (d_loss_factor 0.5); G minimizes ½E[(D(x, G(x)) − 1)²], "
    "i.e. λ1 = 1 times the report's ½: lambda_gan 0.5. Adam 2e-4, betas (0.5, 0.999).",
), __name__)

CganEbgan = register_variant(_cgan(
    "cgan-ebgan",
    "Conditional energy-based GAN with an auto-encoder discriminator and margin m + λ2·L1 + λ3·L2 (§4.3).",
    "pix2pix generator with an EBGAN auto-encoder discriminator (energy, margin m) + L1 + L2",
    "Zhao, Mathieu, LeCun, 'Energy-based Generative Adversarial Network', ICLR 2017",
    {"gan_mode": "ebgan", "discriminator": "autoencoder", "ebgan_margin": 1.0, "d_loss_factor": 1.0},
    "D is EBGAN's convolutional auto-encoder (encoder 64-128-256 4×4 stride-2 convs, mirrored decoder, batch "
    "norm) on cat(L, ab); the energy of a pair is its mean squared reconstruction error. D minimizes "
    "E(x, y) + max(0, m − E(x, G(x))) per sample (d_loss_factor 1), G minimizes E(x, G(x)) (the report's "
    "§4.3); no pulling-away term (the report has none).",
    "Margin m = 1 on the mean-squared energy (the report gives none; PyTorch-GAN's EBGAN, which also uses an MSE "
    "energy, sets max(1, batch/64) = 1 here). Adam 2e-4, betas (0.5, 0.999).",
    "Quick preset: a 16-wide, 2-level auto-encoder.",
), __name__)

CganWgan = register_variant(_cgan(
    "cgan-wgan",
    "Conditional Wasserstein GAN: critic with weight clipping and n_critic steps + λ2·L1 + λ3·L2 (§4.4).",
    "pix2pix networks with the Wasserstein critic (weight clipping, n_critic) + L1 + L2",
    "Arjovsky, Chintala, Bottou, 'Wasserstein GAN', ICML 2017",
    {"gan_mode": "wgan", "optimizer": "rmsprop", "lr": 5e-5, "clip_value": 0.01, "n_critic": 5,
     "d_loss_factor": 1.0},
    "The PatchGAN is a critic: it maximizes mean f(x, y) − mean f(x, G(x)) (d_loss_factor 1), every parameter "
    "clipped to [−0.01, 0.01] after each critic step; G minimizes −mean f(x, G(x)). n_critic = 5: the critic "
    "steps on every batch and G on every 5th (each critic step on a fresh batch, as WGAN's Algorithm 1); the "
    "generator's losses are still reported on the other steps. RMSProp lr 5e-5 for both (WGAN's defaults: "
    "α = 5e-5, c = 0.01, n_critic = 5). WGAN's 100 critic steps for the first 25 generator steps are not "
    "reproduced.",
    "The critic keeps the PatchGAN's batch norm (WGAN's DCGAN critic has batch norm too).",
    "Quick preset: as the others, with WGAN's RMSProp lr 5e-5, clipping 0.01 and n_critic 5 (measured on the "
    "photos dataset: JS a/b 0.072/0.125 against the grey baseline's 0.56/0.56; at lr 2e-4, 0.080/0.132).",
), __name__)
