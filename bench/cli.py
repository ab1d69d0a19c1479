"""The ``colorbench`` command line: ``run``, ``list``, ``describe``, ``report``, ``check``, ``weights``, ``study``.

Exit status (see :data:`EXIT_STATUS`): 0 success; 1 the command finished and wrote everything, but a requested
method failed (``run``) or a value drifted (``check``); 2 a bad argument or input, found before any work;
3 an output file could not be written (e.g. the disk is full); 141 stdout was closed early (``| head``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, Sequence

from colorbench.color import DEFAULT_GREY, GREY_CONVENTIONS
from colorbench.registry import UnknownNameError
from colorbench.rundir import RunDirLocked

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_WRITE, EXIT_PIPE = 0, 1, 2, 3, 141
EXIT_STATUS = {
    EXIT_OK: "success (run: every requested method succeeded)",
    EXIT_FAILED: "finished and everything was written, but a requested method failed (run) or a check failed",
    EXIT_USAGE: "bad argument or input (nothing was run)",
    EXIT_WRITE: "an output file could not be written (e.g. the disk is full); the message names it",
    EXIT_PIPE: "standard output was closed by the reader (e.g. `| head`)",
}


def _version() -> str:
    import importlib.metadata as md

    try:
        return md.version("colorbench")
    except md.PackageNotFoundError:
        return "unknown (not installed)"


def _split_names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def _parse_value(text: str) -> Any:
    """Dataset option values: JSON when it parses (numbers, booleans, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _dataset_options(items: list[str], image_size: int | None, data_root: str | None = None,
                     skip_corrupt: bool = False) -> tuple[tuple[str, Any], ...]:
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"colorbench: --dataset-option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip()] = _parse_value(v.strip())
    if image_size is not None:
        opts["size"] = image_size
    if data_root is not None:  # only the standard datasets take these (the built-in ones would reject them)
        opts["data_root"] = data_root
    if skip_corrupt:
        opts["skip_corrupt"] = True
    return tuple(sorted(opts.items()))


def build_parser() -> argparse.ArgumentParser:
    from colorbench.plugins import add_plugin_argument
    from colorbench.runner import DEFAULT_METRICS, UNPAIRED_PROTOCOLS

    p = argparse.ArgumentParser(
        prog="colorbench", description="Train, colorize and evaluate colorization methods.",
        epilog="exit status: " + "; ".join(f"{code} {what}" for code, what in EXIT_STATUS.items()))
    p.add_argument("--version", action="version", version=f"colorbench {_version()}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train, colorize, evaluate and write a report",
                       epilog=f"exit status: 0 when every requested method succeeded; {EXIT_FAILED} when any failed "
                              f"(after every record and the report are written); {EXIT_USAGE} on a bad argument; "
                              f"{EXIT_WRITE} when an output file cannot be written")
    r.add_argument("--methods", type=_split_names, default=(),
                   help="comma-separated method names (default: every method the dataset can serve; the others "
                        "are listed as skipped with the reason)")
    r.add_argument("--dataset", default="photos", help="dataset name (default: photos, built in and offline)")
    r.add_argument("--dataset-option", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, repeatable (see `colorbench list datasets`); DATASET.KEY=VALUE applies to one dataset of --datasets")
    r.add_argument("--image-size", type=int, default=None, help="shortcut for --dataset-option size=N")
    r.add_argument("--data-root", default=None,
                   help="folder holding the standard datasets (default: $COLORBENCH_DATA_ROOT); "
                        "shortcut for --dataset-option data_root=DIR")
    r.add_argument("--skip-corrupt", action="store_true",
                   help="skip undecodable image files and count them in the record (standard datasets)")
    r.add_argument("--preset", default="quick", help="method preset: quick (CPU, seconds per epoch) or paper")
    r.add_argument("--epochs", type=int, default=None, help="override the preset's number of epochs")
    r.add_argument("--eval-every", type=int, default=None, help="also evaluate every N epochs (curves)")
    r.add_argument("--metrics", type=_split_names, default=None,
                   help=f"comma-separated metric names (default: the protocol's; colorbench: {','.join(DEFAULT_METRICS)})")
    r.add_argument("--grey", choices=GREY_CONVENTIONS, default=None,
                   help=f"grey convention of the input given to every method (default: the protocol's; colorbench: "
                        f"{DEFAULT_GREY} luma)")
    r.add_argument("--protocol", default="colorbench",
                   help="evaluation protocol: test images, resize, grey, metric variants (`colorbench list protocols`)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--device", default="auto", help="auto (CUDA if available), cpu, cuda, cuda:1, ...")
    r.add_argument("--out", default=None, help="output directory (default: colorbench-runs/<time>-<dataset>-<preset>)")
    r.add_argument("--eval-batch-size", type=int, default=64)
    r.add_argument("--lpips-weights", default=None, help="path to the LPIPS backbone's ImageNet weights file")
    r.add_argument("--fid-weights", default=None, help="path to the Inception weights file of the fid metric")
    r.add_argument("--unpaired-protocol", choices=UNPAIRED_PROTOCOLS, default="disjoint",
                   help="domains of unpaired methods: disjoint halves of the training split (default) or the "
                        "same images independently shuffled (as the papers did)")
    r.add_argument("--all-outputs", action="store_true",
                   help="also evaluate each method's alternative outputs (e.g. pyramid outputs) as rows of their own")
    r.add_argument("--save-checkpoints", action="store_true", help="save each trained method's state dict")
    r.add_argument("--no-progress", action="store_true", help="no progress bars")
    r.add_argument("--cross-domain", action="store_true",
                   help="keep each method's colorized train/test sets and train cross-domain classifiers on them")
    add_plugin_argument(r)
    r.add_argument("--cross-domain-classifier", default="quick", metavar="PRESET",
                   help="classifier preset for --cross-domain: quick (small CNN, native size), paper, "
                        "paper-alexnet or paper-vgg16 (256x256 inputs)")
    from colorbench.grid_cli import add_arguments as add_grid_arguments

    add_grid_arguments(r)

    ls = sub.add_parser("list", help="list methods, datasets, metrics or presets")
    ls.add_argument("what", choices=("methods", "datasets", "metrics", "presets", "protocols"))
    ls.add_argument("--json", action="store_true")
    add_plugin_argument(ls)

    d = sub.add_parser("describe", help="a method's card, preset options and parameter counts")
    d.add_argument("method")
    d.add_argument("--preset", default="quick")
    d.add_argument("--json", action="store_true")
    add_plugin_argument(d)

    rep = sub.add_parser("report", help="(re)write the report of an existing run directory")
    rep.add_argument("run_dir")

    from colorbench.check import add_arguments as add_check_arguments

    add_check_arguments(sub.add_parser("check", help="compare metric values with a baseline run; exit 1 on drift"))
    from colorbench.predictions import add_evaluate_arguments, add_export_arguments

    add_export_arguments(sub.add_parser("export", help="write a method's colorized test split as PNGs + manifest"))
    add_evaluate_arguments(sub.add_parser("evaluate", help="score a folder of colorizations into a run directory"))
    from colorbench.recipes import add_arguments as add_reproduce_arguments

    add_reproduce_arguments(sub.add_parser("reproduce", help="run a seed paper's table or figure as a recipe (--list)"))
    from colorbench.weights import add_arguments as add_weights_arguments

    add_weights_arguments(sub.add_parser("weights", help="list, fetch or verify the pretrained weights files"))

    from colorbench.status import add_arguments as add_status_arguments

    add_status_arguments(sub.add_parser("status", help="cells of a run directory: done, running, failed, pending"))

    from colorbench.study import add_arguments as add_study_arguments

    add_study_arguments(sub.add_parser("study", help="serve a 2AFC naturalness study of a run (real vs colorized)"))

    cd = sub.add_parser("cross-domain", help="(re)train the cross-domain classifiers of a run made with --cross-domain")
    cd.add_argument("run_dir")
    cd.add_argument("--classifier", default="quick", metavar="PRESET",
                    help="quick (default), paper (by dataset: AlexNet-BN for CIFAR, else VGG-16), paper-alexnet, "
                         "paper-vgg16")
    cd.add_argument("--epochs", type=int, default=None, help="override the classifier preset's epochs")
    cd.add_argument("--seed", type=int, default=None, help="classifier seed (default: the run's seed)")
    cd.add_argument("--device", default="auto")
    cd.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def _listing(what: str) -> list[dict[str, Any]]:
    from colorbench.datasets import DATASETS
    from colorbench.methods import METHODS
    from colorbench.metrics import METRICS

    if what in ("methods", "presets"):
        rows = []
        for name, cls in METHODS.items():
            training = "paired" if cls.card.paired else "unpaired"
            row = {"name": name, "aliases": METHODS.aliases_of(name), "title": cls.card.title,
                   "paired": cls.card.paired, "trainable": cls.card.trainable,
                   "training": training if cls.card.trainable else "none",
                   "color_space": cls.card.color_space, "presets": sorted(cls.presets)}
            if what == "presets":
                row["values"] = {k: dict(v) for k, v in cls.presets.items()}
            rows.append(row)
        return rows
    if what == "datasets":
        return [{"name": n, "description": c.description, "options": c.options()} for n, c in DATASETS.items()]
    if what == "protocols":
        from colorbench.metrics.protocols import protocol_rows

        return protocol_rows()
    return [{"name": n, "outputs": dict(c.outputs), "version": c.version, "per_image": c.per_image}
            for n, c in METRICS.items()]


def _print_table(rows: list[dict[str, Any]], what: str) -> None:
    if what == "methods":  # columns as wide as their longest cell, so none runs into the next
        cells = [(r["name"], r["training"], r["color_space"], ",".join(r["presets"]),
                  r["title"] + (f" (alias: {', '.join(r['aliases'])})" if r["aliases"] else "")) for r in rows]
        header = ("method", "training", "space", "presets", "title")
        widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]
        for line in [header, *cells]:
            print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)) + "  " + line[4])
        return
    if what == "presets":
        width = max((len(r["name"]) for r in rows), default=0)
        pwidth = max((len(p) for r in rows for p in r["values"]), default=0)
        for row in rows:
            for preset, values in row["values"].items():
                print(f"{row['name']:<{width}}  {preset:<{pwidth}}  {json.dumps(values, default=str)}")
        return
    for row in rows:
        if what == "protocols":
            print(f"{row['name']:<24} v{row['version']:<3} {row['title']}")
            print(f"{'':<24} test images: {row['test_images']}; grey {row['grey']}; metrics {', '.join(row['metrics'])}")
        elif what == "datasets":
            print(f"{row['name']:<16} {row['description']}")
            print(f"{'':<16} options: {json.dumps(row['options'], default=str)}")
        else:
            outs = ", ".join(f"{k} {'↑' if hib else '↓'}" for k, hib in row["outputs"].items())
            print(f"{row['name']:<18} v{row['version']:<4} {outs}")


