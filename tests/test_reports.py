"""Tests of colorbench.reports on a hand-made run directory (three records: full, partial, failed)."""

from __future__ import annotations

import copy
import json
import math
import re
import shutil
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from colorbench.core.grey import Grey
from colorbench.results.records import MetricValue, RunRecord
from colorbench.results.rundir import load_records
from colorbench.reports import (
    CANONICAL_METRICS,
    leaderboard_markdown,
    plot_ab_histograms,
    plot_curves,
    plot_sample_grid,
    results_frame,
    write_report,
)
from colorbench.reports.figures import _sample_label, curve_metric_keys
from colorbench.reports.tables import LUMA_SSIM_THRESHOLD, structure_lost

DATASET = {"name": "toyshapes", "n_train": 40, "n_test": 12, "image_size": [12, 12]}
LPIPS_REASON = "LPIPS weights not found at ~/.cache/lpips/alex.pth; put them there to compute LPIPS"
FAILED_ERROR = "CUDA out of memory | tried to allocate\n2.00 GiB"
K, H, W = 4, 12, 12
EDGES = np.linspace(-110, 110, 23).tolist()  # 22 bins

# Colours of the saved sample images, so the grid can be checked pixel by pixel.
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def _mv(key: str, value, hib: bool, ci=None, reason=None) -> MetricValue:
    metric, params = {
        "mse": ("mse", {"data_range": 1.0}),
        "psnr": ("psnr", {"data_range": 1.0}),
        "ssim": ("ssim", {"win_size": 7, "gaussian": False}),
        "lpips": ("lpips", {"net": "alex"}),
        "colorfulness": ("colorfulness", {}),
    }.get(key, ("ab_histogram", {"bins": 22, "range": [-110, 110], "eps": 1e-10}))
    return MetricValue(value, metric, "1", hib, params, missing_reason=reason, ci95=ci)


def _records() -> list[RunRecord]:
    """Hand-made values, chosen so that the best of each column is known (see EXPECTED_BOLD)."""
    common = dict(preset="quick", dataset=DATASET, grey_convention="bt601", seed=7, device="cpu")
    full = RunRecord(
        method="pix2pix",
        metrics={
            "mse": _mv("mse", 0.0125, False, ci=(0.011, 0.014)),
            "psnr": _mv("psnr", 19.03, True, ci=(18.53, 19.53)),
            "ssim": _mv("ssim", 0.7125, True, ci=(0.70, 0.72)),
            "lpips": _mv("lpips", 0.2345, False),
            "kl_a": _mv("kl_a", 0.0421, False),
            "kl_b": _mv("kl_b", 0.0388, False),
            "js_a": _mv("js_a", 0.0105, False),
            "js_b": _mv("js_b", 0.0099, False),
            "colorfulness": _mv("colorfulness", 31.5, True),
        },
        losses=[{"epoch": e, "g_gan": 0.9 - 0.1 * e, "g_l1": 12.0 / e, "d": 0.6, "seconds": 4.0} for e in (1, 2, 3)],
        curve=[{"epoch": e, "metrics": {"psnr": 15.0 + e, "ssim": 0.5 + 0.05 * e}} for e in (1, 2, 3)],
        samples_file="arrays/samples_pix2pix.npz",
        timings={"train_s": 12.5, "total_s": 14.25},
        **common,
    )
    partial = RunRecord(
        method="cyclegan",
        metrics={
            "mse": _mv("mse", 0.0, False),
            "psnr": _mv("psnr", float("inf"), True),  # stored as the string "inf"
            "ssim": _mv("ssim", 0.6890, True),
            "lpips": _mv("lpips", None, False, reason=LPIPS_REASON),
            "kl_a": _mv("kl_a", 0.0519, False),
            "kl_b": _mv("kl_b", 0.0301, False),
            "js_a": _mv("js_a", 0.0105, False),  # ties pix2pix
            "js_b": _mv("js_b", 0.0120, False),
            "colorfulness": _mv("colorfulness", 35.2, True),
        },
        losses=[{"epoch": e, "g_gan": 1.0 / e, "cycle": 5.0 / e} for e in (1, 2)],
        curve=[{"epoch": 1, "metrics": {"psnr": 14.0, "ssim": 0.4}}, {"epoch": 2, "metrics": {"psnr": float("inf"), "ssim": 0.6}}],
        samples_file="arrays/samples_cyclegan.npz",
        timings={"train_s": 20.0, "total_s": 22.5},
        **common,
    )
    failed = RunRecord(
        method="chromagan",
        status="failed",
        error=FAILED_ERROR,
        # A failed run's value must never be bold, even when it is the best number in its column.
        metrics={"ssim": _mv("ssim", 0.99, True), "lpips": _mv("lpips", None, False, reason=LPIPS_REASON)},
        **common,
    )
    return [full, partial, failed]


