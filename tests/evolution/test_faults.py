"""Cluster faults, survived against the real components: a Ray actor killed in the middle of a job, the PostgreSQL
server restarted in the middle of a run, the S3 endpoint down, the run folder's disk full. Each run ends with every
job verified exactly once (or stopped with a clear error, resumable), nothing lost and nothing repeated."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from model_discovery.evolution.executors import RayExecutor
from model_discovery.evolution.store import Store

NAMES = ("llama", "gpt2", "retnet")


def fake_verify(design, scale, out, hang=False, sleep_s=0.3, weights_kb=0, decide=None, **payload):
    """Stands in for training (what a real job leaves in its folder) for ``sleep_s``. ``hang``: the job's first
    attempt never ends, until its worker is killed; every attempt that ends is logged in the job's folder.
    ``weights_kb``: the size of the weights it writes (default a few bytes)."""
    out = Path(out)
    if hang and not (out / "attempted").exists():
        (out / "attempted").write_text(str(os.getpid()))
        time.sleep(600)
    time.sleep(sleep_s)
    metrics = {"val_loss": 3.0 + len(Path(design).read_text()) % 7 / 10, "scale": scale.name}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "model.safetensors").write_bytes(b"w" * 1024 * weights_kb if weights_kb else b"weights")
    with open(out / "completed", "a") as log:
        log.write(f"{os.getpid()}\n")
    return metrics


def _queue(store: Store, hang: str | None = None, **payload) -> dict[int, str]:
    """One job per library design in NAMES (``hang``'s first attempt never ends); job id -> design name."""
    for name in NAMES:
        store.enqueue(store.design(name).id, "cpu-1m", "data", {"hang": name == hang, **payload})
    return {job.id: store.design(job.design_id).name for job in store.jobs()}


def _assert_each_verified_once(store: Store, work: Path, jobs: dict[int, str]) -> None:
    assert {job.id: job.status for job in store.jobs()} == dict.fromkeys(jobs, "done")
    rows = store.verifications(status=None)
    assert sorted(store.design(r.design_id).name for r in rows) == sorted(jobs.values())  # none lost, none twice
    assert all(r.status == "done" for r in rows)
    for row in rows:  # each job's training ended once, and its outputs were kept
        folder = next(work.glob(f"verify/{store.design(row.design_id).name}-cpu-1m-*"))
        assert len((folder / "completed").read_text().split()) == 1, folder
        assert "://" in row.artifacts or (Path(row.artifacts) / "metrics.json").is_file()


def _wait(condition, timeout_s: float, what: str, step=None):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        step() if step else time.sleep(0.1)
    return value


# a. a Ray actor killed in the middle of a job ----------------------------------------------------------------------

def test_a_ray_actor_killed_mid_job_is_replaced_and_its_job_done_once(tmp_path, local_ray):
    store = Store(tmp_path, seed_references=True)
    jobs = _queue(store, hang="llama")
    pool = RayExecutor(store, tmp_path, None, workers=2, lease_s=60.0, poll_s=0.1, verify_fn=fake_verify)
    pool.start()
    try:
        folder = tmp_path / "verify"
        attempted = _wait(lambda: next(folder.glob("llama-*/attempted"), None), 60, "llama's first attempt")
        held = store.job(next(i for i, name in jobs.items() if name == "llama"))
        assert held.status == "running" and held.attempts == 1
        victim = pool.names.index(held.worker)
        local_ray.kill(pool.actors[victim], no_restart=True)  # in the middle of the job
        _wait(lambda: all(job.status == "done" for job in store.jobs()), 60, "every job done",
              step=lambda: pool.step(0.5))
        _assert_each_verified_once(store, tmp_path, jobs)
        assert store.job(held.id).attempts == 2  # the killed attempt counts
        assert attempted.read_text() != (attempted.parent / "completed").read_text().strip()  # another process
        restarted, = store.events(kind="worker_restarted")
        assert restarted.data["dead"] == held.worker and restarted.data["new"] in pool.names
        assert len(local_ray.nodes()) == 1 and len(pool.names) == 2

        # the restarts are capped: a pool whose actors keep dying stops with the reason
        pool.MAX_RESTARTS = pool.restarts
        local_ray.kill(pool.actors[0], no_restart=True)
        with pytest.raises(RuntimeError, match="Ray verification workers died 2 times"):
            _wait(lambda: False, 30, "the pool to give up", step=lambda: pool.step(0.5))
    finally:
        pool.stop()


# b. the PostgreSQL server restarted in the middle of a run ---------------------------------------------------------

class _Postgres:
    """A PostgreSQL server of this test's own (scripts/postgres.sh), so that it can stop and start it."""

    def __init__(self, folder: Path):
        import glob
        import socket

        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not bins:
            pytest.skip("PostgreSQL is not installed (scripts/postgres.sh installs Debian's postgresql)")
        self.pg_ctl, self.folder = bins[-1], folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = self._run("bash", "scripts/postgres.sh", "start", str(folder), str(self.port)).strip()

    def _run(self, *argv: str) -> str:
        import subprocess

        done = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).parents[2])
        assert done.returncode == 0, f"{' '.join(argv)}: {done.stderr[-2000:]}"
        return done.stdout

    def _pg_ctl(self, *argv: str) -> None:
        user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        self._run(*user, self.pg_ctl, "-D", str(self.folder), "-w", *argv)

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")  # the server ends every connection

    def start(self) -> None:
        self._pg_ctl("-l", str(self.folder / "server.log"), "-o",
                     f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off", "start")

    def remove(self) -> None:
        self._run("bash", "scripts/postgres.sh", "stop", str(self.folder))


@pytest.fixture
def postgres():
    import tempfile

    # in /tmp itself (pytest -n gives each worker a private TMPDIR): as root, the server runs as the postgres user
    parent = Path(tempfile.mkdtemp(prefix="modis-pg-", dir="/tmp"))
    parent.chmod(0o755)
    server = _Postgres(parent / "data")
    yield server
    server.remove()
    parent.rmdir()


def test_the_run_survives_a_postgresql_restart(tmp_path, postgres, caplog):
    import threading

    pytest.importorskip("psycopg", reason="the postgres extra is not installed (pip install '.[postgres]')")
    store = Store(postgres.url, seed_references=True)  # the driver's
    ids = {name: store.design(name).id for name in (*NAMES, "rwkv6", "mamba2", "ttt_linear")}
    stopping, errors = threading.Event(), []

    def work(i: int) -> None:
        from model_discovery.evolution.worker import Worker

        worker = Worker(Store(postgres.url), tmp_path, name=f"w{i}", lease_s=30.0,
                        verify_fn=fake_verify)
        try:
            while not stopping.is_set():
                if not worker.run():
                    time.sleep(0.1)
        except Exception as exc:  # what a worker process would have died of
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in workers:
        thread.start()
    try:
        restarted = False
        for n, design_id in enumerate(ids.values()):  # the driver queues a job at a time and waits on the queue
            store.enqueue(design_id, "cpu-1m", "data", {"sleep_s": 2.0 if n == 2 else 0.3})
            if n == 2:
                _wait(lambda: any(j.status == "running" for j in store.jobs()), 30, "a job running")
                postgres.stop()  # in the middle of a job, with the driver's and the workers' connections open
                time.sleep(3)
                postgres.start()
                restarted = True
            _wait(lambda: errors or all(status == "done" for _, status in store.job_states()), 60, "the jobs done")
        assert restarted and not errors, errors
    finally:
        stopping.set()
        for thread in workers:
            thread.join(60)
    jobs = {job.id: store.design(job.design_id).name for job in store.jobs()}
    _assert_each_verified_once(store, tmp_path, jobs)
    assert all(job.attempts == 1 for job in store.jobs())  # no job was taken twice
    assert any("Retrying" in r.getMessage() for r in caplog.records if r.name.endswith("evolution.store"))


# c. the S3 endpoint unreachable ------------------------------------------------------------------------------------

class _S3:
    """moto's S3 server on loopback, which the test stops and starts again on the same port (moto keeps the
    buckets in this process, so they outlive the server)."""

    def __init__(self):
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.timer = None
        self.start()

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()
        self.up = True

    def stop(self) -> None:
        self.server.stop()
        self.up = False

    def down_for(self, seconds: float | None) -> None:
        """Stops the endpoint now, and starts it again after ``seconds`` (None: when the test does)."""
        import threading

        self.stop()
        if seconds is not None:
            self.timer = threading.Timer(seconds, self.start)
            self.timer.start()


@pytest.fixture
def s3(monkeypatch):
    import urllib.request

    import s3fs

    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                       "AWS_MAX_ATTEMPTS": "1"}.items():  # botocore's own retries off: the product's are tested
        monkeypatch.setenv(key, value)
    server = _S3()
    s3fs.S3FileSystem(client_kwargs={"endpoint_url": server.url}, skip_instance_cache=True).mkdir("modis-runs")
    yield server
    if server.timer:
        server.timer.join()
    if not server.up:  # the test failed with the endpoint down
        server.start()
    # moto keeps its buckets in this process, not in the server: reset them for the next test's server
    urllib.request.urlopen(urllib.request.Request(f"{server.url}/moto-api/reset", method="POST")).close()
    server.stop()


