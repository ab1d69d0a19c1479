"""The runner end to end on tiny built-in data: records, failed rows, curves, CLI."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from colorbench.core.grey import Grey
from colorbench.commands import cli
from colorbench.methods import METHODS
from colorbench.results.records import RunRecord
from colorbench.results.rundir import load_records
from colorbench.engine.spec import RunSpec
from colorbench.core.stats import bootstrap_ci
from colorbench.engine.grid import run

TINY = (("n_test", 24), ("n_train", 48), ("seed", 0), ("size", 32))


def tiny_spec(**kw) -> RunSpec:
    base = dict(methods=("gray", "unet-l1"), dataset="shapes", dataset_options=TINY, epochs=1, progress=False,
                n_samples=4, eval_batch_size=16)
    base.update(kw)
    return RunSpec(**base)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    run(tiny_spec(eval_every=1, epochs=2), out=out, log=lambda s: None)
    return out


def test_run_writes_records_results_and_report(tiny_run):
    records = {r.method: r for r in load_records(tiny_run)}
    assert set(records) == {"gray", "unet-l1"}
    for rec in records.values():
        assert rec.status == "ok", rec.error
        assert rec.grey_convention == "bt601" and rec.dataset["name"] == "shapes"
        assert rec.metrics["psnr"].params  # conventions recorded with the value
        assert rec.metrics["lpips"].value is None and rec.metrics["lpips"].missing_reason  # no weights offline
        for key in ("mse", "psnr", "ssim", "luma_ssim", "kl_a", "kl_b", "js_a", "js_b"):
            assert math.isfinite(rec.metrics[key].value), key
        assert rec.metrics["luma_ssim"].params["grey"] == "bt601"  # the run's convention, recorded with the value
    assert records["gray"].metrics["luma_ssim"].value == pytest.approx(1.0, abs=1e-6)  # its output's luma is its input
    assert records["unet-l1"].parameters["G"] > 0 and len(records["unet-l1"].losses) == 2
    assert [p["epoch"] for p in records["unet-l1"].curve] == [1, 2]
    assert records["gray"].losses == []  # nothing to train
    df = pd.read_csv(tiny_run / "results.csv")
    assert list(df.columns[:12]) == ["method", "status", "error", "mse", "psnr", "ssim", "luma_ssim", "lpips", "kl_a",
                                     "kl_b", "js_a", "js_b"]
    assert df.set_index("method").loc["gray", "psnr"] == pytest.approx(records["gray"].metrics["psnr"].value)
    assert (tiny_run / "leaderboard.md").read_text().count("|") > 10
    for fig in ("ab_histograms.png", "samples.png", "curves.png"):
        assert (tiny_run / "figures" / fig).stat().st_size > 1000
    run_info = json.loads((tiny_run / "run.json").read_text())
    assert run_info["timings"]["wall_s"] > 0 and run_info["spec"]["dataset"] == "shapes"


def test_gray_baseline_values_match_a_direct_computation(tiny_run):
    """The grey row is checkable by hand: MSE between the test set and its own BT.601 grey."""
    from colorbench.datasets import DATASETS
    from colorbench.core.color import grey_to_rgb, rgb_to_grey

    test = DATASETS.get("shapes")(**dict(TINY)).load().test
    rgb = test.rgb.double() / 255
    expected = ((grey_to_rgb(rgb_to_grey(rgb, Grey.BT601)) - rgb) * 255).pow(2).mean(dim=(1, 2, 3)).mean().item()
    rec = {r.method: r for r in load_records(tiny_run)}["gray"]
    assert rec.metrics["mse"].value == pytest.approx(expected, rel=1e-4)


def test_same_seed_same_numbers(tmp_path):
    a = run(tiny_spec(methods=("unet-l1",)), out=tmp_path / "a", log=lambda s: None)
    b = run(tiny_spec(methods=("unet-l1",)), out=tmp_path / "b", log=lambda s: None)
    ra, rb = load_records(a)[0], load_records(b)[0]
    assert {k: v.value for k, v in ra.metrics.items()} == {k: v.value for k, v in rb.metrics.items()}


def test_raising_and_diverging_methods_become_failed_rows(tmp_path, monkeypatch):
    cls = METHODS.get("unet-l1")

    def nan_step(self, batch):
        return {"G_L1": float("nan")}

    monkeypatch.setattr(cls, "train_step", nan_step)
    out = run(tiny_spec(), out=tmp_path, log=lambda s: None)
    recs = {r.method: r for r in load_records(out)}
    assert recs["unet-l1"].status == "failed" and "diverged" in recs["unet-l1"].error
    assert recs["gray"].status == "ok"  # the other method still ran
    df = pd.read_csv(out / "results.csv").set_index("method")
    assert df.loc["unet-l1", "status"] == "failed" and "diverged" in df.loc["unet-l1", "error"]

    def broken_colorize(self, gray):
        raise RuntimeError("boom")

    monkeypatch.setattr(METHODS.get("gray"), "colorize", broken_colorize)
    out2 = run(tiny_spec(methods=("gray",)), out=tmp_path / "2", log=lambda s: None)
    rec = load_records(out2)[0]
    assert rec.status == "failed" and rec.error == "RuntimeError: boom" and "broken_colorize" in rec.traceback


def test_nan_output_is_a_failed_row(tmp_path, monkeypatch):
    monkeypatch.setattr(METHODS.get("gray"), "colorize", lambda self, g: torch.full((g.shape[0], 3, *g.shape[2:]), float("nan")))
    rec = load_records(run(tiny_spec(methods=("gray",)), out=tmp_path, log=lambda s: None))[0]
    assert rec.status == "failed" and "non-finite" in rec.error


def test_unknown_names_fail_before_running(tmp_path):
    with pytest.raises(KeyError, match="Did you mean: pix2pix"):
        run(tiny_spec(methods=("pix2px",)), out=tmp_path, log=lambda s: None)
    with pytest.raises(KeyError, match="Unknown metric"):
        tiny_spec(metrics=("psnrr",))
    with pytest.raises(ValueError, match="grey convention"):
        tiny_spec(grey_convention="rec709")


def test_bootstrap_ci_only_for_means():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    lo, hi = bootstrap_ci(v, 2.5, seed=0)
    assert 1.0 <= lo < 2.5 < hi <= 4.0
    assert bootstrap_ci(v, 3.0, seed=0) is None  # reported value is not the per-image mean (e.g. global PSNR)
    assert bootstrap_ci(torch.tensor([1.0, float("inf")]), float("inf"), seed=0) is None


def test_cli_run_list_describe(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = cli.main(["run", "--methods", "gray", "--dataset", "shapes", "--dataset-option", "n_train=16",
                   "--dataset-option", "n_test=8", "--image-size", "32", "--out", str(out), "--no-progress",
                   "--grey", "cie-l"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "wall time:" in text and str(out.resolve()) in text
    rec = RunRecord.load(out / "cells" / "shapes__gray__quick__s0" / "record.json")
    assert rec.grey_convention == "cie-l" and rec.dataset["n_train"] == 16
    assert np.load(out / "arrays" / "samples_shapes.npz")["gray"].dtype == np.uint8

    for what in ("methods", "datasets", "metrics", "presets"):
        assert cli.main(["list", what, "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        assert rows and all("name" in r for r in rows)
    assert {r["name"] for r in json.loads((cli.main(["list", "methods", "--json"]), capsys.readouterr().out)[1])} == set(METHODS.names())

    assert cli.main(["describe", "pix2pix", "--preset", "quick", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["card"]["name"] == "pix2pix" and set(info["parameters"]) >= {"G", "D"}

    assert cli.main(["describe", "pix2px"]) == 2
    assert "Did you mean: pix2pix" in capsys.readouterr().err


def test_unpaired_domains_and_batches():
    from colorbench.datasets import DATASETS
    from colorbench.engine.data import training_batches, unpaired_domains

    a, b = unpaired_domains(10, "disjoint", seed=0)
    assert len(a) == len(b) == 5 and not set(a.tolist()) & set(b.tolist())
    a2, b2 = unpaired_domains(10, "shuffled", seed=0)
    assert a2.tolist() == b2.tolist() == list(range(10))
    train = DATASETS.get("shapes")(**dict(TINY)).load().train
    spec = tiny_spec()
    batches = list(training_batches(train, False, 8, torch.Generator().manual_seed(0), torch.device("cpu"), spec))
    assert sum(len(x) for x in batches) == len(train) // 2
    for batch in batches:
        assert not batch.paired and not set(batch.ids) & set(batch.rgb_ids)  # grey and colour from different images
    a, b = unpaired_domains(len(train), "disjoint", 0)
    assert {i for x in batches for i in x.ids} == {train.ids[i] for i in a.tolist()}
    assert {i for x in batches for i in x.rgb_ids} == {train.ids[i] for i in b.tolist()}
    with pytest.raises(ValueError, match="unpaired protocol"):
        tiny_spec(unpaired_protocol="paired")


def test_run_directory_layout_per_image_and_predictions(tiny_run):
    from colorbench.datasets import DATASETS
    from colorbench.results.rundir import RunDir

    rd = RunDir(tiny_run)
    cells = {c.method: c for c in rd.cells()}
    assert set(cells) == {"gray", "unet-l1"} and all(c.status == "ok" and c.key for c in cells.values())
    assert rd.info().spec["dataset"] == "shapes" and rd.info().status == "complete"
    test = DATASETS.get("shapes")(**dict(TINY)).load().test
    for name, cell in cells.items():
        rec = rd.record(cell)
        assert rec.key == cell.key and rec.dataset_name == "shapes" and rec.kind == "trained"
        frame = rd.per_image(cell)
        assert frame["id"].tolist() == list(test.ids)
        # per-image MSE values are the ones the reported mean was made of
        assert frame["mse"].mean() == pytest.approx(rec.metrics["mse"].value, rel=1e-9)
        pred, ids = rd.predictions(cell)  # 24 x 3 x 32 x 32 bytes: small, kept by default
        assert pred.shape == (24, 3, 32, 32) and pred.dtype == np.uint8 and ids == list(test.ids)
        assert rec.predictions_file == f"cells/{cell.dir}/predictions.npz"
    assert (tiny_run / "arrays" / "samples_shapes.npz").is_file()


def test_cell_counter_counts_without_progress_bars(tmp_path):
    """With progress bars off (a disabled tqdm bar counts nothing) the log still numbers the cells 1..n."""
    lines: list[str] = []
    run(tiny_spec(methods=("gray",), epochs=0), out=tmp_path, log=lines.append)
    counters = [ln.split("]")[0] + "]" for ln in lines if ln.startswith("[")]
    assert counters == ["[1/1]"]
    lines.clear()
    run(tiny_spec(methods=("gray", "unet-l1"), epochs=0), out=tmp_path / "two", log=lines.append)
    counters = [ln.split("]")[0] + "]" for ln in lines if ln.startswith("[")]
    assert counters == ["[1/2]", "[2/2]"]
