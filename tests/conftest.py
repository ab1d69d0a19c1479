import os

os.environ.setdefault("MPLBACKEND", "Agg")  # figures are written to files; no display in CI

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _deterministic_torch():
    torch.manual_seed(0)
    yield
