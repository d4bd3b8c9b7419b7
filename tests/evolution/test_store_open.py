"""Opening a store on SQLite and PostgreSQL: from many processes at once, a store made before migrations, a store
made by a newer version."""

import multiprocessing
import traceback

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, select, text

from model_discovery.design.library import design_names
from model_discovery.evolution.store import MIGRATIONS, Base, DesignRow, Store, migrate
from model_discovery.evolution.store import store_url as url_of

N_PROCESSES = 16
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _revision(store: Store) -> str:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _open(url: str, barrier, errors) -> None:
    try:
        barrier.wait(timeout=60)
        Store(url)
    except BaseException:
        errors.put(traceback.format_exc())
        raise


def test_many_processes_open_a_new_store_at_once(store_url):
    # A fork server imports what seeding needs (torch) once; 16 spawned children would each import it on 2 cores.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "model_discovery.agents.offline", "model_discovery.design.library"])
    barrier, errors = ctx.Barrier(N_PROCESSES), ctx.Queue()
    procs = [ctx.Process(target=_open, args=(store_url, barrier, errors)) for _ in range(N_PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    exit_codes = [p.exitcode for p in procs]
    tracebacks = [errors.get(timeout=5) for code in exit_codes if code]  # None: still running, no traceback
    assert exit_codes == [0] * N_PROCESSES, tracebacks[:1]
    store = Store(store_url, seed_references=False)
    with store.session() as s:
        counts = dict(s.execute(select(DesignRow.name, func.count()).group_by(DesignRow.name)).all())
    assert counts == {name: 1 for name in design_names()}
    assert _revision(store) == HEAD


def test_the_migrations_build_the_models_schema(store_url):
    store = Store(store_url, seed_references=False)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


def test_a_store_from_before_migrations_is_kept_and_versioned(store_url):
    engine = create_engine(url_of(store_url))
    Base.metadata.create_all(engine)  # what the versions before migrations wrote
    with engine.begin() as connection:
        connection.execute(DesignRow.__table__.insert().values(
            name="d0001", source="# d0001", content_hash="h" * 64, parents=[], mode="scratch", status="checked",
            prompt="", created=0.0))
    engine.dispose()
    store = Store(store_url, seed_references=False)
    assert [d.name for d in store.designs()] == ["d0001"]
    assert _revision(store) == HEAD


def test_a_store_from_a_newer_version_is_refused(store_url):
    store = Store(store_url, seed_references=False)
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(RuntimeError, match=rf"schema revision '9999'.*newest is '{HEAD}'.*upgrade model-discovery"):
        migrate(store.engine)


def test_a_store_missing_tables_is_refused(store_url):
    engine = create_engine(url_of(store_url))
    Base.metadata.tables["designs"].create(engine)
    with pytest.raises(RuntimeError, match=r"no schema revision and lacks the tables checks, costs"):
        migrate(engine)
    engine.dispose()
