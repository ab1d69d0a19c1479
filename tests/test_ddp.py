"""One cell on several processes (``--nproc-per-cell``, colorbench.engine.ddp), on this CPU machine with gloo:
two ranks reach the single-process parameters on the same global batches (up to summation order), one rank
through the distributed path is bit-identical to no distribution, and a rank's failure becomes a failed row."""

from __future__ import annotations

import os
import types

import pytest
import torch

from colorbench.datasets.base import ImageSet
from colorbench.engine.ddp import Distributed, launch
from colorbench.methods import METHODS
from colorbench.results.rundir import RunDir
from colorbench.engine.grid import run

from test_engine import QUIET, TINY, spec

#: Two ranks against one process, over 3 Adam steps of unet-l1 (quick, instance norm: per-image, so the split of
#: the batch does not change what each image computes): the gradients each optimizer steps with differ only in
#: float32 summation order. Compared relative to the largest gradient of the step: measured 1.4e-6, 1.8e-6 and
#: 2.5e-6 on steps 1-3 (2026-12-07, this 2-core machine; losses 4e-8 to 6e-8 relative); 1e-5 leaves room for
#: other CPUs' kernels. (The parameters themselves are not compared: Adam's first
#: step moves every parameter by lr * sign(gradient), so a gradient that is zero up to rounding, e.g. a conv bias
#: before instance norm, moves by +-2e-4 on a coin flip of its rounding noise.)
TOLERANCE = 1e-5


def _batches() -> list:
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(23, 3, 32, 32, generator=g) * 255).to(torch.uint8)
    images = ImageSet(rgb, torch.zeros(23, dtype=torch.long), [str(i) for i in range(23)], ["random"])
    # global batches of 8, 8 and 7 (the last one splits 4 + 3: unequal shares, weighted)
    return [images.make_batch(torch.arange(a, min(a + 8, 23)), grey_convention="bt601") for a in (0, 8, 16)]


def _train(task, data, log, dist=None):
    """A cell function for :func:`launch`: 3 steps of unet-l1 on ``task.batches``; rank 0 returns the weights."""
    torch.set_num_threads(1)  # as the thread policy sets it for small networks, in this process and in the ranks
    torch.manual_seed(0)
    method = METHODS.get("unet-l1").from_preset("quick", seed=0, norm=task.norm)
    if dist is not None:
        dist.attach(method)
    grads = []  # the gradients each step is taken with (after the ranks' average: hooks run in order)
    for optimizer in method.optimizers().values():
        optimizer.register_step_pre_hook(lambda opt, a, k: grads.append(
            [p.grad.detach().clone() for g in opt.param_groups for p in g["params"] if p.grad is not None]))
    losses = []
    for batch in task.batches:
        step = method.train_step(batch if dist is None else dist.shard(batch))
        losses.append(step if dist is None else dist.average_losses(step))
    if dist is not None and dist.rank != 0:
        return None
    return {k: v.detach().clone() for k, v in method.networks()["G"].state_dict().items()}, losses, grads


def _task(norm: str):
    return types.SimpleNamespace(batches=_batches(), norm=norm, threads=None, device="cpu",
                                 spec=types.SimpleNamespace(device="cpu"))


def test_shard_takes_rank_rows_and_refuses_a_batch_smaller_than_the_world():
    (b, *_) = _batches()
    d = Distributed(rank=1, world=3)
    part = d.shard(b)
    assert part.ids == [b.ids[i] for i in (1, 4, 7)] and torch.equal(part.rgb, b.rgb[[1, 4, 7]])
    assert d.weight == 3 / 8
    with pytest.raises(ValueError, match="cannot be split over --nproc-per-cell 9"):
        Distributed(rank=0, world=9).shard(b)


