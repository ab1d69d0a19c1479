"""The metrics a run computes when its spec names none."""

from __future__ import annotations

#: Registry names, in the order result tables show them. Not by default: ``fid`` (needs its Inception weights
#: file and thousands of images to mean anything) and the joint ab histograms (``ab_joint_histogram_kl``/``_js``).
DEFAULT_METRICS = ("mse", "psnr", "ssim", "luma_ssim", "lpips", "ab_histogram_kl", "ab_histogram_js",
                   "colorfulness", "delta_colorfulness", "sum_abs_diff")


def default_metrics() -> list[str]:
    """The default metric names for the runner (a new list each call)."""
    return list(DEFAULT_METRICS)
