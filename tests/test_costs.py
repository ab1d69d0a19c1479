"""The order in which a pool starts cells: longest expected first, from measured seconds (``engine/costs.py``,
``engine/cell_costs.json``)."""

from __future__ import annotations

import json
import math

import pytest

from colorbench.engine import costs
from colorbench.engine.cell import CellTask
from colorbench.engine.data import load_dataset, servable_methods
from colorbench.engine.grid import run
from colorbench.engine.spec import RunSpec
from colorbench.methods import METHODS
from colorbench.results.rundir import CellEntry, RunDir

from test_engine import QUIET, spec


def _tasks(s: RunSpec, cells: list[tuple[str, int]]) -> list[CellTask]:
    return [CellTask(spec=s, entry=CellEntry(key=f"{m}{seed}", dataset="shapes", method=m, preset=s.preset, seed=seed))
            for m, seed in cells]


@pytest.fixture(scope="module")
def shapes():
    s = spec()
    return {"shapes": load_dataset(s, "shapes")}


def _names(tasks):
    return [(t.entry.method, t.entry.seed) for t in tasks]


def test_the_longest_cells_start_first_and_seeds_keep_grid_order(shapes):
    s = spec(methods=("unet-l1", "pix2pix"), seeds=(0, 1), epochs=2)
    grid = _tasks(s, [("unet-l1", 0), ("pix2pix", 0), ("unet-l1", 1), ("pix2pix", 1)])  # the grid's order
    # pix2pix trains about 1.6x longer per image than unet-l1 in the measured run
    table = costs.method_costs()
    assert table["pix2pix"]["train_s_per_image_epoch"] > table["unet-l1"]["train_s_per_image_epoch"]
    assert _names(costs.longest_first(grid, shapes)) == [("pix2pix", 0), ("pix2pix", 1), ("unet-l1", 0),
                                                        ("unet-l1", 1)]
    # a method the table does not know (a plugin) is assumed long; a retried cell goes before everything
    odd = _tasks(s, [("unet-l1", 0), ("my-plugin", 0), ("pix2pix", 0)])
    assert _names(costs.longest_first(odd, shapes)) == [("my-plugin", 0), ("pix2pix", 0), ("unet-l1", 0)]
    retried = {id(odd[0])}
    assert _names(costs.longest_first(odd, shapes, started_before=lambda t: id(t) in retried))[0] == ("unet-l1", 0)
    # a finished cell's own time replaces the table's estimate for the rest of its method and dataset
    assert _names(costs.longest_first(grid, shapes, observed={("unet-l1", "shapes"): 1e6}))[:2] == [
        ("unet-l1", 0), ("unet-l1", 1)]
    # ... and the other estimates follow the run's pace: on a machine 100x slower than the table's, unet-l1's
    # seed 0 took 100x its estimate; pix2pix, still estimated, stays ahead of unet-l1's seed 1
    (u1,) = [t for t in grid if _names([t]) == [("unet-l1", 1)]]
    slow = {("unet-l1", "shapes"): 100 * costs.estimate_seconds(u1, shapes)}
    waiting = [t for t in grid if _names([t]) != [("unet-l1", 0)]]
    assert _names(costs.longest_first(waiting, shapes, slow))[0] == ("unet-l1", 1)  # unscaled: wrong way round
    assert _names(costs.longest_first(waiting, shapes, slow, scale=costs.pace([100.0]))) == [
        ("pix2pix", 0), ("pix2pix", 1), ("unet-l1", 1)]
    assert costs.pace([]) == 1.0 and costs.pace([0.5, 4.0, 2.0]) == 2.0


def test_an_estimate_scales_with_epochs_images_and_pixels(shapes):
    (task,) = _tasks(spec(epochs=1), [("unet-l1", 0)])
    (twice,) = _tasks(spec(epochs=2), [("unet-l1", 0)])
    data = shapes["shapes"]
    c = costs.method_costs()["unet-l1"]
    scale = data.train.image_size[0] * data.train.image_size[1] / 32**2
    one = costs.estimate_seconds(task, shapes)
    assert one == pytest.approx(scale * (c["train_s_per_image_epoch"] * len(data.train)
                                         + c["other_s_per_test_image"] * len(data.test)), rel=1e-12)
    assert costs.estimate_seconds(twice, shapes) - one == pytest.approx(
        scale * c["train_s_per_image_epoch"] * len(data.train), rel=1e-9)
    (gray,) = _tasks(spec(epochs=5), [("gray", 0)])  # nothing to train: epochs do not count
    assert costs.estimate_seconds(gray, shapes) == pytest.approx(
        scale * costs.method_costs()["gray"]["other_s_per_test_image"] * len(data.test), rel=1e-12)
    assert costs.estimate_seconds(_tasks(spec(), [("nope", 0)])[0], shapes) is None
    assert costs.estimate_seconds(task, {}) is None


def test_the_table_is_read_from_a_run_and_covers_the_default_run(tmp_path, monkeypatch, capsys):
    run(spec(methods=("gray", "unet-l1"), epochs=2), out=tmp_path / "r", **QUIET)
    table = costs.table_from_run(tmp_path / "r")
    recs = {r.method: r for r in RunDir(tmp_path / "r").records()}
    unet, gray = recs["unet-l1"], recs["gray"]
    n_train, n_test = unet.dataset["n_train"], unet.dataset["n_test"]
    assert table["methods"]["unet-l1"]["train_s_per_image_epoch"] == unet.timings["train_s"] / (2 * n_train)
    assert table["methods"]["unet-l1"]["other_s_per_test_image"] == (
        unet.timings["total_s"] - unet.timings["train_s"]) / n_test
    assert table["methods"]["gray"] == {"train_s_per_image_epoch": 0.0,
                                        "other_s_per_test_image": gray.timings["total_s"] / n_test}
    assert table["measured"]["image_size"] == list(unet.dataset["image_size"])
    assert table["measured"]["dataset"] == "shapes"
    # the command that regenerates the shipped file (here into a temporary one)
    monkeypatch.setattr(costs, "COSTS_FILE", tmp_path / "cell_costs.json")
    assert costs.main(["--from", str(tmp_path / "r")]) == 0 and json.loads(capsys.readouterr().out) == table
    assert costs.main(["--from", str(tmp_path / "r"), "--write"]) == 0
    assert json.loads((tmp_path / "cell_costs.json").read_text()) == table
    monkeypatch.undo()
    # the shipped table: measured on the default run's dataset, and it knows every method that run computes
    shipped = json.loads(costs.COSTS_FILE.read_text())
    assert shipped["measured"]["dataset"] == "photos" and shipped["measured"]["preset"] == "quick"
    photos = load_dataset(RunSpec(), "photos")
    default, _ = servable_methods(list(METHODS.names()), photos.train, "quick")
    assert sorted(default) == sorted(shipped["methods"]), "rerun `python -m colorbench.engine.costs --from RUN " \
                                                         "--write` on a default `colorbench run`"
    assert all(math.isfinite(v) and v >= 0 for c in shipped["methods"].values() for v in c.values())


def test_a_run_without_a_finished_cell_cannot_give_a_table(tmp_path):
    run(spec(methods=("gray",)), out=tmp_path / "r", **QUIET)
    cells = tmp_path / "r" / "cells"
    for record in cells.glob("*/record.json"):
        d = json.loads(record.read_text())
        d["status"] = "failed"
        record.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="no ok record"):
        costs.table_from_run(tmp_path / "r")
