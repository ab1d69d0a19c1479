"""The runner: a grid of cells (dataset x method x seed), each trained, evaluated and written to the run directory.

One :class:`RunSpec` describes a run (methods, datasets, seeds, preset, metrics, grey convention, executor).
Each (dataset, method, preset, seed) is a *cell* with a key (:mod:`colorbench.cells`) hashing everything that
changes its numbers. Every method of a dataset sees the same decoded data, the same grey inputs and, for one seed,
the same data order. A method that raises or diverges becomes a failed record with the reason; a cell that kills
its worker is retried and then becomes a failed row; the grid always completes.

Resume: a trained cell writes an epoch checkpoint (networks, optimizers, schedulers and pools through
``Method.state_dict``, every random generator, the data order, the partial record) atomically after each epoch;
rerunning into the same ``--out`` skips finished cells and continues interrupted ones from their last
checkpoint, with the numbers an uninterrupted run gives (bit-identical on the CPU).

Execution goes through :mod:`colorbench.executors` (``local``, ``process``, ``ray``): a worker computes a
:class:`CellResult` (record and arrays) from a :class:`CellTask`; only the driver writes the run directory.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbench.cells import CellKeyMismatch, cell_key, dataset_identity, diff_fields
from colorbench.color import DEFAULT_GREY, GREY_CONVENTIONS
from colorbench.datasets import DATASETS, DatasetSplits, ImageSet
from colorbench.datasets.base import Batch
from colorbench.device import available_cores, resolve_device
from colorbench.methods import METHODS, Method
from colorbench.methods.base import checked_colorize
from colorbench.methods.presets import check_preset_image_size
from colorbench.metrics import DEFAULT_METRICS, METRICS, MetricCollection, MetricUnavailable, StreamingMetric
from colorbench.metrics.functional import quantize_unit
from colorbench.metrics.protocols import get_protocol
from colorbench.records import MetricValue, RunRecord, environment_versions
from colorbench.fsio import WriteError, atomic_write_with
from colorbench.threads import METRIC_SECTION, apply_thread_policy, decide_thread_policy
from colorbench.rundir import PREDICTIONS_MAX_BYTES, CellEntry, RunDir, RunInfo, now_iso

__all__ = ["RunSpec", "run", "run_cells", "checked_colorize", "resolve_device", "bootstrap_ci", "CellTask",
           "CellResult", "execute_cell", "UNPAIRED_PROTOCOLS", "DEFAULT_METRICS", "EXECUTORS"]

#: How unpaired methods get their two domains from the training split (recorded in every record's config).
UNPAIRED_PROTOCOLS = ("disjoint", "shuffled")
EXECUTORS = ("local", "process", "ray")
PREDICTION_POLICIES = ("auto", "always", "never")
#: Test hook: ``<method>:<epoch>:<step>[:<marker file>]`` sends SIGKILL to the process computing that cell just
#: before that training step (once only when a marker file is given: it is created first). For the kill tests.
KILL_HOOK_ENV = "COLORBENCH_TEST_KILL"


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
    grey_convention: str = DEFAULT_GREY
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
    protocol: str = "colorbench"  # evaluation protocol (colorbench.metrics.protocols): metric variants, test images
    save_predictions: str = "auto"  # the colorized test split: auto (when <= 64 MiB), always, never
    executor: str = "local"
    workers: int = 1  # --executor process: cells computed at once
    retries: int = 1  # a cell whose worker dies is run again this many times, then becomes a failed row
    ray_address: str | None = None
    cpus_per_cell: float = 1.0
    gpus_per_cell: float = 0.0
    rerun_failed: bool = False  # rerun cells whose stored record failed (default: finished cells are kept)
    plugins: tuple[str, ...] = ()  # --plugin files/modules (colorbench.plugins), loaded before methods are looked up

    def __post_init__(self) -> None:
        if self.unpaired_protocol not in UNPAIRED_PROTOCOLS:
            raise ValueError(f"unknown unpaired protocol {self.unpaired_protocol!r}; choose one of {UNPAIRED_PROTOCOLS}")
        if self.grey_convention not in GREY_CONVENTIONS:
            raise ValueError(f"unknown grey convention {self.grey_convention!r}; choose one of {GREY_CONVENTIONS}")
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
        if self.workers < 1:
            raise ValueError(f"--workers must be >= 1, got {self.workers}")
        if self.retries < 0:
            raise ValueError(f"--retries must be >= 0, got {self.retries}")
        if self.cpus_per_cell <= 0 or self.gpus_per_cell < 0:
            raise ValueError(f"need --cpus-per-cell > 0 and --gpus-per-cell >= 0, got {self.cpus_per_cell}, "
                             f"{self.gpus_per_cell}")
        if self.save_predictions not in PREDICTION_POLICIES:
            raise ValueError(f"unknown predictions policy {self.save_predictions!r}; choose one of {PREDICTION_POLICIES}")
        if len(set(self.seed_list())) != len(self.seed_list()) or len(set(self.dataset_names())) != len(self.dataset_names()):
            raise ValueError(f"duplicate seeds or datasets in {list(self.seed_list())} / {list(self.dataset_names())}")
        for m in self.metrics:
            METRICS.canonical(m)  # unknown metric -> error with suggestions, before any training
        get_protocol(self.protocol)  # unknown protocol -> error with suggestions
        for d in self.dataset_names():
            DATASETS.canonical(d)
        if self.cross_domain:
            from colorbench.stages import check_cross_domain

            check_cross_domain(self)  # unknown classifier preset, grids it cannot serve -> error now

    def method_names(self) -> list[str]:
        """The registered names of the requested methods (aliases resolved, repeats dropped, order kept), or every
        registered method when none was requested."""
        from colorbench.plugins import load_plugins

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


@functools.lru_cache(maxsize=4)
def _load_dataset_cached(name: str, options: tuple[tuple[str, Any], ...]) -> DatasetSplits:
    return DATASETS.get(name)(**dict(options)).load()


def dataset_options_for(spec: RunSpec, name: str) -> tuple[tuple[str, Any], ...]:
    """The options of one dataset of a grid: ``KEY=VALUE`` applies to every dataset, ``NAME.KEY=VALUE`` only to
    dataset ``NAME`` (and wins over the plain one)."""
    plain = {k: v for k, v in spec.dataset_options if "." not in k}
    plain.update({k.split(".", 1)[1]: v for k, v in spec.dataset_options if k.startswith(f"{name}.")})
    return tuple(sorted(plain.items()))


def load_dataset(spec: RunSpec, name: str | None = None) -> DatasetSplits:
    """Load (once per process) one dataset of the spec, with the protocol's resize options (unless given) and
    only the protocol's test images (colorbench.metrics.protocols)."""
    name = name or spec.dataset_names()[0]
    proto = get_protocol(spec.protocol)
    options = tuple(sorted(proto.dataset_options(name, dict(dataset_options_for(spec, name))).items()))
    try:
        hash(options)
    except TypeError:  # an unhashable option value (a list): no cache
        return proto.restrict_test(DATASETS.get(name)(**dict(options)).load())
    return proto.restrict_test(_load_dataset_cached(name, options))


