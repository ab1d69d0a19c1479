"""The sharded decoded-data cache (colorbench.datasets.cache, colorbench.datasets.shards): the same folder cached
with a tiny shard size gives the same pixels, hashes, batches, resume and run records as unsharded; shards are
hashed and checked; a fill killed from outside keeps its finished shards; a subset stays an index."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from colorbench.datasets import DATASETS, fixtures as fx
from colorbench.datasets.cache import ShardChangedError
from colorbench.datasets.shards import ShardedRows
from colorbench.datasets.space import InsufficientSpaceError

S = 32
ROW = 3 * S * S  # decoded RGB bytes of one image
SHARDS = dict(cache_shard_above_bytes=3 * ROW, cache_shard_bytes=3 * ROW)  # sharded, 3 images per shard


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("COLORBENCH_DATA_ROOT", raising=False)
    monkeypatch.delenv("COLORBENCH_CACHE_DIR", raising=False)


def _load(root: Path, cache: str, **options):
    return DATASETS.get("image-folder")(data_root=str(root), path="imgs", size=S, cache_dir=str(root / cache),
                                        **options).load()


@pytest.fixture
def folder(tmp_path):
    fx.write_image_folder(tmp_path / "imgs", per_class=10)  # 20 images: 16 train, 4 test
    return tmp_path


def test_sharded_split_equals_unsharded(folder):
    whole = _load(folder, "plain")
    sharded = _load(folder, "sharded", **SHARDS)  # 3 images per shard
    for split in ("train", "test"):
        a, b = getattr(whole, split), getattr(sharded, split)
        assert isinstance(a.rgb, torch.Tensor) and isinstance(b.rgb, ShardedRows)
        assert len(b.rgb.shards) == -(-len(a) // 3) and b.rgb.shape == a.rgb.shape and b.rgb.dtype == torch.uint8
        assert torch.equal(b.rgb[:], a.rgb) and b.ids == a.ids and torch.equal(b.labels, a.labels)
        index = torch.tensor([len(a) - 1, 0, 2, 2, 1])  # across shards, repeated, out of order
        assert torch.equal(b.rgb[index], a.rgb[index]) and torch.equal(b.rgb[3], a.rgb[3])
        assert torch.equal(b.rgb[np.array([-1])], a.rgb[[-1]])
        assert all(torch.equal(x, y) for x, y in zip(b.rgb.split(5), a.rgb.split(5)))
        assert b.sha256() == a.sha256() == whole.info["sha256"][split] == sharded.info["sha256"][split]
    layout = sharded.info["cache"]["layout"]
    assert layout["train"]["shards"] == 6 and layout["train"]["rows_per_shard"] == 3
    assert len(layout["train"]["sha256"]) == 6 and sharded.info["cache"]["shard_bytes"] == 3 * ROW
    assert sharded.info["cache"]["shard_above_bytes"] == 3 * ROW
    assert whole.info["cache"]["layout"]["train"] == {"format": "raw uint8 .npy", "shards": 1}
    again = _load(folder, "sharded", **SHARDS)
    assert again.info["cache"]["hit"] and torch.equal(again.train.rgb[:], whole.train.rgb)


def test_subset_of_sharded_rows_is_an_index_and_pickles_by_path(folder):
    whole = _load(folder, "plain")
    sharded = _load(folder, "sharded", **SHARDS)
    pick = [7, 1, 12]
    sub = sharded.train.subset(pick)
    assert isinstance(sub.rgb, ShardedRows) and sub.rgb.shards[0] is sharded.train.rgb.shards[0]  # no copy
    assert torch.equal(sub.rgb[:], whole.train.subset(pick).rgb) and sub.ids == whole.train.subset(pick).ids
    assert torch.equal(sub.rgb.take([2, 0])[:], whole.train.rgb[[12, 7]])  # a view of a view
    blob = pickle.dumps(sub.rgb)
    assert len(blob) < 2000  # the file paths and the index, not the pixels
    assert torch.equal(pickle.loads(blob)[:], sub.rgb[:])
    batch = sub.make_batch(torch.tensor([2, 0]), grey_convention="bt601")
    assert torch.equal(batch.rgb, whole.train.rgb[[12, 7]].float() / 255)
    with pytest.raises(IndexError, match="out of range"):
        sub.rgb[torch.tensor([3])]


def test_skip_corrupt_keeps_an_index_and_the_unsharded_values(folder):
    fx.truncate_file(folder / "imgs" / "dogs" / "00002.jpg", 0.3)
    (folder / "imgs" / "cats" / "00001.jpg").write_bytes(b"not an image")
    with pytest.raises(Exception, match="--skip-corrupt"):
        _load(folder, "sharded", **SHARDS)
    assert not any((folder / "sharded").glob(".partial-*"))  # a refused fill leaves nothing
    whole = _load(folder, "plain", skip_corrupt=True)
    sharded = _load(folder, "sharded", skip_corrupt=True, **SHARDS)
    assert sharded.info["skipped_corrupt"] == whole.info["skipped_corrupt"]
    assert sum(v["count"] for v in whole.info["skipped_corrupt"].values()) == 2
    for split in ("train", "test"):
        a, b = getattr(whole, split), getattr(sharded, split)
        assert b.ids == a.ids and torch.equal(b.labels, a.labels) and torch.equal(b.rgb[:], a.rgb)
        assert b.sha256() == a.sha256()
    keep = list(Path(sharded.info["cache"]["path"]).glob("*_keep.npy"))
    assert keep and all(np.load(k).dtype == np.int64 for k in keep)


def test_a_changed_shard_is_named_and_a_touched_one_is_rehashed(folder):
    first = _load(folder, "sharded", **SHARDS)
    shard = Path(first.info["cache"]["path"]) / "train_rgb.00001.npy"
    os.utime(shard, ns=(1, 1))  # same bytes, new mtime: re-hashed and accepted
    assert torch.equal(_load(folder, "sharded", **SHARDS).train.rgb[:], first.train.rgb[:])
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(ShardChangedError, match=r"train_rgb.00001.npy changed since it was written.*delete the folder"):
        _load(folder, "sharded", **SHARDS)


def test_not_enough_disk_for_the_shards_is_refused_with_the_bytes(folder, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, 1000))
    with pytest.raises(InsufficientSpaceError, match=rf"6 cache shards of split train still to decode .* needs "
                                                     rf"{16 * ROW} bytes .* 1000 bytes .* free on the disk"):
        _load(folder, "sharded", **SHARDS)


_SLOW_FILL = """
import sys, time
import colorbench.datasets.standard.pipeline as p
real = p.decode_image_info
def slow(*a, **k):
    time.sleep(0.1)
    return real(*a, **k)
