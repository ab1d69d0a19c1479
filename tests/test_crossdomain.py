"""Cross-domain classification (colorbench.engine.crossdomain) and its chord diagram, on tiny built-in data."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from colorbench.core.grey import Grey
from colorbench.commands import cli
from colorbench.engine import crossdomain
from colorbench.core.color import rgb_to_grey
from colorbench.engine.crossdomain import (
    METRIC_KEY,
    REAL_COLOR,
    REAL_GRAY,
    accuracy,
    alexnet_bn,
    classifier_config,
    cross_domain_matrix,
    list_domains,
    train_classifier,
)
from colorbench.datasets import DATASETS
from colorbench.results.rundir import load_records
from colorbench.results.rundir import CellEntry, RunDir
from colorbench.reports.chord import plot_chord, top_quarter_mask
from colorbench.engine.spec import RunSpec
from colorbench.engine.grid import run

TINY = (("n_test", 32), ("n_train", 64), ("seed", 0), ("size", 32))


def _grey_u8(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb_to_grey(rgb.float() / 255, Grey.BT601) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def cd_run(tmp_path_factory):
    """A tiny run with --cross-domain and --eval-every: gray + unet-l1, 2 epochs, shapes 64/32 images."""
    out = tmp_path_factory.mktemp("cdrun")
    spec = RunSpec(methods=("gray", "unet-l1"), dataset="shapes", dataset_options=TINY, epochs=2, eval_every=1,
                   progress=False, n_samples=4, eval_batch_size=32, cross_domain=True)
    run(spec, out=out, log=lambda s: None)
    return out


# --- the sanity check of the paper's premise ----------------------------------------------------------------------


def test_colour_trained_classifier_beats_grey_trained_on_real_colour():
    """On `shapes` the label is the class covering most pixels, and classes differ mostly by hue, so a classifier
    trained on real colour must beat one trained on real grey when both are tested on real colour. Measured at
    the quick preset (seeds 0, 1, 2 gave 93.5/34.0, 95.5/57.0, 93.5/36.0 %); the margin asked is 25 points."""
    data = DATASETS.get("shapes")(n_train=400, n_test=200, size=32, seed=0).load()
    cfg = classifier_config("quick")
    k = len(data.train.class_names)
    colour = train_classifier(data.train.rgb, data.train.labels, k, cfg, seed=0)
    grey = train_classifier(_grey_u8(data.train.rgb), data.train.labels, k, cfg, seed=0)
    acc_colour = accuracy(colour, data.test.rgb, data.test.labels, cfg)
    acc_grey = accuracy(grey, data.test.rgb, data.test.labels, cfg)
    chance = 100 * np.bincount(data.test.labels.numpy()).max() / len(data.test)
    assert acc_colour > chance + 30, (acc_colour, chance)
    assert acc_colour > acc_grey + 25, (acc_colour, acc_grey)


# --- a run with --cross-domain ---------------------------------------------------------------------------------


def test_domains_are_saved_compactly_with_their_metadata(cd_run):
    names = [d.name for d in list_domains(cd_run, ["gray", "unet-l1"])]
    assert names == [REAL_COLOR, REAL_GRAY, "gray", "unet-l1@e1", "unet-l1"]
    data = DATASETS.get("shapes")(**dict(TINY)).load()
    doms = {d.name: d for d in list_domains(cd_run)}
    assert torch.equal(doms[REAL_COLOR].load("train"), data.train.rgb)
    assert torch.equal(doms[REAL_GRAY].load("test"), _grey_u8(data.test.rgb))  # the run's bt601 grey, 1 channel
    for name in ("gray", "unet-l1@e1", "unet-l1"):
        for split, n in (("train", 64), ("test", 32)):
            x = doms[name].load(split)
            assert x.dtype == torch.uint8 and tuple(x.shape) == (n, 3, 32, 32), (name, split)
    # The grey baseline's colorization is the grey input on all three channels: the real-gray set again.
    grey = doms[REAL_GRAY].load("train").expand(-1, 3, -1, -1)
    assert (doms["gray"].load("train").int() - grey.int()).abs().max() <= 1
    assert doms["unet-l1@e1"].epoch == 1 and not doms["unet-l1@e1"].final and doms["unet-l1"].epoch == 2
    assert doms["unet-l1@e1"].label == "unet-l1 [1]" and doms[REAL_GRAY].label == "R-G"
    assert not (doms[REAL_COLOR].load("test") == doms["unet-l1"].load("test")).all()


def test_matrix_is_complete_and_in_range_and_reaches_records_and_report(cd_run):
    acc = pd.read_csv(cd_run / "cross_domain" / "accuracy.csv", index_col="train")
    names = [REAL_COLOR, REAL_GRAY, "gray", "unet-l1@e1", "unet-l1"]
    assert list(acc.index) == names and list(acc.columns) == names
    values = acc.to_numpy(float)
    assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 100
    assert np.allclose(values * 32 / 100, np.round(values * 32 / 100))  # whole images out of 32

    summary = pd.read_csv(cd_run / "cross_domain" / "summary.csv").set_index("train")
    assert np.allclose(summary.loc[names, "avg"], acc.mean(axis=1))
    assert np.allclose(summary.loc[names, "own"], np.diag(values))

    records = {r.method: r for r in load_records(cd_run)}
    for method in ("gray", "unet-l1"):
        mv = records[method].metrics[METRIC_KEY]
        assert mv.value == pytest.approx(acc.loc[method].mean()) and mv.higher_is_better
        assert mv.params["classifier_preset"] == "quick" and mv.params["n_test_sets"] == 5
    assert [p["metrics"][METRIC_KEY] for p in records["unet-l1"].curve] == pytest.approx(
        [acc.loc["unet-l1@e1"].mean(), acc.loc["unet-l1"].mean()])

    results = pd.read_csv(cd_run / "results.csv").set_index("method")
    assert results.loc["unet-l1", METRIC_KEY] == pytest.approx(acc.loc["unet-l1"].mean())
    md = (cd_run / "leaderboard.md").read_text()
    assert "Cross-domain acc. (%) ↑" in md and "## Cross-domain classification" in md
    assert f"| R-C | / | {acc.loc[REAL_COLOR].mean():.1f}" in md.replace("**", "")
    chord = cd_run / "figures" / "cross_domain_chord.png"
    assert chord.stat().st_size > 10_000 and "(figures/cross_domain_chord.png)" in md
    info = json.loads((cd_run / "run.json").read_text())
    assert info["spec"]["cross_domain"] and info["timings"]["cross_domain_s"] > 0


def test_same_seed_same_matrix_and_cli_recomputes(cd_run, tmp_path, capsys):
    cfg = classifier_config("quick", epochs=1)
    a = cross_domain_matrix(cd_run, cfg, seed=3, progress=False, log=lambda s: None)
    b = cross_domain_matrix(cd_run, cfg, seed=3, progress=False, log=lambda s: None)
    pd.testing.assert_frame_equal(a.accuracy, b.accuracy)
    c = cross_domain_matrix(cd_run, cfg, seed=4, progress=False, log=lambda s: None)
    assert not a.accuracy.equals(c.accuracy)  # the seed does reach the classifiers

    # Retrained from the saved sets by the CLI with the same settings: the same numbers, now in the records.
    copy = shutil.copytree(cd_run, tmp_path / "copy")  # leave the shared run as the other tests expect it
    # A row with no saved image set (e.g. a record added by hand): its value is missing, with why.
    extra = {r.method: r for r in load_records(copy)}["unet-l1"]
    extra.method = "unet-l1@alt"
    RunDir(copy).write_cell(CellEntry(key="hand-made", dataset="shapes", method="unet-l1@alt", preset="quick",
                                      seed=0), extra)
    assert cli.main(["cross-domain", str(copy), "--epochs", "1", "--seed", "3", "--no-progress"]) == 0
    assert "cross-domain results written" in capsys.readouterr().out
    saved = pd.read_csv(copy / "cross_domain" / "accuracy.csv", index_col="train")
    pd.testing.assert_frame_equal(saved, a.accuracy, check_names=False)
    rec = {r.method: r for r in load_records(copy)}["unet-l1"]
    assert rec.metrics[METRIC_KEY].params["epochs"] == 1 and rec.metrics[METRIC_KEY].params["seed"] == 3
    alt = {r.method: r for r in load_records(copy)}["unet-l1@alt"].metrics[METRIC_KEY]
    assert alt.value is None and "no colorized image set" in alt.missing_reason
    assert "no colorized image set" in (copy / "leaderboard.md").read_text()


def test_cli_errors_on_a_run_without_saved_sets(tmp_path, capsys):
    out = tmp_path / "plain"
    run(RunSpec(methods=("gray",), dataset="shapes", dataset_options=TINY, progress=False, n_samples=2),
        out=out, log=lambda s: None)
    assert cli.main(["cross-domain", str(out)]) == 2
    assert "made without --cross-domain" in capsys.readouterr().err
    assert cli.main(["cross-domain", str(tmp_path / "nowhere")]) == 2
    with pytest.raises(ValueError, match="unknown classifier preset 'big'"):
        RunSpec(cross_domain=True, cross_domain_classifier="big")


# --- classifiers ---------------------------------------------------------------------------------------------------


def test_presets_follow_the_paper():
    alex = classifier_config("paper", "cifar10")
    vgg = classifier_config("paper", "ucmerced")
    assert (alex.arch, alex.epochs, alex.input_size, alex.lr) == ("alexnet-bn", 20, 256, 1e-4)
    assert (vgg.arch, vgg.epochs, vgg.input_size, vgg.lr) == ("vgg16", 40, 256, 1e-4)
    assert alex.milestones == pytest.approx((1 / 3, 2 / 3)) and alex.gamma == 0.1
    assert classifier_config("quick", epochs=7).epochs == 7
    with pytest.raises(ValueError, match="unknown classifier architecture"):
        crossdomain.ClassifierConfig(preset="x", arch="resnet", epochs=1, batch_size=1, lr=1.0)


def test_alexnet_bn_has_a_batch_norm_after_every_conv_and_hidden_linear():
    net = alexnet_bn(10)
    layers = list(net.features) + list(net.classifier)
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.BatchNorm2d) and layers[i + 1].num_features == layer.out_channels
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert len(linears) == 3 and sum(isinstance(m, nn.BatchNorm1d) for m in net.classifier) == 2
    assert linears[-1].out_features == 10


def test_paper_alexnet_trains_on_resized_inputs():
    cfg = classifier_config("paper-alexnet", epochs=1, batch_size=2, eval_batch_size=4)
    x = torch.randint(0, 256, (4, 1, 16, 16), dtype=torch.uint8)  # grey: replicated to 3 channels
    y = torch.arange(4) % 2
    model = train_classifier(x, y, 2, cfg, seed=0)
    assert 0 <= accuracy(model, x, y, cfg) <= 100
    assert crossdomain._prepare(x[:2], cfg, torch.device("cpu")).shape == (2, 3, 256, 256)


def test_bad_inputs_give_clear_errors(cd_run, tmp_path):
    cfg = classifier_config("quick")
    model = crossdomain.SmallCNN(3)
    with pytest.raises(ValueError, match="uint8 tensor"):
        accuracy(model, torch.rand(4, 3, 8, 8), torch.zeros(4, dtype=torch.long), cfg)
    with pytest.raises(ValueError, match="labels must have shape"):
        train_classifier(torch.zeros(4, 3, 8, 8, dtype=torch.uint8), torch.zeros(3, dtype=torch.long), 3, cfg)
    with pytest.raises(ValueError, match="cannot make a domain directory"):
        crossdomain.domain_name("a/b")
    with pytest.raises(ValueError, match="clashes"):
        crossdomain.domain_name(REAL_COLOR)
    acc = pd.read_csv(cd_run / "cross_domain" / "accuracy.csv", index_col="train")
    with pytest.raises(ValueError, match="square"):
        plot_chord(acc.iloc[:, :-1], tmp_path / "c.png")
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        plot_chord(acc + 101, tmp_path / "c.png")


# --- chord diagram -----------------------------------------------------------------------------------------------


def test_top_quarter_mask_counts_and_ties():
    acc = pd.DataFrame(np.arange(16, dtype=float).reshape(4, 4), index=list("abcd"), columns=list("abcd"))
    mask = top_quarter_mask(acc)
    assert mask.to_numpy().sum() == 4 and mask.loc["d"].all()
    acc.loc["c", "d"] = 15.0  # a tie with the cut value is drawn too
    acc.loc["d", "c"] = 12.0
    assert top_quarter_mask(acc).to_numpy().sum() == 5


def test_chord_colours_only_the_top_quarter(tmp_path):
    """Two sets; only one cell is in the top quarter (ceil(4/4) = 1): only its training set's colour appears."""
    acc = pd.DataFrame([[90.0, 20.0], [30.0, 40.0]], index=["real-color", "m"], columns=["real-color", "m"])
    path = plot_chord(acc, tmp_path / "c.png", {"real-color": "R-C"})
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(int)
    blue, orange = np.array([31, 119, 180]), np.array([255, 127, 14])  # tab10: the arcs of R-C and m
    near = lambda c: (np.abs(rgb - c).sum(-1) < 40).sum()  # noqa: E731
    # Arcs are opaque; chords are drawn at alpha 0.75 over white, so a coloured chord is a paler shade.
    pale = lambda c: np.round(0.75 * c + 0.25 * 255)  # noqa: E731
    assert near(blue) > 2000 and near(orange) > 2000  # both arcs
    assert near(pale(blue)) > 2000  # R-C's own chord (90 %) in colour
    assert near(pale(orange)) < 50  # m's chords are grey


