"""Figures of a run, drawn from records and saved sample arrays only.

Figures are built as :class:`matplotlib.figure.Figure` objects on an Agg canvas, never through ``pyplot``:
nothing opens a window, nothing is kept in pyplot's global figure list, so there is nothing to close.
Each ``plot_*`` function returns the path it wrote, or ``None`` when the records hold nothing to draw.
A method keeps the same colour in every figure (its index in ``records``).
"""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from colorbench.reports.histogram_export import LOG_AB_HISTOGRAM_COLUMNS, log_ab_histogram_frame
from colorbench.records import RunRecord, as_float
from colorbench.reports.tables import CANONICAL_METRICS, display_name, higher_is_better

DPI = 100
MAX_SAMPLE_ROWS = 6
_NOT_LOSSES = ("epoch", "seconds")  # keys of a ``record.losses`` entry that are not losses


def plot_ab_histograms(source: Sequence[RunRecord] | pd.DataFrame, path: str | Path) -> Path | None:
    """Log a* and b* histograms (two panels, log y): the real test set (black) vs each method's colorizations.

    The figure of Tarrés (2021, Fig. 8/10); the data and its conventions are those of
    :func:`colorbench.reports.histogram_export.log_ab_histogram_frame` (bins of the run's ab-histogram metric,
    probability = count / total, empty bins left out of the log plot; a record whose real histogram differs from
    the first one adds a ``real@<method>`` series).

    Args:
        source: run records (``record.histograms``), or a table from ``log_ab_histogram_frame``.
        path: where to save the PNG.

    Returns:
        The path, or None when no record has histograms.

    Raises:
        ValueError: a histogram whose length does not match its edges, or a table missing columns.
    """
    if isinstance(source, pd.DataFrame):
        frame = source
        missing = set(LOG_AB_HISTOGRAM_COLUMNS) - set(frame.columns)
        if missing:
            raise ValueError(f"not a log ab-histogram table: missing columns {sorted(missing)}")
        style_of = {}
    else:
        records = list(source)
        if not any(rec.histograms for rec in records):
            return None
        frame = log_ab_histogram_frame(records)
        style_of = {rec.method: _style(i) for i, rec in enumerate(records)}  # same style as in other figures
    series_names = list(dict.fromkeys(frame["series"]))
    methods = [s for s in series_names if not s.startswith("real")]
    if len(methods) > len(_COLOURS):  # one legend colour would name several methods: one small panel each
        return _save(_ab_small_multiples(frame, series_names, methods), path)
    fig = _figure(11, 4)
    axes = fig.subplots(1, 2, sharey=True)
    for channel, ax in zip("ab", axes):
        for i, series in enumerate(series_names):
            real = series == "real"
            colour, dash = ("black", "-") if real else style_of.get(series, _style(i))
            _ab_stairs(ax, frame, series, channel, color=colour, linestyle=dash, linewidth=2.2 if real else 1.4,
                       label=series)
        ax.set_yscale("log")
        ax.set_title(f"{channel}* channel")
        ax.set_xlabel(f"{channel}* (CIELAB)")
        ax.grid(True, which="major", alpha=0.3)
    axes[0].set_ylabel("fraction of pixels (log scale)")
    _legend(fig, axes)
    return _save(fig, path)


def _ab_stairs(ax: Any, frame: pd.DataFrame, series: str, channel: str, **style: Any) -> bool:
    rows = frame[(frame["series"] == series) & (frame["channel"] == channel)]
    if rows.empty:
        return False
    edges = np.append(rows["bin_left"].to_numpy(dtype=float), rows["bin_right"].to_numpy(dtype=float)[-1])
    prob = rows["probability"].to_numpy(dtype=float).copy()
    prob[prob <= 0] = np.nan  # empty bins: no logarithm, a gap in the line
    ax.stairs(prob, edges, baseline=None, **style)
    return True


#: Panels per row of the small-multiples ab-histogram figure.
AB_PANELS_PER_ROW = 4


