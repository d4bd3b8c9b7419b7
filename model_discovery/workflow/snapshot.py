"""What planning reads from a run's store, at one moment: :class:`Snapshot`, and the :class:`Reader` that takes
snapshots of a store, reading only what changed since its last one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from model_discovery.evolution.index import TreeIndex
from model_discovery.evolution.store import Store


class JobKey(NamedTuple):
    """A queued job as planning sees it (no payload, no error)."""

    id: int
    design_id: int
    rung: str
    data: str
    status: str  # queued | running | done | failed


@dataclass(frozen=True)
class Snapshot:
    """What planning reads from a run's store at one moment: the tree index (refreshed), the jobs' keys in queue
    order and every verification (any status) by id. Valid until the runner takes the next one (the index grows)."""

    index: TreeIndex
    jobs: tuple[JobKey, ...]
    verifications: tuple[Any, ...]  # VerificationRow

    def rows(self, rung: str | None = None, data: str | None = None, status: str | None = "done") -> list:
        """The verifications at ``rung`` on ``data`` with ``status`` (None: any), in the order they were recorded."""
        return [v for v in self.verifications if (rung is None or v.scale == rung) and (data is None or v.data == data)
                and (status is None or v.status == status)]


class Reader:
    """Snapshots of a run's store: the tree index grows with the new designs, and only the verifications not read
    before are read (a verification is never changed once written)."""

    def __init__(self, store: Store, index: TreeIndex | None = None):
        self.store, self.index = store, index or TreeIndex(store)
        self._rows: dict[int, Any] = {}

    def snapshot(self) -> Snapshot:
        index = self.index.refresh()
        jobs = tuple(JobKey(*j) for j in self.store.job_keys())
        new = [i for i in self.store.verification_ids() if i not in self._rows]
        self._rows.update((v.id, v) for v in (self.store.verifications(status=None, ids=new) if new else []))
        return Snapshot(index, jobs, tuple(self._rows[i] for i in sorted(self._rows)))
