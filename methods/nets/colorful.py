"""The "colorful image colorization" network of Zhang, Isola, Efros (ECCV 2016), as a regression generator.

Layout (the paper's Fig. 2 / its released ``colorization_deploy_v2`` model, for ``width=64``): eight conv blocks
of 2–3 (3×3 conv + ReLU) each followed by batch norm (block 8 has none), no pooling: blocks 1–3 end with a
stride-2 conv (64, 128, 256 channels), block 4 has 512, blocks 5–6 are 512-channel convs with dilation 2, block 7
is 512 again, block 8 upsamples by a 4×4 stride-2 transposed conv to 256 channels followed by two 3×3 convs.
Every conv has a bias. The paper predicts a 313-bin colour distribution at 1/4 resolution; Fabbri & Islam (2017)
replace that classification layer by a regression of ab ("the output layer of the network is adjusted to predict
I_AB"): here a 1×1 conv 256 -> 2 with Tanh (ab/110 in [-1, 1], the harness's Lab convention) and, as the
reference's ``upsample4``, a bilinear ×4 upsampling to the input size.

Parameter count for ``width=64`` (test-pinned): summing the layer list of the released PyTorch model
``ECCVGenerator`` (richzhang/colorization, ``colorizers/eccv16.py``; affine batch norm, biased convs) gives
32,154,944 parameters for blocks 1–8 without the 313-way classifier, plus 256·313 + 313 (classifier) + 313·2
(fixed ab decoding) = 80,767: 32,236,011 in all. Ours has the same trunk plus the 256·2 + 2 = 514 of the regression
head: 32,155,458.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


#: (number of 3×3 convs, channels as a multiple of width/64, stride of the last conv, dilation) per block 1–7.
_BLOCKS = ((2, 1, 2, 1), (2, 2, 2, 1), (3, 4, 2, 1), (3, 8, 1, 1), (3, 8, 1, 2), (3, 8, 1, 2), (3, 8, 1, 1))


class ColorfulNet(nn.Module):
    """Zhang et al.'s colorization network with a regression head: ``(N, 1, H, W) -> (N, out_channels, H, W)``.

    Args:
        in_channels: 1 (normalized L).
        out_channels: 2 (normalized ab).
        width: channels of the first block (64 in the paper); every block scales with it.

    Weights keep PyTorch's default initialization (the paper's Caffe model used a data-dependent k-means
    rescaling, "magic init", which is not reproduced).

    H and W must be multiples of 8 (three stride-2 convs, then ×2 and ×4 upsampling back).
    """

    size_multiple = 8

    def __init__(self, in_channels: int = 1, out_channels: int = 2, width: int = 64) -> None:
        super().__init__()
        if width < 1 or width % 4:
            raise ValueError(f"ColorfulNet: width must be a positive multiple of 4, got {width}")
        self.in_channels, self.out_channels = in_channels, out_channels
        blocks: list[nn.Module] = []
        channels = in_channels
        for n_convs, mult, stride, dilation in _BLOCKS:
            out = width * mult
            layers: list[nn.Module] = []
            for i in range(n_convs):
                s = stride if i == n_convs - 1 else 1
                layers += [nn.Conv2d(channels, out, 3, stride=s, padding=dilation, dilation=dilation), nn.ReLU(True)]
                channels = out
            layers.append(nn.BatchNorm2d(out))
            blocks.append(nn.Sequential(*layers))
        up = width * 4
        blocks.append(nn.Sequential(
            nn.ConvTranspose2d(channels, up, 4, stride=2, padding=1), nn.ReLU(True),
            nn.Conv2d(up, up, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(up, up, 3, padding=1), nn.ReLU(True),
        ))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(up, out_channels, 1)

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ColorfulNet expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"ColorfulNet needs H and W divisible by {self.size_multiple}, got {h}×{w}")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        out = self.head(self.blocks(x)).tanh()  # at 1/4 resolution, as the paper's prediction
        return F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

