"""Cell keys: a hash of everything that changes a cell's numbers, and the diff that names what changed.

A cell is one (dataset, method, preset, seed). Its key is the sha256 of a canonical JSON of its *fields*: the
method's config after overrides, the dataset description with its sha256, the grey convention, the unpaired
protocol (unpaired methods), the metrics with their versions and weight files, the evaluation settings that
change recorded numbers (curve epochs, diversity samples) and the colorbench version. A stored cell whose key
differs from the requested one is never reused: :func:`diff_fields` names the differing fields in the error.
No torch here: the CLI and ``colorbench status`` use it too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

KEY_VERSION = "1"  # bump when the key's fields change meaning


class CellKeyMismatch(ValueError):
    """A requested cell exists in the run directory under another key (a different spec)."""


def canonical_json(obj: Any) -> str:
    from colorbench.results.records import _jsonable

    return json.dumps(_jsonable(obj), sort_keys=True, separators=(",", ":"), default=str)


def cell_key(fields: Mapping[str, Any]) -> str:
    """sha256 (hex, first 16 characters) of the canonical JSON of ``fields``."""
    return hashlib.sha256(canonical_json({"key_version": KEY_VERSION, **fields}).encode()).hexdigest()[:16]


def dataset_identity(description: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a dataset description that identify its pixels (not where they were read from)."""
    keep = ("name", "version", "params", "sha256", "n_train", "n_test", "image_size", "skipped_corrupt")
    ident = {k: description[k] for k in keep if k in description}
    if "sha256" not in description:  # no checksum: the whole description stands for the data
        ident["description"] = {k: v for k, v in description.items() if "root" not in k and "path" not in k}
    return ident


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, Mapping):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: obj}


def diff_fields(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """Dotted names of the fields that differ, as ``name: stored -> requested`` lines."""
    a = _flatten(json.loads(canonical_json(stored)))
    b = _flatten(json.loads(canonical_json(requested)))
    out = []
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            out.append(f"{k}: {_short(a.get(k, '<absent>'))} -> {_short(b.get(k, '<absent>'))}")
    return out


def _short(v: Any, n: int = 60) -> str:
    text = json.dumps(v, default=str) if not isinstance(v, str) else v
    return text if len(text) <= n else text[: n - 1] + "…"
