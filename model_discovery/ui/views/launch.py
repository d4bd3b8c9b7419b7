"""Launch: start a run, or resume one, in a background process; follow its progress here. The form is built from
:class:`DiscoveryConfig` (its fields' types and descriptions) and starts the run from the file it writes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal, get_args, get_origin

import streamlit as st
from pydantic import ValidationError

from model_discovery.agents.llm import BACKENDS
from model_discovery.evolution.selector import SELECTORS
from model_discovery.files import atomic_write
from model_discovery.ui.common import run_dir
from model_discovery.ui.data import runs_root
from model_discovery.workflow.config import DiscoveryConfig

LOG, PID = "launch.log", "launch.pid"
st.title("Launch")


def alive(folder: Path) -> int | None:
    try:
        pid = int((folder / PID).read_text())
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, ValueError, ProcessLookupError, PermissionError):
        return None


def start(folder: Path, args: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOG, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "model_discovery.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "TQDM_MININTERVAL": "5"},
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Stop sends it
    atomic_write(folder / PID, str(proc.pid))
    st.session_state["run_dir"] = str(folder)


# settings whose choices are a registry's names (plugins included)
REGISTERED = {"backend": lambda: ["offline", *BACKENDS.names()], "selector": lambda: SELECTORS.names()}


def widget(column, name: str, value):
    """A form widget for a :class:`DiscoveryConfig` field (key ``new.NAME``), from its type; its description is the
    help."""
    field = DiscoveryConfig.model_fields[name]
    label = name.replace("_", " ").capitalize()
    choices = REGISTERED[name]() if name in REGISTERED else next(
        (list(get_args(a)) for a in (field.annotation, *get_args(field.annotation)) if get_origin(a) is Literal), [])
    if choices:
        return column.selectbox(label, choices, index=choices.index(value), key=f"new.{name}", help=field.description)
    if field.annotation is bool:
        return column.checkbox(label, value, key=f"new.{name}", help=field.description)
    if field.annotation in (int, int | None):
        least = next((m.ge for m in field.metadata if hasattr(m, "ge")), 0)
        return column.number_input(label, least, 10**9, int(value), key=f"new.{name}", help=field.description)
    text = "" if value is None else ",".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) \
        else str(value)
    return column.text_input(label, text, key=f"new.{name}", help=field.description) or None


DEFAULTS = DiscoveryConfig().resolved()  # the ladder's budgets for the fields left to it
LAYOUT = [("prompt",), ("design_budget", "verify_budget", "seed"), ("backend", "corpus", "blimp"),
          ("workers", "selector", "synthesis"), ("run_dir",)]

with st.form("new"):
    st.subheader("New run")
    values = {}
    for row in LAYOUT:
        for column, name in zip(st.columns(len(row)), row):
            default = getattr(DEFAULTS, name) if name != "run_dir" else runs_root() / time.strftime("ui-%Y%m%d-%H%M%S")
            values[name] = widget(column, name, default)
    if st.form_submit_button("Start"):
        folder = Path(values["run_dir"] or runs_root() / time.strftime("ui-%Y%m%d-%H%M%S"))
        try:
            config = DiscoveryConfig(**{**values, "run_dir": folder})
        except ValidationError as exc:
            st.error(str(exc))
        else:
            if Path(folder, "config.json").exists():
                st.error(f"{folder} already holds a run: resume it below.")
            else:
                folder.mkdir(parents=True, exist_ok=True)
                atomic_write(folder / "run.yaml", config.to_yaml())  # the run as a file: `modis discover --config`
                start(folder, ["discover", "--config", str(folder / "run.yaml")])
                st.success(f"Started in {folder}")

current = run_dir()
if current is not None and (current / "config.json").is_file():
    st.subheader(f"Run `{current}`")
    pid = alive(current)
    if pid:
        st.info(f"running (process {pid})")
        if st.button("Stop (the run resumes later)"):
            os.killpg(pid, signal.SIGINT)
    elif st.button("Resume"):
        start(current, ["evolve", "--run-dir", str(current), "--resume"])
        st.rerun()
    log = current / LOG
    if log.is_file():
        lines = log.read_text(errors="replace").replace("\r", "\n").splitlines()
        st.code("\n".join(line for line in lines[-25:] if line.strip()), language="text")
