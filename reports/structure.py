"""The "structure lost" rule: rows whose luma SSIM says the colorization did not keep its grey input."""

from __future__ import annotations

import math
from typing import Any, Sequence

from colorbench.results.records import RunRecord, as_float


def _float_or_none(v: Any) -> float | None:
    try:
        return as_float(v)
    except (TypeError, ValueError):
        return None


#: The metric key that says whether a colorization kept its input's structure (SSIM between the grey of the
#: output and the grey input; ``colorbench.metrics.image_quality.LumaStructuralSimilarity``).
STRUCTURE_KEY = "luma_ssim"
#: Rows of successful runs whose luma SSIM is below this are marked "structure lost" in the leaderboard and take
#: no part in the best (bold) values. Chosen from measurements on the default data (built-in photos, 528 test
#: patches of 32×32, bt601; luma_ssim means): outputs without their input's structure score uniform RGB noise
#: 0.02, the grey input plus N(0, 0.2²) noise 0.23, the test images in the wrong order 0.41, each image's flat
#: mean colour 0.58 (many patches are nearly flat, which SSIM's constants reward); outputs that keep it score a
#: 7×7 box blur of the real image 0.76, a 5×5 blur 0.82, pix2pix (quick) 0.99, unet-l1 0.998, gray 1. The old
#: quick presets of the unpaired family scored 0.40 (cyclegan; blobs in the sample grid). 0.7 lies between the
#: two groups: below it a row keeps less of its input than a 7×7 blur does. SSIM rewards flat patches, so on
#: another dataset the structure-less scores move (flat output scores higher where images are flatter).
#: Since 2026-12-02 the threshold is placed on each dataset's own scale (:func:`structure_threshold`: midway between
#: the luma SSIM of a flat-colour and of a 7x7-blur reference colorization of its real images, recorded with every
#: record); this fixed value applies to records without those references (made before).
LUMA_SSIM_THRESHOLD = 0.7
STRUCTURE_LOST = "⚠ structure lost"


def _recorded_threshold(rec: RunRecord) -> float | None:
    """The threshold recorded with ``rec``'s dataset (``rec.dataset["structure_references"]``, see
    ``colorbench.metrics.image_quality.structure_references``), or None."""
    refs = rec.dataset.get("structure_references") if isinstance(rec.dataset, dict) else None
    value = _float_or_none(refs.get("threshold")) if isinstance(refs, dict) else None
    return value if value is not None and math.isfinite(value) else None


def structure_threshold(rec: RunRecord) -> float:
    """The luma SSIM below which ``rec``'s row is marked "structure lost": the threshold recorded with its dataset,
    else :data:`LUMA_SSIM_THRESHOLD`."""
    value = _recorded_threshold(rec)
    return LUMA_SSIM_THRESHOLD if value is None else value


def structure_thresholds(records: Sequence[RunRecord]) -> dict[str, float]:
    """Dataset name -> the threshold of its first record with references, else the fixed default."""
    out: dict[str, float] = {}
    for rec in records:
        value = _recorded_threshold(rec)
        if value is not None:
            out.setdefault(rec.dataset_name, value)
    return {**{rec.dataset_name: LUMA_SSIM_THRESHOLD for rec in records}, **out}


def structure_lost(rec: RunRecord, threshold: float | None = None) -> bool:
    """True for a successful record whose luma SSIM is below ``threshold`` (default: :func:`structure_threshold`
    of the record): its colorizations do not keep their grey input's structure, so its colour metrics describe
    something other than a colorization of the input. False when the record has no luma SSIM (nothing to judge
    by)."""
    if rec.status != "ok":
        return False
    mv = rec.metrics.get(STRUCTURE_KEY)
    threshold = structure_threshold(rec) if threshold is None else threshold
    return below_structure_threshold(None if mv is None else _float_or_none(mv.value), threshold)


def below_structure_threshold(value: float | None, threshold: float = LUMA_SSIM_THRESHOLD) -> bool:
    """True when a luma SSIM ``value`` (one record's, or a mean over seeds) says the structure was lost; False
    for None or NaN (nothing to judge by). The one rule behind :func:`structure_lost` and
    :func:`colorbench.reports.stats.structure_lost_cells`."""
    return value is not None and not math.isnan(value) and value < threshold
