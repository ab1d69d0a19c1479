"""The published-numbers table and the ``ddcolor-table1`` recipe (issue 26): what a recipe needs is listed before
it runs, the stages carry their protocols, and the quick scale runs end to end with a fixture checkpoint."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from colorbench.commands import cli
from colorbench.core import weights as W
from colorbench.engine.protocols import PROTOCOLS
from colorbench.engine.published import DDCOLOR_SETS, PUBLISHED_TABLES, missing_inputs, table_rows
from colorbench.engine.recipes import get, load_paper_values, run_recipe


@pytest.fixture
def empty_hub(monkeypatch, tmp_path):
    monkeypatch.setattr(W, "_STAND_INS", {})
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub" / "checkpoints"


def test_table_covers_the_six_papers_and_enters_no_unverified_value():
    papers = " ".join(t.paper for t in PUBLISHED_TABLES)
    for name in ("DDColor", "CT2", "BigColor", "ColorFormer", "ColTran", "DISCO"):
        assert name in papers
    assert all(t.values_status.startswith("no value entered") for t in PUBLISHED_TABLES)
    assert load_paper_values()["ddcolor-table1"]["rows"] == []  # nothing pinned without its table and page
    for row in table_rows():  # every protocol named first in a row exists (DISCO: none pinned, said so)
        first = row["protocol"].split(",")[0].split(" ")[0]
        assert first in PROTOCOLS or row["protocol"].startswith("no protocol pinned")


def test_ddcolor_recipe_stages_use_each_sets_protocol_and_both_settings():
    recipe = get("ddcolor-table1")
    stages = recipe.scale("paper").stages
    assert {s.protocol for s in stages} == {p for _, p, _ in DDCOLOR_SETS}
    assert {s.preset for s in stages} == {"paper", "paper-512"} and len(stages) == 2 * len(DDCOLOR_SETS)
    spec = stages[0].spec(0, data_root="/data")
    assert spec.protocol == stages[0].protocol and dict(spec.dataset_options)["data_root"] == "/data"


def test_paper_scale_offline_lists_the_missing_files_and_does_not_run(empty_hub, capsys, tmp_path):
    lines = missing_inputs(get("ddcolor-table1"), "paper", None)
    text = "\n".join(lines)
    assert "ddcolor_paper.pth" in text and "colorbench weights fetch ddcolor-paper" in text
    assert "inception_v3_google-1a9a5a14.pth" in text and "no --data-root" in text
    assert "no folder" in "\n".join(missing_inputs(get("ddcolor-table1"), "paper", str(tmp_path)))
    assert cli.main(["reproduce", "ddcolor-table1", "--scale", "paper", "--out", str(tmp_path / "r")]) == 1
    assert "needs inputs that are not on this machine" in capsys.readouterr().out
    assert not (tmp_path / "r").exists()


def test_quick_scale_runs_with_a_fixture_checkpoint(ddcolor_weights_stand_in, tmp_path):
    out = run_recipe("ddcolor-table1", "quick", tmp_path / "q", log=lambda s: None)
    df = pd.read_csv(out / "comparison.csv")
    psnr = df[df["metric"] == "PSNR"]
    assert len(psnr) == 2 * len(DDCOLOR_SETS) and psnr["measured"].notna().all()
    assert df[df["metric"] == "FID"]["measured"].isna().all()  # not measured at the quick scale, and said so
    assert df["paper_value"].isna().all()
