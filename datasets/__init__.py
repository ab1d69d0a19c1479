"""Datasets: built-in offline ones and loaders for the standard ones, all in one sample format."""

from colorbench.datasets.base import IGNORE_INDEX, Batch, Dataset, DatasetSplits, ImageSet
from colorbench.datasets.registry import DATASETS, register_dataset

# One import line per dataset module (registration happens on import).
from colorbench.datasets import builtin  # noqa: E402,F401  photos, shapes
from colorbench.datasets import standard  # noqa: E402,F401  cifar10, ucmerced, voc-seg, ... (official formats)

__all__ = ["DATASETS", "IGNORE_INDEX", "Batch", "Dataset", "DatasetSplits", "ImageSet", "register_dataset"]
