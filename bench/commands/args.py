"""Argument parsing shared by the CLI verbs: comma-separated names and dataset options."""

from __future__ import annotations

import json
from typing import Any


def split_names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def parse_value(text: str) -> Any:
    """Dataset option values: JSON when it parses (numbers, booleans, lists), else the plain string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def dataset_options(items: list[str], image_size: int | None, data_root: str | None = None,
                     skip_corrupt: bool = False) -> tuple[tuple[str, Any], ...]:
    opts: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"colorbench: --dataset-option expects KEY=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        opts[k.strip()] = parse_value(v.strip())
    if image_size is not None:
        opts["size"] = image_size
    if data_root is not None:  # only the standard datasets take these (the built-in ones would reject them)
        opts["data_root"] = data_root
    if skip_corrupt:
        opts["skip_corrupt"] = True
    return tuple(sorted(opts.items()))
