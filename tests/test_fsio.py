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


# --- a file written in pieces, a folder written as a whole (issue 21: the writers that bypassed fsio) ----------------
def test_atomic_stream_moves_the_file_into_place_only_when_the_block_succeeds(tmp_path):
    dest = tmp_path / "weights" / "net.pth"
    with fsio.atomic_stream(dest, suffix=".part") as out:
        out.write(b"abc")
        out.write(b"def")
        assert not dest.exists() and (dest.parent / f".net.pth.{os.getpid()}.part").is_file()  # not yet in place
    assert dest.read_bytes() == b"abcdef" and sorted(p.name for p in dest.parent.iterdir()) == ["net.pth"]
    # the caller's own check fails (e.g. a wrong hash): its error passes unchanged, the old file stays, no part left
    with pytest.raises(ValueError, match="wrong hash"):
        with fsio.atomic_stream(dest, suffix=".part") as out:
            out.write(b"other")
            raise ValueError("wrong hash")
    assert dest.read_bytes() == b"abcdef" and sorted(p.name for p in dest.parent.iterdir()) == ["net.pth"]


def test_atomic_stream_on_a_full_disk_names_the_file(tmp_path, monkeypatch):
    dest = tmp_path / "net.pth"

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)  # the last step before the move: the data did not fit
    with pytest.raises(fsio.DiskFullError, match=r"cannot write .*net\.pth: no space left on the device \(.* free\)"):
        with fsio.atomic_stream(dest) as out:
            out.write(b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_dir_replaces_a_folder_as_a_whole(tmp_path):
    dest = tmp_path / "domains" / "pix2pix"
    fsio.atomic_write_dir(dest, lambda d: (d / "a.txt").write_text("one"))
    fsio.atomic_write_dir(dest, lambda d: (d / "b.txt").write_text("two"))  # replaces the older folder
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]

    def half_then_full(d):
        (d / "c.txt").write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(fsio.DiskFullError, match=r"cannot write .*pix2pix: no space left"):
        fsio.atomic_write_dir(dest, half_then_full)
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]  # the old folder is untouched
    assert sorted(p.name for p in dest.parent.iterdir()) == ["pix2pix"]  # no temporary folder left


def test_publish_dir_keeps_a_folder_another_process_finished_first(tmp_path):
    dest = tmp_path / "entry"
    dest.mkdir()
    (dest / "meta.json").write_text("first")
    mine = tmp_path / ".entry.tmp"
    mine.mkdir()
    (mine / "meta.json").write_text("second")
    assert fsio.publish_dir(mine, dest, replace=False) is False
    assert (dest / "meta.json").read_text() == "first" and not mine.exists()
    with pytest.raises(FileNotFoundError):  # a failed move that is not "already there" is never hidden
        fsio.publish_dir(tmp_path / "missing", tmp_path / "elsewhere", replace=False)


def test_a_unique_temporary_name_is_not_the_process_id(tmp_path):
    a, b = (fsio.tmp_path_for(tmp_path / "x.json", unique=True) for _ in range(2))
    assert a != b and str(os.getpid()) not in a.name and a.name.startswith(".x.json.") and a.suffix == ".tmp"
