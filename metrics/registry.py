"""The metric registry: ``@register_metric("name")`` on a :class:`~colorbench.metrics.base.StreamingMetric`."""

from colorbench.metrics.base import StreamingMetric
from colorbench.core.registry import Registry

METRICS: Registry[type[StreamingMetric]] = Registry("metric", base=StreamingMetric)
register_metric = METRICS.register
