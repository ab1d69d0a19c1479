"""A small generic registry: names (and aliases) to classes or factories, with helpful errors.

Registration is explicit (a decorator in the module that defines the thing, plus one import line in the
package ``__init__``): nothing is discovered by file name, so a misnamed file cannot silently vanish.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a name is not in a registry; the message suggests close matches."""

    def __str__(self) -> str:  # KeyError quotes its argument; show the plain message instead
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to registered objects, with aliases and an optional base-class check.

    Args:
        kind: what is registered ("method", "dataset", "metric"), used in error messages.
        base: if given, every registered object must be a subclass of it.
    """

    def __init__(self, kind: str, base: type | None = None) -> None:
        self.kind = kind
        self.base = base
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name`` (and ``aliases``)."""

        def deco(obj: T) -> T:
            if self.base is not None and not (isinstance(obj, type) and issubclass(obj, self.base)):
                raise TypeError(f"{self.kind} {name!r}: {obj!r} is not a subclass of {self.base.__name__}")
            for key in (name, *aliases):
                if key in self._items or key in self._aliases:
                    raise ValueError(f"{self.kind} {key!r} is already registered")
            self._items[name] = obj
            for alias in aliases:
                self._aliases[alias] = name
            return obj

        return deco

    def canonical(self, name: str) -> str:
        """The registered name for ``name`` (resolving aliases); raises UnknownNameError with suggestions."""
        if name in self._items:
            return name
        if name in self._aliases:
            return self._aliases[name]
        known = sorted([*self._items, *self._aliases])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"Unknown {self.kind} {name!r}.{hint} Known: {', '.join(sorted(self._items))}.")

    def get(self, name: str) -> T:
        return self._items[self.canonical(name)]

    def names(self, pattern: str | None = None) -> list[str]:
        """Registered names (no aliases), sorted; ``pattern`` is an fnmatch pattern."""
        import fnmatch

        names = sorted(self._items)
        return [n for n in names if pattern is None or fnmatch.fnmatch(n, pattern)]

    def aliases_of(self, name: str) -> list[str]:
        return sorted(a for a, target in self._aliases.items() if target == name)

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in self._aliases

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, Any]]:
        return [(n, self._items[n]) for n in self.names()]
