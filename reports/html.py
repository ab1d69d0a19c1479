"""``RUN/index.html``: the report of a run as one page that works from ``file://`` (no server, no network).

The page is rendered with jinja2 from ``reports/templates/`` (package data); its script and style are inlined, and
everything else it shows lies next to it under ``RUN/html/`` and ``RUN/figures/``, addressed by relative paths:

* the leaderboard of each dataset (↑/↓, intervals, seeds, failed rows with their reasons, the study's fooling
  rates when there is a study), sortable by clicking any metric header;
* every figure of ``figures/``, the cross-domain accuracy matrix and chord diagram when the run has them,
  ``comparisons.csv`` (seeds, statistical ties) when the run has one;
* an image browser: for each test image, grey | each method | real side by side with that image's metric values,
  paged, with a zoom, and "worst / best N images of method M by metric K".

What keeps a run with tens of thousands of test images light: the thumbnails are PNG strips on disk (one per
column and chunk of :data:`CHUNK` images, rewritten only when their pixels change), shown through
``<img loading="lazy">``; the per-image values are JavaScript chunk files (``html/<dataset>/chunks/*.js``) that
the page loads with a ``<script>`` tag when a page of the browser needs them (``fetch`` is not allowed from
``file://``), and the browser only ever builds one page of rows. Rankings keep the :data:`RANK_MAX` best and
worst images of each (method, metric).

Nothing here imports torch: the report reads only the run directory.
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from colorbench.core.fsio import atomic_write_text, atomic_write_with
from colorbench.results.records import RunRecord, as_float
from colorbench.reports.header import report_header
from colorbench.reports.images import Gallery, image_sets
from colorbench.reports.naturalness import StudyResult
from colorbench.reports.tables import (CLOSEST_TO_REAL, arrow, best_rows, missing_everywhere, missing_everywhere_note,
                                       LUMA_SSIM_THRESHOLD, MISSING, NA, NOT_APPLICABLE, STRUCTURE_LOST, TIE, TIE_NOTE,
                                       _ties, display_name, format_value, metric_keys, structure_lost,
                                       structure_threshold, structure_thresholds)

#: Images per thumbnail strip and per data chunk.
CHUNK = 50
#: Longest thumbnail side in pixels (smaller images keep their size; the page scales them up, pixelated).
THUMB_MAX = 128
#: Images kept at each end of a ranking ("worst / best N", N at most this).
RANK_MAX = 500
TEMPLATES = Path(__file__).parent / "templates"
FOOLING_KEY = "fooling_rate"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"


def _json_for_script(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``</script>`` can end it early)."""
    return json.dumps(obj, allow_nan=False, separators=(",", ":")).replace("</", "<\\/")


def _finite_or_none(v: Any) -> float | None:
    try:
        x = as_float(v)
    except (TypeError, ValueError):
        return None
    return x if x is not None and math.isfinite(x) else None


# --- leaderboard ------------------------------------------------------------------------------------------------


@dataclass
class Cell:
    text: str
    value: float | None  # what sorting uses (None: sorted last)
    title: str = ""
    best: bool = False
    missing: bool = False


def dataset_name(rec: RunRecord) -> str:
    if rec.dataset_name:
        return rec.dataset_name
    ds = rec.dataset
    return str(ds.get("name", "dataset")) if isinstance(ds, Mapping) else str(ds or "dataset")


def _columns(records: Sequence[RunRecord], study: StudyResult | None) -> tuple[list[str], list[dict[str, Any]]]:
    keys = metric_keys(records)
    keys = [k for k in keys if k not in missing_everywhere(records, keys)]  # said once under the table instead
    directions: dict[str, bool] = {}
    for rec in records:
        for k, mv in rec.metrics.items():
            directions.setdefault(k, bool(mv.higher_is_better))
    columns = [{"key": k, "name": display_name(k), "arrow": arrow(k, directions[k]),
                "hib": directions[k]} for k in keys]
    if study is not None:
        columns.append({"key": FOOLING_KEY, "name": "Fooling rate", "arrow": "↑", "hib": True})
    columns.append({"key": "train_s", "name": "Train (s)", "arrow": "", "hib": False})
    return keys, columns


