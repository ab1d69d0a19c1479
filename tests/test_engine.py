"""The experiment engine: cell keys, resume after a kill, the lock, executors, retries, status, spec replay."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from colorbench.commands import cli
from colorbench.results.cell_keys import CellKeyMismatch
from colorbench.results.rundir import RunDir, RunDirLocked
from colorbench.engine.cell import KILL_HOOK_ENV, PAUSE_HOOK_ENV
from colorbench.engine.spec import RunSpec
from colorbench.engine.grid import run

TINY = (("n_test", 16), ("n_train", 32), ("seed", 0), ("size", 32))
QUIET = dict(log=lambda s: None)


def spec(**kw) -> RunSpec:
    base = dict(methods=("gray",), dataset="shapes", dataset_options=TINY, epochs=1, progress=False, n_samples=2,
                eval_batch_size=16, metrics=("mse", "ssim", "ab_histogram_kl"))
    base.update(kw)
    return RunSpec(**base)


def numbers(rd: RunDir) -> dict[tuple, dict]:
    """Every cell's metric values, per-image values and losses (timings left out), by cell."""
    out = {}
    for c in rd.cells():
        rec = rd.record(c)
        per_image = rd.per_image(c)
        out[(c.dataset, c.method, c.seed)] = {
            "status": rec.status,
            "metrics": {k: mv.value for k, mv in rec.metrics.items()},
            "losses": [{k: v for k, v in e.items() if k != "seconds"} for e in rec.losses],
            "per_image": None if per_image is None else per_image.to_dict("list"),
        }
    return out


