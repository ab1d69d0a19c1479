"""Streaming ``evaluate``: the same values, digest and structure references as decoding both folders whole, with
or without decoding processes; the structure references cached by content; the predictions copy by policy."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from PIL import Image

from colorbench.engine.evaluation import StructureReferenceSums
from colorbench.engine.predictions import evaluate_folder, read_prediction_folder, read_target_folder
from colorbench.engine.protocols import get_protocol
from colorbench.metrics.image_quality import structure_references
from colorbench.results.rundir import RunDir

METRICS = ("mse", "psnr", "ssim", "luma_ssim", "colorfulness", "ab_histogram_kl")
N = 300  # more than one chunk of 256 structure-reference images


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    target, pred = root / "target", root / "pred"
    (target / "a").mkdir(parents=True)
    (target / "b").mkdir()
    pred.mkdir()
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    for k in range(N):  # smooth-ish 16x16 images (upscaled noise) so that SSIM is not degenerate
        real = np.asarray(Image.fromarray(np.roll(base, k, axis=(0, 1))).resize((16, 16), Image.BILINEAR))
        Image.fromarray(real).save(target / ("a" if k % 2 else "b") / f"im{k:04d}.png")
        noisy = np.clip(real.astype(int) + rng.integers(-20, 21, size=real.shape), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(pred / f"im{k:04d}.png")
    return target, pred


@pytest.mark.parametrize("workers", [0, 2])
def test_streamed_evaluate_equals_the_whole_set_scoring(folders, tmp_path, monkeypatch, workers):
    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path / "cache"))
    target, pred = folders
    real, ids, desc = read_target_folder(target)  # the eager path of before: whole arrays
    contents = read_prediction_folder(pred, [i.rsplit("/", 1)[-1] for i in ids], tuple(real.shape[2:]))
    proto = get_protocol("colorbench")
    values, per_image, _ = proto.score(contents.pred, real, METRICS, batch_size=64)
    refs = structure_references(torch.from_numpy(real), proto.grey)
    out = tmp_path / "run"
    evaluate_folder(pred, out, "noisy", target=target, metrics=METRICS, eval_batch_size=64, workers=workers,
                    log=lambda s: None)
    rd = RunDir(out)
    (cell,) = rd.cells()
    rec = rd.record(cell)
    assert {k: mv.value for k, mv in rec.metrics.items()} == {k: mv.value for k, mv in values.items()}  # exact
    stored = rd.per_image(cell)
    for key, arr in per_image.items():  # the per-image file keeps ~16 significant digits
        assert stored[key].tolist() == pytest.approx(arr.tolist(), rel=1e-14, abs=0)
    assert rec.dataset["sha256"] == desc["sha256"] == hashlib.sha256(real.transpose(0, 2, 3, 1).tobytes()).hexdigest()
    assert rec.dataset["structure_references"] == refs
    assert rec.config["decode_workers"] == workers and rec.config["predictions_kept"]  # 300 x 768 B < 64 MiB
    kept, kept_ids = rd.predictions(cell)
    assert np.array_equal(kept, contents.pred) and list(kept_ids) == ids


def test_structure_reference_sums_equal_the_function_for_any_batching():
    g = torch.Generator().manual_seed(0)
    real = torch.randint(0, 256, (N, 3, 12, 12), dtype=torch.uint8, generator=g)
    acc = StructureReferenceSums("bt601")
    for start, size in ((0, 7), (7, 250), (257, 43)):
        acc.update(real[start:start + size])
    assert acc.compute() == structure_references(real, "bt601")
    small = StructureReferenceSums("bt601")
    small.update(real[:4, :, :8, :8])
    assert small.compute() is None and structure_references(real[:4, :, :8, :8], "bt601") is None


@pytest.mark.parametrize("shape", [(9, 3, 20, 33), (5, 1, 7, 7), (3, 3, 64, 64)])
def test_box_mean_is_avg_pool2d_to_the_bit(shape):
    """The structure references' blur adds the 7x7 window's values in avg_pool2d's order (any image grouping)."""
    from colorbench.metrics.image_quality import box_mean

    g = torch.Generator().manual_seed(shape[0])
    x = torch.randint(0, 256, shape, generator=g).float().div_(255.0)
    padded = torch.nn.functional.pad(x, (3, 3, 3, 3), mode="replicate")
    expected = torch.nn.functional.avg_pool2d(padded, 7, 1)
    for group in (1, 2, 4):
        assert torch.equal(box_mean(padded, 7, group=group), expected)
    assert not torch.equal(box_mean(padded, 7), torch.nn.functional.avg_pool2d(padded, 5, 1, padding=0)[..., 1:-1, 1:-1])


