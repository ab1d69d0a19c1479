"""Issue #11: the runner's defects found by a new user (odd unpaired splits, default method list, exit status,
argument checks before any work, duplicate rows, metrics that cannot be computed, corrupt run files)."""

import dataclasses
import json

import pytest
import torch

from colorbench.commands import cli
from colorbench.engine import data as runner_data
from colorbench.engine import grid
from colorbench.methods.base import checked_colorize
from colorbench.datasets import DATASETS
from colorbench.methods import METHODS
from colorbench.results.records import RunRecord
from colorbench.results.rundir import load_records
from colorbench.engine.spec import RunSpec
from colorbench.engine.grid import run
from colorbench.engine.data import training_batches, unpaired_domains


def tiny(**options):
    opts = {"n_test": 8, "n_train": 8, "seed": 0, "size": 16, **options}
    return tuple(sorted(opts.items()))


def spec(**kw) -> RunSpec:
    base = dict(methods=("gray",), dataset="shapes", dataset_options=tiny(), epochs=1, progress=False, n_samples=2,
                eval_batch_size=8)
    base.update(kw)
    return RunSpec(**base)


def quiet(_text: str) -> None:
    pass


# --- item 1: unpaired batches on an odd training split --------------------------------------------------------


@pytest.mark.parametrize("n_train,protocol", [(19, "disjoint"), (7, "disjoint"), (9, "shuffled")])
def test_unpaired_batches_pair_as_many_colour_as_grey_images(n_train, protocol):
    train = DATASETS.get("shapes")(**dict(tiny(n_train=n_train))).load().train
    s = spec(unpaired_protocol=protocol)
    a, b = unpaired_domains(n_train, protocol, s.seed)
    for epoch in range(2):
        batches = list(training_batches(train, False, 4, torch.Generator().manual_seed(epoch), torch.device("cpu"), s))
        for batch in batches:  # before the fix the last disjoint batch paired 1 grey with 2 colour images
            assert batch.gray.shape[0] == batch.rgb.shape[0] == len(batch.ids) == len(batch.rgb_ids)
        assert sum(len(x.ids) for x in batches) == min(len(a), len(b))
        assert sum(len(x) for x in batches) == runner_data.n_training_batches(n_train, False, 4, protocol) * 4 - (
            -min(len(a), len(b)) % 4)


def test_an_unpaired_method_trains_on_an_odd_split(tmp_path):
    """End to end, the reported crash: cyclegan (quick batch 32) on 7 training images: halves of 3 and 4."""
    assert METHODS.get("cyclegan").make_config("quick").batch_size >= 4
    out = run(spec(methods=("cyclegan",), dataset_options=tiny(n_train=7, n_test=4)), out=tmp_path / "run", log=quiet)
    rec = load_records(out)[0]
    assert rec.status == "ok", rec.error


# --- item 4: the default method list ---------------------------------------------------------------------------


def _without_masks(s, name=None):
    data = DATASETS.get(name or s.dataset)(**dict(s.dataset_options)).load()
    return dataclasses.replace(data, train=dataclasses.replace(data.train, masks=None, mask_class_names=None),
                               test=dataclasses.replace(data.test, masks=None, mask_class_names=None))


def test_default_run_skips_methods_the_dataset_cannot_serve(tmp_path, monkeypatch):
    monkeypatch.setattr(METHODS, "names", lambda pattern=None: ["gray", "unet-seg"])
    monkeypatch.setattr(grid, "load_dataset", _without_masks)
    out = run(spec(methods=()), out=tmp_path / "run", log=quiet)
    assert [r.method for r in load_records(out)] == ["gray"]  # no failed row for unet-seg
    info = json.loads((out / "run.json").read_text())
    assert "masks" in info["skipped"]["shapes"]["unet-seg"] and info["methods"] == ["gray"]
    board = (out / "leaderboard.md").read_text()
    assert "## Skipped methods" in board and "**unet-seg** on shapes: needs per-pixel class masks" in board


def test_default_run_skips_methods_whose_weights_files_are_missing(tmp_path, monkeypatch):
    """Pretrained files that are not on disk: skipped from the default list with the file to put where (so the
    README's first command exits 0 on a fresh machine); named explicitly, the method is a failed row instead."""
    from colorbench.core import weights

    empty_hub = str(tmp_path / "empty_torch_hub")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: empty_hub)  # where the weights registry looks
    monkeypatch.setattr(weights, "_STAND_INS", {})  # no test stand-in files (tests/conftest.py) in this test
    monkeypatch.setattr(METHODS, "names", lambda pattern=None: ["gray", "zhang-siggraph17", "gorriz-featrec"])
    out = run(spec(methods=()), out=tmp_path / "run", log=quiet)
    assert [r.method for r in load_records(out)] == ["gray"]
    skipped = json.loads((out / "run.json").read_text())["skipped"]["shapes"]
    assert "siggraph17-df00044c.pth" in skipped["zhang-siggraph17"]
    assert "vgg16" in skipped["gorriz-featrec"] and "gorriz-featrec" in skipped["gorriz-featrec"]
    out2 = run(spec(methods=("gray", "zhang-siggraph17")), out=tmp_path / "explicit", log=quiet)
    records = {r.method: r for r in load_records(out2)}
    assert records["zhang-siggraph17"].status == "failed" and "siggraph17-df00044c.pth" in records["zhang-siggraph17"].error


