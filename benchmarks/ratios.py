"""Print the side-by-side ratios of a pytest-benchmark run saved with ``--benchmark-json FILE``.

    python benchmarks/ratios.py FILE

For each benchmark group and parameter set (e.g. ``ssim`` at ``32px``), the minimum time of every
implementation and its ratio to colorbench's (> 1: colorbench is faster).
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict


def ratios(path: str) -> list[tuple[str, str, str, float, float]]:
    """Rows (group, params, implementation, min seconds, time / colorbench's time)."""
    runs = json.load(open(path))["benchmarks"]
    table: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for b in runs:
        m = re.search(r"\[(.*)\]", b["name"])
        params = m.group(1).split("-") if m else []
        size = next((p for p in params if p.endswith("px")), "")
        impl = b["params"].get("impl", b["name"]) if b.get("params") else b["name"]
        table[(b["group"] or "", size)][impl] = b["stats"]["min"]
    rows = []
    for (group, size), impls in sorted(table.items()):
        base = next((t for name, t in impls.items() if name.startswith("colorbench")), None)
        for name, t in sorted(impls.items()):
            rows.append((group, size, name, t, t / base if base else float("nan")))
    return rows


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    print(f"{'group':12} {'size':6} {'implementation':26} {'min s':>9} {'x colorbench':>13}")
    for group, size, name, t, r in ratios(argv[0]):
        print(f"{group:12} {size:6} {name:26} {t:9.4f} {r:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
