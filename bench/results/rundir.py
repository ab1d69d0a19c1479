"""The run directory: one typed owner of every file a run writes and every stage reads.

Layout (``RUN`` is ``colorbench run --out``)::

    RUN/run.json                     RunInfo: spec, datasets, versions, timings, executor, thread policy
    RUN/cells.json                   index of the cells: [{key, dataset, method, preset, seed, kind, status, dir, ...}]
    RUN/cells/<dir>/record.json      RunRecord of the cell (with dataset name, cell key and kind)
    RUN/cells/<dir>/per_image.npz    ``ids`` (str) + one float64 array per per-image metric output key
    RUN/cells/<dir>/predictions.npz  optional: ``pred`` uint8 (N, 3, H, W), the colorized test split, + ``ids``
    RUN/cells/<dir>/samples.npz      ``pred`` uint8 (K, 3, H, W): the colorizations of the sample images
    RUN/cells/<dir>/checkpoint/      epoch checkpoints of a trained cell (resume)
    RUN/arrays/samples_<dataset>.npz ``gray``, ``real`` uint8 and ``ids`` of the sample images of a dataset
    RUN/arrays/test_<dataset>.npz    the same for the whole test split, when predictions are kept (HTML report, study)
    RUN/.lock                        held by the process that runs cells into the directory
    results.csv, leaderboard.md, leaderboard.csv, comparisons.csv, figures/   (colorbench.reports)

Directories of earlier versions (``records/<method>.json`` + ``arrays/samples.npz``, no ``cells.json``) are read
as well: each record is a cell of its own. This module imports neither torch nor the runner, so every stage
(reports included) can read a run without the training stack.

Every write is atomic (a temporary file in the same folder, then ``os.replace``): a kill leaves the old file or
the new one, never half of one. ``cells.json`` is updated under a short ``flock`` so that stages writing cells
(the runner, ``colorbench evaluate``) never lose each other's entries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import re
import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

if TYPE_CHECKING:  # numpy is imported where arrays are read or written: `colorbench status` needs none
    import numpy as np

from colorbench.core.fsio import atomic_savez, atomic_write_bytes
from colorbench.results.records import RunRecord, _jsonable

RUN_SCHEMA = "colorbench.run/2"
CELL_KINDS = ("trained", "predictions")
#: Test splits up to this many bytes of uint8 colorizations are kept whole in ``predictions.npz`` by default.
PREDICTIONS_MAX_BYTES = 64 * 2**20


class NotARunDirectory(FileNotFoundError):
    """The path is not a colorbench run directory."""


class RunDirLocked(RuntimeError):
    """Another process holds the run directory's lock."""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _known_fields(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in d.items() if k in names}


@dataclass
class RunInfo:
    """``run.json``: what was asked (the spec) and facts about running it (never mixed into cell configs)."""

    spec: dict[str, Any] = field(default_factory=dict)  # RunSpec.to_dict(): replayable with `run --spec`
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)  # dataset name -> description (sha256, sizes)
    methods: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    device: str = ""
    grey_convention: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)  # {"name": "local"|"process"|"ray", "workers": N, ...}
    threads: dict[str, Any] = field(default_factory=dict)  # thread policy: torch threads per cell, cores
    # methods of the default list left out because a dataset cannot serve them: dataset -> method -> reason
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    status: str = "running"  # "running", "complete" (every requested cell done) or "partial"
    schema: str = RUN_SCHEMA

    @property
    def dataset(self) -> dict[str, Any]:
        """The description of the only (or first) dataset, as the single-dataset readers expect."""
        return next(iter(self.datasets.values()), {})

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(dataclasses.asdict(self))
        d["dataset"] = _jsonable(self.dataset)  # the one-dataset spelling of earlier run.json files
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunInfo":
        d = dict(d)
        if not d.get("datasets") and isinstance(d.get("dataset"), Mapping):  # run.json of version 1
            d["datasets"] = {d["dataset"].get("name", "dataset"): d["dataset"]}
        d.setdefault("schema", RUN_SCHEMA)
        known = _known_fields(cls, d)
        for f in dataclasses.fields(cls):  # a hand-edited run.json ("spec": 42) is named, not a traceback later
            if f.name not in known or known[f.name] is None:
                continue
            want = {"dict": dict, "list": list}.get(f.type.split("[")[0]) if isinstance(f.type, str) else None
            if want is None and isinstance(f.type, str) and f.type.startswith("str"):
                want = str
            if want is not None and not isinstance(known[f.name], want):
                raise ValueError(f"run.json: {f.name!r} must be a JSON {'object' if want is dict else want.__name__}, "
                                 f"got {type(known[f.name]).__name__} ({str(known[f.name])[:40]}); restore it or "
                                 "rerun the command into a new --out")
        return cls(**known)