def _fooling_cell(study: StudyResult, ds: str, method: str, seed: int | None) -> Cell:
    rate = study.for_method(ds, method, seed)
    if rate is None:
        return Cell(MISSING, None, title="no study trials for this method", missing=True)
    lo, hi = rate.ci95
    return Cell(f"{100 * rate.rate:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] n={rate.n}",
                rate.rate, title="fooling rate, Wilson 95 % interval, trials")


def several_seeds(records: Sequence[RunRecord]) -> bool:
    """Some (dataset, method) of the run has several cells (seeds): the leaderboard aggregates over seeds."""
    cells = [(rec.dataset_name, rec.method) for rec in records]
    return len(set(cells)) != len(cells)


def _seed_leaderboard(records: Sequence[RunRecord], study: StudyResult | None, ties: set[tuple[str, str, str]],
                      per_image_keys: Sequence[str] | None) -> dict[str, Any]:
    """One row per (dataset, method): the mean over the seeds that finished ± the across-seed standard deviation
    and n, from :func:`colorbench.reports.stats.seed_summary` (the numbers of ``leaderboard.md`` and
    ``leaderboard.csv``); best mean of each column per dataset (as the Markdown), ``≈`` from ``comparisons.csv``."""
    from colorbench.reports.stats import seed_summary, structure_lost_cells
    from colorbench.reports.tables import _format_half_width, _groups

    keys, columns = _columns(records, study)
    summary = seed_summary(records)
    thresholds = structure_thresholds(records)
    lost = structure_lost_cells(summary, thresholds)
    stats = {(str(r.dataset), r.method, r.key): r for r in summary.itertuples()}
    rows = []
    for (ds_key, method), recs in _groups(records).items():
        ds = dataset_name(recs[0])
        n_ok = sum(r.status == "ok" for r in recs)
        cells: dict[str, Cell] = {}
        for key in keys:
            s = stats.get((str(ds_key), method, key))
            if s is None and key in NOT_APPLICABLE and not any(NOT_APPLICABLE[key][1](r) for r in recs):
                cells[key] = Cell(NA, None, title=f"{display_name(key)} applies to {NOT_APPLICABLE[key][0]} only")
                continue
            if s is None or int(s.n) == 0:
                reasons = [r.metrics[key].missing_reason for r in recs if key in r.metrics]
                reason = next((x for x in reasons if x), None) or (
                    "no seed finished (see the failed runs)" if n_ok == 0 else "no value recorded for this method")
                cells[key] = Cell(MISSING, None, title=" ".join(reason.split()), missing=True)
                continue
            mean, std, n = float(s.mean), float(s.std), int(s.n)
            text = format_value(key, mean)
            title = f"mean over {n} seed(s)"
            if not math.isnan(std):
                text += f" ± {_format_half_width(key, std)}"
                title += " ± across-seed standard deviation"
            text += f" (n={n})"
            if (ds_key, key, method) in ties or (ds, key, method) in ties:
                text += f" {TIE}"
                title += "; " + TIE_NOTE
            cells[key] = Cell(text, mean, title=title)
        if study is not None:
            cells[FOOLING_KEY] = _fooling_cell(study, ds, method, None)
        train = [t for t in (_finite_or_none(r.timings.get("train_s")) for r in recs) if t is not None]
        mean_train = sum(train) / len(train) if train else None
        cells["train_s"] = Cell(MISSING if mean_train is None else f"{mean_train:.1f}", mean_train,
                                title="mean over seeds" if len(train) > 1 else "")
        errors = [" ".join((r.error or "").split()) for r in recs if r.status != "ok"]
        rows.append({"method": method, "dataset": ds, "seed": ", ".join(str(r.seed) for r in recs),
                     "status": f"{n_ok} / {len(recs)}", "ok": n_ok > 0, "all_ok": n_ok == len(recs),
                     "error": "; ".join(dict.fromkeys(e for e in errors if e)), "preset": recs[0].preset, "cells": cells,
                     "structure_lost": (str(ds_key), method) in lost,
                     "structure_threshold": f"{thresholds.get(str(ds_key), LUMA_SSIM_THRESHOLD):.3g}"})
    _mark_best(columns, rows)
    set_level = [display_name(k) for k in keys if per_image_keys is not None and k not in set(per_image_keys)]
    return {"columns": columns, "rows": rows, "ties": bool(ties), "grid": True, "set_level": set_level}


