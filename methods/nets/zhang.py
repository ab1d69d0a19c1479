"""Zhang et al.'s colorization networks with the layer names of the authors' released PyTorch state dicts.

Facts read from the authors' repository (richzhang/colorization, master): ``colorizers/eccv16.py``
(``ECCVGenerator``), ``colorizers/siggraph17.py`` (``SIGGRAPHGenerator``), ``colorizers/base_color.py``
(``l_cent = 50``, ``l_norm = 100``, ``ab_norm = 110``: the networks see ``(L - 50) / 100`` and their ab output is
multiplied by 110). The code here is written anew; the module names (``model1`` … ``model8``, ``model_out``; and
for SIGGRAPH ``model8up``, ``model3short8``, ``model_class``, ...) and the indices inside each ``nn.Sequential``
are kept so that the released files load with ``strict=True``:

* :class:`ECCV16Net` (``colorization_release_v2-9b330a0b.pth``): eight blocks of 3×3 convs + ReLU followed by
  batch norm (block 8: a 4×4 stride-2 transposed conv and two convs, then a 1×1 conv to the 313 bin logits);
  blocks 1–3 end with a stride-2 conv; blocks 5–6 use dilation 2. ``model_out`` is a bias-free 1×1 conv 313 -> 2
  whose weights are the bin centres divided by 110: applied to the softmax it is the expectation of the colour
  distribution (the authors' forward: ``model_out(softmax(conv8))``, then ``upsample4`` bilinear ×4 and ×110).
  Logits come out at 1/4 of the input resolution. 32,236,011 parameters at width 64 (test-pinned).
* :class:`SIGGRAPH17Net` (``siggraph17-df00044c.pth``): a U-Net with inputs L, ab hints and a hint mask (4
  channels); blocks 1–3 are followed by a stride-2 *subsampling* (``x[:, :, ::2, ::2]``, not a strided conv),
  3 transposed-conv upsamplings with shortcut convs from blocks 3, 2, 1 (added), a LeakyReLU(0.2) and a Tanh
  regression head at full resolution (``model_class``, a 529-way 1×1 classifier on block 8, is in the file but not
  used by the automatic forward). 34,187,027 parameters (test-pinned).

The authors' SIGGRAPH forward computes its decoder twice with identical results (copy-paste in the release);
it is computed once here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

L_CENT, L_NORM, AB_NORM = 50.0, 100.0, 110.0  # colorizers/base_color.py


def center_l(L: Tensor) -> Tensor:
    """CIE L* in [0, 100] -> the networks' input ``(L - 50) / 100`` (the authors' ``normalize_l``; not
    :func:`colorbench.core.color.normalize_l`, which is pix2pix's ``L / 50 - 1``)."""
    return (L - L_CENT) / L_NORM


def _convs(channels: list[int], *, first_stride_last: int = 1, dilation: int = 1, norm: bool = True,
           relu_first: bool = False) -> nn.Sequential:
    """``conv3x3 + ReLU`` for each step of ``channels`` (the last conv with stride ``first_stride_last``), then batch
    norm; with ``relu_first`` a ReLU comes before the first conv (the SIGGRAPH decoder blocks)."""
    layers: list[nn.Module] = [nn.ReLU(True)] if relu_first else []
    for i, (cin, cout) in enumerate(zip(channels[:-1], channels[1:])):
        stride = first_stride_last if i == len(channels) - 2 else 1
        layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation), nn.ReLU(True)]
    if norm:
        layers.append(nn.BatchNorm2d(channels[-1]))
    return nn.Sequential(*layers)


