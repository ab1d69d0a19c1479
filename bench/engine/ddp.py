"""One cell on several processes (``--nproc-per-cell N``): data-parallel training of one method.

Each of the ``N`` processes (ranks) builds the same method from the same seed, walks the same global batches
and takes the rows ``rank::N`` of each (``engine.data.EpochSampler`` with ``rank``/``world``: each rank gathers and
decodes only its own rows); before every optimizer step the gradients of that optimizer's parameters
are averaged over the ranks, weighted by each rank's share of the global batch, so every rank takes the step a
single process would take on the whole global batch (what DistributedDataParallel computes). Rank 0 alone writes
checkpoints, evaluates and returns the cell's result. The backend is gloo on the CPU and NCCL on CUDA, where rank
``r`` trains on ``cuda:r`` and BatchNorm layers become SyncBatchNorm.

Why not ``torch.nn.parallel.DistributedDataParallel`` itself: it wraps one module with one forward and one
backward per step and renames its state-dict keys (``module.``), while colorbench's methods own several networks
and optimizers (a GAN steps D after its own backward, then G after another one, through D) and save their
networks under their own names for resume. Averaging each optimizer's gradients in its step pre-hook
(``Optimizer.register_step_pre_hook``) with ``torch.distributed.all_reduce`` is the same arithmetic and needs no
change to any method.

Equality with one process (tested on this CPU machine with 2 gloo processes, ``tests/test_ddp.py``): methods
whose per-image computation does not depend on the other images of the batch (no BatchNorm on the CPU, no random
draws per batch such as dropout) reach the single-process parameters up to float summation order (max abs
difference < 1e-5 after a few steps); one process through this path is bit-identical to the local executor. On
the CPU, BatchNorm uses each rank's local batch statistics (SyncBatchNorm needs CUDA), so such methods differ
from one process like DistributedDataParallel does.

This module imports torch only when called (the executors module, which imports it, stays torch-free at import).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

#: Environment variable: seconds a rank waits in a collective (gradient or loss all-reduce, broadcast) for the other
#: ranks before it fails (``timeout`` of ``init_process_group``, gloo and NCCL; default 600): a rank that died never
#: leaves the others waiting for ever. The launcher stops the survivors at once anyway; this bounds the wait of ranks
#: started by torchrun.
TIMEOUT_ENV = "COLORBENCH_DDP_TIMEOUT_S"


def collective_timeout_s() -> float:
    """:data:`TIMEOUT_ENV` read when a rank joins its group (not at import: the fork server imports this module
    once, before a run or a test sets it).

    Raises:
        ValueError: the variable is not a positive number.
    """
    raw = os.environ.get(TIMEOUT_ENV, "600")
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds > 0:
        raise ValueError(f"{TIMEOUT_ENV}={raw!r} must be a positive number of seconds (the default is 600)")
    return seconds


class RankDied(RuntimeError):
    """A rank of a data-parallel cell died (a signal, ``os._exit``): the cell may be retried (``--retries``)."""


#: Modules the fork server imports once; every worker (pool worker or rank) is forked from it with them loaded.
PRELOAD = ["colorbench.engine.cell", "torch._dynamo"]  # torch._dynamo: every optimizer imports it (seconds)


def worker_context() -> Any:
    """``forkserver`` where the platform has it (Linux, macOS), else ``spawn``. The fork server is a clean,
    single-threaded process that imports :data:`PRELOAD` once; forking a worker from it costs milliseconds instead
    of the seconds a spawned process spends importing torch and the methods (and a killed worker's replacement
    starts at once). Forking the driver itself is not safe: it may hold OpenMP and metric thread pools."""
    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        return ctx
    return mp.get_context("spawn")


@dataclass
class Distributed:
    """This process's place in a data-parallel cell (passed to ``engine.cell.execute_cell``).

    Attributes:
        rank: this process's index, 0 to ``world - 1``; rank 0 writes, evaluates and returns the result.
        world: processes training the cell.
        backend: ``gloo`` (CPU) or ``nccl`` (CUDA).
    """

    rank: int
    world: int
    backend: str = "gloo"
    weight: float = field(default=1.0, init=False)  # this rank's share of the current global batch

    def shard(self, batch: Any) -> Any:
        """This rank's rows of a global batch (``rank::world``), with its share for the gradient average.

        Raises:
            ValueError: the global batch has fewer images than there are ranks.
        """
        import torch

        n = len(batch)
        rows = torch.arange(self.rank, n, self.world)
        self.take_share(len(rows), n)
        ids = [batch.ids[i] for i in rows.tolist()]
        rgb_ids = None if batch.rgb_ids is None else [batch.rgb_ids[i] for i in rows.tolist()]
        take = lambda t: None if t is None else t[rows.to(t.device)]  # noqa: E731
        return type(batch)(gray=take(batch.gray), rgb=take(batch.rgb), labels=take(batch.labels), ids=ids,
                           masks=take(batch.masks), grey_convention=batch.grey_convention, paired=batch.paired,
                           rgb_ids=rgb_ids)

    def take_share(self, rows: int, total: int) -> None:
        """This rank trains on ``rows`` of a global batch of ``total`` images: its weight in the averages.

        Raises:
            ValueError: the global batch has fewer images than there are ranks.
        """
        if total < self.world:
            raise ValueError(f"a training batch of {total} image(s) cannot be split over --nproc-per-cell "
                             f"{self.world} processes (each needs one image at least); use fewer processes, or a "
                             "batch size and training-set size whose last batch holds at least that many images")
        self.weight = rows / total

    def attach(self, method: Any) -> None:
        """Make ``method``'s training data-parallel: the same starting parameters and buffers as rank 0, and each
        optimizer's gradients averaged over the ranks (weighted by their shares) before it steps."""
        import torch
        import torch.distributed as dist

        for net in method.networks().values():
            if self.backend == "nccl":
                torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            with torch.no_grad():
                for t in [*net.parameters(), *net.buffers()]:
                    dist.broadcast(t, src=0)

        def average(optimizer: Any, args: Any, kwargs: Any) -> None:
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(self.weight)
                        dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)

        for optimizer in method.optimizers().values():
            optimizer.register_step_pre_hook(average)

    def average_losses(self, losses: dict[str, float]) -> dict[str, float]:
        """The losses of the global batch: each rank's losses weighted by its share, summed over the ranks."""
        import torch
        import torch.distributed as dist

        if not losses:
            return losses
        keys = sorted(losses)
        t = torch.tensor([losses[k] * self.weight for k in keys], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return dict(zip(keys, t.tolist()))

    def all_reduce_sum(self, t: Any) -> Any:
        """``t`` summed over the ranks, in place (on the CPU with gloo, on this rank's GPU with NCCL)."""
        import torch.distributed as dist

        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def describe(self) -> dict[str, Any]:
        return {"processes": self.world, "backend": self.backend,
                "rule": "rows rank::N of each global batch (each rank gathers only its own); each optimizer's gradients averaged over the ranks "
                        "(weighted by their rows) before it steps; rank 0 evaluates (colorbench.engine.ddp)"}


def send(conn: Any, obj: Any) -> None:
    """Send ``obj`` by value (standard pickle). A plain ``Connection.send`` uses the pickler that torch extends:
    it sends a tensor as a handle to shared memory that the receiver fetches from the sender, which fails once the
    sender has exited (a rank that finished, a worker that died)."""
    import pickle

    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def receive(conn: Any) -> Any:
    """What :func:`send` sent (EOFError when the other end is gone)."""
    import pickle

    return pickle.loads(conn.recv_bytes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(fn: Callable[..., Any], task: Any, rank: int, world: int, port: int, conn: Any,
               environ: dict[str, str] | None = None) -> None:
    """Body of one rank: join the process group, compute the cell, send rank 0's result (others send None)."""
    import datetime

    import torch
    import torch.distributed as dist

    os.environ.update(environ or {})  # the driver's COLORBENCH_* settings (the fork server started before them)

    cuda = (task.device or task.spec.device).startswith("cuda")
    backend = "nccl" if cuda else "gloo"
    if cuda:
        task.device = f"cuda:{rank}"
        torch.cuda.set_device(rank)
    try:
        dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=collective_timeout_s()))
        try:
            log = (lambda text: send(conn, ("log", text))) if rank == 0 else (lambda text: None)
            result = fn(task, None, log, Distributed(rank, world, backend))
            send(conn, ("ok", result if rank == 0 else None))
        finally:
            dist.destroy_process_group()
    except BaseException as exc:  # noqa: BLE001 - report anything to the launcher
        send(conn, ("error", f"{type(exc).__name__} in rank {rank}: {exc}", traceback.format_exc()))


