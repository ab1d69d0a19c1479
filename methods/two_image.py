"""Two Unpaired Images Colorization (Ha, 2020): one grey target T, one colour reference R, one pyramid of GANs.

For each grey image, a SinGAN-like pyramid (Shaham et al. 2019) is trained from scratch on that image and one
colour reference only, coarsest scale first. At scale n (images resized to the scale's size, RGB in [-1, 1]):

* generator ``T̃_n = G_n(a_n z_n + T̃_{n+1}↑, T̃_{n+1}↑) = ψ_n(a_n z_n + T̃_{n+1}↑) + T̃_{n+1}↑`` (``T̃_N = ψ_N(z_N)``);
* critic D_n (WGAN-GP) on (grey image, 5-colour k-means palette) pairs: real = ``(T_n, palette(R_n))``, fake =
  ``(grey(T̃_n), palette(T̃_n))``; the palette enters D as 15 constant channels beside the grey channel;
* generator loss ``-D_n(fake) + α_r ‖G_n(a_n z*_n + rec_{n+1}↑, rec_{n+1}↑) - R_n‖² + α_c ‖grey(T̃_n) - T_n‖²`` with
  fixed noise maps ``z*_n`` at every scale (Eq. 4-6), α_r = 10, α_c = 30.

Nothing is learned across images (``card.trainable`` is False). The paper takes the reference from the user; the
harness gives none, so :meth:`TwoImage.fit_start` keeps the run's training split as a pool of colour references and
``colorize`` picks, for each grey image, the pool image whose grey thumbnail is nearest (:func:`grey_thumbnail`:
GRID×GRID area means, standardised per image; squared Euclidean distance; ties to the lowest pool index). It then
trains one pyramid per image (many images at once as grouped convolutions, each seeing only its own target and
reference) and returns the finest-scale image of the fixed noise maps (see the card for why the content loss and
the output use those).
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.core.color import rgb_to_grey
from colorbench.datasets.base import Batch, ImageSet
from colorbench.methods.base import BaseConfig, Method, MethodCard, PresetScale
from colorbench.methods.losses import gradient_penalty
from colorbench.methods.nets.singan import (
    SinGANDiscriminator,
    SinGANGenerator,
    kmeans,
    palette_means,
    pyramid_sizes,
    scale_widths,
)
from colorbench.methods.registry import register_method
from colorbench.methods.trainable import check_grey_input

SEED_TWO_IMAGE = "004_7300e22d32fe07c0.txt"
HA = "Suhyeon Ha, 'Two Unpaired Images Colorization', Chung-Ang University (arXiv / workshop paper), 2020"
SINGAN = "Shaham, Dekel, Michaeli, 'SinGAN: Learning a Generative Model from a Single Natural Image', ICCV 2019"
#: Side of the grey thumbnail that chooses the reference (GRID×GRID area means).
REFERENCE_THUMBNAILS = ("grey", "standardised")
GRID = 8
#: Smallest image side the pyramid accepts (batch norm needs more than one pixel per channel at the coarsest scale).
MIN_SIDE = 4
#: Pool images per chunk when thumbnails and distances are computed (bounds the memory of large pools).
POOL_CHUNK = 1024


@dataclass
class TwoImageConfig(BaseConfig):
    """Options of ``two-image``; the defaults are the ``paper`` preset's except the noise choices (fixed here;
    the paper preset follows Eq. 2 with fresh noise, see the card).

    ``batch_size`` and ``epochs`` (from :class:`BaseConfig`) are unused: nothing is trained across images
    (``epochs`` is 0). All the training below happens inside ``colorize``, once per grey image.

    Attributes:
        iterations: training iterations per scale and per image (paper: 2,000).
        n_blocks: conv blocks of G_n and of D_n (paper: 7).
        width: channels at the coarsest scales (SinGAN: 32), doubled every ``double_every`` scales up to
            ``max_width`` (SinGAN: 4 and 128).
        scale_factor, min_size: the pyramid (paper: r = 0.75; SinGAN: coarsest side 25).
        palette_size: k-means colours of a palette (paper: 5).
        alpha_rec, alpha_content: loss weights α_r, α_c (paper: 10 and 30).
        gp_weight: WGAN-GP weight (SinGAN: 0.1).
        lr, beta1, beta2: Adam of G_n and D_n (paper: lr 5e-4; SinGAN: betas 0.5, 0.999).
        lr_decay_at, lr_decay_gamma: the rates are multiplied by gamma after this fraction of the iterations
            (SinGAN: ×0.1 at 1,600 of 2,000).
        d_steps, g_steps: critic and generator steps per iteration (SinGAN: 3 and 3).
        noise_amp_init: noise amplitude a_n = noise_amp_init · RMSE(R_n, rec_{n+1}↑) below the coarsest scale,
            1 at the coarsest (SinGAN: 0.1).
        warm_start: initialize G_n, D_n from the coarser scale's trained nets when their widths match (SinGAN).
        kmeans_n_init, kmeans_max_iter: seedings and iterations of the reference palettes' k-means.
        fake_palette_iters: Lloyd steps (from the reference palette) that fix the generated image's clusters.
        group_size: images whose pyramids train together as one grouped network (speed only).
        pool_size: colour references kept by ``fit_start``: ``None`` (default) keeps the whole training split;
            ``k`` keeps ``k`` images evenly spaced over the split's order (indices ``round(linspace(0, N - 1, k))``,
            so a split ordered by source keeps every source).
        reference_thumbnail: the descriptor that picks the reference: ``"grey"`` (default: 8×8 area means of the
            grey image) or ``"standardised"`` (each thumbnail shifted to zero mean and unit std, so brightness and
            contrast do not count). Measured on photos (quick, 528 test images): grey thumbnails pick references
            0.015 away in mean grey and give MSE 1554; standardised ones 0.199 and MSE 3159, since the pyramid
            keeps part of the reference's lightness (see the card).
        content_noise: which generated image the content loss (Eq. 6) compares with T_n: ``"fixed"`` (the one
            from the fixed noise maps z*, the default), ``"random"`` (the one from fresh noise) or ``"both"``.
        output_noise: the output is the finest image from the fixed maps z* (``"fixed"``) or from fresh noise
            seeded per image (``"random"``).
    """

    epochs: int = 0
    iterations: int = 2000
    n_blocks: int = 7
    width: int = 32
    double_every: int = 4
    max_width: int = 128
    scale_factor: float = 0.75
    min_size: int = 25
    palette_size: int = 5
    alpha_rec: float = 10.0
    alpha_content: float = 30.0
    gp_weight: float = 0.1
    lr: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.999
    lr_decay_at: float = 0.8
    lr_decay_gamma: float = 0.1
    d_steps: int = 3
    g_steps: int = 3
    noise_amp_init: float = 0.1
    warm_start: bool = True
    kmeans_n_init: int = 4
    kmeans_max_iter: int = 50
    fake_palette_iters: int = 3
    group_size: int = 64
    pool_size: int | None = None
    reference_thumbnail: str = "grey"
    content_noise: str = "fixed"
    output_noise: str = "fixed"

    def __post_init__(self) -> None:
        BaseConfig.__post_init__(self)  # the grey convention, parsed to a Grey
        if self.batch_size < 1 or self.epochs < 0:
            raise ValueError(f"two-image: need batch_size >= 1 and epochs >= 0, got {self.batch_size}, {self.epochs}")
        positive = {"iterations": self.iterations, "width": self.width, "double_every": self.double_every,
                    "max_width": self.max_width, "min_size": self.min_size, "palette_size": self.palette_size,
                    "d_steps": self.d_steps, "g_steps": self.g_steps, "kmeans_n_init": self.kmeans_n_init,
                    "kmeans_max_iter": self.kmeans_max_iter, "group_size": self.group_size}
        if self.pool_size is not None:
            positive["pool_size"] = self.pool_size
        bad = {k: v for k, v in positive.items() if v < 1}
        if bad:
            raise ValueError(f"two-image: these options must be >= 1: {bad}")
        if self.n_blocks < 2:
            raise ValueError(f"two-image: n_blocks must be >= 2 (head and tail convs), got {self.n_blocks}")
        if not 0.0 < self.scale_factor < 1.0:
            raise ValueError(f"two-image: scale_factor must be in (0, 1), got {self.scale_factor}")
        if min(self.alpha_rec, self.alpha_content, self.gp_weight, self.noise_amp_init) < 0:
            raise ValueError("two-image: loss weights, gp_weight and noise_amp_init must be >= 0")
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"two-image: need lr > 0 and betas in [0, 1), got lr={self.lr}, betas=({self.beta1}, {self.beta2})")
        if not 0.0 <= self.lr_decay_at <= 1.0 or not 0.0 < self.lr_decay_gamma <= 1.0:
            raise ValueError(f"two-image: need lr_decay_at in [0, 1] and lr_decay_gamma in (0, 1], got "
                             f"{self.lr_decay_at}, {self.lr_decay_gamma}")
        if self.reference_thumbnail not in REFERENCE_THUMBNAILS:
            raise ValueError(f"two-image: reference_thumbnail must be one of {REFERENCE_THUMBNAILS}, "
                             f"got {self.reference_thumbnail!r}")
        if self.content_noise not in ("fixed", "random", "both") or self.output_noise not in ("fixed", "random"):
            raise ValueError(f"two-image: content_noise must be 'fixed', 'random' or 'both' and output_noise 'fixed' or "
                             f"'random', got {self.content_noise!r}, {self.output_noise!r}")
        if self.fake_palette_iters < 0:
            raise ValueError(f"two-image: fake_palette_iters must be >= 0, got {self.fake_palette_iters}")


# --- per-image seeds -----------------------------------------------------------------------------------------------
def image_seed(seed: int, gray: Tensor, tag: str) -> int:
    """A 63-bit seed from the method seed, a tag and the exact float32 pixels of one grey image ``(1, H, W)``, so
    an image gets the same noise wherever it sits in a batch."""
    h = hashlib.blake2b(digest_size=8)
    h.update(struct.pack("<q", seed))
    h.update(tag.encode())
    h.update(gray.detach().float().cpu().contiguous().numpy().tobytes())
    return int.from_bytes(h.digest(), "little") & (2**63 - 1)


def _draw(generators: Sequence[torch.Generator], shape: tuple[int, ...], device: torch.device) -> Tensor:
    """One standard-normal tensor of ``shape`` per image, each from its own generator -> ``(B, *shape)``."""
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def _resize(x: Tensor, size: tuple[int, int]) -> Tensor:
    """Bicubic resize (anti-aliased when shrinking), as SinGAN's imresize; identity at the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2] or size[1] < x.shape[-1]
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=shrink)


