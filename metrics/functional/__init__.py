"""Pure metric functions on batches of RGB images.

Every function takes ``pred`` (the colorized images) and ``target`` (the real colour images) as
``(N, 3, H, W)`` floating-point tensors in [0, 1] on any device, validates them (:func:`check_image_pair`) and
returns per-image values (a float64 tensor of shape ``(N,)`` on the CPU) or, for the set-level histogram
divergences, one value per Lab channel. The streaming classes (``colorbench.metrics.image_quality``,
``.perceptual``, ``.color_histogram``) only keep state and call these functions, so a streamed result and a
functional result on the concatenated data are computed by the same code.

Conventions (each one is a parameter, recorded by the streaming classes' ``params()``):

* MSE and PSNR are on the 0-255 scale; PSNR's peak is 255 (``data_range``).
* SSIM is that of Wang et al. (2004) as scikit-image computes it, on the 0-255 scale, averaged over the three
  RGB channels and over the valid (unpadded) region of the SSIM map.
* LPIPS uses the ``lpips`` package (linear layers v0.1) on inputs scaled to [-1, 1].
* The ab-histogram divergences pool the CIE a and b values (D65, :func:`colorbench.core.color.rgb_to_lab`) of every
  pixel of the real set and of the colorized set into fixed-bin histograms.

What the libraries give and what is written here: scikit-image computes SSIM/PSNR one NumPy image at a time
on the CPU, so batched torch versions are written here and tested against it; the divergences use
``scipy.special.rel_entr``; LPIPS is the ``lpips`` package's network, built here so that nothing is downloaded.

Layout (one module per metric family, as torchmetrics' ``functional/``): :mod:`.checks` (input validation,
reductions), :mod:`.chunks` (per-image work in cache-sized chunks), :mod:`.eight_bit` (8-bit quantisation and
exact 8-bit colours), :mod:`.mse_psnr` (MSE, PSNR, sum of absolute differences), :mod:`.structural_similarity`
(SSIM, luma SSIM), :mod:`.lpips_network` (LPIPS), :mod:`.ab_histograms` (ab-histogram counts, KL, JS),
:mod:`.colorfulness_measure` (colourfulness), :mod:`.frechet` (FID's formula), :mod:`.weights_file` (how the
metric networks read their weights files). Every public name is importable
from this package (``from colorbench.metrics import functional as MF``); the ``*_unchecked`` kernels are the
ones the streaming classes call on batches :class:`~colorbench.metrics.collection.MetricCollection` has
validated.
"""

from __future__ import annotations

from colorbench.metrics.functional.checks import (  # noqa: F401
    check_crop_border,
    check_image_pair,
    check_images,
    PER_IMAGE_REDUCTIONS,
    reduce_per_image,
)
from colorbench.metrics.functional.chunks import (  # noqa: F401
    CHUNK_PIXELS,
    FLOAT64_CHUNK_PIXELS,
    per_image_chunks,
)
from colorbench.metrics.functional.eight_bit import (  # noqa: F401
    eight_bit_values,
    exact_8bit_levels,
    QUANTIZE_MODES,
    quantize_unit,
)
from colorbench.metrics.functional.weights_file import (  # noqa: F401
    load_weights_file,
)
from colorbench.metrics.functional.mse_psnr import (  # noqa: F401
    difference_statistics,
    mse,
    mse_8bit_cropped,
    psnr,
    psnr_from_mse,
    PSNR_REDUCTIONS,
    sum_abs_diff,
    SUM_ABS_DIFF_SCALES,
    sum_abs_diff_unchecked,
)
from colorbench.metrics.functional.structural_similarity import (  # noqa: F401
    luma,
    luma_ssim,
    luma_ssim_unchecked,
    ssim,
    SSIM_COMPUTE_DTYPES,
    SSIM_FLOAT64_CHUNK_PIXELS,
    ssim_settings,
    ssim_unchecked,
    SSIM_VARIANTS,
)
from colorbench.metrics.functional.lpips_network import (  # noqa: F401
    build_lpips_model,
    cached_lpips_model,
    lpips,
    lpips_backbone_path,
    lpips_from_model,
    LPIPS_VERSION,
)
from colorbench.metrics.functional.ab_histograms import (  # noqa: F401
    ab_bin_indices,
    ab_colour_table,
    ab_joint_counts_8bit,
    AB_TABLE_AFTER_PIXELS,
    build_ab_colour_table,
    ab_counts_from_indices,
    ab_counts_unchecked,
    AB_EDGE_GUARD,
    AB_EDGE_TIE,
    AB_HISTOGRAM_BINS,
    ab_histogram_counts,
    ab_histogram_edges,
    AB_HISTOGRAM_EPS,
    ab_histogram_js,
    ab_histogram_kl,
    AB_HISTOGRAM_RANGE,
    AB_JOINT_BINS,
    ab_joint_counts_from_indices,
    ab_joint_histogram_counts,
    ab_joint_histogram_js,
    ab_joint_histogram_kl,
    check_bins,
    check_eps_base,
    js_divergence_from_counts,
    KL_DIRECTIONS,
    kl_divergence_from_counts,
)
from colorbench.metrics.functional.colorfulness_measure import (  # noqa: F401
    colorfulness,
    COLORFULNESS_CHANNEL_ORDERS,
    COLORFULNESS_FORMULAS,
    colorfulness_from_moments,
    colorfulness_moments,
    colorfulness_moments_unchecked,
    colorfulness_moments_variant,
    colorfulness_moments_variant_unchecked,
    COLORFULNESS_REDUCTIONS,
    delta_colorfulness,
)
from colorbench.metrics.functional.frechet import (  # noqa: F401
    frechet_distance,
)

