"""Seeds and paired statistics of a run (numpy, scipy and pandas only: no torch).

* **Across seeds** (:func:`seed_summary`): per (dataset, method) and metric key, the mean over the seeds that
  finished, the sample standard deviation (``ddof=1``; undefined with one seed) and ``n``.
* **Paired comparisons** (:func:`paired_comparisons`): for every per-image metric key and dataset, each method
  against the best one (best mean over seeds) on the same test images. A method's per-image value is its mean
  over seeds; only images that both methods have are used. Two tests of the per-image differences
  ``d = method - best``:

  - paired bootstrap of the mean difference (``scipy.stats.bootstrap`` on ``d`` through colorbench's one bootstrap,
    ``colorbench.core.stats``: percentile 95 % interval;
    two-sided p = ``min(1, 2 min(P*(mean <= 0), P*(mean >= 0)))`` over the bootstrap distribution);
  - ``scipy.stats.wilcoxon(method, best)`` (signed-rank, two-sided; p = 1 when every difference is 0).

  The best method is never one marked "structure lost" (:func:`structure_lost_cells`: mean luma SSIM over the
  seeds below the dataset's threshold, ``colorbench.reports.tables.structure_thresholds``), the rows the leaderboard keeps out of its bold
  best values; such methods are still compared against the best.

  Each family (one dataset and metric key, all methods against the best) is Holm-corrected (:func:`holm`). A
  method "cannot be told apart from the best" when its Holm-corrected Wilcoxon p-value is at least ``alpha``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from colorbench.core.stats import bootstrap_means, percentile_interval

ALPHA = 0.05
N_RESAMPLES = 2000
COMPARISON_COLUMNS = ("dataset", "metric", "method", "best", "higher_is_better", "n_images", "n_seeds",
                      "n_seeds_best", "mean_diff", "ci95_low", "ci95_high", "p_bootstrap", "p_wilcoxon",
                      "p_bootstrap_holm", "p_wilcoxon_holm", "indistinguishable")


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaN stays NaN.

    Hand-written because scipy offers only Benjamini-Hochberg/Yekutieli (``scipy.stats.false_discovery_control``).
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    if m == 0:
        return out
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out


def paired_bootstrap(d: np.ndarray, seed: int = 0, n_resamples: int = N_RESAMPLES) -> tuple[float, float, float]:
    """(ci95_low, ci95_high, two-sided p) of the mean of paired differences ``d`` (see the module docstring)."""
    d = np.asarray(d, dtype=float)
    if len(d) < 2 or np.all(d == d[0]):
        value = float(d[0]) if len(d) else math.nan
        return value, value, (1.0 if value == 0 else 0.0) if len(d) >= 2 else math.nan
    dist = bootstrap_means(d, seed, n_resamples)
    p = min(1.0, 2.0 * min(float(np.mean(dist <= 0)), float(np.mean(dist >= 0))))
    return (*percentile_interval(dist), p)


def wilcoxon_p(x: np.ndarray, y: np.ndarray) -> float:
    """Two-sided ``scipy.stats.wilcoxon(x, y)`` p-value; 1 when every difference is 0 (no evidence of one)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    if len(x) < 1 or np.all(x == y):
        return 1.0 if len(x) else math.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # small samples: scipy warns that the exact/normal distribution is used
        return float(stats.wilcoxon(x, y).pvalue)


def seed_summary(records: Sequence[Any]) -> pd.DataFrame:
    """One row per (dataset, method, key): ``mean, std, n, n_cells, higher_is_better`` over the seeds that
    finished (``std`` NaN with one seed)."""
    rows = []
    groups: dict[tuple[str, str], list[Any]] = {}
    for rec in records:
        groups.setdefault((rec.dataset_name, rec.method), []).append(rec)
    for (ds, method), recs in groups.items():
        keys: dict[str, bool] = {}
        for r in recs:
            for k, mv in r.metrics.items():
                keys.setdefault(k, bool(mv.higher_is_better))
        for k, hib in keys.items():
            vals = [r.metrics[k].value for r in recs if r.status == "ok" and k in r.metrics
                    and r.metrics[k].value is not None and not math.isnan(r.metrics[k].value)]
            arr = np.asarray(vals, float)
            rows.append({"dataset": ds, "method": method, "key": k, "higher_is_better": hib,
                         "mean": float(arr.mean()) if len(arr) else math.nan,
                         "std": float(arr.std(ddof=1)) if len(arr) > 1 else math.nan,
                         "n": len(arr), "n_cells": len(recs)})
    return pd.DataFrame(rows, columns=["dataset", "method", "key", "higher_is_better", "mean", "std", "n", "n_cells"])


