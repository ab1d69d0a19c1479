"""Tests of the methods: a contract test over every registered method, plus the shared networks and losses.

The contract tests are parametrized over ``METHODS.names()``, so every method registered later is tested too,
with its ``quick`` preset on tiny synthetic 32×32 images.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from colorbench.core.grey import Grey
from colorbench.core.color import rgb_to_lab
from colorbench.datasets.base import ImageSet
from colorbench.methods import METHODS
from colorbench.methods.lab import LabConvention, linear_decay_factor
from colorbench.methods.losses import GANLoss, gradient_penalty
from colorbench.engine.testing import CONTRACT_CHECKS, ContractSkip, batches, build, smooth_images, snapshot, trained
from colorbench.methods.nets import (
    PatchDiscriminator,
    UnetGenerator,
    count_parameters,
    init_weights,
    largest_num_downs,
    patchgan_output_size,
    patchgan_receptive_field,
)

SIZE = 32

# Methods with released weights (zhang-siggraph17) find random-valued stand-ins of their files (tests/conftest.py).
pytestmark = pytest.mark.usefixtures("zhang_weights_stand_ins")


# --- synthetic data (the contract's images come from colorbench.engine.testing) ---------------------------------------
RED, BLUE = (0.95, 0.25, 0.2), (0.1, 0.2, 0.8)  # BT.601 luma 0.454 and 0.238: red is the brighter one


def red_blue_images(n: int, size: int = SIZE, seed: int = 0) -> ImageSet:
    """Images whose colour is a function of brightness: a blend ``t·red + (1-t)·blue`` with a smooth random
    ``t``; as the luma is linear and increasing in ``t``, the ab of each pixel can be learned from its grey."""
    g = torch.Generator().manual_seed(seed)
    y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    ts = []
    for _ in range(n):
        angle = float(torch.rand(1, generator=g)) * 2 * math.pi
        freq = float(torch.rand(1, generator=g)) * 2 + 0.5
        ts.append(0.5 + 0.5 * torch.sin(2 * math.pi * freq * (math.cos(angle) * x + math.sin(angle) * y) + angle))
    t = torch.stack(ts)[:, None]
    red, blue = torch.tensor(RED).view(1, 3, 1, 1), torch.tensor(BLUE).view(1, 3, 1, 1)
    rgb = ((red * t + blue * (1 - t)) * 255).round().to(torch.uint8)
    return ImageSet(rgb, torch.zeros(n, dtype=torch.long), [f"rb{i}" for i in range(n)], ["red-blue"])


@pytest.fixture(scope="module")
def images() -> ImageSet:
    return smooth_images(8)


ALL = METHODS.names()
#: Methods that load pretrained weights in every preset: the contract tests give them the test-fixture file.
NEEDS_WEIGHTS = {"gorriz-featrec"}


@pytest.fixture(autouse=True)
def _fixture_weights(request):
    """gorriz-featrec fails without its ImageNet VGG16 file (by design); its contract tests get a random-valued
    file in the same format (tests/conftest.py: random_vgg16_hub)."""
    callspec = getattr(request.node, "callspec", None)
    if callspec is not None and callspec.params.get("name") in NEEDS_WEIGHTS:
        request.getfixturevalue("with_random_vgg16")
    if callspec is not None and callspec.params.get("name") == "ddcolor":  # random-valued DDColor-T test file
        request.getfixturevalue("ddcolor_weights_stand_in")


def test_first_methods_are_registered():
    assert {"gray", "unet-l1", "pix2pix"} <= set(ALL)
    assert METHODS.canonical("grey") == "gray" and METHODS.canonical("unet") == "unet-l1"


# --- the contract, for every registered method (colorbench.engine.testing's checks, as plugin authors run them) ----------
@pytest.mark.parametrize("check", list(CONTRACT_CHECKS))
@pytest.mark.parametrize("name", ALL)
def test_method_contract(name, check, images):
    fn = CONTRACT_CHECKS[check]
    try:
        if check == "card_and_presets":
            fn(METHODS.get(name), images, provenance=True)  # built-in methods also name their seed and choices
        else:
            fn(METHODS.get(name), images)
    except ContractSkip as why:
        pytest.skip(str(why))


# --- method-specific --------------------------------------------------------------------------------------------
def test_unet_l1_learns_a_colour_that_follows_brightness():
    """Bright pixels red, dark pixels blue: 60 steps must clearly beat predicting grey (ab = 0).

    The quick preset with ngf 8 and lr 2e-3 (instead of 16 and 2e-4) so that it converges in about a second.
    """
    data = red_blue_images(64)
    whole = data.make_batch(torch.arange(len(data)), grey_convention=Grey.BT601)
    true_ab = rgb_to_lab(whole.rgb)[:, 1:] / 110
    zero_l1 = true_ab.abs().mean().item()  # the L1 of the grey prediction (ab = 0): 0.432
    method = build("unet-l1", seed=0, ngf=8, lr=2e-3)
    losses = [method.train_step(b)["G_L1"] for b in batches(data, 60, batch_size=16)]
    # measured: first step 1.01 × zero_l1, mean of the last 5 steps 0.08 × zero_l1
    assert losses[0] > 0.9 * zero_l1
    assert sum(losses[-5:]) / 5 < 0.3 * zero_l1
    out_lab = rgb_to_lab(method.colorize(whole.gray))
    # eval mode uses batch-norm running statistics, which lag the training: measured 0.16 × zero_l1
    assert (out_lab[:, 1:] / 110 - true_ab).abs().mean() < 0.4 * zero_l1
    # red has b* = +48, blue b* = -80: the predicted b* must rise from the dark to the bright half of the
    # pixels by at least half as much as the true b* does (measured: 0.78 of it)
    bright = whole.gray > whole.gray.median()

    def b_contrast(lab):
        b = lab[:, 2:3]
        return (b[bright].mean() - b[~bright].mean()).item()

    assert b_contrast(out_lab) > 0.5 * b_contrast(rgb_to_lab(whole.rgb))


def test_image_size_error_names_the_fitting_preset(images):
    method = METHODS.get("unet-l1").from_preset("paper")  # num_downs 7: sides must be multiples of 128
    gray = images.make_batch(torch.arange(2), grey_convention=Grey.BT601).gray
    with pytest.raises(ValueError, match=r"divisible by 128.*32×32.*presets that fit 32×32: quick"):
        method.colorize(gray)
    with pytest.raises(ValueError, match="divisible by 128"):
        method.train_step(next(images.batches(2, grey_convention=Grey.BT601)))
    with pytest.raises(ValueError, match="no preset fits 16×16"):
        build("pix2pix").colorize(torch.rand(1, 1, 16, 16))


def test_batch_with_another_grey_convention_is_rejected(images):
    batch = images.make_batch(torch.arange(4), grey_convention="cie-l")
    with pytest.raises(ValueError, match="grey convention 'cie-l'"):
        build("unet-l1").train_step(batch)
    method = build("unet-l1", grey_convention="cie-l")
    assert math.isfinite(method.train_step(batch)["G_L1"])


def test_neutral_ab_gives_the_grey_back():
    """ab = 0 with the L* of the grey must decode to the grey itself (R = G = B = grey) for bt601."""
    method = build("unet-l1")
    gray = torch.linspace(0, 1, 64).view(1, 1, 8, 8)
    rgb = method.ab_to_rgb(gray, torch.zeros(1, 2, 8, 8))
    # float32 round trip grey -> L* -> sRGB: measured max error 3.6e-5
    assert torch.allclose(rgb, gray.expand(1, 3, 8, 8), atol=1e-4, rtol=0)
    L = method.input_l(gray)
    assert L.min() >= -1 and L.max() <= 1 and abs(L.min().item() + 1) < 1e-5 and abs(L.max().item() - 1) < 1e-4


def test_dropout_uses_the_methods_own_seeded_stream():
    """With dropout layers (num_downs 6, 64×64), training is reproducible and leaves the global RNG alone."""
    data = smooth_images(4, size=64)
    data_batches = batches(data, 2, batch_size=2)
    results = []
    for _ in range(2):
        method = build("unet-l1", seed=3, num_downs=6, ngf=4)
        assert any(isinstance(m, nn.Dropout) for m in method.G.modules())
        rng = torch.get_rng_state()
        results.append([method.train_step(b) for b in data_batches])
        assert torch.equal(torch.get_rng_state(), rng)
        torch.rand(10)  # moving the global RNG in between must not matter
    assert results[0] == results[1]


def test_pix2pix_discriminator_is_conditional_and_losses_named():
    method = build("pix2pix")
    assert method.D.in_channels == 3  # cat(L, ab)
    losses = method.train_step(next(smooth_images(4).batches(4, grey_convention=Grey.BT601)))
    assert set(losses) == {"G_GAN", "G_L1", "D_real", "D_fake"}
    # vanilla GAN: D losses are BCE; near chance at the start (log 2 ≈ 0.69), certainly within (0, 5)
    assert all(0 < losses[k] < 5 for k in ("D_real", "D_fake"))


@pytest.mark.parametrize(
    "options",
    [{"gan_mode": "lsgan"}, {"gan_mode": "wgan"}, {"norm": "instance"}, {"norm": "none", "d_spectral_norm": True}],
)
def test_pix2pix_variants_train(options):
    method = build("pix2pix", **options)
    for batch in batches(smooth_images(4), 2, batch_size=4):
        losses = method.train_step(batch)
    assert all(math.isfinite(v) for v in losses.values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (checked on a GPU machine when one is lent)")
@pytest.mark.parametrize("name", ["unet-l1", "pix2pix"])
@pytest.mark.parametrize("amp_dtype", ["bfloat16", "float16"])
def test_cuda_with_mixed_precision(name, amp_dtype, images):
    """The CUDA path (autocast, loss scaling for float16, own CUDA RNG stream); not run on CPU-only machines."""
    gray = images.make_batch(torch.arange(len(images)), grey_convention=Grey.BT601).gray  # on the CPU
    method_cpu = build(name, seed=1, amp_dtype=amp_dtype)
    method = METHODS.get(name).from_preset("quick", device="cuda", seed=1, amp_dtype=amp_dtype)
    # networks are built on the CPU under the seed, so the GPU instance starts from the very same weights
    assert all(torch.equal(a, b.cpu()) for a, b in zip(snapshot(method_cpu).values(), snapshot(method).values()))
    for batch in batches(images, 3):
        losses = method.train_step(batch)
        assert all(math.isfinite(v) for v in losses.values())
    out = method.colorize(gray)
    assert out.device == gray.device and out.dtype == torch.float32
    assert out.shape == (len(images), 3, SIZE, SIZE) and 0 <= out.min() and out.max() <= 1
    assert torch.allclose(method.colorize(gray.cuda()).cpu(), out, atol=1e-6)  # input on the GPU: same result


def test_linear_decay_matches_the_pix2pix_rule():
    # reference lambda_rule with epoch_count=1, n_epochs=100, n_epochs_decay=100:
    # 1 - max(0, epoch + 1 - 100) / 101
    for epoch in (0, 50, 98, 99, 100, 150, 199):
        assert linear_decay_factor(epoch, 200, 100) == pytest.approx(1 - max(0, epoch + 1 - 100) / 101)
    assert linear_decay_factor(5, 10, 0) == 1.0


def test_end_epoch_sets_the_decayed_learning_rate():
    method = build("pix2pix", epochs=4, lr_decay_fraction=0.5, lr=1e-3)
    assert method.config.lr_decay_epochs == 2
    seen = []
    for _ in range(4):
        seen.append([g["lr"] for opt in method.optimizers().values() for g in opt.param_groups])
        method.end_epoch()
    expected = [1.0, 1.0, 2 / 3, 1 / 3]  # epochs 2 and 3 decay: 1 - k/3
    for lrs, factor in zip(seen, expected):
        assert lrs == pytest.approx([1e-3 * factor] * 2)
    assert method.epoch == 4
    # the fraction keeps the schedule's shape when epochs is overridden; 1 epoch has nothing to decay
    assert build("pix2pix", epochs=1).config.lr_decay_epochs == 0
    assert build("pix2pix", epochs=30).config.lr_decay_epochs == 15
    with pytest.raises(ValueError, match="lr_decay_fraction"):
        build("pix2pix", lr_decay_fraction=1.5)


def test_lab_methods_share_the_base():
    # the Lab convention is one mixin (not a Method subclass, so it adds no level below Method)
    for name in ("unet-l1", "pix2pix"):
        assert issubclass(METHODS.get(name), LabConvention)


# --- networks -------------------------------------------------------------------------------------------------------
def test_unet_256_parameter_count_matches_the_reference():
    # pix2pix reference, netG unet_256, input_nc 3, output_nc 3, ngf 64, batch norm, prints
    # "[Network G] Total number of parameters : 54.414 M"; our exact count is 54,413,955.
    net = UnetGenerator(3, 3, num_downs=8, ngf=64, norm="batch")
    assert count_parameters(net) == 54_413_955
    assert round(count_parameters(net) / 1e6, 3) == 54.414


def test_patchgan_parameter_count_matches_the_reference():
    # pix2pix reference, netD basic (n_layers 3), input_nc 6 (3 + 3), ndf 64, batch norm, prints
    # "[Network D] Total number of parameters : 2.769 M"; our exact count is 2,768,705.
    net = PatchDiscriminator(6, ndf=64, n_layers=3, norm="batch")
    assert count_parameters(net) == 2_768_705
    assert round(count_parameters(net) / 1e6, 3) == 2.769


def test_network_shapes():
    x = torch.rand(2, 1, 64, 64) * 2 - 1
    for norm in ("batch", "instance", "none"):
        out = UnetGenerator(1, 2, num_downs=6, ngf=4, norm=norm)(x)
        assert out.shape == (2, 2, 64, 64) and out.abs().max() <= 1
    d = PatchDiscriminator(3, ndf=4, n_layers=3)
    assert d(torch.rand(2, 3, 256, 256)).shape == (2, 1, 30, 30)  # the reference's 30×30 map at 256×256
    assert patchgan_output_size(256, 3) == 30 and patchgan_output_size(32, 2) == 6
    assert patchgan_receptive_field(3) == 70 and patchgan_receptive_field(2) == 34 and d.receptive_field == 70
    assert largest_num_downs(256, 256) == 8 and largest_num_downs(32, 96) == 5 and largest_num_downs(48, 48) == 4


def test_network_input_errors():
    with pytest.raises(ValueError, match=r"num_downs=7 needs H and W divisible by 128, got 64×64 \(num_downs <= 6 fits"):
        UnetGenerator(1, 2, num_downs=7, ngf=2)(torch.zeros(1, 1, 64, 64))
    with pytest.raises(ValueError, match="no num_downs >= 5 fits 48×48"):
        UnetGenerator(1, 2, num_downs=5, ngf=2)(torch.zeros(1, 1, 48, 48))
    with pytest.raises(ValueError, match=r"expects \(N, 1, H, W\)"):
        UnetGenerator(1, 2, num_downs=5, ngf=2)(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="num_downs >= 5"):
        UnetGenerator(1, 2, num_downs=4)
    with pytest.raises(ValueError, match="unknown norm 'group'"):
        UnetGenerator(1, 2, num_downs=5, norm="group")
    with pytest.raises(ValueError, match="empty score map for a 8×8 input"):
        PatchDiscriminator(3, ndf=2, n_layers=3)(torch.zeros(1, 3, 8, 8))


def test_init_weights_follows_pix2pix():
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(64, 64, 4), nn.BatchNorm2d(4096)
    init_weights(nn.Sequential(conv, bn), "normal", 0.02)
    assert conv.weight.std().item() == pytest.approx(0.02, rel=0.02) and conv.bias.abs().max() == 0
    assert bn.weight.mean().item() == pytest.approx(1.0, abs=0.002) and bn.bias.abs().max() == 0
    with pytest.raises(ValueError, match="unknown init_type"):
        init_weights(conv, "uniform")


def test_spectral_norm_option_bounds_the_weights():
    torch.manual_seed(0)
    d = PatchDiscriminator(3, ndf=8, n_layers=2, norm="none", spectral_norm=True)
    plain = PatchDiscriminator(3, ndf=8, n_layers=2, norm="none")
    assert count_parameters(d) == count_parameters(plain)
    for _ in range(30):  # one power iteration per training-mode forward
        d(torch.rand(1, 3, 32, 32))
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    sigmas = [torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2).item() for m in convs]
    assert sigmas == pytest.approx([1.0] * len(convs), abs=0.02)


# --- losses --------------------------------------------------------------------------------------------------------
def test_gan_losses_match_their_definitions():
    s = torch.randn(2, 1, 6, 6)
    vanilla, lsgan, wgan = GANLoss("vanilla"), GANLoss("lsgan"), GANLoss("wgan")
    # BCE on logits: -log σ(s) for real, -log(1 - σ(s)) for fake
    assert vanilla(s, True).item() == pytest.approx(F.softplus(-s).mean().item(), rel=1e-6)
    assert vanilla(s, False).item() == pytest.approx(F.softplus(s).mean().item(), rel=1e-6)
    assert lsgan(s, True).item() == pytest.approx(((s - 1) ** 2).mean().item(), rel=1e-6)
    assert lsgan(s, False).item() == pytest.approx((s**2).mean().item(), rel=1e-6)
    assert wgan(s, True).item() == pytest.approx(-s.mean().item(), rel=1e-6)
    assert wgan(s, False).item() == pytest.approx(s.mean().item(), rel=1e-6)
    t = torch.randn(2, 1, 3, 3)
    assert lsgan([s, t], True).item() == pytest.approx((lsgan(s, True) + lsgan(t, True)).item() / 2, rel=1e-6)
    assert vanilla(s.to(torch.bfloat16), True).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown GAN loss mode 'hinge'"):
        GANLoss("hinge")


def test_gradient_penalty_of_a_linear_critic():
    # D(x) = <w, x> has gradient w everywhere, so the penalty is weight * (||w|| - 1)^2
    w = torch.randn(1, 3, 4, 4)

    def critic(x):
        return (x * w).flatten(1).sum(1)

    real, fake = torch.rand(5, 3, 4, 4), torch.rand(5, 3, 4, 4)
    expected = 10.0 * (w.norm() - 1) ** 2
    assert gradient_penalty(critic, real, fake).item() == pytest.approx(expected.item(), rel=1e-5)


def test_state_dict_is_deep_copyable(images):
    # the runner may keep the best checkpoint in memory
    method = trained("pix2pix", images, steps=1)
    state = copy.deepcopy(method.state_dict())
    assert set(state["networks"]) == {"G", "D"} and set(state["optimizers"]) == {"G", "D"}


# --- variants and inheritance depth ------------------------------------------------------------------------------
def _depth_below_method(cls: type) -> int:
    """Levels of inheritance between ``cls`` and ``Method`` (``Method`` itself: 0), by the longest path."""
    from colorbench.methods.base import Method

    if cls is Method:
        return 0
    return 1 + max(_depth_below_method(b) for b in cls.__bases__ if issubclass(b, Method))


#: Issue 21's target: no method more than 3 levels below Method (TrainableMethod 1, Pix2Pix 2, a variant 3). The
#: shared behaviours that used to be levels of their own (the Lab convention, the ab regression step, the cycle-
#: consistent step, the feature reconstruction loss) are mixins that are not Method subclasses.
MAX_DEPTH = 3


def _too_deep(classes: dict[str, type]) -> dict[str, int]:
    depths = {name: _depth_below_method(cls) for name, cls in classes.items()}
    return {n: d for n, d in depths.items() if d > MAX_DEPTH}


def test_inheritance_is_at_most_three_levels_below_method():
    assert _too_deep({name: METHODS.get(name) for name in METHODS.names()}) == {}
    # the check fails on a fourth level: a subclass of a variant (cgan-wgan is 3 levels down)
    deeper = type("DeeperWgan", (METHODS.get("cgan-wgan"),), {})
    assert _too_deep({"deeper": deeper}) == {"deeper": 4}


def test_variants_are_data_over_their_base():
    from colorbench.methods.cgan import CGAN_PRESETS
    from colorbench.methods.registry import Variant

    wgan, l2, ablation = METHODS.get("cgan-wgan"), METHODS.get("colorful-l2"), METHODS.get("spyncogan-l1")
    assert isinstance(wgan.variant, Variant) and wgan.variant.base is METHODS.get("pix2pix")
    # options go on every preset but the overlay, which is kept as it is
    assert wgan.presets["paper-l1l2"] == {**CGAN_PRESETS["paper-l1l2"], **wgan.variant.options}
    assert wgan.presets["l1-l2"] == {"lambda_l2": 100.0}
    assert l2.make_config("quick").loss == "l2" and METHODS.get("colorful-l1").make_config("quick").loss == "l1"
    assert ablation.presets["paper"] == {**METHODS.get("spyncogan").presets["paper"], "loss_outputs": 1}
    assert METHODS.get("gorriz-featrec-selftrained").feature_network == "selftrained"
    assert METHODS.get("gorriz-featrec").feature_network == "pretrained"
    assert METHODS.get("pix2pix").variant is None


def test_variant_refuses_a_wrong_card_or_an_unknown_switch():
    from colorbench.methods.base import MethodCard
    from colorbench.methods.registry import Variant

    pix2pix = METHODS.get("pix2pix")
    with pytest.raises(ValueError, match="card is named 'other'"):
        Variant("mine", pix2pix, MethodCard(name="other", title="t", paper="p"))
    with pytest.raises(ValueError, match=r"no attribute\(s\) \['feature_netwrok'\]"):
        Variant("mine", pix2pix, MethodCard(name="mine", title="t", paper="p"), switches={"feature_netwrok": "x"})
    with pytest.raises(ValueError, match=r"mixins \['Pix2Pix'\] are Method subclasses"):
        Variant("mine", METHODS.get("unet-l1"), MethodCard(name="mine", title="t", paper="p"), mixins=(pix2pix,))
