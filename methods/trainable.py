"""Shared machinery of every trainable method, whatever its colour space (Lab, RGB, ...).

:class:`TrainableMethod` implements the parts of the :class:`~colorbench.methods.base.Method` contract that do not
depend on what the networks predict, so a method module builds its networks, writes its ``train_step`` and a
:meth:`TrainableMethod.predict` (grey -> RGB) that the pure :meth:`TrainableMethod.colorize` runs:

* seeding: networks are built on the CPU under ``seed`` (so CPU and CUDA instances start identical), and
  training-time randomness (dropout, noise, image pools) draws from the method's own RNG stream, also seeded by
  ``seed`` and saved in checkpoints; the global torch RNG is left untouched;
* mixed precision on CUDA (``amp``: autocast in bfloat16, or float16 with a gradient scaler per optimizer);
* a pure :meth:`TrainableMethod.colorize` (eval mode, no grad, train/eval modes restored afterwards), and
  :meth:`TrainableMethod.run_pure` for other pure entry points (alternative outputs, samples);
* finite-loss checks (``FloatingPointError`` naming the loss) and the pix2pix linear learning-rate decay over the
  last ``lr_decay_fraction`` of the epochs, applied in :meth:`TrainableMethod.end_epoch`.

The Lab methods add their colour convention on top of this in :mod:`colorbench.methods.lab`.
"""

from __future__ import annotations

import contextlib
import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterator

import torch
from torch import Tensor

from colorbench.datasets.base import Batch
from colorbench.methods.base import BaseConfig, Method
from colorbench.methods.nets.common import INIT_TYPES, set_training

AMP_DTYPES = ("bfloat16", "float16")
#: How networks run in colorize: "eval" (running statistics, no dropout) or "train" (Tarrés 2021, §2.3.2).
PREDICTION_MODES = ("eval", "train")


def check_grey_input(gray: Any, who: str = "colorize") -> None:
    """Raise a clear error unless ``gray`` is a float tensor ``(N, 1, H, W)`` with values in [0, 1]."""
    if not torch.is_tensor(gray):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(gray).__name__}")
    if gray.dim() != 4 or gray.shape[1] != 1:
        raise ValueError(f"{who}: expected grey images of shape (N, 1, H, W), got {tuple(gray.shape)}")
    if not gray.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor in [0, 1], got {gray.dtype} (convert uint8 with x / 255)")
    if gray.numel() and not gray.isfinite().all():
        raise ValueError(f"{who}: grey input contains NaN or inf")
    if gray.numel():
        lo, hi = torch.aminmax(gray)
        if lo < 0 or hi > 1:
            raise ValueError(f"{who}: grey values must lie in [0, 1], got [{float(lo):.4g}, {float(hi):.4g}]")


def linear_decay_factor(epoch: int, epochs: int, decay_epochs: int) -> float:
    """Learning-rate factor for 0-based ``epoch`` under pix2pix's ``lr_policy="linear"``.

    The rate is constant for the first ``epochs - decay_epochs`` epochs, then falls linearly over the last
    ``decay_epochs`` ones: ``1 - max(0, epoch + 1 - (epochs - decay_epochs)) / (decay_epochs + 1)``. This is the
    reference's ``lambda_rule`` evaluated at the 0-based epoch (its scheduler stepped after each epoch), so the
    last epoch runs at ``1 / (decay_epochs + 1)`` of the base rate. Versions of the reference's ``train.py`` that
    step the scheduler at the start of each epoch shift the decay one epoch earlier.
    """
    if decay_epochs <= 0:
        return 1.0
    constant = epochs - decay_epochs
    return 1.0 - max(0, epoch + 1 - constant) / float(decay_epochs + 1)


