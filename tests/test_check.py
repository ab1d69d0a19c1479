"""Tests of ``colorbench check`` (bench/check.py): run directories built from hand-made records (no training)."""

from __future__ import annotations

import copy
import io

import pytest

from colorbench.commands.check import RunResults, Tolerance, compare, load_results, run_check, values_close
from colorbench.commands.cli import build_parser, main
from colorbench.results.records import MetricValue, RunRecord

SSIM_PARAMS = {"variant": "gaussian", "sigma": 1.5, "compute_dtype": "float32"}


def _record(method: str, psnr: float = 24.0, ssim: float = 0.9, *, ssim_version: str = "2",
            ssim_params: dict | None = None, lpips: float | None = None, status: str = "ok") -> RunRecord:
    rec = RunRecord(method=method, preset="quick", dataset={"name": "photos"}, grey_convention="bt601", seed=0,
                    device="cpu", status=status, versions={"torch": "2.14.1", "numpy": "2.4.6"})
    rec.metrics = {
        "psnr": MetricValue(psnr, "psnr", "1", True, {"reduction": "per_image_mean"}),
        "ssim": MetricValue(ssim, "ssim", ssim_version, True, dict(ssim_params or SSIM_PARAMS)),
        "lpips": MetricValue(lpips, "lpips", "1", False, {}, missing_reason=None if lpips else "no weights here"),
    }
    return rec


def _run_dir(root, records, name):
    d = root / name
    for rec in records:
        rec.save(d / "records" / f"{rec.method}.json")
    return d


def _check(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    return run_check(build_parser().parse_args(["check", *argv]), out=out), out.getvalue()


@pytest.fixture
def runs(tmp_path):
    base = [_record("unet-l1"), _record("pix2pix", psnr=float("inf"), ssim=0.8)]
    return tmp_path, base, _run_dir(tmp_path, base, "baseline")


def test_identical_runs_pass(runs):
    root, base, base_dir = runs
    same = _run_dir(root, copy.deepcopy(base), "same")
    code, text = _check([str(same), "--against", str(base_dir)])
    assert code == 0, text
    assert "OK: 6 checks match" in text and "missing on both sides" in text  # lpips missing in both: fine
    assert main(["check", str(same), "--against", str(base_dir)]) == 0


def test_drift_fails_and_tolerances_decide(runs):
    root, base, base_dir = runs
    drifted = copy.deepcopy(base)
    drifted[0].metrics["psnr"].value = 24.001
    d = _run_dir(root, drifted, "drift")
    code, text = _check([str(d), "--against", str(base_dir)])
    assert code == 1 and "DRIFT" in text and "FAILED: 1 of 6" in text
    line = next(ln for ln in text.splitlines() if "DRIFT" in ln)
    assert line.split()[:2] == ["unet-l1", "psnr"] and "0.001" in line
    assert _check([str(d), "--against", str(base_dir), "--rtol", "1e-4"])[0] == 0
    assert _check([str(d), "--against", str(base_dir), "--metric-atol", "psnr=0.01"])[0] == 0
    assert _check([str(d), "--against", str(base_dir), "--metric-atol", "ssim=0.01"])[0] == 1  # other metric


def test_version_or_params_change_fails_even_with_equal_values(runs):
    root, base, base_dir = runs
    v = _run_dir(root, [_record("unet-l1", ssim_version="3"), base[1]], "version")
    code, text = _check([str(v), "--against", str(base_dir), "--rtol", "1"])
    assert code == 1 and "VERSION" in text and "version 2 -> 3" in text
    p = _run_dir(root, [_record("unet-l1", ssim_params={**SSIM_PARAMS, "compute_dtype": "float64"}), base[1]], "params")
    code, text = _check([str(p), "--against", str(base_dir)])
    assert code == 1 and "PARAMS" in text and "compute_dtype" in text


def test_missing_values_methods_and_status(runs):
    root, base, base_dir = runs
    now = [_record("unet-l1", lpips=0.2), _record("cyclegan")]  # pix2pix gone, cyclegan new, lpips now computed
    d = _run_dir(root, now, "changed")
    code, text = _check([str(d), "--against", str(base_dir)])
    assert code == 1
    assert "method absent from the results" in text and "missing in the baseline (no weights here)" in text
    assert "method not in the baseline" in text
    failed = _run_dir(root, [_record("unet-l1", status="failed"), base[1]], "failed")
    code, text = _check([str(failed), "--against", str(base_dir)])
    assert code == 1 and "status ok -> failed" in text


def test_results_csv_compares_values_only(runs):
    root, base, base_dir = runs
    from colorbench.reports import results_frame

    csv_path = root / "results.csv"
    frame = results_frame(base)
    frame.to_csv(csv_path, index=False)
    code, text = _check([str(csv_path), "--against", str(base_dir)])
    assert code == 0, text
    assert "not checked" in text
    frame.loc[0, "ssim"] = 0.5
    frame.to_csv(csv_path, index=False)
    assert _check([str(csv_path), "--against", str(base_dir)])[0] == 1
    values = load_results(csv_path).values  # keyed by (dataset, method, seed): results_frame has those columns
    assert values[("photos", "pix2pix", "0")]["psnr"].value == float("inf")


def test_bad_inputs_give_clear_errors(tmp_path, capsys):
    assert main(["check", str(tmp_path / "nope"), "--against", str(tmp_path)]) == 2
    assert "no such run directory" in capsys.readouterr().err
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    assert main(["check", str(tmp_path / "x.csv"), "--against", str(tmp_path / "x.csv")]) == 2
    assert "no 'method' column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["check", "a", "--against", "b", "--metric-rtol", "psnr"])


def test_values_close_rules():
    tol = Tolerance(rtol=1e-3, atol=0.0)
    assert values_close(float("inf"), float("inf"), tol) and not values_close(float("inf"), 1e300, tol)
    assert values_close(float("nan"), float("nan"), tol) and not values_close(1.0, float("nan"), tol)
    assert values_close(1.0009, 1.0, tol) and not values_close(1.0011, 1.0, tol)
    with pytest.raises(ValueError, match=">= 0"):
        Tolerance(rtol=-1)
    assert compare(RunResults("a", "csv"), RunResults("b", "csv")) == []
