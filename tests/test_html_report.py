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
    from colorbench.reports.images import Column, Gallery

    big = np.random.default_rng(1).integers(0, 256, size=(3, 3, 300, 200), dtype=np.uint8)
    iset = Gallery(dataset="big", scope="test split", real={str(i): big[i] for i in range(3)})
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
    folders = {"colorbench.reports": root / "reports", "colorbench.study": root / "bench" / "study"}
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
    from colorbench.results.rundir import CellEntry, RunDir

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


def _table_rows(text: str, table_id: str) -> dict[str, dict[str, tuple[str, str, str]]]:
    """method -> key -> (data-value, class, text) of the rows of one table of the page."""
    m = re.search(rf'<table id="{table_id}".*?</table>', text, re.S)
    assert m, f"table {table_id} is missing"
    out: dict[str, dict[str, tuple[str, str, str]]] = {}
    for method, row in re.findall(r'<tr data-method="([^"]+)"[^>]*>(.*?)</tr>', m.group(0), re.S):
        assert method not in out, f"{method} has two rows in {table_id}"
        out[method] = {k: (v, c, t) for k, v, c, t in re.findall(
            r'<td data-key="([^"]+)" data-value="([^"]*)"[^>]*?class="([^"]*)">([^<]*)</td>', row)}
    return out


def test_several_seeds_give_one_row_per_method_with_the_seed_spread(run_dir: Path) -> None:
    """A 2-seed grid: the leaderboard aggregates as leaderboard.csv does; the cells stay in a per-seed table."""
    import pandas as pd

    from colorbench.reports.tables import _format_half_width, format_value

    from html_fixtures import add_seed

    one_seed = write_report(run_dir)["html"].read_text()
    assert 'id="leaderboard-seeds"' not in one_seed and "Seeds ok / run" not in one_seed  # one seed: as before
    add_seed(run_dir)
    out = write_report(run_dir)
    text = out["html"].read_text()
    board = _table_rows(text, "leaderboard")
    assert list(board) == ["alpha", "beta", "broken"]  # one row per (dataset, method), not per cell
    csv = pd.read_csv(out["leaderboard_csv"]).set_index("method")
    for method in ("alpha", "beta"):
        for key in ("mse", "psnr"):
            value, _, shown = board[method][key]
            mean, std, n = csv.loc[method, key], csv.loc[method, f"{key}_std"], csv.loc[method, f"{key}_n"]
            assert float(value) == pytest.approx(mean, rel=1e-12) and n == 2
            assert shown.startswith(f"{format_value(key, mean)} ± {_format_half_width(key, std)} (n=2)")
            assert shown.endswith("≈") == bool(csv.loc[method, f"{key}_tie_with_best"])
    # best mean in bold by the Markdown's rule: lowest MSE, highest PSNR
    assert [m for m in board if "best" in board[m]["mse"][1]] == [csv["mse"].idxmin()]
    assert [m for m in board if "best" in board[m]["psnr"][1]] == [csv["psnr"].idxmax()]
    assert board["broken"]["mse"][2] == "—" and "best" not in board["broken"]["mse"][1]
    assert '<b class="bad"' in re.search(r'<tr data-method="broken".*?</tr>', text, re.S).group(0)  # 0 / 2 ok
    assert float(board["alpha"]["train_s"][0]) == pytest.approx(2.0)  # mean of 1.5 s and 2.5 s
    # the note: across-seed spread; LPIPS has no per-image values, so it is set-level (as leaderboard.md says)
    note = re.search(r'<p class="hint" id="seed-note">(.*?)</p>', text, re.S).group(1)
    assert "across-seed standard deviation" in note and "Set-level metrics (LPIPS)" in note
    assert "Set-level metrics (LPIPS)" in out["leaderboard"].read_text()
    # the per-cell rows, collapsed under the table, with their seeds
    details = re.search(r'<details id="per-seed">.*?</details>', text, re.S).group(0)
    cells = re.findall(r'<tr data-method="([^"]+)"[^>]*>\s*<td[^>]*>[^<]*</td>\s*<td>([^<]*)</td>', details)
    assert sorted(cells) == sorted((m, s) for m in ("alpha", "beta", "broken") for s in ("0", "1"))
    assert "≈" not in details
    assert "<b>broken</b> (failed, seed 1): RuntimeError: the model diverged" in text  # the ties are those of the seed-averaged values: on the aggregated rows only
    assert re.search(r'<tr data-method="alpha"[^>]*>\s*<td[^>]*>alpha</td>\s*<td>0, 1</td>', text)


def test_thumbnails_encoded_on_threads_are_the_bytes_of_one_thread_and_errors_surface(tmp_path: Path) -> None:
    """The thumbnail strips are PNG-encoded on a few threads: the files are byte for byte those of one thread, at
    most 2 x threads strips wait at once, and a strip that cannot be written fails ``close`` (no manifest)."""
    rng = np.random.default_rng(0)
    strips = {f"m{k % 3}/{k:05d}.png": rng.integers(0, 256, (96, 32, 1 + 2 * (k % 2)), dtype=np.uint8)
              for k in range(20)}
    files = {}
    for threads in (1, 3):
        writer = html_report._ThumbWriter(tmp_path / f"t{threads}", threads=threads)
        assert (writer._pool is None) == (threads == 1)
        waiting = []
        for rel, pixels in strips.items():
            writer.write(rel, pixels)
            waiting.append(len(writer._pending))
        assert max(waiting) <= 2 * threads
        writer.close()
        assert writer.written == len(strips)
        files[threads] = {rel: (tmp_path / f"t{threads}" / rel).read_bytes() for rel in strips}
        assert json.loads((tmp_path / f"t{threads}" / "manifest.json").read_text()).keys() == strips.keys()
    assert files[1] == files[3]
    decoded = np.asarray(Image.open(tmp_path / "t3" / "m1" / "00001.png"))
    assert np.array_equal(decoded, strips["m1/00001.png"])

    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "m0").write_text("a file where the strips' folder should be")
    writer = html_report._ThumbWriter(blocked, threads=2)
    writer.write("m0/00000.png", strips["m0/00000.png"])
    with pytest.raises(OSError):
        writer.close()
    assert not (blocked / "manifest.json").exists()
