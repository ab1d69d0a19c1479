"""``colorbench evaluate`` and ``colorbench export``: score a folder of predictions, write a method's colorizations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from colorbench.commands.args import dataset_options, split_names
from colorbench.engine.predictions import MANIFEST, RESIZE_PRED_POLICIES, evaluate_folder, export_predictions


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="a run directory")
    p.add_argument("--method", required=True, help="the method (row) whose colorized test split is written")
    p.add_argument("--out", required=True, help="folder to write the PNGs and manifest.json into")
    p.add_argument("--dataset", default=None, help="the dataset, when the run has several")
    p.add_argument("--preset", default=None, help="the preset, when the run has several")
    p.add_argument("--seed", type=int, default=None, help="the seed, when the run has several")


def run_export(args: argparse.Namespace) -> int:
    out = export_predictions(args.run_dir, args.method, args.out, dataset=args.dataset, preset=args.preset,
                             seed=args.seed)
    n = len(json.loads((out / MANIFEST).read_text())["files"])
    print(f"wrote {n} PNGs and {MANIFEST} to {out.resolve()}")
    return 0


def add_evaluate_arguments(p: argparse.ArgumentParser) -> None:
    from colorbench.engine.plugins import add_plugin_argument

    p.add_argument("--pred", required=True, metavar="DIR", help="folder of colorized images, one per test image")
    p.add_argument("--name", required=True, metavar="LABEL", help="the row's name in the leaderboard")
    p.add_argument("--out", required=True, metavar="RUN", help="run directory to add the row to (made if absent)")
    p.add_argument("--dataset", default=None, help="dataset whose test split is the reference (as in `run`)")
    p.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE", help="dataset option, repeatable")
    p.add_argument("--image-size", type=int, default=None, help="shortcut for --dataset-option size=N")
    p.add_argument("--data-root", default=None, help="shortcut for --dataset-option data_root=DIR")
    p.add_argument("--target", default=None, metavar="DIR", help="a folder of real images instead of --dataset")
    p.add_argument("--resize-pred", default=None, choices=list(RESIZE_PRED_POLICIES),
                   help="resize predictions of another size to the real image's size (recorded); default: refuse")
    p.add_argument("--protocol", default="colorbench", help="evaluation protocol (`colorbench list protocols`)")
    p.add_argument("--metrics", type=split_names, default=None, help="comma-separated metrics (default: the protocol's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--lpips-weights", default=None)
    p.add_argument("--fid-weights", default=None)
    p.add_argument("--save-predictions", choices=("auto", "always", "never"), default="auto",
                   help="keep a copy of the decoded predictions in the run (auto: when <= 64 MiB; samples always)")
    p.add_argument("--decode-workers", type=int, default=None, metavar="N",
                   help="processes decoding both folders (default: none below 512 images, else cores - 1, at most 4)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes scoring the batches (same values; default 1: the fewest CPU seconds, more "
                        "shorten the wall time where cores are free)")
    add_plugin_argument(p)


def run_evaluate(args: argparse.Namespace) -> int:
    from colorbench.core.allocator import keep_freed_memory

    keep_freed_memory()  # before the decoding and scoring processes start (they inherit it): 0.77x the CPU
    opts = dict(dataset_options(args.dataset_option, args.image_size, args.data_root)) if args.dataset else None
    evaluate_folder(args.pred, args.out, args.name, dataset=args.dataset, dataset_options=opts, target=args.target,
                    resize_pred=args.resize_pred, protocol=args.protocol, metrics=args.metrics, device=args.device,
                    eval_batch_size=args.eval_batch_size, lpips_weights=args.lpips_weights,
                    fid_weights=args.fid_weights, save_predictions=args.save_predictions,
                    workers=args.decode_workers, score_workers=args.workers)
    from colorbench.reports import write_report

    written = write_report(args.out)
    board = Path(args.out) / "leaderboard.md"
    if board.is_file():
        print(f"\n{board.read_text()}")
    print(f"report written to {Path(args.out).resolve()} ({', '.join(sorted(written))})")
    return 0