def _per_image_mse(a: Tensor, b: Tensor) -> Tensor:
    return ((a - b) ** 2).flatten(1).mean(1)


# --- the pyramid -----------------------------------------------------------------------------------------------------
@dataclass
class Pyramid:
    """The trained pyramids of a group of images (coarsest scale first)."""

    sizes: list[tuple[int, int]]
    generators: list[SinGANGenerator]
    noise_amps: list[Tensor]  # (B,) per scale
    z_star: list[Tensor]  # the fixed noise maps
    history: list[dict[str, float]]  # per scale: the mean over images of the last iteration's losses

    def generate(self, noise_generators: Sequence[torch.Generator] | None, device: torch.device, upto: int | None = None) -> Tensor:
        """A sample ``(B, 3, h, w)`` in [-1, 1]-ish from scale N down to scale ``upto`` (default: the finest),
        with each image's noise maps from its own generator. No gradient; generators in eval mode."""
        stop = len(self.sizes) if upto is None else upto
        x = None
        with torch.no_grad():
            for n in range(stop):
                size = self.sizes[n]
                prev = torch.zeros_like(self.z_star[n]) if x is None else _resize(x, size)
                z = self.z_star[n] if noise_generators is None else _draw(noise_generators, (3, *size), device)
                x = self.generators[n](self.noise_amps[n].view(-1, 1, 1, 1) * z, prev)
        return x


