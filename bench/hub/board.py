"""The leaderboard of a RESULTS store: submissions grouped into comparable tables, merged, aggregated, checked.

* **Tables.** One table per (protocol name and version, dataset name, sha256 of the decoded test split). Inside
  it, values of one metric output key share a column only when their metric, metric version and parameters
  agree: submissions that disagree on a key both have go to another table of the same dataset and protocol
  ("psnr v2" and "psnr v3" never share a column). Each table names the other tables of its dataset.
* **Rows.** One row per (method, preset, kind, method metadata): the cells of all runs and machines with that
  identity merge. The seeds (distinct cell keys) are aggregated with
  :func:`colorbench.reports.stats.seed_summary` (mean, sample sd, n); where every cell of a table has its
  per-image values, :func:`colorbench.reports.stats.paired_comparisons` marks the rows that cannot be told apart
  from the best (Holm-corrected Wilcoxon, as the run report).
* **Conflicts** (flagged, never merged silently): the same cell key published with values that differ beyond
  the tolerance (``|a - b| > atol + rtol |a|``; the first published value is shown, every value listed); the
  same method name with different weights hashes or different metadata (licence, paper, training data): their
  rows stay apart and each names the files.
* **Structure lost.** A row whose mean luma SSIM is below the dataset's threshold (recorded with the runs, else
  :data:`colorbench.reports.tables.LUMA_SSIM_THRESHOLD`) is marked and takes no best value, as in the run report.
* **Contamination.** A row is marked when a method's training data names the test set's source (the dataset or
  its family, :func:`colorbench.hub.submission.dataset_sources`), other than the protocol's own training split
  (``<dataset>:train``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from colorbench.hub.store import ResultsStore
from colorbench.hub.submission import SubmissionError, canonical_bytes, finite, per_image_sha256
from colorbench.results.records import MetricValue

#: Default tolerance of "the same cell key with the same values" (relative, absolute).
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-9
#: Method metadata that must agree between submissions of one method name (weights are compared on their own).
METADATA_FIELDS = ("licence", "paper", "training_data")


class ResultsError(ValueError):
    """RESULTS holds files that cannot be read as submissions (each named in the message)."""


@dataclass
class Sub:
    """One submission read from the store."""

    path: str  # relative to RESULTS
    where: str  # how to name it in messages
    doc: dict[str, Any]
    per_image: pd.DataFrame | None = None

    @property
    def result(self) -> dict[str, Any]:
        return self.doc["result"]

    @property
    def cell(self) -> dict[str, Any]:
        return self.result["cell"]

    @property
    def method(self) -> dict[str, Any]:
        return self.result["method"]

    @property
    def published(self) -> dict[str, Any]:
        return self.doc["published"]

    @property
    def protocol(self) -> str:
        p = self.result["protocol"]
        return f"{p['name']}/{p['version']}"

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1].removesuffix(".json")

    def provenance(self) -> dict[str, Any]:
        env, pub = self.result["environment"], self.published
        return {"file": self.path, "by": pub["by"], "host": pub["host"], "at": pub["at"],
                "colorbench": self.result["run"]["colorbench_version"], "commit": pub.get("code_revision"),
                "hardware": env["hardware"], "seed": self.cell["seed"], "key": self.cell["key"]}


@dataclass
class Loaded:
    subs: list[Sub]
    problems: list[str]


def load(store: ResultsStore, strict: bool = True) -> Loaded:
    """Every submission of the store, validated, with its per-image values.

    Args:
        strict: raise on any unreadable file; otherwise leave it out and list it in ``problems``.

    Raises:
        ResultsError: (``strict``) one or more files are corrupt, fail the schema or were edited; every one is
            named with its problem.
    """
    subs, problems = [], []
    files = store.submission_files()
    for rel in files:
        try:
            doc = store.read_submission(rel)
        except SubmissionError as exc:
            problems.append(str(exc))
            continue
        sub = Sub(rel, store.where(rel), doc)
        pi = doc["result"]["per_image"]
        if pi is not None:
            try:
                sub.per_image = _read_per_image(store, pi)
            except SubmissionError as exc:
                problems.append(f"{exc} (per-image values of {sub.where})")
        samples = doc["result"]["samples"]
        if samples is not None:
            problem = store.check_blob(samples["file"], samples["sha256"], "samples")
            if problem:
                problems.append(f"{problem} (sample images of {sub.where})")
        subs.append(sub)
    if strict and problems:
        raise ResultsError(f"{len(problems)} problem(s) in {store.uri}:\n- " + "\n- ".join(problems) +
                           "\n(`colorbench leaderboard --keep-going` builds the site without them and lists them)")
    subs.sort(key=lambda s: (s.published["at"], s.path))
    return Loaded(subs, problems)


def _read_per_image(store: ResultsStore, pi: Mapping[str, Any]) -> pd.DataFrame:
    rel = pi["file"]
    if not store.exists(rel):
        raise SubmissionError(f"{store.where(rel)} is missing; publish the run again to restore it")
    try:
        with np.load(io.BytesIO(store.read(rel)), allow_pickle=False) as z:
            ids = [str(i) for i in z["ids"]]
            cols = {k: z[k].astype(np.float64) for k in z.files if k != "ids"}
    except Exception as exc:  # a zip/npz decoding error of any kind: the file is corrupt
        raise SubmissionError(f"{store.where(rel)} is not a readable .npz ({type(exc).__name__}: {exc})") from None
    digest = per_image_sha256(ids, cols)
    if digest != pi["sha256"]:
        raise SubmissionError(f"{store.where(rel)}: its per-image values hash to {digest[:12]}…, not "
                              f"{pi['sha256'][:12]}…: the file is corrupt or was edited")
    return pd.DataFrame({"id": ids, **cols})


# --- the board ------------------------------------------------------------------------------------------------


@dataclass
class Conflict:
    kind: str  # "values" (same cell key, different values) or "weights" or "metadata"
    text: str
    files: list[str] = field(default_factory=list)
    key: str | None = None  # the metric output key of a "values" conflict


@dataclass
class Row:
    id: str
    method: str
    preset: str
    kind: str
    variant: str  # "" or a short fingerprint of the method metadata when a method name has several
    subs: list[Sub] = field(default_factory=list)
    cells: dict[str, list[Sub]] = field(default_factory=dict)  # cell key -> its submissions (first = shown)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> mean, std, n
    conflicts: list[Conflict] = field(default_factory=list)
    contamination: list[str] = field(default_factory=list)
    status: str = "ok"
    errors: list[str] = field(default_factory=list)
    structure_lost: bool = False  # mean luma SSIM below the table's threshold: no best value (as the run report)
    ties: dict[str, bool] = field(default_factory=dict)  # key -> cannot be told apart from the best

    @property
    def meta(self) -> dict[str, Any]:
        return self.subs[0].method

    @property
    def seeds(self) -> list[int]:
        return sorted({s[0].cell["seed"] for s in self.cells.values()})

    def provenance(self) -> list[dict[str, Any]]:
        return [s.provenance() for s in self.subs]


@dataclass
class Column:
    key: str
    metric: str
    version: str
    higher_is_better: bool
    params: dict[str, Any]


@dataclass
class Table:
    id: str
    protocol: str
    dataset: str
    test_sha256: str | None
    dataset_info: dict[str, Any]
    signature: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    subs: list[Sub] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    columns: list[Column] = field(default_factory=list)
    best: dict[str, str] = field(default_factory=dict)  # key -> row id
    paired: bool = False  # ties computed from per-image values
    structure_threshold: float = 0.7  # luma SSIM below which a row lost its input's structure
    others: list[str] = field(default_factory=list)  # ids of the other tables of this dataset
    split_reason: str = ""


@dataclass
class Board:
    tables: list[Table]
    methods: dict[str, list[Row]]  # method name -> its rows in every table
    conflicts: list[Conflict]
    problems: list[str]
    subs: list[Sub]
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", str(text)).strip("-") or "x"


def _params_hash(params: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_bytes(params)).hexdigest()[:10]


def signature(sub: Sub) -> dict[str, tuple[str, str, str]]:
    """``{key: (metric, version, params hash)}`` of the values a submission has (missing values say nothing)."""
    return {k: (mv["metric"], mv["version"], _params_hash(mv["params"]))
            for k, mv in sub.result["metrics"].items() if mv["value"] is not None}


def _compatible(a: Mapping[str, tuple], b: Mapping[str, tuple]) -> bool:
    return all(a[k] == b[k] for k in set(a) & set(b))


def close(a: float, b: float, rtol: float, atol: float) -> bool:
    """``|a - b| <= atol + rtol |a|``; equal infinities are equal, NaN equals NaN."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= atol + rtol * abs(a)