# Method -> the columns where its value must be bold (↑: ssim, psnr; ↓: the others; colorfulness: closest to the
# real set's, i.e. the lowest ΔCF, which these records lack: no bold in that column, issue 24).
EXPECTED_BOLD = {
    "pix2pix": {"SSIM ↑", "LPIPS ↓", "KL a ↓", "JS a ↓", "JS b ↓"},
    "cyclegan": {"MSE ↓", "PSNR (dB) ↑", "KL b ↓", "JS a ↓"},
    "chromagan": set(),
}


def _histograms(rng: np.random.Generator) -> dict:
    real = {c: rng.integers(0, 500, size=22).tolist() for c in "ab"}
    pred = {c: rng.integers(0, 500, size=22).tolist() for c in "ab"}
    pred["a"][0] = 0  # an empty bin must not break the log plot
    return {"edges": EDGES, "real": real, "pred": pred}


def _solid(colour: tuple[int, int, int]) -> np.ndarray:
    return np.broadcast_to(np.array(colour, dtype=np.uint8)[None, :, None, None], (K, 3, H, W)).copy()


def make_run_dir(root: Path, *, arrays: bool = True, histograms: bool = True, run_json: bool = True) -> Path:
    rng = np.random.default_rng(0)
    run_dir = root / "run"
    records = _records()
    for rec in records:
        if histograms and rec.status == "ok":
            rec.histograms = _histograms(rng)
        rec.save(run_dir / "records" / f"{rec.method}.json")
    if run_json:
        info = {
            "methods": [r.method for r in records],
            "dataset": DATASET,
            "versions": {"colorbench": "0.1.0", "torch": "2.x", "python": "3.11"},
            "timings": {"wall_s": 57.3},  # the layout bench/runner.py writes
        }
        (run_dir / "run.json").write_text(json.dumps(info))
    if arrays:
        (run_dir / "arrays").mkdir()
        gray = rng.integers(0, 256, size=(K, 1, H, W), dtype=np.uint8)
        np.savez(run_dir / "arrays" / "samples.npz", gray=gray, real=_solid(RED), ids=np.arange(K) + 100)
        np.savez(run_dir / "arrays" / "samples_pix2pix.npz", pred=_solid(GREEN))
        np.savez(run_dir / "arrays" / "samples_cyclegan.npz", pred=_solid(BLUE))
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    """A run directory and the report written into it once (for the tests that only read it)."""
    run_dir = make_run_dir(tmp_path_factory.mktemp("report"))
    return run_dir, write_report(run_dir)


