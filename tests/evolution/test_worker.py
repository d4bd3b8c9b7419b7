"""Workers: a verification's outputs kept (in the run folder or S3 through moto's server on loopback), design
failures final, infrastructure failures retried."""

import json
from pathlib import Path

import pytest

from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.store import Store
from model_discovery.evolution.worker import Worker
from model_discovery.verify.run import VerifyError


def fake_verify(design, scale, out, decide=None, **payload):
    """Stands in for training: what a real job leaves in its folder."""
    metrics = {"val_loss": 3.0 + len(Path(design).read_text()) % 7 / 10, "scale": scale.name, **payload}
    (Path(out) / "metrics.json").write_text(json.dumps(metrics))
    (Path(out) / "model.safetensors").write_bytes(b"weights")
    return metrics


def _queue(store: Store, names=("llama", "gpt2")) -> None:
    for name in names:
        store.enqueue(store.design(name).id, "cpu-1m", "data", {"max_steps": 1})


def test_worker_drains_the_queue_and_keeps_outputs(tmp_path):
    store = Store(tmp_path / "run", seed_references=True)
    _queue(store)
    worker = Worker(store, tmp_path / "run", verify_fn=fake_verify)
    assert worker.run() == 2
    rows = store.verifications()
    assert len(rows) == 2 and all(r.worker == worker.name for r in rows)
    for row in rows:
        assert json.loads((Path(row.artifacts) / "metrics.json").read_text())["max_steps"] == 1
        assert (Path(row.artifacts) / "source" / "design.py").is_file()
    assert store.costs()["cpu_s"] > 0


def test_a_design_failure_is_final_and_an_infrastructure_failure_retried(tmp_path):
    store = Store(tmp_path, seed_references=True)
    _queue(store)
    calls = []

    def flaky(design, scale, out, **payload):
        calls.append(Path(design).read_text()[:40])
        if len(calls) == 1:
            raise VerifyError("verifying llama at cpu-1m failed: loss is NaN")
        if len(calls) == 2:
            raise OSError("No space left on device")
        return fake_verify(design, scale, out, **payload)

    assert Worker(store, tmp_path, verify_fn=flaky).run() == 3  # the disk error is retried
    failed, = store.verifications(status="failed")
    assert "NaN" in failed.error and store.design(failed.design_id).name == "llama"
    assert [j.status for j in store.jobs()] == ["failed", "done"]
    assert store.jobs()[1].attempts == 2


def test_artifacts_on_s3(s3_endpoint, tmp_path):
    artifacts = Artifacts("s3://modis-runs/run-1", endpoint_url=s3_endpoint)
    assert artifacts.put_bytes("designs/d0001/design.py", b"class GAB: ...") == \
        "s3://modis-runs/run-1/designs/d0001/design.py"
    assert artifacts.get_bytes("designs/d0001/design.py") == b"class GAB: ..."
    assert not artifacts.exists("designs/d0002/design.py")

    store = Store(tmp_path / "run", seed_references=True)
    _queue(store, ["llama"])
    assert Worker(store, tmp_path / "run", artifacts, verify_fn=fake_verify).run() == 1
    (row,) = store.verifications()
    assert row.artifacts.startswith("s3://modis-runs/run-1/verify/llama-cpu-1m-")
    key = row.artifacts.removeprefix("s3://modis-runs/run-1/")
    assert json.loads(artifacts.get_bytes(f"{key}/metrics.json"))["val_loss"] == row.metrics["val_loss"]
    assert artifacts.get_bytes(f"{key}/model.safetensors") == b"weights"


def test_the_s3_endpoint_comes_from_the_environment(s3_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    artifacts = Artifacts("s3://modis-runs/run-2")
    artifacts.put_bytes("report.json", b"{}")
    assert Artifacts("s3://modis-runs", endpoint_url=s3_endpoint).get_bytes("run-2/report.json") == b"{}"


def test_local_artifacts_write_atomically(tmp_path):
    artifacts = Artifacts(tmp_path)
    artifacts.put_bytes("a/b.txt", b"x")
    assert artifacts.get_bytes("a/b.txt") == b"x" and artifacts.exists("a/b.txt")
    assert artifacts.url("a/b.txt") == str(tmp_path / "a" / "b.txt")
    assert artifacts.put_file("a/b.txt", tmp_path / "a" / "b.txt") == artifacts.url("a/b.txt")  # already in place
    assert [p.name for p in tmp_path.rglob("*")] == ["a", "b.txt"]


def test_artifacts_anywhere_fsspec_reaches(tmp_path):
    (tmp_path / "metrics.json").write_text("{}")
    artifacts = Artifacts("memory://modis-test/run-1")
    assert artifacts.put_dir("verify/job", tmp_path, ("metrics.json", "absent.pt")) == \
        "memory:///modis-test/run-1/verify/job"
    assert artifacts.get_bytes("verify/job/metrics.json") == b"{}"
    assert not artifacts.exists("verify/job/absent.pt")


def test_an_endpoint_url_needs_an_s3_location(tmp_path):
    with pytest.raises(ValueError, match="applies to S3 stores"):
        Artifacts(tmp_path, endpoint_url="http://127.0.0.1:9000")


def test_modis_worker_runs_a_real_job_from_the_store(tmp_path, capsys):
    from model_discovery.cli import main

    store = Store(tmp_path / "run", seed_references=True)
    store.enqueue(store.design("llama").id, "cpu-1m", "tiny", {"corpus": "synthetic", "blimp": None,
                                                                "max_steps": 1})
    assert main(["worker", "--store", store.url, "--work-dir", str(tmp_path / "work")]) == 0
    assert "1 jobs" in capsys.readouterr().out
    (row,) = store.verifications()
    assert row.metrics["train_tokens"] == 4096 and row.metrics["val_loss"] > 0
    assert (Path(row.artifacts) / "model.safetensors").is_file() and row.artifacts.startswith(str(tmp_path / "work"))
