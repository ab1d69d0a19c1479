"""Third-party methods: --plugin files and modules, installed entry points, bad plugins, colorbench.engine.testing."""

from __future__ import annotations

import json
import sys
import textwrap

import pytest

from colorbench.commands import cli
from colorbench.engine import plugins
from colorbench.methods import METHODS
from colorbench.results.records import RunRecord
from colorbench.engine.testing import CONTRACT_CHECKS, check_method, smooth_images

SEPIA = '''
"""A third-party colorizer: a fixed sepia tint of the grey (nothing to train)."""
from dataclasses import dataclass

import torch

from colorbench.methods import BaseConfig, Method, MethodCard, register_method
from colorbench.methods.lab import check_grey_input


@register_method("{name}")
class Sepia(Method):
    card = MethodCard(name="{name}", title="sepia tint", paper="none (a plugin example)", paired=False,
                      color_space="rgb", trainable=False)
    Config = BaseConfig
    presets = {{"paper": {{"epochs": 0}}, "quick": {{"epochs": 0}}}}

    def train_step(self, batch):
        return {{}}

    @torch.no_grad()
    def colorize(self, gray):
        check_grey_input(gray, "{name}.colorize")
        tint = torch.tensor([1.0, 0.85, 0.6], device=gray.device).view(1, 3, 1, 1)
        return (gray.float() * tint).clamp(0, 1)

    def networks(self):
        return {{}}
'''


@pytest.fixture(autouse=True)
def restore_registry():
    """Plugins register into the global method registry: undo it after each test."""
    items, aliases, loaded = dict(METHODS._items), dict(METHODS._aliases), dict(plugins._LOADED)
    modules = set(sys.modules)
    yield
    METHODS._items.clear(), METHODS._items.update(items)
    METHODS._aliases.clear(), METHODS._aliases.update(aliases)
    plugins._LOADED.clear(), plugins._LOADED.update(loaded)
    for m in set(sys.modules) - modules:
        if m.startswith(("colorbench_plugin_", "cbplug")):
            del sys.modules[m]


def write_plugin(tmp_path, name="sepia-plugin", body=None, file="my_plugin.py"):
    path = tmp_path / file
    path.write_text(textwrap.dedent(body) if body is not None else SEPIA.format(name=name))
    return path


def test_plugin_file_registers_and_passes_the_contract(tmp_path):
    path = write_plugin(tmp_path)
    assert plugins.load_plugin(str(path)) == ["sepia-plugin"]
    assert plugins.load_plugin(str(path)) == ["sepia-plugin"]  # a second load is a no-op
    skipped = check_method("sepia-plugin")  # the one line a plugin author writes
    assert set(skipped) == {"train_steps_give_finite_losses", "non_finite_loss_raises"}  # nothing to train
    assert "card.trainable is False" in skipped["non_finite_loss_raises"]


def test_plugin_module_on_sys_path(tmp_path, monkeypatch):
    pkg = tmp_path / "cbplug_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "colorizer.py").write_text(SEPIA.format(name="sepia-module"))
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugins.load_plugin("cbplug_pkg.colorizer") == ["sepia-module"]
    assert "sepia-module" in METHODS


def test_installed_entry_point_is_loaded(tmp_path, monkeypatch):
    """A tiny installed distribution (a .dist-info folder on sys.path) declaring a colorbench.methods entry point."""
    (tmp_path / "cbplug_ep.py").write_text(SEPIA.format(name="sepia-ep"))
    (tmp_path / "cbplug_cls.py").write_text(SEPIA.format(name="sepia-cls").replace('@register_method("sepia-cls")\n', ""))
    dist = tmp_path / "cbplug_dist-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cbplug-dist\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[colorbench.methods]\nsepia-ep = cbplug_ep\nsepia-cls = cbplug_cls:Sepia\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert {ep.name for ep in plugins.entry_points()} >= {"sepia-ep", "sepia-cls"}
    names = plugins.load_entry_points()
    assert {"sepia-ep", "sepia-cls"} <= set(names)
    assert METHODS.get("sepia-cls").__module__ == "cbplug_cls"  # an undecorated class, registered as the ep name


def test_broken_entry_point_names_the_package(tmp_path, monkeypatch):
    (tmp_path / "cbplug_bad.py").write_text("import not_a_module_anywhere\n")
    dist = tmp_path / "cbplug_bad-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: cbplug-bad\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[colorbench.methods]\nbad = cbplug_bad\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(plugins.PluginError, match=r"entry point 'bad' = 'cbplug_bad'.*package cbplug-bad.*"
                                                   r"ModuleNotFoundError.*not_a_module_anywhere"):
        plugins.load_entry_points()


