"""The HTML report and both studies (naturalness, pairwise) in a real headless Chromium (Playwright driving Debian's chromium).

Screenshots go to ``$COLORBENCH_SCREENSHOTS`` when it is set (to look at them), else to the test's tmp folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colorbench.reports import write_report
from colorbench.reports.naturalness import load_study, wilson_interval

from html_fixtures import CHROMIUM, IDS, make_run_dir, per_image_values

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the test extra) is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (`apt-get install -y chromium`; .ci/run does)",
                allow_module_level=True)


class Watched:
    """A page with every console error, page error and request recorded."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))


@pytest.fixture
def report_run(tmp_path: Path) -> Path:
    """A run directory in the typed layout (per-image values, the whole test split) and its report."""
    run_dir = make_run_dir(tmp_path)
    write_report(run_dir)
    return run_dir


def _column(page, key: str) -> list[str]:
    return page.eval_on_selector_all("#leaderboard tbody tr", "rows => rows.map(r => r.dataset.method)")


def test_report_loads_from_file_sorts_and_pages(browser, report_run: Path, shots: Path) -> None:
    w = Watched(browser)
    page = w.page
    page.goto((report_run / "index.html").as_uri())
    page.wait_for_selector("#browser tbody tr")
    # every image of the first page loaded (lazy images in view), from the thumbnail strips on disk
    page.locator("#sec-browser").scroll_into_view_if_needed()
    page.wait_for_function("() => [...document.querySelectorAll('#browser tbody tr:first-child img')]"
                           ".every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(shots / "report_top.png"), full_page=False)
    loading = page.eval_on_selector_all("#browser tbody img", "is => [...new Set(is.map(i => i.loading))]")
    assert loading == ["lazy"]  # thumbnails load only when scrolled into view
    assert page.locator("#browser tbody tr").count() == 20  # one page of rows in the DOM, not all 45

    # sorting: psnr ↑ -> best (highest) first, then reversed; the failed row (no value) always last
    psnr = {m: float(per_image_values(m)["psnr"].mean()) for m in ("alpha", "beta")}
    by_psnr = sorted(psnr, key=psnr.get, reverse=True)
    page.click('#leaderboard th[data-key="psnr"]')
    assert _column(page, "psnr") == [*by_psnr, "broken"]
    assert page.get_attribute('#leaderboard th[data-key="psnr"]', "aria-sort") == "descending"
    page.click('#leaderboard th[data-key="psnr"]')
    assert _column(page, "psnr") == [*by_psnr[::-1], "broken"]
    page.click('#leaderboard th[data-key="train_s"]')  # alpha trained 1.5 s, beta 2.5 s
    assert _column(page, "train_s") == ["alpha", "beta", "broken"]
    page.click('#leaderboard th[data-key="method"]')
    assert _column(page, "method") == ["alpha", "beta", "broken"]

    # paging: 45 images, 20 a page
    label = page.locator("#browser-page")
    assert label.text_content() == "page 1 / 3"
    first_ids = lambda: page.eval_on_selector_all("#browser tbody tr", "rs => rs.map(r => r.dataset.image)")  # noqa: E731
    assert first_ids() == IDS[:20]
    page.click("#browser-next")
    page.wait_for_function("() => document.querySelector('#browser-page').textContent === 'page 2 / 3'")
    assert first_ids() == IDS[20:40]
    page.click("#browser-next")
    page.wait_for_function("() => document.querySelector('#browser-page').textContent === 'page 3 / 3'")
    assert first_ids() == IDS[40:] and page.is_disabled("#browser-next")
    page.click("#browser-prev")
    page.wait_for_function("() => document.querySelector('#browser-page').textContent === 'page 2 / 3'")

    # worst N of beta by mse: the N largest per-image values, in order, with the value highlighted
    mse = per_image_values("beta")["mse"]
    page.select_option("#browser-mode", "worst")
    page.select_option("#browser-method", label="beta")
    page.select_option("#browser-metric", "mse")
    page.fill("#browser-n", "7")
    page.dispatch_event("#browser-n", "change")
    page.wait_for_function("() => document.querySelector('#browser-page').textContent === 'page 1 / 1'")
    worst = [IDS[i] for i in np.argsort(-mse, kind="stable")[:7]]
    assert first_ids() == worst
    hit = page.locator("#browser tbody tr:first-child .vals .hit").text_content()
    assert hit.startswith("MSE ") and float(hit.split()[-1]) == pytest.approx(mse.max(), rel=1e-3)
    page.select_option("#browser-mode", "best")
    page.wait_for_function(f"() => document.querySelector('#browser tbody tr').dataset.image === "
                           f"{json.dumps(IDS[int(np.argmin(mse))])}")
    page.locator("#sec-browser").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "report_best.png"), full_page=False)

    # zoom: the row's grey | methods | real, enlarged
    page.click("#browser tbody tr:first-child td:nth-child(2) .thumb")
    assert page.is_visible("#zoom"), (w.errors, page.evaluate("() => document.querySelector('#zoom').outerHTML.slice(0, 300)"))
    assert page.locator("#zoom-body figure").count() == 4  # grey, alpha, beta, real (broken has no images)
    page.wait_for_function("() => [...document.querySelectorAll('#zoom-body img')].every(i => i.complete && i.naturalWidth > 0)")
    page.screenshot(path=str(shots / "report_zoom.png"), full_page=False)
    page.keyboard.press("Escape")
    assert not page.is_visible("#zoom")
    page.screenshot(path=str(shots / "report_full.png"), full_page=True)

    assert w.errors == []
    assert w.requests and all(u.startswith("file://") for u in w.requests), [u for u in w.requests if not u.startswith("file://")]
    page.close()


