"""The pix2pix U-Net generator (Isola et al., CVPR 2017), built recursively from skip blocks.

Shape facts follow the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix ``UnetGenerator``), so
that parameter counts match it: with ``num_downs=8, ngf=64``, 3 -> 3 channels and batch norm the generator has
54,414,080 parameters (the reference prints "[Network G] Total number of parameters : 54.414 M"); this is tested
in ``tests/test_methods.py``. The code is our own.

Layout for ``num_downs = n`` (n >= 5): n encoder convolutions (4×4, stride 2, channels ngf, 2ngf, 4ngf, 8ngf, then
8ngf), each but the first preceded by LeakyReLU(0.2) and each but the first and the innermost followed by the
norm; the decoder mirrors them with ReLU -> 4×4 stride-2 transposed conv -> norm, concatenating the encoder's
feature map at each level (skip connection); the n - 5 decoder blocks just above the innermost one end with
dropout; the outermost transposed conv has a bias and is followed by Tanh.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from colorbench.methods.nets.common import IBN, conv_bias, init_weights, norm_layer

MIN_NUM_DOWNS = 5  # the fixed outer levels: ngf -> 2ngf -> 4ngf -> 8ngf, plus the innermost 8ngf level
OUT_ACTIVATIONS = ("tanh", "none")


class UnetSkipBlock(nn.Module):
    """One level of the U-Net: ``down -> submodule -> up``, with the input concatenated to the output.

    Args:
        outer_channels: channels of this level's input (= its output before concatenation).
        inner_channels: channels after this level's down-convolution.
        in_channels: input channels if different from ``outer_channels`` (only the outermost level).
        submodule: the next level inward (``None`` for the innermost one).
        outermost: no norm / activation before the down conv; Tanh after the up conv; no skip.
        innermost: no submodule and no norm after the down conv.
        norm: ``"batch"``, ``"instance"`` or ``"none"``.
        dropout: dropout probability after the up block (0 disables).
        ibn: use IBN-Net's instance-batch normalization (:class:`IBN`) after the down conv instead of ``norm``
            (the decoder keeps ``norm``); for Górriz et al.'s IBN U-Net.
        out_activation: the outermost block's final activation, ``"tanh"`` (pix2pix) or ``"none"``.
    """

    def __init__(
        self,
        outer_channels: int,
        inner_channels: int,
        *,
        in_channels: int | None = None,
        submodule: nn.Module | None = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: float = 0.0,
        ibn: bool = False,
        out_activation: str = "tanh",
    ) -> None:
        super().__init__()
        if innermost == (submodule is not None):
            raise ValueError("the innermost block has no submodule; every other block needs one")
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        in_channels = outer_channels if in_channels is None else in_channels
        down_conv = nn.Conv2d(in_channels, inner_channels, kernel_size=4, stride=2, padding=1, bias=bias)
        up_in = inner_channels if innermost else inner_channels * 2  # the inner level returns a concatenation
        if outermost:
            up_conv = nn.ConvTranspose2d(up_in, outer_channels, kernel_size=4, stride=2, padding=1, bias=True)
            if out_activation not in OUT_ACTIVATIONS:
                raise ValueError(f"unknown out_activation {out_activation!r}; choose one of {OUT_ACTIVATIONS}")
            final = [nn.Tanh()] if out_activation == "tanh" else []
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, *final]
        else:
            if ibn and innermost:
                raise ValueError("the innermost U-Net block has no norm after its down conv, so it cannot use IBN")
            up_conv = nn.ConvTranspose2d(up_in, outer_channels, kernel_size=4, stride=2, padding=1, bias=bias)
            down_norm = IBN(inner_channels) if ibn else make_norm(inner_channels)
            down = [nn.LeakyReLU(0.2, True), down_conv] + ([] if innermost else [down_norm])
            up = [nn.ReLU(True), up_conv, make_norm(outer_channels)]
            layers = down + ([] if innermost else [submodule]) + up
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        self.model = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], dim=1)  # skip connection


class UnetGenerator(nn.Module):
    """pix2pix U-Net: ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` in [-1, 1] (Tanh).

    Args:
        in_channels: input channels (1 for L -> ab colorization).
        out_channels: output channels (2 for ab).
        num_downs: number of stride-2 downsamplings (>= 5); H and W must be divisible by ``2**num_downs``.
            The reference "unet_256" is 8, "unet_128" is 7.
        ngf: filters of the outermost level (64 in the reference).
        norm: ``"batch"`` (reference), ``"instance"`` or ``"none"``.
        dropout: dropout probability in the ``num_downs - 5`` decoder blocks above the innermost one (0.5 in
            the reference; 0 disables).
        init_type, init_gain: weight initialization (see :func:`init_weights`); pix2pix uses normal, 0.02.
        ibn_layers: the first ``ibn_layers`` normalized encoder levels (counted from the input; at most
            ``num_downs - 2``) use IBN-Net's instance-batch normalization instead of ``norm`` (0: none, pix2pix).
        out_activation: ``"tanh"`` (pix2pix: outputs in [-1, 1]) or ``"none"`` (raw outputs, e.g. logits).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 2,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "batch",
        dropout: float = 0.5,
        init_type: str = "normal",
        init_gain: float = 0.02,
        ibn_layers: int = 0,
        out_activation: str = "tanh",
    ) -> None:
        super().__init__()
        if num_downs < MIN_NUM_DOWNS:
            raise ValueError(f"UnetGenerator needs num_downs >= {MIN_NUM_DOWNS}, got {num_downs}")
        if ngf < 1 or in_channels < 1 or out_channels < 1:
            raise ValueError(f"UnetGenerator: ngf, in_channels and out_channels must be >= 1, got {ngf}, {in_channels}, {out_channels}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"UnetGenerator: dropout must be in [0, 1), got {dropout}")
        if not 0 <= ibn_layers <= num_downs - 2:
            raise ValueError(f"UnetGenerator: ibn_layers must be in [0, num_downs - 2 = {num_downs - 2}], got {ibn_layers}")
        self.num_downs, self.ibn_layers = num_downs, ibn_layers
        self.in_channels, self.out_channels = in_channels, out_channels
        # level k (1-based from the input) is the k-th normalized encoder level; levels 1..ibn_layers use IBN
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for level in range(num_downs - 2, 3, -1):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout, ibn=level <= ibn_layers)
        for level, mult in ((3, 4), (2, 2), (1, 1)):
            block = UnetSkipBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm, ibn=level <= ibn_layers)
        self.model = UnetSkipBlock(out_channels, ngf, in_channels=in_channels, submodule=block, outermost=True, norm=norm,
                                   out_activation=out_activation)
        init_weights(self, init_type, init_gain)

    @property
    def size_multiple(self) -> int:
        """H and W of the input must be multiples of this (``2**num_downs``)."""
        return 2**self.num_downs

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError naming the problem if ``x`` does not fit this network."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"UnetGenerator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            fits = largest_num_downs(h, w)
            hint = (
                f"num_downs <= {fits} fits {h}×{w}" if fits >= MIN_NUM_DOWNS
                else f"no num_downs >= {MIN_NUM_DOWNS} fits {h}×{w}; sides must be multiples of {2**MIN_NUM_DOWNS}"
            )
            raise ValueError(
                f"UnetGenerator with num_downs={self.num_downs} needs H and W divisible by {m}, got {h}×{w} ({hint})"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.model(x)


def largest_num_downs(h: int, w: int) -> int:
    """The largest ``n`` with both ``h`` and ``w`` divisible by ``2**n`` (the U-Net depth that fits)."""
    n = 0
    while h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0 and 2 ** (n + 1) <= min(h, w):
        n += 1
    return n
