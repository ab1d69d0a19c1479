"""The README's two commands, CI and the namespace mapping stay consistent."""

import importlib
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.match(r"```bash\n(.*?)\n```", text, re.S)
    assert block, "README.md must open with a ```bash block holding the two commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_two_commands():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert cmds[0].startswith("python3 ") and "colorbench run" in cmds[0]
    assert cmds[1].startswith("python3 ") and "pytest" in cmds[1] and "[test]" in cmds[1]


def test_ci_runs_the_readme_test_command_as_written():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert _readme_commands()[1] in ci_lines


def test_every_folder_is_a_colorbench_subpackage():
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = cfg["package-dir"]
    assert mapping == {
        "colorbench": "bench",
        "colorbench.methods": "methods",
        "colorbench.metrics": "metrics",
        "colorbench.datasets": "datasets",
        "colorbench.reports": "reports",
    }
    # every package folder with an __init__.py is listed (a forgotten sub-package would be missing from wheels)
    listed = set(cfg["packages"])
    for pkg, folder in mapping.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            name = ".".join([pkg, *rel.parts]) if rel.parts else pkg
            assert name in listed, f"{name} ({init.parent}) is not listed in pyproject's packages"
    for name in listed:
        mod = importlib.import_module(name)
        folder = mapping[max((p for p in mapping if name == p or name.startswith(p + ".")), key=len)]
        assert Path(mod.__file__).resolve().is_relative_to(ROOT / folder)
