"""Training speed of pix2pix: images per second of one training step at the quick and the paper preset.

Run with ``tox -e bench`` (``python -m pytest benchmarks --benchmark-only --benchmark-enable``). Each benchmark
times ``train_step`` on a fixed batch, already on the method's device (colour conversion runs batched inside the
step; there is no data augmentation): quick = a batch of 32 images of 32×32 (the quick preset's batch size),
paper = one 256×256 image (the paper preset: U-Net 256 + 70×70 PatchGAN, batch size 1). Images per second
(batch size / mean step time) are stored in ``extra_info["images_per_s"]`` and shown in the benchmark table's
``OPS`` column times the batch size. Runs on CUDA when available, else on the CPU.
"""

from __future__ import annotations

import pytest
import torch

from colorbench.core.grey import Grey
from colorbench.datasets.base import ImageSet
from colorbench.methods import METHODS

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def fixed_batch(n: int, size: int):
    g = torch.Generator().manual_seed(0)
    rgb = (torch.rand(n, 3, size, size, generator=g) * 255).to(torch.uint8)
    images = ImageSet(rgb, torch.zeros(n, dtype=torch.long), [str(i) for i in range(n)], ["random"])
    return images.make_batch(torch.arange(n), device=DEVICE, grey_convention=Grey.BT601)


def _sync() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize(("preset", "batch_size", "size", "rounds"), [("quick", 32, 32, 10), ("paper", 1, 256, 3)])
def test_pix2pix_train_step_speed(benchmark, preset, batch_size, size, rounds):
    method = METHODS.get("pix2pix").from_preset(preset, device=DEVICE, seed=0)
    batch = fixed_batch(batch_size, size)

    def step():
        method.train_step(batch)  # returns Python floats: one device sync per step already
        _sync()

    benchmark.pedantic(step, rounds=rounds, iterations=1, warmup_rounds=1)
    benchmark.extra_info["preset"] = preset
    benchmark.extra_info["batch"] = f"{batch_size}x{size}x{size}"
    benchmark.extra_info["device"] = DEVICE
    benchmark.extra_info["threads"] = torch.get_num_threads()
    benchmark.extra_info["images_per_s"] = batch_size / benchmark.stats.stats.mean
