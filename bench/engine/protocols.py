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

from colorbench.core.grey import Grey
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
        fid_reference_ids: the ids of the real images FID compares the colorized images with when they are *not*
            the colorized images' own (ColTran's disjoint reference), or None. ``score`` then needs them
            (``fid_real``); without them FID is a missing value saying which images to give.
        fid_reference: that reference set (description).
        unavailable_metrics: measurements the protocol's paper reports that colorbench cannot compute yet, name ->
            reason; they become missing values with that reason in every score.
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
    grey: Grey = Grey.BT601  # colorbench's; parsed to a Grey in __post_init__
    lab: str = "colorbench.color.rgb_to_lab: sRGB (IEC 61966-2-1) -> XYZ (D65, 2 deg) -> CIE L*a*b*"
    quantize: str = "none"
    metrics: tuple[str, ...] = _COLORBENCH_METRICS
    metric_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    aggregation: str = "per-image values averaged over images (set-level metrics: over the whole set)"
    fid_reference_ids: tuple[str, ...] | None = None
    fid_reference: str = "the real images of the scored (colorized) images themselves"
    unavailable_metrics: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "grey", Grey.parse(self.grey))  # the edge: a protocol names its convention

    @property
    def ident(self) -> str:
        return f"{self.name}/{self.version}"

    def describe(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["code"], d["deviations"] = list(self.code), list(self.deviations)
        d["test_ids"] = None if self.test_ids is None else f"{len(self.test_ids)} ids: {self.test_ids[0]} ... {self.test_ids[-1]}"
        ref = self.fid_reference_ids
        d["fid_reference_ids"] = None if ref is None else f"{len(ref)} ids: {ref[0]} ... {ref[-1]}"
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
                      grey_convention: Grey | None = None, disjoint_fid_reference: bool = False):
        """Metric instances with the protocol's options: ``({name: metric}, {name: reason unavailable})``.

        Metrics that take a grey convention (``takes_grey_convention``, e.g. luma_ssim) get ``grey_convention``
        (default: the protocol's)."""
        from colorbench.metrics import METRICS, MetricUnavailable

        metrics, missing = {}, {}
        for name in names:
            cls = METRICS.get(name)
            if cls.name == "fid" and self.fid_reference_ids is not None and not disjoint_fid_reference:
                ref = self.fid_reference_ids
                missing["fid"] = (f"protocol {self.name!r} compares the colorized images with other real images "
                                  f"({self.fid_reference}: {ref[0]} ... {ref[-1]}, {len(ref)} images), which were "
                                  "not given: score with `colorbench evaluate --protocol "
                                  f"{self.name} --target DIR` where DIR holds them too")
                continue
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
              seed: int = 0, fid_real: np.ndarray | None = None):
        """Metric values of uint8 colorizations ``pred`` against uint8 real images ``real`` (both (N, 3, H, W)).

        ``fid_real``: the real images of :attr:`fid_reference_ids` (uint8 (M, 3, H, W)), for protocols whose FID
        compares with other images than the colorized ones' own; FID then compares ``pred`` with them.

        Returns ``({key: MetricValue}, {key: per-image float64 array}, histograms or None)``."""
        import torch

        if pred.shape != real.shape or pred.dtype != np.uint8 or real.dtype != np.uint8:
            raise ValueError(f"predictions {pred.dtype} {pred.shape} and real images {real.dtype} {real.shape} must "
                             "be uint8 of one shape")
        batches = ((torch.from_numpy(pred[start:start + batch_size]), torch.from_numpy(real[start:start + batch_size]))
                   for start in range(0, len(pred), batch_size))
        return self.score_batches(batches, names, device=device, lpips_weights=lpips_weights,
                                  fid_weights=fid_weights, seed=seed, fid_real=fid_real, batch_size=batch_size)

    def score_batches(self, batches: Any, names: Sequence[str], *, device: Any = "cpu",
                      lpips_weights: str | None = None, fid_weights: str | None = None, seed: int = 0,
                      fid_real: np.ndarray | None = None, batch_size: int = 64, workers: int = 1):
        """:meth:`score` over an iterable of ``(pred, real)`` uint8 ``(B, 3, H, W)`` tensor batches (a stream:
        nothing but the metric states is kept). The same batches give the same values as :meth:`score`.
        ``fid_real`` (disjoint-reference FID) is an array, read in ``batch_size`` slices. ``workers``: scoring
        processes (:func:`stream_metrics`; the same values)."""
        import torch

        from colorbench.results.records import MetricValue

        disjoint = self.fid_reference_ids is not None and fid_real is not None
        if disjoint and (fid_real.dtype != np.uint8 or fid_real.ndim != 4 or fid_real.shape[1] != 3):
            raise ValueError(f"fid_real must be uint8 (M, 3, H, W), got {fid_real.dtype} {fid_real.shape}")
        metrics, missing = self.build_metrics(names, lpips_weights, fid_weights, disjoint_fid_reference=disjoint)
        disjoint_fid = metrics.pop("fid", None) if disjoint else None

        def float_batches():
            for p8, r8 in batches:
                p, r = p8.to(device).float().div_(255.0), r8.to(device).float().div_(255.0)
                if disjoint_fid is not None and p.shape[1:] != fid_real.shape[1:]:
                    raise ValueError(f"fid_real must be uint8 (M, {', '.join(map(str, p.shape[1:]))}), got "
                                     f"{fid_real.dtype} {fid_real.shape}")
                if disjoint_fid is not None:  # the colorized side only; the reference side below
                    disjoint_fid.update_side("pred", p)
                yield p, r, {"pred": p8.cpu(), "target": r8.cpu()}

        stream_metrics(metrics, float_batches(), workers=workers)
        if disjoint_fid is not None:
            for start in range(0, len(fid_real), batch_size):
                disjoint_fid.update_side("real", torch.from_numpy(fid_real[start:start + batch_size]).to(device)
                                         .float().div_(255.0))
            metrics["fid"] = disjoint_fid
        values, per_image = self.metric_values(metrics, missing, seed)
        if disjoint_fid is not None:
            values["fid"].params["fid_reference"] = (f"{self.fid_reference}: {len(fid_real)} images, "
                                                     f"{self.fid_reference_ids[0]} ... {self.fid_reference_ids[-1]}")
        for name, reason in self.unavailable_metrics.items():  # reported by the paper, not computable here
            values[name] = MetricValue(value=None, metric=name, version="0", higher_is_better=True,
                                       params=self.params(), missing_reason=reason)
        histograms = next((m.histograms() for m in metrics.values() if hasattr(m, "histograms")), None)
        return values, per_image, histograms

    def metric_values(self, metrics: dict[str, Any], missing: dict[str, str], seed: int = 0):
        """The streamed ``metrics``' values (with their params, the protocol's, and bootstrap intervals over the
        per-image values) and the ``missing`` ones with their reasons: ``({key: MetricValue}, {key: per-image
        float64 array})``."""
        from colorbench.core.stats import bootstrap_ci
        from colorbench.metrics import METRICS
        from colorbench.results.records import MetricValue

        values: dict[str, MetricValue] = {}
        per_image: dict[str, np.ndarray] = {}
        for name, m in metrics.items():
            result = m.compute()
            pim = m.per_image_values() if m.per_image else {}
            for key, hib in m.outputs.items():
                v = float(result[key])
                if key in pim:
                    per_image[key] = np.asarray(pim[key].cpu() if hasattr(pim[key], "cpu") else pim[key],
                                                dtype=np.float64)
                values[key] = MetricValue(value=v, metric=name, version=m.version, higher_is_better=hib,
                                          params={**m.params(), **self.params()},
                                          ci95=bootstrap_ci(pim.get(key), v, seed=seed))
        for name, reason in missing.items():
            cls = METRICS.get(name)
            for key, hib in cls.outputs.items():
                values[key] = MetricValue(value=None, metric=name, version=cls.version, higher_is_better=hib,
                                          params=self.params(), missing_reason=reason)
        return values, per_image


