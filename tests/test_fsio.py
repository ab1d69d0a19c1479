"""Issue #11 item 8: a full disk gives a clear error naming the path and the space needed, and leaves no
temporary or empty file behind (the run directory's writes all go through colorbench.core.fsio)."""

import errno
import os

import pytest

from colorbench.commands import cli


from colorbench.core import fsio
def _fail_writes(monkeypatch, after: int = 0, match: str | None = None):
    """Make ``os.write`` raise ENOSPC (as a full disk does) after ``after`` successful writes to matching files.
    The file has already been created (``os.open``), as on a real full disk: what is left must be cleaned up."""
    real_write, real_open = os.write, os.open
    names: dict[int, str] = {}
    calls = {"n": 0}

    def fake_open(path, flags, mode=0o777, *a, **k):
        fd = real_open(path, flags, mode, *a, **k)
        names[fd] = os.fspath(path)
        return fd

    def fake_write(fd, data):
        if fd in names and (match is None or match in names[fd]):
            calls["n"] += 1
            if calls["n"] > after:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    return calls


def _leftovers(root):
    files = [p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".lock")]  # flock files are empty
    return [p for p in files if ".tmp" in p.name], [p for p in files if p.stat().st_size == 0]


def test_disk_full_error_names_path_and_size_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "records" / "gray.json"
    fsio.atomic_write_text(target, "old")
    _fail_writes(monkeypatch)
    with pytest.raises(fsio.DiskFullError) as info:
        fsio.atomic_write_bytes(target, b"x" * 5000)
    message = str(info.value)
    assert str(target) in message and "(5000 bytes) needed" in message and "free" in message
    assert info.value.errno == errno.ENOSPC
    assert target.read_text() == "old"  # the previous version is untouched
    assert _leftovers(tmp_path) == ([], [])


def test_other_write_errors_name_the_path(tmp_path, monkeypatch):
    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(fsio.WriteError, match=r"cannot write .*x\.png: Permission denied"):
        fsio.atomic_write_bytes(tmp_path / "x.png", b"png")


def test_temporary_file_is_a_hidden_per_process_sibling(tmp_path):
    assert fsio.tmp_path_for(tmp_path / "samples.npz") == tmp_path / f".samples.npz.{os.getpid()}.tmp"


@pytest.mark.parametrize("match,named", [("record.json", "record.json"), ("samples", "samples"), (".png", ".png"),
                                         ("leaderboard.md", "leaderboard.md"), ("leaderboard.csv", "leaderboard.csv"), ("/.run.json", "run.json"),
                                         ("cells.json", "cells.json"), ("per_image", "per_image.npz"),
                                         ("index.html", "index.html")])
def test_a_run_on_a_full_disk_stops_with_a_clear_error_and_leaves_no_tmp_or_empty_file(tmp_path, monkeypatch,
                                                                                       capsys, match, named):
    out = tmp_path / "run"
    _fail_writes(monkeypatch, match=match)
    rc = cli.main(["run", "--methods", "gray", "--dataset", "shapes", "--image-size", "16",
                   "--dataset-option", "n_train=4", "--dataset-option", "n_test=4", "--no-progress", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == cli.EXIT_WRITE == 3
    assert "no space left on the device" in err and "bytes" in err and "needed" in err and str(out) in err and named in err
    assert "Traceback" not in err
    assert _leftovers(tmp_path) == ([], [])
