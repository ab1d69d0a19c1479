"""The leaderboard site: static HTML rendered with jinja2 from ``hub/templates/`` (works from ``file://`` and any
static host: no server, no ``fetch``, no network request).

Layout of ``SITE``::

    index.html                 every table (one per protocol version and dataset), conflicts, problems
    methods/<method>.html      a method's metadata, its rows under every protocol, its sample images, provenance
    submissions/<sha256>.json  copies of the submissions shown (each value links to its source)
    blobs/<sha256>.png         the sample images
    assets/hub.css, hub.js     the run report's style (colorbench.reports templates) + the board's own; sorting,
                               filtering and the URL hash (``#filter=...&hide=contaminated&sort=TABLE:KEY:desc``,
                               or ``#<table id>`` / ``#<table id>--<row id>`` to link a table or a row)
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from colorbench.core.fsio import atomic_write_bytes, atomic_write_text
from colorbench.hub.board import Board, Row, Table, slug
from colorbench.hub.store import ResultsStore

TEMPLATES = Path(__file__).parent / "templates"


def _number(key: str, v: float | None) -> str:
    from colorbench.reports.tables import format_value

    return format_value(key, v)


def _cell(table: Table, row: Row, key: str) -> dict[str, Any]:
    """What one value cell shows: text, sort value, marks and its tooltip."""
    st = row.stats.get(key)
    reasons = [mv["missing_reason"] for s in row.subs if (mv := s.result["metrics"].get(key)) and mv["value"] is None
               and mv["missing_reason"]]
    if st is None or st["n"] == 0:
        title = reasons[0] if reasons else "no value"
        return {"text": "—", "sort": "", "missing": True, "title": title, "best": False, "tie": False,
                "conflict": False}
    mean, sd, n = st["mean"], st["std"], st["n"]
    text = _number(key, mean)
    if n > 1:
        text += f" ± {_number(key, sd)}"
    title = f"mean over {n} seed(s)" + (f", sample sd {sd:.6g}" if n > 1 else "")
    if n == 1:  # one seed: its bootstrap interval over the test images, when the run computed one
        ci = next((mv["ci95"] for s in row.subs if (mv := s.result["metrics"].get(key)) and mv["ci95"]), None)
        if ci:
            title += f"; 95% bootstrap interval over the images [{float(ci[0]):.6g}, {float(ci[1]):.6g}]"
    conflict = any(c.kind == "values" and c.key == key for c in row.conflicts)
    return {"text": text, "n": n, "sort": "" if not math.isfinite(mean) else repr(mean), "missing": False,
            "best": table.best.get(key) == row.id, "tie": row.ties.get(key, False), "conflict": conflict,
            "title": title}


def _environment():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["slug"] = slug
    env.filters["short"] = lambda s, n=12: (s or "")[:n]
    return env


def write_site(board: Board, store: ResultsStore, out: str | Path) -> Path:
    """Render the site of ``board`` into ``out``; returns ``out/index.html``."""
    from colorbench.reports.html import TEMPLATES as REPORT_TEMPLATES
    from colorbench.reports.tables import display_name

    out = Path(out)
    env = _environment()
    css = (REPORT_TEMPLATES / "report.css").read_text(encoding="utf-8") + "\n" + (TEMPLATES / "hub.css").read_text(
        encoding="utf-8")
    atomic_write_text(out / "assets" / "hub.css", css)
    atomic_write_text(out / "assets" / "hub.js", (TEMPLATES / "hub.js").read_text(encoding="utf-8"))
    for s in board.subs:  # the sources, next to the numbers they give
        atomic_write_bytes(out / s.path, store.read(s.path))
        samples = s.result["samples"]
        if samples is not None and store.exists(samples["file"]) and not (out / samples["file"]).is_file():
            atomic_write_bytes(out / samples["file"], store.read(samples["file"]))
    cells = {(t.id, r.id, c.key): _cell(t, r, c.key) for t in board.tables for r in t.rows for c in t.columns}
    publishers = sorted({f"{s.published['by']}@{s.published['host']}" for s in board.subs})
    common = {"board": board, "cells": cells, "display_name": display_name, "publishers": publishers,
              "built": datetime.now(timezone.utc).isoformat(timespec="seconds"), "results_uri": store.uri,
              "tables_by_id": {t.id: t for t in board.tables}, "method_page": lambda m: f"methods/{slug(m)}.html"}
    index = out / "index.html"
    atomic_write_text(index, env.get_template("index.html.j2").render(**common, root="."))
    method_tpl = env.get_template("method.html.j2")
    for name, rows in board.methods.items():
        entries = [(t, r) for t in board.tables for r in t.rows if r.method == name]
        samples = list({s.result["samples"]["sha256"]: s for r in rows for s in r.subs
                        if s.result["samples"] is not None}.values())  # one copy of identical images
        variants = {}
        for r in rows:
            variants.setdefault(r.variant, r.meta)
        atomic_write_text(out / "methods" / f"{slug(name)}.html",
                          method_tpl.render(**common, root="..", name=name, entries=entries, samples=samples,
                                            variants=variants))
    return index
