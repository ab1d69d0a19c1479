"""Streaming metric interface (in the spirit of torchmetrics, without the nn.Module machinery).

A metric's logic lives in pure functions (``colorbench.metrics.functional``); a streaming class only keeps
state: :meth:`StreamingMetric.update` accumulates, :meth:`StreamingMetric.compute` only reads the state,
:meth:`StreamingMetric.merge` adds another instance's state (sharded evaluation), :meth:`StreamingMetric.reset`
empties it. State is a dict of tensors (on the CPU, so instances pickle and merge anywhere) declared with
:meth:`StreamingMetric.add_state`.

Every convention that changes a value is a constructor parameter and is returned by
:meth:`StreamingMetric.params`, which the runner stores next to the value.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor


class MetricUnavailable(RuntimeError):
    """A metric cannot be computed here (e.g. pretrained weights are not on disk). The message is the reason,
    and says what to put where to make it available. The runner records the value as missing with it."""


class StreamingMetric(ABC):
    """Base class of streaming metrics.

    Class attributes:
        name: registry name.
        outputs: output key -> higher_is_better, in the order results show them (e.g. ``{"kl_a": False, ...}``).
        version: bumped whenever a change can change a value.
        per_image: True if the metric keeps one value per image (for bootstrap intervals).
    """

    name: ClassVar[str] = ""
    outputs: ClassVar[dict[str, bool]] = {}
    version: ClassVar[str] = "1"
    per_image: ClassVar[bool] = False

    def __init__(self) -> None:
        self._defaults: dict[str, tuple[Any, str]] = {}
        self._state: dict[str, Any] = {}

    # --- state ---------------------------------------------------------------------------------------------
    def add_state(self, name: str, default: Any, reduce: str = "sum") -> None:
        """Declare a state entry. ``reduce`` is how :meth:`merge` combines two states: ``"sum"`` (tensors added)
        or ``"cat"`` (lists of per-batch tensors concatenated)."""
        if reduce not in ("sum", "cat"):
            raise ValueError(f"reduce must be 'sum' or 'cat', got {reduce!r}")
        self._defaults[name] = (default, reduce)
        self._state[name] = copy.deepcopy(default)

    def __getattr__(self, name: str) -> Any:
        state = self.__dict__.get("_state")
        if state is not None and name in state:
            return state[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        state = self.__dict__.get("_state")
        if state is not None and name in state:
            state[name] = value
        else:
            object.__setattr__(self, name, value)

    def reset(self) -> None:
        for name, (default, _) in self._defaults.items():
            self._state[name] = copy.deepcopy(default)

    def merge(self, other: "StreamingMetric") -> None:
        """Add ``other``'s state into this one (same class and parameters required)."""
        if type(other) is not type(self) or other.params() != self.params():
            raise ValueError(f"cannot merge {type(other).__name__}{other.params()} into {type(self).__name__}{self.params()}")
        for name, (_, reduce) in self._defaults.items():
            if reduce == "sum":
                self._state[name] = self._state[name] + other._state[name]
            else:
                self._state[name] = list(self._state[name]) + list(other._state[name])

    # --- the interface -------------------------------------------------------------------------------------
    @abstractmethod
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Accumulate a batch: ``pred`` (colorized) and ``target`` (real), ``(N, 3, H, W)`` float RGB in [0, 1]."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """The metric values, one per key of ``outputs``."""

    def params(self) -> dict[str, Any]:
        """Every convention that changes the value (recorded with it)."""
        return {}

    def per_image_values(self) -> dict[str, Tensor]:
        """Per-image values by output key (only for ``per_image`` metrics)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "outputs": dict(self.outputs), "params": self.params()}

