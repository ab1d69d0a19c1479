"""Recipes (colorbench reproduce): the seed papers' tables as runnable grids with the papers' numbers beside.

Every recipe runs at ``--scale quick`` here (on the built-in data; the longer ones are marked slow); the paper
scale's stages are checked to use paper presets at the image sizes those presets declare.
"""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from colorbench.engine import recipes
from colorbench.methods import METHODS
from colorbench.methods.presets import check_preset_image_size

NATIVE_SIZES = {"cifar10": 32}


def test_list_and_unknown_name(capsys):
    from colorbench.commands.cli import main

    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in ("spyncogan-table1", "spyncogan-table2", "spyncogan-table3", "spyncogan-fig6", "thesis-table3",
                 "thesis-table5", "cyclegan-report", "fabbri-losses"):
        assert name in out
    assert main(["reproduce", "thesis-tabel3"]) == 2
    assert "Did you mean: thesis-table3" in capsys.readouterr().err


def test_paper_values_are_data_with_their_source():
    values = recipes.load_paper_values()
    for name, recipe in recipes.RECIPES.items():
        pv = values[name]
        # a page or section wherever values are pinned (ddcolor-table1 pins none: colorbench.engine.published says why)
        assert pv["source"].startswith(recipe.seed_file) and ("p." in pv["source"] or "§" in pv["source"] or not pv["rows"])
        keys = {(m.dataset, m.row, m.metric, m.epoch) for m in recipe.measures}
        for row in pv["rows"]:
            assert "p." in row["where"] and isinstance(row["value"], (int, float)), row
            assert (row["dataset"], row["row"], row["metric"], row.get("epoch")) in keys, row  # measured beside it
    # spot checks against the papers' tables
    t1 = {(r["dataset"], r["row"], r["metric"]): r["value"] for r in values["spyncogan-table1"]["rows"]}
    assert t1[("Cezanne paintings", "L^1", "Avg. MSE")] == 92.9 and t1[("Cifar-10", "L^{1,2,3}", "Avg. SSIM (%)")] == 89
    t3 = {(r["row"], r["metric"]): r["value"] for r in values["thesis-table3"]["rows"]}
    assert t3[("pix2pix", "PSNR")] == 24.38 and t3[("Górriz et al.", "KL a")] == 11.36  # 001 Table 3, p. 26
    assert {r["value"] for r in values["thesis-table5"]["rows"]} == {24.20, 1.11}  # 001 Table 5, p. 30


def test_paper_scale_uses_paper_presets_at_their_sizes():
    for recipe in recipes.RECIPES.values():
        paper = recipe.scale("paper")
        for stage in paper.stages:
            assert "quick" not in stage.preset, (recipe.name, stage.name)
            size = dict(stage.dataset_options).get("size", NATIVE_SIZES.get(stage.dataset))
            for m in stage.methods:
                cls = METHODS.get(m)
                cls.make_config(stage.preset)  # every method has the stage's preset
                check_preset_image_size(cls, stage.preset, (size, size), stage.dataset)
            if recipe.name.startswith("spyncogan"):
                assert stage.unpaired_protocol == "shuffled"  # the paper's protocol: the whole split, both domains
        assert set(paper.stage_of.values()) <= {s.name for s in paper.stages}
        quick = recipe.scale("quick")
        assert set(quick.stage_of.values()) <= {s.name for s in quick.stages}
    t3 = recipes.get("spyncogan-table3").scale("paper")
    assert [s.cross_domain_classifier for s in t3.stages] == ["paper-vgg16-imagenet", "paper-alexnet"]
    assert recipes.get("spyncogan-table1").scale("paper").average_epochs == (10, 20, 30, 40, 50)  # 000 §6.2.1


def _check_report(out, recipe_name: str) -> pd.DataFrame:
    df = pd.read_csv(out / "comparison.csv")
    assert {"paper_value", "paper_source", "measured", "measured_dataset"} <= set(df.columns)
    md = (out / "comparison.md").read_text()
    assert "paper value" in md and "holds here" in md
    recipe = recipes.get(recipe_name)
    assert len(df) == len(recipe.measures)
    assert df["paper_value"].notna().sum() == len(recipe.paper_values()["rows"])
    return df


def _run(name: str, tmp_path):
    out = recipes.run_recipe(name, "quick", tmp_path / name, device="cpu", log=lambda s: None)
    return out, _check_report(out, name)


