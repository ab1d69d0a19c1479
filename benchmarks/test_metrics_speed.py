"""Speed and memory of the metric suite (pytest-benchmark; run with ``tox -e bench``, never by the test suite).

Side by side in one run, each idle and *contended* (a competing multi-threaded torch process runs meanwhile; see
``conftest.py``), for 2,000 images of 32x32, 500 of 64x64 and 32 of 256x256 (2 million pixels each):
* colorbench SSIM (float32) vs piq's batched SSIM, and vs colorbench's metric kernels run the way they were
  before the chunk pool (``colorbench-threaded-ops``: every small op on all intra-op threads);
* colorbench PSNR vs piq's PSNR;
* the whole default metric set (streamed through one ``MetricCollection`` in batches of 500, as the runner does;
  LPIPS excluded: no weights offline) vs a per-image loop of scikit-image/scipy/numpy calls computing the same
  numbers;
* each of SSIM, PSNR and the metric set as colorbench computed them before issue #13 (``before-13``: the code of
  ``baseline.BASELINE_COMMIT``, in a child process; see ``baseline.py``), for "idle speed no worse than before";
* peak resident memory of a streamed evaluation of N and 4N images, each in a fresh process (must not grow with
  N beyond the per-image values).
Every benchmark runs several rounds; compare means or medians (``python benchmarks/ratios.py BENCH.json`` prints
them, the ratios and the issue's targets for a run saved with ``--benchmark-json``), not the best round.
``COLORBENCH_BENCH_SCALE`` (default 1) divides the numbers of images, for a quick look.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from colorbench.core import threads
from colorbench.metrics import functional as MF

import workload  # benchmarks/workload.py (pytest puts benchmarks/ on sys.path)

piq = pytest.importorskip("piq")
SCALE = int(os.environ.get("COLORBENCH_BENCH_SCALE", "1"))
SIZES = {32: 2_000 // SCALE, 64: 500 // SCALE, 256: max(32 // SCALE, 2)}
METRIC_SET = ("mse", "psnr", "ssim", "ab_histogram_kl", "ab_histogram_js", "colorfulness", "delta_colorfulness",
              "sum_abs_diff")
ROUNDS = 5


_data = workload.data


@pytest.fixture(scope="module", params=sorted(SIZES), ids=lambda s: f"{s}px")
def data(request):
    size = request.param
    return size, *_data(size, SIZES[size])


@pytest.fixture(scope="session")
def before_13():
    """The child process that runs colorbench's code of before issue #13 (skipped where git cannot provide it)."""
    from baseline import Baseline

    try:
        baseline = Baseline(METRIC_SET)
    except RuntimeError as err:
        pytest.skip(str(err))
    yield baseline
    baseline.close()


def _impl(request, impl: str, what: str, size: int, n: int, **own):
    """The function to time for ``impl``: one of ``own``, or the before-#13 code in its child process."""
    if impl == "before-13":
        baseline = request.getfixturevalue("before_13")
        return lambda: baseline.call(what, size, n)
    return own[impl]


def _threaded_ops(fn):
    """``fn`` with colorbench's metric kernels run inline on all intra-op threads (the design before the pool)."""
    def run():
        threads.set_metric_threads(threads.INTRA_OP)
        try:
            return fn()
        finally:
            threads.set_metric_threads(None)
    return run


@pytest.mark.benchmark(group="ssim")
@pytest.mark.parametrize("impl", ["colorbench", "colorbench-threaded-ops", "before-13", "piq"])
def test_ssim(benchmark, conditions, data, impl, request):
    size, pred, target = data
    fn = _impl(request, impl, "ssim", size, len(pred), **{
        "colorbench": lambda: MF.ssim(pred, target),
        "colorbench-threaded-ops": _threaded_ops(lambda: MF.ssim(pred, target)),
        "piq": lambda: piq.ssim(pred, target, data_range=1.0, reduction="none")})
    benchmark.extra_info.update(size=size, n=len(pred))
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="psnr")
@pytest.mark.parametrize("impl", ["colorbench", "before-13", "piq"])
def test_psnr(benchmark, conditions, data, impl, request):
    size, pred, target = data
    fn = _impl(request, impl, "psnr", size, len(pred), **{
        "colorbench": lambda: MF.psnr(pred, target, reduction=None),
        "piq": lambda: piq.psnr(pred, target, data_range=1.0, reduction="none")})
    benchmark.extra_info.update(size=size, n=len(pred))
    benchmark.pedantic(fn, rounds=ROUNDS, iterations=1, warmup_rounds=1)


