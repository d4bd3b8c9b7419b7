"""Weights & Biases logging of a verification, done by the parent after the sandboxed job (the child has no
network and may not start processes): the job's ``train_log.jsonl`` is replayed as the run's history and the final
metrics become its summary.

Offline by default (``OUT/wandb/offline-run-*``, sync later with ``wandb sync``); set ``WANDB_MODE=online`` (and
log in) to stream, or ``WANDB_MODE=disabled`` to skip. ``WANDB_PROJECT`` names the project (default ``modis``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from model_discovery.verify.trainer import LOG


def wandb_mode() -> str:
    return os.environ.get("WANDB_MODE", "offline")


def log_to_wandb(out: Path, metrics: dict, name: str, config: dict) -> str | None:
    """Logs one verification; returns the run's local folder, or None when W&B is disabled."""
    if wandb_mode() == "disabled":
        return None
    import wandb

    run = wandb.init(project=os.environ.get("WANDB_PROJECT", "modis"), name=name, config=config, dir=str(out),
                     mode=wandb_mode(), job_type="verify", reinit="create_new",
                     settings=wandb.Settings(silent=wandb_mode() == "offline"))  # online prints the run's link
    try:
        log = out / LOG
        for line in (log.read_text().splitlines() if log.is_file() else []):
            record = json.loads(line)
            run.log({f"train/{k}": v for k, v in record.items() if k != "step"}, step=record["step"])
        blimp = metrics.get("blimp") or {}
        run.summary.update({k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and k != "blimp"})
        if blimp:
            run.summary.update({"blimp/acc": blimp["acc"],
                                **{f"blimp/{k}": v for k, v in blimp["by_phenomenon"].items()}})
        return str(Path(run.dir).parent)
    finally:
        run.finish()
