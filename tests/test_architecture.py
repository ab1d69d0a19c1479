"""The floors of ARCHITECTURE.md as tests: the import-linter layer contract in pyproject.toml, and no import circle
anywhere in the package, counting imports made inside functions (grimp reads every import statement).

The top-level folders are mapped into one ``colorbench`` package by pyproject's ``package-dir``, which grimp (it
walks the files of the installed package) cannot follow through an editable install. The tests therefore lay the
package out as an installed wheel would, in a temporary folder, and read that copy.
"""

from __future__ import annotations

import json
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
