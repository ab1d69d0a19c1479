"""``colorbench run``: train, colorize, evaluate and write a report (the cells, the stages, then the report)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from colorbench.commands.args import dataset_options, split_names
from colorbench.commands.exit import EXIT_FAILED, EXIT_OK, EXIT_STOPPED, EXIT_USAGE, EXIT_WRITE
from colorbench.commands.grid_cli import add_arguments as add_grid_arguments
from colorbench.core.grey import GREY_CONVENTIONS, Grey
from colorbench.engine.plugins import add_plugin_argument

PARSER = {"help": "train, colorize, evaluate and write a report",
          "epilog": f"exit status: 0 when every requested method succeeded; {EXIT_FAILED} when any failed (after "
                    f"every record and the report are written); {EXIT_USAGE} on a bad argument; {EXIT_WRITE} when an "
                    "output file cannot be written"}


def _record_given(parser: argparse.ArgumentParser) -> None:
    """Make every option of ``parser`` note its dest in ``namespace._given`` when the user gives it, so that
    options that would be silently ignored can be refused (argparse keeps no record of it)."""
    parser.set_defaults(_given=frozenset())
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        base = type(action)

        def call(self, parser, namespace, values, option_string=None, _base=base):
            namespace._given = frozenset(getattr(namespace, "_given", frozenset()) | {self.dest})
            return _base.__call__(self, parser, namespace, values, option_string)

        action.__class__ = type(f"Given{base.__name__}", (base,), {"__call__": call})


#: What --spec leaves to the command line (everything else comes from the stored spec).
_SPEC_KEEPS = {"spec", "out", "no_progress"}


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse option combinations whose effect would be silently lost (ValueError: exit 2 with the message)."""
    given = set(getattr(args, "_given", ()))
    if args.spec:
        from colorbench.commands.grid_cli import spec_from_file

        spec_from_file(args.spec, progress=False)  # a missing or unreadable --spec is named first
        ignored = sorted(given - _SPEC_KEEPS)
        if ignored:
            flags = ", ".join("--" + d.replace("_", "-") for d in ignored)
            raise ValueError(f"--spec replays {args.spec}; {flags} would be ignored: drop them, or give the run's "
                             "options without --spec")
        return
    if "methods" in given and not args.methods:
        raise ValueError("--methods is empty; name at least one method, or omit --methods to run every method the "
                         "dataset can serve")
    if "metrics" in given and not args.metrics:
        raise ValueError("--metrics is empty; name at least one metric, or omit --metrics for the protocol's")
    if "dataset" in given and args.datasets:
        raise ValueError(f"--dataset {args.dataset} and --datasets {','.join(args.datasets)} both given; --datasets "
                         "(a grid) wins over --dataset, so give one of them")
    if "datasets" in given and not args.datasets:
        raise ValueError("--datasets is empty; name at least one dataset, or omit it")
    if "seeds" in given and not args.seeds:
        raise ValueError("--seeds is empty; name at least one seed, or omit it")
    executor = getattr(args, "executor", "local")
    if "workers" in given and executor == "local":
        raise ValueError("--workers applies to --executor process (the local executor runs one cell at a time in "
                         "this process); add --executor process")
    for dest in ("cpus_per_cell", "ray_address", "storage", "node_cache_dir"):
        if dest in given and executor != "ray":
            raise ValueError(f"--{dest.replace('_', '-')} applies to --executor ray only; add --executor ray or drop it")


def _protocol_metrics(name: str) -> list[str]:
    """A protocol's metric names for the help text, from the catalog (no torch import: the parser is built before
    the process pool's fork server starts, see start_workers_early), else from the live protocol table."""
    from colorbench.commands import catalog

    stored = catalog.load()
    if stored is not None:
        return next(list(p["metrics"]) for p in stored["protocols"] if p["name"] == name)
    from colorbench.engine.protocols import get_protocol

    return list(get_protocol(name).metrics)


def add_arguments(p: argparse.ArgumentParser) -> None:
    from colorbench.engine.choices import UNPAIRED_PROTOCOLS

    default_metrics = _protocol_metrics("colorbench")

    p.add_argument("--methods", type=split_names, default=(),
                   help="comma-separated method names (default: every method the dataset can serve; the others "
                        "are listed as skipped with the reason)")
    p.add_argument("--dataset", default="photos", help="dataset name (default: photos, built in and offline)")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (see `colorbench list datasets`); DATASET.KEY=VALUE applies to one dataset of --datasets")
    p.add_argument("--image-size", type=int, default=None, help="shortcut for --dataset-option size=N")
    p.add_argument("--data-root", default=None,
                   help="folder holding the standard datasets (default: $COLORBENCH_DATA_ROOT), or a storage URI "
                        "(s3://, gs://, file://: image-folder, cyclegan-folder and ucmerced, fetched once per node); "
                        "shortcut for --dataset-option data_root=DIR")
    p.add_argument("--skip-corrupt", action="store_true",
                   help="skip undecodable image files and count them in the record (standard datasets)")
    p.add_argument("--preset", default="quick", help="method preset: quick (CPU, seconds per epoch) or paper")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's number of epochs")
    p.add_argument("--eval-every", type=int, default=None, help="also evaluate every N epochs (curves)")
    p.add_argument("--metrics", type=split_names, default=None,
                   help=f"comma-separated metric names (default: the protocol's; colorbench: {','.join(default_metrics)})")
    p.add_argument("--grey", choices=GREY_CONVENTIONS, default=None,
                   help=f"grey convention of the input given to every method (default: the protocol's; colorbench: "
                        f"{Grey.BT601.value} luma)")
    p.add_argument("--protocol", default="colorbench",
                   help="evaluation protocol: test images, resize, grey, metric variants (`colorbench list protocols`)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    p.add_argument("--out", default=None, help="output directory (default: colorbench-runs/<time>-<dataset>-<preset>)")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--lpips-weights", default=None, help="path to the LPIPS backbone's ImageNet weights file")
    p.add_argument("--fid-weights", default=None, help="path to the Inception weights file of the fid metric")
    p.add_argument("--unpaired-protocol", choices=UNPAIRED_PROTOCOLS, default="disjoint",
                   help="domains of unpaired methods: disjoint halves of the training split (default) or the "
                        "same images independently shuffled (as the papers did)")
    p.add_argument("--all-outputs", action="store_true",
                   help="also evaluate each method's alternative outputs (e.g. pyramid outputs) as rows of their own")
    p.add_argument("--save-checkpoints", action="store_true", help="save each trained method's state dict")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--cross-domain", action="store_true",
                   help="keep each method's colorized train/test sets and train cross-domain classifiers on them")
    add_plugin_argument(p)
    p.add_argument("--cross-domain-classifier", default="quick", metavar="PRESET",
                   help="classifier preset for --cross-domain: quick (small CNN, native size), paper, "
                        "paper-alexnet or paper-vgg16 (256x256 inputs)")
    add_grid_arguments(p)
    _record_given(p)


