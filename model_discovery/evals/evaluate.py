"""``modis eval``: lm-eval's ``simple_evaluate`` with the ``modis`` model and the project's task configs.

No dependence on the ``.pth`` plugin registration (which stays, for ``lm_eval --model modis``): the model object is
handed to lm-eval directly, and the task configs in ``evals/`` (or ``$MODIS_EVALS``) are included by path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def tasks_dir() -> Path:
    """``$MODIS_EVALS``, or the ``evals/`` folder of this checkout or the installed package."""
    from model_discovery.resources import project_dir

    return Path(os.environ.get("MODIS_EVALS") or project_dir("evals"))


def evaluate(path: str | Path, tasks: list[str], include_paths: list[str] | None = None, batch_size: int = 64,
             limit: float | None = None, device: str | None = None, sandbox: bool = True,
             metadata: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Scores the ``modis verify`` output folder ``path`` on lm-eval ``tasks`` (names or groups, ours or
    lm-eval's); returns lm-eval's ``results`` (task -> metric -> value)."""
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    from model_discovery.evals.lm_eval_model import ModisLM

    if not tasks:
        raise ValueError("name at least one task, e.g. --tasks modis_synthetic")
    model = ModisLM(path=str(path), batch_size=batch_size, device=device, sandbox=sandbox)
    paths = [str(tasks_dir()), *(include_paths or [])]
    manager = TaskManager(include_path=paths, include_defaults=False, metadata=metadata)  # ours: a fast index
    if any(t not in manager.all_tasks for t in tasks):  # lm-eval's own tasks too (indexing them takes a while)
        manager = TaskManager(include_path=paths, metadata=metadata)
    unknown = [t for t in tasks if t not in manager.all_tasks]
    if unknown:
        from model_discovery.registry import did_you_mean

        raise KeyError(f"no lm-eval task {unknown[0]!r}.{did_you_mean(unknown[0], manager.all_tasks)}")
    out = simple_evaluate(model=model, tasks=tasks, task_manager=manager, limit=limit, log_samples=False,
                          metadata=metadata)
    return out["results"]
