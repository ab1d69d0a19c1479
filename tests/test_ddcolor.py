"""``ddcolor``: the network against the authors' implementation (bit-identical outputs under the same weights, as
shipped in the ``modelscope`` wheel), the released files' layout and hash handling, the inference pipeline's
options, and the method without / with a weights file."""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import types
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from colorbench.core import weights as W
from colorbench.core.color import grey_to_lightness, rgb_to_lab
from colorbench.methods import METHODS
from colorbench.methods.ddcolor import grey_as_rgb, resize_like_cv2_linear
from colorbench.methods.nets.ddcolor import DDColorNet, UNUSED_RELEASED_KEYS, assign_state, load_released


# --- the reference: the authors' code as shipped in the modelscope wheel (Apache-2.0) -----------------------------
def reference_ddcolor_module():
    """``modelscope/models/cv/image_colorization/ddcolor/ddcolor.py`` imported on its own: its folder becomes a
    package of another name, so neither ``modelscope/__init__`` nor the ddcolor package's ``__init__`` (which pull
    in modelscope's model registry and its dependencies) run. Needs ``modelscope`` (the wheel) and ``timm``
    (``utils/convnext.py`` imports DropPath and trunc_normal_ from it); skipped without them."""
    pytest.importorskip("timm")
    spec = importlib.util.find_spec("modelscope")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the modelscope wheel is not installed (pip install -e '.[test]')")
    root = Path(spec.submodule_search_locations[0]) / "models" / "cv" / "image_colorization" / "ddcolor"
    if not (root / "ddcolor.py").is_file():
        pytest.fail(f"modelscope is installed but has no {root / 'ddcolor.py'} (moved in a new version?)")
    name = "_colorbench_reference_ddcolor"
    if name not in sys.modules:
        pkg = types.ModuleType(name)
        pkg.__path__ = [str(root)]
        sys.modules[name] = pkg
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # timm.models.layers is deprecated in favour of timm.layers
        return importlib.import_module(f"{name}.ddcolor")


def randomized_state(net: torch.nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """TEST values for ``net`` (the reference network): its own random initialisation, 2 forward passes in train
    mode on random images (spectral-norm power iterations and batch-norm statistics of these weights), then
    layer scales and norm affines drawn at random, so that every part of the forward matters."""
    g = torch.Generator().manual_seed(seed)
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(2, 3, 64, 64, generator=g))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for k, v in state.items():
        if k.endswith("gamma"):
            state[k] = 0.3 + 0.1 * torch.randn(v.shape, generator=g)
        elif v.dim() == 1 and v.is_floating_point() and k.endswith((".weight", ".bias")) and "norm" in k:
            state[k] = v + 0.1 * torch.randn(v.shape, generator=g)
    return state


