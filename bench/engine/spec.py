"""The run spec: everything that defines a run (methods, datasets, seeds, preset, metrics, grey convention,
executor), validated before any work, and what a cell's key hashes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping


from colorbench.core.grey import Grey
from colorbench.datasets import DATASETS
from colorbench.methods import METHODS
from colorbench.metrics import DEFAULT_METRICS, METRICS
from colorbench.results.cell_keys import dataset_identity
from colorbench.core.device import check_device
from colorbench.engine.protocols import get_protocol
from colorbench.engine.choices import EXECUTORS, PREDICTION_POLICIES, UNPAIRED_PROTOCOLS  # noqa: F401 - re-exported




@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Recorded in ``run.json`` (``colorbench run --spec`` replays it)."""

    methods: tuple[str, ...] = ()  # empty: every registered method
    preset: str = "quick"
    dataset: str = "photos"  # the one-dataset spelling; ``datasets`` wins when given
    datasets: tuple[str, ...] = ()
    dataset_options: tuple[tuple[str, Any], ...] = ()
    metrics: tuple[str, ...] = DEFAULT_METRICS
    epochs: int | None = None  # overrides the preset's epochs
    eval_every: int | None = None  # also evaluate every N epochs (a metric-over-epoch curve)
    seed: int = 0  # the one-seed spelling; ``seeds`` wins when given
    seeds: tuple[int, ...] = ()
    device: str = "auto"
    grey_convention: Grey | None = None  # None: the protocol's (colorbench: bt601); a Grey after __post_init__
    eval_batch_size: int = 64
    n_samples: int = 8  # test images shown in the sample grid
    lpips_weights: str | None = None
    fid_weights: str | None = None  # Inception weights file of the fid metric (see metrics/README.md)
    save_checkpoints: bool = False  # also keep each trained cell's final state dict (checkpoint/final.pt)
    progress: bool = True
    unpaired_protocol: str = "disjoint"  # grey domain A and colour domain B of unpaired methods
    all_outputs: bool = False  # also evaluate each method's alternative outputs (Method.output_names) as rows
    diversity_samples: int = 4  # colorizations per grey image for the diversity of stochastic methods
    diversity_images: int = 64  # test images used for it
    cross_domain: bool = False  # keep colorized train/test sets and run the cross-domain classifiers (crossdomain.py)
    cross_domain_classifier: str = "quick"  # classifier preset of the cross-domain evaluation
    protocol: str = "colorbench"  # evaluation protocol (colorbench.engine.protocols): metric variants, test images
    save_predictions: str = "auto"  # the colorized test split: auto (when <= 64 MiB), always, never
    executor: str = "local"
    workers: int | str = 1  # --executor auto|process: cells computed at once, or "auto" (engine.executors.decide_workers)
    retries: int = 1  # a cell whose worker dies is run again this many times, then becomes a failed row
    ray_address: str | None = None
    storage: str | None = None  # --executor ray: folder or fsspec URI for checkpoints and files (engine.storage)
    node_cache_dir: str | None = None  # --executor ray: each node's decoded-data cache (default: the node's user cache)
    cpus_per_cell: float = 1.0
    gpus_per_cell: float | None = None  # a cell's share of a GPU (process, Ray); None: 1 on CUDA, else 0
    nproc_per_cell: int = 1  # processes training one cell together (engine.ddp: data-parallel)
    rerun_failed: bool = False  # rerun cells whose stored record failed (default: finished cells are kept)
    plugins: tuple[str, ...] = ()  # --plugin files/modules (colorbench.engine.plugins), loaded before methods are looked up
    loader_workers: int | None = None  # training-data worker processes; None: 0 on the CPU, up to 4 on CUDA
    checkpoint_every_steps: int = 0  # also checkpoint a cell mid-epoch every this many steps (0: not by steps)
    checkpoint_every_s: float = 600.0  # ... and when this many seconds passed since the last checkpoint (0: not)
    sync_every_steps: int = 16  # training losses reach the host every this many steps (1: every step, as before)
    channels_last: bool = False  # networks and training batches in torch.channels_last memory format
    compile: bool = False  # torch.compile each method's networks (nn.Module.compile, in place)

    def __post_init__(self) -> None:
        if self.unpaired_protocol not in UNPAIRED_PROTOCOLS:
            raise ValueError(f"unknown unpaired protocol {self.unpaired_protocol!r}; choose one of {UNPAIRED_PROTOCOLS}")
        check_device(self.device)  # --device tpu, cuda:abc -> a clear error before anything runs
        for s in self.seed_list():
            if not 0 <= s < 2**32:
                raise ValueError(f"--seed/--seeds must be integers in [0, 2**32 - 1] (numpy's seed range), got {s}")
        if self.epochs is not None and self.epochs < 0:
            raise ValueError(f"epochs must be >= 0, got {self.epochs}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        for name, minimum in (("eval_batch_size", 1), ("n_samples", 0), ("diversity_samples", 2),
                              ("diversity_images", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"unknown executor {self.executor!r}; choose one of {EXECUTORS}")
        if self.workers != "auto" and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                       or self.workers < 1):
            raise ValueError(f"--workers must be >= 1 or auto, got {self.workers}")
        if isinstance(self.nproc_per_cell, bool) or not isinstance(self.nproc_per_cell, int) or self.nproc_per_cell < 1:
            raise ValueError(f"--nproc-per-cell must be an integer >= 1, got {self.nproc_per_cell!r}")
        if self.loader_workers is not None and self.loader_workers < 0:
            raise ValueError(f"--loader-workers must be >= 0, got {self.loader_workers}")
        if self.checkpoint_every_steps < 0 or self.checkpoint_every_s < 0:
            raise ValueError("--checkpoint-every-steps and --checkpoint-every-s must be >= 0")
        if isinstance(self.sync_every_steps, bool) or not isinstance(self.sync_every_steps, int) or self.sync_every_steps < 1:
            raise ValueError(f"--sync-every-steps must be an integer >= 1, got {self.sync_every_steps!r}")
        if self.retries < 0:
            raise ValueError(f"--retries must be >= 0, got {self.retries}")
        if self.cpus_per_cell <= 0 or (self.gpus_per_cell is not None and self.gpus_per_cell < 0):
            raise ValueError(f"need --cpus-per-cell > 0 and --gpus-per-cell >= 0, got {self.cpus_per_cell}, "
                             f"{self.gpus_per_cell}")
        if (self.storage or self.node_cache_dir) and self.executor != "ray":
            raise ValueError("--storage and --node-cache-dir apply to --executor ray (the local and process executors "
                             "write into the run directory); add --executor ray or drop them")
        if self.storage:
            from colorbench.engine.storage import normalize

            normalize(self.storage)  # empty, or a scheme fsspec cannot open -> an error naming it, before anything
        if self.save_predictions not in PREDICTION_POLICIES:
            raise ValueError(f"unknown predictions policy {self.save_predictions!r}; choose one of {PREDICTION_POLICIES}")
        if len(set(self.seed_list())) != len(self.seed_list()) or len(set(self.dataset_names())) != len(self.dataset_names()):
            raise ValueError(f"duplicate seeds or datasets in {list(self.seed_list())} / {list(self.dataset_names())}")
        for m in self.metrics:
            METRICS.canonical(m)  # unknown metric -> error with suggestions, before any training
        protocol = get_protocol(self.protocol)  # unknown protocol -> error with suggestions
        object.__setattr__(self, "grey_convention", Grey.parse(
            protocol.grey if self.grey_convention is None else self.grey_convention))
        for d in self.dataset_names():
            DATASETS.canonical(d)
        if self.cross_domain:
            from colorbench.engine.stages import check_cross_domain

            check_cross_domain(self)  # unknown classifier preset, grids it cannot serve -> error now

    def method_names(self) -> list[str]:
        """The registered names of the requested methods (aliases resolved, repeats dropped, order kept), or every
        registered method when none was requested."""
        from colorbench.engine.plugins import load_plugins

        load_plugins(self.plugins)  # installed entry points too (no-op once loaded)
        if not self.methods:
            return METHODS.names()
        return list(dict.fromkeys(METHODS.canonical(m) for m in self.methods))

    def check_presets(self) -> None:
        """Raise ValueError (naming the methods, their presets and the closest name) unless every method of the
        run has the spec's preset and accepts its overrides: checked before any work starts."""
        names = self.method_names()
        parts = self.preset.split("+")  # a composed preset "quick+<overlay>": each part must exist
        lacking = [n for n in names if any(p not in METHODS.get(n).presets for p in parts)]
        if lacking:
            import difflib

            presets = sorted({p for n in names for p in METHODS.get(n).presets})
            bad = next(p for p in parts if any(p not in METHODS.get(n).presets for n in lacking))
            close = difflib.get_close_matches(bad, presets, n=1)
            hint = f" Did you mean: {close[0]}?" if close else ""
            which = "every method" if len(lacking) == len(names) else f"method(s) {', '.join(lacking)}"
            raise ValueError(f"unknown preset {bad!r} for {which}; presets: {', '.join(presets)} (combine them "
                             f"with '+').{hint}")
        for n in names:
            method_config(self, n)  # an override the method does not take -> ValueError now

    def dataset_names(self) -> tuple[str, ...]:
        return tuple(self.datasets) if self.datasets else (self.dataset,)

    def seed_list(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.seeds) if self.seeds else (int(self.seed),)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dataset_options"] = dict(self.dataset_options)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """The spec of a ``run.json`` (``spec``) or of :meth:`to_dict`; unknown fields are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"run spec has unknown field(s) {unknown} (written by a newer colorbench?)")
        d = dict(d)
        for k in ("methods", "datasets", "metrics", "seeds", "plugins"):
            if k in d and d[k] is not None:
                d[k] = tuple(d[k])
        if isinstance(d.get("dataset_options"), Mapping):
            d["dataset_options"] = tuple(sorted(d["dataset_options"].items()))
        elif d.get("dataset_options") is not None:
            d["dataset_options"] = tuple(tuple(kv) for kv in d["dataset_options"])
        return cls(**d)