@dataclass
class AdamInitConfig:
    """Adam and weight-initialisation options of the pix2pix / CycleGAN family (a dataclass mixin: list it first
    among a config's bases, so that its check runs and then hands on to the others'). Defaults: pix2pix's and
    CycleGAN's.

    Attributes:
        lr, beta1, beta2: Adam, for generators and discriminators alike.
        init_type, init_gain: weight initialization (``colorbench.methods.nets.INIT_TYPES``).
    """

    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    init_type: str = "normal"
    init_gain: float = 0.02

    def __post_init__(self) -> None:
        if self.lr <= 0 or not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ValueError(f"need lr > 0 and betas in [0, 1), got lr={self.lr}, betas=({self.beta1}, {self.beta2})")
        if self.init_type not in INIT_TYPES:
            raise ValueError(f"unknown init_type {self.init_type!r}; choose one of {INIT_TYPES}")
        parent = getattr(super(), "__post_init__", None)
        if parent is not None:
            parent()


@dataclass
class TrainableConfig(BaseConfig):
    """Options shared by the trainable methods (on top of ``batch_size``, ``epochs``, ``grey_convention``).

    Attributes:
        lr_decay_fraction: the last ``floor(epochs * lr_decay_fraction)`` epochs decay the learning rates
            linearly (0: constant rate). A fraction, so that overriding ``epochs`` keeps the schedule's shape;
            pix2pix's 100 constant + 100 decaying epochs are ``epochs=200, lr_decay_fraction=0.5``.
        amp: mixed precision for the network passes on CUDA (no effect on the CPU).
        amp_dtype: ``"bfloat16"`` (no loss scaling needed) or ``"float16"`` (with a gradient scaler).
        prediction_mode: how the networks run when colorizing: ``"eval"`` (batch-norm running statistics, no
            dropout: deterministic per image) or ``"train"`` (dropout active and batch statistics of the batch
            being colorized, as Tarrés 2021 §2.3.2 does "during training and prediction"; dropout draws from a
            generator seeded with the method's seed at every call, and batch-norm running statistics are restored
            afterwards, so colorize stays pure and repeatable; the output then depends on the other images of the
            batch).
    """

    lr_decay_fraction: float = 0.0
    amp: bool = True
    amp_dtype: str = "bfloat16"
    prediction_mode: str = "eval"

    def __post_init__(self) -> None:
        BaseConfig.__post_init__(self)  # the grey convention, parsed to a Grey
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if not 0.0 <= self.lr_decay_fraction <= 1.0:
            raise ValueError(f"lr_decay_fraction must be in [0, 1], got {self.lr_decay_fraction}")
        if self.amp_dtype not in AMP_DTYPES:
            raise ValueError(f"unknown amp_dtype {self.amp_dtype!r}; choose one of {AMP_DTYPES}")
        if self.prediction_mode not in PREDICTION_MODES:
            raise ValueError(f"unknown prediction_mode {self.prediction_mode!r}; choose one of {PREDICTION_MODES}")

    @property
    def lr_decay_epochs(self) -> int:
        """How many of the last epochs decay the learning rate."""
        return int(self.epochs * self.lr_decay_fraction + 1e-9)


