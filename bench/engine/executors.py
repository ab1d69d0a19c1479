"""Executors: where the cells of a run are computed (``--executor auto|local|process|ray``).

Every executor takes :class:`~colorbench.engine.cell.CellTask` objects and hands each
:class:`~colorbench.engine.cell.CellResult` back to the driver, which alone writes the run directory. A method error
is already a failed row inside the worker; what an executor adds is surviving the worker itself dying
(segfault, out of memory, ``kill -9``): the cell is run again up to ``--retries`` times and then becomes a failed
row naming how its worker died, so the grid always completes.

* ``local``: in this process, one cell after the other (a crash here ends the run; rerunning resumes it).
* ``process``: a pool of ``--workers`` persistent processes (forked from a fork server, else spawned). Each
  imports torch and the methods once, loads each dataset once (the decoded-data cache is memory-mapped, so its
  pages are shared between the workers) and takes cells from the driver one at a time, the longest expected first
  (:mod:`colorbench.engine.costs`); a worker that dies is replaced and its cell retried. Each has
  ``cores // workers`` torch threads, set before it computes (two processes with a full thread pool each on shared
  cores made a training step 60-100x slower, see benchmarks/test_engine_speed.py), and, on CUDA, its own GPU or
  its declared share of one (``--gpus-per-cell``).
* ``ray``: one Ray task per cell (``--ray-address`` of a cluster, else a local instance), one GPU per cell by
  default when the run is on CUDA. Workers need no shared filesystem: each node decodes a dataset once into its own
  content-keyed cache (:func:`node_dataset`, under a file lock); checkpoints go to ``--storage`` (a folder every
  node sees or an fsspec URI: :mod:`colorbench.engine.storage`), so a cell retried on another node resumes from its
  last checkpoint (without ``--storage`` they stay on the node that wrote them); records, arrays and the cell's
  files (``--save-checkpoints``, the ``--cross-domain`` sets) come back in the task's return value, or (the
  colorized test split and the files) through the storage, and the driver writes them.
* ``auto`` (the CLI's default): ``process`` with the worker count of :func:`decide_workers` when that is more than
  one, else ``local``; ``run.json`` records the choice and why.

Every line a worker logs reaches the console prefixed with the cell it belongs to (:func:`cell_label`).
"""

from __future__ import annotations

import collections
import math
import multiprocessing as mp
import os
import signal
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence


from colorbench.engine.costs import estimate_seconds, longest_first, pace
from colorbench.engine.ddp import receive, send, worker_context
from colorbench.engine.storage import NODE_CACHE_ENV, is_data_uri, node_cache_dir  # noqa: F401 - NODE_CACHE_ENV re-exported

Started = Callable[[Any], None]
Finished = Callable[[Any, Any], None]

#: Memory a CPU worker process is assumed to need besides the (shared, memory-mapped) data: torch, the methods,
#: one small network with its optimizer state and the evaluation buffers. Observed with ``top`` on 2026-12-07:
#: 0.52 GiB resident per pool worker during unet-l1 quick cells on photos (2112 + 528 images of 32x32); doubled for
#: headroom. ``large`` workloads (paper presets, 128-256 px) are assumed to need four times as much (not measured).
WORKER_MEMORY_GIB = {"small": 1.0, "large": 4.0}


def available_cores() -> int:
    """Usable CPU cores (affinity mask and cgroup quota: :func:`colorbench.core.cpuload.usable_cores`)."""
    from colorbench.core.cpuload import usable_cores

    return usable_cores()


def start_fork_server() -> None:
    """Start the process pool's fork server now (it imports torch and the methods in the background, in parallel
    with this process's own imports). Called by ``colorbench run`` before it imports the engine; a no-op where
    there is no fork server."""
    ctx = worker_context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def stop_fork_server() -> None:
    """End the pool's fork server now, when the command is done with it. Left to itself it would notice this
    process's exit and then tear down its own copy of torch and the methods (about 1.1 s measured, after the
    command's last line) while it still holds the command's standard output, so ``colorbench run | tee log``, or
    a program reading the output, waits for it. SIGTERM ends it at once (it keeps no state: every worker it
    forked has been joined). Uses multiprocessing's private ``ForkServer._stop`` (closes its pipe, reaps it,
    removes its socket), guarded; a no-op where there is no fork server."""
    import sys

    module = sys.modules.get("multiprocessing.forkserver")
    server = getattr(module, "_forkserver", None)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
        server._stop()
    except (OSError, AttributeError):
        pass


def cell_label(entry: Any) -> str:
    """How the console names a cell: ``method/dataset/seed``, e.g. ``unet-l1/shapes/s0``."""
    return f"{entry.method}/{entry.dataset}/s{entry.seed}"


