"""Named evaluation protocols: every convention that changes a published number, pinned under one name.

A :class:`Protocol` fixes the test-image list, how real images are resized or cropped (and the interpolation),
the grey conversion, the Lab conversion, the FID backbone and its preprocessing, the colourfulness formula
(signed or absolute opponent components, channel order, 8-bit quantisation, image filter), the metric options
(SSIM window and data range, LPIPS backbone, ...) and the aggregation. ``colorbench run --protocol NAME`` and
``colorbench evaluate --protocol NAME`` apply it; every metric value records ``protocol`` and
``protocol_version`` in its params. ``colorbench list protocols`` lists them; ``metrics/README.md`` documents each
one with the files of the papers' code it follows.

Protocols:

* ``colorbench`` — today's conventions (the metric defaults).
* ``ddcolor-imagenet-val50k`` — DDColor (Kang et al., ICCV 2023), evaluation on the 50,000 ImageNet validation
  images as its code computes FID and colourfulness (``basicsr/models/color_model.py``, ``basicsr/metrics/``).
* ``ct2-imagenet-val5k`` — CT2 (Weng et al., ECCV 2022), the first 5,000 ImageNet validation images, its
  ``segm/metrics.py``, ``segm/eval_fid.py``, ``segm/eval_colorfullness.py``, ``segm/eval_metrics.py``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from colorbench.metrics.defaults import DEFAULT_METRICS as _COLORBENCH_METRICS  # the runner's defaults


@dataclass(frozen=True)
class Protocol:
    """One named evaluation protocol (see the module docstring). Descriptions are recorded, options applied.

    Attributes:
        name, version, title: identity; ``version`` is bumped whenever a change can change a value.
        paper: the paper whose numbers the protocol reproduces.
        code: the files of that paper's repository the conventions were read from.
        test_images: which test images are scored (description).
        test_ids: the ids (file names without extension) of the test images in their order, or None (every
            test image of the dataset or folder).
        real_resize: how real images are resized or cropped (description).
        real_transform: the preparation of real image files (``--target DIR``): None (used as they are) or a
            key of :data:`REAL_TRANSFORMS`.
        dataset_resize: dataset options that bring a standard dataset's images nearest to ``real_resize``
            (``{"resize": policy, "size": n}``), applied by ``run``/``evaluate --dataset`` unless given.
        icc: what to do with an embedded ICC profile of an RGB or grey file, real or colorized
            (:data:`colorbench.datasets.imaging.ICC_POLICIES`): applied as the ``icc`` dataset option (unless
            given), to ``--target`` folders and to prediction folders. The papers' code reads files with Pillow or
            OpenCV, which ignore the profiles.
        deviations: where colorbench cannot follow the paper's code exactly, and by how much.
        grey: the grey convention of the methods' input (``run``).
        lab: the Lab conversion (description).
        quantize: 8-bit quantisation of the colorizations before every metric (``run``): "none", "round" or
            "truncate" (:data:`colorbench.metrics.functional.QUANTIZE_MODES`); files are 8-bit already.
        metrics: the default metric list.
        metric_options: metric name -> constructor options.
        aggregation: how per-image values become the reported number (description).
    """

    name: str
    version: str
    title: str
    paper: str
    code: tuple[str, ...] = ()
    test_images: str = "every test image of the dataset (or of the --target folder)"
    test_ids: tuple[str, ...] | None = None
    real_resize: str = "the dataset's own size and resize policy (`colorbench list datasets`)"
    real_transform: str | None = None
    dataset_resize: dict[str, Any] = field(default_factory=dict)
    icc: str = "convert"
    deviations: tuple[str, ...] = ()
    grey: str = "bt601"
    lab: str = "colorbench.color.rgb_to_lab: sRGB (IEC 61966-2-1) -> XYZ (D65, 2 deg) -> CIE L*a*b*"
    quantize: str = "none"
    metrics: tuple[str, ...] = _COLORBENCH_METRICS
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregation: str = "per-image values averaged over images (set-level metrics: over the whole set)"

    @property
    def ident(self) -> str:
        return f"{self.name}/{self.version}"

    def describe(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["code"], d["deviations"] = list(self.code), list(self.deviations)
        d["test_ids"] = None if self.test_ids is None else f"{len(self.test_ids)} ids: {self.test_ids[0]} ... {self.test_ids[-1]}"
        return d

    # --- datasets and test images -------------------------------------------------------------------------
    def dataset_options(self, dataset: str, options: dict[str, Any]) -> dict[str, Any]:
        """``options`` with the protocol's resize/size and ICC policy added where the dataset takes them and the
        user gave none."""
        from colorbench.datasets import DATASETS

        fields = set(DATASETS.get(dataset).options())
        out = dict(options)
        for k, v in {**self.dataset_resize, "icc": self.icc}.items():
            if k in fields and k not in out:
                out[k] = v
        return out

    def select_test_images(self, ids: Sequence[str], images: np.ndarray | None = None):
        """The protocol's test images among ``ids`` (in the protocol's order) and, if given, their images.

        Ids match a protocol id by their last path component without extension. Raises ValueError listing how
        many (and the first) protocol ids are missing."""
        ids = [str(i) for i in ids]
        if self.test_ids is None:
            return ids, images
        base = {_base(i): k for k, i in enumerate(ids)}
        missing = [t for t in self.test_ids if t not in base]
        if missing:
            raise ValueError(f"protocol {self.name!r} scores {self.test_images}; {len(missing)} of those "
                             f"{len(self.test_ids)} images are not in the test set of {len(ids)} images (first "
                             f"missing: {', '.join(missing[:5])}). Use a dataset or --target folder that holds them "
                             f"(ids are matched by file name without extension), or --protocol colorbench")
        index = [base[t] for t in self.test_ids]
        return [ids[k] for k in index], (None if images is None else images[index])

    def restrict_test(self, data: Any) -> Any:
        """``DatasetSplits`` whose test split holds only the protocol's test images, in its order (as loaded
        when the protocol has no list). Raises ValueError (see :meth:`select_test_images`)."""
        if self.test_ids is None:
            return data
        where = {i: k for k, i in enumerate(data.test.ids)}
        ids, _ = self.select_test_images(data.test.ids)
        return dataclasses.replace(data, test=data.test.subset([where[i] for i in ids]))

    def prepare_real(self, path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
        """A real image file prepared as the protocol's code prepares it: ``(H, W, 3)`` uint8 and file facts."""
        from colorbench.datasets.imaging import decode_prediction

        rgb, facts = decode_prediction(path, self.icc)
        if self.real_transform is None:
            return rgb, facts
        return REAL_TRANSFORMS[self.real_transform](rgb), facts

    # --- metrics ------------------------------------------------------------------------------------------------
    def build_metrics(self, names: Sequence[str], lpips_weights: str | None = None, fid_weights: str | None = None,
                      grey_convention: str | None = None):
        """Metric instances with the protocol's options: ``({name: metric}, {name: reason unavailable})``.

        Metrics that take a grey convention (``takes_grey_convention``, e.g. luma_ssim) get ``grey_convention``
        (default: the protocol's)."""
        from colorbench.metrics import METRICS, MetricUnavailable

        metrics, missing = {}, {}
        for name in names:
            cls = METRICS.get(name)
            kwargs = dict(self.metric_options.get(cls.name, {}))
            weights = {"lpips": lpips_weights, "fid": fid_weights}.get(cls.name)
            if weights:
                kwargs["weights_path"] = weights
            if getattr(cls, "takes_grey_convention", False):
                kwargs.setdefault("grey_convention", grey_convention or self.grey)
            try:
                metrics[cls.name] = cls(**kwargs)
            except MetricUnavailable as exc:
                missing[cls.name] = str(exc)
        return metrics, missing

    def params(self) -> dict[str, Any]:
        """What every metric value of this protocol records next to its own params."""
        return {"protocol": self.name, "protocol_version": self.version}

    def score(self, pred: np.ndarray, real: np.ndarray, names: Sequence[str], *, device: Any = "cpu",
              batch_size: int = 64, lpips_weights: str | None = None, fid_weights: str | None = None,
              seed: int = 0):
        """Metric values of uint8 colorizations ``pred`` against uint8 real images ``real`` (both (N, 3, H, W)).

        Returns ``({key: MetricValue}, {key: per-image float64 array}, histograms or None)``."""
        import torch

        if pred.shape != real.shape or pred.dtype != np.uint8 or real.dtype != np.uint8:
            raise ValueError(f"predictions {pred.dtype} {pred.shape} and real images {real.dtype} {real.shape} must "
                             "be uint8 of one shape")
        batches = ((torch.from_numpy(pred[start:start + batch_size]), torch.from_numpy(real[start:start + batch_size]))
                   for start in range(0, len(pred), batch_size))
        return self.score_batches(batches, names, device=device, lpips_weights=lpips_weights,
                                  fid_weights=fid_weights, seed=seed)

    def score_batches(self, batches: Any, names: Sequence[str], *, device: Any = "cpu",
                      lpips_weights: str | None = None, fid_weights: str | None = None, seed: int = 0):
        """:meth:`score` over an iterable of ``(pred, real)`` uint8 ``(B, 3, H, W)`` tensor batches (a stream:
        nothing but the metric states is kept). The same batches give the same values as :meth:`score`."""
        from colorbench.metrics import METRICS, MetricCollection
        from colorbench.results.records import MetricValue
        from colorbench.core.stats import bootstrap_ci

        metrics, missing = self.build_metrics(names, lpips_weights, fid_weights)
        collection = MetricCollection(metrics)
        for p, r in batches:
            collection.update(p.to(device).float().div_(255.0), r.to(device).float().div_(255.0))
        values: dict[str, MetricValue] = {}
        per_image: dict[str, np.ndarray] = {}
        for name, m in metrics.items():
            result = m.compute()
            pim = m.per_image_values() if m.per_image else {}
            for key, hib in m.outputs.items():
                v = float(result[key])
                if key in pim:
                    per_image[key] = np.asarray(pim[key], dtype=np.float64)
                values[key] = MetricValue(value=v, metric=name, version=m.version, higher_is_better=hib,
                                          params={**m.params(), **self.params()},
                                          ci95=bootstrap_ci(pim.get(key), v, seed=seed))
        for name, reason in missing.items():
            cls = METRICS.get(name)
            for key, hib in cls.outputs.items():
                values[key] = MetricValue(value=None, metric=name, version=cls.version, higher_is_better=hib,
                                          params=self.params(), missing_reason=reason)
        histograms = next((m.histograms() for m in metrics.values() if hasattr(m, "histograms")), None)
        return values, per_image, histograms


