"""Tests of the paired (supervised) methods of the seed papers: gorriz, gorriz-featrec, unet-seg, colorful-*,
cgan-* (and the ``cgan`` alias of pix2pix), and of their building blocks.

The registry-wide contract (presets, reproducibility, purity, checkpoints, lightness of the output) is in
``tests/test_methods.py``; here: each method learns on a tiny fixed batch, the paper presets have the reference
parameter counts, and the method-specific behaviour (missing masks, feature-network provenance, WGAN clipping and
critic steps, EBGAN energies, IBN, multi-scale D).
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from colorbench.core.grey import Grey
from colorbench.core.color import grey_to_lightness, rgb_to_lab
from colorbench.datasets.base import IGNORE_INDEX, ImageSet
from colorbench.methods import METHODS
from colorbench.methods.losses import GANLoss
from colorbench.methods.nets import (
    IBN,
    AutoEncoderDiscriminator,
    ColorfulNet,
    MultiScaleDiscriminator,
    PatchDiscriminator,
    UnetGenerator,
    count_parameters,
)
from colorbench.methods.nets.features import find_pretrained, pretrained_file_name, vgg16_block3

PAIRED = ["gorriz", "gorriz-featrec", "gorriz-featrec-selftrained", "unet-seg", "unet-seg:quick+class-head", "colorful-l1", "colorful-l2", "colorful-gan",
          "cgan-dcgan", "cgan-lsgan", "cgan-ebgan", "cgan-wgan"]


def two_region_images(n: int = 4, size: int = 32, seed: int = 0) -> ImageSet:
    """Images of two regions split by a smooth wave, each with its own random colour whose brightness follows the
    wave; the per-pixel mask says which region, the image label alternates 0/1."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    images, masks = [], []
    for _ in range(n):
        a = float(torch.rand(1, generator=g)) * 2 * math.pi
        t = 0.5 + 0.5 * torch.sin(2 * math.pi * 1.5 * (math.cos(a) * x + math.sin(a) * y) + a)
        inside = t > 0.5
        c0, c1 = torch.rand(2, 3, 1, 1, generator=g).unbind(0)
        images.append(torch.where(inside, c0, c1) * (0.5 + 0.5 * t))
        masks.append(inside.to(torch.uint8))
    rgb = (torch.stack(images).clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSet(rgb, torch.arange(n) % 2, [f"two{i}" for i in range(n)], ["even", "odd"],
                    masks=torch.stack(masks), mask_class_names=["outside", "inside"])


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """These tiny 32×32 networks run many small ops; on a busy 2-core machine a second intra-op thread makes each
    op wait for it (measured: a ColorfulNet step 0.03 s with 1 thread, 0.06–1.1 s with 2 under load)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def data() -> ImageSet:
    return two_region_images()


@pytest.fixture()
def empty_hub(tmp_path, monkeypatch):
    """A torch hub directory without any checkpoint (as on an offline machine)."""
    old = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(old)


def reconstruction_key(losses: dict[str, float]) -> str:
    return next(k for k in ("G_L1", "G_SmoothL1", "G_L2") if k in losses)


# --- each method learns -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", PAIRED)
def test_losses_go_down_on_a_fixed_batch(name, data, empty_hub, request):
    """24 generator steps on one batch of 4 images (quick preset; cgan-wgan: 120 steps, as its generator steps on
    every 5th): the colour reconstruction loss falls clearly, every loss stays finite, and colorize keeps the
    grey's lightness. Measured ratios (mean of the last 3 / first 3 steps): gorriz(-featrec) 0.44, unet-seg 0.64,
    colorful-l1 / -gan 0.29, colorful-l2 0.14, cgan-* 0.58; bound 0.8. gorriz-featrec runs with the random-valued
    test-fixture VGG16 file (tests/conftest.py)."""
    name, _, preset = name.partition(":")
    if name == "gorriz-featrec":
        request.getfixturevalue("with_random_vgg16")
    method = METHODS.get(name).from_preset(preset or "quick", seed=0)
    method.fit_start(data)
    batch = data.make_batch(torch.arange(len(data)), grey_convention=Grey.BT601)
    history = [method.train_step(batch) for _ in range(24 * getattr(method.config, "n_critic", 1))]
    assert all(math.isfinite(v) for h in history for v in h.values())
    key = reconstruction_key(history[0])
    first, last = (sum(h[key] for h in part) / 3 for part in (history[:3], history[-3:]))
    assert last < 0.8 * first, (key, first, last)
    if "G_seg" in history[0]:
        assert sum(h["G_seg"] for h in history[-3:]) < sum(h["G_seg"] for h in history[:3])
    if name.startswith("gorriz-featrec"):
        assert "G_feat" in history[0] and history[-1]["G_feat"] < history[0]["G_feat"]
    out = method.colorize(batch.gray)
    inside = ((out > 1e-3) & (out < 1 - 1e-3)).all(dim=1, keepdim=True)
    dL = (rgb_to_lab(out)[:, :1] - grey_to_lightness(batch.gray, Grey.BT601))[inside].abs()
    assert inside.float().mean() > 0.5 and dL.max() < 0.05  # L* of the grey kept where nothing was clipped


# --- paper presets: parameter counts of the reference architectures -------------------------------------------------
def test_paper_parameter_counts():
    # pix2pix reference unet_256 (3 -> 3 channels) has 54,413,955 parameters (tests/test_methods.py); for 1 -> 2
    # channels the first conv loses 4·4·2·64 = 2,048 weights and the last transposed conv 4·4·128 + 1 = 2,049:
    # 54,409,858. IBN has two parameters per channel like batch norm, so the IBN U-Net has the same count.
    assert count_parameters(UnetGenerator(1, 2, 8, 64)) == 54_409_858
    assert count_parameters(UnetGenerator(1, 2, 8, 64, ibn_layers=3)) == 54_409_858
    # reference 70×70 PatchGAN with 6 input channels: 2,768,705 (tests/test_methods.py); with 3 (cat(L, ab)) the
    # first conv has 4·4·3·64 = 3,072 fewer: 2,765,633; Górriz's 3 scales: 3 × that. Spectral norm adds no parameter.
    assert count_parameters(PatchDiscriminator(3, 64, 3)) == 2_765_633
    assert count_parameters(MultiScaleDiscriminator(3, 64, 3, spectral_norm=True, ibn_layers=2, num_d=3)) == 3 * 2_765_633
    # Zhang et al.'s network: 32,154,944 trunk parameters (sum over the layer list of richzhang/colorization's
    # ECCVGenerator without its 313-way classifier) + 514 for the 1×1 regression head (see nets/colorful.py)
    assert count_parameters(ColorfulNet(1, 2, 64)) == 32_154_944 + 514
    # EBGAN auto-encoder D (64-128-256 encoder, mirrored decoder, batch norm) on 3 channels, counted by hand:
    # convs 3·64·16+64, 64·128·16, 128·256·16; deconvs 256·128·16, 128·64·16, 64·3·16+3; BN 2·(128+256+128+64)
    assert count_parameters(AutoEncoderDiscriminator(3, 64, 3)) == (3 * 64 * 16 + 64) + 64 * 128 * 16 + 128 * 256 * 16 \
        + 256 * 128 * 16 + 128 * 64 * 16 + (64 * 3 * 16 + 3) + 2 * (128 + 256 + 128 + 64)
    # torchvision vgg16().features[:16] (conv1_1 … conv3_3): 1,792 + 36,928 + 73,856 + 147,584 + 295,168 + 2·590,080
    assert count_parameters(vgg16_block3(64)) == 1_735_488


def test_paper_presets_use_the_reference_architectures():
    for name in ("cgan-dcgan", "cgan-lsgan", "cgan-wgan"):
        c = METHODS.get(name).make_config("paper")
        assert (c.num_downs, c.ngf, c.ndf, c.n_layers_d, c.generator) == (8, 64, 64, 3, "unet"), name
    for name in ("gorriz", "gorriz-featrec"):  # the thesis's U-Net: n = 7 downsamplings (§4.1.1, p. 18)
        c = METHODS.get(name).make_config("paper")
        assert (c.num_downs, c.ngf, c.ndf, c.n_layers_d, c.generator) == (7, 64, 64, 3, "unet"), name
    gorriz = METHODS.get("gorriz").make_config("paper")
    assert (gorriz.num_d, gorriz.d_spectral_norm, gorriz.recon_loss, gorriz.ibn_layers_g) == (3, True, "smooth_l1", 3)
    featrec = METHODS.get("gorriz-featrec").make_config("paper")
    assert featrec.lambda_feat == 1e-5 and featrec.feature_backbone == "vgg16"  # thesis §5.1.1
    assert METHODS.get("cgan-ebgan").make_config("paper").discriminator == "autoencoder"
    wgan = METHODS.get("cgan-wgan").make_config("paper")
    assert (wgan.clip_value, wgan.n_critic, wgan.optimizer, wgan.lr) == (0.01, 5, "rmsprop", 5e-5)  # WGAN's defaults
    assert METHODS.get("unet-seg").make_config("paper").n_classes == 21  # Pascal VOC with background
    assert METHODS.get("colorful-gan").make_config("paper").generator == "colorful"


# --- cgan alias ---------------------------------------------------------------------------------------------------------
def test_cgan_is_pix2pix_with_a_paper_preset(capsys):
    from colorbench.commands.cli import main

    assert METHODS.canonical("cgan") == "pix2pix" and METHODS.get("cgan") is METHODS.get("pix2pix")
    c = METHODS.get("cgan").make_config("cgan-paper")
    assert (c.gan_mode, c.lambda_l1, c.batch_size, c.epochs, c.num_downs) == ("lsgan", 100.0, 1, 100, 7)
    assert main(["describe", "cgan", "--preset", "cgan-paper"]) in (0, None)
    out = capsys.readouterr().out
    assert "pix2pix" in out and "gan_mode = lsgan" in out


# --- unet-seg -------------------------------------------------------------------------------------------------------------
def test_unet_seg_needs_masks(data):
    method = METHODS.get("unet-seg").from_preset("quick")
    assert method.card.needs_masks
    no_masks = ImageSet(data.rgb, data.labels, data.ids, data.class_names)
    with pytest.raises(ValueError, match="needs per-pixel class masks.*--dataset shapes"):
        method.fit_start(no_masks)
    with pytest.raises(ValueError, match="needs per-pixel class masks"):
        method.train_step(no_masks.make_batch(torch.arange(2), grey_convention=Grey.BT601))
    too_many = ImageSet(data.rgb, data.labels, data.ids, data.class_names, masks=data.masks + 8,
                        mask_class_names=[str(i) for i in range(10)])
    with pytest.raises(ValueError, match="n_classes"):
        method.fit_start(too_many)
    with pytest.raises(ValueError, match=r"mask classes must lie in \[0, n_classes = 8\)"):
        method.train_step(too_many.make_batch(torch.arange(2), grey_convention=Grey.BT601))


def test_unet_seg_colors_each_pixel_with_its_predicted_class():
    method = METHODS.get("unet-seg").from_preset("quick+class-head")
    n = method.config.n_classes
    out = torch.zeros(1, 3 * n, 2, 2)
    out[0, 2 * n + 3] = 5.0  # class 3 wins everywhere ...
    out[0, 2 * n + 5, 1, 1] = 9.0  # ... except at pixel (1, 1): class 5
    out[0, 6:8] = 0.5  # ab pair of class 3 (channels 6, 7)
    out[0, 10:12] = -0.25  # ab pair of class 5
    method.G = lambda L: out  # the generator's raw output, to test the selection alone
    ab = method.predict_ab(torch.zeros(1, 1, 2, 2))
    assert torch.allclose(ab[0, :, 0, 0], torch.tensor(0.5).tanh().repeat(2))
    assert torch.allclose(ab[0, :, 1, 1], torch.tensor(-0.25).tanh().repeat(2))


def test_unet_seg_ignores_unlabelled_pixels(data):
    masks = torch.full_like(data.masks, IGNORE_INDEX)
    unlabelled = ImageSet(data.rgb, data.labels, data.ids, data.class_names, masks=masks, mask_class_names=["a", "b"])
    method = METHODS.get("unet-seg").from_preset("quick+class-head")
    assert method.train_step(unlabelled.make_batch(torch.arange(2), grey_convention=Grey.BT601)) == {"G_L1": 0.0, "G_seg": 0.0}
    method = METHODS.get("unet-seg").from_preset("quick")  # the thesis form: no class head, no G_seg
    assert method.train_step(unlabelled.make_batch(torch.arange(2), grey_convention=Grey.BT601)) == {"G_L1": 0.0}


# --- gorriz-featrec: where the feature network comes from ------------------------------------------------------------------
def test_featrec_selftrained_variant_trains_and_records_its_own(data, empty_hub):
    method = METHODS.get("gorriz-featrec-selftrained").from_preset("quick")
    assert not method.feature_ready and "not ready" in method.notes()["feature_network"]
    batch = data.make_batch(torch.arange(4), grey_convention=Grey.BT601)
    with pytest.warns(RuntimeWarning, match="training without the feature loss"):
        assert "G_feat" not in method.train_step(batch)  # never a random feature network
    before = {k: v.clone() for k, v in method.F.state_dict().items()}
    method.fit_start(data)
    note = method.notes()["feature_network"]
    assert note.startswith("trained by colorbench") and "2-way classifier on its image labels" in note
    assert any(not torch.equal(before[k], v) for k, v in method.F.state_dict().items())
    assert all(not p.requires_grad for p in method.F.parameters()) and not method.F.training
    frozen = {k: v.clone() for k, v in method.F.state_dict().items()}
    assert "G_feat" in method.train_step(batch)
    assert all(torch.equal(frozen[k], v) for k, v in method.F.state_dict().items())  # F stays frozen
    one_label = ImageSet(data.rgb, torch.zeros(len(data), dtype=torch.long), data.ids, ["only"])
    other = METHODS.get("gorriz-featrec-selftrained").from_preset("quick")
    other.fit_start(one_label)
    assert "4-way classifier on rotation prediction" in other.notes()["feature_network"]


def test_featrec_without_weights_fails_naming_the_file(data, empty_hub):
    """No substitute network: fit_start and train_step raise FileNotFoundError saying which file goes where."""
    method = METHODS.get("gorriz-featrec").from_preset("quick")
    assert not method.feature_ready
    where = str(empty_hub / "checkpoints" / "vgg16-00b39a1b.pth")
    for call in (lambda: method.fit_start(data), lambda: method.train_step(data.make_batch(torch.arange(2), grey_convention=Grey.BT601))):
        with pytest.raises(FileNotFoundError) as err:
            call()
        assert "vgg16-00b39a1b.pth" in str(err.value) and where in str(err.value)
        assert "vgg16-397923af.pth" in str(err.value)  # the torchvision alternative is named too


@pytest.mark.parametrize("kind, file", [("torchvision", "vgg16-397923af.pth"), ("caffe", "vgg16-00b39a1b.pth")])
def test_featrec_loads_pretrained_weights_from_the_hub_cache(data, empty_hub, kind, file):
    """A stand-in checkpoint (VGG16 layout, random weights — only to test the loading path) under the expected
    file name in the hub cache is found and loaded, with the preprocessing of its kind."""
    from torchvision.models import vgg16

    assert pretrained_file_name("vgg16", kind) == file
    assert find_pretrained("vgg16", kind=kind) is None
    torch.manual_seed(1)
    fake = {f"features.{k}": v for k, v in vgg16(weights=None).features.state_dict().items()}
    path = empty_hub / "checkpoints" / file
    path.parent.mkdir(parents=True)
    torch.save(fake, path)
    method = METHODS.get("gorriz-featrec").from_preset("quick", feature_weights_kind=kind)
    note = method.notes()
    assert method.feature_ready and note["feature_network"].startswith(f"pretrained ImageNet vgg16 weights ({kind} kind")
    assert str(path) in note["feature_network"] and "sha256" in note["feature_network"]
    assert note["feature_preprocessing"] == kind
    assert torch.equal(method.F[14].weight, fake["features.14.weight"])  # conv3_3
    method.fit_start(data)
    assert torch.equal(method.F[0].weight, fake["features.0.weight"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "G_feat" in method.train_step(data.make_batch(torch.arange(2), grey_convention=Grey.BT601))
    with pytest.raises(FileNotFoundError, match="feature_weights"):
        METHODS.get("gorriz-featrec").from_preset("quick", feature_weights=str(empty_hub / "missing.pth"))


def test_runner_records_the_feature_network_or_fails_the_row(tmp_path, empty_hub):
    from colorbench.results.records import RunRecord
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("gorriz-featrec-selftrained", "gorriz-featrec"), dataset="shapes",
                   dataset_options=(("n_train", 64), ("n_test", 16)), epochs=1, metrics=("psnr",), progress=False)
    out = run(spec, out=tmp_path / "run", log=lambda s: None)
    record = RunRecord.load(out / "cells" / "shapes__gorriz-featrec-selftrained__quick__s0" / "record.json")
    assert record.status == "ok", record.error
    assert record.config["notes"]["feature_network"].startswith("trained by colorbench")
    failed = RunRecord.load(out / "cells" / "shapes__gorriz-featrec__quick__s0" / "record.json")
    assert failed.status == "failed" and "FileNotFoundError" in failed.error and "vgg16-00b39a1b.pth" in failed.error


# --- GAN variants --------------------------------------------------------------------------------------------------------------
def test_wgan_clips_the_critic_and_steps_the_generator_every_n_critic(data):
    method = METHODS.get("cgan-wgan").from_preset("quick")
    batch = data.make_batch(torch.arange(4), grey_convention=Grey.BT601)
    g0 = [p.detach().clone() for p in method.G.parameters()]
    for step in range(1, 6):
        losses = method.train_step(batch)
        assert set(losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
        assert max(p.abs().max().item() for p in method.D.parameters()) <= 0.01 + 1e-7
        changed = any(not torch.equal(a, b) for a, b in zip(g0, method.G.parameters()))
        assert changed == (step == 5), step  # n_critic = 5: the generator steps on the 5th batch only


def test_ebgan_loss_and_energies():
    e = torch.tensor([0.2, 1.5, 0.7])
    loss = GANLoss("ebgan", margin=1.0)
    assert loss(e, True).item() == pytest.approx(e.mean().item())  # real: the energy
    assert loss(e, False).item() == pytest.approx(torch.relu(1.0 - e).mean().item())  # fake: hinge at the margin
    d = AutoEncoderDiscriminator(3, 4, 2)
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(d(x), (d.reconstruct(x) - x).pow(2).flatten(1).mean(1))
    with pytest.raises(ValueError, match="gan_mode 'ebgan' needs discriminator 'autoencoder'"):
        METHODS.get("pix2pix").make_config("quick", gan_mode="ebgan")


def test_ibn_normalizes_half_the_channels_per_instance():
    torch.manual_seed(0)
    ibn = IBN(8).train()
    x = torch.randn(4, 8, 5, 5) * 3 + torch.arange(4.0).view(4, 1, 1, 1)
    y = ibn(x)
    per_instance = y[:, :4].flatten(2)
    assert per_instance.mean(-1).abs().max() < 1e-5  # IN half: every sample and channel centred
    assert y[:, 4:].mean((0, 2, 3)).abs().max() < 1e-5  # BN half: centred over the batch only ...
    assert y[:, 4:].flatten(2).mean(-1).abs().max() > 0.1  # ... not per sample
    assert count_parameters(ibn) == count_parameters(nn.BatchNorm2d(8))
    unet = UnetGenerator(1, 2, 6, 4, ibn_layers=3)
    assert sum(isinstance(m, IBN) for m in unet.modules()) == 3
    with pytest.raises(ValueError, match="ibn_layers must be in"):
        UnetGenerator(1, 2, 5, 4, ibn_layers=4)


def test_multiscale_discriminator_sees_a_pyramid():
    d = MultiScaleDiscriminator(3, 4, 2, num_d=3)
    maps = d(torch.rand(1, 3, 64, 64))
    assert [m.shape[-1] for m in maps] == [14, 6, 2]  # 64, 32, 16 input sides through a 2-layer PatchGAN
    with pytest.raises(ValueError, match="use fewer scales"):
        d(torch.rand(1, 3, 16, 16))


def test_colorful_net_output():
    net = ColorfulNet(1, 2, 8)
    out = net(torch.rand(2, 1, 40, 24) * 2 - 1)
    assert out.shape == (2, 2, 40, 24) and out.abs().max() <= 1
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.zeros(1, 1, 30, 32))