def _metadata_print(meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"licence": meta["licence"], "paper": meta["paper"],
            "training_data": sorted(t for t in meta["training_data"] if not t.endswith(":train"))}


def _weights_print(meta: Mapping[str, Any]) -> list[str]:
    return sorted(str(w.get("sha256") or f"{w.get('name')}:{w.get('file')}") for w in meta["weights"])


def contamination(meta: Mapping[str, Any], dataset: Mapping[str, Any]) -> list[str]:
    """Training datasets of a method that name the test set's source (not its own ``<dataset>:train`` split)."""
    sources = set(dataset["sources"]) | {dataset["name"]}
    out = []
    for t in meta["training_data"]:
        if t == f"{dataset['name']}:train":
            continue
        base = t.split(":")[0]
        if base in sources or base.split("-")[0] in sources:
            out.append(t)
    return out


def build(loaded: Loaded, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> Board:
    """Group, merge, aggregate and check the submissions (see the module docstring)."""
    conflicts: list[Conflict] = []
    # one method name, several metadata or weights: every variant named with a file that has it
    variant_of: dict[str, str] = {}
    by_method: dict[str, list[Sub]] = {}
    for s in loaded.subs:
        by_method.setdefault(s.cell["method"], []).append(s)
    for name, subs in by_method.items():
        prints: dict[str, tuple[dict, list, Sub]] = {}
        for s in subs:
            mp, wp = _metadata_print(s.method), _weights_print(s.method)
            fp = hashlib.sha256(canonical_bytes([mp, wp])).hexdigest()[:8]
            prints.setdefault(fp, (mp, wp, s))
            variant_of[s.path] = fp
        if len(prints) > 1:
            items = list(prints.values())
            (m0, w0, s0) = items[0]
            for (m1, w1, s1) in items[1:]:
                if w0 != w1:
                    conflicts.append(Conflict("weights", f"method {name!r} is published with different weights: "
                                              f"{', '.join(w0) or 'none'} in {s0.path} vs {', '.join(w1) or 'none'} "
                                              f"in {s1.path}; its rows are kept apart (rename one method, or "
                                              f"republish with the right weights)", [s0.path, s1.path]))
                diff = [k for k in m0 if m0[k] != m1[k]]
                if diff:
                    what = "; ".join(f"{k}: {json.dumps(m0[k])} in {s0.path} vs {json.dumps(m1[k])} in {s1.path}"
                                     for k in diff)
                    conflicts.append(Conflict("metadata", f"method {name!r} is published with different metadata "
                                              f"({what}); its rows are kept apart: republish with one "
                                              f"--method-meta, or rename one method", [s0.path, s1.path]))
        else:
            for s in subs:
                variant_of[s.path] = ""
    # tables
    groups: dict[tuple[str, str, str | None], list[Table]] = {}
    tables: list[Table] = []
    for s in loaded.subs:
        ds = s.result["dataset"]
        gkey = (s.protocol, ds["name"], ds["test_sha256"])
        sig = signature(s)
        candidates = groups.setdefault(gkey, [])
        table = next((t for t in candidates if _compatible(t.signature, sig)), None)
        if table is None:
            base = slug(f"{ds['name']}--{s.protocol}--{(ds['test_sha256'] or 'nosha')[:8]}")
            table = Table(id=base + (f"--{len(candidates) + 1}" if candidates else ""), protocol=s.protocol,
                          dataset=ds["name"], test_sha256=ds["test_sha256"], dataset_info=ds)
            if candidates:
                diff = sorted(k for t in candidates for k in set(t.signature) & set(sig) if t.signature[k] != sig[k])
                table.split_reason = ("other metric versions or parameters than table "
                                      f"{candidates[0].id} for {', '.join(dict.fromkeys(diff))}")
            candidates.append(table)
            tables.append(table)
        table.signature.update(sig)
        table.subs.append(s)
    tables.sort(key=_table_order)
    for t in tables:
        t.others = [o.id for o in tables if o.dataset == t.dataset and o.id != t.id]
        _fill_table(t, variant_of, rtol, atol)
        for r in t.rows:
            conflicts.extend(c for c in r.conflicts if c.kind == "values")
            r.conflicts.extend(c for c in conflicts if c.kind != "values" and any(
                f in c.files for f in (s.path for s in by_method.get(r.method, []))))
    methods: dict[str, list[Row]] = {}
    for t in tables:
        for r in t.rows:
            methods.setdefault(r.method, []).append(r)
    return Board(tables, methods, conflicts, list(loaded.problems), list(loaded.subs), rtol, atol)


def _table_order(t: Table) -> tuple:
    """Datasets by name; within one, protocols by name, newest version first; split tables after their first."""
    name, _, version = t.protocol.partition("/")
    return (t.dataset, name, -int(version) if version.isdigit() else 0, version, bool(t.split_reason), t.id)


def _fill_table(t: Table, variant_of: Mapping[str, str], rtol: float, atol: float) -> None:
    from colorbench.reports.stats import paired_comparisons, seed_summary

    rows: dict[tuple, Row] = {}
    for s in t.subs:
        c = s.cell
        variant = variant_of.get(s.path, "")
        rk = (c["method"], c["preset"], c["kind"], variant)
        if rk not in rows:
            rid = slug(f"{c['method']}--{c['preset']}" + (f"--{variant}" if variant else ""))
            rows[rk] = Row(rid, c["method"], c["preset"], c["kind"], variant)
        row = rows[rk]
        row.subs.append(s)
        row.cells.setdefault(c["key"], []).append(s)
    cols: dict[str, Column] = {}
    for s in t.subs:
        for k, mv in s.result["metrics"].items():
            if k not in cols or (cols[k].params == {} and mv["value"] is not None):
                cols[k] = Column(k, mv["metric"], mv["version"], mv["higher_is_better"],
                                 mv["params"] if mv["value"] is not None else {})
    t.columns = list(cols.values())
    records, per_image = [], {}
    for row in rows.values():
        frames, complete = [], True
        for key, subs in row.cells.items():
            first = subs[0]
            for other in subs[1:]:
                for k, mv in first.result["metrics"].items():
                    a, b = finite(mv["value"]), finite(other.result["metrics"].get(k, {}).get("value"))
                    if (a is None) != (b is None) or (a is not None and not close(a, b, rtol, atol)):
                        row.conflicts.append(Conflict(
                            "values", f"cell {key} ({row.method}, seed {first.cell['seed']}) on {t.id}: {k} = "
                                      f"{_fmt(a)} in {first.path} (by {first.published['by']}) vs {_fmt(b)} in "
                                      f"{other.path} (by {other.published['by']}), beyond rtol={rtol:g} "
                                      f"atol={atol:g}; the first published value is shown",
                            [first.path, other.path], key=k))
            if first.cell["status"] != "ok":
                row.errors.append(first.cell["error"] or "failed")
            records.append(SimpleNamespace(
                dataset_name=t.id, method=row.id, status=first.cell["status"],
                metrics={k: MetricValue(finite(mv["value"]), mv["metric"], mv["version"], mv["higher_is_better"])
                         for k, mv in first.result["metrics"].items()}))
            if first.cell["status"] == "ok":
                if first.per_image is None:
                    complete = False
                else:
                    frames.append(first.per_image)
        if all(s[0].cell["status"] != "ok" for s in row.cells.values()):
            row.status = "failed"
        if complete and frames:
            per_image[(t.id, row.id)] = frames
        row.contamination = contamination(row.meta, t.dataset_info)
    summary = seed_summary(records)
    from colorbench.reports.tables import LUMA_SSIM_THRESHOLD, STRUCTURE_KEY, below_structure_threshold

    recorded = [s.result["dataset"]["structure_threshold"] for s in t.subs]
    t.structure_threshold = next((float(v) for v in recorded if v is not None), LUMA_SSIM_THRESHOLD)
    for row in rows.values():
        for r in summary[summary["method"] == row.id].itertuples():
            row.stats[str(r.key)] = {"mean": float(r.mean), "std": float(r.std), "n": int(r.n)}
        luma = row.stats.get(STRUCTURE_KEY, {})
        row.structure_lost = luma.get("n", 0) > 0 and below_structure_threshold(luma["mean"], t.structure_threshold)
    t.rows = sorted(rows.values(), key=lambda r: (r.status != "ok", r.method, r.preset, r.variant))
    # best per column (mean over seeds), then ties from the per-image values where every ok row has them
    for col in t.columns:
        vals = [(r.stats.get(col.key, {}).get("mean", math.nan), r.id) for r in t.rows
                if r.status == "ok" and not r.structure_lost]
        vals = [(v, i) for v, i in vals if np.isfinite(v)]
        if vals:
            t.best[col.key] = (max(vals) if col.higher_is_better else min(vals))[1]
    ok_rows = [r for r in t.rows if r.status == "ok"]
    if len(ok_rows) >= 2 and all((t.id, r.id) in per_image for r in ok_rows):
        t.paired = True
        comp = paired_comparisons(per_image, summary, structure_threshold={t.id: t.structure_threshold})
        for c in comp.itertuples():
            row = next(r for r in t.rows if r.id == c.method)
            row.ties[str(c.metric)] = bool(c.indistinguishable)


def _fmt(v: float | None) -> str:
    return "missing" if v is None else f"{v:.6g}"


def build_board(uri: str, strict: bool = True, rtol: float = DEFAULT_RTOL, atol: float = DEFAULT_ATOL) -> Board:
    """Load the store at ``uri`` and build its board (see :func:`load`, :func:`build`)."""
    return build(load(ResultsStore(uri), strict=strict), rtol=rtol, atol=atol)


def published_values(uri: str, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """The published cells (optionally only those whose cell key is in ``keys``), for ``colorbench check``:
    ``{"key", "dataset", "method", "seed", "status", "metrics", "versions", "file", "protocol"}`` each.

    Raises:
        ResultsError: an unreadable file in RESULTS.
    """
    loaded = load(ResultsStore(uri), strict=True)
    wanted = None if keys is None else set(keys)
    out = []
    for s in loaded.subs:
        if wanted is not None and s.cell["key"] not in wanted:
            continue
        out.append({"key": s.cell["key"], "dataset": s.cell["dataset"], "method": s.cell["method"],
                    "seed": s.cell["seed"], "status": s.cell["status"], "metrics": s.result["metrics"],
                    "versions": s.result["environment"]["versions"], "file": s.where, "protocol": s.protocol})
    return out
