"""Hand-made run directories for the results-hub tests (no training: records and arrays written here).

Each "machine" writes its own run directory of methods ``alpha`` and ``beta`` on dataset ``toyset`` (12 test
images of 8×8). A cell's per-image MSE is a seeded function of (method, seed), so the same cell written on two
machines has the same values and the same cell key, and different seeds have different values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from colorbench.results.records import MetricValue, RunRecord
from colorbench.results.rundir import CellEntry, RunDir, RunInfo, write_npz

N = 12
H = W = 8
IDS = [f"img{i:02d}" for i in range(N)]
DATASET = {"name": "toyset", "version": "1", "n_train": 20, "n_test": N, "image_size": [H, W],
           "params": {"size": H}, "sha256": {"train": "a" * 64, "test": "b" * 64}}
BASE_MSE = {"alpha": 100.0, "beta": 200.0, "gamma": 150.0}


def per_image(method: str, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng([sum(map(ord, method)), seed])
    mse = BASE_MSE[method] * (1 + 0.3 * rng.random(N))
    return {"mse": mse, "psnr": 10 * np.log10(255.0 ** 2 / mse)}


def _mv(key: str, value: float, hib: bool, protocol_version: str, version: str = "2") -> MetricValue:
    return MetricValue(value, key, version, hib, {"scale": "0-255", "protocol": "colorbench",
                                                  "protocol_version": protocol_version})


def make_run(root: Path, seeds=(0,), methods=("alpha", "beta"), protocol_version: str = "2",
             psnr_version: str = "2", card_extra: dict | None = None, started: str = "2026-12-01T10:00:00+00:00",
             failed: tuple[str, ...] = ()) -> Path:
    """A run directory in the typed layout with per-image values and sample images."""
    rd = RunDir(root, create=True)
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(N, 3, H, W), dtype=np.uint8)
    grey = real.mean(axis=1, keepdims=True).astype(np.uint8)
    rd.write_info(RunInfo(datasets={"toyset": DATASET}, methods=list(methods), seeds=list(seeds), device="cpu",
                          threads={"cores": 2}, started=started, finished=started, status="complete"))
    write_npz(root / "arrays" / "samples_toyset.npz", gray=grey[:3], real=real[:3], ids=np.asarray(IDS[:3]))
    for seed in seeds:
        for m in methods:
            card = {"name": m, "title": f"{m} test method", "paper": "none (a test fixture)", "trainable": True,
                    **(card_extra or {}).get(m, {})}
            rec = RunRecord(method=m, preset="quick", dataset=DATASET, grey_convention="bt601", seed=seed,
                            device="cpu", card=card, parameters={"G": 1000}, config={"lr": 0.1},
                            versions={"colorbench": "0.1.0", "platform": "Linux-test", "numpy": "2"})
            entry = CellEntry(key=f"{m}-s{seed}-p{protocol_version}", dataset="toyset", method=m, preset="quick",
                              seed=seed)
            if m in failed:
                rec.status, rec.error = "failed", "RuntimeError: diverged"
                rd.write_cell(entry, rec)
                continue
            v = per_image(m, seed)
            rec.metrics = {"mse": _mv("mse", float(v["mse"].mean()), False, protocol_version),
                           "psnr": _mv("psnr", float(v["psnr"].mean()), True, protocol_version, psnr_version)}
            rd.write_cell(entry, rec, per_image={"ids": IDS, **v}, samples=real[:3] // (2 + sorted(BASE_MSE).index(m)))
    return root


def edit_value(run_dir: Path, method: str, seed: int, key: str, value: float) -> None:
    """Change one recorded metric value of a cell (as a machine whose numbers differ would have it)."""
    path = run_dir / "cells" / f"toyset__{method}__quick__s{seed}" / "record.json"
    rec = json.loads(path.read_text())
    rec["metrics"][key]["value"] = value
    path.write_text(json.dumps(rec))


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
