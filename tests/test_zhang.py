"""Zhang et al.'s colorizers: networks against the released state dicts' names and shapes, weights handling, the
313 bins, soft encoding / rebalancing / annealed mean, and the authors' inference pipeline."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from skimage import color as skcolor

from colorbench.core.grey import Grey
from colorbench.core import weights as W
from colorbench.core.color import grey_to_lightness, rgb_to_lab
from colorbench.datasets.base import ImageSet
from colorbench.methods import METHODS
from colorbench.methods.nets.zhang import ECCV16Net, SIGGRAPH17Net, load_released
from colorbench.methods.zhang import (
    ZHANG_AB_BINS,
    derive_in_gamut_bins,
    nearest_bin_counts,
    rebalance_weights,
    resize_grey,
    soft_encode,
)

from zhang_stand_ins import KEYS, stand_in_state, write_stand_in


@pytest.fixture
def no_stand_ins(monkeypatch, tmp_path):
    """No stand-in weights and an empty torch hub directory: what a fresh offline machine sees."""
    monkeypatch.setattr(W, "_STAND_INS", {})
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub" / "checkpoints"
    torch.hub.set_dir(old)


def shapes(state):
    return {k: list(v.shape) for k, v in state.items()}


# --- networks against the released files' layout ------------------------------------------------------------------
@pytest.mark.parametrize("name, factory", [("zhang-eccv16", ECCV16Net), ("zhang-siggraph17", SIGGRAPH17Net)])
def test_state_dict_names_and_shapes_are_the_released_ones(name, factory):
    with torch.device("meta"):  # layout only: no memory, no initialisation
        net = factory()
    want = {k: s for k, s, _ in KEYS[name]}
    assert shapes(net.state_dict()) == want
    n_params = sum(p.numel() for p in net.parameters())
    assert n_params == sum(math.prod(s) for _, s, kind in KEYS[name] if kind == "parameter")
    # Totals of the authors' layer lists (tests/fixtures/make_zhang_keys.py prints them): ECCVGenerator 32,236,011
    # (32,154,944 trunk + 256·313 + 313 classifier + 313·2 decoding), SIGGRAPHGenerator 34,187,027.
    assert n_params == {"zhang-eccv16": 32_236_011, "zhang-siggraph17": 34_187_027}[name]


def test_fixture_file_is_what_the_transcription_writes(tmp_path):
    """tests/fixtures/zhang_released_keys.json is the output of make_zhang_keys.py (no hand edits)."""
    import runpy

    fixture = Path(__file__).parent / "fixtures"
    mod = runpy.run_path(str(fixture / "make_zhang_keys.py"))
    for name, spec in (("zhang-eccv16", mod["ECCV16"]), ("zhang-siggraph17", mod["SIGGRAPH17"])):
        assert json.loads(json.dumps(mod["expand"](spec))) == KEYS[name]


def test_released_files_load_strictly_and_bad_files_are_clear_errors(tmp_path):
    path = write_stand_in("zhang-siggraph17", tmp_path / "s.pth")
    net, facts = load_released(SIGGRAPH17Net, path, "zhang-siggraph17")
    state = stand_in_state("zhang-siggraph17")
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items()) and facts["num_batches_tracked_filled"] == 0
    # files saved by PyTorch < 0.4.1 have no num_batches_tracked: filled with 0 and reported
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, tmp_path / "old.pth")
    assert load_released(SIGGRAPH17Net, tmp_path / "old.pth", "s")[1]["num_batches_tracked_filled"] == 9  # blocks 1-9
    torch.save({k: v for k, v in state.items() if k != "model_class.0.bias"}, tmp_path / "missing.pth")
    with pytest.raises(W.WeightsUnavailable, match=r"not the released state dict.*missing \['model_class.0.bias'\]"):
        load_released(SIGGRAPH17Net, tmp_path / "missing.pth", "s")
    torch.save({**state, "model1.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "shape.pth")
    with pytest.raises(W.WeightsUnavailable, match=r"wrong shape \['model1.0.weight'\]"):
        load_released(SIGGRAPH17Net, tmp_path / "shape.pth", "s")
    with pytest.raises(W.WeightsUnavailable, match=r"missing \['model8.0.bias'.*unexpected \['model10.1.bias'.*wrong shape \['model1.0.weight'\]"):
        load_released(lambda: ECCV16Net(), path, "e")  # another network's file
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(W.WeightsUnavailable, match="cannot read the weights file"):
        load_released(SIGGRAPH17Net, tmp_path / "junk.pth", "s")


@pytest.mark.parametrize("name, preset", [("zhang-siggraph17", "quick"), ("zhang-eccv16", "released")])
def test_missing_weights_file_says_which_file_to_put_where(no_stand_ins, name, preset):
    entry = W.WEIGHTS[name]
    with pytest.raises(W.WeightsUnavailable) as err:
        METHODS.get(name).from_preset(preset)
    msg = str(err.value)
    assert str(no_stand_ins / entry.file_name) in msg and entry.url in msg and f"weights fetch {name}" in msg
    (no_stand_ins).mkdir(parents=True)
    write_stand_in(name, no_stand_ins / entry.file_name)  # right names, but not the published file
    with pytest.raises(W.WeightsUnavailable, match=f"SHA-256 prefix .* {entry.sha256}"):
        METHODS.get(name).from_preset(preset)
    method = METHODS.get(name).from_preset(preset, check_hash=False)
    notes = method.notes()["released_weights"]
    assert notes["sha256_checked"] is False and notes["stand_in_for_tests"] is False
    assert notes["weights_file"] == str(no_stand_ins / entry.file_name)


def test_missing_weights_make_a_failed_row_naming_the_file(no_stand_ins, tmp_path):
    from colorbench.results.rundir import load_records
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("zhang-siggraph17",), dataset="shapes", progress=False, n_samples=2,
                   dataset_options=(("n_test", 4), ("n_train", 4), ("seed", 0), ("size", 32)), metrics=("psnr",))
    rec = load_records(run(spec, out=tmp_path / "run", log=lambda s: None))[0]
    assert rec.status == "failed" and "siggraph17-df00044c.pth" in rec.error
    assert str(no_stand_ins / "siggraph17-df00044c.pth") in rec.error and W.WEIGHTS["zhang-siggraph17"].url in rec.error


def test_released_eccv_uses_the_files_bins_and_records_the_check(zhang_weights_stand_ins):
    method = METHODS.get("zhang-eccv16").from_preset("released")
    assert method.config.temperature == 1.0 and method.config.input_size == 256
    assert torch.allclose(method.G.bins(), ZHANG_AB_BINS, atol=1e-4)
    notes = method.notes()["released_weights"]
    assert notes["bins_match_table"] and notes["stand_in_for_tests"] and notes["sha256_checked"] is False
    assert not method.G.model_out.weight.requires_grad  # the decoding layer stays fixed when fine-tuning


# --- bins -------------------------------------------------------------------------------------------------------------
def test_authors_bins_table():
    bins = ZHANG_AB_BINS
    assert bins.shape == (313, 2) and len({tuple(b) for b in bins.tolist()}) == 313
    assert (bins % 10 == 0).all()
    order = (bins[:, 0] * 1000 + bins[:, 1]).argsort()
    assert torch.equal(order, torch.arange(313))  # a, then b ascending: pts_in_hull.npy's order
    assert bins.tolist()[:3] == [[-90, 50], [-90, 60], [-90, 70]] and bins.tolist()[-1] == [100, 0]


def test_derived_in_gamut_bins_differ_from_the_authors_by_four():
    """Our derivation (grid points within 10, Chebyshev, of the ab of some sRGB colour) gives 309 bins, all among
    the authors' 313. The 4 others lie further than 10 from the sRGB gamut; how the authors chose them is not
    published (the paper says only 'in-gamut')."""
    derived = {tuple(map(int, b)) for b in derive_in_gamut_bins().tolist()}
    authors = {tuple(map(int, b)) for b in ZHANG_AB_BINS.tolist()}
    assert len(derived) == 309 and derived <= authors
    assert sorted(authors - derived) == [(40, 90), (100, -90), (100, -10), (100, 0)]
    # a denser sampling of the gamut's surface adds nothing (measured: 128 per side gives 306, 256 and 512 give 309)
    assert {tuple(map(int, b)) for b in derive_in_gamut_bins(samples=384).tolist()} == derived


# --- encoding, rebalancing, decoding ------------------------------------------------------------------------------------
def test_soft_encoding_matches_its_definition():
    bins = ZHANG_AB_BINS
    ab = torch.tensor([[3.3, 6.1], [-42.7, 55.2], [1.2, -0.4]]).T.reshape(1, 2, 1, 3)  # no distance ties
    soft, nearest = soft_encode(ab, bins, neighbours=5, sigma=5.0)
    assert soft.shape == (1, 313, 1, 3) and torch.allclose(soft.sum(1), torch.ones(1, 1, 3))
    assert ((soft > 0).sum(1) == 5).all()
    for j, (a, b) in enumerate(ab[0, :, 0].T.tolist()):
        d2 = ((bins - torch.tensor([a, b])) ** 2).sum(1)
        idx = d2.argsort()[:5]
        want = torch.exp(-d2[idx] / 50)
        assert torch.allclose(soft[0, idx, 0, j], want / want.sum(), atol=1e-6)
        assert nearest[0, 0, j] == idx[0]


def test_rebalancing_weights_follow_eq4():
    bins = ZHANG_AB_BINS
    counts = torch.zeros(313, dtype=torch.float64)
    grey = int(((bins - torch.tensor([0.0, 0.0])) ** 2).sum(1).argmin())
    red = int(((bins - torch.tensor([60.0, 40.0])) ** 2).sum(1).argmin())
    counts[grey], counts[red] = 900, 100
    w = rebalance_weights(counts, bins, lam=0.5, sigma=5.0)
    p = counts / counts.sum()
    kernel = torch.exp(-torch.cdist(bins.double(), bins.double()) ** 2 / 50)
    smoothed = kernel @ p
    smoothed /= smoothed.sum()
    assert float((smoothed * w.double()).sum()) == pytest.approx(1.0, abs=1e-6)  # E_p̃[w] = 1
    assert w[red] > w[grey] and w.max() / w.min() <= (1 / 0.5 * 313) + 1e-3  # bounded by (λ/Q)^-1 / ((1-λ)+λ/Q)^-1
    assert torch.allclose(rebalance_weights(counts, bins, lam=1.0), torch.ones(313))  # λ = 1: no rebalancing
    ab = bins[[grey, grey, red]].T.reshape(1, 2, 1, 3)
    assert nearest_bin_counts(ab, bins)[[grey, red]].tolist() == [2.0, 1.0]


def test_annealed_mean():
    net = ECCV16Net(width=4)
    net.set_bins(ZHANG_AB_BINS)
    logits = torch.randn(2, 313, 3, 3, generator=torch.Generator().manual_seed(0)) * 3
    for t in (1.0, 0.38):
        p = torch.softmax(logits / t, 1)
        want = torch.einsum("nqhw,qc->nchw", p, ZHANG_AB_BINS) / 110
        assert torch.allclose(net.decode(logits, t), want, atol=1e-5)
    mode = ZHANG_AB_BINS[logits.argmax(1)].permute(0, 3, 1, 2) / 110
    assert torch.allclose(net.decode(logits, 1e-4), mode, atol=1e-4)  # T -> 0: the mode
    with pytest.raises(ValueError, match="temperature"):
        net.decode(logits, 0.0)


# --- the authors' inference pipeline ------------------------------------------------------------------------------------
def test_resize_matches_pil_bicubic():
    x = torch.rand(1, 1, 50, 70, generator=torch.Generator().manual_seed(0))
    for size in (256, 24):
        pil = np.asarray(Image.fromarray(x[0, 0].numpy(), mode="F").resize((size, size), resample=Image.BICUBIC))
        ours = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)[0, 0]
        assert np.abs(pil - ours.numpy()).max() < 2e-6  # measured 3.6e-7
        assert torch.equal(resize_grey(x, size)[0, 0], ours.clamp(0, 1))


def authors_pipeline(net_ab, rgb: np.ndarray, size: int) -> np.ndarray:
    """colorizers/util.py step by step with PIL and scikit-image (the authors' libraries): PIL bicubic resize
    (``resample=3``) of the RGB image, skimage rgb2lab of both sizes, the network on (L_rs - 50) / 100, ab upsampled
    bilinearly to the original size (F.interpolate, align_corners False), joined with the original L, skimage
    lab2rgb. One deviation, on purpose: the image is float (PIL mode "F" per channel) instead of uint8, so that the
    comparison is not blurred by the authors' 8-bit rounding of the resized image (colorbench works in float)."""
    rs = np.stack([np.asarray(Image.fromarray(rgb[:, :, c], mode="F").resize((size, size), resample=3))
                   for c in range(3)], axis=2).clip(0, 1)
    L_orig = torch.from_numpy(skcolor.rgb2lab(rgb)[:, :, 0]).float()[None, None]
    L_rs = torch.from_numpy(skcolor.rgb2lab(rs)[:, :, 0]).float()[None, None]
    with torch.no_grad():
        ab = net_ab((L_rs - 50) / 100)
    ab = F.interpolate(ab, size=L_orig.shape[2:], mode="bilinear")
    return skcolor.lab2rgb(torch.cat([L_orig, ab], 1)[0].numpy().transpose(1, 2, 0))


@pytest.mark.parametrize("name, preset", [("zhang-siggraph17", "quick"), ("zhang-eccv16", "released")])
def test_colorize_follows_the_authors_pipeline(zhang_weights_stand_ins, name, preset):
    """Our colorize equals the authors' steps (PIL + skimage) on a 40×56 grey image with the same (stand-in)
    weights, at input size 64 to keep it fast (measured max |Δ| below 1e-4 in sRGB: float32 vs float64 colour
    conversions)."""
    method = METHODS.get(name).from_preset(preset, input_size=64)
    method.set_train(False)  # batch norm on running statistics, as colorize
    g = torch.Generator().manual_seed(1)
    y, x = torch.meshgrid(torch.linspace(0, 1, 40), torch.linspace(0, 1, 56), indexing="ij")
    grey = (0.5 + 0.4 * torch.sin(6 * x + 3 * y) * torch.cos(4 * y) + 0.01 * torch.randn(40, 56, generator=g))
    grey = grey.clamp(0, 1)
    rgb = grey[:, :, None].expand(-1, -1, 3).numpy().astype(np.float32).copy()
    if name == "zhang-siggraph17":
        def net_ab(L):
            return method.net(L) * 110
    else:
        def net_ab(L):
            return F.interpolate(method.G.decode(method.G(L), 1.0), scale_factor=4, mode="bilinear") * 110
    want = authors_pipeline(net_ab, rgb, 64)
    got = method.colorize(grey[None, None])[0].permute(1, 2, 0).numpy()
    assert got.shape == want.shape == (40, 56, 3)
    assert np.abs(got - want).max() < 2e-3
    assert np.abs(want - want.mean(2, keepdims=True)).max() > 0.01  # the stand-in does colour the image


def test_siggraph_colorize_is_pure_and_keeps_the_lightness(zhang_weights_stand_ins):
    method = METHODS.get("zhang-siggraph17").from_preset("quick")
    before = {k: v.clone() for k, v in method.net.state_dict().items()}
    gray = torch.rand(3, 1, 24, 36, generator=torch.Generator().manual_seed(0))
    method.net.train()
    a, b = method.colorize(gray), method.colorize(gray)
    assert torch.equal(a, b) and method.net.training  # eval mode inside, mode restored
    assert all(torch.equal(before[k], v) for k, v in method.net.state_dict().items())
    assert method.parameter_counts() == {"G": 34_187_027} and method.networks() == {}
    inside = ((a > 1e-3) & (a < 1 - 1e-3)).all(1, keepdim=True)
    dL = (rgb_to_lab(a)[:, :1] - grey_to_lightness(gray, Grey.BT601))[inside].abs()
    assert inside.float().mean() > 0.3 and dL.max() < 0.05  # the full-resolution L is kept
    with pytest.raises(ValueError, match="divisible by 8"):
        METHODS.get("zhang-siggraph17").from_preset("quick", input_size=0).colorize(gray)


# --- training ------------------------------------------------------------------------------------------------------------
def red_blue(n: int = 32, size: int = 16) -> ImageSet:
    """Colour follows brightness: each image is a bright red or a dark blue, with a faint smooth shading."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    t = torch.stack([float(i % 2) + 0.1 * torch.sin(float(torch.rand(1, generator=g)) * 3 * x + 2 * y) for i in range(n)])
    t = t.clamp(0, 1)[:, None]
    red, blue = torch.tensor((0.95, 0.25, 0.2)).view(1, 3, 1, 1), torch.tensor((0.1, 0.2, 0.8)).view(1, 3, 1, 1)
    rgb = ((red * t + blue * (1 - t)) * 255).round().to(torch.uint8)
    return ImageSet(rgb, torch.zeros(n, dtype=torch.long), [f"rb{i}" for i in range(n)], ["red-blue"])


def test_eccv16_learns_colour_from_brightness():
    """Quick preset at width 8 on 16×16 red/blue images: the rebalanced cross-entropy falls and the annealed-mean
    colours separate the bright (red, b* > 0) from the dark (blue, b* < 0) images. Measured: loss 0.76 after 20
    steps, 0.47 after 60; the eval-mode b* contrast is ~0 after 40 steps (batch-norm running statistics lag) and
    1.01 of the true one after 60."""
    data = red_blue()
    method = METHODS.get("zhang-eccv16").from_preset("quick", width=8, lr=3e-3, seed=0)
    method.fit_start(data)
    assert method.notes()["prior"].startswith("training split: 32 images")
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(15):
        for batch in data.batches(8, shuffle=True, generator=g, grey_convention=Grey.BT601):
            losses.append(method.train_step(batch)["G_CE"])
    assert sum(losses[-4:]) / 4 < 0.6 * sum(losses[:4]) / 4
    whole = data.make_batch(torch.arange(len(data)), grey_convention=Grey.BT601)
    out = rgb_to_lab(method.colorize(whole.gray))
    real = rgb_to_lab(whole.rgb)
    bright = whole.gray > whole.gray.median()

    def contrast(lab):
        return float(lab[:, 2:3][bright].mean() - lab[:, 2:3][~bright].mean())

    assert contrast(out) > 0.5 * contrast(real)


def test_eccv16_without_fit_start_uses_a_running_prior_and_checkpoints_it(tmp_path):
    data = red_blue(8)
    method = METHODS.get("zhang-eccv16").from_preset("quick", width=4)
    batch = next(data.batches(4, grey_convention=Grey.BT601))
    method.train_step(batch)
    assert "running estimate" in method.notes()["prior"]
    state = method.state_dict()
    fresh = METHODS.get("zhang-eccv16").from_preset("quick", width=4, seed=5)
    fresh.load_state_dict(state)
    assert torch.equal(fresh._counts, method._counts) and fresh.train_step(batch) == method.train_step(batch)


def test_presets_and_options():
    cls = METHODS.get("zhang-eccv16")
    assert METHODS.canonical("colorful-classification") == "zhang-eccv16"
    paper = cls.make_config("paper")
    assert (paper.temperature, paper.rebalance_lambda, paper.soft_sigma, paper.prior_sigma) == (0.38, 0.5, 5.0, 5.0)
    assert (paper.soft_neighbours, paper.width, paper.input_size) == (5, 64, 256)
    assert cls.make_config("released").pretrained and cls.make_config("released").epochs == 0
    with pytest.raises(ValueError, match="width 64"):
        cls.make_config("quick", pretrained=True)
    with pytest.raises(ValueError, match="multiple of 8"):
        cls.make_config("quick", input_size=100)
    assert not METHODS.get("zhang-siggraph17").card.trainable and cls.card.trainable


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checked on a GPU machine when one is lent)")
def test_cuda_matches_cpu(zhang_weights_stand_ins):
    gray = torch.rand(2, 1, 48, 40, generator=torch.Generator().manual_seed(0))
    for name, preset in (("zhang-siggraph17", "paper"), ("zhang-eccv16", "released")):
        cpu = METHODS.get(name).from_preset(preset)
        gpu = METHODS.get(name).from_preset(preset, device="cuda")
        out = gpu.colorize(gray.cuda())
        assert out.device.type == "cuda"
        assert (out.cpu() - cpu.colorize(gray)).abs().max() < 2e-3
    method = METHODS.get("zhang-eccv16").from_preset("quick", device="cuda", width=8)
    batch = next(red_blue(8).batches(4, grey_convention=Grey.BT601))
    assert math.isfinite(method.train_step(batch)["G_CE"])
