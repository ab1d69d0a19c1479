"""The PatchGAN discriminator of pix2pix (Isola et al., CVPR 2017): a fully convolutional real/fake map.

Shape facts follow the reference ``NLayerDiscriminator`` (junyanz/pytorch-CycleGAN-and-pix2pix) so parameter
counts match it: with ``n_layers=3, ndf=64``, 6 input channels and batch norm it has 2,768,705 parameters (the
reference prints "[Network D] Total number of parameters : 2.769 M"); tested in ``tests/test_methods.py``. The
code is our own.

Layout: conv 4×4 stride 2 (no norm) + LeakyReLU(0.2); ``n_layers - 1`` convs 4×4 stride 2 with channels
``ndf * min(2**k, 8)`` + norm + LeakyReLU; one conv 4×4 stride 1 + norm + LeakyReLU; a final conv 4×4 stride 1 to
one channel (raw scores, no sigmoid: the GAN loss applies it). With ``n_layers=3`` each output sees a 70×70 patch.
"""

from __future__ import annotations

from torch import Tensor, nn

from colorbench.methods.nets.common import IBN, conv_bias, init_weights, norm_layer, spectral_norm_all


def _conv_out(size: int, stride: int) -> int:
    # 4×4 kernel, padding 1
    return (size + 2 - 4) // stride + 1


def patchgan_output_size(size: int, n_layers: int) -> int:
    """Side of the score map for an input side ``size`` (<= 0 means the input is too small)."""
    for _ in range(n_layers):
        size = _conv_out(size, 2)
        if size <= 0:
            return size
    return _conv_out(_conv_out(size, 1), 1)


def patchgan_receptive_field(n_layers: int) -> int:
    """Side of the input patch each output score sees (70 for ``n_layers=3``, 34 for 2, 16 for 1)."""
    rf = 1
    for stride in reversed([2] * n_layers + [1, 1]):
        rf = (rf - 1) * stride + 4
    return rf


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``(N, in_channels, H, W) -> (N, 1, H', W')`` raw real/fake scores.

    Args:
        in_channels: input channels (a conditional D sees ``cat(condition, image)``: 1 + 2 = 3 for L + ab).
        ndf: filters of the first layer (64 in the reference).
        n_layers: stride-2 convolutions (3 in the reference: the 70×70 PatchGAN).
        norm: ``"batch"`` (reference), ``"instance"`` or ``"none"``.
        spectral_norm: wrap every conv in spectral normalization (used e.g. by Górriz et al.); usually with
            ``norm="none"``.
        init_type, init_gain: weight initialization (applied before spectral normalization).
        ibn_layers: the first ``ibn_layers`` of the ``n_layers`` normalized convs use IBN-Net's instance-batch
            normalization instead of ``norm`` (Górriz et al.; 0: none, as pix2pix).
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "batch",
        spectral_norm: bool = False,
        init_type: str = "normal",
        init_gain: float = 0.02,
        ibn_layers: int = 0,
    ) -> None:
        super().__init__()
        if n_layers < 1 or ndf < 1 or in_channels < 1:
            raise ValueError(f"PatchDiscriminator: n_layers, ndf and in_channels must be >= 1, got {n_layers}, {ndf}, {in_channels}")
        if not 0 <= ibn_layers <= n_layers:
            raise ValueError(f"PatchDiscriminator: ibn_layers must be in [0, n_layers = {n_layers}], got {ibn_layers}")
        self.in_channels, self.n_layers = in_channels, n_layers
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for k in range(1, n_layers + 1):
            out = ndf * min(2**k, 8)
            stride = 2 if k < n_layers else 1  # the last of these keeps the resolution
            normalize = IBN(out) if k <= ibn_layers else make_norm(out)
            layers += [nn.Conv2d(channels, out, 4, stride=stride, padding=1, bias=bias), normalize, nn.LeakyReLU(0.2, True)]
            channels = out
        layers.append(nn.Conv2d(channels, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_weights(self, init_type, init_gain)
        if spectral_norm:
            spectral_norm_all(self)

    @property
    def receptive_field(self) -> int:
        return patchgan_receptive_field(self.n_layers)

    def check_input(self, x: Tensor) -> None:
        """Raise ValueError naming the problem if ``x`` does not fit this network."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"PatchDiscriminator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if min(patchgan_output_size(h, self.n_layers), patchgan_output_size(w, self.n_layers)) < 1:
            raise ValueError(
                f"PatchDiscriminator with n_layers={self.n_layers} gives an empty score map for a {h}×{w} input; "
                f"use fewer layers or larger images"
            )

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        return self.model(x)
