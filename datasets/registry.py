"""The dataset registry: ``@register_dataset("name")`` on a :class:`~colorbench.datasets.base.Dataset` subclass."""

from colorbench.datasets.base import Dataset
from colorbench.core.registry import Registry

DATASETS: Registry[type[Dataset]] = Registry("dataset", base=Dataset)
register_dataset = DATASETS.register
