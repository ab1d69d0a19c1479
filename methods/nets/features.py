"""Feature networks for the feature reconstruction (perceptual) loss, and where their weights come from.

The loss (Johnson, Alahi, Fei-Fei, ECCV 2016) compares activations of a fixed network for the generated and the
real image. Tarrés 2021 (§4.2, §5.1.1) uses VGG16 ``block3_conv3`` pretrained on ImageNet (and tried ResNet50).
Pretrained weights are looked up in the torch hub cache (``torch.hub.get_dir()/checkpoints/<torchvision file
name>``) or at an explicit path. Nothing is downloaded. When no weights are available, the caller trains a
classifier on its own training data (:func:`train_feature_classifier`) and says so; a randomly initialized
network is never used in place of a pretrained one.

Layouts follow torchvision so its checkpoints load: :func:`vgg16_block3` is ``vgg16().features[:16]`` (module
indices 0–15: conv1_1 … conv3_3 and its ReLU; 1,735,488 parameters at width 64), :func:`resnet50_layer1` is
``conv1, bn1, relu, maxpool, layer1`` of ``resnet50()`` (stride 4, 256 channels, the same resolution and width as
VGG16 block3).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_BACKBONES = ("vgg16", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: Keras ``imagenet_utils.preprocess_input(mode="caffe")``: RGB -> BGR, 0-255, minus these BGR means (no scaling).
#: This is the input the thesis's Keras VGG16 saw (Tarrés 2021, §5.1.1; Keras Applications [37]).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
#: Kinds of ImageNet weights, each with the input preprocessing it was trained for.
#:   caffe:       the original VGG16 of Simonyan & Zisserman (Caffe model zoo) — the weights Keras's VGG16 ships —
#:                converted to torchvision's layout by J. Johnson (jcjohnson/pytorch-vgg), "caffe" preprocessing;
#:   torchvision: torchvision's IMAGENET1K_V1 checkpoints, trained in PyTorch on ImageNet-normalized [0, 1] RGB.
WEIGHT_KINDS = ("caffe", "torchvision")
CAFFE_VGG16_FILE = "vgg16-00b39a1b.pth"
CAFFE_VGG16_URL = "https://web.eecs.umich.edu/~justincj/models/vgg16-00b39a1b.pth"


def weights_name(backbone: str, kind: str = "torchvision") -> str:
    """The name of the ImageNet weights of ``backbone`` / ``kind`` in colorbench's weights registry
    (``colorbench weights list``): ``vgg16``, ``resnet50`` (torchvision) or ``vgg16-caffe``."""
    if kind not in WEIGHT_KINDS:
        raise ValueError(f"unknown feature weights kind {kind!r}; choose one of {WEIGHT_KINDS}")
    if backbone not in FEATURE_BACKBONES:
        raise ValueError(f"unknown feature backbone {backbone!r}; choose one of {FEATURE_BACKBONES}")
    if kind == "caffe":
        if backbone != "vgg16":
            raise ValueError(f"caffe weights exist here only for vgg16, not {backbone!r}; use kind 'torchvision'")
        return "vgg16-caffe"
    return backbone


def pretrained_file_name(backbone: str, kind: str = "torchvision") -> str:
    """File name of the ImageNet weights of ``kind`` (torchvision's as saved in the hub cache by
    ``torchvision.models``; the Caffe VGG16 as jcjohnson/pytorch-vgg names it), from the weights registry."""
    from colorbench.core import weights

    return weights.get(weights_name(backbone, kind)).file_name


def pretrained_url(backbone: str, kind: str = "torchvision") -> str:
    """Where the weights file of ``kind`` is published (nothing is downloaded while running)."""
    from colorbench.core import weights

    return weights.get(weights_name(backbone, kind)).url


def hub_checkpoint_path(backbone: str, kind: str = "torchvision") -> Path:
    """Where the weights are looked for: ``torch.hub.get_dir()/checkpoints/<file name>``."""
    from colorbench.core import weights

    return weights.get(weights_name(backbone, kind)).path()


def find_pretrained(backbone: str, path: str = "", kind: str = "torchvision") -> Path | None:
    """The weights file to load: ``path`` if given (must exist), else the torch hub cache's copy, else None."""
    if path:
        p = Path(path).expanduser()
        if not p.is_file():
            raise FileNotFoundError(f"feature network weights {str(p)!r} not found (feature_weights option)")
        return p
    p = hub_checkpoint_path(backbone, kind)
    return p if p.is_file() else None


