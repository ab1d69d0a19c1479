"""MetricCollection / MetricInputs (shared per-batch features) and the fast exact ab binning.

* A collection gives every metric exactly the values the metric gives on its own (same state, bit for bit).
* Shared features are computed once per batch (counted through the memo).
* ``functional.ab_bin_indices`` (float32 Lab, float64 near bin edges) equals binning colorbench's float64 Lab
  exactly, also for colours placed on bin edges, where float32 alone gets some bins wrong; and scikit-image's
  float64 Lab gives the same bins except for values within 1e-9 of an edge.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from skimage import color as skcolor

from colorbench.core.color import rgb_to_lab
from colorbench.metrics import METRICS, MetricCollection, MetricInputs
from colorbench.metrics import functional as MF
from colorbench.metrics.functional import ab_histograms as AH
from colorbench.metrics.functional import structural_similarity as SS

NAMES = ["mse", "psnr", "ssim", "ab_histogram_kl", "ab_histogram_js", "ab_joint_histogram_kl",
         "ab_joint_histogram_js", "colorfulness", "delta_colorfulness", "sum_abs_diff"]


def _pair(n=12, size=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    target = torch.rand(n, 3, size, size, generator=g)
    pred = (0.6 * target + 0.2 + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def test_collection_equals_each_metric_alone():
    pred, target = _pair()
    alone = {n: METRICS.get(n)() for n in NAMES}
    together = MetricCollection({n: METRICS.get(n)() for n in NAMES})
    for s in (0, 5):
        e = s + (5 if s == 0 else 7)
        for m in alone.values():
            m.update(pred[s:e], target[s:e])
        together.update(pred[s:e], target[s:e])
    got = together.compute()
    assert list(got) == NAMES
    for n in NAMES:
        assert got[n] == alone[n].compute(), n  # exactly: same code, same features
        for key, v in alone[n].per_image_values().items():
            assert torch.equal(together[n].per_image_values()[key], v)


def test_collection_shares_features_once_per_batch(monkeypatch):
    pred, target = _pair(n=4)
    calls = []
    real_counts = MF.ab_counts_unchecked

    def counting(images, bins, value_range, joint=False):
        calls.append(("pred" if images is pred else "target", bins, joint))
        return real_counts(images, bins, value_range, joint)

    monkeypatch.setattr(MF, "ab_counts_unchecked", counting)
    mc = MetricCollection({n: METRICS.get(n)() for n in NAMES})
    inputs = mc.update(pred, target)
    # one Lab conversion and binning per side and histogram: KL and JS share the 256-bin counts, the joint
    # metrics their 64 x 64 grid
    assert sorted(calls) == [("pred", 64, True), ("pred", 256, False), ("target", 64, True), ("target", 256, False)]
    assert inputs.difference_statistics() is inputs.difference_statistics()


def test_collection_validates_once_with_a_clear_error():
    mc = MetricCollection({n: METRICS.get(n)() for n in ("mse", "ab_histogram_js")})
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        mc.update(torch.rand(2, 3, 8, 8) * 2, torch.rand(2, 3, 8, 8))
    with pytest.raises(TypeError, match="StreamingMetric"):
        MetricCollection({"mse": object()})
    with pytest.raises(ValueError, match="side"):
        MetricInputs(*_pair(n=1)).image("real")


def test_collection_merge_reset_and_pickle():
    pred, target = _pair(n=8)
    full = MetricCollection({n: METRICS.get(n)() for n in NAMES})
    full.update(pred, target)
    a = MetricCollection({n: METRICS.get(n)() for n in NAMES})
    b = MetricCollection({n: METRICS.get(n)() for n in NAMES})
    a.update(pred[:3], target[:3])
    b.update(pred[3:], target[3:])
    a = pickle.loads(pickle.dumps(a))
    a.merge(b)
    want = full.compute()
    for n, values in a.compute().items():
        assert values == pytest.approx(want[n], rel=1e-12), n
    a.reset()
    with pytest.raises(ValueError, match="before any update"):
        a["mse"].compute()
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(MetricCollection({"mse": METRICS.get("mse")()}))


def _float64_bins(rgb_nchw: torch.Tensor, bins: int, lo: float, hi: float) -> np.ndarray:
    """Bins of colorbench's float64 Lab (the slow path the fast one must reproduce exactly), under the documented
    conventions (issue 24): 8-bit levels exact, and the edge tie rule (a value within AB_EDGE_TIE below an edge is
    in the bin above)."""
    lab = rgb_to_lab(MF.exact_8bit_levels(rgb_nchw, channel_dim=1))
    ab = lab[:, 1:].transpose(0, 1).reshape(2, -1)
    return torch.floor((ab - lo + MF.AB_EDGE_TIE) * (bins / (hi - lo))).long().clamp(0, bins - 1).numpy()


def _skimage_ab(rgb_nchw: torch.Tensor) -> np.ndarray:
    lab = skcolor.rgb2lab(rgb_nchw.double().permute(0, 2, 3, 1).numpy())
    return np.moveaxis(lab[..., 1:], -1, 0).reshape(2, -1)


def _edge_colours() -> torch.Tensor:
    """sRGB colours whose a or b lies on (within float64 rounding of) an integer, i.e. a bin edge of the default
    256 bins and of the 64 joint bins (width 4). Made by converting integer Lab points back to RGB in float64."""
    L, a, b = np.meshgrid(np.arange(20, 90, 7.0), np.arange(-60, 61, 4.0), np.arange(-60, 61, 4.0), indexing="ij")
    lab = np.stack([L, a, b], -1).reshape(-1, 1, 3)
    rgb = skcolor.lab2rgb(lab)  # clipped to the gamut: the in-gamut ones keep integer a, b
    back = skcolor.rgb2lab(rgb)
    on_edge = (np.abs(back - lab).max(axis=-1) < 1e-9)[:, 0]
    rgb = rgb[on_edge][:, 0]  # (k, 3)
    k = (len(rgb) // 16) * 16
    return torch.from_numpy(rgb[:k].reshape(-1, 4, 4, 3)).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("bins,value_range", [(256, (-128.0, 128.0)), (64, (-128.0, 128.0)), (100, (-50.0, 50.0))])
@pytest.mark.parametrize("data", ["random", "edges"])
def test_ab_bin_indices_equal_float64_binning(bins, value_range, data):
    if data == "edges":
        images = _edge_colours()
        assert images.shape[0] >= 20  # enough edge colours to mean something
    else:
        images = _pair(n=6, size=32, seed=3)[1].double()
    lo, hi = value_range
    for dtype in (torch.float32, torch.float64):  # a float32 image is binned as its values upcast to float64
        x = images.to(dtype)
        got = MF.ab_bin_indices(x, bins, value_range).numpy()
        np.testing.assert_array_equal(got, _float64_bins(x, bins, lo, hi))
        # and scikit-image's float64 Lab gives the same bins under the same tie rule, values on an edge included
        # (the two float64 conversions differ by ~1e-13 and round an on-edge value to either side: without the
        # rule, issue 24, they disagreed there)
        pos = (_skimage_ab(x) - lo) * (bins / (hi - lo))
        sk = np.clip(np.floor((_skimage_ab(x) - lo + MF.AB_EDGE_TIE) * (bins / (hi - lo))), 0, bins - 1)
        on_edge = np.abs(pos - np.round(pos)) < 1e-9 * (bins / (hi - lo))
        assert np.array_equal(got, sk)
        assert on_edge.any() == (data == "edges")


def test_float32_alone_would_misbin_edge_colours():
    """Why the float64 fallback exists: plain float32 Lab puts some edge colours in the neighbouring bin."""
    images = _edge_colours()
    want = _float64_bins(images, 256, -128.0, 128.0)
    ab32 = rgb_to_lab(images.float())[:, 1:].transpose(0, 1).reshape(2, -1)
    naive = torch.floor((ab32 + 128.0) * (256 / 256.0)).long().clamp(0, 255).numpy()
    assert (naive != want).sum() > 0


def test_fast_float32_ab_positions_are_well_inside_the_edge_guard():
    """The float32 a, b of the histogram path (functional.ab_histograms._ab_bin_positions: colorbench.core.color's
    rgb_to_lab in float32) stay within 1/8 of AB_EDGE_GUARD of scikit-image's float64 Lab, on a 64^3 grid of sRGB
    colours, random ones, dark ones (the linear branches of sRGB and of f) and ones at the sRGB knee: so the float64
    re-check catches every pixel whose bin float32 rounding could change (measured 6.4e-5 at most)."""
    g = torch.Generator().manual_seed(5)
    grid = torch.linspace(0, 1, 64)
    cols = torch.cat([torch.cartesian_prod(grid, grid, grid), torch.rand(20_000, 3, generator=g),
                      torch.rand(20_000, 3, generator=g) * 0.012, 0.04045 + (torch.rand(5_000, 3, generator=g) - 0.5) * 1e-4])
    want = skcolor.rgb2lab(cols.double().numpy()[None])[0, :, 1:] + 128.0
    got = AH._ab_bin_positions(cols.T.contiguous()[None], -128.0, 1.0)[0].T.double().numpy()
    assert np.abs(got - want).max() <= MF.AB_EDGE_GUARD / 8


def test_chunked_counts_equal_counting_the_exact_bins():
    """ab counts (near-edge pixels moved to their float64 bins once per batch) = bincount of ab_bin_indices."""
    images = torch.cat([_edge_colours().float(), torch.rand(60, 3, 4, 4, generator=torch.Generator().manual_seed(2))])
    for bins, value_range in ((256, (-128.0, 128.0)), (100, (-50.0, 50.0))):
        idx = MF.ab_bin_indices(images, bins, value_range)
        want = torch.stack([torch.bincount(i, minlength=bins) for i in idx])
        assert torch.equal(MF.ab_counts_unchecked(images, bins, value_range), want)
        joint = torch.bincount(idx[0] * bins + idx[1], minlength=bins * bins).view(bins, bins)
        assert torch.equal(MF.ab_counts_unchecked(images, bins, value_range, joint=True), joint)


def test_value_buffer_appends_concatenates_and_pickles():
    from colorbench.metrics.base import ValueBuffer

    buf = ValueBuffer()
    buf.append(torch.tensor([1.0, 2.0], dtype=torch.float32))
    buf.append(torch.tensor([3.5]))
    assert len(buf) == 3 and torch.equal(buf.tensor(), torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64))
    rows = ValueBuffer(width=5)
    rows.append(torch.arange(10.0).view(2, 5))
    both = rows + pickle.loads(pickle.dumps(rows))
    assert both.tensor().shape == (4, 5) and torch.equal(both.tensor()[2:], both.tensor()[:2])
    with pytest.raises(ValueError, match=r"shape \(2, 5\)"):
        rows.append(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="same width"):
        buf + rows
    metric = METRICS.get("mse")()
    with pytest.raises(TypeError, match="ValueBuffer"):
        metric.add_state("chunks", [], reduce="cat")


@pytest.mark.parametrize("shape", [(3, 12, 32, 32), (2, 12, 64, 48), (1, 6, 11, 11), (1, 12, 100, 90)])
def test_depthwise_ssim_window_equals_the_shifted_slice_sums(shape):
    """The two implementations of SSIM's separable window (functional.structural_similarity._depthwise_filter_valid, used on the CPU up
    to 64x64, and _separable_filter_valid) give the same filtered planes, for both windows."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(shape[2]))
    for variant in MF.SSIM_VARIANTS:
        kernel = SS._ssim_kernel_1d(variant, torch.device("cpu"))
        want = SS._separable_filter_valid(x, kernel.tolist())
        torch.testing.assert_close(SS._depthwise_filter_valid(x, kernel), want, rtol=1e-6, atol=1e-6)


