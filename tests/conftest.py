"""Shared fixtures: caches kept in a temp dir, library designs loaded once per session."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import tempfile
import urllib.request

import pytest
import torch

# each test process its own temp dir (its sandboxes' work dirs), so the checks that no sandbox outlived its test see
# only its own: pytest -n workers, and pytest beside anything else on the machine that runs sandboxes
os.environ["TMPDIR"] = _TMP = tempfile.mkdtemp(prefix=f"modis-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}-")
tempfile.tempdir = None
atexit.register(shutil.rmtree, _TMP, True)  # and gone with it: a suite leaves up to 2 GB of sandboxes and runs there
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("MODIS_THREADS", "1")  # and its sandboxed children one thread each: two cores, two workers
os.environ.setdefault("MODIS_CACHE", tempfile.mkdtemp(prefix="modis-test-cache-"))
# runs share no verifications unless a test asks (what one test trained must not decide what another trains)
os.environ.setdefault("MODIS_VERIFY_CACHE", "none")
os.environ.setdefault("HF_HOME", os.path.join(os.environ["MODIS_CACHE"], "hf"))
os.environ["WANDB_MODE"] = "disabled"  # tests that log to W&B turn it on (offline, in a temp dir) themselves
# two threads, one per worker under pytest -n (two workers on two cores)
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, torch.get_num_threads()))

from model_discovery.design import Design, load_design  # noqa: E402
from model_discovery.design.library import design_names, library_design_path  # noqa: E402
from model_discovery.lm import load_ladder  # noqa: E402
from model_discovery.sandbox import bwrap_available  # noqa: E402

LIBRARY = design_names()
CPU_RUNGS = [s.name for s in load_ladder("cpu").rungs]
NEEDS_BWRAP = pytest.mark.skipif(not bwrap_available(), reason="bubblewrap is not usable here (no user namespaces)")
WITH_AND_WITHOUT_BWRAP = [pytest.param(True, marks=NEEDS_BWRAP, id="bwrap"), pytest.param(False, id="fallback")]


@pytest.fixture(scope="session")
def library_design():
    """Loads a library design by name (once per session)."""
    cache: dict[str, Design] = {}

    def get(name: str) -> Design:
        if name not in cache:
            cache[name] = load_design(library_design_path(name))
        return cache[name]

    return get


@pytest.fixture(scope="session")
def cpu_ladder():
    return load_ladder("cpu")


@pytest.fixture(scope="session")
def verified_llama(tmp_path_factory):
    """A `modis verify` output folder: llama briefly trained at cpu-1m on the synthetic corpus (shared, read-only)."""
    from filelock import FileLock

    from model_discovery.verify.run import verify

    # under pytest -n the workers share one (the folder above each worker's base temp dir is this run's)
    root = tmp_path_factory.getbasetemp()
    out = (root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root) / "verified-llama"
    with FileLock(f"{out}.lock"):
        if not (out / "metrics.json").is_file():
            verify("llama", "cpu-1m", corpus="synthetic", blimp="synthetic", out=out, max_steps=40)
    return out


POSTGRES = os.environ.get("MODIS_TEST_POSTGRES_URL")


@pytest.fixture
def postgres_url():
    """A fresh database on the PostgreSQL test server (`.ci/run` starts one on 127.0.0.1), dropped afterwards: tests
    running side by side never share one."""
    if not POSTGRES:
        pytest.skip("no PostgreSQL server: set MODIS_TEST_POSTGRES_URL (.ci/run starts one with scripts/postgres.sh)")
    import uuid

    from sqlalchemy import create_engine, make_url, text

    server = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"modis_test_{uuid.uuid4().hex[:12]}"
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    with server.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    server.dispose()


@pytest.fixture
def s3_endpoint(monkeypatch):
    """moto's S3 server on loopback with a bucket `modis-runs`, and the fake credentials a cluster's secrets would
    hold."""
    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    url = f"http://127.0.0.1:{port}"
    import s3fs

    s3fs.S3FileSystem(client_kwargs={"endpoint_url": url}, skip_instance_cache=True).mkdir("modis-runs")
    yield url
    # moto keeps its buckets in this process, not in the server: reset them for the next test's server
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST")).close()
    server.stop()
