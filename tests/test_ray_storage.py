"""Ray without a shared disk: the --storage locations, checkpoints in a storage URI, each node's dataset cache, a
cell's files sent back to the driver, --cross-domain on Ray, and a two-node cluster losing the node of a
half-trained cell (issue 23, item 4)."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbench.datasets.cache import CACHE_ENV
from colorbench.engine import storage
from colorbench.engine.cell import PAUSE_HOOK_ENV, _load_checkpoint, _save_checkpoint
from colorbench.engine.executors import (NODE_CACHE_ENV, DataNotOnNode, _ray_cell, fetch_predictions, node_cache_dir,
                                         node_dataset, write_cell_files)
from colorbench.engine.grid import _with_dir, plan_cells, run
from colorbench.engine.spec import RunSpec
from colorbench.engine.stages import stages_for
from colorbench.results.rundir import RunDir

TINY = (("n_test", 16), ("n_train", 32), ("seed", 0), ("size", 32))
QUIET = dict(log=lambda s: None)


def spec(**kw) -> RunSpec:
    base = dict(methods=("unet-l1",), dataset="shapes", dataset_options=TINY, epochs=2, progress=False, n_samples=2,
                eval_batch_size=16, metrics=("mse", "ssim"))
    base.update(kw)
    return RunSpec(**base)


def numbers(rd: RunDir) -> dict[tuple, dict]:
    """Every cell's metric values, per-image values and losses (timings left out), by cell."""
    out = {}
    for c in rd.cells():
        rec = rd.record(c)
        per_image = rd.per_image(c)
        out[(c.dataset, c.method, c.seed)] = {
            "status": rec.status, "error": rec.error,
            "metrics": {k: mv.value for k, mv in rec.metrics.items()},
            "losses": [{k: v for k, v in e.items() if k != "seconds"} for e in rec.losses],
            "per_image": None if per_image is None else per_image.to_dict("list"),
        }
    return out


# --- without Ray: locations, checkpoints in a URI, the node's dataset, the files of a cell -------------------------


def test_storage_locations_and_whole_file_writes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage.normalize("bucket") == str(tmp_path / "bucket")  # a plain folder: absolute, fsspec not needed
    assert storage.normalize(f"file://{tmp_path}/b") == str(tmp_path / "b")
    assert storage.normalize("memory://lab/runs/") == "memory://lab/runs"
    with pytest.raises(ValueError, match="nosuchscheme://"):
        storage.normalize("nosuchscheme://x")
    with pytest.raises(ValueError, match="--storage is empty"):
        storage.normalize(" ")
    a, b = storage.run_prefix("memory://lab", tmp_path / "r1"), storage.run_prefix("memory://lab", tmp_path / "x" / "r1")
    assert a.startswith("memory://lab/r1-") and b.startswith("memory://lab/r1-") and a != b  # same name, two runs
    for root in ("memory://lab/t", str(tmp_path / "local")):
        where = storage.join(root, "cells", "c", "last.pt")
        assert storage.read_bytes(where) is None and not storage.exists(where)
        storage.write_bytes(where, b"one")
        storage.write_bytes(where, b"two")
        assert storage.read_bytes(where) == b"two" and storage.exists(where)
        storage.remove(where)
        assert storage.read_bytes(where) is None