def pyramid_parameter_counts(config: TwoImageConfig, height: int, width: int) -> dict[str, Any]:
    """Scale sizes, widths and per-image parameter counts of G_n and D_n for an ``height``×``width`` target."""
    sizes = pyramid_sizes(height, width, config.min_size, config.scale_factor)
    widths = scale_widths(len(sizes), config.width, config.double_every, config.max_width)
    d_in = 1 + 3 * config.palette_size
    g = [SinGANGenerator(1, w, config.n_blocks).parameters_per_image() for w in widths]
    d = [SinGANDiscriminator(1, d_in, w, config.n_blocks).parameters_per_image() for w in widths]
    return {"sizes": sizes, "widths": widths, "G_per_scale": g, "D_per_scale": d, "G_total": sum(g), "D_total": sum(d)}


class _PyramidTrainer:
    """Trains the pyramids of one group of images (see the module docstring for the objective)."""

    def __init__(self, config: TwoImageConfig, convention: str, device: torch.device) -> None:
        self.c, self.convention, self.device = config, convention, device

    def grey(self, rgb: Tensor) -> Tensor:
        """Grey of an RGB image in [-1, 1] under the run's convention, in [-1, 1] (BT.601 is linear: no clamp)."""
        if self.convention == "bt601":
            return rgb_to_grey(rgb, "bt601")
        return rgb_to_grey(((rgb + 1) / 2).clamp(0, 1), self.convention) * 2 - 1

    def critic_input(self, grey: Tensor, palette: Tensor) -> Tensor:
        """``(B, 1, h, w)`` grey and ``(B, K, 3)`` palette -> ``(B, 1 + 3K, h, w)`` (palette as constant channels)."""
        b, _, h, w = grey.shape
        return torch.cat([grey, palette.reshape(b, -1, 1, 1).expand(-1, -1, h, w)], dim=1)

    def fake_palette(self, rgb: Tensor, ref_palette: Tensor) -> Tensor:
        return palette_means(rgb.flatten(2).transpose(1, 2), ref_palette, self.c.fake_palette_iters)

    def train(self, grey01: Tensor, ref01: Tensor, gens: Sequence[torch.Generator]) -> Pyramid:
        c, dev = self.c, self.device
        b, _, height, width = grey01.shape
        sizes = pyramid_sizes(height, width, c.min_size, c.scale_factor)[::-1]  # coarsest first
        widths = scale_widths(len(sizes), c.width, c.double_every, c.max_width)[::-1]
        target = grey01 * 2 - 1
        ref = _resize(ref01, (height, width)).clamp(0, 1) * 2 - 1
        pyramid = Pyramid(sizes=sizes, generators=[], noise_amps=[], z_star=[], history=[])
        rec = None  # the reconstruction path (fixed noise maps z*) of the coarser scales
        G_prev = D_prev = None
        for n, (size, w) in enumerate(zip(sizes, widths)):
            T_n = _resize(target, size).clamp(-1, 1)
            R_n = _resize(ref, size).clamp(-1, 1)
            palette_R, _, _ = kmeans(R_n.flatten(2).transpose(1, 2), c.palette_size, gens, c.kmeans_n_init, c.kmeans_max_iter)
            G = SinGANGenerator(b, w, c.n_blocks).to(dev)
            D = SinGANDiscriminator(b, 1 + 3 * c.palette_size, w, c.n_blocks).to(dev)
            if c.warm_start and G_prev is not None and G_prev.width == w:
                G.load_state_dict(G_prev.state_dict())
                D.load_state_dict(D_prev.state_dict())
            else:
                G.init_per_image(gens)
                D.init_per_image(gens)
            z_star = _draw(gens, (3, *size), dev)
            if rec is None:
                rec_prev = torch.zeros(b, 3, *size, device=dev)
                amp = torch.ones(b, device=dev)
            else:
                rec_prev = _resize(rec, size)
                amp = c.noise_amp_init * _per_image_mse(R_n, rec_prev).sqrt()
            a4 = amp.view(-1, 1, 1, 1)
            opt_g = torch.optim.Adam(G.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
            opt_d = torch.optim.Adam(D.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))
            decay_at = int(round(c.iterations * c.lr_decay_at))
            real_in = self.critic_input(T_n, palette_R)
            losses: dict[str, Tensor] = {}
            for it in range(c.iterations):
                if it == decay_at and c.lr_decay_gamma != 1.0:
                    for opt in (opt_g, opt_d):
                        for group in opt.param_groups:
                            group["lr"] *= c.lr_decay_gamma
                z = _draw(gens, (3, *size), dev)
                for _ in range(c.d_steps):
                    if n == 0:
                        prev = torch.zeros(b, 3, *size, device=dev)
                    else:  # a fresh random sample of the frozen coarser scales, as SinGAN's draw_concat('rand')
                        prev = _resize(pyramid.generate(gens, dev, upto=n), size)
                    with torch.no_grad():
                        fake = G(a4 * z, prev)
                        fake_in = self.critic_input(self.grey(fake), self.fake_palette(fake, palette_R))
                    d_real = D(real_in).flatten(1).mean(1)
                    d_fake = D(fake_in).flatten(1).mean(1)
                    alpha = torch.stack([torch.rand((), generator=g) for g in gens])
                    gp = gradient_penalty(D, real_in, fake_in, c.gp_weight, alpha=alpha, norm_over="pixel",
                                          reduction="none")
                    opt_d.zero_grad(set_to_none=True)
                    (d_fake - d_real + gp).sum().backward()
                    opt_d.step()
                D.requires_grad_(False)
                for _ in range(c.g_steps):
                    fake = G(a4 * z, prev)
                    grey_fake = self.grey(fake)
                    adv = -D(self.critic_input(grey_fake, self.fake_palette(fake, palette_R))).flatten(1).mean(1)
                    rec_out = G(a4 * z_star + rec_prev, rec_prev)
                    content = _per_image_mse(self.grey(rec_out) if c.content_noise == "fixed" else grey_fake, T_n)
                    if c.content_noise == "both":
                        content = 0.5 * (content + _per_image_mse(self.grey(rec_out), T_n))
                    rec_loss = _per_image_mse(rec_out, R_n)
                    opt_g.zero_grad(set_to_none=True)
                    (adv + c.alpha_rec * rec_loss + c.alpha_content * content).sum().backward()
                    opt_g.step()
                D.requires_grad_(True)
                if it == c.iterations - 1:
                    losses = {"D_real": d_real.mean(), "D_fake": d_fake.mean(), "gp": gp.mean(), "G_adv": adv.mean(),
                              "rec": rec_loss.mean(), "content": content.mean()}
            history = {k: float(v.detach()) for k, v in losses.items()}
            bad = {k: v for k, v in history.items() if not math.isfinite(v)}
            if bad:
                raise FloatingPointError(f"two-image: non-finite loss {bad} at scale {n} ({size[0]}×{size[1]}) of a "
                                         f"per-image pyramid; lower lr or check the input")
            G.eval()
            G.requires_grad_(False)
            with torch.no_grad():
                rec = G(a4 * z_star + rec_prev, rec_prev)
            pyramid.generators.append(G)
            pyramid.noise_amps.append(amp)
            pyramid.z_star.append(z_star)
            pyramid.history.append({"size": size, "width": w, **history})
            G_prev, D_prev = G, D
        return pyramid