def test_alternative_outputs_get_their_own_image_sets(tmp_path):
    """--all-outputs with --cross-domain: each pyramid output of SpyncoGan is a training set and a test set of
    its own, and its row gets its own cross-domain average."""
    spec = RunSpec(methods=("spyncogan",), dataset="shapes", dataset_options=(("n_test", 16), ("n_train", 32),
                   ("seed", 0), ("size", 32)), epochs=1, progress=False, n_samples=2, eval_batch_size=16,
                   all_outputs=True, cross_domain=True, metrics=("mse",))
    out = run(spec, out=tmp_path, log=lambda s: None)
    names = [d.name for d in list_domains(out)]
    assert names[2:] == ["spyncogan", "spyncogan@G1", "spyncogan@G2", "spyncogan@G3"]
    records = {r.method: r for r in load_records(out)}
    for name in ("spyncogan", "spyncogan@G2", "spyncogan@G3"):
        value = records[name].metrics[METRIC_KEY]
        assert value.value is not None and 0.0 <= value.value <= 100.0, name
    g1, g2 = (np.load(out / "domains" / f"spyncogan@{g}" / "test.npy") for g in ("G1", "G2"))
    assert g1.dtype == g2.dtype == np.uint8 and g1.shape == g2.shape == (16, 3, 32, 32)
    assert not np.array_equal(g1, g2)  # the outputs' own colorizations, not copies of the main one
    assert np.array_equal(g1, np.load(out / "domains" / "spyncogan" / "test.npy"))  # G1 is what colorize gives
