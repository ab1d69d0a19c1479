"""``colorbench check``: regression test of metric values between two runs (for a user's own CI).

Compares RESULTS against BASELINE metric by metric (one row per result row and metric output key) and fails
(exit status 1) when

* a value drifted beyond its tolerance: ``|result - baseline| > atol + rtol * |baseline|`` (the tolerances can
  be set per metric output key, e.g. ``psnr``, or per metric registry name, e.g. ``ab_histogram_kl``);
* a metric's ``version`` or ``params`` (its conventions) changed: the numbers no longer mean the same thing;
* a value is missing on one side only, a method or metric of the baseline is missing from the results, or a
  method's status (ok / failed) changed;
* nothing was compared (the baseline holds no metric value, e.g. a table of only ``method,status``);
* the baseline has fewer methods or metrics than the results (a half-written or older baseline would otherwise
  pass on the part it has): those are listed as ``new``; ``--allow-new`` accepts them.

Each side is a run directory (its ``records/*.json`` are read: they carry versions and parameters, so those are
checked) or a ``results.csv`` file (values only: versions and parameters cannot be checked, and the table says
so). Rows are matched by (dataset, method, seed) when both sides have them (records always do; a results.csv when
it has ``dataset`` and ``seed`` columns), so a grid of several datasets or seeds compares cell by cell; otherwise
(an older results.csv without those columns) by method, and two rows of one method on a side are an error rather
than one silently replacing the other. Equal infinities are equal (a PSNR of +inf stays +inf); NaN equals NaN. Differences in library versions between the two
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

from typing import NamedTuple

import pandas as pd

DEFAULT_RTOL = 1e-6
DEFAULT_ATOL = 1e-9

#: results.csv columns that are not metric values.
_NON_METRIC_COLUMNS = {"method", "status", "error", "preset", "structure_lost", "dataset", "seed",
                       "key"}  # key: the cell key; structure_lost: a flag (reports.tables.structure_lost)


@dataclass
class Entry:
    """One metric value of one method as read from a run."""

    value: float | None
    metric: str | None = None  # registry name (None when read from a CSV)
    version: str | None = None
    params: dict[str, Any] | None = None
    missing_reason: str | None = None


class Ident(NamedTuple):
    """Which row of a run a value belongs to; ``dataset``/``seed`` are None when the source does not say."""

    dataset: str | None
    method: str
    seed: str | None

    @property
    def full(self) -> bool:
        return self.dataset is not None and self.seed is not None

    def label(self) -> str:
        """``method`` alone, or ``method [dataset, seed N]`` when the dataset and seed are known."""
        if not self.full:
            return self.method
        return f"{self.method} [{self.dataset}, seed {self.seed}]"


def _seed_text(seed: Any) -> str | None:
    """A seed as text ("0"), whether it was read as 0, 0.0 or "0"; None when absent (None, NaN, empty)."""
    if seed is None or (isinstance(seed, float) and math.isnan(seed)) or str(seed).strip() == "":
        return None
    try:
        f = float(seed)
    except (TypeError, ValueError):
        return str(seed)
    return str(int(f)) if f.is_integer() else str(seed)


def _dataset_text(dataset: Any) -> str | None:
    if dataset is None or (isinstance(dataset, float) and math.isnan(dataset)) or str(dataset).strip() == "":
        return None
    return str(dataset)


@dataclass
class RunResults:
    """The metric values of a run, by row identity (dataset, method, seed) then output key, plus what is known
    about them."""

    source: str
    kind: str  # "records" or "csv"
    values: dict[Ident, dict[str, Entry]] = field(default_factory=dict)
    status: dict[Ident, str] = field(default_factory=dict)
    versions: dict[Ident, dict[str, str]] = field(default_factory=dict)  # library versions per row
    #: whether every row says its dataset and seed (records; a results.csv with ``dataset`` and ``seed`` columns)
    identified: bool = True

    def add(self, ident: Ident, values: dict[str, Entry], status: str, versions: dict[str, str] | None = None) -> None:
        """Add one row; a second row of the same identity is an error (it would replace the first)."""
        if ident in self.values:
            raise ValueError(f"{self.source}: two rows of {_describe(ident)}; a run has one row per dataset, method "
                             f"and seed (a results.csv without 'dataset' and 'seed' columns has one row per method)")
        self.values[ident], self.status[ident] = values, status
        if versions is not None:
            self.versions[ident] = versions

    def keyed(self, full: bool) -> "RunResults":
        """The same rows matched by (dataset, method, seed) (``full``) or by method only."""
        if full:
            return self
        out = RunResults(self.source, self.kind, identified=False)
        for ident, vals in self.values.items():
            key = Ident(None, ident.method, None)
            if key in out.values:
                raise ValueError(f"{self.source}: several rows of method {ident.method!r} (datasets/seeds), but the "
                                 f"other side has no 'dataset' and 'seed' columns, so rows can only be matched by "
                                 f"method; compare results of the same layout (both with dataset and seed)")
            out.add(key, vals, self.status.get(ident, "ok"), self.versions.get(ident))
        return out


def _describe(ident: Ident) -> str:
    if not ident.full:
        return f"method {ident.method!r}"
    return f"dataset {ident.dataset!r}, method {ident.method!r}, seed {ident.seed}"


def match_both(results: RunResults, baseline: RunResults) -> tuple[RunResults, RunResults]:
    """Both sides keyed alike: by (dataset, method, seed) when both identify their rows, else by method."""
    full = results.identified and baseline.identified
    return results.keyed(full), baseline.keyed(full)


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
    dataset: str | None = None
    seed: str | None = None

    @property
    def ident(self) -> Ident:
        return Ident(self.dataset, self.method, self.seed)

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
    from colorbench.results.rundir import load_records

    out = RunResults(source=str(run_dir), kind="records")
    for rec in load_records(run_dir):
        ident = Ident(_dataset_text(rec.dataset_name) or "", str(rec.method), _seed_text(rec.seed) or "")
        out.add(ident, {key: Entry(mv.value, mv.metric, str(mv.version), _plain(mv.params), mv.missing_reason)
                        for key, mv in rec.metrics.items()}, rec.status, dict(rec.versions))
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
    identified = "dataset" in frame.columns and "seed" in frame.columns
    out = RunResults(source=str(path), kind="csv", identified=identified)
    for _, row in frame.iterrows():
        method = str(row["method"])
        ident = Ident(_dataset_text(row["dataset"]) or "", method, _seed_text(row["seed"]) or "") if identified \
            else Ident(None, method, None)
        vals: dict[str, Entry] = {}
        for col in metric_cols:
            v = row[col]
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: column {col!r} of {method!r} is not a number: {v!r}") from None
            # an empty cell is a missing value (pandas reads it as NaN; a stored NaN is written "nan" only in records)
            vals[col] = Entry(None if math.isnan(v) else v)
        out.add(ident, vals, str(row["status"]) if "status" in frame.columns else "ok")
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
    """Compare every (row, output key) of the baseline (and list the results' new ones); rows are matched as
    :func:`match_both` says.

    Raises:
        ValueError: rows collide (two rows of one identity on a side, see :meth:`RunResults.keyed`).
    """
    per_metric = dict(per_metric or {})
    results, baseline = match_both(results, baseline)
    rows: list[Row] = []
    check_meta = results.kind == "records" and baseline.kind == "records"
    for ident, base_vals in baseline.values.items():
        who = {"dataset": ident.dataset, "seed": ident.seed}
        if ident not in results.values:
            rows.append(Row(ident.method, "*", None, None, "missing",
                            f"method absent from the results ({_describe(ident)})", **who))
            continue
        res_vals = results.values[ident]
        b_status, r_status = baseline.status.get(ident, "ok"), results.status.get(ident, "ok")
        if b_status != r_status:
            rows.append(Row(ident.method, "*", None, None, "status", f"status {b_status} -> {r_status}", **who))
        for key, b in base_vals.items():
            r = res_vals.get(key)
            tol = tolerance_for(key, b, default, per_metric)

            def row(status: str, detail: str, value: float | None = None if r is None else r.value) -> Row:
                return Row(ident.method, key, b.value, value, status, detail, tol, **who)

            if r is None:
                rows.append(row("missing", "metric absent from the results"))
                continue
            if check_meta and b.version != r.version:
                rows.append(row("version", f"version {b.version} -> {r.version}"))
                continue
            if check_meta and (b.params or {}) != (r.params or {}):
                changed = _diff_keys(b.params or {}, r.params or {})
                rows.append(row("params", "params changed: " + ", ".join(changed)))
                continue
            if (b.value is None) != (r.value is None):
                why = r.missing_reason if r.value is None else b.missing_reason
                detail = ("missing in the results" if r.value is None else "missing in the baseline") + (
                    f" ({_short(why)})" if why else "")
                rows.append(row("missing", detail))
                continue
            if b.value is None:  # missing on both sides
                rows.append(row("ok", "missing on both sides"))
                continue
            ok = values_close(r.value, b.value, tol)
            rows.append(row("ok" if ok else "drift", "" if ok else "beyond tolerance"))
        for key in res_vals:
            if key not in base_vals:
                rows.append(Row(ident.method, key, None, res_vals[key].value, "new", "not in the baseline", **who))
    for ident in results.values:
        if ident not in baseline.values:
            rows.append(Row(ident.method, "*", None, None, "new", f"method not in the baseline ({_describe(ident)})",
                            dataset=ident.dataset, seed=ident.seed))
    return rows


def _short(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def version_notes(results: RunResults, baseline: RunResults) -> list[str]:
    """Library versions that differ between the two runs (from the records; informational)."""
    results, baseline = match_both(results, baseline)
    notes: set[str] = set()
    for ident in set(results.versions) & set(baseline.versions):
        a, b = baseline.versions[ident], results.versions[ident]
        notes.update(f"{lib} {a.get(lib, '-')} -> {b.get(lib, '-')}" for lib in _diff_keys(a, b) if lib != "platform")
    return sorted(notes)


def format_table(rows: Sequence[Row], *, only_failures: bool = False) -> str:
    """A plain-text table: [dataset, seed,] method, metric, baseline, result, |diff|, tolerance, status, detail
    (dataset and seed columns when the rows cover more than one (dataset, seed))."""
    def num(v: float | None) -> str:
        return "—" if v is None else f"{v:.6g}"

    grid = len({(r.dataset, r.seed) for r in rows}) > 1
    header = ("method", "metric", "baseline", "result", "|diff|", "tolerance", "status", "detail")
    if grid:
        header = ("dataset", "seed", *header)
    lines = [header]
    for row in rows:
        if only_failures and not row.failed:
            continue
        tol = "" if row.tolerance is None else f"rtol={row.tolerance.rtol:g} atol={row.tolerance.atol:g}"
        status = row.status.upper() if row.failed else row.status
        cells = (row.method, row.key, num(row.baseline), num(row.result), num(row.abs_diff), tol, status, row.detail)
        lines.append((row.dataset or "—", row.seed or "—", *cells) if grid else cells)
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
    parser.add_argument("--against", required=True, metavar="BASELINE",
                        help="baseline run directory or results.csv, or a RESULTS store of `colorbench publish` "
                             "(folder or fsspec URI: the published values of the same cell keys)")
    parser.add_argument("--rtol", type=float, default=DEFAULT_RTOL, help=f"relative tolerance (default {DEFAULT_RTOL:g})")
    parser.add_argument("--atol", type=float, default=DEFAULT_ATOL, help=f"absolute tolerance (default {DEFAULT_ATOL:g})")
    parser.add_argument("--metric-rtol", type=_key_value, action="append", default=[], metavar="METRIC=RTOL",
                        help="relative tolerance of one output key (psnr, kl_a) or metric name (ab_histogram_kl); "
                             "repeatable")
    parser.add_argument("--metric-atol", type=_key_value, action="append", default=[], metavar="METRIC=ATOL",
                        help="absolute tolerance of one output key or metric name; repeatable")
    parser.add_argument("--only-failures", action="store_true", help="print only the rows that fail")
    parser.add_argument("--allow-new", action="store_true",
                        help="accept methods and metrics that the results have and the baseline lacks (by default "
                             "they fail the check: a half-written baseline would otherwise pass)")


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
    results = load_results(args.results)
    baseline = load_published(args.against, results) if is_published(args.against) else load_results(args.against)
    rows = compare(results, baseline, default=default, per_metric=per_metric)
    print(f"results:  {results.source} ({results.kind})\nbaseline: {baseline.source} ({baseline.kind})", file=out)
    if "csv" in (results.kind, baseline.kind):
        print("note: a results.csv holds values only; metric versions and parameters are not checked", file=out)
    for note in version_notes(results, baseline):
        print(f"note: library version changed: {note}", file=out)
    print(format_table(rows, only_failures=args.only_failures), file=out)
    failed = [r for r in rows if r.failed]
    checked = sum(1 for r in rows if r.status != "new")
    problems = coverage_problems(rows, allow_new=getattr(args, "allow_new", False))
    if failed or problems:
        kinds = sorted({r.status for r in failed})
        if failed:
            where = list(dict.fromkeys(r.ident.label() for r in failed))
            print(f"FAILED: {len(failed)} of {checked} checks ({', '.join(kinds)}) in "
                  f"{', '.join(_short(w, 40) for w in where[:6])}{', ...' if len(where) > 6 else ''}", file=out)
        for problem in problems:
            print(f"FAILED: {problem}", file=out)
        return 1
    print(f"OK: {checked} checks match", file=out)
    return 0


def coverage_problems(rows: Sequence[Row], allow_new: bool = False) -> list[str]:
    """Why a comparison without drift still proves nothing: no baseline value was compared, or the baseline
    lacks methods or metrics that the results have (unless ``allow_new``)."""
    problems = []
    if not any(r.baseline is not None for r in rows if r.status != "new" and r.key != "*"):
        problems.append("nothing was compared: the baseline holds no metric value (only method and status columns, "
                        "or every value missing); use a complete baseline run directory or results.csv")
    if not allow_new:
        methods = [r.ident.label() for r in rows if r.status == "new" and r.key == "*"]
        keys = sorted({r.key for r in rows if r.status == "new" and r.key != "*" and r.ident.label() not in methods
                       and r.result is not None})  # an empty column of the results is nothing to compare
        if methods or keys:
            what = []
            if methods:
                what.append(f"{len(methods)} method(s) ({', '.join(_short(m, 40) for m in methods[:6])}"
                            f"{', ...' if len(methods) > 6 else ''})")
            if keys:
                what.append(f"metric(s) {', '.join(keys[:8])}{', ...' if len(keys) > 8 else ''}")
            problems.append(f"the baseline has fewer rows or metrics than the results: {' and '.join(what)} are not "
                            f"in it (a half-written or older baseline?); pass --allow-new to accept them")
    return problems


# --- the published values of a RESULTS store (colorbench publish) as the baseline ---------------------------------
def is_published(location: str | Path) -> bool:
    """True for a RESULTS store of ``colorbench publish``: an fsspec URI or a folder with ``submissions/``."""
    return "://" in str(location) or (Path(location) / "submissions").is_dir()


def load_published(location: str | Path, results: RunResults) -> RunResults:
    """The published values of the cells of ``results`` (matched by cell key) as a baseline.

    Raises:
        ValueError: ``results`` carry no cell keys (a results.csv without a ``key`` column), RESULTS holds an
            unreadable file, or one cell key was published with two different sets of values.
    """
    from colorbench.hub.board import published_values

    keys = _cell_keys(results)
    out = RunResults(source=f"{location} (published)", kind="records")
    seen: dict[Ident, dict[str, Any]] = {}
    for cell in published_values(str(location), keys):
        ident = Ident(cell["dataset"], cell["method"], _seed_text(cell["seed"]) or "")
        values = {k: Entry(None if mv["value"] is None else float(mv["value"]), mv["metric"], mv["version"],
                           _plain(mv["params"]), mv["missing_reason"]) for k, mv in cell["metrics"].items()}
        if ident in seen:
            if seen[ident]["values"] != values:
                raise ValueError(f"{location}: cell {cell['key']} ({_describe(ident)}) is published twice with "
                                 f"different values: {seen[ident]['file']} and {cell['file']}; "
                                 "`colorbench leaderboard` lists the conflict")
            continue
        seen[ident] = {"values": values, "file": cell["file"]}
        out.add(ident, values, cell["status"], dict(cell["versions"]))
    return out


def _cell_keys(results: RunResults) -> list[str]:
    if results.kind == "records":
        from colorbench.results.rundir import load_records

        return [rec.key for rec in load_records(results.source) if rec.key]
    frame = pd.read_csv(results.source)
    if "key" not in frame.columns:
        raise ValueError(f"{results.source} has no 'key' column: published values are matched by cell key; check "
                         "the run directory instead of its results.csv")
    return [str(k) for k in frame["key"].dropna()]