p.decode_image_info = slow
from colorbench.datasets import DATASETS
DATASETS.get("image-folder")(data_root=sys.argv[1], path="imgs", size=32, cache_dir=sys.argv[2], workers=1,
                             cache_shard_above_bytes=3 * 3 * 32 * 32, cache_shard_bytes=3 * 3 * 32 * 32).load()
"""


def test_a_fill_killed_from_outside_keeps_its_finished_shards(folder):
    cache = folder / "sharded"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_FILL, str(folder), str(cache)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not list(cache.glob(".partial-*/train.00001.json")) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1].decode()
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)  # mid-fill: shards 0 and 1 finished, the others not
    proc.communicate()
    (partial,) = cache.glob(".partial-*")
    finished = {p.name: p.stat().st_mtime_ns for p in partial.glob("train_rgb.*.npy")}
    assert {"train_rgb.00000.npy", "train_rgb.00001.npy"} <= set(finished) and len(finished) < 6
    data = _load(folder, "sharded", workers=1, **SHARDS)
    entry = Path(data.info["cache"]["path"])
    for name, mtime in finished.items():  # reused, not decoded again
        assert (entry / name).stat().st_mtime_ns == mtime
    assert not partial.exists() and not list(entry.glob(".*.npy"))  # no temporary file left
    whole = _load(folder, "plain")
    assert torch.equal(data.train.rgb[:], whole.train.rgb) and data.info["sha256"] == whole.info["sha256"]


def test_batches_and_mid_epoch_resume_equal_unsharded(folder):
    from colorbench.engine.data import EpochSampler, make_train_loader

    whole = _load(folder, "plain").train
    sharded = _load(folder, "sharded", **SHARDS).train

    def batches(train, workers, state=None, stop=None):
        s = EpochSampler(len(train), paired=True, batch_size=5, seed=4)
        if state is not None:
            s.load_state_dict(state)
        loader = make_train_loader(train, s, workers=workers, device="cpu", grey_convention="bt601")
        out = []
        for b in loader:
            out.append(b)
            if stop is not None and len(out) == stop:
                break
        loader.close()
        return out, s.state_dict()

    full, _ = batches(whole, 0)
    for workers in (0, 1):
        got, _ = batches(sharded, workers)
        assert [b.ids for b in got] == [b.ids for b in full]
        assert all(torch.equal(a.rgb, b.rgb) and torch.equal(a.gray, b.gray) for a, b in zip(got, full))
    head, state = batches(sharded, 0, stop=2)  # killed after 2 batches: the rest from the state
    tail, _ = batches(sharded, 0, state=state)
    assert [b.ids for b in head + tail] == [b.ids for b in full]
    assert all(torch.equal(a.rgb, b.rgb) for a, b in zip(head + tail, full))


def test_run_records_equal_unsharded(folder):
    from colorbench.engine.grid import run
    from colorbench.engine.spec import RunSpec
    from colorbench.results.rundir import RunDir

    def numbers(out, options):
        spec = RunSpec(methods=("unet-l1",), dataset="image-folder", epochs=1, progress=False, n_samples=2,
                       metrics=("mse", "ssim"),
                       dataset_options=(("data_root", str(folder)), ("path", "imgs"), ("size", S), *options))
        run(spec, out=out, log=lambda s: None)
        rd = RunDir(out)
        (cell,) = rd.cells()
        rec = rd.record(cell)
        losses = [{k: v for k, v in e.items() if k != "seconds"} for e in rec.losses]
        return rec.status, {k: mv.value for k, mv in rec.metrics.items()}, losses, rd.per_image(cell).to_dict("list")

    plain = numbers(folder / "run-plain", (("cache_dir", str(folder / "plain")),))
    sharded = numbers(folder / "run-sharded", (("cache_dir", str(folder / "sharded")), ("cache_shard_above_bytes", 3 * ROW),
                                                      ("cache_shard_bytes", 3 * ROW)))
    assert plain[0] == "ok" and plain == sharded  # == on floats


def test_train_limit_decodes_the_whole_split_and_trains_on_an_index(folder):
    whole = _load(folder, "plain")
    limited = _load(folder, "sharded", **SHARDS, train_limit=5)
    assert len(limited.train) == 5 and len(limited.test) == len(whole.test)
    assert isinstance(limited.train.rgb, ShardedRows) and len(limited.train.rgb.shards) == 6  # all 16 cached
    pos = [whole.train.ids.index(i) for i in limited.train.ids]
    assert pos == sorted(pos) and torch.equal(limited.train.rgb[:], whole.train.rgb[pos])
    info = limited.info["train_limit"]
    assert info["n"] == 5 and info["of"] == 16 and info["sha256"] == limited.train.sha256()
    assert _load(folder, "sharded", **SHARDS, train_limit=5).train.ids == limited.train.ids
    with pytest.raises(ValueError, match="train_limit"):
        _load(folder, "plain", train_limit=0)


def test_sharded_masks_and_mask_labels_equal_unsharded(tmp_path):
    fx.write_voc_seg(tmp_path, n_train=4, n_val=3)
    opts = dict(data_root=str(tmp_path), size=S)
    whole = DATASETS.get("voc-seg")(cache_dir=str(tmp_path / "plain"), **opts).load()
    sharded = DATASETS.get("voc-seg")(cache_dir=str(tmp_path / "sharded"), cache_shard_above_bytes=ROW, cache_shard_bytes=ROW, **opts).load()
    for split in ("train", "test"):
        a, b = getattr(whole, split), getattr(sharded, split)
        assert isinstance(b.masks, ShardedRows) and len(b.masks.shards) == len(a)
        assert torch.equal(b.masks[:], a.masks) and torch.equal(b.labels, a.labels) and b.sha256() == a.sha256()