def servable_methods(names: Sequence[str], train: ImageSet, preset: str) -> tuple[list[str], dict[str, str]]:
    """Split ``names`` into the methods that can train on ``train`` under ``preset`` and the others with the
    reason (:meth:`Method.unsupported_reason`, :meth:`Method.unavailable_reason`)."""
    keep, skipped = [], {}
    for name in names:
        cls = METHODS.get(name)
        reason = cls.unsupported_reason(train) or cls.unavailable_reason(preset)
        if reason is None:
            keep.append(name)
        else:
            skipped[name] = reason
    return keep, skipped


def sample_indices(n: int, k: int) -> torch.Tensor:
    """``k`` test indices spread evenly over the test set (so the grid shows different sources)."""
    k = min(k, n)
    return torch.linspace(0, n - 1, k).round().long() if k else torch.zeros(0, dtype=torch.long)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


class Evaluator:
    """Colorizes a test set with a method and streams the metrics of a spec over it."""

    def __init__(self, spec: RunSpec, test: ImageSet, device: torch.device, seed: int | None = None) -> None:
        self.spec, self.test, self.device = spec, test, device
        self.seed = spec.seed if seed is None else seed

    def build_metrics(self) -> tuple[dict[str, StreamingMetric], dict[str, str]]:
        """The spec's metrics with its protocol's options (``{name: metric}``, ``{name: reason unavailable}``);
        metrics that take a grey convention (e.g. luma_ssim) get the run's, recorded in their params. A metric
        that cannot be computed on the test set's image size (SSIM's 11x11 window on 8x8 images) is unavailable
        with that reason: the rest of the row stays."""
        metrics, missing = get_protocol(self.spec.protocol).build_metrics(
            self.spec.metrics, self.spec.lpips_weights, self.spec.fid_weights, self.spec.grey_convention)
        if self.test is not None:
            for name in list(metrics):
                problem = metrics[name].input_problem(*self.test.image_size)
                if problem is not None:
                    missing[name] = problem
                    del metrics[name]
        return metrics, missing

    def evaluate(self, method: Method | _OutputView, desc: str = "eval", keep_predictions: bool = False
                 ) -> tuple[dict[str, MetricValue], dict[str, StreamingMetric]]:
        """Metric values of ``method`` on the test set. With ``keep_predictions`` the uint8 colorizations are in
        ``self.last_predictions`` afterwards; ``self.last_per_image`` holds the per-image values by key."""
        metrics, missing = self.build_metrics()
        collection = MetricCollection(metrics)  # one validation and one Lab conversion per batch for all metrics
        batches = self.test.batches(self.spec.eval_batch_size, device=self.device, grey_convention=self.spec.grey_convention)
        n_batches = math.ceil(len(self.test) / self.spec.eval_batch_size)
        proto = get_protocol(self.spec.protocol)
        kept: list[np.ndarray] = []
        for batch in tqdm(batches, total=n_batches, desc=desc, leave=False, disable=not self.spec.progress):
            pred = quantize_unit(checked_colorize(method, batch.gray), proto.quantize)  # the protocol's 8 bits
            if metrics:
                collection.update(pred, batch.rgb)
            if keep_predictions:
                kept.append(_to_uint8(pred))
        self.last_predictions = np.concatenate(kept) if kept else None
        values: dict[str, MetricValue] = {}
        self.last_per_image: dict[str, np.ndarray] = {}
        for name, m in metrics.items():
            result = m.compute()
            per_image = m.per_image_values() if m.per_image else {}
            for key, hib in m.outputs.items():
                v = float(result[key])
                if key in per_image:
                    self.last_per_image[key] = np.asarray(torch.as_tensor(per_image[key], dtype=torch.float64).cpu())
                values[key] = MetricValue(
                    value=v, metric=name, version=m.version, higher_is_better=hib, params={**m.params(), **proto.params()},
                    ci95=bootstrap_ci(per_image.get(key), v, seed=self.seed),
                )
        for name, reason in missing.items():
            cls = METRICS.get(name)
            for key, hib in cls.outputs.items():
                values[key] = MetricValue(value=None, metric=name, version=cls.version, higher_is_better=hib,
                                          params=proto.params(), missing_reason=reason)
        return values, metrics