def _ab_small_multiples(frame: pd.DataFrame, series_names: list[str], methods: list[str]) -> Figure:
    """One panel per method, titled with its name: its a* (blue) and b* (orange) histograms over the real test
    set's (black; solid a*, dashed b*), shared log axes, so every series is identified by its panel."""
    cols = min(AB_PANELS_PER_ROW, len(methods))
    rows = -(-len(methods) // cols)
    fig = _figure(3.1 * cols, 2.3 * rows + 0.6)
    axes = np.atleast_2d(fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False))
    reals = [s for s in series_names if s.startswith("real")]
    for k, ax in enumerate(axes.flat):
        if k >= len(methods):
            ax.set_visible(False)
            continue
        method = methods[k]
        real = f"real@{method}" if f"real@{method}" in reals else "real"  # a record with its own real histogram
        for channel, dash in (("a", "-"), ("b", "--")):
            _ab_stairs(ax, frame, real, channel, color="black", linestyle=dash, linewidth=1.2,
                       label=f"real {channel}*")
        _ab_stairs(ax, frame, method, "a", color="C0", linewidth=1.3, label="method a*")
        _ab_stairs(ax, frame, method, "b", color="C1", linestyle="--", linewidth=1.3, label="method b*")
        ax.set_yscale("log")
        ax.set_title(method, fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.tick_params(labelsize=7)
        if k % cols == 0:
            ax.set_ylabel("fraction (log)", fontsize=8)
        if k // cols == rows - 1 or k + cols >= len(methods):
            ax.set_xlabel("a* / b* (CIELAB)", fontsize=8)
    fig.suptitle("a*/b* histograms: each method (colour) against the real test set (black)", fontsize=10)
    _legend(fig, [axes.flat[0]])
    return fig


def plot_sample_grid(
    run_dir: str | Path, records: Sequence[RunRecord], path: str | Path, max_rows: int = MAX_SAMPLE_ROWS,
    samples_path: str | Path | None = None,
) -> Path | None:
    """A grid of test samples: rows are samples, columns grey | each method | real.

    Reads ``arrays/samples.npz`` (``gray`` (K,1,H,W), ``real`` (K,3,H,W) uint8, ``ids``) and each record's
    ``samples_file`` (key ``pred`` (K,3,H,W) uint8). Methods without a samples file (failed runs) get no
    column; a listed but absent file is skipped with a warning. Returns ``None`` if ``samples.npz`` is absent.
    ``samples_path`` replaces ``arrays/samples.npz`` (e.g. ``arrays/samples_<dataset>.npz`` of a grid).

    Raises:
        ValueError: arrays of the wrong key, shape or dtype (the message names the file).
    """
    run_dir = Path(run_dir)
    samples_path = Path(samples_path) if samples_path is not None else run_dir / "arrays" / "samples.npz"
    if not samples_path.exists():
        return None
    with np.load(samples_path) as z:
        gray = _array(z, "gray", samples_path, channels=1)
        real = _array(z, "real", samples_path, channels=3)
        ids = z["ids"] if "ids" in z.files else np.arange(len(real))
    if gray.shape[0] != real.shape[0] or gray.shape[2:] != real.shape[2:]:
        raise ValueError(f"{samples_path}: 'gray' {gray.shape} and 'real' {real.shape} do not describe the same images")

    columns: list[tuple[str, np.ndarray]] = [("grey input", gray)]
    for rec in records:
        if not rec.samples_file:
            continue
        pred_path = run_dir / rec.samples_file
        if not pred_path.exists():
            warnings.warn(f"{rec.method}: samples file {pred_path} is missing; left out of the sample grid", stacklevel=2)
            continue
        with np.load(pred_path) as z:
            pred = _array(z, "pred", pred_path, channels=3)
        if pred.shape != real.shape:
            raise ValueError(f"{pred_path}: 'pred' has shape {pred.shape}, the real samples have {real.shape}")
        columns.append((rec.method, pred))
    columns.append(("real", real))

    n_rows = min(len(real), max_rows)
    if n_rows == 0:
        return None
    n_cols = len(columns)
    fig = _figure(1.7 * n_cols, 1.7 * n_rows + 0.3)
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for row in range(n_rows):
        for col, (title, images) in enumerate(columns):
            ax = axes[row, col]
            if images.shape[1] == 1:
                ax.imshow(images[row, 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            else:
                ax.imshow(images[row].transpose(1, 2, 0), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(title, fontsize=9)
            if col == 0:
                ax.set_ylabel(_sample_label(ids[row]), fontsize=7)
    return _save(fig, path)


def plot_curves(records: Sequence[RunRecord], path: str | Path) -> Path | None:
    """Metric-over-epoch curves: one panel per metric key, one line per method with ≥ 2 evaluated epochs.

    Reads ``record.curve = [{"epoch": e, "metrics": {"psnr": v, ...}}, ...]``. Non-finite values are gaps.
    """
    drawn = [(i, rec) for i, rec in enumerate(records) if len(rec.curve) >= 2]
    if not drawn:
        return None
    keys = curve_metric_keys([rec for _, rec in drawn])
    if not keys:
        return None
    directions = higher_is_better(records)
    n_cols = min(3, len(keys))
    n_rows = -(-len(keys) // n_cols)
    fig = _figure(3.6 * n_cols + 1.6, 2.8 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys):
        for index, rec in drawn:
            points = [(p.get("epoch"), (p.get("metrics") or {}).get(key)) for p in rec.curve]
            xs = [_finite(e) for e, v in points if v is not None]
            ys = [_finite(v) for e, v in points if v is not None]
            if ys:
                colour, dash = _style(index)
                ax.plot(xs, ys, marker="o", markersize=3, color=colour, linestyle=dash, label=rec.method)
        arrow = {True: " ↑", False: " ↓"}.get(directions.get(key), "")
        ax.set_title(display_name(key) + arrow, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    for ax in axes[len(keys):]:
        ax.set_visible(False)
    _legend(fig, axes[: len(keys)])
    return _save(fig, path)


def curve_metric_keys(records: Sequence[RunRecord]) -> list[str]:
    """Metric keys of the records' curves that have at least one finite value (canonical ones first).

    A metric missing at every epoch (e.g. LPIPS without its weights) gets no empty panel.
    """
    seen: dict[str, None] = {}
    for rec in records:
        for point in rec.curve:
            metrics = point.get("metrics") or {}
            seen.update(dict.fromkeys(k for k, v in metrics.items() if np.isfinite(_finite(v))))
    return [k for k in CANONICAL_METRICS if k in seen] + [k for k in seen if k not in CANONICAL_METRICS]


def plot_losses(records: Sequence[RunRecord], path: str | Path) -> Path | None:
    """Training losses per epoch: one panel per method that recorded any, one line per loss.

    Reads ``record.losses = [{"epoch": e, "<loss>": v, ..., "seconds": s}, ...]`` (``seconds``, the epoch's
    duration, is not drawn); non-finite values are gaps.
    """
    drawn = [rec for rec in records if rec.losses]
    if not drawn:
        return None
    n_cols = min(3, len(drawn))
    n_rows = -(-len(drawn) // n_cols)
    fig = _figure(4.2 * n_cols, 3.0 * n_rows)
    axes = fig.subplots(n_rows, n_cols, squeeze=False).ravel()
    for ax, rec in zip(axes, drawn):
        names = list(dict.fromkeys(k for entry in rec.losses for k in entry if k not in _NOT_LOSSES))
        for name in names:
            points = [(entry.get("epoch", i + 1), entry.get(name)) for i, entry in enumerate(rec.losses)]
            xs = [_finite(e) for e, v in points if v is not None]
            ys = [_finite(v) for e, v in points if v is not None]
            ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_title(rec.method if rec.status == "ok" else f"{rec.method} ({rec.status})", fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("mean loss")
        ax.grid(True, alpha=0.3)
        if names:
            ax.legend(fontsize=7)
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    return _save(fig, path)


# --- helpers ---------------------------------------------------------------------------------------------------


def _figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    from colorbench.fsio import atomic_savefig

    return atomic_savefig(fig, path, dpi=DPI)  # no half-written or empty PNG on a full disk


#: The colour cycle of the overlay figures; beyond it the line style changes, so no two series look alike.
_COLOURS = tuple(f"C{i}" for i in range(10))
_DASHES = ("-", "--", ":", "-.")


def _style(index: int) -> tuple[str, Any]:
    """(colour, line style) of the ``index``-th series: 10 colours, then the same colours dashed, dotted, ...;
    distinct up to 40 series, after which dash patterns of growing length keep them apart."""
    colour = _COLOURS[index % len(_COLOURS)]
    turn = index // len(_COLOURS)
    dash = _DASHES[turn] if turn < len(_DASHES) else (0, (1 + turn, 1 + turn // 2))
    return colour, dash


def _colour(index: int) -> str:
    return f"C{index % 10}"


def _legend(fig: Figure, axes: Sequence[Any]) -> None:
    """One legend for the figure, right of the panels, with every label drawn in any panel."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside right upper", fontsize=8)


def _sample_label(sample_id: Any, width: int = 20) -> str:
    """A sample's row label: integer ids as ``#12``; long string ids broken into lines of at most ``width``
    characters, at ``:`` where possible, so a label never runs past its row."""
    if isinstance(sample_id, (int, np.integer)):
        return f"#{sample_id}"
    lines: list[str] = []
    for i, part in enumerate(str(sample_id).split(":")):
        token = part if i == 0 else ":" + part
        if lines and len(lines[-1]) + len(token) <= width:
            lines[-1] += token
        else:
            lines.extend(textwrap.wrap(token, width) or [token])
    return "\n".join(lines)


def _finite(v: Any) -> float:
    """A plottable float: stored values may be the strings "inf"/"nan"; non-finite ones become NaN (a gap)."""
    try:
        x = as_float(v)
    except (TypeError, ValueError):
        return float("nan")
    return x if x is not None and np.isfinite(x) else float("nan")


def _array(npz: Any, key: str, path: Path, channels: int) -> np.ndarray:
    if key not in npz.files:
        raise ValueError(f"{path}: no array {key!r} (has {sorted(npz.files)})")
    arr = npz[key]
    if arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[1] != channels:
        raise ValueError(f"{path}: {key!r} must be uint8 of shape (K, {channels}, H, W), got {arr.dtype} {arr.shape}")
    return arr
