"""The log ab-histogram export of the BBC colourisation work (Tarrés 2021, Fig. 8 and 10), as data and as a figure.

The thesis compares methods by "logarithmic colour histograms" of the CIE a and b channels: the histogram of
every pixel's a (and b) value over the real test set, and over each method's colorizations, drawn on a log
scale; a wider histogram means more vivid colours. It does not state its binning, so colorbench's conventions are:

* values: CIE a and b (D65, ``colorbench.core.color.rgb_to_lab``) of every pixel of every test image, pooled;
* bins: those of the run's ``ab_histogram_kl`` / ``ab_histogram_js`` metric (default 256 bins of width 1 over
  [-128, 128]; values outside the range are counted in the end bins), recorded in ``RunRecord.histograms``;
* y: the fraction of the set's pixels in the bin (``probability = count / total``, no smoothing), and its
  base-10 logarithm; an empty bin has no logarithm (empty CSV cell / NaN) and is left out of the figure;
* series: ``real`` (the real test set, from the first record; a record whose real histogram differs, e.g. a
  different test set, adds a ``real@<method>`` series) and one series per method (its colorized set).

:func:`log_ab_histogram_frame` gives the table (one row per series, channel and bin), :func:`write_log_ab_histogram_csv`
writes it; ``colorbench.reports.plot_ab_histograms`` draws it (two panels, a and b, log y axis), and every
report writes both (``ab_histograms.csv``, ``figures/ab_histograms.png``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

#: Columns of the exported table, in order.
LOG_AB_HISTOGRAM_COLUMNS = ("series", "channel", "bin_left", "bin_right", "bin_center", "count", "probability",
                            "log10_probability")


def _histograms_by_series(source: Any) -> dict[str, Mapping[str, Any]]:
    """``{method: histograms}`` from a run directory, a sequence of records, or such a mapping itself."""
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, (str, Path)):
        from colorbench.results.rundir import load_records

        source = load_records(source)
    return {rec.method: rec.histograms for rec in source if getattr(rec, "histograms", None)}


def _series_rows(series: str, channel: str, edges: np.ndarray, counts: Any) -> pd.DataFrame:
    counts = np.asarray(counts, dtype=np.int64)
    if counts.shape != (len(edges) - 1,):
        raise ValueError(f"{series} {channel}: histogram has {counts.size} bins but {len(edges)} edges")
    total = counts.sum()
    if total <= 0:
        raise ValueError(f"{series} {channel}: empty histogram (no pixels counted)")
    prob = counts / total
    with np.errstate(divide="ignore"):
        log10 = np.where(counts > 0, np.log10(np.where(counts > 0, prob, 1.0)), np.nan)
    return pd.DataFrame({
        "series": series, "channel": channel, "bin_left": edges[:-1], "bin_right": edges[1:],
        "bin_center": (edges[:-1] + edges[1:]) / 2, "count": counts, "probability": prob,
        "log10_probability": log10,
    })


def log_ab_histogram_frame(source: Any) -> pd.DataFrame:
    """The log ab-histogram table of a run.

    Args:
        source: a run directory, a sequence of :class:`~colorbench.results.records.RunRecord`, or a mapping
            ``{method: {"edges": [...], "real": {"a": counts, "b": counts}, "pred": {...}}}`` (what
            ``AbHistogramKL.histograms()`` returns and the runner stores as ``record.histograms``).

    Returns:
        A DataFrame with :data:`LOG_AB_HISTOGRAM_COLUMNS`, series ``real`` first, then the methods in order.

    Raises:
        ValueError: nothing to export, or a histogram whose length does not match its edges.
    """
    by_method = {m: h for m, h in _histograms_by_series(source).items() if h}
    if not by_method:
        raise ValueError("no ab histograms to export (the run computed neither ab_histogram_kl nor _js)")
    frames: list[pd.DataFrame] = []
    first_real: tuple[np.ndarray, Mapping[str, Any]] | None = None
    for method, hist in by_method.items():
        edges = np.asarray(hist["edges"], dtype=np.float64)
        if edges.ndim != 1 or len(edges) < 2 or not np.all(np.diff(edges) > 0):
            raise ValueError(f"{method}: histogram 'edges' must be an increasing list of >= 2 numbers")
        real = hist.get("real")
        if real is not None:
            if first_real is None:
                first_real = (edges, real)
                frames += [_series_rows("real", ch, edges, real[ch]) for ch in "ab"]
            elif not (np.array_equal(first_real[0], edges)
                      and all(list(first_real[1][ch]) == list(real[ch]) for ch in "ab")):
                frames += [_series_rows(f"real@{method}", ch, edges, real[ch]) for ch in "ab"]
        frames += [_series_rows(method, ch, edges, hist["pred"][ch]) for ch in "ab"]
    real_frames = [f for f in frames if f["series"].iat[0] == "real"]
    others = [f for f in frames if f["series"].iat[0] != "real"]
    return pd.concat(real_frames + others, ignore_index=True)[list(LOG_AB_HISTOGRAM_COLUMNS)]


def write_log_ab_histogram_csv(source: Any, path: str | Path) -> Path:
    """Write :func:`log_ab_histogram_frame` of ``source`` as CSV (empty cells where the log is undefined)."""
    from colorbench.core.fsio import atomic_write_text

    return atomic_write_text(path, log_ab_histogram_frame(source).to_csv(index=False, float_format="%.10g"))