def test_an_explicitly_requested_method_that_cannot_run_is_a_failed_row_and_exit_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(grid, "load_dataset", _without_masks)
    out = tmp_path / "run"
    rc = cli.main(["run", "--methods", "gray,unet-seg", "--dataset", "shapes", "--image-size", "16",
                   "--dataset-option", "n_train=8", "--dataset-option", "n_test=8", "--epochs", "1",
                   "--no-progress", "--out", str(out)])
    assert rc == cli.EXIT_FAILED == 1
    records = {r.method: r for r in load_records(out)}
    assert records["unet-seg"].status == "failed" and "masks" in records["unet-seg"].error
    assert records["gray"].status == "ok"
    assert (out / "leaderboard.md").is_file() and (out / "results.csv").is_file()  # written before exiting 1
    assert "1 method(s) failed: unet-seg" in capsys.readouterr().err


# --- item 6: exit status ---------------------------------------------------------------------------------------


def test_run_exits_0_only_when_every_requested_method_succeeded(tmp_path, monkeypatch):
    args = ["run", "--methods", "gray", "--dataset", "shapes", "--image-size", "16", "--dataset-option", "n_train=4",
            "--dataset-option", "n_test=4", "--no-progress"]
    assert cli.main([*args, "--out", str(tmp_path / "ok")]) == 0

    def boom(self, gray):
        raise RuntimeError("boom")

    monkeypatch.setattr(METHODS.get("gray"), "colorize", boom)
    assert cli.main([*args, "--out", str(tmp_path / "all_failed")]) == 1
    assert load_records(tmp_path / "all_failed")[0].status == "failed"
    assert "exit status" in cli.build_parser().epilog


# --- low: argument errors before any work, leaving nothing behind ----------------------------------------------


@pytest.mark.parametrize("extra,message", [
    (["--preset", "papr"], "unknown preset 'papr' for every method; presets: "),
    (["--preset", "papr"], "Did you mean: paper?"),
    (["--eval-batch-size", "0"], "eval_batch_size must be an integer >= 1, got 0"),
    (["--dataset-option", "size=abc"], "option 'size' must be an int, got str 'abc'"),
    (["--image-size", "0"], "option 'size' must be >= 8"),
])
def test_argument_errors_stop_before_any_work_and_leave_no_folder(tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    rc = cli.main(["run", "--methods", "gray,pix2pix", "--dataset", "shapes", "--no-progress", "--out", str(out),
                   *extra])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err
    assert not out.exists()  # no empty records/ and arrays/ folders


def test_alias_and_repeated_names_give_one_row():
    assert spec(methods=("gray", "grey", "gray", "unet", "unet-l1")).method_names() == ["gray", "unet-l1"]


# --- low: a metric that cannot be computed is that metric missing, not the row ---------------------------------


def test_images_too_small_for_ssim_lose_only_ssim(tmp_path):
    out = run(spec(dataset_options=tiny(size=8)), out=tmp_path / "run", log=quiet)
    rec = load_records(out)[0]
    assert rec.status == "ok", rec.error
    assert rec.metrics["ssim"].value is None and "at least 11x11 pixels, got 8x8" in rec.metrics["ssim"].missing_reason
    if "luma_ssim" in rec.metrics:  # the same window
        assert rec.metrics["luma_ssim"].value is None and "11x11" in rec.metrics["luma_ssim"].missing_reason
    assert rec.metrics["psnr"].value is not None and rec.metrics["kl_a"].value is not None
    assert "11x11" in (out / "leaderboard.md").read_text()


def test_range_errors_print_enough_digits():
    class Over:
        card = METHODS.get("gray").card

        def colorize(self, gray):
            return torch.full((gray.shape[0], 3, *gray.shape[2:]), 1 + 1e-6)

    with pytest.raises(ValueError, match=r"\[1\.0000009\d*, 1\.0000009\d*\], not \[0, 1\]"):
        checked_colorize(Over(), torch.zeros(1, 1, 4, 4))


# --- low: corrupt run files ------------------------------------------------------------------------------------


def test_corrupt_run_json_and_records_name_the_file(tmp_path, capsys):
    run_dir = run(spec(), out=tmp_path / "run", log=quiet)
    rec_path = next(run_dir.glob("cells/*/record.json"))
    good = rec_path.read_text()

    rec_path.write_text(good[: len(good) // 2])  # half-written
    with pytest.raises(ValueError, match=rf"{rec_path} is not valid JSON \(.*line \d+ column \d+"):
        load_records(run_dir)
    rec_path.write_text("[1, 2]")
    with pytest.raises(ValueError, match=rf"{rec_path} holds a JSON list, not an object"):
        RunRecord.load(rec_path)
    assert cli.main(["report", str(run_dir)]) == 2
    assert f"{rec_path} holds a JSON list" in capsys.readouterr().err
    rec_path.write_text(json.dumps({**json.loads(good), "metrics": [1]}))
    with pytest.raises(ValueError, match=rf"{rec_path}: not a valid colorbench run record"):
        RunRecord.load(rec_path)
    rec_path.write_text(good)

    (run_dir / "run.json").write_text('{"methods": ["gray"], "spec": {"x": "unterminated')
    assert cli.main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert f"{run_dir / 'run.json'} is not valid JSON" in err and "Traceback" not in err
