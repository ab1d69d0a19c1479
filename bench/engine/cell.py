"""One cell (dataset x method x preset x seed): trained, evaluated and turned into rows (records and arrays).

Resume: a trained cell writes an epoch checkpoint (networks, optimizers, schedulers and pools through
``Method.state_dict``, every random generator, the data order, the partial record) atomically after each epoch;
rerunning into the same ``--out`` continues an interrupted cell from its last checkpoint, with the numbers an
uninterrupted run gives (bit-identical on the CPU). A method that raises or diverges becomes failed rows with the
reason; a worker computes a :class:`CellResult` from a :class:`CellTask`, and only the driver writes."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import signal
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbench.core.device import resolve_device
from colorbench.core.fsio import WriteError, atomic_write_with
from colorbench.core.threads import apply_thread_policy
from colorbench.datasets import DatasetSplits
from colorbench.methods import METHODS, Method
from colorbench.methods.base import checked_colorize
from colorbench.methods.presets import check_preset_image_size
from colorbench.results.records import RunRecord, environment_versions
from colorbench.results.rundir import CellEntry
from colorbench.engine import storage
from colorbench.engine.data import EpochSampler, load_dataset, make_train_loader, to_uint8
from colorbench.engine.evaluation import Evaluator, OutputView, dataset_structure_references, keep_predictions, output_diversity
from colorbench.engine.spec import RunSpec, method_config


#: Test hook: ``<method>:<epoch>:<step>[:<marker file>]`` sends SIGKILL to the process computing that cell just
#: before that training step (once only when a marker file is given: it is created first). For the kill tests.
KILL_HOOK_ENV = "COLORBENCH_TEST_KILL"


@dataclass
class CellTask:
    """What a worker needs to compute one cell (picklable: the process and Ray executors send it)."""

    entry: CellEntry
    spec: RunSpec
    outputs: list[CellEntry] = field(default_factory=list)  # alternative-output rows trained with this cell
    checkpoint_dir: str | None = None  # epoch checkpoints (resume): a folder or a --storage URI; None: none
    run_dir: str | None = None  # for stages writing their own files (cross-domain sets)
    samples: list[int] = field(default_factory=list)  # test indices of the sample grid
    threads: int | None = None  # torch threads of the worker (set before it computes)
    device: str | None = None  # where the executor placed the cell (a process worker's GPU); None: spec.device
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
    # files a worker without the driver's disk made (Ray): path in the run directory -> content, or the --storage
    # location holding it; the executor writes them into the run directory in the driver
    files: dict[str, bytes | str] = field(default_factory=dict)


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


#: Test hook: with :data:`KILL_HOOK_ENV`, only this rank of a data-parallel cell kills itself.
KILL_RANK_ENV = "COLORBENCH_TEST_KILL_RANK"


def _kill_hook(method: str, epoch: int, step: int, rank: int = 0) -> None:
    hook = os.environ.get(KILL_HOOK_ENV)
    if not hook:
        return
    if os.environ.get(KILL_RANK_ENV) not in (None, "", str(rank)):
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


#: Test hook: ``<method>:<epoch>:<step>:<marker file>`` makes the process computing that cell create the marker
#: just before that training step and wait there (up to 5 minutes), so that a test can kill it from outside.
PAUSE_HOOK_ENV = "COLORBENCH_TEST_PAUSE"


def _pause_hook(method: str, epoch: int, step: int) -> None:
    hook = os.environ.get(PAUSE_HOOK_ENV)
    if not hook:
        return
    parts = hook.split(":")
    if parts[0] != method or int(parts[1]) != epoch or int(parts[2]) != step:
        return
    marker = Path(":".join(parts[3:]))
    if marker.exists():
        return
    marker.write_text(str(os.getpid()))
    time.sleep(300)


def _save_checkpoint(path: Path | str, state: dict[str, Any]) -> None:
    # a kill leaves the previous checkpoint or this one, never half of one; a full disk a DiskFullError naming it;
    # a URI (--storage s3://...) is written as one object (colorbench.engine.storage)
    if storage.is_uri(str(path)):
        buf = io.BytesIO()
        torch.save(state, buf)
        storage.write_bytes(str(path), buf.getvalue())
        return
    atomic_write_with(Path(path), lambda buf: torch.save(state, buf))


def _load_checkpoint(path: Path | str, key: str, log: Callable[[str], None]) -> dict[str, Any] | None:
    if storage.is_uri(str(path)):  # a --storage URI (colorbench.engine.storage): read whole, then loaded
        data = storage.read_bytes(str(path))
        source: Any = None if data is None else io.BytesIO(data)
    else:
        source = path if Path(path).is_file() else None
    if source is None:
        return None
    try:
        state = torch.load(source, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a damaged checkpoint means: start the cell again
        log(f"    checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); the cell starts again")
        return None
    if state.get("key") != key:
        log(f"    checkpoint {path} belongs to another cell key; the cell starts again")
        return None
    return state


def _mid_epoch_due(spec: RunSpec, steps: int, last_save: float) -> bool:
    """Whether a mid-epoch checkpoint is due after ``steps`` steps of this epoch (``checkpoint_every_steps``,
    ``checkpoint_every_s``; 0 turns either off)."""
    k = spec.checkpoint_every_steps
    if k and steps % k == 0:
        return True
    return bool(spec.checkpoint_every_s) and time.monotonic() - last_save >= spec.checkpoint_every_s


def apply_performance_options(method: Method, spec: RunSpec, device: torch.device) -> dict[str, Any]:
    """Set the speed options of a cell (``cudnn.benchmark`` on CUDA, ``--channels-last``, ``--compile``) on
    ``method``'s networks; returns what was set, for the record.

    ``cudnn.benchmark`` (on CUDA only: it times the convolution algorithms of each new input shape and keeps the
    fastest; the choice may differ between runs, so CUDA numbers are reproducible only up to float rounding).
    ``channels_last``: the networks' 4-d parameters and the training batches in ``torch.channels_last`` memory
    format (NHWC; faster convolutions on tensor cores); the values change by float summation order only.
    ``compile``: each network's forward compiled in place (``nn.Module.compile``, TorchInductor; the state-dict
    keys stay those of the eager network, so checkpoints are interchangeable)."""
    cudnn = device.type == "cuda"
    torch.backends.cudnn.benchmark = cudnn  # also switched off again for a CPU cell after a CUDA one
    for net in method.networks().values():
        if spec.channels_last:
            net.to(memory_format=torch.channels_last)
        if spec.compile:
            net.compile()
    return {"cudnn_benchmark": cudnn, "channels_last": spec.channels_last, "compile": spec.compile}


def to_channels_last(batch: Any) -> Any:
    """``batch`` with its grey and RGB images in ``torch.channels_last`` memory format (same values)."""
    return dataclasses.replace(batch, gray=batch.gray.contiguous(memory_format=torch.channels_last),
                               rgb=batch.rgb.contiguous(memory_format=torch.channels_last))


class LossSync:
    """The per-step losses of a training loop, kept where the method computed them (0-d tensors on the device) and
    brought to the host together every ``every`` steps: one host sync per ``every`` steps instead of one per step.

    :meth:`flush` gives each pending step's losses as Python floats, exactly those a per-step ``.item()`` gives
    (float32 values, read in one ``tolist``); with ``dist`` (a data-parallel cell), the global batch's losses:
    each rank's values times its share (float64), summed over the ranks in one ``all_reduce`` (what
    :meth:`colorbench.engine.ddp.Distributed.average_losses` computes per step). Python floats returned by a
    method (one that syncs itself) pass through unchanged.

    Args:
        every: steps between syncs (1: every step).
        dist: this rank of a data-parallel cell, or None.
    """

    def __init__(self, every: int, dist: Any = None) -> None:
        if every < 1:
            raise ValueError(f"--sync-every-steps must be >= 1, got {every}")
        self.every, self.dist = every, dist
        self.pending: list[tuple[int, tuple[str, ...], Any, float]] = []  # step, names, values, rank's share

    def add(self, step: int, losses: Mapping[str, Any], weight: float = 1.0) -> None:
        """Keep step ``step``'s losses (tensors stay on their device: no sync)."""
        values = list(losses.values())
        if values and all(isinstance(v, torch.Tensor) for v in values):
            kept: Any = torch.stack([v.detach().reshape(()).float() for v in values])
        else:  # Python floats (a method that syncs itself), or a mixture
            kept = [float(v) for v in values]
        self.pending.append((step, tuple(losses), kept, weight))

    def due(self) -> bool:
        return len(self.pending) >= self.every

    def flush(self) -> list[tuple[int, dict[str, float]]]:
        """The pending steps' losses on the host, in step order (one sync; a collective with ``dist``)."""
        pending, self.pending = self.pending, []
        if not pending:
            return []
        if self.dist is not None and self.dist.world > 1:
            device = torch.device("cuda", torch.cuda.current_device()) if self.dist.backend == "nccl" else torch.device("cpu")
            parts = [(v.to(device).double() if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=torch.float64,
                      device=device)) * w for _, _, v, w in pending]
            flat = self.dist.all_reduce_sum(torch.cat(parts)).tolist() if parts else []
        else:
            tensors = [v for _, _, v, _ in pending if isinstance(v, torch.Tensor)]
            host = iter(torch.cat(tensors).tolist() if tensors else [])
            flat = []
            for _, names, v, _ in pending:
                flat.extend([next(host) for _ in names] if isinstance(v, torch.Tensor) else v)
        out, at = [], 0
        for step, names, _, _ in pending:
            out.append((step, dict(zip(names, flat[at : at + len(names)]))))
            at += len(names)
        return out


