"""``modis export beaker|slurm``: a cluster job of ``modis worker`` processes that serve a run's shared store.

A verification is dispatched one way: it is a job in the store's queue, run by whichever worker claims it. A batch
job is ``workers`` copies of ``modis worker`` (a SLURM job array, or Beaker replicas) that reach the store over the
network — a server database such as PostgreSQL, since machines cannot share a SQLite file — and put each
verification's kept outputs in ``artifacts`` (``s3://bucket/prefix``). The run that queues the jobs
(``modis discover --store URL --artifacts URL``) may live anywhere that reaches the same store.

Secrets never enter a spec: the store's URL (which holds the database password) can come from an environment
variable (``store_env``), and every variable named in ``secrets`` comes from the cluster — a Beaker secret, or the
environment ``sbatch`` is called from (SLURM passes it on to the job). Beaker specs are built and checked with
``beaker-py``'s spec models.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from model_discovery.lm import load_ladder

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# names that hold credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, HF_TOKEN, PGPASSWORD): never plain values
SECRET_NAME = re.compile(r"SECRET|PASSWORD|TOKEN|ACCESS_KEY", re.IGNORECASE)


def shared_store(url: str) -> str:
    """``url`` when machines can share it; a SQLite file or a local folder is refused."""
    scheme = url.partition("://")[0] if "://" in url else ""
    if not scheme or scheme.split("+")[0] == "sqlite":
        raise ValueError(f"the store {url!r} is a SQLite file on this machine, which a cluster's workers cannot share; "
                         "a cluster needs a server database such as PostgreSQL (postgresql+psycopg://user@host/db), "
                         "given as a URL or as an environment variable that holds it")
    return url


def _shell_word(text: str) -> str:
    """``text`` as one double-quoted shell word, in which the job's shell still expands ``$VARIABLES``."""
    return '"' + re.sub(r'(["\\`])', r"\\\1", text) + '"'


class BatchJob(BaseModel):
    """Workers on a cluster: where the queue and the outputs are, how many workers and what each one gets."""

    model_config = ConfigDict(extra="forbid")

    store: str | None = Field(None, description="the run's store: a server database's SQLAlchemy URL, e.g. "
                              "postgresql+psycopg://user@host/modis (a password here is written into the spec)")
    store_env: str | None = Field(None, description="an environment variable the cluster sets to the store's URL "
                                  "(keeps its password out of the spec)")
    artifacts: str | None = Field(None, description="where the kept outputs go: s3://bucket/prefix, or a folder "
                                  "every node mounts (default: the work folder, lost with the job)")
    # node-local scratch: fast, and removed with the job where the cluster sets a per-job TMPDIR; nothing in it must
    # outlive the job, since the metrics go to the store and the kept outputs to the artifacts
    work_dir: str = Field("${TMPDIR:-/tmp}/modis-work", description="scratch folder for the jobs inside the "
                          "cluster job (the job's shell expands $VARIABLES)")
    follow: bool = Field(False, description="keep polling for new jobs instead of stopping when the queue is empty")
    workers: int = Field(1, ge=1, description="copies of the worker: a SLURM job array, or Beaker replicas")
    ladder: str = Field("cpu", description="the ladder whose jobs the workers run (sizes the default GPU count)")
    gpus: int | None = Field(None, ge=0, description="GPUs per worker (default: 1 on the gpu ladder, else 0)")
    cpus: int = Field(8, gt=0, description="CPUs per worker")
    memory: str = Field("64GiB", description="memory per worker")
    env: dict[str, str] = Field(default_factory=dict, description="plain environment variables written into the "
                                "spec, e.g. AWS_ENDPOINT_URL (no secrets)")
    secrets: dict[str, str] = Field(default_factory=dict, description="environment variables the cluster supplies: "
                                    "NAME to the Beaker secret that holds it (SLURM: sbatch's environment)")

    @field_validator("ladder")
    @classmethod
    def _known_ladder(cls, ladder: str) -> str:
        load_ladder(ladder)  # an unknown one fails here, naming the shipped ladders
        return ladder

    @model_validator(mode="after")
    def _checked(self) -> BatchJob:
        if (self.store is None) == (self.store_env is None):
            raise ValueError("the workers need the run's store: give its URL (store) or the environment variable "
                             "that holds it (store_env), not both")
        if self.store is not None:
            shared_store(self.store)
        for name in [*([self.store_env] if self.store_env else []), *self.env, *self.secrets]:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an environment variable name (letters, digits and _)")
        if leaked := [name for name in self.env if SECRET_NAME.search(name)]:
            raise ValueError(f"{', '.join(leaked)} would be written into the spec in plain text; pass credentials "
                             "as secrets, which the cluster supplies")
        return self

    def resolved_gpus(self) -> int:
        return self.gpus if self.gpus is not None else load_ladder(self.ladder).gpus

    def cluster_env(self) -> dict[str, str]:
        """The variables the cluster supplies: NAME → the Beaker secret holding it (the store's, by default, a
        secret of the variable's own name)."""
        return {**({self.store_env: self.store_env} if self.store_env else {}), **self.secrets}

    def shell_command(self) -> str:
        """``modis worker --store … --work-dir … [--artifacts …] [--follow]``, for the job's shell."""
        store = _shell_word(f"${self.store_env}") if self.store_env else shlex.quote(self.store or "")
        words = ["modis", "worker", "--store", store, "--work-dir", _shell_word(self.work_dir)]
        if self.artifacts:
            words += ["--artifacts", shlex.quote(self.artifacts)]
        return " ".join(words + (["--follow"] if self.follow else []))

    def describe(self) -> str:
        store = f"${self.store_env}" if self.store_env else re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", self.store or "")
        return (f"{self.workers} modis worker(s) for the {self.ladder} ladder on the store {store}"
                + (f", artifacts in {self.artifacts}" if self.artifacts else ""))