def missing_weights_message(who: str, backbone: str, kind: str) -> str:
    """'Put file X at path Y' for a missing ImageNet weights file."""
    other = "torchvision" if kind == "caffe" else "caffe"
    alt = ""
    if backbone == "vgg16":
        alt = (f"; or, with the option feature_weights_kind={other!r}, {pretrained_file_name(backbone, other)} "
               f"({pretrained_url(backbone, other)}) at {hub_checkpoint_path(backbone, other)}")
    return (f"{who} needs ImageNet {backbone} weights ({kind} kind) and none were found: put "
            f"{pretrained_file_name(backbone, kind)} (from {pretrained_url(backbone, kind)}; with internet access: "
            f"colorbench weights fetch {weights_name(backbone, kind)}) at "
            f"{hub_checkpoint_path(backbone, kind)}, or pass the option feature_weights=PATH{alt}. Nothing is "
            f"downloaded, and no other network is used in its place (the method gorriz-featrec-selftrained trains "
            f"its own feature network instead, under its own name)")


def vgg16_block3(width: int = 64) -> nn.Sequential:
    """VGG16 up to ``block3_conv3`` + ReLU (torchvision ``features[:16]``), widths ``width·(1, 2, 4)``."""
    layers: list[nn.Module] = []
    channels = 3
    for v in (1, 1, "M", 2, 2, "M", 4, 4, 4):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, width * v, 3, padding=1), nn.ReLU(inplace=False)]
            channels = width * v
    return nn.Sequential(*layers)


def resnet50_layer1() -> nn.Sequential:
    """ResNet50 up to ``layer1`` (torchvision module names kept, so its state dict loads)."""
    from torchvision.models import resnet50

    net = resnet50(weights=None)
    return nn.Sequential(dict(conv1=net.conv1, bn1=net.bn1, relu=net.relu, maxpool=net.maxpool, layer1=net.layer1))


def build_feature_network(backbone: str, width: int = 64) -> nn.Sequential:
    """The trunk for ``backbone``; ``width`` scales the VGG16 trunk (ResNet50 is only built at full width)."""
    if backbone == "vgg16":
        return vgg16_block3(width)
    if backbone == "resnet50":
        if width != 64:
            raise ValueError("the resnet50 feature network is only available at full width (feature_width 64)")
        return resnet50_layer1()
    raise ValueError(f"unknown feature backbone {backbone!r}; choose one of {FEATURE_BACKBONES}")