def launch(fn: Callable[..., Any], task: Any, nproc: int, log: Callable[[str], None]) -> Any:
    """Compute one cell on ``nproc`` processes: ``fn(task, None, log, Distributed(rank, nproc))`` in each.

    Args:
        fn: the cell function (``engine.cell.execute_cell``); rank 0's return value is returned.
        task: the cell (its ``threads`` are set to each rank's share of the cores).
        nproc: processes.
        log: where rank 0's log lines go.

    Raises:
        RankDied: a rank died (``rank 1 died (signal 9)``); the other ranks are stopped at once.
        RuntimeError: a rank raised (its error and traceback).
    """
    from multiprocessing.connection import wait

    ctx = worker_context()
    port = _free_port()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    task.threads = max(1, cores // nproc)
    procs, conns = [], []
    for rank in range(nproc):
        ours, theirs = ctx.Pipe(duplex=False)
        environ = {k: v for k, v in os.environ.items() if k.startswith("COLORBENCH_")}
        p = ctx.Process(target=_rank_main, args=(fn, task, rank, nproc, port, theirs, environ), daemon=False,
                        name=f"colorbench-rank-{rank}")
        p.start()
        theirs.close()
        procs.append(p)
        conns.append(ours)
    result, errors, pending, died = None, [], dict(zip(conns, range(nproc))), False
    try:
        while pending:
            for conn in wait(list(pending)):
                rank = pending[conn]
                try:
                    message = receive(conn)
                except (EOFError, OSError):
                    procs[rank].join()
                    code = procs[rank].exitcode
                    how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
                    errors.append(f"rank {rank} died ({how})")
                    died = True
                    del pending[conn]
                    continue
                if message[0] == "log":
                    log(message[1])
                    continue
                del pending[conn]
                if message[0] == "ok":
                    result = message[1] if rank == 0 else result
                else:
                    errors.append(f"{message[1]}\n{message[2]}")
            if errors:
                break  # the other ranks wait on a collective that will never come
    finally:
        for p in procs:
            p.join(timeout=10 if not errors else 0.5)
            if p.is_alive():
                p.kill()
                p.join()
        for c in conns:
            c.close()
    if errors:
        raise (RankDied if died else RuntimeError)("; ".join(errors))
    return result


# --- torchrun: every rank started from outside (``torchrun --nproc-per-node N -m colorbench.commands.cli run``) ----
#
# When a rank of a torchrun launch dies, torchrun's elastic agent stops the others (SIGTERM) and, with
# ``--max-restarts N``, starts the whole group again; otherwise the launch ends with the agent's summary naming the
# rank and how it ended. So a cell whose group broke must never become a failed row here: the restarted ranks
# (or a rerun of the command) resume it from its last checkpoint. Rank 0 tells the two apart after a cell raises:
# each other rank reports the end of each cell in the launch's key-value store (:func:`follow_cells`), and rank 0
# waits for those reports (:func:`await_ranks`): all there, the error is the cell's own (a failed row); one missing,
# a rank is gone (:class:`GroupBroken`). The agent's SIGTERM becomes :class:`LaunchStopped` (:func:`stop_on_sigterm`).
_TORCHRUN: Distributed | None = None  # this process's place, once :func:`join_torchrun` joined the group
_CELLS_SEEN = 0  # cells this rank was sent in this launch (the same count on every rank): names the store's keys
TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


class GroupBroken(RuntimeError):
    """A rank of a torchrun launch stopped answering during a cell (it died, or hangs): the cell is left
    unfinished, with its last checkpoint, rather than recorded as failed."""


class LaunchStopped(BaseException):
    """This rank was sent SIGTERM (torchrun's agent stops every rank when one fails). A ``BaseException``, like
    ``KeyboardInterrupt``: no cell turns it into a failed row, and the run directory's lock is released on the way
    out."""


def stop_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`LaunchStopped` in this process (rank 0 of a torchrun launch), so it
    leaves the run directory as an interrupted run does instead of vanishing mid-write."""
    import signal

    def stop(signum: int, frame: Any) -> None:
        raise LaunchStopped("stopped by SIGTERM")

    signal.signal(signal.SIGTERM, stop)


def torchrun_world() -> tuple[int, int, int] | None:
    """``(rank, world, local_rank)`` when torchrun (or any launcher setting its variables: ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) started this process with a world of 2 or
    more; None otherwise (a world of 1 is an ordinary run)."""
    if not all(os.environ.get(k) for k in TORCHRUN_ENV):
        return None
    world = int(os.environ["WORLD_SIZE"])
    return (int(os.environ["RANK"]), world, int(os.environ["LOCAL_RANK"])) if world > 1 else None


def join_torchrun(device: str) -> Distributed:
    """Join the process group of a torchrun launch (``env://``'s store, under a prefix of the launch's attempt;
    gloo, or NCCL on ``cuda:LOCAL_RANK``)."""
    global _TORCHRUN
    import datetime

    import torch
    import torch.distributed as dist

    rank, world, local = torchrun_world()  # type: ignore[misc]
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(local)
    backend = "nccl" if cuda else "gloo"
    timeout = datetime.timedelta(seconds=collective_timeout_s())
    store, _, _ = next(dist.rendezvous("env://", rank=rank, world_size=world, timeout=timeout))
    # torchrun's static rendezvous (--master-port) keeps one store for every restart of a launch, and the process
    # group's own keys name no attempt: a restarted rank could read the address the rank it replaces had published
    # and fail at once (gloo: "connectFullMesh failed ... Connection refused"; about 1 launch in 3 of the restart
    # test here). Each attempt gets its own keys.
    store = dist.PrefixStore(f"colorbench/attempt-{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}", store)
    dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
    _TORCHRUN = Distributed(rank, world, backend)
    return _TORCHRUN


def leave_torchrun() -> None:
    """Leave the launch's process group before this process exits (local to this rank; errors ignored). Left to
    the interpreter's exit, gloo's group was torn down with its threads still running: "terminate called without
    an active exception", SIGABRT, and torchrun's agent then stopped the other ranks (seen in about 1 launch in 3
    of the torchrun tests on the 2-core machine)."""
    global _TORCHRUN
    import torch.distributed as dist

    try:
        if dist.is_initialized():
            dist.destroy_process_group()
    except Exception:  # noqa: BLE001 - leaving must not turn a finished launch into a failed one
        pass
    _TORCHRUN = None


def exit_torchrun(status: int) -> NoReturn:
    """End this rank of a torchrun launch once its work is done and written: leave the process group, flush the
    standard streams, and exit without the interpreter's teardown (``os._exit``). Torn down at exit, torch's
    distributed state still aborted a finished rank now and then even after :func:`leave_torchrun` ("terminate
    called without an active exception", SIGABRT; 1 launch in about 20 of the torchrun tests), and torchrun then
    stopped the other ranks and failed the launch. Every file of the run is written and closed by now (rank 0
    writes through atomic renames; the other ranks write nothing)."""
    import sys

    leave_torchrun()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def torchrun_member() -> Distributed | None:
    """This process's place in a torchrun launch it joined, else None."""
    return _TORCHRUN


def rank_device(task: Any, dist_: Distributed) -> None:
    """Put ``task`` on this rank's GPU (``cuda:LOCAL_RANK``) when the run is on CUDA."""
    if (task.device or task.spec.device).startswith("cuda"):
        task.device = f"cuda:{os.environ.get('LOCAL_RANK', dist_.rank)}"


def _done_key(cell: int, rank: int) -> str:
    restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")  # a restarted group starts its count again
    return f"colorbench/restart-{restart}/cell-{cell}/rank-{rank}"


def await_ranks(store: Any, cell: int, world: int, timeout_s: float, poll_s: float = 0.05) -> list[int]:
    """Wait until ranks 1..world-1 have reported the end of cell number ``cell`` (:func:`follow_cells`), or
    ``timeout_s`` passed; return the ranks that did not report. Polls (``store.check``), so that a SIGTERM is
    handled while it waits.

    Args:
        store: the launch's key-value store (``torch.distributed.Store``: ``check(keys) -> bool``).
        cell: the cell's number in this launch.
        world: ranks of the launch.
        timeout_s: how long a live rank may still need (it may be waiting in a collective for up to
            :func:`collective_timeout_s` before it gives up on rank 0).
        poll_s: seconds between checks.
    """
    import time

    deadline = time.monotonic() + timeout_s
    missing = list(range(1, world))
    while True:
        missing = [r for r in missing if not store.check([_done_key(cell, r)])]
        if not missing or time.monotonic() >= deadline:
            return missing
        time.sleep(poll_s)


def _store() -> Any:
    import torch.distributed.distributed_c10d as c10d

    return c10d._get_default_store()  # the key-value store the group was built on (torchrun's, or env://'s)


def lead_cell(fn: Callable[..., Any], task: Any, data: Any, log: Callable[[str], None]) -> Any:
    """Rank 0 of a torchrun launch: send ``task`` to the other ranks, then compute it with them.

    Raises:
        GroupBroken: the cell raised and a rank did not report its end within :func:`collective_timeout_s` plus as
            much again, at most 30 s (a live rank reports once its own collective timed out; one that does not is
            gone, and torchrun names it); the cell's error is the cause.
        Exception: the cell's own error, every rank having reported (the executor records a failed row).
    """
    global _CELLS_SEEN
    import torch.distributed as dist

    _CELLS_SEEN += 1
    cell = _CELLS_SEEN
    try:
        dist.broadcast_object_list([task], src=0)
        rank_device(task, _TORCHRUN)  # type: ignore[arg-type]
        return fn(task, data, log, _TORCHRUN)
    except Exception as exc:
        world = _TORCHRUN.world  # type: ignore[union-attr]
        timeout = collective_timeout_s()
        missing = await_ranks(_store(), cell, world, timeout + min(30.0, timeout))
        if missing:
            first = (str(exc).strip().splitlines() or [""])[0]
            raise GroupBroken(f"rank(s) {', '.join(map(str, missing))} of the torchrun launch stopped answering "
                              f"during this cell ({type(exc).__name__}: {first})") from exc
        raise


def end_cells() -> None:
    """Rank 0 of a torchrun launch: tell the other ranks that no cell is left."""
    import torch.distributed as dist

    dist.broadcast_object_list([None], src=0)


def follow_cells(fn: Callable[..., Any]) -> int:
    """Ranks 1..N-1 of a torchrun launch: compute each cell rank 0 sends with it (``fn(task, None, log,
    dist)``: the same data order, rank 0 writes) until it sends None; returns the cells computed. The end of each
    cell, failed or not, is reported in the launch's store (:func:`await_ranks`). A cell that raises here is
    reported on stderr; rank 0 records it as failed (it fails there too, or waits at most
    :func:`collective_timeout_s` for this rank)."""
    global _CELLS_SEEN
    import sys

    import torch.distributed as dist

    done = 0
    while True:
        box: list[Any] = [None]
        dist.broadcast_object_list(box, src=0)
        task = box[0]
        if task is None:
            return done
        _CELLS_SEEN += 1
        rank_device(task, _TORCHRUN)  # type: ignore[arg-type]
        try:
            fn(task, None, lambda text: None, _TORCHRUN)
        except Exception:  # noqa: BLE001 - rank 0 records the failure
            print(f"rank {_TORCHRUN.rank}: {traceback.format_exc()}", file=sys.stderr)  # type: ignore[union-attr]
        _store().set(_done_key(_CELLS_SEEN, _TORCHRUN.rank), "1")  # type: ignore[union-attr]
        done += 1