@pytest.mark.parametrize("body, message", [
    ("import not_a_module_anywhere\n", r"importing it raised ModuleNotFoundError: No module named 'not_a_module_anywhere'"),
    ("def broken(:\n", r"importing it raised SyntaxError"),
    ("raise RuntimeError('boom')\n", r"importing it raised RuntimeError: boom"),
    ("from colorbench.methods import register_method\n@register_method('notamethod')\nclass X:\n    pass\n",
     r"is not a subclass of Method: a method must subclass colorbench.methods.Method"),
    ("x = 1\n", r"registers no method.*defines no Method subclass"),
    ("from colorbench.methods import Method\nclass Forgot(Method):\n    pass\n",
     r"registers no method.*Forgot subclass Method but are not registered"),
])
def test_bad_plugin_file_is_a_clear_error_naming_it(tmp_path, body, message):
    path = write_plugin(tmp_path, body=body, file="bad_plugin.py")
    with pytest.raises(plugins.PluginError, match=message) as info:
        plugins.load_plugin(str(path))
    assert str(path) in str(info.value)


def test_name_taken_and_missing_file_and_module(tmp_path):
    path = write_plugin(tmp_path, name="gray", file="clash.py")
    with pytest.raises(plugins.PluginError, match=r"clash\.py: method 'gray' is already registered; choose another name"):
        plugins.load_plugin(str(path))
    with pytest.raises(plugins.PluginError, match=r"plugin file .*nope\.py does not exist"):
        plugins.load_plugin(str(tmp_path / "nope.py"))
    with pytest.raises(plugins.PluginError, match=r"plugin module 'no_such_pkg\.mod' cannot be imported"):
        plugins.load_plugin("no_such_pkg.mod")


def test_cli_list_describe_run_with_plugin(tmp_path, capsys):
    path = str(write_plugin(tmp_path, name="sepia-cli"))
    assert cli.main(["list", "methods", "--json", "--plugin", path]) == 0
    assert "sepia-cli" in {r["name"] for r in json.loads(capsys.readouterr().out)}
    assert cli.main(["describe", "sepia-cli", "--plugin", path]) == 0
    assert "sepia-cli: sepia tint" in capsys.readouterr().out
    out = tmp_path / "run"
    assert cli.main(["run", "--methods", "sepia-cli,gray", "--plugin", path, "--dataset", "shapes",
                     "--dataset-option", "n_train=8", "--dataset-option", "n_test=8", "--image-size", "32",
                     "--out", str(out), "--no-progress", "--metrics", "mse,colorfulness"]) == 0
    capsys.readouterr()
    rec = RunRecord.load(out / "cells" / "shapes__sepia-cli__quick__s0" / "record.json")
    assert rec.status == "ok" and rec.value("colorfulness") > 0
    assert path in json.loads((out / "run.json").read_text())["spec"]["plugins"]
    bad = str(write_plugin(tmp_path, body="raise RuntimeError('boom')\n", file="boom.py"))
    assert cli.main(["list", "methods", "--plugin", bad]) == 2
    err = capsys.readouterr().err
    assert "boom.py: importing it raised RuntimeError: boom" in err and "Traceback" not in err


def test_contract_check_names_the_failed_check(tmp_path):
    body = SEPIA.format(name="sepia-bad").replace("return (gray.float() * tint).clamp(0, 1)",
                                                  "return gray.float() * tint * 2")  # out of [0, 1]
    plugins.load_plugin(str(write_plugin(tmp_path, body=body, file="bad_range.py")))
    with pytest.raises(AssertionError, match=r"fails the method contract check 'output_shape_range_and_lightness'"
                                             r".*not \[0, 1\]"):
        check_method("sepia-bad", smooth_images(4))
    with pytest.raises(ValueError, match="unknown check"):
        check_method("sepia-bad", skip=("no_such_check",))
    assert len(CONTRACT_CHECKS) == 10


def test_plugin_that_raises_in_colorize_is_a_failed_row(tmp_path, capsys):
    body = SEPIA.format(name="sepia-raises").replace('check_grey_input(gray, "sepia-raises.colorize")',
                                                     'raise RuntimeError("my model is broken")')
    path = str(write_plugin(tmp_path, body=body, file="raises.py"))
    out = tmp_path / "run"
    assert cli.main(["run", "--methods", "sepia-raises,gray", "--plugin", path, "--dataset", "shapes",
                     "--dataset-option", "n_train=8", "--dataset-option", "n_test=8", "--image-size", "32",
                     "--out", str(out), "--no-progress", "--metrics", "mse"]) == 1  # a requested method failed
    capsys.readouterr()
    from colorbench.results.rundir import RunDir

    recs = {r.method: r for r in RunDir(out).records()}
    assert recs["sepia-raises"].status == "failed" and "RuntimeError: my model is broken" in recs["sepia-raises"].error
    assert recs["gray"].status == "ok"
