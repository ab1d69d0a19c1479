"""Evaluation of a colorizer on a test split: the protocol's metrics streamed over its colorizations, per-image
values and bootstrap intervals, output diversity, the structure references of a test set."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbench.datasets import ImageSet
from colorbench.methods import Method
from colorbench.methods.base import checked_colorize
from colorbench.metrics import StreamingMetric
from colorbench.metrics.functional import quantize_unit
from colorbench.results.records import MetricValue
from colorbench.results.rundir import PREDICTIONS_MAX_BYTES
from colorbench.engine.data import to_uint8
from colorbench.engine.protocols import get_protocol, stream_metrics
from colorbench.engine.spec import RunSpec


class Evaluator:
    """Colorizes a test set with a method and streams the metrics of a spec over it."""

    def __init__(self, spec: RunSpec, test: ImageSet, device: torch.device, seed: int | None = None) -> None:
        self.spec, self.test, self.device = spec, test, device
        self.seed = spec.seed if seed is None else seed

    def build_metrics(self) -> tuple[dict[str, StreamingMetric], dict[str, str]]:
        """The spec's metrics with its protocol's options (``{name: metric}``, ``{name: reason unavailable}``);
        metrics that take a grey convention (e.g. luma_ssim) get the run's, recorded in their params. A metric
        that cannot be computed on the test set's image size (SSIM's 11x11 window on 8x8 images) is unavailable
        with that reason: the rest of the row stays."""
        metrics, missing = get_protocol(self.spec.protocol).build_metrics(
            self.spec.metrics, self.spec.lpips_weights, self.spec.fid_weights, self.spec.grey_convention)
        if self.test is not None:
            for name in list(metrics):
                problem = metrics[name].input_problem(*self.test.image_size)
                if problem is not None:
                    missing[name] = problem
                    del metrics[name]
        return metrics, missing

    def evaluate(self, method: Method | OutputView, desc: str = "eval", keep_predictions: bool = False
                 ) -> tuple[dict[str, MetricValue], dict[str, StreamingMetric]]:
        """Metric values of ``method`` on the test set. With ``keep_predictions`` the uint8 colorizations are in
        ``self.last_predictions`` afterwards; ``self.last_per_image`` holds the per-image values by key. The
        colorizations stream through the protocol's one evaluation loop
        (:func:`colorbench.engine.protocols.stream_metrics`)."""
        metrics, missing = self.build_metrics()
        bs = self.spec.eval_batch_size
        batches = self.test.batches(bs, device=self.device, grey_convention=self.spec.grey_convention)
        n_batches = math.ceil(len(self.test) / bs)
        proto = get_protocol(self.spec.protocol)
        real8 = self.test.rgb if isinstance(self.test.rgb, torch.Tensor) and self.test.rgb.dtype == torch.uint8 \
            else None
        kept: list[np.ndarray] = []

        def colorized():
            for k, batch in enumerate(tqdm(batches, total=n_batches, desc=desc, leave=False,
                                           disable=not self.spec.progress)):
                pred = quantize_unit(checked_colorize(method, batch.gray), proto.quantize)  # the protocol's 8 bits
                if keep_predictions:
                    kept.append(to_uint8(pred))
                target8 = None if real8 is None else real8[k * bs:k * bs + len(batch)]  # batch.rgb = target8 / 255
                eight_bit = {"target": target8} if target8 is not None and target8.shape == batch.rgb.shape else None
                yield pred, batch.rgb, eight_bit

        stream_metrics(metrics, colorized())
        self.last_predictions = np.concatenate(kept) if kept else None
        values, self.last_per_image = proto.metric_values(metrics, missing, seed=self.seed)
        return values, metrics


def output_diversity(method: Method, test: ImageSet, spec: RunSpec, device: torch.device,
                     seed: int | None = None) -> MetricValue:
    """Mean pairwise distance between several colorizations of the same grey images (stochastic methods).

    The distance of two colorizations is their mean absolute difference on the 0-255 RGB scale; it is averaged
    over every unordered pair of the ``n`` samples and over the first ``diversity_images`` test images. 0 means
    the method ignores its noise.
    """
    seed = spec.seed if seed is None else seed
    idx = torch.arange(min(spec.diversity_images, len(test)))
    gray = test.make_batch(idx, device, grey_convention=spec.grey_convention).gray
    n = spec.diversity_samples
    samples = method.sample(gray, n, seed=seed).float()  # (n, N, 3, H, W)
    if samples.shape != (n, *gray.shape[:1], 3, *gray.shape[2:]):
        raise ValueError(f"{method.card.name}.sample returned shape {tuple(samples.shape)}")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    value = float(torch.stack([(samples[i] - samples[j]).abs().mean() * 255 for i, j in pairs]).mean())
    return MetricValue(
        value=value, metric="output_diversity", version="1", higher_is_better=True,
        params={"n_samples": n, "n_images": len(idx), "distance": "mean absolute difference, RGB 0-255",
                "average": "all unordered pairs of samples, then images", "noise_seed": seed,
                **get_protocol(spec.protocol).params()},
    )


class OutputView:
    """One alternative output of a method, seen as a method of its own by the evaluator."""

    def __init__(self, method: Method, output: str) -> None:
        self.method, self.output = method, output
        self.card = dataclasses.replace(method.card, name=f"{method.card.name}@{output}")

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self.method.colorize_output(gray, self.output)


#: (id of a test ImageSet, grey convention) -> (a weak reference to that ImageSet, its structure references):
#: computed once per process and dataset (every cell of a worker evaluates the same test set); the weak reference
#: tells a reused id from the same set without keeping the images alive.
_STRUCTURE_REFS: dict[tuple[int, str], tuple[Any, Any]] = {}


def dataset_structure_references(test: Any, grey_convention: str) -> dict[str, Any] | None:
    """:func:`colorbench.metrics.image_quality.structure_references` of a test split: once per process, and
    stored on disk by the split's sha256 (:func:`cached_structure_references`)."""
    import weakref

    from colorbench.metrics.image_quality import structure_references

    key = (id(test), grey_convention)
    hit = _STRUCTURE_REFS.get(key)
    if hit is None or hit[0]() is not test:
        if len(_STRUCTURE_REFS) >= 8:
            _STRUCTURE_REFS.clear()
        key = test.sha256()  # on disk too, by content: computed once per test set, like the dataset cache
        refs = cached_structure_references(key, grey_convention)
        if refs is None:
            refs = structure_references(test.rgb, grey_convention)
            store_structure_references([key], grey_convention, refs, sha256=key)
        hit = (weakref.ref(test), refs)
        _STRUCTURE_REFS[key] = hit
    return hit[1]


