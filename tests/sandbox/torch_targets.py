"""A sandbox target in a module that imports torch, as the project's targets (checker, training, evaluation) do."""

from __future__ import annotations

import os

import torch


def threads(payload: dict) -> dict:
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    return {"intra": torch.get_num_threads(), "inter": torch.get_num_interop_threads(), **env}
