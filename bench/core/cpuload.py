"""How many cores other processes keep busy now: the machine's CPU time minus this process tree's, over a window.

Why not the load average alone: it counts this command's own recent work (``pip install`` just before
``colorbench run``, the fork server importing torch, the driver's import thread) and lags a minute behind, so an
idle machine looked busy and the default run fell back to one process (measured: a run started 5 s after a
benchmark computed everything in one process, "limited to 1 by 2.0 core(s) busy with other processes", on an
otherwise idle 2-core machine). The runnable-task count of ``/proc/loadavg`` counts threads, ours included.

So :func:`busy_elsewhere` takes the machine's busy CPU seconds from ``/proc/stat`` and subtracts those of this
process and its descendants (``/proc/<pid>/stat``: user, system and reaped children's times), over the window since
:func:`mark` (called when this module is imported, and by ``colorbench run`` before it starts its fork server).
Linux only; elsewhere it returns None (unknown) and the callers fall back on the load average. No torch here: the
CLI's parser imports it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass

__all__ = ["CpuMark", "busy_elsewhere", "mark", "snapshot", "usable_cores"]

#: Shortest window (seconds) that gives a usable rate (the kernel counts CPU time in ticks of 1/CLK_TCK s).
MIN_WINDOW_S = 0.2


@dataclass(frozen=True)
class CpuMark:
    """One reading: when (monotonic seconds), the machine's busy CPU seconds, this process tree's CPU seconds,
    and whose tree (the process id, so a forked child does not use its parent's reading)."""

    t: float
    machine_s: float
    ours_s: float
    pid: int


def usable_cores() -> int:
    """CPU cores this process may run on: the affinity mask (taskset, cpusets, Slurm), further limited by a cgroup
    v2 CPU quota (``cpu.max``, as Docker's ``--cpus`` sets), at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _tick() -> float:
    try:
        return float(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100.0


_TICK = _tick()


def _machine_busy_s() -> float:
    """Busy CPU seconds of all cores since boot: user, nice, system, irq, softirq and steal (not idle, not iowait;
    guest time is already inside user)."""
    with open("/proc/stat") as f:
        fields = f.readline().split()
    if fields[0] != "cpu":
        raise ValueError("unexpected /proc/stat")
    v = [int(x) for x in fields[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / _TICK


def _tree_s(root: int) -> float:
    """CPU seconds of ``root`` and its descendants: each one's user and system time plus those of its reaped
    children (so a child that ends within the window still counts as ours)."""
    children: dict[int, list[int]] = {}
    times: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                text = f.read()
        except OSError:
            continue  # ended meanwhile
        rest = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": state, ppid, ... (the comm may hold spaces)
        pid = int(entry.name)
        children.setdefault(int(rest[1]), []).append(pid)
        times[pid] = sum(int(x) for x in rest[11:15])  # utime, stime, cutime, cstime (fields 14-17)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += times.get(pid, 0)
        todo.extend(children.get(pid, ()))
    return total / _TICK


def snapshot() -> CpuMark | None:
    """A reading now, or None where /proc cannot be read (not Linux)."""
    try:
        pid = os.getpid()
        return CpuMark(time.monotonic(), _machine_busy_s(), _tree_s(pid), pid)
    except (OSError, ValueError, IndexError):
        return None


_MARK: CpuMark | None = None


def mark() -> CpuMark | None:
    """Start the window that :func:`busy_elsewhere` measures over (again), and return its reading."""
    global _MARK
    _MARK = snapshot()
    return _MARK


def busy_elsewhere(since: CpuMark | None = None) -> float | None:
    """Cores kept busy by processes outside this process tree, on average since ``since`` (default: the last
    :func:`mark`). None when unknown: no reading, a window under :data:`MIN_WINDOW_S`, or a reading taken by
    another process (a forked child starts its own window here, so its next call can answer)."""
    start = _MARK if since is None else since
    now = snapshot()
    if start is None or now is None or start.pid != now.pid:
        if since is None and now is not None:
            mark()
        return None
    window = now.t - start.t
    if window < MIN_WINDOW_S:
        return None
    return max(0.0, ((now.machine_s - start.machine_s) - (now.ours_s - start.ours_s)) / window)


mark()
