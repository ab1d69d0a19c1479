"""The run directory (colorbench.results.rundir): typed index, cell files, atomic writes, earlier layout, lock."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from colorbench.results.records import MetricValue, RunRecord
from colorbench.results.rundir import CellEntry, NotARunDirectory, RunDir, RunDirLocked, RunInfo


def _record(method: str, seed: int = 0, status: str = "ok") -> RunRecord:
    return RunRecord(method=method, preset="quick", dataset={"name": "shapes", "n_test": 3}, grey_convention="bt601",
                     seed=seed, device="cpu", status=status,
                     metrics={"psnr": MetricValue(value=20.0 + seed, metric="psnr", version="1", higher_is_better=True)})


def test_write_cell_round_trip(tmp_path):
    rd = RunDir(tmp_path / "run", create=True)
    rd.write_info(RunInfo(spec={"methods": ["gray"]}, datasets={"shapes": {"name": "shapes"}}, methods=["gray"]))
    entry = CellEntry(key="k1", dataset="shapes", method="gray", preset="quick", seed=0)
    pred = np.arange(3 * 3 * 2 * 2, dtype=np.uint8).reshape(3, 3, 2, 2)
    rd.write_cell(entry, _record("gray"), per_image={"ids": ["a", "b", "c"], "psnr": [1.0, 2.0, 3.5]},
                  predictions=(pred, ["a", "b", "c"]), samples=pred[:2])
    rd.update_cells([CellEntry(key="k2", dataset="shapes", method="unet-l1", preset="quick", seed=0)])  # pending

    rd2 = RunDir(tmp_path / "run")
    cells = rd2.cells()
    assert [(c.method, c.status) for c in cells] == [("gray", "ok"), ("unet-l1", "pending")]
    assert cells[0].dir == "shapes__gray__quick__s0" and rd2.cell_dir(cells[0]).is_dir()
    rec = rd2.record(cells[0])
    assert rec.key == "k1" and rec.kind == "trained" and rec.dataset_name == "shapes"
    assert rec.samples_file == "cells/shapes__gray__quick__s0/samples.npz"
    assert [r.method for r in rd2.records()] == ["gray"]  # the pending cell has no record
    assert [c.method for c in rd2.missing_cells()] == ["unet-l1"]
    frame = rd2.per_image(cells[0])
    assert list(frame.columns) == ["id", "psnr"] and frame["psnr"].dtype == np.float64
    assert frame["id"].tolist() == ["a", "b", "c"] and frame["psnr"].tolist() == [1.0, 2.0, 3.5]
    got, ids = rd2.predictions(cells[0])
    assert got.dtype == np.uint8 and np.array_equal(got, pred) and ids == ["a", "b", "c"]
    assert np.array_equal(rd2.samples(cells[0]), pred[:2])
    assert rd2.per_image(cells[1]) is None and rd2.predictions(cells[1]) is None
    with pytest.raises(FileNotFoundError, match="has no record"):
        rd2.record(cells[1])
    info = rd2.info()
    assert info.methods == ["gray"] and info.dataset == {"name": "shapes"}
    assert json.loads((tmp_path / "run" / "run.json").read_text())["dataset"] == {"name": "shapes"}
    # typed entries survive a JSON round trip, extra fields are ignored
    d = {**cells[0].to_dict(), "future_field": 1}
    assert CellEntry.from_dict(d) == cells[0]
    assert not list((tmp_path / "run").rglob("*.tmp"))  # atomic writes leave no temporary files


def test_bad_inputs_to_write_cell(tmp_path):
    rd = RunDir(tmp_path, create=True)
    entry = CellEntry(key="k", dataset="d", method="m", preset="quick", seed=0)
    with pytest.raises(ValueError, match="3 entries for 2 ids"):
        rd.write_cell(entry, _record("m"), per_image={"ids": ["a", "b"], "psnr": [1, 2, 3]})
    with pytest.raises(ValueError, match="uint8"):
        rd.write_cell(entry, _record("m"), predictions=(np.zeros((1, 3, 2, 2), np.float32), ["a"]))
    assert not (tmp_path / "cells.json").exists()  # nothing indexed for a cell that was not written


def test_not_a_run_directory_and_corrupt_index(tmp_path):
    with pytest.raises(NotARunDirectory, match="does not exist"):
        RunDir(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotARunDirectory, match="not a colorbench run directory"):
        RunDir(tmp_path / "empty")
    (tmp_path / "empty" / "cells.json").write_text("[{")
    with pytest.raises(ValueError, match="cells.json is not valid JSON"):
        RunDir(tmp_path / "empty").cells()


def test_earlier_layout_is_read(tmp_path):
    (tmp_path / "records").mkdir()
    _record("gray").save(tmp_path / "records" / "gray.json")
    _record("pix2pix").save(tmp_path / "records" / "pix2pix.json")
    (tmp_path / "run.json").write_text(json.dumps({"methods": ["pix2pix", "gray"], "dataset": {"name": "shapes"}}))
    rd = RunDir(tmp_path)
    assert [r.method for r in rd.records()] == ["pix2pix", "gray"]  # run.json order
    assert rd.info().datasets == {"shapes": {"name": "shapes"}}
    assert rd.per_image(rd.cells()[0]) is None


def test_lock_excludes_a_second_process(tmp_path):
    rd = RunDir(tmp_path, create=True)
    code = ("import sys; from colorbench.results.rundir import RunDir, RunDirLocked\n"
            "try:\n    RunDir(sys.argv[1], create=True).lock().__enter__()\nexcept RunDirLocked as e:\n    print(e); sys.exit(3)\n")
    with rd.lock():
        assert rd.is_locked()
        proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
        assert proc.returncode == 3 and "in use by another colorbench process (pid" in proc.stdout
        with pytest.raises(RunDirLocked):  # a second open file in this process is refused as well
            with rd.lock():
                pass
    assert not rd.is_locked()
    with rd.lock():  # released: can be taken again
        pass
