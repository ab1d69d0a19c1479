"""The leaderboard site of the results hub in a real headless Chromium (Playwright driving Debian's chromium).

Two "machines" (separate run directories, different seeds) run ``gray`` and ``unet-l1`` for real; the second also
evaluates a folder of colorizations (``colorbench evaluate``: the ``my-model`` row). A third publishes a copy of the
first run with one value edited (a conflict), a fourth a copy in the record format of an older colorbench whose
values carry no protocol (``colorbench/1``: a table of its own). Screenshots go to ``$COLORBENCH_SCREENSHOTS``
when it is set, else to the test's tmp folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from html_fixtures import CHROMIUM

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)",
                allow_module_level=True)

pytestmark = pytest.mark.slow  # two real runs, an evaluate, four publishes and a site: ~30 s on 2 busy cores

DATA = ["--dataset", "shapes", "--dataset-option", "shapes.n_train=64", "--dataset-option", "shapes.n_test=24"]
EDIT_FACTOR = 1.05  # the edited PSNR of the third machine's copy


def _records(run: Path) -> dict[str, dict]:
    return {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in run.glob("cells/*/record.json")}


def _as_older_run(run: Path) -> None:
    """Rewrite a run's records as an older colorbench wrote them: record schema 1, no protocol in the values."""
    for p in run.glob("cells/*/record.json"):
        rec = json.loads(p.read_text())
        rec["schema"] = "colorbench.record/1"
        for mv in rec["metrics"].values():
            mv["params"].pop("protocol", None)
            mv["params"].pop("protocol_version", None)
        p.write_text(json.dumps(rec))


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> dict[str, Path]:
    from colorbench.commands.cli import main

    root = tmp_path_factory.mktemp("hub")
    a, b = root / "machine-a", root / "machine-b"
    assert main(["run", "--methods", "gray,unet-l1", "--epochs", "1", "--seed", "0", "--out", str(a), "--no-progress",
                 *DATA]) == 0
    assert main(["run", "--methods", "gray,unet-l1", "--epochs", "1", "--seed", "1", "--out", str(b), "--no-progress",
                 *DATA]) == 0
    assert main(["export", str(a), "--method", "unet-l1", "--out", str(root / "pred")]) == 0
    assert main(["evaluate", "--pred", str(root / "pred"), "--dataset", "shapes", "--dataset-option", "n_train=64",
                 "--dataset-option", "n_test=24", "--name", "my-model", "--out", str(b)]) == 0
    meta = root / "meta.json"
    meta.write_text(json.dumps({"my-model": {"licence": "MIT", "training_data": ["shapes"], "code_revision": "v1.2",
                                             "inference_size": "256x256",
                                             "chroma_upsampling": "bilinear ab to the test size"}}))
    c = root / "machine-c"  # machine A's run with one value edited
    shutil.copytree(a, c)
    unet = next(c.glob("cells/*unet-l1*/record.json"))
    rec = json.loads(unet.read_text())
    rec["metrics"]["psnr"]["value"] *= EDIT_FACTOR
    unet.write_text(json.dumps(rec))
    d = root / "old-cluster"  # an older colorbench's run: protocol colorbench/1
    shutil.copytree(b, d)
    _as_older_run(d)
    results, site = root / "results", root / "site"
    for run, who, extra in ((a, "alice", []), (b, "bob", ["--method-meta", str(meta)]), (c, "carol", []),
                            (d, "dave", ["--method-meta", str(meta)])):
        assert main(["publish", str(run), "--to", str(results), "--by", who, "--host", f"{run.name}", *extra]) == 0
    assert main(["leaderboard", str(results), "--out", str(site)]) == 0
    return {"a": a, "b": b, "c": c, "d": d, "results": results, "site": site}


def _page(browser):
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    errors, requests = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    return page, errors, requests


def _cell_text(page, table: str, method: str, key: str) -> str:
    return page.evaluate(
        """([t, m, k]) => { const table = document.querySelector(`table.board[data-table="${t}"]`);
             const idx = [...table.tHead.rows[0].cells].findIndex(c => c.dataset.key === k);
             const row = [...table.tBodies[0].rows].find(r => r.dataset.method === m);
             return row.cells[idx].textContent.trim(); }""", [table, method, key])


