"""Pairwise preference studies (``colorbench study RUN --kind pairwise``): who wins, by how much, and which metric
agrees with people.

Each line of ``RUN/study/preferences.jsonl`` is one judgement: two methods' colorizations of the same grey image
were shown side by side and the participant clicked the one that looked more natural. From them, per dataset:

* the **win matrix**: ``wins[i, j]`` = judgements in which method i was preferred to method j;
* **Bradley–Terry scores** (log-strengths, mean 0; P(i preferred to j) = 1 / (1 + exp(s_j - s_i))), fitted by
  ``choix.ilsr_pairwise_dense`` (the maximum-likelihood estimate at ``alpha = 0``) with choix's small
  regularization ``alpha`` so that a method that never loses keeps a finite score,
  with **95 % percentile bootstrap intervals** resampling participants (their judgements are not independent;
  with a single participant, judgements are resampled and the report says so);
* each metric's **agreement with people**: Kendall τ between the metric's ranking of the methods (its
  ``higher_is_better`` orientation) and the Bradley–Terry ranking, with an interval from the same bootstrap
  replicates, and **pairwise accuracy**: the share of judgements in which the metric prefers the method the
  person chose, on that very image when the run has per-image values (ties count one half).

Attention checks (a real image against an obviously wrong colorization) are scored per participant; a participant
who fails more than ``max_attention_failures`` of them is left out of everything above and counted. All judgements,
attention checks included, are exported to ``study/judgements.csv`` and ``.jsonl`` with an ``excluded`` column.

Nothing here imports torch: a report reads only the run directory.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

#: Where ``colorbench study --kind pairwise`` appends its judgements, relative to the run directory.
PREFERENCES = Path("study") / "preferences.jsonl"
#: Bootstrap replicates of the Bradley–Terry scores (and of Kendall τ).
N_BOOTSTRAP = 1000
#: Regularization of the Bradley–Terry fit (choix's ``alpha``): keeps scores finite when a method never loses.
BT_ALPHA = 0.01
#: Attention checks a participant may fail and still count.
MAX_ATTENTION_FAILURES = 0


@dataclass(frozen=True)
class Judgement:
    participant: str
    dataset: str
    image: str
    chosen: str
    other: str
    attention: bool
    passed: bool | None  # attention checks only: the real image was chosen
    rt_ms: float
    line: dict[str, Any] = field(compare=False, repr=False, hash=False)


@dataclass
class DatasetPreference:
    """The Bradley–Terry result of one dataset."""

    dataset: str
    methods: list[str]  # in descending score order
    scores: np.ndarray  # (k,) log-strengths, mean 0
    ci95: np.ndarray  # (k, 2) percentile bootstrap interval
    wins: np.ndarray  # (k, k) wins[i, j]: i preferred to j
    n_judgements: int
    participants: int
    resampled: str  # "participants" or "judgements"
    replicates: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0)))  # (B, k) bootstrap scores


@dataclass
class MetricAgreement:
    """How well one metric's ranking of the methods agrees with people's, on one dataset."""

    dataset: str
    metric: str
    higher_is_better: bool
    n_methods: int
    tau: float
    tau_ci95: tuple[float, float]
    pairwise_accuracy: float
    n_judgements: int
    basis: str  # "per image" or "method means"


@dataclass
class PreferenceResult:
    datasets: dict[str, DatasetPreference]
    agreements: list[MetricAgreement]
    judgements: list[Judgement]
    excluded: set[str]  # participants left out for failed attention checks
    participants: int  # all participants with a judgement
    attention_checks: int  # attention trials answered (all participants)
    n_lines: int
    n_bad: int
    params: dict[str, Any]


def read_judgements(path: str | Path) -> tuple[list[Judgement], int, int]:
    """The judgements of a preferences file, the number of lines, and how many were not complete judgements.

    A participant's repeated answer to the same trial counts once (the first one)."""
    out: list[Judgement] = []
    seen: set[tuple[Any, Any]] = set()
    n_lines = n_bad = 0
    with open(path, encoding="utf-8") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            n_lines += 1
            try:
                obj = json.loads(raw)
                j = Judgement(str(obj["participant"]), str(obj["dataset"]), str(obj["image"]), str(obj["chosen"]),
                              str(obj["other"]), bool(obj.get("attention", False)),
                              obj.get("passed") if obj.get("attention") else None, float(obj.get("rt_ms", math.nan)),
                              obj)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                n_bad += 1
                continue
            ident = (j.participant, obj.get("trial"))
            if ident in seen:
                continue
            seen.add(ident)
            out.append(j)
    return out, n_lines, n_bad


