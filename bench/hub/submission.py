"""Submissions: one published result per file, in a versioned JSON Schema (``submission.schema.json``).

A submission is one cell of a run (one method, preset and seed on one dataset) under one evaluation protocol: its
metric values with their versions, parameters and intervals, the sha256 of its per-image values, the cell key,
the environment it ran in and the method's metadata (licence, code revision, weights files and hashes, training
data as named datasets, inference size, chroma upsampling, parameter counts). It has two parts:

* ``result``: everything about the number. Its canonical JSON (sorted keys, no spaces, strict JSON with
  ``"inf"``/``"nan"`` strings) hashed with sha256 is the submission's name: ``submissions/<sha256>.json``. The
  same result published twice, or from two machines at once, has the same name.
* ``published``: who published it, when, from which host and colorbench revision (not part of the name).

Every submission is validated against the schema when it is written and when it is read. ``schema_version`` is
the schema's version: :func:`migrate` brings an older submission up to the current one step by step (there is
one version so far, so there are no steps yet) and refuses a newer one, naming the file and the fix. Run records
of every readable record schema (``colorbench.record/1`` and ``/2``, the ``records/`` and ``cells/`` layouts)
become submissions: a record without a protocol in its values is of ``colorbench/1``
(:func:`colorbench.reports.protocols.record_protocol`).
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import math
import os
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from colorbench.results.records import RunRecord, _jsonable
from colorbench.results.rundir import CellEntry, RunDir

SCHEMA_NAME = "colorbench.submission"
SCHEMA_VERSION = 1
SCHEMA_FILE = Path(__file__).with_name("submission.schema.json")
#: Sample images kept per submission (rows of the sample strip).
MAX_SAMPLES = 8
#: Metadata fields a method may declare in its card (another change adds them; read with defaults until then).
CARD_METADATA = ("licence", "training_data", "weights", "code_revision", "inference_size", "chroma_upsampling")


class SubmissionError(ValueError):
    """A submission (or a file that should be one) is invalid; the message names the file and the fix."""


#: schema_version -> function turning a submission of that version into one of the next version.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The JSON Schema of the current version (package data)."""
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _validator():
    import jsonschema

    cls = jsonschema.validators.validator_for(schema())
    cls.check_schema(schema())
    return cls(schema(), format_checker=cls.FORMAT_CHECKER)