@dataclass
class CellEntry:
    """One cell of ``cells.json``: (dataset, method, preset, seed, kind), its key and where its files are."""

    key: str
    dataset: str
    method: str
    preset: str
    seed: int
    kind: str = "trained"  # "trained" (trained and evaluated here) or "predictions" (evaluated from files)
    status: str = "pending"
    dir: str = ""  # folder name under cells/ ("" for a record of an earlier layout)
    started: str | None = None
    finished: str | None = None
    seconds: float | None = None
    attempts: int = 0
    error: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # what the key hashes (to name differing fields)
    parent: str | None = None  # key of the cell whose training this row shares (alternative outputs)
    legacy_path: str | None = None  # records/<method>.json of an earlier layout

    @property
    def ident(self) -> tuple[str, str, str, int, str]:
        return (self.dataset, self.method, self.preset, int(self.seed), self.kind)

    def to_dict(self) -> dict[str, Any]:
        d = _jsonable(dataclasses.asdict(self))
        if d.get("legacy_path") is None:
            d.pop("legacy_path")
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CellEntry":
        missing = [k for k in ("key", "dataset", "method", "preset", "seed") if k not in d]
        if missing:
            raise ValueError(f"cells.json entry {dict(d)} lacks {missing}")
        return cls(**_known_fields(cls, d))


