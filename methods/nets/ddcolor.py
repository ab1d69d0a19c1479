"""DDColor's network (Kang et al., "DDColor: Towards Photo-Realistic Image Colorization via Dual Decoders", ICCV
2023): a ConvNeXt encoder, a pixel decoder (three U-Net blocks with pixel-shuffle upsampling, DeOldify style) and a
colour decoder (100 learnable colour queries, 9 transformer layers cycling over three decoder scales), whose
query-by-pixel products are fused with the normalised input by a 1x1 convolution into ab.

Written from the facts of the authors' code (piddnad/DDColor ``basicsr/archs/ddcolor_arch.py`` and
``ddcolor_arch_utils/``, commit 2adb63f; the same code ships in the ``modelscope`` wheel,
``modelscope/models/cv/image_colorization/ddcolor/``), with the released files' tensor names so they load
strictly, and the same floating-point operations in the same order, so the outputs are bit-identical to the
authors' under the same weights (``tests/test_ddcolor.py`` checks it against the modelscope copy).

Facts that matter for loading and for the numbers:

* the input is the grey image as RGB in [0, 1] (``lab2rgb(L, 0, 0)``), normalised with the ImageNet mean and
  standard deviation (buffers ``mean`` and ``std`` in the files); the output is ab in Lab units, not normalised;
* the encoder's four feature maps are its ``norm0`` ... ``norm3`` outputs (channels-first LayerNorms the authors
  call through forward hooks); its final ``norm`` (a LayerNorm of the pooled features) is in the files but never
  affects the output; the modelscope copy (and, it seems, the released files) also has a 4-way ``head_cls`` the
  forward never calls: :func:`load_released` accepts and drops it;
* every convolution of the decoders is spectrally normalised (``torch.nn.utils.spectral_norm``: tensors
  ``weight_orig``, ``weight_u``, ``weight_v``); in eval mode the stored ``u``/``v`` are used as they are;
* the sides of the network input must be multiples of 32 (the encoder downsamples by 32, the decoder upsamples
  back by 2, 2, 2 and 4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: ImageNet mean and standard deviation the network normalises its RGB input with (buffers of the files).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The encoder downsamples by 32: network input sides must be multiples of it.
STRIDE = 32


@dataclass(frozen=True)
class ConvNeXtSpec:
    """Depths and widths of a ConvNeXt (Liu et al., CVPR 2022, Table 1 / ``models/convnext.py``)."""

    depths: tuple[int, int, int, int]
    dims: tuple[int, int, int, int]


#: The two encoders of the released checkpoints: DDColor-L (``ddcolor_paper``, ``_modelscope``, ``_artistic``) and
#: DDColor-T (``ddcolor_paper_tiny``).
ENCODERS = {
    "convnext-l": ConvNeXtSpec((3, 3, 27, 3), (192, 384, 768, 1536)),
    "convnext-t": ConvNeXtSpec((3, 3, 9, 3), (96, 192, 384, 768)),
}

#: Keys of the released files that the forward never reads (a 4-way classifier of the encoder's pooled features,
#: left over from the authors' ConvNeXt); accepted and dropped by :func:`load_released`.
UNUSED_RELEASED_KEYS = ("encoder.arch.head_cls.weight", "encoder.arch.head_cls.bias")


# --- encoder ----------------------------------------------------------------------------------------------------
class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of ``(N, C, H, W)``, written out as the authors do (mean, biased variance,
    ``(x - u) / sqrt(s + eps)``, then scale and shift), which is not bit-identical to ``F.layer_norm``."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class ConvNeXtBlock(nn.Module):
    """Depthwise 7x7 conv, LayerNorm (channels last), 4x MLP with GELU, layer scale ``gamma``, residual."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)
        y = self.pwconv2(F.gelu(self.pwconv1(self.norm(y))))
        return x + (self.gamma * y).permute(0, 3, 1, 2)


