"""The runner: train each method, colorize the test split, evaluate, and write records and the report.

One :class:`RunSpec` describes a run (methods, preset, dataset, metrics, seed, device, grey convention). Every
method of the run sees the same decoded dataset, the same grey inputs and the same data order. A method that
raises or diverges (a non-finite loss or output) becomes a failed record with the reason; the others still run,
and every record is written to disk as soon as it is complete, so no result is lost.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbench.color import DEFAULT_GREY, GREY_CONVENTIONS
from colorbench.datasets import DATASETS, DatasetSplits, ImageSet
from colorbench.methods import METHODS, Method
from colorbench.datasets.base import Batch
from colorbench.metrics import DEFAULT_METRICS, METRICS, MetricCollection, MetricUnavailable, StreamingMetric
from colorbench.metrics.functional import quantize_unit
from colorbench.metrics.protocols import get_protocol
from colorbench.records import MetricValue, RunRecord, environment_versions
from colorbench import crossdomain

#: How unpaired methods get their two domains from the training split (recorded in every record's config).
UNPAIRED_PROTOCOLS = ("disjoint", "shuffled")


@dataclass(frozen=True)
class RunSpec:
    """Everything that defines a run. Recorded in ``run.json`` and (per method) in each record."""

    methods: tuple[str, ...] = ()  # empty: every registered method
    preset: str = "quick"
    dataset: str = "photos"
    dataset_options: tuple[tuple[str, Any], ...] = ()
    metrics: tuple[str, ...] = DEFAULT_METRICS
    epochs: int | None = None  # overrides the preset's epochs
    eval_every: int | None = None  # also evaluate every N epochs (a metric-over-epoch curve)
    seed: int = 0
    device: str = "auto"
    grey_convention: str = DEFAULT_GREY
    eval_batch_size: int = 64
    n_samples: int = 8  # test images shown in the sample grid
    lpips_weights: str | None = None
    fid_weights: str | None = None  # Inception weights file of the fid metric (see metrics/README.md)
    save_checkpoints: bool = False
    progress: bool = True
    unpaired_protocol: str = "disjoint"  # grey domain A and colour domain B of unpaired methods
    all_outputs: bool = False  # also evaluate each method's alternative outputs (Method.output_names) as rows
    diversity_samples: int = 4  # colorizations per grey image for the diversity of stochastic methods
    diversity_images: int = 64  # test images used for it
    cross_domain: bool = False  # keep colorized train/test sets and run the cross-domain classifiers (crossdomain.py)
    cross_domain_classifier: str = "quick"  # classifier preset of the cross-domain evaluation
    protocol: str = "colorbench"  # evaluation protocol (colorbench.metrics.protocols): metric variants, test images
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
        for m in self.metrics:
            METRICS.canonical(m)  # unknown metric -> error with suggestions, before any training
        get_protocol(self.protocol)  # unknown protocol -> error with suggestions
        if self.cross_domain:
            crossdomain.classifier_config(self.cross_domain_classifier, self.dataset)  # unknown preset -> error

    def method_names(self) -> list[str]:
        from colorbench.plugins import load_plugins

        load_plugins(self.plugins)  # installed entry points too (no-op once loaded)
        return [METHODS.canonical(m) for m in self.methods] if self.methods else METHODS.names()

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["dataset_options"] = dict(self.dataset_options)
        return d


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to torch (and checked)."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
    return dev


def load_dataset(spec: RunSpec) -> DatasetSplits:
    """The dataset with the protocol's resize options (unless given) and only the protocol's test images."""
    proto = get_protocol(spec.protocol)
    data = DATASETS.get(spec.dataset)(**proto.dataset_options(spec.dataset, dict(spec.dataset_options))).load()
    if proto.test_ids is not None:
        where = {i: k for k, i in enumerate(data.test.ids)}
        ids, _ = proto.select_test_images(data.test.ids)
        data = dataclasses.replace(data, test=data.test.subset([where[i] for i in ids]))
    return data


def sample_indices(n: int, k: int) -> torch.Tensor:
    """``k`` test indices spread evenly over the test set (so the grid shows different sources)."""
    k = min(k, n)
    return torch.linspace(0, n - 1, k).round().long() if k else torch.zeros(0, dtype=torch.long)


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()


class Evaluator:
    """Colorizes a test set with a method and streams the metrics of a spec over it."""

    def __init__(self, spec: RunSpec, test: ImageSet, device: torch.device) -> None:
        self.spec, self.test, self.device = spec, test, device

    def build_metrics(self) -> tuple[dict[str, StreamingMetric], dict[str, str]]:
        """The spec's metrics with its protocol's options (``{name: metric}``, ``{name: reason unavailable}``)."""
        return get_protocol(self.spec.protocol).build_metrics(self.spec.metrics, self.spec.lpips_weights,
                                                              self.spec.fid_weights)

    def evaluate(self, method: Method | _OutputView, desc: str = "eval") -> tuple[dict[str, MetricValue], dict[str, StreamingMetric]]:
        metrics, missing = self.build_metrics()
        collection = MetricCollection(metrics)  # one validation and one Lab conversion per batch for all metrics
        batches = self.test.batches(self.spec.eval_batch_size, device=self.device, grey_convention=self.spec.grey_convention)
        n_batches = math.ceil(len(self.test) / self.spec.eval_batch_size)
        proto = get_protocol(self.spec.protocol)
        for batch in tqdm(batches, total=n_batches, desc=desc, leave=False, disable=not self.spec.progress):
            collection.update(quantize_unit(checked_colorize(method, batch.gray), proto.quantize), batch.rgb)
        values: dict[str, MetricValue] = {}
        for name, m in metrics.items():
            result = m.compute()
            per_image = m.per_image_values() if m.per_image else {}
            for key, hib in m.outputs.items():
                v = float(result[key])
                values[key] = MetricValue(
                    value=v, metric=name, version=m.version, higher_is_better=hib, params={**m.params(), **proto.params()},
                    ci95=bootstrap_ci(per_image.get(key), v, seed=self.spec.seed),
                )
        for name, reason in missing.items():
            cls = METRICS.get(name)
            for key, hib in cls.outputs.items():
                values[key] = MetricValue(value=None, metric=name, version=cls.version, higher_is_better=hib,
                                          params=proto.params(), missing_reason=reason)
        return values, metrics


def checked_colorize(method: Method, gray: torch.Tensor) -> torch.Tensor:
    """``method.colorize`` with its contract checked: shape, finiteness, range (a NaN output is an error)."""
    pred = method.colorize(gray)
    expected = (gray.shape[0], 3, *gray.shape[2:])
    if tuple(pred.shape) != expected:
        raise ValueError(f"{method.card.name}.colorize returned shape {tuple(pred.shape)}, expected {expected}")
    if not torch.isfinite(pred).all():
        raise FloatingPointError(f"{method.card.name}.colorize returned non-finite values (the model diverged)")
    if pred.min() < 0 or pred.max() > 1:
        raise ValueError(f"{method.card.name}.colorize returned values in [{pred.min():.3g}, {pred.max():.3g}], not [0, 1]")
    return pred


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
    train: ImageSet, paired: bool, batch_size: int, order: torch.Generator, device: torch.device, spec: RunSpec
):
    """One epoch of training batches: paired ones, or unpaired ones (grey from domain A, colour from domain B)."""
    if paired:
        yield from train.batches(batch_size, shuffle=True, generator=order, device=device, grey_convention=spec.grey_convention)
        return
    dom_a, dom_b = unpaired_domains(len(train), spec.unpaired_protocol, spec.seed)
    a = dom_a[torch.randperm(len(dom_a), generator=order)]
    b = dom_b[torch.randperm(len(dom_b), generator=order)]
    n = min(len(a), len(b))
    for start in range(0, n, batch_size):
        ga = train.make_batch(a[start : start + batch_size], device, spec.grey_convention)
        cb = train.make_batch(b[start : start + batch_size], device, spec.grey_convention)
        yield Batch(gray=ga.gray, rgb=cb.rgb, labels=ga.labels, ids=ga.ids, masks=ga.masks,
                    grey_convention=spec.grey_convention, paired=False, rgb_ids=cb.ids)


def n_training_batches(n: int, paired: bool, batch_size: int, protocol: str) -> int:
    if not paired and protocol == "disjoint":
        n = n // 2
    return math.ceil(n / batch_size)


def output_diversity(method: Method, test: ImageSet, spec: RunSpec, device: torch.device) -> MetricValue:
    """Mean pairwise distance between several colorizations of the same grey images (stochastic methods).

    The distance of two colorizations is their mean absolute difference on the 0-255 RGB scale; it is averaged
    over every unordered pair of the ``n`` samples and over the first ``diversity_images`` test images. 0 means
    the method ignores its noise.
    """
    idx = torch.arange(min(spec.diversity_images, len(test)))
    gray = test.make_batch(idx, device, spec.grey_convention).gray
    n = spec.diversity_samples
    samples = method.sample(gray, n, seed=spec.seed).float()  # (n, N, 3, H, W)
    if samples.shape != (n, *gray.shape[:1], 3, *gray.shape[2:]):
        raise ValueError(f"{method.card.name}.sample returned shape {tuple(samples.shape)}")
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    value = float(torch.stack([(samples[i] - samples[j]).abs().mean() * 255 for i, j in pairs]).mean())
    return MetricValue(
        value=value, metric="output_diversity", version="1", higher_is_better=True,
        params={"n_samples": n, "n_images": len(idx), "distance": "mean absolute difference, RGB 0-255",
                "average": "all unordered pairs of samples, then images", "noise_seed": spec.seed},
    )


class _OutputView:
    """One alternative output of a method, seen as a method of its own by the evaluator."""

    def __init__(self, method: Method, output: str) -> None:
        self.method, self.output = method, output
        self.card = dataclasses.replace(method.card, name=f"{method.card.name}@{output}")

    def colorize(self, gray: torch.Tensor) -> torch.Tensor:
        return self.method.colorize_output(gray, self.output)


def train_and_evaluate(
    name: str, spec: RunSpec, data: DatasetSplits, device: torch.device, run_dir: Path, samples: torch.Tensor
) -> RunRecord:
    """Train one method and evaluate it; raises on failure (the caller turns that into a failed record)."""
    cls = METHODS.get(name)
    overrides: dict[str, Any] = {"grey_convention": spec.grey_convention}
    if spec.epochs is not None:
        overrides["epochs"] = spec.epochs
    config = cls.make_config(spec.preset, **overrides)
    record = RunRecord(
        method=name, preset=spec.preset, dataset=data.describe(), grey_convention=spec.grey_convention,
        seed=spec.seed, device=str(device), card=cls.card.to_dict(), config=dataclasses.asdict(config),
        versions=environment_versions(),
    )
    t0 = time.perf_counter()
    torch.manual_seed(spec.seed)
    method = cls(config, device=device, seed=spec.seed)
    record.parameters = method.parameter_counts()
    evaluator = Evaluator(spec, data.test, device)
    epochs = config.epochs if cls.card.trainable else 0
    if not cls.card.paired:
        record.config["unpaired_protocol"] = spec.unpaired_protocol
    order = torch.Generator().manual_seed(spec.seed)  # the same data order for every method
    train_s = 0.0
    domains_s = 0.0  # --cross-domain: colorizing and saving the train/test splits
    te = time.perf_counter()
    method.fit_start(data.train)  # also for methods with nothing to train (e.g. a pool of colour references)
    train_s += time.perf_counter() - te
    for epoch in range(1, epochs + 1):
        te = time.perf_counter()
        sums: dict[str, float] = {}
        n_steps = 0
        batches = training_batches(data.train, cls.card.paired, config.batch_size, order, device, spec)
        bar = tqdm(batches, total=n_training_batches(len(data.train), cls.card.paired, config.batch_size,
                                                     spec.unpaired_protocol),
                   leave=False, desc=f"{name} epoch {epoch}/{epochs}", disable=not spec.progress)
        for batch in bar:
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
            domains_s += _save_domain(method, spec, data, device, run_dir, epoch=epoch, final=False)
    record.config["notes"] = method.notes()
    te = time.perf_counter()
    values, metric_objs = evaluator.evaluate(method, desc=f"{name} eval")
    eval_s = time.perf_counter() - te
    if cls.card.stochastic:
        values["diversity"] = output_diversity(method, data.test, spec, device)
    record.metrics = values
    if spec.eval_every:
        record.curve.append({"epoch": epochs, "metrics": {k: mv.value for k, mv in values.items()}})
    record.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    domains_s += _save_domain(method, spec, data, device, run_dir, epoch=epochs, final=True)
    gray = data.test.make_batch(samples, device, spec.grey_convention).gray
    pred = checked_colorize(method, gray)
    rel = f"arrays/samples_{name}.npz"
    np.savez_compressed(run_dir / rel, pred=_to_uint8(pred))
    record.samples_file = rel
    if spec.save_checkpoints and cls.card.trainable:
        ckpt = run_dir / "checkpoints" / f"{name}.pt"
        ckpt.parent.mkdir(exist_ok=True)
        torch.save(method.state_dict(), ckpt)
    record.timings = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t0}
    if spec.cross_domain:
        record.timings["cross_domain_sets_s"] = domains_s
    if spec.all_outputs:
        record.extra_rows = [_output_record(record, method, out, evaluator, data, device, run_dir, samples)
                             for out in method.output_names]
    return record


def _save_domain(method: Method, spec: RunSpec, data: DatasetSplits, device: torch.device, run_dir: Path,
                 epoch: int, final: bool) -> float:
    """--cross-domain: keep the method's colorized train and test splits (see colorbench.crossdomain)."""
    if not spec.cross_domain:
        return 0.0
    return crossdomain.save_method_domain(run_dir, method, data, spec.grey_convention, device, epoch=epoch,
                                          final=final, batch_size=spec.eval_batch_size, progress=spec.progress)


