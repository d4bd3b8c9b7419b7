"""Shipped scripts run as a user would run them."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here: run scripts/gpu_check.sh itself")
def test_gpu_check_says_there_is_no_gpu_and_succeeds():
    out = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True,
                         timeout=120, env={"PATH": "/usr/bin:/bin", "PY": sys.executable})
    assert out.returncode == 0, out.stderr
    assert "no CUDA GPU" in out.stdout