def execute_cell(task: CellTask, data: DatasetSplits | None = None, log: Callable[[str], None] = print,
                 dist: Any = None) -> CellResult | None:
    """Compute one cell (train, evaluate, colorize samples); a method failure becomes failed rows, never raises.

    ``dist`` (:class:`colorbench.engine.ddp.Distributed`): this process is one rank of a data-parallel cell; a
    failure then raises (the launcher stops the other ranks), and ranks other than 0 return None after training.
    """
    spec, entry = task.spec, task.entry
    spec.method_names()  # a fresh worker process loads the run's plugins before it looks the method up
    # the executor's placement, else the spec's; a GPU asked for and absent is an error, never a CPU fallback
    device = resolve_device(task.device or spec.device)
    if data is None:
        data = load_dataset(spec, entry.dataset)
    # torch threads and metric pool of this worker (colorbench.core.threads): its share of the cores (task.threads,
    # from the executor) for the metrics, one intra-op thread for small networks on the CPU
    apply_thread_policy(share=task.threads, device=device, preset=spec.preset, image_size=data.train.image_size)
    try:
        return _train_and_evaluate(task, data, device, log, dist)
    except WriteError:
        raise  # the run directory cannot be written (e.g. disk full): stop with that error, not a row per cell
    except (Exception, SystemExit):  # noqa: BLE001 - any failure of one method becomes its failed row; a method
        # (a plugin) calling sys.exit() too, which would otherwise end the whole grid (Ctrl-C still stops it)
        if dist is not None and dist.world > 1:
            raise  # the other ranks wait in a collective: the launcher must stop them
        return failed_result(task, *_error_and_traceback(), data.describe(), str(device))