def _output_record(base: RunRecord, method: Method, output: str, evaluator: Evaluator, data: DatasetSplits,
                   device: torch.device, run_dir: Path, samples: torch.Tensor) -> RunRecord:
    """A record for one alternative output of a trained method (same training, its own metrics and samples)."""
    view = _OutputView(method, output)
    te = time.perf_counter()
    values, metric_objs = evaluator.evaluate(view, desc=f"{view.card.name} eval")  # type: ignore[arg-type]
    rec = dataclasses.replace(base, method=view.card.name, card=view.card.to_dict(), metrics=values, curve=[],
                              histograms=None)
    rec.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    gray = data.test.make_batch(samples, device, evaluator.spec.grey_convention).gray
    rel = f"arrays/samples_{view.card.name}.npz"
    np.savez_compressed(run_dir / rel, pred=_to_uint8(checked_colorize(view, gray)))  # type: ignore[arg-type]
    rec.samples_file = rel
    rec.timings = {**base.timings, "eval_s": time.perf_counter() - te}
    if evaluator.spec.cross_domain:  # this output's colorized train/test sets, as a domain of its own
        rec.timings["cross_domain_sets_s"] = _save_domain(view, evaluator.spec, data, device, run_dir,  # type: ignore[arg-type]
                                                          epoch=base.config.get("epochs"), final=True)
    return rec


