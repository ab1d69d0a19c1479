"""glibc malloc settings for the long scoring loops: keep freed buffers instead of returning them to the kernel.

Why: the metrics allocate and free the same few-megabyte temporaries for every image (SSIM's filtered float64
planes, ~6 MB per 256x256 image). glibc's defaults hand such blocks back to the kernel (``munmap``, or a heap trim
above a threshold that adapts to the last freed block), so every image faults its temporaries in again: measured
on ``colorbench evaluate`` of 2,000 256x256 images (second pass, default metrics, load 1.1-1.7), 2.58 million
minor page faults and 10.6 s of system time out of 69.9 s of CPU. With a fixed mmap threshold of 64 MiB and a
trim threshold of 256 MiB: 0.48 million faults, 3.1 s of system time and 53.8 s of CPU (0.77x), peak RSS 1.12 ->
1.23 GB (the kept buffers). 32/128 MiB kept 1.2 million faults; 256 MiB/1 GiB gave no fewer than 64/256.

No library sets these (they are process-wide C allocator knobs), hence ``ctypes``. Elsewhere than glibc this is
a no-op. The environment variables ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do the same for
processes that start after they are set; :func:`keep_freed_memory` sets them too (``environ=True``) so that
worker processes started afterwards (decoding, scoring) get the same settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

#: glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
#: Blocks at least this large are mmapped (and given back on free); smaller ones come from the heap.
MMAP_THRESHOLD = 64 << 20
#: Free memory at the top of a heap is returned to the kernel only above this.
TRIM_THRESHOLD = 256 << 20

_applied = False


def keep_freed_memory(environ: bool = True) -> bool:
    """Set :data:`MMAP_THRESHOLD` and :data:`TRIM_THRESHOLD` in this process (glibc's ``mallopt``) and, with
    ``environ``, in the environment of processes it starts later. Returns whether glibc took them (False on
    other C libraries, where nothing is changed). Idempotent."""
    global _applied
    if environ:
        os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
        os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    if _applied:
        return True
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success, 0 on error
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _applied