def _verify_then_outage(s3: _S3, seconds: float | None):
    """fake_verify, after which (before its outputs are uploaded) the endpoint goes down, once."""
    def verify(design, scale, out, **payload):
        metrics = fake_verify(design, scale, out, **payload)
        if not getattr(verify, "done", False):
            verify.done = True
            s3.down_for(seconds)
        return metrics

    return verify


def _assert_uploaded(store: Store, artifacts) -> None:
    for row in store.verifications():
        assert row.artifacts.startswith("s3://modis-runs/run/verify/")
        key = row.artifacts.removeprefix(artifacts.url() + "/")
        assert json.loads(artifacts.get_bytes(f"{key}/metrics.json"))["scale"] == "cpu-1m"
        assert artifacts.get_bytes(f"{key}/model.safetensors") == b"weights"


@pytest.mark.parametrize("outage_s", [4, pytest.param(30, marks=pytest.mark.slow)])
def test_artifact_uploads_outlast_an_s3_outage(tmp_path, s3, caplog, outage_s):
    from model_discovery.evolution.artifacts import Artifacts
    from model_discovery.evolution.worker import Worker

    store = Store(tmp_path, seed_references=True)
    jobs = _queue(store)
    artifacts = Artifacts("s3://modis-runs/run", endpoint_url=s3.url)  # the default retry window
    assert artifacts.retry_s >= 30 + 30  # covers an outage of 30 s with room to spare
    started = time.monotonic()
    assert Worker(store, tmp_path, artifacts, verify_fn=_verify_then_outage(s3, outage_s)).run() == len(jobs)
    assert time.monotonic() - started > outage_s  # the first upload waited for the endpoint
    _assert_each_verified_once(store, tmp_path, jobs)
    assert all(job.attempts == 1 for job in store.jobs())
    _assert_uploaded(store, artifacts)
    assert any("Retrying" in r.getMessage() for r in caplog.records if r.name.endswith("evolution.artifacts"))