def cell_dir_name(dataset: str, method: str, preset: str, seed: int, kind: str = "trained") -> str:
    """Readable, filesystem-safe folder name of a cell: ``<dataset>__<method>__<preset>__s<seed>``."""
    parts = [dataset, method, preset, f"s{seed}"] + ([] if kind == "trained" else [kind])
    return "__".join(re.sub(r"[^A-Za-z0-9@.+=-]", "_", str(p)) for p in parts)


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (inf/nan as strings), written atomically."""
    # a full disk: DiskFullError naming the path and the size; no tmp file left
    atomic_write_bytes(path, json.dumps(_jsonable(obj), indent=2, allow_nan=False, default=str).encode())


def write_npz(path: str | Path, **arrays: Any) -> None:
    """``np.savez_compressed`` written atomically."""
    atomic_savez(path, **arrays)


class RunDir:
    """A run directory (see the module docstring for its layout).

    Args:
        path: the directory.
        create: make it (and ``cells/``, ``arrays/``) if needed; otherwise it must already be a run directory.

    Raises:
        NotARunDirectory: ``path`` does not exist or holds neither ``run.json``, ``cells.json`` nor ``records/``.
    """

    def __init__(self, path: str | Path, create: bool = False) -> None:
        self.path = Path(path)
        if create:
            if self.path.exists() and not self.path.is_dir():
                raise NotARunDirectory(f"{self.path} exists and is not a directory; choose another --out")
            if self.path.is_dir() and not self.is_run_dir(self.path):
                others = sorted(p.name for p in self.path.iterdir()  # colorbench's own: cells/, arrays/, .lock,
                                if p.name not in ("cells", "arrays") and not p.name.startswith("."))  # temp files
                if others:  # a folder of the user's: the report would be written in among their files
                    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
                    raise NotARunDirectory(
                        f"{self.path} is not a colorbench run directory but holds other files ({shown}); colorbench "
                        "writes its records and report into --out, so choose a new or empty folder")
            try:
                (self.path / "cells").mkdir(parents=True, exist_ok=True)
                (self.path / "arrays").mkdir(exist_ok=True)
            except OSError as exc:
                from colorbench.core.fsio import WriteError

                raise WriteError(exc.errno, f"cannot create the run directory {self.path}: {exc.strerror or exc}; "
                                            "choose a writable --out") from None
        elif not self.is_run_dir(self.path):
            what = "does not exist" if not self.path.exists() else "holds no run.json, cells.json or records/"
            raise NotARunDirectory(f"{self.path} is not a colorbench run directory: it {what} "
                                   "(make one with `colorbench run --out DIR`)")

    @staticmethod
    def is_run_dir(path: str | Path) -> bool:
        p = Path(path)
        return p.is_dir() and ((p / "run.json").is_file() or (p / "cells.json").is_file() or (p / "records").is_dir())

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # --- paths -----------------------------------------------------------------------------------------------
    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def cells_json(self) -> Path:
        return self.path / "cells.json"

    def cell_dir(self, cell: CellEntry) -> Path:
        if not cell.dir:
            raise ValueError(f"cell {cell.method} on {cell.dataset} comes from an earlier layout and has no folder")
        return self.path / "cells" / cell.dir

    def checkpoint_dir(self, cell: CellEntry) -> Path:
        return self.cell_dir(cell) / "checkpoint"

    def samples_path(self, dataset: str | None = None) -> Path:
        """``arrays/samples_<dataset>.npz`` (grey, real, ids of the sample images); ``arrays/samples.npz`` in
        directories of the earlier layout."""
        if dataset is not None:
            p = self.path / "arrays" / f"samples_{dataset}.npz"
            if p.is_file() or not (self.path / "arrays" / "samples.npz").is_file():
                return p
        return self.path / "arrays" / "samples.npz"

    # --- run.json ----------------------------------------------------------------------------------------------
    def info(self) -> RunInfo:
        """The parsed ``run.json`` (an empty :class:`RunInfo` if there is none).

        Raises:
            ValueError: ``run.json`` is not valid JSON or not an object.
        """
        if not self.run_json.is_file():
            return RunInfo(status="unknown")
        try:
            d = json.loads(self.run_json.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.run_json} is not valid JSON: {exc}") from exc
        if not isinstance(d, dict):
            raise ValueError(f"{self.run_json} must hold a JSON object, got {type(d).__name__}")
        return RunInfo.from_dict(d)

    def write_info(self, info: RunInfo) -> None:
        write_json(self.run_json, info.to_dict())

    # --- cells.json ----------------------------------------------------------------------------------------------
    def cells(self) -> list[CellEntry]:
        """The cells of ``cells.json`` in their order; for an earlier layout, one per ``records/*.json``."""
        if self.cells_json.is_file():
            try:
                raw = json.loads(self.cells_json.read_text())
            except json.JSONDecodeError as exc:
                raise ValueError(f"{self.cells_json} is not valid JSON ({exc}); it is rewritten atomically, so "
                                 "it was edited by hand or by another tool") from exc
            if not isinstance(raw, list):
                raise ValueError(f"{self.cells_json} must hold a JSON list of cells, got {type(raw).__name__}")
            return [CellEntry.from_dict(d) for d in raw]
        return self._legacy_cells()

    def _legacy_cells(self) -> list[CellEntry]:
        rec_dir = self.path / "records"
        order: list[str] = []
        if self.run_json.is_file():
            with contextlib.suppress(ValueError, json.JSONDecodeError):
                order = list(json.loads(self.run_json.read_text()).get("methods", []))
        files = {p.stem: p for p in sorted(rec_dir.glob("*.json"))} if rec_dir.is_dir() else {}
        names = [n for n in order if n in files] + [n for n in files if n not in order]
        out = []
        for n in names:
            rec = RunRecord.load(files[n])
            out.append(CellEntry(key=rec.key or f"legacy:{n}", dataset=rec.dataset_name, method=rec.method,
                                 preset=rec.preset, seed=rec.seed, kind=rec.kind, status=rec.status, dir="",
                                 legacy_path=str(files[n].relative_to(self.path))))
        return out

    @contextlib.contextmanager
    def _index_lock(self) -> Iterator[None]:
        """Short exclusive lock around read-modify-write of ``cells.json``."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".cells.lock", "a+") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def update_cells(self, entries: Sequence[CellEntry]) -> None:
        """Insert or replace entries (matched by dataset, method, preset, seed and kind) in ``cells.json``."""
        with self._index_lock():
            cells = self.cells() if self.cells_json.is_file() else []
            index = {c.ident: i for i, c in enumerate(cells)}
            for e in entries:
                if not e.dir and not e.legacy_path:
                    e.dir = cell_dir_name(e.dataset, e.method, e.preset, e.seed, e.kind)
                if e.ident in index:
                    cells[index[e.ident]] = e
                else:
                    index[e.ident] = len(cells)
                    cells.append(e)
            write_json(self.cells_json, [c.to_dict() for c in cells])

    # --- cell files ----------------------------------------------------------------------------------------------
    def record(self, cell: CellEntry) -> RunRecord:
        """The record of a finished cell.

        Raises:
            FileNotFoundError: the cell has no record (pending, running or interrupted).
        """
        path = self.path / cell.legacy_path if cell.legacy_path else self.cell_dir(cell) / "record.json"
        if not path.is_file():
            raise FileNotFoundError(f"cell {cell.method} on {cell.dataset} (seed {cell.seed}) has no record "
                                    f"({path} is missing; its status is {cell.status!r})")
        try:
            return RunRecord.load(path)
        except (ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
            raise ValueError(f"{path} is not a readable record ({type(exc).__name__}: {exc}); delete it and rerun "
                             "the command to compute this cell again") from None

    def records(self) -> list[RunRecord]:
        """Every finished cell's record (ok and failed), in the order of ``cells.json``."""
        out = []
        for c in self.cells():
            if c.status in ("ok", "failed") or c.legacy_path:
                with contextlib.suppress(FileNotFoundError):
                    out.append(self.record(c))
        return out

    def damaged_files(self, cell: CellEntry) -> list[str]:
        """What is wrong with a finished cell's files (an unreadable record, a truncated or edited ``.npz``), as
        ``"<file>: <reason>"``; empty when they are sound. ``per_image.npz`` and ``samples.npz`` are read whole (CRC
        checked), ``predictions.npz`` (up to 64 MiB) only for its zip directory. No numpy is imported."""
        import zipfile

        problems = []
        try:
            self.record(cell)
        except FileNotFoundError as exc:
            finished = cell.status in ("ok", "failed") or bool(cell.legacy_path)
            return [str(exc)] if finished else []  # a finished cell without its record is damaged
        except ValueError as exc:
            return [str(exc)]
        if not cell.dir:
            return problems
        d = self.cell_dir(cell)
        for name, full in (("per_image.npz", True), ("samples.npz", True), ("predictions.npz", False)):
            path = d / name
            if not path.is_file():
                continue
            try:
                with zipfile.ZipFile(path) as z:
                    bad = z.testzip() if full else None
                if bad is not None:
                    problems.append(f"{path}: member {bad} fails its CRC check")
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
                problems.append(f"{path}: {type(exc).__name__}: {exc}")
        return problems

    def missing_cells(self) -> list[CellEntry]:
        """Cells of the index that have no finished record (pending, running or interrupted)."""
        return [c for c in self.cells() if c.status not in ("ok", "failed")]

    def per_image(self, cell: CellEntry):
        """Per-image metric values of a cell as a DataFrame (``id`` then one column per metric key), or None."""
        import numpy as np

        import pandas as pd

        if not cell.dir:
            return None
        path = self.cell_dir(cell) / "per_image.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            cols = {"id": z["ids"].astype(str)}
            cols.update({k: z[k].astype(np.float64) for k in z.files if k != "ids"})
        return pd.DataFrame(cols)

    def predictions(self, cell: CellEntry) -> tuple[np.ndarray, list[str]] | None:
        """The cell's colorized test split ``(pred uint8 (N, 3, H, W), ids)``, or None when it was not kept."""
        import numpy as np

        if not cell.dir:
            return None
        path = self.cell_dir(cell) / "predictions.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return z["pred"], [str(i) for i in z["ids"]]

    def samples(self, cell: CellEntry) -> np.ndarray | None:
        """The cell's colorizations of the sample images (uint8 (K, 3, H, W)), or None."""
        import numpy as np

        path = (self.cell_dir(cell) / "samples.npz") if cell.dir else None
        if path is None or not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as z:
            return z["pred"]

    def write_cell(self, entry: CellEntry, record: RunRecord, per_image: Any = None,
                   predictions: tuple[np.ndarray, Sequence[str]] | None = None,
                   samples: np.ndarray | None = None) -> CellEntry:
        """Write a finished cell: its arrays, then ``record.json``, then its entry in ``cells.json``.

        Args:
            entry: the cell (``dir`` is filled in from its identity when empty; ``status`` from the record).
            record: the cell's record; its ``key``, ``kind`` and ``dataset_name`` are set from ``entry`` and its
                ``samples_file``, ``per_image_file``, ``predictions_file`` from what is written.
            per_image: a DataFrame with an ``id`` column, or a mapping ``{"ids": [...], key: values, ...}``.
            predictions: ``(pred uint8 (N, 3, H, W), ids)``.
            samples: uint8 (K, 3, H, W) colorizations of the sample images.

        Each file is written atomically and the record only after its arrays, so a kill in between leaves a cell
        without a record: it is not finished and reruns.
        """
        import numpy as np

        if not entry.dir:
            entry.dir = cell_dir_name(entry.dataset, entry.method, entry.preset, entry.seed, entry.kind)
        d = self.cell_dir(entry)
        d.mkdir(parents=True, exist_ok=True)
        rel = f"cells/{entry.dir}"
        if per_image is not None:
            ids, cols = _per_image_columns(per_image)
            write_npz(d / "per_image.npz", ids=np.asarray(ids, dtype=str), **cols)
            record.per_image_file = f"{rel}/per_image.npz"
        if predictions is not None:
            pred, ids = predictions
            pred = np.asarray(pred)
            if pred.dtype != np.uint8 or pred.ndim != 4 or pred.shape[1] != 3 or len(ids) != len(pred):
                raise ValueError(f"predictions must be uint8 (N, 3, H, W) with N ids, got {pred.dtype} "
                                 f"{pred.shape} and {len(ids)} ids")
            write_npz(d / "predictions.npz", pred=pred, ids=np.asarray(list(ids), dtype=str))
            record.predictions_file = f"{rel}/predictions.npz"
        if samples is not None:
            write_npz(d / "samples.npz", pred=np.asarray(samples))
            record.samples_file = f"{rel}/samples.npz"
        record.key, record.kind, record.dataset_name = entry.key, entry.kind, entry.dataset
        record.save(d / "record.json")
        entry.status = record.status
        entry.error = record.error
        entry.finished = entry.finished or now_iso()
        self.update_cells([entry])
        return entry

    def save_record(self, cell: CellEntry, record: RunRecord) -> None:
        """Rewrite the record of a finished cell (a later stage adding values, e.g. cross-domain accuracy)."""
        path = self.path / cell.legacy_path if cell.legacy_path else self.cell_dir(cell) / "record.json"
        record.save(path)

    def cross_domain(self):
        """The cross-domain results ``(accuracy, summary, info)`` of ``cross_domain/``, or None."""
        import pandas as pd

        root = self.path / "cross_domain"
        if not (root / "accuracy.csv").is_file():
            return None
        acc = pd.read_csv(root / "accuracy.csv", index_col="train")
        summary = pd.read_csv(root / "summary.csv")
        info = json.loads((root / "result.json").read_text())
        return acc, summary, info

    # --- the run lock ------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold ``RUN/.lock`` (an exclusive ``flock``) while running cells into the directory.

        Raises:
            RunDirLocked: another process holds it (its pid, host and start time are in the message).
        """
        path = self.path / ".lock"
        self.path.mkdir(parents=True, exist_ok=True)
        f = open(path, "a+")
        try:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                f.seek(0)
                holder = f.read().strip() or "unknown process"
                raise RunDirLocked(f"run directory {self.path} is in use by another colorbench process ({holder}); "
                                   "wait for it to finish (`colorbench status` shows its progress) or choose "
                                   "another --out") from None
            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()}, started {now_iso()}")
            f.flush()
            yield
        finally:
            f.close()  # closing the file releases the flock

    def is_locked(self) -> bool:
        """True when a process holds the run lock (i.e. cells marked running are really running)."""
        path = self.path / ".lock"
        if not path.exists():
            return False
        with open(path, "a+") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return False


def _per_image_columns(per_image: Any) -> tuple[list[str], dict[str, np.ndarray]]:
    import numpy as np

    if hasattr(per_image, "columns"):  # a DataFrame
        if "id" not in per_image.columns:
            raise ValueError("per_image DataFrame needs an 'id' column")
        ids = [str(i) for i in per_image["id"]]
        cols = {str(k): per_image[k].to_numpy(np.float64) for k in per_image.columns if k != "id"}
    else:
        per_image = dict(per_image)
        if "ids" not in per_image:
            raise ValueError("per_image mapping needs an 'ids' entry")
        ids = [str(i) for i in per_image.pop("ids")]
        cols = {str(k): np.asarray(v, dtype=np.float64).reshape(-1) for k, v in per_image.items()}
    for k, v in cols.items():
        if len(v) != len(ids):
            raise ValueError(f"per-image values {k!r} have {len(v)} entries for {len(ids)} ids")
        if k == "ids":
            raise ValueError("'ids' is reserved in per_image.npz")
    return ids, cols


def load_records(run_dir: str | Path) -> list[RunRecord]:
    """Every finished cell's record of a run directory (``RunDir(run_dir).records()``), in cell order.

    Raises:
        NotARunDirectory: ``run_dir`` is not a run directory.
    """
    return RunDir(run_dir).records()
