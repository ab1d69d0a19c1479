"""Reports: tables and figures made from run records and saved arrays only (they never recompute metrics).

``write_report(run_dir)`` writes ``results.csv``, ``leaderboard.md``, ``figures/*.png`` and the browsable
``index.html`` (:mod:`colorbench.reports.html`, with the fooling rates of ``colorbench study`` when the run has
study responses: :mod:`colorbench.reports.naturalness`) into a run directory; the pieces are importable for
other uses. From a shell: ``python -m colorbench.reports RUN_DIR``.
"""

from colorbench.reports.figures import plot_ab_histograms, plot_curves, plot_losses, plot_sample_grid
from colorbench.reports.tables import CANONICAL_METRICS, format_value, leaderboard_markdown, results_frame
from colorbench.reports.writer import load_run_info, write_report
from colorbench.reports.html import write_html_report
from colorbench.reports.naturalness import load_study, wilson_interval

__all__ = [
    "CANONICAL_METRICS",
    "format_value",
    "leaderboard_markdown",
    "load_run_info",
    "load_study",
    "plot_ab_histograms",
    "plot_curves",
    "plot_losses",
    "plot_sample_grid",
    "results_frame",
    "wilson_interval",
    "write_html_report",
    "write_report",
]
