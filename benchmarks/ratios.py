"""Print the side-by-side figures, ratios and targets of a pytest-benchmark run saved with ``--benchmark-json``.

    python benchmarks/ratios.py FILE [--check]

For each benchmark group, image size and condition (idle / contended, see ``conftest.py``): the mean and median
time per call of every implementation, its ratio to colorbench's mean (> 1: colorbench is faster) and the load
average it was measured under. Then the targets of issue #13, each PASS or MISS:

* contended SSIM: colorbench at least as fast as piq (mean) at every size;
* contended whole metric set: at least 5x the per-image scikit-image loop at every size;
* quick training epoch under the thread policy: contended speed at least 0.4x its idle speed;
* idle speed no worse than before: colorbench's mean at most the mean of the code before issue #13
  (``before-13``, timed in the same run; see ``baseline.py``), for SSIM, PSNR and the metric set at every size.

For information (not a target: another day, machine load and data size), the idle seconds per megapixel against
the figures metrics/README.md gave before the issue.

``--check``: exit status 1 when a target is missed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict

#: The figures metrics/README.md gave before issue #13 (2026-11-22, quiet 2-core box, torch's 2 threads, min of
#: 3 rounds), as seconds per megapixel: SSIM 0.33 s / 10,000 x 32x32, 0.24 s / 2,000 x 64x64, 0.32 s / 100 x
#: 256x256; whole set 0.93, 1.43, 0.53 s; PSNR 0.033, 0.093, 0.029 s.
_OLD_S = {"ssim": (0.33, 0.24, 0.32), "metric-set": (0.93, 1.43, 0.53), "psnr": (0.033, 0.093, 0.029)}
_OLD_MPX = (10_000 * 32 * 32 / 1e6, 2_000 * 64 * 64 / 1e6, 100 * 256 * 256 / 1e6)
OLD_S_PER_MPX = {g: dict(zip((32, 64, 256), (s / mpx for s, mpx in zip(v, _OLD_MPX)))) for g, v in _OLD_S.items()}


def load(path: str) -> list[dict]:
    """One row per benchmark: group, size, n, condition, impl, mean, median, min, rounds, load."""
    rows = []
    for b in json.load(open(path))["benchmarks"]:
        extra, params = b.get("extra_info", {}), b.get("params") or {}
        m = re.search(r"\[(.*)\]", b["name"])
        size = extra.get("size") or next((int(p[:-2]) for p in (m.group(1).split("-") if m else []) if p.endswith("px")), 0)
        s = b["stats"]
        loads = [v for v in (extra.get("load_before"), extra.get("load_after")) if v is not None]
        rows.append({"group": b.get("group") or "", "size": size, "n": extra.get("n"),
                     "condition": extra.get("condition", "idle"), "impl": params.get("impl", b["name"]),
                     "mean": s["mean"], "median": s["median"], "min": s["min"], "rounds": s["rounds"],
                     "load": sum(loads) / len(loads) if loads else float("nan")})
    return rows


def _index(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["group"], r["size"], r["condition"], r["impl"]): r for r in rows}


def targets(rows: list[dict]) -> list[tuple[str, float, float, bool]]:
    """(what, measured, target, met) for each target that the run measured."""
    ix = _index(rows)
    out = []
    for size in sorted({r["size"] for r in rows if r["group"] == "ssim"}):
        cb, piq = ix.get(("ssim", size, "contended", "colorbench")), ix.get(("ssim", size, "contended", "piq"))
        if cb and piq:
            out.append((f"contended SSIM {size}px: piq mean / colorbench mean", piq["mean"] / cb["mean"], 1.0,
                        piq["mean"] >= cb["mean"]))
    for size in sorted({r["size"] for r in rows if r["group"] == "metric-set"}):
        cb = ix.get(("metric-set", size, "contended", "colorbench-streamed"))
        loop = ix.get(("metric-set", size, "contended", "per-image-skimage-loop"))
        if cb and loop:
            r = loop["mean"] / cb["mean"]
            out.append((f"contended metric set {size}px: skimage loop mean / colorbench mean", r, 5.0, r >= 5.0))
    idle, cont = ix.get(("train-epoch", 0, "idle", "policy")), ix.get(("train-epoch", 0, "contended", "policy"))
    if idle and cont:
        r = idle["mean"] / cont["mean"]
        out.append(("quick training epoch (policy): contended speed / idle speed", r, 0.4, r >= 0.4))
    for (group, size, cond, impl), r in sorted(ix.items()):
        if cond == "idle" and impl == "before-13":
            cb = ix.get((group, size, cond, "colorbench")) or ix.get((group, size, cond, "colorbench-streamed"))
            if cb:
                out.append((f"idle {group} {size}px: before-#13 mean / colorbench mean", r["mean"] / cb["mean"], 1.0,
                            cb["mean"] <= r["mean"]))
    return out


def main(argv: list[str]) -> int:
    args = [a for a in argv if a != "--check"]
    if len(args) != 1:
        print(__doc__)
        return 2
    rows = load(args[0])
    ix = _index(rows)
    print(f"{'group':12} {'size':>5} {'condition':10} {'implementation':26} {'mean s':>9} {'median s':>9} "
          f"{'x colorbench':>13} {'load':>6}")
    for key in sorted(ix, key=lambda k: (k[0], k[1], k[2] != "idle", k[3])):
        r = ix[key]
        base = next((v["mean"] for k, v in ix.items() if k[:3] == key[:3] and k[3] in ("colorbench", "colorbench-streamed")), None)
        ratio = f"{r['mean'] / base:13.2f}" if base else f"{'':13}"
        print(f"{r['group']:12} {r['size'] or '':>5} {r['condition']:10} {r['impl']:26} {r['mean']:9.4f} "
              f"{r['median']:9.4f} {ratio} {r['load']:6.2f}")
    for impl in sorted({k[3] for k in ix if k[0] == "train-epoch"}):
        idle, cont = ix.get(("train-epoch", 0, "idle", impl)), ix.get(("train-epoch", 0, "contended", impl))
        if idle and cont:
            print(f"train-epoch {impl}: contended speed = {idle['mean'] / cont['mean']:.2f} x idle speed")
    print("\nfor information: idle seconds per megapixel, the figures of metrics/README.md before issue #13 "
          "(2026-11-22, min of rounds, on 10,000 / 2,000 / 100 images rather than 2,000 / 500 / 32) / this run's mean:")
    for (group, size, cond, impl), r in sorted(ix.items()):
        if cond == "idle" and group in OLD_S_PER_MPX and impl in ("colorbench", "colorbench-streamed") and r["n"]:
            old = OLD_S_PER_MPX[group].get(size)
            if old:
                print(f"  {group} {size}px: {old / (r['mean'] / (r['n'] * size * size / 1e6)):.2f}")
    missed = 0
    print("\ntargets (issue #13):")
    for what, value, target, met in targets(rows):
        missed += not met
        print(f"  {'PASS' if met else 'MISS'}  {what}: {value:.2f} (target >= {target:g})")
    return 1 if missed and "--check" in argv else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