def _table(markdown: str) -> dict[str, dict[str, str]]:
    """Leaderboard table as method -> column header -> cell text."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ")]
    split = lambda line: [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # noqa: E731
    header = split(rows[0])
    return {cells[0]: dict(zip(header, cells)) for cells in map(split, rows[2:])}


# --- results.csv -------------------------------------------------------------------------------------------------


def test_results_csv_columns_and_values_round_trip(report: tuple[Path, dict[str, Path]]) -> None:
    run_dir, out = report
    frame = pd.read_csv(out["results"])
    assert list(frame.columns) == [
        "method", "status", "error", *CANONICAL_METRICS, "colorfulness", "train_s", "total_s", "preset",
        "structure_lost", "dataset", "seed", "key",
    ]
    assert list(frame["method"]) == ["pix2pix", "cyclegan", "chromagan"]  # run.json order
    records = {r.method: r for r in load_records(run_dir)}
    for _, row in frame.iterrows():
        rec = records[row["method"]]
        assert row["status"] == rec.status
        assert (row["error"] if isinstance(row["error"], str) else None) == rec.error
        assert row["preset"] == "quick" and row["structure_lost"] == structure_lost(rec)
        for key in [*CANONICAL_METRICS, "colorfulness"]:
            stored = rec.value(key)
            if stored is None:
                assert math.isnan(row[key]), (rec.method, key)
            else:
                assert row[key] == stored, (rec.method, key)  # exact, inf included
        for key in ("train_s", "total_s"):
            assert (math.isnan(row[key]) and key not in rec.timings) or row[key] == rec.timings[key]
    assert frame.loc[1, "psnr"] == math.inf
    assert frame.loc[2, "error"] == FAILED_ERROR


def test_results_frame_has_canonical_columns_even_when_absent() -> None:
    rec = _records()[2]  # the failed record: only ssim and lpips
    frame = results_frame([rec])
    assert list(frame.columns[3 : 3 + len(CANONICAL_METRICS)]) == list(CANONICAL_METRICS)
    assert frame[list(CANONICAL_METRICS)].dtypes.eq(float).all()
    assert math.isnan(frame.loc[0, "mse"]) and frame.loc[0, "ssim"] == 0.99


# --- leaderboard.md ----------------------------------------------------------------------------------------------


def test_leaderboard_bolds_best_of_each_column_by_direction(report: tuple[Path, dict[str, Path]]) -> None:
    run_dir, _ = report
    table = _table((run_dir / "leaderboard.md").read_text())
    metric_columns = [c for c in table["pix2pix"] if c.endswith(("↑", "↓", "→ real"))]
    assert metric_columns == [
        "MSE ↓", "PSNR (dB) ↑", "SSIM ↑", "LPIPS ↓", "KL a ↓", "KL b ↓", "JS a ↓", "JS b ↓", "colorfulness → real"
    ]
    for method, cells in table.items():
        bold = {c for c in metric_columns if cells[c].startswith("**")}
        assert bold == EXPECTED_BOLD[method], method


def test_leaderboard_formats_values_intervals_and_missing(report: tuple[Path, dict[str, Path]]) -> None:
    run_dir, _ = report
    md = (run_dir / "leaderboard.md").read_text()
    table = _table(md)
    full, partial, failed = table["pix2pix"], table["cyclegan"], table["chromagan"]
    assert full["PSNR (dB) ↑"] == "19.03 ± 0.50"  # 2 decimals, half-width of (18.53, 19.53)
    assert full["SSIM ↑"] == "**0.7125** ± 0.0100"  # 4 decimals
    assert full["MSE ↓"] == "0.01250 ± 0.0015"  # 4 significant digits (2 for the interval)
    assert partial["MSE ↓"] == "**0.00000**" and partial["JS b ↓"] == "0.012000"  # one format per column
    assert full["KL a ↓"] == "**0.04210**"
    assert partial["PSNR (dB) ↑"] == "**inf**"
    assert full["Train (s)"] == "12.5"

    # One footnote per distinct reason, used by both methods that lack LPIPS.
    assert partial["LPIPS ↓"] == failed["LPIPS ↓"] == "—[^1]"
    assert md.count("[^1]:") == 1
    assert f"[^1]: LPIPS: {LPIPS_REASON}" in md

    # The failed run: a row with no bold, and its error (pipes and newlines made harmless) in its own section.
    assert failed["Status"] == "**failed**"
    assert failed["MSE ↓"] == "—" and failed["SSIM ↑"] == "0.9900"
    assert "- **chromagan** (failed): CUDA out of memory | tried to allocate 2.00 GiB" in md


def test_leaderboard_footnotes_a_metric_absent_from_an_ok_record() -> None:
    records = _records()
    del records[1].metrics["colorfulness"]
    table = _table(leaderboard_markdown(records, {}))
    assert table["cyclegan"]["colorfulness → real"] == "—[^2]"
    assert table["pix2pix"]["colorfulness → real"] == "31.50"  # the only value, but no ΔCF says it is closest to real
    assert "[^2]: colorfulness: no value recorded for this method" in leaderboard_markdown(records, {})


def test_leaderboard_shows_diversity_as_not_applicable_for_deterministic_methods() -> None:
    records = _records()
    records[0].card = {"stochastic": True}
    records[0].metrics["diversity"] = MetricValue(4.95, "output_diversity", "1", True, {})
    records[1].card = {"stochastic": False}
    markdown = leaderboard_markdown(records, {})
    column = next(c for c in _table(markdown)["pix2pix"] if c.startswith("diversity"))
    assert _table(markdown)["pix2pix"][column] == "**4.950**"
    assert _table(markdown)["cyclegan"][column] == "n/a"  # deterministic: nothing missing, no footnote
    assert "no value recorded" not in markdown
    assert "n/a: diversity applies to stochastic methods only." in markdown
    records[1].card = {"stochastic": True}  # a stochastic method without the value: missing, with a footnote
    assert "no value recorded for this method" in leaderboard_markdown(records, {})


def test_leaderboard_marks_rows_that_lost_their_inputs_structure() -> None:
    """A row below LUMA_SSIM_THRESHOLD says so in its Status cell and in a note, and wins no column (here the
    structure-less cyclegan row has the best MSE, PSNR, KL b, JS a and colourfulness of _records())."""
    records = _records()
    records[0].metrics["luma_ssim"] = _mv("luma_ssim", 0.9897, True)
    records[1].metrics["luma_ssim"] = _mv("luma_ssim", LUMA_SSIM_THRESHOLD - 0.05, True)
    records[2].metrics["luma_ssim"] = _mv("luma_ssim", 0.01, True)  # failed: its error is what it shows
    assert [structure_lost(r) for r in records] == [False, True, False]
    md = leaderboard_markdown(records, {})
    table = _table(md)
    assert table["cyclegan"]["Status"] == "ok, **⚠ structure lost**"
    assert table["pix2pix"]["Status"] == "ok" and table["chromagan"]["Status"] == "**failed**"
    assert table["cyclegan"]["Luma SSIM ↑"] == f"{LUMA_SSIM_THRESHOLD - 0.05:.4f}"
    assert not any(cell.startswith("**") for col, cell in table["cyclegan"].items() if col.endswith(("↑", "↓")))
    metric_columns = [c for c in table["pix2pix"] if c.endswith(("↑", "↓"))]
    assert {c for c in metric_columns if table["pix2pix"][c].startswith("**")} == set(metric_columns)
    note = next(line for line in md.splitlines() if line.startswith("⚠ structure lost:"))
    assert "**cyclegan**" in note and "pix2pix" not in note and f"below {LUMA_SSIM_THRESHOLD:g}" in note
    assert "does not keep its input's structure" in note
    # at the threshold, or without a luma SSIM, nothing is marked (and the note is absent)
    records[1].metrics["luma_ssim"] = _mv("luma_ssim", LUMA_SSIM_THRESHOLD, True)
    assert "structure lost" not in leaderboard_markdown(records, {})
    del records[1].metrics["luma_ssim"]
    assert not structure_lost(records[1])
    assert _table(leaderboard_markdown(records, {}))["cyclegan"]["MSE ↓"] == "**0.00000**"


def test_interval_half_width_has_two_significant_digits_without_exponent() -> None:
    records = _records()
    records[0].metrics["mse"] = _mv("mse", 979.0, False, ci=(859.4, 1100.0))  # 0-255 scale: half-width 120.3
    assert _table(leaderboard_markdown(records, {}))["pix2pix"]["MSE ↓"] == "979.0 ± 120"


def test_leaderboard_header_conventions_and_links(report: tuple[Path, dict[str, Path]]) -> None:
    run_dir, out = report
    md = (run_dir / "leaderboard.md").read_text()
    assert "- Dataset: **toyshapes**, 40 train / 12 test images, 12×12 px" in md
    for line in ("- Software: colorbench 0.1.0, torch 2.x, python 3.11", "- Grey input convention: bt601", "- Preset: quick", "- Seed: 7", "- Device: cpu", "- Wall time: 57.3 s"):
        assert line in md
    # Each metric's conventions are written once, although two records carry them.
    assert md.count("- **psnr** v1 (`psnr`): data_range=1.0") == 1
    assert md.count("- **ab_histogram** v1 (`kl_a`, `kl_b`, `js_a`, `js_b`): bins=22, range=[-110, 110], eps=1e-10") == 1
    for key in ("ab_histograms", "samples", "curves", "losses"):
        rel = out[key].relative_to(run_dir).as_posix()
        assert f"]({rel})" in md


def test_leaderboard_without_run_json_reads_header_from_records(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, run_json=False)
    write_report(run_dir)
    md = (run_dir / "leaderboard.md").read_text()
    assert "**toyshapes**, 40 train / 12 test images" in md
    assert "Wall time" not in md
    assert leaderboard_markdown(load_records(run_dir), None).startswith("# colorbench results")


# --- figures -----------------------------------------------------------------------------------------------------


def test_figures_are_written_and_readable(report: tuple[Path, dict[str, Path]]) -> None:
    run_dir, out = report
    for key in ("ab_histograms", "samples", "curves", "losses"):
        path = out[key]
        assert path == run_dir / "figures" / f"{key}.png" and path.exists()
        with Image.open(path) as img:
            width, height = img.size
            pixels = np.asarray(img.convert("L"))
        assert 300 <= width <= 2500 and 200 <= height <= 1600, (key, img.size)
        assert pixels.std() > 5, key  # not a blank canvas
    assert matplotlib.image.imread(out["curves"]).ndim == 3
    table = pd.read_csv(out["ab_histograms_csv"])  # the figure's data, next to results.csv
    assert out["ab_histograms_csv"] == run_dir / "ab_histograms.csv"
    assert list(dict.fromkeys(table["series"]))[0] == "real"
    assert table.groupby(["series", "channel"])["probability"].sum().round(9).eq(1.0).all()


def test_sample_grid_shows_each_method_and_the_real_images(run_dir: Path) -> None:
    path = plot_sample_grid(run_dir, load_records(run_dir), run_dir / "grid.png")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    counts = {name: int(np.all(rgb == c, axis=-1).sum()) for name, c in (("real", RED), ("pix2pix", GREEN), ("cyclegan", BLUE))}
    # K=4 rows of 12x12 images drawn at ~110 px a side: each solid column covers far more than 4*50*50 pixels.
    assert all(n > 4 * 50 * 50 for n in counts.values()), counts


def test_no_crash_without_arrays_histograms_or_curves(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, arrays=False, histograms=False)
    for rec in load_records(run_dir):
        rec.curve, rec.losses = [], []
        rec.save(run_dir / "records" / f"{rec.method}.json")
    out = write_report(run_dir)
    assert set(out) == {"results", "leaderboard", "leaderboard_csv", "comparisons", "html"}
    assert not list((run_dir / "figures").glob("*.png"))
    assert "## Figures" not in out["leaderboard"].read_text()


def test_missing_method_samples_file_is_skipped_with_warning(run_dir: Path) -> None:
    (run_dir / "arrays" / "samples_cyclegan.npz").unlink()
    with pytest.warns(UserWarning, match="cyclegan"):
        path = plot_sample_grid(run_dir, load_records(run_dir), run_dir / "grid.png")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    assert not np.all(rgb == BLUE, axis=-1).any() and np.all(rgb == GREEN, axis=-1).any()


def test_curves_need_two_points(run_dir: Path) -> None:
    records = load_records(run_dir)
    assert records[1].curve[1]["metrics"]["psnr"] == "inf"  # the stored form the plot must cope with
    for rec in records:
        rec.curve = rec.curve[:1]
    assert plot_curves(records, run_dir / "c.png") is None and not (run_dir / "c.png").exists()


def test_curve_panels_skip_metrics_without_any_finite_value() -> None:
    records = _records()
    for point in records[0].curve:
        point["metrics"]["lpips"] = None  # never available, as when its weights are missing
    records[1].curve[0]["metrics"]["bleu"] = "nan"
    assert curve_metric_keys(records) == ["psnr", "ssim"]


def test_sample_labels_fit_their_row() -> None:
    assert _sample_label(np.int64(3)) == "#3"
    assert _sample_label("immunohistochemistry:392:424") == "immunohistochemistry\n:392:424"
    assert all(len(line) <= 20 for line in _sample_label("x" * 45 + ":1").split("\n"))


# --- bad input ---------------------------------------------------------------------------------------------------


def test_bad_inputs_give_clear_errors(run_dir: Path, tmp_path: Path) -> None:
    records = load_records(run_dir)
    records[1].histograms["pred"]["b"] = [1, 2, 3]
    with pytest.raises(ValueError, match="cyclegan b: histogram has 3 bins but 23 edges"):
        plot_ab_histograms(records, tmp_path / "h.png")

    np.savez(run_dir / "arrays" / "samples_cyclegan.npz", pred=np.zeros((K, 3, H, W + 1), np.uint8))
    with pytest.raises(ValueError, match=r"samples_cyclegan\.npz: 'pred' has shape"):
        plot_sample_grid(run_dir, records, tmp_path / "g.png")
    np.savez(run_dir / "arrays" / "samples_cyclegan.npz", pred=np.zeros((K, 3, H, W), np.float32))
    with pytest.raises(ValueError, match="must be uint8"):
        plot_sample_grid(run_dir, records, tmp_path / "g.png")

    shutil.rmtree(run_dir / "records")
    with pytest.raises(FileNotFoundError, match="no records"):
        write_report(run_dir)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "nowhere")


def test_results_csv_and_html_report_flag_rows_that_lost_their_inputs_structure(tmp_path: Path) -> None:
    """The same rule as leaderboard.md: results.csv says ``structure_lost`` per row, and the HTML report marks the
    row and bolds none of its values (its cyclegan row has the best MSE of _records())."""
    from colorbench.reports import html as html_report

    records = _records()
    records[0].metrics["luma_ssim"] = _mv("luma_ssim", 0.9897, True)
    records[1].metrics["luma_ssim"] = _mv("luma_ssim", LUMA_SSIM_THRESHOLD - 0.05, True)
    assert results_frame(records)["structure_lost"].tolist() == [False, True, False]
    board = html_report._leaderboard(records, None)
    rows = {r["method"]: r for r in board["rows"]}
    assert rows["cyclegan"]["structure_lost"] and not rows["pix2pix"]["structure_lost"]
    assert not any(c.best for c in rows["cyclegan"]["cells"].values())
    assert rows["pix2pix"]["cells"]["mse"].best  # the best among the rows that kept their structure
    run_dir = tmp_path / "run"  # the flat layout: records/*.json and run.json
    for rec in records:
        rec.save(run_dir / "records" / f"{rec.method}.json")
    (run_dir / "run.json").write_text(json.dumps({"methods": [r.method for r in records], "timings": {}}))
    text = html_report.write_html_report(run_dir, records, {}).read_text()
    row = re.search(r'<tr data-method="cyclegan".*?</tr>', text, re.S).group(0)
    assert "⚠ structure lost" in row and 'class="best' not in row
    assert "⚠ structure lost" not in re.search(r'<tr data-method="pix2pix".*?</tr>', text, re.S).group(0)
    # several seeds: the mean luma SSIM decides, as in the grid leaderboard
    seeds = [copy.deepcopy(records[1]) for _ in range(2)]
    for seed, rec in enumerate(seeds):
        rec.seed = seed
    seeds[1].metrics["luma_ssim"] = _mv("luma_ssim", LUMA_SSIM_THRESHOLD + 0.2, True)  # mean above the threshold
    grid = html_report._seed_leaderboard([records[0], *seeds], None, set(), None)
    assert not {r["method"]: r for r in grid["rows"]}["cyclegan"]["structure_lost"]
    seeds[1].metrics["luma_ssim"] = _mv("luma_ssim", LUMA_SSIM_THRESHOLD - 0.1, True)
    grid = html_report._seed_leaderboard([records[0], *seeds], None, set(), None)
    assert {r["method"]: r for r in grid["rows"]}["cyclegan"]["structure_lost"]


def test_the_structure_threshold_is_placed_on_each_datasets_scale(tmp_path: Path) -> None:
    """structure_references puts the "structure lost" threshold midway between a flat-colour and a 7x7-blur
    reference colorization of the real images: near the hand-chosen 0.7 on photos, far lower on shapes (a blur
    costs more SSIM on sharp synthetic edges). Records carry it; the leaderboards mark rows by their dataset's
    threshold, and records without references keep the fixed LUMA_SSIM_THRESHOLD."""
    from colorbench.datasets import DATASETS
    from colorbench.metrics.image_quality import structure_references
    from colorbench.reports import html as html_report
    from colorbench.reports.tables import structure_threshold

    photos = structure_references(DATASETS.get("photos")().load().test.rgb, Grey.BT601)
    shapes = structure_references(DATASETS.get("shapes")().load().test.rgb, Grey.BT601)
    for refs in (photos, shapes):
        assert refs["flat"] < refs["threshold"] < refs["blur7"] and refs["grey"] == "bt601"
        assert refs["threshold"] == pytest.approx((refs["flat"] + refs["blur7"]) / 2)
    assert 0.6 < photos["threshold"] < 0.75 and shapes["threshold"] < 0.45
    assert structure_references(torch_zeros_images(4, 8), Grey.BT601) is None  # smaller than the 11x11 window

    records = _records()[:2]  # pix2pix, cyclegan
    for rec in records:
        rec.metrics["luma_ssim"] = _mv("luma_ssim", 0.5, True)
    assert [structure_lost(r) for r in records] == [True, True]  # no references: the fixed 0.7
    for rec in records:
        rec.dataset = {**rec.dataset, "structure_references": shapes}
    assert structure_threshold(records[0]) == pytest.approx(shapes["threshold"])
    assert [structure_lost(r) for r in records] == [False, False]  # 0.5 keeps more than shapes' flat colour does
    records[1].metrics["luma_ssim"] = _mv("luma_ssim", shapes["threshold"] - 0.05, True)
    md = leaderboard_markdown(records, {})
    note = next(line for line in md.splitlines() if line.startswith("⚠ structure lost:"))
    assert "**cyclegan**" in note and f"below {shapes['threshold']:.3g} (midway between" in note
    board = {r["method"]: r for r in html_report._leaderboard(records, None)["rows"]}
    assert board["cyclegan"]["structure_lost"] and board["cyclegan"]["structure_threshold"] == f"{shapes['threshold']:.3g}"
    # a grid over two datasets: the same luma SSIM is lost on photos and kept on shapes
    grid = []
    for ds, refs in (("photos", photos), ("shapes", shapes)):
        for seed in (0, 1):
            rec = copy.deepcopy(records[0])
            rec.dataset_name, rec.seed = ds, seed
            rec.dataset = {**rec.dataset, "name": ds, "structure_references": refs}
            rec.metrics["luma_ssim"] = _mv("luma_ssim", 0.5, True)
            grid.append(rec)
    rows = {(r["dataset"], r["method"]): r for r in html_report._seed_leaderboard(grid, None, set(), None)["rows"]}
    assert rows[("photos", "pix2pix")]["structure_lost"] and not rows[("shapes", "pix2pix")]["structure_lost"]
    md = leaderboard_markdown(grid, {})
    note = next(line for line in md.splitlines() if line.startswith("⚠ structure lost:"))
    assert "pix2pix (photos)" in note and "(shapes)" not in note and "its dataset's threshold (photos" in note


def torch_zeros_images(n: int, size: int):
    import torch

    return torch.zeros(n, 3, size, size, dtype=torch.uint8)


def test_a_run_records_its_test_sets_structure_references(tmp_path: Path) -> None:
    from colorbench.datasets import DATASETS
    from colorbench.metrics.image_quality import structure_references
    from colorbench.engine.spec import RunSpec
    from colorbench.engine.grid import run

    options = (("n_test", 12), ("n_train", 8), ("size", 24))
    out = run(RunSpec(methods=("gray",), dataset="shapes", dataset_options=options, epochs=1, progress=False,
                      n_samples=2, metrics=("luma_ssim",)), out=tmp_path / "run", log=lambda s: None, report=False)
    (rec,) = load_records(out)
    want = structure_references(DATASETS.get("shapes")(**dict(options)).load().test.rgb, Grey.BT601)
    assert rec.dataset["structure_references"]["threshold"] == pytest.approx(want["threshold"], abs=1e-12)
    assert rec.dataset["structure_references"]["n_images"] == 12 and not structure_lost(rec)
