"""Tables of a run: ``results.csv`` (one row per method) and ``leaderboard.md`` (Markdown), from records only.

Nothing here recomputes a metric: every number comes from a :class:`~colorbench.results.records.RunRecord`.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from colorbench.reports.structure import (LUMA_SSIM_THRESHOLD, STRUCTURE_KEY, STRUCTURE_LOST, below_structure_threshold,  # noqa: F401
                                          structure_lost, structure_threshold, structure_thresholds)
from colorbench.reports.header import report_header
from colorbench.results.records import RunRecord, as_float

#: Metric columns that ``results.csv`` always has, in this order (empty where a record lacks them).
CANONICAL_METRICS: tuple[str, ...] = ("mse", "psnr", "ssim", "luma_ssim", "lpips", "kl_a", "kl_b", "js_a", "js_b")
#: Timing columns of ``results.csv`` (seconds, from ``RunRecord.timings``).
TIMING_COLUMNS: tuple[str, ...] = ("train_s", "total_s")
#: The cell of each row (``results.csv`` has one row per cell: dataset x method x seed).
CELL_COLUMNS: tuple[str, ...] = ("dataset", "seed", "key")

# How each metric is printed in Markdown; any other key gets 4 significant digits.
_FORMATS = {"psnr": ".2f", "ssim": ".4f", "luma_ssim": ".4f", "lpips": ".4f", "cross_domain_avg": ".1f"}
_DEFAULT_FORMAT = "#.4g"  # "#" keeps trailing zeros: 0.01200, not 0.012
_DISPLAY_NAMES = {
    "mse": "MSE",
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "luma_ssim": "Luma SSIM",
    "lpips": "LPIPS",
    "kl_a": "KL a",
    "kl_b": "KL b",
    "js_a": "JS a",
    "js_b": "JS b",
    "cross_domain_avg": "Cross-domain acc. (%)",
}
MISSING = "—"


def metric_keys(records: Sequence[RunRecord]) -> list[str]:
    """Metric output keys found in ``records``: the canonical ones first, then the others as first seen."""
    seen: dict[str, None] = {}
    for rec in records:
        seen.update(dict.fromkeys(rec.metrics))
    return [k for k in CANONICAL_METRICS if k in seen] + [k for k in seen if k not in CANONICAL_METRICS]


#: Metric keys whose best value is the one closest to the real set's rather than the highest: the partner key is
#: that distance (ΔCF = |CF(real set) - CF(colorized set)|). Colourfulness alone rewards over-saturation, which
#: people and preference metrics are known to favour wrongly; a row is best in the column when its ΔCF is lowest.
CLOSEST_TO_REAL = {"colorfulness": "delta_colorfulness"}
CLOSEST_NOTE = ("→ real: the best value is the one closest to the real images' (lowest ΔCF), not the highest; "
                "more colourful than the real images is not better.")


def arrow(key: str, hib: bool) -> str:
    """The direction mark of a column header: ↑, ↓, or "→ real" for :data:`CLOSEST_TO_REAL` keys."""
    return "→ real" if key in CLOSEST_TO_REAL else ("↑" if hib else "↓")


def best_rows(rows: Mapping[Any, Mapping[str, float | None]], keys: Sequence[str],
              directions: Mapping[str, bool]) -> dict[str, set[Any]]:
    """Row ids holding the best value of each key (ties all), NaN and missing values ignored. A
    :data:`CLOSEST_TO_REAL` key's best rows are those with the lowest value of its partner key (none when no row
    has the partner)."""
    out: dict[str, set[Any]] = {}
    for key in keys:
        judge = CLOSEST_TO_REAL.get(key, key)
        vals = {rid: float(v[judge]) for rid, v in rows.items()
                if v.get(judge) is not None and not math.isnan(float(v[judge])) and v.get(key) is not None}
        if not vals:
            continue
        hib = False if key in CLOSEST_TO_REAL else directions[key]
        target = max(vals.values()) if hib else min(vals.values())
        out[key] = {rid for rid, v in vals.items() if v == target}
    return out


def missing_everywhere(records: Sequence[RunRecord], keys: Sequence[str]) -> dict[str, str]:
    """Metric keys that no successful record has a value for, with the reason(s): a column of dashes says
    nothing, so the tables drop it and say why once (e.g. LPIPS without its backbone's weights offline)."""
    ok = [rec for rec in records if rec.status == "ok"]
    out: dict[str, str] = {}
    for key in keys:
        mvs = [rec.metrics.get(key) for rec in ok]
        if ok and all(mv is not None and mv.value is None for mv in mvs):
            out[key] = "; ".join(dict.fromkeys(mv.missing_reason or "no value recorded" for mv in mvs))
    return out


def missing_everywhere_note(missing: Mapping[str, str]) -> str:
    """One sentence per column left out by :func:`missing_everywhere`."""
    return " ".join(f"{display_name(k)} is not in the table: no method has a value ({reason})."
                    for k, reason in missing.items())


def higher_is_better(records: Sequence[RunRecord]) -> dict[str, bool]:
    """Direction of each metric key, from the first record that has it."""
    out: dict[str, bool] = {}
    for rec in records:
        for key, mv in rec.metrics.items():
            out.setdefault(key, bool(mv.higher_is_better))
    return out


def display_name(key: str) -> str:
    """Human name of a metric key (``"kl_a"`` -> ``"KL a"``); unknown keys are shown as they are."""
    return _DISPLAY_NAMES.get(key, key)


def format_value(key: str, value: float | None) -> str:
    """Format one metric value for Markdown: PSNR 2 decimals, SSIM/LPIPS 4, others 4 significant digits.

    ``None`` gives ``"—"``; infinities and NaN give ``"inf"``, ``"-inf"``, ``"nan"``.
    """
    if value is None:
        return MISSING
    text = format(float(value), _FORMATS.get(key, _DEFAULT_FORMAT))
    return text[:-1] if text.endswith(".") else text  # "#" leaves a bare point on integers: 6092. -> 6092


#: Fewer test images than this make the leaderboard say that its bootstrap intervals are unreliable: a percentile
#: bootstrap of a mean is known to under-cover (be too narrow) for small samples (Efron & Tibshirani 1993, §13.3;
#: 30 is the usual rule of thumb for the normal approximation the percentile interval relies on).
FEW_TEST_IMAGES = 30


def column_decimals(key: str, values: Sequence[float | None]) -> int | None:
    """Decimals of a metric column without a fixed format: enough for 4 significant digits of its smallest
    non-zero magnitude (at most 6), so every value of the column is printed alike. None: the column has a
    fixed format (``_FORMATS``) or no finite value."""
    if key in _FORMATS:
        return None
    finite = [abs(float(v)) for v in values if v is not None and math.isfinite(float(v)) and float(v) != 0.0]
    if not finite:
        return None
    return int(min(6, max(0, 3 - math.floor(math.log10(min(finite))))))


def format_column_value(key: str, value: float | None, decimals: int | None) -> str:
    """:func:`format_value` with the column's decimals (see :func:`column_decimals`)."""
    if value is None or decimals is None or not math.isfinite(float(value)):
        return format_value(key, value)
    return f"{float(value):.{decimals}f}"


def epochs_trained(rec: RunRecord) -> int | None:
    """Epochs the method trained: the last epoch with recorded losses, 0 for a method with nothing to train,
    the config's epochs otherwise (None for a failed run without losses)."""
    if rec.losses:
        return int(max(int(entry.get("epoch", i + 1)) for i, entry in enumerate(rec.losses)))
    if not (rec.card or {}).get("trainable", True):
        return 0
    if rec.status != "ok":
        return None
    epochs = (rec.config or {}).get("epochs")
    return int(epochs) if isinstance(epochs, (int, float)) else None


def results_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per record (cell): ``method, status, error``, the canonical metrics, other metrics, timings,
    ``preset``, ``structure_lost`` (:func:`structure_lost`: the row the leaderboards mark "⚠ structure lost" and
    keep out of the best values), ``dataset``, ``seed``, ``key``.

    Metric and timing columns are floats (NaN where missing; ``inf`` stays ``inf``).
    """
    extra = [k for k in metric_keys(records) if k not in CANONICAL_METRICS]
    metric_cols = [*CANONICAL_METRICS, *extra]
    rows: list[dict[str, Any]] = []
    for rec in records:
        row: dict[str, Any] = {"method": rec.method, "status": rec.status, "error": rec.error}
        row.update({k: rec.value(k) for k in metric_cols})
        row.update({t: _float_or_none(rec.timings.get(t)) for t in TIMING_COLUMNS})
        row["preset"] = rec.preset
        row["structure_lost"] = structure_lost(rec)
        row.update({"dataset": rec.dataset_name, "seed": rec.seed, "key": rec.key})
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["method", "status", "error", *metric_cols, *TIMING_COLUMNS, "preset",
                                        "structure_lost", *CELL_COLUMNS])
    numeric = [*metric_cols, *TIMING_COLUMNS]
    frame[numeric] = frame[numeric].astype(float)
    return frame


#: Metric key -> (the methods it applies to, predicate on a record). A method it does not apply to gets ``n/a``
#: (no footnote): the value is not missing, there is none to have.
NOT_APPLICABLE: dict[str, tuple[str, Callable[[RunRecord], bool]]] = {
    "diversity": ("stochastic methods", lambda rec: bool((rec.card or {}).get("stochastic"))),
}
NA = "n/a"


def leaderboard_markdown(
    records: Sequence[RunRecord],
    run_info: Mapping[str, Any] | None = None,
    figures: Mapping[str, str] | None = None,
    sections: Sequence[str] = (),
    comparisons: pd.DataFrame | None = None,
    per_image_keys: Sequence[str] | None = None,
    naturalness: Mapping[str, str] | None = None,
) -> str:
    """The Markdown leaderboard of a run.

    Args:
        records: the run's records, in display order (failed ones included).
        run_info: the parsed ``run.json`` (any keys may be missing). Read: ``dataset``, ``versions`` (or
            ``environment``), ``timings.wall_s`` (or ``wall_s``); each falls back on the records where it can.
            Preset, seed, device and grey convention come from the records (the numbers were made under them).
        figures: caption -> path relative to the Markdown file, linked at the end.
        sections: further Markdown sections (e.g. :func:`cross_domain_markdown`), placed after the failed runs.
        comparisons: :func:`colorbench.reports.stats.paired_comparisons`; values that cannot be told apart from
            the best are marked ``≈``.
        per_image_keys: metric keys with per-image values (the others are set-level: seed spread only).
        naturalness: record key (its cell key, else its method) -> the fooling rate text (rate, Wilson 95 %
            interval, n) from ``colorbench study``; when given, the table gains a "Fooling rate ↑" column (``—``
            for rows without trials).

    With several seeds or datasets (a grid) the table has one row per (dataset, method): the mean over seeds ±
    the across-seed standard deviation and n, one table per dataset.

    Returns:
        The document: a header block (dataset, grey convention, preset, seed, device), the table (metric
        headers with ↑/↓, the best value of each column in bold among successful runs, ``±`` half-width of the
        95 % interval where recorded, ``—`` with a footnote giving the reason where a value is missing), the
        failed runs with their errors, the metric conventions and links to the figures.
    """
    run_info = dict(run_info or {})
    keys = metric_keys(records)
    left_out = missing_everywhere(records, keys)
    keys = [k for k in keys if k not in left_out]
    directions = higher_is_better(records)
    lost = {id(rec) for rec in records if structure_lost(rec)}
    best = best_rows({id(rec): {k: rec.metrics[k].value for k in rec.metrics} for rec in records
                      if rec.status == "ok" and id(rec) not in lost}, keys, directions)
    footnotes: dict[str, int] = {}  # reason -> footnote number, in order of first use
    footnote_keys: dict[str, list[str]] = {}  # reason -> metric keys it applies to
    used_na: set[str] = set()  # metric keys with an n/a cell

    lines = ["# colorbench results", "", *(line.markdown() for line in report_header(records, run_info)), ""]
    missing_cells = list(run_info.get("missing_cells") or [])
    if missing_cells:
        lines += [f"**Partial run: {len(missing_cells)} requested cell(s) have no result yet** (interrupted or still "
                  "running; rerun the same command to finish them): " + "; ".join(_escape(m) for m in missing_cells),
                  ""]

    ties = _ties(comparisons)
    grid = _is_grid(records)
    fooling = ["Fooling rate ↑"] if naturalness is not None else []
    decimals = {k: column_decimals(k, [rec.value(k) for rec in records if rec.status == "ok"]) for k in keys}
    if grid:
        grid_lines, lost_cells = _grid_leaderboard(records, keys, directions, ties, per_image_keys, footnotes,
                                                   footnote_keys)
        lines += grid_lines
        if left_out:
            lines += [missing_everywhere_note(left_out), ""]
    else:
        lines += ["## Leaderboard", ""]
        header = ["Method", "Status", "Epochs", *(f"{display_name(k)} {arrow(k, directions[k])}" for k in keys),
                  *fooling, "Train (s)"]
        lines.append(_table_row(header))
        lines.append(_table_row(["---", "---", "---:", *("---:" for _ in [*keys, *fooling]), "---:"]))
    for rec in ([] if grid else records):
        ok = rec.status == "ok"
        name = _method_cell(rec.method, rec.caveats, footnotes, footnote_keys)
        status = _lost_status("ok") if id(rec) in lost else "ok" if ok else f"**{_escape(rec.status)}**"
        cells = [name, status, _epochs_cell([rec])]
        for key in keys:
            mv = rec.metrics.get(key)
            if mv is None and key in NOT_APPLICABLE and not NOT_APPLICABLE[key][1](rec):
                cells.append(NA)  # e.g. output diversity of a deterministic method: nothing is missing
                used_na.add(key)
                continue
            if mv is None or mv.value is None:
                reason = mv.missing_reason if mv is not None else None
                if not reason and not ok:  # a failed run: its error, listed below, is the reason
                    cells.append(MISSING)
                    continue
                reason = reason or "no value recorded for this method"
                number = footnotes.setdefault(reason, len(footnotes) + 1)
                applies_to = footnote_keys.setdefault(reason, [])
                if key not in applies_to:
                    applies_to.append(key)
                cells.append(f"{MISSING}[^{number}]")
                continue
            text = _bold_if(format_column_value(key, mv.value, decimals[key]), id(rec) in best.get(key, ()))
            if mv.ci95 is not None and None not in mv.ci95:
                lo, hi = mv.ci95
                text += f" ± {_format_half_width(key, (hi - lo) / 2)}"  # 2 significant digits: all it carries
            if (rec.dataset_name, key, rec.method) in ties:
                text += " ≈"
            cells.append(text)
        if naturalness is not None:
            cells.append(naturalness.get(rec.key or rec.method, MISSING))
        train_s = _float_or_none(rec.timings.get("train_s"))
        cells.append(MISSING if train_s is None else f"{train_s:.1f}")
        lines.append(_table_row(cells))
    if not grid:
        lines += [
            "",
            "↑ higher is better, ↓ lower is better. The best value of each column among successful runs is in **bold** "
            "(ties all bold). ± is the half-width of the 95 % bootstrap interval over test images, where recorded."
            + (f" {CLOSEST_NOTE}" if any(k in CLOSEST_TO_REAL for k in keys) else "")
            + "".join(f" {NA}: {display_name(k)} applies to {NOT_APPLICABLE[k][0]} only." for k in keys if k in used_na)
            + (f" {TIE_NOTE}" if ties else "")
            + (f" {missing_everywhere_note(left_out)}" if left_out else "")
            + _few_images_caveat(records)
            + (" Fooling rate: share of the naturalness study's trials in which the colorization was chosen as the real "
               "image, [Wilson 95 % interval], (n trials)." if naturalness is not None else ""),
            "",
        ]
    if grid:
        several = len({ds for ds, _ in _groups(records)}) > 1
        lines += _structure_lost_note([f"{m} ({ds})" if several else m for ds, m in lost_cells],
                                      structure_thresholds(records), over_seeds=True)  # structure_lost_cells' rule
    else:
        lines += _structure_lost_note([rec.method for rec in records if id(rec) in lost],
                                      structure_thresholds([rec for rec in records if id(rec) in lost]))

    failed = [rec for rec in records if rec.status != "ok"]
    if failed:
        lines += ["## Failed runs", ""]
        for rec in failed:
            error = " ".join((rec.error or "no error message recorded").split())
            where = f", {_escape(rec.dataset_name)}, seed {rec.seed}" if grid else ""
            lines.append(f"- **{_escape(rec.method)}** ({_escape(rec.status)}{where}): {error}")
        lines.append("")

    skipped = run_info.get("skipped") if isinstance(run_info.get("skipped"), Mapping) else {}
    if skipped:  # not requested by name and unable to train on this dataset (Method.unsupported_reason)
        lines += ["## Skipped methods", "",
                  "Not run: the default method list leaves out the methods this dataset cannot serve "
                  "(name one with `--methods` to run it anyway).", ""]
        for dataset, methods in skipped.items():
            if isinstance(methods, Mapping):  # dataset -> method -> reason
                lines += [f"- **{_escape(name)}** on {_escape(dataset)}: {' '.join(str(why).split())}"
                          for name, why in methods.items()]
        lines.append("")

    for section in sections:
        lines += [section.rstrip("\n"), ""]

    conventions = _convention_lines(records)
    if conventions:
        lines += ["## Metric conventions", "", *conventions, ""]

    if figures:
        lines += ["## Figures", ""]
        lines += [f"- [{caption}]({rel})" for caption, rel in figures.items()]
        lines.append("")

    if footnotes:
        for reason, number in footnotes.items():
            which = ", ".join(display_name(k) for k in footnote_keys[reason])
            text = f"{which}: {' '.join(reason.split())}" if which else " ".join(reason.split())
            lines.append(f"[^{number}]: {text}")
        lines.append("")
    return "\n".join(lines)


TIE = "≈"
TIE_NOTE = ("≈: cannot be told apart from the best method on the same test images (paired Wilcoxon signed-rank "
            "test, Holm-corrected over the methods, p ≥ 0.05; comparisons.csv also has the paired bootstrap).")


def _ties(comparisons: pd.DataFrame | None) -> set[tuple[str, str, str]]:
    if comparisons is None or comparisons.empty:
        return set()
    rows = comparisons[comparisons["indistinguishable"].astype(bool)]
    return {(str(r.dataset), str(r.metric), str(r.method)) for r in rows.itertuples()}


def _is_grid(records: Sequence[RunRecord]) -> bool:
    """Several seeds of one (dataset, method), or several datasets: the aggregated table."""
    cells = [(rec.dataset_name, rec.method) for rec in records]
    return len(set(cells)) != len(cells) or len({rec.dataset_name for rec in records}) > 1


def leaderboard_frame(records: Sequence[RunRecord], comparisons: pd.DataFrame | None = None) -> pd.DataFrame:
    """``leaderboard.csv``: one row per (dataset, method) with ``seeds``, ``n_ok`` and, per metric key, its mean
    over the seeds that finished, ``<key>_std`` (across seeds, ddof 1), ``<key>_n`` and ``<key>_tie_with_best``."""
    from colorbench.reports.stats import seed_summary

    summary = seed_summary(records)
    ties = _ties(comparisons)
    rows = []
    for (ds, method), recs in _groups(records).items():
        row: dict[str, Any] = {"dataset": ds, "method": method, "seeds": ",".join(str(r.seed) for r in recs),
                               "n_ok": sum(r.status == "ok" for r in recs)}
        for s in summary[(summary["dataset"] == ds) & (summary["method"] == method)].itertuples():
            row[s.key], row[f"{s.key}_std"], row[f"{s.key}_n"] = s.mean, s.std, s.n
            row[f"{s.key}_tie_with_best"] = (ds, s.key, method) in ties
        rows.append(row)
    return pd.DataFrame(rows)


def _groups(records: Sequence[RunRecord]) -> dict[tuple[str, str], list[RunRecord]]:
    groups: dict[tuple[str, str], list[RunRecord]] = {}
    for rec in records:
        groups.setdefault((rec.dataset_name, rec.method), []).append(rec)
    return groups


def _grid_leaderboard(records: Sequence[RunRecord], keys: list[str], directions: dict[str, bool],
                      ties: set[tuple[str, str, str]], per_image_keys: Sequence[str] | None,
                      footnotes: dict[str, int], footnote_keys: dict[str, list[str]],
                      ) -> tuple[list[str], list[tuple[str, str]]]:
    """The tables of a grid (one per dataset) and the (dataset, method) rows marked "structure lost"; method
    caveats are added to ``footnotes`` / ``footnote_keys`` as in the one-seed table."""
    from colorbench.reports.stats import seed_summary, structure_lost_cells

    summary = seed_summary(records)
    lost = structure_lost_cells(summary, structure_thresholds(records))  # the rule paired_comparisons uses
    groups = _groups(records)
    datasets = list(dict.fromkeys(ds for ds, _ in groups))
    lines: list[str] = []
    for ds in datasets:
        lines += [f"## Leaderboard: {ds}" if len(datasets) > 1 else "## Leaderboard", ""]
        sub = summary[(summary["dataset"] == ds) & (summary["n"] > 0)]
        ds_keys = [k for k in keys if k in set(sub["key"])]
        means = {k: sub[sub["key"] == k] for k in ds_keys}
        row_means: dict[str, dict[str, float]] = {}
        for k, rows in means.items():
            for meth, m in zip(rows["method"], rows["mean"].to_numpy(float)):
                if (ds, meth) not in lost:
                    row_means.setdefault(meth, {})[k] = m
        best = best_rows(row_means, ds_keys, directions)
        decimals = {k: column_decimals(k, rows["mean"].tolist()) for k, rows in means.items()}
        lines.append(_table_row(["Method", "Seeds ok / run", "Epochs",
                                 *(f"{display_name(k)} {arrow(k, directions[k])}" for k in ds_keys),
                                 "Train (s)"]))
        lines.append(_table_row(["---", "---:", "---:", *("---:" for _ in ds_keys), "---:"]))
        for (d, method), recs in groups.items():
            if d != ds:
                continue
            n_ok = sum(r.status == "ok" for r in recs)
            seeds = f"{n_ok} / {len(recs)}" if n_ok == len(recs) else f"**{n_ok} / {len(recs)}**"
            caveats = list(dict.fromkeys(c for r in recs for c in r.caveats))
            cells = [_method_cell(method, caveats, footnotes, footnote_keys),
                     _lost_status(seeds) if (ds, method) in lost else seeds, _epochs_cell(recs)]
            for k in ds_keys:
                row = means[k][means[k]["method"] == method]
                if row.empty:
                    cells.append(MISSING)
                    continue
                mean, std, n = float(row["mean"].iloc[0]), float(row["std"].iloc[0]), int(row["n"].iloc[0])
                text = _bold_if(format_column_value(k, mean, decimals[k]), method in best.get(k, ()))
                if not math.isnan(std):
                    text += f" ± {_format_half_width(k, std)}"
                text += f" (n={n})"
                if (ds, k, method) in ties:
                    text += f" {TIE}"
                cells.append(text)
            train = [t for t in (_float_or_none(r.timings.get("train_s")) for r in recs) if t is not None]
            cells.append(f"{sum(train) / len(train):.1f}" if train else MISSING)
            lines.append(_table_row(cells))
        lines.append("")
    set_level = [display_name(k) for k in keys if per_image_keys is not None and k not in set(per_image_keys)]
    lines += [
        "↑ higher is better, ↓ lower is better. Each value is the mean over the seeds that finished ± the "
        "across-seed standard deviation (n seeds; no ± with one); the best mean of each column is in **bold**. "
        "Epochs: those each seed trained (several values when the seeds differ). "
        + (f"{CLOSEST_NOTE} " if any(k in CLOSEST_TO_REAL for k in keys) else "")
        + TIE_NOTE
        + (f" Set-level metrics ({', '.join(set_level)}) have no per-image values: their ± is the spread over "
           "seeds only, and they have no paired test." if set_level else ""),
        "",
    ]
    return lines, sorted(lost, key=list(groups).index)


# --- helpers ---------------------------------------------------------------------------------------------------


def _few_images_caveat(records: Sequence[RunRecord]) -> str:
    """A sentence when some ± interval comes from fewer than :data:`FEW_TEST_IMAGES` test images."""
    counts = sorted({int(rec.dataset.get("n_test")) for rec in records
                     if isinstance(rec.dataset, Mapping) and isinstance(rec.dataset.get("n_test"), (int, float))
                     and any(mv.ci95 is not None for mv in rec.metrics.values())})
    few = [n for n in counts if n < FEW_TEST_IMAGES]
    if not few:
        return ""
    return (f" **Caveat:** the ± intervals come from only {', '.join(map(str, few))} test images: a bootstrap over "
            f"fewer than {FEW_TEST_IMAGES} images understates the uncertainty (the interval is too narrow), so read "
            "differences of a few half-widths as unresolved.")


def _float_or_none(v: Any) -> float | None:
    try:
        return as_float(v)
    except (TypeError, ValueError):
        return None


def _format_half_width(key: str, half: float) -> str:
    """An interval's half-width: the metric's fixed format if it has one, else 2 significant digits without an
    exponent (``0.0015``, ``120``), which is all the precision an interval carries."""
    if key in _FORMATS:
        return format(half, _FORMATS[key])
    if half == 0 or not math.isfinite(half):
        return format(half, "g")
    decimals = max(0, 1 - math.floor(math.log10(abs(half))))
    return f"{round(half, decimals):.{decimals}f}"


def _bold_if(text: str, condition: bool) -> str:
    return f"**{text}**" if condition else text


def _method_cell(method: str, caveats: Sequence[str], footnotes: dict[str, int],
                 footnote_keys: dict[str, list[str]]) -> str:
    """A row's method name with a footnote per caveat (what a reader must know to read the row,
    ``Method.caveats``); the caveats are added to ``footnotes`` (reason -> number) in order of first use."""
    name = _escape(method)
    for caveat in caveats:
        number = footnotes.setdefault(f"{method}: {caveat}", len(footnotes) + 1)
        footnote_keys.setdefault(f"{method}: {caveat}", [])
        name += f" [^{number}]"
    return name


def _epochs_cell(records: Sequence[RunRecord]) -> str:
    """Epochs trained (:func:`epochs_trained`) by a row's records: one number, or the distinct ones when the seeds
    differ (``"2, 3"``); ``—`` when none is known."""
    epochs = sorted({e for e in (epochs_trained(rec) for rec in records) if e is not None})
    return ", ".join(map(str, epochs)) if epochs else MISSING


def _lost_status(status: str) -> str:
    return f"{status}, **{STRUCTURE_LOST}**"


def _threshold_text(thresholds: Mapping[str, float]) -> str:
    """``0.7`` (the fixed default), ``0.67 (midway ...)``, or one threshold per dataset."""
    values = sorted(set(thresholds.values())) or [LUMA_SSIM_THRESHOLD]
    if values == [LUMA_SSIM_THRESHOLD]:
        return f"{LUMA_SSIM_THRESHOLD:g}"
    how = ("midway between the luma SSIM of two reference colorizations of the dataset's real images: each "
           "image's flat mean colour and a 7×7 blur")
    if len(values) == 1:
        return f"{values[0]:.3g} ({how})"
    per = ", ".join(f"{_escape(ds)} {t:.3g}" for ds, t in thresholds.items())
    return f"its dataset's threshold ({per}; {how})"


def _structure_lost_note(names: Sequence[str], thresholds: Mapping[str, float] | None = None,
                         over_seeds: bool = False) -> list[str]:
    """The legend under a table with rows marked :data:`STRUCTURE_LOST` (none: no lines)."""
    if not names:
        return []
    listed = ", ".join(f"**{_escape(name)}**" for name in names)
    return [
        f"{STRUCTURE_LOST}: {listed} — Luma SSIM (the SSIM between the luminance of the colorization and the grey "
        f"input it was given{', mean over seeds' if over_seeds else ''}) below {_threshold_text(thresholds or {})}: "
        "the output does not keep its input's "
        "structure, so its colour metrics (histogram divergences, colourfulness) score something that is not a "
        "colorization of the input. Such rows are not considered for the best (bold) values, nor as the best "
        "method the paired comparisons (≈) test the others against.",
        "",
    ]


def _escape(text: str) -> str:
    """Make text safe inside one Markdown table cell."""
    text = " ".join(str(text).split()).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|")  # Markdown renders raw HTML: a method named <script> stays text


def _table_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _convention_lines(records: Sequence[RunRecord]) -> list[str]:
    """One line per distinct (metric, version, params): which keys it produced and its parameters."""
    groups: dict[tuple[str, str, str], tuple[dict[str, Any], list[str]]] = {}
    for rec in records:
        for key, mv in rec.metrics.items():
            ident = (mv.metric, str(mv.version), json.dumps(mv.params, sort_keys=True, default=str))
            params, keys = groups.setdefault(ident, (mv.params, []))
            if key not in keys:
                keys.append(key)
    lines = []
    for (metric, version, _), (params, keys) in groups.items():
        described = ", ".join(f"{k}={v}" for k, v in params.items()) if params else "no parameters"
        produced = ", ".join(f"`{k}`" for k in keys)
        lines.append(f"- **{metric}** v{version} ({produced}): {described}")
    return lines


def cross_domain_markdown(acc: pd.DataFrame, summary: pd.DataFrame, info: Mapping[str, Any],
                          chord: str | None = None) -> str:
    """The cross-domain classification section: the classifier, the Table-3 summary and the accuracy matrix.

    Args:
        acc: top-1 % (rows: training sets, columns: test sets), as in ``cross_domain/accuracy.csv``.
        summary: ``cross_domain/summary.csv`` (columns ``train, label, avg, own, on_real_color, epoch, final``).
        info: ``cross_domain/result.json`` (``classifier``, ``seed``, ``timings``).
        chord: path of the chord diagram relative to the Markdown file, if drawn.
    """
    clf = dict(info.get("classifier") or {})
    labels = dict(zip(summary["train"], summary["label"]))
    size = clf.get("input_size") or "native"
    size = f"{size}×{size}" if isinstance(size, int) else size
    decay = ", ".join(f"{m:.0%}" for m in clf.get("milestones", []))
    lines = [
        "## Cross-domain classification", "",
        f"One **{clf.get('arch', '?')}** classifier (preset `{clf.get('preset', '?')}`: {clf.get('epochs', '?')} "
        f"epochs, {clf.get('optimizer', '?')} lr {clf.get('lr', '?')} ×{clf.get('gamma', '?')} at {decay} of "
        f"training, batch {clf.get('batch_size', '?')}, {size} inputs, seed {info.get('seed', '?')}) is trained on "
        "each training set and tested on every test set (SpyncoGan §5.3). R-C: real colour, R-G: real grey "
        "(the run's grey input, replicated to 3 channels); [n]: colorization epoch.", "",
        "**Average top-1 accuracy per training set** (SpyncoGan Table 3: mean over all real and colorized test "
        "sets, its own included):", "",
        _table_row(["Training set", "Col. epoch", "Avg. % ↑", "Avg. % without own ↑", "Own test set %",
                    "On real colour %"]),
        _table_row(["---", "---:", "---:", "---:", "---:", "---:"]),
    ]
    best = summary["avg"].max() if len(summary) else None
    for _, row in summary.iterrows():
        epoch = row.get("epoch")
        epoch_text = "/" if epoch is None or (isinstance(epoch, float) and math.isnan(epoch)) else str(int(epoch))
        avg = f"{row['avg']:.1f}"
        if best is not None and row["avg"] == best:
            avg = f"**{avg}**"
        others = row.get("avg_others")
        lines.append(_table_row([
            _escape(row["label"]), epoch_text, avg,
            MISSING if others is None or math.isnan(others) else f"{others:.1f}",
            f"{row['own']:.1f}", f"{row['on_real_color']:.1f}",
        ]))
    lines += ["", "**Accuracy matrix** (top-1 %; rows: training set, columns: test set):", ""]
    lines.append(_table_row(["Train ↓ / test →", *(_escape(labels.get(c, c)) for c in acc.columns)]))
    lines.append(_table_row(["---", *("---:" for _ in acc.columns)]))
    for name, row in acc.iterrows():
        lines.append(_table_row([_escape(labels.get(name, name)), *(f"{v:.1f}" for v in row.to_numpy(float))]))
    if chord:
        lines += ["", f"![Cross-domain chord diagram]({chord})"]
    return "\n".join(lines) + "\n"
