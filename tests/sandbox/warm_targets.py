"""Targets for the warm-sandbox tests: each leaves something behind that the next child must not see."""

from __future__ import annotations

import os
import subprocess

MARKER_ENV = "MODIS_WARM_LEFTOVER"


def litter(payload: dict) -> dict:
    """Leaves a sleeping process (in a session of its own if asked), a stray file in /tmp (if named), an
    environment variable and another working directory."""
    subprocess.Popen(["sleep", payload["sleep"]], start_new_session=payload["new_session"])
    if payload["name"]:
        open(f"/tmp/{payload['name']}", "w").write("stray")
    os.environ[MARKER_ENV] = "set"
    os.chdir("/")
    return {"pid": os.getpid()}


def look(payload: dict) -> dict:
    """What a later child sees of what ``litter`` left."""
    stray = bool(payload["name"]) and os.path.exists(f"/tmp/{payload['name']}")
    return {"stray_file": stray, "env": MARKER_ENV in os.environ, "cwd_is_work": os.path.isfile("request.json")}


def neighbours(payload: dict) -> dict:
    """What a child with a caller's own work folder sees of the folders beside it, and what it leaves in its own."""
    with open("kept.txt", "w") as fh:
        fh.write("kept")
    try:
        open(os.path.join("..", "dropped.txt"), "w").close()
        parent_writable = True
    except OSError:
        parent_writable = False
    return {"cwd": os.getcwd(), "sibling_visible": os.path.exists(payload["sibling"]),
            "parent_writable": parent_writable}
