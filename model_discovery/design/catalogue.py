"""A run's unit catalogue: the units any designer may use by name.

It starts as the library's units and grows with every unit of every design that passed the checker, whoever wrote
it (the offline designer, an LLM, a user's imported file). Each unit keeps its slot, its declared children's slots,
its hyperparameter space and its lineage (``origin``: ``library`` or the design that introduced it). A unit that
differs from a catalogue unit of the same name only in which children it was composed with is the same unit; one
with other code under a taken name joins as ``Name_<design>``.
"""

from __future__ import annotations

import functools

from model_discovery.design.decl import UnitDecl
from model_discovery.design.hashing import normalise_source
from model_discovery.design.tree import UNKNOWN_SLOT, UnitSpec, UnitTree, rename_identifier
from model_discovery.registry import Registry, did_you_mean


def unit_key(spec: UnitSpec) -> str:
    """The unit's identity: its normalised code with its children's names abstracted away."""
    return _key(spec.name, spec.source, tuple(spec.children))


@functools.lru_cache(maxsize=65536)
def _key(name: str, source: str, children: tuple[str, ...]) -> str:
    # cached: the same units recur across a run's designs, and opening a run harvests every one of them
    for i, child in enumerate(children):
        source = rename_identifier(source, child, f"_Child{i}")
    return f"{name}:{normalise_source(source)}"


class UnitCatalogue:
    """Units by name, in the order they joined."""

    def __init__(self, base: Registry[UnitSpec] | UnitCatalogue | None = None):
        self.units: dict[str, UnitSpec] = {}
        self._keys: dict[str, str] = {}  # unit key -> catalogue name
        for name in base or []:
            self._add(base.get(name))

    def _add(self, spec: UnitSpec) -> None:
        self.units[spec.name] = spec
        self._keys[unit_key(spec)] = spec.name

    def get(self, name: str) -> UnitSpec:
        try:
            return self.units[name]
        except KeyError:
            raise KeyError(f"no unit {name!r} in the catalogue.{did_you_mean(name, self.units)}") from None

    def names(self) -> list[str]:
        return list(self.units)

    def __contains__(self, name: object) -> bool:
        return name in self.units

    def __iter__(self):
        return iter(self.units)

    def __len__(self) -> int:
        return len(self.units)

    def name_of(self, spec: UnitSpec) -> str | None:
        """The catalogue name of the unit ``spec`` (a design's unit, under whatever name and children the design
        gives it), or None when the catalogue lacks it."""
        return self._keys.get(unit_key(spec))

    def by_slot(self, slot: str) -> list[str]:
        return [name for name, spec in self.units.items() if spec.slot == slot]

    def harvest(self, tree: UnitTree, origin: str) -> list[str]:
        """Adds the units of ``tree`` (a design that passed its checks) that the catalogue lacks; returns their
        catalogue names. A unit without a declared slot gets the slot of the position it fills."""
        added = []
        for name in tree.preorder():
            spec = tree.units[name].model_copy(deep=True)
            key = unit_key(spec)
            if key in self._keys:
                continue
            if spec.decl is None or spec.decl.slot == UNKNOWN_SLOT:
                parents = tree.parents_of(name)
                slot = "block" if name == tree.root else tree.child_slot(parents[0], name) if parents else UNKNOWN_SLOT
                spec.decl = (spec.decl or UnitDecl(slot=UNKNOWN_SLOT)).model_copy(update={"slot": slot})
            spec.origin = spec.origin or origin
            if spec.name in self.units:
                new = _free_name(f"{spec.name}_{origin}", self.units)
                spec = spec.model_copy(update={"name": new, "source": rename_identifier(spec.source, spec.name, new)})
            self._add(spec)
            self._keys[key] = spec.name
            added.append(spec.name)
        return added


def _free_name(name: str, taken) -> str:
    out, i = name, 2
    while out in taken:
        out, i = f"{name}_{i}", i + 1
    return out
