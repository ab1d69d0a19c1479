"""LPIPS (Zhang et al. 2018): the ``lpips`` package's network built from local weight files, and its distances."""

from __future__ import annotations

import functools
import os
import re
import warnings

import torch
from torch import Tensor

from colorbench.metrics.errors import MetricUnavailable
from colorbench.metrics.functional.checks import check_image_pair
from colorbench.metrics.functional.weights_file import load_weights_file
from colorbench.core.threads import caller_threads


#: lpips backbone name -> torchvision builder and weights enum name (the ImageNet weights lpips uses).
_LPIPS_BACKBONES = {
    "alex": ("alexnet", "AlexNet_Weights"),
    "vgg": ("vgg16", "VGG16_Weights"),
    "squeeze": ("squeezenet1_1", "SqueezeNet1_1_Weights"),
}
LPIPS_VERSION = "0.1"  # version of the lpips linear-layer weights (v0.0 had a known normalisation bug)


#: lpips backbone name -> the file's name in colorbench's weights registry (``colorbench weights list``).
_LPIPS_WEIGHTS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}


def _lpips_weights_entry(net: str):
    from colorbench.core import weights

    if net not in _LPIPS_BACKBONES:
        raise ValueError(f"unknown LPIPS net {net!r}; choose one of {tuple(_LPIPS_BACKBONES)}")
    return weights.get(_LPIPS_WEIGHTS[net])


def lpips_backbone_path(net: str = "alex", weights_path: str | os.PathLike | None = None) -> str:
    """Where the backbone's ImageNet weights are read from: ``weights_path`` if given, else torch hub's cache
    (``torch.hub.get_dir()/checkpoints/<torchvision's file name>``, where torchvision itself would put them)."""
    entry = _lpips_weights_entry(net)
    if weights_path is not None:
        return os.fspath(weights_path)
    return os.fspath(entry.path())


def build_lpips_model(
    net: str = "alex",
    weights_path: str | os.PathLike | None = None,
    *,
    check_hash: bool = True,
    random_backbone_for_tests: bool = False,
) -> torch.nn.Module:
    """Build the ``lpips.LPIPS`` network (linear layers v0.1 from the package) without any download.

    The backbone's ImageNet weights are loaded from :func:`lpips_backbone_path`; if that file is absent,
    :class:`MetricUnavailable` says where to put it. The package is asked for a random backbone
    (``pnet_rand=True``, so torchvision downloads nothing) which is then overwritten with the file's weights.
    Both files are looked up through colorbench's weights registry (:mod:`colorbench.core.weights`).

    Args:
        net: ``"alex"`` (default, as the LPIPS authors recommend for evaluation), ``"vgg"`` or ``"squeeze"``.
        weights_path: the torchvision state-dict file of the backbone; default: torch hub's cache.
        check_hash: check the file's SHA-256 against the prefix in torchvision's file name.
        random_backbone_for_tests: TEST ONLY: keep the randomly initialised backbone (seeded, deterministic) and
            read no file. Values computed this way are not LPIPS.
    """
    entry = _lpips_weights_entry(net)
    lin_path, lin_state = load_weights_file(
        f"lpips-{net}-lin", None, check_hash=False, who="LPIPS", what="lpips linear-layer",
        missing_hint=" (the lpips package's linear-layer weights are missing: reinstall lpips)")
    path = backbone_state = None
    if not random_backbone_for_tests:
        path, backbone_state = load_weights_file(
            entry.name, lpips_backbone_path(net, weights_path), check_hash=check_hash, who=f"LPIPS (net={net!r})",
            what="LPIPS backbone",
            missing_hint=(" For another location pass --lpips-weights FILE (weights_path=FILE). With internet access, "
                          f"torchvision.models.{_LPIPS_BACKBONES[net][0]}(weights='IMAGENET1K_V1') also downloads it "
                          "to torch hub's cache."))
        if not isinstance(backbone_state, dict) or not any(str(k).startswith("features.") for k in backbone_state):
            raise MetricUnavailable(
                f"{path} is not a torchvision {_LPIPS_BACKBONES[net][0]} state dict (no 'features.*' weights)"
            )
    import lpips as lpips_pkg  # after the files are found: it imports torchvision (and torch._dynamo), seconds

    with warnings.catch_warnings(), torch.random.fork_rng(devices=[]):
        warnings.simplefilter("ignore")  # torchvision's deprecation warnings for `pretrained=`
        torch.manual_seed(0)  # the random backbone (overwritten below unless testing) is deterministic
        model = lpips_pkg.LPIPS(pretrained=True, net=net, version=LPIPS_VERSION, pnet_rand=True, verbose=False)
    loaded = model.load_state_dict(lin_state, strict=False)  # lpips loads these itself; redone to check keys
    missing_lin = [k for k in model.state_dict() if re.match(r"lin\d+\.", k) and k not in lin_state]
    if missing_lin or loaded.unexpected_keys:
        raise MetricUnavailable(
            f"{lin_path} does not hold lpips' linear layers (missing {missing_lin}, unexpected "
            f"{loaded.unexpected_keys}); reinstall lpips"
        )
    if backbone_state is not None:
        # lpips splits torchvision's `features` into slices whose children keep their original indices:
        # "slice2.3.weight" is torchvision's "features.3.weight".
        backbone = {}
        for key in model.net.state_dict():
            src = "features." + key.split(".", 1)[1]
            if src not in backbone_state:
                raise MetricUnavailable(
                    f"{path} is not a torchvision {_LPIPS_BACKBONES[net][0]} state dict: no {src!r}"
                )
            backbone[key] = backbone_state[src]
        try:
            model.net.load_state_dict(backbone, strict=True)
        except RuntimeError as err:  # wrong shapes
            raise MetricUnavailable(f"{path} does not fit the {_LPIPS_BACKBONES[net][0]} backbone: {err}") from err
    model.requires_grad_(False)
    return model.eval()


