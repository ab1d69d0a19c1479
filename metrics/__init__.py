"""Metrics: pure functions in ``colorbench.metrics.functional`` and streaming classes registered here."""

from colorbench.metrics.base import MetricUnavailable, StreamingMetric
from colorbench.metrics.collection import MetricCollection
from colorbench.metrics.inputs import MetricInputs
from colorbench.metrics.registry import METRICS, register_metric

# One import line per metric module (registration happens on import).
from colorbench.metrics import color_histogram, colorfulness, fid, image_quality, perceptual  # noqa: F401
from colorbench.metrics.defaults import DEFAULT_METRICS, default_metrics

__all__ = ["DEFAULT_METRICS", "METRICS", "MetricCollection", "MetricInputs", "MetricUnavailable", "StreamingMetric",
           "default_metrics", "register_metric"]