def test_multi_seed_leaderboard_sorts_the_aggregated_rows(browser, tmp_path: Path, shots: Path) -> None:
    """Two seeds: #leaderboard has one row per method (mean over seeds) and sorts; the per-seed table sorts apart."""
    from html_fixtures import SEED1_MSE_FACTOR, add_seed

    run_dir = make_run_dir(tmp_path)
    add_seed(run_dir)
    write_report(run_dir)
    w = Watched(browser)
    page = w.page
    page.goto((run_dir / "index.html").as_uri())
    mse = {m: float(per_image_values(m)["mse"].mean()) * (1 + SEED1_MSE_FACTOR[m]) / 2 for m in ("alpha", "beta")}
    page.click('#leaderboard th[data-key="mse"]')  # ↓: lowest mean first, the failed method (no value) last
    assert _column(page, "mse") == [*sorted(mse, key=mse.get), "broken"]
    assert page.get_attribute('#leaderboard th[data-key="mse"]', "aria-sort") == "ascending"
    page.click('#leaderboard th[data-key="mse"]')
    assert _column(page, "mse") == [*sorted(mse, key=mse.get, reverse=True), "broken"]
    page.click('#leaderboard th[data-key="train_s"]')  # mean over seeds: alpha (1.5 + 2.5) / 2, beta (2.5 + 3.5) / 2
    assert _column(page, "train_s") == ["alpha", "beta", "broken"]
    assert page.locator("#leaderboard tbody tr").count() == 3
    cell = page.locator('#leaderboard tr[data-method="alpha"] td[data-key="mse"]').text_content()
    assert cell.endswith("(n=2)") or cell.endswith("(n=2) ≈")
    # the per-seed table: collapsed, six cells; it sorts on its own without touching the aggregated order
    assert not page.is_visible("#leaderboard-seeds")
    page.click("#per-seed summary")
    assert page.is_visible("#leaderboard-seeds")
    page.click('#leaderboard-seeds th[data-key="mse"]')
    per_cell = {(m, s): float(per_image_values(m)["mse"].mean()) * (SEED1_MSE_FACTOR[m] if s == "1" else 1)
                for m in ("alpha", "beta") for s in ("0", "1")}
    got = page.eval_on_selector_all("#leaderboard-seeds tbody tr",
                                    "rs => rs.map(r => [r.dataset.method, r.cells[1].textContent])")
    assert [tuple(g) for g in got[:4]] == sorted(per_cell, key=per_cell.get) and len(got) == 6
    assert _column(page, "train_s") == ["alpha", "beta", "broken"]
    page.locator("#sec-leaderboard").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "report_seeds.png"), full_page=False)
    assert w.errors == [] and all(u.startswith("file://") for u in w.requests)
    page.close()


