"""The metric benchmarks' workload, shared by ``test_metrics_speed.py`` and the before-#13 child process
(``baseline.py``), so both time the same tensors and the same streamed evaluation. It imports only torch at
module level and whichever ``colorbench`` is first on ``sys.path`` when a function runs (the child's is the old
one)."""

from __future__ import annotations

import torch


def data(size: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` (colorized, real) pairs of ``size`` x ``size`` images, the same for a given size."""
    g = torch.Generator().manual_seed(size)
    target = torch.rand(n, 3, size, size, generator=g)
    pred = (target * 0.7 + 0.1 + 0.05 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    return pred, target


def stream(pred: torch.Tensor, target: torch.Tensor, names, batch: int = 500):
    """The metrics ``names`` streamed through one ``MetricCollection`` in batches, as the runner does."""
    from colorbench.metrics import METRICS, MetricCollection

    metrics = MetricCollection({name: METRICS.get(name)() for name in names})
    for start in range(0, len(pred), batch):
        metrics.update(pred[start : start + batch], target[start : start + batch])
    return metrics.compute()