class StructureReferenceSums:
    """:func:`colorbench.metrics.image_quality.structure_references` fed in batches of any size: images are
    buffered into the function's own chunks of 256 and summed as it sums them, so the result is the same to the
    bit (tests/test_streaming_evaluate.py checks it) while at most 256 images are held."""

    CHUNK = 256

    def __init__(self, grey_convention: str) -> None:
        from colorbench.metrics import functional as MF

        self.grey, self.MF = grey_convention, MF
        self.win = MF.ssim_settings("gaussian")["win_size"]
        self.sums = {"flat": 0.0, "blur7": 0.0}
        self.n = 0
        self.too_small = False
        self._buffer: list[torch.Tensor] = []
        self._buffered = 0

    def update(self, real: torch.Tensor) -> None:
        """Add real images ``(B, 3, H, W)`` uint8, in the set's order."""
        if real.shape[-2] < self.win or real.shape[-1] < self.win:
            self.too_small = True
            return
        while len(real):
            take = real[: self.CHUNK - self._buffered]
            self._buffer.append(take)
            self._buffered += len(take)
            real = real[len(take):]
            if self._buffered == self.CHUNK:
                self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        from colorbench.metrics.image_quality import structure_reference_values

        x = torch.cat(self._buffer) if len(self._buffer) > 1 else self._buffer[0]
        self._buffer, self._buffered = [], 0
        for key, values in structure_reference_values(x, self.grey).items():
            self.sums[key] += float(values.sum())
        self.n += len(x)

    def compute(self) -> dict[str, Any] | None:
        from colorbench.metrics.image_quality import STRUCTURE_REFERENCE_RULE

        self._flush()
        if self.too_small or not self.n:
            return None
        flat, blur = self.sums["flat"] / self.n, self.sums["blur7"] / self.n
        return {"grey": self.grey, "flat": flat, "blur7": blur, "threshold": (flat + blur) / 2, "n_images": self.n,
                "rule": STRUCTURE_REFERENCE_RULE}


def _refs_cache_dir() -> "Any":
    import os
    from pathlib import Path

    root = os.environ.get("COLORBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "colorbench")
    return Path(root) / "structure-references"


def cached_structure_references(key: str, grey_convention: str) -> dict[str, Any] | None:
    """The structure references stored for a real-image set by :func:`store_structure_references` (``key``: the
    set's sha256 or a file fingerprint), or None. They are computed once per set, like the dataset cache."""
    import json

    from colorbench.metrics.image_quality import STRUCTURE_REFERENCE_RULE

    path = _refs_cache_dir() / f"{key}-{grey_convention}.json"
    try:
        stored = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("rule") != STRUCTURE_REFERENCE_RULE:
        return None  # computed under another rule: compute again
    return stored.get("references") if "references" in stored else None


def store_structure_references(keys: "list[str]", grey_convention: str, refs: dict[str, Any] | None,
                               sha256: str | None = None) -> None:
    """Store ``refs`` under each key (best effort: a cache that cannot be written is skipped)."""
    from colorbench.core.fsio import WriteError, atomic_write_json
    from colorbench.metrics.image_quality import STRUCTURE_REFERENCE_RULE

    for key in keys:
        try:
            _refs_cache_dir().mkdir(parents=True, exist_ok=True)
            atomic_write_json(_refs_cache_dir() / f"{key}-{grey_convention}.json",
                              {"rule": STRUCTURE_REFERENCE_RULE, "sha256": sha256, "references": refs})
        except (OSError, WriteError):
            return


def keep_predictions(spec: RunSpec, test: ImageSet) -> bool:
    if spec.save_predictions == "always":
        return True
    if spec.save_predictions == "never":
        return False
    h, w = test.image_size
    return len(test) * 3 * h * w <= PREDICTIONS_MAX_BYTES
