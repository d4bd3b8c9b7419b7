"""A design as a tree of units, and the source edit that rewires it.

A unit's source instantiates its children by class name; swapping a child for another unit is a rename of that
identifier in the parent's source (:func:`rename_identifier`), so the tree and the code never disagree.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from model_discovery.design.decl import UnitDecl


class UnitSpec(BaseModel):
    """One unit of a design: a ``GAUBase`` subclass named ``name`` and everything its source needs."""

    model_config = ConfigDict(extra="forbid")

    name: str
    source: str = Field(description="imports, helpers and the class definition of the unit")
    children: list[str] = Field(default_factory=list, description="unit names the source instantiates")
    args: dict[str, Any] = Field(default_factory=dict, description="hyperparameters this design sets")
    doc: str = ""
    decl: UnitDecl | None = Field(None, description="slot, children's slots (keyed by the names in `children`), "
                                                    "hyperparameter space")
    origin: str = Field("", description="who wrote the unit: 'library', or the design that introduced it")

    @property
    def slot(self) -> str:
        return self.decl.slot if self.decl else UNKNOWN_SLOT

    def bind(self, mapping: dict[str, str]) -> UnitSpec:
        """A copy whose children named in ``mapping`` are replaced by the units it names (a rename of the
        identifier in the source, the children list and the declared children's slots)."""
        spec = self.model_copy(deep=True)
        for old, new in mapping.items():
            if old not in spec.children or old == new:
                continue
            spec.source = rename_identifier(spec.source, old, new)
            spec.children = [new if c == old else c for c in spec.children]
            if spec.decl and old in spec.decl.children:
                spec.decl.children = {new if k == old else k: v for k, v in spec.decl.children.items()}
        return spec


UNKNOWN_SLOT = "unit"


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

    def preorder(self) -> list[str]:
        """Implemented units reachable from the root, parents before children (the order hyperparameters are
        given out in, see :func:`assign_args`)."""
        order: list[str] = []

        def visit(name: str) -> None:
            if name in order or name not in self.units:
                return
            order.append(name)
            for child in self.units[name].children:
                visit(child)

        self.walk()  # refuses cycles
        visit(self.root)
        return order

    def child_slot(self, parent: str, child: str) -> str:
        """The slot ``child`` fills in ``parent``: declared by the parent, else the child's own."""
        decl = self.units[parent].decl
        if decl and child in decl.children:
            return decl.children[child]
        return self.units[child].slot if child in self.units else UNKNOWN_SLOT

    def parents_of(self, unit: str) -> list[str]:
        return [name for name in self.walk() if name in self.units and unit in self.units[name].children]

    def subtree(self, unit: str) -> UnitTree:
        """The units below (and including) ``unit``, as a tree of its own."""
        return UnitTree(name=unit, root=unit, units=self.units).pruned()

    def pruned(self) -> UnitTree:
        """A copy without the units the root does not reach."""
        reachable = set(self.walk())
        return UnitTree(name=self.name, root=self.root,
                        units={k: v.model_copy(deep=True) for k, v in self.units.items() if k in reachable})

    def graft(self, old: str, fragment: UnitTree, parent: str | None = None) -> UnitTree:
        """A copy in which ``fragment`` (a tree of units) takes the place of the unit ``old``: under ``parent``
        only, or wherever ``old`` is used (the root included) when ``parent`` is None. A unit of the fragment
        that the tree already holds with different code or arguments is refused: the composed file has one
        class per name."""
        units = dict(self.units)  # copied once, by pruned() below
        replaced = self.subtree_names(old)
        for name, spec in fragment.units.items():
            kept = units.get(name)
            if kept is not None and name not in replaced and (kept.source != spec.source or kept.args != spec.args):
                raise ValueError(f"unit {name!r} would be used twice with different code or arguments; "
                                 "rename one of them.")
        parents = [parent] if parent is not None else self.parents_of(old)
        if parent is not None and old not in units[parent].children:
            raise KeyError(f"unit {parent!r} has no child {old!r}; its children are {units[parent].children}.")
        for p in parents:
            units[p] = units[p].bind({old: fragment.root})
        units.update(fragment.units)
        root = fragment.root if parent is None and old == self.root else self.root
        tree = UnitTree(name=self.name, root=root, units=units).pruned()
        tree.config()  # hyperparameters shared by name must agree
        return tree

    def subtree_names(self, unit: str) -> set[str]:
        return set(self.subtree(unit).units) if unit in self.units else set()

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
        if old not in self.units[parent].children:
            raise KeyError(f"unit {parent!r} has no child {old!r}; its children are {self.units[parent].children}.")
        if new is None:
            units = {k: v for k, v in self.units.items() if k != old}
            return UnitTree(name=self.name, root=self.root, units=units).pruned()
        return self.graft(old, UnitTree(name=new.name, root=new.name, units={new.name: new}), parent)


def init_params(source: str, class_name: str) -> set[str]:
    """Names of the keyword parameters of ``class_name.__init__`` in ``source`` (read from the AST)."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                    args = item.args
                    return {a.arg for a in args.args + args.kwonlyargs}
    return set()


def assign_args(units: list[UnitSpec], args: dict[str, Any], design: str = "design") -> None:
    """The one rule for who owns a design hyperparameter: the first unit, parents before children, that
    declares it in its space or takes it in its ``__init__``. Sets it in that unit's ``args``."""
    for key, value in args.items():
        owner = next((u for u in units if key in (u.decl.space if u.decl else {})
                      or key in init_params(u.source, u.name)), None)
        if owner is None:
            raise ValueError(f"design {design!r}: no unit declares hyperparameter {key!r}; "
                             f"units are {sorted(u.name for u in units)}.")
        owner.args[key] = value


def slot_paths(tree: UnitTree) -> list[tuple[str, str]]:
    """(slot path from the root, unit) of every implemented unit, parents before children."""
    out: list[tuple[str, str]] = []

    def visit(name: str, path: str) -> None:
        out.append((path, name))
        for child in tree.units[name].children:
            if child in tree.units:
                visit(child, f"{path}/{tree.child_slot(name, child)}".lstrip("/"))

    tree.walk()  # refuses cycles
    visit(tree.root, "")
    return out


def features(tree: UnitTree) -> set[str]:
    """What the structural distance compares: each unit at its position, each hyperparameter setting, and each
    field of a synthesized unit's gene at its position (so two inventions differ by the fields they differ in)."""
    out = set()
    for path, name in slot_paths(tree):
        out.add(f"{path}={name}")
        out.update(f"{name}.{k}={v}" for k, v in tree.units[name].args.items())
        gene = tree.units[name].decl.gene if tree.units[name].decl else None
        out.update(f"{path}.{k}={v}" for k, v in (gene or {}).items())
    return out


def distance(a: set[str], b: set[str]) -> float:
    """Jaccard distance."""
    return 1.0 - len(a & b) / max(1, len(a | b))


def describe(tree: UnitTree) -> str:
    """``Root(arg=v, Child(...), ...)``: a design in one line."""
    def text(name: str) -> str:
        if name not in tree.units:
            return f"{name}?"
        spec = tree.units[name]
        args = ", ".join(f"{k}={v}" for k, v in sorted(spec.args.items()))
        parts = ", ".join(p for p in (args, ", ".join(text(c) for c in spec.children)) if p)
        return f"{name}({parts})" if parts else name

    return text(tree.root)


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