@functools.lru_cache(maxsize=8)
def cached_lpips_model(
    net: str, path: str | None, check_hash: bool, random_backbone_for_tests: bool, device: str
) -> torch.nn.Module:
    """:func:`build_lpips_model` on ``device``, built once per argument tuple (shared by all callers)."""
    return build_lpips_model(
        net, path, check_hash=check_hash, random_backbone_for_tests=random_backbone_for_tests
    ).to(device)


def lpips(
    pred: Tensor,
    target: Tensor,
    net: str = "alex",
    *,
    weights_path: str | os.PathLike | None = None,
    check_hash: bool = True,
    random_backbone_for_tests: bool = False,
) -> Tensor:
    """Per-image LPIPS distance (Zhang et al. 2018) with the ``lpips`` package's network (v0.1 linear layers).

    Inputs in [0, 1] are scaled to [-1, 1] as lpips expects; the spatial average of the distance map is taken.
    The network (built by :func:`build_lpips_model`, cached per device) runs in float32 on the inputs' device.

    Returns:
        float64 tensor ``(N,)`` on the CPU.

    Raises:
        MetricUnavailable: the backbone's ImageNet weights are not on disk (the message says where to put them).
    """
    check_image_pair(pred, target)
    path = None if random_backbone_for_tests else lpips_backbone_path(net, weights_path)
    model = cached_lpips_model(net, path, check_hash, random_backbone_for_tests, str(pred.device))
    return lpips_from_model(model, pred, target)


def lpips_from_model(model: torch.nn.Module, pred: Tensor, target: Tensor) -> Tensor:
    """Per-image distances ``(N,)`` (float64, CPU) of an ``lpips.LPIPS`` network on [0, 1] inputs (unvalidated)."""
    with torch.no_grad(), caller_threads():  # a network: the caller's threads (see threads.metric_section)
        d = model(pred.float() * 2 - 1, target.float() * 2 - 1)
    return d.reshape(-1).double().cpu()