# --- the studies -----------------------------------------------------------------------------------------------


@pytest.fixture
def study_server(tmp_path: Path):
    from test_study_server import serving

    run_dir = make_run_dir(tmp_path)
    (run_dir / "secret.txt").write_text("not for participants")
    with serving(run_dir, n_trials=6, pool=10) as server:
        yield server


def _answer_in_browser(page, side: str, k: int, n: int) -> None:
    page.wait_for_selector(f'button[data-choice="{side}"]:not([disabled])')
    page.click(f'button[data-choice="{side}"]')
    page.wait_for_function(f"() => document.querySelector('#progress').textContent === '{k} / {n}'")


def test_study_records_each_click_and_the_report_shows_fooling_rates(browser, study_server, shots: Path) -> None:
    server = study_server
    run_dir = server.state.run_dir
    w = Watched(browser)
    page = w.page
    page.goto(server.url)
    page.screenshot(path=str(shots / "study_intro.png"))
    page.click("#start")
    page.wait_for_selector('button[data-choice="left"]:not([disabled])')
    assert page.text_content("#progress") == "0 / 6"
    page.screenshot(path=str(shots / "study_trial.png"))
    clicks = ["left", "right", "left", "left", "right", "right"]
    for k, side in enumerate(clicks[:3], 1):
        _answer_in_browser(page, side, k, 6)
    page.reload()  # a reload goes on where it was (the participant id is in sessionStorage)
    page.click("#start")
    page.wait_for_function("() => document.querySelector('#progress').textContent === '3 / 6'")
    for k, side in enumerate(clicks[3:], 4):
        _answer_in_browser(page, side, k, 6)
    page.wait_for_selector("#done", state="visible")
    page.screenshot(path=str(shots / "study_done.png"))
    assert w.errors == []
    # the page only ever asked for the page, the API and one composite image per trial, each under its own name
    images = {u for u in w.requests if "/images/" in u}
    assert len(images) == 6 and all(u.startswith(server.url) for u in w.requests)

    lines = [json.loads(line) for line in (run_dir / "study" / "responses.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and len(server.state.sessions) == 1
    session = next(iter(server.state.sessions.values()))
    assert sorted(line["trial"] for line in lines) == list(range(6))
    for line in lines:
        trial = session.trials[line["trial"]]
        assert line["choice"] == clicks[line["trial"]]
        assert line["method"] in (trial["left"], trial["right"]) and trial[line["real_side"]] == "real"
        assert line["dataset"] == "toyset" and line["method"] in ("alpha", "beta")
        assert line["chose_real"] == (line["choice"] == line["real_side"]) and line["rt_ms"] >= 0
    assert sum(line["method"] == "alpha" for line in lines) == 3  # arms in turn: 3 trials each
    assert len({line["image"] for line in lines}) == 6  # no photo twice in one session

    # the report then shows each method's fooling rate with its Wilson interval and n
    study = load_study(run_dir)
    out = write_report(run_dir)
    for method in ("alpha", "beta"):
        rate = study.rates[("toyset", method)]
        lo, hi = wilson_interval(rate.fooled, rate.n)
        assert rate.n == 3
        assert f"{100 * rate.rate:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (n=3)" in out["leaderboard"].read_text()
        page.goto(out["html"].as_uri())
        cell = page.locator(f'#leaderboard tr[data-method="{method}"] td[data-key="fooling_rate"]').text_content()
        assert cell == f"{100 * rate.rate:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] n=3"
    page.click('#leaderboard th[data-key="fooling_rate"]')
    page.locator("#sec-study").scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "report_with_study.png"), full_page=True)
    assert w.errors == []
    page.close()