def test_site_merges_machines_flags_conflicts_and_separates_protocols(hub, browser, shots) -> None:
    from colorbench.reports.tables import format_value

    page, errors, requests = _page(browser)
    page.goto((hub["site"] / "index.html").as_uri())
    page.screenshot(path=str(shots / "hub_index.png"), full_page=True)
    assert not errors
    assert all(u.startswith("file://") for u in requests)  # no server, no network
    sections = page.eval_on_selector_all("section.board-section", "s => s.map(x => [x.id, x.dataset.protocol])")
    assert [p for _, p in sections] == ["colorbench/2", "colorbench/1"]  # the older run: a table of its own
    new, old = sections[0][0], sections[1][0]
    # each table says where the other numbers are
    assert page.locator(f"#{new} .other-tables a[href='#{old}']").count() == 1
    assert page.locator(f"#{old} .other-tables a[href='#{new}']").count() == 1
    # shared cells merged: unet-l1 of machines A (seed 0) and B (seed 1) is one row, mean ± sd over 2 seeds
    mse = [_records(hub[m])["unet-l1"]["metrics"]["mse"]["value"] for m in ("a", "b")]
    text = _cell_text(page, new, "unet-l1", "mse")
    assert text.startswith(f"{format_value('mse', float(np.mean(mse)))} ± {format_value('mse', float(np.std(mse, ddof=1)))}")
    row = page.locator(f"#{new} tr[data-method='unet-l1']")
    assert row.count() == 1 and row.get_attribute("data-n") == "2"
    # the edited value: a conflict naming both files, the first published value shown
    assert "has-conflict" in row.get_attribute("class")
    conflict_cell = page.locator(f"#{new} tr[data-method='unet-l1'] td.conflict")
    assert conflict_cell.count() == 1
    psnr_a = _records(hub["a"])["unet-l1"]["metrics"]["psnr"]["value"]
    psnr_b = _records(hub["b"])["unet-l1"]["metrics"]["psnr"]["value"]
    assert _cell_text(page, new, "unet-l1", "psnr").startswith(format_value("psnr", (psnr_a + psnr_b) / 2))
    items = page.eval_on_selector_all("#conflicts li", "ls => ls.map(l => l.textContent)")
    assert len(items) == 1 and "psnr" in items[0] and "by alice" in items[0] and "by carol" in items[0]
    assert items[0].count("submissions/") == 2
    # the evaluate row, with its metadata: contaminated (trained on shapes, the test set's source)
    mine = page.locator(f"#{new} tr[data-method='my-model']")
    assert mine.count() == 1 and "is-contaminated" in mine.get_attribute("class")
    assert "contaminated" in mine.inner_text()
    # the older run's rows: only in the colorbench/1 table, with one seed each
    assert page.eval_on_selector_all(f"#{old} tbody tr", "rs => rs.map(r => [r.dataset.method, r.dataset.n])") == [
        ["gray", "1"], ["my-model", "1"], ["unet-l1", "1"]]
    # provenance: who published a row is on it
    assert "alice" in row.inner_text() and "bob" in row.inner_text()


def test_site_sorts_filters_and_keeps_the_view_in_the_url(hub, browser, shots) -> None:
    page, errors, _ = _page(browser)
    index = (hub["site"] / "index.html").as_uri()
    page.goto(index)
    table = page.eval_on_selector("section.board-section", "s => s.id")
    page.click(f"#{table} th[data-key='psnr']")  # ↑ metric: best first
    values = page.eval_on_selector_all(f"#{table} tbody tr", "rs => rs.map(r => r.dataset.method)")
    psnr = {m: float(_cell_text(page, table, m, "psnr").split()[0]) for m in values}
    assert [psnr[m] for m in values] == sorted(psnr.values(), reverse=True)
    assert f"sort={table}:psnr:desc" in page.evaluate("location.hash")
    page.fill("#filter", "unet")
    visible = page.eval_on_selector_all("table.board tbody tr:not([hidden])", "rs => rs.map(r => r.dataset.method)")
    assert set(visible) == {"unet-l1"}
    page.check("#hide-contaminated")
    url = page.url
    assert "filter=unet" in url and "hide=contaminated" in url
    # the address restores the view
    page2, errors2, _ = _page(browser)
    page2.goto(url)
    assert page2.input_value("#filter") == "unet" and page2.is_checked("#hide-contaminated")
    assert set(page2.eval_on_selector_all("table.board tbody tr:not([hidden])",
                                          "rs => rs.map(r => r.dataset.method)")) == {"unet-l1"}
    page2.fill("#filter", "")
    assert "my-model" not in page2.eval_on_selector_all("table.board tbody tr:not([hidden])",
                                                        "rs => rs.map(r => r.dataset.method)")
    # a row is linkable by its anchor
    row_id = page2.eval_on_selector(f"#{table} tr[data-method='gray']", "r => r.id")
    page2.goto(f"{index}#{row_id}")
    assert page2.evaluate("document.querySelector(':target').id") == row_id
    assert not errors and not errors2


def test_method_page_shows_metadata_rows_under_every_protocol_and_samples(hub, browser, shots) -> None:
    page, errors, _ = _page(browser)
    page.goto((hub["site"] / "index.html").as_uri())
    page.click("section.board-section tr[data-method='unet-l1'] a")
    page.wait_for_selector("#method-name")
    assert page.inner_text("#method-name") == "unet-l1"
    page.wait_for_function("() => [...document.images].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(shots / "hub_method.png"), full_page=True)
    meta = page.inner_text("#metadata")
    assert "U-Net" in meta and "shapes:train" in meta and "not declared" in meta  # licence: the card has none
    protocols = page.eval_on_selector_all("#rows h3 code", "cs => cs.map(c => c.textContent)")
    assert protocols == ["colorbench/2", "colorbench/1"]
    prov = page.inner_text("#provenance")
    for who in ("alice", "bob", "carol", "dave"):
        assert who in prov
    assert page.locator("#samples img").count() >= 1
    # the evaluate row's page carries the metadata published with it
    page.goto((hub["site"] / "methods" / "my-model.html").as_uri())
    meta = page.inner_text("#metadata")
    assert "MIT" in meta and "v1.2" in meta and "bilinear ab to the test size" in meta and "256x256" in meta
    assert not errors
