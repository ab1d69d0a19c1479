"""The catalog: what ``colorbench list`` and ``colorbench describe`` print for the built-in methods, datasets,
metrics and protocols, kept in ``catalog.json`` beside this file so that those verbs answer without importing
torch or any method (the registries' entries, their metadata and every preset's description, as data).

The file is generated from the live registries (``python -m colorbench.commands.catalog --write``) and a test
(``tests/test_cli_startup.py``) fails when it differs from them, so it cannot go stale unnoticed. When a plugin has
registered a method (an installed entry point or ``--plugin``), the verbs read the live registries instead.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from colorbench.core.fsio import atomic_write_text

CATALOG = Path(__file__).with_name("catalog.json")
KINDS = ("methods", "datasets", "metrics", "presets", "protocols")


def build(describe: bool = True) -> dict[str, Any]:
    """The catalog of the live registries (imports every method, dataset and metric). ``describe``: also every
    method's description under each of its presets (builds every network once: tens of seconds). A description
    that needs a file this machine lacks (released weights) is left out: ``describe`` then asks the method."""
    from colorbench.core.weights import WeightsUnavailable
    from colorbench.methods import METHODS

    out: dict[str, Any] = {kind: live_listing(kind) for kind in KINDS}
    if describe:
        out["describe"] = {}
        for name, cls in METHODS.items():
            for preset in sorted(cls.presets):
                try:
                    out["describe"].setdefault(name, {})[preset] = cls.describe(preset)
                except WeightsUnavailable:
                    continue
    return json.loads(json.dumps(out, default=str))  # as `--json` prints it


def live_listing(what: str) -> list[dict[str, Any]]:
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
        from colorbench.engine.protocols import protocol_rows

        return protocol_rows()
    return [{"name": n, "outputs": dict(c.outputs), "version": c.version, "per_image": c.per_image}
            for n, c in METRICS.items()]


def load() -> dict[str, Any] | None:
    """The stored catalog, or None when there is none or a plugin added methods (then the registries answer)."""
    from colorbench.engine.plugins import loaded

    if any(loaded().values()) or not CATALOG.is_file():
        return None
    return json.loads(CATALOG.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m colorbench.commands.catalog", description=__doc__.split("\n\n")[0])
    p.add_argument("--write", action="store_true", help=f"write {CATALOG.name} (else: print whether it is current)")
    args = p.parse_args(argv)
    fresh = build()
    if args.write:
        atomic_write_text(CATALOG, json.dumps(fresh, indent=1, sort_keys=True) + "\n")
        print(f"wrote {CATALOG}")
        return 0
    stored = json.loads(CATALOG.read_text(encoding="utf-8")) if CATALOG.is_file() else None
    print("current" if stored == fresh else "stale: run with --write")
    return 0 if stored == fresh else 1


if __name__ == "__main__":
    raise SystemExit(main())
