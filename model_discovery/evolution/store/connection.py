"""Opening a store's database, and its faults: a server store's call whose connection failed (the server
restarting, the network down) runs again, whole, with backoff for up to ``RECONNECT_S``; a SQLite store on a full
disk raises :class:`DiskFull`, naming its folder, with the failed transaction rolled back."""

from __future__ import annotations

import errno
import functools
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from tenacity import Retrying, before_sleep_log, retry_if_exception, stop_after_delay, wait_exponential

from model_discovery.evolution.store.schema import migrate

log = logging.getLogger("model_discovery.evolution.store")


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
    def call(self: Database, *args, **kwargs):
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


class Database:
    """A store's connection: its URL, engine and transactions, brought to the newest schema when opened."""

    RECONNECT_S = 120.0  # how long a call to a server store keeps trying to reconnect (a restart takes seconds)

    def __init__(self, run_dir_or_url: str | Path):
        self.url = store_url(run_dir_or_url)
        self.engine = open_engine(self.url)
        self.sqlite = self.url.startswith("sqlite")
        # where a full disk stops a SQLite store; a server's disk is its administrator's
        self.folder = str(Path(self.engine.url.database or ".").parent) if self.sqlite else self.url
        if self.sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        _reconnects(lambda store: migrate(store.engine))(self)
        self._session = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session() as s, s.begin():
            yield s

    def _retrying(self) -> Retrying:
        """Runs a call again with backoff while a server store cannot be reached (SQLite's errors are final)."""
        return Retrying(retry=retry_if_exception(lambda exc: not self.sqlite and _connection_lost(exc)),
                        stop=stop_after_delay(self.RECONNECT_S), wait=wait_exponential(multiplier=0.1, max=5),
                        before_sleep=before_sleep_log(log, logging.WARNING), reraise=True)


def reconnecting(cls: type) -> type:
    """Every call of ``cls`` that reaches the database reconnects after an outage (its own methods, not
    ``session`` itself)."""
    for attr, method in list(vars(cls).items()):
        if callable(method) and not attr.startswith("__") and attr not in ("session", "_retrying"):
            setattr(cls, attr, _reconnects(method))
    return cls


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
