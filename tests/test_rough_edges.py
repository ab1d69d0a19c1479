"""Issue 24's rough edges a new user hit: bad arguments get exit 2 naming the flag and the fix (nothing created),
an unwritable --out exit 3 naming it, a plugin that calls sys.exit() becomes a failed row, a damaged cell file is
reported by `status` and recomputed by a rerun, a weights fetch killed with -9 leaves no partial file behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from colorbench.commands import cli
from colorbench.core import weights
from colorbench.engine import plugins
from colorbench.methods import METHODS
from colorbench.results.rundir import RunDir, load_records

TINY = ["--dataset", "shapes", "--dataset-option", "n_train=8", "--dataset-option", "n_test=8", "--image-size", "16",
        "--epochs", "1", "--no-progress"]


@pytest.mark.parametrize("extra, says", [
    (["--methods", ""], "--methods is empty"),
    (["--methods", " , "], "--methods is empty"),
    (["--methods", "gray", "--metrics", ""], "--metrics is empty"),
    (["--methods", "gray", "--device", "tpu"], "unknown device 'tpu'"),
    (["--methods", "gray", "--device", "cuda:abc"], "unknown device 'cuda:abc'"),
    (["--methods", "gray", "--seed", "-1"], "--seed/--seeds must be integers"),
    (["--methods", "gray", "--seeds", "0,-3"], "--seed/--seeds must be integers"),
    (["--methods", "gray", "--datasets", "photos"], "--dataset shapes and --datasets photos both given"),
    (["--methods", "gray", "--executor", "local", "--workers", "2"], "--workers applies to --executor process"),
    (["--methods", "gray", "--cpus-per-cell", "2"], "--cpus-per-cell applies to --executor ray"),
])
def test_ignored_or_bad_arguments_are_refused_before_anything_is_made(tmp_path, capsys, extra, says):
    out = tmp_path / "run"
    assert cli.main(["run", *TINY, *extra, "--out", str(out)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and err.startswith("colorbench: error:")
    assert not out.exists()


def test_spec_alone_with_out_and_no_progress_is_accepted(tmp_path):
    first = tmp_path / "first"
    assert cli.main(["run", *TINY, "--methods", "gray", "--out", str(first)]) == 0
    replay = tmp_path / "replay"
    assert cli.main(["run", "--spec", str(first / "run.json"), "--out", str(replay), "--no-progress"]) == 0
    assert [r.method for r in load_records(replay)] == ["gray"]
    ignored = tmp_path / "ignored"
    assert cli.main(["run", "--spec", str(first / "run.json"), "--methods", "unet-l1", "--seeds", "3",
                     "--out", str(ignored)]) == cli.EXIT_USAGE
    assert not ignored.exists()


def test_out_in_a_folder_of_the_users_files_is_refused(tmp_path, capsys):
    (tmp_path / "holiday.jpg").write_bytes(b"not colorbench's")
    assert cli.main(["run", *TINY, "--methods", "gray", "--out", str(tmp_path)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert "holiday.jpg" in err and "choose a new or empty folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holiday.jpg"]


def test_an_unwritable_out_is_exit_3_naming_it(tmp_path, capsys, monkeypatch):
    target = tmp_path / "readonly" / "run"
    real_mkdir = Path.mkdir

    def mkdir(self, *a, **kw):  # as a read-only folder answers (root may write anywhere, so simulate it)
        if str(self).startswith(str(target.parent)):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *a, **kw)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    assert cli.main(["run", *TINY, "--methods", "gray", "--out", str(target)]) == cli.EXIT_WRITE
    err = capsys.readouterr().err
    assert str(target) in err and "Permission denied" in err and "writable --out" in err


EXITING = '''
import sys
from colorbench.methods import BaseConfig, Method, MethodCard, register_method


@register_method("quitter")
class Quitter(Method):
    card = MethodCard(name="quitter", title="calls sys.exit in colorize", paper="none (a test plugin)", paired=True,
                      color_space="rgb", trainable=False)
    Config = BaseConfig
    presets = {"quick": {"epochs": 0}, "paper": {"epochs": 0}}

    def train_step(self, batch):
        return {}

    def colorize(self, gray):
        sys.exit(3)

    def networks(self):
        return {}
'''


@pytest.fixture
def restore_registry():
    items, aliases, loaded = dict(METHODS._items), dict(METHODS._aliases), dict(plugins._LOADED)
    yield
    METHODS._items.clear(), METHODS._items.update(items)
    METHODS._aliases.clear(), METHODS._aliases.update(aliases)
    plugins._LOADED.clear(), plugins._LOADED.update(loaded)


def test_a_method_calling_sys_exit_is_a_failed_row_and_the_others_still_run(tmp_path, restore_registry):
    plugin = tmp_path / "quitter_plugin.py"
    plugin.write_text(textwrap.dedent(EXITING))
    out = tmp_path / "run"
    rc = cli.main(["run", *TINY, "--methods", "quitter,gray", "--plugin", str(plugin), "--out", str(out)])
    assert rc == cli.EXIT_FAILED
    records = {r.method: r for r in load_records(out)}
    assert records["quitter"].status == "failed" and records["quitter"].error.startswith("SystemExit: 3")
    assert records["gray"].status == "ok"
    assert (out / "leaderboard.md").is_file()


def test_report_on_a_hand_edited_run_json_is_exit_2(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", *TINY, "--methods", "gray", "--out", str(out)]) == 0
    info = json.loads((out / "run.json").read_text())
    info["spec"] = 42
    (out / "run.json").write_text(json.dumps(info))
    capsys.readouterr()
    assert cli.main(["report", str(out)]) == cli.EXIT_USAGE
    assert "'spec' must be a JSON object, got int (42)" in capsys.readouterr().err


def test_a_damaged_per_image_file_is_reported_and_recomputed(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", *TINY, "--methods", "gray", "--out", str(out)]
    assert cli.main(args) == 0
    npz = next(out.glob("cells/*/per_image.npz"))
    npz.write_bytes(npz.read_bytes()[:100])  # truncated (a disk error, a copy cut short)
    capsys.readouterr()
    assert cli.main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "1 damaged" in text and "per_image.npz: BadZipFile" in text and "rerun the same command" in text
    assert cli.main(args) == 0  # the rerun recomputes the cell (it crashed with BadZipFile before)
    assert RunDir(out).damaged_files(RunDir(out).cells()[0]) == []
    assert "1 done" in (cli.main(["status", str(out)]) == 0 and capsys.readouterr().out)


def test_status_says_interrupted_when_no_process_runs_a_running_run(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", *TINY, "--methods", "gray", "--out", str(out)]) == 0
    rd = RunDir(out)
    info = rd.info()
    info.status = "running"  # what a kill -9 leaves behind
    rd.write_info(info)
    capsys.readouterr()
    cli.main(["status", str(out)])
    assert "interrupted: no process is running; rerun the same command to resume it" in capsys.readouterr().out


def test_a_killed_fetch_leaves_no_partial_file_behind(tmp_path):
    dest = tmp_path / "model-1234abcd.pth"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = tmp_path / f".{dest.name}.{sleeper.pid}.part"  # a fetch still running elsewhere
        dead = tmp_path / f".{dest.name}.999999999.part"  # a fetch killed with -9 (no such process)
        odd = tmp_path / f".{dest.name}.tmpxyz.part"  # the earlier naming (no pid): nobody owns it
        for p in (live, dead, odd):
            p.write_bytes(b"partial")
        removed = weights.remove_stale_parts(dest)
        assert sorted(removed) == sorted([dead, odd]) and live.exists() and not dead.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert weights.remove_stale_parts(dest) == [live]  # its process is gone now
    assert os.listdir(tmp_path) == []