# --- reference choice ----------------------------------------------------------------------------------------------
def grey_thumbnail(grey01: Tensor, grid: int = GRID, standardise: bool = False) -> Tensor:
    """The descriptor that chooses a reference: ``(B, 1, H, W)`` grey -> ``(B, grid²)``.

    Adaptive average pooling to ``grid``×``grid`` (exact area means when the sides are multiples of ``grid``). With
    ``standardise``, each thumbnail is then shifted to zero mean and scaled to unit (population) standard
    deviation, so a global change of brightness or contrast does not change it; a flat thumbnail (std < 1e-6)
    becomes all zeros.
    """
    t = F.adaptive_avg_pool2d(grey01.float(), grid).flatten(1)
    if not standardise:
        return t
    t = t - t.mean(dim=1, keepdim=True)
    std = t.pow(2).mean(dim=1, keepdim=True).sqrt()
    return torch.where(std > 1e-6, t / std.clamp_min(1e-6), torch.zeros_like(t))


def nearest_thumbnails(queries: Tensor, keys: Tensor, chunk: int = POOL_CHUNK) -> Tensor:
    """Index of the nearest key of each query by squared Euclidean distance, ties to the lowest index:
    ``(N, D), (P, D) -> (N,)``. Differences are summed pair by pair (not via a matrix product), so a query's
    distances do not depend on the other queries and equal thumbnails are exactly at distance 0."""
    dist = torch.cat([(queries[:, None, :] - keys[None, start : start + chunk, :]).pow(2).sum(-1)
                      for start in range(0, keys.shape[0], chunk)], dim=1)
    return dist.argmin(dim=1)  # torch returns the first index of the minimum


