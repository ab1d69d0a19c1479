"""Third-party methods: installed entry points (group ``colorbench.methods``) and ``--plugin`` files or modules.

A plugin is a Python file or module that subclasses :class:`colorbench.methods.Method` and decorates the class
with ``@register_method("name")``; loading it registers the method, after which it runs, lists and is described
like a built-in one. An installed package declares its plugin in its ``pyproject.toml``::

    [project.entry-points."colorbench.methods"]
    my-colorizer = "my_package.colorizer"            # a module that registers its methods on import
    # or: my-colorizer = "my_package.colorizer:MyMethod"   (a Method subclass; registered as "my-colorizer"
    #     unless it is already decorated)

Every failure (the file is missing, importing it raises, it registers nothing, the object is not a ``Method``
subclass, the name is already taken) is a :class:`PluginError` whose message names the file, module or entry
point and says what to fix. Loading the same plugin twice is a no-op.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as md
import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterable

ENTRY_POINT_GROUP = "colorbench.methods"

#: plugin key (resolved file path, module name or "entry point NAME") -> method names it registered
_LOADED: dict[str, list[str]] = {}


class PluginError(ValueError):
    """A plugin that cannot be used; the message names it and the fix."""


def _methods():
    from colorbench.methods import METHODS

    return METHODS


def _is_file_spec(spec: str) -> bool:
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def _import_and_register(key: str, label: str, do_import) -> tuple[list[str], object]:
    """Run ``do_import`` (which imports the plugin); return the method names it registered and the object."""
    methods = _methods()
    before = set(methods.names())
    try:
        obj = do_import()
    except PluginError:
        raise
    except (ValueError, TypeError) as exc:
        # the registry's own checks raise these while the plugin's decorators run
        text = str(exc)
        if "already registered" in text:
            raise PluginError(f"{label}: {text}; choose another name in its @register_method(...) "
                              f"(taken: {', '.join(methods.names())})") from None
        if "is not a subclass of" in text:
            raise PluginError(f"{label}: {text}: a method must subclass colorbench.methods.Method") from None
        raise PluginError(f"{label}: importing it raised {type(exc).__name__}: {exc}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - SyntaxError, ImportError, anything the plugin raises
        raise PluginError(f"{label}: importing it raised {type(exc).__name__}: {exc}") from None
    added = sorted(set(methods.names()) - before)
    _LOADED[key] = added
    return added, obj


def load_plugin(spec: str) -> list[str]:
    """Load one plugin: a path to a ``.py`` file, or an importable module name (``package.module``).

    Returns the names of the methods it registered. Raises :class:`PluginError` naming the plugin.
    """
    spec = str(spec).strip()
    if not spec:
        raise PluginError("--plugin needs a file (path/to/plugin.py) or a module name (package.module)")
    if _is_file_spec(spec):
        path = Path(spec).expanduser().resolve()
        label = f"plugin file {path}"
        if not path.is_file():
            raise PluginError(f"{label} does not exist (--plugin takes a .py file or an importable module name)")
        key = str(path)
        mod_name = f"colorbench_plugin_{path.stem}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"

        def do_import():
            file_spec = importlib.util.spec_from_file_location(mod_name, path)
            if file_spec is None or file_spec.loader is None:
                raise PluginError(f"{label}: not a Python file Python can import")
            module = importlib.util.module_from_spec(file_spec)
            sys.modules[mod_name] = module
            try:
                file_spec.loader.exec_module(module)
            except BaseException:
                sys.modules.pop(mod_name, None)
                raise
            return module
    else:
        label = f"plugin module {spec!r}"
        key = f"module:{spec}"

        def do_import():
            try:
                return importlib.import_module(spec)
            except ModuleNotFoundError as exc:
                if exc.name and spec.startswith(exc.name):
                    raise PluginError(f"{label} cannot be imported: no module named {exc.name!r} (is the package "
                                      f"installed, or did you mean a file path ending in .py?)") from None
                raise

    if key in _LOADED:
        return list(_LOADED[key])
    added, module = _import_and_register(key, label, do_import)
    if not added:
        _LOADED.pop(key, None)
        raise PluginError(f"{label} registers no method: it must define a subclass of colorbench.methods.Method "
                          f"decorated with @register_method('name'){_hint_unregistered(module)}")
    return added


def _hint_unregistered(module: types.ModuleType | None) -> str:
    """Name the Method subclasses a module defines without registering them, or the objects that look meant."""
    if module is None:
        return ""
    from colorbench.methods import Method

    classes = [n for n, v in vars(module).items()
               if isinstance(v, type) and issubclass(v, Method) and v is not Method
               and getattr(v, "__module__", None) == module.__name__]
    if classes:
        return f" ({', '.join(classes)} subclass Method but are not registered)"
    return " (it defines no Method subclass)"


def entry_points() -> list[md.EntryPoint]:
    """The installed entry points of the ``colorbench.methods`` group."""
    return list(md.entry_points(group=ENTRY_POINT_GROUP))


def load_entry_point(ep: md.EntryPoint) -> list[str]:
    """Load one installed entry point; a Method subclass that is not registered yet is registered as ``ep.name``."""
    from colorbench.methods import Method

    dist = getattr(getattr(ep, "dist", None), "name", None)
    label = f"entry point {ep.name!r} = {ep.value!r} ({ENTRY_POINT_GROUP}{', package ' + dist if dist else ''})"
    key = f"entry-point:{ep.name}={ep.value}"
    if key in _LOADED:
        return list(_LOADED[key])
    added, obj = _import_and_register(key, label, ep.load)
    methods = _methods()
    if isinstance(obj, type) and issubclass(obj, Method):
        if obj not in dict(methods.items()).values():
            try:
                methods.register(ep.name)(obj)
            except ValueError as exc:
                _LOADED.pop(key, None)
                raise PluginError(f"{label}: {exc}; rename the entry point or the method") from None
            added = sorted({*added, ep.name})
    elif not isinstance(obj, types.ModuleType):
        _LOADED.pop(key, None)
        raise PluginError(f"{label}: loads {obj!r}, which is neither a Method subclass nor a module that registers "
                          f"methods")
    if not added and not (isinstance(obj, type) and issubclass(obj, Method)):
        _LOADED.pop(key, None)
        raise PluginError(f"{label} registers no method: the module must define a subclass of "
                          f"colorbench.methods.Method decorated with @register_method('name')"
                          f"{_hint_unregistered(obj if isinstance(obj, types.ModuleType) else None)}")
    _LOADED[key] = added
    return added


def load_entry_points() -> list[str]:
    """Load every installed ``colorbench.methods`` entry point; returns the method names they registered."""
    names: list[str] = []
    for ep in entry_points():
        names += load_entry_point(ep)
    return names


def load_plugins(specs: Iterable[str] = (), *, entry_points: bool = True) -> list[str]:
    """Load the installed entry points (``entry_points=True``) and each ``--plugin`` spec, in order."""
    names = load_entry_points() if entry_points else []
    for spec in specs:
        names += load_plugin(spec)
    return names


def loaded() -> dict[str, list[str]]:
    """What has been loaded so far: plugin -> method names (recorded in run information)."""
    return {k: list(v) for k, v in _LOADED.items()}


def add_plugin_argument(parser) -> None:
    """``--plugin FILE.py|package.module`` (repeatable) on a subcommand."""
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py|MODULE",
                        help="load a third-party method from a Python file or an importable module (repeatable); "
                             f"installed packages' '{ENTRY_POINT_GROUP}' entry points are always loaded")
