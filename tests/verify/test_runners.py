"""Runners: the local one and Ray (a local `ray.init` with auth off and its files in a temp dir)."""

import os
import shutil

import pytest

from model_discovery.verify.runners import LocalRunner, get_runner

JOB = dict(design="gpt2", scale="cpu-1m", corpus="synthetic", blimp=None, max_steps=2)


def test_local_runner_keeps_going_past_a_failed_job(tmp_path):
    results = LocalRunner().map([{**JOB, "out": tmp_path / "a"}, {**JOB, "design": "nope", "out": tmp_path / "b"}])
    assert results[0]["train_tokens"] == 2 * 4096
    assert isinstance(results[1], FileNotFoundError)


def test_unknown_runner_suggests_the_known_ones():
    with pytest.raises(KeyError, match="local"):
        get_runner("locale")


def test_ray_runner_runs_each_job_as_a_task(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install '.[ray]')")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    temp = f"/tmp/ray-{os.getpid()}"  # Ray's socket paths must stay short
    try:
        runner = get_runner("ray", num_cpus=1, _temp_dir=temp)
        results = runner.map([{**JOB, "out": str(tmp_path / "a")}, {**JOB, "design": "nope",
                                                                    "out": str(tmp_path / "b")}])
        assert results[0]["train_tokens"] == 2 * 4096 and (tmp_path / "a" / "metrics.json").is_file()
        assert "nope" in str(results[1])
        assert runner.run({**JOB, "out": str(tmp_path / "a"), "max_steps": 3})["resumed_from_step"] == 2
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
