"""Issue 24's rough edges of `evaluate` and the data path: a leftover manifest.json says it decided the matching and
long listings are cut; formats colorbench cannot read are named, never skipped; a grey-only prediction folder is
flagged; a read-only data folder never receives the cache; files skipped by --skip-corrupt reach the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorbench.commands import cli
from colorbench.datasets import cache as cache_mod
from colorbench.engine.predictions import LIST_MAX, PredictionFolderError, evaluate_folder
from colorbench.reports.header import report_header
from colorbench.results.rundir import RunDir


def _folder(path: Path, n: int, grey: bool = False, ext: str = "png", seed: int = 0) -> list[str]:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"im{i:03d}" for i in range(n)]
    for i in ids:
        rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        if grey:
            rgb[..., 1] = rgb[..., 2] = rgb[..., 0]
        Image.fromarray(rgb).save(path / f"{i}.{ext}")
    return ids


def test_a_leftover_manifest_is_named_and_long_listings_are_cut(tmp_path):
    _folder(tmp_path / "real", 30)
    _folder(tmp_path / "pred", 30, seed=1)
    (tmp_path / "pred" / "manifest.json").write_text(json.dumps(
        {"schema": "colorbench.predictions/1", "method": "unet-l1", "run": "/old/run",
         "files": [{"id": f"other{i}", "file": f"im{i:03d}.png"} for i in range(30)]}))
    with pytest.raises(PredictionFolderError) as err:
        evaluate_folder(tmp_path / "pred", tmp_path / "out", "p", target=tmp_path / "real", log=lambda s: None)
    text = str(err.value)
    assert "matched to test ids by the folder's manifest.json" in text and "remove manifest.json" in text
    assert "method unet-l1" in text
    assert f"... and {30 - LIST_MAX} more" in text and text.count("(expected e.g.") == LIST_MAX


def test_formats_colorbench_cannot_read_are_named(tmp_path):
    _folder(tmp_path / "real", 4)
    Image.new("RGB", (16, 16)).save(tmp_path / "real" / "extra.gif")
    _folder(tmp_path / "pred", 4, seed=1)
    with pytest.raises(PredictionFolderError, match=r"1 image file\(s\) of a format colorbench does not read \(\.gif\)"):
        evaluate_folder(tmp_path / "pred", tmp_path / "out", "p", target=tmp_path / "real", log=lambda s: None)
    (tmp_path / "real" / "extra.gif").unlink()
    _folder(tmp_path / "gifs", 4, ext="gif", seed=1)
    with pytest.raises(PredictionFolderError) as err:
        evaluate_folder(tmp_path / "gifs", tmp_path / "out", "p", target=tmp_path / "real", log=lambda s: None)
    assert "im000.gif  (.gif files are not read: save the colorizations as PNG)" in str(err.value)


def test_a_grey_prediction_folder_is_flagged(tmp_path):
    _folder(tmp_path / "real", 4)
    _folder(tmp_path / "pred", 4, grey=True, seed=1)
    logs: list[str] = []
    evaluate_folder(tmp_path / "pred", tmp_path / "out", "p", target=tmp_path / "real", metrics=("mse",),
                    log=logs.append)
    rec = RunDir(tmp_path / "out").records()[0]
    assert rec.caveats and "every prediction in pred/ is grey" in rec.caveats[0]
    assert any(line.startswith("warning: every prediction") for line in logs)
    _folder(tmp_path / "colour", 4, seed=1)  # and a colour folder is not flagged
    evaluate_folder(tmp_path / "colour", tmp_path / "out2", "c", target=tmp_path / "real", metrics=("mse",),
                    log=lambda s: None)
    assert RunDir(tmp_path / "out2").records()[0].caveats == []


def test_a_read_only_data_folder_gets_no_cache(tmp_path, monkeypatch):
    monkeypatch.delenv(cache_mod.CACHE_ENV, raising=False)
    data = tmp_path / "shared-mount"
    data.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    (tmp_path / "xdg").mkdir()
    real_access = os.access
    monkeypatch.setattr(cache_mod.os, "access", lambda p, mode: False if Path(p) == data else real_access(p, mode))
    assert cache_mod.default_cache_dir(data) == tmp_path / "xdg" / "colorbench" / "datasets"
    assert cache_mod.default_cache_dir(tmp_path) == tmp_path / ".colorbench-cache"  # writable: as before
    monkeypatch.setattr(cache_mod.os, "access", lambda p, mode: False)
    with pytest.raises(ValueError, match=r"cache_dir=DIR or \$COLORBENCH_CACHE_DIR=DIR"):
        cache_mod.default_cache_dir(data)


def test_skipped_corrupt_files_are_in_the_report_header():
    info = {"datasets": {"folder": {"name": "folder", "n_train": 10, "n_test": 4, "image_size": [32, 32],
                                    "skipped_corrupt": {"train": {"count": 1, "files": ["train/broken.jpg"]},
                                                        "test": {"count": 0, "files": []}}}}}
    lines = {h.label: h.text for h in report_header([], info)}
    text = " ".join(lines.values())
    assert "1 undecodable file(s) skipped (1 train: train/broken.jpg)" in text


def test_evaluate_cli_exit_2_on_unreadable_formats(tmp_path, capsys):
    _folder(tmp_path / "real", 4)
    _folder(tmp_path / "gifs", 4, ext="gif")
    rc = cli.main(["evaluate", "--pred", str(tmp_path / "gifs"), "--target", str(tmp_path / "real"), "--name", "g",
                   "--out", str(tmp_path / "out")])
    assert rc == cli.EXIT_USAGE and ".gif files are not read" in capsys.readouterr().err
