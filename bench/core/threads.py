"""How many CPU threads colorbench uses, decided in one place, and the thread pool of the metric kernels.

Why this module exists: torch's CPU ops split each op over its intra-op (OpenMP) threads and wait for all of them
at the end of the op. The networks and metric chunks of colorbench are small, so a run executes thousands of short
ops a second; when another multi-threaded process (another colorbench worker, another user's job) holds a core,
each op waits for a descheduled thread, and a step that takes 0.1 s becomes 1-10 s (measured; see
``metrics/README.md``, "Speed and memory"). The remedies, all here:

* :func:`apply_thread_policy` chooses the intra-op thread count of a process that trains and colorizes (one
  thread for small networks on the CPU, where a second thread buys little and costs the collapse) and returns the
  decision, with its reason, for the run's ``run.json``.
* :func:`chunk_map` runs the metric kernels' independent chunks on a small pool of threads, each of which runs
  torch single-threaded. A descheduled pool thread delays only the chunk it holds; the others keep taking chunks,
  so no op ever waits for a thread that is not running. torch releases the GIL inside its ops, so the chunks run
  in parallel. The chunk results do not depend on the number of pool threads (each chunk is computed by one
  thread alone). (Until 2026-12-02 the pool threads ran every chunk on the caller's intra-op threads after all:
  torch sets a thread's count lazily, on its first parallel op, from the process-wide one, which undid their
  ``set_num_threads(1)``. 2 pool threads x 2 OpenMP threads made the pool slower than one thread even idle;
  ``_worker_init`` now triggers that initialisation first, and a test checks the count after ops have run.)
* :func:`metric_section`, entered by every metric computation, runs the calling thread's own ops (validation,
  gathering the chunks' results) on one intra-op thread meanwhile: otherwise its idle OpenMP threads spin after
  each of its parallel regions, against the pool threads for the same cores (profiled; 1.1-1.5x on the metric
  set, up to 2.6x on PSNR under contention).

The decision is deterministic given its inputs (requested count, environment variables, cores, load), and
:func:`decide_thread_policy` computes it without changing anything, for tests and for ``colorbench check``.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable, TypeVar

import torch

from colorbench.core.cpuload import usable_cores  # noqa: F401 - re-exported (torch-free, for the report)

__all__ = [
    "METRIC_SECTION",
    "WORKLOADS",
    "ThreadDecision",
    "apply_thread_policy",
    "caller_threads",
    "chunk_map",
    "decide_thread_policy",
    "metric_section",
    "metric_threads",
    "set_metric_threads",
    "usable_cores",
    "workload_of",
]

T = TypeVar("T")

#: Workload classes: ``small`` = the quick presets and images up to 64x64 (ops of at most a few hundred
#: microseconds); ``large`` = everything else (paper presets at 128-256 px, whose ops last milliseconds).
WORKLOADS = ("small", "large")
_SMALL_MAX_PIXELS = 64 * 64
#: Environment variable that fixes colorbench's thread count (takes precedence over OMP_NUM_THREADS).
ENV_VAR = "COLORBENCH_THREADS"
#: How metrics use the threads (recorded in ``run.json`` under ``threads.metric_section``; see
#: :func:`metric_section`).
METRIC_SECTION = ("while metrics compute, the calling thread's own torch ops run on 1 intra-op thread and the "
                  "chunks on the metric pool (colorbench.threads.metric_section); network metrics (LPIPS, FID) "
                  "run on the process's intra-op threads")


def _busy_cores_elsewhere() -> float | None:
    """Cores kept busy by other processes: the smaller of the 1-minute load average and the cores that processes
    outside this process tree kept busy since the window began (:func:`colorbench.core.cpuload.busy_elsewhere`;
    where that is unknown, the runnable tasks now minus this one). Both must show the load, so a burst, or this
    command's own work (an install just before, the fork server's imports), does not count. None where
    /proc/loadavg does not exist."""
    from colorbench.core import cpuload

    try:
        fields = open("/proc/loadavg").read().split()
        load1, running = float(fields[0]), int(fields[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return None
    now = cpuload.busy_elsewhere()
    return max(0.0, min(load1, running - 1.0 if now is None else now))


def workload_of(preset: str | None = None, image_size: tuple[int, int] | int | None = None) -> str:
    """``"small"`` for the quick presets or images of at most 64x64 pixels, else ``"large"``; ``"small"`` when
    neither is known (colorbench's default run). A composed preset (``quick+overlay``) counts as its first part."""
    preset = preset.split("+", 1)[0] if preset else preset
    if image_size is not None:
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        if h * w <= _SMALL_MAX_PIXELS:
            return "small"
        return "small" if preset == "quick" else "large"
    return "small" if preset in (None, "quick") else "large"


@dataclass(frozen=True)
class ThreadDecision:
    """What :func:`apply_thread_policy` decided (stored in ``run.json`` under ``threads``).

    Attributes:
        intra_op_threads: ``torch.set_num_threads`` of the process (training, colorizing, LPIPS/FID networks).
        metric_threads: threads of the metric kernels' chunk pool (:func:`chunk_map`; 1 = run inline).
        cores: usable cores (:func:`usable_cores`).
        n_workers: worker processes sharing those cores (this one included).
        device: the device the networks run on.
        workload: ``"small"`` or ``"large"`` (:func:`workload_of`).
        busy_elsewhere: cores kept busy by other processes when deciding (None: unknown).
        source: ``"policy"``, ``"argument"``, ``"COLORBENCH_THREADS"`` or ``"OMP_NUM_THREADS"``.
        reason: one sentence saying why.
    """

    intra_op_threads: int
    metric_threads: int
    cores: int
    n_workers: int
    device: str
    workload: str
    busy_elsewhere: float | None
    source: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _positive_int(value: Any, what: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"{what} must be a positive integer number of threads, got {value!r}")
    return int(text)


def decide_thread_policy(
    n_workers: int = 1,
    *,
    device: str | torch.device = "cpu",
    preset: str | None = None,
    image_size: tuple[int, int] | int | None = None,
    threads: int | None = None,
    share: int | None = None,
    environ: dict[str, str] | None = None,
    cores: int | None = None,
    busy_elsewhere: float | None | str = "measure",
) -> ThreadDecision:
    """The thread counts for a process that is one of ``n_workers`` sharing this machine (changes nothing).

    Rules, first match wins:

    1. ``threads`` given (e.g. a ``--threads`` option), else ``COLORBENCH_THREADS``, else (outside colorbench's
       own workers, i.e. ``share`` not given) ``OMP_NUM_THREADS`` in the environment: that many intra-op and metric
       threads (the user decided; cluster schedulers set ``OMP_NUM_THREADS``). Inside a worker, OMP_NUM_THREADS
       is what the executor (or Ray) set to the worker's share, not a decision about small networks.
    2. Networks on a GPU: the worker's share of the cores (``share``, else ``cores // n_workers``) threads (the
       CPU only feeds the GPU and runs the metrics).
    3. Small networks on the CPU (:func:`workload_of`): 1 intra-op thread. Measured on the 2-core box, a
       quick-preset step is no faster with 2 threads when the machine is idle and 3-10x slower when another
       multi-threaded process runs (metrics/README.md).
    4. Large networks on the CPU: ``cores // n_workers`` threads, less the cores other processes keep busy
       (at least 1).

    The metric pool gets the worker's share in rules 2-4 (its chunks do not wait for one another).

    Args:
        n_workers: colorbench worker processes that share the cores (each calls this with the same number).
        device: where the networks run.
        preset, image_size: what is trained (see :func:`workload_of`).
        threads: an explicit thread count (overrides everything).
        share: the cores this worker may use, when an executor decided it (process workers: cores // workers;
            Ray: --cpus-per-cell); default ``cores // n_workers``.
        environ: the environment to read (default ``os.environ``).
        cores: usable cores (default :func:`usable_cores`).
        busy_elsewhere: cores busy with other processes (default: measured, :func:`_busy_cores_elsewhere`).
    """
    if not (isinstance(n_workers, int) and n_workers >= 1):
        raise ValueError(f"n_workers must be a positive int, got {n_workers!r}")
    env = os.environ if environ is None else environ
    in_worker = share is not None
    cores = usable_cores() if cores is None else int(cores)
    busy = _busy_cores_elsewhere() if busy_elsewhere == "measure" else busy_elsewhere
    dev = torch.device(device).type
    workload = workload_of(preset, image_size)
    share = max(1, cores // n_workers) if share is None else _positive_int(share, "share")
    common = {"cores": cores, "n_workers": n_workers, "device": dev, "workload": workload, "busy_elsewhere": busy}
    requests = [("argument", threads), (ENV_VAR, env.get(ENV_VAR))]
    if not in_worker:
        requests.append(("OMP_NUM_THREADS", env.get("OMP_NUM_THREADS")))
    for source, value in requests:
        if value is not None and str(value).strip() != "":
            n = _positive_int(value, source if source != "argument" else "threads")
            return ThreadDecision(n, n, **common, source=source, reason=f"{n} thread(s) as set by {source}")
    if dev != "cpu":
        return ThreadDecision(share, share, **common, source="policy",
                              reason=f"networks run on {dev}; this worker's share of the CPU ({share} of {cores} "
                                     "cores) feeds it and computes the metrics")
    if workload == "small":
        return ThreadDecision(1, share, **common, source="policy",
                              reason="small networks on the CPU: one intra-op thread (a second one gains little and "
                                     "makes every op wait for a descheduled thread when the cores are shared); the "
                                     f"metric pool uses this worker's share of {share} core(s)")
    free = share if busy is None else max(1, min(share, math.floor(cores - busy + 0.5)))
    why = (f"large networks on the CPU: this worker's share of the cores, {share} of {cores}"
           + (f", limited to {free} by {busy:.1f} cores busy with other processes" if free < share else ""))
    return ThreadDecision(free, share, **common, source="policy", reason=why)


def apply_thread_policy(
    n_workers: int = 1,
    *,
    device: str | torch.device = "cpu",
    preset: str | None = None,
    image_size: tuple[int, int] | int | None = None,
    threads: int | None = None,
    share: int | None = None,
) -> dict[str, Any]:
    """Decide (:func:`decide_thread_policy`) and apply: ``torch.set_num_threads`` for this process and the size of
    the metric chunk pool. Call it once per process before training (each worker process calls it with the
    number of workers, or with the ``share`` of cores its executor gave it). Returns the decision as a dict for
    ``run.json`` (with ``torch_threads_before``)."""
    decision = decide_thread_policy(n_workers, device=device, preset=preset, image_size=image_size, threads=threads,
                                    share=share)
    before = torch.get_num_threads()
    torch.set_num_threads(decision.intra_op_threads)
    set_metric_threads(decision.metric_threads)
    return {**decision.to_dict(), "torch_threads_before": before}


@contextmanager
def scoring_threads(other_processes: int, environ: dict[str, str] | None = None):
    """Torch's intra-op threads and the metric pool for a scoring loop that shares the cores with
    ``other_processes`` busy processes (``evaluate``'s decoding workers): the cores left to it (at least one),
    unless the user chose (``COLORBENCH_THREADS`` or ``OMP_NUM_THREADS``: left as they are). Restored on exit.
    Yields the thread count used.

    Why: on the 2-core machine, ``evaluate`` of 2,000 256x256 images with one decoding process took 44.7 s of CPU
    and 39.8 s of wall with one scoring thread, against 56.2 s of CPU and 34.9-41.6 s of wall with two (two
    threads beside the decoder oversubscribe the cores: the chunks wait for a descheduled thread)."""
    env = os.environ if environ is None else environ
    chosen = next((env[k] for k in (ENV_VAR, "OMP_NUM_THREADS") if str(env.get(k, "")).strip()), None)
    before_torch, before_metric = torch.get_num_threads(), _metric_threads
    n = _positive_int(chosen, "threads") if chosen is not None else max(1, usable_cores() - max(0, other_processes))
    torch.set_num_threads(n)
    set_metric_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before_torch)
        set_metric_threads(before_metric)


# ------------------------------------------------------------------------------------------------------------
# The metric kernels' chunk pool
# ------------------------------------------------------------------------------------------------------------

_metric_threads: int | str | None = None  # None: as many as torch's intra-op threads of the calling thread
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_in_pool = threading.local()
_section = threading.local()  # .threads: the caller's intra-op count while inside metric_section(), else absent
#: :func:`set_metric_threads` mode that runs the chunks inline on the caller's intra-op threads: the design
#: before the pool, which collapses when another multi-threaded process shares the cores. Kept as the speed
#: benchmarks' baseline (``colorbench-threaded-ops``), not for use.
INTRA_OP = "intra-op"


def set_metric_threads(n: int | str | None) -> None:
    """Threads of :func:`chunk_map`'s pool (None: follow ``torch.get_num_threads()`` of the caller;
    :data:`INTRA_OP`: no pool, chunks inline on the caller's intra-op threads, the benchmarks' baseline)."""
    global _metric_threads
    if n is not None and n != INTRA_OP and not (isinstance(n, int) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"metric threads must be a positive int, None or {INTRA_OP!r}, got {n!r}")
    _metric_threads = n


def metric_threads() -> int:
    """Threads :func:`chunk_map` uses now: :func:`set_metric_threads`'s value, else torch's intra-op threads of
    the caller (inside :func:`metric_section`: the count the caller had before it; in the :data:`INTRA_OP` mode:
    the caller's intra-op threads)."""
    if isinstance(_metric_threads, int):
        return _metric_threads
    return getattr(_section, "threads", None) or torch.get_num_threads()


@contextmanager
def metric_section():
    """While colorbench computes metrics (the functional metrics and every streaming metric's ``update`` and
    ``compute`` enter it), the calling thread's own torch ops run on one intra-op thread; its count is restored
    at the end, and the chunk pool keeps the size it had (:func:`metric_threads`).

    Why: the chunks run on the pool, but the caller's own ops (validating the batch, gathering the chunks'
    results, the near-edge pixels of the histograms) were parallel regions of its OpenMP threads, and after each
    region those threads spin waiting for the next one (libgomp spins for a while before sleeping). Profiled
    (perf, the ab histograms of 32 images of 256x256): the caller's idle OpenMP thread took 10% of the samples,
    competing with the pool threads for the two cores; under contention each such region also waits for a
    descheduled thread. Measured side by side, alternating in one process (the whole metric set streamed,
    2 pool threads, median of 10 calls each): 1.27x, 1.11x and 1.15x faster at 32x32, 64x64 and 256x256 with
    the caller on one thread, and 1.36x, 1.08x and 1.09x with a competing process; PSNR alone 1.3-2.4x
    under contention. Networks (LPIPS, FID's Inception) leave the section for their forward pass
    (:func:`caller_threads`): their ops are long, and they follow the process's thread policy.

    Re-entrant, per thread; a no-op on a pool thread and in the :data:`INTRA_OP` mode (the benchmarks' baseline
    of the design before the pool). ``torch.set_num_threads`` also sets torch's default for threads that have
    not run torch ops yet; that default is the caller's again when the section ends.
    """
    if (getattr(_section, "threads", None) is not None or getattr(_in_pool, "active", False)
            or _metric_threads == INTRA_OP):
        yield
        return
    before = torch.get_num_threads()
    _section.threads = before
    if before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if before > 1:
            torch.set_num_threads(before)
        _section.threads = None


@contextmanager
def caller_threads():
    """Inside :func:`metric_section`, give the calling thread back its own intra-op threads for a block (a
    network's forward pass); elsewhere a no-op."""
    before = getattr(_section, "threads", None)
    if before is None or getattr(_in_pool, "active", False):
        yield
        return
    _section.threads = None
    torch.set_num_threads(before)
    try:
        yield
    finally:
        torch.set_num_threads(1)
        _section.threads = before


def _worker_init() -> None:
    # torch initialises a thread's OpenMP thread count lazily, on its first parallel op, from the process-wide
    # count, and that count is restored for the caller below. get_num_threads() runs that initialisation now, so
    # the set_num_threads(1) after it is this thread's for good (before this order, the pool threads went back
    # to the caller's count on their first op: every chunk ran on 2 OpenMP threads, and 2 pool threads made 4).
    torch.get_num_threads()
    torch.set_num_threads(1)
    _in_pool.active = True


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            before = torch.get_num_threads()
            pool = ThreadPoolExecutor(n, thread_name_prefix="colorbench-chunks", initializer=_worker_init)
            # Start all n threads now. torch.set_num_threads(1) in a new thread also changes torch's default for
            # threads that have not used torch yet; it is restored below, once every pool thread has set its own.
            barrier = threading.Barrier(n)
            list(pool.map(lambda _: barrier.wait(), range(n)))
            torch.set_num_threads(before)
            _pool, _pool_size = pool, n
        return _pool


def _forget_pool_after_fork() -> None:  # the pool's threads do not exist in a forked child
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def chunk_map(fn: Callable[[T], Any], items: Iterable[T], tasks_per_thread: int = 4) -> list[Any]:
    """``[fn(item) for item in items]``, on :func:`metric_threads` pool threads that each run torch single-threaded
    (results in order).

    Inline when there is at most one item (the GPU paths hand over the whole batch as one item, and a CUDA
    stream context is the calling thread's), when called from a pool thread, with one metric thread and a caller
    that runs torch on one thread, or in the :data:`INTRA_OP` mode. With one metric thread and a caller on
    several intra-op threads, the items go to one pool thread, so that the ops still run single-threaded.

    The items go to the pool in at most ``tasks_per_thread`` x threads contiguous groups: a task costs ~20-50 us
    (future, queue, waking a thread), as much as a cheap chunk (MSE of 32 images of 32x32), while 4 tasks per
    thread still let the other threads take over most of a descheduled thread's share.
    """
    items = list(items)
    if len(items) <= 1 or getattr(_in_pool, "active", False) or _metric_threads == INTRA_OP:
        return [fn(item) for item in items]
    n_threads = metric_threads()
    if n_threads == 1 and torch.get_num_threads() == 1:
        return [fn(item) for item in items]
    groups = min(len(items), tasks_per_thread * n_threads) if n_threads > 1 else 1
    bounds = [len(items) * i // groups for i in range(groups + 1)]
    parts = _get_pool(n_threads).map(lambda i: [fn(item) for item in items[bounds[i] : bounds[i + 1]]], range(groups))
    return [result for part in parts for result in part]
