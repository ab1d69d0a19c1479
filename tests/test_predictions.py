"""Prediction folders: export a run's colorizations, evaluate a folder (checks, decoding, protocols), round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from colorbench.commands import cli
from colorbench.engine.protocols import PROTOCOLS, Protocol
from colorbench.datasets.imaging import decode_prediction
from colorbench.engine.predictions import (
    PredictionFolderError,
    evaluate_folder,
    export_predictions,
    id_to_filename,
    read_prediction_folder,
)

TINY = ["--dataset", "shapes", "--dataset-option", "n_train=16", "--dataset-option", "n_test=8",
        "--image-size", "32"]
SHAPES = {"n_train": 16, "n_test": 8, "size": 32}
METRICS = "mse,psnr,ssim,colorfulness,delta_colorfulness,sum_abs_diff"


def _save(path, hwc, **kw):
    Image.fromarray(hwc).save(path, **kw)


def _rgb(h=8, w=8, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_file_names_round_trip_and_fallbacks(tmp_path):
    assert id_to_filename("test:0") == "test%3A0.png" and id_to_filename("val/n01/x.JPEG") == "val%2Fn01%2Fx.JPEG.png"
    ids = ["test:0", "val/n01/ILSVRC2012_val_00000007.JPEG", "plain"]
    _save(tmp_path / "test%3A0.png", _rgb())
    _save(tmp_path / "ILSVRC2012_val_00000007.png", _rgb(seed=1))  # last path component without extension
    _save(tmp_path / "plain.jpg", _rgb(seed=2), quality=95)  # JPEG: accepted and recorded as lossy
    got = read_prediction_folder(tmp_path, ids, (8, 8))
    assert got.files == ["test%3A0.png", "ILSVRC2012_val_00000007.png", "plain.jpg"]
    assert got.pred.shape == (3, 3, 8, 8) and got.pred.dtype == np.uint8
    assert np.array_equal(got.pred[0].transpose(1, 2, 0), _rgb())
    assert got.formats == {"png": 2, "jpeg": 1} and got.lossy
    assert got.conversions == {}  # 8-bit RGB files (PNG and JPEG) are used as they are
    Image.fromarray(_rgb(seed=3)[..., 0]).save(tmp_path / "plain.jpg", quality=95)  # now a grey JPEG
    got = read_prediction_folder(tmp_path, ids, (8, 8))
    assert got.conversions == {"grey replicated to RGB": 1} and got.modes.get("L") == 1


def test_a_partial_mismatched_folder_lists_every_problem(tmp_path):
    ids = ["a", "b", "c", "d", "e"]
    _save(tmp_path / "a.png", _rgb())
    _save(tmp_path / "b.png", _rgb(16, 8))  # wrong size
    (tmp_path / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")  # undecodable
    _save(tmp_path / "d.png", _rgb()), _save(tmp_path / "d.jpg", _rgb())  # duplicate
    _save(tmp_path / "zzz.png", _rgb())  # extra
    with pytest.raises(PredictionFolderError) as info:
        read_prediction_folder(tmp_path, ids, (8, 8))
    text = str(info.value)
    assert "does not match the 5 test images" in text
    assert "1 test image(s) have no prediction file (missing ids):\n    e  (expected e.g. e.png)" in text
    assert "1 file(s) match no test id (extra files):\n    zzz.png" in text
    assert "d: d.jpg, d.png" in text
    assert "c.png: " in text and "cannot be decoded" in text
    assert "b.png: 8x16 (WxH), the real image is 8x8" in text and "--resize-pred" in text


def test_resize_pred_is_explicit_and_recorded(tmp_path):
    _save(tmp_path / "a.png", _rgb(16, 16))
    with pytest.raises(PredictionFolderError, match="do not have the real image's size"):
        read_prediction_folder(tmp_path, ["a"], (8, 8))
    got = read_prediction_folder(tmp_path, ["a"], (8, 8), resize_pred="bilinear")
    assert got.resized == 1 and got.pred.shape == (1, 3, 8, 8)
    with pytest.raises(PredictionFolderError, match="unknown --resize-pred"):
        read_prediction_folder(tmp_path, ["a"], (8, 8), resize_pred="cubic")


def test_16_bit_palette_and_other_modes_decode_correctly(tmp_path):
    grey16 = np.array([[0, 65535], [32768, 1000]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    rgb, facts = decode_prediction(tmp_path / "g16.png")
    assert facts["bits"] == 16 and facts["mode"].startswith("I")
    # 16-bit values scaled by 255/65535 and rounded (not clipped at 255 as Image.convert("RGB") would)
    assert rgb[..., 0].tolist() == [[0, 255], [128, 4]] and (rgb[..., 0] == rgb[..., 2]).all()
    assert "16-bit grey scaled to 8 bits" in facts["conversion"]  # to_rgb8's sentence, counted in the record
    # a 16-bit RGB PNG (written by hand: Pillow cannot write one): decoded by Pillow to the high bytes, recorded
    import struct
    import zlib

    a = np.array([[[65535, 32768, 256], [1000, 0, 65535]]], dtype=">u2")
    raw = b"".join(b"\x00" + a[y].tobytes() for y in range(a.shape[0]))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    (tmp_path / "rgb16.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 1, 16, 2, 0, 0, 0))
                                         + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    rgb, facts = decode_prediction(tmp_path / "rgb16.png")
    assert rgb.tolist() == [[[255, 128, 1], [3, 0, 255]]] and facts["bits"] == 16 and "high byte" in facts["mode"]
    pal = Image.fromarray(_rgb(4, 4)).quantize(colors=3)
    pal.save(tmp_path / "p.png")
    rgb, facts = decode_prediction(tmp_path / "p.png")
    assert facts["mode"] == "P" and np.array_equal(rgb, np.asarray(pal.convert("RGB")))
    rgba = np.dstack([_rgb(4, 4), np.full((4, 4), 7, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    rgb, facts = decode_prediction(tmp_path / "a.png")
    assert np.array_equal(rgb, rgba[..., :3]) and "alpha dropped" in facts["conversion"]
    Image.fromarray(np.zeros((2, 2), np.float32), "F").save(tmp_path / "f.tiff")
    from colorbench.datasets.imaging import CorruptImageError

    with pytest.raises(CorruptImageError, match="floating-point"):
        decode_prediction(tmp_path / "f.tiff")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert cli.main(["run", "--methods", "gray,unet-l1", "--epochs", "1", *TINY, "--out", str(out), "--no-progress",
                     "--metrics", METRICS, "--save-predictions", "always"]) == 0
    return out


def test_export_then_evaluate_reproduces_the_run(tiny_run, tmp_path, capsys):
    from colorbench.engine.protocols import get_protocol
    from colorbench.results.rundir import RunDir

    pngs = tmp_path / "pngs"
    assert cli.main(["export", str(tiny_run), "--method", "unet-l1", "--out", str(pngs)]) == 0
    manifest = json.loads((pngs / "manifest.json").read_text())
    assert manifest["n"] == 8 and manifest["method"] == "unet-l1" and len(list(pngs.glob("*.png"))) == 8
    assert cli.main(["evaluate", "--pred", str(pngs), *TINY, "--name", "unet-l1-files", "--out", str(tiny_run),
                     "--metrics", METRICS]) == 0
    capsys.readouterr()
    rd = RunDir(tiny_run)
    cells = {c.method: c for c in rd.cells()}
    run_rec, file_rec = rd.record(cells["unet-l1"]), rd.record(cells["unet-l1-files"])
    assert cells["unet-l1-files"].kind == "predictions" and file_rec.config["formats"] == {"png": 8}
    assert not file_rec.config["lossy"] and file_rec.config["manifest"]
    # 1. the files are the run's uint8 predictions exactly: scoring those arrays gives the same values
    pred, ids = rd.predictions(cells["unet-l1"])
    from colorbench.datasets import DATASETS

    real = DATASETS.get("shapes")(**SHAPES).load().test.rgb.numpy()
    values, _, _ = get_protocol("colorbench").score(pred, real, METRICS.split(","))
    for k, mv in values.items():
        assert file_rec.metrics[k].value == pytest.approx(mv.value, rel=1e-12, abs=1e-12), k
    # 2. against the run's own values (computed on the float output): within the 8-bit quantisation. Each
    # value moves by at most 0.5 on the 0-255 scale, so: |d MSE| <= sqrt(MSE) + 0.25 (Cauchy-Schwarz);
    # |d sum_abs_diff| <= 0.5 * 3 * H * W per image; colourfulness is 1.84-Lipschitz in the max change of rg and
    # yb (<= 1): sqrt(2) * (1 + 0.3); PSNR and SSIM: measured < 0.02 dB and < 1e-3 here, bounds 0.1 and 5e-3.
    r, f = run_rec.metrics, file_rec.metrics
    assert abs(r["mse"].value - f["mse"].value) <= r["mse"].value ** 0.5 + 0.25
    assert abs(r["sum_abs_diff"].value - f["sum_abs_diff"].value) <= 0.5 * 3 * 32 * 32
    assert abs(r["colorfulness"].value - f["colorfulness"].value) <= 2 ** 0.5 * 1.3
    assert abs(r["delta_colorfulness"].value - f["delta_colorfulness"].value) <= 2 ** 0.5 * 1.3
    assert abs(r["psnr"].value - f["psnr"].value) < 0.1 and abs(r["ssim"].value - f["ssim"].value) < 5e-3
    board = (tiny_run / "leaderboard.md").read_text()
    assert "unet-l1-files" in board and "unet-l1" in board
    assert all(mv.params["protocol"] == "colorbench" for mv in f.values())


def test_export_without_kept_predictions_says_how_to_get_them(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "--methods", "gray", *TINY, "--out", str(out), "--no-progress", "--metrics", "mse",
                     "--save-predictions", "never"]) == 0
    capsys.readouterr()
    assert cli.main(["export", str(out), "--method", "gray", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "kept no predictions of 'gray'" in err and "--save-predictions always" in err
    assert cli.main(["export", str(out), "--method", "unet-l1", "--out", str(tmp_path / "x")]) == 2
    assert "has no cell of method 'unet-l1'" in capsys.readouterr().err


def test_evaluate_refuses_a_partial_folder_without_a_traceback(tmp_path, capsys):
    pred = tmp_path / "pred"
    pred.mkdir()
    _save(pred / "test%3A0.png", _rgb(32, 32))
    assert cli.main(["evaluate", "--pred", str(pred), *TINY, "--name", "x", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "7 test image(s) have no prediction file" in err and "test:7" in err and "Traceback" not in err
    assert not (tmp_path / "r" / "cells.json").exists()  # nothing written for a refused folder


def test_target_folder_under_a_protocol_and_side_by_side(tmp_path, monkeypatch, capsys):
    """--target DIR: real files prepared as CT2's code does (centre crop + bilinear 256), the protocol's test-image
    list selects and orders them; the same folder under two protocols shows side by side."""
    mini = Protocol(name="ct2-mini", version="1", title="CT2's conventions on three images", paper="test",
                    test_ids=("ILSVRC2012_val_00000001", "ILSVRC2012_val_00000002", "ILSVRC2012_val_00000003"),
                    real_transform="ct2-center-crop-resize-256", grey="cie-l", metrics=("colorfulness", "psnr", "ssim"),
                    metric_options={k: v for k, v in PROTOCOLS["ct2-imagenet-val5k"].metric_options.items()
                                    if k in ("colorfulness", "psnr", "ssim")})
    monkeypatch.setitem(PROTOCOLS, "ct2-mini", mini)
    target, pred = tmp_path / "val", tmp_path / "pred"
    pred.mkdir()
    for k in range(1, 5):  # image 4 is not in the protocol's list; class folders as torchvision's ImageNet layout
        (target / f"n{k % 2:08d}").mkdir(parents=True, exist_ok=True)
        _save(target / f"n{k % 2:08d}" / f"ILSVRC2012_val_{k:08d}.JPEG", _rgb(300, 400, k), format="JPEG", quality=90)
    for k in range(1, 4):
        _save(pred / f"ILSVRC2012_val_{k:08d}.png", _rgb(256, 256, 10 + k))
    out = tmp_path / "run"
    assert cli.main(["evaluate", "--pred", str(pred), "--target", str(target), "--name", "mine", "--out", str(out),
                     "--protocol", "ct2-mini"]) == 0
    from colorbench.results.rundir import RunDir

    rec = RunDir(out).records()[0]
    assert rec.dataset["n_test"] == 3 and rec.dataset["n_files_found"] == 4 and rec.config["protocol"] == "ct2-mini/1"
    assert rec.dataset["image_size"] == [256, 256]  # CT2's centre crop and resize
    refs = rec.dataset["structure_references"]  # where "structure lost" begins on these real images
    assert refs["n_images"] == 3 and refs["grey"] == rec.grey_convention and refs["flat"] < refs["blur7"]
    assert rec.config["icc"] == "convert"  # this test protocol keeps the default ICC policy
    assert rec.metrics["ssim"].params["k1"] == pytest.approx(0.01 * 225 / 255)
    assert rec.metrics["colorfulness"].params["opponent_components"] == "absolute"
    # the same files under colorbench's protocol: the real images are used as they are (300x400), so the
    # 256x256 predictions are refused unless resized on purpose
    assert cli.main(["evaluate", "--pred", str(pred), "--target", str(target), "--name", "mine", "--out",
                     str(out), "--metrics", "colorfulness,psnr"]) == 2
    err = capsys.readouterr().err
    assert "1 test image(s) have no prediction file" in err and "ILSVRC2012_val_00000004" in err
    assert "ILSVRC2012_val_00000001.png: 256x256 (WxH), the real image is 400x300" in err
    pred4 = tmp_path / "pred4"
    pred4.mkdir()
    for k in range(1, 5):
        _save(pred4 / f"ILSVRC2012_val_{k:08d}.png", _rgb(300, 400, 10 + k))
    assert cli.main(["evaluate", "--pred", str(pred4), "--target", str(target), "--name", "mine", "--out", str(out),
                     "--metrics", "colorfulness,psnr"]) == 0
    board = (out / "leaderboard.md").read_text()
    assert "## One method under several protocols" in board
    assert "`colorbench/2` | `ct2-mini/1`" in board
    line = next(row for row in board.splitlines() if row.startswith("| mine | colorfulness"))
    assert line.count("|") == 5 and "–" not in line  # both protocols computed colourfulness


def test_evaluate_argument_errors(tmp_path, capsys):
    assert cli.main(["evaluate", "--pred", str(tmp_path), "--name", "x", "--out", str(tmp_path / "r")]) == 2
    assert "either --dataset NAME" in capsys.readouterr().err
    assert cli.main(["evaluate", "--pred", str(tmp_path), *TINY, "--name", "x", "--out", str(tmp_path / "r"),
                     "--protocol", "ddcolor"]) == 2
    assert "Unknown protocol 'ddcolor'" in capsys.readouterr().err
    with pytest.raises(PredictionFolderError, match="does not exist"):
        evaluate_folder(tmp_path / "nope", tmp_path / "r", "x", dataset="shapes", dataset_options=SHAPES)
    with pytest.raises(FileNotFoundError, match="not a colorbench run directory"):
        export_predictions(tmp_path / "nope", "gray", tmp_path / "o")