def run(args: argparse.Namespace) -> int:
    check_arguments(args)
    from colorbench.commands.grid_cli import engine_options, spec_from_file, start_workers_early

    start_workers_early(args)  # the workers' imports overlap this process's
    from colorbench.engine.grid import run as run_grid
    from colorbench.engine.protocols import get_protocol
    from colorbench.engine.spec import RunSpec

    proto = get_protocol(args.protocol)
    spec = spec_from_file(args.spec, progress=not args.no_progress) if args.spec else RunSpec(
        methods=args.methods, preset=args.preset, dataset=args.dataset,
        dataset_options=dataset_options(args.dataset_option, args.image_size, args.data_root, args.skip_corrupt),
        metrics=args.metrics if args.metrics is not None else proto.metrics, protocol=proto.name,
        epochs=args.epochs, eval_every=args.eval_every, seed=args.seed, device=args.device,
        grey_convention=args.grey or proto.grey, eval_batch_size=args.eval_batch_size, lpips_weights=args.lpips_weights, fid_weights=args.fid_weights,
        save_checkpoints=args.save_checkpoints, progress=not args.no_progress,
        unpaired_protocol=args.unpaired_protocol, all_outputs=args.all_outputs,
        cross_domain=args.cross_domain, cross_domain_classifier=args.cross_domain_classifier,
        plugins=tuple(args.plugin), **engine_options(args),
    )
    from colorbench.engine.ddp import torchrun_world

    if torchrun_world() is not None:  # started by torchrun: every rank trains each cell, rank 0 writes
        import dataclasses

        from colorbench.core.device import resolve_device
        from colorbench.engine.cell import execute_cell
        from colorbench.engine.ddp import exit_torchrun, follow_cells, join_torchrun, leave_torchrun

        member = join_torchrun(str(resolve_device(spec.device)))
        try:
            if member.rank != 0:
                follow_cells(execute_cell)
                status = EXIT_OK
            else:
                spec = dataclasses.replace(spec, nproc_per_cell=member.world)  # its own cell keys, as --nproc-per-cell
                status = _run_torchrun_lead(spec, args)
        except BaseException:
            leave_torchrun()
            raise
        exit_torchrun(status)
    t0 = time.perf_counter()
    return _finish(run_grid(spec, out=args.out), t0)


def _run_torchrun_lead(spec: object, args: argparse.Namespace) -> int:
    """Rank 0 of a torchrun launch: the grid, ended cleanly (cell left resumable, exit status 143) when a rank is
    lost or torchrun's agent sends SIGTERM (it stops every rank when one fails; ``--max-restarts`` then starts them
    again, and they resume the cell from its last checkpoint)."""
    from colorbench.engine.ddp import GroupBroken, LaunchStopped, stop_on_sigterm
    from colorbench.engine.grid import run as run_grid

    stop_on_sigterm()
    t0 = time.perf_counter()
    try:
        run_dir = run_grid(spec, out=args.out)
    except (GroupBroken, LaunchStopped) as exc:
        why = ("stopped by SIGTERM: torchrun stops every rank when one of them fails (its summary names the rank "
               "and how it ended)") if isinstance(exc, LaunchStopped) else str(exc)
        print(f"colorbench: rank 0: {why}. The unfinished cell keeps its last checkpoint in the run directory: "
              "torchrun --max-restarts N restarts the ranks, which resume it, or run the same command again; exit "
              f"status {EXIT_STOPPED}", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    return _finish(run_dir, t0)


def _finish(run_dir: Path, t0: float) -> int:
    """Print the leaderboard and the wall time; the exit status from the records."""
    print(f"\n{(run_dir / 'leaderboard.md').read_text()}" if (run_dir / "leaderboard.md").exists() else "")
    print(f"report written to {run_dir.resolve()}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    from colorbench.results.rundir import RunDir

    failed = [r.method for r in RunDir(run_dir).records() if r.status != "ok"]
    if failed:
        print(f"colorbench: {len(failed)} method(s) failed: {', '.join(failed)} (see the leaderboard's failed runs); "
              f"exit status {EXIT_FAILED}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
