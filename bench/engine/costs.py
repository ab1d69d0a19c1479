"""How long a cell is expected to take, so that a pool of workers starts the longest cells first.

A pool that hands out cells in grid order can leave one worker training the two slowest cells while the others
idle (``unet-l1, pix2pix`` x seeds 0, 1 on 2 workers: one worker got both pix2pix cells). Starting the longest
cells first (the *longest processing time* rule) balances the workers; it needs an estimate of each cell's time.

The estimate comes from measured seconds, not from a proxy such as parameter counts (spyncogan has 12 k
parameters and trains 2x longer than unet-l1 with 1 M): ``cell_costs.json`` holds, for each method, the seconds
per training image and epoch and the seconds per test image of everything else (building, evaluating, samples),
read from the records of a real run (``python -m colorbench.engine.costs --from RUN_DIR --write``; the file
says which run, machine and software). A cell's estimate scales them by its epochs, its split sizes and its
pixels over the measured run's. While a run goes on, a finished cell's own time replaces the estimate of the
cells of the same method and dataset that are still waiting, and the other estimates are scaled by the run's
pace (finished cells' seconds over their estimates: a GPU makes every cell faster than the table says).

The order changes no value (every cell is seeded on its own), only which worker computes what and when. A
method the table does not know (a plugin, a method whose weights were missing when it was measured) is assumed
long: it starts first.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

COSTS_FILE = Path(__file__).with_name("cell_costs.json")


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, Any]:
    return json.loads(COSTS_FILE.read_text())


def method_costs() -> dict[str, dict[str, float]]:
    """``method -> {"train_s_per_image_epoch", "other_s_per_test_image"}`` of ``cell_costs.json``."""
    return _table()["methods"]


def _pixel_scale(image_size: Sequence[int]) -> float:
    measured = _table()["measured"]["image_size"]
    return (int(image_size[0]) * int(image_size[1])) / (int(measured[0]) * int(measured[1]))


def estimate_seconds(task: Any, datasets: Mapping[str, Any]) -> float | None:
    """Expected seconds of a cell (a ``CellTask``) from ``cell_costs.json``, or None when the table does not
    know its method (or its dataset is not in ``datasets``)."""
    from colorbench.core.registry import UnknownNameError
    from colorbench.engine.spec import method_config
    from colorbench.methods import METHODS

    entry = task.entry
    cost = method_costs().get(entry.method)
    data = datasets.get(entry.dataset)
    if cost is None or data is None:
        return None
    try:
        cls = METHODS.get(entry.method)
        epochs = int(method_config(task.spec, entry.method).epochs) if cls.card.trainable else 0
    except (UnknownNameError, ValueError, TypeError, AttributeError):
        return None
    scale = _pixel_scale(data.train.image_size)
    return scale * (cost["train_s_per_image_epoch"] * epochs * len(data.train)
                    + cost["other_s_per_test_image"] * len(data.test))


def pace(ratios: Sequence[float]) -> float:
    """This run's speed against the table's: the median of finished cells' seconds over their estimates (1.0
    before any). On a GPU, or a faster machine, the table's seconds are too long alike; scaled by this they stay
    comparable with the seconds of the cells that finished."""
    import statistics

    return statistics.median(ratios) if ratios else 1.0


def longest_first(tasks: Sequence[Any], datasets: Mapping[str, Any],
                  observed: Mapping[tuple[str, str], float] | None = None, scale: float = 1.0,
                  started_before: Any = None) -> list[Any]:
    """``tasks`` in the order a pool should start them: cells started before (a retry after a dead worker)
    first, then the longest expected; cells of unknown cost count as the longest; equal estimates (the seeds of a
    method) keep grid order.

    Args:
        tasks: the cells (``CellTask``) waiting.
        datasets: the run's datasets by name (split sizes and image size).
        observed: seconds a finished cell of ``(method, dataset)`` took in this run; it replaces the table's
            estimate for the other cells of that method and dataset.
        scale: the table's estimates are multiplied by it (:func:`pace`), so that they compare with ``observed``.
        started_before: a predicate, true for a cell that was handed to a worker before.
    """
    observed = observed or {}

    def key(task: Any) -> tuple[bool, float]:
        estimate = observed.get((task.entry.method, task.entry.dataset))
        if estimate is None:
            guess = estimate_seconds(task, datasets)
            estimate = None if guess is None else guess * scale
        retried = bool(started_before(task)) if started_before is not None else False
        return (not retried, -(math.inf if estimate is None else estimate))

    return sorted(tasks, key=key)


def table_from_run(run_dir: str | Path) -> dict[str, Any]:
    """A ``cell_costs.json`` table from the records of a finished run: for each method (its first ok record),
    ``train_s`` / (epochs trained x training images) and (``total_s`` - ``train_s``) / test images (a method
    with nothing to train: ``total_s`` / test images).

    Raises:
        ValueError: the run has no ok record with timings, or its records disagree on the image size.
    """
    from colorbench.results.rundir import RunDir

    rd = RunDir(run_dir)
    info = json.loads((Path(run_dir) / "run.json").read_text())
    methods: dict[str, dict[str, float]] = {}
    sizes = set()
    for rec in rd.records():
        timings = rec.timings or {}
        if rec.status != "ok" or rec.method in methods or "total_s" not in timings:
            continue
        n_train, n_test = int(rec.dataset["n_train"]), int(rec.dataset["n_test"])
        sizes.add(tuple(rec.dataset["image_size"]))
        epochs = len(rec.losses)  # epochs trained (a method with nothing to train has no loss entry)
        train_s = float(timings.get("train_s") or 0.0) if epochs else 0.0  # else: its fit_start, a fixed cost
        methods[rec.method] = {
            "train_s_per_image_epoch": train_s / (epochs * n_train) if epochs else 0.0,
            "other_s_per_test_image": (float(timings["total_s"]) - train_s) / max(n_test, 1),
        }
    if not methods:
        raise ValueError(f"{run_dir}: no ok record with timings to measure cell costs from")
    if len(sizes) != 1:
        raise ValueError(f"{run_dir}: records of several image sizes {sorted(sizes)}; measure on one dataset")
    return {
        "measured": {
            "how": "python -m colorbench.engine.costs --from RUN_DIR --write (seconds from each method's first ok "
                   "record: training seconds per image and epoch, the rest of the cell per test image)",
            "run_started": info.get("started"), "executor": info.get("executor"),
            "threads_per_cell": (info.get("threads") or {}).get("torch_threads_per_cell"),
            "device": info.get("device"), "preset": (info.get("spec") or {}).get("preset"),
            "dataset": next(iter(rd.records())).dataset_name, "image_size": list(sizes.pop()),
            "versions": info.get("versions"),
        },
        "methods": dict(sorted(methods.items())),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m colorbench.engine.costs", description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="run_dir", required=True, help="a finished run directory (e.g. of the "
                        "default `colorbench run`)")
    parser.add_argument("--write", action="store_true", help=f"write {COSTS_FILE.name} (else print it)")
    args = parser.parse_args(argv)
    text = json.dumps(table_from_run(args.run_dir), indent=1) + "\n"
    if args.write:
        from colorbench.core.fsio import atomic_write_text

        atomic_write_text(COSTS_FILE, text)
        print(f"wrote {COSTS_FILE}")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