def _mark_best(columns: Sequence[Mapping[str, Any]], rows: Sequence[dict[str, Any]]) -> None:
    """Bold the best value of each column per dataset among successful rows (ties all marked); time: none. Rows
    marked "structure lost" take no part, as in ``leaderboard.md``."""
    for col in columns:
        if col["key"] == "train_s":
            continue
        key = col["key"]
        for ds in {r["dataset"] for r in rows}:
            eligible = [r for r in rows if r["dataset"] == ds and r["ok"] and not r.get("structure_lost")]
            values = {i: {k: (r["cells"][k].value if k in r["cells"] else None) for k in (key, CLOSEST_TO_REAL.get(key))
                          if k is not None} for i, r in enumerate(eligible)}
            for i in best_rows(values, [key], {key: col["hib"]}).get(key, ()):  # ΔCF decides colourfulness
                eligible[i]["cells"][key].best = True


def _leaderboard(records: Sequence[RunRecord], study: StudyResult | None,
                 ties: set[tuple[str, str, str]] = frozenset()) -> dict[str, Any]:
    keys, columns = _columns(records, study)
    rows = []
    for rec in records:
        ds = dataset_name(rec)
        ok = rec.status == "ok"
        cells: dict[str, Cell] = {}
        for key in keys:
            mv = rec.metrics.get(key)
            if mv is None and key in NOT_APPLICABLE and not NOT_APPLICABLE[key][1](rec):
                cells[key] = Cell(NA, None, title=f"{display_name(key)} applies to {NOT_APPLICABLE[key][0]} only")
                continue
            value = None if mv is None else mv.value
            if value is None:
                reason = (mv.missing_reason if mv is not None else None) or (
                    "the run failed (see its error)" if not ok else "no value recorded for this method")
                cells[key] = Cell(MISSING, None, title=" ".join(reason.split()), missing=True)
                continue
            text = format_value(key, value)
            title = ""
            if mv.ci95 is not None and None not in mv.ci95:
                lo, hi = mv.ci95
                text += f" ± {_half(key, lo, hi)}"
                title = f"95 % bootstrap interval [{format_value(key, lo)}, {format_value(key, hi)}]"
            if (ds, key, rec.method) in ties:  # statistically tied with the best method (comparisons.csv)
                text += f" {TIE}"
                title = (title + "; " if title else "") + TIE_NOTE
            cells[key] = Cell(text, value if not math.isnan(value) else None, title=title)
        if study is not None:
            cells[FOOLING_KEY] = _fooling_cell(study, ds, rec.method, rec.seed)
        train_s = _finite_or_none(rec.timings.get("train_s"))
        cells["train_s"] = Cell(MISSING if train_s is None else f"{train_s:.1f}", train_s)
        rows.append({"method": rec.method, "dataset": ds, "seed": rec.seed, "status": rec.status, "ok": ok,
                     "error": " ".join((rec.error or "").split()), "preset": rec.preset, "cells": cells,
                     "structure_lost": structure_lost(rec),
                     "structure_threshold": f"{structure_threshold(rec):.3g}"})
    _mark_best(columns, rows)
    return {"columns": columns, "rows": rows, "ties": bool(ties), "grid": False, "set_level": []}