class ECCV16Net(nn.Module):
    """Zhang, Isola, Efros (ECCV 2016): normalized L ``(N, 1, H, W)`` -> bin logits ``(N, Q, H/4, W/4)``.

    Args:
        width: channels of block 1 (64 in the release); blocks scale as 1, 2, 4, 8, 8, 8, 8 and 4 (block 8).
        n_bins: number of colour bins Q (313 in the release).

    ``model_out.weight`` (``(2, Q, 1, 1)``: bin centres / 110) is a fixed parameter (``requires_grad=False``): set
    it with :meth:`set_bins` or load it from a file. :meth:`decode` turns logits into normalized ab.
    """

    size_multiple = 8

    def __init__(self, width: int = 64, n_bins: int = 313) -> None:
        super().__init__()
        if width < 1 or n_bins < 2:
            raise ValueError(f"ECCV16Net: need width >= 1 and n_bins >= 2, got {width}, {n_bins}")
        w = width
        self.width, self.n_bins = w, n_bins
        self.model1 = _convs([1, w, w], first_stride_last=2)
        self.model2 = _convs([w, 2 * w, 2 * w], first_stride_last=2)
        self.model3 = _convs([2 * w, 4 * w, 4 * w, 4 * w], first_stride_last=2)
        self.model4 = _convs([4 * w, 8 * w, 8 * w, 8 * w])
        self.model5 = _convs([8 * w] * 4, dilation=2)
        self.model6 = _convs([8 * w] * 4, dilation=2)
        self.model7 = _convs([8 * w] * 4)
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(8 * w, 4 * w, 4, stride=2, padding=1), nn.ReLU(True),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1), nn.ReLU(True),
            nn.Conv2d(4 * w, n_bins, 1),
        )
        self.model_out = nn.Conv2d(n_bins, 2, 1, bias=False)
        self.model_out.weight.requires_grad_(False)

    def set_bins(self, bins_ab: Tensor) -> None:
        """Set the decoding layer from bin centres ``(Q, 2)`` in ab units."""
        if bins_ab.shape != (self.n_bins, 2):
            raise ValueError(f"expected ({self.n_bins}, 2) bin centres, got {tuple(bins_ab.shape)}")
        with torch.no_grad():
            self.model_out.weight.copy_((bins_ab.float() / AB_NORM).T.reshape(2, self.n_bins, 1, 1))

    def bins(self) -> Tensor:
        """The bin centres ``(Q, 2)`` in ab units held by ``model_out``."""
        return self.model_out.weight.detach()[:, :, 0, 0].T * AB_NORM

    def check_input(self, x: Tensor) -> None:
        if x.dim() != 4 or x.shape[1] != 1:
            raise ValueError(f"ECCV16Net expects (N, 1, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"ECCV16Net needs H and W divisible by {self.size_multiple}, got {h}×{w}")

    def forward(self, x: Tensor) -> Tensor:
        self.check_input(x)
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7,
                      self.model8):
            x = block(x)
        return x

    def decode(self, logits: Tensor, temperature: float = 1.0) -> Tensor:
        """Annealed mean (the paper's Eq. 5): ``softmax(logits / T)`` times the bin centres -> ab / 110, at the
        logits' resolution. ``T = 1`` is the plain mean (the authors' PyTorch forward); ``T -> 0`` the mode."""
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        return self.model_out(torch.softmax(logits.float() / temperature, dim=1))


