"""Pairwise preference studies: Bradley–Terry scores and intervals, attention exclusions, metric agreement, export."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.stats import kendalltau

from colorbench.reports.preference import (Judgement, attention_exclusions, bradley_terry, fit_dataset,
                                           kendall_tau_b, load_preferences, metric_agreement, preference_markdown)

from study_fixtures import TRUE_STRENGTH, SimulatedPerson, make_preference_run


def _simulated(strength: dict[str, float], people: int, per_person: int, seed: int = 0) -> list[Judgement]:
    rng = np.random.default_rng(seed)
    names = sorted(strength)
    out = []
    for p in range(people):
        for t in range(per_person):
            a, b = rng.choice(len(names), 2, replace=False)
            win = rng.random() < 1 / (1 + math.exp(strength[names[b]] - strength[names[a]]))
            chosen, other = (names[a], names[b]) if win else (names[b], names[a])
            out.append(Judgement(f"p{p}", "toyset", f"test:{t:03d}", chosen, other, False, None, 500.0,
                                 {"trial": t}))
    return out


def test_bradley_terry_matches_a_direct_maximum_likelihood_fit() -> None:
    # reference: the Bradley-Terry log-likelihood maximised by scipy (BFGS); choix's I-LSR at alpha=0 is the MLE
    pairs = ([(0, 1)] * 7 + [(1, 0)] * 3 + [(1, 2)] * 6 + [(2, 1)] * 4 + [(0, 2)] * 8 + [(2, 0)] * 2
             + [(3, 0), (0, 3), (3, 2)])
    wins = np.zeros((4, 4))
    for win, lose in pairs:
        wins[win, lose] += 1

    def nll(s: np.ndarray) -> float:
        return sum(np.logaddexp(0, s[lose] - s[win]) for win, lose in pairs)

    ref = minimize(nll, np.zeros(4), method="BFGS", options={"gtol": 1e-10}).x
    assert bradley_terry(wins, alpha=0.0) == pytest.approx(ref - ref.mean(), abs=1e-5)
    got = bradley_terry(wins)  # the default regularization moves these scores by < 0.05
    assert got == pytest.approx(ref - ref.mean(), abs=0.05) and got.mean() == pytest.approx(0, abs=1e-9)
    wins[:, 0] = 0  # method 0 never loses: the MLE is infinite, the regularized score finite and the largest
    got = bradley_terry(wins)
    assert np.all(np.isfinite(got)) and got.argmax() == 0


def test_kendall_tau_b_matches_scipy_with_and_without_ties() -> None:
    rng = np.random.default_rng(3)
    for k in (2, 3, 5, 8):
        y = rng.integers(0, 3, k).astype(float) if k > 3 else rng.normal(size=k)
        xs = np.vstack([rng.normal(size=k), rng.integers(0, 2, k), np.full(k, 1.0), y])
        got = kendall_tau_b(xs, y)
        for x, g in zip(xs, got):
            ref = kendalltau(x, y).statistic
            assert (math.isnan(g) and math.isnan(ref)) or g == pytest.approx(ref, abs=1e-12), (x, y, g, ref)


def test_simulated_people_recover_the_true_order_within_the_intervals() -> None:
    judgements = _simulated(TRUE_STRENGTH, people=30, per_person=40)
    pref = fit_dataset("toyset", judgements, n_boot=300)
    assert pref.methods == sorted(TRUE_STRENGTH, key=lambda m: -TRUE_STRENGTH[m])
    truth = np.asarray([TRUE_STRENGTH[m] for m in pref.methods])
    truth -= truth.mean()
    inside = (pref.ci95[:, 0] <= truth) & (truth <= pref.ci95[:, 1])
    assert inside.sum() >= 3, (pref.scores, pref.ci95, truth)  # 95 % intervals: all four, or by bad luck three
    assert np.all(pref.ci95[:, 0] <= pref.scores) and np.all(pref.scores <= pref.ci95[:, 1])
    assert pref.resampled == "participants" and pref.participants == 30
    assert pref.wins.sum() == len(judgements) and np.all(np.diag(pref.wins) == 0)
    # the win matrix counts exactly: row preferred to column
    i, j = pref.methods.index("alpha"), pref.methods.index("delta")
    assert pref.wins[i, j] == sum(1 for x in judgements if (x.chosen, x.other) == ("alpha", "delta"))


def test_intervals_shrink_with_more_people() -> None:
    small = fit_dataset("toyset", _simulated(TRUE_STRENGTH, people=8, per_person=40), n_boot=200)
    large = fit_dataset("toyset", _simulated(TRUE_STRENGTH, people=64, per_person=40), n_boot=200)
    width = lambda p: float(np.mean(p.ci95[:, 1] - p.ci95[:, 0]))  # noqa: E731
    assert width(large) < 0.6 * width(small)


def test_attention_failures_exclude_the_participant() -> None:
    j = [Judgement("a", "d", "i", "real", "attention:inverted_ab", True, True, 1.0, {}),
         Judgement("b", "d", "i", "attention:inverted_ab", "real", True, False, 1.0, {}),
         Judgement("b", "d", "i", "real", "attention:inverted_ab", True, True, 1.0, {})]
    assert attention_exclusions(j) == {"b"}
    assert attention_exclusions(j, max_failures=1) == set()


class _MV:
    def __init__(self, value: float, hib: bool) -> None:
        self.value, self.higher_is_better = value, hib


class _Rec:
    def __init__(self, method: str, **metrics: tuple[float, bool]) -> None:
        self.method, self.seed, self.dataset_name, self.status = method, 0, "toyset", "ok"
        self.metrics = {k: _MV(*v) for k, v in metrics.items()}


def test_metric_agreement_orients_each_metric_and_counts_judgements() -> None:
    judgements = _simulated(TRUE_STRENGTH, people=20, per_person=30)
    pref = fit_dataset("toyset", judgements, n_boot=200)
    s = TRUE_STRENGTH
    recs = [_Rec(m, err=(10 - s[m], False), good=(s[m], True), flat=(1.0, True), backwards=(s[m], False))
            for m in s]
    got = {a.metric: a for a in metric_agreement(pref, judgements, recs)}
    assert got["err"].tau == pytest.approx(1.0) and got["good"].tau == pytest.approx(1.0)
    assert got["backwards"].tau == pytest.approx(-1.0)
    assert got["err"].pairwise_accuracy == got["good"].pairwise_accuracy > 0.6
    assert got["backwards"].pairwise_accuracy == pytest.approx(1 - got["good"].pairwise_accuracy)
    assert got["flat"].pairwise_accuracy == 0.5 and math.isnan(got["flat"].tau)  # all tied: no ranking
    assert got["err"].basis == "method means" and got["err"].n_judgements == len(judgements)
    lo, hi = got["good"].tau_ci95
    assert -1 <= lo <= got["good"].tau <= hi <= 1
    # per-image values: the metric's verdict on the very image of each judgement
    per = {m: {"good": {f"test:{t:03d}": s[m] + (5.0 if (m == "delta" and t % 2 == 0) else 0.0) for t in range(30)}}
           for m in s}
    img = {a.metric: a for a in metric_agreement(pref, judgements, recs, per)}["good"]
    assert img.basis == "per image" and img.pairwise_accuracy < got["good"].pairwise_accuracy
    assert img.tau == got["good"].tau  # τ ranks the methods by their means either way
    kt = kendalltau([pref.scores[pref.methods.index(m)] for m in s], [s[m] for m in s]).statistic
    assert got["good"].tau == pytest.approx(kt)


def test_pairwise_study_end_to_end_over_http_recovers_the_order(tmp_path: Path) -> None:
    """Simulated people answer a served pairwise study; the report ranks the methods as their true strengths do,
    leaves out the inattentive participant, and mse/psnr agree with people while chroma does not."""
    from colorbench.reports import write_report

    from test_study_server import Client, serving

    run_dir = make_preference_run(tmp_path)
    with serving(run_dir, kind="pairwise", n_trials=24, n_attention=3) as server:
        client = Client(server.server_address)
        for k in range(8):
            person = SimulatedPerson(seed=k, attentive=k != 7)  # participant 7 fails every check
            status, state = client.post("/api/session", {})
            inattentive = state["participant"]
            while "current" in state:
                status, png = client.request("GET", state["current"]["image"])
                assert status == 200
                status, state = client.answer(state, person.choose(png))
                assert status == 200
    result = load_preferences(run_dir, n_boot=300)
    pref = result.datasets["toyset"]
    assert pref.methods == sorted(TRUE_STRENGTH, key=lambda m: -TRUE_STRENGTH[m])
    assert result.participants == 8 and result.attention_checks == 8 * 3
    assert result.excluded == {inattentive} and pref.participants == 7 and pref.n_judgements == 7 * 24
    agree = {a.metric: a for a in result.agreements}
    assert agree["mse"].tau == pytest.approx(1.0) and agree["psnr"].tau == pytest.approx(1.0)
    assert agree["chroma"].tau < 0.5 and agree["mse"].basis == "per image"
    assert agree["mse"].pairwise_accuracy > agree["chroma"].pairwise_accuracy
    out = write_report(run_dir)
    md = out["leaderboard"].read_text()
    assert "## Pairwise preference" in md and "| Metric | Kendall τ |" in md and "Win matrix" in md
    rows = list(csv.DictReader(out["judgements_csv"].open()))
    assert len(rows) == 8 * 27 and sum(r["attention"] == "True" for r in rows) == 8 * 3
    assert sum(r["excluded"] == "True" for r in rows) == 27
    assert len(out["judgements_jsonl"].read_text().splitlines()) == 8 * 27
    assert {r["excluded"] for r in rows} <= {"True", "False"}
    html = out["html"].read_text()
    assert 'id="sec-preference"' in html and "win-matrix" in html and 'data-metric="mse"' in html
    assert "8 participant(s); 1 excluded" in md
    assert ("Never lost: alpha" in md) == (pref.wins[:, 0].sum() == 0)
    assert preference_markdown(result).splitlines()[0] in md
