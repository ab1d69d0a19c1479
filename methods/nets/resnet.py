"""The ResNet generator of CycleGAN (Zhu et al., ICCV 2017), optionally stochastic through conditional instance norm.

Shape facts follow the reference ``ResnetGenerator`` (junyanz/pytorch-CycleGAN-and-pix2pix) so parameter counts
match it: ``resnet_6blocks`` with 3 input and 3 output channels, ngf 64 and instance norm has 7,837,699
parameters (the reference prints "[Network G_A] Total number of parameters : 7.838 M"); tested in
``tests/test_unpaired_methods.py``. The code is our own.

Layout: reflection pad 3 + conv 7×7 (ngf) + norm + ReLU; two convs 3×3 stride 2 (2·ngf, 4·ngf) + norm + ReLU;
``n_blocks`` residual blocks ``x + [reflect pad 1, conv 3×3, norm, ReLU, reflect pad 1, conv 3×3, norm](x)`` at
4·ngf; two transposed convs 3×3 stride 2 (2·ngf, ngf) + norm + ReLU; reflection pad 3 + conv 7×7 to the output
channels + Tanh. Convs have a bias unless followed by batch norm.

With ``noise_dim > 0`` every normalization layer is a :class:`ConditionalInstanceNorm2d` whose scale and shift are
linear functions of a Gaussian noise vector ``z`` (Dumoulin et al., ICLR 2017, with a continuous condition as in
the stochastic CycleGAN of Shanis et al.); ``forward(x, z)`` then needs ``z``.
"""

from __future__ import annotations

from torch import Tensor, nn

from colorbench.methods.nets.common import conv_bias, init_weights, norm_layer


class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose affine parameters depend on a condition vector: ``(1 + W_γ z) · IN(x) + W_β z``.

    Dumoulin et al. keep one (γ, β) per style; a continuous noise ``z`` generalizes this to linear maps of
    ``z`` (with ``z = 0`` it is a plain instance norm with learnt biases γ = 1 + b_γ, β = b_β).

    Args:
        channels: feature channels.
        cond_dim: length of the condition (noise) vector.
    """

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        if cond_dim < 1:
            raise ValueError(f"ConditionalInstanceNorm2d needs cond_dim >= 1, got {cond_dim}")
        self.norm = nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
        self.gamma = nn.Linear(cond_dim, channels)
        self.beta = nn.Linear(cond_dim, channels)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        if z.dim() != 2 or z.shape[0] != x.shape[0] or z.shape[1] != self.gamma.in_features:
            raise ValueError(f"ConditionalInstanceNorm2d: expected z of shape ({x.shape[0]}, {self.gamma.in_features}), got {tuple(z.shape)}")
        gamma = 1.0 + self.gamma(z).to(x.dtype)[:, :, None, None]
        beta = self.beta(z).to(x.dtype)[:, :, None, None]
        return gamma * self.norm(x) + beta


def _run(layers: nn.ModuleList, x: Tensor, z: Tensor | None) -> Tensor:
    for layer in layers:
        if isinstance(layer, (ConditionalInstanceNorm2d, ResnetBlock)):
            x = layer(x, z)
        else:
            x = layer(x)
    return x


class ResnetBlock(nn.Module):
    """``x + [reflect pad 1, conv 3×3, norm, ReLU, (dropout 0.5), reflect pad 1, conv 3×3, norm](x)``."""

    def __init__(self, channels: int, norm: str = "instance", dropout: bool = False, noise_dim: int = 0) -> None:
        super().__init__()
        make_norm = (lambda c: ConditionalInstanceNorm2d(c, noise_dim)) if noise_dim else norm_layer(norm)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), make_norm(channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3, bias=bias), make_norm(channels)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        return x + _run(self.layers, x, z)


class ResnetGenerator(nn.Module):
    """CycleGAN's ResNet generator: ``(N, in_channels, H, W) -> (N, out_channels, H, W)`` in [-1, 1].

    Args:
        in_channels, out_channels: image channels (3 and 3 for the reference's ``resnet_6blocks`` on RGB).
        ngf: filters of the first conv (64 in the reference).
        n_blocks: residual blocks (6 for ``resnet_6blocks``, 9 for ``resnet_9blocks``).
        norm: ``"instance"`` (CycleGAN), ``"batch"`` or ``"none"``; ignored where ``noise_dim > 0`` (then
            conditional instance norm everywhere).
        dropout: dropout 0.5 inside the residual blocks (off in CycleGAN: ``--no_dropout``).
        noise_dim: length of the noise vector fed to conditional instance norms (0: deterministic).
        init_type, init_gain: weight initialization.

    H and W must be multiples of 4 (two stride-2 convs, then two ×2 transposed convs).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        n_blocks: int = 6,
        norm: str = "instance",
        dropout: bool = False,
        noise_dim: int = 0,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if min(in_channels, out_channels, ngf) < 1 or n_blocks < 0 or noise_dim < 0:
            raise ValueError(f"ResnetGenerator: bad sizes in={in_channels} out={out_channels} ngf={ngf} n_blocks={n_blocks} noise_dim={noise_dim}")
        self.in_channels, self.noise_dim = in_channels, noise_dim
        if noise_dim:
            norm = "instance"
            make_norm = lambda c: ConditionalInstanceNorm2d(c, noise_dim)  # noqa: E731
        else:
            make_norm = norm_layer(norm)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias), make_norm(ngf), nn.ReLU(True)]
        for k in range(2):  # downsampling
            c = ngf * 2**k
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1, bias=bias), make_norm(2 * c), nn.ReLU(True)]
        layers += [ResnetBlock(4 * ngf, norm, dropout, noise_dim) for _ in range(n_blocks)]
        for k in range(2):  # upsampling
            c = ngf * 2 ** (2 - k)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1, bias=bias), make_norm(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.layers = nn.ModuleList(layers)
        init_weights(self, init_type, init_gain)

    def forward(self, x: Tensor, z: Tensor | None = None) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ResnetGenerator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if x.shape[-1] % 4 or x.shape[-2] % 4:
            raise ValueError(f"ResnetGenerator needs H and W divisible by 4, got {x.shape[-2]}×{x.shape[-1]}")
        if self.noise_dim and z is None:
            raise ValueError(f"this ResnetGenerator is stochastic (noise_dim={self.noise_dim}): pass z of shape (N, {self.noise_dim})")
        if not self.noise_dim and z is not None:
            raise ValueError("this ResnetGenerator is deterministic (noise_dim=0): it takes no z")
        return _run(self.layers, x, z)