def attention_exclusions(judgements: Sequence[Judgement], max_failures: int = MAX_ATTENTION_FAILURES) -> set[str]:
    """Participants who failed more than ``max_failures`` attention checks."""
    failed: dict[str, int] = {}
    for j in judgements:
        if j.attention and not j.passed:
            failed[j.participant] = failed.get(j.participant, 0) + 1
    return {p for p, n in failed.items() if n > max_failures}


def bradley_terry(wins: np.ndarray, alpha: float = BT_ALPHA) -> np.ndarray:
    """Bradley–Terry log-strengths (mean 0) from a win matrix (``wins[i, j]``: i preferred to j), by choix's I-LSR.

    ``alpha = 0`` gives the maximum-likelihood estimate (infinite for a method that never loses); ``alpha > 0``
    starts every transition rate of choix's Markov chain at ``alpha``, which keeps such scores finite and pulls
    the others slightly towards 0.
    """
    import choix

    wins = np.asarray(wins, dtype=float)
    if not wins.any():
        return np.zeros(len(wins))
    return np.asarray(choix.ilsr_pairwise_dense(wins, alpha=alpha), dtype=float)


def fit_dataset(dataset: str, judgements: Sequence[Judgement], n_boot: int = N_BOOTSTRAP, seed: int = 0,
                alpha: float = BT_ALPHA) -> DatasetPreference:
    """Win matrix, Bradley–Terry scores and their participant-bootstrap intervals of one dataset's judgements."""
    methods = sorted({j.chosen for j in judgements} | {j.other for j in judgements})
    index = {m: i for i, m in enumerate(methods)}
    k = len(methods)
    people = sorted({j.participant for j in judgements})
    person = {p: n for n, p in enumerate(people)}
    per_person = np.zeros((len(people), k, k))  # each participant's own win matrix
    for j in judgements:
        per_person[person[j.participant], index[j.chosen], index[j.other]] += 1
    wins = per_person.sum(axis=0)
    scores = bradley_terry(wins, alpha)
    rng = np.random.default_rng(seed)
    resampled = "participants" if len(people) > 1 else "judgements"
    reps = np.empty((n_boot, k))
    cells = np.argwhere(wins > 0)
    for b in range(n_boot):
        if resampled == "participants":
            counts = np.bincount(rng.integers(0, len(people), len(people)), minlength=len(people))
            reps[b] = bradley_terry(np.tensordot(counts, per_person, axes=1), alpha)
        else:  # one participant: resample the judgements (a multinomial draw over the win-matrix cells)
            draw = rng.multinomial(int(wins.sum()), wins[tuple(cells.T)] / wins.sum())
            boot = np.zeros((k, k))
            boot[tuple(cells.T)] = draw
            reps[b] = bradley_terry(boot, alpha)
    ci = np.percentile(reps, [2.5, 97.5], axis=0).T if n_boot else np.full((k, 2), np.nan)
    order = np.argsort(-scores, kind="stable")
    return DatasetPreference(dataset, [methods[i] for i in order], scores[order], ci[order],
                             wins[np.ix_(order, order)].astype(int), len(judgements), len(people), resampled,
                             reps[:, order])


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's τ-b of each row of ``x`` (shape (B, k) or (k,)) with ``y`` (k,); NaN where either has no order.

    The same statistic as ``scipy.stats.kendalltau`` (variant "b", ties counted), written out vectorised because
    the bootstrap needs it for a thousand replicates per metric and scipy's per-call overhead dominates there
    (tests check it against scipy).
    """
    x = np.atleast_2d(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    iu = np.triu_indices(len(y), 1)
    dx = np.sign(x[:, :, None] - x[:, None, :])[:, iu[0], iu[1]]
    dy = np.sign(y[:, None] - y[None, :])[iu]
    concordance = (dx * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = concordance / np.sqrt(np.count_nonzero(dx, axis=1) * np.count_nonzero(dy))
    return np.where(np.isfinite(tau), tau, np.nan)


def _labels(records: Sequence[Any]) -> dict[tuple[str, str], Any]:
    """(dataset, study label) -> record, the label being the method, with its seed when it has several."""
    seeds: dict[tuple[str, str], set[Any]] = {}
    for r in records:
        seeds.setdefault((r.dataset_name, r.method), set()).add(r.seed)
    out = {}
    for r in records:
        if getattr(r, "status", "ok") != "ok":
            continue
        several = len(seeds[(r.dataset_name, r.method)]) > 1
        out[(r.dataset_name, f"{r.method} (seed {r.seed})" if several else r.method)] = r
    return out


def metric_agreement(pref: DatasetPreference, judgements: Sequence[Judgement], records: Sequence[Any],
                     per_image: Mapping[str, Mapping[str, dict[str, float]]] | None = None) -> list[MetricAgreement]:
    """Each metric's Kendall τ (with the bootstrap interval) and pairwise accuracy against one dataset's people.

    Args:
        pref: the fitted preferences of the dataset.
        judgements: the judgements it was fitted on.
        records: the run's records (method-level metric values and their direction).
        per_image: method label -> metric key -> {image id: value}, when the run kept per-image values.
    """
    by_label = _labels(records)
    keys: dict[str, bool] = {}
    for m in pref.methods:
        rec = by_label.get((pref.dataset, m))
        for key, mv in (rec.metrics.items() if rec is not None else ()):
            if mv.value is not None and math.isfinite(mv.value):
                keys.setdefault(key, bool(mv.higher_is_better))
    out = []
    for key, hib in sorted(keys.items()):
        sign = 1.0 if hib else -1.0
        values = {}
        for m in pref.methods:
            rec = by_label.get((pref.dataset, m))
            mv = rec.metrics.get(key) if rec is not None else None
            if mv is not None and mv.value is not None and math.isfinite(mv.value):
                values[m] = sign * float(mv.value)
        cols = [i for i, m in enumerate(pref.methods) if m in values]
        if len(cols) < 2:
            continue
        oriented = np.asarray([values[pref.methods[i]] for i in cols])
        tau = float(kendall_tau_b(pref.scores[cols], oriented)[0])
        taus = kendall_tau_b(pref.replicates[:, cols], oriented) if len(pref.replicates) else np.zeros(0)
        taus = taus[np.isfinite(taus)]
        lo, hi = (np.percentile(taus, [2.5, 97.5]) if len(taus) else (math.nan, math.nan))
        per = {m: per_image.get(m, {}).get(key) for m in values} if per_image else {}
        basis = "per image" if per and all(per.values()) else "method means"
        agree = 0.0
        n = 0
        for j in judgements:
            if j.chosen not in values or j.other not in values:
                continue
            if basis == "per image":
                a, b = per[j.chosen].get(j.image), per[j.other].get(j.image)
                if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                    continue
                a, b = sign * a, sign * b
            else:
                a, b = values[j.chosen], values[j.other]
            agree += 1.0 if a > b else 0.5 if a == b else 0.0
            n += 1
        out.append(MetricAgreement(pref.dataset, key, hib, len(cols), tau if math.isfinite(tau) else math.nan,
                                   (float(lo), float(hi)), agree / n if n else math.nan, n, basis))
    return out


def _per_image_values(run_dir: Path, dataset: str) -> dict[str, dict[str, dict[str, float]]]:
    from colorbench.reports.images import image_sets

    out: dict[str, dict[str, dict[str, float]]] = {}
    for iset in image_sets(run_dir):
        if iset.dataset != dataset:
            continue
        for col in iset.columns:
            values = col.load_per_image() if col.status == "ok" else None
            if not values:
                continue
            ids = [str(i) for i in values["id"]]
            out[col.label] = {k: dict(zip(ids, map(float, v))) for k, v in values.items() if k != "id"}
    return out


def load_preferences(run_dir: str | Path, records: Sequence[Any] | None = None, n_boot: int = N_BOOTSTRAP,
                     seed: int = 0, alpha: float = BT_ALPHA,
                     max_attention_failures: int = MAX_ATTENTION_FAILURES) -> PreferenceResult | None:
    """The pairwise study of a run (``None`` when it has no ``study/preferences.jsonl`` or no usable judgement).

    Args:
        run_dir: the run directory.
        records: its records (for the metric agreement); read from the run directory when not given.
        n_boot: bootstrap replicates; seed: their random seed; alpha: the Bradley–Terry ridge.
        max_attention_failures: attention checks a participant may fail and still count.
    """
    run_dir = Path(run_dir)
    path = run_dir / PREFERENCES
    if not path.is_file():
        return None
    judgements, n_lines, n_bad = read_judgements(path)
    if not judgements:
        return None
    excluded = attention_exclusions(judgements, max_attention_failures)
    kept = [j for j in judgements if not j.attention and j.participant not in excluded]
    if records is None:
        from colorbench.results.rundir import RunDir

        records = RunDir(run_dir).records()
    datasets: dict[str, DatasetPreference] = {}
    agreements: list[MetricAgreement] = []
    for ds in sorted({j.dataset for j in kept}):
        these = [j for j in kept if j.dataset == ds]
        pref = fit_dataset(ds, these, n_boot=n_boot, seed=seed, alpha=alpha)
        datasets[ds] = pref
        agreements += metric_agreement(pref, these, records, _per_image_values(run_dir, ds))
    return PreferenceResult(
        datasets=datasets, agreements=agreements, judgements=judgements, excluded=excluded,
        participants=len({j.participant for j in judgements}),
        attention_checks=sum(j.attention for j in judgements), n_lines=n_lines, n_bad=n_bad,
        params={"model": "Bradley-Terry (choix.ilsr_pairwise_dense)", "alpha": alpha, "n_bootstrap": n_boot,
                "bootstrap_seed": seed, "interval": "95 % percentile bootstrap",
                "max_attention_failures": max_attention_failures})


def export_judgements(run_dir: str | Path, result: PreferenceResult) -> dict[str, Path]:
    """Every judgement (attention checks included) as ``study/judgements.csv`` and ``study/judgements.jsonl``,
    each with an ``excluded`` column (the participant failed the attention checks)."""
    from colorbench.core.fsio import atomic_write_text

    run_dir = Path(run_dir)
    fields = ["time", "participant", "trial", "dataset", "image", "left", "right", "choice", "chosen", "other",
              "attention", "passed", "excluded", "rt_ms", "seconds", "dither"]
    rows = [{**{k: j.line.get(k) for k in fields}, "excluded": j.participant in result.excluded}
            for j in result.judgements]
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    csv_path = atomic_write_text(run_dir / "study" / "judgements.csv", buf.getvalue())
    jsonl_path = atomic_write_text(run_dir / "study" / "judgements.jsonl",
                                   "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows))
    return {"judgements_csv": csv_path, "judgements_jsonl": jsonl_path}


def _fmt(x: float, digits: int = 2) -> str:
    return "—" if x is None or not math.isfinite(x) else f"{x:+.{digits}f}" if digits == 2 else f"{x:.{digits}f}"


def preference_summary(result: PreferenceResult) -> str:
    """One paragraph: participants, exclusions, judgements, the model and the interval."""
    kept = sum(p.n_judgements for p in result.datasets.values())
    allowed = result.params["max_attention_failures"]
    failing = "any" if allowed == 0 else f"more than {allowed}"
    text = (f"{result.participants} participant(s); {len(result.excluded)} excluded for failing {failing} of their "
            f"attention checks ({result.attention_checks} checks "
            f"answered in all: a real image against an obviously wrong colorization). {kept} judgements kept. Each "
            "judgement: two methods' colorizations of the same grey image side by side, \"which looks more "
            "natural?\". Scores: Bradley–Terry log-strengths (mean 0; a difference of 1 means odds of e ≈ 2.7 to "
            f"1), choix I-LSR, regularization α = {result.params['alpha']}; intervals: 95 % percentile bootstrap "
            f"over participants ({result.params['n_bootstrap']} replicates).")
    unbeaten = [f"{m} ({ds})" if len(result.datasets) > 1 else m for ds, p in result.datasets.items()
                for i, m in enumerate(p.methods) if p.wins[:, i].sum() == 0 and p.wins[i].sum() > 0]
    if unbeaten:
        text += (f" Never lost: {', '.join(unbeaten)}; such a score has no finite maximum-likelihood value and is set "
                 "by α (read it as \"above the others\", not as a size).")
    if any(p.resampled == "judgements" for p in result.datasets.values()):
        text += " With a single participant the bootstrap resamples judgements instead (narrower than it should be)."
    if result.n_bad:
        text += f" {result.n_bad} of {result.n_lines} lines were not complete judgements and were left out."
    return text


def preference_markdown(result: PreferenceResult) -> str:
    """The Markdown section: scores with intervals, the win matrix and the metric agreement of each dataset."""
    lines = ["## Pairwise preference (which looks more natural?)", "", preference_summary(result), ""]
    for ds, p in result.datasets.items():
        lines += [f"### {ds}", "", "| Method | Bradley–Terry score ↑ | 95 % interval | wins | judgements |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for i, m in enumerate(p.methods):
            n = int(p.wins[i].sum() + p.wins[:, i].sum())
            lines.append(f"| {m} | {_fmt(p.scores[i])} | [{_fmt(p.ci95[i, 0])}, {_fmt(p.ci95[i, 1])}] "
                         f"| {int(p.wins[i].sum())} | {n} |")
        lines += ["", "Win matrix (row preferred to column, judgements):", "",
                  "| | " + " | ".join(p.methods) + " |", "| --- |" + " ---: |" * len(p.methods)]
        for i, m in enumerate(p.methods):
            lines.append(f"| {m} | " + " | ".join("—" if i == j else str(int(p.wins[i, j]))
                                                  for j in range(len(p.methods))) + " |")
        agree = [a for a in result.agreements if a.dataset == ds]
        if agree:
            lines += ["", "Which metric agrees with people: Kendall τ between the metric's ranking of the methods and "
                      "the Bradley–Terry ranking (interval from the same bootstrap replicates; the metric values are "
                      "taken as fixed), and pairwise accuracy: share of judgements in which the metric prefers the "
                      "method the person chose (0.5 = chance).", "",
                      "| Metric | Kendall τ | 95 % interval | pairwise accuracy | judgements | basis | methods |",
                      "| --- | ---: | ---: | ---: | ---: | --- | ---: |"]
            for a in sorted(agree, key=lambda a: -(a.pairwise_accuracy if math.isfinite(a.pairwise_accuracy) else -1)):
                arrow = "↑" if a.higher_is_better else "↓"
                lines.append(f"| {a.metric} {arrow} | {_fmt(a.tau)} | [{_fmt(a.tau_ci95[0])}, {_fmt(a.tau_ci95[1])}] "
                             f"| {_fmt(a.pairwise_accuracy, 3)} | {a.n_judgements} | {a.basis} | {a.n_methods} |")
        lines.append("")
    lines.append("All judgements: `study/judgements.csv` and `study/judgements.jsonl` (attention checks included, "
                 "with an `excluded` column).")
    return "\n".join(lines) + "\n"


def preference_html(result: PreferenceResult) -> str:
    """The HTML section (``#sec-preference``) of the report, rendered from ``templates/preference.html.j2``."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    tables = []
    for ds, p in result.datasets.items():
        lo = min(float(np.nanmin(p.ci95[:, 0])), float(p.scores.min()), -0.5)
        hi = max(float(np.nanmax(p.ci95[:, 1])), float(p.scores.max()), 0.5)
        pct = lambda x: 100.0 * (x - lo) / (hi - lo)  # noqa: E731 - position on the drawn axis
        rows = [{"method": m, "score": _fmt(p.scores[i]), "ci": f"[{_fmt(p.ci95[i, 0])}, {_fmt(p.ci95[i, 1])}]",
                 "wins": int(p.wins[i].sum()), "n": int(p.wins[i].sum() + p.wins[:, i].sum()),
                 "at": pct(p.scores[i]), "from": pct(p.ci95[i, 0]), "width": pct(p.ci95[i, 1]) - pct(p.ci95[i, 0]),
                 "cells": ["—" if i == j else str(int(p.wins[i, j])) for j in range(len(p.methods))]}
                for i, m in enumerate(p.methods)]
        agree = sorted((a for a in result.agreements if a.dataset == ds),
                       key=lambda a: -(a.pairwise_accuracy if math.isfinite(a.pairwise_accuracy) else -1))
        tables.append({"dataset": ds, "methods": p.methods, "rows": rows, "zero": pct(0.0), "agree": [
            {"metric": a.metric, "arrow": "↑" if a.higher_is_better else "↓", "tau": _fmt(a.tau),
             "ci": f"[{_fmt(a.tau_ci95[0])}, {_fmt(a.tau_ci95[1])}]", "acc": _fmt(a.pairwise_accuracy, 3),
             "n": a.n_judgements, "basis": a.basis, "methods": a.n_methods} for a in agree]})
    return env.get_template("preference.html.j2").render(summary=preference_summary(result), tables=tables)
