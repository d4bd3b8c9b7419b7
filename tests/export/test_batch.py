"""Beaker specs (checked with beaker-py's models) and sbatch scripts that run `modis verify`."""

import subprocess

import pytest
from beaker import BeakerExperimentSpec

from model_discovery.cli import main
from model_discovery.export.batch import DESIGN_ENV, BatchJob, slurm_script

DESIGN = "tests/fixtures/external_design.py"


def test_beaker_spec_for_a_library_design_round_trips(tmp_path):
    path = tmp_path / "spec.yaml"
    assert main(["export", "beaker", "llama", "--scale", "gpu-14m", "--image", "modis:latest", "--cluster",
                 "ai2/x", "--budget", "ai2/b", "--out", str(path)]) == 0
    spec = BeakerExperimentSpec.from_file(path)
    (task,) = spec.tasks
    assert task.resources.gpu_count == 1 and task.image.docker == "modis:latest" and spec.budget == "ai2/b"
    assert task.constraints.cluster == ["ai2/x"] and task.result.path == "/results"
    assert task.command[:2] == ["bash", "-c"]
    assert "modis verify llama --scale gpu-14m" in task.command[2] and "--out /results" in task.command[2]


def test_a_design_file_travels_inside_the_spec(tmp_path):
    path = tmp_path / "spec.yaml"
    assert main(["export", "beaker", DESIGN, "--image", "modis:latest", "--out", str(path)]) == 0
    (task,) = BeakerExperimentSpec.from_file(path).tasks
    env = {e.name: e.value for e in task.env_vars}
    assert env[DESIGN_ENV] == open(DESIGN).read()
    assert task.resources.gpu_count == 0  # a cpu rung
    assert f'"${DESIGN_ENV}" > /results/design.py' in task.command[2]


def test_unknown_rung_is_refused(tmp_path, capsys):
    assert main(["export", "beaker", "llama", "--scale", "gpu-15m", "--image", "x", "--out",
                 str(tmp_path / "s.yaml")]) == 2
    assert "gpu-14m" in capsys.readouterr().err  # did you mean


def test_sbatch_script_is_valid_bash_and_writes_the_design_back(tmp_path):
    job = BatchJob(design=DESIGN, scale="cpu-1m", out=str(tmp_path / "res"))
    script = slurm_script(job, partition="gpu", setup="true")
    assert script.startswith("#!/bin/bash\n#SBATCH --job-name=modis-external_design-cpu-1m")
    assert "--gres" not in script and "#SBATCH --partition=gpu" in script
    path = tmp_path / "job.sbatch"
    path.write_text(script.replace("modis verify", "echo modis verify"))  # run it up to the verify call
    proc = subprocess.run(["bash", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "res" / "design.py").read_text() == open(DESIGN).read().rstrip("\n")
    assert f"modis verify {tmp_path}/res/design.py --scale cpu-1m" in proc.stdout


@pytest.mark.parametrize("scale,gres", [("gpu-14m", "#SBATCH --gres=gpu:1"), ("cpu-2m", None)])
def test_gpu_rungs_ask_for_a_gpu(scale, gres):
    script = slurm_script(BatchJob(design="llama", scale=scale))
    assert (gres in script) if gres else ("--gres" not in script)
