"""Executors: who runs the store's verification jobs. There is one dispatch path — every verification is a job in
the store's queue, claimed under a lease kept alive by a heartbeat — and three ways to run claimers:

- ``inline``: this process, one job per loop step; the loop alternates design and verification, so a run with the
  same seed reproduces its tree exactly (the default with one worker);
- ``local``: N ``modis worker`` processes on this machine, each in its own session and dying with its parent, so
  verifications run side by side and beside the design sessions;
- ``ray``: N Ray actors (a local Ray, or a cluster at ``ray://…``/``auto``), each a :class:`~.worker.Worker` that
  asks Ray for its rung's CPUs and GPUs and runs the design in the same sandboxed subprocess on its node.

``modis worker`` processes started by hand, Beaker or SLURM claim from the same queue; the store hands each job to
exactly one of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Protocol

from model_discovery.design import content_hash
from model_discovery.design.parse import parse_design
from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.key import DataKey
from model_discovery.evolution.store import DiskFull, JobRow, Store, design_fields
from model_discovery.evolution.worker import Worker
from model_discovery.files import tail
from model_discovery.lm import find_scale
from model_discovery.registry import Registry
from model_discovery.sandbox.limits import thread_share
from model_discovery.sandbox.runner import die_with_parent
from model_discovery.verify.run import VerifyError, design_source

STOP_GRACE_S = 30.0  # how long a stopping worker gets to hand its job back before it is killed


class Executor(Protocol):
    """Runs jobs from the store's queue. ``concurrent``: the jobs run beside the loop, which only enqueues and waits.
    ``max_workers``: how many jobs it can run at once (None: any number). :meth:`options` turns a run's settings
    into its own keyword arguments."""

    concurrent: bool
    max_workers: int | None
    workers: int

    @classmethod
    def options(cls, threads: int | None, address: str | None, gpus: int) -> dict:
        """Its keyword arguments for a run: each training's ``threads``, a cluster's ``address``, ``gpus`` per job."""
        ...

    def start(self) -> None:
        """Starts the claimers (nothing for ``inline``)."""
        ...

    def step(self, timeout_s: float) -> list[JobRow]:
        """Inline: claims and runs one job. Concurrent: waits up to ``timeout_s`` for jobs to finish. Returns the
        jobs that finished meanwhile."""
        ...

    def stop(self) -> None:
        """Stops the claimers; a job one of them still held goes back to the queue."""
        ...


EXECUTORS: Registry[type] = Registry("executor", group="model_discovery.executors")


def make_executor(name: str, store: Store, work_dir: str | Path, artifacts: str | None = None, workers: int = 1,
                  lease_s: float = 120.0, poll_s: float = 1.0, **options) -> Executor:
    """The executor ``name`` over ``store``; ``options`` are its own (e.g. ``address`` for ``ray``)."""
    return EXECUTORS.get(name)(store, Path(work_dir), artifacts, workers=workers, lease_s=lease_s, poll_s=poll_s,
                               **options)


@EXECUTORS.register("inline")
class InlineExecutor:
    """Verifies in this process, one job per call."""

    concurrent = False
    max_workers = 1

    @classmethod
    def options(cls, threads: int | None, address: str | None, gpus: int) -> dict:
        return {}

    def __init__(self, store: Store, work_dir: Path, artifacts: str | None, workers: int = 1, lease_s: float = 120.0,
                 poll_s: float = 1.0):
        if workers != 1:
            raise ValueError(f"the inline executor runs one job at a time, not {workers}; use --executor local or ray")
        self.workers = 1
        self.worker = Worker(store, work_dir, Artifacts(artifacts or work_dir), lease_s=lease_s)

    def start(self) -> None:
        pass

    def step(self, timeout_s: float) -> list[JobRow]:
        job = self.worker.run_one()
        if job is None:  # every queued job is held by workers elsewhere
            time.sleep(timeout_s)
            return []
        return [job]

    def stop(self) -> None:
        pass


class _Pool:
    """What the concurrent executors share: noticing finished jobs, and handing back the jobs of stopped workers."""

    concurrent = True
    max_workers = None

    def __init__(self, store: Store, work_dir: Path, artifacts: str | None, workers: int, lease_s: float,
                 poll_s: float):
        if workers < 1:
            raise ValueError(f"workers must be at least 1, not {workers}")
        self.store, self.work_dir, self.artifacts = store, work_dir, artifacts
        self.workers, self.lease_s, self.poll_s = workers, lease_s, poll_s
        self.names: list[str] = []
        self._seen = {job_id for job_id, status in store.job_states() if status in ("done", "failed")}

    def step(self, timeout_s: float) -> list[JobRow]:
        """Returns as soon as the queue changes (a job taken or finished: the loop may design again) or after
        ``timeout_s``, with the jobs that finished."""
        deadline = time.monotonic() + timeout_s
        before = None
        while True:
            self.check()
            now = self.store.job_states()
            finished = [i for i, status in now if status in ("done", "failed") and i not in self._seen]
            if finished or (before is not None and now != before) or time.monotonic() >= deadline:
                self._seen.update(finished)
                return [self.store.job(i) for i in finished]
            before = now
            time.sleep(min(0.25, self.poll_s))

    def check(self) -> None:
        """Raises when the pool cannot go on (its workers keep dying)."""

    def _hand_back(self) -> None:
        for name in self.names:
            self.store.release_held(name)


@EXECUTORS.register("local")
class LocalExecutor(_Pool):
    """``workers`` ``modis worker`` processes on this machine. Each gets an equal share of the cores for its
    training threads; its output goes to ``WORK_DIR/logs/worker-I.log``."""

    MAX_RESTARTS = 3

    @classmethod
    def options(cls, threads: int | None, address: str | None, gpus: int) -> dict:
        return {"threads": threads}

    def __init__(self, store: Store, work_dir: Path, artifacts: str | None, workers: int = 2, lease_s: float = 120.0,
                 poll_s: float = 1.0, threads: int | None = None):
        super().__init__(store, work_dir.resolve(), artifacts, workers, lease_s, poll_s)
        self.threads = threads or thread_share(workers)
        self.procs: list[subprocess.Popen] = []
        self.restarts = 0

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "model_discovery.cli", "worker", "--store", self.store.url, "--work-dir",
                str(self.work_dir), "--follow", "--poll", str(self.poll_s), "--lease", str(self.lease_s),
                "--threads", str(self.threads)]
        if not self.artifacts:
            return argv
        where = self.artifacts if "://" in self.artifacts else str(Path(self.artifacts).resolve())
        return [*argv, "--artifacts", where]

    def _spawn(self, i: int) -> subprocess.Popen:
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"worker-{i}.log", "ab") as log:
            # its own session: a Ctrl-C reaches the driver only, which hands the stop on in order
            return subprocess.Popen(self._argv(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, preexec_fn=_worker_child, cwd=self.work_dir)

    def start(self) -> None:
        self.procs = [self._spawn(i) for i in range(self.workers)]
        self.names = [f"{socket.gethostname()}:{p.pid}" for p in self.procs]

    def check(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is None:
                continue
            self.restarts += 1
            log = self.work_dir / "logs" / f"worker-{i}.log"
            lines = tail(log, 8192)[0].splitlines()
            full = [line for line in lines if line.startswith("modis: no space left on the device")]
            if full:  # another worker would only hit the same disk
                raise RuntimeError(f"{full[-1].removeprefix('modis: ')} (local worker {i}; see {log})")
            if self.restarts > self.MAX_RESTARTS:
                raise RuntimeError(f"local verification workers exited {self.restarts} times (worker {i}: exit code "
                                   f"{proc.returncode}); see {log}")
            self.store.add_event("worker_restarted", f"local worker {i} exited ({proc.returncode}); restarted",
                                 log=str(log))
            self.store.release_held(self.names[i], crashed=True)
            self.procs[i] = self._spawn(i)
            self.names[i] = f"{socket.gethostname()}:{self.procs[i].pid}"

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)  # the worker hands its job back and exits
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._hand_back()


def _worker_child() -> None:
    """Between fork and exec of a local worker: it dies with the driver (a SIGKILLed driver leaves no worker
    training on), and takes Ctrl-C as KeyboardInterrupt even when the driver's shell ignores SIGINT."""
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class _RayWorker:
    """A Ray actor claiming jobs from the store, as ``modis worker`` does."""

    def __init__(self, store_url: str, work_dir: str, artifacts: str | None, lease_s: float, index: int,
                 threads: int | None, verify_fn=None):
        name = f"ray-{index}@{socket.gethostname()}:{os.getpid()}"
        store = Store(store_url)
        self.worker = Worker(store, work_dir, Artifacts(artifacts or work_dir), lease_s=lease_s, name=name,
                             threads=threads, verify_fn=verify_fn)

    def name(self) -> str:
        return self.worker.name

    def run(self, poll_s: float) -> int:
        return self.worker.run(follow=True, poll_s=poll_s)


