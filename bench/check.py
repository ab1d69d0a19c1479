"""``colorbench check``: regression test of metric values between two runs (for a user's own CI).

Compares RESULTS against BASELINE metric by metric (one row per method and metric output key) and fails
(exit status 1) when

* a value drifted beyond its tolerance: ``|result - baseline| > atol + rtol * |baseline|`` (the tolerances can
  be set per metric output key, e.g. ``psnr``, or per metric registry name, e.g. ``ab_histogram_kl``);
* a metric's ``version`` or ``params`` (its conventions) changed: the numbers no longer mean the same thing;
* a value is missing on one side only, a method or metric of the baseline is missing from the results, or a
  method's status (ok / failed) changed.

Each side is a run directory (its ``records/*.json`` are read: they carry versions and parameters, so those are
checked) or a ``results.csv`` file (values only: versions and parameters cannot be checked, and the table says
so). Equal infinities are equal (a PSNR of +inf stays +inf); NaN equals NaN. Methods or metrics that only the
results have are listed as ``new`` and do not fail the check. Differences in library versions between the two
runs' records are printed as notes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9

#: results.csv columns that are not metric values.
_NON_METRIC_COLUMNS = {"method", "status", "error", "preset", "dataset", "seed", "key"}  # key: the cell key


@dataclass
class Entry:
    """One metric value of one method as read from a run."""

    value: float | None
    metric: str | None = None  # registry name (None when read from a CSV)
    version: str | None = None
    params: dict[str, Any] | None = None
    missing_reason: str | None = None


@dataclass
class RunResults:
    """The metric values of a run, by method then output key, plus what is known about them."""

    source: str
    kind: str  # "records" or "csv"
    values: dict[str, dict[str, Entry]] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    versions: dict[str, dict[str, str]] = field(default_factory=dict)  # library versions per method


@dataclass(frozen=True)
class Tolerance:
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL

    def __post_init__(self) -> None:
        if not (self.rtol >= 0 and self.atol >= 0):
            raise ValueError(f"tolerances must be >= 0, got rtol={self.rtol}, atol={self.atol}")


@dataclass
class Row:
    """One line of the comparison table."""

    method: str
    key: str
    baseline: float | None
    result: float | None
    status: str  # "ok", "drift", "version", "params", "missing", "status", "new"
    detail: str = ""
    tolerance: Tolerance | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "new")

    @property
    def abs_diff(self) -> float | None:
        if self.baseline is None or self.result is None:
            return None
        if self.baseline == self.result or (math.isnan(self.baseline) and math.isnan(self.result)):
            return 0.0
        return abs(self.result - self.baseline)


# --- reading -------------------------------------------------------------------------------------------------


def load_results(path: str | Path) -> RunResults:
    """Read a run directory (its records) or a results CSV file.

    Raises:
        FileNotFoundError: the path does not exist, or a directory holds neither ``records/`` nor ``results.csv``.
        ValueError: a file that is not a results table.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or results file")
    if path.is_dir():
        if (path / "cells.json").is_file() or ((path / "records").is_dir() and any((path / "records").glob("*.json"))):
            return _from_records(path)
        if (path / "results.csv").is_file():
            return _from_csv(path / "results.csv")
        raise FileNotFoundError(f"{path}: neither records/*.json nor results.csv found (is it a colorbench run?)")
    return _from_csv(path)


def _from_records(run_dir: Path) -> RunResults:
    from colorbench.records import load_records

    out = RunResults(source=str(run_dir), kind="records")
    for rec in load_records(run_dir):
        out.status[rec.method] = rec.status
        out.versions[rec.method] = dict(rec.versions)
        out.values[rec.method] = {
            key: Entry(mv.value, mv.metric, str(mv.version), _plain(mv.params), mv.missing_reason)
            for key, mv in rec.metrics.items()
        }
    return out


