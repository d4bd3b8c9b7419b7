"""What a run records: designs, design sessions, checks, verifications, costs and events. Every write that must not
be half-done is one transaction (a design with its session and check), so a process killed at any moment leaves a
consistent store."""

from __future__ import annotations

from sqlalchemy import func, select

from model_discovery.evolution.store.connection import Database, reconnecting
from model_discovery.evolution.store.rows import (
    CheckRow,
    CostRow,
    DesignRow,
    EventRow,
    SessionRow,
    VerificationRow,
    to_json,
)


@reconnecting
class Records(Database):
    """The records of a store (a part of :class:`~model_discovery.evolution.store.Store`)."""

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
                s.add(CheckRow(design_id=row.id, **to_json(check)))
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
                    s.add(CheckRow(design_id=design_id, **to_json(check)))
            out = SessionRow(design_id=design_id, **{**session, "dialog": to_json(session.get("dialog", []))})
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

    def verification_ids(self) -> list[int]:
        """Ids of every verification (any status): tells a reader which rows it has not read yet (rows are never
        changed once written)."""
        with self.session() as s:
            return list(s.scalars(select(VerificationRow.id).order_by(VerificationRow.id)))

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

    def verifications(self, scale: str | None = None, data: str | None = None, status: str | None = "done",
                      ids: list[int] | None = None) -> list[VerificationRow]:
        with self.session() as s:
            query = select(VerificationRow).order_by(VerificationRow.id)
            if ids is not None:
                query = query.where(VerificationRow.id.in_(ids))
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
            s.add(EventRow(kind=kind, message=message, data=to_json(data)))

    def events(self, after_id: int = 0, kind: str | None = None) -> list[EventRow]:
        with self.session() as s:
            query = select(EventRow).where(EventRow.id > after_id).order_by(EventRow.id)
            if kind:
                query = query.where(EventRow.kind == kind)
            return list(s.scalars(query))
