"""SSIM (Wang et al. 2004, as scikit-image computes it), batched, and the SSIM of the grey images (luma SSIM)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from colorbench.core.color import GREY_CONVENTIONS, rgb_to_grey
from colorbench.metrics.functional.checks import PER_IMAGE_REDUCTIONS, check_image_pair, reduce_per_image
from colorbench.metrics.functional.chunks import CHUNK_PIXELS, per_image_chunks
from colorbench.core.threads import metric_section


#: SSIM variants. ``gaussian``: Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, population covariance);
#: ``uniform``: scikit-image's default (7x7 uniform window, sample covariance).
SSIM_VARIANTS = ("gaussian", "uniform")
_SSIM_SIGMA, _SSIM_TRUNCATE, _SSIM_UNIFORM_SIZE = 1.5, 3.5, 7


def ssim_settings(variant: str = "gaussian") -> dict[str, Any]:
    """The window and covariance settings of an SSIM variant (what ``params()`` records)."""
    if variant == "gaussian":
        radius = int(_SSIM_TRUNCATE * _SSIM_SIGMA + 0.5)  # as scipy.ndimage: 5 -> 11 taps
        return {
            "window": "gaussian",
            "sigma": _SSIM_SIGMA,
            "truncate": _SSIM_TRUNCATE,
            "win_size": 2 * radius + 1,
            "covariance": "population",
        }
    if variant == "uniform":
        return {
            "window": "uniform",
            "sigma": None,
            "truncate": None,
            "win_size": _SSIM_UNIFORM_SIZE,
            "covariance": "sample",
        }
    raise ValueError(f"unknown SSIM variant {variant!r}; choose one of {SSIM_VARIANTS}")


def _ssim_kernel_1d(variant: str, device: torch.device) -> Tensor:
    s = ssim_settings(variant)
    radius = (s["win_size"] - 1) // 2
    if variant == "gaussian":
        x = torch.arange(-radius, radius + 1, dtype=torch.float64, device=device)
        k = torch.exp(-0.5 * (x / s["sigma"]) ** 2)
    else:
        k = torch.ones(s["win_size"], dtype=torch.float64, device=device)
    return k / k.sum()


def _separable_filter_valid(x: Tensor, taps: list[float]) -> Tensor:
    """Correlate the last two axes of ``x`` with ``taps`` (odd length), keeping only the valid region.

    Written as a weighted sum of shifted views: on the CPU this is faster than ``conv2d`` (measured ~1.7x in
    float32 against a grouped separable ``conv2d``; ``conv2d`` has no optimised float64 CPU kernel at all), and
    it is as fast on CUDA.
    """
    n = len(taps)
    w = x.shape[-1] - n + 1
    rows = x[..., :, 0:w] * taps[0]
    for i in range(1, n):
        rows.add_(x[..., :, i : i + w], alpha=taps[i])
    h = x.shape[-2] - n + 1
    out = rows[..., 0:h, :] * taps[0]
    for i in range(1, n):
        out.add_(rows[..., i : i + h, :], alpha=taps[i])
    return out


#: Largest image (pixels) whose SSIM window runs as a depthwise ``conv2d`` on the CPU (float32) rather than as
#: shifted-slice sums: measured side by side (1 thread, SSIM of 2 million pixels), the depthwise convolution took
#: 0.064 s against 0.087-0.094 s at 32x32 and 64x64, 0.106 against 0.107-0.113 at 128x128, and 0.121 against 0.093 at
#: 256x256 (where a chunk is one image of 12 planes larger than the L2 cache, and oneDNN's kernel slows down).
_SSIM_DEPTHWISE_MAX_PIXELS = 64 * 64
_DEPTHWISE_WEIGHTS: dict[tuple, tuple[Tensor, Tensor]] = {}


def _depthwise_filter_valid(x: Tensor, kernel: Tensor) -> Tensor:
    """:func:`_separable_filter_valid` as two depthwise ``conv2d`` passes (oneDNN on the CPU): every
    ``(image, plane)`` of ``x`` ``(n, c, H, W)`` is one channel of a single ``(1, n*c, H, W)`` input, so the
    kernel vectorises over the channels. Same sums of the same products (agreement tested)."""
    n, c, h, w = x.shape
    k = kernel.numel()
    key = (n * c, k, x.dtype, x.device, tuple(kernel.tolist()))
    weights = _DEPTHWISE_WEIGHTS.get(key)
    if weights is None:
        taps = kernel.to(dtype=x.dtype, device=x.device)
        weights = (taps.view(1, 1, 1, k).expand(n * c, 1, 1, k).contiguous(),
                   taps.view(1, 1, k, 1).expand(n * c, 1, k, 1).contiguous())
        if len(_DEPTHWISE_WEIGHTS) > 64:  # chunk sizes are few; bound the cache anyway
            _DEPTHWISE_WEIGHTS.clear()
        _DEPTHWISE_WEIGHTS[key] = weights
    rows = torch.nn.functional.conv2d(x.reshape(1, n * c, h, w), weights[0], groups=n * c)
    return torch.nn.functional.conv2d(rows, weights[1], groups=n * c).view(n, c, h - k + 1, w - k + 1)


#: Floating-point types SSIM can compute in; see :func:`ssim` for speed and accuracy.
SSIM_COMPUTE_DTYPES = ("float32", "float64")
#: Pixels (of three channels) per chunk of the float64 SSIM kernel: its 12 filtered float64 planes (~1.5 MB) stay
#: in the cache; measured 5% faster than :data:`CHUNK_PIXELS` at 32x32 and 64x64 (1 thread, side by side).
SSIM_FLOAT64_CHUNK_PIXELS = 2**14


@metric_section()
def ssim(
    pred: Tensor,
    target: Tensor,
    variant: str = "gaussian",
    data_range: float = 255.0,
    k1: float = 0.01,
    k2: float = 0.03,
    compute_dtype: str = "float64",
    reduction: str | None = None,
) -> Tensor:
    """Per-image structural similarity (Wang et al. 2004), batched.

    Equals scikit-image's ``structural_similarity(target_hwc*255, pred_hwc*255, data_range=255,
    channel_axis=-1, ...)`` with, for ``variant="gaussian"``, ``gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False`` and, for ``"uniform"``, the defaults (7x7 window, sample covariance): the
    local means, variances and covariance are filtered with a separable window, the SSIM map is averaged over
    the region at least ``(win_size-1)//2`` pixels from the border (scikit-image crops exactly that band, so its
    'reflect' padding never reaches the average and an unpadded convolution gives the same values), and the
    three channel means are averaged.

    How it is computed (written here because scikit-image works one NumPy image at a time on the CPU and piq's
    batched version is slower): each image channel is centred on its own mean first (SSIM's variances and
    covariance do not change; the local means get the channel mean back); the window is applied as two 1-D passes
    of shifted-slice sums; the map average is accumulated in float64.

    Why float64 by default: the variances are E[x^2] - E[x]^2 over each window, and where a window's mean is far
    from the channel mean (near-black surrounds, letterbox bars, dark areas of a bright photo) both terms are large
    and nearly equal. In float32 their rounding (~6e-8 of x^2) is of the order of 1e-8, against C2 = 9e-4 on the
    [0, 1] scale: up to 7e-6 off scikit-image on skimage's retina and letterboxed photographs, recoloured (biased,
    so it does not average out; 2e-6 on skimage's camera). Checking for the error and recomputing only affected
    images did not help: a rounding bound flagged every photograph. float64 is exact to ~1e-14; the RGB kernel takes
    1.6-3x as long as the float32 one (32x32 to 256x256; luma SSIM runs on one channel, which pays for most of
    it in the metric set: metrics/README.md).

    Args:
        pred: colorized images ``(N, 3, H, W)``, float in [0, 1]; H and W at least the window size (11 or 7).
        target: real images, same shape.
        variant: ``"gaussian"`` (default) or ``"uniform"``.
        data_range: the images are scaled to [0, data_range]; C1 = (k1 data_range)^2, C2 = (k2 data_range)^2.
        k1, k2: the SSIM stabilising constants.
        compute_dtype: ``"float64"`` (default; agrees with scikit-image's float64 result to 1e-10, measured
            ~1e-14, also with near-black regions) or ``"float32"`` (1.6-3x faster; 1e-8 to 1e-7 off on typical
            photographs, up to ~1e-5 with near-black regions).
        reduction: None (default: per-image values, as mse and psnr) or ``"per_image_mean"``.

    Returns:
        float64 tensor ``(N,)`` on the CPU (a scalar for ``"per_image_mean"``). Not differentiable: inputs that
        require grad are an error (pass ``pred.detach()``).
    """
    if reduction not in PER_IMAGE_REDUCTIONS:
        raise ValueError(f"unknown SSIM reduction {reduction!r}; choose None (per-image values) or 'per_image_mean'")
    check_image_pair(pred, target)
    if pred.requires_grad or target.requires_grad:
        which = " and ".join(n for n, x in (("pred", pred), ("target", target)) if x.requires_grad)
        raise ValueError(f"ssim: {which} requires grad, but this SSIM is an evaluation metric and is not "
                         "differentiable (in-place float32 kernels, float64 result on the CPU); evaluate "
                         f"{which}.detach(), or use a differentiable SSIM (e.g. piq.ssim) as a training loss")
    return reduce_per_image(ssim_unchecked(pred, target, variant, data_range, k1, k2, compute_dtype), reduction, "SSIM")


def ssim_unchecked(pred: Tensor, target: Tensor, variant: str = "gaussian", data_range: float = 255.0,
                    k1: float = 0.01, k2: float = 0.03, compute_dtype: str = "float64") -> Tensor:
    """Per-image SSIM of ``(N, C, H, W)`` batches (any channel count C; the mean over the C channels)."""
    if compute_dtype not in SSIM_COMPUTE_DTYPES:
        raise ValueError(f"unknown SSIM compute_dtype {compute_dtype!r}; choose one of {SSIM_COMPUTE_DTYPES}")
    settings = ssim_settings(variant)
    win = settings["win_size"]
    if pred.shape[2] < win or pred.shape[3] < win:
        raise ValueError(
            f"SSIM ({variant} window) needs images of at least {win}x{win} pixels, got "
            f"{pred.shape[2]}x{pred.shape[3]}; use larger images or variant='uniform' (7x7)"
        )
    dtype = torch.float32 if compute_dtype == "float32" else torch.float64
    # On the [0, 1] scale with C1, C2 divided by data_range**2: the same SSIM as on [0, data_range] (every term of
    # the ratio scales by data_range**2), without two scaling passes over the images.
    c1, c2 = k1**2, k2**2
    np_ = win * win
    cov_norm = np_ / (np_ - 1) if settings["covariance"] == "sample" else 1.0
    kernel = _ssim_kernel_1d(variant, torch.device("cpu"))
    taps = kernel.tolist()
    channels, h, w = pred.shape[1:]
    depthwise = pred.device.type == "cpu" and dtype == torch.float32 and h * w <= _SSIM_DEPTHWISE_MAX_PIXELS

    def one_chunk(p: Tensor, t: Tensor) -> Tensor:
        x, y = t.to(dtype), p.to(dtype)  # skimage's im1 is the real image
        mx = x.mean(dim=(2, 3), keepdim=True, dtype=torch.float64).to(dtype)
        my = y.mean(dim=(2, 3), keepdim=True, dtype=torch.float64).to(dtype)
        # 4 planes per channel: the centred x and y, x^2 + y^2 (only var_x + var_y enters SSIM) and x y
        c = channels
        stack = torch.empty((x.shape[0], 4 * c, h, w), dtype=dtype, device=x.device)
        xc, yc = torch.sub(x, mx, out=stack[:, 0:c]), torch.sub(y, my, out=stack[:, c:2 * c])
        torch.mul(xc, xc, out=stack[:, 2 * c:3 * c]).add_(yc.square())
        torch.mul(xc, yc, out=stack[:, 3 * c:4 * c])
        filt = _depthwise_filter_valid(stack, kernel) if depthwise else _separable_filter_valid(stack, taps)
        ux, uy, uss, uxy = filt[:, 0:c], filt[:, c:2 * c], filt[:, 2 * c:3 * c], filt[:, 3 * c:4 * c]
        # No fused multiply-adds below: with separately rounded products, SSIM(x, x) is exactly 1 (the two
        # factors of the numerator and of the denominator round identically when x = y).
        prod = torch.mul(ux, uy)
        cov = uxy.sub_(prod)  # variances and covariance of the centred images = of the original ones
        squares = torch.mul(ux, ux).add_(uy.square())
        var_sum = uss.sub_(squares)
        ux, uy = ux.add_(mx), uy.add_(my)
        # (2 ux uy + C1)(2 cov_xy + C2) / ((ux^2 + uy^2 + C1)(var_x + var_y + C2)), in place
        a = torch.mul(ux, uy, out=prod).mul_(2.0).add_(c1)
        b = torch.mul(ux, ux, out=squares).add_(uy.square_()).add_(c1)
        num = cov.mul_(2.0 * cov_norm).add_(c2).mul_(a)
        den = (var_sum.mul_(cov_norm) if cov_norm != 1.0 else var_sum).add_(c2).mul_(b)
        return num.div_(den).mean(dim=(2, 3), dtype=torch.float64).mean(dim=1)

    # chunks keep the filtered planes (12 of float32 in CHUNK_PIXELS, 12 of float64 in SSIM_FLOAT64_CHUNK_PIXELS:
    # ~1.5 MB) in the cache (measured 3-4x faster than chunks of 2**21 pixels, 32x32 to 256x256)
    pixels = CHUNK_PIXELS if dtype == torch.float32 else SSIM_FLOAT64_CHUNK_PIXELS
    return per_image_chunks(one_chunk, pred, target, pixels=pixels * 3 // channels).cpu()


@metric_section()
def luma_ssim(
    pred: Tensor,
    target: Tensor,
    grey_convention: str,
    variant: str = "gaussian",
    data_range: float = 255.0,
    k1: float = 0.01,
    k2: float = 0.03,
    compute_dtype: str = "float64",
) -> Tensor:
    """Per-image SSIM between the grey of the colorization and the grey of the real image (the method's input).

    Both images are turned into grey with :func:`colorbench.core.color.rgb_to_grey` under ``grey_convention`` (the
    run's convention, so the target's grey is exactly the grey input the method was given), then compared with
    :func:`ssim`'s single-channel computation (same window, constants and valid-region average). It measures
    whether a colorization keeps the structure of its input: a method that outputs its grey input scores 1;
    structure-less output (noise, blobs) scores near 0.

    Equals scikit-image's ``structural_similarity(grey_target*255, grey_pred*255, data_range=255, ...)`` on the
    2-D grey images, with the settings of :func:`ssim`'s ``variant``.

    Args:
        pred: colorized images ``(N, 3, H, W)``, float in [0, 1].
        target: real images, same shape.
        grey_convention: ``"bt601"`` or ``"cie-l"`` (see :data:`colorbench.core.color.GREY_CONVENTIONS`); required,
            because the value depends on it.
        variant, data_range, k1, k2, compute_dtype: as :func:`ssim` (the grey is in [0, 1] under both
            conventions, scaled to [0, data_range]).

    Returns:
        float64 tensor ``(N,)`` on the CPU.
    """
    check_image_pair(pred, target)
    return luma_ssim_unchecked(luma(pred, grey_convention), luma(target, grey_convention), variant, data_range,
                                k1, k2, compute_dtype)


def luma(images: Tensor, grey_convention: str) -> Tensor:
    """The grey ``(N, 1, H, W)`` of RGB images under a named convention (as the runner makes the grey input)."""
    if grey_convention not in GREY_CONVENTIONS:
        raise ValueError(f"unknown grey convention {grey_convention!r}; choose one of {GREY_CONVENTIONS}")
    return rgb_to_grey(images, grey_convention)


def luma_ssim_unchecked(pred_grey: Tensor, target_grey: Tensor, variant: str = "gaussian",
                         data_range: float = 255.0, k1: float = 0.01, k2: float = 0.03,
                         compute_dtype: str = "float64") -> Tensor:
    """SSIM of two ``(N, 1, H, W)`` grey batches (the kernel of :func:`ssim` on one channel)."""
    return ssim_unchecked(pred_grey, target_grey, variant, data_range, k1, k2, compute_dtype)