def test_ssim_values_do_not_depend_on_which_window_implementation_ran(monkeypatch):
    g = torch.Generator().manual_seed(4)
    target = torch.rand(6, 3, 40, 40, generator=g)
    pred = (0.6 * target + 0.4 * torch.rand(target.shape, generator=g)).clamp(0, 1)
    for variant in MF.SSIM_VARIANTS:
        depthwise = MF.ssim(pred, target, variant=variant)
        monkeypatch.setattr(SS, "_SSIM_DEPTHWISE_MAX_PIXELS", 0)
        slices = MF.ssim(pred, target, variant=variant)
        monkeypatch.undo()
        assert torch.allclose(depthwise, slices, rtol=0, atol=1e-7)
        assert torch.equal(MF.ssim(target, target, variant=variant), torch.ones(6, dtype=torch.float64))


def test_histogram_path_on_autograd_inputs_and_numpy_nonzero_match_torch():
    """(NumPy's powers were removed with the Lab conversion of their own, issue 21: functional.ab_histograms uses
    colorbench.core.color.rgb_to_lab.)"""
    x = torch.rand(4, 3, 1000, generator=torch.Generator().manual_seed(8)) + 0.01
    counts = MF.ab_histogram_counts(x.view(4, 3, 25, 40).clamp(0, 1).requires_grad_(True))
    assert torch.equal(counts, MF.ab_histogram_counts(x.view(4, 3, 25, 40).clamp(0, 1)))
    mask = torch.rand(7, 333, generator=torch.Generator().manual_seed(9)) > 0.97
    assert torch.equal(AH._nonzero(mask), torch.nonzero(mask))
    assert AH._nonzero(torch.zeros(3, 4, dtype=torch.bool)).shape == (0, 2)


