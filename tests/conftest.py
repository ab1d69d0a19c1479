import os

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files; no display in CI

import pytest  # noqa: E402
import torch  # noqa: E402

# The test networks are tiny: a second intra-op thread only adds synchronisation, and on a loaded 2-core machine
# it made the same pix2pix step ~25x slower (measured: 21 vs 545 images/s). One thread keeps the suite's time
# predictable; the runner applies colorbench.threads' policy (one thread for small networks on the CPU too).
torch.set_num_threads(1)
# ... and colorbench's thread policy (colorbench.threads, which the runner applies) keeps to it, metric pool included
os.environ.setdefault("COLORBENCH_THREADS", "1")


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
