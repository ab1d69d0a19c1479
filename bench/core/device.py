"""Device and environment helpers shared by the stages (runner, cross-domain, evaluation)."""

from __future__ import annotations

import os

import torch


DEVICE_HELP = "auto (CUDA when available), cpu, cuda, cuda:N (N a GPU index) or mps"


def check_device(device: str) -> str:
    """``device`` if it is a device name colorbench can run on (``DEVICE_HELP``), else ValueError naming the
    choices. Only the spelling is checked here; whether that device exists is :func:`resolve_device`'s job."""
    if device == "auto":
        return device
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {device!r}: use {DEVICE_HELP}")
    return device


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is checked (:func:`check_device`) and must exist."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(check_device(device))
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    return dev


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
