"""A lean view of a run's tree for the loop's decisions: names, statuses, lineage and each design's structural
features, without sources or proposals, read incrementally; and the run's unit catalogue, grown from every design
that passed its checks. Designs and sessions are written once, in id order, and never changed or deleted, so each
refresh reads only the rows added since the last one, and a decision costs about the same at 1,000 designs as at
50,000.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.library import unit_catalogue
from model_discovery.design.tree import UnitTree, features
from model_discovery.evolution.store import Store

PARENT_STATUSES = ("reference", "checked")  # designs that may be parents, and whose units join the catalogue


@dataclass(frozen=True)
class DesignInfo:
    id: int
    name: str
    status: str  # reference | checked | check_failed | ...
    mode: str
    parents: tuple[str, ...]
    features: frozenset[str]

    @property
    def reference(self) -> bool:
        return self.status == "reference"


class TreeIndex:
    """The designs of ``store`` in creation order, by id and by name; the references' and the checked designs'
    ids; how many children each design has; how many design sessions ran; the unit catalogue."""

    def __init__(self, store: Store):
        self.store = store
        self.designs: list[DesignInfo] = []
        self.by_id: dict[int, DesignInfo] = {}
        self.by_name: dict[str, DesignInfo] = {}
        self.references: set[int] = set()
        self.checked: list[int] = []
        self.children: Counter[str] = Counter()
        self.catalogue = UnitCatalogue(unit_catalogue())
        self.n_sessions = 0
        self._last_session = 0

    def refresh(self) -> TreeIndex:
        last = self.designs[-1].id if self.designs else 0
        for id_, name, status, mode, parents, data in self.store.design_infos(after_id=last):
            tree = UnitTree.model_validate(data)
            info = DesignInfo(id_, name, status, mode, tuple(parents or ()), frozenset(features(tree)))
            self.designs.append(info)
            self.by_id[id_] = self.by_name[name] = info
            self.children.update(info.parents)
            if info.reference:
                self.references.add(id_)
            elif status == "checked":
                self.checked.append(id_)
            if status in PARENT_STATUSES:
                self.catalogue.harvest(tree, name)
        new, self._last_session = self.store.sessions_after(self._last_session)
        self.n_sessions += new
        return self

    def parents(self) -> list[DesignInfo]:
        """Designs that may be parents: the references and every design that passed its checks."""
        return [d for d in self.designs if d.status in PARENT_STATUSES]
