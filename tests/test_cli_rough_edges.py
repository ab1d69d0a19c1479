"""Issue #11, low items of the CLI: --version, a closed pipe, `list methods` columns, `describe`'s citation."""

import subprocess
import sys

import pytest

from colorbench.commands import cli
from colorbench.methods import METHODS


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("colorbench ") and out.split()[1][0].isdigit()


def test_a_closed_pipe_ends_quietly():
    """`colorbench list presets | head`: the reader goes away; no BrokenPipeError traceback. The read end is
    closed before the child has finished importing, so its first write meets a closed pipe."""
    proc = subprocess.Popen([sys.executable, "-m", "colorbench.commands.cli", "list", "presets"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    rc = proc.wait(timeout=120)
    assert "Traceback" not in err and "BrokenPipe" not in err, err
    assert rc == cli.EXIT_PIPE


def test_list_methods_columns_line_up_and_gray_trains_nothing(capsys):
    assert cli.main(["list", "methods"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[0], {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == set(METHODS.names())
    starts = [header.index(col) for col in ("training", "space", "presets", "title")]
    for name, line in rows.items():  # every column starts where its header does: nothing runs over
        for start in starts:
            assert line[start - 2 : start] == "  " and line[start] != " ", (name, line)
    assert rows["gray"].split()[1] == "none" and rows["pix2pix"].split()[1] == "paired"
    assert rows["cyclegan"].split()[1] == "unpaired"


def test_describe_cites_the_paper_not_a_seed_file(capsys):
    assert cli.main(["describe", "gorriz-featrec"]) == 0
    out = capsys.readouterr().out
    assert ".txt" not in out and "source:" not in out
    assert "paper: Tarrés, 'GAN-based Image Colourisation with Feature Reconstruction Loss'" in out
    assert cli.main(["describe", "gray"]) == 0
    assert "nothing to train" in capsys.readouterr().out
