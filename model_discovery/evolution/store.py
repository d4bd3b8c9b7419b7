"""The tree store: designs (unit tree, composed source, content hash, lineage, status), design sessions (agent
dialog, reviews, costs), checks, verifications (design × rung × data → metrics), the verification job queue
(claimed with a lease kept alive by a heartbeat; an expired lease puts the job back), costs and events — in
SQLAlchemy: a SQLite file per run by default (WAL mode), or any SQLAlchemy URL (PostgreSQL for many machines).
A new store is seeded with the library's reference designs. The schema is versioned by the Alembic migrations in
``migrations/``; opening a store brings it to the newest revision, safely from any number of processes at once.

Every write that must not be half-done is one transaction: a design with its session and check; a verification
with its job's completion and its cost. So a process killed at any moment leaves a consistent store.

Faults: a server store's call whose connection failed (the server restarting, the network down) runs again, whole,
with backoff for up to :attr:`Store.RECONNECT_S`; a SQLite store on a full disk raises :class:`DiskFull`, naming its
folder, with the failed transaction rolled back.
"""

from __future__ import annotations

import errno
import functools
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential

from model_discovery.design import UnitTree, compose, content_hash

log = logging.getLogger(__name__)


class Base(DeclarativeBase):
    pass


class DesignRow(Base):
    __tablename__ = "designs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    tree: Mapped[dict] = mapped_column(JSON)  # the design: a UnitTree; source and hash are derived from it
    source: Mapped[str] = mapped_column(Text)  # compose(tree)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    parents: Mapped[list] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(20))  # reference | mutation | crossover | scratch | import
    status: Mapped[str] = mapped_column(String(20), index=True)  # reference | checked | check_failed
    prompt: Mapped[str] = mapped_column(Text, default="")
    proposal: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created: Mapped[float] = mapped_column(Float, default=time.time)

    def unit_tree(self) -> UnitTree:
        return UnitTree.model_validate(self.tree)


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    design_id: Mapped[int | None] = mapped_column(ForeignKey("designs.id"), nullable=True)
    operator: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(30))  # registered | rejected | check_failed | budget | error
    reason: Mapped[str] = mapped_column(Text, default="")
    dialog: Mapped[list] = mapped_column(JSON, default=list)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[float] = mapped_column(Float, default=time.time)


class CheckRow(Base):
    __tablename__ = "checks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    design_id: Mapped[int] = mapped_column(ForeignKey("designs.id"), index=True)
    accepted: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[list] = mapped_column(JSON, default=list)
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created: Mapped[float] = mapped_column(Float, default=time.time)