def test_storage_options_are_checked_before_anything_runs(tmp_path, capsys):
    from colorbench.commands import cli

    for args, message in ((["--storage", str(tmp_path / "b")], "--storage applies to --executor ray only"),
                          (["--executor", "ray", "--storage", "nosuchscheme://b"], "fsspec cannot open nosuchscheme://")):
        assert cli.main(["run", "--methods", "gray", "--out", str(tmp_path / "x"), "--no-progress", *args]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    with pytest.raises(ValueError, match="apply to --executor ray"):
        spec(node_cache_dir=str(tmp_path))


def test_a_checkpoint_in_a_storage_uri_round_trips_and_checks_its_key():
    where = "memory://ckpt-test/cells/c/checkpoint/last.pt"
    state = {"key": "k1", "epoch": 3, "w": torch.arange(6.0).reshape(2, 3), "rng": torch.get_rng_state()}
    _save_checkpoint(where, state)
    back = _load_checkpoint(where, "k1", log=lambda s: None)
    assert back["epoch"] == 3 and torch.equal(back["w"], state["w"]) and torch.equal(back["rng"], state["rng"])
    said: list[str] = []
    assert _load_checkpoint(where, "another key", log=said.append) is None and "another cell key" in said[0]


def test_a_node_without_the_drivers_data_folder_names_the_option(tmp_path):
    s = spec(dataset="imagenet-val", dataset_options=(("data_root", str(tmp_path / "only-on-the-driver")),))
    with pytest.raises(DataNotOnNode, match="--data-root as the workers see it"):
        node_dataset(s, "imagenet-val", str(tmp_path / "cache"))


def test_the_node_cache_is_filled_under_a_lock(tmp_path, monkeypatch):
    from filelock import FileLock

    monkeypatch.delenv(NODE_CACHE_ENV, raising=False)
    monkeypatch.delenv(CACHE_ENV, raising=False)  # node_dataset sets it: restored after the test
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert node_cache_dir() == tmp_path / "xdg" / "colorbench" / "datasets"  # default: the node's user cache
    monkeypatch.setenv(NODE_CACHE_ENV, str(tmp_path / "env"))
    assert node_cache_dir() == tmp_path / "env" and node_cache_dir(str(tmp_path / "opt")) == tmp_path / "opt"
    cache = tmp_path / "node"
    s = spec(dataset_options=(*TINY[:-1], ("size", 24)))  # options no other test loads (load_dataset caches)
    node_dataset(s, "shapes", str(cache))  # creates the lock file
    (lock,) = cache.glob(".lock-shapes-*")
    loaded: list[float] = []
    with FileLock(str(lock)):  # another task of this node is decoding: this one waits
        t = threading.Thread(target=lambda: (node_dataset(s, "shapes", str(cache)), loaded.append(time.monotonic())))
        t.start()
        time.sleep(1.0)
        assert not loaded
        released = time.monotonic()
    t.join(30)
    assert loaded and loaded[0] >= released
    assert os.environ[CACHE_ENV] == str(cache)  # the loaders' cache is the node's folder


def test_a_ray_cell_body_puts_checkpoints_and_files_in_the_storage(tmp_path, monkeypatch):
    """The body of a Ray task, run in this process with a memory:// storage: the epoch checkpoint, the
    --save-checkpoints file and the --cross-domain sets go to the storage, and the driver copies them in."""
    monkeypatch.delenv(CACHE_ENV, raising=False)  # node_dataset sets it: restored after the test
    s = spec(cross_domain=True, save_checkpoints=True, checkpoint_every_s=0)
    rd = RunDir(tmp_path / "run", create=True)
    data = node_dataset(s, "shapes", str(tmp_path / "node"))
    (task,), _ = plan_cells(s, rd, {"shapes": data})
    _with_dir(task.entry)
    task.run_dir, task.samples, task.listeners = str(rd.path), [0, 1], stages_for(s)
    prefix = storage.run_prefix("memory://bucket", rd.path)
    writes: list[str] = []
    real_write = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda where, b: (writes.append(where), real_write(where, b))[1])
    result = _ray_cell(task, {}, prefix, str(tmp_path / "node"))
    monkeypatch.undo()
    assert result.rows[0].record.status == "ok", result.rows[0].record.error
    ckpt = storage.join(prefix, "cells", task.entry.dir, "checkpoint", "last.pt")
    assert ckpt in writes and storage.exists(ckpt)  # the checkpoint after epoch 1 (of 2) went to the storage
    final = f"cells/{task.entry.dir}/checkpoint/final.pt"
    assert set(result.files) == {final, "domains/unet-l1/train.npy", "domains/unet-l1/test.npy",
                                 "domains/unet-l1/meta.json"}
    assert all(isinstance(v, str) and v.startswith(prefix) for v in result.files.values())  # locations, not bytes
    pred_at = storage.join(prefix, "cells", task.entry.dir, "predictions.npz")
    assert result.rows[0].predictions == pred_at  # the colorized test split went to the storage too
    fetch_predictions(result)
    pred, ids = result.rows[0].predictions
    assert pred.dtype == np.uint8 and pred.shape == (16, 3, 32, 32) and ids == list(data.test.ids)
    write_cell_files(result.files, rd.path)
    assert np.load(rd.path / "domains" / "unet-l1" / "test.npy").shape == (16, 3, 32, 32)
    saved = torch.load(rd.path / final, weights_only=False)
    stored = torch.load(io.BytesIO(storage.read_bytes(storage.join(prefix, final))), weights_only=False)
    assert saved.keys() == stored.keys() and len(saved) > 0
    with pytest.raises(ValueError, match="outside the run directory"):
        write_cell_files({"../escape.txt": b"x"}, rd.path)


