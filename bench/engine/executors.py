"""Executors: where the cells of a run are computed (``--executor local|process|ray``).

Every executor takes :class:`~colorbench.engine.cell.CellTask` objects and hands each
:class:`~colorbench.engine.cell.CellResult` back to the driver, which alone writes the run directory. A method error
is already a failed row inside the worker; what an executor adds is surviving the worker itself dying
(segfault, out of memory, ``kill -9``): the cell is run again up to ``--retries`` times and then becomes a failed
row naming how its worker died, so the grid always completes.

* ``local``: in this process, one cell after the other (a crash here ends the run; rerunning resumes it).
* ``process``: one fresh process per cell (``spawn``), ``--workers`` at a time, each with
  ``cores // workers`` torch threads, set before it computes (two processes with a full thread pool each on
  shared cores made a training step 60-100x slower, see benchmarks/test_engine_speed.py).
* ``ray``: one Ray task per cell (``--ray-address`` of a cluster, else a local instance); results travel back
  to the driver, so workers need no shared filesystem (their checkpoints stay on their own disk).
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import signal
import traceback
from abc import ABC, abstractmethod
from multiprocessing.connection import wait
from typing import Any, Callable, Mapping, Sequence

from colorbench.core.device import available_cores

Started = Callable[[Any], None]
Finished = Callable[[Any, Any], None]


def make_executor(spec: Any) -> "Executor":
    """The executor a spec names (its settings checked: unknown name, Ray missing or not answering)."""
    if spec.executor == "local":
        return LocalExecutor(spec)
    if spec.executor == "process":
        return ProcessExecutor(spec)
    if spec.executor == "ray":
        return RayExecutor(spec)
    raise ValueError(f"unknown executor {spec.executor!r}; choose local, process or ray")


class Executor(ABC):
    name = ""

    def __init__(self, spec: Any) -> None:
        self.spec = spec

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "retries": self.spec.retries}

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
    name = "local"

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import execute_cell

        for task in tasks:
            started(task)
            finished(task, execute_cell(task, datasets[task.entry.dataset], log))


def _signal_name(exitcode: int | None) -> str:
    if exitcode is None:
        return "no exit code"
    if exitcode < 0:
        try:
            return f"killed by signal {signal.Signals(-exitcode).name} (exit {exitcode})"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit status {exitcode}"


def _child(conn: Any, task: Any) -> None:
    """Body of a process worker: compute one cell and send its result."""
    try:
        from colorbench.engine.cell import execute_cell

        result = execute_cell(task, None, log=print)
        conn.send(("ok", result))
    except BaseException as exc:  # noqa: BLE001 - report anything (a failure to pickle included) to the driver
        conn.send(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        conn.close()


class ProcessExecutor(Executor):
    """One ``spawn`` process per cell, ``workers`` at a time, each with ``cores // workers`` torch threads."""

    name = "process"

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.workers = spec.workers
        self.threads = max(1, available_cores() // self.workers)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "workers": self.workers, "start_method": "spawn"}

    def thread_policy(self) -> dict[str, Any]:
        return {"cores": available_cores(), "torch_threads_per_cell": self.threads,
                "policy": "cores // workers, set in each worker before it computes"}

    def _start(self, ctx: Any, task: Any) -> tuple[Any, Any]:
        recv, send = ctx.Pipe(duplex=False)
        task.threads = self.threads
        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(self.threads)  # the child's pools
        try:
            proc = ctx.Process(target=_child, args=(send, task), daemon=True,
                               name=f"colorbench-{task.entry.method}-s{task.entry.seed}")
            proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        send.close()  # the child holds its end; EOF here means the child is gone
        return proc, recv

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import failed_result

        ctx = mp.get_context("spawn")
        queue = collections.deque(tasks)
        attempts: dict[int, int] = collections.Counter()
        running: dict[Any, tuple[Any, Any]] = {}  # recv conn -> (process, task)
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    task = queue.popleft()
                    attempts[id(task)] += 1
                    started(task)
                    proc, recv = self._start(ctx, task)
                    running[recv] = (proc, task)
                for recv in wait(list(running)):
                    proc, task = running.pop(recv)
                    message = None
                    try:
                        message = recv.recv()
                    except (EOFError, OSError):
                        pass  # the worker died before sending anything
                    recv.close()
                    proc.join()
                    if message is not None and message[0] == "ok":
                        finished(task, message[1])
                    elif message is not None:
                        finished(task, failed_result(task, f"worker error: {message[1]}", message[2]))
                    else:
                        how = _signal_name(proc.exitcode)
                        n = attempts[id(task)]
                        if n <= self.spec.retries:
                            log(f"    worker of {task.entry.method} (seed {task.entry.seed}) died ({how}); "
                                f"retrying ({n}/{self.spec.retries})")
                            queue.appendleft(task)
                        else:
                            finished(task, failed_result(
                                task, f"WorkerDied: the worker computing this cell died ({how}) in each of {n} "
                                      f"attempt(s) (--retries {self.spec.retries}); a segfault, the out-of-memory "
                                      "killer or kill -9"))
        finally:
            for proc, _ in running.values():  # interrupted (Ctrl-C): leave no orphan workers
                proc.kill()
                proc.join()


def _ray_cell(task: Any, env: Mapping[str, str]) -> Any:
    os.environ.update(env)
    from colorbench.engine.cell import execute_cell

    return execute_cell(task, None, log=print)


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

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "address": self.spec.ray_address or "local",
                "cpus_per_cell": self.spec.cpus_per_cell, "gpus_per_cell": self.spec.gpus_per_cell}

    def thread_policy(self) -> dict[str, Any]:
        return {"cores": available_cores(), "torch_threads_per_cell": self.threads,
                "policy": "int(--cpus-per-cell), set in each Ray task before it computes"}

    def run(self, tasks, datasets, started, finished, log) -> None:
        from colorbench.engine.cell import KILL_HOOK_ENV, failed_result

        ray = self.ray
        remote = ray.remote(_ray_cell).options(num_cpus=self.spec.cpus_per_cell, num_gpus=self.spec.gpus_per_cell,
                                               max_retries=self.spec.retries, retry_exceptions=False)
        env = {KILL_HOOK_ENV: os.environ[KILL_HOOK_ENV]} if os.environ.get(KILL_HOOK_ENV) else {}
        refs = {}
        for task in tasks:
            task.threads, task.listeners = self.threads, []
            started(task)
            refs[remote.remote(task, env)] = task
        try:
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1)
                for ref in ready:
                    task = refs.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as exc:
                        n = self.spec.retries + 1
                        task.entry.attempts = n
                        kind = type(exc).__name__
                        first = (str(exc).strip().splitlines() or [""])[0]
                        result = failed_result(task, f"WorkerDied: the Ray worker computing this cell failed ({kind}: "
                                                     f"{first}) in each of {n} attempt(s) (--retries "
                                                     f"{self.spec.retries})")
                    finished(task, result)
        finally:
            for ref in refs:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        if self.started_here:
            self.ray.shutdown()
