"""Statistics shared by the floors above: the bootstrap distribution of a mean and its percentile interval.

One bootstrap for colorbench: the recorded interval of a metric over the test images (:func:`bootstrap_ci`, in
every record's ``ci95``) and the report's paired comparisons (``colorbench.reports.stats.paired_bootstrap``) both
resample with :func:`bootstrap_means` (``scipy.stats.bootstrap``) and read the interval with
:func:`percentile_interval`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


#: Values (indices and resampled values) a bootstrap batch may hold: ~64 MB.
RESAMPLE_BATCH_VALUES = 4_000_000


def resample_batch(n_values: int) -> int:
    """Resamples drawn at once by :func:`bootstrap_means` for ``n_values`` values (at least one)."""
    return max(1, RESAMPLE_BATCH_VALUES // max(1, n_values))


def bootstrap_means(values: np.ndarray, seed: int, n_resamples: int) -> np.ndarray:
    """The bootstrap distribution of the mean of ``values``: ``n_resamples`` means of resamples drawn with
    replacement by ``scipy.stats.bootstrap`` from ``numpy.random.default_rng(seed)``.

    scipy draws every resample's indices at once, ``rng.integers(0, n, (n_resamples, n))`` (scipy 1.17,
    ``stats/_resampling.py``: ``_bootstrap_resample``), which is what colorbench's own bootstrap drew before it
    used scipy's: the recorded intervals are unchanged to the last bit (``tests/test_stats.py`` checks it).
    The resamples are drawn :func:`resample_batch` at a time: the same indices from the same generator (drawn in
    order, row by row), each resample's mean computed alone, so the distribution is the same to the bit, without
    holding every index at once (1,000 resamples of 50,000 values are 0.4 GB of indices and 0.4 GB of values).
    """
    from scipy import stats  # here, not at the top: the CLI's light verbs import this floor without scipy

    values = np.asarray(values, dtype=np.float64)
    res = stats.bootstrap((values,), np.mean, n_resamples=n_resamples, method="percentile", vectorized=True,
                          rng=np.random.default_rng(seed), batch=resample_batch(len(values)))
    return np.asarray(res.bootstrap_distribution)


def percentile_interval(distribution: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval of a bootstrap distribution: its 2.5th and 97.5th percentiles
    (``numpy.percentile``, linear interpolation).

    Not ``scipy.stats.bootstrap``'s own ``confidence_interval``: scipy takes the quantiles at
    ``(1 - 0.95) / 2 = 0.025000000000000022`` with ``scipy.stats.quantile``, which differs from these in the last
    bits (at most 1.1e-13 relative over 200 random samples, the largest for intervals near 0), and the intervals
    recorded since the first runs are these.
    """
    lo, hi = np.percentile(distribution, [2.5, 97.5])
    return float(lo), float(hi)


def bootstrap_ci(values: Any, reported: float, seed: int, n_resamples: int = 1000) -> tuple[float, float] | None:
    """Percentile bootstrap 95% interval of the mean of per-image values, attached only when the reported value
    is that mean (not, e.g., a global PSNR) and every value is finite."""
    if values is None or len(values) < 2:
        return None
    v = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if not np.isfinite(v).all() or not math.isclose(float(v.mean()), reported, rel_tol=1e-6, abs_tol=1e-9):
        return None
    return percentile_interval(bootstrap_means(v, seed, n_resamples))
