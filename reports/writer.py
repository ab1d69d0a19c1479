"""``write_report``: the tables and figures of one run directory (see :mod:`colorbench.results.records` for its layout)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from colorbench.core.fsio import atomic_write_text
from colorbench.results.rundir import RunDir
from colorbench.reports.histogram_export import write_log_ab_histogram_csv
from colorbench.reports.html import write_html_report
from colorbench.reports.naturalness import load_study, naturalness_markdown
from colorbench.reports.preference import export_judgements, load_preferences, preference_html, preference_markdown
from colorbench.reports.figures import plot_ab_histograms, plot_curves, plot_losses, plot_sample_grid
from colorbench.reports.stats import paired_comparisons, seed_summary
from colorbench.reports.tables import cross_domain_markdown, leaderboard_frame, leaderboard_markdown, results_frame

# Figure key -> (file name under figures/, caption in the leaderboard).
FIGURES = {
    "ab_histograms": ("ab_histograms.png", "a*/b* histograms, real vs each method"),
    "samples": ("samples.png", "Sample colorizations"),
    "curves": ("curves.png", "Metrics over training epochs"),
    "losses": ("losses.png", "Training losses per epoch"),
    "chord": ("cross_domain_chord.png", "Cross-domain classification chord diagram"),
}


def load_run_info(run_dir: str | Path) -> dict[str, Any]:
    """The parsed ``run.json`` of a run directory, or ``{}`` if there is none.

    Raises:
        ValueError: ``run.json`` exists but is not a JSON object.
    """
    path = Path(run_dir) / "run.json"
    if not path.exists():
        return {}
    RunDir(run_dir).info()  # invalid JSON or not an object -> ValueError naming the file
    return json.loads(path.read_text())


def write_report(run_dir: str | Path) -> dict[str, Path]:
    """Write ``results.csv``, ``ab_histograms.csv``, ``leaderboard.md`` and ``figures/*.png`` into ``run_dir``.

    Reads only the run directory (:class:`~colorbench.results.rundir.RunDir`: ``run.json``, ``cells.json``, each cell's
    record, per-image values and samples; or ``records/*.json`` of the earlier layout). Also writes
    ``comparisons.csv`` (paired tests against the best method) and ``leaderboard.csv`` (one row per dataset and
    method, mean and spread over seeds). Figures show the first dataset and seed of a grid (a sample grid per
    further dataset). A figure with nothing to draw (no histograms, no samples, no curve with ≥ 2 epochs, no
    losses) is not written.

    Returns:
        Output key (``"results"``, ``"leaderboard"``, ``"ab_histograms_csv"`` when a record has histograms, and ``"ab_histograms"``, ``"samples"``, ``"curves"``,
        ``"losses"`` for the figures written; ``"chord"`` when the run has ``cross_domain/`` results; ``"html"``:
        ``index.html``, the browsable report of :mod:`colorbench.reports.html`) -> path. When the run has study
        responses (``study/responses.jsonl``), the leaderboards gain each method's fooling rate.

    Raises:
        FileNotFoundError: ``run_dir`` does not exist or holds no records.
    """
    run_dir = Path(run_dir)
    rd = RunDir(run_dir)  # not a run directory -> NotARunDirectory (a FileNotFoundError) naming the fix
    records = rd.records()
    if not records:
        raise FileNotFoundError(f"no records in {run_dir}: no finished cell (cells.json, or records/ of an earlier "
                                "layout, lists none with a record)")
    run_info = load_run_info(run_dir)
    run_info["missing_cells"] = [f"{c.method} on {c.dataset}, seed {c.seed} ({c.status})" for c in rd.missing_cells()]
    datasets = list(dict.fromkeys(rec.dataset_name for rec in records))

    written: dict[str, Path] = {}
    written["results"] = run_dir / "results.csv"
    atomic_write_text(written["results"], results_frame(records).to_csv(index=False))
    comparisons, per_image_keys = _comparisons(rd, records)
    written["comparisons"] = run_dir / "comparisons.csv"
    atomic_write_text(written["comparisons"], comparisons.to_csv(index=False))
    written["leaderboard_csv"] = run_dir / "leaderboard.csv"
    atomic_write_text(written["leaderboard_csv"], leaderboard_frame(records, comparisons).to_csv(index=False))

    fig_dir = run_dir / "figures"
    first_seed = records[0].seed
    shown = [r for r in records if r.dataset_name == datasets[0] and r.seed == first_seed]
    if any(rec.histograms for rec in shown):  # the data behind figures/ab_histograms.png (Tarres, Fig. 8/10)
        written["ab_histograms_csv"] = write_log_ab_histogram_csv(shown, run_dir / "ab_histograms.csv")
    plots = {
        "ab_histograms": lambda p: plot_ab_histograms(shown, p),
        "samples": lambda p: plot_sample_grid(run_dir, shown, p, samples_path=rd.samples_path(datasets[0])),
        "curves": lambda p: plot_curves(shown, p),
        "losses": lambda p: plot_losses(shown, p),
    }
    links: dict[str, str] = {}
    for key, plot in plots.items():
        file_name, caption = FIGURES[key]
        path = plot(fig_dir / file_name)
        if path is not None:
            written[key] = path
            links[caption] = f"figures/{file_name}"

    for ds in datasets[1:]:  # a sample grid per further dataset of a grid
        these = [r for r in records if r.dataset_name == ds and r.seed == first_seed]
        path = plot_sample_grid(run_dir, these, fig_dir / f"samples_{ds}.png", samples_path=rd.samples_path(ds))
        if path is not None:
            written[f"samples_{ds}"] = path
            links[f"Sample colorizations ({ds})"] = f"figures/samples_{ds}.png"

    sections = []
    if (run_dir / "cross_domain" / "accuracy.csv").is_file():  # written by colorbench.engine.crossdomain
        sections.append(_cross_domain_section(run_dir, written, links))
    from colorbench.reports.protocols import protocol_comparison_markdown

    side_by_side = protocol_comparison_markdown(records)  # one method under two protocols (evaluate --protocol)
    if side_by_side:
        sections.append(side_by_side)
    study = load_study(run_dir)  # responses of `colorbench study`, when there are any
    naturalness = None
    if study is not None:
        sections.insert(0, naturalness_markdown(study))
        naturalness = {(rec.key or rec.method): rate.text() for rec in records
                       if (rate := study.for_method(rec.dataset_name, rec.method, rec.seed)) is not None}
    preference = load_preferences(run_dir, records)  # judgements of `colorbench study --kind pairwise`
    if preference is not None:
        sections.insert(0, preference_markdown(preference))
        written.update(export_judgements(run_dir, preference))

    written["leaderboard"] = run_dir / "leaderboard.md"
    atomic_write_text(written["leaderboard"], leaderboard_markdown(
        records, run_info, figures=links, sections=sections, comparisons=comparisons, per_image_keys=per_image_keys,
        naturalness=naturalness))
    written["html"] = write_html_report(run_dir, records, run_info, figures=links, study=study,
                                        per_image_keys=per_image_keys,
                                        preference_section=preference_html(preference) if preference else None)
    return written


def _comparisons(rd: RunDir, records: list) -> tuple[Any, list[str] | None]:
    """Paired comparisons from the cells' per-image values (ok cells only), and the per-image metric keys."""
    frames: dict[tuple[str, str], list] = {}
    keys: dict[str, None] = {}
    have_files = False
    for cell in rd.cells():
        if cell.status != "ok":
            continue
        frame = rd.per_image(cell)
        if frame is None:
            continue
        have_files = True
        frames.setdefault((cell.dataset, cell.method), []).append(frame)
        keys.update(dict.fromkeys(c for c in frame.columns if c != "id"))
    seed = int(rd.info().spec.get("seed", 0) or 0)
    from colorbench.reports.tables import structure_thresholds

    return (paired_comparisons(frames, seed_summary(records), seed=seed,
                               structure_threshold=structure_thresholds(records)),
            list(keys) if have_files else None)


def _cross_domain_section(run_dir: Path, written: dict[str, Path], links: dict[str, str]) -> str:
    """Draw the chord diagram of ``cross_domain/`` and return its Markdown section."""
    from colorbench.reports.chord import plot_chord

    acc, summary, info = RunDir(run_dir).cross_domain()  # type: ignore[misc]
    file_name, caption = FIGURES["chord"]
    labels = dict(zip(summary["train"], summary["label"]))
    written["chord"] = plot_chord(acc, run_dir / "figures" / file_name, labels,
                                  title=f"Cross-domain top-1 accuracy ({info['classifier']['arch']})")
    links[caption] = f"figures/{file_name}"
    return cross_domain_markdown(acc, summary, info, chord=f"figures/{file_name}")