def stream_metrics(metrics: dict[str, Any], batches: Any, workers: int = 1) -> None:
    """The one evaluation loop, shared by ``colorbench evaluate`` (:meth:`Protocol.score_batches`) and a cell's
    evaluation (:class:`colorbench.engine.evaluation.Evaluator`): every ``(pred, target, eight_bit)`` batch of
    float RGB ``(B, 3, H, W)`` in [0, 1] (``eight_bit``: the uint8 images a side was made from, or None; see
    :class:`colorbench.metrics.inputs.MetricInputs`) updates every metric through one
    :class:`colorbench.metrics.MetricCollection`. The batches are consumed even when there is no metric.

    ``workers`` > 1: the batches are scored by that many processes (batch k by process k mod ``workers``), each
    batch into a fresh copy of the metrics whose state is sent back and merged into ``metrics`` in batch order
    (:func:`_score_in_processes`), so the values are those of ``workers=1``."""
    from colorbench.metrics import MetricCollection

    if workers > 1 and metrics:
        _score_in_processes(metrics, batches, workers)
        return
    collection = MetricCollection(metrics) if metrics else None
    for pred, target, eight_bit in batches:
        if collection is not None:
            collection.update(pred, target, eight_bit=eight_bit)


def _score_worker(fresh: dict[str, Any], inbox: Any, outbox: Any) -> None:
    """A scoring process of :func:`_score_in_processes`: ``(k, pickled (pred, target, eight_bit))`` in, ``(k,
    pickled metrics: a fresh copy updated with that batch, error text or None)`` out, until None. Pickled to bytes
    by value: torch's shared-memory tensor passing needs the sending process alive when the other unpickles."""
    import copy
    import pickle
    import traceback

    import torch

    from colorbench.core import threads
    from colorbench.metrics import MetricCollection

    torch.set_num_threads(1)  # the processes are the parallelism; the values do not depend on thread counts
    threads.set_metric_threads(1)
    while True:
        item = inbox.get()
        if item is None:
            return
        k, blob = item
        try:
            pred, target, eight_bit = pickle.loads(blob)
            batch_metrics = copy.deepcopy(fresh)
            MetricCollection(batch_metrics).update(pred, target, eight_bit=eight_bit)
            outbox.put((k, pickle.dumps(batch_metrics, protocol=pickle.HIGHEST_PROTOCOL), None))
        except Exception:  # noqa: BLE001 -- sent back and raised by the driver
            outbox.put((k, None, traceback.format_exc()))