def _plain(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Params as JSON would give them back (tuples become lists), so in-memory and loaded records compare equal."""
    return json.loads(json.dumps(params or {}, default=str))


def _from_csv(path: Path) -> RunResults:
    try:
        frame = pd.read_csv(path)
    except Exception as err:
        raise ValueError(f"{path}: cannot be read as a CSV table: {err}") from err
    if "method" not in frame.columns:
        raise ValueError(f"{path}: not a colorbench results table (no 'method' column)")
    metric_cols = [c for c in frame.columns if c not in _NON_METRIC_COLUMNS and not str(c).endswith("_s")]
    out = RunResults(source=str(path), kind="csv")
    for _, row in frame.iterrows():
        method = str(row["method"])
        out.status[method] = str(row["status"]) if "status" in frame.columns else "ok"
        vals: dict[str, Entry] = {}
        for col in metric_cols:
            v = row[col]
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: column {col!r} of {method!r} is not a number: {v!r}") from None
            # an empty cell is a missing value (pandas reads it as NaN; a stored NaN is written "nan" only in records)
            vals[col] = Entry(None if math.isnan(v) else v)
        out.values[method] = vals
    return out


# --- comparing -----------------------------------------------------------------------------------------------


def tolerance_for(key: str, entry: Entry | None, default: Tolerance, per_metric: Mapping[str, Tolerance]) -> Tolerance:
    """The tolerance of an output key: its own entry, else its metric's registry name's, else the default."""
    if key in per_metric:
        return per_metric[key]
    if entry is not None and entry.metric in per_metric:
        return per_metric[entry.metric]
    return default


def values_close(result: float, baseline: float, tol: Tolerance) -> bool:
    """|result - baseline| <= atol + rtol |baseline|, with equal infinities and NaN == NaN."""
    if math.isnan(result) or math.isnan(baseline):
        return math.isnan(result) and math.isnan(baseline)
    if math.isinf(result) or math.isinf(baseline):
        return result == baseline
    return abs(result - baseline) <= tol.atol + tol.rtol * abs(baseline)


def _diff_keys(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def compare(results: RunResults, baseline: RunResults, *, default: Tolerance = Tolerance(),
            per_metric: Mapping[str, Tolerance] | None = None) -> list[Row]:
    """Compare every (method, output key) of the baseline (and list the results' new ones)."""
    per_metric = dict(per_metric or {})
    rows: list[Row] = []
    check_meta = results.kind == "records" and baseline.kind == "records"
    for method, base_vals in baseline.values.items():
        if method not in results.values:
            rows.append(Row(method, "*", None, None, "missing", "method absent from the results"))
            continue
        res_vals = results.values[method]
        b_status, r_status = baseline.status.get(method, "ok"), results.status.get(method, "ok")
        if b_status != r_status:
            rows.append(Row(method, "*", None, None, "status", f"status {b_status} -> {r_status}"))
        for key, b in base_vals.items():
            r = res_vals.get(key)
            tol = tolerance_for(key, b, default, per_metric)
            if r is None:
                rows.append(Row(method, key, b.value, None, "missing", "metric absent from the results", tol))
                continue
            if check_meta and b.version != r.version:
                rows.append(Row(method, key, b.value, r.value, "version", f"version {b.version} -> {r.version}", tol))
                continue
            if check_meta and (b.params or {}) != (r.params or {}):
                changed = _diff_keys(b.params or {}, r.params or {})
                rows.append(Row(method, key, b.value, r.value, "params", "params changed: " + ", ".join(changed), tol))
                continue
            if (b.value is None) != (r.value is None):
                why = r.missing_reason if r.value is None else b.missing_reason
                detail = ("missing in the results" if r.value is None else "missing in the baseline") + (
                    f" ({_short(why)})" if why else "")
                rows.append(Row(method, key, b.value, r.value, "missing", detail, tol))
                continue
            if b.value is None:  # missing on both sides
                rows.append(Row(method, key, None, None, "ok", "missing on both sides", tol))
                continue
            ok = values_close(r.value, b.value, tol)
            rows.append(Row(method, key, b.value, r.value, "ok" if ok else "drift", "" if ok else "beyond tolerance", tol))
        for key in res_vals:
            if key not in base_vals:
                rows.append(Row(method, key, None, res_vals[key].value, "new", "not in the baseline"))
    for method in results.values:
        if method not in baseline.values:
            rows.append(Row(method, "*", None, None, "new", "method not in the baseline"))
    return rows


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def version_notes(results: RunResults, baseline: RunResults) -> list[str]:
    """Library versions that differ between the two runs (from the records; informational)."""
    notes: set[str] = set()
    for method in set(results.versions) & set(baseline.versions):
        a, b = baseline.versions[method], results.versions[method]
        notes.update(f"{lib} {a.get(lib, '-')} -> {b.get(lib, '-')}" for lib in _diff_keys(a, b) if lib != "platform")
    return sorted(notes)


def format_table(rows: Sequence[Row], *, only_failures: bool = False) -> str:
    """A plain-text table: method, metric, baseline, result, |diff|, tolerance, status, detail."""
    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:.6g}"

    header = ("method", "metric", "baseline", "result", "|diff|", "tolerance", "status", "detail")
    lines = [header]
    for row in rows:
        if only_failures and not row.failed:
            continue
        tol = "" if row.tolerance is None else f"rtol={row.tolerance.rtol:g} atol={row.tolerance.atol:g}"
        status = row.status.upper() if row.failed else row.status
        lines.append((row.method, row.key, num(row.baseline), num(row.result), num(row.abs_diff), tol, status,
                      row.detail))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


# --- command line ----------------------------------------------------------------------------------------------


def _key_value(text: str) -> tuple[str, float]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected METRIC=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number (in {text!r})") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``colorbench check``."""
    parser.add_argument("results", help="run directory (records are read) or results.csv to check")
    parser.add_argument("--against", required=True, metavar="BASELINE", help="baseline run directory or results.csv")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"relative tolerance (default {DEFAULT_RTOL:g})")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance (default {DEFAULT_ATOL:g})")
    parser.add_argument("--metric-rtol", type=_key_value, action="append", default=[], metavar="METRIC=RTOL",
                        help="relative tolerance of one output key (psnr, kl_a) or metric name (ab_histogram_kl); "
                             "repeatable")
    parser.add_argument("--metric-atol", type=_key_value, action="append", default=[], metavar="METRIC=ATOL",
                        help="absolute tolerance of one output key or metric name; repeatable")
    parser.add_argument("--only-failures", action="store_true", help="print only the rows that fail")


