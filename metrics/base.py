"""Streaming metric interface (in the spirit of torchmetrics, without the nn.Module machinery).

A metric's logic lives in pure functions (``colorbench.metrics.functional``); a streaming class only keeps
state: :meth:`StreamingMetric.update` accumulates, :meth:`StreamingMetric.compute` only reads the state,
:meth:`StreamingMetric.merge` adds another instance's state (sharded evaluation), :meth:`StreamingMetric.reset`
empties it. :meth:`StreamingMetric.update` validates a batch once and hands a :class:`~colorbench.metrics.inputs.MetricInputs` to
:meth:`StreamingMetric.update_inputs`, where features shared by several metrics are computed once per batch.
State is a dict of tensors (on the CPU, so instances pickle and merge anywhere) declared with
:meth:`StreamingMetric.add_state`.

Every convention that changes a value is a constructor parameter and is returned by
:meth:`StreamingMetric.params`, which the runner stores next to the value.
"""

from __future__ import annotations

import copy
from array import array
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from torch import Tensor

from colorbench.core import threads
from colorbench.metrics.errors import MetricUnavailable  # noqa: F401  (re-exported)
from colorbench.metrics.inputs import MetricInputs


class ValueBuffer:
    """Float64 values appended batch by batch (a metric's per-image values), kept in one ``array.array``.

    Why not a list of per-batch tensors: with glibc's allocator, thousands of small tensors kept alive between the
    large short-lived buffers of every batch fragment the heap, and the resident memory of a streamed evaluation
    grew without bound (measured: +40 MB per 1,000 images of 32x32, 2.3 GB more after 48,000); the bytes of an
    ``array.array`` do not (flat; see benchmarks/test_metrics_speed.py).

    Args:
        width: values per image (1: a ``(N,)`` tensor; k: ``(N, k)``).
    """

    def __init__(self, width: int = 1) -> None:
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        self.width = int(width)
        self._data = array("d")

    def append(self, values: Tensor) -> None:
        """Add the values of a batch: shape ``(n,)`` (width 1) or ``(n, width)``."""
        want = (values.shape[0],) if self.width == 1 else (values.shape[0], self.width)
        if tuple(values.shape) != want:
            raise ValueError(f"expected values of shape {want}, got {tuple(values.shape)}")
        self._data.frombytes(values.detach().to("cpu", torch.float64).contiguous().numpy().tobytes())

    def tensor(self) -> Tensor:
        """All values so far, float64 ``(N,)`` or ``(N, width)`` (a copy)."""
        t = torch.tensor(self._data, dtype=torch.float64)
        return t if self.width == 1 else t.view(-1, self.width)

    def __len__(self) -> int:
        return len(self._data) // self.width

    def __add__(self, other: "ValueBuffer") -> "ValueBuffer":
        if not isinstance(other, ValueBuffer) or other.width != self.width:
            raise ValueError("can only concatenate value buffers of the same width")
        out = ValueBuffer(self.width)
        out._data = self._data + other._data
        return out


class StreamingMetric(ABC):
    """Base class of streaming metrics.

    Class attributes:
        name: registry name.
        outputs: output key -> higher_is_better, in the order results show them (e.g. ``{"kl_a": False, ...}``).
        version: bumped whenever a change can change a value.
        per_image: True if the metric keeps one value per image (for bootstrap intervals).
        takes_grey_convention: True if the value depends on the run's grey convention; the constructor then takes
            ``grey_convention`` (the runner passes the run's) and ``params()["grey"]`` records it.
    """

    name: ClassVar[str] = ""
    outputs: ClassVar[dict[str, bool]] = {}
    version: ClassVar[str] = "1"
    per_image: ClassVar[bool] = False
    takes_grey_convention: ClassVar[bool] = False

    def __init__(self) -> None:
        self._defaults: dict[str, tuple[Any, str]] = {}
        self._state: dict[str, Any] = {}

    # --- state ---------------------------------------------------------------------------------------------
    def add_state(self, name: str, default: Any, reduce: str = "sum") -> None:
        """Declare a state entry. ``reduce`` is how :meth:`merge` combines two states: ``"sum"`` (tensors added)
        or ``"cat"`` (:class:`ValueBuffer` of per-image values, concatenated)."""
        if reduce not in ("sum", "cat"):
            raise ValueError(f"reduce must be 'sum' or 'cat', got {reduce!r}")
        if reduce == "cat" and not isinstance(default, ValueBuffer):
            raise TypeError(f"state {name!r}: reduce='cat' needs a ValueBuffer default (see its docstring)")
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
        for name in self._defaults:  # tensors add ("sum"), value buffers concatenate ("cat")
            self._state[name] = self._state[name] + other._state[name]

    # --- the interface -------------------------------------------------------------------------------------
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Accumulate a batch: ``pred`` (colorized) and ``target`` (real), ``(N, 3, H, W)`` float RGB in [0, 1].

        Validates the pair (a clear error on a wrong shape, dtype, range or a NaN) and calls
        :meth:`update_inputs`. A :class:`~colorbench.metrics.collection.MetricCollection` validates once and
        calls :meth:`update_inputs` of every metric with one shared :class:`MetricInputs`. Runs in
        :func:`colorbench.core.threads.metric_section` (the caller's own ops single-threaded; the chunk pool as before).
        """
        with threads.metric_section():
            self.update_inputs(MetricInputs(pred, target))

    @abstractmethod
    def update_inputs(self, inputs: MetricInputs) -> None:
        """Accumulate a validated batch; take shared features (Lab, per-image MSE, ...) from ``inputs``."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """The metric values, one per key of ``outputs``."""

    def params(self) -> dict[str, Any]:
        """Every convention that changes the value (recorded with it)."""
        return {}

    def input_problem(self, height: int, width: int) -> str | None:
        """Why this metric cannot be computed on ``height`` x ``width`` images (``None`` when it can). The runner
        asks before evaluating: such a metric is recorded missing with this reason, the rest of the row stays."""
        return None

    def per_image_values(self) -> dict[str, Tensor]:
        """Per-image values by output key (only for ``per_image`` metrics)."""
        return {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "outputs": dict(self.outputs), "params": self.params()}

