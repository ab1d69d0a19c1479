"""Shared conditions of the speed benchmarks: torch's default thread count, and an idle or a *contended* machine.

``condition`` (session-scoped, so pytest runs every idle benchmark first and then every contended one, starting
the competitor once): ``"contended"`` starts one competing process for its duration, torch matrix products on
torch's default thread count (all usable cores), as another colorbench worker or another user's job would be;
it is stopped (terminate, then kill) at the end. On a shared machine "idle" only means: no competitor of ours;
each benchmark records the load average before and after it (``extra_info``), so a figure can be read with the
load it was measured under.

The benchmark process itself runs as a user would run colorbench: torch's intra-op threads = the usable cores
(even when the shell exports OMP_NUM_THREADS=1), the metric pool following them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from colorbench.core import threads

CONDITIONS = ("idle", "contended")

_COMPETITOR = """
import sys, torch
a = torch.randn(512, 512)
a = torch.tanh(a @ a)
print(torch.get_num_threads(), flush=True)
while True:
    a = torch.tanh(a @ a)
"""


def start_competitor() -> tuple[subprocess.Popen, int]:
    """A process multiplying 512x512 matrices in a loop on torch's default threads; returns it and its thread
    count once it computes."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", threads.ENV_VAR)}
    proc = subprocess.Popen([sys.executable, "-c", _COMPETITOR], env=env, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # the first product is done: it is computing
    if not line.strip().isdigit():
        proc.kill()
        raise RuntimeError(f"the competing process did not start (exit status {proc.poll()})")
    return proc, int(line)


def stop_competitor(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session", autouse=True)
def default_threads():
    """torch's default thread count (usable cores) and the metric pool following it, as a user gets them."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads.usable_cores())
    threads.set_metric_threads(None)
    yield torch.get_num_threads()
    torch.set_num_threads(before)


@pytest.fixture(scope="session", params=CONDITIONS)
def condition(request):
    """``"idle"`` or ``"contended"`` (a competing multi-threaded torch process runs meanwhile)."""
    if request.param == "idle":
        yield {"condition": "idle", "competitor_threads": 0}
        return
    proc, n = start_competitor()
    time.sleep(1.0)  # let the scheduler see it
    try:
        yield {"condition": "contended", "competitor_threads": n}
    finally:
        stop_competitor(proc)


@pytest.fixture
def conditions(benchmark, condition, default_threads):
    """Records the condition, the thread counts and the load average (before and after) with the benchmark."""
    benchmark.extra_info.update(condition, torch_threads=default_threads, metric_threads=threads.metric_threads(),
                                load_before=os.getloadavg()[0])
    yield condition["condition"]
    benchmark.extra_info["load_after"] = os.getloadavg()[0]
