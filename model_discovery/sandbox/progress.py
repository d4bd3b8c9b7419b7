"""Where a sandboxed target is: it notes its phase (and what it measured so far) in its work directory, and the
parent reads the note when the child runs out of time, so a time-out names its stage."""

from __future__ import annotations

import os

from model_discovery.files import atomic_write

PROGRESS_FILE = "progress.txt"


def note(phase: str) -> None:
    """Records the phase the target is in (in a sandboxed child, whose working directory is its own; called in any
    other process, e.g. a check run in the test process, it does nothing)."""
    if os.environ.get("MODIS_SANDBOXED") == "1":
        atomic_write(PROGRESS_FILE, phase[:400])