def main(argv: Sequence[str] | None = None) -> int:
    from colorbench.fsio import WriteError

    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:  # the reader closed the pipe (`colorbench list presets | head`): stop quietly
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python would otherwise complain again when flushing at exit
        return EXIT_PIPE
    except WriteError as exc:
        print(f"colorbench: error: {exc}", file=sys.stderr)
        return EXIT_WRITE
    except (UnknownNameError, ValueError, FileNotFoundError, RunDirLocked) as exc:
        print(f"colorbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _dispatch(args: argparse.Namespace) -> int:
    if hasattr(args, "plugin"):  # installed entry points and --plugin files/modules, before any method lookup
        from colorbench.plugins import load_plugins

        load_plugins(args.plugin)
    if args.command == "list":
        rows = _listing(args.what)
        print(json.dumps(rows, indent=2, default=str)) if args.json else _print_table(rows, args.what)
        return 0
    if args.command == "describe":
        from colorbench.methods import METHODS

        info = METHODS.get(args.method).describe(args.preset)
        if args.json:
            print(json.dumps(info, indent=2, default=str))
        else:
            card = info["card"]
            print(f"{card['name']}: {card['title']}\n  paper: {card['paper'] or '- (a plain baseline)'}")
            training = ("paired" if card["paired"] else "unpaired") if card["trainable"] else "nothing to train"
            print(f"  training: {training}, colour space {card['color_space']}")
            for c in card["choices"]:
                print(f"  choice: {c}")
            print(f"  preset {info['preset']} (presets: {', '.join(info['presets'])}):")
            if info.get("scale"):  # the image size / dataset a paper preset was defined on
                sc = info["scale"]
                print(f"    defined on: {'any image size' if sc['any_size'] else sc['sizes']} ({sc['source']})")
            for k, v in info["config"].items():
                print(f"    {k} = {v}")
            for k, v in info["parameters"].items():
                print(f"  parameters {k}: {v:,}")
            for k, v in info.get("architecture", {}).items():  # methods that describe their layers
                print(f"  architecture {k}: {v}")
        return 0
    if args.command == "reproduce":
        from colorbench.recipes import run_reproduce

        return run_reproduce(args)
    if args.command == "check":
        from colorbench.check import run_check

        return run_check(args)
    if args.command == "status":
        from colorbench.status import run_status

        return run_status(args)
    if args.command in ("export", "evaluate"):
        from colorbench.predictions import run_evaluate, run_export

        return run_export(args) if args.command == "export" else run_evaluate(args)
    if args.command == "weights":
        from colorbench.weights import run_weights

        return run_weights(args)
    if args.command == "study":
        from colorbench.study import run_study

        return run_study(args)
    if args.command == "report":
        from colorbench.reports import write_report

        for kind, path in write_report(args.run_dir).items():
            print(f"{kind}: {path}")
        return 0
    if args.command == "cross-domain":
        from colorbench.crossdomain import evaluate_run

        result = evaluate_run(args.run_dir, args.classifier, seed=args.seed, device=args.device, epochs=args.epochs,
                              progress=not args.no_progress)
        print(result.summary()[["train", "avg", "own", "on_real_color"]].round(2).to_string(index=False))
        print(f"cross-domain results written to {args.run_dir}/cross_domain (total {result.timings['total_s']:.1f} s)")
        return 0
    from colorbench.grid_cli import engine_options, spec_from_file
    from colorbench.metrics.protocols import get_protocol
    from colorbench.runner import RunSpec, run

    proto = get_protocol(args.protocol)
    spec = spec_from_file(args.spec, progress=not args.no_progress) if args.spec else RunSpec(
        methods=args.methods, preset=args.preset, dataset=args.dataset,
        dataset_options=_dataset_options(args.dataset_option, args.image_size, args.data_root, args.skip_corrupt),
        metrics=args.metrics if args.metrics is not None else proto.metrics, protocol=proto.name,
        epochs=args.epochs, eval_every=args.eval_every, seed=args.seed, device=args.device,
        grey_convention=args.grey or proto.grey, eval_batch_size=args.eval_batch_size, lpips_weights=args.lpips_weights, fid_weights=args.fid_weights,
        save_checkpoints=args.save_checkpoints, progress=not args.no_progress,
        unpaired_protocol=args.unpaired_protocol, all_outputs=args.all_outputs,
        cross_domain=args.cross_domain, cross_domain_classifier=args.cross_domain_classifier,
        plugins=tuple(args.plugin), **engine_options(args),
    )
    t0 = time.perf_counter()
    run_dir = run(spec, out=args.out)
    print(f"\n{(run_dir / 'leaderboard.md').read_text()}" if (run_dir / "leaderboard.md").exists() else "")
    print(f"report written to {run_dir.resolve()}")
    print(f"wall time: {time.perf_counter() - t0:.1f} s")
    from colorbench.rundir import RunDir

    failed = [r.method for r in RunDir(run_dir).records() if r.status != "ok"]
    if failed:
        print(f"colorbench: {len(failed)} method(s) failed: {', '.join(failed)} (see the leaderboard's failed runs); "
              f"exit status {EXIT_FAILED}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
