"""The grid and engine options of ``colorbench run`` (datasets x methods x seeds, executors, resume, replay)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any


#: Environment variable that sets ``--executor``'s default (e.g. ``local`` on a machine shared with others).
EXECUTOR_ENV = "COLORBENCH_EXECUTOR"


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, got {text!r}") from None


def _workers(text: str) -> int | str:
    if text.strip() == "auto":
        return "auto"
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--workers expects a number of workers or auto, got {text!r}") from None


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--datasets", type=_names, default=(),
                   help="comma-separated datasets of a grid (default: --dataset); cells are dataset x method x seed")
    r.add_argument("--seeds", type=_seeds, default=(), help="comma-separated seeds of a grid (default: --seed)")
    r.add_argument("--executor", default=os.environ.get(EXECUTOR_ENV) or "auto",
                   help="auto (default: a pool of process workers when --workers auto picks more than one, else "
                        f"local), local (in this process), process (persistent worker processes) or ray; "
                        f"{EXECUTOR_ENV} sets the default")
    r.add_argument("--workers", type=_workers, default="auto",
                   help="--executor auto|process: cells computed at once, or auto (default: one per core on the "
                        "CPU, one per GPU slot on CUDA, at most one per cell; run.json says what it chose and why)")
    r.add_argument("--nproc-per-cell", type=int, default=1, metavar="N",
                   help="train each cell on N processes together (data-parallel: rows rank::N of each batch, "
                        "gradients averaged; gloo on the CPU, NCCL with one GPU each on CUDA)")
    r.add_argument("--retries", type=int, default=1,
                   help="a cell whose worker dies (segfault, OOM, kill -9) is run again N times, then is a failed row")
    r.add_argument("--ray-address", default=None, help="--executor ray: address of a running cluster (default: local)")
    r.add_argument("--storage", default=None, metavar="PATH|URI",
                   help="--executor ray: where cells keep checkpoints and files when the nodes share no disk: a "
                        "folder every node sees, or file://, s3://, gs://, memory:// (fsspec); a cell retried on "
                        "another node resumes from its last checkpoint there")
    r.add_argument("--node-cache-dir", default=None, metavar="DIR",
                   help="--executor ray: each node's folder of decoded datasets (default: the node's user cache, "
                        "~/.cache/colorbench/datasets)")
    r.add_argument("--cpus-per-cell", type=float, default=1.0, help="--executor ray: CPUs (and torch threads) per cell")
    r.add_argument("--gpus-per-cell", type=float, default=None,
                   help="--executor process|ray: a cell's share of a GPU (default: 1 when the run is on CUDA, "
                        "else 0); 0.5 puts two cells on each GPU")
    r.add_argument("--save-predictions", choices=("auto", "always", "never"), default="auto",
                   help="keep each cell's colorized test split in predictions.npz: auto (when <= 64 MiB), always, never")
    r.add_argument("--rerun-failed", action="store_true", help="rerun cells whose stored result failed")
    r.add_argument("--loader-workers", type=int, default=None, metavar="N",
                   help="processes gathering training batches (default: 0 on the CPU, up to 4 on CUDA)")
    r.add_argument("--checkpoint-every-steps", type=int, default=0, metavar="K",
                   help="also checkpoint a training cell every K steps within an epoch (resume mid-epoch)")
    r.add_argument("--checkpoint-every-s", type=float, default=600.0, metavar="S",
                   help="also checkpoint a training cell S seconds after its last checkpoint (default 600; 0: off)")
    r.add_argument("--sync-every-steps", type=int, default=16, metavar="K",
                   help="bring the training losses to the host every K steps (default 16: one GPU sync per 16 "
                        "steps, not one per step; the numbers are the same; a NaN loss fails the cell at the "
                        "next sync, naming its step)")
    r.add_argument("--channels-last", action="store_true",
                   help="networks and training batches in channels_last memory format (faster convolutions on "
                        "recent GPUs; same numbers up to float rounding; its own cell key)")
    r.add_argument("--compile", action="store_true",
                   help="torch.compile each method's networks (TorchInductor: needs a C compiler on the CPU; "
                        "the first steps are slow while it compiles; its own cell key)")
    r.add_argument("--spec", default=None, metavar="RUN/run.json",
                   help="replay the spec of a run.json (other options are ignored, except --out and --no-progress)")


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def start_workers_early(args: argparse.Namespace) -> None:
    """Start the process pool's fork server before this process imports the engine, so that the two imports of
    torch and the methods overlap (``--executor auto|process``; a replayed ``--spec`` decides later). Also starts
    the window over which the pool's size measures the cores other processes keep busy (:mod:`colorbench.core.cpuload`)."""
    from colorbench.core import cpuload

    cpuload.mark()
    one_cell = (len(args.methods) == 1 and len(args.seeds) <= 1
                and len(args.datasets) <= 1)
    if args.executor == "auto" and (one_cell or _cores() < 2):
        return  # auto will compute in this process
    if args.spec is None and args.executor in ("auto", "process") and args.workers != 1:
        from colorbench.engine.executors import start_fork_server

        start_fork_server()


def spec_from_file(path: str, progress: bool) -> Any:
    """The RunSpec stored in a run.json (``spec``)."""
    from colorbench.engine.spec import RunSpec

    p = Path(path)
    if p.is_dir():
        p = p / "run.json"
    if not p.is_file():
        raise FileNotFoundError(f"--spec {path}: no such file (give RUN/run.json of an earlier run)")
    try:
        d = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"--spec {p} is not valid JSON: {exc}") from None
    spec = d.get("spec") if isinstance(d, dict) else None
    if not isinstance(spec, dict):
        raise ValueError(f"--spec {p} holds no 'spec' object (is it a colorbench run.json?)")
    spec = dict(spec, progress=progress)
    return RunSpec.from_dict(spec)


def engine_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"datasets": args.datasets, "seeds": args.seeds, "executor": args.executor, "workers": args.workers,
            "retries": args.retries, "nproc_per_cell": args.nproc_per_cell, "ray_address": args.ray_address,
            "storage": args.storage, "node_cache_dir": args.node_cache_dir, "cpus_per_cell": args.cpus_per_cell,
            "gpus_per_cell": args.gpus_per_cell, "save_predictions": args.save_predictions,
            "rerun_failed": args.rerun_failed, "loader_workers": args.loader_workers,
            "checkpoint_every_steps": args.checkpoint_every_steps, "checkpoint_every_s": args.checkpoint_every_s,
            "sync_every_steps": args.sync_every_steps, "channels_last": args.channels_last, "compile": args.compile}