class TrainableMethod(Method):
    """Base of the methods with networks to train (see the module docstring for what it provides).

    Subclasses implement :meth:`build_networks` (create the networks as attributes; called on the CPU under
    the seed), :meth:`build_optimizers`, :meth:`networks`, :meth:`train_step` and :meth:`predict`; they may
    override :meth:`size_multiple_of`.
    """

    Config: ClassVar[type] = TrainableConfig
    #: Networks that are never trained (e.g. a frozen feature network); they stay in eval mode in every mode.
    frozen_networks: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        super().__init__(config, device, seed)
        with torch.random.fork_rng(devices=[]):  # CPU RNG only; restored afterwards
            torch.default_generator.manual_seed(seed)
            self.build_networks()
            self._rng_cpu = torch.get_rng_state()  # the method's own stream continues from here
        self._rng_cuda: Tensor | None = None
        if self.device.type == "cuda":
            index = self.device.index if self.device.index is not None else torch.cuda.current_device()
            self.device = torch.device("cuda", index)
            with torch.random.fork_rng(devices=[index], device_type="cuda"), torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
                self._rng_cuda = torch.cuda.get_rng_state(index)
        for net in self.networks().values():
            net.to(self.device)
        self._optimizers: dict[str, torch.optim.Optimizer] = self.build_optimizers()
        self._base_lrs = {k: [g["lr"] for g in opt.param_groups] for k, opt in self._optimizers.items()}
        self._scalers = {
            k: torch.amp.GradScaler("cuda", enabled=self._amp_dtype() == torch.float16) for k in self._optimizers
        }
        self.steps = 0
        self.set_train(True)

    # --- hooks for subclasses ------------------------------------------------------------------------------
    @abstractmethod
    def build_networks(self) -> None:
        """Create the networks (as attributes), on the CPU; the caller has seeded the RNG."""

    @abstractmethod
    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Create the optimizers (the networks are on ``self.device`` already)."""

    @abstractmethod
    def predict(self, gray: Tensor) -> Tensor:
        """Grey ``(N, 1, H, W)`` float32 in [0, 1] on ``self.device`` -> sRGB ``(N, 3, H, W)`` float32 in [0, 1].

        Called by :meth:`colorize` in eval mode under ``torch.no_grad()``, after the input was checked."""

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    @classmethod
    def size_multiple_of(cls, config: Any) -> int:
        """Image sides must be multiples of this for ``config`` (1: any size)."""
        return 1

    # --- checks ----------------------------------------------------------------------------------------------
    def check_image_size(self, h: int, w: int) -> None:
        """Raise ValueError if an ``h``×``w`` image does not fit the networks, naming the presets that would."""
        m = self.size_multiple_of(self.config)
        if h % m == 0 and w % m == 0:
            return
        fitting = []
        for name in sorted(self.presets):
            try:
                k = self.size_multiple_of(self.make_config(name))
            except (TypeError, ValueError):
                continue
            if h % k == 0 and w % k == 0:
                fitting.append(name)
        hint = f"presets that fit {h}×{w}: {', '.join(fitting)}" if fitting else f"no preset fits {h}×{w}"
        raise ValueError(
            f"method {self.card.name!r} needs image sides divisible by {m} with this config, got {h}×{w} ({hint}; "
            f"or resize/crop the images)"
        )

    def prepare_batch(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """The batch's grey and RGB images on ``self.device`` in float32, after checking them."""
        if batch.grey_convention != self.config.grey_convention:
            raise ValueError(
                f"method {self.card.name!r}: batch grey convention '{batch.grey_convention}' differs from the "
                f"method's '{self.config.grey_convention}'"
            )
        gray, rgb = batch.gray, batch.rgb
        if gray.dim() != 4 or gray.shape[1] != 1 or rgb.shape != (gray.shape[0], 3, *gray.shape[2:]):
            raise ValueError(f"batch: expected gray (B,1,H,W) and rgb (B,3,H,W), got {tuple(gray.shape)} and {tuple(rgb.shape)}")
        self.check_image_size(*gray.shape[-2:])
        return gray.to(self.device).float(), rgb.to(self.device).float()

    def finish_step(self, losses: dict[str, Tensor]) -> dict[str, Any]:
        """Loss tensors -> Python floats (one device sync); FloatingPointError if any is NaN or inf.

        With :attr:`defer_loss_sync` (set by the training loop) the detached float32 tensors instead, with no sync
        and no check: the loop checks them when it brings them to the host."""
        self.steps += 1
        if self.defer_loss_sync:
            return {k: v.detach().float() for k, v in losses.items()}
        values = torch.stack([v.detach().float() for v in losses.values()]).tolist()
        out = dict(zip(losses, values))
        bad = {k: v for k, v in out.items() if not math.isfinite(v)}
        if bad:
            raise FloatingPointError(
                f"method {self.card.name!r}: non-finite loss {bad} at step {self.steps} (epoch {self.epoch}); "
                f"all losses: {out}. Training diverged: lower the learning rate or check the data"
            )
        return out

    # --- devices, precision, randomness -------------------------------------------------------------------
    def _amp_dtype(self) -> torch.dtype | None:
        if not (self.config.amp and self.device.type == "cuda"):
            return None
        if self.config.amp_dtype == "bfloat16" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        """Mixed-precision context for network passes (a no-op on the CPU or with ``amp=False``)."""
        dtype = self._amp_dtype()
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type="cuda", dtype=dtype)

    def optimize(self, loss: Tensor, name: str) -> None:
        """Zero the grads of optimizer ``name``, backpropagate ``loss`` and step (with loss scaling under fp16)."""
        opt, scaler = self._optimizers[name], self._scalers[name]
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    @contextlib.contextmanager
    def training_rng(self) -> Iterator[None]:
        """Run the block on the method's own RNG stream (dropout, noise); the global RNG is left unchanged."""
        cuda = self._rng_cuda is not None
        devices = [self.device.index] if cuda else []
        with torch.random.fork_rng(devices=devices, device_type="cuda"):
            torch.set_rng_state(self._rng_cpu)
            if cuda:
                torch.cuda.set_rng_state(self._rng_cuda, self.device.index)
            try:
                yield
            finally:
                self._rng_cpu = torch.get_rng_state()
                if cuda:
                    self._rng_cuda = torch.cuda.get_rng_state(self.device.index)

    # --- the contract ----------------------------------------------------------------------------------------
    @torch.no_grad()
    def run_pure(self, gray: Tensor, fn: Callable[[Tensor], Tensor], who: str) -> Tensor:
        """Check ``gray``, run ``fn`` on it (float32, on ``self.device``) with no grad and every network in the
        config's ``prediction_mode`` (eval by default), restore each network's train/eval mode, and return the
        result on the input's device.

        In ``"train"`` mode the networks' buffers (batch-norm running statistics, spectral-norm vectors) are
        restored afterwards and dropout draws from a generator seeded with ``self.seed`` (the global RNG state is
        restored), so the call changes no state and repeats exactly for the same batch."""
        check_grey_input(gray, who)
        self.check_image_size(*gray.shape[-2:])
        nets = self.networks()
        train_mode = getattr(self.config, "prediction_mode", "eval") == "train"
        saved = [b.detach().clone() for net in nets.values() for b in net.buffers()] if train_mode else []
        before = set_training(nets, train_mode)
        for k in self.frozen_networks:  # fixed networks (e.g. a pretrained feature network) always run in eval
            nets[k].eval()
        try:
            if train_mode:
                cuda = [self.device.index if self.device.index is not None else 0] if self.device.type == "cuda" else []
                with torch.random.fork_rng(devices=cuda, device_type="cuda"):
                    torch.manual_seed(self.seed)  # seeds the CPU and every CUDA generator
                    out = fn(gray.to(self.device).float())
            else:
                out = fn(gray.to(self.device).float())
        finally:
            set_training(nets, before)
            if train_mode:
                for b, old in zip((b for net in nets.values() for b in net.buffers()), saved):
                    b.copy_(old)
        return out.to(gray.device)

    def colorize(self, gray: Tensor) -> Tensor:
        """``(N, 1, H, W)`` grey in [0, 1] -> ``(N, 3, H, W)`` float32 sRGB in [0, 1] on the input's device.

        Runs :meth:`predict` in the config's ``prediction_mode`` (default eval: batch-norm running statistics,
        no dropout) and restores each network's train/eval mode afterwards; changes no parameter, buffer or RNG
        state.
        """
        return self.run_pure(gray, self.predict, f"{self.card.name}.colorize")

    def end_epoch(self) -> None:
        """Advance the epoch counter and set the learning rates for the next epoch (linear decay)."""
        super().end_epoch()
        factor = linear_decay_factor(self.epoch, self.config.epochs, self.config.lr_decay_epochs)
        for name, opt in self._optimizers.items():
            for group, base in zip(opt.param_groups, self._base_lrs[name]):
                group["lr"] = base * factor

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["steps"] = self.steps
        state["rng"] = {"cpu": self._rng_cpu.clone(), "cuda": None if self._rng_cuda is None else self._rng_cuda.clone()}
        state["scalers"] = {k: s.state_dict() for k, s in self._scalers.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Load networks, optimizers, epoch, step count, the training RNG stream and loss scalers."""
        super().load_state_dict(state)
        self.steps = int(state.get("steps", 0))
        rng = state.get("rng") or {}
        if rng.get("cpu") is not None:
            self._rng_cpu = rng["cpu"].clone()
        if rng.get("cuda") is not None and self._rng_cuda is not None:
            self._rng_cuda = rng["cuda"].clone()
        for k, s in state.get("scalers", {}).items():
            if k in self._scalers and s:
                self._scalers[k].load_state_dict(s)
