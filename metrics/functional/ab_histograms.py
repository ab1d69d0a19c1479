"""ab-histogram counts (per channel and joint) of the CIE a, b of every pixel, and their KL and JS divergences."""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from scipy.special import rel_entr
from torch import Tensor

from colorbench.core.color import rgb_to_lab
from colorbench.metrics.functional.checks import check_image_pair, check_images
from colorbench.metrics.functional.chunks import CHUNK_PIXELS
from colorbench.metrics.functional.eight_bit import exact_8bit_levels
from colorbench.core.threads import chunk_map, metric_section


#: Defaults: 256 bins of width 1 over [-128, 128] (every sRGB colour has a in [-86.2, 98.3], b in
#: [-107.9, 94.5]); eps = 1e-10 added to every bin probability before renormalising.
AB_HISTOGRAM_BINS = 256
AB_HISTOGRAM_RANGE = (-128.0, 128.0)
AB_HISTOGRAM_EPS = 1e-10
#: KL directions: "real||pred" is KL(real ‖ colorized) = sum p_real log(p_real / p_pred) (default).
KL_DIRECTIONS = ("real||pred", "pred||real")


def check_bins(bins: int, value_range: tuple[float, float]) -> None:
    if not (isinstance(bins, int) and bins >= 1):
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    lo, hi = value_range
    if not hi > lo:
        raise ValueError(f"value_range must be (low, high) with high > low, got {value_range}")


def check_eps_base(eps: float, base: float | None) -> None:
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if base is not None and not (base > 0 and base != 1):
        raise ValueError(f"base must be a positive number other than 1 (or None for e), got {base}")


def ab_histogram_edges(
    bins: int = AB_HISTOGRAM_BINS, value_range: tuple[float, float] = AB_HISTOGRAM_RANGE
) -> list[float]:
    """The ``bins + 1`` bin edges (uniform over ``value_range``)."""
    return np.linspace(value_range[0], value_range[1], bins + 1).tolist()


@metric_section()
def ab_histogram_counts(
    images: Tensor, bins: int = AB_HISTOGRAM_BINS, value_range: tuple[float, float] = AB_HISTOGRAM_RANGE
) -> Tensor:
    """Counts of the CIE a and b values of every pixel of ``images`` in uniform bins.

    Bins are those of the float64 Lab values of :func:`colorbench.core.color.rgb_to_lab` (see :func:`ab_bin_indices`
    for how they are found faster), with 8-bit levels converted exactly (a float32 k/255 is read as k/255:
    :func:`exact_8bit_levels`). Bins are half-open ``[e_i - t, e_i+1 - t)`` with the tie tolerance t =
    :data:`AB_EDGE_TIE` = 1e-9 (a value on an edge, up to conversion rounding, is in the bin the edge starts), the
    last one closed, as ``numpy.histogram(v + t, edges)``; values outside ``value_range`` are counted in the
    first/last bin (with the default range no sRGB colour is outside it).

    Args:
        images: ``(N, 3, H, W)`` float RGB in [0, 1].

    Returns:
        int64 tensor ``(2, bins)`` (a, b) on the images' device.
    """
    check_images(images, "images")
    return ab_counts_unchecked(images, bins, value_range)


#: Lab values closer than this to a bin edge have their bin recomputed in float64 (see :func:`ab_bin_indices`).
#: float32 Lab is within 6e-5 of scikit-image's float64 Lab (measured on random and edge-case colours; see
#: tests/test_color.py), so the margin is over 15x.
AB_EDGE_GUARD = 1e-3


#: Pixels converted to Lab at a time by :func:`ab_bin_indices`: the temporaries of a chunk (~1.5 MB each) stay in
#: the CPU cache; measured 2.2x faster than converting a batch of 500 32x32 images at once (1 thread), and on the
#: chunk pool (2 threads) 2**17 was 10-12% faster than 2**16 and 1.5x faster than 2**15 at 32x32 and 64x64 (the
#: same at 256x256; side by side).
_LAB_CHUNK_PIXELS = 4 * CHUNK_PIXELS