def _error_and_traceback() -> tuple[str, str]:
    import sys

    exc = sys.exc_info()[1]
    return f"{type(exc).__name__}: {exc}", traceback.format_exc()


def _train_and_evaluate(task: CellTask, data: DatasetSplits, device: torch.device, log: Callable[[str], None],
                        dist: Any = None) -> CellResult | None:
    spec, entry = task.spec, task.entry
    name, seed = entry.method, entry.seed
    cell = f"{name}/{entry.dataset}/s{seed}"  # how progress bars name the cell (engine.executors.cell_label)
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
    record.config["performance"] = apply_performance_options(method, spec, device)
    if dist is not None:  # one rank of a data-parallel cell (colorbench.engine.ddp)
        dist.attach(method)
        record.config["distributed"] = dist.describe()
    lead = dist is None or dist.rank == 0  # the process that checkpoints, evaluates and returns the rows
    evaluator = Evaluator(spec, data.test, device, seed=seed)
    epochs = config.epochs if cls.card.trainable else 0
    if not cls.card.paired:
        record.config["unpaired_protocol"] = spec.unpaired_protocol
    # the same data order for every method of a seed, resumable mid-epoch (colorbench.engine.data)
    sampler = EpochSampler(len(data.train), paired=cls.card.paired, batch_size=config.batch_size, seed=seed,
                           unpaired_protocol=spec.unpaired_protocol,
                           **({} if dist is None else {"rank": dist.rank, "world": dist.world}))  # a rank's rows only
    train_s = domains_s = 0.0
    te = time.perf_counter()
    method.fit_start(data.train)  # also for methods with nothing to train (e.g. a pool of colour references)
    train_s += time.perf_counter() - te
    ckpt_path = storage.join(task.checkpoint_dir, "last.pt") if task.checkpoint_dir and epochs else None
    start_epoch, resumed = 1, None
    output_curves: dict[str, list[dict[str, Any]]] = {}  # --all-outputs with --eval-every: each output's curve
    state = _load_checkpoint(ckpt_path, entry.key, log) if ckpt_path else None
    partial: dict[str, Any] | None = None  # a checkpoint written mid-epoch: that epoch's loss sums so far
    if state is not None:
        method.load_state_dict(state["method"])
        if "sampler" in state:
            sampler.load_state_dict(state["sampler"])
        else:  # a checkpoint of an older colorbench: the bare generator after the epoch
            sampler.load_epoch_end_state(state["order"], int(state["epoch"]))
        partial = state.get("partial_epoch")
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        record.losses, record.curve = state["losses"], state["curve"]
        output_curves = state.get("output_curves", {})
        train_s, domains_s = state["train_s"], state["domains_s"]
        start_epoch = resumed = int(state["epoch"]) + 1
        resumed -= 1
        log(f"    resuming {name} (seed {seed}) after epoch {resumed}/{epochs}"
            + (f", step {partial['steps']} of epoch {resumed + 1}" if partial else ""))
    loader = make_train_loader(data.train, sampler, workers=spec.loader_workers, device=device,
                               grey_convention=spec.grey_convention) if epochs >= start_epoch else None
    if loader is not None:
        record.config["data_loader"] = {"workers": loader.workers, "pin_memory": loader.pin_memory}
    last_save = time.monotonic()
    # losses stay on the device and reach the host every --sync-every-steps steps (one sync, not one per step)
    loss_sync = LossSync(spec.sync_every_steps, dist)
    method.defer_loss_sync = spec.sync_every_steps > 1
    record.config["performance"]["loss_sync_every_steps"] = spec.sync_every_steps

    def checkpoint(epoch_done: int, partial_epoch: dict[str, Any] | None, train_seconds: float) -> None:
        _save_checkpoint(ckpt_path, {  # type: ignore[arg-type]
            "key": entry.key, "epoch": epoch_done, "method": method.state_dict(), "sampler": sampler.state_dict(),
            "torch_rng": torch.get_rng_state(), "numpy_rng": np.random.get_state(), "losses": record.losses,
            "curve": record.curve, "train_s": train_seconds, "domains_s": domains_s, "output_curves": output_curves,
            "partial_epoch": partial_epoch,
        })
    for epoch in range(start_epoch, epochs + 1):
        te = time.perf_counter()
        sums: dict[str, float] = dict(partial["sums"]) if partial else {}
        n_steps = int(partial["steps"]) if partial else 0
        partial = None
        sampler.start_epoch()
        bar = tqdm(loader, total=len(sampler), initial=n_steps, leave=False, desc=f"{cell} epoch {epoch}/{epochs}",
                   disable=not spec.progress)

        def synced() -> None:  # the pending losses on the host: checked, summed in step order
            losses: dict[str, float] = {}
            for step, losses in loss_sync.flush():
                for k, v in losses.items():
                    if not math.isfinite(v):
                        raise FloatingPointError(f"diverged: loss {k} = {v} at epoch {epoch}, step {step}")
                    sums[k] = sums.get(k, 0.0) + v
            if losses and spec.progress:
                bar.set_postfix({k: f"{v:.3g}" for k, v in losses.items()}, refresh=False)
        for batch in bar:
            _kill_hook(name, epoch, n_steps + 1, 0 if dist is None else dist.rank)
            _pause_hook(name, epoch, n_steps + 1)
            if dist is not None:  # this rank's rows of the global batch (the sampler's slice): its share
                dist.take_share(len(batch), sampler.global_size(sampler.position - 1))
            losses = method.train_step(to_channels_last(batch) if spec.channels_last else batch)
            n_steps += 1
            loss_sync.add(n_steps, losses, 1.0 if dist is None else dist.weight)
            # a checkpoint by steps is due on every rank at once (the sync is a collective with ranks); one by
            # time only where it is checked (rank 0), so with ranks it waits for the next regular sync
            by_steps = bool(spec.checkpoint_every_steps) and n_steps % spec.checkpoint_every_steps == 0
            due = lead and ckpt_path is not None and sampler.remaining() and _mid_epoch_due(spec, n_steps, last_save)
            if loss_sync.due() or by_steps or (due and dist is None):
                synced()
            if due and not loss_sync.pending:
                checkpoint(epoch - 1, {"sums": dict(sums), "steps": n_steps}, train_s + time.perf_counter() - te)
                last_save = time.monotonic()
        synced()
        method.end_epoch()
        train_s += time.perf_counter() - te
        record.losses.append({"epoch": epoch, **{k: s / max(n_steps, 1) for k, s in sums.items()}, "seconds": time.perf_counter() - te})
        if lead and spec.eval_every and epoch % spec.eval_every == 0 and epoch != epochs:
            values, _ = evaluator.evaluate(method, desc=f"{cell} eval @{epoch}")
            record.curve.append({"epoch": epoch, "metrics": {k: mv.value for k, mv in values.items()}})
            for out_entry in task.outputs:  # the alternative outputs' curves (e.g. SpyncoGan's G2, G3)
                view = OutputView(method, out_entry.method.split("@", 1)[1])
                out_values, _ = evaluator.evaluate(view, desc=f"{view.card.name}/{entry.dataset}/s{seed} eval @{epoch}")  # type: ignore[arg-type]
                output_curves.setdefault(out_entry.method, []).append(
                    {"epoch": epoch, "metrics": {k: mv.value for k, mv in out_values.items()}})
            domains_s += _colorizer_ready(task, method, data, device, epoch=epoch, final=False)
        if lead and ckpt_path is not None and epoch < epochs:
            checkpoint(epoch, None, train_s)
            last_save = time.monotonic()
    if loader is not None:
        loader.close()
    if not lead:
        return None
    record.config["notes"] = method.notes()
    record.caveats = [str(c) for c in method.caveats()]
    te = time.perf_counter()
    keep = keep_predictions(spec, data.test)
    values, metric_objs = evaluator.evaluate(method, desc=f"{cell} eval", keep_predictions=keep)
    eval_s = time.perf_counter() - te
    if cls.card.stochastic:
        values["diversity"] = output_diversity(method, data.test, spec, device, seed=seed)
    record.metrics = values
    if spec.eval_every:
        record.curve.append({"epoch": epochs, "metrics": {k: mv.value for k, mv in values.items()}})
    record.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    domains_s += _colorizer_ready(task, method, data, device, epoch=epochs, final=True)
    idx = torch.as_tensor(task.samples, dtype=torch.long)
    gray = data.test.make_batch(idx, device, grey_convention=spec.grey_convention).gray
    samples = to_uint8(checked_colorize(method, gray))
    if spec.save_checkpoints and cls.card.trainable and task.checkpoint_dir:
        _save_checkpoint(storage.join(task.checkpoint_dir, "final.pt"), method.state_dict())
    record.timings = {"train_s": train_s, "eval_s": eval_s, "total_s": time.perf_counter() - t0}
    if spec.cross_domain:
        record.timings["cross_domain_sets_s"] = domains_s
    rows = [_row(entry, record, evaluator, data, keep, samples)]
    for out_entry in task.outputs:
        rows.append(_output_row(out_entry, record, method, evaluator, data, device, task, idx, keep,
                                output_curves.get(out_entry.method, [])))
    return CellResult(rows, resumed_from=resumed)


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
    view = OutputView(method, output)
    te = time.perf_counter()
    values, metric_objs = evaluator.evaluate(view, desc=f"{view.card.name}/{entry.dataset}/s{entry.seed} eval",  # type: ignore[arg-type]
                                             keep_predictions=keep)
    final = [{"epoch": base.config.get("epochs"), "metrics": {k: mv.value for k, mv in values.items()}}] \
        if task.spec.eval_every else []
    rec = dataclasses.replace(base, method=view.card.name, card=view.card.to_dict(), metrics=values,
                              curve=[*curve, *final], histograms=None, key=entry.key)
    rec.histograms = next((m.histograms() for m in metric_objs.values() if hasattr(m, "histograms")), None)
    gray = data.test.make_batch(idx, device, grey_convention=task.spec.grey_convention).gray
    samples = to_uint8(checked_colorize(view, gray))  # type: ignore[arg-type]
    rec.timings = {**base.timings, "eval_s": time.perf_counter() - te}
    if task.spec.cross_domain:  # this output's colorized train/test sets, as a domain of its own
        rec.timings["cross_domain_sets_s"] = _colorizer_ready(task, view, data, device,
                                                              epoch=base.config.get("epochs"), final=True)
    return _row(entry, rec, evaluator, data, keep, samples)
