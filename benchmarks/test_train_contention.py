"""A quick-preset training epoch, idle and contended, under colorbench's thread policy and under torch's default.

pytest-benchmark; run with ``tox -e bench`` (see ``conftest.py`` for the two conditions). One "epoch" here is
``STEPS`` pix2pix training steps on a fixed batch of the quick preset (32 images of 32x32: 256 images, the size
of a small training split), on the CPU. ``policy``: the intra-op threads :func:`colorbench.core.threads.
decide_thread_policy` chooses for this workload (what ``colorbench run`` applies); ``torch-default``: all usable
cores (what a process gets without the policy). ``benchmarks/ratios.py`` prints each one's contended speed as a
fraction of its idle speed (target: at least 0.4 for the policy; 0.5 is ideal, as half of the CPU is gone).
"""

from __future__ import annotations

import pytest
import torch

from colorbench.core.grey import Grey
from colorbench.core import threads
from colorbench.datasets.base import ImageSet
from colorbench.methods import METHODS

STEPS = 8
BATCH, SIZE = 32, 32


@pytest.fixture(scope="module")
def method_and_batch():
    method = METHODS.get("pix2pix").from_preset("quick", device="cpu", seed=0)
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(BATCH, 3, SIZE, SIZE, generator=g) * 255).to(torch.uint8)
    images = ImageSet(rgb, torch.zeros(BATCH, dtype=torch.long), [str(i) for i in range(BATCH)], ["random"])
    batch = images.make_batch(torch.arange(BATCH), device="cpu", grey_convention=Grey.BT601)
    method.train_step(batch)  # warm-up: allocations
    return method, batch


@pytest.mark.benchmark(group="train-epoch")
@pytest.mark.parametrize("impl", ["policy", "torch-default"])
def test_quick_training_epoch(benchmark, conditions, method_and_batch, impl):
    method, batch = method_and_batch
    if impl == "policy":  # the decision for this workload, ignoring the shell's OMP_NUM_THREADS/COLORBENCH_THREADS
        n = threads.decide_thread_policy(device="cpu", preset="quick", image_size=(SIZE, SIZE), environ={}).intra_op_threads
    else:
        n = threads.usable_cores()
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        benchmark.pedantic(lambda: [method.train_step(batch) for _ in range(STEPS)], rounds=3, iterations=1)
    finally:
        torch.set_num_threads(before)
    benchmark.extra_info.update(intra_op_threads=n, steps=STEPS, batch=f"{BATCH}x{SIZE}x{SIZE}",
                                images_per_s=STEPS * BATCH / benchmark.stats.stats.mean)