def _ab_bin_positions(rgb: Tensor, lo: float, scale: float) -> Tensor:
    """``(a - lo) * scale`` and ``(b - lo) * scale`` ``(n, 2, P)`` of sRGB pixels ``(n, 3, P)``, with
    :func:`colorbench.core.color.rgb_to_lab` in the pixels' dtype (float32 here).

    Within 6e-5 of scikit-image's float64 a and b (measured on random and edge-case colours; tested against 1/8
    of :data:`AB_EDGE_GUARD`), so the bins :func:`ab_bin_indices` derives are exact. (Until 2026-12-07 a
    branch-free copy of the conversion with NumPy's powers ran here; measured side by side on 300 images of
    64x64, it was no faster than ``rgb_to_lab`` (403-445 against 348-369 ns per pixel, 1 thread, load 7) and
    gave the same counts, so the one conversion of ``colorbench.core.color`` is used.)
    """
    lab = rgb_to_lab(rgb.unsqueeze(-2))[:, 1:, 0, :]  # (n, 3, 1, P) -> (n, 2, P)
    return lab.sub_(lo).mul_(scale)


@metric_section()
def ab_bin_indices(images: Tensor, bins: int, value_range: tuple[float, float]) -> Tensor:
    """Bin index ``(2, N*H*W)`` of the a and b value of every pixel, as the float64 Lab values would give.

    Lab is computed in float32 (:func:`_ab_bin_positions`; the colour conversion is most of the histogram
    metrics' time); a pixel whose float32 a or b is within :data:`AB_EDGE_GUARD` of a bin edge, where float32
    rounding could change its bin, is converted again in float64 and binned from that (8-bit levels exact, edges
    under the tie rule: see :func:`ab_histogram_counts`). The result equals binning the float64 Lab values so
    (tested exactly, including colours placed on bin edges and every 8-bit colour whose bin float32 k/255 changes).

    Args:
        images: ``(N, 3, H, W)`` float RGB in [0, 1] (not validated here).
        bins, value_range: the uniform bins.
    """
    def fixed(idx: Tensor, near: Tensor, rgb: Tensor) -> Tensor:
        if near.shape[0]:
            idx[near[:, 0], :, near[:, 1]] = _float64_bins(rgb[near[:, 0], :, near[:, 1]], bins, value_range)
        return idx.transpose(0, 1).reshape(2, -1)

    return torch.cat(_ab_bin_index_chunks(images, bins, value_range, fixed), dim=1).long()


#: The bin-edge tie rule: an a or b value less than this below a bin edge is counted in the bin that starts at the
#: edge, as a value on the edge. Colours whose exact a or b is an edge (grid ab values, a constant tint, the integer
#: edges of the default bins) come out of any float64 Lab conversion within ~1e-13 of it, on either side depending
#: on the conversion's rounding; with the rule every conversion bins them alike (numpy.histogram of the values plus
#: AB_EDGE_TIE reproduces it). Values move by at most 1e-9, far below any colour difference.
AB_EDGE_TIE = 1e-9


def _float64_bins(pixels: Tensor, bins: int, value_range: tuple[float, float]) -> Tensor:
    """int32 bins ``(k, 2)`` of the float64 a and b of sRGB pixels ``(k, 3)`` (clamped to the end bins): 8-bit
    levels exact (:func:`exact_8bit_levels`), edges under the tie rule (:data:`AB_EDGE_TIE`)."""
    lo, hi = float(value_range[0]), float(value_range[1])
    ab64 = rgb_to_lab(exact_8bit_levels(pixels, channel_dim=1).T.unsqueeze(-1))[1:, :, 0].T  # (k, 2)
    return torch.floor((ab64 - (lo - AB_EDGE_TIE)) * (bins / (hi - lo))).to(torch.int32).clamp_(0, bins - 1)