def _prefixed(log: Callable[[str], None], entry: Any) -> Callable[[str], None]:
    label = cell_label(entry)
    return lambda text: log(f"    [{label}] {text.strip()}")


@dataclass(frozen=True)
class WorkerDecision:
    """How many cells run at once and where (recorded in ``run.json`` under ``executor``).

    Attributes:
        executor: ``local`` or ``process`` (what ``auto`` became; the requested one otherwise).
        workers: processes computing cells at once.
        devices: the device of each worker (``cpu`` or ``cuda:K``), by worker index.
        reason: one sentence saying why.
    """

    executor: str
    workers: int
    devices: tuple[str, ...]
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def available_memory_gib() -> float | None:
    """``MemAvailable`` of /proc/meminfo in GiB (None where it cannot be read)."""
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 2**20
    except (OSError, ValueError):
        pass
    return None


def gpu_slots(n_gpus: int, gpus_per_cell: float) -> list[str]:
    """The device of each cell slot when cells take ``gpus_per_cell`` of a GPU each on ``n_gpus`` GPUs:
    one slot per GPU for 1, two per GPU for 0.5; a share above 1 is refused (one cell on several GPUs is
    ``--nproc-per-cell``).

    Raises:
        ValueError: no GPU, or a share outside (0, 1].
    """
    if n_gpus < 1:
        raise ValueError("no CUDA device is visible to this process; use --device cpu (or auto on a machine "
                         "without GPUs)")
    if not 0 < gpus_per_cell <= 1:
        raise ValueError(f"--gpus-per-cell must be in (0, 1] for process workers (a share of one GPU), got "
                         f"{gpus_per_cell}; to train one cell on several GPUs use --nproc-per-cell")
    per_gpu = max(1, math.floor(1 / gpus_per_cell + 1e-9))
    return [f"cuda:{gpu}" for gpu in range(n_gpus) for _ in range(per_gpu)]


def decide_workers(requested: int | str, *, executor: str = "auto", n_cells: int, device: str, cores: int,
                   n_gpus: int = 0, gpus_per_cell: float | None = None, workload: str = "small",
                   memory_gib: float | None = None, busy_elsewhere: float | None = None) -> WorkerDecision:
    """How many process workers compute cells at once, and on which devices (changes nothing).

    Rules: on CUDA, one worker per GPU slot (:func:`gpu_slots`: each GPU, or each declared share of one), since
    a cell keeps its GPU busy; on the CPU, one worker per usable core, since the thread policy trains small
    networks on one intra-op thread each (:mod:`colorbench.core.threads`) and two workers on two cores are
    nearly twice as fast as one on idle cores; never more workers than cells, nor more than the available memory
    holds at :data:`WORKER_MEMORY_GIB` each, nor (on the CPU) more than the cores other processes leave free (the
    thread policy's estimate, ``busy_elsewhere``): on a saturated machine a second worker only adds its start-up
    and splits the same CPU time (measured on the shared 2-core box at load 5-6: 2 workers 86-91 s against 49-62 s
    in one process for 4 quick cells, see the closing note of issue 23). An explicit ``requested`` count wins (on CUDA
    the workers then go round the GPU slots). ``executor="auto"`` becomes ``local`` when one worker suffices
    (a spawned process would only add its start-up).

    Args:
        requested: ``"auto"`` or a worker count (``--workers``).
        executor: ``auto`` or ``process``.
        n_cells: cells still to compute.
        device: the run's device type after resolution (``cpu`` or ``cuda``; an index, ``cuda:1``, pins every
            worker to that GPU).
        cores: usable CPU cores.
        n_gpus: visible CUDA devices.
        gpus_per_cell: the declared share of a GPU per cell (None: 1).
        workload: ``small`` or ``large`` (:func:`colorbench.core.threads.workload_of`).
        memory_gib: available memory (None: unknown, no limit from it).
        busy_elsewhere: cores kept busy by other processes (None: unknown, no limit from it).
    """
    n_cells = max(1, n_cells)
    dev = device.split(":")[0]
    pinned = ":" in device
    if dev == "cuda" and not pinned:
        slots = gpu_slots(n_gpus, 1.0 if gpus_per_cell is None else gpus_per_cell)
        why = (f"{len(slots)} GPU slot(s): {n_gpus} GPU(s) at {gpus_per_cell or 1:g} GPU per cell")
    else:
        slots = [device if pinned else "cpu"] * max(1, cores)
        why = (f"{cores} usable core(s), one small-network cell per core (1 intra-op thread each)"
               if workload == "small" else f"{cores} usable core(s), one cell per core")
        if pinned and dev == "cuda":
            why = f"every cell on {device} (the device was pinned), one per core"
    if requested != "auto":
        n = int(requested)
        why = f"--workers {n}"
    else:
        n = min(len(slots), n_cells)
        if n < len(slots):
            why += f", limited to the {n_cells} cell(s) to compute"
        per = WORKER_MEMORY_GIB.get(workload, WORKER_MEMORY_GIB["large"]) if dev == "cpu" else 1.0
        if dev == "cpu" and busy_elsewhere is not None and n > 1:
            free = max(1, math.floor(cores - busy_elsewhere + 0.5))
            if free < n:
                n = free
                why += f", limited to {n} by {busy_elsewhere:.1f} core(s) busy with other processes"
        if memory_gib is not None and n > 1 and n * per > memory_gib:
            n = max(1, math.floor(memory_gib / per))
            why += f", limited to {n} by {memory_gib:.1f} GiB of available memory at {per:g} GiB per worker"
    devices = tuple(slots[i % len(slots)] for i in range(n))
    chosen = "process" if executor == "process" or n > 1 else "local"
    if executor == "auto":
        why += f": {'a pool of ' + str(n) + ' process workers' if chosen == 'process' else 'this process'}"
    return WorkerDecision(chosen, n, devices, why)


