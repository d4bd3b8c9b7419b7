"""The store's schema versions: the Alembic migrations in ``model_discovery/evolution/migrations`` bring a store to
the newest revision, safely from any number of processes at once; a store made by a newer version refuses to open."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection, Engine

MIGRATIONS = Path(__file__).parent.parent / "migrations"
# The tables the versions before migrations made with create_all; their schema is revision 0001.
_UNVERSIONED_TABLES = {"designs", "sessions", "checks", "verifications", "jobs", "costs", "events"}
_UNVERSIONED_REVISION = "0001"
# What each backend runs first in the migration transaction so that one process migrates at a time:
# - SQLite: BEGIN EXCLUSIVE, SQLite's own file lock rather than a lock file beside it: every process that opens the
#   file respects it, whatever program it runs, and waits for it up to busy_timeout. It also makes the migration one
#   transaction (pysqlite itself begins one only before INSERT/UPDATE/DELETE, so the DDL would commit statement by
#   statement), so a process killed half-way leaves the store as it was.
# - PostgreSQL: an advisory lock held until the transaction ends, under one key ("modis" in ASCII) that every
#   process uses; PostgreSQL scopes it to the database.
# Other backends get no lock: open a new store there from one process first.
_MIGRATION_LOCKS = {"sqlite": "BEGIN EXCLUSIVE", "postgresql": "SELECT pg_advisory_xact_lock(470020286835)"}


def alembic_config(connection: Connection) -> Config:
    """Alembic's configuration for running the package's migrations on ``connection`` (no alembic.ini)."""
    config = Config(attributes={"connection": connection})
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def migrate(engine: Engine) -> None:
    """Brings the store's schema to the newest revision this version knows. Any number of processes may call it on
    one store at once: they take turns under a lock, and one finding the store at the newest revision, as the UI
    does on every page, reads one row and takes no lock."""
    head = _scripts().get_current_head()
    with engine.connect() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
    with engine.connect() as connection, _migration_lock(connection):
        _upgrade(connection, head)


@contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    """A transaction on ``connection`` that holds the store's migration lock until it ends."""
    with connection.begin():
        if lock := _MIGRATION_LOCKS.get(connection.dialect.name):
            connection.exec_driver_sql(lock)
        yield


def _upgrade(connection: Connection, head: str) -> None:
    """Under the lock: looks at the store again (another process may have migrated it meanwhile) and upgrades it."""
    revision = MigrationContext.configure(connection).get_current_revision()
    if revision == head:
        return
    config = alembic_config(connection)
    if revision is None and _unversioned(connection):
        command.stamp(config, _UNVERSIONED_REVISION)
    elif revision is not None and revision not in {script.revision for script in _scripts().walk_revisions()}:
        raise RuntimeError(f"The store {_name(connection)} is at schema revision {revision!r}, which this version of "
                           f"model-discovery does not know (its newest is {head!r}): it was made by a newer version; "
                           "upgrade model-discovery to open it.")
    command.upgrade(config, "head")


def _unversioned(connection: Connection) -> bool:
    """True for a store made before migrations (all its tables, no revision); False for an empty one."""
    present = _UNVERSIONED_TABLES & set(inspect(connection).get_table_names())
    if present and present != _UNVERSIONED_TABLES:
        raise RuntimeError(f"The store {_name(connection)} has no schema revision and lacks the tables "
                           f"{', '.join(sorted(_UNVERSIONED_TABLES - present))}, so it is not a whole store: open "
                           "another store, or move this one away to start a new one.")
    return bool(present)


def _name(connection: Connection) -> str:
    return connection.engine.url.render_as_string(hide_password=True)