def file_sha256(path: Path) -> str:
    """sha256 of a file (recorded with the run, so a result says exactly which weights it used)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_pretrained_trunk(net: nn.Sequential, backbone: str, path: Path) -> None:
    """Load a torchvision ImageNet checkpoint's entries for the trunk ``net``; clear errors on mismatch."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    prefix = "features." if backbone == "vgg16" else ""
    wanted = net.state_dict()
    missing = [k for k in wanted if prefix + k not in state]
    if missing:
        raise ValueError(f"{path}: not a torchvision {backbone} checkpoint; missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    bad = [k for k, v in wanted.items() if tuple(state[prefix + k].shape) != tuple(v.shape)]
    if bad:
        raise ValueError(f"{path}: shapes of {bad[:4]} do not match the {backbone} trunk")
    net.load_state_dict({k: state[prefix + k] for k in wanted})


def imagenet_normalize(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> the input normalization of torchvision's ImageNet models."""
    mean = torch.tensor(IMAGENET_MEAN, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return (rgb - mean) / std


def caffe_preprocess(rgb: Tensor) -> Tensor:
    """sRGB in [0, 1] -> Keras's "caffe" VGG16 input: BGR channel order, 0-255, minus :data:`CAFFE_MEAN_BGR`.

    The same as ``keras.applications.vgg16.preprocess_input(255 * rgb)`` (channels last there)."""
    mean = torch.tensor(CAFFE_MEAN_BGR, device=rgb.device, dtype=rgb.dtype).view(1, 3, 1, 1)
    return rgb.flip(1) * 255.0 - mean


PREPROCESS = {"caffe": caffe_preprocess, "torchvision": imagenet_normalize}


def feature_reconstruction_loss(net: nn.Module, pred_rgb: Tensor, target_rgb: Tensor,
                                preprocess: str = "torchvision") -> Tensor:
    """Johnson et al.'s feature reconstruction loss: ``||φ(pred) - φ(target)||²₂ / (C·H·W)``, batch-averaged.

    Both images are sRGB in [0, 1]; ``net`` (frozen) sees them preprocessed as its weights expect
    (``"caffe"``: :func:`caffe_preprocess`; ``"torchvision"``: :func:`imagenet_normalize`). Gradients flow to
    ``pred_rgb``.
    """
    prep = PREPROCESS[preprocess]
    with torch.no_grad():
        target = net(prep(target_rgb))
    return F.mse_loss(net(prep(pred_rgb)), target)


@torch.no_grad()
def _accuracy(trunk: nn.Module, head: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> float:
    correct = 0
    for s in range(0, len(x), batch_size):
        correct += int((head(trunk(x[s : s + batch_size])).argmax(1) == y[s : s + batch_size]).sum())
    return correct / max(len(x), 1)


def train_feature_classifier(trunk: nn.Module, rgb_uint8: Tensor, labels: Tensor, *, epochs: int, lr: float,
                             batch_size: int, seed: int, device: torch.device) -> dict[str, Any]:
    """Train ``trunk`` (+ a global-pool linear head, dropped afterwards) as a classifier on the given images.

    If ``labels`` has at least two classes the task is to predict them; otherwise (one class, e.g. unlabeled
    data) it is rotation prediction (0/90/180/270°, Gidaris et al., ICLR 2018; 0/180° for non-square images), which
    any image set supports.
    The trunk is left in eval mode with frozen parameters. Randomness (head init, order, rotations) comes from a
    generator seeded with ``seed``; the global RNG is untouched. Returns what was done (for the method's record).
    """
    n_labels = int(labels.unique().numel())
    task = "labels" if n_labels >= 2 else "rotation"
    square = rgb_uint8.shape[-1] == rgb_uint8.shape[-2]
    n_classes = int(labels.max()) + 1 if task == "labels" else (4 if square else 2)
    g = torch.Generator().manual_seed(seed)
    trunk.to(device).train()
    for p in trunk.parameters():
        p.requires_grad_(True)
    with torch.no_grad():
        channels = trunk(torch.zeros(1, 3, *rgb_uint8.shape[-2:], device=device)).shape[1]
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, n_classes))
    with torch.no_grad():  # seeded init of the head, without touching the global RNG
        bound = 1.0 / math.sqrt(channels)
        head[2].weight.copy_(torch.rand(head[2].weight.shape, generator=g) * 2 * bound - bound)
        head[2].bias.zero_()
    head.to(device)
    opt = torch.optim.Adam([*trunk.parameters(), *head.parameters()], lr=lr)
    x_all = imagenet_normalize(rgb_uint8.float().div(255))
    y_all = labels.long()
    if task == "rotation":
        k = torch.randint(0, n_classes, (len(x_all),), generator=g)  # quarter turns (square) or half turns
        turns = k if square else 2 * k
        x_all = torch.stack([torch.rot90(x, int(r), dims=(-2, -1)) for x, r in zip(x_all, turns)])
        y_all = k
    x_all, y_all = x_all.to(device), y_all.to(device)
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(x_all), generator=g).to(device)
        total, steps = 0.0, 0
        for s in range(0, len(order), batch_size):
            idx = order[s : s + batch_size]
            loss = F.cross_entropy(head(trunk(x_all[idx])), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, steps = total + loss.item(), steps + 1
        losses.append(total / max(steps, 1))
    trunk.eval()
    for p in trunk.parameters():
        p.requires_grad_(False)
    head.eval()
    return {"task": task, "classes": n_classes, "images": len(x_all), "epochs": epochs,
            "final_loss": losses[-1] if losses else None,
            "train_accuracy": _accuracy(trunk, head, x_all, y_all, batch_size)}
