"""The test images of a run directory as the HTML report's image browser and ``colorbench study`` see them.

For each dataset of a run: the image ids, the grey inputs and real images where the run directory holds them,
and one column per (method, seed) with its colorizations and per-image metric values, each loaded only when
asked for (a column of tens of thousands of images is read once, when its thumbnails are written).

Two layouts are read:

* the typed run directory (:mod:`colorbench.rundir`): ``cells/<dir>/predictions.npz`` (the colorized test split),
  ``cells/<dir>/per_image.npz`` (per-image metric values), ``arrays/samples_<dataset>.npz`` and, where the run
  kept it, ``arrays/test_<dataset>.npz`` (grey and real of the whole test split);
* the older flat layout (``records/*.json``, ``arrays/samples.npz``, ``arrays/samples_<method>.npz``): the
  sample images only, without per-image values.

Nothing here imports torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from colorbench.records import RunRecord


@dataclass
class Column:
    """One method's colorizations of a dataset's test images (one seed)."""

    label: str  # shown in the browser: the method, with its seed when a method has several
    method: str
    seed: int | None
    status: str
    load_predictions: Callable[[], tuple[np.ndarray, list[str]] | None] = lambda: None  # uint8 (N,3,H,W), ids
    load_per_image: Callable[[], dict[str, np.ndarray] | None] = lambda: None  # "id" (str) + one float array per key
    load_ids: Callable[[], list[str] | None] | None = None  # the predictions' ids alone (cheap), when known

    def prediction_ids(self) -> list[str] | None:
        if self.load_ids is not None:
            return self.load_ids()
        got = self.load_predictions()
        return None if got is None else got[1]


@dataclass
class ImageSet:
    """The test images of one dataset: ids in display order, grey and real where stored, method columns."""

    dataset: str
    scope: str  # "test split" or "sample images": what the run directory holds
    grey: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (1,H,W) uint8
    real: dict[str, np.ndarray] = field(default_factory=dict)  # id -> (3,H,W) uint8
    columns: list[Column] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # ids in the order they were first met (test order)

    def add_ids(self, ids: Any) -> None:
        known = set(self.order)
        for i in ids:
            i = str(i)
            if i not in known:
                known.add(i)
                self.order.append(i)


def _str_ids(ids: Any) -> list[str]:
    return [str(i) for i in np.asarray(ids).tolist()]


def _read_pair_file(path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]] | None:
    """``gray``/``grey``, ``real`` and ``ids`` of a samples or test-split file (missing file: None)."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        gkey = "gray" if "gray" in z.files else "grey" if "grey" in z.files else None
        real = z["real"] if "real" in z.files else None
        grey = z[gkey] if gkey else None
        n = len(real) if real is not None else len(grey) if grey is not None else 0
        ids = _str_ids(z["ids"]) if "ids" in z.files else [str(i) for i in range(n)]
    greys = {i: g for i, g in zip(ids, grey)} if grey is not None else {}
    reals = {i: r for i, r in zip(ids, real)} if real is not None else {}
    return greys, reals, ids


def _legacy_sets(run_dir: Path, records: list[RunRecord]) -> list[ImageSet]:
    """The flat layout: one dataset, the sample images of ``arrays/samples.npz`` and each record's samples."""
    name = next((str((r.dataset or {}).get("name")) for r in records if r.dataset), "dataset")
    iset = ImageSet(dataset=name, scope="sample images")
    pair = _read_pair_file(run_dir / "arrays" / "samples.npz")
    ids: list[str] = []
    if pair is not None:
        iset.grey, iset.real, ids = pair
        iset.add_ids(ids)
    for rec in records:
        path = run_dir / rec.samples_file if rec.samples_file else None

        def load(path: Path | None = path, ids: list[str] = ids) -> tuple[np.ndarray, list[str]] | None:
            if path is None or not path.is_file():
                return None
            with np.load(path) as z:
                pred = z["pred"]
            return (pred, ids[: len(pred)]) if len(pred) <= len(ids) else None

        iset.columns.append(Column(label=rec.method, method=rec.method, seed=rec.seed, status=rec.status,
                                   load_predictions=load))
    return [iset]


def _rundir_sets(run_dir: Path) -> list[ImageSet] | None:
    """The typed layout of :mod:`colorbench.rundir`, or None when ``run_dir`` is not one (or it is absent)."""
    try:
        from colorbench.rundir import RunDir
    except ImportError:
        return None
    if not (run_dir / "cells.json").is_file():
        return None
    rd = RunDir(run_dir)
    cells = list(rd.cells())
    seeds_of: dict[tuple[str, str], set[Any]] = {}
    for cell in cells:
        seeds_of.setdefault((cell.dataset, cell.method), set()).add(cell.seed)
    sets: dict[str, ImageSet] = {}
    for cell in cells:
        ds = str(cell.dataset)
        if ds not in sets:
            iset = ImageSet(dataset=ds, scope="sample images")
            for fname, scope in ((f"test_{ds}.npz", "test split"), (f"samples_{ds}.npz", "sample images")):
                pair = _read_pair_file(run_dir / "arrays" / fname)
                if pair is not None:
                    iset.grey, iset.real, ids = pair
                    iset.scope = scope
                    iset.add_ids(ids)
                    break
            sets[ds] = iset
        iset = sets[ds]
        several = len(seeds_of[(cell.dataset, cell.method)]) > 1
        label = f"{cell.method} (seed {cell.seed})" if several else str(cell.method)

        def load_pred(cell: Any = cell) -> tuple[np.ndarray, list[str]] | None:
            got = rd.predictions(cell)
            return None if got is None else (got[0], [str(i) for i in got[1]])

        def load_values(cell: Any = cell) -> dict[str, np.ndarray] | None:
            frame = rd.per_image(cell)
            if frame is None:
                return None
            out = {"id": np.asarray([str(i) for i in frame["id"]])}
            for col in frame.columns:
                if col != "id":
                    out[col] = frame[col].to_numpy(dtype=float)
            return out

        def load_ids(cell: Any = cell) -> list[str] | None:
            path = Path(rd.cell_dir(cell)) / "predictions.npz"
            if not path.is_file():
                return None
            with np.load(path) as z:
                return _str_ids(z["ids"]) if "ids" in z.files else None

        iset.columns.append(Column(label=label, method=str(cell.method), seed=cell.seed, status=str(cell.status),
                                   load_predictions=load_pred, load_per_image=load_values, load_ids=load_ids))
    return list(sets.values())


def image_sets(run_dir: str | Path, records: list[RunRecord]) -> list[ImageSet]:
    """Every dataset's test images of a run directory (see the module docstring for what is read)."""
    run_dir = Path(run_dir)
    try:
        sets = _rundir_sets(run_dir)
    except Exception as exc:  # noqa: BLE001 - a damaged cell must not lose the rest of the report
        warnings.warn(f"{run_dir}: could not read the run directory's cells ({exc}); the image browser shows the "
                      "sample images only", stacklevel=2)
        sets = None
    return sets if sets is not None else _legacy_sets(run_dir, records)
