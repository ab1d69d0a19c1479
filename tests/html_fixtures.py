"""Hand-made run directories for the HTML report and study tests (no training: records and arrays written here).

Three methods on ``N_IMAGES`` test images of 16×16: ``alpha`` and ``beta`` succeed (their colorizations are the
real image with a per-image colour shift), ``broken`` failed. Per-image values are known, so the rankings of the
image browser can be checked against a sort done here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from colorbench.results.records import MetricValue, RunRecord

N_IMAGES = 45  # three pages of 20 in the browser, one chunk of 50
H = W = 16
DATASET = {"name": "toyset", "n_train": 10, "n_test": N_IMAGES, "image_size": [H, W]}
IDS = [f"test:{i:03d}" for i in range(N_IMAGES)]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run"]
CHROMIUM = "/usr/bin/chromium"


def _mv(key: str, value: float | None, hib: bool, ci=None, reason=None) -> MetricValue:
    return MetricValue(value, key, "1", hib, {"scale": "0-255"}, missing_reason=reason, ci95=ci)


def images() -> dict[str, np.ndarray]:
    """grey (N,1,H,W), real, alpha, beta (N,3,H,W), all uint8; seeded."""
    rng = np.random.default_rng(0)
    real = rng.integers(0, 256, size=(N_IMAGES, 3, H, W), dtype=np.uint8)
    grey = (0.299 * real[:, 0] + 0.587 * real[:, 1] + 0.114 * real[:, 2]).round().astype(np.uint8)[:, None]
    shift = np.arange(N_IMAGES)[:, None, None, None]
    alpha = np.clip(real.astype(int) + shift, 0, 255).astype(np.uint8)
    beta = np.clip(real.astype(int) - (N_IMAGES - shift), 0, 255).astype(np.uint8)
    return {"grey": grey, "real": real, "alpha": alpha, "beta": beta}


def per_image_values(method: str) -> dict[str, np.ndarray]:
    """Per-image mse (↓) and psnr (↑) of a method, computed from the arrays above."""
    arr = images()
    err = ((arr[method].astype(float) - arr["real"].astype(float)) ** 2).mean(axis=(1, 2, 3))
    psnr = 10 * np.log10(255.0 ** 2 / np.maximum(err, 1e-12))
    return {"id": np.asarray(IDS), "mse": err, "psnr": psnr}


def records() -> list[RunRecord]:
    common = dict(preset="quick", dataset=DATASET, grey_convention="bt601", seed=0, device="cpu")
    out = []
    for name in ("alpha", "beta"):
        v = per_image_values(name)
        out.append(RunRecord(
            method=name,
            metrics={"mse": _mv("mse", float(v["mse"].mean()), False, ci=(float(v["mse"].mean()) * 0.9,
                                                                          float(v["mse"].mean()) * 1.1)),
                     "psnr": _mv("psnr", float(v["psnr"].mean()), True),
                     # missing for alpha only: a column missing for every row is left out (a note says why)
                     "lpips": (_mv("lpips", None, False, reason="LPIPS weights not on this machine")
                               if name == "alpha" else _mv("lpips", 0.3125, False))},
            samples_file=f"arrays/samples_{name}.npz", timings={"train_s": 1.5 if name == "alpha" else 2.5},
            **common))
    out.append(RunRecord(method="broken", status="failed", error="RuntimeError: the model diverged", **common))
    return out


def make_run_dir(root: Path, layout: str = "cells") -> Path:
    """A run directory with the records, grey/real and every colorization of all N_IMAGES test images.

    ``layout="cells"``: the typed layout of :mod:`colorbench.results.rundir` (per-image values, predictions,
    ``arrays/test_<dataset>.npz``), written through ``RunDir.write_cell``; ``"flat"``: the earlier layout
    (``records/*.json``, ``arrays/samples*.npz``, no per-image values), all test images being sample images.
    """
    from colorbench.results.rundir import CellEntry, RunDir, RunInfo, write_npz

    run_dir = root / "run"
    recs = records()
    arr = images()
    if layout == "flat":
        for rec in recs:
            rec.save(run_dir / "records" / f"{rec.method}.json")
        (run_dir / "run.json").write_text(json.dumps({"methods": [r.method for r in recs], "dataset": DATASET,
                                                      "timings": {"wall_s": 4.0}}))
        (run_dir / "arrays").mkdir()
        np.savez(run_dir / "arrays" / "samples.npz", gray=arr["grey"], real=arr["real"], ids=np.asarray(IDS))
        for name in ("alpha", "beta"):
            np.savez(run_dir / "arrays" / f"samples_{name}.npz", pred=arr[name])
        return run_dir
    rd = RunDir(run_dir, create=True)
    rd.write_info(RunInfo(datasets={DATASET["name"]: DATASET}, methods=[r.method for r in recs], seeds=[0],
                          timings={"wall_s": 4.0}, status="complete"))
    sample = [0, 22, 44]
    write_npz(run_dir / "arrays" / f"samples_{DATASET['name']}.npz", gray=arr["grey"][sample], real=arr["real"][sample],
              ids=np.asarray([IDS[i] for i in sample]))
    write_npz(run_dir / "arrays" / f"test_{DATASET['name']}.npz", gray=arr["grey"], real=arr["real"], ids=np.asarray(IDS))
    for rec in recs:
        entry = CellEntry(key=f"k-{rec.method}", dataset=DATASET["name"], method=rec.method, preset="quick", seed=0)
        if rec.status == "ok":
            rec.samples_file = None
            v = per_image_values(rec.method)
            rd.write_cell(entry, rec, per_image={"ids": v.pop("id"), **v}, predictions=(arr[rec.method], IDS),
                          samples=arr[rec.method][sample])
        else:
            rd.write_cell(entry, rec)
    return run_dir


#: Seed 1 of :func:`add_seed`: each method's per-image MSE times this factor (so the means differ across seeds).
SEED1_MSE_FACTOR = {"alpha": 1.2, "beta": 0.9}


def add_seed(run_dir: Path, seed: int = 1) -> None:
    """Add a second seed of every cell of :func:`make_run_dir` (alpha, beta ok with their MSE scaled by
    :data:`SEED1_MSE_FACTOR`; broken fails again), through ``RunDir.write_cell``: a 2-seed grid."""
    from colorbench.results.rundir import CellEntry, RunDir

    rd = RunDir(run_dir)
    arr = images()
    for rec in records():
        rec.seed = seed
        entry = CellEntry(key=f"k-{rec.method}-s{seed}", dataset=DATASET["name"], method=rec.method, preset="quick",
                          seed=seed)
        if rec.status != "ok":
            rd.write_cell(entry, rec)
            continue
        v = per_image_values(rec.method)
        v["mse"] = v["mse"] * SEED1_MSE_FACTOR[rec.method]
        v["psnr"] = 10 * np.log10(255.0 ** 2 / np.maximum(v["mse"], 1e-12))
        rec.metrics["mse"] = _mv("mse", float(v["mse"].mean()), False)
        rec.metrics["psnr"] = _mv("psnr", float(v["psnr"].mean()), True)
        rec.samples_file = None
        rec.timings = {"train_s": rec.timings["train_s"] + 1.0}
        rd.write_cell(entry, rec, per_image={"ids": v.pop("id"), **v}, predictions=(arr[rec.method], IDS))