@pytest.mark.parametrize("encoder", ["convnext-t", "convnext-l"])  # measured 11 s and 15 s (load 4)
def test_outputs_are_bit_identical_to_the_authors_implementation(encoder, tmp_path):
    ref_mod = reference_ddcolor_module()
    torch.manual_seed(0)
    ref = ref_mod.DDColor(encoder_name=encoder, input_size=(64, 64), num_queries=100)
    state = randomized_state(ref, seed=1)
    ref.load_state_dict(state, strict=True)
    ref.eval()
    # the authors' key set is ours plus the unused classifier head of their ConvNeXt
    with torch.device("meta"):
        assert set(state) == set(DDColorNet(encoder).state_dict()) | set(UNUSED_RELEASED_KEYS)
    if encoder == "convnext-t":  # through a file, as a released checkpoint is read (BasicSR's "params" wrapper)
        torch.save({"params": state}, tmp_path / "fixture.pth")
        ours, facts = load_released(encoder, tmp_path / "fixture.pth", "test")
        assert facts["wrapper_key"] == "params"
    else:
        ours, facts = assign_state(encoder, state, "test")
    assert facts["unused_keys_dropped"] == list(UNUSED_RELEASED_KEYS) and facts["tensors"] == len(state) - 2
    x = torch.rand(2, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want, got = ref(x), ours(x)
    assert got.shape == (2, 2, 64, 96)
    assert torch.equal(got, want), f"max |diff| {(got - want).abs().max().item():.3g}"
    assert want.abs().mean() > 1e-3  # the comparison is not between two zero maps


# --- the released files' layout ----------------------------------------------------------------------------------
def test_parameter_counts_and_key_layout():
    info = METHODS.get("ddcolor").describe("paper")
    # DDColor-L: ConvNeXt-L 196,236,096 + decoders; 227.87M x 4 bytes = 911.5 MB, the published file is 911,950,059
    # bytes (the rest: buffers, the unused head, pickle framing). DDColor-T: 55.0M, the 220 MB file.
    assert info["parameters"] == {"G": 227_869_328}
    assert info["architecture"]["parameters_by_part"]["encoder"] == 196_236_096
    assert METHODS.get("ddcolor").describe("tiny")["parameters"] == {"G": 55_006_640}
    assert 911_477_312 < 911_950_059 < 911_477_312 * 1.001


def test_a_file_with_other_names_or_shapes_is_a_clear_error(tmp_path):
    with torch.device("meta"):
        net = DDColorNet("convnext-t")
    state = {k: torch.zeros(v.shape, dtype=v.dtype) for k, v in net.state_dict().items()}
    bad = dict(state)
    bad.pop("refine_net.0.0.bias")
    bad["decoder.extra"] = torch.zeros(1)
    with pytest.raises(W.WeightsUnavailable, match=r"missing \['refine_net.0.0.bias'\].*unexpected \['decoder.extra'\]"):
        assign_state("convnext-t", bad, "f.pth")
    with pytest.raises(W.WeightsUnavailable, match="wrong shape"):  # a DDColor-T file for DDColor-L
        assign_state("convnext-l", state, "f.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(W.WeightsUnavailable, match="cannot read"):
        load_released("convnext-t", tmp_path / "junk.pth", "ddcolor")


def test_weights_registry_entries_name_the_authors_files():
    for name, file in (("ddcolor-paper", "ddcolor_paper.pth"), ("ddcolor-paper-tiny", "ddcolor_paper_tiny.pth"),
                       ("ddcolor-modelscope", "ddcolor_modelscope.pth"), ("ddcolor-artistic", "ddcolor_artistic.pth")):
        e = W.get(name)
        assert e.file_name == file and e.full_hash and e.url.endswith("/" + file)
        assert e.url.startswith("https://huggingface.co/piddnad/DDColor-models/resolve/")


# --- the pipeline ------------------------------------------------------------------------------------------------
def test_resize_and_network_input_follow_the_authors_pipeline():
    g = torch.rand(1, 1, 40, 70, generator=torch.Generator().manual_seed(0))
    # cv2.resize INTER_LINEAR samples at half-pixel centres without antialiasing: a 2x downscale of a 4x4 image
    # averages the 2x2 blocks exactly
    x = torch.arange(16.0).view(1, 1, 4, 4) / 16
    assert torch.allclose(resize_like_cv2_linear(x, 2), F.avg_pool2d(x, 2))
    assert resize_like_cv2_linear(g, 32).shape == (1, 1, 32, 32)
    # lab2rgb(L, 0, 0) of a grey image's L is that grey (bt601 reads g as the neutral sRGB (g, g, g)), up to
    # float32 rounding of the Lab round trip (measured max 3.6e-5 over 40,000 random values; bound 1e-4 < 1/255/39)
    rgb = grey_as_rgb(grey_to_lightness(g, "bt601"))
    assert (rgb - g.expand(-1, 3, -1, -1)).abs().max() < 1e-4


# --- the method without / with a weights file ---------------------------------------------------------------------
@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    """What a fresh offline machine sees: no stand-ins, an empty torch hub directory."""
    monkeypatch.setattr(W, "_STAND_INS", {})
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_without_the_file_the_reason_names_it_and_the_fetch_command(empty_hub):
    cls = METHODS.get("ddcolor")
    reason = cls.unavailable_reason("paper")
    assert "ddcolor_paper.pth" in reason and str(empty_hub / "ddcolor_paper.pth") in reason
    assert "colorbench weights fetch ddcolor-paper" in reason
    assert "ddcolor_paper_tiny.pth" in cls.unavailable_reason("tiny")
    with pytest.raises(W.WeightsUnavailable, match="colorbench weights fetch ddcolor-paper-tiny"):
        cls.from_preset("quick")
    assert cls.describe("paper")["parameters"]["G"] > 0  # describe needs no file


def test_a_file_with_the_wrong_hash_is_refused_unless_the_user_says_so(empty_hub, ddcolor_tiny_stand_in):
    empty_hub.mkdir(parents=True)
    dest = empty_hub / "ddcolor_paper_tiny.pth"
    dest.symlink_to(ddcolor_tiny_stand_in)  # a random-valued TEST file where the released file belongs
    cls = METHODS.get("ddcolor")
    assert "does not match" in cls.unavailable_reason("quick")
    with pytest.raises(W.WeightsUnavailable, match="is not ddcolor_paper_tiny.pth"):
        cls.from_preset("quick")
    m = cls.from_preset("quick", check_hash=False)  # the user vouches for the file: recorded as unchecked
    assert m.notes()["released_weights"]["sha256_checked"] is False


@pytest.mark.parametrize("preset, size", [("quick", 64), ("quick+native", None), ("quick+bilinear-ab", 64)])
def test_colorizes_with_a_fixture_checkpoint(preset, size, ddcolor_tiny_stand_in):
    with W.stand_in_for_tests("ddcolor-paper-tiny", ddcolor_tiny_stand_in):
        m = METHODS.get("ddcolor").from_preset(preset)
    notes = m.notes()
    assert notes["released_weights"]["stand_in_for_tests"] and not notes["released_weights"]["sha256_checked"]
    assert notes["inference_size"] == (size or "native") and m.caveats()
    gray = torch.rand(2, 1, 48, 80, generator=torch.Generator().manual_seed(0))
    out = m.colorize(gray)
    assert out.shape == (2, 3, 48, 80) and 0 <= out.min() and out.max() <= 1
    lab = rgb_to_lab(out)
    assert lab[:, 1:].abs().mean() > 0.5  # colour was added
    inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(1, keepdim=True)
    assert (lab[:, :1] - grey_to_lightness(gray, "bt601"))[inside].abs().max() < 0.05  # the full-resolution L is kept


def test_nearest_ab_upsampling_is_blocky_and_bilinear_is_not(ddcolor_tiny_stand_in):
    with W.stand_in_for_tests("ddcolor-paper-tiny", ddcolor_tiny_stand_in):
        near = METHODS.get("ddcolor").from_preset("quick")
        bil = METHODS.get("ddcolor").from_preset("quick+bilinear-ab")
    gray = torch.full((1, 1, 128, 128), 0.5)  # flat L: the output's colour is the upsampled ab alone
    a_near, a_bil = (rgb_to_lab(m.colorize(gray))[0, 1] for m in (near, bil))
    # 64 -> 128 nearest: every 2x2 block holds one value
    assert torch.allclose(a_near[0::2, 0::2], a_near[1::2, 1::2], atol=1e-3)
    assert not torch.allclose(a_bil[0::2, 0::2], a_bil[1::2, 1::2], atol=1e-3)


# --- colorbench run --methods ddcolor --------------------------------------------------------------------------------
def _run(out, preset="quick"):
    from colorbench.results.rundir import load_records
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("ddcolor",), dataset="shapes", progress=False, n_samples=2, preset=preset,
                   dataset_options=(("n_test", 4), ("n_train", 4), ("seed", 0), ("size", 64)), metrics=("psnr",))
    return load_records(run(spec, out=out, log=lambda s: None))[0]


def test_run_without_the_file_is_a_failed_row_naming_it_and_the_fetch_command(empty_hub, tmp_path):
    rec = _run(tmp_path / "run")
    assert rec.status == "failed" and "ddcolor_paper_tiny.pth" in rec.error
    assert str(empty_hub / "ddcolor_paper_tiny.pth") in rec.error
    assert "colorbench weights fetch ddcolor-paper-tiny" in rec.error and W.get("ddcolor-paper-tiny").url in rec.error


def test_run_colorizes_end_to_end_with_a_fixture_checkpoint(ddcolor_weights_stand_in, tmp_path):
    rec = _run(tmp_path / "run")
    assert rec.status == "ok", rec.error
    assert rec.metrics["psnr"].value is not None and math.isfinite(rec.metrics["psnr"].value)
    notes = rec.config["notes"]
    assert notes["released_weights"]["stand_in_for_tests"] and notes["inference_size"] == 64
    assert notes["chroma_upsampling"] == "nearest" and any("TEST stand-in" in c for c in rec.caveats)