def bootstrap_ci(values: torch.Tensor | None, reported: float, seed: int, n_resamples: int = 1000) -> tuple[float, float] | None:
    """Percentile bootstrap 95% interval of the mean of per-image values, attached only when the reported value
    is that mean (not, e.g., a global PSNR) and every value is finite."""
    if values is None or len(values) < 2:
        return None
    v = np.asarray(torch.as_tensor(values, dtype=torch.float64).cpu())
    if not np.isfinite(v).all() or not math.isclose(float(v.mean()), reported, rel_tol=1e-6, abs_tol=1e-9):
        return None
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(n_resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def unpaired_domains(n: int, protocol: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the grey domain A and the colour domain B of the training split for unpaired methods.

    ``disjoint`` (default): A and B are the two halves of a seeded permutation, so no image is seen both as grey
    and as colour and no pair can leak. ``shuffled``: both are the whole split, shuffled independently each
    epoch (what the unpaired papers did).
    """
    if protocol == "shuffled":
        return torch.arange(n), torch.arange(n)
    if n < 2:
        raise ValueError(f"the disjoint unpaired protocol needs at least 2 training images, got {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[: n // 2].sort().values, perm[n // 2 :].sort().values


def training_batches(
    train: ImageSet, paired: bool, batch_size: int, order: torch.Generator, device: torch.device, spec: RunSpec,
    seed: int | None = None,
):
    """One epoch of training batches: paired ones, or unpaired ones (grey from domain A, colour from domain B).

    Unpaired batches hold as many colour as grey images: when the domains differ in size (the ``disjoint``
    halves of an odd split differ by one image) each epoch uses the first ``min(len(A), len(B))`` images of each
    shuffled domain, so the image left out changes from epoch to epoch.
    """
    if paired:
        yield from train.batches(batch_size, shuffle=True, generator=order, device=device, grey_convention=spec.grey_convention)
        return
    dom_a, dom_b = unpaired_domains(len(train), spec.unpaired_protocol, spec.seed if seed is None else seed)
    n = min(len(dom_a), len(dom_b))
    a = dom_a[torch.randperm(len(dom_a), generator=order)][:n]
    b = dom_b[torch.randperm(len(dom_b), generator=order)][:n]
    for start in range(0, n, batch_size):
        ga = train.make_batch(a[start : start + batch_size], device, spec.grey_convention)
        cb = train.make_batch(b[start : start + batch_size], device, spec.grey_convention)
        yield Batch(gray=ga.gray, rgb=cb.rgb, labels=ga.labels, ids=ga.ids, masks=ga.masks,
                    grey_convention=spec.grey_convention, paired=False, rgb_ids=cb.ids)


def n_training_batches(n: int, paired: bool, batch_size: int, protocol: str) -> int:
    if not paired and protocol == "disjoint":
        n = n // 2
    return math.ceil(n / batch_size)


def output_diversity(method: Method, test: ImageSet, spec: RunSpec, device: torch.device,
                     seed: int | None = None) -> MetricValue:
    """Mean pairwise distance between several colorizations of the same grey images (stochastic methods).

    The distance of two colorizations is their mean absolute difference on the 0-255 RGB scale; it is averaged
    over every unordered pair of the ``n`` samples and over the first ``diversity_images`` test images. 0 means
    the method ignores its noise.
    """
    seed = spec.seed if seed is None else seed
    idx = torch.arange(min(spec.diversity_images, len(test)))
    gray = test.make_batch(idx, device, spec.grey_convention).gray
    n = spec.diversity_samples
    samples = method.sample(gray, n, seed=seed).float()  # (n, N, 3, H, W)
    if samples.shape != (n, *gray.shape[:1], 3, *gray.shape[2:]):
        raise ValueError(f"{method.card.name}.sample returned shape {tuple(samples.shape)}")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    value = float(torch.stack([(samples[i] - samples[j]).abs().mean() * 255 for i, j in pairs]).mean())
    return MetricValue(
        value=value, metric="output_diversity", version="1", higher_is_better=True,
        params={"n_samples": n, "n_images": len(idx), "distance": "mean absolute difference, RGB 0-255",
                "average": "all unordered pairs of samples, then images", "noise_seed": seed,
                **get_protocol(spec.protocol).params()},
    )


class _OutputView:
    """One alternative output of a method, seen as a method of its own by the evaluator."""

    def __init__(self, method: Method, output: str) -> None:
        self.method, self.output = method, output
        self.card = dataclasses.replace(method.card, name=f"{method.card.name}@{output}")

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self.method.colorize_output(gray, self.output)


# --- cells ------------------------------------------------------------------------------------------------------


def method_config(spec: RunSpec, name: str) -> Any:
    cls = METHODS.get(name)
    overrides: dict[str, Any] = {"grey_convention": spec.grey_convention}
    if spec.epochs is not None:
        overrides["epochs"] = spec.epochs
    return cls.make_config(spec.preset, **overrides)


def cell_fields(spec: RunSpec, method: str, dataset: Mapping[str, Any], seed: int) -> dict[str, Any]:
    """What a cell's key hashes: everything that changes its numbers (see :mod:`colorbench.cells`)."""
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
    if cls.card.stochastic:
        fields["diversity"] = {"samples": spec.diversity_samples, "images": spec.diversity_images}
    try:
        fields["colorbench"] = md.version("colorbench")
    except md.PackageNotFoundError:
        fields["colorbench"] = "unknown"
    return fields


@dataclass
class CellTask:
    """What a worker needs to compute one cell (picklable: the process and Ray executors send it)."""

    entry: CellEntry
    spec: RunSpec
    outputs: list[CellEntry] = field(default_factory=list)  # alternative-output rows trained with this cell
    checkpoint_dir: str | None = None  # epoch checkpoints (resume); None: none
    run_dir: str | None = None  # for stages writing their own files (cross-domain sets)
    samples: list[int] = field(default_factory=list)  # test indices of the sample grid
    threads: int | None = None  # torch threads of the worker (set before it computes)
    listeners: list[Any] = field(default_factory=list)  # stages told when a colorizer is ready


@dataclass
class CellRow:
    """One row computed by a cell: its entry, record and arrays (the driver writes them)."""

    entry: CellEntry
    record: RunRecord
    per_image: dict[str, Any] | None = None
    predictions: tuple[np.ndarray, list[str]] | None = None
    samples: np.ndarray | None = None


@dataclass
class CellResult:
    rows: list[CellRow]
    resumed_from: int | None = None  # epoch of the checkpoint it continued from


#: (id of a test ImageSet, grey convention) -> (a weak reference to that ImageSet, its structure references):
#: computed once per process and dataset (every cell of a worker evaluates the same test set); the weak reference
#: tells a reused id from the same set without keeping the images alive.
_STRUCTURE_REFS: dict[tuple[int, str], tuple[Any, Any]] = {}


def dataset_structure_references(test: Any, grey_convention: str) -> dict[str, Any] | None:
    """:func:`colorbench.metrics.image_quality.structure_references` of a test split, once per process."""
    import weakref

    from colorbench.metrics.image_quality import structure_references

    key = (id(test), grey_convention)
    hit = _STRUCTURE_REFS.get(key)
    if hit is None or hit[0]() is not test:
        if len(_STRUCTURE_REFS) >= 8:
            _STRUCTURE_REFS.clear()
        hit = (weakref.ref(test), structure_references(test.rgb, grey_convention))
        _STRUCTURE_REFS[key] = hit
    return hit[1]


def _base_record(task: CellTask, name: str, data_desc: Mapping[str, Any], device: str, **kw: Any) -> RunRecord:
    cls = METHODS.get(name.split("@")[0])
    return RunRecord(method=name, preset=task.spec.preset, dataset=dict(data_desc),
                     grey_convention=task.spec.grey_convention, seed=task.entry.seed, device=device,
                     card=kw.pop("card", cls.card.to_dict()), versions=environment_versions(),
                     key=task.entry.key, dataset_name=task.entry.dataset, **kw)


def failed_result(task: CellTask, error: str, tb: str | None = None, data_desc: Mapping[str, Any] | None = None,
                  device: str = "") -> CellResult:
    """Failed rows (the cell and its alternative outputs) with the reason."""
    desc = data_desc or task.entry.fields.get("dataset") or {"name": task.entry.dataset}
    rows = []
    for e in [task.entry, *task.outputs]:
        card = dict(METHODS.get(task.entry.method).card.to_dict(), name=e.method)
        rows.append(CellRow(e, _base_record(task, e.method, desc, device, status="failed", error=error,
                                            traceback=tb, card=card)))
    return CellResult(rows)


def _kill_hook(method: str, epoch: int, step: int) -> None:
    hook = os.environ.get(KILL_HOOK_ENV)
    if not hook:
        return
    parts = hook.split(":")
    if parts[0] != method or int(parts[1]) != epoch or int(parts[2]) != step:
        return
    if len(parts) > 3:
        marker = Path(":".join(parts[3:]))
        if marker.exists():
            return
        marker.write_text("killed once")
    os.kill(os.getpid(), signal.SIGKILL)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    # a kill leaves the previous checkpoint or this one, never half of one; a full disk a DiskFullError naming it
    atomic_write_with(path, lambda buf: torch.save(state, buf))


def _load_checkpoint(path: Path, key: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint means: start the cell again
        log(f"    checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); the cell starts again")
        return None
    if state.get("key") != key:
        log(f"    checkpoint {path} belongs to another cell key; the cell starts again")
        return None
    return state


def execute_cell(task: CellTask, data: DatasetSplits | None = None, log: Callable[[str], None] = print) -> CellResult:
    """Compute one cell (train, evaluate, colorize samples); a method failure becomes failed rows, never raises."""
    spec, entry = task.spec, task.entry
    spec.method_names()  # a fresh worker process loads the run's plugins before it looks the method up
    device = resolve_device(spec.device)
    if data is None:
        data = load_dataset(spec, entry.dataset)
    # torch threads and metric pool of this worker (colorbench.threads): its share of the cores (task.threads,
    # from the executor) for the metrics, one intra-op thread for small networks on the CPU
    apply_thread_policy(share=task.threads, device=device, preset=spec.preset, image_size=data.train.image_size)
    try:
        return _train_and_evaluate(task, data, device, log)
    except WriteError:
        raise  # the run directory cannot be written (e.g. disk full): stop with that error, not a row per cell
    except Exception as exc:  # noqa: BLE001 - any failure of one method becomes its failed row
        return failed_result(task, f"{type(exc).__name__}: {exc}", traceback.format_exc(), data.describe(), str(device))


def _train_and_evaluate(task: CellTask, data: DatasetSplits, device: torch.device, log: Callable[[str], None]
                        ) -> CellResult:
    spec, entry = task.spec, task.entry
    name, seed = entry.method, entry.seed
    cls = METHODS.get(name)
    config = method_config(spec, name)
    record = _base_record(task, name, data.describe(), str(device), config=dataclasses.asdict(config))
    # where "structure lost" begins on this test set (the leaderboards read it from the record)
    record.dataset["structure_references"] = dataset_structure_references(data.test, record.grey_convention)
    check_preset_image_size(cls, spec.preset, data.train.image_size, data.name)  # paper presets at their size
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    method = cls(config, device=device, seed=seed)
    record.parameters = method.parameter_counts()
    evaluator = Evaluator(spec, data.test, device, seed=seed)
    epochs = config.epochs if cls.card.trainable else 0
    if not cls.card.paired:
        record.config["unpaired_protocol"] = spec.unpaired_protocol
    order = torch.Generator().manual_seed(seed)  # the same data order for every method of a seed
    train_s = domains_s = 0.0
    te = time.perf_counter()
    method.fit_start(data.train)  # also for methods with nothing to train (e.g. a pool of colour references)
    train_s += time.perf_counter() - te
    ckpt_path = Path(task.checkpoint_dir) / "last.pt" if task.checkpoint_dir and epochs else None
    start_epoch, resumed = 1, None
    output_curves: dict[str, list[dict[str, Any]]] = {}  # --all-outputs with --eval-every: each output's curve
    state = _load_checkpoint(ckpt_path, entry.key, log) if ckpt_path else None
    if state is not None:
        method.load_state_dict(state["method"])
        order.set_state(state["order"])
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        record.losses, record.curve = state["losses"], state["curve"]
        output_curves = state.get("output_curves", {})
        train_s, domains_s = state["train_s"], state["domains_s"]
        start_epoch = resumed = int(state["epoch"]) + 1
        resumed -= 1
        log(f"    resuming {name} (seed {seed}) after epoch {resumed}/{epochs}")
    for epoch in range(start_epoch, epochs + 1):
        te = time.perf_counter()
        sums: dict[str, float] = {}
        n_steps = 0
        batches = training_batches(data.train, cls.card.paired, config.batch_size, order, device, spec, seed)
        bar = tqdm(batches, total=n_training_batches(len(data.train), cls.card.paired, config.batch_size,
                                                     spec.unpaired_protocol),
                   leave=False, desc=f"{name} s{seed} epoch {epoch}/{epochs}", disable=not spec.progress)
        for batch in bar:
            _kill_hook(name, epoch, n_steps + 1)
            losses = method.train_step(batch)
            for k, v in losses.items():
                if not math.isfinite(v):
                    raise FloatingPointError(f"diverged: loss {k} = {v} at epoch {epoch}, step {n_steps + 1}")
                sums[k] = sums.get(k, 0.0) + v
            n_steps += 1
            if losses and spec.progress:
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        method.end_epoch()
        train_s += time.perf_counter() - te
        record.losses.append({"epoch": epoch, **{k: s / max(n_steps, 1) for k, s in sums.items()}, "seconds": time.perf_counter() - te})
        if spec.eval_every and epoch % spec.eval_every == 0 and epoch != epochs:
            values, _ = evaluator.evaluate(method, desc=f"{name} eval @{epoch}")
            record.curve.append({"epoch": epoch, "metrics": {k: mv.value for k, mv in values.items()}})
            for out_entry in task.outputs:  # the alternative outputs' curves (e.g. SpyncoGan's G2, G3)
                view = _OutputView(method, out_entry.method.split("@", 1)[1])
                out_values, _ = evaluator.evaluate(view, desc=f"{view.card.name} eval @{epoch}")  # type: ignore[arg-type]
                output_curves.setdefault(out_entry.method, []).append(
                    {"epoch": epoch, "metrics": {k: mv.value for k, mv in out_values.items()}})
            domains_s += _colorizer_ready(task, method, data, device, epoch=epoch, final=False)
        if ckpt_path is not None and epoch < epochs:
            _save_checkpoint(ckpt_path, {
                "key": entry.key, "epoch": epoch, "method": method.state_dict(), "order": order.get_state(),
                "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(), "losses": record.losses,
                "curve": record.curve, "train_s": train_s, "domains_s": domains_s, "output_curves": output_curves,
            })
    record.config["notes"] = method.notes()
    record.caveats = [str(c) for c in method.caveats()]
    te = time.perf_counter()
    keep = _keep_predictions(spec, data.test)
    values, metric_objs = evaluator.evaluate(method, desc=f"{name} eval", keep_predictions=keep)
    eval_s = time.perf_counter() - te
    if cls.card.stochastic:
        values["diversity"] = output_diversity(method, data.test, spec, device, seed=seed)
    record.metrics = values
    if spec.eval_every:
        record.curve.append({"epoch": epochs, "metrics": {k: mv.value for k, mv in values.items()}})
    record.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    domains_s += _colorizer_ready(task, method, data, device, epoch=epochs, final=True)
    idx = torch.as_tensor(task.samples, dtype=torch.long)
    gray = data.test.make_batch(idx, device, spec.grey_convention).gray
    samples = _to_uint8(checked_colorize(method, gray))
    if spec.save_checkpoints and cls.card.trainable and task.checkpoint_dir:
        _save_checkpoint(Path(task.checkpoint_dir) / "final.pt", method.state_dict())
    record.timings = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t0}
    if spec.cross_domain:
        record.timings["cross_domain_sets_s"] = domains_s
    rows = [_row(entry, record, evaluator, data, keep, samples)]
    for out_entry in task.outputs:
        rows.append(_output_row(out_entry, record, method, evaluator, data, device, task, idx, keep,
                                output_curves.get(out_entry.method, [])))
    return CellResult(rows, resumed_from=resumed)


def _keep_predictions(spec: RunSpec, test: ImageSet) -> bool:
    if spec.save_predictions == "always":
        return True
    if spec.save_predictions == "never":
        return False
    h, w = test.image_size
    return len(test) * 3 * h * w <= PREDICTIONS_MAX_BYTES


def _row(entry: CellEntry, record: RunRecord, evaluator: Evaluator, data: DatasetSplits, keep: bool,
         samples: np.ndarray) -> CellRow:
    per_image = {"ids": list(data.test.ids), **evaluator.last_per_image} if evaluator.last_per_image else None
    preds = (evaluator.last_predictions, list(data.test.ids)) if keep and evaluator.last_predictions is not None else None
    return CellRow(entry, record, per_image=per_image, predictions=preds, samples=samples)


def _colorizer_ready(task: CellTask, method: Any, data: DatasetSplits, device: torch.device, epoch: int | None,
                     final: bool) -> float:
    """Tell the stages that subscribed (e.g. the cross-domain sets) that a colorizer is ready; seconds spent."""
    seconds = 0.0
    for listener in task.listeners:
        seconds += listener.colorizer_ready(task.run_dir, method, data, task.spec, device, epoch=epoch, final=final)
    return seconds


def _output_row(entry: CellEntry, base: RunRecord, method: Method, evaluator: Evaluator, data: DatasetSplits,
                device: torch.device, task: CellTask, idx: torch.Tensor, keep: bool,
                curve: Sequence[dict[str, Any]] = ()) -> CellRow:
    """A row for one alternative output of a trained method (same training, its own metrics, samples and, with
    --eval-every, its own curve: ``curve`` holds the intermediate epochs, the final one is added here)."""
    output = entry.method.split("@", 1)[1]
    view = _OutputView(method, output)
    te = time.perf_counter()
    values, metric_objs = evaluator.evaluate(view, desc=f"{view.card.name} eval", keep_predictions=keep)  # type: ignore[arg-type]
    final = [{"epoch": base.config.get("epochs"), "metrics": {k: mv.value for k, mv in values.items()}}] \
        if task.spec.eval_every else []
    rec = dataclasses.replace(base, method=view.card.name, card=view.card.to_dict(), metrics=values,
                              curve=[*curve, *final], histograms=None, key=entry.key)
    rec.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    gray = data.test.make_batch(idx, device, task.spec.grey_convention).gray
    samples = _to_uint8(checked_colorize(view, gray))  # type: ignore[arg-type]
    rec.timings = {**base.timings, "eval_s": time.perf_counter() - te}
    if task.spec.cross_domain:  # this output's colorized train/test sets, as a domain of its own
        rec.timings["cross_domain_sets_s"] = _colorizer_ready(task, view, data, device,
                                                              epoch=base.config.get("epochs"), final=True)
    return _row(entry, rec, evaluator, data, keep, samples)


# --- the driver -----------------------------------------------------------------------------------------------


def default_out_dir(spec: RunSpec) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("colorbench-runs") / f"{stamp}-{'+'.join(spec.dataset_names())}-{spec.preset}"


def _merge_spec(old: Mapping[str, Any], new: RunSpec) -> dict[str, Any]:
    """The spec of a directory that several commands added cells to: the union of their grids."""
    d = new.to_dict()
    if not old:
        return d
    try:
        prev = RunSpec.from_dict(old)
    except (TypeError, ValueError):
        return d
    methods = list(dict.fromkeys([*prev.method_names(), *new.method_names()]))
    d["methods"] = methods if (prev.methods and new.methods) else []
    d["datasets"] = list(dict.fromkeys([*prev.dataset_names(), *new.dataset_names()]))
    d["dataset"] = d["datasets"][0]
    d["seeds"] = list(dict.fromkeys([*prev.seed_list(), *new.seed_list()]))
    d["seed"] = d["seeds"][0]
    return d


def plan_cells(spec: RunSpec, rd: RunDir, datasets: Mapping[str, DatasetSplits]) -> tuple[list[CellTask], list[CellEntry]]:
    """The tasks still to run, and the requested cells already finished.

    Raises:
        CellKeyMismatch: a requested cell exists under another key (the message names the differing fields).
    """
    existing = {c.ident: c for c in rd.cells()}
    todo: list[CellTask] = []
    done: list[CellEntry] = []
    mismatches: list[str] = []
    for ds_name in spec.dataset_names():
        desc = datasets[ds_name].describe()
        names = spec.method_names()
        if not spec.methods:  # the default list: only what this dataset can serve (the rest: RunInfo.skipped)
            names, _ = servable_methods(names, datasets[ds_name].train, spec.preset)
        for seed in spec.seed_list():
            for name in names:
                cls = METHODS.get(name)
                fields = cell_fields(spec, name, desc, seed)
                entry = CellEntry(key=cell_key(fields), dataset=ds_name, method=name, preset=spec.preset,
                                  seed=seed, fields=fields)
                outs = []
                if spec.all_outputs:
                    for o in cls.output_names:
                        f = {**fields, "output": o}
                        outs.append(CellEntry(key=cell_key(f), dataset=ds_name, method=f"{name}@{o}",
                                              preset=spec.preset, seed=seed, fields=f, parent=entry.key))
                finished = True
                for e in [entry, *outs]:
                    old = existing.get(e.ident)
                    if old is None:
                        finished = False
                        continue
                    if old.key != e.key:
                        diff = diff_fields(old.fields, e.fields) if old.fields else ["(stored cell has no fields)"]
                        mismatches.append(f"  {e.method} on {ds_name}, seed {seed} ({old.key} -> {e.key}): "
                                          + "; ".join(diff[:8]) + (" ..." if len(diff) > 8 else ""))
                        continue
                    e.attempts = old.attempts
                    if old.status not in ("ok", "failed") or (old.status == "failed" and spec.rerun_failed):
                        finished = False
                    else:
                        try:
                            rd.record(old)
                        except (FileNotFoundError, ValueError):
                            finished = False  # no record, or an unreadable one (edited, disk error): rerun
                if finished:
                    done.append(existing[entry.ident])
                else:
                    todo.append(CellTask(entry=entry, spec=spec, outputs=outs))
    if mismatches:
        raise CellKeyMismatch(
            f"{rd.path} already holds cells of a different spec; results of different specs are never mixed. "
            "Use another --out, or the stored spec (`colorbench run --spec RUN/run.json`). Differing cells "
            "(field: stored -> requested):\n" + "\n".join(mismatches))
    return todo, done


def run_cells(spec: RunSpec, out: str | Path | None = None, log: Callable[[str], None] = print,
              listeners: Sequence[Any] = ()) -> Path:
    """Run every cell of the spec's grid that the run directory does not hold yet, and write them.

    Args:
        spec: the run.
        out: the run directory (created; an existing one gets the missing cells).
        log: where progress lines go.
        listeners: stages told when a colorizer is ready (``run_start(rd, datasets, spec)``,
            ``colorizer_ready(...)``), e.g. :class:`colorbench.crossdomain.CrossDomainSets`.

    Raises:
        RunDirLocked: another process is running cells into ``out``.
        CellKeyMismatch: ``out`` holds some of the requested cells under another spec.
    """
    from colorbench.executors import make_executor

    t_start = time.perf_counter()
    spec.method_names()  # unknown method -> error before anything runs
    spec.check_presets()  # unknown preset (--preset papr) -> error before anything runs
    device = resolve_device(spec.device)
    # the datasets are loaded (their options checked) before the run directory exists: a bad argument leaves
    # no empty folder behind
    datasets: dict[str, DatasetSplits] = {}
    load_s = {}
    skipped: dict[str, dict[str, str]] = {}
    for ds in spec.dataset_names():
        t0 = time.perf_counter()
        datasets[ds] = data = load_dataset(spec, ds)
        load_s[ds] = time.perf_counter() - t0
        log(f"dataset {data.name}: {len(data.train)} train / {len(data.test)} test images of "
            f"{data.train.image_size[0]}x{data.train.image_size[1]} (loaded in {load_s[ds]:.1f} s); device {device}")
        if not spec.methods:
            skipped[ds] = servable_methods(spec.method_names(), data.train, spec.preset)[1]
            for name, reason in skipped[ds].items():
                log(f"skipped {name} on {ds}: {reason}")
    executor = make_executor(spec)  # unknown executor, Ray missing or not answering -> error before anything
    rd = RunDir(out if out is not None else default_out_dir(spec), create=True)
    with rd.lock():
        info = rd.info() if rd.run_json.is_file() else RunInfo()
        todo, done = plan_cells(spec, rd, datasets)
        samples: dict[str, list[int]] = {}
        for ds, data in datasets.items():
            samples[ds] = sample_indices(len(data.test), spec.n_samples).tolist()
            path = rd.samples_path(ds)
            if not path.is_file():
                from colorbench.rundir import write_npz

                b = data.test.make_batch(torch.as_tensor(samples[ds], dtype=torch.long), "cpu", spec.grey_convention)
                write_npz(path, gray=_to_uint8(b.gray), real=_to_uint8(b.rgb), ids=np.array(b.ids))
            test_path = rd.path / "arrays" / f"test_{ds}.npz"  # the whole test split, when predictions are kept:
            if _keep_predictions(spec, data.test) and not test_path.is_file():  # the HTML report's image browser
                from colorbench.rundir import write_npz  # and `colorbench study` show grey | methods | real

                b = data.test.make_batch(torch.arange(len(data.test)), "cpu", spec.grey_convention)
                write_npz(test_path, gray=_to_uint8(b.gray), real=_to_uint8(b.rgb), ids=np.array(b.ids))
        info.spec = _merge_spec(info.spec, spec)
        info.datasets.update({ds: d.describe() for ds, d in datasets.items()})
        ran = [m for m in spec.method_names() if not skipped or any(m not in s for s in skipped.values())]
        info.methods = list(dict.fromkeys([*info.methods, *ran]))
        info.skipped = {**info.skipped, **{ds: s for ds, s in skipped.items() if s}}
        info.seeds = list(dict.fromkeys([*info.seeds, *spec.seed_list()]))
        info.device, info.grey_convention = str(device), spec.grey_convention
        info.versions = environment_versions()
        info.started = info.started or now_iso()
        info.status, info.finished = "running", None
        info.executor = executor.describe()
        ds0 = datasets[spec.dataset_names()[0]]
        info.threads = {**executor.thread_policy(), "decision": decide_thread_policy(
            share=getattr(executor, "threads", None), device=device, preset=spec.preset,
            image_size=ds0.train.image_size).to_dict(),
            "metric_section": METRIC_SECTION}  # what each worker applies (colorbench.threads)
        info.timings = {**info.timings, **{f"dataset_load_s.{k}": v for k, v in load_s.items()}}
        rd.write_info(info)
        rd.update_cells([t.entry for t in todo] + [o for t in todo for o in t.outputs])
        for listener in listeners:
            listener.run_start(rd, datasets, spec)
        for entry in done:
            log(f"skipped (done): {entry.method} on {entry.dataset}, seed {entry.seed} [{entry.status}]")
        for t in todo:
            t.checkpoint_dir = str(rd.checkpoint_dir(_with_dir(t.entry)))
            t.run_dir = str(rd.path)
            t.samples = samples[t.entry.dataset]
            t.listeners = list(listeners)
            for o in t.outputs:
                _with_dir(o)
        _run_tasks(rd, executor, todo, datasets, spec, log, n_total=len(todo) + len(done), n_done=len(done))
        info = rd.info()
        missing = rd.missing_cells()
        info.status = "complete" if not missing else "partial"
        info.finished = now_iso()
        info.timings["wall_s"] = info.timings.get("wall_s", 0.0) + (time.perf_counter() - t_start)
        rd.write_info(info)
    return rd.path


def _with_dir(entry: CellEntry) -> CellEntry:
    from colorbench.rundir import cell_dir_name

    entry.dir = entry.dir or cell_dir_name(entry.dataset, entry.method, entry.preset, entry.seed, entry.kind)
    return entry


def _run_tasks(rd: RunDir, executor: Any, tasks: list[CellTask], datasets: Mapping[str, DatasetSplits],
               spec: RunSpec, log: Callable[[str], None], n_total: int, n_done: int) -> None:
    bar = tqdm(total=n_total, initial=n_done, desc="cells", unit="cell", position=0, disable=not spec.progress)
    n_started = n_done  # counted here: a disabled tqdm bar (--no-progress) does not count its updates

    def started(task: CellTask) -> None:
        nonlocal n_started
        n_started += 1
        task.entry.status, task.entry.started = "running", now_iso()
        task.entry.attempts += 1
        rd.update_cells([task.entry])
        log(f"[{n_started}/{n_total}] {task.entry.method} ({spec.preset}) on {task.entry.dataset}, seed {task.entry.seed}")

    def finished(task: CellTask, result: CellResult) -> None:
        for row in result.rows:
            row.entry.started, row.entry.attempts = task.entry.started, task.entry.attempts
            row.entry.seconds = row.record.timings.get("total_s")
            row.entry.finished = now_iso()
            rd.write_cell(row.entry, row.record, per_image=row.per_image, predictions=row.predictions,
                          samples=row.samples)
        main = result.rows[0].record
        (rd.checkpoint_dir(task.entry) / "last.pt").unlink(missing_ok=True)  # finished: nothing to resume
        if main.status == "ok":
            summary = ", ".join(f"{k}={mv.value:.4g}" for k, mv in main.metrics.items() if mv.value is not None)
            log(f"    done in {main.timings.get('total_s', 0):.1f} s: {summary}")
        else:
            log(f"    FAILED: {main.error}")
        bar.update(1)

    try:
        executor.run(tasks, datasets, started, finished, log)
    finally:
        bar.close()
        executor.close()


def run(spec: RunSpec, out: str | Path | None = None, log: Callable[[str], None] = print,
        stages: Sequence[Any] | None = None, report: bool = True) -> Path:
    """The stages of ``colorbench run`` in order: cells (with the stages that subscribe to colorizers), the
    stages' own evaluation (cross-domain), then the report. Returns the run directory."""
    from colorbench.stages import stages_for

    stages = stages_for(spec) if stages is None else list(stages)
    run_dir = run_cells(spec, out, log, listeners=stages)
    for stage in stages:
        stage.run_end(run_dir, log)
    if report:
        from colorbench.reports import write_report

        write_report(run_dir)
    return run_dir