def structure_lost_cells(summary: pd.DataFrame,
                         threshold: float | Mapping[str, float] | None = None) -> set[tuple[str, str]]:
    """(dataset, method) pairs of :func:`seed_summary` whose mean luma SSIM over the seeds that finished is below
    ``threshold``: one value, or one per dataset (``colorbench.reports.tables.structure_thresholds`` of the
    records; a dataset it lacks, or None: ``colorbench.reports.tables.LUMA_SSIM_THRESHOLD``). Their outputs lost
    the input's structure: the leaderboard marks them and keeps them out of the best values;
    :func:`paired_comparisons` does not choose them as the best method."""
    from colorbench.reports.structure import LUMA_SSIM_THRESHOLD, STRUCTURE_KEY, below_structure_threshold

    per = threshold if isinstance(threshold, Mapping) else {}
    fixed = LUMA_SSIM_THRESHOLD if threshold is None or isinstance(threshold, Mapping) else float(threshold)
    rows = summary[(summary["key"] == STRUCTURE_KEY) & (summary["n"] > 0)]
    return {(str(r.dataset), str(r.method)) for r in rows.itertuples()
            if below_structure_threshold(float(r.mean), float(per.get(str(r.dataset), fixed)))}


def per_image_means(frames: Sequence[pd.DataFrame], key: str) -> pd.Series | None:
    """Per-image values of ``key`` averaged over seeds (index: image id); images present in every seed only."""
    series = [f.set_index("id")[key] for f in frames if key in f.columns]
    if not series:
        return None
    joined = pd.concat(series, axis=1, join="inner")
    return joined.mean(axis=1)


def paired_comparisons(per_image: Mapping[tuple[str, str], Sequence[pd.DataFrame]], summary: pd.DataFrame,
                       alpha: float = ALPHA, seed: int = 0,
                       structure_threshold: float | Mapping[str, float] | None = None,
                       ) -> pd.DataFrame:
    """Each method against the best one, per dataset and per-image metric key (see the module docstring).

    Args:
        per_image: (dataset, method) -> the per-image frames (``id`` + keys) of its finished ok seeds.
        summary: :func:`seed_summary` (it gives the best method and each key's direction).
        alpha: level of the "cannot be told apart" mark.
        seed: seed of the bootstrap resampling.
        structure_threshold: luma SSIM below which a method cannot be the best, one value or one per dataset
            (:func:`structure_lost_cells`; None: the leaderboard's ``LUMA_SSIM_THRESHOLD``). A family whose methods all lost their structure has
            no best method and no rows.
    """
    lost = structure_lost_cells(summary, structure_threshold)
    rows = []
    for ds in dict.fromkeys(ds for ds, _ in per_image):
        methods = [m for (d, m) in per_image if d == ds]
        keys = list(dict.fromkeys(k for m in methods for f in per_image[(ds, m)] for k in f.columns if k != "id"))
        for key in keys:
            sub = summary[(summary["dataset"] == ds) & (summary["key"] == key) & summary["method"].isin(methods)]
            sub = sub[np.isfinite(sub["mean"].to_numpy(float))]
            if len(sub) < 2:
                continue
            hib = bool(sub["higher_is_better"].iloc[0])
            candidates = sub[[(ds, m) not in lost for m in sub["method"]]]
            if candidates.empty:
                continue
            best = str(candidates.loc[candidates["mean"].idxmax() if hib else candidates["mean"].idxmin(), "method"])
            best_vals = per_image_means(per_image[(ds, best)], key)
            if best_vals is None:
                continue
            family = []
            for m in sub["method"]:
                if m == best:
                    continue
                vals = per_image_means(per_image[(ds, m)], key)
                if vals is None:
                    continue
                common = vals.index.intersection(best_vals.index)
                x, y = vals.loc[common].to_numpy(float), best_vals.loc[common].to_numpy(float)
                finite = np.isfinite(x) & np.isfinite(y)
                x, y = x[finite], y[finite]
                lo, hi, p_boot = paired_bootstrap(x - y, seed=seed)
                family.append({"dataset": ds, "metric": key, "method": m, "best": best, "higher_is_better": hib,
                               "n_images": int(len(x)), "n_seeds": len(per_image[(ds, m)]),
                               "n_seeds_best": len(per_image[(ds, best)]),
                               "mean_diff": float(np.mean(x - y)) if len(x) else math.nan,
                               "ci95_low": lo, "ci95_high": hi, "p_bootstrap": p_boot, "p_wilcoxon": wilcoxon_p(x, y)})
            if not family:
                continue
            pb = holm([r["p_bootstrap"] for r in family])
            pw = holm([r["p_wilcoxon"] for r in family])
            for r, b, w in zip(family, pb, pw):
                r["p_bootstrap_holm"], r["p_wilcoxon_holm"] = float(b), float(w)
                r["indistinguishable"] = bool(w >= alpha)
            rows.extend(family)
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