def validate(doc: Any, where: str) -> None:
    """Raise :class:`SubmissionError` naming ``where`` and every schema violation (path and message)."""
    errors = sorted(_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  at {'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {_short(e.message)}" for e in errors[:8]]
        more = f"\n  ... and {len(errors) - 8} more" if len(errors) > 8 else ""
        raise SubmissionError(f"{where} does not follow the colorbench submission schema (version {SCHEMA_VERSION}, "
                              f"{SCHEMA_FILE.name}):\n" + "\n".join(lines) + more +
                              "\nRepublish it with `colorbench publish RUN --to RESULTS`, or delete the file")


def migrate(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``doc`` brought to :data:`SCHEMA_VERSION` through :data:`MIGRATIONS`.

    Raises:
        SubmissionError: not a submission, a version newer than this colorbench knows, or no migration step.
    """
    if not isinstance(doc, Mapping) or doc.get("schema") != SCHEMA_NAME:
        got = doc.get("schema") if isinstance(doc, Mapping) else type(doc).__name__
        raise SubmissionError(f"{where} is not a colorbench submission (schema {got!r}, expected {SCHEMA_NAME!r}); "
                              "only `colorbench publish` writes into RESULTS/submissions/: move the file elsewhere")
    version = doc.get("schema_version")
    if not isinstance(version, int) or version < 1:
        raise SubmissionError(f"{where}: schema_version {version!r} is not a positive integer")
    if version > SCHEMA_VERSION:
        raise SubmissionError(f"{where} has submission schema version {version}, newer than this colorbench reads "
                              f"({SCHEMA_VERSION}); upgrade colorbench (pip install -U colorbench)")
    out = dict(doc)
    while out["schema_version"] < SCHEMA_VERSION:
        step = MIGRATIONS.get(out["schema_version"])
        if step is None:
            raise SubmissionError(f"{where}: no migration from submission schema version {out['schema_version']}")
        out = step(out)
    return out


def canonical_bytes(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8, non-finite floats as strings (hashed for names)."""
    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def result_sha256(result: Mapping[str, Any]) -> str:
    """The submission's name: sha256 (hex) of the canonical JSON of its ``result``."""
    return hashlib.sha256(canonical_bytes(result)).hexdigest()


def per_image_sha256(ids: Sequence[str], columns: Mapping[str, np.ndarray]) -> str:
    """sha256 of per-image values: the ids (one per line), then each key (sorted) and its float64 little-endian
    values. Independent of how the values are stored (npz compression, key order)."""
    h = hashlib.sha256()
    h.update(("\n".join(str(i) for i in ids)).encode("utf-8"))
    for key in sorted(columns):
        h.update(b"\0" + key.encode("utf-8") + b"\0")
        h.update(np.ascontiguousarray(np.asarray(columns[key], dtype="<f8")).tobytes())
    return h.hexdigest()


def _short(text: str, n: int = 200) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


# --- building submissions from a run directory -------------------------------------------------------------


@dataclass
class Prepared:
    """A submission ready to publish: the document and the files it refers to (``blobs/<sha256>.<ext>``)."""

    doc: dict[str, Any]
    blobs: dict[str, bytes] = field(default_factory=dict)
    source: str = ""  # the record it was made from

    @property
    def name(self) -> str:
        return result_sha256(self.doc["result"])

    @property
    def path(self) -> str:
        return f"submissions/{self.name}.json"

    def label(self) -> str:
        c = self.doc["result"]["cell"]
        return f"{c['method']} ({c['preset']}, seed {c['seed']}) on {c['dataset']}"


def publisher_identity(by: str | None = None, host: str | None = None) -> dict[str, Any]:
    """The ``published`` block: ``by`` (default ``$COLORBENCH_PUBLISHER``, else the login name), now, ``host``
    (default this machine's name), colorbench's version and git revision (when it runs from a checkout)."""
    import importlib.metadata as md

    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "unknown"
    try:
        version = md.version("colorbench")
    except md.PackageNotFoundError:
        version = "unknown"
    return {"by": by or os.environ.get("COLORBENCH_PUBLISHER") or user,
            "at": datetime.now(timezone.utc).isoformat(timespec="microseconds"),  # orders "first published"
            "host": host or socket.gethostname(), "colorbench_version": version, "code_revision": _git_revision()}


def _git_revision() -> str | None:
    """HEAD of the git checkout colorbench runs from (an editable install), or None."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def read_method_meta(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """``--method-meta FILE``: ``{method name: {licence, code_revision, weights, training_data, inference_size,
    chroma_upsampling}}`` declared by whoever publishes (e.g. for an ``evaluate`` row, whose record knows only the
    folder of files).

    Raises:
        SubmissionError: not a JSON object of objects, or an unknown field (named, with the allowed ones).
    """
    if path is None:
        return {}
    from colorbench.results.records import read_json_object

    try:
        raw = read_json_object(path, "method metadata: {method: {licence, training_data, ...}}")
    except ValueError as exc:
        raise SubmissionError(str(exc)) from None
    out = {}
    for name, meta in raw.items():
        if not isinstance(meta, dict):
            raise SubmissionError(f"{path}: the metadata of {name!r} must be an object, got {type(meta).__name__}")
        unknown = sorted(set(meta) - set(CARD_METADATA))
        if unknown:
            raise SubmissionError(f"{path}: unknown field(s) {unknown} for {name!r}; allowed: {list(CARD_METADATA)}")
        out[str(name)] = dict(meta)
    return out


def build_submissions(run_dir: str | Path, method_meta: Mapping[str, Mapping[str, Any]] | None = None,
                      published: Mapping[str, Any] | None = None) -> list[Prepared]:
    """One :class:`Prepared` submission per finished cell (ok or failed) of a run directory, validated.

    Args:
        run_dir: a run directory (``colorbench run`` / ``evaluate``; earlier layouts too).
        method_meta: per method name, metadata that overrides what its card declares (:func:`read_method_meta`).
        published: the ``published`` block (default :func:`publisher_identity`).

    Raises:
        NotARunDirectory: ``run_dir`` is not a run directory.
        SubmissionError: a record that cannot become a valid submission (names the record file).
    """
    rd = RunDir(run_dir)
    info = rd.info()
    published = dict(published or publisher_identity())
    method_meta = method_meta or {}
    finished = []
    for cell in rd.cells():
        if cell.status not in ("ok", "failed") and not cell.legacy_path:
            continue
        try:
            finished.append((cell, rd.record(cell)))
        except FileNotFoundError:
            continue
    # a failed cell has no values to state its protocol: it is the one its run's other cells of the dataset state
    stated: dict[str, set[str]] = {}
    for cell, rec in finished:
        if (p := stated_protocol(rec)) is not None:
            stated.setdefault(rec.dataset_name or cell.dataset, set()).add(p)
    out = []
    for cell, rec in finished:
        source = str(rd.path / (cell.legacy_path or f"cells/{cell.dir}/record.json"))
        blobs: dict[str, bytes] = {}
        protocol = stated_protocol(rec)
        if protocol is None:
            siblings = stated.get(rec.dataset_name or cell.dataset, set())
            protocol = next(iter(siblings)) if len(siblings) == 1 and not rec.metrics else None
        result = _result(rd, info, cell, rec, method_meta.get(rec.method, {}), blobs, protocol)
        doc = {"schema": SCHEMA_NAME, "schema_version": SCHEMA_VERSION, "result": result, "published": published}
        doc = json.loads(canonical_bytes(doc))  # exactly what a reader gets back (tuples as lists, "inf" strings)
        validate(doc, f"the submission made from {source}")
        out.append(Prepared(doc, blobs, source))
    return out


def stated_protocol(rec: RunRecord) -> str | None:
    """``name/version`` of the protocol a record's values state, or None when none states one."""
    for mv in rec.metrics.values():
        if (mv.params or {}).get("protocol"):
            from colorbench.reports.protocols import record_protocol

            return record_protocol(rec)
    return None


def _result(rd: RunDir, info, cell: CellEntry, rec: RunRecord, meta: Mapping[str, Any],
            blobs: dict[str, bytes], protocol: str | None = None) -> dict[str, Any]:
    from colorbench.reports.protocols import record_protocol

    # values without a protocol are of colorbench/1 (runs made before protocols existed used its conventions)
    proto_name, _, proto_version = (protocol or record_protocol(rec)).partition("/")
    ds = rec.dataset if isinstance(rec.dataset, dict) else {}
    sha = ds.get("sha256")
    test_sha = sha.get("test") if isinstance(sha, dict) else (sha if isinstance(sha, str) else None)
    size = ds.get("image_size")
    metrics = {}
    for key, mv in rec.metrics.items():
        reason = mv.missing_reason
        if mv.value is None and not reason:
            reason = "no value recorded (the run gave no reason)"
        metrics[key] = {"value": mv.value, "metric": str(mv.metric), "version": str(mv.version),
                        "higher_is_better": bool(mv.higher_is_better), "params": dict(mv.params or {}),
                        "missing_reason": reason, "ci95": list(mv.ci95) if mv.ci95 else None}
    versions = {str(k): str(v) for k, v in (rec.versions or info.versions or {}).items()}
    cores = (info.threads or {}).get("cores")
    device = str(rec.device or info.device or "unknown")
    platform = versions.get("platform", "unknown")
    return {
        "cell": {"key": str(rec.key or cell.key), "dataset": rec.dataset_name or cell.dataset, "method": rec.method,
                 "preset": str(rec.preset), "seed": int(rec.seed), "kind": rec.kind if rec.kind in ("trained", "predictions") else "trained",
                 "status": rec.status if rec.status in ("ok", "failed") else "failed", "error": rec.error},
        "protocol": {"name": proto_name, "version": proto_version or "?"},
        "dataset": {"name": rec.dataset_name or str(ds.get("name", cell.dataset)),
                    "version": None if ds.get("version") is None else str(ds.get("version")),
                    "test_sha256": test_sha, "n_test": _int_or_none(ds.get("n_test")),
                    "image_size": [int(s) for s in size] if isinstance(size, (list, tuple)) else None,
                    "params": dict(ds.get("params") or {}), "sources": dataset_sources(ds, rec.dataset_name),
                    "structure_threshold": _recorded_threshold(rec)},
        "grey_convention": str(rec.grey_convention),
        "metrics": metrics,
        "per_image": _per_image_blob(rd, cell, blobs),
        "samples": _samples_blob(rd, cell, rec, blobs),
        "method": method_metadata(rec, meta),
        "environment": {"versions": versions, "device": device, "platform": platform,
                        "cores": _int_or_none(cores),
                        "hardware": f"{device}" + (f", {cores} CPU cores" if cores else "") + f", {platform}"},
        "run": {"started": info.started, "finished": info.finished or cell.finished,
                "colorbench_version": versions.get("colorbench", "unknown"), "record_schema": rec.schema},
    }


def _recorded_threshold(rec: RunRecord) -> float | None:
    """The structure-lost threshold recorded with the record's dataset (``structure_references.threshold``)."""
    refs = rec.dataset.get("structure_references") if isinstance(rec.dataset, dict) else None
    value = refs.get("threshold") if isinstance(refs, dict) else None
    try:
        value = None if value is None else float(value)
    except (TypeError, ValueError):
        return None
    return value if value is not None and math.isfinite(value) else None


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def dataset_sources(description: Mapping[str, Any], name: str = "") -> list[str]:
    """Where a dataset's test images come from, as named datasets: its name, its family (the name before the
    first ``-``: ``imagenet`` for ``imagenet-val``) and a ``source`` it declares."""
    name = name or str(description.get("name", ""))
    out = {name, name.split("-")[0]} if name else set()
    if isinstance(description.get("source"), str):
        out.add(description["source"])
    return sorted(s for s in out if s)


def _card_field(card: Any, name: str, default: Any = None) -> Any:
    """A card field from a MethodCard or its dict, with a default for cards made before the field existed."""
    if isinstance(card, Mapping):
        return card.get(name, default)
    return getattr(card, name, default)


def method_metadata(rec: RunRecord, meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The method block of a submission from a record's card, config and parameter counts; ``meta`` (declared
    at publish time) overrides the card field by field."""
    meta = dict(meta or {})
    card = rec.card or {}
    config = rec.config or {}
    notes = config.get("notes") if isinstance(config.get("notes"), Mapping) else {}

    def pick(name: str, default: Any = None) -> Any:
        if name in meta:
            return meta[name]
        value = _card_field(card, name, None)
        if value is None:
            value = _card_field(card, "license", None) if name == "licence" else None
        return default if value is None else value

    training = [str(t) for t in (pick("training_data", ()) or ())]
    if rec.kind == "trained" and _card_field(card, "trainable", False) and "training_data" not in meta:
        own = f"{rec.dataset_name}:train"  # the protocol's own training split, trained on in this run
        if own not in training:
            training.append(own)
    weights = _weights(pick("weights", ()) or (), notes)
    version = (rec.versions or {}).get("colorbench")
    code_revision = pick("code_revision", f"colorbench {version}" if rec.kind == "trained" and version else None)
    params = {str(k): int(v) for k, v in (rec.parameters or {}).items()}
    return {"name": rec.method, "title": str(_card_field(card, "title", "") or ""),
            "paper": str(_card_field(card, "paper", "") or ""),
            "licence": None if pick("licence") is None else str(pick("licence")),
            "code_revision": None if code_revision is None else str(code_revision),
            "weights": weights, "training_data": training,
            "inference_size": _text_or_none(pick("inference_size", config.get("inference_size"))),
            "chroma_upsampling": _text_or_none(pick("chroma_upsampling", config.get("chroma_upsampling"))),
            "parameters": params, "parameter_count": sum(params.values()) if params else None,
            "config": json.loads(canonical_bytes(config))}


def _text_or_none(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, (list, tuple)):
        return "x".join(str(x) for x in v)
    return str(v)


def _weights(declared: Any, notes: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Weights files as ``{name, file, sha256}``: names from the card (``weights``: weights-registry names, or
    dicts with ``file``/``sha256``) resolved through :data:`colorbench.core.weights.WEIGHTS`, plus the file a method
    noted loading (``config.notes.weights_name``/``weights_file``)."""
    entries: list[dict[str, Any]] = []
    items = [declared] if isinstance(declared, (str, Mapping)) else list(declared)
    if notes.get("weights_name") and notes.get("weights_name") not in items:
        items.append(str(notes["weights_name"]))
    for item in items:
        if isinstance(item, Mapping):
            entries.append({"name": item.get("name"), "file": item.get("file"),
                            "sha256": (str(item["sha256"]).lower() if item.get("sha256") else None)})
            continue
        entry = {"name": str(item), "file": None, "sha256": None}
        try:
            from colorbench.core.weights import WEIGHTS  # core floor, no torch: the registry of pretrained files

            w = WEIGHTS.get(str(item))
        except ImportError:
            w = None
        if w is not None:
            entry["file"], entry["sha256"] = w.file_name, (w.sha256 or "").lower() or None
        if notes.get("weights_name") == item and notes.get("weights_file"):
            entry["file"] = Path(str(notes["weights_file"])).name
        entries.append(entry)
    return entries


def _per_image_blob(rd: RunDir, cell: CellEntry, blobs: dict[str, bytes]) -> dict[str, Any] | None:
    frame = rd.per_image(cell)
    if frame is None:
        return None
    ids = [str(i) for i in frame["id"]]
    cols = {str(k): frame[k].to_numpy(np.float64) for k in frame.columns if k != "id"}
    digest = per_image_sha256(ids, cols)
    buf = io.BytesIO()
    np.savez_compressed(buf, ids=np.asarray(ids, dtype=str), **cols)
    rel = f"blobs/{digest}.npz"
    blobs[rel] = buf.getvalue()
    return {"sha256": digest, "n_images": len(ids), "keys": sorted(cols), "file": rel}


def _samples_blob(rd: RunDir, cell: CellEntry, rec: RunRecord, blobs: dict[str, bytes]) -> dict[str, Any] | None:
    """The sample images as one PNG: a row per image, columns grey input | colorization | real."""
    pred = rd.samples(cell)
    ref = rd.samples_path(rec.dataset_name or cell.dataset)
    if pred is None or not ref.is_file():
        return None
    with np.load(ref, allow_pickle=False) as z:
        gray = z["gray"] if "gray" in z.files else z["grey"]
        real = z["real"]
    n = min(MAX_SAMPLES, len(pred), len(real))
    if n == 0 or pred.shape[2:] != real.shape[2:]:
        return None
    grey3 = np.repeat(gray[:n], 3, axis=1) if gray.shape[1] == 1 else gray[:n]
    rows = [np.concatenate([grey3[i], pred[i], real[i]], axis=2) for i in range(n)]  # (3, H, 3W) each
    strip = np.concatenate(rows, axis=1).transpose(1, 2, 0).astype(np.uint8)
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    rel = f"blobs/{digest}.png"
    blobs[rel] = data
    return {"sha256": digest, "n_images": n, "file": rel,
            "layout": "one row per sample image; columns: grey input | colorization | real"}


def finite(v: Any) -> float | None:
    """A stored value as a float (``"inf"`` strings included); None for null."""
    if v is None:
        return None
    f = float(v)
    return f if not math.isnan(f) else math.nan
