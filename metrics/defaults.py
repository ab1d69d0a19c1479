"""The metrics a run computes when its spec names none."""

from __future__ import annotations

#: Registry names, in the order result tables show them.
DEFAULT_METRICS = ("mse", "psnr", "ssim", "lpips", "ab_histogram_kl", "ab_histogram_js")


def default_metrics() -> list[str]:
    """The default metric names for the runner (a new list each call)."""
    return list(DEFAULT_METRICS)