def test_reference_values_do_not_depend_on_the_sub_batch():
    from colorbench.metrics.image_quality import structure_reference_values

    g = torch.Generator().manual_seed(3)
    real = torch.randint(0, 256, (11, 3, 16, 24), dtype=torch.uint8, generator=g)
    whole = structure_reference_values(real, "cie-l", sub_batch=11)
    for sub in (1, 4):
        parts = structure_reference_values(real, "cie-l", sub_batch=sub)
        assert all(torch.equal(parts[k], whole[k]) for k in ("flat", "blur7"))
    assert whole["flat"].dtype == torch.float64 and whole["flat"].shape == (11,)


def test_structure_references_come_from_the_cache_and_are_recomputed_when_the_files_change(folders, tmp_path,
                                                                                          monkeypatch):
    import colorbench.engine.evaluation as ev

    monkeypatch.setenv("COLORBENCH_CACHE_DIR", str(tmp_path / "cache"))
    target, pred = folders
    kw = dict(target=target, metrics=("mse",), workers=0, log=lambda s: None)
    evaluate_folder(pred, tmp_path / "r1", "x", **kw)
    first = RunDir(tmp_path / "r1").records()[0].dataset["structure_references"]
    assert len(list((tmp_path / "cache" / "structure-references").glob("*.json"))) == 2  # by fingerprint and digest
    calls = []
    monkeypatch.setattr(ev.StructureReferenceSums, "update", lambda self, x: calls.append(len(x)))
    evaluate_folder(pred, tmp_path / "r2", "x", **kw, save_predictions="never")
    rec = RunDir(tmp_path / "r2").records()[0]
    assert not calls and rec.dataset["structure_references"] == first  # from the cache, not recomputed
    assert not rec.config["predictions_kept"] and RunDir(tmp_path / "r2").predictions(RunDir(tmp_path / "r2").cells()[0]) is None
    # a file rewritten with other pixels but the same size and time: the digest differs, so they are recomputed
    path = target / "b" / "im0000.png"
    st = path.stat()
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(path)
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    evaluate_folder(pred, tmp_path / "r3", "x", **kw)
    assert calls  # recomputed after the digest did not match


def test_whole_set_arrays_are_refused_before_allocation_when_they_do_not_fit(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import colorbench.datasets.cache as cache

    w = cache.EntryWriter(tmp_path, "demo", "k")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 0, 1000))
    with pytest.raises(cache.InsufficientSpaceError, match=r"needs 3072 bytes .* 1000 bytes .* free on the disk"):
        w.array("train_rgb", (1, 3, 32, 32))
    monkeypatch.setattr("colorbench.datasets.space._memory_available", lambda: 100)
    with pytest.raises(ValueError, match="needs 3072 bytes .* memory available"):
        cache.EntryWriter(None, "demo", "k").array("train_rgb", (1, 3, 32, 32))
    w.abort()


def test_shrink_keeps_the_rows_in_chunks_on_disk(tmp_path):
    import colorbench.datasets.cache as cache

    w = cache.EntryWriter(tmp_path, "demo", "k")
    arr = w.array("rgb", (600, 3, 4, 4))
    arr[...] = (np.arange(600) % 251).astype(np.uint8)[:, None, None, None]
    keep = np.ones(600, bool)
    keep[[3, 300, 599]] = False
    out = w.shrink("rgb", keep)
    assert isinstance(out, np.memmap) and out.shape == (597, 3, 4, 4)
    assert np.array_equal(np.asarray(out)[:, 0, 0, 0], (np.arange(600)[keep] % 251).astype(np.uint8))
    w.abort()
