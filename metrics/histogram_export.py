"""Moved to :mod:`colorbench.reports.histogram_export` (it is reporting, and reports import no torch)."""

from colorbench.reports.histogram_export import *  # noqa: F401,F403
from colorbench.reports.histogram_export import LOG_AB_HISTOGRAM_COLUMNS, log_ab_histogram_frame, write_log_ab_histogram_csv  # noqa: F401