@EXECUTORS.register("ray")
class RayExecutor(_Pool):
    """``workers`` Ray actors, each asking for ``num_cpus`` CPUs and ``num_gpus`` GPUs (one per job on a gpu
    ladder). ``address``: a running cluster (``auto``, ``ray://host:10001``); default: a local Ray, started here
    and shut down by :meth:`stop`. ``init_kwargs`` go to ``ray.init`` (e.g. ``_temp_dir``); ``verify_fn`` goes to
    each actor's :class:`~.worker.Worker` (tests of the queue). An actor that dies (its node lost, killed, out of
    memory) is replaced, up to :attr:`MAX_RESTARTS` times, and the job it held goes back to the queue."""

    MAX_RESTARTS = 3

    @classmethod
    def options(cls, threads: int | None, address: str | None, gpus: int) -> dict:
        return {"address": address, "num_gpus": gpus, **({"num_cpus": threads} if threads else {})}

    def __init__(self, store: Store, work_dir: Path, artifacts: str | None, workers: int = 2, lease_s: float = 120.0,
                 poll_s: float = 1.0, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0,
                 verify_fn=None, **init_kwargs):
        super().__init__(store, work_dir, artifacts, workers, lease_s, poll_s)
        if str(address or "").startswith("ray://") and store.url.startswith("sqlite"):
            raise ValueError(f"the Ray cluster at {address} cannot reach the SQLite store {store.url}; give the run "
                             "a server store (--store postgresql://…) and shared artifacts (--artifacts s3://…)")
        self.address, self.num_cpus, self.num_gpus, self.init_kwargs = address, num_cpus, num_gpus, init_kwargs
        self.verify_fn = verify_fn
        self.actors: list = []
        self.loops: list = []
        self.started_ray = False
        self.restarts = 0

    def start(self) -> None:
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the ray executor needs Ray: pip install 'model-discovery[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=self.address, include_dashboard=False, log_to_driver=False, **self.init_kwargs)
            self.started_ray = True
        self._actor = ray.remote(num_cpus=self.num_cpus, num_gpus=self.num_gpus, max_restarts=0)(_RayWorker)
        self.actors = [self._spawn(i) for i in range(self.workers)]
        self.names = ray.get([a.name.remote() for a in self.actors])
        self.loops = [a.run.remote(self.poll_s) for a in self.actors]

    def _spawn(self, i: int):
        return self._actor.remote(self.store.url, str(self.work_dir), self.artifacts, self.lease_s, i,
                                  max(1, int(self.num_cpus)), self.verify_fn)

    def check(self) -> None:
        """Replaces the actors that died; the jobs they held go back to the queue, counted as an attempt."""
        ended, _ = self.ray.wait(self.loops, num_returns=len(self.loops), timeout=0)
        for ref in ended:  # a worker loop never ends by itself: its actor died
            i = self.loops.index(ref)
            try:
                self.ray.get(ref)
                why = "its loop returned"
            except self.ray.exceptions.RayTaskError as exc:  # the worker raised
                if isinstance(exc.cause, DiskFull):
                    raise exc.cause from None  # another actor would find the same disk full
                why = f"{type(exc.cause).__name__}: {exc.cause}"
            except self.ray.exceptions.RayError as exc:  # the actor's process or node died
                why = str(exc).strip().splitlines()[0][:300]
            self.restarts += 1
            if self.restarts > self.MAX_RESTARTS:
                raise RuntimeError(f"Ray verification workers died {self.restarts} times (the last, {self.names[i]}: "
                                   f"{why})")
            self.ray.kill(self.actors[i])  # whatever is left of it
            held = self.store.release_held(self.names[i], crashed=True)
            dead, self.actors[i] = self.names[i], self._spawn(i)
            self.names[i] = self.ray.get(self.actors[i].name.remote())
            self.loops[i] = self.actors[i].run.remote(self.poll_s)
            self.store.add_event("worker_restarted", f"Ray worker {dead} died ({why}); {held} job(s) it held went "
                                 f"back to the queue; restarted as {self.names[i]}", dead=dead, new=self.names[i],
                                 released=held)

    def stop(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)  # its sandboxed training dies with it
        self._hand_back()
        if self.started_ray:
            self.ray.shutdown()


