"""Multi-scale discriminator (Wang et al., pix2pixHD, CVPR 2018): identical PatchGANs on an image pyramid.

Used by Górriz et al. 2019 for colourisation: ``num_d`` discriminators with the same architecture (but their own
weights) see the input at full, half, quarter ... resolution, so the coarser ones have a larger receptive field
relative to the image without a deeper network. As pix2pixHD, each level is downsampled from the previous one by a
3×3 average pool with stride 2 and padding 1 that ignores the padding (``count_include_pad=False``).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.methods.nets.patchgan import PatchDiscriminator, patchgan_output_size


def downsample2(x: Tensor) -> Tensor:
    """Halve the resolution as pix2pixHD's multi-scale discriminator does (3×3 average pool, stride 2)."""
    return F.avg_pool2d(x, kernel_size=3, stride=2, padding=1, count_include_pad=False)


class MultiScaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on successively halved inputs: ``(N, C, H, W) -> [score map per scale]``.

    Args:
        in_channels, ndf, n_layers, norm, spectral_norm, init_type, init_gain, ibn_layers: passed to each
            :class:`~colorbench.methods.nets.patchgan.PatchDiscriminator`.
        num_d: number of scales (pix2pixHD's paper uses 3); scale ``k`` sees the input downsampled ``k`` times.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 spectral_norm: bool = False, init_type: str = "normal", init_gain: float = 0.02,
                 ibn_layers: int = 0, num_d: int = 3) -> None:
        super().__init__()
        if num_d < 1:
            raise ValueError(f"MultiScaleDiscriminator: num_d must be >= 1, got {num_d}")
        self.in_channels, self.n_layers, self.num_d = in_channels, n_layers, num_d
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, norm, spectral_norm, init_type, init_gain, ibn_layers)
            for _ in range(num_d)
        )

    def min_input_size(self) -> int:
        """The smallest input side for which the coarsest scale still gives a non-empty score map."""
        size = 1
        while True:
            s = size
            for _ in range(self.num_d - 1):
                s = (s - 1) // 2 + 1  # avg pool 3, stride 2, padding 1
            if patchgan_output_size(s, self.n_layers) >= 1:
                return size
            size += 1

    def forward(self, x: Tensor) -> list[Tensor]:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"MultiScaleDiscriminator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if min(x.shape[-2:]) < self.min_input_size():
            raise ValueError(
                f"MultiScaleDiscriminator with num_d={self.num_d}, n_layers={self.n_layers} needs inputs of at least "
                f"{self.min_input_size()}×{self.min_input_size()}, got {x.shape[-2]}×{x.shape[-1]}; use fewer scales"
            )
        scores = []
        for k, d in enumerate(self.discriminators):
            if k:
                x = downsample2(x)
            scores.append(d(x))
        return scores