def _nonzero(mask: Tensor) -> Tensor:
    """``torch.nonzero(mask)`` of a 2-D boolean mask; on the CPU through NumPy's ``flatnonzero`` (0.25 against
    1.8 ns per element for ``torch.nonzero``, measured side by side: the near-edge search was a tenth of the
    histogram metrics' time)."""
    if mask.device.type != "cpu":
        return torch.nonzero(mask)
    flat = torch.from_numpy(np.flatnonzero(mask.numpy()))
    return torch.stack((flat // mask.shape[1], flat % mask.shape[1]), dim=1)


def _ab_bin_index_chunks(images: Tensor, bins: int, value_range: tuple[float, float],
                         then: Callable[[Tensor, Tensor, Tensor], Any]) -> list[Any]:
    """``then(idx, near, rgb)`` for each chunk of :data:`_LAB_CHUNK_PIXELS` pixels, in order, on
    :func:`colorbench.core.threads.chunk_map`'s pool; never the whole batch's indices at once.

    ``rgb``: the chunk's pixels ``(n_chunk, 3, H*W)``; ``idx``: their float32 bins, int32 ``(n_chunk, 2, H*W)``
    (clamped to the end bins); ``near``: ``(k, 2)`` (image, pixel) positions of the pixels within
    :data:`AB_EDGE_GUARD` of a bin edge, whose bins ``then`` must take from :func:`_float64_bins` instead.
    """
    check_bins(bins, value_range)
    lo, hi = float(value_range[0]), float(value_range[1])
    scale = bins / (hi - lo)
    guard = AB_EDGE_GUARD * scale  # in bin units
    n, _, h, w = images.shape
    step = max(1, _LAB_CHUNK_PIXELS // (h * w)) if images.device.type == "cpu" else n  # see per_image_chunks

    def one_chunk(start: int) -> Any:
        rgb = images[start : start + step].reshape(-1, 3, h * w)
        pos = _ab_bin_positions(rgb.float(), lo, scale)  # (n_chunk, 2, H*W)
        floor = torch.floor(pos)
        dist = pos.sub_(floor).sub_(0.5).abs_()  # |frac - 0.5|: near an edge when frac < guard or > 1 - guard
        near = _nonzero(torch.maximum(dist[:, 0], dist[:, 1]) > 0.5 - guard)  # (k, 2)
        return then(floor.to(torch.int32).clamp_(0, bins - 1), near, rgb)

    return chunk_map(one_chunk, range(0, n, step))


def ab_counts_unchecked(images: Tensor, bins: int, value_range: tuple[float, float], joint: bool = False) -> Tensor:
    """Pooled counts of :func:`ab_histogram_counts` (``joint=False``, ``(2, bins)``) or
    :func:`ab_joint_histogram_counts` (``joint=True``, ``(bins, bins)``), counted chunk by chunk and added.

    Each chunk counts its float32 bins and hands back its few near-edge pixels; those are converted in float64
    once for the whole batch (one conversion instead of one per chunk) and moved to their exact bins.
    """
    count = ab_joint_counts_from_indices if joint else ab_counts_from_indices

    def counted(idx: Tensor, near: Tensor, rgb: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        return count(idx, bins), rgb[near[:, 0], :, near[:, 1]], idx[near[:, 0], :, near[:, 1]]

    parts = _ab_bin_index_chunks(images, bins, value_range, counted)
    total = parts[0][0]
    for c, _, _ in parts[1:]:
        total = total.add_(c)
    near_rgb = torch.cat([p[1] for p in parts])
    if near_rgb.shape[0]:
        near_idx = torch.cat([p[2] for p in parts])  # (k, 2) float32 bins
        total.add_(count(_float64_bins(near_rgb, bins, value_range).T, bins)).sub_(count(near_idx.T, bins))
    return total


#: 8-bit pixels a process bins through the float path before it builds (or loads) the colour table of
#: :func:`ab_counts_8bit`: building it bins all 2**24 colours (~3 s of CPU, about what 2**23 pixels cost the float
#: path: 128 images of 256x256), so short evaluations (tests, small sets) never pay for it.
AB_TABLE_AFTER_PIXELS = 2**23
#: Version of the stored colour tables (bumped when the binning rule changes; older files are rebuilt).
AB_TABLE_FORMAT = 1
_AB_TABLES: dict[tuple[int, float, float], np.ndarray] = {}
_float_path_8bit_pixels = 0


def _colour_table_path(bins: int, lo: float, hi: float) -> Any:
    import os
    from pathlib import Path

    root = os.environ.get("COLORBENCH_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "colorbench")
    return Path(root) / "ab-tables" / f"ab-bins-v{AB_TABLE_FORMAT}-{bins}-{lo:g}-{hi:g}.npy"


def _all_colours(start: int, stop: int) -> Tensor:
    """Every 8-bit colour with code ``r << 16 | g << 8 | b`` in ``[start, stop)``, as float32 k/255 ``(1, 3, 1, n)``."""
    code = torch.arange(start, stop, dtype=torch.int32)
    return torch.stack(((code >> 16) & 255, (code >> 8) & 255, code & 255)).float().div_(255.0).view(1, 3, 1, -1)


def _table_codes(rgb: Tensor, bins: int, value_range: tuple[float, float]) -> np.ndarray:
    """Joint cell ``a * bins + b`` of float RGB pixels, from :func:`ab_bin_indices` (the float path)."""
    idx = ab_bin_indices(rgb, bins, value_range)
    return (idx[0] * bins + idx[1]).numpy()


def build_ab_colour_table(bins: int = AB_HISTOGRAM_BINS,
                          value_range: tuple[float, float] = AB_HISTOGRAM_RANGE) -> np.ndarray:
    """The joint ab cell ``a * bins + b`` of every 8-bit colour, indexed by ``r << 16 | g << 8 | b`` (2**24
    entries; uint16 when ``bins**2 <= 65536``): :func:`ab_bin_indices` of each colour, so counting a uint8 image
    through the table gives exactly its float path's counts (tests/test_ab_colour_table.py checks all 2**24
    colours against the float64 bins of :func:`_float64_bins`)."""
    check_bins(bins, value_range)
    dtype = np.uint16 if bins * bins <= 2**16 else np.int32
    table = np.empty(2**24, dtype=dtype)
    step = 2**20
    for start in range(0, 2**24, step):
        table[start:start + step] = _table_codes(_all_colours(start, start + step), bins, value_range)
    return table


def _table_looks_right(table: np.ndarray, bins: int, value_range: tuple[float, float]) -> bool:
    """A loaded table has the right shape and agrees with the float path on 4,096 spread colours (a stale or
    damaged file is rebuilt)."""
    if table.shape != (2**24,) or table.dtype != (np.uint16 if bins * bins <= 2**16 else np.int32):
        return False
    codes = (torch.arange(4096, dtype=torch.int32) * 4097) % 2**24
    rgb = torch.stack(((codes >> 16) & 255, (codes >> 8) & 255, codes & 255)).float().div_(255.0).view(1, 3, 1, -1)
    return bool(np.array_equal(table[codes.numpy()], _table_codes(rgb, bins, value_range)))


def ab_colour_table(bins: int, value_range: tuple[float, float], pixels: int = 0) -> np.ndarray | None:
    """The colour table of :func:`build_ab_colour_table` once it is worth having, else None.

    A process keeps the table once it has it. It loads a stored one (``$COLORBENCH_CACHE_DIR/ab-tables/``, else
    ``~/.cache/colorbench/ab-tables/``; checked by :func:`_table_looks_right`) as soon as it bins any 8-bit
    pixels; it builds one (and stores it, best effort) only after :data:`AB_TABLE_AFTER_PIXELS` 8-bit pixels went
    through the float path. ``pixels``: the 8-bit pixels about to be binned (counted towards that threshold)."""
    global _float_path_8bit_pixels

    check_bins(bins, value_range)
    key = (bins, float(value_range[0]), float(value_range[1]))
    table = _AB_TABLES.get(key)
    if table is not None:
        return table
    path = _colour_table_path(*key)
    try:
        table = np.load(path, mmap_mode=None, allow_pickle=False)
    except (OSError, ValueError):
        table = None
    if table is not None and not _table_looks_right(table, bins, value_range):
        table = None
    if table is None:
        _float_path_8bit_pixels += pixels
        if _float_path_8bit_pixels < AB_TABLE_AFTER_PIXELS:
            return None
        table = build_ab_colour_table(bins, value_range)
        try:
            from colorbench.core.fsio import WriteError, atomic_write_with

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_with(path, lambda buf: np.save(buf, table))
        except (OSError, WriteError):
            pass  # a cache that cannot be written is skipped
    _AB_TABLES[key] = table
    return table


def ab_joint_counts_8bit(images: Tensor, table: np.ndarray, bins: int) -> Tensor:
    """Joint ab counts ``(bins, bins)`` int64 (rows a, columns b) of uint8 RGB images ``(N, 3, H, W)`` through
    a colour table of :func:`ab_colour_table`: the same counts as :func:`ab_counts_unchecked` (``joint=True``) of
    ``images / 255`` in float32."""
    x = images.cpu().numpy()
    code = x[:, 0].astype(np.uint32) << 16
    code |= x[:, 1].astype(np.uint32) << 8
    code |= x[:, 2]
    return torch.from_numpy(np.bincount(table[code.ravel()], minlength=bins * bins).reshape(bins, bins))


def ab_counts_from_indices(idx: Tensor, bins: int) -> Tensor:
    """Per-channel counts ``(2, bins)`` from bin indices ``(..., 2, m)`` (a, then b, on the second-last axis:
    :func:`ab_bin_indices`' ``(2, P)`` or a chunk's ``(n, 2, H*W)``)."""
    # one bincount over both channels (b's indices shifted by ``bins``) instead of one per channel
    offsets = torch.tensor([[0], [bins]], dtype=idx.dtype, device=idx.device)
    return torch.bincount((idx + offsets).reshape(-1), minlength=2 * bins).view(2, bins)


def _probabilities(counts: Tensor | np.ndarray, eps: float) -> np.ndarray:
    c = np.asarray(torch.as_tensor(counts).cpu(), dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ValueError("empty histogram (no pixels counted); call update() with some images first")
    p = c / total + eps
    return p / p.sum()


def kl_divergence_from_counts(
    real_counts: Tensor | np.ndarray,
    pred_counts: Tensor | np.ndarray,
    *,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
    direction: str = "real||pred",
) -> float:
    """KL divergence between two histograms given as counts (one channel).

    Counts become probabilities, ``eps`` is added to every bin and each histogram is renormalised; then
    KL(p ‖ q) = sum p log(p / q) / log(base) with (p, q) = (real, pred) for ``direction="real||pred"``
    (default). With ``eps=0`` a bin empty in q but not in p gives +inf. Equals ``scipy.stats.entropy(p, q,
    base=base)`` on the smoothed probabilities.
    """
    check_eps_base(eps, base)
    if direction not in KL_DIRECTIONS:
        raise ValueError(f"unknown KL direction {direction!r}; choose one of {KL_DIRECTIONS}")
    p, q = _probabilities(real_counts, eps), _probabilities(pred_counts, eps)
    if direction == "pred||real":
        p, q = q, p
    if p.shape != q.shape:
        raise ValueError(f"histograms have different numbers of bins: {p.shape} vs {q.shape}")
    value = float(rel_entr(p, q).sum())
    return value / math.log(base) if base is not None else value


def js_divergence_from_counts(
    real_counts: Tensor | np.ndarray,
    pred_counts: Tensor | np.ndarray,
    *,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
) -> float:
    """Jensen-Shannon divergence between two histograms given as counts (one channel), symmetric.

    JS = (KL(p ‖ m) + KL(q ‖ m)) / 2 with m = (p + q) / 2, after the same ``eps`` smoothing as
    :func:`kl_divergence_from_counts`; in [0, log(2)/log(base)]. It is a divergence: the square of scipy's
    ``jensenshannon(p, q, base)`` distance.
    """
    check_eps_base(eps, base)
    p, q = _probabilities(real_counts, eps), _probabilities(pred_counts, eps)
    if p.shape != q.shape:
        raise ValueError(f"histograms have different numbers of bins: {p.shape} vs {q.shape}")
    m = (p + q) / 2
    value = float((rel_entr(p, m).sum() + rel_entr(q, m).sum()) / 2)
    return value / math.log(base) if base is not None else value


@metric_section()
def ab_histogram_kl(
    pred: Tensor,
    target: Tensor,
    bins: int = AB_HISTOGRAM_BINS,
    value_range: tuple[float, float] = AB_HISTOGRAM_RANGE,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
    direction: str = "real||pred",
) -> dict[str, float]:
    """KL divergence between the a (and b) histograms pooled over all pixels of the real and colorized sets.

    ``pred`` and ``target`` need not be paired (only their histograms are compared) but are validated as pairs
    here since the harness always has pairs. See :func:`ab_histogram_counts` and
    :func:`kl_divergence_from_counts` for the conventions; natural log by default (``base=None``).

    Returns:
        ``{"a": KL of the a histograms, "b": KL of the b histograms}``.
    """
    check_image_pair(pred, target)
    real, fake = ab_histogram_counts(target, bins, value_range), ab_histogram_counts(pred, bins, value_range)
    return {
        ch: kl_divergence_from_counts(real[i], fake[i], eps=eps, base=base, direction=direction)
        for i, ch in enumerate("ab")
    }


@metric_section()
def ab_histogram_js(
    pred: Tensor,
    target: Tensor,
    bins: int = AB_HISTOGRAM_BINS,
    value_range: tuple[float, float] = AB_HISTOGRAM_RANGE,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
) -> dict[str, float]:
    """Jensen-Shannon divergence between the a (and b) histograms of the real and colorized sets.

    Returns:
        ``{"a": JS of the a histograms, "b": JS of the b histograms}``.
    """
    check_image_pair(pred, target)
    real, fake = ab_histogram_counts(target, bins, value_range), ab_histogram_counts(pred, bins, value_range)
    return {ch: js_divergence_from_counts(real[i], fake[i], eps=eps, base=base) for i, ch in enumerate("ab")}


# ------------------------------------------------------------------------------------------------------------
# Joint 2-D ab histogram
# ------------------------------------------------------------------------------------------------------------

#: Joint (a, b) histogram defaults: 64 x 64 bins of width 4 over [-128, 128]^2. Coarser than the 1-D default
#: (256 bins of width 1) because a joint histogram has bins**2 cells: 65,536 cells of width 1 would be mostly
#: empty for a test set of a few hundred small images, and KL would then measure the smoothing eps.
AB_JOINT_BINS = 64


@metric_section()
def ab_joint_histogram_counts(
    images: Tensor, bins: int = AB_JOINT_BINS, value_range: tuple[float, float] = AB_HISTOGRAM_RANGE
) -> Tensor:
    """Counts of the (a, b) pairs of every pixel of ``images`` in a ``bins x bins`` grid.

    Same binning rules as :func:`ab_histogram_counts` (uniform, half-open bins, the last one closed, values
    outside ``value_range`` counted in the end bins), applied to a and b jointly; equals
    ``numpy.histogram2d(a, b, bins, range=[value_range] * 2)``.

    Returns:
        int64 tensor ``(bins, bins)`` on the images' device: rows index a, columns b.
    """
    check_images(images, "images")
    return ab_counts_unchecked(images, bins, value_range, joint=True)


def ab_joint_counts_from_indices(idx: Tensor, bins: int) -> Tensor:
    """Joint counts ``(bins, bins)`` (rows a, columns b) from bin indices ``(..., 2, m)`` (see
    :func:`ab_counts_from_indices`)."""
    cells = idx[..., 0, :] * bins + idx[..., 1, :]
    return torch.bincount(cells.reshape(-1), minlength=bins * bins).view(bins, bins)


@metric_section()
def ab_joint_histogram_kl(
    pred: Tensor,
    target: Tensor,
    bins: int = AB_JOINT_BINS,
    value_range: tuple[float, float] = AB_HISTOGRAM_RANGE,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
    direction: str = "real||pred",
) -> float:
    """KL divergence between the joint (a, b) histograms of the real and colorized sets (one number).

    The ``bins x bins`` cells are one distribution; smoothing, direction and log base as
    :func:`kl_divergence_from_counts`.
    """
    check_image_pair(pred, target)
    real = ab_joint_histogram_counts(target, bins, value_range)
    fake = ab_joint_histogram_counts(pred, bins, value_range)
    return kl_divergence_from_counts(real, fake, eps=eps, base=base, direction=direction)


@metric_section()
def ab_joint_histogram_js(
    pred: Tensor,
    target: Tensor,
    bins: int = AB_JOINT_BINS,
    value_range: tuple[float, float] = AB_HISTOGRAM_RANGE,
    eps: float = AB_HISTOGRAM_EPS,
    base: float | None = None,
) -> float:
    """Jensen-Shannon divergence between the joint (a, b) histograms of the real and colorized sets."""
    check_image_pair(pred, target)
    real = ab_joint_histogram_counts(target, bins, value_range)
    fake = ab_joint_histogram_counts(pred, bins, value_range)
    return js_divergence_from_counts(real, fake, eps=eps, base=base)