def _base(image_id: str) -> str:
    import os

    return os.path.splitext(str(image_id).replace("\\", "/").rsplit("/", 1)[-1])[0]


# --- real-image preparation of the papers' code ------------------------------------------------------------------
def _ct2_center_crop_resize(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """CT2 segm/data/coco.py (split 'val'): ``CenterCrop(min(w, h))`` then ``Resize(crop_size)`` on the PIL
    image (torchvision on PIL: PIL's bilinear filter, antialiased when shrinking)."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    img = Image.fromarray(rgb)
    side = min(img.size)
    img = TF.center_crop(img, [side, side])
    img = TF.resize(img, size, interpolation=InterpolationMode.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def _ddcolor_resize(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """DDColor basicsr/data/lab_dataset.py: the image as float32 / 255, ``cv2.resize(img, (size, size))``
    (INTER_LINEAR: bilinear with half-pixel centres, no antialiasing; aspect ratio not kept). Written with
    ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False)``, which samples the
    same points (OpenCV is not a dependency); rounded back to 8 bits (colorbench keeps real images as uint8)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255.0
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return (x[0].clamp(0, 1) * 255.0).round().to(torch.uint8).numpy().transpose(1, 2, 0)


REAL_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ct2-center-crop-resize-256": _ct2_center_crop_resize,
    "ddcolor-resize-256": _ddcolor_resize,
}

