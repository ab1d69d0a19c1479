"""``colorbench status RUN``: the cells of a run directory, done, running, failed and pending, with their times.

Reads only ``cells.json`` and ``run.json`` (no torch). A cell marked running while no process holds the run's
lock was interrupted (a kill or a crash): rerunning the command continues it from its last epoch checkpoint.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone
from typing import Any

from colorbench.results.rundir import RunDir


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a run directory (colorbench run --out)")
    parser.add_argument("--json", action="store_true", help="print the cells as JSON")


def cell_rows(rd: RunDir) -> list[dict[str, Any]]:
    locked = rd.is_locked()
    rows = []
    now = datetime.now(timezone.utc)
    for c in rd.cells():
        status = c.status
        if status == "running" and not locked:
            status = "interrupted"
        damaged = rd.damaged_files(c) if status in ("ok", "failed") else []
        if damaged:
            status = "damaged"
        seconds = c.seconds
        if status == "running" and c.started:
            seconds = (now - datetime.fromisoformat(c.started)).total_seconds()
        rows.append({"dataset": c.dataset, "method": c.method, "preset": c.preset, "seed": c.seed, "status": status,
                     "attempts": c.attempts, "started": c.started, "finished": c.finished, "seconds": seconds,
                     "key": c.key, "error": "; ".join(damaged) if damaged else c.error})
    return rows


def run_status(args: argparse.Namespace) -> int:
    rd = RunDir(args.run_dir)
    rows = cell_rows(rd)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    info = rd.info()
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    order = ("ok", "failed", "damaged", "running", "interrupted", "pending")
    summary = ", ".join(f"{counts[s]} {'done' if s == 'ok' else s}" for s in order if s in counts)
    locked = rd.is_locked()
    state = info.status
    if state == "running" and not locked:  # run.json says running, but nobody holds the lock: it was stopped
        state = "interrupted: no process is running; rerun the same command to resume it"
    elif locked:
        state += "; a process is running cells"
    else:
        state += "; no process is running"
        if counts.get("damaged") or counts.get("interrupted"):
            state += "; rerun the same command to " + ("recompute the damaged cells" if counts.get("damaged")
                                                       else "resume the interrupted cells")
    print(f"{rd.path}: {len(rows)} cells: {summary or 'none'} (run {state})")
    print(f"{'status':<12} {'dataset':<12} {'method':<22} {'seed':>4} {'tries':>5} {'time (s)':>9}  started")
    for r in rows:
        secs = "" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"{r['status']:<12} {r['dataset']:<12} {r['method']:<22} {r['seed']:>4} {r['attempts']:>5} {secs:>9}  "
              f"{r['started'] or ''}")
        if r["status"] in ("failed", "damaged") and r["error"]:
            print(f"{'':<12} error: {' '.join(str(r['error']).split())[:160]}")
    return 0
