"""The CLI starts without torch where it needs none (issue 21): ``--help``, ``status``, ``list`` and ``describe``
import only the verb that runs; ``list`` and ``describe`` read the generated catalog, which must equal the live
registries. Start-up times are measured in benchmarks/test_cli_startup.py, not here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from colorbench.commands import catalog, cli

_PROBE = """
import json, sys
from colorbench.commands import cli
try:
    code = cli.main(sys.argv[1:])
except SystemExit as exc:  # --help exits through argparse
    code = exc.code
heavy = sorted(m for m in ("torch", "torchvision", "pandas", "scipy", "colorbench.methods", "colorbench.engine.grid")
               if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
"""


def _probe(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, timeout=300)
    return json.loads(out.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory with one finished and one pending cell, made through the typed API (no training)."""
    from colorbench.results.records import RunRecord
    from colorbench.results.rundir import CellEntry, RunDir, RunInfo

    rd = RunDir(tmp_path_factory.mktemp("status") / "run", create=True)
    rd.write_info(RunInfo(methods=["gray", "unet-l1"], status="partial"))
    done = CellEntry(key="k1", dataset="photos", method="gray", preset="quick", seed=0, status="ok",
                     dir="photos__gray__quick__s0")
    pending = CellEntry(key="k2", dataset="photos", method="unet-l1", preset="quick", seed=0,
                        dir="photos__unet-l1__quick__s0")
    rd.update_cells([done, pending])
    rd.write_cell(done, RunRecord(method="gray", preset="quick", dataset={"name": "photos"}, grey_convention="bt601",
                                  seed=0, device="cpu", key="k1", dataset_name="photos"))
    return rd.path


@pytest.mark.parametrize("argv", [("--help",), ("--version",)])
def test_help_imports_no_torch(argv):
    found = _probe(*argv)
    assert found["code"] == 0
    assert found["heavy"] == []


def test_status_imports_no_torch(run_dir):
    found = _probe("status", str(run_dir))
    assert found["heavy"] == [], found
    assert found["code"] in (0, 1)  # a partial run's status is still a status


def test_list_and_describe_read_the_catalog_without_torch():
    for argv in (("list", "methods"), ("list", "metrics"), ("list", "datasets"), ("list", "protocols"),
                 ("describe", "unet-l1", "--preset", "quick")):
        found = _probe(*argv)
        assert found["code"] == 0 and found["heavy"] == [], (argv, found)


def test_a_verb_that_trains_imports_the_engine():
    """The probe can see an import: `describe` of a preset the catalog lacks asks the method (torch)."""
    found = _probe("describe", "unet-l1", "--preset", "quick+paper")
    assert "torch" in found["heavy"]


def test_verb_table_covers_every_verb_of_the_full_parser():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sorted(sub.choices) == sorted(cli.VERBS)
    for name in cli.VERBS:  # each verb's arguments load on their own
        own = cli.build_parser([name])
        verb = next(a for a in own._actions if a.dest == "command").choices[name]
        assert verb._actions[1:], name  # more than --help


def test_the_catalog_lists_what_the_registries_hold():
    stored = json.loads(catalog.CATALOG.read_text())
    fresh = catalog.build(describe=False)
    for kind in catalog.KINDS:
        assert stored[kind] == fresh[kind], (
            f"bench/commands/catalog.json is stale for {kind!r}: run `python -m colorbench.commands.catalog --write`")


@pytest.mark.slow
def test_the_catalog_describes_every_preset_as_the_methods_do():
    """Every stored description equals the method's own; a preset missing from the file (its weights were absent
    where the file was written) is answered by the method itself, so only stored entries are compared."""
    stored = json.loads(catalog.CATALOG.read_text())["describe"]
    fresh = catalog.build(describe=True)["describe"]
    pairs = [(m, p) for m in stored for p in stored[m]]
    assert len(pairs) > 40
    for method, preset in pairs:
        assert stored[method][preset] == fresh[method][preset], (
            f"{method} {preset}: bench/commands/catalog.json is stale: run `python -m colorbench.commands.catalog "
            "--write`")