def test_no_verification_is_recorded_done_without_its_files(tmp_path, s3):
    from model_discovery.evolution.artifacts import Artifacts
    from model_discovery.evolution.worker import Worker

    store = Store(tmp_path, seed_references=True)
    jobs = _queue(store)
    worker = Worker(store, tmp_path, Artifacts("s3://modis-runs/run", endpoint_url=s3.url, retry_s=1.0),
                    verify_fn=_verify_then_outage(s3, None))
    job = worker.run_one()  # the endpoint stays down past the retry window
    assert job.status == "queued" and job.attempts == 1 and "Error" in job.error  # back in the queue, an attempt
    assert store.verifications(status=None) == []  # nothing recorded: neither done nor failed
    s3.start()
    assert worker.run() == len(jobs)
    assert {job.id: job.status for job in store.jobs()} == dict.fromkeys(jobs, "done")
    rows = store.verifications(status=None)  # one each, done (the first job trained twice: its files were lost)
    assert sorted(store.design(r.design_id).name for r in rows) == sorted(jobs.values())
    _assert_uploaded(store, worker.artifacts)


# d. the run folder's disk full --------------------------------------------------------------------------------------

def _fill(folder: Path, leave_kb: int = 0) -> None:
    """Writes ``folder/filler`` until only ``leave_kb`` KiB are left on its device."""
    with open(folder / "filler", "ab") as filler:
        try:
            while (free := os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize) > leave_kb * 1024:
                filler.write(b"\0" * min(64 * 1024, free - leave_kb * 1024))
                filler.flush()
        except OSError:  # the last bytes did not fit
            pass


