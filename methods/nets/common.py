"""Small helpers shared by the network builders: normalization choice, weight init, freezing."""

from __future__ import annotations

import functools
from typing import Callable, Iterable

import torch
from torch import nn

#: Normalization layers accepted by the builders (``norm=`` argument).
NORMS = ("batch", "instance", "none")
#: Weight initializations accepted by :func:`init_weights`.
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """A factory ``channels -> nn.Module`` for a normalization named ``"batch"``, ``"instance"`` or ``"none"``.

    As in the pix2pix reference: batch norm is affine with running statistics; instance norm is neither
    affine nor tracking statistics; ``"none"`` gives an identity.
    """
    if norm == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda channels: nn.Identity()
    raise ValueError(f"unknown norm {norm!r}; choose one of {NORMS}")


class IBN(nn.Module):
    """Instance-batch normalization of IBN-Net (Pan et al., ECCV 2018, "IBN-a"): the first ``round(channels *
    in_fraction)`` channels are instance-normalized (affine), the others batch-normalized.

    IBN-Net puts IN in the shallow layers (appearance / style variation) and keeps BN for the rest (content
    discrimination). Parameter count equals a ``BatchNorm2d(channels)``: two per channel.
    """

    def __init__(self, channels: int, in_fraction: float = 0.5) -> None:
        super().__init__()
        if not 0.0 < in_fraction < 1.0:
            raise ValueError(f"IBN: in_fraction must be in (0, 1), got {in_fraction}")
        self.n_in = max(1, min(channels - 1, int(round(channels * in_fraction))))
        if channels < 2:
            raise ValueError(f"IBN needs at least 2 channels, got {channels}")
        self.IN = nn.InstanceNorm2d(self.n_in, affine=True, track_running_stats=False)
        self.BN = nn.BatchNorm2d(channels - self.n_in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.split([self.n_in, x.shape[1] - self.n_in], dim=1)
        return torch.cat([self.IN(a.contiguous()), self.BN(b.contiguous())], dim=1)


def conv_bias(norm: str) -> bool:
    """Whether a conv followed by ``norm`` gets a bias: not before batch norm (its shift replaces it).

    This is the pix2pix reference's rule (bias only when the norm is instance norm); with ``"none"`` a bias is
    kept, since nothing else could shift the activations.
    """
    return norm != "batch"


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialize conv / linear / batch-norm weights in place, as pix2pix's ``init_weights``.

    Conv and linear weights: ``normal`` draws N(0, gain²) (the pix2pix default, gain 0.02); ``xavier``,
    ``kaiming`` and ``orthogonal`` use the torch initializers with ``gain``. Their biases are set to 0.
    Batch-norm (and affine instance-norm, as in IBN) weights are drawn from N(1, gain²) and biases set to 0. Uses the global torch RNG (seed it first).
    """
    if init_type not in INIT_TYPES:
        raise ValueError(f"unknown init_type {init_type!r}; choose one of {INIT_TYPES}")

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) or (isinstance(m, nn.InstanceNorm2d) and m.affine):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    net.apply(init)
    return net


def set_requires_grad(nets: nn.Module | Iterable[nn.Module], flag: bool) -> None:
    """Switch gradients of all parameters of ``nets`` on or off (freeze D while the generator steps)."""
    for net in [nets] if isinstance(nets, nn.Module) else nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def count_parameters(net: nn.Module) -> int:
    """Number of parameters (trainable or not) of ``net``."""
    return sum(p.numel() for p in net.parameters())


def set_training(nets: dict[str, nn.Module], modes: dict[str, bool] | bool) -> dict[str, bool]:
    """Set train/eval mode per network; returns the previous modes (to restore them later)."""
    before = {k: net.training for k, net in nets.items()}
    for k, net in nets.items():
        net.train(modes if isinstance(modes, bool) else modes[k])
    return before


def spectral_norm_all(net: nn.Module) -> nn.Module:
    """Wrap every conv / linear weight of ``net`` in spectral normalization (Miyato et al. 2018), in place."""
    for m in list(net.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            torch.nn.utils.parametrizations.spectral_norm(m)
    return net


#: How far from ±1 :func:`add_to_input` keeps its input, so that a pure black or white pixel can still change.
INPUT_SKIP_EPS = 1e-3


def add_to_input(x: torch.Tensor, out: torch.Tensor, eps: float = INPUT_SKIP_EPS) -> torch.Tensor:
    """A Tanh output ``out = tanh(z)`` re-based on the network's input ``x`` (both in [-1, 1]):
    ``tanh(atanh(x) + z) = (x + out) / (1 + x·out)`` (the tanh addition formula, so no atanh is evaluated).

    A network whose pre-activation ``z`` is 0 then returns its input, and the output stays in (-1, 1) with a
    smooth gradient everywhere (an additive skip ``x + out`` would have to be clipped). ``x`` is kept in
    ``[-1 + eps, 1 - eps]``; a 1-channel ``x`` is broadcast over ``out``'s channels.

    Used by the ``output_skip`` option of the unpaired methods' quick presets (see their cards).
    """
    base = x.clamp(-1.0 + eps, 1.0 - eps)
    if base.shape[1] != out.shape[1]:
        if base.shape[1] != 1:
            raise ValueError(f"add_to_input: input has {base.shape[1]} channels, output {out.shape[1]}; "
                             "need equal counts or a 1-channel input")
        base = base.expand_as(out)
    return (base + out) / (1.0 + base * out)