def test_ssim_float32_agrees_with_skimage(data):
    from skimage.metrics import structural_similarity

    size, pred, target = data
    n = min(20, len(pred))
    p, t = pred[:n].permute(0, 2, 3, 1).double().numpy(), target[:n].permute(0, 2, 3, 1).double().numpy()
    want = [structural_similarity(t[i] * 255, p[i] * 255, data_range=255, channel_axis=-1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for i in range(n)]
    assert np.abs(MF.ssim(pred[:n], target[:n]).numpy() - want).max() <= 1e-5


def _stream(pred, target, batch=500):
    return workload.stream(pred, target, METRIC_SET, batch)


def _per_image_loop(pred, target):
    """The same numbers the way a script would get them: one image at a time, skimage/scipy/numpy."""
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import entropy
    from skimage.color import rgb2lab
    from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

    p_all, t_all = pred.permute(0, 2, 3, 1).double().numpy(), target.permute(0, 2, 3, 1).double().numpy()
    hist = {k: np.zeros((2, 256)) for k in ("p", "t")}
    vals = []
    for p, t in zip(p_all, t_all):
        p255, t255 = p * 255, t * 255
        row = [mean_squared_error(t255, p255), peak_signal_noise_ratio(t255, p255, data_range=255),
               structural_similarity(t255, p255, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False), np.abs(p255 - t255).sum()]
        for key, img in (("p", p), ("t", t)):
            lab = rgb2lab(img)
            for ch in (0, 1):
                hist[key][ch] += np.histogram(lab[..., ch + 1], bins=256, range=(-128, 128))[0]
            rg, yb = img[..., 0] * 255 - img[..., 1] * 255, 0.5 * (img[..., 0] + img[..., 1]) * 255 - img[..., 2] * 255
            row.append(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
        vals.append(row)
    probs = {k: (h / h.sum(1, keepdims=True) + 1e-10) for k, h in hist.items()}
    divs = [(entropy(probs["t"][c], probs["p"][c]), jensenshannon(probs["t"][c], probs["p"][c]) ** 2) for c in (0, 1)]
    return np.mean(vals, axis=0), divs


@pytest.mark.benchmark(group="metric-set")
@pytest.mark.parametrize("impl", ["colorbench-streamed", "colorbench-threaded-ops", "before-13",
                                  "per-image-skimage-loop"])
def test_whole_metric_set(benchmark, conditions, data, impl, request):
    size, pred, target = data
    fn = _impl(request, impl, "metric-set", size, len(pred), **{
        "colorbench-streamed": lambda: _stream(pred, target),
        "colorbench-threaded-ops": _threaded_ops(lambda: _stream(pred, target)),
        "per-image-skimage-loop": lambda: _per_image_loop(pred, target)})
    benchmark.extra_info.update(size=size, n=len(pred))
    benchmark.pedantic(fn, rounds=3, iterations=1)


def test_streamed_matches_per_image_loop():
    """The two sides of the metric-set benchmark compute the same numbers (so the ratio compares like with like)."""
    pred, target = _data(32, 200)
    got = _stream(pred, target)
    means, divs = _per_image_loop(pred, target)
    mse, psnr, ssim, sad, cf_pred, cf_real = means
    assert got["mse"]["mse"] == pytest.approx(mse, rel=1e-9)
    assert got["psnr"]["psnr"] == pytest.approx(psnr, rel=1e-9)
    assert got["ssim"]["ssim"] == pytest.approx(ssim, abs=1e-5)
    assert got["sum_abs_diff"]["sum_abs_diff"] == pytest.approx(sad, rel=1e-9)
    assert got["colorfulness"]["colorfulness"] == pytest.approx(cf_pred, rel=1e-9)
    assert got["delta_colorfulness"]["delta_colorfulness"] == pytest.approx(abs(cf_real - cf_pred), rel=1e-9)
    for c, ch in enumerate("ab"):
        assert got["ab_histogram_kl"][f"kl_{ch}"] == pytest.approx(divs[c][0], rel=1e-6)
        assert got["ab_histogram_js"][f"js_{ch}"] == pytest.approx(divs[c][1], rel=1e-6)


_PEAK_RSS_SCRIPT = """
import sys, torch
from colorbench.metrics import METRICS, MetricCollection
n, size, batch = (int(v) for v in sys.argv[1:4])
names = sys.argv[4].split(",")
g = torch.Generator().manual_seed(0)
metrics = MetricCollection({name: METRICS.get(name)() for name in names})
for start in range(0, n, batch):  # batches made on the fly, as a data loader would
    target = torch.rand(min(batch, n - start), 3, size, size, generator=g)
    metrics.update((0.8 * target + 0.1).clamp(0, 1), target)
metrics.compute()
# VmHWM: this process's peak resident memory. Not ru_maxrss: Linux keeps that across exec, so a child of a
# large pytest process would report the parent's size.
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def _peak_rss_bytes(n: int, size: int = 32, batch: int = 500) -> int:
    """Peak resident memory of a fresh process that streams ``n`` images through the metric set."""
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT, str(n), str(size), str(batch), ",".join(METRIC_SET)],
                         check=True, capture_output=True, text=True)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status (Linux)")
def test_streamed_peak_memory_independent_of_n(record_property):
    """Peak memory for 4N images exceeds that for N by little more than the per-image values (~20 float64 per
    image over all metrics) and allocator noise: holding the images (368 MB more for 3N = 30,000 at 32x32), or
    per-batch tensors (measured +1.2 GB before ValueBuffer), would show at once."""
    n = 10_000 // SCALE  # N = 10,000 images of 32x32 (the figures in metrics/README.md)
    small, large = _peak_rss_bytes(n), _peak_rss_bytes(4 * n)
    record_property("peak_rss_mib", json.dumps({"n": n, "small": small / 2**20, "large_4n": large / 2**20}))
    print(f"peak RSS: {n} images {small / 2**20:.1f} MiB, {4 * n} images {large / 2**20:.1f} MiB")
    per_image_values = 3 * n * 20 * 8  # extra images x float64 values kept per image
    assert large - small <= per_image_values + 32 * 2**20, (small, large)  # 32 MiB: allocator noise