def _integrity(run: Path) -> str:
    import sqlite3

    with sqlite3.connect(run / "store.db") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def disk_full_phase(run: str, phase: str) -> None:
    """One step of the disk-full test, run inside a small tmpfs (bubblewrap) holding ``run``; prints what it saw."""
    from model_discovery.evolution.store import DiskFull
    from model_discovery.evolution.worker import Worker

    run, seen = Path(run), {}
    if phase == "start":
        store = Store(run, seed_references=True)
        jobs = _queue(store, weights_kb=512)  # each job writes 512 KiB into the run folder
        worker = Worker(store, run, verify_fn=fake_verify)
        seen["first"] = worker.run_one().status  # fits
        _fill(run.parent, leave_kb=256)  # the next job's weights do not
        try:
            worker.run()
        except DiskFull as exc:
            seen["worker_error"] = str(exc)
        _fill(run.parent)  # nothing left at all: the store's own writes fail
        try:
            store.add_event("note", "a write of the store on a full disk")
        except DiskFull as exc:
            seen["store_error"] = str(exc)
        seen["jobs"] = {jobs[job.id]: job.status for job in store.jobs()}
    else:
        store = Store(run)
        seen["ran"] = Worker(store, run, verify_fn=fake_verify).run()
        seen["jobs"] = {store.design(job.design_id).name: [job.status, job.attempts] for job in store.jobs()}
    seen["verifications"] = sorted([store.design(v.design_id).name, v.status] for v in store.verifications(status=None))
    seen["integrity"] = _integrity(run)
    print(json.dumps(seen))


def test_a_full_disk_stops_the_run_clearly_and_it_resumes(tmp_path):
    import shutil
    import subprocess
    import sys

    if not shutil.which("bwrap") or subprocess.run(["bwrap", "--bind", "/", "/", "true"]).returncode:
        pytest.skip("bubblewrap cannot run here (it mounts the small file system that fills up)")
    disk = tmp_path / "disk"  # a 3 MiB file system of its own, in a mount namespace of the test's commands
    disk.mkdir()
    run = disk / "run"
    phase = (f"{sys.executable} -c 'from tests.evolution.test_faults import disk_full_phase as p; "
             f"p(\"{run}\", \"{{}}\")'")
    script = " && ".join([
        phase.format("start") + f" > {tmp_path}/start.json",
        f"{{ {sys.executable} -m model_discovery.cli worker --store {run} --work-dir {run}"
        f" > /dev/null 2> {tmp_path}/cli.err; echo $? > {tmp_path}/cli.rc; }}",  # the real command on the full disk
        f"rm {disk}/filler",  # space freed
        phase.format("resume") + f" > {tmp_path}/resume.json"])
    done = subprocess.run(["bwrap", "--bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--size", str(3 << 20),
                           "--tmpfs", str(disk), "sh", "-c", script], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    start = json.loads((tmp_path / "start.json").read_text())
    assert start["first"] == "done"
    for error in (start["worker_error"], start["store_error"]):  # a clear error, naming the folder
        assert error.startswith(f"no space left on the device of {run}") and "run again" in error, error
    assert "job 2" in start["worker_error"]
    assert start["verifications"] == [["llama", "done"]]  # the job that ran out of space is not recorded failed
    assert start["jobs"]["gpt2"] in ("queued", "running") and start["jobs"]["retnet"] == "queued"
    assert start["integrity"] == "ok"
    cli = (tmp_path / "cli.err").read_text()
    assert (tmp_path / "cli.rc").read_text().strip() == "2" and f"modis: no space left on the device of {run}" in cli
    resume = json.loads((tmp_path / "resume.json").read_text())
    assert resume["ran"] == 2 and resume["integrity"] == "ok"
    # gpt2's attempt counts when the full disk kept its worker from handing it back (it is taken back at once)
    gpt2 = ["done", 1 if start["jobs"]["gpt2"] == "queued" else 2]
    assert resume["jobs"] == {"llama": ["done", 1], "gpt2": gpt2, "retnet": ["done", 1]}
    assert resume["verifications"] == [["gpt2", "done"], ["llama", "done"], ["retnet", "done"]]
