"""Training speed of one CycleGAN step and one SpyncoGan step (images per second), at the quick and paper presets.

Run with ``python -m pytest benchmarks --benchmark-only --benchmark-enable``. Each benchmark times
``train_step`` on one fixed unpaired batch (the preset's batch size) after a warm-up step; images/second (grey
images of domain A per second) is stored in the benchmark's ``extra_info`` and printed.

Image sizes: quick presets at 32×32 (their intended size). Paper presets at 256×256 on CUDA (the CycleGAN and
SpyncoGan papers' size for photos), but at 64×64 on a CPU so that a round takes seconds; the size is recorded with
the result. CPU numbers are noisy on a shared machine: compare ratios measured in one session.
"""

from __future__ import annotations

import pytest
import torch

from colorbench.core.grey import Grey
from colorbench.datasets.base import Batch
from colorbench.methods import METHODS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
PAPER_SIZE = 256 if DEVICE == "cuda" else 64


def _batch(n: int, size: int) -> Batch:
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2 * n, 3, size, size, generator=g)
    gray = (0.299 * rgb[:n, :1] + 0.587 * rgb[:n, 1:2] + 0.114 * rgb[:n, 2:])
    return Batch(gray=gray, rgb=rgb[n:], labels=torch.zeros(n, dtype=torch.long), ids=[str(i) for i in range(n)],
                 paired=False, grey_convention=Grey.BT601)


@pytest.mark.parametrize("preset", ["quick", "paper"])
@pytest.mark.parametrize("name", ["cyclegan", "spyncogan"])
def test_train_step_speed(benchmark, name, preset):
    method = METHODS.get(name).from_preset(preset, device=DEVICE, seed=0)
    size = 32 if preset == "quick" else PAPER_SIZE
    batch = _batch(method.config.batch_size, size)
    method.train_step(batch)  # warm-up (allocations, cuDNN autotuning)

    def step():
        method.train_step(batch)
        if DEVICE == "cuda":
            torch.cuda.synchronize()

    benchmark.pedantic(step, rounds=2 if preset == "paper" else 5, iterations=1, warmup_rounds=0)
    images_per_s = method.config.batch_size / benchmark.stats.stats.mean
    benchmark.extra_info.update({"images_per_s": images_per_s, "image_size": size, "batch_size": method.config.batch_size,
                                 "device": DEVICE, "threads": torch.get_num_threads()})
    print(f"\n{name} {preset} {size}x{size} batch {method.config.batch_size} on {DEVICE}: {images_per_s:.1f} images/s")
    assert images_per_s > 0
