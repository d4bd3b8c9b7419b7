"""A lean view of a run's tree for the loop's decisions: names, statuses, lineage and genomes, without sources or
proposals, read incrementally. Designs are written once and never changed, so each refresh reads only the rows
added since the last one, and a decision costs the same at 100 designs as at 50,000.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from model_discovery.evolution.store import Store


@dataclass(frozen=True)
class DesignInfo:
    id: int
    name: str
    status: str  # reference | checked | check_failed
    mode: str
    parents: tuple[str, ...]
    genome: dict | None

    @property
    def reference(self) -> bool:
        return self.status == "reference"


class TreeIndex:
    """The designs of ``store`` in creation order, by id and by name, and how many children each has."""

    def __init__(self, store: Store):
        self.store = store
        self.designs: list[DesignInfo] = []
        self.by_id: dict[int, DesignInfo] = {}
        self.by_name: dict[str, DesignInfo] = {}
        self.children: Counter[str] = Counter()

    def refresh(self) -> TreeIndex:
        last = self.designs[-1].id if self.designs else 0
        for id_, name, status, mode, parents, genome in self.store.design_infos(after_id=last):
            info = DesignInfo(id_, name, status, mode, tuple(parents or ()), genome or None)
            self.designs.append(info)
            self.by_id[id_] = self.by_name[name] = info
            self.children.update(info.parents)
        return self