@pytest.mark.slow
def test_two_gloo_ranks_equal_one_process_and_one_rank_is_bit_identical():
    torch.set_num_threads(1)
    alone, alone_losses, alone_grads = _train(_task("instance"), None, print)
    two, two_losses, two_grads = launch(_train, _task("instance"), 2, print)
    assert len(two_grads) == len(alone_grads) == 3
    for step, (a, b) in enumerate(zip(alone_grads, two_grads)):
        scale = max(g.abs().max().item() for g in a)
        diff = max((x - y).abs().max().item() for x, y in zip(a, b)) / scale
        assert diff < TOLERANCE, f"step {step + 1}: max |two ranks - one process| / max |gradient| = {diff}"
    for a, b in zip(alone_losses, two_losses):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-6 * abs(a[k]) for k in a)
    one, one_losses, one_grads = launch(_train, _task("instance"), 1, print)
    assert all(torch.equal(one[k], alone[k]) for k in alone) and one_losses == alone_losses  # bit-identical
    assert all(torch.equal(x, y) for a, b in zip(one_grads, alone_grads) for x, y in zip(a, b))


@pytest.mark.slow
def test_nproc_per_cell_in_a_grid_records_it_and_a_failing_rank_is_a_failed_row(tmp_path):
    out = tmp_path / "ddp"
    run(spec(methods=("unet-l1",), nproc_per_cell=2), out=out, **QUIET)
    rd = RunDir(out)
    (rec,) = rd.records()
    assert rec.status == "ok" and rec.config["distributed"]["processes"] == 2
    assert rec.config["distributed"]["backend"] == "gloo" and rd.info().executor["nproc_per_cell"] == 2
    assert rd.cells()[0].fields["nproc_per_cell"] == 2  # its own key: never mixed with one-process cells
    # 33 training images in batches of 32: the last batch of 1 image cannot be split over 2 processes
    bad = spec(methods=("unet-l1",), nproc_per_cell=2,
               dataset_options=(("n_test", 16), ("n_train", 33), ("seed", 0), ("size", 32)))
    run(bad, out=tmp_path / "bad", **QUIET)
    (rec,) = RunDir(tmp_path / "bad").records()
    assert rec.status == "failed" and "DistributedError" in rec.error and "cannot be split" in rec.error


def test_nproc_per_cell_is_refused_with_the_process_and_ray_executors():
    from colorbench.engine.executors import make_executor

    for name in ("process", "ray"):
        with pytest.raises(ValueError, match="--nproc-per-cell 2 runs with --executor local or auto"):
            make_executor(spec(executor=name, nproc_per_cell=2))
    with pytest.raises(ValueError, match="--nproc-per-cell must be an integer >= 1"):
        spec(nproc_per_cell=0)


@pytest.mark.slow
def test_a_rank_killed_on_every_attempt_ends_as_one_failed_row_and_the_grid_finishes(tmp_path, monkeypatch):
    from colorbench.engine.cell import KILL_HOOK_ENV, KILL_RANK_ENV
    from colorbench.engine.ddp import TIMEOUT_ENV

    # rank 1 of unet-l1's cell kills itself (SIGKILL) before step 2 of epoch 2, in every attempt (no marker file):
    # after step 1, whose gradient average needs rank 0 there, so rank 0 has written its checkpoint of epoch 1
    # (the pool stops the other ranks 0.5 s after one dies: killed before step 1, rank 1 could take rank 0 down
    # mid-write, and that retry would start over). 64 training images: 2 steps of 32 per epoch.
    monkeypatch.setenv(KILL_HOOK_ENV, "unet-l1:2:2")
    monkeypatch.setenv(KILL_RANK_ENV, "1")
    monkeypatch.setenv(TIMEOUT_ENV, "20")  # a survivor never waits long in a collective (the launcher stops it first)
    logs: list[str] = []
    options = tuple((k, 64 if k == "n_train" else v) for k, v in TINY)
    run(spec(methods=("unet-l1", "gray"), nproc_per_cell=2, epochs=2, retries=2, metrics=("mse",),
             dataset_options=options), out=tmp_path / "r", log=logs.append)
    rd = RunDir(tmp_path / "r")
    by_method = {c.method: c for c in rd.cells()}
    assert set(by_method) == {"unet-l1", "gray"}
    killed, other = rd.record(by_method["unet-l1"]), rd.record(by_method["gray"])
    assert killed.status == "failed" and by_method["unet-l1"].attempts == 3
    assert killed.error == "DistributedError: rank 1 died (signal 9), in each of 3 attempt(s) (--retries 2)"
    assert other.status == "ok" and other.metrics["mse"].value is not None  # the rest of the grid finished
    assert rd.info().status == "complete" and len(rd.records()) == 2  # one row per cell, the failed one included
    assert [m for m in logs if "retrying" in m] == [
        "    [unet-l1/shapes/s0] rank 1 died (signal 9); retrying (1/2)",
        "    [unet-l1/shapes/s0] rank 1 died (signal 9); retrying (2/2)"]
    # each retry resumed from the checkpoint of epoch 1 instead of training it again
    assert sum("resuming unet-l1 (seed 0) after epoch 1/2" in m for m in logs) == 2, logs


