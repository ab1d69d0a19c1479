"""Executors: the worker count of ``--workers auto``, device placement (with mocked GPU counts: no GPU here), the
persistent process pool (workers reused, a killed one replaced, numbers equal to local) and the cell-named log."""

from __future__ import annotations

import os
import types

import pytest
import torch

from colorbench.engine import executors
from colorbench.engine.executors import cell_label, decide_workers, gpu_slots, make_executor, ray_gpus_per_cell
from colorbench.results.rundir import RunDir
from colorbench.engine.cell import KILL_HOOK_ENV, CellTask, execute_cell
from colorbench.engine.grid import run

from test_engine import QUIET, numbers, spec


def test_auto_workers_on_the_cpu_one_per_core_at_most_one_per_cell():
    d = decide_workers("auto", n_cells=6, device="cpu", cores=2)
    assert (d.executor, d.workers, d.devices) == ("process", 2, ("cpu", "cpu"))
    assert "2 usable core(s)" in d.reason and "pool of 2 process workers" in d.reason
    one = decide_workers("auto", n_cells=1, device="cpu", cores=16)
    assert (one.executor, one.workers) == ("local", 1) and "limited to the 1 cell(s)" in one.reason
    assert decide_workers("auto", n_cells=8, device="cpu", cores=1).executor == "local"
    # memory: 16 cores but 5 GiB available at 1 GiB (small) or 4 GiB (large) per worker
    assert decide_workers("auto", n_cells=40, device="cpu", cores=16, memory_gib=5.0).workers == 5
    big = decide_workers("auto", n_cells=40, device="cpu", cores=16, memory_gib=5.0, workload="large")
    assert big.workers == 1 and "available memory" in big.reason and big.executor == "local"
    # cores busy with other processes (the thread policy's estimate): a saturated machine computes in one process
    busy = decide_workers("auto", n_cells=8, device="cpu", cores=2, busy_elsewhere=1.8)
    assert (busy.executor, busy.workers) == ("local", 1) and "1.8 core(s) busy" in busy.reason
    assert decide_workers("auto", n_cells=8, device="cpu", cores=8, busy_elsewhere=2.2).workers == 6
    assert decide_workers("auto", n_cells=8, device="cuda", cores=2, n_gpus=2, busy_elsewhere=5).workers == 2
    # an explicit count wins; --executor process stays process even with one worker
    d = decide_workers(3, executor="process", n_cells=1, device="cpu", cores=2)
    assert (d.executor, d.workers, d.reason) == ("process", 3, "--workers 3")


def test_gpu_placement_one_worker_per_gpu_or_per_declared_share():
    d = decide_workers("auto", n_cells=20, device="cuda", cores=16, n_gpus=8)
    assert d.workers == 8 and d.devices == tuple(f"cuda:{k}" for k in range(8))
    half = decide_workers("auto", n_cells=20, device="cuda", cores=16, n_gpus=2, gpus_per_cell=0.5)
    assert half.devices == ("cuda:0", "cuda:0", "cuda:1", "cuda:1")
    few = decide_workers("auto", n_cells=3, device="cuda", cores=16, n_gpus=8)
    assert few.devices == ("cuda:0", "cuda:1", "cuda:2")
    # more workers than GPUs, asked for: they go round the GPUs
    assert decide_workers(5, n_cells=9, device="cuda", cores=16, n_gpus=2).devices == (
        "cuda:0", "cuda:1", "cuda:0", "cuda:1", "cuda:0")
    pinned = decide_workers("auto", n_cells=4, device="cuda:3", cores=2, n_gpus=8)
    assert pinned.devices == ("cuda:3", "cuda:3")
    with pytest.raises(ValueError, match="no CUDA device is visible"):
        gpu_slots(0, 1.0)
    with pytest.raises(ValueError, match="--nproc-per-cell"):
        gpu_slots(4, 2.0)


def test_make_executor_places_process_workers_on_mocked_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 4)
    monkeypatch.setattr(executors, "available_cores", lambda: 16)
    ex = make_executor(spec(executor="auto", workers="auto"), n_cells=10, device="cuda")
    assert ex.name == "process" and ex.describe()["devices"] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert ex.describe()["persistent"] and "4 GPU slot(s)" in ex.describe()["reason"]
    assert make_executor(spec(executor="local"), n_cells=10, device="cuda").name == "local"


def test_ray_reserves_one_gpu_per_cell_on_cuda_and_refuses_a_hidden_gpu():
    assert ray_gpus_per_cell("auto", None, cluster_gpus=8) == ("cuda", 1.0)
    assert ray_gpus_per_cell("auto", None, cluster_gpus=0) == ("cpu", 0.0)
    assert ray_gpus_per_cell("cuda", 0.25, cluster_gpus=1) == ("cuda", 0.25)
    assert ray_gpus_per_cell("cpu", None, cluster_gpus=8) == ("cpu", 0.0)
    with pytest.raises(ValueError, match="hides every GPU"):
        ray_gpus_per_cell("cuda", 0.0, cluster_gpus=8)
    with pytest.raises(ValueError, match="has none"):
        ray_gpus_per_cell("cuda", None, cluster_gpus=0)


