"""The grid and engine options of ``colorbench run`` (datasets x methods x seeds, executors, resume, replay)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, got {text!r}") from None


def add_arguments(r: argparse.ArgumentParser) -> None:
    r.add_argument("--datasets", type=_names, default=(),
                   help="comma-separated datasets of a grid (default: --dataset); cells are dataset x method x seed")
    r.add_argument("--seeds", type=_seeds, default=(), help="comma-separated seeds of a grid (default: --seed)")
    r.add_argument("--executor", default="local", help="local (default, in this process), process or ray")
    r.add_argument("--workers", type=int, default=1, help="--executor process: cells computed at once")
    r.add_argument("--retries", type=int, default=1,
                   help="a cell whose worker dies (segfault, OOM, kill -9) is run again N times, then is a failed row")
    r.add_argument("--ray-address", default=None, help="--executor ray: address of a running cluster (default: local)")
    r.add_argument("--cpus-per-cell", type=float, default=1.0, help="--executor ray: CPUs (and torch threads) per cell")
    r.add_argument("--gpus-per-cell", type=float, default=0.0, help="--executor ray: GPUs per cell")
    r.add_argument("--save-predictions", choices=("auto", "always", "never"), default="auto",
                   help="keep each cell's colorized test split in predictions.npz: auto (when <= 64 MiB), always, never")
    r.add_argument("--rerun-failed", action="store_true", help="rerun cells whose stored result failed")
    r.add_argument("--loader-workers", type=int, default=None, metavar="N",
                   help="processes gathering training batches (default: 0 on the CPU, up to 4 on CUDA)")
    r.add_argument("--checkpoint-every-steps", type=int, default=0, metavar="K",
                   help="also checkpoint a training cell every K steps within an epoch (resume mid-epoch)")
    r.add_argument("--checkpoint-every-s", type=float, default=600.0, metavar="S",
                   help="also checkpoint a training cell S seconds after its last checkpoint (default 600; 0: off)")
    r.add_argument("--spec", default=None, metavar="RUN/run.json",
                   help="replay the spec of a run.json (other options are ignored, except --out and --no-progress)")


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
            "retries": args.retries, "ray_address": args.ray_address, "cpus_per_cell": args.cpus_per_cell,
            "gpus_per_cell": args.gpus_per_cell, "save_predictions": args.save_predictions,
            "rerun_failed": args.rerun_failed, "loader_workers": args.loader_workers,
            "checkpoint_every_steps": args.checkpoint_every_steps, "checkpoint_every_s": args.checkpoint_every_s}
