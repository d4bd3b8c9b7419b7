"""A design as a tree of units, and the source edit that rewires it.

A unit's source instantiates its children by class name; swapping a child for another unit is a rename of that
identifier in the parent's source (:func:`rename_identifier`), so the tree and the code never disagree.
"""

from __future__ import annotations

import io
import tokenize
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_discovery.design.base import UnitDecl


class UnitSpec(BaseModel):
    """One unit of a design: a ``GAUBase`` subclass named ``name`` and everything its source needs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str = Field(description="imports, helpers and the class definition of the unit")
    children: list[str] = Field(default_factory=list, description="unit names the source instantiates")
    args: dict[str, Any] = Field(default_factory=dict, description="hyperparameters this design sets")
    doc: str = ""
    decl: UnitDecl | None = None


class UnitTree(BaseModel):
    """A design: ``root`` names the unit the block delegates to; children missing from ``units`` are
    unimplemented and render as identity placeholders."""

    model_config = ConfigDict(extra="forbid")

    name: str
    root: str
    units: dict[str, UnitSpec]

    @model_validator(mode="after")
    def _consistent(self) -> UnitTree:
        if self.root not in self.units:
            raise ValueError(f"design {self.name!r}: root unit {self.root!r} is not among its units.")
        for key, spec in self.units.items():
            if key != spec.name:
                raise ValueError(f"design {self.name!r}: unit stored as {key!r} is named {spec.name!r}.")
        return self

    def walk(self) -> list[str]:
        """Unit names reachable from the root, children before parents, in a deterministic order."""
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in path:
                raise ValueError(f"design {self.name!r}: unit cycle {' -> '.join((*path, name))}.")
            if name in seen:
                return
            seen.add(name)
            for child in self.units[name].children if name in self.units else []:
                visit(child, (*path, name))
            order.append(name)

        visit(self.root, ())
        return order

    def placeholders(self) -> list[str]:
        """Children that are declared but not implemented yet."""
        return [name for name in self.walk() if name not in self.units]

    def config(self) -> dict[str, Any]:
        """The merged hyperparameters of all units (the design's ``gab_config``)."""
        merged: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for name in self.walk():
            for key, value in self.units[name].args.items() if name in self.units else []:
                if key in merged and merged[key] != value:
                    raise ValueError(
                        f"design {self.name!r}: units {owner[key]!r} and {name!r} set {key!r} to different "
                        f"values ({merged[key]!r} vs {value!r}); hyperparameters are shared, so rename one.")
                merged[key], owner[key] = value, name
        return dict(sorted(merged.items()))

    def width_options(self) -> dict[str, list[Any]]:
        """Declared width hyperparameters and their allowed values (used to fit a design to a scale)."""
        options: dict[str, list[Any]] = {}
        for name in self.walk():
            decl = self.units[name].decl if name in self.units else None
            for key in decl.width if decl else []:
                options.setdefault(key, list(decl.space[key]))
        return options

    def replace_child(self, parent: str, old: str, new: UnitSpec | None) -> UnitTree:
        """Returns a copy where ``parent`` instantiates ``new`` (or a placeholder named ``old``) instead of ``old``."""
        units = {k: v.model_copy(deep=True) for k, v in self.units.items()}
        spec = units[parent]
        if old not in spec.children:
            raise KeyError(f"unit {parent!r} has no child {old!r}; its children are {spec.children}.")
        if new is not None:
            spec.source = rename_identifier(spec.source, old, new.name)
            spec.children = [new.name if c == old else c for c in spec.children]
            units[new.name] = new
        tree = UnitTree(name=self.name, root=self.root, units=units)
        reachable = set(tree.walk())
        return UnitTree(name=self.name, root=self.root, units={k: v for k, v in units.items() if k in reachable})


def rename_identifier(source: str, old: str, new: str) -> str:
    """Renames every use of the identifier ``old`` in ``source`` (not inside strings or comments)."""
    if old == new:
        return source
    lines = source.splitlines(keepends=True)
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    hits = [tok.start for tok in tokens if tok.type == tokenize.NAME and tok.string == old]
    for row, col in reversed(hits):
        line = lines[row - 1]
        lines[row - 1] = line[:col] + new + line[col + len(old):]
    return "".join(lines)