class ScoringWorkerDied(RuntimeError):
    """A scoring process of ``evaluate --workers N`` ended before its batches were scored; nothing is written."""


def _score_in_processes(metrics: dict[str, Any], batches: Any, workers: int) -> None:
    """:func:`stream_metrics` over ``workers`` forked processes. Each batch's state comes back and is merged in
    batch order: concatenated per-image values and integer sums are exactly those of one process; a float sum
    (FID's moments) is added batch by batch in the same order as one process adds it. A process that dies (killed,
    out of memory) raises :class:`ScoringWorkerDied`; a metric that fails in one raises with its traceback."""
    import copy
    import pickle
    import queue as queue_mod

    import torch.multiprocessing as mp

    ctx = mp.get_context("fork")
    fresh = copy.deepcopy(metrics)
    outbox = ctx.Queue()
    inboxes = [ctx.Queue(maxsize=2) for _ in range(workers)]
    procs = [ctx.Process(target=_score_worker, args=(fresh, inboxes[i], outbox), daemon=True) for i in range(workers)]
    for p in procs:
        p.start()
    pending: dict[int, Any] = {}
    merged = 0

    def check_alive() -> None:
        for i, p in enumerate(procs):
            if p.exitcode is not None:
                raise ScoringWorkerDied(
                    f"scoring process {i + 1} of {workers} (pid {p.pid}) ended with exit code {p.exitcode} before "
                    "its batches were scored (killed? out of memory?); no value was written. Rerun, with fewer "
                    "--workers if memory ran out")

    def take(block: bool) -> None:
        nonlocal merged
        while True:
            try:
                k, state, error = outbox.get(timeout=1.0) if block else outbox.get_nowait()
            except queue_mod.Empty:
                if not block:
                    return
                check_alive()
                continue
            if error is not None:
                raise RuntimeError(f"a metric failed in a scoring process (batch {k}):\n{error}")
            pending[k] = pickle.loads(state)
            while merged in pending:  # merge in batch order
                for name, m in metrics.items():
                    m.merge(pending[merged][name])
                del pending[merged]
                merged += 1
            return

    sent = 0
    try:
        for pred, target, eight_bit in batches:
            box = inboxes[sent % workers]
            blob = pickle.dumps((pred.cpu(), target.cpu(), eight_bit), protocol=pickle.HIGHEST_PROTOCOL)
            while True:
                try:
                    box.put((sent, blob), timeout=1.0)
                    break
                except queue_mod.Full:
                    check_alive()
                    take(block=False)
            sent += 1
            take(block=False)
        for box in inboxes:
            box.put(None)
        while merged < sent:
            take(block=True)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.exitcode is None:
                p.kill()
                p.join()


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