class ConvNeXt(nn.Module):
    """The ConvNeXt trunk; :meth:`forward` returns the four ``norm{i}`` feature maps (strides 4, 8, 16, 32)."""

    def __init__(self, spec: ConvNeXtSpec) -> None:
        super().__init__()
        d = spec.dims
        self.downsample_layers = nn.ModuleList(
            [nn.Sequential(nn.Conv2d(3, d[0], kernel_size=4, stride=4), LayerNorm2d(d[0]))]
            + [nn.Sequential(LayerNorm2d(d[i]), nn.Conv2d(d[i], d[i + 1], kernel_size=2, stride=2)) for i in range(3)])
        self.stages = nn.ModuleList(nn.Sequential(*[ConvNeXtBlock(d[i]) for _ in range(spec.depths[i])])
                                    for i in range(4))
        for i in range(4):
            self.add_module(f"norm{i}", LayerNorm2d(d[i]))
        self.norm = nn.LayerNorm(d[-1], eps=1e-6)  # in the files; its output (pooled features) is never used

    def forward(self, x: Tensor) -> list[Tensor]:
        feats = []
        for i in range(4):
            x = self.stages[i](self.downsample_layers[i](x))
            feats.append(getattr(self, f"norm{i}")(x))  # the trunk continues with the un-normalised x
        return feats


class ImageEncoder(nn.Module):
    """Holds the trunk as ``arch`` (the files' ``encoder.arch.*`` names)."""

    def __init__(self, spec: ConvNeXtSpec) -> None:
        super().__init__()
        self.arch = ConvNeXt(spec)

    def forward(self, x: Tensor) -> list[Tensor]:
        return self.arch(x)