def test_study_page_goes_on_when_its_answer_was_already_given(browser, study_server) -> None:
    from test_study_server import Client

    w = Watched(browser)
    w.page.goto(study_server.url)
    w.page.click("#start")
    w.page.wait_for_selector('button[data-choice="left"]:not([disabled])')
    participant = w.page.evaluate("() => sessionStorage.getItem('colorbench-study-participant')")
    client = Client(study_server.server_address)  # the same trial answered elsewhere (another tab, a retry)
    status, state = client.post("/api/next", {"participant": participant})
    assert status == 200 and client.answer(state, "right")[0] == 200
    w.page.click('button[data-choice="left"]')  # the server says 409: the page moves on to trial 2 of 6
    w.page.wait_for_function("() => document.querySelector('#progress').textContent === '1 / 6'")
    assert "already answered" in w.page.text_content("#error")
    _answer_in_browser(w.page, "left", 2, 6)
    assert w.page.text_content("#error") == ""
    assert [e for e in w.errors if "409" not in e] == []  # the browser logs the refused request itself
    w.page.close()


def test_study_hides_the_pair_after_the_display_time(browser, tmp_path: Path) -> None:
    from test_study_server import serving

    run_dir = make_run_dir(tmp_path, layout="flat")  # the earlier layout: the sample images
    with serving(run_dir, n_trials=2, pool=5, seconds=0.3) as server:
        w = Watched(browser)
        w.page.goto(server.url)
        assert "shown for 0.3 s" in w.page.text_content("#intro")
        w.page.click("#start")
        w.page.wait_for_selector('button[data-choice="right"]:not([disabled])')
        w.page.wait_for_selector("#frame.hidden", timeout=5000)  # hidden after 0.3 s; still answerable
        assert w.page.is_visible('button[data-choice="right"]')
        w.page.click('button[data-choice="right"]')
        w.page.wait_for_function("() => document.querySelector('#progress').textContent === '1 / 2'")
        line = json.loads((run_dir / "study" / "responses.jsonl").read_text())
        assert line["seconds"] == 0.3 and line["rt_ms"] >= 300 and line["choice"] == "right"
        assert w.errors == []
        w.page.close()