def test_thesis_table5_quick(tmp_path):
    out, df = _run("thesis-table5", tmp_path)
    assert df["measured"].notna().all()
    assert df.loc[df["metric"] == "PSNR", "measured"].between(5, 60).all()


@pytest.mark.slow
def test_thesis_table3_quick(tmp_path):
    out, df = _run("thesis-table3", tmp_path)
    featrec = df[df["measured_method"] == "gorriz-featrec"]
    assert featrec["measured"].isna().all() and featrec["note"].str.contains("vgg16-00b39a1b.pth").all()
    others = df[df["measured_method"] != "gorriz-featrec"]
    assert others["measured"].notna().all()


@pytest.mark.slow
def test_cyclegan_report_quick(tmp_path):
    out, df = _run("cyclegan-report", tmp_path)
    assert df["measured"].notna().all()
    div = df.loc[df["metric"].str.startswith("output diversity"), "measured"].iloc[0]
    assert math.isfinite(div) and div >= 0


@pytest.mark.slow
def test_fabbri_losses_quick(tmp_path):
    out, df = _run("fabbri-losses", tmp_path)
    assert df["measured"].notna().all()
    assert (df["measured_method"] == "l1l2:cgan-dcgan").any()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spyncogan-table1", "spyncogan-table2", "spyncogan-fig6"])
def test_spyncogan_curves_quick(name, tmp_path):
    out, df = _run(name, tmp_path)
    assert df["measured"].notna().all()
    assert df["measured_how"].str.startswith("curve-mean over epochs [1, 2, 3]").all()
    assert df["note"].isna().all()  # every row (G2, G3 included) has its own curve


@pytest.mark.slow
def test_spyncogan_table3_quick(tmp_path):
    out, df = _run("spyncogan-table3", tmp_path)
    assert df["measured"].notna().all()
    assert df["measured"].between(0, 100).all()


def test_a_recipe_over_two_seeds_on_process_workers_gives_seed_statistics_and_resumes(tmp_path):
    """Every stage and seed runs through the grid engine (here two process workers): the comparison gives the mean,
    the sample standard deviation and each seed's value, and running the recipe again keeps every finished cell."""
    out = tmp_path / "t5"
    lines: list[str] = []
    recipes.run_recipe("thesis-table5", "quick", out, device="cpu", seeds=(0, 1), log=lines.append,
                       executor="process", workers=2)
    df = _check_report(out, "thesis-table5")
    assert (df["measured_seeds"] == 2).all() and df["measured_sd"].notna().all()
    for row in df.itertuples():
        values = [row.measured_seed0, row.measured_seed1]
        assert row.measured == pytest.approx(sum(values) / 2, rel=1e-12)
        assert row.measured_sd == pytest.approx(abs(values[0] - values[1]) / math.sqrt(2), rel=1e-9)
    psnr = df[df["metric"] == "PSNR"]
    assert (psnr["measured_sd"] > 0).all()  # two seeds trained two different networks
    md = (out / "comparison.md").read_text()
    assert "mean ± sample standard deviation over 2 seeds" in md and "(2 seeds)" in md
    (claim,) = json.loads((out / "recipe.json").read_text())["claims"]  # unet-seg less colourful than unet-l1
    per_seed = claim["holds_per_seed"]
    assert set(per_seed) == {"0", "1"} and all(isinstance(v, bool) for v in per_seed.values())
    agree = [df.loc[(df["metric"] == "colourfulness") & (df["measured_method"] == "unet-seg"), f"measured_seed{s}"].item()
             < df.loc[(df["metric"] == "colourfulness") & (df["measured_method"] == "unet-l1"), f"measured_seed{s}"].item()
             for s in (0, 1)]
    assert list(per_seed.values()) == agree
    assert claim["holds"].endswith(f"(on the mean; in {sum(agree)} of 2 seeds)")
    info = json.loads((out / "stages" / "shapes" / "seed1" / "run.json").read_text())
    assert info["executor"]["name"] == "process" and info["executor"]["workers"] == 2
    before = (out / "comparison.csv").read_text()
    again: list[str] = []
    recipes.run_recipe("thesis-table5", "quick", out, device="cpu", seeds=(0, 1), log=again.append)
    assert sum("skipped (done)" in s for s in again) == 4  # 2 methods x 2 seeds, nothing trained again
    assert (out / "comparison.csv").read_text() == before
    with pytest.raises(TypeError, match="unknown engine option"):
        recipes.run_recipe("thesis-table5", "quick", out, device="cpu", threads=3)
