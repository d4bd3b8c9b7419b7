"""The store's tables, as SQLAlchemy models: designs (unit tree, composed source, content hash, lineage, status),
design sessions (agent dialog, reviews, costs), checks, verifications (design x rung x data -> metrics), verification
jobs, costs and events. A change here needs a migration (``migrations/``, see its ``env.py``)."""

from __future__ import annotations

import json
import time

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from model_discovery.design import UnitTree, compose, content_hash


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
    data: Mapped[str] = mapped_column(String(500))  # corpus, pairs, tokens[, seed]: a DataKey's text


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


def design_fields(tree: UnitTree) -> dict:
    """The columns every design row derives from its unit tree: name, tree, composed source, content hash."""
    source = compose(tree)
    return {"name": tree.name, "tree": tree.model_dump(mode="json"), "source": source,
            "content_hash": content_hash(source, tree.config())}


def to_json(value):
    """``value`` as the JSON columns store it (what is not JSON, as text)."""
    return json.loads(json.dumps(value, default=str))
