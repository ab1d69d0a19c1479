"""Issue #11 item 7: `colorbench check` must not pass when it checked nothing or only part of the results."""

import io

import pandas as pd

from colorbench.commands.check import run_check
from colorbench.commands.cli import build_parser

ROWS = [
    {"method": "gray", "status": "ok", "mse": 310.5, "psnr": 23.61, "ssim": 0.91},
    {"method": "unet-l1", "status": "ok", "mse": 250.25, "psnr": 24.5, "ssim": 0.93},
    {"method": "pix2pix", "status": "ok", "mse": 280.0, "psnr": 24.1, "ssim": 0.92},
]


def _csv(path, rows, columns=None):
    frame = pd.DataFrame(rows)
    (frame[columns] if columns else frame).to_csv(path, index=False)
    return str(path)


def _check(*argv):
    out = io.StringIO()
    return run_check(build_parser().parse_args(["check", *argv]), out=out), out.getvalue()


def test_a_complete_baseline_passes(tmp_path):
    code, text = _check(_csv(tmp_path / "r.csv", ROWS), "--against", _csv(tmp_path / "b.csv", ROWS))
    assert code == 0 and "OK: 9 checks match" in text


def test_a_baseline_with_only_method_and_status_fails(tmp_path):
    results = _csv(tmp_path / "r.csv", ROWS)
    baseline = _csv(tmp_path / "b.csv", ROWS, columns=["method", "status"])
    code, text = _check(results, "--against", baseline)
    assert code == 1  # was "OK: 0 checks match"
    assert "FAILED: nothing was compared: the baseline holds no metric value" in text


def test_a_half_written_baseline_fails(tmp_path):
    results = _csv(tmp_path / "r.csv", ROWS)
    baseline = _csv(tmp_path / "b.csv", ROWS[:1])  # a baseline cut after its first row
    code, text = _check(results, "--against", baseline)
    assert code == 1  # was "OK: 3 checks match"
    assert "the baseline has fewer rows or metrics than the results: 2 method(s) (unet-l1, pix2pix)" in text
    assert _check(results, "--against", baseline, "--allow-new")[0] == 0  # accepted when asked for

    fewer_metrics = _csv(tmp_path / "m.csv", ROWS, columns=["method", "status", "mse"])
    code, text = _check(results, "--against", fewer_metrics)
    assert code == 1 and "metric(s) psnr, ssim are not in it" in text
