"""The driver: a grid of cells (dataset x method x seed) planned against the run directory, computed through an
executor (:mod:`colorbench.engine.executors`) and written as they finish; finished cells are skipped on a rerun.

Every method of a dataset sees the same decoded data, the same grey inputs and, for one seed, the same data
order. A cell that kills its worker is retried and then becomes a failed row; the grid always completes."""

from __future__ import annotations

import importlib
import threading
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from colorbench.core.device import resolve_device
from colorbench.core.threads import METRIC_SECTION, decide_thread_policy, workload_of
from colorbench.datasets import DatasetSplits
from colorbench.methods import METHODS
from colorbench.results.cell_keys import CellKeyMismatch, cell_key, diff_fields
from colorbench.results.records import environment_versions
from colorbench.results.rundir import CellEntry, RunDir, RunInfo, now_iso
from colorbench.engine.cell import CellResult, CellTask
from colorbench.engine.data import load_dataset, sample_indices, servable_methods, to_uint8
from colorbench.engine.evaluation import keep_predictions
from colorbench.engine.spec import RunSpec, cell_fields, default_out_dir


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
                    elif rd.damaged_files(old):
                        finished = False  # an unreadable record or array file (edited, truncated, disk error): rerun
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
              listeners: Sequence[Any] = (), while_busy: Callable[[], None] | None = None) -> Path:
    """Run every cell of the spec's grid that the run directory does not hold yet, and write them.

    Args:
        spec: the run.
        out: the run directory (created; an existing one gets the missing cells).
        log: where progress lines go.
        listeners: stages told when a colorizer is ready (``run_start(rd, datasets, spec)``,
            ``colorizer_ready(...)``), e.g. :class:`colorbench.engine.crossdomain.CrossDomainSets`.
        while_busy: work for this process while the cells compute in other processes (see ``Executor.while_busy``).

    Raises:
        RunDirLocked: another process is running cells into ``out``.
        CellKeyMismatch: ``out`` holds some of the requested cells under another spec.
    """
    from colorbench.engine.executors import make_executor

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
        for split, skipped_files in (data.describe().get("skipped_corrupt") or {}).items():
            if skipped_files.get("count"):
                log(f"skipped {skipped_files['count']} undecodable {split} file(s) of {ds} (--skip-corrupt): "
                    + ", ".join(map(str, skipped_files.get("files", [])[:5]))
                    + (" ..." if skipped_files["count"] > 5 else "") + " (listed in run.json)")
        if not spec.methods:
            skipped[ds] = servable_methods(spec.method_names(), data.train, spec.preset)[1]
            for name, reason in skipped[ds].items():
                log(f"skipped {name} on {ds}: {reason}")
    n_grid = sum(len(spec.method_names()) - len(skipped.get(ds, {})) for ds in datasets) * len(spec.seed_list())
    ds0 = datasets[spec.dataset_names()[0]]
    # unknown executor, Ray missing or not answering -> error before anything
    executor = make_executor(spec, n_cells=n_grid, device=str(device),
                             workload=workload_of(spec.preset, ds0.train.image_size))
    executor.while_busy = while_busy
    if executor.decision is not None and spec.executor == "auto":
        log(f"executor: {executor.name} ({executor.decision.reason})")
    rd = RunDir(out if out is not None else default_out_dir(spec), create=True)
    with rd.lock():
        info = rd.info() if rd.run_json.is_file() else RunInfo()
        todo, done = plan_cells(spec, rd, datasets)
        samples: dict[str, list[int]] = {}
        for ds, data in datasets.items():
            samples[ds] = sample_indices(len(data.test), spec.n_samples).tolist()
            path = rd.samples_path(ds)
            if not path.is_file():
                from colorbench.results.rundir import write_npz

                b = data.test.make_batch(torch.as_tensor(samples[ds], dtype=torch.long), "cpu", grey_convention=spec.grey_convention)
                write_npz(path, gray=to_uint8(b.gray), real=to_uint8(b.rgb), ids=np.array(b.ids))
            test_path = rd.path / "arrays" / f"test_{ds}.npz"  # the whole test split, when predictions are kept:
            if keep_predictions(spec, data.test) and not test_path.is_file():  # the HTML report's image browser
                from colorbench.results.rundir import write_npz  # and `colorbench study` show grey | methods | real

                b = data.test.make_batch(torch.arange(len(data.test)), "cpu", grey_convention=spec.grey_convention)
                write_npz(test_path, gray=to_uint8(b.gray), real=to_uint8(b.rgb), ids=np.array(b.ids))
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
        info.threads = {**executor.thread_policy(), "decision": decide_thread_policy(
            share=getattr(executor, "threads", None), device=device, preset=spec.preset,
            image_size=ds0.train.image_size).to_dict(),
            "metric_section": METRIC_SECTION}  # what each worker applies (colorbench.core.threads)
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
    from colorbench.results.rundir import cell_dir_name

    entry.dir = entry.dir or cell_dir_name(entry.dataset, entry.method, entry.preset, entry.seed, entry.kind)
    return entry


def _run_tasks(rd: RunDir, executor: Any, tasks: list[CellTask], datasets: Mapping[str, DatasetSplits],
               spec: RunSpec, log: Callable[[str], None], n_total: int, n_done: int) -> None:
    from colorbench.engine.executors import cell_label

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
            log(f"    [{cell_label(task.entry)}] done in {main.timings.get('total_s', 0):.1f} s on {main.device}: "
                f"{summary}")
        else:
            log(f"    [{cell_label(task.entry)}] FAILED: {main.error}")
        bar.update(1)

    try:
        executor.run(tasks, datasets, started, finished, log)
    finally:
        bar.close()
        executor.close()


class _ReportImport:
    """Imports the report's modules (matplotlib, scipy, jinja2) in a background thread while pool or Ray workers
    compute: seconds that would otherwise follow the last cell. A thread, so that this process keeps handing out
    cells meanwhile; nothing else imports those modules while it runs (the driver only waits on its workers)."""

    MODULES = ("colorbench.reports", "jinja2")  # jinja2: the HTML page's, imported by the report when it writes it

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=lambda: [importlib.import_module(m) for m in self.MODULES],
                                       name="colorbench-report-import", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()


def run(spec: RunSpec, out: str | Path | None = None, log: Callable[[str], None] = print,
        stages: Sequence[Any] | None = None, report: bool = True) -> Path:
    """The stages of ``colorbench run`` in order: cells (with the stages that subscribe to colorizers), the
    stages' own evaluation (cross-domain), then the report. Returns the run directory."""
    from colorbench.engine.stages import stages_for

    stages = stages_for(spec) if stages is None else list(stages)
    early = _ReportImport()
    run_dir = run_cells(spec, out, log, listeners=stages, while_busy=early.start if report else None)
    early.join()
    for stage in stages:
        stage.run_end(run_dir, log)
    if report:
        from colorbench.reports import write_report

        write_report(run_dir)
    return run_dir
