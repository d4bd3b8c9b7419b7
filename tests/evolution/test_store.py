"""The tree store on SQLite and PostgreSQL: atomic session records, the job queue's leases, no verification twice,
costs and events."""

import multiprocessing
import os
import subprocess
import sys
import time

import pytest
from sqlalchemy.exc import IntegrityError

from model_discovery.evolution.store import Store
from tests.conftest import LIBRARY


def _design(store: Store, name: str) -> int:
    row = store.record_session(design=dict(name=name, tree=store.design("llama").tree, source=f"# {name}",
                                           content_hash=name * 4, parents=["llama"], mode="mutation",
                                           status="checked"),
                               check={"accepted": True, "findings": [], "params": {"block": 1}},
                               operator="mutation", outcome="registered", reason="test")
    return row.design_id


def test_sessions_designs_and_checks_are_recorded_together(store_url):
    store = Store(store_url, seed_references=True)
    assert sorted(d.name for d in store.designs("reference")) == sorted(LIBRARY)
    design_id = _design(store, "d0001")
    assert store.design("d0001").id == design_id and store.design(design_id).parents == ["llama"]
    (check,) = store.checks(design_id)
    assert check.accepted and check.params == {"block": 1}
    with pytest.raises(IntegrityError):  # same content hash: the whole record is refused, session included
        _design(store, "d0001")
    assert len(store.sessions()) == 1 and len(store.checks()) == 1
    assert store.next_name() == "d0002"


def test_a_job_is_claimed_once_and_verified_once(store_url):
    store = Store(store_url, seed_references=True)
    design_id = _design(store, "d0001")
    assert store.enqueue(design_id, "cpu-1m", "data", {"max_steps": 1})
    assert not store.enqueue(design_id, "cpu-1m", "data", {"max_steps": 1})  # already queued
    job = store.claim("w1", lease_s=60)
    assert job.status == "running" and job.worker == "w1" and job.attempts == 1
    assert store.claim("w2", lease_s=60) is None  # held, lease alive
    assert store.heartbeat(job.id, "w1") and not store.heartbeat(job.id, "w2")
    assert store.complete(job.id, "w1", {"val_loss": 3.0, "device": "cpu"}, wall_s=12.0)
    assert not store.complete(job.id, "w1", {"val_loss": 3.0}, wall_s=12.0)  # never verified twice
    (row,) = store.verifications(scale="cpu-1m")
    assert row.metrics["val_loss"] == 3.0 and row.design_id == design_id
    assert store.costs() == {"llm_usd": 0.0, "cpu_s": 12.0, "gpu_s": 0.0}
    assert not store.enqueue(design_id, "cpu-1m", "data", {})  # done: not queued again
    assert [e.kind for e in store.events()] == ["job_claimed", "verified"]


def test_an_expired_lease_returns_the_job(store_url):
    store = Store(store_url, seed_references=True)
    store.enqueue(_design(store, "d0001"), "cpu-1m", "data", {})
    job = store.claim("w1", lease_s=0.2)
    time.sleep(0.3)
    again = store.claim("w2", lease_s=60)
    assert again.id == job.id and again.worker == "w2" and again.attempts == 2
    assert not store.heartbeat(job.id, "w1")  # w1 lost it


@pytest.mark.parametrize("label", ["", "ray-0@"])
def test_a_dead_worker_on_this_host_loses_its_job_at_once(store_url, label):
    store = Store(store_url, seed_references=True)
    store.enqueue(_design(store, "d0001"), "cpu-1m", "data", {})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from model_discovery.evolution.store import worker_id

    host = worker_id().rpartition(":")[0]
    store.claim(f"{label}{host}:{dead.stdout.strip()}", lease_s=3600)
    assert store.claim(f"{host}:{os.getpid()}", lease_s=60) is not None


def test_a_dead_workers_job_keeps_its_place_in_the_queue(store_url):
    """Resumed at once after a kill, the run takes the dead worker's job before the ones queued after it (a design
    waiting at its probe for the designs before it would otherwise wait for a job nobody runs)."""
    store = Store(store_url, seed_references=True)
    for name in ("d0001", "d0002", "d0003"):
        store.enqueue(_design(store, name), "cpu-1m", "data", {})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    from model_discovery.evolution.store import worker_id

    host = worker_id().rpartition(":")[0]
    first = store.claim(f"{host}:{dead.stdout.strip()}", lease_s=3600)
    again = store.claim(f"{host}:{os.getpid()}", lease_s=60)
    assert again.id == first.id and again.attempts == 2


def test_a_stopped_worker_hands_its_jobs_back(store_url):
    store = Store(store_url, seed_references=True)
    for name in ("d0001", "d0002"):
        store.enqueue(_design(store, name), "cpu-1m", "data", {})
    store.claim("w1")
    store.claim("w2")
    assert store.release_held("w1") == 1  # a clean stop: the attempt does not count
    assert store.release_held("w2", crashed=True) == 1  # a crash: it does
    assert sorted((j.status, j.attempts) for j in store.jobs()) == [("queued", 0), ("queued", 1)]
    assert store.release_held("w1") == 0


def test_failures_final_retried_and_abandoned(store_url):
    store = Store(store_url, seed_references=True)
    a, b, c = (_design(store, f"d000{i}") for i in (1, 2, 3))
    for design_id in (a, b, c):
        store.enqueue(design_id, "cpu-1m", "data", {})
    job = store.claim("w", 60)
    store.fail(job.id, "w", "NaN loss", final=True)  # the design failed: recorded, not retried
    assert store.job(job.id).status == "failed"
    assert store.verifications(status="failed")[0].error == "NaN loss"
    job = store.claim("w", 60)
    store.fail(job.id, "w", "disk full", final=False)  # infrastructure: back to the queue
    assert store.job(job.id).status == "queued"
    store.claim("w", 60)
    store.release(job.id, "w")  # Ctrl-C: back, attempt not counted
    assert store.job(job.id).status == "queued" and store.job(job.id).attempts == 1
    Store.MAX_ATTEMPTS, saved = 2, Store.MAX_ATTEMPTS
    try:
        store.claim("w", 0.0)  # second attempt, lease already expired: the worker 'died'
        store.claim("x", 0.0)  # third claim: the job was abandoned twice
    finally:
        Store.MAX_ATTEMPTS = saved
    assert store.job(job.id).status == "failed" and "abandoned" in store.job(job.id).error


def _claim_all(url: str, name: str, queue, start) -> None:
    store = Store(url)
    start.wait(60)  # all claim together: a worker that starts late on a loaded machine would find the queue empty
    while (job := store.claim(name, lease_s=60)) is not None:
        time.sleep(0.01)
        store.complete(job.id, name, {"val_loss": 1.0}, 0.01)
        queue.put((name, job.id))


def test_concurrent_workers_never_share_a_job(store_url):
    store = Store(store_url, seed_references=True)
    ids = [_design(store, f"d{i:04d}") for i in range(24)]
    for design_id in ids:
        store.enqueue(design_id, "cpu-1m", "data", {})
    ctx = multiprocessing.get_context("spawn")
    queue, start = ctx.Queue(), ctx.Barrier(3)
    procs = [ctx.Process(target=_claim_all, args=(store.url, f"w{i}", queue, start)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    runs = [queue.get(timeout=5) for _ in range(24)]
    assert queue.empty()
    assert sorted(job for _, job in runs) == sorted(j.id for j in store.jobs())  # each job exactly once
    assert len({w for w, _ in runs}) >= 2  # they really shared the queue
    assert len(store.verifications()) == 24