class _DesignAtRung:
    """Columns of anything about one design at one rung on one data source (unique together)."""

    __table_args__ = (UniqueConstraint("design_id", "scale", "data"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    design_id: Mapped[int] = mapped_column(ForeignKey("designs.id"), index=True)
    scale: Mapped[str] = mapped_column(String(50))
    data: Mapped[str] = mapped_column(String(500))  # corpus, minimal pairs and token budget: see data_key


class VerificationRow(_DesignAtRung, Base):
    """One design trained and evaluated at one rung on one data source (corpus, pairs, token budget)."""

    __tablename__ = "verifications"

    status: Mapped[str] = mapped_column(String(20))  # done | stopped (early: metrics hold its curve) | failed
    metrics: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    error: Mapped[str] = mapped_column(Text, default="")
    worker: Mapped[str] = mapped_column(String(200), default="")
    artifacts: Mapped[str] = mapped_column(Text, default="")  # folder or s3:// prefix of the job's outputs
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[float] = mapped_column(Float, default=time.time)


class JobRow(_DesignAtRung, Base):
    """A verification waiting for, or held by, a worker. ``lease_until`` is pushed forward by the holder's
    heartbeat; a job whose lease ran out (its worker died) can be claimed again."""

    __tablename__ = "jobs"

    payload: Mapped[dict] = mapped_column(JSON, default=dict)  # verify()'s keyword arguments beyond design/scale
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first
    status: Mapped[str] = mapped_column(String(20), index=True, default="queued")  # queued|running|done|failed
    worker: Mapped[str] = mapped_column(String(200), default="")
    lease_until: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    created: Mapped[float] = mapped_column(Float, default=time.time)
    started: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished: Mapped[float | None] = mapped_column(Float, nullable=True)


class CostRow(Base):
    __tablename__ = "costs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # llm_usd | cpu_s | gpu_s
    amount: Mapped[float] = mapped_column(Float)
    design_id: Mapped[int | None] = mapped_column(ForeignKey("designs.id"), nullable=True)
    note: Mapped[str] = mapped_column(String(200), default="")
    created: Mapped[float] = mapped_column(Float, default=time.time)


class EventRow(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(30), index=True)
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created: Mapped[float] = mapped_column(Float, default=time.time)


# schema migrations ---------------------------------------------------------------------------------------------

MIGRATIONS = Path(__file__).with_name("migrations")
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


def design_fields(tree: UnitTree) -> dict:
    """The columns every design row derives from its unit tree: name, tree, composed source, content hash."""
    source = compose(tree)
    return {"name": tree.name, "tree": tree.model_dump(mode="json"), "source": source,
            "content_hash": content_hash(source, tree.config())}


def store_url(run_dir_or_url: str | Path) -> str:
    text = str(run_dir_or_url)
    if "://" in text:
        return text
    path = Path(text)
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(path / 'store.db').resolve()}"


def open_engine(url: str) -> Engine:
    """``create_engine(url)``, which imports the URL's database driver: a missing one is an error that says what to
    install (PostgreSQL's is psycopg, from the ``postgres`` extra). A server's pooled connections are tested before
    use, so those a restarted server dropped are replaced."""
    try:
        return create_engine(url, pool_pre_ping=not url.startswith("sqlite"))
    except ImportError as exc:
        parsed = make_url(url)
        name = parsed.render_as_string(hide_password=True)
        if parsed.get_backend_name() != "postgresql":
            raise ModuleNotFoundError(f"the store {name} needs its database driver ({exc.name or exc}): install it",
                                      name=exc.name) from exc
        how = "pip install 'model-discovery[postgres]'"
        if parsed.get_driver_name() != "psycopg":  # psycopg2 (+psycopg2, or a bare postgresql:// before SQLAlchemy 2.1)
            how += " and write the URL as postgresql+psycopg://…"
        raise ModuleNotFoundError(f"the PostgreSQL store {name} needs psycopg: {how}", name=exc.name) from exc


def worker_id() -> str:
    """``host:pid`` — lets a restarted run on the same host take back the jobs of its dead predecessor at once."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local(worker: str) -> bool:
    """Whether ``worker`` (``host:pid``, or ``label@host:pid``) was a process on this host that is gone."""
    host, _, pid = worker.rpartition("@")[2].rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _json(value):
    return json.loads(json.dumps(value, default=str))


class DiskFull(RuntimeError):
    """No space was left for a write of the run: what was half-written is rolled back, and the run resumes once
    there is space again."""

    def __init__(self, folder: str | Path, detail: str = ""):
        self.folder = str(folder)
        super().__init__(f"no space left on the device of {self.folder}{': ' + detail if detail else ''}. Free "
                         "space there and run again: the store is intact and the run resumes where it stopped")


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it came from, is a full disk (ENOSPC, or SQLite's SQLITE_FULL)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, DiskFull) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
            return True
        if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
            return True
        exc = getattr(exc, "orig", None) or exc.__cause__ or exc.__context__
    return False


def _connection_lost(exc: BaseException) -> bool:
    """A server store's error that a new connection may not have: the server gone, restarting, unreachable."""
    return isinstance(exc, DBAPIError) and (exc.connection_invalidated or isinstance(exc, (OperationalError,
                                                                                            InterfaceError)))


_calls = threading.local()  # whether this thread is inside a store call already: only the outermost one retries


def _reconnects(method):
    """Makes a store call survive a server store's outage (it runs again, whole, once the server answers) and a
    full disk under a SQLite store (:class:`DiskFull`)."""

    @functools.wraps(method)
    def call(self: Store, *args, **kwargs):
        if getattr(_calls, "inside", False):
            return method(self, *args, **kwargs)
        _calls.inside = True
        try:
            return self._retrying()(method, self, *args, **kwargs)
        except (DBAPIError, OSError) as exc:
            if is_disk_full(exc):
                raise DiskFull(self.folder, f"writing the store {self.url} failed") from exc
            raise
        finally:
            _calls.inside = False

    return call


class Store:
    """A run's tree. ``Store(run_dir)`` opens (or creates) ``run_dir/store.db``; ``Store("postgresql://…")``
    opens a shared one."""

    MAX_ATTEMPTS = 3  # claims of one job before an infrastructure failure becomes final
    RECONNECT_S = 120.0  # how long a call to a server store keeps trying to reconnect (a restart takes seconds)

    def __init__(self, run_dir_or_url: str | Path, seed_references: bool = True):
        self.url = store_url(run_dir_or_url)
        self.engine = open_engine(self.url)
        self.sqlite = self.url.startswith("sqlite")
        # where a full disk stops a SQLite store; a server's disk is its administrator's
        self.folder = str(Path(self.engine.url.database or ".").parent) if self.sqlite else self.url
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _reconnects(lambda store: migrate(store.engine))(self)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        if seed_references:
            self.seed_references()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session() as s, s.begin():
            yield s

    def _retrying(self) -> Retrying:
        """Runs a call again with backoff while a server store cannot be reached (SQLite's errors are final)."""
        return Retrying(retry=retry_if_exception(lambda exc: not self.sqlite and _connection_lost(exc)),
                        stop=stop_after_delay(self.RECONNECT_S), wait=wait_exponential(multiplier=0.1, max=5),
                        before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)

    def seed_references(self) -> None:
        from model_discovery.design.library import design_names, library_tree

        rows = []
        with self.session() as s:
            present = set(s.scalars(select(DesignRow.name).where(DesignRow.status == "reference")))
        for name in design_names():
            if name not in present:
                rows.append(DesignRow(**design_fields(library_tree(name)), parents=[], mode="reference",
                                      status="reference"))
        if rows:
            try:
                with self.session() as s:
                    s.add_all(rows)
            except IntegrityError:  # another process seeded the same store at the same moment
                pass

    # designs and sessions -------------------------------------------------------------------------------------

    def designs(self, status: str | None = None) -> list[DesignRow]:
        with self.session() as s:
            query = select(DesignRow).order_by(DesignRow.id)
            if status:
                query = query.where(DesignRow.status == status)
            return list(s.scalars(query))

    def design(self, name_or_id: str | int) -> DesignRow:
        with self.session() as s:
            column = DesignRow.id if isinstance(name_or_id, int) else DesignRow.name
            row = s.scalars(select(DesignRow).where(column == name_or_id)).first()
        if row is None:
            raise KeyError(f"no design {name_or_id!r} in {self.url}")
        return row

    def design_infos(self, after_id: int = 0) -> list[tuple]:
        """(id, name, status, mode, parents, tree) of the designs after ``after_id``, without their source or
        proposal: what the loop's decisions need, read incrementally (designs are never changed once written)."""
        with self.session() as s:
            return [tuple(row) for row in s.execute(
                select(DesignRow.id, DesignRow.name, DesignRow.status, DesignRow.mode, DesignRow.parents,
                       DesignRow.tree).where(DesignRow.id > after_id).order_by(DesignRow.id))]

    def design_by_hash(self, digest: str) -> DesignRow | None:
        with self.session() as s:
            return s.scalars(select(DesignRow).where(DesignRow.content_hash == digest)).first()

    def hashes(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(DesignRow.content_hash)))

    def add_design(self, check: dict | None = None, **fields) -> DesignRow:
        """A design (and its check, in the same transaction) outside any design session: an import."""
        with self.session() as s:
            row = DesignRow(**fields)
            s.add(row)
            s.flush()
            if check is not None:
                s.add(CheckRow(design_id=row.id, **_json(check)))
            return row

    def record_session(self, design: dict | None = None, check: dict | None = None, **session) -> SessionRow:
        """A design session's outcome in one transaction: the session, and the design and its check when one was
        registered."""
        with self.session() as s:
            design_id = None
            if design is not None:
                row = DesignRow(**design)
                s.add(row)
                s.flush()
                design_id = row.id
                if check is not None:
                    s.add(CheckRow(design_id=design_id, **_json(check)))
            out = SessionRow(design_id=design_id, **{**session, "dialog": _json(session.get("dialog", []))})
            s.add(out)
            s.flush()
            return out

    def sessions(self) -> list[SessionRow]:
        with self.session() as s:
            return list(s.scalars(select(SessionRow).order_by(SessionRow.id)))

    def sessions_after(self, after_id: int = 0) -> tuple[int, int]:
        """(how many sessions there are after ``after_id``, the last one's id): a count that reads only new rows
        (sessions are never deleted)."""
        with self.session() as s:
            count, last = s.execute(select(func.count(SessionRow.id), func.max(SessionRow.id))
                                    .where(SessionRow.id > after_id)).one()
        return count, last or after_id

    def verification_ids(self, scale: str, data: str) -> list[int]:
        """Ids of the done verifications at ``scale`` on ``data``: tells whether they changed without reading them."""
        with self.session() as s:
            return list(s.scalars(select(VerificationRow.id).where(
                VerificationRow.scale == scale, VerificationRow.data == data, VerificationRow.status == "done")
                .order_by(VerificationRow.id)))

    def n_sessions(self) -> int:
        with self.session() as s:
            return s.scalar(select(func.count(SessionRow.id)))

    def checks(self, design_id: int | None = None) -> list[CheckRow]:
        with self.session() as s:
            query = select(CheckRow).order_by(CheckRow.id)
            if design_id is not None:
                query = query.where(CheckRow.design_id == design_id)
            return list(s.scalars(query))

    def next_name(self, prefix: str = "d") -> str:
        with self.session() as s:
            count = s.scalar(select(func.count(DesignRow.id)).where(DesignRow.status != "reference"))
        return f"{prefix}{count + 1:04d}"

    # verification jobs ----------------------------------------------------------------------------------------

    def enqueue(self, design_id: int, scale: str, data: str, payload: dict, priority: int = 0) -> bool:
        """Queues a verification unless it is already queued, running, done or failed; True when queued now."""
        try:
            with self.session() as s:
                taken = s.scalar(select(func.count(JobRow.id)).where(
                    JobRow.design_id == design_id, JobRow.scale == scale, JobRow.data == data))
                if taken:
                    return False
                s.add(JobRow(design_id=design_id, scale=scale, data=data, payload=_json(payload), priority=priority))
            return True
        except IntegrityError:  # queued by another process in between
            return False

    def claim(self, worker: str, lease_s: float = 60.0) -> JobRow | None:
        """Takes the next job: a queued one, or one whose lease ran out (or whose worker on this host is dead).
        The update is conditional on the job still being claimable, so two workers never hold the same job."""
        while True:
            now = time.time()
            with self.session() as s:
                candidates = list(s.scalars(select(JobRow).where(
                    (JobRow.status == "queued") | ((JobRow.status == "running") & (JobRow.lease_until < now)))
                    .order_by(JobRow.priority.desc(), JobRow.id).limit(8)))
                running = list(s.scalars(select(JobRow).where(JobRow.status == "running",
                                                              JobRow.lease_until >= now)))
            candidates += [job for job in running if job.worker != worker and _dead_local(job.worker)]
            if not candidates:
                return None
            for job in candidates:
                if job.status == "running" and job.attempts >= self.MAX_ATTEMPTS:
                    self.fail(job.id, job.worker, f"abandoned by its worker {self.MAX_ATTEMPTS} times (a crash or a "
                              f"kill each time); last worker {job.worker}")
                    continue
                with self.session() as s:
                    claimed = s.execute(update(JobRow).where(
                        JobRow.id == job.id, JobRow.status == job.status, JobRow.worker == job.worker,
                        JobRow.attempts == job.attempts).values(
                        status="running", worker=worker, lease_until=now + lease_s, attempts=job.attempts + 1,
                        started=now)).rowcount
                if claimed == 1:
                    self.add_event("job_claimed", f"{worker} took job {job.id} ({job.scale})",
                                   job_id=job.id, design_id=job.design_id, attempt=job.attempts + 1)
                    return self.job(job.id)
            # every candidate was taken by someone else in between: look again

    def heartbeat(self, job_id: int, worker: str, lease_s: float = 60.0) -> bool:
        """Extends the lease; False when the job is no longer this worker's."""
        with self.session() as s:
            return s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker,
                                                  JobRow.status == "running")
                             .values(lease_until=time.time() + lease_s)).rowcount == 1

    def complete(self, job_id: int, worker: str, metrics: dict, wall_s: float, artifacts: str = "") -> bool:
        """Records the verification, closes the job and books its compute, in one transaction. Returns False
        (and records nothing) when the (design, rung, data) was verified already."""
        job = self.job(job_id)
        device_kind = "gpu_s" if str(metrics.get("device", "cpu")).startswith("cuda") else "cpu_s"
        status = "stopped" if metrics.get("stopped") else "done"  # stopped early: its curve, no final numbers
        try:
            with self.session() as s:
                s.add(VerificationRow(design_id=job.design_id, scale=job.scale, data=job.data, status=status,
                                      metrics=_json(metrics), worker=worker, artifacts=artifacts, wall_s=wall_s))
                s.execute(update(JobRow).where(JobRow.id == job_id).values(status="done", worker=worker,
                                                                           finished=time.time(), error=""))
                s.add(CostRow(kind=device_kind, amount=wall_s, design_id=job.design_id,
                              note=f"verify {job.scale}"))
                what = "verified" if status == "done" else "stopped early"
                s.add(EventRow(kind="verified", message=f"design {job.design_id} {what} at {job.scale}",
                               data={"job_id": job_id, "design_id": job.design_id, "scale": job.scale}))
            return True
        except IntegrityError:
            self._finish_job(job_id, worker, "done")
            return False

    def fail(self, job_id: int, worker: str, error: str, final: bool = True, wall_s: float = 0.0) -> None:
        """A job that raised. ``final``: the design itself failed (recorded as a failed verification, never
        retried); otherwise the job goes back to the queue until it has used its attempts."""
        job = self.job(job_id)
        if not final and job.attempts < self.MAX_ATTEMPTS:
            with self.session() as s:
                s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker)
                          .values(status="queued", worker="", lease_until=0.0, error=error[-4000:]))
            return
        try:
            with self.session() as s:
                s.add(VerificationRow(design_id=job.design_id, scale=job.scale, data=job.data, status="failed",
                                      error=error[-4000:], worker=worker, wall_s=wall_s))
        except IntegrityError:
            pass
        self._finish_job(job_id, worker, "failed", error=error)

    def release(self, job_id: int, worker: str) -> None:
        """Gives a held job back to the queue (a worker stopping cleanly, e.g. on Ctrl-C)."""
        with self.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id, JobRow.worker == worker, JobRow.status == "running")
                      .values(status="queued", worker="", lease_until=0.0, attempts=JobRow.attempts - 1))

    def release_held(self, worker: str, crashed: bool = False) -> int:
        """Gives back every job ``worker`` still holds (it was stopped, or ``crashed``: then the attempt counts
        towards :attr:`MAX_ATTEMPTS`); returns how many."""
        attempts = JobRow.attempts if crashed else JobRow.attempts - 1
        with self.session() as s:
            return s.execute(update(JobRow).where(JobRow.worker == worker, JobRow.status == "running")
                             .values(status="queued", worker="", lease_until=0.0, attempts=attempts)).rowcount

    def _finish_job(self, job_id: int, worker: str, status: str, error: str = "") -> None:
        with self.session() as s:
            s.execute(update(JobRow).where(JobRow.id == job_id).values(status=status, worker=worker,
                                                                       finished=time.time(), error=error[-4000:]))
            if status == "failed":
                s.add(EventRow(kind="job_failed", message=f"job {job_id} failed: {error[-300:]}",
                               data={"job_id": job_id}))

    def job_for(self, design_id: int, scale: str) -> JobRow | None:
        """The job of ``design_id`` at ``scale`` (the newest, when it was queued on several data sources)."""
        with self.session() as s:
            return s.scalars(select(JobRow).where(JobRow.design_id == design_id, JobRow.scale == scale)
                             .order_by(JobRow.id.desc())).first()

    def job(self, job_id: int) -> JobRow:
        with self.session() as s:
            return s.get(JobRow, job_id)

    def jobs(self, status: str | None = None) -> list[JobRow]:
        with self.session() as s:
            query = select(JobRow).order_by(JobRow.id)
            if status:
                query = query.where(JobRow.status == status)
            return list(s.scalars(query))

    def job_keys(self) -> list[tuple[int, int, str, str, str]]:
        """(id, design id, rung, data, status) of every job, without payloads or errors."""
        with self.session() as s:
            return [tuple(row) for row in s.execute(select(JobRow.id, JobRow.design_id, JobRow.scale, JobRow.data,
                                                           JobRow.status).order_by(JobRow.id))]

    def job_states(self) -> list[tuple[int, str]]:
        """(id, status) of every job: what a waiting executor polls."""
        with self.session() as s:
            return [tuple(row) for row in s.execute(select(JobRow.id, JobRow.status).order_by(JobRow.id))]

    def verifications(self, scale: str | None = None, data: str | None = None,
                      status: str | None = "done") -> list[VerificationRow]:
        with self.session() as s:
            query = select(VerificationRow).order_by(VerificationRow.id)
            for column, value in ((VerificationRow.scale, scale), (VerificationRow.data, data),
                                  (VerificationRow.status, status)):
                if value is not None:
                    query = query.where(column == value)
            return list(s.scalars(query))

    # costs and events -----------------------------------------------------------------------------------------

    def add_cost(self, kind: str, amount: float, design_id: int | None = None, note: str = "") -> None:
        with self.session() as s:
            s.add(CostRow(kind=kind, amount=amount, design_id=design_id, note=note))

    def costs(self) -> dict[str, float]:
        """Totals by kind (``llm_usd``, ``cpu_s``, ``gpu_s``); LLM dollars include the sessions' own costs."""
        with self.session() as s:
            totals = {kind: float(total) for kind, total in s.execute(
                select(CostRow.kind, func.sum(CostRow.amount)).group_by(CostRow.kind))}
            sessions_usd = s.scalar(select(func.sum(SessionRow.cost_usd))) or 0.0
        totals["llm_usd"] = totals.get("llm_usd", 0.0) + float(sessions_usd)
        return {"llm_usd": totals["llm_usd"], "cpu_s": totals.get("cpu_s", 0.0), "gpu_s": totals.get("gpu_s", 0.0)}

    def add_event(self, kind: str, message: str, **data) -> None:
        with self.session() as s:
            s.add(EventRow(kind=kind, message=message, data=_json(data)))

    def events(self, after_id: int = 0, kind: str | None = None) -> list[EventRow]:
        with self.session() as s:
            query = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id)
            if kind:
                query = query.where(EventRow.kind == kind)
            return list(s.scalars(query))


# every call that reaches the database reconnects after an outage (the methods above, not session() itself)
for _attr, _method in list(vars(Store).items()):
    if callable(_method) and not _attr.startswith("__") and _attr not in ("session", "_retrying"):
        setattr(Store, _attr, _reconnects(_method))


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")  # first: switching a new file to WAL waits for the other openers too
    # ... mostly: SQLite answers "locked" at once, without its busy handler, when another opener holds the file in a
    # way that waiting could deadlock; the switch is then tried again for as long as the busy timeout
    for attempt in Retrying(retry=retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError)
                                                     and "locked" in str(e)),
                            stop=stop_after_delay(30), wait=wait_exponential(multiplier=0.01, max=0.5), reraise=True):
        with attempt:
            cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()
