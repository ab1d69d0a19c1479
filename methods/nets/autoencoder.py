"""The auto-encoder discriminator of energy-based GANs (Zhao, Mathieu, LeCun, "Energy-based Generative
Adversarial Network", ICLR 2017): its energy is the reconstruction error of its input.

Layout (EBGAN's convolutional discriminator, Appendix of the paper: encoder (64)4c2s-(128)4c2s-(256)4c2s, decoder
(128)4c2s-(64)4c2s-(C)4c2s): ``n_layers`` 4×4 stride-2 convs with channels ``ndf·2^k`` (LeakyReLU 0.2; norm after
all but the first), then as many 4×4 stride-2 transposed convs back to the input's channels (ReLU and norm after
all but the last, which is linear). For a conditional colorization D the input is ``cat(L, ab)``.
"""

from __future__ import annotations

from torch import Tensor, nn

from colorbench.methods.nets.common import conv_bias, init_weights, norm_layer


class AutoEncoderDiscriminator(nn.Module):
    """``(N, C, H, W) -> (N,)`` energies: the mean squared reconstruction error of each input.

    Args:
        in_channels: input channels (3 for ``cat(L, ab)``).
        ndf: channels of the first encoder conv (64 in EBGAN).
        n_layers: stride-2 convs in the encoder (and transposed convs in the decoder); 3 in EBGAN.
        norm: ``"batch"`` (EBGAN), ``"instance"`` or ``"none"``.
        init_type, init_gain: weight initialization.

    H and W must be multiples of ``2**n_layers``.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3, norm: str = "batch",
                 init_type: str = "normal", init_gain: float = 0.02) -> None:
        super().__init__()
        if n_layers < 1 or ndf < 1 or in_channels < 1:
            raise ValueError(f"AutoEncoderDiscriminator: n_layers, ndf, in_channels must be >= 1, got {n_layers}, {ndf}, {in_channels}")
        self.in_channels, self.n_layers = in_channels, n_layers
        make_norm, bias = norm_layer(norm), conv_bias(norm)
        widths = [ndf * 2**k for k in range(n_layers)]
        enc: list[nn.Module] = []
        channels = in_channels
        for k, w in enumerate(widths):
            enc += [nn.Conv2d(channels, w, 4, stride=2, padding=1, bias=bias if k else True)]
            enc += ([make_norm(w)] if k else []) + [nn.LeakyReLU(0.2, True)]
            channels = w
        dec: list[nn.Module] = []
        outs = list(reversed(widths[:-1])) + [in_channels]
        for i, w in enumerate(outs):
            last = i == len(outs) - 1
            dec.append(nn.ConvTranspose2d(channels, w, 4, stride=2, padding=1, bias=True if last else bias))
            if not last:
                dec += [make_norm(w), nn.ReLU(True)]
            channels = w
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        init_weights(self, init_type, init_gain)

    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decoder(self.encoder(x))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"AutoEncoderDiscriminator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        m = 2**self.n_layers
        if x.shape[-2] % m or x.shape[-1] % m:
            raise ValueError(f"AutoEncoderDiscriminator with n_layers={self.n_layers} needs H and W divisible by {m}, "
                             f"got {x.shape[-2]}×{x.shape[-1]}")
        return (self.reconstruct(x).float() - x.float()).pow(2).flatten(1).mean(1)
