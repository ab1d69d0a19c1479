"""Issue 24's report edges: colourfulness is best closest to the real set (lowest ΔCF), a metric missing for every
row is a note instead of a column of dashes, method names are escaped in leaderboard.md, the raw comparisons
table is folded away at the end of the HTML report."""

from __future__ import annotations

from pathlib import Path

from colorbench.reports.html import write_html_report
from colorbench.reports.tables import leaderboard_markdown
from colorbench.results.records import MetricValue, RunRecord
from colorbench.results.rundir import RunDir, RunInfo

COMMON = dict(preset="quick", dataset={"name": "toy"}, grey_convention="bt601", seed=0, device="cpu",
              dataset_name="toy")


def _mv(metric: str, value, hib: bool, reason: str | None = None) -> MetricValue:
    return MetricValue(value=value, metric=metric, version="1", higher_is_better=hib, params={},
                       missing_reason=reason)


def _records() -> list[RunRecord]:
    """Real set colourfulness 30: 'vivid' is the most colourful (45, ΔCF 15), 'close' the closest (28, ΔCF 2)."""
    out = []
    for name, cf, dcf in (("vivid", 45.0, 15.0), ("close", 28.0, 2.0), ("dull", 10.0, 20.0)):
        out.append(RunRecord(method=name, metrics={
            "mse": _mv("mse", {"vivid": 0.02, "close": 0.03, "dull": 0.01}[name], False),
            "lpips": _mv("lpips", None, False, reason="LPIPS weights not on this machine"),
            "colorfulness": _mv("colorfulness", cf, True),
            "delta_colorfulness": _mv("delta_colorfulness", dcf, False)}, **COMMON))
    return out


def _table(md: str) -> dict[str, dict[str, str]]:
    lines = [ln for ln in md.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    return {cells[0]: dict(zip(header, cells)) for cells in
            ([c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:])}


def test_colourfulness_is_best_closest_to_the_real_set_not_highest():
    md = leaderboard_markdown(_records(), {})
    table = _table(md)
    assert table["close"]["colorfulness → real"] == "**28.00**"  # lowest ΔCF
    assert not table["vivid"]["colorfulness → real"].startswith("**")  # the most saturated does not win
    assert table["close"]["delta_colorfulness ↓"].startswith("**")
    assert table["dull"]["MSE ↓"].startswith("**")  # the other columns keep their direction
    assert "closest to the real images'" in md


def _run_dir(path: Path) -> Path:
    RunDir(path, create=True).write_info(RunInfo(methods=["vivid", "close", "dull"], status="complete"))
    return path


def test_a_metric_missing_for_every_row_is_a_note_not_a_column(tmp_path: Path):
    _run_dir(tmp_path)
    md = leaderboard_markdown(_records(), {})
    assert "LPIPS ↓" not in _table(md)["close"]
    assert "LPIPS is not in the table: no method has a value (LPIPS weights not on this machine)." in md
    html = write_html_report(tmp_path, _records(), {}).read_text()
    assert 'data-key="lpips"' not in html and "LPIPS is not in the table" in html
    assert 'data-key="colorfulness"' in html and "→ real" in html


def test_method_names_are_escaped_in_the_markdown_leaderboard():
    recs = _records()
    recs[0].method = "<script>alert(1)</script>"
    md = leaderboard_markdown(recs, {})
    assert "<script>" not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_the_comparisons_table_is_folded_at_the_end(tmp_path: Path):
    _run_dir(tmp_path)
    (tmp_path / "comparisons.csv").write_text("dataset,metric,method,p_value\ntoy,mse,vivid,0.5\n")
    html = write_html_report(tmp_path, _records(), {}).read_text()
    details = html.index('<details id="comparisons-details">')
    assert html.index('id="comparisons"') > details > html.index('id="sec-browser"')
    assert "Paired comparisons with the best method (1 rows" in html
