"""One method under several evaluation protocols, side by side (a Markdown section of the leaderboard).

A record's protocol is read from its metric values' params (``protocol``/``protocol_version``, written by the
runner and ``colorbench evaluate``); values without one are of the ``colorbench`` protocol (runs made before
protocols existed used its conventions). The section appears when the run holds one method under two or more
protocols, e.g. after ``colorbench evaluate --pred DIR --name M --protocol A --out RUN`` and again with
``--protocol B``.
"""

from __future__ import annotations

from typing import Sequence

from colorbench.results.records import RunRecord


def record_protocol(rec: RunRecord) -> str:
    """``name/version`` of the protocol of a record's values (the first that names one; default colorbench/1)."""
    for mv in rec.metrics.values():
        name = (mv.params or {}).get("protocol")
        if name:
            return f"{name}/{(mv.params or {}).get('protocol_version', '?')}"
    return "colorbench/1"


def protocol_comparison_markdown(records: Sequence[RunRecord]) -> str:
    """The side-by-side table (methods x metrics, one column per protocol), or "" if no method has two protocols."""
    from colorbench.reports.tables import display_name, format_value

    by_method: dict[str, dict[str, RunRecord]] = {}
    for rec in records:
        if rec.status != "ok":
            continue
        by_method.setdefault(rec.method, {})[record_protocol(rec)] = rec
    shown = {m: protos for m, protos in by_method.items() if len(protos) >= 2}
    if not shown:
        return ""
    protocols = sorted({p for protos in shown.values() for p in protos}, key=lambda p: (not p.startswith("colorbench/"), p))
    lines = ["## One method under several protocols", "",
             "Each column is one evaluation protocol (`colorbench list protocols`); a metric a protocol does not "
             "compute is –. Values of different protocols are not comparable with each other: that is the point.",
             "", "| method | metric | " + " | ".join(f"`{p}`" for p in protocols) + " |",
             "|---|---|" + "---:|" * len(protocols)]
    for method, protos in shown.items():
        keys: list[str] = []
        for p in protocols:
            for k in (protos[p].metrics if p in protos else {}):
                if k not in keys:
                    keys.append(k)
        for k in keys:
            hib = next((protos[p].metrics[k].higher_is_better for p in protocols if p in protos and k in protos[p].metrics), True)
            cells = []
            for p in protocols:
                mv = protos[p].metrics.get(k) if p in protos else None
                cells.append("–" if mv is None or mv.value is None else format_value(k, mv.value))
            lines.append(f"| {method} | {display_name(k)} {'↑' if hib else '↓'} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