def _half(key: str, lo: float, hi: float) -> str:
    from colorbench.reports.tables import _format_half_width

    return _format_half_width(key, (hi - lo) / 2)


# --- image browser ----------------------------------------------------------------------------------------------


def _thumb_size(h: int, w: int) -> tuple[int, int]:
    scale = min(1.0, THUMB_MAX / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def _strip(images: list[np.ndarray | None], th: int, tw: int, channels: int) -> np.ndarray:
    """Images (C,H,W) uint8 stacked vertically at (th, tw) each; a missing image is a light-grey block."""
    from PIL import Image

    out = np.full((len(images) * th, tw, channels), 221, dtype=np.uint8)
    for i, img in enumerate(images):
        if img is None:
            continue
        hwc = np.ascontiguousarray(np.transpose(img, (1, 2, 0)))
        if hwc.shape[:2] != (th, tw):
            pil = Image.fromarray(hwc[..., 0] if channels == 1 else hwc)
            hwc = np.asarray(pil.resize((tw, th), Image.LANCZOS))
            hwc = hwc[..., None] if hwc.ndim == 2 else hwc
        out[i * th:(i + 1) * th] = hwc.reshape(th, tw, channels)
    return out


class _ThumbWriter:
    """Writes thumbnail strips once: a strip whose pixels are unchanged since the last report is not re-encoded.

    The PNG encoding (zlib, most of the report's time after its figures: 0.63 s of 66 strips of a 4-method photos
    run) runs on a few threads, since Pillow's encoder releases the GIL: the bytes are those of one thread. At most
    ``2 * threads`` strips wait for their encoding at once, so a large test split is never held whole."""

    def __init__(self, folder: Path, threads: int | None = None) -> None:
        from colorbench.core.cpuload import usable_cores

        self.folder = folder
        self.manifest_path = folder / "manifest.json"
        try:
            self.manifest: dict[str, str] = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            self.manifest = {}
        self.written = 0
        self.kept = 0
        self.threads = max(1, min(4, usable_cores()) if threads is None else threads)
        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="colorbench-thumbs") \
            if self.threads > 1 else None
        self._pending: collections.deque = collections.deque()

    def write(self, rel: str, pixels: np.ndarray) -> None:
        from PIL import Image

        digest = hashlib.sha1(pixels.tobytes() + str(pixels.shape).encode()).hexdigest()
        path = self.folder / rel
        if self.manifest.get(rel) == digest and path.is_file():
            self.kept += 1
            return
        image = Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels)

        def save() -> None:  # full disk: clear error, no tmp left (raised again by close or a later write)
            atomic_write_with(path, lambda buf: image.save(buf, format="PNG"))

        if self._pool is None:
            save()
        else:
            self._pending.append(self._pool.submit(save))
            while len(self._pending) > 2 * self.threads:
                self._pending.popleft().result()
        self.manifest[rel] = digest  # written to disk only by close, once every strip is
        self.written += 1

    def close(self) -> None:
        """Wait for every strip (raising the first error: the manifest is then not written), then write the
        manifest."""
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
        atomic_write_text(self.manifest_path, json.dumps(self.manifest, indent=0, sort_keys=True))


def _write_js(path: Path, text: str) -> None:
    atomic_write_text(path, text)


