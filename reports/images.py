"""The test images of a run directory as the HTML report's image browser and ``colorbench study`` see them.

For each dataset of a run: the image ids, the grey inputs and real images where the run directory holds them,
and one column per (method, seed) with its colorizations and per-image metric values, each loaded only when
asked for (a column of tens of thousands of images is read once, when its thumbnails are written).

Two layouts are read:

* the typed run directory (:mod:`colorbench.results.rundir`): ``cells/<dir>/predictions.npz`` (the colorized test split,
  when the run kept it; else ``cells/<dir>/samples.npz``, the sample images), ``cells/<dir>/per_image.npz``
  (per-image metric values), ``arrays/test_<dataset>.npz`` (grey and real of the whole test split, kept with the
  predictions) or else ``arrays/samples_<dataset>.npz`` (those of the sample images);
* the earlier flat layout (``records/*.json``, ``arrays/samples.npz``, ``arrays/samples_<method>.npz``), through
  the same :class:`~colorbench.results.rundir.RunDir`: the sample images only, without per-image values.

Nothing here imports torch.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from colorbench.results.records import RunRecord


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
class Gallery:
    """The report's gallery of one dataset's test images: ids in display order, grey and real where stored, method
    columns (not a :class:`colorbench.datasets.base.ImageSet`: what a run directory kept of one)."""

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


def image_sets(run_dir: str | Path, records: list[RunRecord] | None = None) -> list[Gallery]:
    """Every dataset's test images of a run directory (see the module docstring for what is read).

    ``records`` is accepted for symmetry with the other report functions; the cells of the run directory are
    what is read.
    """
    from colorbench.results.rundir import RunDir

    rd = RunDir(run_dir)
    cells = [c for c in rd.cells() if c.status in ("ok", "failed") or c.legacy_path]
    seeds_of: dict[tuple[str, str], set[Any]] = {}
    for cell in cells:
        seeds_of.setdefault((cell.dataset, cell.method), set()).add(cell.seed)
    sets: dict[str, Gallery] = {}
    sample_ids: dict[str, list[str]] = {}
    for cell in cells:
        ds = str(cell.dataset)
        if ds not in sets:
            iset = Gallery(dataset=ds, scope="colorizations only")  # neither grey nor real images kept
            sample_pair = _read_pair_file(rd.samples_path(ds))
            sample_ids[ds] = sample_pair[2] if sample_pair else []
            test_pair = _read_pair_file(rd.path / "arrays" / f"test_{ds}.npz")
            pair = test_pair or sample_pair
            if pair is not None:
                iset.grey, iset.real, ids = pair
                iset.scope = "test split" if test_pair else "sample images"
                iset.add_ids(ids)
            sets[ds] = iset
        iset = sets[ds]
        several = len(seeds_of[(cell.dataset, cell.method)]) > 1
        label = f"{cell.method} (seed {cell.seed})" if several else str(cell.method)

        def load_pred(cell: Any = cell, ds: str = ds) -> tuple[np.ndarray, list[str]] | None:
            got = rd.predictions(cell)  # the whole test split, when the run kept it
            if got is not None:
                return got[0], [str(i) for i in got[1]]
            pred = _samples_of(rd, cell)  # else the sample images
            ids = sample_ids[ds]
            if pred is None or len(pred) != len(ids):
                return None
            return pred, ids

        def load_values(cell: Any = cell) -> dict[str, np.ndarray] | None:
            frame = rd.per_image(cell)
            if frame is None:
                return None
            out = {"id": np.asarray([str(i) for i in frame["id"]])}
            for col in frame.columns:
                if col != "id":
                    out[col] = frame[col].to_numpy(dtype=float)
            return out

        def load_ids(cell: Any = cell, ds: str = ds) -> list[str] | None:
            path = rd.cell_dir(cell) / "predictions.npz" if cell.dir else None
            if path is not None and path.is_file():
                with np.load(path, allow_pickle=False) as z:
                    return _str_ids(z["ids"])
            got = load_pred(cell, ds)
            return None if got is None else got[1]

        iset.columns.append(Column(label=label, method=str(cell.method), seed=cell.seed, status=str(cell.status),
                                   load_predictions=load_pred, load_per_image=load_values, load_ids=load_ids))
    return list(sets.values())


def _samples_of(rd: Any, cell: Any) -> np.ndarray | None:
    """A cell's colorizations of the sample images: ``cells/<dir>/samples.npz``, or the record's
    ``samples_file`` (``arrays/samples_<method>.npz``) in directories of the earlier layout."""
    pred = rd.samples(cell)
    if pred is not None:
        return pred
    try:
        rec = rd.record(cell)
    except (FileNotFoundError, ValueError):
        return None
    path = rd.path / rec.samples_file if rec.samples_file else None
    if path is None or not path.is_file():
        if path is not None:
            warnings.warn(f"{cell.method}: samples file {path} is missing; the image browser shows no images of it",
                          stacklevel=3)
        return None
    with np.load(path, allow_pickle=False) as z:
        return z["pred"] if "pred" in z.files else None
