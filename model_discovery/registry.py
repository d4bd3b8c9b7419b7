"""One registration pattern for every plugin kind: units, designs, selectors, executors, backends.

A :class:`Registry` maps names to objects. Registration is a decorator (``@REG.register("name")``) or a call
(``REG.add("name", obj)``) for objects read as data; both go through one path that refuses duplicates. Lookups of
an unknown name fail with a "did you mean …?" hint.

A registry with an entry-point ``group`` also finds plugins that pip-installed packages declare there, e.g. in a
plugin's ``pyproject.toml``::

    [project.entry-points."model_discovery.selectors"]
    greedy = "my_plugin:GreedySelector"

They are loaded the first time the registry is read; an entry point whose module registers the object itself (with
the decorator) is loaded for that side effect only.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, options) -> str:
    """`` Did you mean a, b?`` for the options closest to ``name``, or an empty string."""
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


class Registry(Generic[T]):
    """A named collection of plugins of one kind."""

    def __init__(self, kind: str, group: str | None = None):
        self.kind, self.group = kind, group
        self._items: dict[str, T] = {}
        self._plugins_loaded = group is None

    @property
    def entries(self) -> dict[str, T]:
        """Everything registered, the plugins of the entry-point group included (loaded on the first read)."""
        if not self._plugins_loaded:
            self._plugins_loaded = True
            for point in entry_points(group=self.group):
                if point.name in self._items:
                    raise KeyError(f"{self.kind} {point.name!r} is registered twice (the plugin {point.value} "
                                   "takes a built-in name); rename one of them.")
                try:
                    obj = point.load()
                except Exception as exc:
                    raise ImportError(f"the {self.kind} plugin {point.name!r} ({point.value}, entry point group "
                                      f"{self.group}) failed to load: {type(exc).__name__}: {exc}") from exc
                if point.name not in self._items:  # (a module that registered it itself, with the decorator)
                    self.add(point.name, obj)
        return self._items

    def add(self, name: str, obj: T) -> T:
        """Registers ``obj`` under ``name``; a second registration of the same name is an error."""
        if name in self._items:
            raise KeyError(f"{self.kind} {name!r} is registered twice; rename one of them.")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator form of :meth:`add`."""
        return lambda obj: self.add(name, obj)

    def get(self, name: str) -> T:
        """Returns the object registered as ``name``, or raises ``KeyError`` with close matches."""
        items = self.entries
        try:
            return items[name]
        except KeyError:
            known = ", ".join(sorted(items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}.{did_you_mean(name, items)} Known: {known}.") from None

    def check(self, name: str) -> str:
        """``name`` when it is registered; else a ``ValueError`` with close matches (for settings validators)."""
        try:
            self.get(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return name

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.entries)
