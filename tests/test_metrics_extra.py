"""Tests of the metrics added for issue 3: colourfulness, sum of absolute differences, joint ab histograms, FID,
the log ab-histogram export, piq cross-checks, integer-input errors and the committed golden values.

Tolerances (absolute unless said):
* colourfulness, delta, sum_abs_diff vs a numpy implementation of the formulas: 1e-9 relative.
* joint ab histogram counts vs numpy.histogram2d of skimage's rgb2lab: exact; KL/JS vs scipy: 1e-9 relative.
* SSIM vs piq (float64 inputs): 1e-6 (piq filters with a full 2-D kernel; measured ~2e-7). PSNR vs piq: 1e-4 dB
  (piq adds 1e-8 to the MSE of [0, 1] images; measured ~5e-6 dB).
* FID formula vs pytorch-fid's (scipy.linalg.sqrtm) and piq's (Newton-Schulz): 1e-6 / 1e-3 relative.
* FID network vs piq's port of pytorch-fid's Inception on the same stand-in weights: 1e-4 relative.
* golden values (computed by skimage/scipy/numpy, tests/golden/make_golden.py): 1e-9 relative, SSIM (float32
  computation) 1e-6.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import linalg
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from skimage import color as skcolor
from skimage import data as skdata

from colorbench.metrics import METRICS, MetricUnavailable
from colorbench.metrics import fid as fid_mod
from colorbench.metrics import functional as MF
from colorbench.reports.histogram_export import (
    LOG_AB_HISTOGRAM_COLUMNS,
    log_ab_histogram_frame,
    write_log_ab_histogram_csv,
)

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def fid_stand_in(tmp_path_factory):
    """TEST ONLY: the FID Inception architecture with untrained (seeded) parameters saved as a weights file (as in
    test_metrics.py), so the FID plumbing is tested offline. Values computed with it are not FID."""
    path = tmp_path_factory.mktemp("fid_extra") / "stand_in_pt_inception.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(fid_mod.fid_inception_architecture("pytorch-fid").state_dict(), path)
    return path


def _load_make_golden():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def golden():
    mod = _load_make_golden()
    fake, real = mod.golden_inputs()
    nchw = lambda x: torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
    return nchw(fake), nchw(real), fake, real, mod


def _np_colorfulness(img: np.ndarray) -> float:
    r, g, b = (img[..., i] * 255 for i in range(3))
    rg, yb = r - g, 0.5 * (r + g) - b
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


# --- golden values ---------------------------------------------------------------------------------------------


def test_golden_values(golden):
    pred, target, *_ = golden
    doc = json.loads((GOLDEN / "metrics_golden.json").read_text())
    want = doc["values"]
    assert doc["provenance"]["versions"]["scikit-image"]  # provenance is recorded with the numbers
    got = {
        "mse": float(MF.mse(pred, target).mean()),
        "psnr": float(MF.psnr(pred, target, reduction="per_image_mean")),
        "psnr_global": float(MF.psnr(pred, target, reduction="global")),
        "sum_abs_diff": float(MF.sum_abs_diff(pred, target).mean()),
        "colorfulness": float(MF.colorfulness(pred, "per_image_mean")),
        "colorfulness_pooled": float(MF.colorfulness(pred, "pooled")),
        "delta_colorfulness": float(MF.delta_colorfulness(pred, target)),
        **{f"kl_{c}": v for c, v in MF.ab_histogram_kl(pred, target).items()},
        **{f"js_{c}": v for c, v in MF.ab_histogram_js(pred, target).items()},
        "kl_ab": MF.ab_joint_histogram_kl(pred, target),
        "js_ab": MF.ab_joint_histogram_js(pred, target),
    }
    for key, value in got.items():
        assert value == pytest.approx(want[key], rel=1e-9), key
    assert float(MF.ssim(pred, target).mean()) == pytest.approx(want["ssim"], abs=1e-6)
    assert float(MF.ssim(pred, target, "uniform").mean()) == pytest.approx(want["ssim_uniform"], abs=1e-6)
    assert set(want) == set(got) | {"ssim", "ssim_uniform"}


def test_golden_file_is_what_the_script_computes(golden):
    """The committed numbers are reproducible with the installed reference libraries."""
    _, _, fake, real, mod = golden
    want = json.loads((GOLDEN / "metrics_golden.json").read_text())["values"]
    again = mod.reference_values(fake, real)
    for key in want:
        assert again[key] == pytest.approx(want[key], rel=1e-9), key


# --- colourfulness -----------------------------------------------------------------------------------------------


def test_colorfulness_matches_numpy_formula(golden):
    pred, target, fake, real, _ = golden
    np.testing.assert_allclose(MF.colorfulness(pred).numpy(), [_np_colorfulness(x) for x in fake], rtol=1e-9)
    assert float(MF.colorfulness(pred, "pooled")) == pytest.approx(_np_colorfulness(fake.reshape(-1, 32, 3)),
                                                                   rel=1e-9)
    metric = METRICS.get("colorfulness")(reduction="pooled")
    metric.update(pred[:1], target[:1])
    metric.update(pred[1:], target[1:])
    assert metric.compute()["colorfulness"] == pytest.approx(float(MF.colorfulness(pred, "pooled")), rel=1e-12)
    assert metric.params()["reduction"] == "pooled"


def test_grey_output_properties(golden):
    _, target, _, real, _ = golden
    luma = target[:, :1] * 0.299 + target[:, 1:2] * 0.587 + target[:, 2:] * 0.114
    grey_rgb = luma.expand(-1, 3, -1, -1).contiguous()
    assert float(MF.colorfulness(grey_rgb).abs().max()) == 0.0
    for reduction in MF.COLORFULNESS_REDUCTIONS:
        assert float(MF.delta_colorfulness(grey_rgb, target, reduction)) == pytest.approx(
            float(MF.colorfulness(target, reduction)), rel=1e-12)
    metric = METRICS.get("delta_colorfulness")()
    metric.update(grey_rgb, target)
    assert metric.compute()["delta_colorfulness"] == pytest.approx(np.mean([_np_colorfulness(x) for x in real]),
                                                                   rel=1e-9)
    assert float(MF.delta_colorfulness(target, target)) == 0.0


# --- sum of absolute differences -------------------------------------------------------------------------------


def test_sum_abs_diff_matches_numpy(golden):
    pred, target, fake, real, _ = golden
    want = np.abs(fake * 255 - real * 255).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(MF.sum_abs_diff(pred, target).numpy(), want, rtol=1e-9)
    np.testing.assert_allclose(MF.sum_abs_diff(pred, target, "0-1").numpy(), want / 255, rtol=1e-9)
    np.testing.assert_allclose(MF.sum_abs_diff(pred, target, "-1-1").numpy(), want * 2 / 255, rtol=1e-9)
    q = lambda x: np.round(x * 255).astype(np.int64)  # noqa: E731  (saved 8-bit images)
    want_q = np.abs(q(fake) - q(real)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(MF.sum_abs_diff(pred, target, quantize=True).numpy(), want_q, rtol=1e-12)
    assert float(MF.sum_abs_diff(target, target).abs().max()) == 0.0
    with pytest.raises(ValueError, match="scale"):
        METRICS.get("sum_abs_diff")(scale="0-65535")


# --- joint ab histogram ------------------------------------------------------------------------------------------


def test_joint_histogram_matches_numpy_and_scipy(golden):
    pred, target, fake, real, _ = golden
    lab_r, lab_f = (skcolor.rgb2lab(x.reshape(-1, 32, 3)).reshape(-1, 3) for x in (real, fake))
    rng = [(-128, 128), (-128, 128)]
    cr = np.histogram2d(lab_r[:, 1], lab_r[:, 2], bins=64, range=rng)[0]
    cf = np.histogram2d(lab_f[:, 1], lab_f[:, 2], bins=64, range=rng)[0]
    assert MF.ab_joint_histogram_counts(target).numpy().tolist() == cr.astype(np.int64).tolist()
    probs = lambda c: (c.ravel() / c.sum() + 1e-10) / (c.ravel() / c.sum() + 1e-10).sum()  # noqa: E731
    for base in (None, 2.0):
        assert MF.ab_joint_histogram_kl(pred, target, base=base) == pytest.approx(
            entropy(probs(cr), probs(cf), base=base), rel=1e-9)
        assert MF.ab_joint_histogram_js(pred, target, base=base) == pytest.approx(
            jensenshannon(probs(cr), probs(cf), base=base) ** 2, rel=1e-9)
    js = MF.ab_joint_histogram_js(pred, target)
    assert js == pytest.approx(MF.ab_joint_histogram_js(target, pred), rel=1e-12) and 0 < js <= math.log(2)
    assert MF.ab_joint_histogram_kl(pred, target) > 0 and MF.ab_joint_histogram_kl(target, target) == 0.0
    # the joint histogram sees what the two marginals cannot: swapping a between images keeps both marginals
    a_only = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    a_only[0, 0], a_only[1, 2] = 0.8, 0.8  # a red and a blue image
    swapped = a_only.clone()
    swapped[0, 0], swapped[0, 2], swapped[1, 2], swapped[1, 0] = 0.8, 0.8, 0.0, 0.0  # magenta and black
    assert MF.ab_joint_histogram_js(swapped, a_only) > 0.1


# --- piq cross-checks --------------------------------------------------------------------------------------------


def test_ssim_and_psnr_match_piq(golden):
    piq = pytest.importorskip("piq")
    pred, target, *_ = golden
    np.testing.assert_allclose(MF.ssim(pred, target).numpy(),
                               piq.ssim(pred, target, data_range=1.0, reduction="none").numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(MF.psnr(pred, target, reduction=None).numpy(),
                               piq.psnr(pred, target, data_range=1.0, reduction="none").numpy(), rtol=0, atol=1e-4)


# --- FID ----------------------------------------------------------------------------------------------------------


def test_frechet_distance_matches_pytorch_fid_and_piq_formulas():
    piq = pytest.importorskip("piq")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) * 0.4 + 0.3
    m1, s1, m2, s2 = a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)
    ours = MF.frechet_distance(m1, s1, m2, s2)
    covmean = linalg.sqrtm(s1 @ s2).real  # pytorch-fid's formula
    assert ours == pytest.approx(((m1 - m2) ** 2).sum() + np.trace(s1 + s2 - 2 * covmean), rel=1e-6)
    piq_value = float(piq.FID()(torch.from_numpy(a), torch.from_numpy(b)))
    assert ours == pytest.approx(piq_value, rel=1e-3)
    assert MF.frechet_distance(m1, s1, m1, s1) == pytest.approx(0.0, abs=1e-9)
    # singular covariances (fewer samples than dimensions) stay finite and non-negative
    few = rng.normal(size=(5, 16))
    assert 0 < MF.frechet_distance(few.mean(0), np.cov(few, rowvar=False), m2, s2) < np.inf
    with pytest.raises(ValueError, match="shapes"):
        MF.frechet_distance(m1, s1, m2[:3], s2)


def test_fid_missing_weights_names_the_path(tmp_path):
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(MetricUnavailable) as err:
            METRICS.get("fid")()
        expected = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
        assert str(expected) in str(err.value) and "github.com/mseitzer/pytorch-fid" in str(err.value)
        with pytest.raises(MetricUnavailable, match="inception_v3_google-0cc3c7bd.pth"):
            METRICS.get("fid")(weights="torchvision")
    finally:
        torch.hub.set_dir(old)
    with pytest.raises(ValueError, match="FID weights"):
        fid_mod.fid_weights_path("tf-slim")


def test_fid_refuses_wrong_files(tmp_path, fid_stand_in):
    named = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    named.write_bytes(Path(fid_stand_in).read_bytes())
    with pytest.raises(MetricUnavailable, match="SHA-256"):  # a stand-in is not the published file
        fid_mod.build_fid_inception(weights_path=named, input_size=75, dims=64)
    junk = tmp_path / "junk.pth"
    torch.save({"fc.weight": torch.zeros(3)}, junk)
    with pytest.raises(MetricUnavailable, match="not the pytorch-fid Inception"):
        fid_mod.build_fid_inception(weights_path=junk, check_hash=False)
    with pytest.raises(ValueError, match="dims"):
        METRICS.get("fid")(weights_path=fid_stand_in, check_hash=False, dims=100)


def test_fid_network_matches_piq_inception_on_stand_in_weights(fid_stand_in, monkeypatch):
    """The pytorch-fid Inception built here (2048-d, 299x299) equals piq's port of it, both loading the same
    stand-in state dict (TEST ONLY weights; piq's download is replaced by that dict)."""
    import piq.feature_extractors.fid_inception as piq_inc
    import torchvision

    state = torch.load(fid_stand_in, weights_only=True)
    monkeypatch.setattr(piq_inc, "load_state_dict_from_url", lambda *a, **k: state)
    fast = lambda **kw: torchvision.models.inception.Inception3(init_weights=False, **kw)  # noqa: E731
    monkeypatch.setattr(piq_inc.models, "inception_v3", lambda pretrained=False, **kw: fast(**kw))
    ref = piq_inc.InceptionV3().eval()
    ours = fid_mod.build_fid_inception(weights_path=fid_stand_in, check_hash=False)
    x = torch.rand(2, 3, 40, 40, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = ref(x)[0].reshape(2, -1).double()
    got = fid_mod.inception_features(ours, x)
    assert got.shape == (2, 2048)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-6)


def test_fid_identity_and_params(fid_stand_in):
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    metric = METRICS.get("fid")(weights_path=fid_stand_in, check_hash=False, input_size=75, dims=64)
    metric.update(x, x)
    assert metric.compute()["fid"] == pytest.approx(0.0, abs=1e-6)
    p = metric.params()
    assert p["dims"] == 64 and p["comparable_to_published_fid"] is False and p["weights"] == "pytorch-fid"


# --- integer inputs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("tensor,match", [
    (torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8), r"torch.uint8 with values in \[\d+, \d+\].*/ 255"),
    (torch.randint(0, 1024, (1, 3, 16, 16)), r"torch.int64 .*above 255.*65535"),
    (torch.randint(-5, 5, (1, 3, 16, 16), dtype=torch.int32), r"torch.int32 .*negative"),
    (torch.ones(1, 3, 16, 16, dtype=torch.bool), r"dtype torch.bool"),
])
def test_integer_inputs_name_their_range(tensor, match):
    with pytest.raises(TypeError, match=match):
        MF.check_images(tensor, "pred")


