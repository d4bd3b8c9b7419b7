"""Running untrusted design code: a child process per run, isolated by namespaces, limits and an audit hook."""

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from model_discovery.sandbox.limits import Limits
from model_discovery.sandbox.runner import ProcessSandbox, SandboxResult, bwrap_available, isolation_level


class Sandbox(Protocol):
    """Runs trusted ``target(payload)`` (which may load untrusted code) away from this process."""

    isolation: str

    def run(self, target: str, payload: dict, files: dict[str, str] | None = None,
            limits: Limits | None = None, workdir: Path | None = None,
            read_only: Sequence[Path] = ()) -> SandboxResult:
        """Returns what the target returned, or why it did not (timeout, signal, exception, violations)."""
        ...


__all__ = ["Limits", "ProcessSandbox", "Sandbox", "SandboxResult", "bwrap_available", "isolation_level"]