def default_out_dir(spec: RunSpec) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("colorbench-runs") / f"{stamp}-{spec.dataset}-{spec.preset}"


def run(spec: RunSpec, out: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Execute a run and write its directory (records, arrays, report). Returns the run directory."""
    t_start = time.perf_counter()
    names = spec.method_names()  # unknown method -> error before anything runs
    device = resolve_device(spec.device)
    run_dir = Path(out) if out is not None else default_out_dir(spec)
    (run_dir / "records").mkdir(parents=True, exist_ok=True)
    (run_dir / "arrays").mkdir(exist_ok=True)
    torch.manual_seed(spec.seed)
    t0 = time.perf_counter()
    data = load_dataset(spec)
    load_s = time.perf_counter() - t0
    log(f"dataset {data.name}: {len(data.train)} train / {len(data.test)} test images of "
        f"{data.train.image_size[0]}x{data.train.image_size[1]} (loaded in {load_s:.1f} s); device {device}")
    samples = sample_indices(len(data.test), spec.n_samples)
    sample_batch = data.test.make_batch(samples, "cpu", spec.grey_convention)
    np.savez_compressed(run_dir / "arrays" / "samples.npz", gray=_to_uint8(sample_batch.gray),
                        real=_to_uint8(sample_batch.rgb), ids=np.array(sample_batch.ids))
    run_info: dict[str, Any] = {
        "spec": spec.to_dict(), "methods": list(names), "dataset": data.describe(), "device": str(device),
        "grey_convention": spec.grey_convention, "started": datetime.now(timezone.utc).isoformat(),
        "versions": environment_versions(), "timings": {"dataset_load_s": load_s},
    }
    _write_json(run_dir / "run.json", run_info)
    if spec.cross_domain:  # the real image sets of the cross-domain evaluation (colorbench.crossdomain)
        t0 = time.perf_counter()
        crossdomain.save_real_domains(run_dir, data, spec.grey_convention)
        run_info["timings"]["cross_domain_real_sets_s"] = time.perf_counter() - t0
    for i, name in enumerate(names, 1):
        log(f"[{i}/{len(names)}] {name} ({spec.preset})")
        try:
            record = train_and_evaluate(name, spec, data, device, run_dir, samples)
        except Exception as exc:  # noqa: BLE001 - any failure of one method becomes its failed row
            cls = METHODS.get(name)
            record = RunRecord(
                method=name, preset=spec.preset, dataset=data.describe(), grey_convention=spec.grey_convention,
                seed=spec.seed, device=str(device), status="failed", error=f"{type(exc).__name__}: {exc}",
                traceback=traceback.format_exc(), card=cls.card.to_dict(), versions=environment_versions(),
            )
            log(f"    FAILED: {record.error}")
        else:
            summary = ", ".join(f"{k}={mv.value:.4g}" for k, mv in record.metrics.items() if mv.value is not None)
            log(f"    done in {record.timings['total_s']:.1f} s: {summary}")
        record.save(run_dir / "records" / f"{name}.json")
        for extra in record.extra_rows:
            extra.save(run_dir / "records" / f"{extra.method}.json")
            run_info["methods"].append(extra.method)
    if spec.cross_domain:  # one classifier per saved training set, tested on every test set
        _write_json(run_dir / "run.json", run_info)  # evaluate_run reads the rows (incl. --all-outputs) from it
        t0 = time.perf_counter()
        crossdomain.evaluate_run(run_dir, spec.cross_domain_classifier, seed=spec.seed, device=spec.device,
                                 progress=spec.progress, log=log, write_report=False)
        run_info["timings"]["cross_domain_s"] = time.perf_counter() - t0
    run_info["timings"]["wall_s"] = time.perf_counter() - t_start
    run_info["finished"] = datetime.now(timezone.utc).isoformat()
    _write_json(run_dir / "run.json", run_info)
    from colorbench.reports import write_report

    write_report(run_dir)
    return run_dir


def _write_json(path: Path, obj: Any) -> None:
    from colorbench.records import _jsonable

    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(_jsonable(obj), indent=2, default=str))
    tmp.replace(path)
