"""Naturalness of a run's colorizations from a two-alternative forced-choice study (``colorbench study``).

Each line of ``RUN/study/responses.jsonl`` is one answered trial: a real image and one method's colorization of
the same image were shown side by side, and the participant clicked the one that looked real. The **fooling
rate** of a method is the share of its trials in which the colorization was chosen (Zhang et al., ECCV 2016,
"Colorful Image Colorization", §3.1: 50 % means indistinguishable from the real photos; seed 001 §5.1.4 /
Table 4 reports the related "naturalness"). It is reported with the Wilson score 95 % interval and n.

Nothing here imports torch: a report reads only the run directory.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

#: Where ``colorbench study`` appends its responses, relative to the run directory.
RESPONSES = Path("study") / "responses.jsonl"
#: Normal quantile of a two-sided 95 % interval (scipy.stats.norm.ppf(0.975) = 1.959963984540054).
Z95 = 1.959963984540054
#: The choices of a trial (what the participant clicked; ``real_side`` is where the real image was).
SIDES = ("left", "right")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion ``k / n`` (Wilson 1927; Newcombe 1998, method 3).

    Written out (the closed form is three lines): scipy has it only inside ``binomtest(k, n).proportion_ci(
    method="wilson")``, which also runs an exact test, and statsmodels is not a dependency. The tests check this
    function against scipy and against Newcombe's (1998) published intervals.

    Args:
        k: successes (trials in which the colorization was chosen), ``0 <= k <= n``.
        n: trials, ``n >= 1``.
        z: normal quantile (default: two-sided 95 %).

    Raises:
        ValueError: ``n < 1`` or ``k`` outside ``[0, n]``.
    """
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"Wilson interval needs n >= 1 and 0 <= k <= n, got k={k}, n={n}")
    p = k / n
    z2 = z * z
    denom = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class FoolingRate:
    """The naturalness result of one method on one dataset."""

    dataset: str
    method: str
    fooled: int  # trials in which the colorization was chosen as the real image
    n: int  # trials answered

    @property
    def rate(self) -> float:
        return self.fooled / self.n

    @property
    def ci95(self) -> tuple[float, float]:
        return wilson_interval(self.fooled, self.n)

    def text(self) -> str:
        """``"41.7 % [28.8, 55.7] (n=48)"``: rate and Wilson 95 % interval in percent, and n."""
        lo, hi = self.ci95
        return f"{100 * self.rate:.1f} % [{100 * lo:.1f}, {100 * hi:.1f}] (n={self.n})"


@dataclass(frozen=True)
class StudyResult:
    """Fooling rates by (dataset, method), how many response lines were read, and how many were unusable."""

    rates: dict[tuple[str, str], FoolingRate]
    n_lines: int
    n_bad: int  # lines that are not a complete response (e.g. a torn last line); left out and counted
    participants: int
    excluded: int = 0  # participants left out for failing an attention check (real vs an obviously wrong colorization)
    attention_checks: int = 0  # attention trials answered, all participants

    def for_method(self, dataset: str | None, method: str, seed: int | None = None) -> FoolingRate | None:
        """The rate of ``method`` on ``dataset``; with ``seed``, also the study's label of one seed of a method
        that has several (``"unet-l1 (seed 1)"``). ``dataset=None``: the method's only rate, if it has one."""
        if dataset is not None:
            for label in (method, *([f"{method} (seed {seed})"] if seed is not None else [])):
                if (dataset, label) in self.rates:
                    return self.rates[(dataset, label)]
            return None
        matches = [r for (ds, m), r in self.rates.items() if m == method]
        return matches[0] if len(matches) == 1 else None


def iter_responses(path: str | Path) -> Iterator[dict[str, Any] | None]:
    """Each line of a responses file, parsed; ``None`` for a line that is not a valid response."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                yield None
                continue
            ok = (isinstance(obj, dict) and isinstance(obj.get("method"), str) and isinstance(obj.get("dataset"), str)
                  and obj.get("choice") in SIDES and obj.get("real_side") in SIDES)
            yield obj if ok else None


def load_study(run_dir: str | Path) -> StudyResult | None:
    """The fooling rates of a run's study, or ``None`` when it has no ``study/responses.jsonl`` (or it is empty).

    A participant's repeated answer to the same trial counts once (the first one), so a retried POST never counts
    twice. Attention checks (``"attention": true``: the real image against an obviously wrong colorization) are not
    a method's trials; a participant who fails any of them is left out and counted in ``excluded``.
    """
    path = Path(run_dir) / RESPONSES
    if not path.is_file():
        return None
    counts: dict[tuple[str, str], list[int]] = {}
    seen: set[tuple[Any, Any]] = set()
    participants: set[Any] = set()
    n_lines = n_bad = n_checks = 0
    kept: list[dict[str, Any]] = []
    failed: set[Any] = set()
    for obj in iter_responses(path):
        n_lines += 1
        if obj is None:
            n_bad += 1
            continue
        ident = (obj.get("participant"), obj.get("trial"))
        if ident in seen:
            continue
        seen.add(ident)
        participants.add(obj.get("participant"))
        if obj.get("attention"):
            n_checks += 1
            if obj["choice"] != obj["real_side"]:
                failed.add(obj.get("participant"))
            continue
        kept.append(obj)
    for obj in kept:
        if obj.get("participant") in failed:
            continue
        fooled = obj["choice"] != obj["real_side"]
        c = counts.setdefault((obj["dataset"], obj["method"]), [0, 0])
        c[0] += int(fooled)
        c[1] += 1
    if not counts:
        return None
    rates = {key: FoolingRate(key[0], key[1], k, n) for key, (k, n) in counts.items()}
    return StudyResult(rates=rates, n_lines=n_lines, n_bad=n_bad, participants=len(participants),
                       excluded=len(failed), attention_checks=n_checks)


def naturalness_markdown(study: StudyResult) -> str:
    """The Markdown section of the study: one row per (dataset, method), fooling rate, Wilson 95 % interval, n."""
    lines = [
        "## Naturalness (2AFC study)", "",
        f"{study.participants} participant(s). Each trial showed a real test image and one method's colorization of "
        "the same image side by side in random order; the participant clicked the one that looked real. "
        "Fooling rate: share of trials in which the colorization was chosen (50 % = indistinguishable from real; "
        "Zhang et al. 2016). Interval: Wilson score 95 %.", "",
        "| Dataset | Method | Fooling rate ↑ | Wilson 95 % | n |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for rate in sorted(study.rates.values(), key=lambda r: (r.dataset, -r.rate, r.method)):
        lo, hi = rate.ci95
        lines.append(f"| {rate.dataset} | {rate.method} | {100 * rate.rate:.1f} % | [{100 * lo:.1f}, {100 * hi:.1f}] "
                     f"| {rate.n} |")
    if study.n_bad:
        lines += ["", f"{study.n_bad} of {study.n_lines} response lines were not complete responses and were left out."]
    if study.attention_checks:
        lines += ["", f"{study.excluded} participant(s) failed an attention check (the real image against an obviously "
                  f"wrong colorization; {study.attention_checks} checks answered) and were left out."]
    return "\n".join(lines) + "\n"
