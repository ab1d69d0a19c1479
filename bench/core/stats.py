"""Statistics shared by the floors above: the percentile bootstrap interval of a mean of per-image values."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def bootstrap_ci(values: Any, reported: float, seed: int, n_resamples: int = 1000) -> tuple[float, float] | None:
    """Percentile bootstrap 95% interval of the mean of per-image values, attached only when the reported value
    is that mean (not, e.g., a global PSNR) and every value is finite."""
    if values is None or len(values) < 2:
        return None
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if not np.isfinite(v).all() or not math.isclose(float(v.mean()), reported, rel_tol=1e-6, abs_tol=1e-9):
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)
