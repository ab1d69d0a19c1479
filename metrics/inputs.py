"""One evaluated batch, validated once, with the quantities several metrics share computed at most once.

A full evaluation computes MSE and PSNR from the same per-image squared errors, KL and JS (and their joint
variants) from the same Lab conversion, colourfulness and its delta from the same opponent-colour moments.
:class:`MetricInputs` memoises those per batch, so a :class:`~colorbench.metrics.collection.MetricCollection`
pays for each once (the Lab conversion alone was ~40% of the metric set's time when every metric converted
again). A metric used on its own builds its own :class:`MetricInputs` and gets the same numbers.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable

import torch
from torch import Tensor

from colorbench.metrics import functional as MF

#: The two images of a pair: ``"pred"`` (colorized) and ``"target"`` (real).
SIDES = ("pred", "target")


class MetricInputs:
    """A (colorized, real) batch of ``(N, 3, H, W)`` float RGB in [0, 1], checked once, with memoised features.

    Args:
        pred: colorized images.
        target: real images, same shape and device.
        validate: check both (shape, dtype, range, finiteness; see :func:`functional.check_image_pair`). Only
            pass False for tensors that were just checked.
        eight_bit: the uint8 ``(N, 3, H, W)`` images a side was made from (``side -> x`` with the side's float
            image exactly ``x / 255`` in float32, as decoded files and dataset images are), for kernels that are
            faster on 8-bit values (the ab histograms' colour table) and give the same numbers.
    """

    def __init__(self, pred: Tensor, target: Tensor, validate: bool = True,
                 eight_bit: dict[str, Tensor] | None = None) -> None:
        if validate:
            MF.check_image_pair(pred, target)
        self.eight_bit = dict(eight_bit or {})
        for side, x in self.eight_bit.items():
            if side not in SIDES or x.dtype != torch.uint8 or x.shape != pred.shape:
                raise ValueError(f"eight_bit[{side!r}] must be the uint8 {tuple(pred.shape)} images of a side "
                                 f"{SIDES}, got {x.dtype} {tuple(x.shape)}")
        # Metrics evaluate, they are no training loss: detached (views, no copy), the in-place kernels and out=
        # arguments work on a method's outputs that are still part of an autograd graph.
        self.pred, self.target = (x.detach() if x.requires_grad else x for x in (pred, target))
        self._memo: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        return int(self.pred.shape[0])

    def image(self, side: str) -> Tensor:
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {side!r}")
        return self.pred if side == "pred" else self.target

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for in this batch, the stored value afterwards."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    # --- shared features ---------------------------------------------------------------------------------------
    def _table_joint_counts(self, side: str, bins: int, value_range: tuple[float, float]) -> Tensor | None:
        """Joint counts of an 8-bit side through the colour table (:func:`functional.ab_colour_table`), or None
        (the side is not 8-bit, or the table is not worth building yet)."""
        x = self.eight_bit.get(side)
        if x is None:
            return None
        key = ("ab_table_joint_counts", side, bins, tuple(value_range))
        if key not in self._memo:
            table = MF.ab_colour_table(bins, value_range, pixels=x.numel() // 3)
            if table is None:
                return None
            self._memo[key] = MF.ab_joint_counts_8bit(x, table, bins)
        return self._memo[key]

    def ab_counts(self, side: str, bins: int, value_range: tuple[float, float]) -> Tensor:
        """Pooled a and b histogram counts ``(2, bins)`` (see :func:`functional.ab_histogram_counts`), on the CPU;
        of an 8-bit side, the same counts from its colour table."""
        def counts() -> Tensor:
            joint = self._table_joint_counts(side, bins, value_range)
            if joint is not None:
                return torch.stack((joint.sum(dim=1), joint.sum(dim=0)))
            return MF.ab_counts_unchecked(self.image(side), bins, value_range).cpu()

        return self.memo(("ab_counts", side, bins, tuple(value_range)), counts)

    def ab_joint_counts(self, side: str, bins: int, value_range: tuple[float, float]) -> Tensor:
        """Pooled joint (a, b) counts ``(bins, bins)`` (see :func:`functional.ab_joint_histogram_counts`), CPU."""
        def counts() -> Tensor:
            joint = self._table_joint_counts(side, bins, value_range)
            if joint is not None:
                return joint
            return MF.ab_counts_unchecked(self.image(side), bins, value_range, joint=True).cpu()

        return self.memo(("ab_joint_counts", side, bins, tuple(value_range)), counts)

    def difference_statistics(self) -> Tensor:
        """Per image [MSE on 0-255, sum of |pred - target| on 0-1], float64 ``(N, 2)`` (MSE, PSNR, sum of
        absolute differences; see :func:`functional.difference_statistics`)."""
        return self.memo("diff_stats", lambda: MF.difference_statistics(self.pred, self.target))

    def mse(self) -> Tensor:
        """Per-image MSE on the 0-255 scale, float64 ``(N,)`` on the CPU (see :func:`functional.mse`)."""
        return self.difference_statistics()[:, 0].cpu()

    def colorfulness_moments(self, side: str) -> Tensor:
        """Per-image opponent-colour moments ``(N, 5)`` (see :func:`functional.colorfulness_moments`)."""
        return self.memo(("cf_moments", side), lambda: MF.colorfulness_moments_unchecked(self.image(side)))
