"""The interface every colorization method implements, its card, and presets.

A method is a class with:

* ``card`` — a :class:`MethodCard` (paper, paired or unpaired, colour space, choices made where the paper is
  silent);
* ``Config`` — a dataclass of every option, including the training hyper-parameters (``batch_size``,
  ``epochs``, learning rates, loss weights, widths);
* ``presets`` — at least ``"paper"`` (the paper's architecture and hyper-parameters, at its image size) and
  ``"quick"`` (small widths: seconds per epoch on a CPU), as dicts of Config field values. Presets are data.
  Presets compose: ``"quick+seed002"`` is ``quick``'s values with ``seed002``'s on top (an *overlay*: a preset
  that sets only the options a paper changes, not the network sizes);
* ``preset_scales`` — for each preset defined at a paper's scale, the image size and dataset it was defined on
  (:class:`PresetScale`); :func:`colorbench.methods.presets.check_preset_image_size` stops a run whose images
  do not match, saying what to pass.

and the methods :meth:`Method.train_step`, :meth:`Method.colorize`, :meth:`Method.state_dict` /
:meth:`Method.load_state_dict`, :meth:`Method.networks`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from colorbench.core.grey import Grey
from colorbench.datasets.base import Batch, ImageSet


@dataclass(frozen=True)
class MethodCard:
    """What a method is and where it comes from.

    Attributes:
        name: registry name.
        title: one-line description.
        paper: the paper(s) the method implements (authors, title, venue, year).
        source: the seed file in ``shared/seeds`` that asks for it (or "" for plain baselines).
        paired: True if it trains on (grey, colour) pairs of the same image; False for unpaired methods.
        color_space: what the network predicts: ``"lab"`` (ab from L), ``"rgb"``, or ``"none"``.
        trainable: False for methods with nothing to train (e.g. the grey baseline).
        stochastic: True if ``colorize`` samples noise (diversity is then measured).
        needs_masks: True if training needs per-pixel class masks.
        choices: decisions taken where the paper is silent, each with the source followed.
        licence: the licence(s) a result of the method is under: colorbench's code (MIT) and, where the method
            loads pretrained weights, theirs (or "not verified here").
        training_data: the datasets the method's *pretrained* weights were trained on (the method's own released
            weights or a pretrained feature network); empty when everything is trained by the run on the run's
            own training split.
        weights: the weights-registry names (``colorbench weights list``) the method can load; their files,
            URLs and SHA-256 are in :data:`colorbench.core.weights.WEIGHTS` (:meth:`weights_hashes`).
    """

    name: str
    title: str
    paper: str
    source: str = ""
    paired: bool = True
    color_space: str = "lab"
    trainable: bool = True
    stochastic: bool = False
    needs_masks: bool = False
    choices: tuple[str, ...] = ()
    licence: str = "MIT (colorbench's implementation; no pretrained weights)"
    training_data: tuple[str, ...] = ()
    weights: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["choices"] = list(self.choices)
        d["training_data"], d["weights"] = list(self.training_data), list(self.weights)
        return d

    def weights_hashes(self) -> dict[str, str]:
        """Registry name -> the SHA-256 (full, or the published prefix) of each file in :attr:`weights`."""
        from colorbench.core.weights import get

        return {name: get(name).sha256 for name in self.weights}


@dataclass(frozen=True)
class PresetScale:
    """The image size(s) and dataset(s) a preset was defined on, and where the paper says so.

    Attributes:
        sizes: dataset name -> image side (square images) the paper used on it; ``{}`` with ``any_size``.
        source: the section / table / page of the paper that gives the size.
        any_size: True when the paper gives no size and the preset works at any (e.g. per-image pyramids).
    """

    sizes: dict[str, int]
    source: str
    any_size: bool = False

    def allowed_sizes(self) -> list[int]:
        return sorted(set(self.sizes.values()))


@dataclass
class BaseConfig:
    """Options shared by every method. Subclasses add their own fields (with defaults)."""

    batch_size: int = 16
    epochs: int = 1
    #: Set by the runner from the run spec (the same for all methods); the default is the one a method built
    #: outside a run gets, and is part of its config (``describe``, the record), not applied unseen.
    grey_convention: Grey = Grey.BT601

    def __post_init__(self) -> None:  # subclasses with their own __post_init__ call this one explicitly
        try:
            self.grey_convention = Grey.parse(self.grey_convention)
        except ValueError:  # the message names the option
            raise ValueError(f"unknown grey_convention {self.grey_convention!r}; choose one of "
                             f"{tuple(g.value for g in Grey)}") from None


class Method(ABC):
    """A colorization method: trains on batches and colorizes grey images.

    Args:
        config: an instance of ``cls.Config``.
        device: torch device the networks live on.
        seed: seeds the networks' initialization (the runner seeds data order separately).
    """

    card: ClassVar[MethodCard]
    Config: ClassVar[type] = BaseConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "quick": {}}
    #: Names of alternative outputs (e.g. SpyncoGan's pyramid outputs "G1", "G2", "G3") that the runner can
    #: evaluate as rows of their own (``colorbench run --all-outputs``); see :meth:`colorize_output`.
    output_names: ClassVar[tuple[str, ...]] = ()
    #: Image size and dataset each paper-scale preset was defined on (see :class:`PresetScale`).
    preset_scales: ClassVar[dict[str, PresetScale]] = {}
    #: The :class:`~colorbench.methods.registry.Variant` (data) this class was generated from; None when written
    #: by hand.
    variant: ClassVar[Any] = None

    def __init__(self, config: Any = None, device: torch.device | str = "cpu", seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{self.card.name}: config must be {self.Config.__name__}, got {type(self.config).__name__}")
        self.device = torch.device(device)
        self.seed = seed
        self.epoch = 0

    # --- construction ------------------------------------------------------------------------------------
    @classmethod
    def preset_values(cls, preset: str) -> dict[str, Any]:
        """The option values of ``preset``; ``"a+b"`` is ``a``'s values with ``b``'s on top (in order)."""
        values: dict[str, Any] = {}
        for part in preset.split("+"):
            if part not in cls.presets:
                raise ValueError(f"method {cls.card.name!r} has no preset {part!r}; presets: {sorted(cls.presets)} "
                                 f"(combine them with '+', e.g. 'quick+<overlay>')")
            values.update(cls.presets[part])
        return values

    @classmethod
    def preset_scale(cls, preset: str) -> PresetScale | None:
        """The :class:`PresetScale` of ``preset`` (of its first part that declares one), or None."""
        for part in preset.split("+"):
            if part in cls.preset_scales:
                return cls.preset_scales[part]
        return None

    @classmethod
    def make_config(cls, preset: str = "quick", **overrides: Any) -> Any:
        """The Config of ``preset`` with ``overrides`` applied; unknown names or presets raise ValueError."""
        values = {**cls.preset_values(preset), **overrides}
        names = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"method {cls.card.name!r}: unknown option(s) {unknown}; options are {sorted(names)}")
        return cls.Config(**values)

    @classmethod
    def from_preset(cls, preset: str = "quick", device: torch.device | str = "cpu", seed: int = 0, **overrides: Any) -> "Method":
        return cls(cls.make_config(preset, **overrides), device=device, seed=seed)

    #: Set True by a training loop that brings the losses to the host itself, every few steps
    #: (``colorbench run --sync-every-steps``): a ``train_step`` built on ``TrainableMethod.finish_step`` then returns
    #: its losses as float32 0-d tensors on the device, unchecked, and the loop checks them when it syncs.
    defer_loss_sync: bool = False

    # --- the contract --------------------------------------------------------------------------------------
    @abstractmethod
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimization step on ``batch``; returns named loss values (Python floats). Stores nothing else."""

    @abstractmethod
    def colorize(self, gray: Tensor) -> Tensor:
        """``(N, 1, H, W)`` grey in [0, 1] -> ``(N, 3, H, W)`` sRGB in [0, 1]. Pure: no state changes, no grad."""

    @abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """The method's networks by role (``"G"``, ``"D"``, ...), for checkpoints and parameter counts."""

    def fit_start(self, train: ImageSet) -> None:
        """Called once by the runner before the first epoch with the whole training split, for methods that
        need it beyond the batches (e.g. to train an auxiliary feature network on the run's own training set, or
        to keep colour references). Also called for methods whose card says ``trainable=False`` (they get no
        epochs). The default does nothing."""

    def notes(self) -> dict[str, Any]:
        """Facts about this run of the method that its config does not show (e.g. where a feature network's
        weights came from), as JSON-serializable values. The runner stores them in the record's
        ``config["notes"]`` after training. The default has none."""
        return {}

    def caveats(self) -> list[str]:
        """Short sentences a reader of this method's leaderboard row must know to read its numbers (e.g. "feature
        network trained on the run's own images: no pretrained VGG16 weights"). The runner stores them in the
        record's ``caveats`` after training and the leaderboard shows them with the row. The default has none."""
        return []

    @classmethod
    def unsupported_reason(cls, train: ImageSet) -> str | None:
        """Why this method cannot train on ``train`` (``None`` when it can). A run over the default method list
        skips such methods and lists them with this reason; an explicitly requested one becomes a failed row."""
        if cls.card.needs_masks and train.masks is None:
            return "needs per-pixel class masks, which this dataset does not have (use e.g. --dataset shapes or voc-seg)"
        return None

    @classmethod
    def unavailable_reason(cls, preset: str) -> str | None:
        """Why this method cannot run at all under ``preset`` on this machine (``None`` when it can), e.g. a
        pretrained weights file that is not on disk: the message says which file to put where. Like
        :meth:`unsupported_reason`, a run over the default method list skips such methods with this reason, and
        an explicitly requested one becomes a failed row (it raises the same error when it is built)."""
        return None

    def end_epoch(self) -> None:
        """Called by the runner after each epoch (learning-rate schedules hook in here)."""
        self.epoch += 1

    def colorize_output(self, gray: Tensor, output: str) -> Tensor:
        """Like :meth:`colorize` for one of the alternative outputs named in ``output_names``.

        Methods with alternative outputs override this; for the others every name is unknown."""
        raise ValueError(f"method {self.card.name!r} has no output {output!r}; outputs: {list(self.output_names)}")

    def sample(self, gray: Tensor, n: int, seed: int) -> Tensor:
        """``n`` colorizations of each grey image, ``(n, N, 3, H, W)``, drawing noise from a generator seeded
        with ``seed`` (stochastic methods only: ``card.stochastic``). Used to measure output diversity."""
        raise TypeError(f"method {self.card.name!r} is deterministic (card.stochastic is False); it has no sample()")

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers by name, saved in checkpoints. Override when the method has any."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.card.name,
            # plain values (a Grey as its string): a checkpoint stays loadable with torch.load(weights_only=True)
            "config": {k: v.value if isinstance(v, Enum) else v for k, v in dataclasses.asdict(self.config).items()},
            "epoch": self.epoch,
            "networks": {k: v.state_dict() for k, v in self.networks().items()},
            "optimizers": {k: v.state_dict() for k, v in self.optimizers().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("method") != self.card.name:
            raise ValueError(f"checkpoint is for method {state.get('method')!r}, not {self.card.name!r}")
        nets, opts = self.networks(), self.optimizers()
        if set(state["networks"]) != set(nets):
            raise ValueError(f"checkpoint networks {sorted(state['networks'])} != method networks {sorted(nets)}")
        for k, net in nets.items():
            net.load_state_dict(state["networks"][k])
        for k, opt in opts.items():
            if k in state.get("optimizers", {}):
                opt.load_state_dict(state["optimizers"][k])
        self.epoch = int(state.get("epoch", 0))

    # --- helpers -------------------------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in net.parameters()) for k, net in self.networks().items()}

    def set_train(self, mode: bool = True) -> None:
        for net in self.networks().values():
            net.train(mode)

    @classmethod
    def describe(cls, preset: str = "quick") -> dict[str, Any]:
        """Card, preset options and per-network parameter counts (builds the networks on the CPU)."""
        config = cls.make_config(preset)
        method = cls(config, device="cpu")
        scale = cls.preset_scale(preset)
        return {
            "card": cls.card.to_dict(),
            "preset": preset,
            "presets": sorted(cls.presets),
            "scale": dataclasses.asdict(scale) if scale is not None else None,
            "config": dataclasses.asdict(config),
            "parameters": method.parameter_counts(),
        }


def checked_colorize(method: Any, gray: Tensor) -> Tensor:
    """``method.colorize`` with its contract checked: shape, finiteness, range (a NaN output is an error).

    Every stage that evaluates or keeps a method's colorizations (runner, cross-domain sets) goes through it."""
    pred = method.colorize(gray)
    expected = (gray.shape[0], 3, *gray.shape[2:])
    if tuple(pred.shape) != expected:
        raise ValueError(f"{method.card.name}.colorize returned shape {tuple(pred.shape)}, expected {expected}")
    if not torch.isfinite(pred).all():
        raise FloatingPointError(f"{method.card.name}.colorize returned non-finite values (the model diverged)")
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"{method.card.name}.colorize returned values in [{float(pred.min())!r}, "
                         f"{float(pred.max())!r}], not [0, 1]")  # all the digits: 1 + 1e-6 must not read "1"
    return pred
