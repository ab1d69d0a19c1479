"""Metrics: pure functions in ``colorbench.metrics.functional`` and streaming classes registered here."""

from colorbench.metrics.base import MetricUnavailable, StreamingMetric
from colorbench.metrics.registry import METRICS, register_metric

# One import line per metric module (registration happens on import).

__all__ = ["METRICS", "MetricUnavailable", "StreamingMetric", "register_metric"]