def tf_center_crop_square(rgb: np.ndarray) -> np.ndarray:
    """``tf.image.resize_with_crop_or_pad(image, side, side)`` with ``side`` the shorter side (ColTran's
    ``resize_to_square(train=False)``): the crop starts at ``(h - side) // 2``, ``(w - side) // 2`` (TensorFlow's
    ``offset_crop = max((size - target) // 2, 0)``)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return rgb[top:top + side, left:left + side]


def _coltran_center_crop_area(rgb: np.ndarray, size: int = 256) -> np.ndarray:
    """ColTran coltran/datasets.py ``preprocess(train=False)``: the centred square crop of
    :func:`tf_center_crop_square`, then ``datasets_utils.change_resolution(res=256, method='area')``; the area
    resize is written with ``torch``'s ``area`` interpolation (adaptive average pooling), rounded to 8 bits."""
    import torch
    import torch.nn.functional as F

    crop = tf_center_crop_square(rgb)
    x = torch.from_numpy(np.ascontiguousarray(crop.transpose(2, 0, 1))).double()[None]
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area")
    return x[0].round().clamp(0, 255).to(torch.uint8).numpy().transpose(1, 2, 0)


def _pytorch_fid_resize_299(rgb: np.ndarray) -> np.ndarray:
    """The resize pytorch-fid's InceptionV3 applies to every image (``F.interpolate(x, size=(299, 299),
    mode='bilinear', align_corners=False)``), done on the file so that sets of mixed sizes (Open Images) become
    one array; the FID network's own resize is then the identity. Rounded to 8 bits (<= 0.5/255 per value)."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).float()[None] / 255.0
    if x.shape[-2:] != (299, 299):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
    return (x[0].clamp(0, 1) * 255.0).round().to(torch.uint8).numpy().transpose(1, 2, 0)


REAL_TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "ct2-center-crop-resize-256": _ct2_center_crop_resize,
    "ddcolor-resize-256": _ddcolor_resize,
    "coltran-center-crop-area-256": _coltran_center_crop_area,
    "pytorch-fid-resize-299": _pytorch_fid_resize_299,
}


# --- grey conversions of the protocols' sources (the methods' input in those papers) -------------------------------
def pil_la_grey(rgb: np.ndarray) -> np.ndarray:
    """``PIL.Image.convert('LA')`` of an 8-bit RGB image, L channel (DeOldify's ColorFIDBenchmarkArtistic.ipynb
    ``create_before_images``): Pillow's fixed-point ITU-R 601-2 luma ``(19595 R + 38470 G + 7471 B + 0x8000) >> 16``
    (libImaging/Convert.c ``L24``), uint8 ``(H, W)``."""
    c = rgb.astype(np.uint32)
    return ((c[..., 0] * 19595 + c[..., 1] * 38470 + c[..., 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


#: The grey of NTIRE 2019's colorization challenge (report, Eq. 1) and of torchvision's ``Grayscale`` (BigColor's
#: colorize.py): ``0.2989 R + 0.5870 G + 0.1140 B``. colorbench's ``bt601`` uses 0.299, 0.587, 0.114: the two
#: differ by at most 0.0001 (0.0255 grey levels of 255), pinned in tests/test_protocols_published.py.
GREY_02989_WEIGHTS = (0.2989, 0.5870, 0.1140)


def grey_02989(rgb: np.ndarray) -> np.ndarray:
    """``0.2989 R + 0.5870 G + 0.1140 B`` of RGB ``(..., 3)`` (float64, same range as the input)."""
    r, g, b = (rgb[..., k].astype(np.float64) for k in range(3))
    return GREY_02989_WEIGHTS[0] * r + GREY_02989_WEIGHTS[1] * g + GREY_02989_WEIGHTS[2] * b


def disjoint_reference_ids(ids: Sequence[str], n_colorized: int = 5000, skip: int = 5000,
                           n_reference: int | None = None) -> tuple[list[str], list[str]]:
    """ColTran's FID sets (google-research/google-research#896, comment 986178741, and #1020): the first
    ``n_colorized`` images are colorized; the real dataset is read with ``.skip(n_colorized)``, batched, then
    ``.skip(skip_samples // batch_size)`` batches, so the reference starts at ``n_colorized + skip`` (the author:
    "skip_samples can be anything greater than 5000"; ``skip`` is colorbench's choice, recorded in the protocol),
    and holds ``n_reference`` (default ``n_colorized``) images.

    Returns ``(colorized ids, reference ids)``; a ValueError if ``ids`` is too short."""
    n_reference = n_colorized if n_reference is None else n_reference
    start = n_colorized + skip
    if len(ids) < start + n_reference:
        raise ValueError(f"disjoint FID needs {start + n_reference} images ({n_colorized} colorized, {skip} skipped, "
                         f"{n_reference} reference), got {len(ids)}")
    return list(ids[:n_colorized]), list(ids[start:start + n_reference])

# --- the protocols --------------------------------------------------------------------------------------------
_IMAGENET_VAL_5K = tuple(f"ILSVRC2012_val_{i:08d}" for i in range(1, 5001))
_IMAGENET_VAL_50K = tuple(f"ILSVRC2012_val_{i:08d}" for i in range(1, 50001))
#: ColTran's disjoint FID reference: ImageNet validation images 10,001 ... 15,000 (skip 5,000 + 5,000).
COLTRAN_SKIP = 5000
_COLTRAN_COLORIZED, _COLTRAN_REFERENCE = disjoint_reference_ids(_IMAGENET_VAL_50K, 5000, COLTRAN_SKIP)

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
    # 2 (2026-12-07, issue 24): PSNR as basicsr's calculate_psnr(crop_border=4) on tensor2img images (v1: float
    # images, no crop; median +0.055 dB, -0.27 ... +0.39 dB per image)
    name="ddcolor-imagenet-val50k", version="2", icc="ignore",  # cv2.imread (basicsr) ignores ICC profiles
    title="DDColor (Kang et al., ICCV 2023): ImageNet val 50k, FID (torchvision Inception), colourfulness, basicsr PSNR",
    paper="X. Kang, T. Yang, W. Ouyang, P. Ren, L. Li, X. Xie. DDColor: Towards Photo-Realistic Image Colorization "
          "via Dual Decoders. ICCV 2023",
    code=("piddnad/DDColor basicsr/models/color_model.py (nondist_validation, _prepare_inception_model_fid)",
          "piddnad/DDColor basicsr/metrics/custom_fid.py (INCEPTION_V3_FID, get_activations, "
          "calculate_activation_statistics, calculate_frechet_distance)",
          "piddnad/DDColor basicsr/metrics/colorfulness.py (calculate_cf)",
          "piddnad/DDColor basicsr/data/lab_dataset.py (LabDataset: cv2.resize to gt_size)",
          "piddnad/DDColor basicsr/data/transforms.py (rgb2lab = skimage.color.rgb2lab)",
          "piddnad/DDColor basicsr/utils/img_util.py (tensor2img, tensor_lab2rgb)",
          "piddnad/DDColor options/train/train_ddcolor.yml (gt_size 256; val metrics fid, cf; psnr commented out: "
          "calculate_psnr, crop_border 4, test_y_channel false)",
          "XPixelGroup/BasicSR basicsr/metrics/psnr_ssim.py (calculate_psnr, which DDColor's basicsr copy registers)",
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
        # basicsr calculate_psnr(img, img2, crop_border=4) on tensor2img of the output and of the real image (both
        # rounded to 8 bits), per image; the mean over images (metric_results / (idx + 1))
        "psnr": {"data_range": 255.0, "reduction": "per_image_mean", "crop_border": 4, "quantize": "round"},
    },
    aggregation="colourfulness: mean over images of the per-image value (metric_results / (idx + 1)); FID: one "
                "Frechet distance of the 2048-d features of all images (np.cov, N-1; scipy.linalg.sqrtm); PSNR (in "
                "the paper's tables, commented out in train_ddcolor.yml): mean of per-image values of basicsr's "
                "calculate_psnr(crop_border=4) on the 8-bit tensor2img images",
))

register_protocol(Protocol(
    name="ct2-imagenet-val5k", version="2", icc="ignore",  # 2: colourfulness exact on 8-bit values (issue 24)  # PIL / cv2.imread ignore ICC profiles
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
        # CT2 reads the 8-bit files (cv2.imread); colorbench's values are float32 k/255 (the files, or run's
        # truncation), whose float64 product with 255 misses k by up to 1.5e-5: "round" gives k exactly (v1: "none")
        "colorfulness": {"formula": "absolute", "channel_order": "rgb", "quantize": "round"},
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


# --- protocols of published numbers (issue 26) -------------------------------------------------------------------
_DDCOLOR_PAPER = PROTOCOLS["ddcolor-imagenet-val50k"].paper
_DDCOLOR_COMMON = dict(
    icc="ignore", real_resize="cv2.resize of the float32 image to 256x256 (INTER_LINEAR, aspect ratio not kept)",
    real_transform="ddcolor-resize-256", dataset_resize={"resize": "resize", "size": 256}, grey="cie-l",
    lab=PROTOCOLS["ddcolor-imagenet-val50k"].lab, quantize="none",
    metrics=PROTOCOLS["ddcolor-imagenet-val50k"].metrics,
    metric_options=PROTOCOLS["ddcolor-imagenet-val50k"].metric_options,
    aggregation=PROTOCOLS["ddcolor-imagenet-val50k"].aggregation,
    deviations=PROTOCOLS["ddcolor-imagenet-val50k"].deviations,
)
_DDCOLOR_CODE = ("piddnad/DDColor 2adb63f basicsr/data/lab_dataset.py (LabDataset: cv2.resize to gt_size 256)",
                 "piddnad/DDColor 2adb63f basicsr/models/color_model.py, basicsr/metrics/custom_fid.py, "
                 "basicsr/metrics/colorfulness.py (as ddcolor-imagenet-val50k)",
                 "piddnad/DDColor#9 (the author, 2023-10-31): ImageNet val50k, COCO-Stuff and ADE20K test images are "
                 "resized to 256x256 (as ColorFormer); ImageNet val5k is centre-cropped and resized (as CT2)")

register_protocol(Protocol(
    name="ddcolor-cocostuff", version="1",
    title="DDColor (ICCV 2023): COCO-Stuff validation, resized to 256, FID (torchvision Inception) and colourfulness",
    paper=_DDCOLOR_PAPER, code=_DDCOLOR_CODE,
    test_images="the 5,000 COCO-Stuff validation images (COCO val2017), every file of the folder",
    **_DDCOLOR_COMMON,
))

register_protocol(Protocol(
    name="ddcolor-ade20k", version="1",
    title="DDColor (ICCV 2023): ADE20K validation, resized to 256, FID (torchvision Inception) and colourfulness",
    paper=_DDCOLOR_PAPER, code=_DDCOLOR_CODE,
    test_images="the 2,000 ADE20K validation images ADE_val_00000001 ... ADE_val_00002000",
    test_ids=tuple(f"ADE_val_{i:08d}" for i in range(1, 2001)),
    **_DDCOLOR_COMMON,
))

register_protocol(Protocol(
    name="coltran-imagenet-val5k", version="1", icc="ignore",  # TFDS decodes the JPEG bytes without profiles
    title="ColTran (Kumar et al., ICLR 2021): FID of 5,000 colorizations against 5,000 other ImageNet val images",
    paper="M. Kumar, D. Weissenborn, N. Kalchbrenner. Colorization Transformer. ICLR 2021",
    code=("google-research/google-research 27c8dd2 coltran/datasets.py (get_dataset subset 'test' = tfds "
          "imagenet2012 'validation', shuffle_files=False; preprocess: resize_with_crop_or_pad to the shorter side, "
          "change_resolution(256, method='area'))",
          "google-research/google-research#896 comment 986178741 (the author's FID script, 2021-12-05: "
          "real_dataset.skip(FLAGS.samples), batched, .skip(skip_samples // batch_size); "
          "tfgan.eval.frechet_inception_distance_streaming)",
          "google-research/google-research#1020 (the author, 2022-03-08: FLAGS.samples = 5000, 5,000 colorizations "
          "of the first 5,000 grey images, 'skip_samples can be anything greater than 5000')",
          "google-research/big_vision 33f66f1 big_vision/evaluators/proj/uvim/coltran_fid.py (a re-implementation "
          "of ColTran's FID-5K by Google: reference = TFDS validation .skip(5000).skip(5000).take(5000), 'ColTran "
          "eval w/ seed=1 effectively uses 10_000:15_000'; TFDS's default shard-interleaved order, not "
          "validation[:5000]; area resize with antialias, rounded; Inception input x / 128 - 1)"),
    test_images="the first 5,000 ImageNet validation images ILSVRC2012_val_00000001 ... 00005000 (colorized)",
    test_ids=_COLTRAN_COLORIZED,
    fid_reference_ids=_COLTRAN_REFERENCE,
    fid_reference=(f"ImageNet validation images after skipping the 5,000 colorized ones and {COLTRAN_SKIP:,} more "
                   "(skip_samples; the author's value is not published)"),
    real_resize="centre square crop of the shorter side (tf.image.resize_with_crop_or_pad), area resize to 256",
    real_transform="coltran-center-crop-area-256",
    dataset_resize={"resize": "resize-shorter-center-crop", "size": 256},
    deviations=(
        "TFDS reads imagenet2012 'validation' shard-interleaved (big_vision: not validation[:5000]; it ships the "
        "file-name lists eval_file_names.txt / reference_file_names.txt, not read here); colorbench takes file-name "
        "order (ILSVRC2012_val_00000001 first): the 5,000 colorized and the 5,000 reference images are not ColTran's",
        "skip_samples is not published ('anything greater than 5000'); colorbench skips 5,000 more, as big_vision "
        "(positions 10,000 ... 14,999 of the order)",
        "Inception input: ColTran / big_vision scale x / 128 - 1, pytorch-fid 2x - 1 on [0, 1] (x / 127.5 - 1)",
        "tf.image.resize(method='area') is written with torch's area interpolation (adaptive average pooling): "
        "equal for integer ratios, not for others; rounded to 8 bits",
        "FID: TF-GAN's streaming FID on the TF Inception graph; colorbench uses pytorch-fid's port of that graph's "
        "weights (the difference between the two implementations is not measured here)",
        "run/evaluate --dataset cannot give the reference images (not test images of the run): FID is then "
        "missing with the reason; evaluate --target DIR with all 15,000 images computes it",
        "run/evaluate --dataset: colorbench's policy resizes the shorter side (bicubic) then crops; ColTran crops, "
        "then area-resizes; --target DIR applies ColTran's crop and area resize",
    ),
    grey="bt601",
    lab="none (ColTran colorizes in RGB; its grey input is tf.image.rgb_to_grayscale, BT.601 weights)",
    metrics=("fid",),
    metric_options={"fid": {"weights": "pytorch-fid", "preprocess": "pytorch-fid"}},
    aggregation="one Frechet distance between the Inception pool features of the 5,000 colorized images and of "
                "the 5,000 reference images",
))

register_protocol(Protocol(
    name="bigcolor-imagenet-val", version="1", icc="ignore",
    title="BigColor (Kim et al., ECCV 2022): ImageNet val, FID (pytorch-fid TF Inception) + classification accuracy",
    paper="G. Kim, K. Kang, S. Kim, H. Lee, S. Kim, J. Kim, S.-H. Baek, S. Cho. BigColor: Colorization using a "
          "Generative Color Prior for Natural Images. ECCV 2022",
    code=("KIMGEONUNG/BigColor 1456217 colorize.py (ImageFolder of the class-grouped validation set, "
          "transforms.Grayscale on ToTensor, 'powerof' resize: shorter side 256, longer side rounded up to a "
          "multiple of 16; output resized back to the original size; L = grey x 100 fused with the predicted ab; "
          "saved as '%05d.jpg'; iter_max 50,000; the generator is given the image's true class)",
          "KIMGEONUNG/BigColor 03dac06 README.md (imageNet_validation_grouping.zip: the validation set grouped by class)",
          "pytorch-fid (mseitzer/pytorch-fid, pt_inception-2015-12-05) for FID: stated in issue 26; the BigColor "
          "repository has no evaluation script"),
    test_images="the 50,000 ImageNet validation images at their original size, in ImageFolder order (classes "
                "sorted by WordNet id, files sorted within a class)",
    real_resize="none: FID on the original-size files (pytorch-fid resizes each to 299 bilinearly)",
    real_transform="pytorch-fid-resize-299",
    deviations=(
        "colorbench scores one array per set: real and colorized files are brought to 299x299 with pytorch-fid's "
        "own bilinear resize before FID (rounded to 8 bits), which pytorch-fid would do inside the network",
        "BigColor's grey is torchvision Grayscale (0.2989 R + 0.587 G + 0.114 B) and its output L is that grey x 100 "
        "(not CIE L*); colorbench's bt601 grey differs by <= 0.0001 (grey_02989)",
        "BigColor saves its colorizations as JPEG (PIL default quality); evaluate reads files as they are, run "
        "does not compress",
        "BigColor is class-conditional and is given the true ImageNet class at test time (colorize.py)",
    ),
    grey="bt601",
    lab="skimage-style rgb2lab/lab2rgb of utils/color_models.py (BigColor's own, not read here)",
    metrics=("fid",),
    metric_options={"fid": {"weights": "pytorch-fid", "preprocess": "pytorch-fid"}},
    unavailable_metrics={"classification_accuracy": (
        "not computed: colorbench has no classification-accuracy metric (it needs each image's ImageNet label in "
        "the metric inputs); the classifier BigColor used could not be verified from its repository (no "
        "evaluation script). Named for when it exists: torchvision ResNet-50 IMAGENET1K_V1 (weights registry "
        "'resnet50', colorbench weights fetch resnet50), top-1 on the colorized images")},
    aggregation="FID: one Frechet distance over the whole set (pytorch-fid: np.cov, scipy.linalg.sqrtm)",
))

register_protocol(Protocol(
    name="deoldify-openimages", version="1", icc="ignore",  # PIL.Image.open + convert ignore ICC profiles
    title="DeOldify: FID of 50,000 Open Images test colorizations (render factor 35, grey by PIL convert('LA'))",
    paper="J. Antic. DeOldify (github.com/jantic/DeOldify), the 'artistic' model's Color FID benchmark",
    code=("jantic/DeOldify a612505 ColorFIDBenchmarkArtistic.ipynb (num_images = 50000, render_factor = 35, "
          "fid_batch_size = 4, eval_size = 299; create_before_images: PIL.Image.open(fn).convert('LA')"
          ".convert('RGB') saved under the source file's name; calculate_fid_score: fid/fid_score.py "
          "calculate_activation_statistics on the rendered and source files, dims 2048)",
          "jantic/DeOldify a612505 ColorFIDBenchmarkArtistic.ipynb data note: Open Images test_challenge.zip (datasets.figure-eight.com)"),
    test_images="the first 50,000 images of fastai's ImageList.from_folder over the Open Images challenge test "
                "folder (folder-walk order; not a published list)",
    real_resize="none: FID on the original-size files (the FID Inception resizes each to 299 bilinearly)",
    real_transform="pytorch-fid-resize-299",
    deviations=(
        "the grey inputs are PIL 'L' values (8-bit, fixed point: pil_la_grey) re-saved under the source's name, so "
        "as JPEG for .jpg sources; colorbench gives methods the float bt601 grey (same weights, no rounding, no "
        "JPEG)",
        "render_factor 35 is DeOldify's own input size (35 x 16 = 560 px); other methods run at their settings",
        "real and colorized files are brought to 299x299 with pytorch-fid's bilinear resize before FID (rounded to "
        "8 bits), which the FID network would do itself",
        "failed renders are skipped by the notebook (the FID then has fewer images); colorbench fails the row",
    ),
    grey="bt601",
    lab="none (DeOldify predicts RGB)",
    metrics=("fid",),
    metric_options={"fid": {"weights": "pytorch-fid", "preprocess": "pytorch-fid"}},
    aggregation="one Frechet distance between the rendered and the source files' features (pytorch-fid)",
))

register_protocol(Protocol(
    name="ntire2019-div2k", version="1", icc="ignore",
    title="NTIRE 2019 colorization challenge, track 1: PSNR/SSIM at full resolution on DIV2K validation",
    paper="NTIRE 2019 Challenge on Image Colorization: Report. CVPR Workshops 2019",
    code=("the challenge report §2.1-2.3 (DIV2K; track 1 grey I = 0.2989 R + 0.5870 G + 0.1140 B, Eq. 1; PSNR "
          "and SSIM), read through a summary of it (rasin-tsukuba.github.io, 2020-05-23): the scoring script was "
          "not published",),
    test_images="the 100 DIV2K validation images 0801 ... 0900 (the challenge's validation set; its 20 test "
                "images were not released)",
    test_ids=tuple(f"{i:04d}" for i in range(801, 901)),
    real_resize="none: full resolution",
    deviations=(
        "grey: the challenge's 0.2989/0.5870/0.1140 (grey_02989); colorbench's bt601 uses 0.299/0.587/0.114, "
        "<= 0.0001 apart (a run records bt601)",
        "the scoring script is not public: PSNR on 8-bit RGB (data range 255, mean of per-image values) and SSIM "
        "with colorbench's default window are colorbench's reading",
        "DIV2K images differ in size; colorbench scores one array per set, so full-resolution scoring runs on "
        "images of one size at a time (e.g. evaluate per size group) and the per-image means are combined",
    ),
    grey="bt601",
    lab="none (PSNR/SSIM on RGB)",
    metrics=("psnr", "ssim"),
    metric_options={"psnr": {"data_range": 255.0, "reduction": "per_image_mean"}},
    aggregation="mean over images of the per-image PSNR and SSIM",
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

