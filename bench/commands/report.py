"""``colorbench report`` and ``colorbench cross-domain``: the stages that read or extend a finished run."""

from __future__ import annotations

import argparse

REPORT = {"help": "(re)write the report of an existing run directory"}
CROSS_DOMAIN = {"help": "(re)train the cross-domain classifiers of a run made with --cross-domain"}


def add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")


def add_cross_domain_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir")
    p.add_argument("--classifier", default="quick", metavar="PRESET",
                   help="quick (default), paper (by dataset: AlexNet-BN for CIFAR, else VGG-16), paper-alexnet, "
                        "paper-vgg16")
    p.add_argument("--epochs", type=int, default=None, help="override the classifier preset's epochs")
    p.add_argument("--seed", type=int, default=None, help="classifier seed (default: the run's seed)")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run_report(args: argparse.Namespace) -> int:
    from colorbench.reports import write_report

    for kind, path in write_report(args.run_dir).items():
        print(f"{kind}: {path}")
    return 0


def run_cross_domain(args: argparse.Namespace) -> int:
    from colorbench.engine.crossdomain import evaluate_run

    result = evaluate_run(args.run_dir, args.classifier, seed=args.seed, device=args.device, epochs=args.epochs,
                          progress=not args.no_progress)
    print(result.summary()[["train", "avg", "own", "on_real_color"]].round(2).to_string(index=False))
    print(f"cross-domain results written to {args.run_dir}/cross_domain (total {result.timings['total_s']:.1f} s)")
    return 0
