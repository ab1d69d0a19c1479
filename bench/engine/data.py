"""The data a cell trains and evaluates on: one dataset per process, the data order of a seed, paired and
unpaired training batches, the sample images."""

from __future__ import annotations

import functools
import math
from typing import Any, Sequence

import numpy as np
import torch

from colorbench.datasets import DATASETS, DatasetSplits, ImageSet
from colorbench.datasets.base import Batch
from colorbench.methods import METHODS
from colorbench.engine.protocols import get_protocol
from colorbench.engine.spec import RunSpec, dataset_options_for


@functools.lru_cache(maxsize=4)
def _load_dataset_cached(name: str, options: tuple[tuple[str, Any], ...]) -> DatasetSplits:
    return DATASETS.get(name)(**dict(options)).load()


def load_dataset(spec: RunSpec, name: str | None = None) -> DatasetSplits:
    """Load (once per process) one dataset of the spec, with the protocol's resize options (unless given) and
    only the protocol's test images (colorbench.engine.protocols)."""
    name = name or spec.dataset_names()[0]
    proto = get_protocol(spec.protocol)
    options = tuple(sorted(proto.dataset_options(name, dict(dataset_options_for(spec, name))).items()))
    try:
        hash(options)
    except TypeError:  # an unhashable option value (a list): no cache
        return proto.restrict_test(DATASETS.get(name)(**dict(options)).load())
    return proto.restrict_test(_load_dataset_cached(name, options))


def servable_methods(names: Sequence[str], train: ImageSet, preset: str) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into the methods that can train on ``train`` under ``preset`` and the others with the
    reason (:meth:`Method.unsupported_reason`, :meth:`Method.unavailable_reason`)."""
    keep, skipped = [], {}
    for name in names:
        cls = METHODS.get(name)
        reason = cls.unsupported_reason(train) or cls.unavailable_reason(preset)
        if reason is None:
            keep.append(name)
        else:
            skipped[name] = reason
    return keep, skipped


def sample_indices(n: int, k: int) -> torch.Tensor:
    """``k`` test indices spread evenly over the test set (so the grid shows different sources)."""
    k = min(k, n)
    return torch.linspace(0, n - 1, k).round().long() if k else torch.zeros(0, dtype=torch.long)


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


def unpaired_domains(n: int, protocol: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the grey domain A and the colour domain B of the training split for unpaired methods.

    ``disjoint`` (default): A and B are the two halves of a seeded permutation, so no image is seen both as grey
    and as colour and no pair can leak. ``shuffled``: both are the whole split, shuffled independently each
    epoch (what the unpaired papers did).
    """
    if protocol == "shuffled":
        return torch.arange(n), torch.arange(n)
    if n < 2:
        raise ValueError(f"the disjoint unpaired protocol needs at least 2 training images, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2 :].sort().values


def training_batches(
    train: ImageSet, paired: bool, batch_size: int, order: torch.Generator, device: torch.device, spec: RunSpec,
    seed: int | None = None,
):
    """One epoch of training batches: paired ones, or unpaired ones (grey from domain A, colour from domain B).

    Unpaired batches hold as many colour as grey images: when the domains differ in size (the ``disjoint``
    halves of an odd split differ by one image) each epoch uses the first ``min(len(A), len(B))`` images of each
    shuffled domain, so the image left out changes from epoch to epoch.
    """
    if paired:
        yield from train.batches(batch_size, shuffle=True, generator=order, device=device, grey_convention=spec.grey_convention)
        return
    dom_a, dom_b = unpaired_domains(len(train), spec.unpaired_protocol, spec.seed if seed is None else seed)
    n = min(len(dom_a), len(dom_b))
    a = dom_a[torch.randperm(len(dom_a), generator=order)][:n]
    b = dom_b[torch.randperm(len(dom_b), generator=order)][:n]
    for start in range(0, n, batch_size):
        ga = train.make_batch(a[start : start + batch_size], device, grey_convention=spec.grey_convention)
        cb = train.make_batch(b[start : start + batch_size], device, grey_convention=spec.grey_convention)
        yield Batch(gray=ga.gray, rgb=cb.rgb, labels=ga.labels, ids=ga.ids, masks=ga.masks,
                    grey_convention=spec.grey_convention, paired=False, rgb_ids=cb.ids)


def n_training_batches(n: int, paired: bool, batch_size: int, protocol: str) -> int:
    if not paired and protocol == "disjoint":
        n = n // 2
    return math.ceil(n / batch_size)
