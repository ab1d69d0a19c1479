"""`colorbench check` on a grid run (issue #12): results.csv has dataset, method and seed columns, and rows are
matched by all three, so two seeds of one method no longer collide (one silently replacing the other)."""

import io

import pandas as pd

from colorbench.commands.check import run_check
from colorbench.commands.cli import build_parser, main

ROWS = [  # two seeds of two methods on one dataset, as results_frame writes them (made-up values)
    {"method": "gray", "status": "ok", "psnr": 23.61, "ssim": 0.91, "dataset": "photos", "seed": 0},
    {"method": "unet-l1", "status": "ok", "psnr": 24.5, "ssim": 0.93, "dataset": "photos", "seed": 0},
    {"method": "gray", "status": "ok", "psnr": 23.61, "ssim": 0.91, "dataset": "photos", "seed": 1},
    {"method": "unet-l1", "status": "ok", "psnr": 24.8, "ssim": 0.94, "dataset": "photos", "seed": 1},
]


def _csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return str(path)


def _check(*argv):
    out = io.StringIO()
    return run_check(build_parser().parse_args(["check", *argv]), out=out), out.getvalue()


def test_identical_two_seed_runs_pass(tmp_path):
    code, text = _check(_csv(tmp_path / "r.csv", ROWS), "--against", _csv(tmp_path / "b.csv", ROWS))
    assert code == 0, text
    assert "OK: 8 checks match" in text  # 4 rows x 2 metrics: every seed compared, none collapsed


def test_drift_in_one_seed_fails_naming_that_seed(tmp_path):
    drifted = [dict(r) for r in ROWS]
    drifted[3]["psnr"] = 25.0  # unet-l1, seed 1 only; seed 0 is unchanged
    code, text = _check(_csv(tmp_path / "r.csv", drifted), "--against", _csv(tmp_path / "b.csv", ROWS))
    assert code == 1, text
    assert "FAILED: 1 of 8 checks (drift) in unet-l1 [photos, seed 1]" in text
    [line] = [ln for ln in text.splitlines() if "DRIFT" in ln]
    assert line.split()[:4] == ["photos", "1", "unet-l1", "psnr"]
    seed0 = [ln for ln in text.splitlines() if ln.split()[:3] == ["photos", "0", "unet-l1"]]
    assert len(seed0) == 2 and all(ln.split()[-1] == "ok" for ln in seed0)
    # matched by method only (the bug), seed 1's row replaced seed 0's on both sides, so a drift in seed 0 passed
    drifted = [dict(r) for r in ROWS]
    drifted[1]["ssim"] = 0.5
    code, text = _check(_csv(tmp_path / "r0.csv", drifted), "--against", str(tmp_path / "b.csv"))
    assert code == 1 and "FAILED: 1 of 8 checks (drift) in unet-l1 [photos, seed 0]" in text


def test_a_row_missing_on_either_side_is_named_by_its_full_identity(tmp_path):
    results = _csv(tmp_path / "r.csv", ROWS[:3])  # unet-l1 seed 1 not in the results
    code, text = _check(results, "--against", _csv(tmp_path / "b.csv", ROWS))
    assert code == 1
    assert "method absent from the results (dataset 'photos', method 'unet-l1', seed 1)" in text
    code, text = _check(_csv(tmp_path / "r2.csv", ROWS), "--against", _csv(tmp_path / "b2.csv", ROWS[:3]))
    assert code == 1 and "method not in the baseline (dataset 'photos', method 'unet-l1', seed 1)" in text
    assert "1 method(s) (unet-l1 [photos, seed 1])" in text  # baseline lacks a row: fails unless --allow-new
    assert _check(_csv(tmp_path / "r2.csv", ROWS), "--against", str(tmp_path / "b2.csv"), "--allow-new")[0] == 0


def test_older_results_without_dataset_and_seed_match_by_method(tmp_path, capsys):
    old = [{k: v for k, v in r.items() if k not in ("dataset", "seed")} for r in ROWS[:2]]
    code, text = _check(_csv(tmp_path / "r.csv", old), "--against", _csv(tmp_path / "b.csv", old))
    assert code == 0 and "OK: 4 checks match" in text
    # an older baseline against a one-seed grid result: matched by method, as before
    assert _check(_csv(tmp_path / "g.csv", ROWS[:2]), "--against", str(tmp_path / "b.csv"))[0] == 0
    # but a two-seed result cannot be matched by method: a clear error (exit 2), not one row replacing the other
    assert main(["check", _csv(tmp_path / "g2.csv", ROWS), "--against", str(tmp_path / "b.csv")]) == 2
    assert "several rows of method 'gray'" in capsys.readouterr().err
    # two rows of one method in a table without dataset/seed columns collide too
    twice = [{k: v for k, v in r.items() if k not in ("dataset", "seed")} for r in ROWS]
    assert main(["check", _csv(tmp_path / "t.csv", twice), "--against", _csv(tmp_path / "t2.csv", twice)]) == 2
    assert "two rows of method 'gray'" in capsys.readouterr().err
