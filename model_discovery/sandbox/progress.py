"""Where a sandboxed target is: it notes its phase (and what it measured so far) in its work directory, and the
parent reads the note when the child runs out of time, so a time-out names its stage."""

from __future__ import annotations

from model_discovery.files import atomic_write

PROGRESS_FILE = "progress.txt"


def note(phase: str) -> None:
    """Records the phase the target is in (called in the sandboxed child, whose working directory is its own)."""
    atomic_write(PROGRESS_FILE, phase[:400])
