"""One registration pattern for every plugin kind: units, designs, selectors, executors, backends.

A :class:`Registry` maps names to objects. Registration is a decorator (``@REG.register("name")``) or a call
(``REG.add("name", obj)``) for objects read as data; both go through one path that refuses duplicates. Lookups of
an unknown name fail with a "did you mean …?" hint.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, options) -> str:
    """`` Did you mean a, b?`` for the options closest to ``name``, or an empty string."""
    close = difflib.get_close_matches(name, list(options), n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


class Registry(Generic[T]):
    """A named collection of plugins of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

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
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r}.{did_you_mean(name, self._items)} Known: {known}.") from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