def _browser_dataset(run_dir: Path, iset: Gallery, directions: Mapping[str, bool], index: int) -> dict[str, Any] | None:
    """Write one dataset's thumbnails, chunk files and rankings; return its description for the page."""
    slug = f"{index}_{_slug(iset.dataset)}"
    base = run_dir / "html" / slug
    values: dict[int, dict[str, dict[str, float]]] = {}  # column -> metric -> id -> value
    col_meta: list[dict[str, Any]] = []
    # first pass: every column's image ids (so the image universe is known before chunking) and per-image values
    for ci, col in enumerate(iset.columns):
        pids = col.prediction_ids()
        if pids is not None:
            iset.add_ids(pids)
        vals = col.load_per_image()
        if vals is not None and "id" in vals:
            vids = [str(i) for i in vals["id"]]
            iset.add_ids(vids)
            values[ci] = {k: dict(zip(vids, np.asarray(v, dtype=float).tolist())) for k, v in vals.items()
                          if k != "id"}
    ids = list(iset.order)
    if not ids:
        return None
    position = {i: n for n, i in enumerate(ids)}
    n_chunks = math.ceil(len(ids) / CHUNK)
    sample = next(iter(iset.real.values()), None)
    if sample is None:
        sample = next(iter(iset.grey.values()), None)
    if sample is None:
        for ci, col in enumerate(iset.columns):
            got = col.load_predictions()
            if got is not None and len(got[0]):
                sample = got[0][0]
                break
    h, w = (sample.shape[1], sample.shape[2]) if sample is not None else (32, 32)
    th, tw = _thumb_size(h, w)
    thumbs = _ThumbWriter(base / "thumbs")

    def write_column(name: str, lookup: Mapping[str, np.ndarray], channels: int) -> list[int]:
        has = [1 if i in lookup else 0 for i in ids]
        if not any(has):
            return has
        for c in range(n_chunks):
            part = ids[c * CHUNK:(c + 1) * CHUNK]
            thumbs.write(f"{name}/{c:05d}.png", _strip([lookup.get(i) for i in part], th, tw, channels))
        return has

    has_grey = write_column("grey", iset.grey, 1)
    has_real = write_column("real", iset.real, 3)
    has_cols: dict[int, list[int]] = {}
    for ci, col in enumerate(iset.columns):
        got = col.load_predictions()
        lookup: dict[str, np.ndarray] = {}
        if got is not None:
            arr, pids = got
            lookup = {i: arr[n] for n, i in enumerate(pids)}
        has_cols[ci] = write_column(f"m{ci}", lookup, 3)
        del lookup, got
        metrics = list(values.get(ci, {}))
        col_meta.append({"label": col.label, "method": col.method, "seed": col.seed, "status": col.status,
                         "images": bool(any(has_cols[ci])), "metrics": metrics})
    thumbs.close()

    # chunks: ids, which columns have each image, per-image values
    for c in range(n_chunks):
        part = ids[c * CHUNK:(c + 1) * CHUNK]
        lo = c * CHUNK
        chunk = {
            "ids": part,
            "has": {"grey": has_grey[lo:lo + len(part)], "real": has_real[lo:lo + len(part)],
                    **{f"m{ci}": has_cols[ci][lo:lo + len(part)] for ci in has_cols}},
            "v": {f"m{ci}": {k: [_round(vals.get(i)) for i in part] for k, vals in mvals.items()}
                  for ci, mvals in values.items()},
        }
        _write_js(base / "chunks" / f"{c:05d}.js", f"CB.chunk({_json_for_script(slug)},{c},{_json_for_script(chunk)});\n")

    # rankings: the RANK_MAX best and worst images of each (column, metric) with a known direction
    ranks: dict[str, str] = {}
    for ci, mvals in values.items():
        for key, by_id in mvals.items():
            if key not in directions:
                continue
            finite = [(v, position[i]) for i, v in by_id.items() if v is not None and math.isfinite(v)]
            finite.sort(key=lambda t: (t[0], t[1]))
            asc = [p for _, p in finite]
            best, worst = (asc[::-1], asc) if directions[key] else (asc, asc[::-1])
            rank_id = f"m{ci}.{key}"
            rel = f"ranks/{_slug(rank_id)}.js"
            body = {"best": best[:RANK_MAX], "worst": worst[:RANK_MAX], "n": len(asc)}
            _write_js(base / rel, f"CB.rank({_json_for_script(slug)},{_json_for_script(rank_id)},"
                                  f"{_json_for_script(body)});\n")
            ranks[rank_id] = f"html/{slug}/{rel}"
    return {
        "slug": slug, "dataset": iset.dataset, "scope": iset.scope, "n": len(ids), "chunk": CHUNK,
        "n_chunks": n_chunks, "thumb": [th, tw], "base": f"html/{slug}", "columns": col_meta,
        "has_grey": bool(any(has_grey)), "has_real": bool(any(has_real)), "ranks": ranks,
        "directions": {k: directions[k] for k in sorted({k for m in values.values() for k in m} & set(directions))},
        "thumbs_written": thumbs.written, "thumbs_kept": thumbs.kept,
    }