# --- pixel decoder ---------------------------------------------------------------------------------------------
def spectral_conv(ni: int, nf: int, ks: int, bias: bool) -> nn.Module:
    """A spectrally normalised ``Conv2d`` (padding ``(ks - 1) // 2``), Kaiming-normal initialised, zero bias."""
    conv = nn.Conv2d(ni, nf, kernel_size=ks, padding=(ks - 1) // 2, bias=bias)
    nn.init.kaiming_normal_(conv.weight)
    if bias:
        nn.init.zeros_(conv.bias)
    return nn.utils.spectral_norm(conv)


class PixelShuffleUp(nn.Module):
    """1x1 spectral conv to ``nf * scale²`` channels (then batch norm if ``bn``), ReLU, pixel shuffle by ``scale``,
    and a 2x2 average blur after a one-pixel replicate pad on the top and left (Aitken et al. 2017)."""

    def __init__(self, ni: int, nf: int, scale: int, bn: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = [spectral_conv(ni, nf * scale**2, 1, bias=not bn)]
        if bn:
            layers.append(nn.BatchNorm2d(nf * scale**2))
        self.conv = nn.Sequential(*layers)
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        x = F.pixel_shuffle(F.relu(self.conv(x)), self.scale)
        return F.avg_pool2d(F.pad(x, (1, 0, 1, 0), mode="replicate"), 2, stride=1)


class UnetBlockWide(nn.Module):
    """Upsample the deeper features by 2 (:class:`PixelShuffleUp` with batch norm), concatenate the batch-normed
    skip features, ReLU, then 3x3 spectral conv, ReLU, batch norm."""

    def __init__(self, up_in: int, skip_in: int, n_out: int) -> None:
        super().__init__()
        self.shuf = PixelShuffleUp(up_in, n_out, 2, bn=True)
        self.bn = nn.BatchNorm2d(skip_in)
        self.conv = nn.Sequential(spectral_conv(n_out + skip_in, n_out, 3, bias=False), nn.ReLU(), nn.BatchNorm2d(n_out))

    def forward(self, up_in: Tensor, skip: Tensor) -> Tensor:
        return self.conv(F.relu(torch.cat([self.shuf(up_in), self.bn(skip)], dim=1)))


# --- colour decoder --------------------------------------------------------------------------------------------
def sine_position_encoding(x: Tensor, num_pos_feats: int, temperature: int = 10000) -> Tensor:
    """DETR's normalised sine position encoding of the grid of ``x`` ``(N, C, H, W)`` -> ``(N, 2·feats, H, W)``:
    (y, x) cumulative positions scaled to (0, 2π], ``sin`` on even and ``cos`` on odd frequencies."""
    n, _, h, w = x.shape
    ones = torch.ones((n, h, w), device=x.device, dtype=torch.float32)
    y_embed, x_embed = ones.cumsum(1), ones.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=x.device)
    dim_t = temperature ** (2 * (dim_t // 2) / num_pos_feats)
    pos_x, pos_y = x_embed[:, :, :, None] / dim_t, y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class SelfAttentionLayer(nn.Module):
    """Post-norm self-attention over the queries (positions added to queries and keys)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor, query_pos: Tensor) -> Tensor:
        q = k = tgt + query_pos
        return self.norm(tgt + self.self_attn(q, k, value=tgt)[0])


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention from the queries to one scale's features (positions added to both)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        out = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0]
        return self.norm(tgt + out)


class FFNLayer(nn.Module):
    """Post-norm feed-forward block (ReLU)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, hidden)
        self.linear2 = nn.Linear(hidden, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, tgt: Tensor) -> Tensor:
        return self.norm(tgt + self.linear2(F.relu(self.linear1(tgt))))


class MLP(nn.Module):
    """``layers`` Linear layers with ReLU between them."""

    def __init__(self, dim_in: int, hidden: int, dim_out: int, n_layers: int) -> None:
        super().__init__()
        dims = [dim_in] + [hidden] * (n_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:] + [dim_out]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x) if i == len(self.layers) - 1 else F.relu(layer(x))
        return x


class MultiScaleColorDecoder(nn.Module):
    """Colour queries refined by ``dec_layers`` (cross-attention, self-attention, FFN) layers, layer ``i`` attending
    to scale ``i mod num_scales``; the normalised queries, through a 3-layer MLP, are dotted with every pixel of the
    full-resolution image features: ``(N, num_queries, H, W)``."""

    def __init__(self, in_channels: tuple[int, ...], num_queries: int = 100, num_scales: int = 3,
                 dec_layers: int = 9, hidden: int = 256, heads: int = 8, ffn: int = 2048,
                 color_embed: int = 256) -> None:
        super().__init__()
        self.hidden, self.num_scales = hidden, num_scales
        self.transformer_self_attention_layers = nn.ModuleList(SelfAttentionLayer(hidden, heads) for _ in range(dec_layers))
        self.transformer_cross_attention_layers = nn.ModuleList(CrossAttentionLayer(hidden, heads) for _ in range(dec_layers))
        self.transformer_ffn_layers = nn.ModuleList(FFNLayer(hidden, ffn) for _ in range(dec_layers))
        self.decoder_norm = nn.LayerNorm(hidden)
        self.query_feat = nn.Embedding(num_queries, hidden)
        self.query_embed = nn.Embedding(num_queries, hidden)
        self.level_embed = nn.Embedding(num_scales, hidden)
        self.input_proj = nn.ModuleList(nn.Conv2d(c, hidden, kernel_size=1) for c in in_channels[:num_scales])
        self.color_embed = MLP(hidden, hidden, color_embed, 3)

    def forward(self, pyramid: list[Tensor], image_features: Tensor) -> Tensor:
        src, pos = [], []
        for i in range(self.num_scales):
            pos.append(sine_position_encoding(pyramid[i], self.hidden // 2).flatten(2).permute(2, 0, 1))
            s = self.input_proj[i](pyramid[i]).flatten(2) + self.level_embed.weight[i][None, :, None]
            src.append(s.permute(2, 0, 1))  # (HW, N, C)
        bs = src[0].shape[1]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, bs, 1)
        out = self.query_feat.weight.unsqueeze(1).repeat(1, bs, 1)  # (Q, N, C)
        for i in range(len(self.transformer_ffn_layers)):
            level = i % self.num_scales
            out = self.transformer_cross_attention_layers[i](out, src[level], pos[level], query_pos)
            out = self.transformer_self_attention_layers[i](out, query_pos)
            out = self.transformer_ffn_layers[i](out)
        queries = self.color_embed(self.decoder_norm(out).transpose(0, 1))  # (N, Q, C)
        return torch.einsum("bqc,bchw->bqhw", queries, image_features)


class DualDecoder(nn.Module):
    """The pixel decoder (three :class:`UnetBlockWide` from stride 32 to 4, then x4 pixel shuffle to full
    resolution) feeding the :class:`MultiScaleColorDecoder` its three scales and the full-resolution features."""

    def __init__(self, dims: tuple[int, int, int, int], nf: int = 512, num_queries: int = 100, num_scales: int = 3,
                 dec_layers: int = 9) -> None:
        super().__init__()
        outs = (nf, nf, nf // 2)
        ins = (dims[3], *outs[:2])
        self.layers = nn.ModuleList(UnetBlockWide(ins[k], dims[2 - k], outs[k]) for k in range(3))
        self.last_shuf = PixelShuffleUp(nf // 2, nf // 2, 4, bn=False)
        self.color_decoder = MultiScaleColorDecoder(outs, num_queries, num_scales, dec_layers)

    def forward(self, feats: list[Tensor]) -> Tensor:
        out0 = self.layers[0](feats[3], feats[2])
        out1 = self.layers[1](out0, feats[1])
        out2 = self.layers[2](out1, feats[0])
        return self.color_decoder([out0, out1, out2], self.last_shuf(out2))


class DDColorNet(nn.Module):
    """DDColor: RGB ``(N, 3, H, W)`` in [0, 1] (the grey image as RGB) -> ab ``(N, 2, H, W)`` in Lab units.

    Args:
        encoder: ``"convnext-l"`` (DDColor-L, the paper's model) or ``"convnext-t"`` (DDColor-T).
        num_queries, num_scales, dec_layers: the colour decoder (100, 3, 9 in every released file).
    """

    def __init__(self, encoder: str = "convnext-l", num_queries: int = 100, num_scales: int = 3,
                 dec_layers: int = 9) -> None:
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"unknown DDColor encoder {encoder!r}; choose one of {sorted(ENCODERS)}")
        spec = ENCODERS[encoder]
        self.encoder = ImageEncoder(spec)
        self.decoder = DualDecoder(spec.dims, 512, num_queries, num_scales, dec_layers)
        self.refine_net = nn.Sequential(nn.Sequential(spectral_conv(num_queries + 3, 2, 1, bias=True)))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, rgb: Tensor) -> Tensor:
        if rgb.shape[-2] % STRIDE or rgb.shape[-1] % STRIDE:
            raise ValueError(f"DDColor's input sides must be multiples of {STRIDE}, got {tuple(rgb.shape[-2:])}")
        x = (rgb - self.mean) / self.std
        queries = self.decoder(self.encoder(x))
        return self.refine_net(torch.cat([queries, x], dim=1))


def parameter_count(encoder: str) -> int:
    """Parameters of :class:`DDColorNet` (counted on the meta device: nothing is allocated)."""
    with torch.device("meta"):
        net = DDColorNet(encoder)
    return sum(p.numel() for p in net.parameters())


def load_released(encoder: str, path: Any, who: str) -> tuple[DDColorNet, dict[str, Any]]:
    """Build :class:`DDColorNet` on the meta device (no random initialisation) and assign the tensors of the
    authors' file at ``path``: a state dict, or a BasicSR checkpoint holding it under ``"params"``, with an optional
    ``"module."`` prefix. Strict: every name and shape must match, except the unused :data:`UNUSED_RELEASED_KEYS`,
    which may be present (they are dropped and counted in the facts).

    Returns:
        the network (CPU, eval mode) and facts for the method's notes.

    Raises:
        colorbench.core.weights.WeightsUnavailable: the file cannot be read or is not this network's state dict.
    """
    from colorbench.core.weights import WeightsUnavailable

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - corrupt or not a torch file
        raise WeightsUnavailable(f"{who}: cannot read the weights file {path}: {err}") from err
    wrapper = None
    for key in ("params", "params_ema", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            wrapper, state = key, state[key]
            break
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{who}: {path} does not hold a state dict (got {type(state).__name__})")
    net, facts = assign_state(encoder, state, f"{who}: {path}")
    return net, {**facts, "wrapper_key": wrapper}


def assign_state(encoder: str, state: dict[str, Tensor], where: str) -> tuple[DDColorNet, dict[str, Any]]:
    """The strict part of :func:`load_released`: a meta-built :class:`DDColorNet` given the tensors of ``state``
    (``where`` names the source in errors)."""
    from colorbench.core.weights import WeightsUnavailable

    state = {k.removeprefix("module."): v for k, v in state.items()}
    dropped = [k for k in UNUSED_RELEASED_KEYS if k in state]
    for k in dropped:
        del state[k]
    with torch.device("meta"):
        net = DDColorNet(encoder)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not torch.is_tensor(state[k]) or tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label} {keys[:5]}{' …' if len(keys) > 5 else ''} ({len(keys)})" for label, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise WeightsUnavailable(f"{where} is not a DDColor ({encoder}) state dict: {detail}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    # Parameters keep requires_grad=True, as in the authors' pipeline: nn.MultiheadAttention takes another kernel
    # path when no parameter requires grad (measured: outputs differ by 1 ulp), so freezing them would break the
    # bit-identity with the authors' outputs. Inference runs under torch.no_grad().
    for p in net.parameters():
        p.requires_grad_(True)
    return net.eval(), {"tensors": len(expected), "unused_keys_dropped": dropped}