def per_metric_tolerances(rtols: Sequence[tuple[str, float]], atols: Sequence[tuple[str, float]],
                          default: Tolerance) -> dict[str, Tolerance]:
    """Combine ``--metric-rtol``/``--metric-atol`` pairs; the unset half of a metric's tolerance is the default."""
    keys = dict.fromkeys([k for k, _ in rtols] + [k for k, _ in atols])
    r, a = dict(rtols), dict(atols)
    return {k: Tolerance(r.get(k, default.rtol), a.get(k, default.atol)) for k in keys}


def run_check(args: argparse.Namespace, out=None) -> int:
    """Run the check for parsed arguments, print the table; 0 if everything matches, 1 otherwise."""
    out = out or sys.stdout
    default = Tolerance(args.rtol, args.atol)
    per_metric = per_metric_tolerances(args.metric_rtol, args.metric_atol, default)
    results, baseline = load_results(args.results), load_results(args.against)
    rows = compare(results, baseline, default=default, per_metric=per_metric)
    print(f"results:  {results.source} ({results.kind})\nbaseline: {baseline.source} ({baseline.kind})", file=out)
    if "csv" in (results.kind, baseline.kind):
        print("note: a results.csv holds values only; metric versions and parameters are not checked", file=out)
    for note in version_notes(results, baseline):
        print(f"note: library version changed: {note}", file=out)
    print(format_table(rows, only_failures=args.only_failures), file=out)
    failed = [r for r in rows if r.failed]
    checked = sum(1 for r in rows if r.status != "new")
    if failed:
        kinds = sorted({r.status for r in failed})
        print(f"FAILED: {len(failed)} of {checked} checks ({', '.join(kinds)})", file=out)
        return 1
    print(f"OK: {checked} checks match", file=out)
    return 0