def make_executor(spec: Any, *, n_cells: int = 1, device: str = "cpu", workload: str = "small") -> "Executor":
    """The executor a spec names (its settings checked: unknown name, Ray missing or not answering).

    Args:
        spec: the run.
        n_cells: cells of the grid (bounds ``--workers auto``).
        device: the run's resolved device (``cpu``, ``cuda``, ``cuda:K``).
        workload: ``small`` or ``large`` (:func:`colorbench.core.threads.workload_of`).
    """
    from colorbench.engine.ddp import torchrun_member

    if torchrun_member() is not None:  # started by torchrun: every rank trains each cell
        return TorchrunExecutor(spec)
    nproc = getattr(spec, "nproc_per_cell", 1)
    if nproc > 1 and spec.executor in ("process", "ray"):
        raise ValueError(f"--nproc-per-cell {nproc} runs with --executor local or auto (each cell on {nproc} "
                         f"processes, one cell after the other), not with --executor {spec.executor}")
    if nproc > 1:
        return LocalExecutor(spec)
    if spec.executor == "ray":
        return RayExecutor(spec)
    if spec.executor in ("auto", "process"):
        import torch

        from colorbench.core.threads import decide_thread_policy

        n_gpus = torch.cuda.device_count() if device.startswith("cuda") else 0
        busy = decide_thread_policy(1, device="cpu", busy_elsewhere="measure").busy_elsewhere
        decision = decide_workers(spec.workers, executor=spec.executor, n_cells=n_cells, device=device,
                                  cores=available_cores(), n_gpus=n_gpus, gpus_per_cell=spec.gpus_per_cell,
                                  workload=workload, memory_gib=available_memory_gib(), busy_elsewhere=busy)
        if decision.executor == "process":
            return ProcessExecutor(spec, decision)
        return LocalExecutor(spec, decision)
    if spec.executor == "local":
        return LocalExecutor(spec)
    raise ValueError(f"unknown executor {spec.executor!r}; choose auto, local, process or ray")


class Executor(ABC):
    name = ""

    def __init__(self, spec: Any, decision: WorkerDecision | None = None) -> None:
        self.spec = spec
        self.decision = decision
        #: Work for this process while the cells compute elsewhere: the pool and Ray executors call it once, when
        #: no cell can be handed out until a worker answers (the pool: before it starts its workers, which wait
        #: for the fork server's imports; the local executor computes in this process and never calls it).
        #: ``engine.grid.run`` starts the import of the report's libraries there (seconds of matplotlib and scipy
        #: that would otherwise follow the last cell).
        self.while_busy: Callable[[], None] | None = None

    def _busy(self) -> None:
        if self.while_busy is not None:
            work, self.while_busy = self.while_busy, None
            work()

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "requested": self.spec.executor, "retries": self.spec.retries}
        if self.decision is not None:
            d["workers"] = self.decision.workers
            d["devices"] = list(self.decision.devices)
            d["reason"] = self.decision.reason
        return d

    def thread_policy(self) -> dict[str, Any]:
        import torch

        return {"cores": available_cores(), "torch_threads_per_cell": torch.get_num_threads(),
                "policy": "this process's torch setting"}

    @abstractmethod
    def run(self, tasks: Sequence[Any], datasets: Mapping[str, Any], started: Started, finished: Finished,
            log: Callable[[str], None]) -> None:
        """Compute every task, calling ``started(task)`` and ``finished(task, result)`` in the driver."""

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """Cells one after another in this process; with ``--nproc-per-cell N``, each cell on N processes
    (:mod:`colorbench.engine.ddp`)."""

    name = "local"

    def describe(self) -> dict[str, Any]:
        n = getattr(self.spec, "nproc_per_cell", 1)
        return {**super().describe(), **({"nproc_per_cell": n} if n > 1 else {})}

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import execute_cell, failed_result
        from colorbench.engine.ddp import RankDied, launch

        nproc = getattr(self.spec, "nproc_per_cell", 1)
        for task in tasks:
            started(task)
            cell_log = _prefixed(log, task.entry)
            if nproc == 1:
                finished(task, execute_cell(task, datasets[task.entry.dataset], cell_log))
                continue
            for attempt in range(1, self.spec.retries + 2):
                try:
                    result = launch(execute_cell, task, nproc, cell_log)
                    break
                except RankDied as exc:  # as a dead process worker: again (from the cell's last checkpoint)
                    if attempt <= self.spec.retries:
                        cell_log(f"{exc}; retrying ({attempt}/{self.spec.retries})")
                        started(task)
                        continue
                    result = failed_result(task, f"DistributedError: {exc}, in each of {attempt} attempt(s) "
                                                 f"(--retries {self.spec.retries})")
                except RuntimeError as exc:
                    result = failed_result(task, f"DistributedError: {exc}")
                    break
            finished(task, result)