_CHOICES = (
    "Harness protocol (not in the paper): the paper takes the reference from the user; the harness picks the "
    "training image whose grey thumbnail is closest. fit_start(train) keeps the run's training split as the pool "
    "of colour references (uint8, on the CPU; all of it by default, or pool_size images evenly spaced over the "
    "split's order; test images are never in it; for unpaired runs too, the whole split, not only domain B: "
    "the pool is the harness's stand-in for the user, and no test image can leak into it). For each grey image, "
    "the reference is its nearest neighbour among the pool images' grey versions (the run's grey convention) on "
    "an 8×8 area-mean thumbnail (reference_thumbnail='grey'; 'standardised' removes each thumbnail's mean and "
    "std first): squared Euclidean distance, ties to the lowest pool index. Both rules were run once on photos "
    "(quick): the plain thumbnail picks references closer in brightness (mean grey 0.015 vs 0.199 away) and "
    "halves the MSE (1554 vs 3159), because the pyramid keeps part of the reference's lightness; it is the "
    "default, and the simpler rule. No learning: "
    "card.trainable is False, train_step does nothing, and colorize before fit_start is an error.",
    "Parameters: no network outlives a colorize call, so networks() and parameter_counts() are empty (as for "
    "the grey baseline); the per-image pyramid's scales, widths and G/D parameter counts at the pool's image size "
    "are in notes() (the record's config.notes). Checkpoints (state_dict) carry the pool (uint8) and the seed, so "
    "a loaded method colorizes as the saved one; the runner saves none for non-trainable methods.",
    "colorize trains one pyramid per grey image from scratch (nothing carried between images) on (T, its "
    "reference), and returns its finest-scale image. Pyramids of up to group_size images train at once "
    "as grouped convolutions (groups = images): image i only meets its own weights, its own target and reference, "
    "per-image batch-norm statistics, and its own loss gradient (losses are summed over images; Adam is "
    "element-wise), so only float summation order depends on the batch. Measured (quick, 6 synthetic test "
    "images): alone vs inside a batch the outputs differ by 6e-8 after 2 iterations per scale, but the GAN "
    "dynamics amplify that rounding: up to 2e-5 after 5 iterations, 6e-3 after the quick preset's 10, 0.06 "
    "after 20 (one image). Results are exactly reproducible for the same batches (the runner's are fixed).",
    "Randomness per image: every draw of an image (weights, z*, noise maps, GP mixing weights, k-means seeding) "
    "comes from a torch generator seeded by a hash of (method seed, the image's exact float32 grey pixels), so a "
    "draw does not depend on the batch the image is in, and the global RNG is untouched. colorize is deterministic for a "
    "fixed seed, so card.stochastic is False (no sample(); a different seed gives a different colorization).",
    "Pyramid (SinGAN): N = ceil(log(min_size / min(H, W)) / log r) scales below the image with r adjusted to "
    "(min_size / min(H, W))^(1/N) so the coarsest shorter side is min_size = 25; r = 0.75 (paper); no max-size cap "
    "(the finest scale is the input size). 32×32 images give 2 scales (25, 32). Images are resized with bicubic "
    "interpolation (anti-aliased when shrinking), the coarser output is up-sampled bicubically.",
    "Networks per scale: n_blocks = 7 convs (paper: '7 conv-blocks'): 6 × Conv3×3-BN-LeakyReLU(0.2) and a final "
    "3×3 conv (Tanh in G), zero padding 1 per conv (SinGAN pads the input once instead). The paper's '11×11 "
    "patch' is SinGAN's 5-conv receptive field; 7 convs see 15×15 (n_blocks = 5 gives 11×11). Widths: 32, "
    "doubled every 4 scales from the coarsest, at most 128 (SinGAN). Init: N(0, 0.02) convs, N(1, 0.02) BN "
    "weights, zero biases; the convs before BN have no bias (SinGAN's do: redundant under BN, and Adam turned their "
    "rounding-level gradients into ±lr steps that made outputs depend on the batch by up to 0.03). Per image and "
    "scale at width 32, 7 blocks: G 48,195 and D 51,361 parameters. G_n and D_n start from the coarser scale's trained nets when widths match (SinGAN).",
    "Generator: Eq. 3 as printed is garbled; SinGAN's residual form is used: T̃_n = ψ_n(a_n z_n + T̃_{n+1}↑) + "
    "T̃_{n+1}↑, T̃_N = ψ_N(z_N) with 3-channel white noise (paper). Noise amplitude a_N = 1, a_n = 0.1 · RMSE(R_n, "
    "rec_{n+1}↑) (SinGAN, with the reference as the image being reconstructed). Training samples the coarser "
    "frozen scales with fresh noise at every critic step (SinGAN's draw_concat 'rand'); the noise of scale n is "
    "drawn once per iteration.",
    "Critic input (paper: '(grey, colour palette)' pairs): the grey image plus the palette's 5 RGB colours "
    "([-1, 1]) broadcast as 15 constant channels (16 input channels). Real: (T_n, palette of R_n); fake: (grey of "
    "T̃_n, palette of T̃_n). Palettes: k-means (k = 5, RGB) written in torch (batched, per-image seeded "
    "k-means++, best of 4 seedings by inertia, Lloyd to convergence, at most 50 iterations), sorted by cluster "
    "size; it matches scikit-learn's KMeans centres in the tests. The fake palette is differentiable: 3 Lloyd "
    "steps started from the reference palette fix hard assignments without gradient, and each colour is the mean "
    "of its assigned generated pixels, so gradients flow to the pixels through the means; starting from the "
    "reference palette keeps colour i of both palettes in correspondence (an empty cluster keeps the reference "
    "colour, without gradient).",
    "Losses (Eq. 4-6): WGAN-GP with SinGAN's penalty (λ = 0.1, gradient normed over channels per pixel, one "
    "mixing weight per image); reconstruction α_r = 10 · MSE(G_n(a_n z*_n + rec_{n+1}↑, rec_{n+1}↑), R_n) with "
    "fixed noise maps z*_n at every scale (paper, unlike SinGAN's zeros below the coarsest); content α_c = 30 · "
    "MSE(grey(T̃_n), T_n) with the run's grey convention (BT.601 luma is linear in RGB). The paper writes ‖·‖², "
    "taken as the mean squared error as in SinGAN.",
    "Optimization: Adam lr 5e-4 (paper), betas (0.5, 0.999), 3 critic and 3 generator steps per iteration, rates "
    "×0.1 after 80 % of the iterations (SinGAN: milestone 1,600 of 2,000), 2,000 iterations per scale (paper). "
    "Each generator step recomputes the fake with the current G (SinGAN's code reuses the first step's fake). "
    "After its scale, G_n is frozen in eval mode (batch-norm running statistics), as SinGAN.",
    "Which image the content loss and the output use (the paper is ambiguous): Eq. 6 compares T_n with 'the "
    "generated image' T̃_n, and Eq. 2 generates T̃_n from fresh noise, but a fully convolutional G fed only white "
    "noise (at the coarsest scale) or an up-sampled random sample cannot place T's structure: measured on 16 photos "
    "test images (quick widths, 100 iterations per scale, lr 2e-3) the content MSE stalled at 0.066-0.079 and the "
    "output's BT.601 grey was 0.09 from the input on average. The fixed maps z* do carry position, and the paper "
    "says they give 'globally similar but locally different structures'. The paper preset follows Eq. 2 and 6 as "
    "written: content_noise = 'random', output_noise = 'random' (the content loss and the output on a fresh-noise "
    "sample T̃_n). The measured alternative is the overlay preset 'fixed-noise' (content_noise = output_noise = "
    "'fixed', also the quick preset's): the content loss is on the reconstruction-path image G_n(a_n z*_n + rec↑, "
    "rec↑), which is then fitted to R_n in colour (α_r = 10) and to T_n in grey (α_c = 30), and the output is that "
    "path's finest image: mean grey error 0.040 in the same measurement. With these weights the optimum moves the grey only "
    "≈ 57 % of the way from R's grey to T's (10‖δ‖² + 30(g(R) + w·δ - T)² with ‖w‖² = 0.447 for BT.601), so the "
    "output keeps T's structure only partly; no lightness is pasted back. 'random'/'both' are options.",
    "Output: the finest image clipped to [-1, 1] and mapped to [0, 1] RGB.",
    "Quick preset (CPU, 32×32; measured on the 528 photos test images, quiet 2-core machine: 61 ms per image "
    "on 1 torch thread, 35 ms on 2): 2 scales (25, 32), width 8, n_blocks 3, 10 "
    "iterations per scale with 1 critic and 1 generator step, lr 5e-3 (10× the paper's, so that 10 iterations "
    "move the nets: at 5e-4 the grey error after 20 iterations was 0.10 vs 0.05 at 2e-3), k-means with 2 "
    "seedings and 1 Lloyd step for the fake palette; everything else as the paper. This is far from converged "
    "(the paper trains 2,000 iterations per scale).",
)


