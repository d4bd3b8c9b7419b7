"""Which inventions pay: every unit of a run's catalogue with where it came from, the designs that use it and how
they did at each rung (what ``modis show --units`` prints and the UI's Units page shows)."""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

from model_discovery.design.library import unit_path
from model_discovery.design.tree import UnitSpec, UnitTree
from model_discovery.evolution.index import TreeIndex
from model_discovery.workflow.build import read_run, rung_scores

ORIGINS = ("library", "synthesized", "LLM", "imported")


def origin_kind(spec: UnitSpec, index: TreeIndex) -> str:
    """Who wrote a catalogue unit: the library; the offline designer's operator grammar (a unit decoded from a
    gene); a user, in a design file imported into the run; else an LLM coder in a design session (the offline
    designer writes no other code)."""
    if spec.origin == "library":
        return "library"
    if spec.decl is not None and spec.decl.gene is not None:
        return "synthesized"
    introducer = index.by_name.get(spec.origin)
    return "imported" if introducer is not None and introducer.mode == "import" else "LLM"


def unit_uses(run_dir: str | Path, store: str | None = None) -> list[dict]:
    """One row per unit of the run's catalogue, in the order the units joined it:

    - ``unit``, ``slot``; ``origin`` (one of :data:`ORIGINS`); ``introduced_by``: the design that brought the unit
      into the catalogue (None for the library's);
    - ``checked``: how many of the run's designs that passed their checks use the unit (the references aside);
      ``verified``: how many of those were verified at some rung on the run's data;
    - ``best RUNG`` and ``mean RUNG`` for each rung with verifications: those designs' fitness there (None where
      none has one);
    - ``source``: the unit's file for a library unit; None for a unit written in the run (its code is in the
      design that introduced it);
    - ``designs``: the designs that use it, oldest first.

    Without a run config in ``run_dir`` (a store that ``modis design`` or ``modis import`` made) there are no rungs:
    nothing counts as verified."""
    db, policy, snap = read_run(run_dir, store)
    try:
        index = snap.index
        scores = rung_scores(policy, snap) if policy else {}
        rungs = [r.name for r in policy.ladder.rungs if r.name in scores] if policy else []
        users: dict[str, list[str]] = {name: [] for name in index.catalogue}
        for id_, name, status, _, _, data in db.design_infos():
            if status != "checked" or id_ not in index.by_id:  # one registered since the refresh: not harvested
                continue
            tree = UnitTree.model_validate(data)
            for unit in dict.fromkeys(index.catalogue.name_of(tree.units[u]) for u in tree.preorder()):
                if unit in users:  # a unit the catalogue lacks (a reference's own variant) is nobody's invention
                    users[unit].append(name)
        rows = []
        for name, designs in users.items():
            spec = index.catalogue.get(name)
            kind = origin_kind(spec, index)
            path = unit_path(name) if kind == "library" else None
            row = {"unit": name, "slot": spec.slot, "origin": kind,
                   "introduced_by": None if kind == "library" else spec.origin, "checked": len(designs),
                   "verified": sum(any(d in at for at in scores.values()) for d in designs)}
            for rung in rungs:
                fitness = [scores[rung][d]["fitness"] for d in designs if "fitness" in scores[rung].get(d, {})]
                row[f"best {rung}"] = max(fitness) if fitness else None
                row[f"mean {rung}"] = fmean(fitness) if fitness else None
            rows.append({**row, "source": str(path) if path else None, "designs": designs})
        return rows
    finally:
        db.engine.dispose()