# --- the protocols --------------------------------------------------------------------------------------------
_IMAGENET_VAL_5K = tuple(f"ILSVRC2012_val_{i:08d}" for i in range(1, 5001))
_IMAGENET_VAL_50K = tuple(f"ILSVRC2012_val_{i:08d}" for i in range(1, 50001))

PROTOCOLS: dict[str, Protocol] = {}


def register_protocol(p: Protocol) -> Protocol:
    if p.name in PROTOCOLS:
        raise ValueError(f"protocol {p.name!r} is already registered")
    PROTOCOLS[p.name] = p
    return p


register_protocol(Protocol(
    name="colorbench", version="2", title="colorbench's own conventions (the metric defaults)",
    paper="colorbench (metrics/README.md)",
    aggregation="per-image values averaged over images; KL/JS, FID, delta colourfulness over the pooled set",
))

register_protocol(Protocol(
    name="ddcolor-imagenet-val50k", version="1", icc="ignore",  # cv2.imread (basicsr) ignores ICC profiles
    title="DDColor (Kang et al., ICCV 2023): ImageNet val 50k, FID (torchvision Inception) and colourfulness",
    paper="X. Kang, T. Yang, W. Ouyang, P. Ren, L. Li, X. Xie. DDColor: Towards Photo-Realistic Image Colorization "
          "via Dual Decoders. ICCV 2023",
    code=("piddnad/DDColor basicsr/models/color_model.py (nondist_validation, _prepare_inception_model_fid)",
          "piddnad/DDColor basicsr/metrics/custom_fid.py (INCEPTION_V3_FID, get_activations, "
          "calculate_activation_statistics, calculate_frechet_distance)",
          "piddnad/DDColor basicsr/metrics/colorfulness.py (calculate_cf)",
          "piddnad/DDColor basicsr/data/lab_dataset.py (LabDataset: cv2.resize to gt_size)",
          "piddnad/DDColor basicsr/data/transforms.py (rgb2lab = skimage.color.rgb2lab)",
          "piddnad/DDColor basicsr/utils/img_util.py (tensor2img, tensor_lab2rgb)",
          "piddnad/DDColor options/train/train_ddcolor.yml (gt_size 256; val metrics fid, cf)",
          "piddnad/DDColor data_list/get_meta_file.py (the image list: every image file under the folder)"),
    test_images="the 50,000 ImageNet (ILSVRC2012) validation images ILSVRC2012_val_00000001 ... 00050000",
    test_ids=_IMAGENET_VAL_50K,
    real_resize="cv2.resize of the float32 image to 256x256 (INTER_LINEAR, aspect ratio not kept)",
    real_transform="ddcolor-resize-256",
    dataset_resize={"resize": "resize", "size": 256},
    deviations=(
        "run/evaluate --dataset: colorbench's 'resize' policy resamples with bicubic interpolation (antialiased), "
        "DDColor with cv2 bilinear without antialiasing; --target DIR applies DDColor's bilinear resize",
        "real images are kept as 8-bit after the resize (DDColor keeps float32; <= 0.5/255 per value)",
        "DDColor's real reference is lab2rgb(rgb2lab(image)) (skimage forward, its own tensor_lab2rgb back); for "
        "in-gamut 8-bit sRGB this round trip is the identity up to float32 rounding, so colorbench uses the image",
        "FID of evaluate (files) is on 8-bit predictions; DDColor's on the float output (run keeps it float)",
        "delta colourfulness (the paper's delta-CF) is not in DDColor's code: colorbench computes |CF(real) - "
        "CF(colorized)| with the same absolute-value formula on both sets",
    ),
    grey="cie-l",
    lab="skimage.color.rgb2lab of the float [0, 1] RGB (D65, 2 deg); the network sees lab2rgb(L, 0, 0)",
    quantize="none",
    metrics=("fid", "colorfulness", "delta_colorfulness", "psnr"),
    metric_options={
        "fid": {"weights": "torchvision-1a9a5a14", "preprocess": "ddcolor"},
        "colorfulness": {"formula": "absolute", "channel_order": "rgb", "quantize": "round"},
        "delta_colorfulness": {"formula": "absolute", "channel_order": "rgb", "quantize": "round"},
        "psnr": {"data_range": 255.0, "reduction": "per_image_mean"},
    },
    aggregation="colourfulness: mean over images of the per-image value (metric_results / (idx + 1)); FID: one "
                "Frechet distance of the 2048-d features of all images (np.cov, N-1; scipy.linalg.sqrtm); PSNR (in "
                "the paper's tables, commented out in train_ddcolor.yml): mean of per-image values",
))

