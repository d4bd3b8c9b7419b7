"""Where ``verify`` jobs run: ``local`` (a sandboxed subprocess on this machine, the default) or ``ray`` (one Ray
task per job, with CPU/GPU resources; the task itself starts the same sandboxed subprocess on its node, so design
code never runs inside a Ray worker). Both take the keyword arguments of :func:`~model_discovery.verify.run.verify`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from model_discovery.registry import Registry
from model_discovery.verify.run import verify


class Runner(Protocol):
    name: str

    def run(self, job: dict[str, Any]) -> dict:
        """Verifies one job (``verify``'s keyword arguments) and returns its metrics."""
        ...

    def map(self, jobs: Sequence[dict[str, Any]]) -> list[dict | Exception]:
        """Runs jobs (concurrently where the runner can); a failed job gives its exception in its place."""
        ...


RUNNERS: Registry[type] = Registry("runner")


@RUNNERS.register("local")
class LocalRunner:
    """One job after another on this machine."""

    name = "local"

    def run(self, job: dict[str, Any]) -> dict:
        return verify(**job)

    def map(self, jobs: Sequence[dict[str, Any]]) -> list[dict | Exception]:
        results: list[dict | Exception] = []
        for job in jobs:
            try:
                results.append(self.run(job))
            except Exception as exc:  # one failed design must not lose the others' results
                results.append(exc)
        return results


def _verify_task(job: dict[str, Any]) -> dict:
    return verify(**job)


@RUNNERS.register("ray")
class RayRunner:
    """Jobs as Ray tasks. Connects to ``address`` (``auto``: a running cluster) or starts a local Ray; each task
    asks for ``num_cpus``/``num_gpus``. ``init_kwargs`` go to ``ray.init`` (e.g. ``_temp_dir``)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: float = 1, num_gpus: float = 0, **init_kwargs):
        try:
            import ray
        except ImportError as exc:
            raise ImportError("the ray runner needs Ray: pip install 'model-discovery[ray]'") from exc
        self.ray = ray
        if not ray.is_initialized():
            ray.init(address=address, include_dashboard=False, log_to_driver=False, **init_kwargs)
        self.task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(_verify_task)

    def run(self, job: dict[str, Any]) -> dict:
        return self.ray.get(self.task.remote(job))

    def map(self, jobs: Sequence[dict[str, Any]]) -> list[dict | Exception]:
        refs = [self.task.remote(job) for job in jobs]
        results: list[dict | Exception] = []
        for ref in refs:
            try:
                results.append(self.ray.get(ref))
            except Exception as exc:  # RayTaskError wraps the job's own exception
                results.append(getattr(exc, "cause", None) or exc)
        return results


def get_runner(name: str = "local", **kwargs) -> Runner:
    return RUNNERS.get(name)(**kwargs)
