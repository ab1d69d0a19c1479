"""``colorbench check RUN --against RESULTS``: the published values of a run's cells as the baseline.

RESULTS is a store of ``colorbench publish`` (a folder with ``submissions/`` or an fsspec URI). The run's records
give their cell keys; the submissions with those keys are the baseline, compared by :func:`colorbench.check.compare`
as any other (values, metric versions and parameters). A cell of the run that nobody published is "new" (fails
unless ``--allow-new``); one cell key published twice with different values is an error naming both files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from colorbench.check import Entry, Ident, RunResults, _describe, _plain, _seed_text


def is_published(location: str | Path) -> bool:
    """True for a RESULTS store of ``colorbench publish``: an fsspec URI or a folder with ``submissions/``."""
    return "://" in str(location) or (Path(location) / "submissions").is_dir()


def load_published(location: str | Path, results: RunResults) -> RunResults:
    """The published values of the cells of ``results`` (matched by cell key) as a baseline.

    Raises:
        ValueError: ``results`` carry no cell keys (a results.csv without a ``key`` column), RESULTS holds an
            unreadable file, or one cell key was published with two different sets of values.
    """
    from colorbench.hub.board import published_values

    keys = _cell_keys(results)
    out = RunResults(source=f"{location} (published)", kind="records")
    seen: dict[Ident, dict[str, Any]] = {}
    for cell in published_values(str(location), keys):
        ident = Ident(cell["dataset"], cell["method"], _seed_text(cell["seed"]) or "")
        values = {k: Entry(None if mv["value"] is None else float(mv["value"]), mv["metric"], mv["version"],
                           _plain(mv["params"]), mv["missing_reason"]) for k, mv in cell["metrics"].items()}
        if ident in seen:
            if seen[ident]["values"] != values:
                raise ValueError(f"{location}: cell {cell['key']} ({_describe(ident)}) is published twice with "
                                 f"different values: {seen[ident]['file']} and {cell['file']}; "
                                 "`colorbench leaderboard` lists the conflict")
            continue
        seen[ident] = {"values": values, "file": cell["file"]}
        out.add(ident, values, cell["status"], dict(cell["versions"]))
    return out


def _cell_keys(results: RunResults) -> list[str]:
    if results.kind == "records":
        from colorbench.records import load_records

        return [rec.key for rec in load_records(results.source) if rec.key]
    frame = pd.read_csv(results.source)
    if "key" not in frame.columns:
        raise ValueError(f"{results.source} has no 'key' column: published values are matched by cell key; check "
                         "the run directory instead of its results.csv")
    return [str(k) for k in frame["key"].dropna()]
