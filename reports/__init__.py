"""Reports: tables and figures made from run records and saved arrays only (they never recompute metrics).

``write_report(run_dir)`` writes ``results.csv``, ``leaderboard.md`` and ``figures/*.png`` into a run
directory; the pieces are importable for other uses. From a shell: ``python -m colorbench.reports RUN_DIR``.
"""

from colorbench.reports.figures import plot_ab_histograms, plot_curves, plot_losses, plot_sample_grid
from colorbench.reports.tables import CANONICAL_METRICS, format_value, leaderboard_markdown, results_frame
from colorbench.reports.writer import load_run_info, write_report

__all__ = [
    "CANONICAL_METRICS",
    "format_value",
    "leaderboard_markdown",
    "load_run_info",
    "plot_ab_histograms",
    "plot_curves",
    "plot_losses",
    "plot_sample_grid",
    "results_frame",
    "write_report",
]