register_protocol(Protocol(
    name="ct2-imagenet-val5k", version="1", icc="ignore",  # PIL / cv2.imread ignore ICC profiles
    title="CT2 (Weng et al., ECCV 2022): first 5k ImageNet val images, centre crop + 256, its FID/CF/PSNR/SSIM/LPIPS",
    paper="S. Weng, J. Sun, Y. Li, S. Li, B. Shi. CT2: Colorization Transformer via Color Tokens. ECCV 2022",
    code=("shuchenweng/CT2 segm/metrics.py (INCEPTION_V3_FID, vip_dataset, calculate_fid, avg_ssim_psnr, avg_lpips)",
          "shuchenweng/CT2 segm/eval_fid.py, segm/eval_metrics.py (the scripts calling them)",
          "shuchenweng/CT2 segm/eval_colorfullness.py (image_colorfulness on cv2.imread files, 5,000 images)",
          "shuchenweng/CT2 segm/data/coco.py (val file list ILSVRC2012_val_00000001..5000; CenterCrop + Resize)",
          "shuchenweng/CT2 segm/engine.py (save_imgs: lab_to_rgb truncation, 'fake_' + name via skimage.io.imsave)",
          "shuchenweng/CT2 README.md (first 5k validation images, centre cropped and resized to 256x256)"),
    test_images="the first 5,000 ImageNet (ILSVRC2012) validation images ILSVRC2012_val_00000001 ... 00005000",
    test_ids=_IMAGENET_VAL_5K,
    real_resize="PIL: CenterCrop(shorter side), then torchvision Resize(256) (bilinear, antialiased on PIL)",
    real_transform="ct2-center-crop-resize-256",
    dataset_resize={"resize": "resize-shorter-center-crop", "size": 256},
    deviations=(
        "run/evaluate --dataset: colorbench's policy resizes the shorter side (bicubic) then crops; CT2 crops, "
        "then resizes bilinearly; --target DIR applies CT2's own crop and resize",
        "CT2's test.py saves predictions as JPEG (skimage.io.imsave to 'fake_<name>.JPEG'); run quantises like "
        "its lab_to_rgb (truncation) but does not JPEG-compress; evaluate reads the files as they are",
        "CT2's eval scripts also print a '_convert' variant against rgb->lab->rgb real images; colorbench scores "
        "against the real images (the first number they print)",
    ),
    grey="cie-l",
    lab="skimage.color.rgb2lab of the uint8 RGB image (D65, 2 deg); L channel is the input",
    quantize="truncate",
    metrics=("fid", "colorfulness", "psnr", "ssim", "lpips"),
    metric_options={
        "fid": {"weights": "torchvision-1a9a5a14", "preprocess": "ct2"},
        "colorfulness": {"formula": "absolute", "channel_order": "rgb", "quantize": "none"},
        "psnr": {"data_range": 255.0, "reduction": "per_image_mean"},
        # skimage compare_ssim(gt, pred, data_range=225, multichannel=True) on 0-255 uint8 images: 7x7 uniform
        # window, sample covariance, and constants of a data range of 225 (sic): C = (k * 225)^2. colorbench
        # scales images and constants by one data_range (its value cancels), so the same constants on 0-255
        # images are k1 = 0.01 * 225 / 255, k2 = 0.03 * 225 / 255
        "ssim": {"variant": "uniform", "data_range": 255.0, "k1": 0.01 * 225 / 255, "k2": 0.03 * 225 / 255},
        "lpips": {"net": "vgg"},
    },
    aggregation="every metric: sum over the 5,000 images divided by 5,000 (PSNR, SSIM, LPIPS, colourfulness); FID: "
                "one Frechet distance of all images' features (np.cov, N-1; scipy.linalg.sqrtm)",
))


def get_protocol(name: str | Protocol) -> Protocol:
    """The protocol named ``name`` (a clear error with suggestions for an unknown one)."""
    if isinstance(name, Protocol):
        return name
    if name in PROTOCOLS:
        return PROTOCOLS[name]
    import difflib

    close = difflib.get_close_matches(str(name), list(PROTOCOLS), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    from colorbench.core.registry import UnknownNameError

    raise UnknownNameError(f"Unknown protocol {name!r}.{hint} Known: {', '.join(PROTOCOLS)} "
                           f"(`colorbench list protocols`).")


def protocol_rows() -> list[dict[str, Any]]:
    """``colorbench list protocols`` rows."""
    return [p.describe() for p in PROTOCOLS.values()]