class SIGGRAPH17Net(nn.Module):
    """Zhang et al. (SIGGRAPH 2017): normalized L, ab hints and mask -> normalized ab ``(N, 2, H, W)`` (Tanh).

    Args:
        classes: outputs of the unused classification head ``model_class`` (529 in the release).
    """

    size_multiple = 8

    def __init__(self, classes: int = 529) -> None:
        super().__init__()
        self.model1 = _convs([4, 64, 64])
        self.model2 = _convs([64, 128, 128])
        self.model3 = _convs([128, 256, 256, 256])
        self.model4 = _convs([256, 512, 512, 512])
        self.model5 = _convs([512] * 4, dilation=2)
        self.model6 = _convs([512] * 4, dilation=2)
        self.model7 = _convs([512] * 4)
        self.model8up = nn.Sequential(nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1))
        self.model3short8 = nn.Sequential(nn.Conv2d(256, 256, 3, padding=1))
        self.model8 = _convs([256, 256, 256], relu_first=True)
        self.model9up = nn.Sequential(nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1))
        self.model2short9 = nn.Sequential(nn.Conv2d(128, 128, 3, padding=1))
        self.model9 = _convs([128, 128], relu_first=True)
        self.model10up = nn.Sequential(nn.ConvTranspose2d(128, 128, 4, stride=2, padding=1))
        self.model1short10 = nn.Sequential(nn.Conv2d(64, 128, 3, padding=1))
        self.model10 = nn.Sequential(nn.ReLU(True), nn.Conv2d(128, 128, 3, padding=1), nn.LeakyReLU(0.2))
        self.model_class = nn.Sequential(nn.Conv2d(256, classes, 1))
        self.model_out = nn.Sequential(nn.Conv2d(128, 2, 1), nn.Tanh())

    def forward(self, L: Tensor, ab_hints: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """``L``: normalized lightness ``(N, 1, H, W)``; ``ab_hints`` (ab / 110) and ``mask`` default to zeros
        (the automatic mode, as the authors' forward without hints)."""
        if L.dim() != 4 or L.shape[1] != 1:
            raise ValueError(f"SIGGRAPH17Net expects (N, 1, H, W), got {tuple(L.shape)}")
        h, w = L.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"SIGGRAPH17Net needs H and W divisible by {self.size_multiple}, got {h}×{w}")
        zeros = L.new_zeros(L.shape[0], 1, h, w)
        ab_hints = torch.cat([zeros, zeros], 1) if ab_hints is None else ab_hints
        mask = zeros if mask is None else mask
        conv1 = self.model1(torch.cat([L, ab_hints, mask], dim=1))
        conv2 = self.model2(conv1[:, :, ::2, ::2])
        conv3 = self.model3(conv2[:, :, ::2, ::2])
        x = self.model4(conv3[:, :, ::2, ::2])
        x = self.model7(self.model6(self.model5(x)))
        x = self.model8(self.model8up(x) + self.model3short8(conv3))
        x = self.model9(self.model9up(x) + self.model2short9(conv2))
        x = self.model10(self.model10up(x) + self.model1short10(conv1))
        return self.model_out(x)


def load_released(net_factory, path, who: str) -> tuple[nn.Module, dict]:
    """Build a network on the meta device (no random initialisation at all) and assign the tensors of the state
    dict at ``path`` to it, strictly: every name and shape must match. Batch-norm ``num_batches_tracked``
    counters absent from a file (files saved by PyTorch < 0.4.1 have none) are set to 0 and reported.

    Returns:
        the network (on the CPU, eval mode) and facts for the method's notes.

    Raises:
        colorbench.core.weights.WeightsUnavailable: the file is not readable or not that network's state dict.
    """
    from colorbench.core.weights import WeightsUnavailable

    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # noqa: BLE001 - corrupt or not a torch file
        raise WeightsUnavailable(f"{who}: cannot read the weights file {path}: {err}") from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise WeightsUnavailable(f"{who}: {path} does not hold a state dict (got {type(state).__name__})")
    with torch.device("meta"):
        net = net_factory()
    expected = net.state_dict()
    state = {k.removeprefix("module."): v for k, v in state.items()}  # saved from nn.DataParallel
    filled = [k for k in expected if k.endswith("num_batches_tracked") and k not in state]
    for k in filled:
        state[k] = torch.zeros((), dtype=torch.long)
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state)
                   if not torch.is_tensor(state[k]) or tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or wrong:
        detail = "; ".join(f"{label} {keys[:5]}{' …' if len(keys) > 5 else ''}" for label, keys in
                           (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if keys)
        raise WeightsUnavailable(f"{who}: {path} is not the released state dict of this network: {detail}")
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    net.load_state_dict(state, strict=True, assign=True)
    return net.eval(), {"num_batches_tracked_filled": len(filled), "tensors": len(expected)}
