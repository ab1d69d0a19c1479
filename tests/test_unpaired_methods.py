"""Tests of the unpaired methods: CycleGAN and its variants, Col-Cycle, SpyncoGan and its ablations, their blocks.

The registry-wide contract (finite losses, purity, seeds, checkpoints, bad input) is in ``tests/test_methods.py``;
this file checks what is specific to the unpaired methods.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from colorbench.core.grey import Grey
from colorbench.core.color import rgb_to_grey
from colorbench.datasets.base import Batch
from colorbench.methods import METHODS
from colorbench.methods.nets import (
    CapsuleDiscriminator,
    ConditionalInstanceNorm2d,
    HandcraftedTranslation,
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    SeparableConv2d,
    SeparablePatchDiscriminator,
    add_to_input,
    count_parameters,
    dynamic_routing,
    sobel_edges,
    squash,
)
from colorbench.methods.trainable import TrainableMethod

UNPAIRED = ("cyclegan", "cyclegan-capsule", "cyclegan-stochastic", "col-cycle", "spyncogan", "spyncogan-l1",
            "spyncogan-nocontours", "spyncogan-l1-nocontours")


def unpaired_batch(n: int = 4, size: int = 32, seed: int = 0) -> Batch:
    """Grey images of one set of smooth random images and colour images of another set."""
    g = torch.Generator().manual_seed(seed)

    def smooth(k: int) -> torch.Tensor:
        return F.interpolate(torch.rand(k, 3, 4, 4, generator=g), size=(size, size), mode="bilinear", align_corners=False)

    a, b = smooth(n), smooth(n)
    return Batch(gray=rgb_to_grey(a, Grey.BT601), rgb=b, labels=torch.zeros(n, dtype=torch.long), ids=[f"a{i}" for i in range(n)],
                 paired=False, rgb_ids=[f"b{i}" for i in range(n)], grey_convention=Grey.BT601)


def build(name: str, seed: int = 0, **overrides):
    return METHODS.get(name).from_preset("quick", device="cpu", seed=seed, **overrides)


# --- registry, cards, parameter counts -------------------------------------------------------------------------------
def test_unpaired_methods_are_registered_with_rgb_cards():
    for name in UNPAIRED:
        cls = METHODS.get(name)
        assert issubclass(cls, TrainableMethod)
        assert cls.card.paired is False and cls.card.color_space == "rgb"
        assert cls.card.stochastic is (name == "cyclegan-stochastic")
    assert METHODS.get("spyncogan-l1").make_config("paper").loss_outputs == 1
    assert METHODS.get("spyncogan-nocontours").make_config("quick").zeta == (0.0, 0.0, 0.0)
    cfg = METHODS.get("spyncogan-l1-nocontours").make_config("paper")
    assert cfg.loss_outputs == 1 and cfg.zeta == (0.0, 0.0, 0.0)
    assert METHODS.get("spyncogan").make_config("paper").alpha == (5.0, 3.0, 2.0)


def test_resnet_6blocks_parameter_count_matches_the_reference():
    # junyanz/pytorch-CycleGAN-and-pix2pix, netG resnet_6blocks, input_nc 3, output_nc 3, ngf 64, instance norm
    # (no affine), no dropout, prints "[Network G_A] Total number of parameters : 7.838 M"; our exact count 7,837,699.
    net = ResnetGenerator(3, 3, ngf=64, n_blocks=6, norm="instance")
    assert count_parameters(net) == 7_837_699 and round(count_parameters(net) / 1e6, 3) == 7.838


def test_cyclegan_paper_preset_has_the_reference_networks():
    # the reference's CycleGAN prints 7.838 M for G_A and G_B and 2.765 M for D_A and D_B ('basic' PatchGAN,
    # instance norm, input_nc 3); our exact D count is 2,764,737.
    counts = METHODS.get("cyclegan").describe("paper")["parameters"]
    assert counts == {"G": 7_837_699, "F": 7_837_699, "D_A": 2_764_737, "D_B": 2_764_737}
    assert count_parameters(PatchDiscriminator(3, 64, 3, "instance")) == 2_764_737


def test_spyncogan_paper_preset_parameter_counts():
    # SUMAC 2019 §4.1: "≈ 4.978 million parameters for the generator and ≈ 2.085 million for the discriminator".
    # Our D (separable 70×70 PatchGAN) has 2,085,510; our G 4,744,451 (-4.7 %: Figure 4, the layer table, is not in
    # the text; see the card). These are our own counts, pinned so a change of architecture is noticed.
    counts = METHODS.get("spyncogan").describe("paper")["parameters"]
    assert counts == {"G": 4_744_451, "D": 2_085_510}
    assert abs(counts["D"] / 2.085e6 - 1) < 0.001 and abs(counts["G"] / 4.978e6 - 1) < 0.05
    assert METHODS.get("col-cycle").describe("paper")["parameters"] == {"G": 4_113_475, "F": 4_113_475, "D_A": 2_085_510, "D_B": 2_085_510}


# --- building blocks ------------------------------------------------------------------------------------------------
def test_separable_conv_is_a_rank_one_kernel_with_the_same_output_size():
    torch.manual_seed(0)
    sep = SeparableConv2d(1, 1, 3, stride=2, padding=1, bias=False)
    x = torch.rand(1, 1, 9, 9)
    kernel = sep.vertical.weight.view(3, 1) @ sep.horizontal.weight.view(1, 3)  # outer product: a rank-1 3×3 kernel
    assert torch.allclose(sep(x), F.conv2d(x, kernel.view(1, 1, 3, 3), stride=2, padding=1), atol=1e-6)
    assert SeparablePatchDiscriminator(3, 4, 3)(torch.rand(1, 3, 256, 256)).shape == (1, 1, 30, 30)  # as PatchGAN


def test_handcrafted_translation_is_fixed_bt601():
    ht = HandcraftedTranslation()
    assert list(ht.parameters()) == []  # a buffer: nothing to train
    rgb = torch.rand(2, 3, 8, 8)
    assert torch.allclose(ht(rgb), rgb_to_grey(rgb, Grey.BT601), atol=1e-6)
    with pytest.raises(ValueError, match=r"RGB \(N, 3, H, W\)"):
        ht(torch.rand(1, 1, 8, 8))


def test_sobel_matches_scipy():
    img = np.random.default_rng(0).random((12, 10)).astype(np.float32)
    out = sobel_edges(torch.from_numpy(img)[None, None])[0].numpy()
    # replicate padding = scipy's mode "nearest"; axis 1 is the horizontal derivative
    assert np.allclose(out[0], scipy.ndimage.sobel(img, axis=1, mode="nearest"), atol=1e-5)
    assert np.allclose(out[1], scipy.ndimage.sobel(img, axis=0, mode="nearest"), atol=1e-5)


def test_image_pool_follows_the_reference_rule():
    pool = ImagePool(3)
    first = torch.arange(3.0).view(3, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 3  # filling: the new images come back
    torch.manual_seed(0)
    outs = torch.cat([pool.query(torch.full((1, 1, 1, 1), 10.0 + i)) for i in range(200)]).flatten()
    old = outs < 10 + torch.arange(200.0)  # an image stored earlier was returned instead of the new one
    assert 0.4 < old.float().mean() < 0.6  # probability 1/2
    fresh = ImagePool(3)
    fresh.load_state_dict(pool.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(fresh.images, pool.images))
    assert torch.equal(ImagePool(0).query(first), first)


def test_capsules_squash_and_route():
    v = squash(torch.randn(5, 7, 16) * 3)
    assert (v.norm(dim=-1) < 1).all()
    # a prediction shared by all input capsules wins the routing: the output points the same way
    u_hat = torch.randn(1, 1, 1, 4).expand(1, 6, 2, 4).clone()
    out = dynamic_routing(u_hat, 3)
    assert torch.allclose(F.normalize(out[0, 0], dim=0), F.normalize(u_hat[0, 0, 0], dim=0), atol=1e-5)
    d = CapsuleDiscriminator(3, 32, 8, 5, 2, 4, 3, 4)
    y = d(torch.rand(2, 3, 64, 64))  # rescaled to 32×32 inside
    assert y.shape == (2, 1) and ((y > 0) & (y < 1)).all()


def test_conditional_instance_norm_depends_on_the_noise():
    torch.manual_seed(0)
    cin = ConditionalInstanceNorm2d(4, 3)
    x = torch.randn(2, 4, 5, 5)
    a, b = cin(x, torch.zeros(2, 3)), cin(x, torch.randn(2, 3))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="z of shape"):
        cin(x, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="pass z"):
        ResnetGenerator(3, 3, 4, 1, noise_dim=3)(torch.rand(1, 3, 8, 8))


# --- methods ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,watch", [("cyclegan", ("cycle_A", "cycle_B", "idt_B")),
                                        ("spyncogan", ("identity", "cycle_BAB", "cycle_ABA"))])
def test_losses_go_down_on_a_fixed_batch(name, watch):
    batch = unpaired_batch(4)
    # the papers' output (tanh(z)) and, for cyclegan, its identity loss (the quick preset drops both)
    papers = {"output_skip": False, **({"lambda_identity": 0.5} if name == "cyclegan" else {})}
    method = build(name, seed=0, lr=2e-3, pool_size=0, **papers)
    history = [method.train_step(batch) for _ in range(40)]
    for key in watch:
        first, last = history[0][key], sum(h[key] for h in history[-5:]) / 5
        # measured (seed 0, 40 steps): the mean of the last 5 is 0.30-0.51 of the first value (cyclegan cycle_A
        # 0.30, cycle_B 0.42, idt_B 0.37; spyncogan identity 0.47, cycle_BAB 0.51, cycle_ABA 0.38)
        assert last < 0.7 * first, (key, first, last)


def test_colorize_is_rgb_in_range_and_stochastic_colorize_is_deterministic():
    gray = unpaired_batch(3).gray
    for name in ("cyclegan", "col-cycle", "spyncogan", "cyclegan-capsule"):
        out = build(name).colorize(gray)
        assert out.shape == (3, 3, 32, 32) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    m = build("cyclegan-stochastic")
    m.train_step(unpaired_batch(4))
    rng = torch.get_rng_state()
    assert torch.equal(m.colorize(gray), m.colorize(gray))
    s1, s2 = m.sample(gray, 3, seed=5), m.sample(gray, 3, seed=5)
    assert s1.shape == (3, 3, 3, 32, 32) and torch.equal(s1, s2)  # the seed fixes the draws
    assert not torch.equal(s1[0], s1[1])  # different draws differ (CIN maps the noise)
    assert not torch.equal(m.sample(gray, 3, seed=6), s1)
    assert torch.equal(torch.get_rng_state(), rng)
    with pytest.raises(TypeError, match="deterministic"):
        build("cyclegan").sample(gray, 2, seed=0)


def test_seeds_make_unpaired_training_reproducible():
    batches = [unpaired_batch(4, seed=s) for s in range(3)]
    runs = []
    for seed in (3, 3, 4):
        m = build("spyncogan", seed)
        runs.append(([m.train_step(b) for b in batches], m.colorize_output(batches[0].gray, "G2")))
    assert runs[0][0] == runs[1][0] and torch.equal(runs[0][1], runs[1][1])
    assert not torch.equal(runs[0][1], runs[2][1])


def test_ht_stays_fixed_and_outside_the_optimizers():
    m = build("spyncogan")
    for _ in range(3):
        m.train_step(unpaired_batch(4))
    assert torch.equal(m.H_t.weight.flatten(), torch.tensor([0.299, 0.587, 0.114]))
    assert not m.H_t.weight.requires_grad and list(m.H_t.parameters()) == []
    optimized = {id(p) for opt in m.optimizers().values() for g in opt.param_groups for p in g["params"]}
    assert id(m.H_t.weight) not in optimized
    assert optimized == {id(p) for net in m.networks().values() for p in net.parameters()}


def test_pyramid_outputs_and_identity_loss_weights():
    batch = unpaired_batch(4)
    for name, used in (("spyncogan", 3), ("spyncogan-l1", 1)):
        m = build(name, pool_size=0)
        assert m.output_names == ("G1", "G2", "G3")
        outs = [m.colorize_output(batch.gray, o) for o in m.output_names]
        assert torch.equal(outs[0], m.colorize(batch.gray))
        assert all(o.shape == (4, 3, 32, 32) and 0 <= o.min() and o.max() <= 1 for o in outs)
        assert not torch.equal(outs[1], outs[2])
        with pytest.raises(ValueError, match="no output 'G4'"):
            m.colorize_output(batch.gray, "G4")
        # Eq. 4: identity = Σ_{i<=used} α_i |G_i(J) - J|₁, computed before the step updates G
        J = batch.rgb * 2 - 1
        with torch.no_grad():
            expected = sum(a * F.l1_loss(g, J).item() for a, g in list(zip((5, 3, 2), m.gen(J, 3)))[:used])
        assert m.train_step(batch)["identity"] == pytest.approx(expected, rel=1e-5)
    assert "contours" not in build("spyncogan-nocontours").train_step(batch)


def test_grey_conventions():
    with pytest.raises(ValueError, match="SpyncoGan needs grey_convention 'bt601'.*H_t"):
        METHODS.get("spyncogan").make_config("quick", grey_convention="cie-l")
    m = build("cyclegan", grey_convention="cie-l")  # CycleGAN assumes nothing about how the grey was made
    batch = unpaired_batch(4)
    batch.grey_convention = "cie-l"
    assert all(math.isfinite(v) for v in m.train_step(batch).values())
    with pytest.raises(ValueError, match="grey_channels=1 needs lambda_identity=0"):
        build("cyclegan", grey_channels=1, output_skip=False, lambda_identity=0.5)
    one = build("cyclegan", grey_channels=1, lambda_identity=0.0, output_skip=False)
    assert one.G.in_channels == 1 and "idt_A" not in one.train_step(unpaired_batch(4))
    with pytest.raises(ValueError, match="needs discriminator='capsule'"):
        build("cyclegan-capsule", discriminator="patchgan")
    with pytest.raises(ValueError, match="needs noise_dim >= 1"):
        build("cyclegan-stochastic", noise_dim=0)


def test_add_to_input_is_tanh_of_the_summed_preactivations():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 5, 5, generator=g, dtype=torch.float64) * 1.9 - 0.95
    z = torch.randn(2, 3, 5, 5, generator=g, dtype=torch.float64) * 2
    torch.testing.assert_close(add_to_input(x, torch.tanh(z)), torch.tanh(torch.atanh(x) + z), rtol=0, atol=1e-12)
    assert torch.equal(add_to_input(x, torch.zeros_like(x)), x)  # a zero pre-activation returns the input
    ends = torch.tensor([-1.0, 1.0]).view(1, 1, 1, 2)
    out = add_to_input(ends, torch.tensor([1.0, -1.0]).view(1, 1, 1, 2).requires_grad_())
    assert out.abs().max() <= 1 and torch.isfinite(out).all()  # saturated inputs and outputs stay finite
    out.sum().backward()
    one = add_to_input(x[:, :1], torch.tanh(z))  # a grey input is broadcast over the colour channels
    torch.testing.assert_close(one, torch.tanh(torch.atanh(x[:, :1]) + z), rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="1-channel input"):
        add_to_input(x[:, :2], torch.tanh(z))


def test_output_skip_is_off_in_paper_presets_and_an_untrained_generator_returns_its_input():
    for name in UNPAIRED:
        assert METHODS.get(name).make_config("paper").output_skip is False, name
        assert METHODS.get(name).make_config("quick").output_skip is True, name
    gray = unpaired_batch(3).gray
    for name in ("cyclegan", "cyclegan-stochastic", "cyclegan-capsule", "col-cycle", "spyncogan"):
        m = build(name)
        last = [mod for mod in m.G.modules() if isinstance(mod, torch.nn.Conv2d)][-1]  # the conv before the Tanh
        with torch.no_grad():
            last.weight.zero_()
            last.bias.zero_()
        # the input kept within 1e-3 of ±1 (INPUT_SKIP_EPS): at most 5e-4 from the grey on [0, 1]
        torch.testing.assert_close(m.colorize(gray), gray.expand(-1, 3, -1, -1), rtol=0, atol=5.1e-4)
    coarse = m.colorize_output(gray, "G3")  # spyncogan: G3 is the input at 1/4 scale, upsampled
    want = F.interpolate(F.avg_pool2d(gray, 4), scale_factor=4, mode="nearest").expand(-1, 3, -1, -1)
    torch.testing.assert_close(coarse, want, rtol=0, atol=5.1e-4)
    with pytest.raises(ValueError, match="output_skip needs grey_channels=3"):
        build("cyclegan", grey_channels=1, lambda_identity=0.0)


# --- the runner end to end ------------------------------------------------------------------------------------------
def test_runner_gives_pyramid_rows_and_diversity(tmp_path):
    from colorbench.results.rundir import load_records
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("spyncogan", "cyclegan-stochastic"), dataset="shapes",
                   dataset_options=(("n_test", 16), ("n_train", 32), ("seed", 0), ("size", 32)), epochs=1,
                   progress=False, n_samples=4, eval_batch_size=16, all_outputs=True, diversity_images=8,
                   metrics=("mse", "ssim"))
    records = {r.method: r for r in load_records(run(spec, out=tmp_path, log=lambda s: None))}
    assert {"spyncogan", "spyncogan@G1", "spyncogan@G2", "spyncogan@G3", "cyclegan-stochastic"} <= set(records)
    for name, rec in records.items():
        assert rec.status == "ok", (name, rec.error)
        assert math.isfinite(rec.metrics["mse"].value) and math.isfinite(rec.metrics["ssim"].value)
    assert records["spyncogan"].config["unpaired_protocol"] == "disjoint"
    # G1 is what colorize gives: the same numbers as the method's own row
    assert records["spyncogan@G1"].metrics["mse"].value == pytest.approx(records["spyncogan"].metrics["mse"].value)
    assert records["spyncogan@G2"].metrics["mse"].value != records["spyncogan@G1"].metrics["mse"].value
    diversity = records["cyclegan-stochastic"].metrics["diversity"]
    assert diversity.value is not None and diversity.value >= 0 and diversity.params["n_samples"] == 4
    assert "diversity" not in records["spyncogan"].metrics


@pytest.mark.slow
def test_quick_presets_keep_their_inputs_structure_on_photos(tmp_path):
    """Issue 11: the old quick presets (tanh(z) outputs) gave structure-less output on the built-in photos
    (luma SSIM 0.40-0.50 after the full 6 epochs); with output_skip the rows clear the leaderboard's threshold.
    Kept small (264 training patches, 2 epochs); the full default-run figures are in the method cards."""
    from colorbench.results.rundir import load_records
    from colorbench.reports.tables import LUMA_SSIM_THRESHOLD, structure_lost
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("cyclegan", "col-cycle", "spyncogan"), dataset="photos",
                   dataset_options=(("train_per_photo", 24), ("test_per_photo", 8)), epochs=2, progress=False,
                   n_samples=2, metrics=("psnr", "luma_ssim"))
    records = {r.method: r for r in load_records(run(spec, out=tmp_path, log=lambda s: None))}
    for name in spec.methods:
        rec = records[name]
        assert rec.status == "ok", (name, rec.error)
        assert rec.metrics["luma_ssim"].value > LUMA_SSIM_THRESHOLD and not structure_lost(rec), name
        assert rec.metrics["psnr"].value > 18, name  # the old presets: 11.6-12.5 dB
