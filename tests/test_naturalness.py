"""Fooling rates of the naturalness study: the Wilson interval, reading responses, the Markdown leaderboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import binomtest

from colorbench.reports.naturalness import load_study, naturalness_markdown, wilson_interval
from colorbench.reports.tables import leaderboard_markdown

from html_fixtures import make_run_dir, records


# Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of seven methods",
# Statistics in Medicine 17:857-872, Table I, method 3 (score interval without continuity correction): the
# published bounds, to 4 decimals.
NEWCOMBE_TABLE_I = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (29, 29, 0.8830, 1.0000),
]


@pytest.mark.parametrize(("k", "n", "lo", "hi"), NEWCOMBE_TABLE_I)
def test_wilson_matches_newcombe_table(k: int, n: int, lo: float, hi: float) -> None:
    got = wilson_interval(k, n)
    assert got == pytest.approx((lo, hi), abs=5e-5)


@pytest.mark.parametrize(("k", "n"), [(0, 1), (1, 1), (3, 7), (50, 100), (17, 40), (399, 1000), (1, 10_000)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), rel=1e-12, abs=1e-15)


def test_wilson_rejects_impossible_counts() -> None:
    for k, n in [(1, 0), (-1, 5), (6, 5)]:
        with pytest.raises(ValueError, match="0 <= k <= n"):
            wilson_interval(k, n)


def _line(participant: str, trial: int, method: str, real_side: str, choice: str) -> str:
    return json.dumps({"participant": participant, "trial": trial, "dataset": "toyset", "image": f"test:{trial:03d}",
                       "method": method, "real_side": real_side, "choice": choice, "rt_ms": 800.0}) + "\n"


def test_load_study_counts_fooled_trials_once_and_skips_torn_lines(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    lines = [
        _line("p1", 0, "alpha", "left", "right"),  # fooled
        _line("p1", 1, "alpha", "right", "right"),  # not fooled
        _line("p1", 1, "alpha", "right", "left"),  # the same trial again: ignored
        _line("p2", 0, "alpha", "left", "right"),  # fooled
        _line("p2", 1, "beta", "left", "left"),  # not fooled
        '{"participant": "p3", "trial": 0, "dataset": "toys',  # torn last line of a killed server
    ]
    (study / "responses.jsonl").write_text("".join(lines[:-1]) + lines[-1])
    result = load_study(tmp_path)
    assert result is not None
    alpha, beta = result.rates[("toyset", "alpha")], result.rates[("toyset", "beta")]
    assert (alpha.fooled, alpha.n) == (2, 3) and (beta.fooled, beta.n) == (0, 1)
    assert result.n_bad == 1 and result.n_lines == 6 and result.participants == 2
    assert alpha.ci95 == wilson_interval(2, 3)
    text = naturalness_markdown(result)
    assert "| toyset | alpha | 66.7 % | [20.8, 93.9] | 3 |" in text  # Wilson(2, 3) = [0.2077, 0.9385]
    assert "1 of 6 response lines" in text


def test_no_study_no_result(tmp_path: Path) -> None:
    assert load_study(tmp_path) is None


def test_markdown_leaderboard_gains_fooling_rate_column(tmp_path: Path) -> None:
    recs = records()
    md = leaderboard_markdown(recs, naturalness={"alpha": "41.7 % [28.8, 55.7] (n=48)"})
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    assert "Fooling rate ↑" in header
    alpha = next(line for line in md.splitlines() if line.startswith("| alpha"))
    beta = next(line for line in md.splitlines() if line.startswith("| beta"))
    assert "41.7 % [28.8, 55.7] (n=48)" in alpha and "| — |" in beta
    assert "Fooling rate ↑" not in leaderboard_markdown(recs)


def test_report_reads_study_responses(tmp_path: Path) -> None:
    from colorbench.reports import write_report

    run_dir = make_run_dir(tmp_path)
    (run_dir / "study").mkdir()
    (run_dir / "study" / "responses.jsonl").write_text(
        "".join(_line("p", t, "alpha", "left", "right" if t % 4 == 0 else "left") for t in range(20)))
    out = write_report(run_dir)
    md = out["leaderboard"].read_text()
    lo, hi = wilson_interval(5, 20)
    assert f"25.0 % [{100 * lo:.1f}, {100 * hi:.1f}] (n=20)" in md
    assert "## Naturalness (2AFC study)" in md
    assert "25.0 %" in out["html"].read_text()


def test_several_seeds_of_a_method_are_arms_of_their_own(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    study.joinpath("responses.jsonl").write_text(
        _line("p", 0, "alpha (seed 1)", "left", "right") + _line("p", 1, "alpha (seed 2)", "left", "left"))
    result = load_study(tmp_path)
    assert result.for_method("toyset", "alpha", 1).fooled == 1 and result.for_method("toyset", "alpha", 2).fooled == 0
    assert result.for_method("toyset", "alpha") is None and result.for_method("other", "alpha", 1) is None


def test_study_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from colorbench.commands.cli import build_parser, main

    args = build_parser().parse_args(["study", str(tmp_path), "--methods", "alpha,beta", "--trials", "5"])
    assert (args.host, args.port, args.methods, args.trials, args.seconds) == ("127.0.0.1", 8000, ("alpha", "beta"), 5, None)
    assert (args.kind, args.attention_checks, args.allow_host) == ("naturalness", None, [])
    assert main(["study", str(tmp_path / "nowhere")]) == 2
    assert "not a colorbench run directory" in capsys.readouterr().err
    run_dir = make_run_dir(tmp_path)
    assert main(["study", str(run_dir), "--methods", "gamma"]) == 2
    assert "unknown method(s) ['gamma']" in capsys.readouterr().err
    assert main(["study", str(run_dir), "--trials", "0", "--port", "0"]) == 2
    assert "--trials must be >= 1" in capsys.readouterr().err
    assert main(["study", str(run_dir), "--kind", "pairwise", "--methods", "alpha", "--port", "0"]) == 2
    assert "a pairwise study needs at least two methods" in capsys.readouterr().err
    assert not (run_dir / "study" / "sessions.jsonl").exists()  # refused before any session was made


def test_attention_checks_are_not_a_method_and_failing_one_excludes_the_participant(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()

    def check(participant: str, trial: int, passed: bool) -> str:
        return json.dumps({"participant": participant, "trial": trial, "dataset": "toyset", "image": "test:000",
                           "method": "attention:inverted_ab", "real_side": "left", "choice": "left" if passed else "right",
                           "attention": True, "rt_ms": 500.0}) + "\n"

    study.joinpath("responses.jsonl").write_text(
        _line("good", 0, "alpha", "left", "right") + check("good", 1, True)
        + _line("bad", 0, "alpha", "left", "right") + _line("bad", 1, "alpha", "left", "right") + check("bad", 2, False))
    result = load_study(tmp_path)
    assert set(result.rates) == {("toyset", "alpha")}  # the checks are no method's trials
    assert (result.rates[("toyset", "alpha")].fooled, result.rates[("toyset", "alpha")].n) == (1, 1)  # "bad" left out
    assert (result.participants, result.excluded, result.attention_checks) == (2, 1, 2)
    assert "1 participant(s) failed an attention check" in naturalness_markdown(result)
