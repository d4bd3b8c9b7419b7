"""Opening a store on SQLite and PostgreSQL: from many processes at once, a store made before migrations, a store
of revision 0001 (designs as genomes or raw source) migrated to unit trees, a store made by a newer version."""

import multiprocessing
import traceback

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, select, text

from model_discovery.design import compose, content_hash
from model_discovery.design.library import design_names, library_design_path
from model_discovery.evolution.store import MIGRATIONS, Base, DesignRow, Store, alembic_config, migrate
from model_discovery.evolution.store import store_url as url_of

N_PROCESSES = 16
HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


def _revision(store: Store) -> str:
    with store.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _open(url: str, barrier, errors) -> None:
    try:
        barrier.wait(timeout=60)
        Store(url, seed_references=True)
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
    store = Store(store_url)
    with store.session() as s:
        counts = dict(s.execute(select(DesignRow.name, func.count()).group_by(DesignRow.name)).all())
    assert counts == {name: 1 for name in design_names()}
    assert _revision(store) == HEAD


def test_the_migrations_build_the_models_schema(store_url):
    store = Store(store_url)
    with store.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []


OLD_DESIGNS = sa.table("designs", *(sa.column(c) for c in ("name", "source", "content_hash", "mode", "status",
                                                           "prompt", "created")),
                     sa.column("parents", sa.JSON), sa.column("genome", sa.JSON))


def _store_at_0001(url: str, designs: list[dict], versioned: bool = True):
    """A store as the versions before unit trees wrote it (``versioned=False``: before migrations at all)."""
    engine = create_engine(url_of(url))
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), "0001")
        if not versioned:
            connection.execute(text("DROP TABLE alembic_version"))
        for row in designs:
            connection.execute(OLD_DESIGNS.insert().values(
                **{"parents": [], "prompt": "", "created": 0.0, "genome": None, "status": "checked", **row}))
    engine.dispose()


def test_a_store_from_before_migrations_is_kept_and_versioned(store_url):
    source = library_design_path("llama").read_text()
    _store_at_0001(store_url, [dict(name="d0001", source=source, content_hash="h" * 64, mode="scratch")],
                   versioned=False)
    store = Store(store_url)
    assert [d.name for d in store.designs()] == ["d0001"]
    assert _revision(store) == HEAD


def test_a_run_of_genomes_and_raw_sources_migrates_to_unit_trees(store_url):
    """Revision 0002: the offline designer's genome designs, an LLM's raw source and the references all become
    unit trees that compose to the code they had; the genome column goes."""
    llama = library_design_path("llama").read_text()
    llm = open("tests/fixtures/external_design.py").read()
    _store_at_0001(store_url, [
        dict(name="llama", source=llama, content_hash="a" * 16, mode="reference", status="reference",
             genome={"unit": "PreNormBlock", "args": {}, "children": {}}),
        dict(name="d0001", source=llm, content_hash="b" * 16, mode="mutation", parents=["llama"])])
    store = Store(store_url)
    assert _revision(store) == HEAD
    ref, mine = store.design("llama"), store.design("d0001")
    assert compose(ref.unit_tree()) == llama and ref.unit_tree().units["RMSNorm"].decl.slot == "norm"
    tree = mine.unit_tree()
    assert tree.root == "GatedConvMixer" and set(tree.units) == {"GatedConvMixer", "SparseGate", "ConvMLP"}
    assert tree.config() == {"kernel_size": 4, "hidden_mult": 2, "gate_penalty": 0.01}
    assert content_hash(compose(tree), tree.config())  # composes
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("designs")}
    assert "tree" in columns and "genome" not in columns


def test_a_design_that_does_not_parse_stops_the_migration_with_its_name(store_url):
    _store_at_0001(store_url, [dict(name="d0007", source="class GAB(:\n", content_hash="c" * 16, mode="mutation")])
    with pytest.raises(RuntimeError, match=r"revision 0002.*design 'd0007' does not parse"):
        Store(store_url)


def test_a_store_from_a_newer_version_is_refused(store_url):
    store = Store(store_url)
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


def test_a_reader_opening_a_store_adds_nothing_a_run_asks_for_the_references(tmp_path):
    """Opening a store (the UI, ``modis show``, a worker) seeds nothing; a run asks for the library's designs."""
    reader = Store(tmp_path)
    assert reader.designs() == [] and _revision(reader) == HEAD
    run = Store(tmp_path, seed_references=True)
    assert {d.name for d in run.designs("reference")} == set(design_names())
    assert len(Store(tmp_path).designs()) == len(design_names())  # opened again: nothing added, nothing lost
