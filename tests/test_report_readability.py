"""Issue #11, low items of the reports: every ab-histogram series distinguishable with 21+ methods; the
leaderboard's epochs column, one number format per column, a caveat for intervals from few test images, and
method caveats (e.g. gorriz-featrec's substitute feature network) on the row."""

import re

import numpy as np
import pytest
from matplotlib.image import imread

from colorbench.results.records import MetricValue, RunRecord
from colorbench.reports.figures import _style, plot_ab_histograms
from colorbench.reports.tables import leaderboard_markdown

EDGES = np.linspace(-110, 110, 23).tolist()


def _record(i: int, *, n_test: int = 500, mse: float = 300.0, trainable: bool = True, epochs: int = 3,
            caveats=()) -> RunRecord:
    rng = np.random.default_rng(i)
    rec = RunRecord(method=f"method-{i:02d}", preset="quick", grey_convention="bt601", seed=0, device="cpu",
                    dataset={"name": "photos", "n_train": 1000, "n_test": n_test, "image_size": [32, 32]},
                    card={"name": f"method-{i:02d}", "trainable": trainable},
                    config={"epochs": epochs}, caveats=list(caveats))
    rec.losses = [{"epoch": e + 1, "G": 1.0} for e in range(epochs if trainable else 0)]
    rec.metrics = {
        "mse": MetricValue(mse, "mse", "1", False, ci95=(mse - 10.0, mse + 10.0)),
        "psnr": MetricValue(23.5 + i / 7, "psnr", "1", True),
    }
    rec.histograms = {"edges": EDGES, "real": {c: rng.integers(1, 500, 22).tolist() for c in "ab"},
                      "pred": {c: rng.integers(1, 500, 22).tolist() for c in "ab"}}
    return rec


def _table(markdown: str) -> dict[str, dict[str, str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0].split(" [^")[0]] = dict(zip(header, cells))
    return rows


def test_styles_are_distinct_for_many_series():
    styles = [_style(i) for i in range(45)]
    assert len(set(map(str, styles))) == 45  # was 10 colours cycled: one legend entry named three methods


def test_ab_histograms_of_22_methods_are_small_multiples(tmp_path):
    records = [_record(i) for i in range(22)]
    path = plot_ab_histograms(records, tmp_path / "ab.png")
    image = imread(path)
    height, width = image.shape[:2]
    assert height > width  # 6 rows of 4 panels, not two crowded panels
    fig_rows = -(-22 // 4)
    assert height >= 150 * fig_rows


def test_ab_histograms_of_a_few_methods_stay_one_overlay(tmp_path):
    path = plot_ab_histograms([_record(i) for i in range(3)], tmp_path / "ab.png")
    height, width = imread(path).shape[:2]
    assert width > 2 * height


def test_leaderboard_epochs_column():
    records = [_record(0, epochs=4), _record(1, trainable=False, epochs=0)]
    rows = _table(leaderboard_markdown(records, {}))
    assert rows["method-00"]["Epochs"] == "4" and rows["method-01"]["Epochs"] == "0"


def test_one_number_format_per_column():
    records = [_record(0, mse=1234.5678), _record(1, mse=12.5), _record(2, mse=0.012345)]
    rows = _table(leaderboard_markdown(records, {}))
    cells = [rows[f"method-{i:02d}"]["MSE ↓"].replace("**", "").split(" ± ")[0] for i in range(3)]
    decimals = {len(c.split(".")[1]) if "." in c else 0 for c in cells}
    assert len(decimals) == 1, cells  # was "1235", "12.50", "0.01234"
    assert not any("e" in c for c in cells)


def test_intervals_from_few_test_images_get_a_caveat():
    few = leaderboard_markdown([_record(0, n_test=12), _record(1, n_test=12)], {})
    assert re.search(r"only 12 test images", few)
    many = leaderboard_markdown([_record(0, n_test=500), _record(1, n_test=500)], {})
    assert "test images: a bootstrap" not in many


def test_method_caveats_are_on_the_row():
    text = leaderboard_markdown([_record(0), _record(1, caveats=["substitute feature network: trained here"])], {})
    line = next(line for line in text.splitlines() if line.startswith("| method-01"))
    number = re.search(r"\[\^(\d+)\]", line).group(1)
    assert f"[^{number}]: method-01: substitute feature network: trained here" in text


def test_gorriz_featrec_selftrained_says_so_on_its_row(tmp_path):
    """End to end: the variant that trains its own feature network has the substitute named on its row."""
    from colorbench.results.rundir import load_records
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    spec = RunSpec(methods=("gorriz-featrec-selftrained",), dataset="shapes", epochs=1, progress=False, n_samples=2,
                   dataset_options=(("n_test", 4), ("n_train", 8), ("size", 32)), eval_batch_size=4)
    out = run(spec, out=tmp_path / "run", log=lambda s: None)
    rec = load_records(out)[0]
    assert rec.status == "ok", rec.error
    assert rec.caveats and "substitute feature network, not the paper's ImageNet vgg16" in rec.caveats[0]
    assert "trained by colorbench" in rec.caveats[0]
    board = (out / "leaderboard.md").read_text()
    line = next(line for line in board.splitlines() if line.startswith("| gorriz-featrec-selftrained"))
    number = re.search(r"\[\^(\d+)\]", line).group(1)
    assert f"[^{number}]: gorriz-featrec-selftrained: substitute feature network" in board