# --- a Ray cluster of two nodes (slow: Ray starts in seconds, each node too) ---------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node without CPUs (it schedules nothing) and node A with one CPU, its own temporary folder and
    dataset cache; the kill test adds node B. Shut down at the end of the module."""
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    root = tmp_path_factory.mktemp("ray-nodes")
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    c.node_dirs = {}

    def add(name: str):
        tmp, cache = root / name / "tmp", root / name / "cache"
        tmp.mkdir(parents=True)
        node = c.add_node(num_cpus=1, env_vars={"TMPDIR": str(tmp), NODE_CACHE_ENV: str(cache)})
        c.node_dirs[name] = (tmp, cache)
        return node

    c.add = add
    c.node_a = add("a")
    ray.init(address=c.address, include_dashboard=False, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.mark.slow
def test_cross_domain_and_saved_checkpoints_come_back_from_ray(tmp_path, cluster):
    s = dict(methods=("gray", "unet-l1"), epochs=1, cross_domain=True, save_checkpoints=True)
    run(spec(**s), out=tmp_path / "local", **QUIET)
    run(spec(**s, executor="ray"), out=tmp_path / "ray", **QUIET)  # no --storage: files in the return value
    local, on_ray = RunDir(tmp_path / "local"), RunDir(tmp_path / "ray")
    assert numbers(on_ray) == numbers(local)
    for rel in ("domains/unet-l1/train.npy", "domains/gray/test.npy", "cross_domain/accuracy.csv"):
        a, b = (local.path / rel), (on_ray.path / rel)
        assert b.is_file(), rel
        assert (np.array_equal(np.load(a), np.load(b)) if rel.endswith(".npy") else a.read_text() == b.read_text())
    (cell,) = [c for c in on_ray.cells() if c.method == "unet-l1"]
    assert (on_ray.checkpoint_dir(cell) / "final.pt").is_file()
    assert not list(cluster.node_dirs["a"][0].rglob("last.pt"))  # node A's scratch folder was cleaned up


@pytest.mark.slow
def test_a_ray_node_fetches_a_data_root_uri_into_its_own_cache(tmp_path, cluster, monkeypatch):
    from test_raw_data_uri import _images

    src = _images(tmp_path / "src")
    monkeypatch.setenv(NODE_CACHE_ENV, str(tmp_path / "driver-cache"))  # the driver loads it too (to plan)
    opts = (("data_root", src.as_uri()), ("path", "pics"), ("size", 32), ("resize", "resize"))
    s = dict(methods=("unet-l1",), epochs=1, dataset="image-folder")
    run(spec(**s, dataset_options=(("data_root", str(src)),) + opts[1:]), out=tmp_path / "local", **QUIET)
    run(spec(**s, dataset_options=opts, executor="ray"), out=tmp_path / "ray", **QUIET)
    assert numbers(RunDir(tmp_path / "ray")) == numbers(RunDir(tmp_path / "local"))
    (rec,) = RunDir(tmp_path / "ray").records()
    copy = Path(rec.dataset["raw_copy"]["copy"])
    assert rec.status == "ok" and copy.parent == cluster.node_dirs["a"][1] / "raw"  # node A's copy, read there
    assert len(list(copy.rglob("*.png"))) == 16


@pytest.mark.slow
def test_killing_the_node_of_a_half_trained_cell_resumes_it_on_another_node(tmp_path, cluster, monkeypatch):
    """Node A trains the cell and checkpoints epoch 1 into the storage (a folder standing in for a bucket), then
    pauses in epoch 2; node B joins and node A is removed; Ray retries the cell on node B, which resumes from
    the storage's checkpoint: the records equal an uninterrupted local run."""
    run(spec(), out=tmp_path / "local", **QUIET)
    bucket, marker = tmp_path / "bucket", tmp_path / "paused"
    monkeypatch.setenv(PAUSE_HOOK_ENV, f"unet-l1:2:1:{marker}")  # node A waits before step 1 of epoch 2
    logs: list[str] = []
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            run(spec(executor="ray", storage=str(bucket), retries=1), out=tmp_path / "ray", log=logs.append,
                report=False)
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    driver = threading.Thread(target=drive)
    driver.start()
    deadline = time.monotonic() + 120
    while not (marker.exists() and list(bucket.rglob("last.pt"))) and time.monotonic() < deadline and driver.is_alive():
        time.sleep(0.2)
    assert marker.exists() and list(bucket.rglob("last.pt")), (errors, logs)
    cluster.add("b")
    cluster.remove_node(cluster.node_a, allow_graceful=False)
    pid = int(marker.read_text())
    try:
        os.kill(pid, signal.SIGKILL)  # the paused worker of node A, if removing its node left it behind
    except ProcessLookupError:
        pass
    driver.join(timeout=180)
    assert not driver.is_alive() and not errors, (errors, logs)
    on_ray, local = RunDir(tmp_path / "ray"), RunDir(tmp_path / "local")
    assert numbers(on_ray) == numbers(local)  # bit-identical: == on floats
    (a,), (b,) = on_ray.cells(), local.cells()
    assert np.array_equal(on_ray.predictions(a)[0], local.predictions(b)[0])  # fetched from the storage
    assert any("resumed from its checkpoint of epoch 1" in line for line in logs), logs
    for name in ("a", "b"):  # each node resolved the dataset through its own cache folder
        assert list(cluster.node_dirs[name][1].glob(".lock-shapes-*")), name
    assert not list(bucket.rglob("last.pt")) and not list(bucket.rglob("predictions.npz"))  # all in the run dir
