"""Engine speed, side by side in one run: the process executor against the local one, and a training step with
and without a competing busy process (with all cores' threads, and with the engine's share of them).

    python -m pytest benchmarks/test_engine_speed.py --benchmark-only --benchmark-enable --benchmark-json FILE
    python benchmarks/test_engine_speed.py FILE      # the ratios

* ``grid``: one small grid (``gray, unet-l1, pix2pix`` x seeds 0, 1 on ``shapes`` 32x32, 2 epochs: 6 cells) run
  with ``--executor local`` (this process) and ``--executor process --workers 2``
  (the persistent pool of two workers, ``cores // 2`` threads each). Timed once each (a grid is long); wall seconds.
* ``cli-unet-pix2pix``, ``cli-gray-unet``: the issue-23 targets, startup included: ``colorbench run --methods
  unet-l1,pix2pix --seeds 0,1 --epochs 2`` and ``--methods gray,unet-l1 --seeds 0,1 --epochs 1`` (the default
  dataset and preset) as a fresh command, with ``--executor local`` and with ``--executor process --workers 2``
  (the persistent pool); wall seconds of the whole command. The numbers of the two are compared too.
  ``COLORBENCH_BENCH_ROUNDS=N`` runs N rounds, alternating local and process; the ratio printer gives each
  round's ratio and the median (the machine's speed drifts by 10-30 % between minutes here).
* ``step``: one quick-preset ``cgan-dcgan`` training step (batch 32 of 32x32, the issue's measurement) with
  ``threads=all`` (``available_cores()``, torch's default) or ``threads=share`` (``cores // 2``: what the
  process executor gives each of two workers), alone or next to one busy process (a Python spin loop).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import sys
import tempfile
import time
from collections import defaultdict

import pytest
import torch

from colorbench.core.grey import Grey
from colorbench.datasets.base import ImageSet
from colorbench.core.device import available_cores
from colorbench.methods import METHODS


def _spin() -> None:  # a competing busy process
    while True:
        pass


@pytest.fixture
def busy_process():
    proc = mp.get_context("spawn").Process(target=_spin, daemon=True)
    proc.start()
    time.sleep(1.0)  # let it start spinning
    yield proc
    proc.kill()
    proc.join()


def _batch(n: int = 32, size: int = 32):
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(n, 3, size, size, generator=g) * 255).to(torch.uint8)
    return ImageSet(rgb, torch.zeros(n, dtype=torch.long), [str(i) for i in range(n)], ["random"]).make_batch(torch.arange(n), grey_convention=Grey.BT601)


@pytest.mark.parametrize("threads", ["all", "share"])
@pytest.mark.parametrize("competitor", ["none", "busy"])
def test_train_step_with_and_without_a_busy_process(benchmark, request, competitor, threads):
    if competitor == "busy":
        request.getfixturevalue("busy_process")
    before = torch.get_num_threads()
    n = available_cores() if threads == "all" else max(1, available_cores() // 2)
    torch.set_num_threads(n)
    try:
        method = METHODS.get("cgan-dcgan").from_preset("quick", seed=0)
        batch = _batch()
        benchmark.group = "step"
        benchmark.pedantic(lambda: method.train_step(batch), rounds=8, iterations=1, warmup_rounds=2)
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info.update({"competitor": competitor, "threads": n, "cores": available_cores()})


@pytest.mark.parametrize("executor", ["local", "process"])
def test_grid_process_against_local(benchmark, executor):
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run_cells

    spec = RunSpec(methods=("gray", "unet-l1", "pix2pix"), dataset="shapes", seeds=(0, 1), epochs=2,
                   dataset_options=(("n_test", 32), ("n_train", 64), ("size", 32)), metrics=("mse", "ssim"),
                   progress=False, n_samples=2, executor=executor, workers=2 if executor == "process" else 1)

    def once():
        with tempfile.TemporaryDirectory() as d:
            run_cells(spec, out=d, log=lambda s: None)

    benchmark.group = "grid"
    benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update({"executor": executor, "cells": 6, "cores": available_cores()})


CLI_GRIDS = {"cli-unet-pix2pix": ["--methods", "unet-l1,pix2pix", "--seeds", "0,1", "--epochs", "2"],
             "cli-gray-unet": ["--methods", "gray,unet-l1", "--seeds", "0,1", "--epochs", "1"]}


#: Rounds of each CLI grid (``COLORBENCH_BENCH_ROUNDS``, default 1); the rounds alternate local and process, so a
#: drift of the machine's speed (another tenant, a thermal or frequency change) reaches both alike.
CLI_ROUNDS = int(os.environ.get("COLORBENCH_BENCH_ROUNDS", "1"))


@pytest.mark.parametrize("executor", ["local", "process"])
@pytest.mark.parametrize("round_", range(CLI_ROUNDS))
@pytest.mark.parametrize("grid", list(CLI_GRIDS))
def test_cli_grid_startup_included(benchmark, grid, round_, executor, tmp_path):
    import subprocess

    from colorbench.results.rundir import RunDir

    extra = ["--executor", "local"] if executor == "local" else ["--executor", "process", "--workers", "2"]
    outs = []

    def once():
        out = tmp_path / f"run{len(outs)}"
        outs.append(out)
        subprocess.run([sys.executable, "-m", "colorbench.commands.cli", "run", *CLI_GRIDS[grid], "--out", str(out),
                        "--no-progress", *extra], check=True, capture_output=True)

    benchmark.group = grid
    benchmark.pedantic(once, rounds=1, iterations=1, warmup_rounds=0)
    rd = RunDir(outs[-1])
    values = {(r.method, r.seed): {k: mv.value for k, mv in r.metrics.items()} for r in rd.records()}
    benchmark.extra_info.update({"executor": executor, "cores": available_cores(), "load_avg": os.getloadavg(),
                                 "numbers": json.dumps(sorted((f"{m} s{s}", v) for (m, s), v in values.items()))})


def main(path: str) -> int:
    """Print the ratios of a saved run: each configuration's time over the first one of its group (the median
    over rounds, and each round's own ratio, for the CLI grids run in several rounds)."""
    import statistics

    runs = json.load(open(path))["benchmarks"]
    groups: dict[str, dict[str, dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    for b in runs:
        params = b.get("params") or {}
        name = params.get("executor") or re.search(r"\[(.*)\]", b["name"]).group(1)
        groups[b["group"]][name][int(params.get("round_", 0))] = b["stats"]["mean"]
    numbers: dict[str, set[str]] = defaultdict(set)
    for b in runs:
        if "numbers" in b.get("extra_info", {}):
            numbers[b["group"]].add(b["extra_info"]["numbers"])
    for group, seen in numbers.items():
        print(f"{group}: numbers of every executor and round {'identical' if len(seen) == 1 else 'DIFFER'}")
    for group, rows in groups.items():
        (base_name, base), *_ = rows.items()
        for name, times in rows.items():
            ratios = [base[r] / t for r, t in times.items() if r in base]
            print(f"{group:5} {name:14} median {statistics.median(times.values()):8.3f} s over {len(times)} round(s)"
                  f"  speed-up over {base_name}: median {statistics.median(ratios):5.2f}x, rounds "
                  + " ".join(f"{x:.2f}" for x in ratios))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