def test_the_collective_timeout_is_read_when_a_rank_joins_and_must_be_positive(monkeypatch):
    from colorbench.engine.ddp import TIMEOUT_ENV, collective_timeout_s

    monkeypatch.delenv(TIMEOUT_ENV, raising=False)
    assert collective_timeout_s() == 600.0
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    assert collective_timeout_s() == 2.5
    for bad in ("0", "-3", "ten"):
        monkeypatch.setenv(TIMEOUT_ENV, bad)
        with pytest.raises(ValueError, match=f"COLORBENCH_DDP_TIMEOUT_S='{bad}' must be a positive number"):
            collective_timeout_s()


class _Store:
    """The ``check``/``set`` of a ``torch.distributed.Store``, in a dict."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def set(self, key: str, value: str) -> None:
        self.keys.add(key)

    def check(self, keys: list[str]) -> bool:
        return all(k in self.keys for k in keys)


def test_await_ranks_names_the_ranks_that_never_reported_a_cell(monkeypatch):
    from colorbench.engine.ddp import _done_key, await_ranks

    monkeypatch.delenv("TORCHELASTIC_RESTART_COUNT", raising=False)
    store = _Store()
    store.set(_done_key(3, 1), "1")
    store.set(_done_key(3, 3), "1")
    assert await_ranks(store, 3, world=4, timeout_s=0.2, poll_s=0.01) == [2]
    store.set(_done_key(3, 2), "1")
    assert await_ranks(store, 3, world=4, timeout_s=5) == []
    assert await_ranks(store, 4, world=2, timeout_s=0.05, poll_s=0.01) == [1]  # another cell: its own keys
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")  # a restarted group does not see the first group's reports
    assert await_ranks(store, 3, world=4, timeout_s=0.05, poll_s=0.01) == [1, 2, 3]


def test_torchrun_executor_leaves_a_cell_whose_rank_is_gone_unfinished_and_records_its_own_errors(monkeypatch):
    from colorbench.engine import ddp
    from colorbench.engine.executors import TorchrunExecutor

    tasks = [types.SimpleNamespace(entry=types.SimpleNamespace(method=m, dataset="shapes", seed=0))
             for m in ("gray", "unet-l1")]
    calls: list[str] = []
    monkeypatch.setattr(ddp, "end_cells", lambda: calls.append("end"))

    def lead(fn, task, data, log):
        if task.entry.method == "gray":
            raise ValueError("the cell's own error")
        raise ddp.GroupBroken("rank(s) 1 of the torchrun launch stopped answering during this cell") from OSError("x")

    monkeypatch.setattr(ddp, "lead_cell", lead)
    monkeypatch.setattr("colorbench.engine.cell.failed_result", lambda task, error: ("failed", error))
    finished: list = []
    ex = TorchrunExecutor(spec(nproc_per_cell=2))
    with pytest.raises(ddp.GroupBroken, match=r"^cell unet-l1/shapes/s0: rank\(s\) 1 of the torchrun launch") as err:
        ex.run(tasks, {"shapes": None}, lambda t: calls.append(f"start {t.entry.method}"),
               lambda t, r: finished.append((t.entry.method, r)), print)
    assert isinstance(err.value.__cause__, OSError)
    # the own error is a failed row; the broken group's cell gets no row, and nothing is broadcast to the lost rank
    assert finished == [("gray", ("failed", "DistributedError: ValueError: the cell's own error"))]
    assert calls == ["start gray", "start unet-l1"]


def _torchrun(out, *torchrun_args: str, env: dict | None = None, epochs: int = 2):
    import os
    import subprocess
    import sys

    from colorbench.engine.ddp import _free_port

    args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(_free_port()),
            *torchrun_args, "-m", "colorbench.commands.cli", "run", "--methods", "unet-l1", "--dataset", "shapes",
            "--dataset-option", "n_test=16", "--dataset-option", "n_train=64", "--dataset-option", "size=32",
            "--epochs", str(epochs), "--metrics", "mse", "--out", str(out), "--no-progress"]
    return subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_a_rank_killed_under_torchrun_stops_the_launch_and_max_restarts_resumes_the_cell_bit_identically(tmp_path):
    import numpy as np

    from colorbench.engine.cell import KILL_HOOK_ENV, KILL_RANK_ENV
    from colorbench.engine.ddp import TIMEOUT_ENV

    from test_engine import numbers

    whole = _torchrun(tmp_path / "whole")
    assert whole.returncode == 0, whole.stderr[-3000:]
    # rank 1 is SIGKILLed before step 2 of epoch 2, once (the marker file): after step 1, whose gradient average
    # needs rank 0 there, so rank 0 has written its checkpoint of epoch 1; torchrun restarts both ranks
    kill_once = {KILL_HOOK_ENV: f"unet-l1:2:2:{tmp_path / 'killed-once'}", KILL_RANK_ENV: "1", TIMEOUT_ENV: "60"}
    restarted = _torchrun(tmp_path / "restarted", "--max-restarts", "1", env=kill_once)
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert (tmp_path / "killed-once").is_file()
    assert "resuming unet-l1 (seed 0) after epoch 1/2" in restarted.stdout, restarted.stdout[-3000:]
    a, b = RunDir(tmp_path / "whole"), RunDir(tmp_path / "restarted")
    assert numbers(b) == numbers(a)  # losses, metrics and per-image values: ==
    (ca,), (cb,) = a.cells(), b.cells()
    assert a.record(ca).status == "ok" and cb.key == ca.key
    with np.load(a.path / "arrays" / "samples_shapes.npz") as za, np.load(b.path / "arrays" / "samples_shapes.npz") as zb:
        assert za.files == zb.files and all(np.array_equal(za[k], zb[k]) for k in za.files)  # the colorized samples
    # no restart allowed, rank 1 killed again: the launch fails naming rank 1 and its signal (torchrun's summary),
    # rank 0 says what happened, and the cell is left unfinished with its checkpoint (no failed row), to resume
    kill_always = {KILL_HOOK_ENV: "unet-l1:2:2", KILL_RANK_ENV: "1", TIMEOUT_ENV: "60"}
    stopped = _torchrun(tmp_path / "stopped", env=kill_always)
    assert stopped.returncode != 0
    assert "colorbench: rank 0: stopped by SIGTERM: torchrun stops every rank when one of them fails" in stopped.stderr
    assert "exit status 143" in stopped.stderr
    summary = stopped.stderr[stopped.stderr.index("Root Cause"):]
    assert "rank      : 1 (local_rank: 1)" in summary and "Signal 9 (SIGKILL)" in summary, summary
    rd = RunDir(tmp_path / "stopped")
    (cell,) = rd.cells()
    assert cell.status == "running" and rd.records() == []
    assert (rd.checkpoint_dir(cell) / "last.pt").is_file()


@pytest.mark.slow
def test_ranks_started_without_torchrun_record_a_shared_error_and_stop_when_a_rank_is_gone(tmp_path):
    """Two ranks started as any launcher would (RANK, WORLD_SIZE, ... set; no agent to stop rank 0): unet-l1 fails
    on both ranks (its last batch of 1 image cannot be split), which every rank reports, so it is a failed row;
    then rank 1 is SIGKILLed in pix2pix, which never reports, so rank 0 stops with the cell left to resume."""
    import os
    import subprocess
    import sys

    from colorbench.engine.cell import KILL_HOOK_ENV, KILL_RANK_ENV
    from colorbench.engine.ddp import TIMEOUT_ENV, _free_port

    out = tmp_path / "r"
    port = str(_free_port())
    args = [sys.executable, "-m", "colorbench.commands.cli", "run", "--methods", "unet-l1,pix2pix", "--dataset",
            "shapes", "--dataset-option", "n_test=16", "--dataset-option", "n_train=33", "--dataset-option", "size=32",
            "--epochs", "1", "--metrics", "mse", "--out", str(out), "--no-progress"]
    base = {**os.environ, "OMP_NUM_THREADS": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port,
            KILL_HOOK_ENV: "pix2pix:1:1", KILL_RANK_ENV: "1", TIMEOUT_ENV: "3"}
    logs = [(tmp_path / f"rank{r}.out").open("w") for r in (0, 1)]  # files: a full pipe would block a rank
    ranks = [subprocess.Popen(args, env={**base, "RANK": str(r), "LOCAL_RANK": str(r)}, stdout=logs[r],
                              stderr=subprocess.STDOUT) for r in (0, 1)]
    for rank, log in zip(ranks, logs):
        rank.wait(timeout=300)
        log.close()
    err0 = (tmp_path / "rank0.out").read_text()
    assert ranks[1].returncode == -9
    assert ranks[0].returncode == 143, err0[-3000:]
    assert ("colorbench: rank 0: cell pix2pix/shapes/s0: rank(s) 1 of the torchrun launch stopped answering during "
            "this cell (") in err0, err0[-3000:]
    rd = RunDir(out)
    by_method = {c.method: c for c in rd.cells()}
    assert by_method["unet-l1"].status == "failed" and by_method["pix2pix"].status == "running"
    (rec,) = rd.records()
    assert rec.method == "unet-l1" and "cannot be split over --nproc-per-cell 2" in rec.error


_EVAL_FAILS = '''
import dataclasses

from colorbench.methods import register_method
from colorbench.methods.unet_l1 import UNetL1


@register_method("unet-l1-evalfails")
class EvalFails(UNetL1):
    """unet-l1 whose colorization raises: only rank 0 colorizes (it evaluates), so only rank 0 fails."""

    card = dataclasses.replace(UNetL1.card, name="unet-l1-evalfails")

    def colorize(self, gray):
        raise RuntimeError("colorize fails on purpose")
'''


@pytest.mark.slow
def test_a_cell_failing_on_rank_0_alone_is_a_failed_row_and_the_other_ranks_go_on_to_the_next_cell(tmp_path):
    """The other ranks train the cell and report its end; rank 0's evaluation then fails: a failed row with rank
    0's error, and the launch goes on with the next cell on both ranks (its numbers those of a launch without the
    failing cell)."""
    import os
    import subprocess
    import sys

    from colorbench.engine.ddp import _free_port

    plugin = tmp_path / "cb_evalfails.py"
    plugin.write_text(_EVAL_FAILS)

    def launch(out, methods):
        args = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                str(_free_port()), "-m", "colorbench.commands.cli", "run", "--plugin", str(plugin), "--methods",
                methods, "--dataset", "shapes", "--dataset-option", "n_test=16", "--dataset-option", "n_train=64",
                "--dataset-option", "size=32", "--epochs", "1", "--metrics", "mse", "--out", str(out), "--no-progress"]
        return subprocess.run(args, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                              timeout=600)

    both = launch(tmp_path / "both", "unet-l1-evalfails,unet-l1")
    # the command's exit status says a method failed (1, through torchrun); the other rank ended normally
    assert both.returncode == 1, both.stderr[-3000:]
    assert "colorbench: 1 method(s) failed: unet-l1-evalfails" in both.stderr
    assert "local_rank: 1" not in both.stderr, both.stderr[-3000:]
    rd = RunDir(tmp_path / "both")
    recs = {r.method: r for r in rd.records()}
    assert recs["unet-l1-evalfails"].status == "failed"
    assert "colorize fails on purpose" in recs["unet-l1-evalfails"].error
    assert recs["unet-l1"].status == "ok" and rd.info().status == "complete"
    assert recs["unet-l1"].config["distributed"]["processes"] == 2
    alone = launch(tmp_path / "alone", "unet-l1")
    assert alone.returncode == 0, alone.stderr[-3000:]
    (ok,) = RunDir(tmp_path / "alone").records()
    losses = lambda rec: [{k: v for k, v in e.items() if k != "seconds"} for e in rec.losses]  # noqa: E731
    assert ok.metrics["mse"].value == recs["unet-l1"].metrics["mse"].value and losses(ok) == losses(recs["unet-l1"])
