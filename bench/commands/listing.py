"""``colorbench list`` and ``colorbench describe``: what is registered, and one method's card and presets."""

from __future__ import annotations

import argparse
import json
from typing import Any

from colorbench.engine.plugins import add_plugin_argument

LIST = {"help": "list methods, datasets, metrics or presets"}
DESCRIBE = {"help": "a method's card, preset options and parameter counts"}


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("what", choices=("methods", "datasets", "metrics", "presets", "protocols"))
    p.add_argument("--json", action="store_true")
    add_plugin_argument(p)


def add_describe_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("method")
    p.add_argument("--preset", default="quick")
    p.add_argument("--json", action="store_true")
    add_plugin_argument(p)


def run_list(args: argparse.Namespace) -> int:
    rows = listing(args.what)
    print(json.dumps(rows, indent=2, default=str)) if args.json else print_table(rows, args.what)
    return 0


def describe(method: str, preset: str) -> dict[str, Any]:
    """``Method.describe(preset)`` of a registered method: from the catalog when it holds that method and preset
    under that exact name (no torch), else from the live registry (aliases, composed presets, plugins)."""
    from colorbench.commands.catalog import load

    catalog = load()
    hit = (catalog or {}).get("describe", {}).get(method, {}).get(preset)
    if hit is not None:
        return hit
    from colorbench.methods import METHODS

    return json.loads(json.dumps(METHODS.get(method).describe(preset), default=str))


def run_describe(args: argparse.Namespace) -> int:
    info = describe(args.method, args.preset)
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
        for k, v in info.get("architecture", {}).items():  # methods that describe their layers
            print(f"  architecture {k}: {v}")
        for k, v in info["parameters"].items():
            print(f"  parameters {k}: {v:,}")
    return 0


def listing(what: str) -> list[dict[str, Any]]:
    """The rows of ``colorbench list WHAT``: from the catalog (no torch) unless a plugin added methods."""
    from colorbench.commands.catalog import live_listing, load

    catalog = load()
    return catalog[what] if catalog is not None else live_listing(what)


def print_table(rows: list[dict[str, Any]], what: str) -> None:
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
