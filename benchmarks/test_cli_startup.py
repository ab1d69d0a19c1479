"""CLI start-up (issue 21), side by side in one run: ``colorbench --help``, ``colorbench status RUN``,
``colorbench list methods`` and ``colorbench describe unet-l1`` against ``python -c "import torch"``.

    python -m pytest benchmarks/test_cli_startup.py --benchmark-only --benchmark-enable --benchmark-json FILE
    python benchmarks/test_cli_startup.py FILE      # the ratios and the targets

Each command is a fresh process (what a user waits for), timed as wall seconds over 5 rounds after a warm-up
round (the file cache is warm, as for a user's second command); the load average is recorded with each
benchmark, and the ratios to ``import torch`` come from the same run. Targets:
``--help`` and ``status`` at most 0.5 s and at most 0.15x ``import torch``; ``list methods`` at most 1.5 s.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("colorbench"))
COMMANDS = {
    "import-torch": [sys.executable, "-c", "import torch"],
    "help": [EXE, "--help"],
    "status": [EXE, "status", "{run}"],
    "list-methods": [EXE, "list", "methods"],
    "describe": [EXE, "describe", "unet-l1"],
}
TARGETS = {"help": (0.5, 0.15), "status": (0.5, 0.15), "list-methods": (1.5, None)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> str:
    from colorbench.results.rundir import CellEntry, RunDir, RunInfo

    rd = RunDir(tmp_path_factory.mktemp("startup") / "run", create=True)
    rd.write_info(RunInfo(methods=["gray"], status="running"))
    rd.update_cells([CellEntry(key="k", dataset="photos", method="gray", preset="quick", seed=0)])
    return str(rd.path)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_startup(benchmark, name, run_dir):
    argv = [a.format(run=run_dir) for a in COMMANDS[name]]

    def once():
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=120)

    benchmark.group = "cli-startup"
    benchmark.extra_info["load_before"] = os.getloadavg()[0]
    benchmark.pedantic(once, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["load_after"] = os.getloadavg()[0]


def report(path: str) -> int:
    rows = {b["param"]: b for b in json.load(open(path))["benchmarks"] if b["group"] == "cli-startup"}
    torch_s = rows["import-torch"]["stats"]["median"]
    missed = 0
    for name, b in rows.items():
        med = b["stats"]["median"]
        line = f"{name:<14} median {med:6.3f} s  ({med / torch_s:5.2f}x import torch)  load {b['extra_info']['load_before']:.2f}"
        if name in TARGETS:
            limit, ratio = TARGETS[name]
            ok = med <= limit and (ratio is None or med / torch_s <= ratio)
            missed += not ok
            line += f"  target <= {limit} s" + (f" and <= {ratio}x" if ratio else "") + (" PASS" if ok else " MISS")
        print(line)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(report(sys.argv[1]))