def _round(v: Any) -> float | None:
    if v is None or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(f"{v:.6g}")


# --- other sections ---------------------------------------------------------------------------------------------


def _csv_table(path: Path) -> dict[str, Any] | None:
    """A CSV file as header + rows of strings (for comparisons.csv and the like)."""
    import pandas as pd

    if not path.is_file():
        return None
    try:
        frame = pd.read_csv(path)
    except (ValueError, OSError):
        return None
    rows = [[("" if (isinstance(v, float) and math.isnan(v)) else _fmt_cell(v)) for v in row]
            for row in frame.itertuples(index=False)]
    return {"header": [str(c) for c in frame.columns], "rows": rows}


def _fmt_cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _cross_domain(run_dir: Path) -> dict[str, Any] | None:
    import pandas as pd

    path = run_dir / "cross_domain" / "accuracy.csv"
    if not path.is_file():
        return None
    acc = pd.read_csv(path, index_col="train")
    labels: dict[str, str] = {}
    summary = run_dir / "cross_domain" / "summary.csv"
    if summary.is_file():
        s = pd.read_csv(summary)
        if {"train", "label"} <= set(s.columns):
            labels = dict(zip(s["train"].astype(str), s["label"].astype(str)))
    values = acc.to_numpy(float)
    finite = values[np.isfinite(values)]
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    rows = []
    for name, row in zip(acc.index, values):
        cells = []
        for v in row:
            shade = 0.0 if not math.isfinite(v) or hi == lo else (v - lo) / (hi - lo)
            cells.append({"text": f"{v:.1f}" if math.isfinite(v) else MISSING, "shade": round(shade, 3)})
        rows.append({"name": labels.get(str(name), str(name)), "cells": cells})
    return {"columns": [labels.get(str(c), str(c)) for c in acc.columns], "rows": rows}


def _figures(run_dir: Path, captions: Mapping[str, str]) -> list[dict[str, str]]:
    """Every PNG under ``figures/``: the known ones in the writer's order with their captions, then the others."""
    by_rel = {rel: caption for caption, rel in captions.items()}
    files = sorted(p.relative_to(run_dir).as_posix() for p in (run_dir / "figures").rglob("*.png")) \
        if (run_dir / "figures").is_dir() else []
    known = [rel for rel in by_rel if rel in files]
    others = [rel for rel in files if rel not in by_rel]
    return [{"src": rel, "caption": by_rel.get(rel) or Path(rel).stem.replace("_", " ")} for rel in known + others]


def _conventions(records: Sequence[RunRecord]) -> list[dict[str, str]]:
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for rec in records:
        for key, mv in rec.metrics.items():
            ident = (mv.metric, str(mv.version), json.dumps(mv.params, sort_keys=True, default=str))
            g = groups.setdefault(ident, {"metric": mv.metric, "version": str(mv.version), "produced": [],
                                          "params": ", ".join(f"{k}={v}" for k, v in mv.params.items())
                                          or "no parameters"})
            if key not in g["produced"]:
                g["produced"].append(key)
    return [{**g, "produced": ", ".join(g["produced"])} for g in groups.values()]