def dataset_options_for(spec: RunSpec, name: str) -> tuple[tuple[str, Any], ...]:
    """The options of one dataset of a grid: ``KEY=VALUE`` applies to every dataset, ``NAME.KEY=VALUE`` only to
    dataset ``NAME`` (and wins over the plain one)."""
    plain = {k: v for k, v in spec.dataset_options if "." not in k}
    plain.update({k.split(".", 1)[1]: v for k, v in spec.dataset_options if k.startswith(f"{name}.")})
    return tuple(sorted(plain.items()))


def method_config(spec: RunSpec, name: str) -> Any:
    cls = METHODS.get(name)
    overrides: dict[str, Any] = {"grey_convention": spec.grey_convention}
    if spec.epochs is not None:
        overrides["epochs"] = spec.epochs
    return cls.make_config(spec.preset, **overrides)


def cell_fields(spec: RunSpec, method: str, dataset: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What a cell's key hashes: everything that changes its numbers (see :mod:`colorbench.results.cell_keys`)."""
    import importlib.metadata as md

    cls = METHODS.get(method)
    metrics = {}
    for m in spec.metrics:
        mcls = METRICS.get(m)
        weights = {"lpips": spec.lpips_weights, "fid": spec.fid_weights}.get(mcls.name)
        metrics[mcls.name] = {"version": mcls.version, **({"weights": weights} if weights else {})}
    fields: dict[str, Any] = {
        "method": method, "preset": spec.preset, "seed": int(seed),
        "config": dataclasses.asdict(method_config(spec, method)),
        "dataset": dataset_identity(dataset), "grey_convention": spec.grey_convention, "metrics": metrics,
        "eval_every": spec.eval_every if cls.card.trainable else None,
    }
    if not cls.card.paired:
        fields["unpaired_protocol"] = spec.unpaired_protocol
    if spec.protocol != "colorbench":  # metric variants, test images, quantisation (keys of colorbench runs unchanged)
        fields["protocol"] = get_protocol(spec.protocol).ident
    if spec.nproc_per_cell > 1:  # data-parallel training: equal to one process up to summation order (engine.ddp)
        fields["nproc_per_cell"] = spec.nproc_per_cell
    for option in ("channels_last", "compile"):  # same numbers up to float rounding: never mixed with eager ones
        if getattr(spec, option):
            fields[option] = True
    if cls.card.stochastic:
        fields["diversity"] = {"samples": spec.diversity_samples, "images": spec.diversity_images}
    try:
        fields["colorbench"] = md.version("colorbench")
    except md.PackageNotFoundError:
        fields["colorbench"] = "unknown"
    return fields


def default_out_dir(spec: RunSpec) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("colorbench-runs") / f"{stamp}-{'+'.join(spec.dataset_names())}-{spec.preset}"
