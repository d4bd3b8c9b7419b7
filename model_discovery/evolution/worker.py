"""Verification workers: claim a job from the store, verify the design in the sandbox while a heartbeat keeps the
lease, record the metrics (or the failure), repeat. Any number of workers, on any machines that reach the store,
share one queue; the store's conditional claim means no two ever hold the same job.

A job is recorded done only with its outputs kept (uploads are retried, see :class:`~.artifacts.Artifacts`); a
failure of the design is final; a failure of the infrastructure (store, disk, network) puts the job back in the
queue; a full disk gives the job back and stops the worker with :class:`~.store.DiskFull`, naming the folder.
"""

from __future__ import annotations

import hashlib
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.early_stop import ProbeWatcher, StopRule, StopSettings
from model_discovery.evolution.store import DiskFull, JobRow, Store, is_disk_full, worker_id
from model_discovery.lm import Scale, find_scale

# what a verification leaves that is worth keeping beside the metrics (the token files are not)
KEPT = ("metrics.json", "config.json", "model.safetensors", "train_log.jsonl", "curve.jsonl", "design.py",
        "tokenizer.json")


class _Heartbeat(threading.Thread):
    def __init__(self, store: Store, job_id: int, worker: str, lease_s: float):
        super().__init__(daemon=True)
        self.store, self.job_id, self.worker, self.lease_s = store, job_id, worker, lease_s
        self.stopped = threading.Event()
        self.lost = False

    def run(self) -> None:
        while not self.stopped.wait(self.lease_s / 4):
            try:
                if not self.store.heartbeat(self.job_id, self.worker, self.lease_s):
                    self.lost = True
            except Exception:  # a store hiccup: the next beat tries again before the lease runs out
                pass


class Worker:
    """Runs the store's verification jobs here. ``work_dir`` holds each job's folder (a killed job resumes from
    it); ``artifacts`` (default: the same folder) is where the kept outputs go — an ``s3://`` prefix uploads."""

    def __init__(self, store: Store, work_dir: str | Path, artifacts: Artifacts | None = None,
                 lease_s: float = 60.0, name: str | None = None, threads: int | None = None, verify_fn=None):
        """``threads``: torch threads of each training (default: the sandbox's); ``verify_fn`` replaces
        :func:`~model_discovery.verify.run.verify` (same signature) in tests of the queue itself."""
        self.store, self.work_dir = store, Path(work_dir)
        self.artifacts = artifacts or Artifacts(self.work_dir)
        self.lease_s, self.name, self.threads, self.verify_fn = lease_s, name or worker_id(), threads, verify_fn

    def job_dir(self, job: JobRow, design_name: str) -> str:
        return f"verify/{design_name}-{job.scale}-{hashlib.sha256(job.data.encode()).hexdigest()[:8]}"

    def run_one(self) -> JobRow | None:
        """Claims and runs one job; None when the queue has nothing claimable."""
        from model_discovery.verify.run import VerifyError

        job = self.store.claim(self.name, self.lease_s)
        if job is None:
            return None
        beat = _Heartbeat(self.store, job.id, self.name, self.lease_s)
        beat.start()
        start = time.perf_counter()
        try:
            self._verify(job, start)
        except (KeyboardInterrupt, SystemExit):
            self.store.release(job.id, self.name)
            raise
        except Exception as exc:
            if is_disk_full(exc) or _disk_full_in_sandbox(exc):
                self._give_back_full(job, exc)
            if isinstance(exc, VerifyError):  # the design itself failed (crash, timeout, NaN): final, never retried
                self.store.fail(job.id, self.name, str(exc), final=True, wall_s=time.perf_counter() - start)
            else:  # infrastructure (store, data, artifacts): the job goes back to the queue
                self.store.fail(job.id, self.name, f"{type(exc).__name__}: {exc}", final=False)
        finally:
            beat.stopped.set()
        return self.store.job(job.id)

    def _verify(self, job: JobRow, start: float) -> None:
        """Verifies ``job``'s design in its folder, keeps the outputs, then records it done."""
        from model_discovery.verify.run import verify

        design = self.store.design(job.design_id)
        key = self.job_dir(job, design.name)
        out = self.work_dir / key
        out.mkdir(parents=True, exist_ok=True)
        source = out / "source" / "design.py"
        source.parent.mkdir(exist_ok=True)
        source.write_text(design.source)
        # the run's threads (in the payload) decide a training's sums; the worker's are the default
        extra = {"threads": self.threads} if self.threads and "threads" not in job.payload else {}
        payload = dict(job.payload)
        # the rung as the run's ladder defines it (a job queued before the payload held it: a shipped ladder's)
        scale = Scale(**payload.pop("scale")) if "scale" in payload else find_scale(job.scale)
        rule = payload.pop("early_stop", None)  # a design on the run's seed may stop early
        decide = StopRule(self.store, job, rule and StopSettings(**rule))
        pairs = {"phenomena": decide.phenomena} if rule and decide.settings.select_pairs else {}
        # a job that cannot stop (a reference, a noise seed, a confirmation) trains without a pause at its probes;
        # its points are published as they appear in its curve, for the designs that wait for them
        steps = payload.get("max_steps") or scale.steps
        with nullcontext() if decide.stops else ProbeWatcher(self.store, job, out, steps):
            metrics = (self.verify_fn or verify)(source, scale, out=out, **payload, **extra,
                                                 decide=decide if decide.stops else None, **pairs)
        url = self.artifacts.put_dir(key, out, KEPT)
        self.store.complete(job.id, self.name, metrics, time.perf_counter() - start, artifacts=url)

    def _give_back_full(self, job: JobRow, exc: Exception) -> None:
        """A full disk is nobody's failure: the job goes back as it was (when the store can still write) and the
        worker stops with an error naming the folder."""
        folder = exc.folder if isinstance(exc, DiskFull) else self.work_dir.resolve()
        try:
            self.store.release(job.id, self.name)
        except DiskFull:  # the store is on the full disk too: the job comes back when this process is gone
            pass
        raise DiskFull(folder, f"job {job.id} stopped ({str(exc).splitlines()[0][:300]})") from exc

    def run(self, follow: bool = False, poll_s: float = 5.0, max_jobs: int | None = None,
            progress: bool = False) -> int:
        """Runs jobs until none is left (``follow``: forever, polling every ``poll_s``); returns how many ran."""
        from tqdm.auto import tqdm

        done = 0
        bar = tqdm(desc=f"worker {self.name}", unit="job", disable=not progress)
        try:
            while max_jobs is None or done < max_jobs:
                job = self.run_one()
                if job is None:
                    if not follow:
                        break
                    time.sleep(poll_s)
                    continue
                done += 1
                bar.update()
                bar.set_postfix_str(f"last: job {job.id} {job.status}")
        finally:
            bar.close()
        return done


def _disk_full_in_sandbox(exc: Exception) -> bool:
    """A verification that failed in its sandbox because the disk was full (its error is the child's text)."""
    from model_discovery.verify.run import VerifyError

    return isinstance(exc, VerifyError) and ("No space left on device" in str(exc) or "[Errno 28]" in str(exc))
