"""Cross-domain classification: what a method's colorizations do for a downstream classifier.

Following SpyncoGan (Ratajczak et al., SUMAC 2019, §5.3 and §6.2.3, Fig. 7, Table 3), each *image set* (domain)
of a run — the real colour images (``real-color``), their grey versions (``real-gray``, the run's grey input
replicated to three channels) and each method's colorization of the grey images (per evaluated epoch when
``--eval-every`` is used) — has a training and a test split. One classifier is trained on each training split
and tested on every test split: the **cross-domain accuracy matrix** (training set x test set, top-1 %). The
**Table-3 average** of a training set is its row mean: the accuracy averaged over all real and colorized test
sets (its own included, as the paper's "averaged on all real and colorized datasets" reads).

Layout inside a run directory::

    domains/labels.npz                     # train, test (int64 labels), class_names
    domains/<domain>/train.npy, test.npy   # uint8 (N, C, H, W); C = 1 for real-gray (replicated on load)
    domains/<domain>/meta.json             # kind ("real" or "method"), method, epoch, final, grey convention
    cross_domain/accuracy.csv              # the matrix: index "train", one column per test set
    cross_domain/summary.csv               # per training set: Table-3 average, own-test accuracy, ...
    cross_domain/result.json               # classifier config, domains, seed, timings (what reports read)

Domains of a method's intermediate epochs are named ``<method>@e<epoch>``; the final one is ``<method>``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from colorbench.core.color import grey_to_rgb
from colorbench.core.fsio import atomic_write_dir

REAL_COLOR = "real-color"
REAL_GRAY = "real-gray"
DOMAINS_DIR = "domains"
RESULTS_DIR = "cross_domain"
#: Key of the Table-3 average in each method's record (``RunRecord.metrics``).
METRIC_KEY = "cross_domain_avg"
METRIC_VERSION = "1"

# ImageNet statistics: the input normalization of torchvision's architectures (for the classifiers trained from
# scratch it only centres the inputs; the pretrained ones were trained on it).
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


# ---------------------------------------------------------------------------------------------------------------
# Classifiers
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClassifierConfig:
    """How the cross-domain classifiers are built and trained (the same for every training set).

    Attributes:
        preset: the preset name this came from.
        arch: ``"small-cnn"``, ``"alexnet-bn"``, ``"vgg16"`` or ``"vgg16_bn"``.
        epochs: training epochs.
        batch_size: training batch size.
        lr: initial learning rate, multiplied by ``gamma`` at each fraction of training in ``milestones``.
        milestones: fractions of the total number of steps where the learning rate decays.
        gamma: the decay factor.
        optimizer: ``"adam"`` or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 weight decay of the optimizer.
        input_size: images are resized (bilinear) to this square side; ``None`` keeps the native size.
        eval_batch_size: batch size when testing.
        pretrained: start from torchvision's ImageNet weights (``vgg16`` / ``vgg16_bn`` only) read from a file,
            with the last layer replaced by a seeded one for the dataset's classes; False trains from scratch.
        weights: the weights file; "" looks for torchvision's file name in ``torch.hub.get_dir()/checkpoints``.
            Nothing is downloaded: a missing file is an error naming the file and where to put it.
    """

    preset: str
    arch: str
    epochs: int
    batch_size: int
    lr: float
    milestones: tuple[float, ...] = (1 / 3, 2 / 3)
    gamma: float = 0.1
    optimizer: str = "adam"
    weight_decay: float = 0.0
    input_size: int | None = None
    eval_batch_size: int = 256
    pretrained: bool = False
    weights: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown classifier architecture {self.arch!r}; choose one of {sorted(ARCHITECTURES)}")
        if self.pretrained and self.arch not in PRETRAINED_FILES:
            raise ValueError(f"pretrained classifiers exist for {sorted(PRETRAINED_FILES)}, not {self.arch!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}; choose 'adam' or 'sgd'")
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ValueError(f"epochs, batch_size and eval_batch_size must be >= 1, got {self}")
        if not all(0 < m < 1 for m in self.milestones):
            raise ValueError(f"milestones are fractions of training in (0, 1), got {self.milestones}")

    def to_params(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["milestones"] = [round(m, 4) for m in self.milestones]
        return d


class SmallCNN(nn.Sequential):
    """The ``quick`` classifier: three 3x3 conv-BN-ReLU blocks of 16, 32 and 64 channels (the first with stride 2,
    the second followed by 2x2 max-pooling), global average pooling and a linear layer; works at any input size
    >= 4. The stride-2 first block keeps a classifier at 32x32 to a few seconds on a CPU (on `photos` it also
    scored higher than full-resolution first blocks: 75.4 vs 72.0 % on real colour, 4 epochs, seed 0)."""

    def __init__(self, num_classes: int, width: int = 16) -> None:
        w = width
        super().__init__(
            nn.Conv2d(3, w, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 4 * w, 3, padding=1, bias=False), nn.BatchNorm2d(4 * w), nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
        )


def _tv_models() -> Any:
    """torchvision.models, imported when a classifier is built (importing torchvision costs as much as torch: it
    imports torch._dynamo; a run without --cross-domain never needs it)."""
    import torchvision.models

    return torchvision.models


def alexnet_bn(num_classes: int) -> nn.Module:
    """AlexNet with batch normalization: torchvision's AlexNet layout with a ``BatchNorm2d`` after every
    convolution and a ``BatchNorm1d`` after each hidden fully connected layer (before the ReLU).

    torchvision has no AlexNet-BN (the paper's classifier on CIFAR-10), so it is made here from
    ``torchvision.models.alexnet``'s layers; the position of the BN layers follows the usual "conv/linear -> BN
    -> ReLU" order of ``vgg16_bn``.
    """
    base = _tv_models().alexnet(weights=None, num_classes=num_classes)

    def with_bn(seq: nn.Sequential) -> nn.Sequential:
        layers: list[nn.Module] = []
        for layer in seq:
            layers.append(layer)
            if isinstance(layer, nn.Conv2d):
                layers.append(nn.BatchNorm2d(layer.out_channels))
            elif isinstance(layer, nn.Linear) and layer is not seq[-1]:
                layers.append(nn.BatchNorm1d(layer.out_features))
        return nn.Sequential(*layers)

    base.features = with_bn(base.features)
    base.classifier = with_bn(base.classifier)
    return base


ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {
    "small-cnn": SmallCNN,
    "alexnet-bn": alexnet_bn,
    "vgg16": lambda k: _tv_models().vgg16(weights=None, num_classes=k),
    "vgg16_bn": lambda k: _tv_models().vgg16_bn(weights=None, num_classes=k),
}

#: torchvision's ImageNet weights files of the architectures that have them (``IMAGENET1K_V1``).
#: (names in colorbench's weights registry, ``colorbench weights list``).
PRETRAINED_FILES = {"vgg16": "vgg16"}


def pretrained_weights_path(config: "ClassifierConfig") -> Path:
    """The ImageNet weights file of a pretrained classifier config; FileNotFoundError (what to put where) if absent."""
    from colorbench.core import weights

    entry = weights.get(PRETRAINED_FILES[config.arch])
    path = Path(config.weights).expanduser() if config.weights else entry.path()
    if not path.is_file():
        raise FileNotFoundError(
            f"cross-domain classifier preset {config.preset!r} starts from ImageNet {config.arch} weights: put "
            f"{entry.file_name} (from {entry.url}; with internet access: colorbench weights fetch {entry.name}) at "
            f"{path}; nothing is downloaded while running. Or use a preset that trains from scratch (paper-vgg16, "
            f"quick)")
    return path


#: Classifier presets. ``paper-*`` follow §5.3 of the SpyncoGan paper: 256x256 inputs, lr 1e-4 decayed x0.1 at
#: 33 % and 66 % of training, AlexNet-BN for 20 epochs (CIFAR-10) or VGG-16 for 40 epochs (UCMerced). The paper
#: does not name the optimizer, batch size or weight decay: Adam (an lr of 1e-4 is Adam's range, far too small
#: for plain SGD from scratch), batch 32, no weight decay are our choices. It does not say whether the networks
#: were pretrained; colorbench trains them from scratch (no weights are ever downloaded). ``paper`` picks
#: ``paper-alexnet`` for datasets whose name contains "cifar" and ``paper-vgg16`` otherwise.
#: ``paper-vgg16-imagenet`` is ``paper-vgg16`` started from torchvision's ImageNet VGG-16 (weights from a file):
#: Table 3's 92–97 % on UCMerced (2,100 images) at lr 1e-4 for 40 epochs is what a pretrained VGG-16 reaches; from
#: scratch it is not (so the paper's networks were most likely ImageNet-pretrained, though §5.3 does not say).
#: ``quick`` is a small CNN at native resolution, 4 epochs with Adam (lr 3e-3, same decay steps): a few seconds
#: per training set on a CPU at 32x32.
CLASSIFIER_PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(arch="small-cnn", epochs=4, batch_size=64, lr=3e-3, input_size=None, eval_batch_size=512),
    "paper-alexnet": dict(arch="alexnet-bn", epochs=20, batch_size=32, lr=1e-4, input_size=256, eval_batch_size=64),
    "paper-vgg16": dict(arch="vgg16", epochs=40, batch_size=32, lr=1e-4, input_size=256, eval_batch_size=64),
    "paper-vgg16-imagenet": dict(arch="vgg16", epochs=40, batch_size=32, lr=1e-4, input_size=256, eval_batch_size=64,
                                 pretrained=True),
}


def classifier_config(preset: str = "quick", dataset: str = "", **overrides: Any) -> ClassifierConfig:
    """The :class:`ClassifierConfig` of a preset (``"paper"`` resolved by dataset name), with overrides."""
    name = preset
    if preset == "paper":
        name = "paper-alexnet" if "cifar" in dataset.lower() else "paper-vgg16"
    if name not in CLASSIFIER_PRESETS:
        raise ValueError(f"unknown classifier preset {preset!r}; choose one of {['paper', *CLASSIFIER_PRESETS]}")
    values = {**CLASSIFIER_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    config = ClassifierConfig(preset=name, **values)
    if config.pretrained:
        pretrained_weights_path(config)  # a missing weights file is an error now, before any training
    return config


def build_classifier(config: ClassifierConfig, num_classes: int) -> nn.Module:
    """The classifier of ``config``: from scratch, or (``pretrained``) torchvision's ImageNet weights from a file
    with the last linear layer re-initialised (from the current RNG) for ``num_classes``."""
    if not config.pretrained:
        return ARCHITECTURES[config.arch](num_classes)
    path = pretrained_weights_path(config)
    model = getattr(_tv_models(), config.arch)(weights=None)
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except (RuntimeError, KeyError) as exc:
        raise ValueError(f"{path} is not a torchvision {config.arch} ImageNet checkpoint: {exc}") from None
    last = model.classifier[-1]
    model.classifier[-1] = nn.Linear(last.in_features, num_classes)
    return model


def _prepare(x: Tensor, config: ClassifierConfig, device: torch.device) -> Tensor:
    """uint8 (B, C, H, W) -> normalized float (B, 3, S, S) on ``device`` (grey replicated, resized if asked)."""
    x = x.to(device, non_blocking=True).float().div_(255.0)
    if x.shape[1] == 1:
        x = grey_to_rgb(x)
    if config.input_size is not None and tuple(x.shape[-2:]) != (config.input_size,) * 2:
        x = F.interpolate(x, size=(config.input_size,) * 2, mode="bilinear", align_corners=False)
    mean = torch.tensor(_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(_STD, device=device).view(1, 3, 1, 1)
    return (x - mean) / std


def train_classifier(
    images: Tensor, labels: Tensor, num_classes: int, config: ClassifierConfig, *, seed: int = 0,
    device: torch.device | str = "cpu", progress: bool = False, desc: str = "classifier",
) -> nn.Module:
    """Train one classifier on uint8 images ``(N, C, H, W)`` (C = 1 or 3) with int64 ``labels``.

    Initialization, data order and dropout are seeded by ``seed`` alone (the global RNG state is restored
    afterwards), so every training set gets the same initial network and the same batch order.
    """
    device = torch.device(device)
    _check_images(images, "training images")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
    n = images.shape[0]
    steps_per_epoch = math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs
    milestones = sorted({max(1, round(m * total)) for m in config.milestones})
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model = build_classifier(config, num_classes).to(device)
        order = torch.Generator().manual_seed(seed)
        params = model.parameters()
        if config.optimizer == "adam":
            opt: torch.optim.Optimizer = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
        else:
            opt = torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=config.gamma)
        model.train()
        labels = labels.long()
        for epoch in range(1, config.epochs + 1):
            perm = torch.randperm(n, generator=order)
            bar = tqdm(range(0, n, config.batch_size), desc=f"{desc} epoch {epoch}/{config.epochs}", leave=False,
                       disable=not progress)
            for start in bar:
                idx = perm[start : start + config.batch_size]
                if len(idx) < 2 and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
                    sched.step()  # a batch of one cannot be batch-normalized; skip it but keep the schedule
                    continue
                x = _prepare(images[idx], config, device)
                loss = F.cross_entropy(model(x), labels[idx].to(device))
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{desc}: classifier loss is {loss.item()} at epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
    model.eval()
    return model


@torch.inference_mode()
def accuracy(model: nn.Module, images: Tensor, labels: Tensor, config: ClassifierConfig,
             device: torch.device | str = "cpu") -> float:
    """Top-1 accuracy (%) of ``model`` on uint8 images ``(N, C, H, W)``."""
    device = torch.device(device)
    _check_images(images, "test images")
    if labels.shape != (images.shape[0],) or images.shape[0] == 0:
        raise ValueError(f"labels must have shape ({images.shape[0]},) with N > 0, got {tuple(labels.shape)}")
    model.eval()
    correct = 0
    for start in range(0, images.shape[0], config.eval_batch_size):
        x = _prepare(images[start : start + config.eval_batch_size], config, device)
        pred = model(x).argmax(1).cpu()
        correct += int((pred == labels[start : start + config.eval_batch_size]).sum())
    return 100.0 * correct / images.shape[0]


def _check_images(images: Tensor, what: str) -> None:
    if not torch.is_tensor(images) or images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        dtype = getattr(images, "dtype", None)
        raise ValueError(f"{what} must be a uint8 tensor (N, 1 or 3, H, W), got {dtype} {shape}")


# ---------------------------------------------------------------------------------------------------------------
# Domains on disk
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Domain:
    """One image set of a run: its name, where it comes from and its two splits on disk."""

    name: str
    kind: str  # "real" or "method"
    path: Path
    method: str | None = None
    epoch: int | None = None
    final: bool = True  # False for a method's intermediate (--eval-every) epochs

    @property
    def label(self) -> str:
        """Short display label (``R-C``, ``R-G`` as in the paper's Fig. 7; ``method [epoch]`` with epochs)."""
        if self.name == REAL_COLOR:
            return "R-C"
        if self.name == REAL_GRAY:
            return "R-G"
        return f"{self.method} [{self.epoch}]" if self.epoch is not None and not self.final else str(self.method)

    def load(self, split: str) -> Tensor:
        """The split's images as a uint8 tensor (N, C, H, W), C = 1 (grey) or 3."""
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        file = self.path / f"{split}.npy"
        if not file.is_file():
            raise FileNotFoundError(f"domain {self.name!r}: missing {file}")
        arr = np.load(file)
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise ValueError(f"domain {self.name!r}: {file} must be uint8 (N, 1 or 3, H, W), got {arr.dtype} {arr.shape}")
        return torch.from_numpy(arr)


def domain_name(method: str, epoch: int | None = None, final: bool = True) -> str:
    """``<method>`` for a method's final colorizations, ``<method>@e<epoch>`` for an intermediate epoch."""
    if not method or "/" in method or "\\" in method or method.startswith("."):
        raise ValueError(f"cannot make a domain directory for method name {method!r}")
    if method in (REAL_COLOR, REAL_GRAY):
        raise ValueError(f"method name {method!r} clashes with a real image set")
    return method if final else f"{method}@e{epoch}"


def _write_domain(root: Path, name: str, train: np.ndarray, test: np.ndarray, meta: dict[str, Any]) -> Path:
    """Write one domain atomically (``core.fsio.atomic_write_dir``: a folder renamed into place), replacing an older
    one."""
    for split, arr in (("train", train), ("test", test)):
        if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise ValueError(f"domain {name!r} {split}: expected uint8 (N, 1 or 3, H, W), got {arr.dtype} {arr.shape}")

    def fill(tmp: Path) -> None:
        np.save(tmp / "train.npy", np.ascontiguousarray(train))
        np.save(tmp / "test.npy", np.ascontiguousarray(test))
        (tmp / "meta.json").write_text(json.dumps({"name": name, **meta}, indent=2))

    return atomic_write_dir(root / DOMAINS_DIR / name, fill)


def _to_uint8(x: Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def save_real_domains(run_dir: str | Path, data: Any, grey_convention: str) -> None:
    """Write ``real-color``, ``real-gray`` (the run's grey input, one channel) and the labels of a dataset.

    Args:
        run_dir: the run directory.
        data: a :class:`~colorbench.datasets.DatasetSplits`.
        grey_convention: the run's grey convention (the grey every method was given).
    """
    root = Path(run_dir)
    (root / DOMAINS_DIR).mkdir(parents=True, exist_ok=True)
    from colorbench.core.fsio import atomic_write_with

    atomic_write_with(root / DOMAINS_DIR / "labels.npz", lambda buf: np.savez(
        buf, train=data.train.labels.numpy(), test=data.test.labels.numpy(), class_names=np.array(data.train.class_names)))
    meta = {"kind": "real", "grey_convention": grey_convention}
    _write_domain(root, REAL_COLOR, data.train.rgb.numpy(), data.test.rgb.numpy(), meta)
    grey = {}
    for split in ("train", "test"):
        images = getattr(data, split)
        grey[split] = np.concatenate([
            _to_uint8(b.gray) for b in images.batches(1024, grey_convention=grey_convention)
        ]) if len(images) else np.zeros((0, 1, *images.image_size), np.uint8)
    _write_domain(root, REAL_GRAY, grey["train"], grey["test"], meta)


def save_method_domain(
    run_dir: str | Path, method: Any, data: Any, grey_convention: str, device: torch.device | str,
    *, epoch: int | None = None, final: bool = True, batch_size: int = 64, progress: bool = False,
) -> float:
    """Colorize a dataset's training and test splits with a trained method and write them as its domain.

    Args:
        run_dir: the run directory.
        method: a trained :class:`~colorbench.methods.Method` (its ``card.name`` names the domain).
        data: the run's :class:`~colorbench.datasets.DatasetSplits`.
        grey_convention: the run's grey convention.
        device: the method's device.
        epoch: the training epoch of these colorizations (recorded, and in the name when not ``final``).
        final: whether this is the method's final (evaluated) state.
        batch_size: colorization batch size.
        progress: show a progress bar.

    Returns:
        Seconds spent.
    """
    from colorbench.methods.base import checked_colorize  # the method contract check (shape, range, finiteness)

    t0 = time.perf_counter()
    name = domain_name(method.card.name, epoch, final)
    out = {}
    for split in ("train", "test"):
        images = getattr(data, split)
        chunks = []
        batches = images.batches(batch_size, device=device, grey_convention=grey_convention)
        for batch in tqdm(batches, total=math.ceil(len(images) / batch_size), leave=False,
                          desc=f"{name} colorize {split}", disable=not progress):
            with torch.no_grad():
                chunks.append(_to_uint8(checked_colorize(method, batch.gray)))
        out[split] = np.concatenate(chunks)
    meta = {"kind": "method", "method": method.card.name, "epoch": epoch, "final": final,
            "grey_convention": grey_convention}
    _write_domain(Path(run_dir), name, out["train"], out["test"], meta)
    return time.perf_counter() - t0


def list_domains(run_dir: str | Path, methods: Sequence[str] | None = None) -> list[Domain]:
    """The domains saved in a run: real-color, real-gray, then each method's (in ``methods`` order if given,
    intermediate epochs before the final one). With ``methods``, domains of other methods are left out.

    Raises:
        FileNotFoundError: the run has no ``domains/`` folder or no real domains (not run with --cross-domain).
    """
    root = Path(run_dir) / DOMAINS_DIR
    if not (root / REAL_COLOR).is_dir() or not (root / REAL_GRAY).is_dir():
        raise FileNotFoundError(
            f"{root} holds no saved image sets: the run was made without --cross-domain (its methods' colorized "
            f"training sets were not kept); rerun it with `colorbench run ... --cross-domain`"
        )
    found: list[Domain] = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        meta_file = sub / "meta.json"
        if not meta_file.is_file():
            raise FileNotFoundError(f"domain folder {sub} has no meta.json")
        meta = json.loads(meta_file.read_text())
        found.append(Domain(name=sub.name, kind=meta["kind"], path=sub, method=meta.get("method"),
                            epoch=meta.get("epoch"), final=meta.get("final", True)))
    real = [d for d in found if d.kind == "real"]
    real.sort(key=lambda d: (d.name != REAL_COLOR, d.name))
    by_method = [d for d in found if d.kind == "method"]
    order = list(methods) if methods is not None else sorted({d.method for d in by_method})  # type: ignore[arg-type]
    by_method = [d for d in by_method if d.method in order]
    by_method.sort(key=lambda d: (order.index(d.method), d.final, d.epoch if d.epoch is not None else -1))
    return real + by_method


def load_labels(run_dir: str | Path) -> tuple[Tensor, Tensor, list[str]]:
    """Train labels, test labels and class names saved with the domains."""
    path = Path(run_dir) / DOMAINS_DIR / "labels.npz"
    if not path.is_file():
        raise FileNotFoundError(f"missing {path}: the run was made without --cross-domain")
    with np.load(path) as z:
        return torch.from_numpy(z["train"]).long(), torch.from_numpy(z["test"]).long(), [str(c) for c in z["class_names"]]


# ---------------------------------------------------------------------------------------------------------------
# The accuracy matrix and the Table-3 summary
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class CrossDomainResult:
    """The cross-domain evaluation of a run.

    Attributes:
        accuracy: top-1 % — rows: training sets, columns: test sets (same names, same order).
        domains: the image sets, in matrix order.
        config: the classifier configuration.
        seed: the classifiers' seed.
        timings: seconds (``train_s``, ``eval_s``, ``total_s``).
    """

    accuracy: pd.DataFrame
    domains: list[Domain]
    config: ClassifierConfig
    seed: int
    timings: dict[str, float]

    def summary(self) -> pd.DataFrame:
        """The Table-3 summary: one row per training set (see :func:`summary_frame`)."""
        return summary_frame(self.accuracy, self.domains)


def summary_frame(acc: pd.DataFrame, domains: Sequence[Domain]) -> pd.DataFrame:
    """Per training set: ``avg`` (Table 3: mean accuracy over all real and colorized test sets, its own
    included), ``avg_others`` (its own test set left out), ``own`` (on its own test set), ``on_real_color``."""
    rows = []
    for d in domains:
        row = acc.loc[d.name]
        rows.append({
            "train": d.name, "label": d.label, "kind": d.kind, "method": d.method, "epoch": d.epoch, "final": d.final,
            "avg": float(row.mean()), "avg_others": float(row.drop(d.name).mean()) if len(row) > 1 else float("nan"),
            "own": float(row[d.name]), "on_real_color": float(row[REAL_COLOR]),
        })
    return pd.DataFrame(rows)


def cross_domain_matrix(
    run_dir: str | Path, config: ClassifierConfig, *, seed: int = 0, device: torch.device | str = "cpu",
    methods: Sequence[str] | None = None, progress: bool = True, log: Callable[[str], None] = print,
) -> CrossDomainResult:
    """Train one classifier per saved training set and test each on every saved test set.

    All test sets are loaded once; each classifier is trained, tested on all of them, and dropped, so memory
    holds one network and the uint8 image sets.
    """
    device = torch.device(device)
    domains = list_domains(run_dir, methods)
    y_train, y_test, classes = load_labels(run_dir)
    tests = {d.name: d.load("test") for d in domains}
    for d in domains:
        if tests[d.name].shape[0] != len(y_test):
            raise ValueError(f"domain {d.name!r}: {tests[d.name].shape[0]} test images for {len(y_test)} labels")
    acc = pd.DataFrame(np.nan, index=pd.Index([d.name for d in domains], name="train"),
                       columns=[d.name for d in domains])
    train_s = eval_s = 0.0
    t_all = time.perf_counter()
    for d in tqdm(domains, desc="cross-domain classifiers", disable=not progress):
        images = d.load("train")
        if images.shape[0] != len(y_train):
            raise ValueError(f"domain {d.name!r}: {images.shape[0]} training images for {len(y_train)} labels")
        t0 = time.perf_counter()
        model = train_classifier(images, y_train, len(classes), config, seed=seed, device=device, progress=progress,
                                 desc=f"classifier on {d.name}")
        t1 = time.perf_counter()
        for t in domains:
            acc.loc[d.name, t.name] = accuracy(model, tests[t.name], y_test, config, device)
        t2 = time.perf_counter()
        train_s, eval_s = train_s + t1 - t0, eval_s + t2 - t1
        log(f"    trained on {d.name}: {acc.loc[d.name, REAL_COLOR]:.1f} % on real-color, "
            f"row mean {acc.loc[d.name].mean():.1f} % ({t2 - t0:.1f} s)")
    timings = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t_all}
    return CrossDomainResult(accuracy=acc, domains=domains, config=config, seed=seed, timings=timings)


def save_result(run_dir: str | Path, result: CrossDomainResult) -> dict[str, Path]:
    """Write ``cross_domain/accuracy.csv``, ``summary.csv`` and ``result.json``."""
    out = Path(run_dir) / RESULTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths = {"accuracy": out / "accuracy.csv", "summary": out / "summary.csv", "result": out / "result.json"}
    from colorbench.core.fsio import atomic_write_json, atomic_write_text

    atomic_write_text(paths["accuracy"], result.accuracy.to_csv())  # a full disk: DiskFullError, no half file
    atomic_write_text(paths["summary"], result.summary().to_csv(index=False))
    info = {
        "classifier": result.config.to_params(), "seed": result.seed, "timings": result.timings,
        "domains": [{"name": d.name, "label": d.label, "kind": d.kind, "method": d.method, "epoch": d.epoch,
                     "final": d.final} for d in result.domains],
        "average": "Table 3 (SpyncoGan): mean top-1 % of a training set's classifier over all real and "
                   "colorized test sets, its own included",
    }
    atomic_write_json(paths["result"], info)
    return paths


def load_result(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]] | None:
    """``(accuracy, summary, info)`` saved in a run directory, or ``None`` if it has none."""
    from colorbench.results.rundir import RunDir

    return RunDir(run_dir).cross_domain()


def metric_value(result: CrossDomainResult, domain: str) -> "MetricValue":
    """The Table-3 average of one training set as a record :class:`~colorbench.results.records.MetricValue`."""
    from colorbench.results.records import MetricValue

    row = result.accuracy.loc[domain]
    params = {
        "classifier_preset": result.config.preset, "arch": result.config.arch, "epochs": result.config.epochs,
        "input_size": result.config.input_size or "native", "seed": result.seed, "n_test_sets": int(row.size),
        "average": "all real and colorized test sets, own included (SpyncoGan Table 3)",
    }
    return MetricValue(value=float(row.mean()), metric="cross_domain", version=METRIC_VERSION,
                       higher_is_better=True, params=params)


def attach_to_records(run_dir: str | Path, result: CrossDomainResult, others: Sequence[str] = ()) -> list[str]:
    """Put each method's Table-3 average into its record (``metrics["cross_domain_avg"]``) and its
    intermediate-epoch averages into the matching ``curve`` points. The records named in ``others`` (successful
    rows with no saved image set, e.g. a method's alternative outputs) get the metric as missing, with the reason.
    Returns the methods updated."""
    from colorbench.results.records import MetricValue
    from colorbench.results.rundir import RunDir

    rd = RunDir(run_dir)
    cells = {c.method: c for c in rd.cells() if c.status in ("ok", "failed") or c.legacy_path}
    updated = []
    with_sets = {d.method for d in result.domains if d.kind == "method"}
    for name in others:
        if name in with_sets or name not in cells:
            continue
        rec = rd.record(cells[name])
        rec.metrics[METRIC_KEY] = MetricValue(
            value=None, metric="cross_domain", version=METRIC_VERSION, higher_is_better=True,
            missing_reason="no colorized image set was saved for this row (the run that made it did not keep one)")
        rd.save_record(cells[name], rec)
    for d in result.domains:
        if d.kind != "method" or not d.final or d.method not in cells:
            continue
        rec = rd.record(cells[d.method])
        rec.metrics[METRIC_KEY] = metric_value(result, d.name)
        per_epoch = {e.epoch: float(result.accuracy.loc[e.name].mean()) for e in result.domains
                     if e.kind == "method" and e.method == d.method and e.epoch is not None}
        for point in rec.curve:
            if point.get("epoch") in per_epoch:
                point.setdefault("metrics", {})[METRIC_KEY] = per_epoch[point["epoch"]]
        rd.save_record(cells[d.method], rec)
        updated.append(str(d.method))
    return updated


def evaluate_run(
    run_dir: str | Path, preset: str = "quick", *, seed: int | None = None, device: str = "auto",
    epochs: int | None = None, progress: bool = True, log: Callable[[str], None] = print,
    write_report: bool = True,
) -> CrossDomainResult:
    """The cross-domain evaluation of a run directory (``colorbench cross-domain RUN_DIR``).

    Trains the classifiers on the saved image sets of the run's successful methods, writes the results under
    ``cross_domain/``, adds each method's Table-3 average to its record and rewrites the report.

    Args:
        run_dir: a run made with ``--cross-domain``.
        preset: classifier preset (``quick``, ``paper``, ``paper-alexnet``, ``paper-vgg16``).
        seed: classifier seed (default: the run's seed).
        device: ``auto``, ``cpu``, ``cuda``, ...
        epochs: overrides the preset's classifier epochs.
        progress: show progress bars.
        log: where progress lines go.
        write_report: rewrite ``results.csv``, ``leaderboard.md`` and the figures afterwards.
    """
    from colorbench.core.device import resolve_device
    from colorbench.results.rundir import RunDir

    run_dir = Path(run_dir)
    rd = RunDir(run_dir)  # not a run directory -> a clear error
    info = rd.info()
    records = rd.records()
    ok = [r.method for r in records if r.status == "ok"]
    skipped = [r.method for r in records if r.status != "ok"]
    if skipped:
        log(f"cross-domain: leaving out failed methods {skipped}")
    dataset = str(info.dataset.get("name", ""))
    config = classifier_config(preset, dataset, epochs=epochs)
    list_domains(run_dir, ok)  # no saved image sets -> a clear error before anything else
    if seed is None:
        seed = int(info.spec.get("seed", 0))
    dev = resolve_device(device)
    log(f"cross-domain: {config.arch} classifiers ({config.preset}, {config.epochs} epochs) on {dev}")
    if dev.type == "cpu" and config.input_size is not None:
        log(f"cross-domain: warning: {config.arch} at {config.input_size}x{config.input_size} on the CPU is very "
            "slow (the paper presets are meant for a GPU); the quick preset runs in seconds")
    result = cross_domain_matrix(run_dir, config, seed=seed, device=dev, methods=ok, progress=progress, log=log)
    save_result(run_dir, result)
    attach_to_records(run_dir, result, others=ok)
    if write_report:
        from colorbench.reports import write_report as _write_report

        _write_report(run_dir)
    return result


class CrossDomainStage:
    """The cross-domain evaluation as a stage of ``colorbench run --cross-domain`` (see :mod:`colorbench.engine.stages`):
    it keeps the real image sets at the start, each colorizer's train/test sets when it is ready, and trains the
    classifiers at the end. Picklable, so that process workers can keep their cells' image sets themselves."""

    def __init__(self, classifier: str = "quick", seed: int = 0, device: str = "auto", progress: bool = True) -> None:
        self.classifier, self.seed, self.device, self.progress = classifier, seed, device, progress

    def run_start(self, rd: Any, datasets: dict[str, Any], spec: Any) -> None:
        t0 = time.perf_counter()
        (data,) = datasets.values()
        save_real_domains(rd.path, data, spec.grey_convention)
        info = rd.info()
        info.timings["cross_domain_real_sets_s"] = time.perf_counter() - t0
        rd.write_info(info)

    def colorizer_ready(self, run_dir: str, method: Any, data: Any, spec: Any, device: Any, *, epoch: int | None,
                        final: bool) -> float:
        return save_method_domain(run_dir, method, data, spec.grey_convention, device, epoch=epoch, final=final,
                                  batch_size=spec.eval_batch_size, progress=spec.progress)

    def run_end(self, run_dir: Any, log: Callable[[str], None]) -> None:
        from colorbench.results.rundir import RunDir

        t0 = time.perf_counter()
        evaluate_run(run_dir, self.classifier, seed=self.seed, device=self.device, progress=self.progress, log=log,
                     write_report=False)
        rd = RunDir(run_dir)
        info = rd.info()
        info.timings["cross_domain_s"] = time.perf_counter() - t0
        rd.write_info(info)
