"""``modis export beaker|slurm``: a batch job that runs ``modis verify`` for one design at one rung elsewhere.

The job is self-contained: a library design is named; a design file travels inside the spec (its source is
written to the job's scratch folder before ``modis verify`` runs), so nothing but the image (or the cluster's
environment) must hold the project. Beaker specs are built and checked with ``beaker-py``'s spec models.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from model_discovery.lm import find_scale
from model_discovery.verify.run import design_source

DESIGN_ENV = "MODIS_DESIGN_SOURCE"


class BatchJob(BaseModel):
    """What to verify and with what resources (GPUs default to 1 on a gpu-ladder rung, else 0)."""

    model_config = ConfigDict(extra="forbid")

    design: str
    scale: str = "cpu-1m"
    corpus: str = "synthetic"
    blimp: str | None = "synthetic"
    seed: int = 0
    out: str = "/results"
    gpus: int | None = Field(None, ge=0)
    cpus: int = Field(8, gt=0)
    memory: str = "64GiB"
    env: dict[str, str] = Field(default_factory=dict)

    def resolved_gpus(self) -> int:
        return self.gpus if self.gpus is not None else int(find_scale(self.scale).name.startswith("gpu"))

    def library_name(self) -> str | None:
        """The design's library name when it is one (then no source travels)."""
        return None if Path(self.design).is_file() else design_source(self.design)[1]

    def verify_argv(self, design_path: str) -> list[str]:
        find_scale(self.scale)  # fails early, with the rung names, on a typo
        return ["modis", "verify", design_path, "--scale", self.scale, "--corpus", self.corpus,
                "--blimp", self.blimp or "none", "--seed", str(self.seed), "--out", self.out, "--json"]

    def shell_command(self) -> str:
        """The command, writing the design file from ``$MODIS_DESIGN_SOURCE`` first when it is not a library one."""
        name = self.library_name()
        if name is not None:
            return shlex.join(self.verify_argv(name))
        path = f"{self.out}/design.py"
        return (f'mkdir -p {shlex.quote(self.out)} && printf "%s" "${DESIGN_ENV}" > {shlex.quote(path)} && '
                + shlex.join(self.verify_argv(path)))

    def job_env(self) -> dict[str, str]:
        env = {"WANDB_MODE": "offline", **self.env}
        if self.library_name() is None:
            env[DESIGN_ENV] = Path(self.design).read_text()
        return env


def _beaker():
    try:
        import beaker
    except ImportError as exc:
        raise RuntimeError("Beaker specs need beaker-py: pip install 'model-discovery[beaker]'") from exc
    return beaker


def beaker_spec(job: BatchJob, image: str, cluster: str | list[str] | None = None, budget: str | None = None,
                priority: str | None = None, beaker_image: bool = False):
    """A ``BeakerExperimentSpec`` (``image`` is a Docker image, or a Beaker image with ``beaker_image``)."""
    beaker = _beaker()
    name = f"modis-verify-{job.library_name() or Path(job.design).stem}-{job.scale}".replace("_", "-")
    spec = beaker.BeakerExperimentSpec.new(
        budget=budget, task_name=name, description=f"modis verify {job.design} at {job.scale} on {job.corpus}",
        cluster=cluster, result_path=job.out, priority=priority,
        **({"beaker_image": image} if beaker_image else {"docker_image": image}),
        command=["bash", "-c", job.shell_command()],
        resources=beaker.BeakerTaskResources(gpu_count=job.resolved_gpus(), cpu_count=job.cpus, memory=job.memory))
    task = spec.tasks[0]
    for key, value in sorted(job.job_env().items()):
        task = task.with_env_var(key, value)
    spec.tasks[0] = task
    return spec


def write_beaker_spec(job: BatchJob, path: str | Path, **kwargs) -> Path:
    """Writes the spec as YAML and reads it back through ``beaker-py`` (a spec that does not round-trip fails)."""
    spec = beaker_spec(job, **kwargs)
    spec.to_file(path)
    if _beaker().BeakerExperimentSpec.from_file(path).to_json() != spec.to_json():
        raise ValueError(f"the Beaker spec written to {path} does not read back the same")
    return Path(path)


def slurm_script(job: BatchJob, partition: str | None = None, time: str = "24:00:00",
                 account: str | None = None, setup: str = "") -> str:
    """An sbatch script; ``setup`` is shell run before (``source .venv/bin/activate``, ``module load …``)."""
    lines = ["#!/bin/bash", f"#SBATCH --job-name=modis-{job.library_name() or Path(job.design).stem}-{job.scale}",
             f"#SBATCH --cpus-per-task={job.cpus}", f"#SBATCH --mem={job.memory.replace('GiB', 'G')}",
             f"#SBATCH --time={time}", "#SBATCH --output=modis-verify-%j.log"]
    if job.resolved_gpus():
        lines.append(f"#SBATCH --gres=gpu:{job.resolved_gpus()}")
    if partition:
        lines.append(f"#SBATCH --partition={partition}")
    if account:
        lines.append(f"#SBATCH --account={account}")
    lines += ["set -euo pipefail", *([setup] if setup else [])]
    for key, value in sorted(job.job_env().items()):
        if key == DESIGN_ENV:
            lines.append(f"{DESIGN_ENV}=$(cat <<'MODIS_DESIGN_EOF'\n{value}\nMODIS_DESIGN_EOF\n)")
            lines.append(f"export {DESIGN_ENV}")
        else:
            lines.append(f"export {key}={shlex.quote(value)}")
    lines.append(job.shell_command())
    return "\n".join(lines) + "\n"
