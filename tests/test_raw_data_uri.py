"""``--data-root`` as a storage URI (issue 23): the folder-of-images loaders' raw files are fetched once per node into
its cache (``colorbench.engine.storage.fetch_raw_folders``) and read from there, with the numbers of the same
folder read in place; other loaders, and a URI that holds nothing, are refused with a clear error."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec
import numpy as np
import pytest
from PIL import Image

from colorbench.engine import data as engine_data
from colorbench.engine.data import load_dataset, uri_datasets
from colorbench.engine.executors import node_dataset
from colorbench.engine.grid import run
from colorbench.engine.spec import RunSpec
from colorbench.engine.storage import NODE_CACHE_ENV
from colorbench.results.rundir import RunDir

from test_engine import numbers


def _images(root: Path) -> Path:
    """``root/pics/<class>/*.png``: 2 classes x 8 random 24x24 images (seeded)."""
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / "pics" / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(root / "pics" / c / f"{c}{i}.png")
    return root


def _spec(data_root: str, **kw) -> RunSpec:
    options = {"data_root": data_root, "path": "pics", "size": 32, "resize": "resize", **kw}
    return RunSpec(methods=("gray", "unet-l1"), dataset="image-folder", dataset_options=tuple(options.items()),
                   epochs=1, progress=False, n_samples=2, eval_batch_size=8, metrics=("mse",))


@pytest.fixture
def node_cache(tmp_path, monkeypatch):
    """This 'node's cache folder, and the in-process caches of fetched copies and loaded datasets emptied."""
    monkeypatch.setenv(NODE_CACHE_ENV, str(tmp_path / "node-cache"))
    engine_data._fetched.cache_clear()
    engine_data._load_dataset_cached.cache_clear()
    yield tmp_path / "node-cache"
    engine_data._fetched.cache_clear()
    engine_data._load_dataset_cached.cache_clear()


def _upload(src: Path, bucket: str) -> str:
    fs = fsspec.filesystem("memory")
    for p in sorted(src.rglob("*.png")):
        fs.pipe_file(f"/{bucket}/data/{p.relative_to(src).as_posix()}", p.read_bytes())
    return f"memory://{bucket}/data"


def test_a_file_uri_is_read_from_the_node_s_copy_with_the_numbers_of_the_folder_fetched_once(tmp_path, node_cache):
    src = _images(tmp_path / "src")
    run(_spec(str(src)), out=tmp_path / "plain", log=lambda s: None)
    uri = src.as_uri()  # file:///.../src
    run(_spec(uri), out=tmp_path / "uri", log=lambda s: None)
    plain, fetched = RunDir(tmp_path / "plain"), RunDir(tmp_path / "uri")
    assert numbers(fetched) == numbers(plain)  # losses, metrics, per-image values: ==
    assert all(v["status"] == "ok" for v in numbers(fetched).values())
    rec = fetched.records()[0]
    (copy,) = [p for p in (node_cache / "raw").iterdir() if p.is_dir()]  # one copy (beside its lock file)
    assert rec.dataset["data_root"] == uri and rec.dataset["raw_copy"]["copy"] == str(copy)
    assert rec.dataset["raw_copy"]["files"] == 16 and rec.dataset["raw_copy"]["folders"] == ["pics"]
    assert rec.dataset["source"]["path"] == str(copy / "pics")  # the loader read the copy, not the source folder
    assert rec.dataset["sha256"] == plain.records()[0].dataset["sha256"]  # the same decoded pixels
    # a second load (a new process: no in-process cache) reuses the copy on this node instead of fetching again
    first = {p: p.stat().st_mtime_ns for p in copy.rglob("*.png")}
    inodes = {p: p.stat().st_ino for p in copy.rglob("*.png")}
    engine_data._fetched.cache_clear()
    engine_data._load_dataset_cached.cache_clear()
    again = load_dataset(_spec(uri))
    assert again.info["raw_copy"]["copy"] == str(copy)
    assert {p: p.stat().st_ino for p in copy.rglob("*.png")} == inodes and len(first) == 16
    # the copies keep the source's modification times (to the listing's precision): every node's copy of this
    # listing gets the same decoded-data cache key
    for p, ns in first.items():
        assert abs(ns - (src / p.relative_to(copy)).stat().st_mtime_ns) < 1000


def test_a_memory_uri_gives_the_numbers_of_the_folder_and_ray_s_node_loader_takes_it(tmp_path, node_cache):
    src = _images(tmp_path / "src")
    bucket = f"cb-{uuid.uuid4().hex[:8]}"
    uri = _upload(src, bucket)
    try:
        run(_spec(str(src)), out=tmp_path / "plain", log=lambda s: None)
        run(_spec(uri), out=tmp_path / "mem", log=lambda s: None)
        assert numbers(RunDir(tmp_path / "mem")) == numbers(RunDir(tmp_path / "plain"))
        # a Ray task's loader (no Ray needed to call it): a URI is no "folder missing on this node"
        engine_data._load_dataset_cached.cache_clear()
        data = node_dataset(_spec(uri), "image-folder", str(tmp_path / "ray-node"))
        assert data.info["data_root"] == uri and len(data.train) + len(data.test) == 16
        assert Path(data.info["raw_copy"]["copy"]).parent == tmp_path / "ray-node" / "raw"  # that node's cache
    finally:
        fsspec.filesystem("memory").rm(f"/{bucket}", recursive=True)


def test_a_missing_uri_an_unable_loader_and_download_are_refused_naming_the_problem(tmp_path, node_cache):
    fs = fsspec.filesystem("memory")
    bucket = f"cb-{uuid.uuid4().hex[:8]}"
    with pytest.raises(FileNotFoundError, match=rf"memory://{bucket}/nothing/pics does not exist or holds no file"):
        load_dataset(_spec(f"memory://{bucket}/nothing"))
    fs.pipe_file(f"/{bucket}/data/pics/a/x.png", b"not read")
    try:
        with pytest.raises(ValueError, match=r"dataset cifar10 cannot read its files from a storage URI .*"
                                             r"Give --data-root PATH, a folder every worker sees"):
            load_dataset(RunSpec(methods=("gray",), dataset="cifar10", progress=False, metrics=("mse",),
                                 dataset_options=(("data_root", f"memory://{bucket}/data"),)))
        with pytest.raises(ValueError, match="download=true cannot write into --data-root memory://"):
            load_dataset(_spec(f"memory://{bucket}/data", download=True))
        with pytest.raises(ValueError, match="option path=/abs is absolute; with --data-root as a storage URI"):
            load_dataset(_spec(f"memory://{bucket}/data", path="/abs"))
        with pytest.raises(ValueError, match=r"fsspec cannot open nosuchscheme:// .*install its package"):
            load_dataset(_spec("nosuchscheme://b/data"))
    finally:
        fs.rm(f"/{bucket}", recursive=True)
    assert not (node_cache / "raw").exists() or not any(p.is_dir() for p in (node_cache / "raw").iterdir())
    assert uri_datasets() == ["cyclegan-folder", "image-folder", "ucmerced"]


def test_a_cyclegan_folder_fetches_only_the_side_it_reads(tmp_path, node_cache):
    fs = fsspec.filesystem("memory")
    bucket = f"cb-{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(1)
    import io

    for folder in ("trainA", "testA", "trainB", "testB"):
        for i in range(3):
            buf = io.BytesIO()
            Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(buf, format="PNG")
            fs.pipe_file(f"/{bucket}/root/horse2zebra/{folder}/{i}.png", buf.getvalue())
    try:
        s = RunSpec(methods=("gray",), dataset="cyclegan-folder", progress=False, metrics=("mse",),
                    dataset_options=(("data_root", f"memory://{bucket}/root"), ("name", "horse2zebra"), ("size", 16)))
        data = load_dataset(s)
        copy = Path(data.info["raw_copy"]["copy"])
        assert sorted(p.name for p in (copy / "horse2zebra").iterdir()) == ["testA", "trainA"]
        assert len(data.train) == 3 and len(data.test) == 3 and data.info["raw_copy"]["files"] == 6
    finally:
        fs.rm(f"/{bucket}", recursive=True)


def test_processes_of_one_node_fetch_a_uri_once_under_the_lock(tmp_path, monkeypatch):
    import threading
    import time

    from colorbench.core import fsio
    from colorbench.engine.storage import fetch_raw_folders

    src = _images(tmp_path / "src")
    fills = []
    real = fsio.atomic_write_dir

    def slow_fill(path, fill, replace=True):  # a fetch that takes a while: the others must wait, then reuse it
        fills.append(path)
        time.sleep(0.3)
        return real(path, fill, replace=replace)

    monkeypatch.setattr(fsio, "atomic_write_dir", slow_fill)
    got = []
    threads = [threading.Thread(target=lambda: got.append(fetch_raw_folders(src.as_uri(), ["pics"], tmp_path / "nc",
                                                                            "image-folder")))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fills) == 1 and len(got) == 3
    assert len({str(local) for local, _ in got}) == 1 and len({json_key(r) for _, r in got}) == 1
    (local, record), *_ = got
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*.png")) == \
        sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    assert record["bytes"] == sum(p.stat().st_size for p in src.rglob("*.png"))


def json_key(record: dict) -> str:
    import json

    return json.dumps(record, sort_keys=True)


def test_a_fetch_killed_from_outside_leaves_no_copy_and_the_next_fetch_removes_its_folder(tmp_path):
    """SIGKILL a process in the middle of a fetch (its files written into the temporary folder, not yet renamed):
    no copy is published, and the next fetch on the node clears the dead one's temporary folder and fills it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from colorbench.engine.storage import fetch_raw_folders

    src = _images(tmp_path / "src")
    cache = tmp_path / "nc"
    child = ("import os, sys, time\n"
             "os.utime = lambda *a, **k: time.sleep(120)  # hang after the files arrived, before the rename\n"
             "from pathlib import Path\n"
             "from colorbench.engine.storage import fetch_raw_folders\n"
             f"fetch_raw_folders({src.as_uri()!r}, ['pics'], Path({str(cache)!r}), 'image-folder')\n")
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not [d for d in (cache / "raw").glob(".*.tmp") if any(d.rglob("*.png"))]:
        assert proc.poll() is None, "the fetching process ended before it could be killed"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    (stale,) = (cache / "raw").glob(".*.tmp")
    assert stale.name.endswith(f".{proc.pid}.tmp")
    assert not [d for d in (cache / "raw").iterdir() if d.is_dir() and not d.name.startswith(".")]  # no copy

    local, record = fetch_raw_folders(src.as_uri(), ["pics"], cache, "image-folder")
    assert not stale.exists() and not list((cache / "raw").glob(".*.tmp"))
    assert local.name == record["key"] and stale.name.startswith(f".{record['key']}.")
    assert sorted(p.relative_to(local).as_posix() for p in local.rglob("*.png")) == \
        sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))


def test_a_fetch_that_would_not_fit_on_the_node_s_disk_is_refused_before_any_byte_naming_the_bytes(tmp_path,
                                                                                                  monkeypatch):
    import shutil

    from colorbench.datasets import space
    from colorbench.datasets.space import InsufficientSpaceError
    from colorbench.engine.storage import fetch_raw_folders

    src = _images(tmp_path / "src")
    needed = sum(p.stat().st_size for p in src.rglob("*.png"))
    real = shutil.disk_usage
    monkeypatch.setattr(space.shutil, "disk_usage", lambda p: real(p)._replace(free=needed - 1))
    with pytest.raises(InsufficientSpaceError, match=rf"fetching 16 files of .* needs {needed} bytes.*"
                                                     rf"{needed - 1} bytes .*--node-cache-dir"):
        fetch_raw_folders(src.as_uri(), ["pics"], tmp_path / "nc", "image-folder")
    assert [p.name for p in (tmp_path / "nc" / "raw").iterdir()] == [p.name for p in (tmp_path / "nc" / "raw").glob(".lock-*")]
    monkeypatch.setattr(space.shutil, "disk_usage", lambda p: real(p)._replace(free=needed))
    local, _ = fetch_raw_folders(src.as_uri(), ["pics"], tmp_path / "nc", "image-folder")
    assert len(list(local.rglob("*.png"))) == 16


def test_evaluate_reads_a_data_root_uri_from_the_node_s_copy_with_the_numbers_of_the_folder(tmp_path, node_cache):
    """``colorbench evaluate --dataset image-folder --data-root URI``: the reference test split comes from this
    node's copy of the URI, with the values of the local folder; the record keeps the URI."""
    from colorbench.datasets import DATASETS
    from colorbench.engine.predictions import evaluate_folder, id_to_filename

    src = _images(tmp_path / "src")
    options = {"path": "pics", "size": 32, "resize": "resize"}
    test = DATASETS.get("image-folder")(data_root=str(src), **options).load().test
    preds = tmp_path / "preds"
    preds.mkdir()
    for k, image_id in enumerate(test.ids):  # a "colorizer" that returns the real image darkened
        Image.fromarray((np.asarray(test.rgb[k]).transpose(1, 2, 0) * 0.8).astype(np.uint8)).save(preds / id_to_filename(image_id))
    kw = dict(dataset="image-folder", metrics=("mse", "psnr"), log=lambda s: None)
    evaluate_folder(preds, tmp_path / "plain", "dark", dataset_options={"data_root": str(src), **options}, **kw)
    uri = src.as_uri()
    evaluate_folder(preds, tmp_path / "uri", "dark", dataset_options={"data_root": uri, **options}, **kw)
    (plain,), (fetched,) = RunDir(tmp_path / "plain").records(), RunDir(tmp_path / "uri").records()
    assert fetched.status == plain.status == "ok"
    assert {k: mv.value for k, mv in fetched.metrics.items()} == {k: mv.value for k, mv in plain.metrics.items()}
    assert fetched.metrics["mse"].value > 0
    (copy,) = [p for p in (node_cache / "raw").iterdir() if p.is_dir()]
    assert fetched.dataset["data_root"] == uri and fetched.dataset["raw_copy"]["copy"] == str(copy)
    assert fetched.dataset["sha256"] == plain.dataset["sha256"]
