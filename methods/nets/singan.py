"""SinGAN-style single-scale networks (Shaham et al., ICCV 2019), batched over independent images, plus the
pyramid-size rule and a small batched k-means for colour palettes.

Per-image test-time methods (``two-image``) train one generator/discriminator pair per scale *per image*. To train
the pyramids of many images at once without mixing them, :class:`GroupedConvNet` holds ``n_images`` independent
networks as one network of grouped convolutions (``groups = n_images``): image ``i`` is a block of channels that
only meets its own weights. Batch norm over a ``(1, n_images·C, H, W)`` tensor normalizes each channel of each image
over that image's pixels, which is SinGAN's batch norm with its batch of one image. Losses summed over images give
each image's parameters exactly the gradient of its own loss, and Adam is element-wise, so training the group is
training each image alone (up to floating-point summation order).

The k-means here is written by hand (not scikit-learn) because it has to run on torch tensors, batched over
images, with per-image seeded generators, and its cluster means have to carry gradients back to the pixels
(:func:`palette_means`); ``tests/test_two_image.py`` checks its centres against ``sklearn.cluster.KMeans``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

#: LeakyReLU slope of SinGAN's conv blocks.
LRELU_SLOPE = 0.2


def pyramid_sizes(height: int, width: int, min_size: int, scale_factor: float) -> list[tuple[int, int]]:
    """Image sizes of a SinGAN pyramid, finest (scale 0, the image itself) to coarsest (scale N).

    SinGAN's rule without its ``max_size`` cap: ``N = ceil(log(min_size / min(H, W)) / log(r))`` scales below the
    image, and the factor is then adjusted to ``r' = (min_size / min(H, W)) ** (1 / N)`` so that the coarsest
    image's shorter side is ``min_size`` exactly. Sizes are ``round(side · r'^n)``. An image whose shorter side is
    at most ``min_size`` gets a single scale.

    Raises:
        ValueError: for a factor outside (0, 1), ``min_size < 1`` or an empty image.
    """
    if not 0.0 < scale_factor < 1.0:
        raise ValueError(f"pyramid_sizes: scale_factor must be in (0, 1), got {scale_factor}")
    if min_size < 1 or height < 1 or width < 1:
        raise ValueError(f"pyramid_sizes: need min_size >= 1 and a non-empty image, got min_size={min_size}, {height}×{width}")
    short = min(height, width)
    if short <= min_size:
        return [(height, width)]
    n = math.ceil(math.log(min_size / short) / math.log(scale_factor) - 1e-9)
    r = (min_size / short) ** (1.0 / n)
    return [(max(1, round(height * r**k)), max(1, round(width * r**k))) for k in range(n + 1)]


def scale_widths(n_scales: int, base: int = 32, double_every: int = 4, max_width: int = 128) -> list[int]:
    """Channel width of each scale, finest first: SinGAN's ``min(nfc · 2^floor(s / 4), 128)`` where ``s`` counts
    scales from the coarsest (s = 0)."""
    return [min(base * 2 ** ((n_scales - 1 - k) // double_every), max_width) for k in range(n_scales)]


class GroupedConvNet(nn.Module):
    """``n_images`` independent SinGAN conv stacks run as one grouped network.

    Layers (per image): ``n_blocks - 1`` blocks of Conv(3×3, padding 1)-BatchNorm-LeakyReLU(0.2) of width ``width``
    (the first maps ``in_channels`` to ``width``), then a 3×3 conv to ``out_channels`` (with Tanh if ``tanh``):
    ``n_blocks`` convs in all, receptive field ``2 · n_blocks + 1`` pixels. This is SinGAN's head / body / tail
    with a constant width (SinGAN halves the body width only when the width is above its minimum of 32).

    The convs before batch norm have no bias (SinGAN's do): the norm's shift makes it redundant, its gradient is
    zero up to rounding, and Adam's first steps turn that rounding noise into ±lr moves, which then leak into
    eval-mode outputs through the running statistics and made results depend on the batch.

    Input and output are ``(n_images, C, H, W)``.
    """

    def __init__(self, n_images: int, in_channels: int, width: int, out_channels: int, n_blocks: int, tanh: bool) -> None:
        super().__init__()
        if n_images < 1 or in_channels < 1 or width < 1 or out_channels < 1:
            raise ValueError(f"GroupedConvNet: bad sizes n_images={n_images}, in={in_channels}, width={width}, out={out_channels}")
        if n_blocks < 2:
            raise ValueError(f"GroupedConvNet: n_blocks must be >= 2 (a head and a tail conv), got {n_blocks}")
        self.n_images, self.in_channels, self.out_channels = n_images, in_channels, out_channels
        self.n_blocks, self.width = n_blocks, width
        layers: list[nn.Module] = []
        c_in = in_channels
        for _ in range(n_blocks - 1):
            layers += [
                nn.Conv2d(n_images * c_in, n_images * width, 3, padding=1, groups=n_images, bias=False),
                nn.BatchNorm2d(n_images * width),
                nn.LeakyReLU(LRELU_SLOPE),
            ]
            c_in = width
        layers.append(nn.Conv2d(n_images * c_in, n_images * out_channels, 3, padding=1, groups=n_images))
        if tanh:
            layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    @property
    def receptive_field(self) -> int:
        return 2 * self.n_blocks + 1

    def init_per_image(self, generators: Sequence[torch.Generator], std: float = 0.02) -> None:
        """SinGAN's init, each image's slice from its own generator: conv weights N(0, std²), batch-norm weights
        N(1, std²); biases 0 (SinGAN leaves the tail conv's bias at torch's default; zero keeps the draw per image)."""
        if len(generators) != self.n_images:
            raise ValueError(f"init_per_image: {len(generators)} generators for {self.n_images} images")
        with torch.no_grad():
            for m in self.body:
                if isinstance(m, (nn.Conv2d, nn.BatchNorm2d)):
                    mean = 0.0 if isinstance(m, nn.Conv2d) else 1.0
                    per = m.weight.shape[0] // self.n_images
                    for i, g in enumerate(generators):
                        chunk = torch.empty(per, *m.weight.shape[1:]).normal_(mean, std, generator=g)
                        m.weight[i * per : (i + 1) * per] = chunk.to(m.weight)
                    if m.bias is not None:
                        m.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        if n != self.n_images or c != self.in_channels:
            raise ValueError(f"GroupedConvNet expects ({self.n_images}, {self.in_channels}, H, W), got {tuple(x.shape)}")
        return self.body(x.reshape(1, n * c, h, w)).reshape(n, self.out_channels, h, w)

    def parameters_per_image(self) -> int:
        return sum(p.numel() for p in self.parameters()) // self.n_images


class SinGANGenerator(GroupedConvNet):
    """SinGAN's residual generator at one scale: ``G(z, x↑) = ψ(z + x↑) + x↑`` with ψ a Tanh-ended conv stack;
    ``z`` is the (amplitude-scaled) noise, ``x↑`` the up-sampled output of the coarser scale (zeros at the
    coarsest)."""

    def __init__(self, n_images: int, width: int, n_blocks: int, channels: int = 3) -> None:
        super().__init__(n_images, channels, width, channels, n_blocks, tanh=True)

    def forward(self, noise: Tensor, prev: Tensor) -> Tensor:  # type: ignore[override]
        return super().forward(noise + prev) + prev


class SinGANDiscriminator(GroupedConvNet):
    """SinGAN's Markovian (patch) critic at one scale: a conv stack ending in a 1-channel score map (no Tanh)."""

    def __init__(self, n_images: int, in_channels: int, width: int, n_blocks: int) -> None:
        super().__init__(n_images, in_channels, width, 1, n_blocks, tanh=False)


# --- k-means palettes -------------------------------------------------------------------------------------------
def _assign(pixels: Tensor, centres: Tensor) -> Tensor:
    """Index of the nearest centre of each pixel: ``(B, P, C), (B, K, C) -> (B, P)``."""
    # ||x - c||² = ||x||² - 2 x·c + ||c||²; ||x||² is the same for every centre, so it is left out of the argmin
    return ((centres * centres).sum(-1).unsqueeze(1) - 2 * pixels @ centres.transpose(1, 2)).argmin(dim=2)


def _means(pixels: Tensor, labels: Tensor, fallback: Tensor) -> tuple[Tensor, Tensor]:
    """Cluster means and counts; an empty cluster keeps its ``fallback`` centre. Differentiable w.r.t. pixels."""
    k = fallback.shape[1]
    onehot = (labels.unsqueeze(-1) == torch.arange(k, device=labels.device)).to(pixels.dtype)  # (B, P, K)
    counts = onehot.sum(dim=1)  # (B, K)
    sums = onehot.transpose(1, 2) @ pixels  # (B, K, C)
    means = sums / counts.clamp(min=1).unsqueeze(-1)
    return torch.where(counts.unsqueeze(-1) > 0, means, fallback), counts


def kmeans(pixels: Tensor, k: int, generators: Sequence[torch.Generator], n_init: int = 4, max_iter: int = 50) -> tuple[Tensor, Tensor, Tensor]:
    """Lloyd's k-means with k-means++ seeding, batched over images, best of ``n_init`` seedings by inertia.

    Args:
        pixels: ``(B, P, C)`` points of each image.
        k: clusters (``k <= P``).
        generators: one torch generator per image (the seeding draws come from it, so an image's result does not
            depend on the other images of the batch).
        n_init: seedings per image; the one with the lowest inertia is kept (as scikit-learn's ``n_init``).
        max_iter: Lloyd iterations at most (stops early once no assignment changes).

    Returns:
        centres ``(B, k, C)`` sorted by cluster size (largest first, ties by index), counts ``(B, k)`` and
        inertia ``(B,)`` (sum of squared distances to the nearest centre). No gradient.
    """
    b, p, c = pixels.shape
    if len(generators) != b:
        raise ValueError(f"kmeans: {len(generators)} generators for {b} images")
    if not 1 <= k <= p:
        raise ValueError(f"kmeans: need 1 <= k <= number of points, got k={k} for {p} points")
    with torch.no_grad():
        x = pixels.detach().float()
        u = torch.stack([torch.rand(n_init, k, generator=g) for g in generators]).to(x.device)  # (B, n_init, k)
        xs = x.repeat_interleave(n_init, dim=0)  # (B·n_init, P, C)
        u = u.reshape(b * n_init, k)
        rows = torch.arange(b * n_init, device=x.device)
        # k-means++ seeding: first centre uniform, then each next one with probability ∝ D(x)² (inverse CDF).
        first = (u[:, 0] * p).long().clamp(max=p - 1)
        centres = xs[rows, first].unsqueeze(1)
        d2 = ((xs - centres) ** 2).sum(-1)
        for j in range(1, k):
            cdf = d2.cumsum(1)
            target = u[:, j : j + 1] * cdf[:, -1:]
            idx = torch.searchsorted(cdf, target).squeeze(1).clamp(max=p - 1)
            new = xs[rows, idx].unsqueeze(1)
            centres = torch.cat([centres, new], dim=1)
            d2 = torch.minimum(d2, ((xs - new) ** 2).sum(-1))
        labels = _assign(xs, centres)
        for _ in range(max_iter):
            centres, _ = _means(xs, labels, centres)
            new_labels = _assign(xs, centres)
            if torch.equal(new_labels, labels):
                break
            labels = new_labels
        centres, counts = _means(xs, labels, centres)
        inertia = ((xs - centres.gather(1, labels.unsqueeze(-1).expand(-1, -1, c))) ** 2).sum((1, 2))
        best = inertia.view(b, n_init).argmin(1) + torch.arange(b, device=x.device) * n_init
        centres, counts, inertia = centres[best], counts[best], inertia[best]
        order = counts.sort(dim=1, descending=True, stable=True).indices
        centres = centres.gather(1, order.unsqueeze(-1).expand(-1, -1, c))
        counts = counts.gather(1, order)
    return centres.to(pixels.dtype), counts, inertia


def palette_means(pixels: Tensor, init: Tensor, n_iter: int = 3) -> Tensor:
    """A palette of ``pixels`` that gradients flow through: ``n_iter`` Lloyd steps from ``init`` (no gradient)
    fix hard assignments, and the palette is the mean of the pixels assigned to each cluster (differentiable
    w.r.t. ``pixels``). An empty cluster keeps its ``init`` colour. The palette keeps ``init``'s order.

    Args:
        pixels: ``(B, P, C)``; init: ``(B, K, C)``.
    """
    with torch.no_grad():
        centres = init.detach()
        for _ in range(n_iter):
            centres, _ = _means(pixels.detach(), _assign(pixels.detach(), centres), centres)
        labels = _assign(pixels.detach(), centres)
    means, _ = _means(pixels, labels, init.detach())
    return means
