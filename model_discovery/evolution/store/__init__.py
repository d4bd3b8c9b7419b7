"""The tree store: a run's designs, sessions, checks, verifications, job queue, costs and events, in SQLAlchemy: a
SQLite file per run by default (WAL mode), or any SQLAlchemy URL (PostgreSQL for many machines).

:class:`Store` is the façade over its parts, each in its own module:

- ``rows``: the tables (SQLAlchemy models);
- ``schema``: the Alembic migrations' runner (opening a store brings it to the newest revision);
- ``connection``: the URL, engine and transactions, with reconnection after a server's outage and
  :class:`DiskFull` on a full disk;
- ``records``: designs, sessions, checks, verifications, costs and events;
- ``queue``: the verification jobs (leases, heartbeats, retries);
- ``seeding``: the library's reference designs, added when a run asks for them.
"""

from __future__ import annotations

from pathlib import Path

from model_discovery.evolution.store.connection import DiskFull, is_disk_full, open_engine, reconnecting, store_url
from model_discovery.evolution.store.queue import JobQueue, worker_id
from model_discovery.evolution.store.records import Records
from model_discovery.evolution.store.rows import (
    Base,
    CheckRow,
    CostRow,
    DesignRow,
    EventRow,
    JobRow,
    SessionRow,
    VerificationRow,
    design_fields,
)
from model_discovery.evolution.store.schema import MIGRATIONS, alembic_config, migrate
from model_discovery.evolution.store.seeding import seed_references


@reconnecting
class Store(Records, JobQueue):
    """A run's tree. ``Store(run_dir)`` opens (or creates) ``run_dir/store.db``; ``Store("postgresql://…")``
    opens a shared one. ``seed_references``: add the library's reference designs it lacks (what a run starts
    from; a reader leaves it off)."""

    def __init__(self, run_dir_or_url: str | Path, seed_references: bool = False):
        super().__init__(run_dir_or_url)
        if seed_references:
            self.seed_references()

    def seed_references(self) -> None:
        seed_references(self)


__all__ = [
    "MIGRATIONS",
    "Base",
    "CheckRow",
    "CostRow",
    "DesignRow",
    "DiskFull",
    "EventRow",
    "JobQueue",
    "JobRow",
    "Records",
    "SessionRow",
    "Store",
    "VerificationRow",
    "alembic_config",
    "design_fields",
    "is_disk_full",
    "migrate",
    "open_engine",
    "store_url",
    "worker_id",
]
