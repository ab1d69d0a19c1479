"""``RUN/index.html`` without a browser: the hooks, no external resource, thumbnails written once, rankings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorbench.reports import html as html_report
from colorbench.reports import write_report

from html_fixtures import IDS, N_IMAGES, images, make_run_dir, per_image_values


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run_dir(tmp_path)


def _page_data(text: str) -> dict:
    m = re.search(r'<script type="application/json" id="cb-data">(.*?)</script>', text, re.S)
    assert m, "the page data block is missing"
    return json.loads(m.group(1))


def test_index_has_stable_hooks_and_no_external_resource(run_dir: Path) -> None:
    text = write_report(run_dir)["html"].read_text()
    assert 'id="leaderboard"' in text
    for key in ("mse", "psnr", "lpips", "train_s", "method"):
        assert f'<th data-key="{key}"' in text
    for method in ("alpha", "beta", "broken"):
        assert f'data-method="{method}"' in text
    assert "RuntimeError: the model diverged" in text  # the failed row's reason
    assert "LPIPS weights not on this machine" in text  # a missing value's reason (its tooltip)
    # nothing that a browser would fetch from elsewhere: every src/href is relative or a fragment
    for attr in re.findall(r'(?:src|href)="([^"]*)"', text):
        assert attr == "data:," or not re.match(r"^[a-z][a-z0-9+.-]*:", attr, re.I), attr  # data:, no favicon fetch
    assert "http://" not in text and "https://" not in text and "//cdn" not in text


def test_thumbnails_hold_the_images_and_are_written_once(run_dir: Path) -> None:
    write_report(run_dir)
    data = _page_data((run_dir / "index.html").read_text())
    desc = data["browser"][0]
    assert desc["n"] == N_IMAGES and desc["thumbs_written"] == 4 and desc["thumbs_kept"] == 0  # grey, real, 2 methods
    strip = np.asarray(Image.open(run_dir / desc["base"] / "thumbs" / "m0" / "00000.png"))
    expected = np.transpose(images()["alpha"], (0, 2, 3, 1)).reshape(-1, 16, 3)  # 16x16: kept at native size
    np.testing.assert_array_equal(strip, expected)
    before = (run_dir / desc["base"] / "thumbs" / "m0" / "00000.png").stat().st_mtime_ns
    write_report(run_dir)
    again = _page_data((run_dir / "index.html").read_text())["browser"][0]
    assert again["thumbs_written"] == 0 and again["thumbs_kept"] == 4
    assert (run_dir / desc["base"] / "thumbs" / "m0" / "00000.png").stat().st_mtime_ns == before


def _js_payload(path: Path) -> object:
    text = path.read_text()
    return json.loads(text[text.index(",", text.index(",") + 1) + 1: text.rindex(")")])


def test_rankings_are_the_best_and_worst_images_by_direction(run_dir: Path) -> None:
    write_report(run_dir)
    desc = _page_data((run_dir / "index.html").read_text())["browser"][0]
    values = per_image_values("beta")
    rank = _js_payload(run_dir / desc["ranks"]["m1.psnr"])
    assert rank["best"][:5] == list(np.argsort(-values["psnr"], kind="stable")[:5])  # psnr ↑: best = highest
    rank = _js_payload(run_dir / desc["ranks"]["m1.mse"])
    assert rank["worst"][0] == int(np.argmax(values["mse"])) and rank["best"][0] == int(np.argmin(values["mse"]))
    chunk = _js_payload(run_dir / desc["base"] / "chunks" / "00000.js")
    assert chunk["ids"] == IDS
    assert chunk["v"]["m1"]["mse"] == pytest.approx(values["mse"].tolist(), rel=1e-5)
    assert chunk["has"]["m2"] == [0] * N_IMAGES  # the failed method has no images


def test_larger_images_get_thumbnails_of_at_most_thumb_max(tmp_path: Path) -> None:
    from colorbench.reports.images import Column, ImageSet

    big = np.random.default_rng(1).integers(0, 256, size=(3, 3, 300, 200), dtype=np.uint8)
    iset = ImageSet(dataset="big", scope="test split", real={str(i): big[i] for i in range(3)})
    iset.add_ids(["0", "1", "2"])
    iset.columns.append(Column(label="m", method="m", seed=0, status="ok",
                               load_predictions=lambda: (big, ["0", "1", "2"])))
    desc = html_report._browser_dataset(tmp_path, iset, {}, 0)
    assert desc["thumb"] == [128, 85]
    assert Image.open(tmp_path / desc["base"] / "thumbs" / "real" / "00000.png").size == (85, 3 * 128)


def test_templates_are_package_data() -> None:
    """Every template file matches a package-data glob of pyproject.toml (else wheels would lack it)."""
    import fnmatch
    import tomllib

    root = Path(__file__).resolve().parents[1]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {"colorbench.reports": root / "reports", "colorbench": root / "bench"}
    for package, folder in folders.items():
        globs = cfg["package-data"].get(package, [])
        files = sorted((folder / "templates").iterdir())
        assert files
        for f in files:
            rel = f.relative_to(folder).as_posix()
            assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} is not in {package}'s package-data {globs}"


def test_cross_domain_matrix_and_comparisons_are_shown_when_present(run_dir: Path) -> None:
    from colorbench.reports.html import write_html_report
    from html_fixtures import records

    (run_dir / "cross_domain").mkdir()
    (run_dir / "cross_domain" / "accuracy.csv").write_text("train,real_color,alpha\nreal_color,91.25,40.5\nalpha,60.0,88.0\n")
    (run_dir / "cross_domain" / "summary.csv").write_text("train,label\nreal_color,R-C\nalpha,alpha [3]\n")
    (run_dir / "comparisons.csv").write_text("dataset,metric,a,b,p_value,tie\ntoyset,psnr,alpha,beta,0.41,True\n")
    (run_dir / "figures").mkdir(exist_ok=True)
    Image.new("RGB", (4, 4)).save(run_dir / "figures" / "cross_domain_chord.png")
    text = write_html_report(run_dir, records()).read_text()
    matrix = text[text.index('id="cross-domain"'):]
    matrix = matrix[:matrix.index("</table>")]
    assert re.findall(r"<th>([^<]+)</th>", matrix) == ["train ↓ / test →", "R-C", "alpha [3]", "R-C", "alpha [3]"]
    assert re.findall(r'--shade: ([0-9.]+)">([0-9.]+)<', matrix) == [("1.0", "91.2"), ("0.0", "40.5"),
                                                                     ("0.384", "60.0"), ("0.936", "88.0")]  # (v - 40.5) / 50.75
    assert 'src="figures/cross_domain_chord.png"' in text
    comparisons = text[text.index('id="comparisons"'):]
    assert "<td>0.41</td><td>True</td>" in comparisons[:comparisons.index("</table>")]


def test_earlier_flat_layout_shows_its_sample_images_without_rankings(tmp_path: Path) -> None:
    run_dir = make_run_dir(tmp_path, layout="flat")
    desc = _page_data(write_report(run_dir)["html"].read_text())["browser"][0]
    assert desc["scope"] == "sample images" and desc["n"] == N_IMAGES and desc["ranks"] == {}
    assert [c["images"] for c in desc["columns"]] == [True, True, False]
    strip = np.asarray(Image.open(run_dir / desc["base"] / "thumbs" / "m1" / "00000.png"))
    np.testing.assert_array_equal(strip, np.transpose(images()["beta"], (0, 2, 3, 1)).reshape(-1, 16, 3))


def test_partial_run_and_several_datasets(run_dir: Path) -> None:
    """A cell without a result is announced; a second dataset gets its own rows, tab and image browser."""
    from colorbench.rundir import CellEntry, RunDir

    from html_fixtures import records

    rd = RunDir(run_dir)
    rec = records()[0]
    rec.dataset = {"name": "other", "n_test": 45}
    rec.dataset_name = "other"
    v = per_image_values("alpha")
    rd.write_cell(CellEntry(key="k-other", dataset="other", method="alpha", preset="quick", seed=0), rec,
                  per_image={"ids": v.pop("id"), **v}, predictions=(images()["alpha"], IDS))
    rd.update_cells([CellEntry(key="k-late", dataset="other", method="beta", preset="quick", seed=0)])  # pending
    text = write_report(run_dir)["html"].read_text()
    assert 'id="partial-run"' in text and "beta on other, seed 0 (pending)" in text
    assert '<button type="button" class="dataset-tab" data-dataset="other">' in text
    assert '<tr data-method="alpha" data-dataset="other"' in text and '<tr data-method="alpha" data-dataset="toyset"' in text
    data = _page_data(text)
    assert [b["dataset"] for b in data["browser"]] == ["toyset", "other"]
    other = data["browser"][1]
    assert other["scope"] == "colorizations only" and [c["label"] for c in other["columns"]] == ["alpha"]
    assert other["has_real"] is False and other["n"] == N_IMAGES  # no test_other.npz: no real images to show


def test_statistical_ties_from_comparisons_are_marked(run_dir: Path) -> None:
    text = write_report(run_dir)["html"].read_text()
    import pandas as pd

    comparisons = pd.read_csv(run_dir / "comparisons.csv")  # written by the report from the per-image values
    assert {"dataset", "metric", "method", "indistinguishable"} <= set(comparisons.columns)
    tied = comparisons[comparisons["indistinguishable"].astype(bool)]
    cells = re.findall(r'<tr data-method="([^"]+)"[^>]*>(.*?)</tr>', text, re.S)
    marked = {(m, k) for m, row in cells for k in re.findall(r'data-key="([^"]+)"[^>]*>[^<]*≈<', row)}
    assert marked == {(r.method, r.metric) for r in tied.itertuples() if r.dataset == "toyset"}
    assert ("beta", "mse") in marked  # beta's per-image MSE is not told apart from alpha's (Wilcoxon, 45 images)
    assert 'id="comparisons"' in text


def test_report_and_study_do_not_import_torch() -> None:
    """The report and the study read the run directory only: no training stack is loaded (fast start)."""
    import subprocess
    import sys

    code = ("import sys, colorbench.reports.html, colorbench.reports.naturalness, colorbench.study; "
            "loaded = [m for m in ('torch', 'torchvision') if m in sys.modules]; assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
