"""Networks of SpyncoGan (Ratajczak et al., SUMAC 2019) and of its fully cyclic baseline Col-Cycle (IGARSS 2019).

* :class:`SeparableConv2d`: a *spatially* separable convolution as in Mamalet & Garcia 2012 (the paper's [26]): a
  k×1 conv followed by a 1×k conv (the paper: "We did not apply depthwise nor grouped convolutions").
* :class:`SpyncoGenerator`: encoder (conv 7×7, then separable stride-2 convs), residual layers with classical 3×3
  convs, a decoder of "interpolate ×2, then separable conv" blocks keeping ``n`` filters, and the Output Spatial
  Pyramid: the residual output and each decoder output are upsampled by interpolation to the input size and
  mapped to RGB by one conv shared by all of them (+ Tanh). ``forward`` returns ``[G1, G2, ..., GN]``, G1 the
  outermost (full-scale) output.
* :class:`ColCycleGenerator`: the same encoder and residual layers, with a decoder whose filters halve at each
  up-sampling (as CycleGAN), nearest up-sampling before convolution, and one output conv (no pyramid).
* :class:`SeparablePatchDiscriminator`: the 70×70 PatchGAN layout (Isola et al.) with every 4×4 conv replaced by a
  separable 4×1 + 1×4 pair; with 3 input channels and ndf 64 it has 2,085,510 parameters, the paper's "≈ 2.085
  million" (see the SpyncoGan card for how this layout was inferred).
* :class:`HandcraftedTranslation`: H_t, the non-trainable 1×1 conv with weights 0.299, 0.587, 0.114.
* :func:`sobel_edges`: the horizontal and vertical Sobel responses of the contours loss.

The layer table of the paper (its Figure 4) is an image that is not in the text we have; what is not stated in the
text follows CycleGAN's reference generator and is listed in the SpyncoGan card.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.methods.nets.common import conv_bias, init_weights, norm_layer
from colorbench.methods.nets.patchgan import patchgan_output_size

#: BT.601 luma weights of H_t (paper Eq. 1).
BT601_WEIGHTS = (0.299, 0.587, 0.114)


class SeparableConv2d(nn.Module):
    """k×k conv approximated by a k×1 conv (``in -> out`` channels) then a 1×k conv (``out -> out``), both biased.

    ``stride`` and ``padding`` act along the height in the first conv and along the width in the second, so the
    output size is that of a k×k conv with the same stride and padding. ``padding_mode`` as in ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1, padding: int = 0,
                 bias: bool = True, padding_mode: str = "zeros") -> None:
        super().__init__()
        self.vertical = nn.Conv2d(in_channels, out_channels, (kernel, 1), stride=(stride, 1), padding=(padding, 0),
                                  bias=bias, padding_mode=padding_mode)
        self.horizontal = nn.Conv2d(out_channels, out_channels, (1, kernel), stride=(1, stride), padding=(0, padding),
                                    bias=bias, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.horizontal(self.vertical(x))


class HandcraftedTranslation(nn.Module):
    """H_t: RGB ``(N, 3, H, W) -> (N, 1, H, W)``, ``0.299 R + 0.587 G + 0.114 B``, a fixed 1×1 conv.

    The weights are a buffer, not a parameter: nothing trains them and optimizers never see them. As they sum to
    1, H_t maps [-1, 1] RGB to [-1, 1] grey and [0, 1] to [0, 1] alike.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weight", torch.tensor(BT601_WEIGHTS).view(1, 3, 1, 1))

    def forward(self, rgb: Tensor) -> Tensor:
        if rgb.dim() != 4 or rgb.shape[1] != 3:
            raise ValueError(f"H_t expects RGB (N, 3, H, W), got {tuple(rgb.shape)}")
        return F.conv2d(rgb, self.weight.to(rgb.dtype))


def sobel_edges(x: Tensor) -> Tensor:
    """Sobel responses ``(N, 2C, H, W)`` (horizontal then vertical gradient per channel) of ``(N, C, H, W)``.

    Kernel ``[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]`` and its transpose, unnormalized (OpenCV's ``Sobel``), with
    replicate padding so the output keeps the size. Written by hand since it must be differentiable in torch.
    """
    kx = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device, dtype=x.dtype)
    c = x.shape[1]
    weight = torch.stack([kx, kx.t()]).unsqueeze(1).repeat(c, 1, 1, 1)  # (2C, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), weight, groups=c)


def _block(conv: nn.Module, channels: int, norm: str) -> list[nn.Module]:
    return [conv, norm_layer(norm)(channels), nn.ReLU(True)]


class _ResidualBlock(nn.Module):
    """``x + [reflect pad 1, conv 3×3, norm, ReLU, reflect pad 1, conv 3×3, norm](x)`` (CycleGAN's block)."""

    def __init__(self, channels: int, norm: str) -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm)(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), norm_layer(norm)(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def _encoder_and_residuals(in_channels: int, enc: tuple[int, ...], n_res: int, res_channels: int, down_kernel: int,
                           norm: str) -> nn.Sequential:
    """conv 7×7 to ``enc[0]`` + norm + ReLU; a separable stride-2 conv block to each of ``enc[1:]``; a separable
    conv to ``res_channels`` if it differs from ``enc[-1]``; ``n_res`` residual blocks."""
    bias = conv_bias(norm)
    layers: list[nn.Module] = [nn.ReflectionPad2d(3), *_block(nn.Conv2d(in_channels, enc[0], 7, bias=bias), enc[0], norm)]
    for c_in, c_out in zip(enc[:-1], enc[1:]):
        layers += _block(SeparableConv2d(c_in, c_out, down_kernel, 2, down_kernel // 2, bias), c_out, norm)
    if enc[-1] != res_channels:
        layers += _block(SeparableConv2d(enc[-1], res_channels, down_kernel, 1, down_kernel // 2, bias), res_channels, norm)
    layers += [_ResidualBlock(res_channels, norm) for _ in range(n_res)]
    return nn.Sequential(*layers)


def _check_image(x: Tensor, in_channels: int, multiple: int, who: str) -> None:
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f"{who} expects (N, {in_channels}, H, W), got {tuple(x.shape)}")
    if x.shape[-1] % multiple or x.shape[-2] % multiple:
        raise ValueError(f"{who} needs H and W divisible by {multiple}, got {x.shape[-2]}×{x.shape[-1]}")


class SpyncoGenerator(nn.Module):
    """SpyncoGan's generator with Output Spatial Pyramids: ``(N, in, H, W) -> [G1, ..., GN]``, each (N, out, H, W).

    Args:
        in_channels, out_channels: 3 and 3 (grey inputs are replicated over 3 channels, as the paper does for the
            identity loss).
        enc_channels: filters of the encoder convs; the first is a 7×7 conv at full resolution, each next one a
            separable stride-2 conv (CycleGAN's 64, 128, 256 in the paper preset).
        n: filters of the residual and decoder layers (256 in the paper).
        n_res_blocks: residual blocks of two classical 3×3 convs each.
        n_outputs: N, the number of pyramid outputs; the decoder has ``N - 1`` up-sampling blocks, so
            ``len(enc_channels) - 1`` must equal ``N - 1`` for G1 to come out at the input scale.
        down_kernel, up_kernel: kernels of the separable down- and up-sampling convs (odd).
        map_kernel: kernel of the shared mapping conv (odd).
        upsample_mode: interpolation of the up-sampling blocks and of the pyramid rescaling (``"nearest"`` or
            ``"bilinear"``).
        norm: normalization of the conv blocks (instance norm in the paper).
        init_type, init_gain: weight initialization.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        enc_channels: tuple[int, ...] = (64, 128, 256),
        n: int = 256,
        n_res_blocks: int = 3,
        n_outputs: int = 3,
        down_kernel: int = 3,
        up_kernel: int = 3,
        map_kernel: int = 7,
        upsample_mode: str = "nearest",
        norm: str = "instance",
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if n_outputs < 1 or len(enc_channels) != n_outputs:
            raise ValueError(f"SpyncoGenerator: need len(enc_channels) == n_outputs >= 1 (one down-sampling per "
                             f"extra output), got {len(enc_channels)} and {n_outputs}")
        for name, k in (("down_kernel", down_kernel), ("up_kernel", up_kernel), ("map_kernel", map_kernel)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"SpyncoGenerator: {name} must be odd and >= 1, got {k}")
        if upsample_mode not in ("nearest", "bilinear"):
            raise ValueError(f"SpyncoGenerator: unknown upsample_mode {upsample_mode!r}")
        self.in_channels, self.n_outputs, self.upsample_mode = in_channels, n_outputs, upsample_mode
        self.multiple = 2 ** (n_outputs - 1)
        bias = conv_bias(norm)
        self.trunk = _encoder_and_residuals(in_channels, tuple(enc_channels), n_res_blocks, n, down_kernel, norm)
        self.ups = nn.ModuleList(
            nn.Sequential(*_block(SeparableConv2d(n, n, up_kernel, 1, up_kernel // 2, bias), n, norm))
            for _ in range(n_outputs - 1)
        )
        self.mapping = nn.Sequential(nn.ReflectionPad2d(map_kernel // 2), nn.Conv2d(n, out_channels, map_kernel), nn.Tanh())
        init_weights(self, init_type, init_gain)

    def _up(self, x: Tensor, size: tuple[int, int] | None = None) -> Tensor:
        kw = {} if self.upsample_mode == "nearest" else {"align_corners": False}
        if size is None:
            return F.interpolate(x, scale_factor=2, mode=self.upsample_mode, **kw)
        return F.interpolate(x, size=size, mode=self.upsample_mode, **kw)

    def forward(self, x: Tensor, outputs: int | None = None) -> list[Tensor]:
        """The pyramid outputs ``[G1, ..., GN]`` (G1 full-scale, the final output); with ``outputs=k`` only
        ``G1..Gk`` are mapped (the features are computed anyway)."""
        _check_image(x, self.in_channels, self.multiple, "SpyncoGenerator")
        k = self.n_outputs if outputs is None else outputs
        if not 1 <= k <= self.n_outputs:
            raise ValueError(f"SpyncoGenerator: outputs must be in 1..{self.n_outputs}, got {outputs}")
        size = tuple(x.shape[-2:])
        feats = [self.trunk(x)]  # O_dN: the residual output, at 1/2^(N-1) scale
        for up in self.ups:
            feats.append(up(self._up(feats[-1])))
        feats = feats[::-1]  # [O_d1 (full scale), O_d2, ..., O_dN]
        out = []
        for i in range(k):
            f = feats[i] if i == 0 else self._up(feats[i], size)
            out.append(self.mapping(f))
        return out


class ColCycleGenerator(nn.Module):
    """Col-Cycle's generator: SpyncoGan's encoder and residual layers, a decoder whose filters halve at each
    nearest-neighbour ×2 + separable-conv block (CycleGAN's decreasing counts), and one output conv + Tanh.

    Args: as :class:`SpyncoGenerator`; the decoder runs from ``n`` down through ``reversed(enc_channels[:-1])``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        enc_channels: tuple[int, ...] = (64, 128, 256),
        n: int = 256,
        n_res_blocks: int = 3,
        down_kernel: int = 3,
        up_kernel: int = 3,
        map_kernel: int = 7,
        norm: str = "instance",
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if len(enc_channels) < 1:
            raise ValueError("ColCycleGenerator: enc_channels must not be empty")
        for name, k in (("down_kernel", down_kernel), ("up_kernel", up_kernel), ("map_kernel", map_kernel)):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"ColCycleGenerator: {name} must be odd and >= 1, got {k}")
        self.in_channels = in_channels
        self.multiple = 2 ** (len(enc_channels) - 1)
        bias = conv_bias(norm)
        self.trunk = _encoder_and_residuals(in_channels, tuple(enc_channels), n_res_blocks, n, down_kernel, norm)
        dec: list[nn.Module] = []
        c = n
        for c_out in reversed(enc_channels[:-1]):
            dec += [nn.Upsample(scale_factor=2, mode="nearest"),
                    *_block(SeparableConv2d(c, c_out, up_kernel, 1, up_kernel // 2, bias), c_out, norm)]
            c = c_out
        dec += [nn.ReflectionPad2d(map_kernel // 2), nn.Conv2d(c, out_channels, map_kernel), nn.Tanh()]
        self.decoder = nn.Sequential(*dec)
        init_weights(self, init_type, init_gain)

    def forward(self, x: Tensor) -> Tensor:
        _check_image(x, self.in_channels, self.multiple, "ColCycleGenerator")
        return self.decoder(self.trunk(x))


class SeparablePatchDiscriminator(nn.Module):
    """The PatchGAN layout (conv 4×4 s2 + LeakyReLU; ``n_layers - 1`` more 4×4 s2 convs up to 8·ndf + norm +
    LeakyReLU; one 4×4 s1 + norm + LeakyReLU; a 4×4 s1 conv to one channel) with every conv spatially separable.

    ``(N, in_channels, H, W) -> (N, 1, H', W')`` raw scores, the same map size as :class:`PatchDiscriminator`.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "instance",
                 init_type: str = "normal", init_gain: float = 0.02) -> None:
        super().__init__()
        if n_layers < 1 or ndf < 1 or in_channels < 1:
            raise ValueError(f"SeparablePatchDiscriminator: n_layers, ndf, in_channels must be >= 1, got {n_layers}, {ndf}, {in_channels}")
        self.in_channels, self.n_layers = in_channels, n_layers
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [SeparableConv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        c = ndf
        for k in range(1, n_layers + 1):
            out = ndf * min(2**k, 8)
            layers += [SeparableConv2d(c, out, 4, 2 if k < n_layers else 1, 1, bias), make_norm(out), nn.LeakyReLU(0.2, True)]
            c = out
        layers.append(SeparableConv2d(c, 1, 4, 1, 1))
        self.model = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SeparablePatchDiscriminator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(patchgan_output_size(h, self.n_layers), patchgan_output_size(w, self.n_layers)) < 1:
            raise ValueError(f"SeparablePatchDiscriminator with n_layers={self.n_layers} gives an empty score map for a "
                             f"{h}×{w} input; use fewer layers or larger images")
        return self.model(x)
