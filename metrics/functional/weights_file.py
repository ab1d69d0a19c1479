"""The one way the metric networks (LPIPS, FID's Inception) read a pretrained weights file."""

from __future__ import annotations

import os
from typing import Any

import torch

from colorbench.metrics.errors import MetricUnavailable


def load_weights_file(entry: str, path: str | os.PathLike | None, *, check_hash: bool, who: str, what: str,
                      missing_hint: str = "") -> tuple[str, Any]:
    """``(path, contents)`` of the weights file of registry entry ``entry`` (:mod:`colorbench.core.weights`).

    The file is looked up with ``colorbench.core.weights.require`` (``path``, or the entry's own location when None;
    its SHA-256 checked when ``check_hash``) and read with ``torch.load(weights_only=True)`` on the CPU; nothing is
    downloaded. The caller checks that the contents are the network's state dict.

    Args:
        entry: the registry name (``colorbench weights list``).
        path: where the file is, or None for the registry's location.
        check_hash: check the file's SHA-256 against the registry's.
        who: what needs the file, for the registry's message (e.g. ``"LPIPS (net='alex')"``).
        what: what the file holds, for the "cannot read" message (e.g. ``"LPIPS backbone"``).
        missing_hint: appended to the message of a missing or refused file (another location, another way).

    Raises:
        MetricUnavailable: the file is missing, refused (hash) or unreadable; the message says what to do.
    """
    from colorbench.core import weights

    try:
        found = os.fspath(weights.require(entry, path, check_hash=check_hash, who=who))
    except weights.WeightsUnavailable as err:
        raise MetricUnavailable(f"{err}{missing_hint}") from err
    try:
        return found, torch.load(found, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt or non-torch file
        raise MetricUnavailable(f"cannot read {what} weights {found}: {err}") from err
