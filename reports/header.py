"""The header of a report, one for the Markdown leaderboard and the HTML page: dataset, grey input, preset, seeds,
device, software and wall time, built from the run's typed information (``run.json`` read as
:class:`~colorbench.results.rundir.RunInfo`) and its records."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from colorbench.results.records import RunRecord
from colorbench.results.rundir import RunInfo


@dataclass(frozen=True)
class HeaderLine:
    """One line of the header: a label and its value in parts, each marked when it is emphasised (a dataset's
    name: bold in Markdown)."""

    label: str
    parts: tuple[tuple[str, bool], ...]

    def markdown(self) -> str:
        return f"- {self.label}: " + "".join(f"**{text}**" if strong else text for text, strong in self.parts)

    @property
    def text(self) -> str:
        return "".join(text for text, _ in self.parts)


def _distinct(values: Sequence[Any]) -> str:
    out = list(dict.fromkeys(str(v) for v in values if v not in (None, "")))
    return ", ".join(out) if out else "unknown"


def _dataset_parts(ds: Any) -> list[tuple[str, bool]]:
    ds = ds if isinstance(ds, Mapping) else {"name": ds}
    parts = [(str(ds.get("name", "unknown")), True)]
    if "n_train" in ds or "n_test" in ds:
        parts.append((f", {ds.get('n_train', '?')} train / {ds.get('n_test', '?')} test images", False))
    size = ds.get("image_size")
    if isinstance(size, (list, tuple)) and len(size) == 2:
        parts.append((f", {size[0]}×{size[1]} px", False))
    skipped = ds.get("skipped_corrupt")  # --skip-corrupt: say it where the numbers are, not only in run.json
    if isinstance(skipped, Mapping):
        counts = {split: int(v.get("count", 0)) for split, v in skipped.items() if isinstance(v, Mapping)}
        if any(counts.values()):
            files = [f for v in skipped.values() if isinstance(v, Mapping) for f in v.get("files", [])][:3]
            parts.append((f"; {sum(counts.values())} undecodable file(s) skipped ("
                          + ", ".join(f"{n} {split}" for split, n in counts.items() if n)
                          + (f": {', '.join(map(str, files))}" if files else "") + ")", False))
    return parts


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def report_header(records: Sequence[RunRecord], run_info: RunInfo | Mapping[str, Any] | None) -> list[HeaderLine]:
    """The header lines of a report of ``records``.

    Args:
        records: the run's records (their datasets, grey convention, presets, seeds, devices and versions).
        run_info: ``run.json`` as a :class:`RunInfo` or as its parsed dict (any key may be missing; the version-1
            keys ``environment`` and a top-level ``wall_s`` are read too); None without one.
    """
    raw = run_info.to_dict() if isinstance(run_info, RunInfo) else dict(run_info or {})
    info = run_info if isinstance(run_info, RunInfo) else RunInfo.from_dict(raw)
    by_name: dict[str, Any] = {}
    for ds in [rec.dataset for rec in records if rec.dataset] or list(info.datasets.values()):
        by_name.setdefault(str(ds.get("name", "unknown")) if isinstance(ds, Mapping) else str(ds), ds)
    parts: list[tuple[str, bool]] = []
    for i, ds in enumerate(by_name.values() or [{"name": "unknown"}]):
        parts += ([("; ", False)] if i else []) + _dataset_parts(ds)
    lines = [
        HeaderLine("Dataset" if len(by_name) <= 1 else "Datasets", tuple(parts)),
        HeaderLine("Grey input convention", ((_distinct([r.grey_convention for r in records]), False),)),
        HeaderLine("Preset", ((_distinct([r.preset for r in records]), False),)),
        HeaderLine("Seed", ((_distinct([r.seed for r in records]), False),)),
        HeaderLine("Device", ((_distinct([r.device for r in records]), False),)),
    ]
    env = info.versions or raw.get("environment") or next((rec.versions for rec in records if rec.versions), {}) or {}
    env = env if isinstance(env, Mapping) else {}
    software = [f"{name} {env[name]}" for name in ("colorbench", "torch", "python") if name in env]
    if software:
        lines.append(HeaderLine("Software", ((", ".join(software), False),)))
    timings = info.timings if isinstance(info.timings, Mapping) else {}
    wall = _finite(timings.get("wall_s", raw.get("wall_s")))
    if wall is not None:
        lines.append(HeaderLine("Wall time", ((f"{wall:.1f} s", False),)))
    return lines
