"""``colorbench reproduce``: run a seed paper's table or figure as a recipe (:mod:`colorbench.engine.recipes`), or
list the recipes and the published numbers of the reference methods (:mod:`colorbench.engine.published`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from colorbench.engine.recipes import RECIPES, SCALES, get, run_recipe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="recipe name (see --list)")
    parser.add_argument("--list", action="store_true", help="list the recipes")
    parser.add_argument("--scale", choices=SCALES, default="quick",
                        help="quick (built-in data, minutes on a CPU) or paper (the paper's setup; GPU and datasets)")
    parser.add_argument("--out", default=None, help="output folder (default: colorbench-recipes/<name>-<scale>)")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds (default: the recipe's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-root", default=None, help="folder holding the standard datasets (paper scale)")
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--executor", choices=("local", "process", "ray"), default=None,
                        help="how each stage's cells run (as colorbench run --executor; default local)")
    parser.add_argument("--workers", type=int, default=None, help="--executor process: cells computed at once")
    parser.add_argument("--ray-address", default=None, help="--executor ray: the cluster's address")


def run_reproduce(args: argparse.Namespace) -> int:
    if args.list or not args.name:
        for r in RECIPES.values():
            n = len(r.paper_values()["rows"])
            print(f"{r.name:<18} {r.seed_file[:3]} {r.source:<45} {n:>3} paper values  {r.title}")
        from colorbench.engine.published import table_rows

        print("\nPublished numbers of the reference methods (colorbench.engine.published):")
        for t in table_rows():
            print(f"  {t['paper']}: {t['table']}; {', '.join(t['metrics'])} on {', '.join(t['datasets'])}\n"
                  f"    protocol: {t['protocol']}\n    reproduce: {t['reproduce']}\n    values: {t['values']}")
        if not args.list:
            print("\ncolorbench reproduce NAME [--scale quick|paper] --out DIR")
        return 0
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    out = args.out or f"colorbench-recipes/{args.name}-{args.scale}"
    recipe = get(args.name)  # unknown name -> a clear error before anything runs
    from colorbench.engine.published import missing_inputs

    missing = missing_inputs(recipe, args.scale, args.data_root)
    if missing:
        print(f"recipe {args.name} ({args.scale}) needs inputs that are not on this machine:")
        print("\n".join(f"  - {line}" for line in missing))
        if args.scale == "paper":  # nothing of the paper's setup could be measured without them
            return 1
        print("(quick scale: running anyway; the rows that need them fail with the same reasons)")
    run_recipe(args.name, args.scale, out, device=args.device, seeds=seeds, data_root=args.data_root,
               progress=args.progress, executor=args.executor, workers=args.workers, ray_address=args.ray_address)
    print((Path(out) / "comparison.md").read_text())
    print(f"recipe report written to {Path(out).resolve()}")
    return 0
