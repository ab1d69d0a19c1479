"""A capsule-network discriminator with dynamic routing (Sabour, Frosst, Hinton, NeurIPS 2017).

Used by the capsule CycleGAN of Shanis et al. (after CapsuleGAN, Jaiswal et al. 2018): the input is rescaled to a
small fixed size (32×32), then

1. a conv ``kernel``×``kernel`` to ``conv_channels`` + LeakyReLU(0.2);
2. one primary capsule layer: a conv ``kernel``×``kernel`` stride 2 to ``primary_maps × primary_dim`` channels,
   read as ``primary_maps·h·w`` capsules of ``primary_dim`` values, squashed;
3. one digit capsule layer of ``digit_caps`` capsules of ``digit_dim`` values, reached from every primary
   capsule through its own transformation matrix, with ``routing_iters`` iterations of routing by agreement
   (a softmax over the digit capsules each iteration; the report's "three softmax digit capsule layers");
4. a final linear layer to a single unit (the report's dense layer with one neuron): a raw score, or its sigmoid
   when ``sigmoid_output`` (the report's sigmoid + MSE loss).

Written by hand: torch has no capsule layers. As in common implementations of Sabour et al., the routing logits
are updated with the prediction vectors detached, so gradients flow through the last iteration only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.methods.nets.common import init_weights


def squash(s: Tensor, dim: int = -1, eps: float = 1e-8) -> Tensor:
    """Sabour et al.'s non-linearity ``|s|² / (1 + |s|²) · s / |s|``: keeps the direction, length in [0, 1)."""
    sq = (s * s).sum(dim=dim, keepdim=True)
    return sq / (1.0 + sq) * s / torch.sqrt(sq + eps)


def dynamic_routing(u_hat: Tensor, iters: int) -> Tensor:
    """Routing by agreement. ``u_hat``: prediction vectors ``(N, n_in, n_out, d_out)``; returns ``(N, n_out, d_out)``.

    ``b = 0``; each iteration: ``c = softmax_j(b)``, ``v_j = squash(Σ_i c_ij û_j|i)``, and (except after the last)
    ``b_ij += û_j|i · v_j``. Intermediate iterations use ``û`` detached.
    """
    if iters < 1:
        raise ValueError(f"dynamic_routing needs iters >= 1, got {iters}")
    b = torch.zeros(u_hat.shape[:3], device=u_hat.device, dtype=u_hat.dtype)
    detached = u_hat.detach()
    for r in range(iters):
        c = torch.softmax(b, dim=2)
        last = r == iters - 1
        u = u_hat if last else detached
        v = squash((c.unsqueeze(-1) * u).sum(dim=1))  # (N, n_out, d_out)
        if not last:
            b = b + (detached * v.unsqueeze(1)).sum(dim=-1)
    return v


class CapsuleDiscriminator(nn.Module):
    """``(N, in_channels, H, W) -> (N, 1)``: one real/fake score per image (see the module docstring).

    Args:
        in_channels: image channels.
        input_size: side the input is rescaled to (bilinear, antialiased); 32 in the report.
        conv_channels: filters of the first conv (256 in Sabour et al.).
        kernel: kernel of the first conv and of the primary capsule conv (9 in Sabour et al.).
        primary_maps, primary_dim: primary capsule maps and capsule length (32 and 8 in Sabour et al.).
        digit_caps, digit_dim: digit capsules and their length (10 and 16 in Sabour et al.).
        routing_iters: routing iterations (3).
        sigmoid_output: apply a sigmoid to the final unit.
        init_type, init_gain: initialization of the conv and linear layers; the routing matrices are drawn from
            N(0, 0.01²).
    """

    def __init__(
        self,
        in_channels: int = 3,
        input_size: int = 32,
        conv_channels: int = 256,
        kernel: int = 9,
        primary_maps: int = 32,
        primary_dim: int = 8,
        digit_caps: int = 10,
        digit_dim: int = 16,
        routing_iters: int = 3,
        sigmoid_output: bool = True,
        init_type: str = "normal",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        side = input_size - kernel + 1  # after the first conv (no padding)
        side = (side - kernel) // 2 + 1 if side >= kernel else 0  # after the primary capsule conv
        if side < 1:
            raise ValueError(f"CapsuleDiscriminator: input_size {input_size} is too small for kernel {kernel}")
        if min(in_channels, conv_channels, primary_maps, primary_dim, digit_caps, digit_dim, routing_iters) < 1:
            raise ValueError("CapsuleDiscriminator: every size must be >= 1")
        self.in_channels, self.input_size, self.routing_iters = in_channels, input_size, routing_iters
        self.primary_maps, self.primary_dim, self.sigmoid_output = primary_maps, primary_dim, sigmoid_output
        self.n_primary = primary_maps * side * side
        self.conv = nn.Conv2d(in_channels, conv_channels, kernel)
        self.primary = nn.Conv2d(conv_channels, primary_maps * primary_dim, kernel, stride=2)
        # one (digit_dim × primary_dim) matrix per (primary capsule, digit capsule) pair
        self.W = nn.Parameter(torch.empty(self.n_primary, digit_caps, digit_dim, primary_dim))
        self.out = nn.Linear(digit_caps * digit_dim, 1)
        init_weights(self, init_type, init_gain)
        nn.init.normal_(self.W, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"CapsuleDiscriminator expects (N, {self.in_channels}, H, W), got {tuple(x.shape)}")
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False, antialias=True)
        h = F.leaky_relu(self.conv(x), 0.2)
        p = self.primary(h)  # (N, maps*dim, s, s)
        n = p.shape[0]
        u = p.view(n, self.primary_maps, self.primary_dim, -1).permute(0, 1, 3, 2).reshape(n, self.n_primary, self.primary_dim)
        u = squash(u.float())
        u_hat = torch.einsum("ijdk,nik->nijd", self.W.float(), u)  # (N, n_primary, digit_caps, digit_dim)
        v = dynamic_routing(u_hat, self.routing_iters)
        score = self.out(v.flatten(1).to(self.out.weight.dtype))
        return torch.sigmoid(score) if self.sigmoid_output else score
