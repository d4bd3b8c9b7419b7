"""The verification job queue: a job is claimed with a lease that its worker's heartbeat keeps alive; an expired
lease (or a dead worker on this host) puts it back, and after ``MAX_ATTEMPTS`` such losses it fails. A job's
verification is recorded with its completion and its cost in one transaction."""

from __future__ import annotations

import os
import socket
import time

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from model_discovery.evolution.store.connection import Database, reconnecting
from model_discovery.evolution.store.rows import CostRow, EventRow, JobRow, VerificationRow, to_json


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


@reconnecting
class JobQueue(Database):
    """The jobs of a store (a part of :class:`~model_discovery.evolution.store.Store`)."""

    MAX_ATTEMPTS = 3  # claims of one job before an infrastructure failure becomes final

    def enqueue(self, design_id: int, scale: str, data: str, payload: dict, priority: int = 0) -> bool:
        """Queues a verification unless it is already queued, running, done or failed; True when queued now."""
        try:
            with self.session() as s:
                taken = s.scalar(select(func.count(JobRow.id)).where(
                    JobRow.design_id == design_id, JobRow.scale == scale, JobRow.data == data))
                if taken:
                    return False
                s.add(JobRow(design_id=design_id, scale=scale, data=data, payload=to_json(payload), priority=priority))
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
            # a dead worker's job in its place in the queue: a job that waits for the ones before it (early
            # stopping) must not be claimed ahead of them
            candidates.sort(key=lambda job: (-job.priority, job.id))
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
                                      metrics=to_json(metrics), worker=worker, artifacts=artifacts, wall_s=wall_s))
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