def test_a_cell_placed_on_a_gpu_never_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    s = spec()
    task = CellTask(entry=types.SimpleNamespace(method="gray", dataset="shapes", seed=0, key="k"), spec=s,
                    device="cuda:1")
    with pytest.raises(ValueError, match="CUDA is not available here"):
        execute_cell(task)


def test_auto_records_what_it_chose_and_why_in_run_json(tmp_path):
    run(spec(executor="auto", workers="auto"), out=tmp_path / "run", **QUIET)  # one cell: this process
    ex = RunDir(tmp_path / "run").info().executor
    assert (ex["requested"], ex["name"], ex["workers"], ex["devices"]) == ("auto", "local", 1, ["cpu"])
    assert "usable core(s)" in ex["reason"] and ex["reason"].endswith(": this process"), ex["reason"]


def test_workers_option_accepts_auto_and_refuses_nonsense():
    assert spec(workers="auto").workers == "auto"
    for bad in (0, "many", True):
        with pytest.raises(ValueError, match="--workers must be >= 1 or auto"):
            spec(workers=bad)


@pytest.mark.slow
def test_persistent_pool_reuses_workers_names_cells_and_matches_local(tmp_path, monkeypatch):
    grid = dict(methods=("gray", "unet-l1"), seeds=(0, 1))
    run(spec(**grid), out=tmp_path / "local", **QUIET)
    made = []
    real = executors.make_executor
    monkeypatch.setattr(executors, "make_executor", lambda *a, **k: made.append(real(*a, **k)) or made[-1])
    events: list[str] = []  # the report's imports start before the first worker, which waits for the fork server
    real_start, real_busy = executors.ProcessExecutor._start, executors.Executor._busy
    monkeypatch.setattr(executors.ProcessExecutor, "_start",
                        lambda self, *a: events.append("start") or real_start(self, *a))
    monkeypatch.setattr(executors.Executor, "_busy",
                        lambda self: events.append("busy" if self.while_busy else "idle") or real_busy(self))
    logs: list[str] = []
    # a worker killed (once) in unet-l1's first step: replaced, the cell retried
    monkeypatch.setenv(KILL_HOOK_ENV, f"unet-l1:1:1:{tmp_path / 'killed-once'}")
    run(spec(**grid, executor="process", workers=2, retries=1), out=tmp_path / "pool", log=logs.append)
    rd = RunDir(tmp_path / "pool")
    assert numbers(rd) == numbers(RunDir(tmp_path / "local"))  # bit-identical: == on floats
    (ex,) = made
    assert len(ex.worker_pids) == 3  # 4 cells (5 attempts) on 2 workers and the one that replaced the killed one
    assert rd.info().executor["persistent"] and rd.info().executor["workers"] == 2
    assert {r.device for r in rd.records()} == {"cpu"}
    # every line about a cell names it (the header, the worker's death, the result)
    cell_lines = [m for m in logs if m.startswith(" ")]
    assert cell_lines and all("[" in m and "/shapes/s" in m for m in cell_lines), cell_lines
    assert sum("done in" in m for m in logs) == 4
    # the longest cells start first (engine.costs): unet-l1 trains, gray only evaluates; grid order is gray first
    headers = [m.split()[1] for m in logs if m.startswith("[")]
    assert headers[:2] == ["unet-l1", "unet-l1"] and headers[-2:] == ["gray", "gray"], headers
    assert any(m.strip().startswith("[unet-l1/shapes/s") and "died (killed by signal SIGKILL" in m for m in logs)
    assert cell_label(rd.cells()[0]).endswith("/shapes/s0")
    assert events[:3] == ["busy", "start", "start"] and "busy" not in events[1:], events


def test_cli_engine_defaults_auto_and_the_environment_override(monkeypatch):
    import argparse

    from colorbench.commands import grid_cli

    def parse(*args):
        p = argparse.ArgumentParser()
        grid_cli.add_arguments(p)
        return p.parse_args(list(args))

    monkeypatch.delenv(grid_cli.EXECUTOR_ENV, raising=False)
    a = parse()
    assert (a.executor, a.workers, a.gpus_per_cell, a.nproc_per_cell) == ("auto", "auto", None, 1)
    assert parse("--workers", "3").workers == 3
    monkeypatch.setenv(grid_cli.EXECUTOR_ENV, "local")
    assert parse().executor == "local" and parse("--executor", "process").executor == "process"
    with pytest.raises(SystemExit):
        parse("--workers", "many")


def test_the_command_ends_its_fork_server_at_once_and_a_later_pool_starts_a_new_one():
    """At exit the fork server would tear down its own torch for about a second while holding the command's
    stdout (a pipe reader waits); ``stop_fork_server`` ends it at once, and a later pool still works."""
    from multiprocessing import forkserver

    from colorbench.engine.executors import start_fork_server, stop_fork_server, worker_context

    if worker_context().get_start_method() != "forkserver":
        pytest.skip("no fork server on this platform")
    start_fork_server()
    pid = forkserver._forkserver._forkserver_pid
    assert pid is not None
    stop_fork_server()
    assert forkserver._forkserver._forkserver_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone and reaped, not a zombie
    stop_fork_server()  # nothing to stop: no error
    start_fork_server()
    assert forkserver._forkserver._forkserver_pid not in (None, pid)
    ctx = worker_context()
    proc = ctx.Process(target=os.getpid)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0
