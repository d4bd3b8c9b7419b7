"""Beaker specs (checked with beaker-py's models) and sbatch scripts that run `modis worker` against a shared store;
one sbatch script runs for real against a PostgreSQL store and moto's S3 server on loopback."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from beaker import BeakerExperimentSpec
from pydantic import ValidationError

from model_discovery.cli import main
from model_discovery.evolution.key import DataKey
from model_discovery.evolution.store import Store
from model_discovery.evolution.worker import KEPT
from model_discovery.export.batch import BatchJob, slurm_script
from model_discovery.lm import find_scale

SECRET_VALUE = "hunter2-not-in-any-spec"


def test_beaker_spec_round_trips_with_replicas_and_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("MODIS_STORE_URL", f"postgresql+psycopg://modis:{SECRET_VALUE}@db/modis")
    path = tmp_path / "spec.yaml"
    assert main(["export", "beaker", "--store-env", "MODIS_STORE_URL", "--artifacts", "s3://modis-runs/r1",
                 "--workers", "3", "--ladder", "gpu", "--image", "modis:latest", "--cluster", "ai2/x",
                 "--budget", "ai2/b", "--env", "AWS_ENDPOINT_URL=https://s3.example", "--secret",
                 "AWS_ACCESS_KEY_ID=aws-key", "--secret", "AWS_SECRET_ACCESS_KEY", "--out", str(path)]) == 0
    spec = BeakerExperimentSpec.from_file(path)
    (task,) = spec.tasks
    assert task.replicas == 3 and task.propagate_failure is False
    assert task.resources.gpu_count == 1 and task.image.docker == "modis:latest" and spec.budget == "ai2/b"
    assert task.constraints.cluster == ["ai2/x"]
    assert task.command == ["bash", "-c", 'modis worker --store "$MODIS_STORE_URL" --work-dir '
                            '"${TMPDIR:-/tmp}/modis-work" --artifacts s3://modis-runs/r1']
    env = {e.name: (e.value, e.secret) for e in task.env_vars}
    assert env == {"AWS_ENDPOINT_URL": ("https://s3.example", None), "AWS_ACCESS_KEY_ID": (None, "aws-key"),
                   "AWS_SECRET_ACCESS_KEY": (None, "AWS_SECRET_ACCESS_KEY"),
                   "MODIS_STORE_URL": (None, "MODIS_STORE_URL")}
    assert SECRET_VALUE not in path.read_text()


def test_one_beaker_worker_has_no_replicas(tmp_path):
    path = tmp_path / "spec.yaml"
    assert main(["export", "beaker", "--store", "postgresql+psycopg://modis@db/modis", "--follow",
                 "--image", "modis:latest", "--out", str(path)]) == 0
    (task,) = BeakerExperimentSpec.from_file(path).tasks
    assert task.replicas is None and task.resources.gpu_count == 0  # the cpu ladder
    assert task.command[2].startswith("modis worker --store postgresql+psycopg://modis@db/modis ")
    assert task.command[2].endswith(" --follow") and not task.env_vars


def test_sbatch_script_is_a_valid_job_array(tmp_path):
    job = BatchJob(store_env="MODIS_STORE_URL", artifacts="s3://modis-runs/r1", workers=4,
                   env={"AWS_ENDPOINT_URL": "https://s3.example"})
    script = slurm_script(job, partition="cpu", account="lab", setup="source .venv/bin/activate")
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=modis-worker\n#SBATCH --array=0-3\n")
    assert "#SBATCH --output=modis-worker-%A_%a.log" in script and "#SBATCH --mem=64G\n" in script
    assert "#SBATCH --partition=cpu" in script and "#SBATCH --account=lab" in script
    assert script.endswith('modis worker --store "$MODIS_STORE_URL" --work-dir "${TMPDIR:-/tmp}/modis-work" '
                           "--artifacts s3://modis-runs/r1\n")
    path = tmp_path / "worker.sbatch"
    path.write_text(script)
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_sbatch_script_stops_when_the_cluster_lacks_a_variable(tmp_path):
    path = tmp_path / "worker.sbatch"
    path.write_text(slurm_script(BatchJob(store_env="MODIS_STORE_URL")))
    env = {k: v for k, v in os.environ.items() if k != "MODIS_STORE_URL"}
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "set MODIS_STORE_URL in the environment sbatch is called from" in proc.stderr


@pytest.mark.parametrize("ladder,gpus,gres", [("gpu", None, "#SBATCH --gres=gpu:1"), ("cpu", None, None),
                                              ("gpu", 2, "#SBATCH --gres=gpu:2"), ("gpu", 0, None)])
def test_the_gpu_ladder_asks_for_a_gpu(ladder, gpus, gres):
    script = slurm_script(BatchJob(store="postgresql+psycopg://db/modis", ladder=ladder, gpus=gpus))
    assert (gres in script) if gres else ("--gres" not in script)


@pytest.mark.parametrize("store", ["runs/r1", "sqlite:///runs/r1/store.db"])
def test_a_local_store_is_refused(store, tmp_path, capsys):
    assert main(["export", "slurm", "--store", store, "--out", str(tmp_path / "w.sbatch")]) == 2
    err = capsys.readouterr().err
    assert "a cluster needs a server database such as PostgreSQL" in err and store in err
    assert not (tmp_path / "w.sbatch").exists()


def test_credentials_are_refused_as_plain_variables_and_unknown_ladders_named():
    with pytest.raises(ValidationError, match="pass credentials as secrets"):
        BatchJob(store_env="MODIS_STORE_URL", env={"AWS_SECRET_ACCESS_KEY": SECRET_VALUE})
    with pytest.raises(ValidationError, match="not both"):
        BatchJob(store="postgresql+psycopg://db/modis", store_env="MODIS_STORE_URL")
    with pytest.raises(FileNotFoundError, match="shipped ladders: cpu, gpu"):
        BatchJob(store_env="MODIS_STORE_URL", ladder="gpx")


def test_the_sbatch_script_runs_a_real_job_from_postgresql_to_s3(postgres_url, s3_endpoint, tmp_path):
    import boto3

    store = Store(postgres_url, seed_references=True)
    data = DataKey.of("synthetic", None, find_scale("cpu-1m").batch_tokens).text  # one step, as Loop.data writes it
    assert store.enqueue(store.design("llama").id, "cpu-1m", data,
                         {"corpus": "synthetic", "blimp": None, "seed": 0, "max_steps": 1})
    job = BatchJob(store_env="MODIS_STORE_URL", artifacts="s3://modis-runs/run-1",
                   env={"AWS_ENDPOINT_URL": s3_endpoint}, secrets={"AWS_ACCESS_KEY_ID": "aws-key",
                                                                   "AWS_SECRET_ACCESS_KEY": "aws-secret"})
    script = slurm_script(job)
    assert all(line.startswith("#") for line in script.splitlines() if "SBATCH" in line)  # comments to bash
    path = tmp_path / "worker.sbatch"
    path.write_text(script)
    # what the cluster gives the job: its secrets, a scratch TMPDIR, and `modis` on the PATH
    env = {**os.environ, "MODIS_STORE_URL": postgres_url, "TMPDIR": str(tmp_path),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "1 jobs" in proc.stdout

    (done,) = store.jobs()
    assert done.status == "done"
    (row,) = store.verifications()
    assert row.metrics["val_loss"] > 0 and row.metrics["train_tokens"] == find_scale("cpu-1m").batch_tokens
    assert row.artifacts.startswith("s3://modis-runs/run-1/verify/llama-cpu-1m-")
    key = row.artifacts.removeprefix("s3://modis-runs/")
    listed = boto3.client("s3", endpoint_url=s3_endpoint).list_objects_v2(Bucket="modis-runs", Prefix=f"{key}/")
    uploaded = {obj["Key"].removeprefix(f"{key}/") for obj in listed["Contents"]}
    work = tmp_path / "modis-work" / key.removeprefix("run-1/")
    assert uploaded == {name for name in KEPT if (work / name).is_file()}
    assert {"metrics.json", "config.json", "model.safetensors", "train_log.jsonl"} <= uploaded
    body = boto3.client("s3", endpoint_url=s3_endpoint).get_object(Bucket="modis-runs", Key=f"{key}/metrics.json")
    assert json.loads(body["Body"].read())["val_loss"] == row.metrics["val_loss"]
    store.engine.dispose()