def verify_through_queue(design: str | Path, scale: str, executor: str, out: str | Path | None = None,
                         corpus: str = "synthetic", blimp: str | None = "synthetic", seed: int = 0,
                         max_steps: int | None = None, eval_corpora: list[str] | None = None,
                         cache: str | Path | None = None, **options) -> dict:
    """``modis verify --executor ray|local``: the design becomes one job in a store in ``out`` (default
    ``runs/verify/NAME-RUNG-HASH``), run by the executor's workers; returns its metrics. A rerun on the same
    ``out`` reuses the job (done: its metrics at once)."""
    source, name = design_source(design)
    rung = find_scale(scale)
    out = Path(out or Path("runs") / "verify" / f"{name}-{rung.name}-{content_hash(source)[:8]}")
    store = Store(out)
    fields = design_fields(parse_design(source, name))
    row = store.design_by_hash(fields["content_hash"]) or store.add_design(
        **fields, parents=[], mode="import", status="checked")
    tokens = max_steps * rung.batch_tokens if max_steps else rung.train_tokens
    payload = {"corpus": corpus, "blimp": blimp, "seed": seed, "max_steps": max_steps,
               **({"eval_corpora": eval_corpora} if eval_corpora else {}),
               **({"cache": str(Path(cache).resolve())} if cache else {})}
    store.enqueue(row.id, rung.name, DataKey.of(corpus, blimp, tokens).text, payload)
    pool = make_executor(executor, store, out, workers=1, **options)
    pool.start()
    try:
        while (job := store.job_for(row.id, rung.name)).status not in ("done", "failed"):
            pool.step(5.0)
    finally:
        pool.stop()
    if job.status == "failed":
        raise VerifyError(job.error)
    (done,) = [v for v in store.verifications(scale=rung.name, data=job.data) if v.design_id == row.id]
    return {**done.metrics, "worker": done.worker}