def _beaker():
    try:
        import beaker
    except ImportError as exc:
        raise RuntimeError("Beaker specs need beaker-py: pip install 'model-discovery[beaker]'") from exc
    return beaker


def beaker_spec(job: BatchJob, image: str, cluster: str | list[str] | None = None, budget: str | None = None,
                priority: str | None = None, beaker_image: bool = False):
    """A ``BeakerExperimentSpec`` of one task with ``job.workers`` replicas (``image`` is a Docker image with
    model-discovery installed, or a Beaker image with ``beaker_image``). Replicas are independent workers of one
    queue: one that fails does not stop the others, and its job goes back to the queue when its lease runs out."""
    beaker = _beaker()
    replicas = {"replicas": job.workers, "propagate_failure": False} if job.workers > 1 else {}
    spec = beaker.BeakerExperimentSpec.new(
        budget=budget, task_name="modis-worker", description=job.describe(), cluster=cluster, priority=priority,
        **({"beaker_image": image} if beaker_image else {"docker_image": image}),
        command=["bash", "-c", job.shell_command()], **replicas,
        resources=beaker.BeakerTaskResources(gpu_count=job.resolved_gpus(), cpu_count=job.cpus, memory=job.memory))
    task = spec.tasks[0]
    for name, value in sorted(job.env.items()):
        task = task.with_env_var(name, value)
    for name, secret in sorted(job.cluster_env().items()):
        task = task.with_env_var(name, secret=secret)
    spec.tasks[0] = task
    return spec


def write_beaker_spec(job: BatchJob, path: str | Path, **kwargs) -> Path:
    """Writes the spec as YAML and reads it back through ``beaker-py`` (a spec that does not round-trip fails)."""
    spec = beaker_spec(job, **kwargs)
    spec.to_file(path)
    if _beaker().BeakerExperimentSpec.from_file(path).to_json() != spec.to_json():
        raise ValueError(f"the Beaker spec written to {path} does not read back the same")
    return Path(path)


def _slurm_memory(memory: str) -> str:
    """``64GiB`` (Beaker's form) as SLURM writes it, ``64G``."""
    return re.sub(r"([KMGT])i?B$", r"\1", memory)


def slurm_script(job: BatchJob, partition: str | None = None, time: str = "24:00:00",
                 account: str | None = None, setup: str = "") -> str:
    """An sbatch script (a job array of ``job.workers`` tasks); ``setup`` is shell run first
    (``source .venv/bin/activate``, ``module load …``). The cluster's variables come from the environment sbatch
    is called from, which SLURM passes on; the script stops at once, naming the variable, when one is missing."""
    lines = ["#!/bin/bash", "#SBATCH --job-name=modis-worker"]
    if job.workers > 1:
        lines.append(f"#SBATCH --array=0-{job.workers - 1}")
    lines += [f"#SBATCH --cpus-per-task={job.cpus}", f"#SBATCH --mem={_slurm_memory(job.memory)}",
              f"#SBATCH --time={time}", f"#SBATCH --output=modis-worker-{'%A_%a' if job.workers > 1 else '%j'}.log"]
    if job.resolved_gpus():
        lines.append(f"#SBATCH --gres=gpu:{job.resolved_gpus()}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines += ["set -euo pipefail", *([setup] if setup else [])]
    lines += [f': "${{{name}:?set {name} in the environment sbatch is called from}}"' for name in job.cluster_env()]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in sorted(job.env.items())]
    lines.append(job.shell_command())
    return "\n".join(lines) + "\n"
