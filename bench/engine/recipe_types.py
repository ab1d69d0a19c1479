"""The data of a recipe (stages, measures, scales, claims) and the papers' own numbers it is compared with
(``paper_values.json``); the recipes themselves are in :mod:`colorbench.engine.recipes`."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any, Callable

import pandas as pd

SCALES = ("quick", "paper")


# ---------------------------------------------------------------------------------------------------------------
# The data model
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stage:
    """One runner call: ``methods`` on one dataset with one preset (repeated for every seed of the scale)."""

    name: str
    methods: tuple[str, ...]
    dataset: str
    preset: str
    dataset_options: tuple[tuple[str, Any], ...] = ()
    epochs: int | None = None
    eval_every: int | None = None
    metrics: tuple[str, ...] = ("mse", "ssim")
    unpaired_protocol: str = "shuffled"
    all_outputs: bool = False
    cross_domain: bool = False
    cross_domain_classifier: str = "quick"
    protocol: str = "colorbench"  # evaluation protocol (colorbench.engine.protocols)

    def spec(self, seed: int, device: str = "auto", progress: bool = False, data_root: str | None = None,
             **engine: Any):
        """The :class:`~colorbench.engine.spec.RunSpec` of this stage for one seed; ``engine``: how the grid engine runs
        its cells (``executor``, ``workers``, ``ray_address``, ``cpus_per_cell``, ``gpus_per_cell``, ``retries``:
        they do not change a value)."""
        from colorbench.engine.spec import RunSpec

        options = dict(self.dataset_options)
        if data_root is not None and self.dataset not in BUILTIN_DATASETS:
            options["data_root"] = data_root
        return RunSpec(methods=self.methods, preset=self.preset, dataset=self.dataset,
                       dataset_options=tuple(sorted(options.items())), metrics=self.metrics, epochs=self.epochs,
                       eval_every=self.eval_every, seed=seed, device=device, progress=progress,
                       unpaired_protocol=self.unpaired_protocol, all_outputs=self.all_outputs,
                       cross_domain=self.cross_domain, cross_domain_classifier=self.cross_domain_classifier,
                       protocol=self.protocol, **{k: v for k, v in engine.items() if v is not None})


@dataclass(frozen=True)
class Measure:
    """Where the measured value beside one paper value comes from.

    Attributes:
        dataset, row, metric: the paper value's labels (as in ``paper_values.json``); ``epoch`` for Table 3.
        method: the record's name in the stage (``spyncogan``, ``spyncogan@G2``, ...), or for cross-domain rows
            the training set (``real-color``, ``real-gray``, a method).
        key: the metric key in the record (``mse``, ``js_a``, ...) or ``cross_domain_avg``.
        how: ``"final"`` (the evaluated end of training), ``"curve-mean"`` (mean over the scale's
            ``average_epochs`` of the record's curve) or ``"cross-domain"`` (Table-3 average of a training set).
        factor: multiplies the measured value into the paper's unit (SSIM 0-1 -> %: 100).
    """

    dataset: str
    row: str
    metric: str
    method: str
    key: str
    how: str = "final"
    factor: float = 1.0
    epoch: int | None = None


@dataclass(frozen=True)
class Scale:
    """A recipe at one scale.

    Attributes:
        stages: the runner calls.
        seeds: seeds of every stage (values are averaged over them).
        stage_of: paper dataset label -> the stage that measures it at this scale.
        average_epochs: epochs of the curve averaged by ``curve-mean`` measures.
        epoch_of: a paper epoch (e.g. Table 3's colorization epochs 70, 100) -> the epoch measured at this scale.
        note: how this scale differs from the paper.
    """

    stages: tuple[Stage, ...]
    seeds: tuple[int, ...] = (0,)
    stage_of: dict[str, str] = field(default_factory=dict)
    average_epochs: tuple[int, ...] = ()
    epoch_of: dict[int, int] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Claim:
    """A qualitative claim of the paper and a check on the comparison table (True/False, or None: not measurable)."""

    text: str
    where: str
    check: Callable[[pd.DataFrame], bool | None]


@dataclass(frozen=True)
class Recipe:
    name: str
    title: str
    seed_file: str
    source: str
    protocol: str
    measures: tuple[Measure, ...]
    claims: tuple[Claim, ...]
    scales: dict[str, Scale]

    def scale(self, name: str) -> Scale:
        if name not in self.scales:
            raise ValueError(f"recipe {self.name!r} has no scale {name!r}; choose one of {sorted(self.scales)}")
        return self.scales[name]

    def paper_values(self) -> dict[str, Any]:
        return load_paper_values()[self.name]

    def describe(self, scale: str) -> dict[str, Any]:
        s = self.scale(scale)
        return {"name": self.name, "title": self.title, "seed_file": self.seed_file, "source": self.source,
                "protocol": self.protocol, "scale": scale, "note": s.note, "seeds": list(s.seeds),
                "stages": [asdict(st) for st in s.stages], "stage_of": s.stage_of,
                "average_epochs": list(s.average_epochs), "epoch_of": {str(k): v for k, v in s.epoch_of.items()},
                "claims": [{"text": c.text, "where": c.where} for c in self.claims]}


BUILTIN_DATASETS = ("photos", "shapes")


def load_paper_values() -> dict[str, Any]:
    """The papers' numbers shipped with the package (``colorbench/engine/paper_values.json``)."""
    return json.loads(resources.files("colorbench.engine").joinpath("paper_values.json").read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------------------------
# The recipes
# ---------------------------------------------------------------------------------------------------------------

#: Small built-in sets for the quick scale (seconds per epoch on a CPU).