class TorchrunExecutor(Executor):
    """Cells one after another, each trained by all the ranks of a torchrun launch (``torchrun --nproc-per-node N
    -m colorbench.commands.cli run ...``): this process (rank 0) sends each cell to the other ranks
    (:func:`colorbench.engine.ddp.follow_cells`), trains it with them, evaluates it and writes it.

    A cell's own error is a failed row and the next cell runs; a rank gone (``GroupBroken``) or the agent's SIGTERM
    (``LaunchStopped``) ends the run with the cell unfinished and its checkpoint kept, for torchrun's restart
    (``--max-restarts``) or a rerun to resume it (:mod:`colorbench.engine.ddp`)."""

    name = "torchrun"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "nproc_per_cell": self.spec.nproc_per_cell}

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import execute_cell, failed_result
        from colorbench.engine.ddp import GroupBroken, end_cells, lead_cell

        for task in tasks:
            started(task)
            try:
                result = lead_cell(execute_cell, task, datasets[task.entry.dataset], _prefixed(log, task.entry))
            except GroupBroken as exc:
                raise GroupBroken(f"cell {cell_label(task.entry)}: {exc}") from exc.__cause__
            except Exception as exc:  # noqa: BLE001 - a failing cell is a failed row, the next one runs
                result = failed_result(task, f"DistributedError: {type(exc).__name__}: {exc}")
            finished(task, result)
        end_cells()  # not after a rank is gone or a SIGTERM: the broadcast would wait for ranks that are gone


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name} (exit {exitcode})"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _pool_worker(conn: Any, device: str, threads: int, environ: Mapping[str, str]) -> None:
    """Body of a persistent process worker: import once, then compute the cells the driver sends, one at a time,
    until it sends None (or goes away). Datasets are loaded once per process (``engine.data.load_dataset``
    caches them); log lines and results travel back through ``conn``.

    Args:
        conn: this worker's end of its pipe to the driver.
        device: where its cells run (``cpu``, ``cuda:K``).
        threads: its torch threads (``cores // workers``).
        environ: the driver's environment when it started the worker (a forked worker has the fork server's).
    """
    os.environ.update(environ)
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    from colorbench.engine.cell import execute_cell

    if device.startswith("cuda:"):
        import torch

        torch.cuda.set_device(torch.device(device))  # ops without an explicit index land on this worker's GPU
    send(conn, ("ready", os.getpid()))
    while True:
        try:
            task = receive(conn)
        except (EOFError, OSError):
            return  # the driver is gone
        if task is None:
            return
        try:
            result = execute_cell(task, None, log=lambda text: send(conn, ("log", text)))
            send(conn, ("ok", result))
        except BaseException as exc:  # noqa: BLE001 - report anything (a failure to pickle included) to the driver
            send(conn, ("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))


@dataclass
class _Worker:
    index: int
    device: str
    proc: Any
    conn: Any
    task: Any = None
    ready: bool = False


#: Workers in a row that die before they are ready (an import error, a broken environment) before the pool gives up.
MAX_START_FAILURES = 3


class ProcessExecutor(Executor):
    """A pool of persistent workers (forked from the fork server, else spawned: :func:`worker_context`), each with
    ``cores // workers`` torch threads and its own device; a worker that dies is replaced on the same device."""

    name = "process"

    def __init__(self, spec: Any, decision: WorkerDecision | None = None) -> None:
        if decision is None:
            decision = decide_workers(spec.workers, executor="process", n_cells=1 if spec.workers == "auto" else
                                      int(spec.workers), device="cpu", cores=available_cores())
        super().__init__(spec, decision)
        self.workers = decision.workers
        self.threads = max(1, available_cores() // self.workers)
        self.worker_pids: list[int] = []  # every worker started, replacements included (for tests and logs)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "start_method": worker_context().get_start_method(), "persistent": True}

    def thread_policy(self) -> dict[str, Any]:
        return {"cores": available_cores(), "torch_threads_per_cell": self.threads,
                "policy": "cores // workers, set in each worker before it computes"}

    def _start(self, ctx: Any, index: int) -> _Worker:
        ours, theirs = ctx.Pipe(duplex=True)
        device = self.decision.devices[index % len(self.decision.devices)]
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(self.threads)  # a spawned child's pools
        try:
            proc = ctx.Process(target=_pool_worker, args=(theirs, device, self.threads, dict(os.environ)),
                               daemon=True, name=f"colorbench-worker-{index}")
            proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        theirs.close()  # the child holds its end; EOF here means the child is gone
        return _Worker(index, device, proc, ours)

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import failed_result

        ctx = worker_context()
        attempts: dict[int, int] = collections.Counter()
        observed: dict[tuple[str, str], float] = {}  # seconds a finished cell of (method, dataset) took here
        speed: list[float] = []  # each finished cell's seconds over the table's estimate (this machine's pace)
        handed: dict[int, float] = {}  # when each running cell was handed to its worker

        def ordered(waiting: Any) -> collections.deque:  # retries first, then the longest expected (engine.costs)
            return collections.deque(longest_first(list(waiting), datasets, observed, scale=pace(speed),
                                                   started_before=lambda t: attempts[id(t)] > 0))

        queue = ordered(tasks)
        # Starting a worker waits for the fork server to finish importing torch and the methods (it started with
        # the command, but imports longer than this process): the report's imports run meanwhile, on the core the
        # fork server's single thread leaves idle, instead of beside the first cells.
        self._busy()
        pool = [self._start(ctx, i) for i in range(min(self.workers, len(queue)))]
        idle: collections.deque[_Worker] = collections.deque()

        start_failures = 0

        def died(w: _Worker) -> None:
            nonlocal start_failures
            w.conn.close()
            w.proc.join()
            how = _signal_name(w.proc.exitcode)
            if not w.ready:
                start_failures += 1
                if start_failures >= MAX_START_FAILURES:
                    raise RuntimeError(f"{start_failures} process workers in a row died before they could take a "
                                       f"cell ({how}); run with --executor local to see the error")
            task, w.task = w.task, None
            if task is not None:
                n = attempts[id(task)]
                if n <= self.spec.retries:
                    _prefixed(log, task.entry)(f"worker {w.index} died ({how}); retrying "
                                               f"({n}/{self.spec.retries})")
                    queue.appendleft(task)
                else:
                    finished(task, failed_result(
                        task, f"WorkerDied: the worker computing this cell died ({how}) in each of {n} "
                              f"attempt(s) (--retries {self.spec.retries}); a segfault, the out-of-memory "
                              "killer or kill -9"))
            pool.remove(w)
            if queue:
                pool.append(self._start(ctx, w.index))  # a fresh worker in its place, on its device

        try:
            while queue or any(w.task is not None for w in pool):
                while queue and idle:
                    w = idle.popleft()
                    task = queue.popleft()
                    task.threads, task.device = self.threads, w.device
                    attempts[id(task)] += 1
                    handed[id(task)] = time.monotonic()
                    started(task)
                    try:
                        send(w.conn, task)
                        w.task = task
                    except (BrokenPipeError, OSError):
                        attempts[id(task)] -= 1
                        queue.appendleft(task)
                        died(w)
                if not pool:
                    break
                if not queue or all(w.task is not None for w in pool):
                    self._busy()  # nothing to hand out until a worker answers: this process would only wait
                by_conn = {w.conn: w for w in pool}
                by_sentinel = {w.proc.sentinel: w for w in pool}
                for ready in wait([*by_conn, *by_sentinel]):
                    w = by_conn.get(ready) or by_sentinel[ready]
                    if w not in pool:
                        continue  # handled through its other handle in this round
                    while w in pool:
                        try:
                            if not w.conn.poll():
                                if not w.proc.is_alive():
                                    died(w)
                                break
                            message = receive(w.conn)
                        except (EOFError, OSError):
                            died(w)
                            break
                        kind = message[0]
                        if kind == "ready":
                            w.ready, start_failures = True, 0
                            self.worker_pids.append(message[1])
                            idle.append(w)
                        elif kind == "log":
                            _prefixed(log, w.task.entry)(message[1])
                        else:
                            task, w.task = w.task, None
                            idle.append(w)
                            if kind == "ok":
                                cell = (task.entry.method, task.entry.dataset)
                                if cell not in observed:  # its other seeds are now known to take about this long
                                    observed[cell] = time.monotonic() - handed[id(task)]
                                    guess = estimate_seconds(task, datasets)
                                    if guess:
                                        speed.append(observed[cell] / guess)
                                    queue = ordered(queue)
                                finished(task, message[1])
                            else:
                                finished(task, failed_result(task, f"worker error: {message[1]}", message[2]))
                idle = collections.deque(w for w in idle if w in pool)
        finally:
            for w in pool:
                if w.task is not None or w.proc.is_alive():
                    try:
                        send(w.conn, None)
                    except (BrokenPipeError, OSError):
                        pass
            for w in pool:
                w.proc.join(timeout=5 if w.task is None else 0)
                if w.proc.is_alive():  # interrupted (Ctrl-C) mid-cell, or stuck: leave no orphan workers
                    w.proc.kill()
                    w.proc.join()
                w.conn.close()


def ray_gpus_per_cell(device: str, requested: float | None, cluster_gpus: float) -> tuple[str, float]:
    """The device type of Ray's cells and the GPUs each reserves.

    ``device`` ``auto`` means CUDA when the cluster has GPUs; a cell on CUDA reserves ``requested`` GPUs (default
    1: Ray shows a task only the GPUs it reserved, so a task reserving none would see no GPU at all).

    Raises:
        ValueError: CUDA asked for with ``--gpus-per-cell 0``, or on a cluster without GPUs.
    """
    dev = ("cuda" if cluster_gpus > 0 else "cpu") if device == "auto" else device.split(":")[0]
    if dev != "cuda":
        return dev, float(requested or 0.0)
    if cluster_gpus <= 0:
        raise ValueError(f"--device {device} asks for a GPU but the Ray cluster has none (ray status); use "
                         "--device cpu or auto")
    gpus = 1.0 if requested is None else float(requested)
    if gpus <= 0:
        raise ValueError(f"--device {device} with --gpus-per-cell 0: Ray hides every GPU from a task that reserves "
                         "none, so the cells would run on the CPU; give --gpus-per-cell (default 1) or --device cpu")
    return dev, gpus


class DataNotOnNode(ValueError):
    """A dataset folder the driver named does not exist on the node that was to compute the cell."""


def node_dataset(spec: Any, name: str, cache_dir: str | None = None) -> Any:
    """Load a dataset on a Ray node: from the node's content-keyed cache (:mod:`colorbench.datasets.cache`,
    in :func:`node_cache_dir` unless the run gave ``cache_dir``), filled once per node: the first task decodes
    under a file lock, the tasks that wait for it then memory-map the entry it wrote.

    Raises:
        DataNotOnNode: the run's ``data_root`` is not a folder on this node (naming ``--data-root``).
    """
    import hashlib
    import json
    import socket

    from filelock import FileLock

    from colorbench.datasets.cache import CACHE_ENV
    from colorbench.engine.data import load_dataset
    from colorbench.engine.spec import dataset_options_for

    options = dict(dataset_options_for(spec, name))
    root = options.get("data_root")
    if root is not None and not is_data_uri(root) and not Path(root).is_dir():  # a URI is fetched by load_dataset
        raise DataNotOnNode(
            f"dataset {name}: the data folder {root} (--data-root on the driver) does not exist on Ray node "
            f"{socket.gethostname()}; give --data-root as the workers see it (the same mount on every node), or "
            "copy the data to that path on each node")
    cache = node_cache_dir(cache_dir)
    if "cache_dir" not in options:
        os.environ[CACHE_ENV] = str(cache)  # read by the loaders when the run gave no cache_dir option
    cache.mkdir(parents=True, exist_ok=True)
    ident = hashlib.sha256(json.dumps([name, sorted(options.items())], default=str).encode()).hexdigest()[:16]
    with FileLock(str(cache / f".lock-{name}-{ident}")):  # one task per node decodes; the others wait, then map
        return load_dataset(spec, name, node_cache=str(cache))  # a --data-root URI: fetched into this cache too


def _cell_scratch(task: Any, prefix: str | None) -> Path:
    """A node-local folder for one cell of one run (the same for a retry on this node, so it can resume here)."""
    import hashlib
    import tempfile

    run = hashlib.sha256(str(prefix or task.run_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / "colorbench-cells" / run / task.entry.dir


def _collect_files(scratch: Path, task: Any, prefix: str | None) -> dict[str, bytes | str]:
    """The files a cell wrote under its scratch run folder (cross-domain sets, ``--save-checkpoints``), by path in the
    run directory: their bytes, or (with ``--storage``) the storage location they were uploaded to."""
    from colorbench.engine import storage

    files: dict[str, bytes | str] = {}
    for path in sorted(p for p in scratch.rglob("*") if p.is_file()):
        rel = path.relative_to(scratch).as_posix()
        if rel.endswith("/checkpoint/last.pt") or "/.tmp-" in f"/{rel}":
            continue  # the resume checkpoint stays behind; half-written folders are not files of the run
        if prefix is None:
            files[rel] = path.read_bytes()
        else:
            where = storage.join(prefix, "files", rel)
            storage.write_bytes(where, path.read_bytes())
            files[rel] = where
    final = f"cells/{task.entry.dir}/checkpoint/final.pt"
    if prefix is not None and storage.exists(storage.join(prefix, final)):
        files[final] = storage.join(prefix, final)  # --save-checkpoints, written straight to the storage
    return files


def _ray_cell(task: Any, env: Mapping[str, str], prefix: str | None = None, cache_dir: str | None = None) -> Any:
    """Body of a Ray task: compute one cell on whichever node Ray chose, without the driver's disk.

    Checkpoints go to ``--storage`` (``prefix``, the run's folder there), else to a node-local folder; the dataset
    comes from the node's cache (:func:`node_dataset`); the cell's files travel back in ``CellResult.files``.
    """
    import shutil

    os.environ.update(env)
    from colorbench.engine import storage
    from colorbench.engine.cell import execute_cell, failed_result

    label = cell_label(task.entry)
    scratch = _cell_scratch(task, prefix)
    cell_rel = f"cells/{task.entry.dir}"
    task.run_dir = str(scratch)
    task.checkpoint_dir = (storage.join(prefix, cell_rel, "checkpoint") if prefix is not None
                           else str(scratch / cell_rel / "checkpoint"))
    import ray

    def log(text: str) -> None:
        print(f"[{label}] {text.strip()}", flush=True)

    if ray.is_initialized():  # in a Ray task (always, but for tests that call this body directly)
        gpus = ray.get_gpu_ids()  # Ray shows this task only the GPUs it reserved (CUDA_VISIBLE_DEVICES)
        log(f"on Ray node {ray.get_runtime_context().get_node_id()[:12]}" + (f", GPU(s) {gpus}" if gpus else ", CPU"))
    try:
        data = node_dataset(task.spec, task.entry.dataset, cache_dir)
    except DataNotOnNode as exc:
        return failed_result(task, f"DataNotOnNode: {exc}")
    result = execute_cell(task, data, log=log)
    result.files = _collect_files(scratch, task, prefix)
    if prefix is not None:
        _predictions_to_storage(result, prefix)
    shutil.rmtree(scratch, ignore_errors=True)
    return result


def _predictions_to_storage(result: Any, prefix: str) -> None:
    """With ``--storage``, each row's colorized test split (the largest array of a cell, up to 64 MiB by default)
    goes to ``<prefix>/cells/<cell>/predictions.npz`` and the row carries its location instead of the array."""
    import io

    import numpy as np

    from colorbench.engine import storage

    for row in result.rows:
        if row.predictions is None or row.entry.dir is None:
            continue
        pred, ids = row.predictions
        buf = io.BytesIO()
        np.savez(buf, pred=pred, ids=np.asarray(ids, dtype=str))
        where = storage.join(prefix, "cells", row.entry.dir, "predictions.npz")
        storage.write_bytes(where, buf.getvalue())
        row.predictions = where


def fetch_predictions(result: Any) -> None:
    """Replace each row's predictions location (:func:`_predictions_to_storage`) with the arrays it holds.

    Raises:
        FileNotFoundError: the location is gone from the storage.
    """
    import io

    import numpy as np

    from colorbench.engine import storage

    for row in result.rows:
        if isinstance(row.predictions, str):
            data = storage.read_bytes(row.predictions)
            if data is None:
                raise FileNotFoundError(f"the cell's predictions are no longer in the storage at {row.predictions}")
            with np.load(io.BytesIO(data)) as z:
                row.predictions = (z["pred"], [str(i) for i in z["ids"]])


def write_cell_files(files: Mapping[str, bytes | str], run_dir: str | Path) -> None:
    """Write the files a Ray cell sent back (bytes, or a ``--storage`` location to copy) into the run directory.

    Raises:
        ValueError: a path outside the run directory; FileNotFoundError: a storage location that is gone.
    """
    from colorbench.core.fsio import atomic_write_bytes
    from colorbench.engine import storage

    root = Path(run_dir).resolve()
    for rel, content in files.items():
        target = (root / rel).resolve()
        if not target.is_relative_to(root):
            raise ValueError(f"a cell sent back the file {rel!r}, which is outside the run directory")
        data = content if isinstance(content, bytes) else storage.read_bytes(content)
        if data is None:
            raise FileNotFoundError(f"the cell's file {rel} is no longer in the storage at {content}")
        atomic_write_bytes(target, data)


def _probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast when a Ray address does not answer (``ray.init`` itself waits for minutes)."""
    import socket

    if address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--ray-address {address!r} is not HOST:PORT (or ray://HOST:PORT, or auto)")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ValueError(f"the Ray cluster at {address!r} does not answer ({exc}); check the address (`ray status` "
                         "on the head node) or leave --ray-address out for a local Ray instance") from None


class RayExecutor(Executor):
    """One Ray task per cell; a local Ray instance unless ``--ray-address`` names a cluster."""

    name = "ray"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        try:
            import ray
        except ImportError:
            raise ValueError("--executor ray needs Ray, which is not installed: pip install 'colorbench[ray]'") from None
        self.ray = ray
        self.started_here = False
        if not ray.is_initialized():
            if spec.ray_address:
                _probe(spec.ray_address)
            kwargs: dict[str, Any] = {"include_dashboard": False, "ignore_reinit_error": True,
                                      "log_to_driver": bool(spec.progress)}
            if spec.ray_address:
                kwargs["address"] = spec.ray_address
            else:
                kwargs["num_cpus"] = available_cores()
            try:
                ray.init(**kwargs)
            except Exception as exc:  # noqa: BLE001 - Ray raises ConnectionError, RuntimeError, ... here
                where = f"the Ray cluster at {spec.ray_address!r}" if spec.ray_address else "a local Ray instance"
                raise ValueError(f"could not start or reach {where}: {type(exc).__name__}: {exc}. Check the "
                                 "address (ray status on the head node) or leave --ray-address out for a local "
                                 "instance") from None
            self.started_here = True
        self.threads = max(1, int(spec.cpus_per_cell))
        try:
            from colorbench.engine import storage

            self.storage = storage.normalize(spec.storage) if getattr(spec, "storage", None) else None
            self.device, self.gpus_per_cell = ray_gpus_per_cell(spec.device, spec.gpus_per_cell,
                                                                ray.cluster_resources().get("GPU", 0))
        except ValueError:
            self.close()
            raise

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.spec.ray_address or "local", "device": self.device,
                "cpus_per_cell": self.spec.cpus_per_cell, "gpus_per_cell": self.gpus_per_cell,
                "storage": self.storage, "node_cache_dir": getattr(self.spec, "node_cache_dir", None),
                "files": "through --storage" if self.storage else "in each task's return value"}

    def thread_policy(self) -> dict[str, Any]:
        return {"cores": available_cores(), "torch_threads_per_cell": self.threads,
                "policy": "int(--cpus-per-cell), set in each Ray task before it computes"}

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine import storage
        from colorbench.engine.cell import KILL_HOOK_ENV, PAUSE_HOOK_ENV, failed_result

        ray = self.ray
        remote = ray.remote(_ray_cell).options(num_cpus=self.spec.cpus_per_cell, num_gpus=self.gpus_per_cell,
                                               max_retries=self.spec.retries, retry_exceptions=False)
        env = {k: os.environ[k] for k in (KILL_HOOK_ENV, PAUSE_HOOK_ENV) if os.environ.get(k)}
        cache_dir = getattr(self.spec, "node_cache_dir", None)
        refs = {}
        for task in longest_first(tasks, datasets):  # Ray starts them about in this order (engine.costs)
            task.threads, task.device = self.threads, self.device
            prefix = storage.run_prefix(self.storage, task.run_dir) if self.storage and task.run_dir else None
            started(task)
            refs[remote.remote(task, env, prefix, cache_dir)] = (task, prefix)
        self._busy()  # the cells are Ray's now
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    task, prefix = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                        fetch_predictions(result)  # through --storage
                        if result.files and task.run_dir:
                            write_cell_files(result.files, task.run_dir)
                        if result.resumed_from is not None:
                            _prefixed(log, task.entry)(f"resumed from its checkpoint of epoch {result.resumed_from}")
                    except (OSError, ValueError) as exc:  # a file of the cell could not be brought back
                        result = failed_result(task, f"{type(exc).__name__}: the cell finished but its files could "
                                                     f"not be written into the run directory: {exc}")
                    except ray.exceptions.RayError as exc:
                        n = self.spec.retries + 1
                        task.entry.attempts = n
                        kind = type(exc).__name__
                        first = (str(exc).strip().splitlines() or [""])[0]
                        result = failed_result(task, f"WorkerDied: the Ray worker computing this cell failed ({kind}: "
                                                     f"{first}) in each of {n} attempt(s) (--retries "
                                                     f"{self.spec.retries})")
                    finished(task, result)
                    if prefix is not None:  # written into the run directory: nothing left to resume or fetch
                        storage.remove(storage.join(prefix, "cells", task.entry.dir, "checkpoint", "last.pt"))
                        for row in result.rows:
                            if row.entry.dir:
                                storage.remove(storage.join(prefix, "cells", row.entry.dir, "predictions.npz"))
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