def test_metrics_leave_their_inputs_alone():
    """The in-place kernels work on copies: float64 and float32 inputs are unchanged after every metric (a float64
    ``pred.double()`` is the same tensor, so an in-place step on it would overwrite the caller's images)."""
    g = torch.Generator().manual_seed(11)
    for dtype in (torch.float64, torch.float32):
        target = torch.rand(5, 3, 16, 16, generator=g, dtype=dtype)
        pred = (0.5 * target + 0.4 * torch.rand(target.shape, generator=g, dtype=dtype)).clamp(0, 1)
        before = pred.clone(), target.clone()
        names = [n for n in METRICS.names() if n not in ("lpips", "fid")]
        mc = MetricCollection({n: METRICS.get(n)() for n in names})
        mc.update(pred, target)
        mc.compute()
        MF.mse(pred, target), MF.psnr(pred, target), MF.ssim(pred, target), MF.sum_abs_diff(pred, target)
        MF.colorfulness(pred), MF.ab_histogram_counts(pred)
        assert torch.equal(pred, before[0]) and torch.equal(target, before[1]), dtype


def test_metrics_take_outputs_that_are_part_of_an_autograd_graph():
    """A method's output that still requires grad is evaluated like its detached copy (the kernels work in place
    and with out= arguments; failed with a RuntimeError before MetricInputs detached its images)."""
    g = torch.Generator().manual_seed(12)
    target = torch.rand(4, 3, 24, 24, generator=g)
    weight = torch.tensor(0.8, requires_grad=True)
    pred = target * weight  # requires grad
    names = [n for n in METRICS.names() if n not in ("lpips", "fid")]
    values = []
    for p in (pred, pred.detach()):
        mc = MetricCollection({n: METRICS.get(n)() for n in names})
        mc.update(p, target)
        values.append(mc.compute())
    assert values[0] == values[1]