@pytest.mark.slow  # 56 clicks in Chromium and a report: ~30 s on a loaded 2-core machine
def test_pairwise_study_in_chromium_gives_bradley_terry_scores_and_metric_agreement(browser, tmp_path: Path,
                                                                                      shots: Path) -> None:
    """Simulated people with known preferences do a pairwise study in Chromium (each looks at the composite the
    page shows and clicks a side, or half of the image); the report shows the Bradley–Terry scores with intervals,
    the win matrix and the metric-agreement table (that such people's order is recovered is tested over HTTP with
    more of them: test_preference.py)."""
    import urllib.request

    from colorbench.reports.preference import load_preferences

    from study_fixtures import TRUE_STRENGTH, SimulatedPerson, make_preference_run
    from test_study_server import serving

    run_dir = make_preference_run(tmp_path)
    n_people, n_trials, n_checks = 4, 12, 2
    with serving(run_dir, kind="pairwise", n_trials=n_trials, n_attention=n_checks) as server:
        for k in range(n_people):
            person = SimulatedPerson(seed=k, attentive=k != 0)  # the first one fails the attention checks
            w = Watched(browser)
            page = w.page
            page.goto(server.url)
            if k == 1:
                page.screenshot(path=str(shots / "pairwise_intro.png"))
                assert "Which looks more natural?" in page.text_content("h1")
            page.click("#start")
            for t in range(n_trials + n_checks):
                page.wait_for_selector('button[data-choice="left"]:not([disabled])')
                src = page.get_attribute("#pair", "src")
                with urllib.request.urlopen(server.url.rstrip("/") + src, timeout=10) as res:  # what the page shows
                    side = person.choose(res.read())
                if k == 1 and t == 0:
                    page.screenshot(path=str(shots / "pairwise_trial.png"))
                if t % 2:
                    page.click(f'button[data-choice="{side}"]')
                else:  # or a click on that half of the image
                    page.click(f'.half.{side}')
                page.wait_for_function(
                    f"() => document.querySelector('#progress').textContent === '{t + 1} / {n_trials + n_checks}'")
            page.wait_for_selector("#done", state="visible")
            assert w.errors == []
            page.close()
    result = load_preferences(run_dir, n_boot=200)
    assert len(result.excluded) == 1 and result.participants == n_people
    pref = result.datasets["toyset"]
    assert sorted(pref.methods) == sorted(TRUE_STRENGTH) and pref.n_judgements == (n_people - 1) * n_trials
    assert np.all(pref.ci95[:, 0] <= pref.scores) and np.all(pref.scores <= pref.ci95[:, 1])
    out = write_report(run_dir)
    w = Watched(browser)
    page = w.page
    page.goto(out["html"].as_uri())
    rows = page.eval_on_selector_all(".preference-scores tbody tr", "rs => rs.map(r => r.dataset.method)")
    assert rows == pref.methods
    shown = page.eval_on_selector_all('.preference-scores td[data-key="bt_score"]', "cs => cs.map(c => c.textContent)")
    assert shown == [f"{x:+.2f}" for x in pref.scores]
    assert page.locator(".win-matrix tbody tr").count() == 4
    metrics = page.eval_on_selector_all(".metric-agreement tbody tr", "rs => rs.map(r => r.dataset.metric)")
    assert set(metrics) == {"mse", "psnr", "chroma"}
    page.locator("#sec-preference").scroll_into_view_if_needed()
    page.locator("#sec-preference").screenshot(path=str(shots / "report_preference.png"))
    assert w.errors == []
    page.close()


def test_one_view_per_dataset(browser, tmp_path: Path, shots: Path) -> None:
    from colorbench.results.rundir import CellEntry, RunDir

    from html_fixtures import images, records

    run_dir = make_run_dir(tmp_path)
    rec = records()[1]
    rec.dataset, rec.dataset_name = {"name": "other"}, "other"
    RunDir(run_dir).write_cell(CellEntry(key="k-o", dataset="other", method="beta", preset="quick", seed=0), rec,
                               predictions=(images()["beta"][:5], IDS[:5]))
    write_report(run_dir)
    w = Watched(browser)
    page = w.page
    page.goto((run_dir / "index.html").as_uri())
    visible = lambda: page.eval_on_selector_all(  # noqa: E731
        "#leaderboard tbody tr", "rs => rs.filter(r => r.offsetParent !== null).map(r => r.dataset.method + '@' + r.dataset.dataset)")
    assert visible() == ["alpha@toyset", "beta@toyset", "broken@toyset"]
    assert page.text_content("#browser-page") == "page 1 / 3"
    assert page.is_visible("#failed-runs")  # broken failed on toyset
    page.click('.dataset-tab[data-dataset="other"]')
    assert visible() == ["beta@other"] and not page.is_visible("#failed-runs")
    page.wait_for_function("() => document.querySelector('#browser-page').textContent === 'page 1 / 1'")
    assert page.eval_on_selector_all("#browser thead th", "hs => hs.map(h => h.textContent)") == ["id", "beta"]
    page.screenshot(path=str(shots / "report_other_dataset.png"))
    page.click('.dataset-tab[data-dataset="toyset"]')
    assert visible() == ["alpha@toyset", "beta@toyset", "broken@toyset"]
    assert w.errors == [] and all(u.startswith("file://") for u in w.requests)
    page.close()
