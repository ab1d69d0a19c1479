"""Frechet Inception Distance between the colorized and the real set, with Inception weights read from disk.

Two weight files are understood (nothing is ever downloaded, and random weights are never used in their place):

* ``weights="pytorch-fid"`` (default): ``pt_inception-2015-12-05-6726825d.pth``, the TensorFlow FID Inception
  ported by pytorch-fid, which is what published FID numbers use. Its network differs from torchvision's
  Inception v3 in four blocks' pooling (TensorFlow's average pooling ignores the zero padding; the last block
  max-pools), written here as small subclasses of torchvision's blocks.
* ``weights="torchvision"``: torchvision's ImageNet ``inception_v3_google-0cc3c7bd.pth``. The distance is
  well defined but its values are NOT comparable to published FID.

Features are the 2048-d output of the final average pool (or, with ``dims``, an earlier stage's, as pytorch-fid's
``--dims``), on images resized to ``input_size`` (299, as
pytorch-fid) with bilinear interpolation (``align_corners=False``) and scaled from [0, 1] to [-1, 1]. The
streaming state is the feature sums and sums of outer products of each set (float64, 2 x 2048 x 2048: 64 MB,
independent of the number of images); the covariances are sample covariances (``N - 1``), as pytorch-fid.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from colorbench.core import threads
from colorbench.metrics import functional as MF
from colorbench.core.weights import WEIGHTS
from colorbench.metrics.base import MetricUnavailable, StreamingMetric
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.registry import register_metric

#: weights name -> (file name, where to get it, number of classes of the file's classifier, FID pooling blocks);
#: file name and URL come from colorbench's weights registry (``colorbench weights list``), entry in FID_WEIGHTS_FILES.
#: "torchvision-1a9a5a14" is the earlier torchvision file name (torchvision < 0.13) that DDColor's
#: basicsr/models/color_model.py and CT2's segm/metrics.py load (pretrain/ or resources/inception_v3_google-1a9a5a14.pth).
FID_WEIGHTS_FILES = {"pytorch-fid": "pt-inception-fid", "torchvision": "inception-v3",
                     "torchvision-1a9a5a14": "inception-v3-1a9a5a14"}
_FID_NETWORKS = {"pytorch-fid": (1008, True), "torchvision": (1000, False), "torchvision-1a9a5a14": (1000, False)}
FID_WEIGHTS = {
    name: (WEIGHTS[entry].file_name, WEIGHTS[entry].url, *_FID_NETWORKS[name])
    for name, entry in FID_WEIGHTS_FILES.items()
}
#: How [0, 1] images become the network's input after the bilinear resize (``preprocess``):
#: the per-channel ImageNet mean and std the torchvision weights were trained with are MEAN, STD below.
FID_PREPROCESS = {
    "pytorch-fid": "x -> 2x - 1 (pytorch-fid: the TF Inception's [-1, 1] input)",
    "ct2": "x -> 2 (STD_c x + MEAN_c) - 1, i.e. x * (STD_c / 0.5) + (MEAN_c - 0.5) / 0.5 on x in [0, 1] (CT2's "
           "segm/metrics.py INCEPTION_V3_FID: Normalize(0.5, 0.5) images mapped back by x*0.5+0.5, then "
           "torchvision's transform_input formula)",
    "ddcolor": "x -> (x * 0.5 + 0.5) * (STD_c / 0.5) + (MEAN_c - 0.5) / 0.5 on x in [0, 1] (DDColor's "
               "basicsr/metrics/custom_fid.py: the same code as CT2 fed [0, 1] images instead of [-1, 1] ones)",
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
FID_FEATURE_DIM = 2048
FID_INPUT_SIZE = 299
#: Feature dimensions pytorch-fid offers (``--dims``) -> the Inception stage whose output is taken (spatially
#: averaged): first max pool, second max pool, the input of the auxiliary classifier, the final average pool.
FID_DIMS = {64: "maxpool1", 192: "maxpool2", 768: "Mixed_6e", 2048: "avgpool"}
_STAGES = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
           "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
           "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool")


def fid_weights_path(weights: str = "pytorch-fid", weights_path: str | os.PathLike | None = None) -> str:
    """The file the Inception weights are read from: ``weights_path``, else torch hub's checkpoint directory
    (``torch.hub.get_dir()/checkpoints/<file name>``, where torch.hub and torchvision would put it)."""
    if weights not in FID_WEIGHTS:
        raise ValueError(f"unknown FID weights {weights!r}; choose one of {tuple(FID_WEIGHTS)}")
    if weights_path is not None:
        return os.fspath(weights_path)
    return os.fspath(WEIGHTS[FID_WEIGHTS_FILES[weights]].path())


# --- the network ---------------------------------------------------------------------------------------------
# torchvision's blocks average-pool their input for the pooling branch with zero padding counted in the average;
# the TensorFlow graph behind the FID weights does not count it, and its last block max-pools. Each subclass
# recomputes only that branch (the block's own layers, another pooling); written here because torchvision has
# no option for it and pytorch-fid is not a dependency.


class _TFAvgPoolBranch:
    def _forward(self, x: Tensor) -> list[Tensor]:
        outputs = super()._forward(x)  # type: ignore[misc]
        outputs[-1] = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return outputs


class _MaxPoolBranch:
    def _forward(self, x: Tensor) -> list[Tensor]:
        outputs = super()._forward(x)  # type: ignore[misc]
        outputs[-1] = self.branch_pool(F.max_pool2d(x, 3, stride=1, padding=1))
        return outputs


def fid_inception_architecture(weights: str = "pytorch-fid") -> nn.Module:
    """The Inception v3 network that the weight file ``weights`` belongs to, with untrained parameters (to load
    a state dict into; never used as is)."""
    from torchvision.models import inception as tvi

    if weights not in FID_WEIGHTS:
        raise ValueError(f"unknown FID weights {weights!r}; choose one of {tuple(FID_WEIGHTS)}")
    _, _, num_classes, fid_blocks = FID_WEIGHTS[weights]
    net = tvi.Inception3(num_classes=num_classes, aux_logits=False, transform_input=False, init_weights=False)
    if fid_blocks:
        tf_a = type("FIDInceptionA", (_TFAvgPoolBranch, tvi.InceptionA), {})
        tf_c = type("FIDInceptionC", (_TFAvgPoolBranch, tvi.InceptionC), {})
        tf_e1 = type("FIDInceptionE1", (_TFAvgPoolBranch, tvi.InceptionE), {})
        tf_e2 = type("FIDInceptionE2", (_MaxPoolBranch, tvi.InceptionE), {})
        net.Mixed_5b, net.Mixed_5c, net.Mixed_5d = tf_a(192, 32), tf_a(256, 64), tf_a(288, 64)
        net.Mixed_6b, net.Mixed_6c = tf_c(768, channels_7x7=128), tf_c(768, channels_7x7=160)
        net.Mixed_6d, net.Mixed_6e = tf_c(768, channels_7x7=160), tf_c(768, channels_7x7=192)
        net.Mixed_7b, net.Mixed_7c = tf_e1(1280), tf_e2(2048)
    return net


class InceptionFeatures(nn.Module):
    """[0, 1] RGB images -> ``dims``-d features (float32): resize to ``input_size``, scale to [-1, 1], run
    Inception up to the stage of ``dims`` (see :data:`FID_DIMS`) and average that stage's output spatially."""

    def __init__(self, net: nn.Module, input_size: int = FID_INPUT_SIZE, dims: int = FID_FEATURE_DIM,
                 preprocess: str = "pytorch-fid") -> None:
        super().__init__()
        if dims not in FID_DIMS:
            raise ValueError(f"FID dims must be one of {tuple(FID_DIMS)}, got {dims}")
        if preprocess not in FID_PREPROCESS:
            raise ValueError(f"unknown FID preprocess {preprocess!r}; choose one of {tuple(FID_PREPROCESS)}")
        self.preprocess = preprocess
        last = _STAGES.index(FID_DIMS[dims])
        self.stages = nn.ModuleList(getattr(net, name) for name in _STAGES[: last + 1])
        self.input_size, self.dims = int(input_size), int(dims)
        self.eval()

    def forward(self, images: Tensor) -> Tensor:
        x = images.float()
        if x.shape[-2:] != (self.input_size, self.input_size):
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        if self.preprocess == "pytorch-fid":
            x = 2.0 * x - 1.0
        else:
            if self.preprocess == "ddcolor":
                x = x * 0.5 + 0.5
            scale = torch.tensor([s / 0.5 for s in _IMAGENET_STD], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            shift = torch.tensor([(m - 0.5) / 0.5 for m in _IMAGENET_MEAN], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
            x = x * scale + shift
        for stage in self.stages:
            x = stage(x)
        return x.mean(dim=(2, 3))


def build_fid_inception(weights: str = "pytorch-fid", weights_path: str | os.PathLike | None = None, *,
                        check_hash: bool = True, input_size: int = FID_INPUT_SIZE,
                        dims: int = FID_FEATURE_DIM, preprocess: str = "pytorch-fid") -> InceptionFeatures:
    """The feature network with the weights of the file :func:`fid_weights_path` names.

    Raises:
        MetricUnavailable: the file is absent (the message names the exact path and where to get the file), its
            SHA-256 does not match the file name's prefix (``check_hash``), or it is not that network's state dict.
    """
    path, state = MF.load_weights_file(
        FID_WEIGHTS_FILES[weights], fid_weights_path(weights, weights_path), check_hash=check_hash,
        who=f"FID (weights={weights!r})", what="FID Inception",
        missing_hint=" (Another location: --fid-weights FILE, i.e. weights_path=FILE.)")
    if not isinstance(state, dict):
        raise MetricUnavailable(f"{path} is not a state dict")
    state = {k: v for k, v in state.items() if not str(k).startswith("AuxLogits.")}  # torchvision's aux head
    net = fid_inception_architecture(weights)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise MetricUnavailable(f"{path} is not the {weights} Inception v3 state dict: {err}") from err
    if not input_size >= 75:
        raise ValueError(f"input_size must be at least 75 (Inception v3's smallest input), got {input_size}")
    model = InceptionFeatures(net, input_size, dims, preprocess)
    model.requires_grad_(False)
    return model


@functools.lru_cache(maxsize=4)
def cached_fid_inception(weights: str, path: str, check_hash: bool, input_size: int, dims: int,
                         device: str, preprocess: str = "pytorch-fid") -> InceptionFeatures:
    """:func:`build_fid_inception` on ``device``, built once per argument tuple."""
    return build_fid_inception(weights, path, check_hash=check_hash, input_size=input_size, dims=dims,
                               preprocess=preprocess).to(device)


def inception_features(model: nn.Module, images: Tensor) -> Tensor:
    """Features ``(N, dims)`` (float64, CPU) of ``(N, 3, H, W)`` images in [0, 1] (validated here)."""
    MF.check_images(images, "images")
    with torch.no_grad(), threads.caller_threads():  # a network: the caller's threads (see threads.metric_section)
        return model(images).double().cpu()


def feature_statistics(sums: Tensor, outer: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Mean and sample covariance (``N - 1``) from the sum of features and the sum of their outer products."""
    if n < 2:
        raise ValueError(f"FID needs at least 2 images per set, got {n}")
    mu = sums / n
    sigma = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return mu, sigma


@register_metric("fid")
class FrechetInceptionDistance(StreamingMetric):
    """FID between the colorized set and the real set (lower is better). Set-level: no per-image values.

    Args:
        weights: ``"pytorch-fid"`` (default; comparable to published FID) or ``"torchvision"`` (not comparable).
        weights_path: the weights file; default torch hub's checkpoint directory (see :func:`fid_weights_path`).
        check_hash: check the file's SHA-256 against the prefix in its official name.
        input_size: side the images are resized to (299 as pytorch-fid; smaller values are faster but give
            other numbers, and ``params()`` records it).
        dims: feature dimension, as pytorch-fid's ``--dims``: 2048 (default, the standard FID), 768, 192 or 64
            (earlier Inception stages, spatially averaged).
        preprocess: how the resized [0, 1] images are scaled for the network (:data:`FID_PREPROCESS`):
            ``"pytorch-fid"`` (default, [-1, 1]), or the ImageNet-normalisation formulas of CT2 (``"ct2"``) and
            DDColor (``"ddcolor"``), which go with the torchvision weights.

    Raises:
        MetricUnavailable: at construction, if the weights file is missing or not the right one.
    """

    name = "fid"
    outputs = {"fid": False}
    version = "1"
    per_image = False

    def __init__(self, *, weights: str = "pytorch-fid", weights_path: str | os.PathLike | None = None,
                 check_hash: bool = True, input_size: int = FID_INPUT_SIZE, dims: int = FID_FEATURE_DIM,
                 preprocess: str = "pytorch-fid") -> None:
        super().__init__()
        if dims not in FID_DIMS:
            raise ValueError(f"FID dims must be one of {tuple(FID_DIMS)}, got {dims}")
        if preprocess not in FID_PREPROCESS:
            raise ValueError(f"unknown FID preprocess {preprocess!r}; choose one of {tuple(FID_PREPROCESS)}")
        self.preprocess = preprocess
        self.weights, self.check_hash, self.input_size, self.dims = weights, bool(check_hash), int(input_size), dims
        self._path = fid_weights_path(weights, weights_path)
        self._model()  # fail now (MetricUnavailable), not at the first update
        d = self.dims
        for which in ("real", "pred"):
            self.add_state(f"{which}_n", torch.zeros((), dtype=torch.int64), reduce="sum")
            self.add_state(f"{which}_sum", torch.zeros(d, dtype=torch.float64), reduce="sum")
            self.add_state(f"{which}_outer", torch.zeros(d, d, dtype=torch.float64), reduce="sum")

    def _model(self, device: str = "cpu") -> InceptionFeatures:
        return cached_fid_inception(self.weights, self._path, self.check_hash, self.input_size, self.dims, device,
                                    self.preprocess)

    def update_inputs(self, inputs: MetricInputs) -> None:
        self.update_side("pred", inputs.pred)
        self.update_side("real", inputs.target)

    def update_side(self, which: str, images: Tensor) -> None:
        """Add RGB ``images`` in [0, 1] to one side only (``"pred"`` or ``"real"``): for a reference set that is
        not the colorized images' own (ColTran's disjoint FID; the two sides may then differ in number)."""
        if which not in ("pred", "real"):
            raise ValueError(f"FID side must be 'pred' or 'real', got {which!r}")
        f = inception_features(self._model(str(images.device)), images)
        setattr(self, f"{which}_n", getattr(self, f"{which}_n") + f.shape[0])
        setattr(self, f"{which}_sum", getattr(self, f"{which}_sum") + f.sum(dim=0))
        setattr(self, f"{which}_outer", getattr(self, f"{which}_outer") + f.T @ f)

    def compute(self) -> dict[str, float]:
        if int(self.real_n) == 0:
            raise ValueError(f"{self.name}: compute() called before any update(); give it at least one batch")
        mu_r, s_r = feature_statistics(self.real_sum, self.real_outer, int(self.real_n))
        mu_p, s_p = feature_statistics(self.pred_sum, self.pred_outer, int(self.pred_n))
        return {"fid": MF.frechet_distance(mu_p, s_p, mu_r, s_r)}

    def params(self) -> dict[str, Any]:
        return {
            "input": "RGB (N,3,H,W) float in [0,1]; pred = colorized, target = real",
            "weights": self.weights,
            "weights_file": os.path.basename(self._path),
            "hash_checked": self.check_hash,
            "comparable_to_published_fid": (self.weights == "pytorch-fid" and self.input_size == FID_INPUT_SIZE
                                            and self.dims == FID_FEATURE_DIM and self.preprocess == "pytorch-fid"),
            "preprocess": f"{self.preprocess}: {FID_PREPROCESS[self.preprocess]}",
            "dims": self.dims,
            "features": f"{self.dims}-d: output of {FID_DIMS[self.dims]}, spatially averaged",
            "resize": f"bilinear to {self.input_size}x{self.input_size} (align_corners=False), then the preprocess",
            "covariance": "sample (N-1)",
            "sqrtm": "trace via symmetric eigendecompositions (float64)",
            "grey": "n/a",
        }