@register_method("two-image", aliases=("two-unpaired-images", "ha2020"))
class TwoImage(Method):
    """Two Unpaired Images Colorization (see the module docstring).

    ``fit_start`` keeps the training split as the pool of colour references; ``colorize`` picks one reference per
    grey image (:meth:`references_for`) and trains one pyramid per image (test-time optimization). Nothing is
    learned across images: ``train_step`` does nothing and returns ``{}``, :meth:`networks` is empty.
    """

    card: ClassVar[MethodCard] = MethodCard(
        name="two-image",
        title="Two unpaired images: per-image SinGAN pyramid, WGAN-GP on (grey, k-means palette), one reference",
        paper=HA + "; networks and training details from " + SINGAN,
        source=SEED_TWO_IMAGE,
        paired=False,
        color_space="rgb",
        trainable=False,
        choices=_CHOICES,
    )
    Config: ClassVar[type] = TwoImageConfig
    preset_scales: ClassVar[dict[str, PresetScale]] = {
        "paper": PresetScale({}, "Ha 2020 gives no image size; the pyramid adapts to each image (SinGAN)", any_size=True),
    }
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {"content_noise": "random", "output_noise": "random"},
        "fixed-noise": {"content_noise": "fixed", "output_noise": "fixed"},
        "quick": {"iterations": 10, "lr": 5e-3, "width": 8, "n_blocks": 3, "d_steps": 1, "g_steps": 1,
                  "kmeans_n_init": 2, "fake_palette_iters": 1},
    }

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__(config, device, seed)
        self._pool: Tensor | None = None  # (P, 3, H, W) uint8 on the CPU
        self._pool_ids: list[str] = []
        self._pool_keys: Tensor | None = None  # (P, GRID²) float32 grey thumbnails of the pool

    def networks(self) -> dict[str, nn.Module]:
        return {}

    def train_step(self, batch: Batch) -> dict[str, float]:
        """Nothing to learn across images: returns ``{}``."""
        return {}

    # --- the reference pool -------------------------------------------------------------------------------------
    @property
    def pool_size(self) -> int:
        """Colour references held (0 before :meth:`fit_start`)."""
        return len(self._pool_ids)

    @staticmethod
    def pool_indices(n: int, pool_size: int | None) -> Tensor:
        """Indices of the training images kept: all ``n``, or ``pool_size`` evenly spaced ones
        (``round(linspace(0, n - 1, pool_size))``, distinct because the step is at least 1)."""
        if pool_size is None or pool_size >= n:
            return torch.arange(n)
        return torch.linspace(0, n - 1, pool_size, dtype=torch.float64).round().long()

    def fit_start(self, train: ImageSet) -> None:
        """Keep the colour references (see :meth:`pool_indices`) and their grey thumbnails; replaces any pool."""
        if not isinstance(train, ImageSet):
            raise TypeError(f"two-image.fit_start: expected an ImageSet (the training split), got {type(train).__name__}")
        if len(train) == 0:
            raise ValueError("two-image.fit_start: the training split is empty; colorize needs at least one colour reference")
        idx = self.pool_indices(len(train), self.config.pool_size)
        rgb = train.rgb if len(idx) == len(train) else train.rgb[idx]  # the whole split: no copy
        self._set_pool(rgb.cpu(), [train.ids[i] for i in idx.tolist()])

    def _set_pool(self, rgb: Tensor, ids: list[str]) -> None:
        if rgb.dtype != torch.uint8 or rgb.dim() != 4 or rgb.shape[1] != 3 or rgb.shape[0] != len(ids):
            raise ValueError(f"two-image: a reference pool is uint8 (P, 3, H, W) with P ids, got {rgb.dtype} "
                             f"{tuple(rgb.shape)} and {len(ids)} ids")
        conv = self.config.grey_convention
        std = self.config.reference_thumbnail == "standardised"
        keys = [grey_thumbnail(rgb_to_grey(rgb[s : s + POOL_CHUNK].float() / 255.0, conv), standardise=std)
                for s in range(0, rgb.shape[0], POOL_CHUNK)]
        self._pool, self._pool_ids, self._pool_keys = rgb, list(ids), torch.cat(keys)

    def _require_pool(self) -> None:
        if self._pool is None or not self.pool_size:
            raise RuntimeError("two-image has no colour references: call fit_start(train_imageset) before colorize "
                               "(the runner does this with the training split); the pool of references comes from it")

    def references_for(self, gray: Tensor) -> Tensor:
        """Pool index of the reference chosen for each grey image ``(N, 1, H, W)`` in [0, 1] -> ``(N,)`` (CPU):
        the nearest grey thumbnail (:func:`grey_thumbnail`, :func:`nearest_thumbnails`)."""
        self._require_pool()
        with torch.no_grad():
            std = self.config.reference_thumbnail == "standardised"
            return nearest_thumbnails(grey_thumbnail(gray.detach().cpu(), standardise=std), self._pool_keys)

    def reference_ids(self, gray: Tensor) -> list[str]:
        """Ids (in the training split) of the references chosen for ``gray``."""
        return [self._pool_ids[i] for i in self.references_for(gray).tolist()]

    # --- colorization ----------------------------------------------------------------------------------------------
    def predict(self, gray: Tensor) -> Tensor:
        """For each image, one pyramid trained on it and its reference; its finest-scale image in [0, 1]."""
        dev, c = self.device, self.config
        gray = gray.to(dev).float()
        refs = self.references_for(gray)
        trainer = _PyramidTrainer(c, c.grey_convention, dev)
        out = torch.empty(gray.shape[0], 3, *gray.shape[-2:], device=dev)
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():  # module construction draws from the global RNG
            for start in range(0, gray.shape[0], c.group_size):
                g = gray[start : start + c.group_size]
                ref = self._pool[refs[start : start + c.group_size]].to(dev).float() / 255
                gens = [torch.Generator().manual_seed(image_seed(self.seed, x, "train")) for x in g]
                pyramid = trainer.train(g, ref, gens)
                noise = None
                if c.output_noise == "random":
                    noise = [torch.Generator().manual_seed(image_seed(self.seed, x, "output")) for x in g]
                out[start : start + len(g)] = (pyramid.generate(noise, dev).clamp(-1, 1) + 1) / 2
        return out

    def colorize(self, gray: Tensor) -> Tensor:
        """Train one pyramid per grey image (against its reference) and return its finest-scale image,
        ``(N, 3, H, W)`` float32 in [0, 1] on the input's device. Leaves the method and the global RNG unchanged."""
        who = f"{self.card.name}.colorize"
        check_grey_input(gray, who)
        h, w = gray.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise ValueError(f"{who}: images must be at least {MIN_SIDE}×{MIN_SIDE}, got {h}×{w}")
        self._require_pool()
        return self.predict(gray).detach().to(gray.device)

    # --- bookkeeping ---------------------------------------------------------------------------------------------
    def notes(self) -> dict[str, Any]:
        rule = ("the whole training split" if self.config.pool_size is None else
                f"{self.config.pool_size} training images evenly spaced over the split (round(linspace(0, N - 1, k)))")
        notes: dict[str, Any] = {"reference_pool_images": self.pool_size, "reference_pool_rule": rule,
                                 "reference_descriptor": f"{GRID}x{GRID} grey thumbnail"
                                 + (", standardised per image" if self.config.reference_thumbnail == "standardised" else "")}
        if self._pool is not None and self.pool_size:
            h, w = self._pool.shape[-2:]
            notes["pyramid_for_pool_image_size"] = pyramid_parameter_counts(self.config, int(h), int(w))
        return notes

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the reference pool (uint8 images and ids: data, not parameters) and the seed that
        seeds every per-image pyramid. The pool's thumbnails are recomputed on load."""
        state = super().state_dict()
        state["pool"] = None if self._pool is None else {"rgb": self._pool.clone(), "ids": list(self._pool_ids)}
        state["colorize_seed"] = self.seed
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        pool = state.get("pool")
        if pool is None:
            self._pool, self._pool_ids, self._pool_keys = None, [], None
        else:
            self._set_pool(pool["rgb"].clone(), list(pool["ids"]))
        if "colorize_seed" in state:
            self.seed = int(state["colorize_seed"])