# --- the page ---------------------------------------------------------------------------------------------------


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def write_html_report(run_dir: str | Path, records: Sequence[RunRecord], run_info: Mapping[str, Any] | None = None,
                      figures: Mapping[str, str] | None = None, study: StudyResult | None = None,
                      per_image_keys: Sequence[str] | None = None, preference_section: str | None = None) -> Path:
    """Write ``RUN/index.html`` and its data under ``RUN/html/``; return the path of ``index.html``.

    Args:
        run_dir: the run directory.
        records: its records, in display order (failed ones included).
        run_info: the parsed ``run.json`` (optional keys as for the Markdown leaderboard).
        figures: caption -> path (relative to ``run_dir``) of figures the writer drew; any other PNG under
            ``figures/`` is shown too, captioned by its file name.
        study: the fooling rates of ``colorbench study``, when the run has responses.
        per_image_keys: metric keys with per-image values (the others are set-level: in a multi-seed run their
            ± is the spread over seeds only, as the Markdown leaderboard says).
        preference_section: the HTML of a pairwise study (:func:`colorbench.reports.preference.preference_html`).

    When some (dataset, method) has several seeds, the leaderboard (``#leaderboard``) has one row per (dataset,
    method) over its seeds and the per-cell rows follow in a collapsed "per seed" table (``#leaderboard-seeds``).
    """
    run_dir = Path(run_dir)
    run_info = dict(run_info or {})
    records = list(records)
    ties: set[tuple[str, str, str]] = set()
    if (run_dir / "comparisons.csv").is_file():  # paired tests against the best method (colorbench.reports.stats)
        import pandas as pd

        try:
            ties = _ties(pd.read_csv(run_dir / "comparisons.csv"))
        except (ValueError, KeyError, pd.errors.EmptyDataError):
            ties = set()  # an empty or foreign comparisons.csv: no tie marks (the table below still shows it)
    if several_seeds(records):  # the ties are those of the seed-averaged per-image values: aggregated rows only
        board, cell_board = _seed_leaderboard(records, study, ties, per_image_keys), _leaderboard(records, study)
    else:
        board = cell_board = _leaderboard(records, study, ties)
    directions = {c["key"]: c["hib"] for c in board["columns"] if c["arrow"]}
    datasets = list(dict.fromkeys(dataset_name(r) for r in records))
    browser = []
    for n, iset in enumerate(image_sets(run_dir, records)):
        desc = _browser_dataset(run_dir, iset, directions, n)
        if desc is not None:
            browser.append(desc)
            if iset.dataset not in datasets:
                datasets.append(iset.dataset)
    page_data = {"datasets": datasets, "browser": browser,
                 "columns": [{k: c[k] for k in ("key", "name", "hib")} for c in board["columns"]]}
    study_rates = sorted(study.rates.values(), key=lambda r: (r.dataset, -r.rate, r.method)) if study else []
    env = _environment()
    text = env.get_template("report.html.j2").render(
        title=f"colorbench — {', '.join(datasets) or 'run'}",
        header=[(line.label, line.text) for line in report_header(records, run_info)], board=board, datasets=datasets,
        per_seed=cell_board if board is not cell_board else None,
        failed=[r for r in cell_board["rows"] if not r["ok"]],
        figures=_figures(run_dir, figures or {}),
        cross_domain=_cross_domain(run_dir),
        comparisons=_csv_table(run_dir / "comparisons.csv"),
        conventions=_conventions(records),
        left_out_note=missing_everywhere_note(missing_everywhere(records, metric_keys(records))),
        missing_cells=[str(m) for m in run_info.get("missing_cells") or []],
        study=study, study_rates=study_rates, preference_section=preference_section,
        structure_lost_mark=STRUCTURE_LOST,
        page_json=_json_for_script(page_data),
        css=(TEMPLATES / "report.css").read_text(encoding="utf-8"),
        js=(TEMPLATES / "report.js").read_text(encoding="utf-8"),
    )
    return atomic_write_text(run_dir / "index.html", text)


__all__ = ["CHUNK", "RANK_MAX", "THUMB_MAX", "several_seeds", "write_html_report"]
