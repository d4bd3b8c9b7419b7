"""The library's reference designs in a store: what a run starts from. Only a run asks for them (a reader that opens
a store to look at it adds nothing)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from model_discovery.evolution.store.rows import DesignRow, design_fields


def seed_references(store) -> None:
    """Adds every library design the store lacks, as a reference (two processes seeding at once add each once)."""
    from model_discovery.design.library import design_names, library_tree

    rows = []
    with store.session() as s:
        present = set(s.scalars(select(DesignRow.name).where(DesignRow.status == "reference")))
    for name in design_names():
        if name not in present:
            rows.append(DesignRow(**design_fields(library_tree(name)), parents=[], mode="reference",
                                  status="reference"))
    if rows:
        try:
            with store.session() as s:
                s.add_all(rows)
        except IntegrityError:  # another process seeded the same store at the same moment
            pass