__all__ = [
    "check_images",
    "check_image_pair",
    "PER_IMAGE_REDUCTIONS",
    "reduce_per_image",
    "check_crop_border",
    "CHUNK_PIXELS",
    "FLOAT64_CHUNK_PIXELS",
    "per_image_chunks",
    "QUANTIZE_MODES",
    "quantize_unit",
    "eight_bit_values",
    "exact_8bit_levels",
    "load_weights_file",
    "PSNR_REDUCTIONS",
    "mse",
    "difference_statistics",
    "psnr_from_mse",
    "mse_8bit_cropped",
    "psnr",
    "SUM_ABS_DIFF_SCALES",
    "sum_abs_diff",
    "sum_abs_diff_unchecked",
    "SSIM_VARIANTS",
    "ssim_settings",
    "SSIM_COMPUTE_DTYPES",
    "SSIM_FLOAT64_CHUNK_PIXELS",
    "ssim",
    "ssim_unchecked",
    "luma_ssim",
    "luma",
    "luma_ssim_unchecked",
    "LPIPS_VERSION",
    "lpips_backbone_path",
    "build_lpips_model",
    "cached_lpips_model",
    "lpips",
    "lpips_from_model",
    "AB_HISTOGRAM_BINS",
    "AB_HISTOGRAM_RANGE",
    "AB_HISTOGRAM_EPS",
    "KL_DIRECTIONS",
    "check_bins",
    "check_eps_base",
    "ab_histogram_edges",
    "ab_histogram_counts",
    "AB_EDGE_GUARD",
    "ab_bin_indices",
    "AB_EDGE_TIE",
    "ab_counts_unchecked",
    "ab_colour_table",
    "ab_joint_counts_8bit",
    "AB_TABLE_AFTER_PIXELS",
    "build_ab_colour_table",
    "ab_counts_from_indices",
    "kl_divergence_from_counts",
    "js_divergence_from_counts",
    "ab_histogram_kl",
    "ab_histogram_js",
    "AB_JOINT_BINS",
    "ab_joint_histogram_counts",
    "ab_joint_counts_from_indices",
    "ab_joint_histogram_kl",
    "ab_joint_histogram_js",
    "COLORFULNESS_REDUCTIONS",
    "colorfulness_moments",
    "colorfulness_moments_unchecked",
    "COLORFULNESS_FORMULAS",
    "COLORFULNESS_CHANNEL_ORDERS",
    "colorfulness_moments_variant",
    "colorfulness_moments_variant_unchecked",
    "colorfulness_from_moments",
    "colorfulness",
    "delta_colorfulness",
    "frechet_distance",
]