# --- log ab-histogram export ------------------------------------------------------------------------------------------


def test_log_ab_histogram_export(golden, tmp_path):
    pred, target, fake, real, _ = golden
    hists = {}
    for name, p in (("tinted", pred), ("identity", target)):
        m = METRICS.get("ab_histogram_js")()
        m.update(p, target)
        hists[name] = m.histograms()
    frame = log_ab_histogram_frame(hists)
    assert list(frame.columns) == list(LOG_AB_HISTOGRAM_COLUMNS)
    assert list(dict.fromkeys(frame["series"])) == ["real", "tinted", "identity"]
    lab = skcolor.rgb2lab(real.reshape(-1, 32, 3))
    real_a = frame[(frame.series == "real") & (frame.channel == "a")]
    counts, _ = np.histogram(lab[..., 1], bins=256, range=(-128, 128))
    assert real_a["count"].tolist() == counts.tolist()
    nonzero = counts > 0
    np.testing.assert_allclose(real_a["log10_probability"].to_numpy()[nonzero],
                               np.log10(counts[nonzero] / counts.sum()), rtol=1e-12)
    assert real_a["log10_probability"].isna().sum() == (~nonzero).sum()
    for _, g in frame.groupby(["series", "channel"]):
        assert g["probability"].sum() == pytest.approx(1.0, rel=1e-12)
    csv = write_log_ab_histogram_csv(hists, tmp_path / "log_ab.csv")
    back = __import__("pandas").read_csv(csv)
    assert back.shape == frame.shape and back["count"].tolist() == frame["count"].tolist()
    from colorbench.reports import plot_ab_histograms

    assert plot_ab_histograms(frame, tmp_path / "log_ab.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="missing columns"):
        plot_ab_histograms(frame.drop(columns=["probability"]), tmp_path / "x.png")
    bad = {"x": {**hists["tinted"], "edges": hists["tinted"]["edges"][:10]}}
    with pytest.raises(ValueError, match="bins but"):
        log_ab_histogram_frame(bad)
    with pytest.raises(ValueError, match="no ab histograms"):
        log_ab_histogram_frame({})


def test_ssim_float32_agrees_with_skimage_on_hard_cases():
    """The default float32 SSIM against scikit-image's float64 on cases where float32 arithmetic is fragile:
    nearly flat images, binary images, near-black and near-white images, a photograph (issue bound 1e-5;
    measured <= 3.3e-7, on the photograph)."""
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    flat = torch.full((3, 3, 24, 24), 0.5)
    binary = (torch.rand(3, 3, 24, 24, generator=g) > 0.5).float()
    near_black = torch.rand(3, 3, 24, 24, generator=g) * 0.01
    photo = torch.from_numpy(skdata.astronaut()[:128, :128] / 255.0).permute(2, 0, 1)[None].float()
    cases = {
        "near-flat": ((flat + 0.001 * torch.rand(flat.shape, generator=g)).clamp(0, 1), flat),
        "binary": ((1 - binary) * 0.9, binary),
        "near-black": (near_black.flip(-1), near_black),
        "near-white": (1 - near_black.flip(-1), 1 - near_black),
        "photo": ((photo * 0.8 + 0.1).clamp(0, 1), photo),
    }
    for name, (p, t) in cases.items():
        pn, tn = p.permute(0, 2, 3, 1).double().numpy(), t.permute(0, 2, 3, 1).double().numpy()
        want = [structural_similarity(tn[i] * 255, pn[i] * 255, data_range=255, channel_axis=-1,
                                      gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                for i in range(len(pn))]
        np.testing.assert_allclose(MF.ssim(p, t).numpy(), want, rtol=0, atol=1e-6, err_msg=name)
