"""Several streaming metrics updated together, each batch validated once and its shared features computed once.

In the spirit of torchmetrics' ``MetricCollection`` (with compute groups): the runner and the benchmarks stream a
test set through one :class:`MetricCollection`; each metric keeps its own state, so ``compute``, ``merge``,
``reset`` and pickling work per metric as before.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from torch import Tensor

from colorbench.core import threads
from colorbench.metrics.base import StreamingMetric
from colorbench.metrics.inputs import MetricInputs


class MetricCollection(Mapping[str, StreamingMetric]):
    """A name -> metric mapping whose :meth:`update` feeds every metric one shared :class:`MetricInputs`.

    Args:
        metrics: metric instances by name (a plain dict; the order is kept).

    Example:
        >>> import torch
        >>> from colorbench.metrics import METRICS
        >>> mc = MetricCollection({n: METRICS.get(n)() for n in ("mse", "psnr")})
        >>> x = torch.rand(2, 3, 8, 8); mc.update(x, x * 0.5)
        >>> sorted(mc.compute())
        ['mse', 'psnr']
    """

    def __init__(self, metrics: Mapping[str, StreamingMetric]) -> None:
        for name, m in metrics.items():
            if not isinstance(m, StreamingMetric):
                raise TypeError(f"{name!r}: expected a StreamingMetric, got {type(m).__name__}")
        self._metrics = dict(metrics)

    def __getitem__(self, name: str) -> StreamingMetric:
        return self._metrics[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)

    def update(self, pred: Tensor, target: Tensor, eight_bit: dict[str, Tensor] | None = None) -> MetricInputs:
        """Validate the batch once and update every metric from the same :class:`MetricInputs` (returned), in
        :func:`colorbench.core.threads.metric_section` (the caller's own ops single-threaded; the chunk pool as
        before; networks leave it for their forward pass). ``eight_bit``: the uint8 images a side was made from
        (see :class:`MetricInputs`)."""
        with threads.metric_section():
            inputs = MetricInputs(pred, target, eight_bit=eight_bit)
            for m in self._metrics.values():
                m.update_inputs(inputs)
        return inputs

    def compute(self) -> dict[str, dict[str, float]]:
        """Each metric's :meth:`~StreamingMetric.compute`, by metric name."""
        with threads.metric_section():
            return {name: m.compute() for name, m in self._metrics.items()}

    def reset(self) -> None:
        for m in self._metrics.values():
            m.reset()

    def merge(self, other: "MetricCollection") -> None:
        """Merge another collection of the same metrics (e.g. a shard of the test set) into this one."""
        if list(other) != list(self):
            raise ValueError(f"cannot merge a collection of {list(other)} into one of {list(self)}")
        for name, m in self._metrics.items():
            m.merge(other[name])