def test_reports_import_no_torch():
    code = ("import sys, colorbench.reports, colorbench.results.rundir, colorbench.commands.status, colorbench.results.cell_keys\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('colorbench.engine')]\n"
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_grid_adds_cells_and_skips_finished_ones(tmp_path):
    out = tmp_path / "run"
    run(spec(), out=out, **QUIET)
    rd = RunDir(out)
    first = rd.cell_dir(rd.cells()[0]) / "record.json"
    mtime = first.stat().st_mtime_ns
    logs: list[str] = []
    run(spec(seeds=(0, 1)), out=out, log=logs.append)
    assert any(line.startswith("skipped (done): gray on shapes, seed 0") for line in logs)
    assert first.stat().st_mtime_ns == mtime  # the finished cell was not recomputed
    assert sorted((c.method, c.seed, c.status) for c in rd.cells()) == [("gray", 0, "ok"), ("gray", 1, "ok")]
    info = rd.info()
    assert info.seeds == [0, 1] and info.spec["seeds"] == [0, 1] and info.status == "complete"
    # a cell whose record vanished (a kill between the index update and the record) runs again
    first.unlink()
    logs.clear()
    run(spec(), out=out, log=logs.append)
    assert first.is_file() and not any("skipped" in line for line in logs)


def test_unreadable_record_or_checkpoint_means_the_cell_runs_again(tmp_path):
    out = tmp_path / "run"
    s = spec(methods=("unet-l1",), epochs=2)
    run(s, out=out, **QUIET)
    rd = RunDir(out)
    before = numbers(rd)
    (cell,) = rd.cells()
    (rd.cell_dir(cell) / "record.json").write_text("{ half a record")
    with pytest.raises(ValueError, match="is not a readable record"):
        rd.records()
    assert not (rd.checkpoint_dir(cell) / "last.pt").exists()  # removed once the cell finished
    rd.checkpoint_dir(cell).mkdir(parents=True, exist_ok=True)
    (rd.checkpoint_dir(cell) / "last.pt").write_bytes(b"not a checkpoint")
    logs: list[str] = []
    run(s, out=out, log=logs.append)
    assert any("is unreadable" in m and "starts again" in m for m in logs)
    assert numbers(rd) == before


def test_a_different_spec_is_an_error_naming_the_fields(tmp_path, capsys):
    out = tmp_path / "run"
    run(spec(), out=out, **QUIET)
    with pytest.raises(CellKeyMismatch, match=r"grey_convention: bt601 -> cie-l"):
        run(spec(grey_convention="cie-l"), out=out, **QUIET)
    with pytest.raises(CellKeyMismatch, match=r"dataset\.params\.size: 32 -> 16"):
        run(spec(dataset_options=(("n_test", 16), ("n_train", 32), ("seed", 0), ("size", 16))), out=out, **QUIET)
    rc = cli.main(["run", "--methods", "gray", "--dataset", "shapes", "--dataset-option", "n_test=16",
                   "--dataset-option", "n_train=32", "--image-size", "32", "--metrics", "mse,ssim,ab_histogram_kl",
                   "--out", str(out), "--no-progress", "--grey", "cie-l"])
    err = capsys.readouterr().err
    assert rc == 2 and "different spec" in err and "grey_convention" in err and "Traceback" not in err
    assert [c.key for c in RunDir(out).cells()] == [RunDir(out).cells()[0].key]  # nothing was added or replaced


def test_lock_refuses_a_second_run_and_status_reports(tmp_path, capsys):
    out = tmp_path / "run"
    run(spec(), out=out, **QUIET)
    rd = RunDir(out)
    with rd.lock():
        with pytest.raises(RunDirLocked, match="in use by another colorbench process"):
            run(spec(seeds=(1,)), out=out, **QUIET)
        assert cli.main(["run", "--methods", "gray", "--dataset", "shapes", "--out", str(out), "--no-progress"]) == 2
        assert "in use by another colorbench process" in capsys.readouterr().err
        cells = rd.cells()
        cells[0].status = "running"
        rd.update_cells(cells)
        assert cli.main(["status", str(out)]) == 0
        assert "1 running" in capsys.readouterr().out  # a process holds the lock: really running
    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 interrupted" in text and "no process is running" in text
    assert cli.main(["status", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["status"] == "interrupted"
    assert cli.main(["status", str(tmp_path / "nowhere")]) == 2
    assert "not a colorbench run directory" in capsys.readouterr().err


def test_ray_not_installed_is_a_clear_error(monkeypatch):
    from colorbench.engine.executors import make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(ValueError, match=r"needs Ray, which is not installed: pip install 'colorbench\[ray\]'"):
        make_executor(spec(executor="ray"))


def test_spec_replay_and_bad_engine_options(tmp_path, capsys):
    out = tmp_path / "run"
    run(spec(seeds=(3,)), out=out, **QUIET)
    assert cli.main(["run", "--spec", str(out / "run.json"), "--out", str(tmp_path / "again"), "--no-progress"]) == 0
    capsys.readouterr()
    assert numbers(RunDir(out)) == numbers(RunDir(tmp_path / "again"))
    for args, message in ((["--executor", "dask"], "unknown executor 'dask'"),
                          (["--executor", "process", "--workers", "0"], "--workers must be >= 1"),
                          (["--retries", "-1"], "--retries must be >= 0"),
                          (["--spec", str(tmp_path / "missing.json")], "no such file"),
                          (["--executor", "ray", "--ray-address", "127.0.0.1:1"], "does not answer"),
                          (["--executor", "ray", "--ray-address", "nonsense"], "is not HOST:PORT")):
        assert cli.main(["run", "--methods", "gray", "--out", str(tmp_path / "x"), "--no-progress", *args]) == 2
        assert message in capsys.readouterr().err


def test_partial_run_report_names_missing_cells(tmp_path):
    from colorbench.reports import write_report
    from colorbench.results.rundir import CellEntry

    out = tmp_path / "run"
    run(spec(), out=out, **QUIET)
    RunDir(out).update_cells([CellEntry(key="k", dataset="shapes", method="unet-l1", preset="quick", seed=0)])
    write_report(out)
    text = (out / "leaderboard.md").read_text()
    assert "Partial run: 1 requested cell(s) have no result yet" in text and "unet-l1 on shapes, seed 0 (pending)" in text


def _cli_run(out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "colorbench.commands.cli", "run", "--methods", "unet-l1", "--dataset", "shapes",
            "--dataset-option", "n_test=16", "--dataset-option", "n_train=96",  # 3 steps of 32 per epoch "--image-size", "32",
            "--epochs", "3", "--metrics", "mse,ssim", "--out", str(out), "--no-progress", "--eval-every", "1", *extra]
    e = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
    e.pop(KILL_HOOK_ENV, None) if not env or KILL_HOOK_ENV not in env else None
    return subprocess.run(args, env=e, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_kill_mid_epoch_then_rerun_gives_the_uninterrupted_numbers(tmp_path):
    whole = _cli_run(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr
    # killed (SIGKILL) in the middle of epoch 3, after the checkpoint of epoch 2; and in epoch 1, before any
    for kill_at, resumed in (("unet-l1:3:2", "after epoch 2/3"), ("unet-l1:1:2", None)):
        out = tmp_path / kill_at.replace(":", "_")
        killed = _cli_run(out, env={KILL_HOOK_ENV: kill_at})
        assert killed.returncode == -9, killed.stderr
        rd = RunDir(out)
        (cell,) = rd.cells()
        assert cell.status == "running" and not rd.records()
        assert (rd.checkpoint_dir(cell) / "last.pt").is_file() == (resumed is not None)
        again = _cli_run(out)
        assert again.returncode == 0, again.stderr
        assert (f"resuming unet-l1 (seed 0) {resumed}" in again.stdout) == (resumed is not None)
        assert numbers(rd) == numbers(RunDir(tmp_path / "whole"))  # bit-identical: == on floats
        assert rd.info().status == "complete"


@pytest.mark.slow
def test_kill_from_outside_mid_epoch_with_loader_workers_resumes_bit_identically(tmp_path):
    import signal
    import time

    whole = _cli_run(tmp_path / "whole")  # in-process gather, epoch-end checkpoints only
    assert whole.returncode == 0, whole.stderr
    out, marker = tmp_path / "killed", tmp_path / "paused"
    flags = ("--loader-workers", "2", "--checkpoint-every-steps", "1")
    args = [sys.executable, "-m", "colorbench.commands.cli", "run", "--methods", "unet-l1", "--dataset", "shapes",
            "--dataset-option", "n_test=16", "--dataset-option", "n_train=96", "--epochs", "3", "--metrics",
            "mse,ssim", "--out", str(out), "--no-progress", "--eval-every", "1", *flags]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", PAUSE_HOOK_ENV: f"unet-l1:2:3:{marker}"}
    env.pop(KILL_HOOK_ENV, None)
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marker.exists(), proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)  # from outside, with its loader workers running, after step 2 of epoch 2
    proc.communicate()
    assert proc.returncode == -9
    rd = RunDir(out)
    (cell,) = rd.cells()
    assert cell.status == "running" and not rd.records()
    again = _cli_run(out, *flags)
    assert again.returncode == 0, again.stderr
    assert "resuming unet-l1 (seed 0) after epoch 1/3, step 2 of epoch 2" in again.stdout
    assert numbers(rd) == numbers(RunDir(tmp_path / "whole"))  # bit-identical: == on floats
    assert rd.record(cell).config["data_loader"]["workers"] == 2


@pytest.mark.slow
def test_process_executor_retries_and_turns_a_killed_worker_into_a_failed_row(tmp_path, monkeypatch):
    run(spec(methods=("gray", "unet-l1")), out=tmp_path / "local", **QUIET)
    # killed once (a marker file says so), retried, then the same numbers as in this process
    monkeypatch.setenv(KILL_HOOK_ENV, f"unet-l1:1:1:{tmp_path / 'killed-once'}")
    logs: list[str] = []
    run(spec(methods=("gray", "unet-l1"), executor="process", workers=2, retries=1), out=tmp_path / "proc",
        log=logs.append)
    assert (tmp_path / "killed-once").is_file() and any("died (killed by signal SIGKILL" in m for m in logs)
    rd = RunDir(tmp_path / "proc")
    assert numbers(rd) == numbers(RunDir(tmp_path / "local"))
    assert {c.method: c.attempts for c in rd.cells()} == {"gray": 1, "unet-l1": 2}
    assert rd.info().threads["torch_threads_per_cell"] >= 1 and rd.info().executor["workers"] == 2
    # killed at every attempt: a failed row with the reason, and the grid completes
    monkeypatch.setenv(KILL_HOOK_ENV, "unet-l1:1:1")
    run(spec(methods=("gray", "unet-l1"), executor="process", workers=1, retries=1), out=tmp_path / "dead", **QUIET)
    recs = {r.method: r for r in RunDir(tmp_path / "dead").records()}
    assert recs["gray"].status == "ok"
    assert recs["unet-l1"].status == "failed" and "SIGKILL" in recs["unet-l1"].error and "2 attempt" in recs["unet-l1"].error
    assert "unet-l1" in (tmp_path / "dead" / "leaderboard.md").read_text()


@pytest.mark.slow
def test_ray_executor_on_a_local_instance(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    run(spec(methods=("gray",), seeds=(0, 1)), out=tmp_path / "local", **QUIET)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run(spec(methods=("gray",), seeds=(0, 1), executor="ray"), out=tmp_path / "ray", **QUIET)
        rd = RunDir(tmp_path / "ray")
        assert numbers(rd) == numbers(RunDir(tmp_path / "local"))  # records and arrays sent back to the driver
        assert rd.info().executor["name"] == "ray"
        monkeypatch.setenv(KILL_HOOK_ENV, "unet-l1:1:1")
        run(spec(methods=("unet-l1",), executor="ray", retries=0), out=tmp_path / "dead", **QUIET)
        (rec,) = RunDir(tmp_path / "dead").records()
        assert rec.status == "failed" and "WorkerDied" in rec.error and "1 attempt" in rec.error
    finally:
        ray.shutdown()
