import os
import shutil

import pytest


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh store: a SQLite file, or a fresh database on the PostgreSQL test server."""
    if request.param == "sqlite":
        return str(tmp_path)
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def local_ray(monkeypatch):
    """A local Ray with two CPUs, shut down afterwards."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    temp = f"/tmp/ray-{os.getpid()}"  # Ray's socket paths must stay short
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)
