"""Run records: one JSON file per cell (dataset, method, preset, seed), the only thing reports read.

The layout of a run directory and the typed access to it are in :mod:`colorbench.results.rundir`; a record lives in
``cells/<dir>/record.json`` (``records/<method>.json`` in directories of the earlier layout).

Metric values are stored by output key (``"psnr"``, ``"kl_a"``, ...) as :class:`MetricValue` dicts, each with
the metric that produced it, its version and every parameter (convention) that changes it. A metric that could
not be computed has ``value: null`` and a ``missing_reason``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = "colorbench.record/2"
#: Older record schemas that still load (their missing fields take the defaults).
READABLE_SCHEMAS = ("colorbench.record/1", SCHEMA)


@dataclass
class MetricValue:
    """One number of a record, with everything needed to know what it means."""

    value: float | None
    metric: str  # registry name of the metric that produced it
    version: str
    higher_is_better: bool
    params: dict[str, Any] = field(default_factory=dict)
    missing_reason: str | None = None
    ci95: tuple[float, float] | None = None  # bootstrap interval over per-image values, when available


@dataclass
class RunRecord:
    """The result of one method on one dataset under one spec."""

    method: str
    preset: str
    dataset: dict[str, Any]
    grey_convention: str
    seed: int
    device: str
    status: str = "ok"  # "ok" or "failed"
    error: str | None = None  # the reason, when failed (also set for NaN divergence)
    traceback: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)  # per network
    metrics: dict[str, MetricValue] = field(default_factory=dict)  # by output key
    losses: list[dict[str, float]] = field(default_factory=list)  # per epoch: {"epoch": e, loss: mean, ...}
    curve: list[dict[str, Any]] = field(default_factory=list)  # per evaluated epoch: {"epoch": e, "metrics": {...}}
    histograms: dict[str, Any] | None = None  # ab histograms (edges, real, pred) for reports
    samples_file: str | None = None  # relative to the run directory
    # what a reader of the row must know to read its numbers (e.g. a substitute for missing pretrained weights);
    # from Method.caveats(), shown with the row in the leaderboard
    caveats: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # the cell key (colorbench.results.cell_keys): a hash of everything that changes the numbers
    kind: str = "trained"  # "trained" (trained and evaluated by the runner) or "predictions" (evaluated from files)
    dataset_name: str = ""  # registry name of the dataset (also dataset["name"])
    per_image_file: str | None = None  # relative to the run directory: ids + per-image metric values
    predictions_file: str | None = None  # relative to the run directory: the colorized test split, when kept
    schema: str = SCHEMA

    def __post_init__(self) -> None:
        if not self.dataset_name and isinstance(self.dataset, dict):
            self.dataset_name = str(self.dataset.get("name", ""))

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunRecord":
        d = dict(d)
        if d.get("schema") not in READABLE_SCHEMAS:
            raise ValueError(f"record schema {d.get('schema')!r} is not one of {READABLE_SCHEMAS}")
        d["schema"] = SCHEMA
        d["metrics"] = {
            k: MetricValue(
                **{
                    **v,
                    "value": as_float(v.get("value")),
                    "ci95": tuple(as_float(c) for c in v["ci95"]) if v.get("ci95") else None,
                }
            )
            for k, v in d["metrics"].items()
        }
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        from colorbench.core.fsio import atomic_write_json

        return atomic_write_json(path, self.to_dict(), allow_nan=False)  # never a half-written record

    @classmethod
    def load(cls, path: str | Path) -> "RunRecord":
        """Read a record file; a file that is not a record raises ValueError naming the file and the problem."""
        d = read_json_object(path, "a run record")
        try:
            return cls.from_dict(d)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise ValueError(f"{path}: not a valid colorbench run record ({type(exc).__name__}: {exc})") from None

    def value(self, key: str) -> float | None:
        mv = self.metrics.get(key)
        return None if mv is None else mv.value


def _jsonable(x: Any) -> Any:
    """Make ``x`` strict-JSON: inf/nan floats become the strings "inf", "-inf", "nan" (JSON has no such numbers)."""
    if isinstance(x, float):
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return x
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def read_json_object(path: str | Path, what: str) -> dict[str, Any]:
    """Parse a JSON file that must hold an object; errors name the file (and the line of a syntax error).

    Raises:
        ValueError: not valid JSON, or valid JSON that is not an object (e.g. a list).
    """
    path = Path(path)
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); it should hold {what}: restore or delete the file, "
                         f"or rerun") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not a text file ({exc}); it should hold {what}") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a JSON {type(obj).__name__}, not an object; it should hold {what}")
    return obj


def as_float(v: Any) -> float | None:
    """Read a stored metric value back ("inf" strings included)."""
    if v is None:
        return None
    if isinstance(v, str):
        return float(v)
    return float(v)


def environment_versions() -> dict[str, str]:
    """Versions of Python and the libraries that can change a number."""
    import importlib.metadata as md

    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("colorbench", "torch", "torchvision", "numpy", "scipy", "scikit-image", "lpips", "pandas"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = "not installed"
    return out
