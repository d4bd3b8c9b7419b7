"""The tree store: designs (unit genome, composed source, content hash, lineage, status) and design sessions
(agent dialog, reviews, costs), in SQLAlchemy — a SQLite file per run by default (WAL mode), or any SQLAlchemy
URL. A new store is seeded with the library's reference designs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text, create_engine, event, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class Base(DeclarativeBase):
    pass


class DesignRow(Base):
    __tablename__ = "designs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    genome: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # None: has units outside the catalogue
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    parents: Mapped[list] = mapped_column(JSON, default=list)
    mode: Mapped[str] = mapped_column(String(20))  # reference | mutation | crossover | scratch
    status: Mapped[str] = mapped_column(String(20), index=True)  # reference | checked | check_failed
    prompt: Mapped[str] = mapped_column(Text, default="")
    proposal: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    check: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    created: Mapped[float] = mapped_column(Float, default=time.time)


class SessionRow(Base):
    __tablename__ = "sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    design_id: Mapped[int | None] = mapped_column(ForeignKey("designs.id"), nullable=True)
    operator: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(30))  # registered | rejected | check_failed | error
    reason: Mapped[str] = mapped_column(Text, default="")
    dialog: Mapped[list] = mapped_column(JSON, default=list)
    cost_usd: Mapped[float] = mapped_column(Float, default=0.0)
    wall_s: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[float] = mapped_column(Float, default=time.time)


def store_url(run_dir_or_url: str | Path) -> str:
    text = str(run_dir_or_url)
    if "://" in text:
        return text
    path = Path(text)
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(path / 'store.db').resolve()}"


class Store:
    """A run's tree. ``Store(run_dir)`` opens (or creates) ``run_dir/store.db``; ``Store("postgresql://…")``
    opens a shared one."""

    def __init__(self, run_dir_or_url: str | Path, seed_references: bool = True):
        self.url = store_url(run_dir_or_url)
        self.engine = create_engine(self.url)
        if self.url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        Base.metadata.create_all(self.engine)
        self._session = sessionmaker(self.engine, expire_on_commit=False)
        if seed_references:
            self.seed_references()

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._session() as s, s.begin():
            yield s

    def seed_references(self) -> None:
        from model_discovery.agents.offline import genome_from_library
        from model_discovery.design import content_hash
        from model_discovery.design.library import design_names, library_design_path, library_tree

        with self.session() as s:
            present = set(s.scalars(select(DesignRow.name).where(DesignRow.status == "reference")))
            for name in design_names():
                if name in present:
                    continue
                source = library_design_path(name).read_text()
                s.add(DesignRow(name=name, genome=genome_from_library(name), source=source,
                                content_hash=content_hash(source, library_tree(name).config()), parents=[],
                                mode="reference", status="reference"))

    def designs(self, status: str | None = None) -> list[DesignRow]:
        with self.session() as s:
            query = select(DesignRow).order_by(DesignRow.id)
            if status:
                query = query.where(DesignRow.status == status)
            return list(s.scalars(query))

    def hashes(self) -> set[str]:
        with self.session() as s:
            return set(s.scalars(select(DesignRow.content_hash)))

    def add_design(self, **fields) -> DesignRow:
        with self.session() as s:
            row = DesignRow(**fields)
            s.add(row)
            s.flush()
            return row

    def add_session(self, **fields) -> SessionRow:
        with self.session() as s:
            row = SessionRow(**{**fields, "dialog": json.loads(json.dumps(fields.get("dialog", []), default=str))})
            s.add(row)
            s.flush()
            return row

    def sessions(self) -> list[SessionRow]:
        with self.session() as s:
            return list(s.scalars(select(SessionRow).order_by(SessionRow.id)))

    def next_name(self, prefix: str = "d") -> str:
        with self.session() as s:
            count = len(list(s.scalars(select(DesignRow.id).where(DesignRow.status != "reference"))))
        return f"{prefix}{count + 1:04d}"


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
