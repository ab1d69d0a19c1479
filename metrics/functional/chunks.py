"""Per-image work in cache-sized chunks on colorbench's chunk pool (:func:`per_image_chunks`)."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from colorbench.core.threads import chunk_map


#: Pixels per chunk of the per-image float64 work (:func:`per_image_chunks`): the temporaries of a chunk (<= 1 MB)
#: are reused from the allocator's free lists and stay in the CPU cache. A whole batch's temporaries (12 MB for 500
#: 32x32 images in float64) are mapped and page-faulted in afresh each time: measured 13x slower (1 thread).
CHUNK_PIXELS = 2**15
#: Pixels per chunk of the float64 difference and colourfulness kernels, which keep one float64 copy per chunk
#: (their other steps are in place or reductions): on the chunk pool (2 threads), 2**17 was 20-25% faster than
#: 2**15 for MSE and 1.3-2x for the colourfulness moments, at 32x32, 64x64 and 256x256 (measured side by side:
#: fewer ops, so fewer hand-offs of the interpreter lock); 2**18 was slower again.
FLOAT64_CHUNK_PIXELS = 2**17


def per_image_chunks(fn: Callable[..., Tensor], *images: Tensor, pixels: int = CHUNK_PIXELS) -> Tensor:
    """``fn`` applied to chunks of ``(N, C, H, W)`` batches of about ``pixels`` pixels each (at least one image),
    its per-image results ``(n, ...)`` concatenated. Equals ``fn(*images)`` for any ``fn`` that treats images
    independently. On a GPU, where small kernels cost more than they save, ``fn(*images)`` at once.

    The chunks run on :func:`colorbench.core.threads.chunk_map`'s pool, each single-threaded: thousands of small
    multi-threaded ops would each wait for a descheduled thread whenever another process shares the cores
    (measured 2-10x slower then; metrics/README.md). Each chunk is computed by one thread alone, so the values
    do not depend on the number of threads."""
    n, _, h, w = images[0].shape
    step = max(1, pixels // (h * w)) if images[0].device.type == "cpu" else n
    if step >= n:
        return fn(*images)
    return torch.cat(chunk_map(lambda start: fn(*(x[start : start + step] for x in images)), range(0, n, step)))
