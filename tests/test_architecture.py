"""The floors of ARCHITECTURE.md as tests: the import-linter layer contract in pyproject.toml, and no import circle
anywhere in the package, counting imports made inside functions (grimp reads every import statement).

The top-level folders are mapped into one ``colorbench`` package by pyproject's ``package-dir``, which grimp (it
walks the files of the installed package) cannot follow through an editable install. The tests therefore lay the
package out as an installed wheel would, in a temporary folder, and read that copy.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

grimp = pytest.importorskip("grimp")  # installed with import-linter (the test extra)

ROOT = Path(__file__).resolve().parents[1]


def _lay_out(dest: Path) -> Path:
    """Copy the sources into ``dest/colorbench/...`` as pyproject's package-dir maps them; return ``dest``."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_dir = cfg["tool"]["setuptools"]["package-dir"]
    for package, folder in sorted(package_dir.items(), key=lambda kv: kv[0].count(".")):
        target = dest / Path(*package.split("."))
        shutil.copytree(ROOT / folder, target, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


@pytest.fixture(scope="module")
def laid_out(tmp_path_factory) -> Path:
    return _lay_out(tmp_path_factory.mktemp("layout"))


def _lint(path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(path)}
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml"), "--no-cache"], cwd=path, env=env,
                          capture_output=True, text=True, timeout=300)


_CIRCLES = r"""
import json, sys
import grimp

graph = grimp.build_graph("colorbench", include_external_packages=False, cache_dir=None)
assert graph.modules, "no module found"
index, low, stack, on_stack, circles, counter = {}, {}, [], set(), [], 0
for root in sorted(graph.modules):  # iterative Tarjan: strongly connected components
    if root in index:
        continue
    index[root] = low[root] = counter
    counter += 1
    stack.append(root)
    on_stack.add(root)
    work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
    while work:
        node, children = work[-1]
        child = next(children, None)
        if child is not None:
            if child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.find_modules_directly_imported_by(child)))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
            continue
        work.pop()
        if work:
            low[work[-1][0]] = min(low[work[-1][0]], low[node])
        if low[node] == index[node]:
            comp = []
            while True:
                m = stack.pop()
                on_stack.discard(m)
                comp.append(m)
                if m == node:
                    break
            if len(comp) > 1:
                circles.append(sorted(comp))
print(json.dumps({"modules": len(graph.modules), "circles": circles}))
"""


def import_circles(path: Path) -> list[list[str]]:
    """Strongly connected components (size > 1) of the module import graph of the copy at ``path`` (in a fresh
    interpreter, so that grimp finds the copy and not the editable install)."""
    env = {**os.environ, "PYTHONPATH": str(path)}
    out = subprocess.run([sys.executable, "-c", _CIRCLES], cwd=path, env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    found = json.loads(out.stdout)
    assert found["modules"] > 100  # the whole package was read (reports, methods, ... included)
    return found["circles"]


def test_the_layer_contracts_hold(laid_out):
    result = _lint(laid_out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_an_upward_import_inside_a_function_breaks_the_contract(tmp_path):
    copy = _lay_out(tmp_path)
    fsio = copy / "colorbench" / "core" / "fsio.py"
    fsio.write_text(fsio.read_text() + "\n\ndef _upward():\n    from colorbench.commands import cli  # noqa\n")
    result = _lint(copy)
    assert result.returncode != 0
    assert "colorbench.core.fsio -> colorbench.commands.cli" in result.stdout


def test_no_import_circle_counting_function_level_imports(laid_out):
    assert import_circles(laid_out) == []


def test_the_circle_finder_finds_a_circle(tmp_path):
    copy = _lay_out(tmp_path)
    rundir = copy / "colorbench" / "results" / "records.py"
    rundir.write_text(rundir.read_text() + "\n\ndef _back():\n    from colorbench.results import rundir  # noqa\n")
    assert ["colorbench.results.records", "colorbench.results.rundir"] in import_circles(copy)


# --- one atomic writer -----------------------------------------------------------------------------------------------
#: What moves a file or folder into place, or leaves a temporary file for someone else to move: only
#: ``core/fsio.py`` may do that (``atomic_write_*``, ``atomic_stream``, ``atomic_write_dir``/``publish_dir``).
_MOVES = re.compile(r"os\.replace\(|os\.rename\(|\.rename\(|shutil\.move\(|NamedTemporaryFile\([^)]*delete\s*=\s*False")

#: The moves that stay outside fsio, each with why (file, the statement as written).
MOVES_ALLOWED = {
    # a memmap of the kept rows replaces the full one inside the cache entry's private temporary folder, which
    # is then published as a whole (fsio.publish_dir): not a publication of its own
    ("datasets/cache.py", 'os.replace(part, self.tmp / f"{name}.npy")'),
}


def _source_files() -> list[tuple[str, Path]]:
    """(path relative to the repository, file) of every module of the package (pyproject's package-dir)."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = sorted(set(cfg["tool"]["setuptools"]["package-dir"].values()))
    files = {p for folder in folders for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts}
    return sorted((p.relative_to(ROOT).as_posix(), p) for p in files)


def moves_outside_fsio(files: list[tuple[str, Path]]) -> list[tuple[str, str]]:
    """(file, statement) of every move into place outside ``bench/core/fsio.py`` that is not allowed."""
    found = []
    for rel, path in files:
        if rel == "bench/core/fsio.py":
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            code = line.split("#", 1)[0].strip()
            if _MOVES.search(code) and (rel, code) not in MOVES_ALLOWED:
                found.append((rel, code))
    return found


def test_only_fsio_moves_files_into_place():
    files = _source_files()
    assert any(rel == "bench/core/fsio.py" for rel, _ in files) and len(files) > 100
    assert moves_outside_fsio(files) == [], "write through colorbench.core.fsio (or allow it in MOVES_ALLOWED, saying why)"
    # every allowed statement is still there (a stale allowance would let a new one in under its name)
    present = {(rel, line.split("#", 1)[0].strip()) for rel, path in files for line in path.read_text().splitlines()}
    assert MOVES_ALLOWED <= present


def test_the_move_finder_finds_each_kind(tmp_path):
    (tmp_path / "m.py").write_text("import os, shutil, tempfile\n"
                                   "os.replace(a, b)\n"
                                   "os.rename(a, b)  # a comment\n"
                                   "Path(a).rename(b)\n"
                                   "shutil.move(a, b)\n"
                                   "f = tempfile.NamedTemporaryFile(dir=d, delete=False)\n"
                                   "g = tempfile.NamedTemporaryFile(dir=d)\n"
                                   "# os.replace(a, b) in a comment\n")
    found = moves_outside_fsio([("pkg/m.py", tmp_path / "m.py")])
    assert [code for _, code in found] == ["os.replace(a, b)", "os.rename(a, b)", "Path(a).rename(b)",
                                           "shutil.move(a, b)", "f = tempfile.NamedTemporaryFile(dir=d, delete=False)"]
