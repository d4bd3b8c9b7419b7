"""Launch: start a run, or resume one, in a background process; follow its progress here."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import streamlit as st

from model_discovery.ui.common import run_dir
from model_discovery.ui.data import runs_root

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
    (folder / PID).write_text(str(proc.pid))
    st.session_state["run_dir"] = str(folder)


with st.form("new"):
    st.subheader("New run")
    prompt = st.text_input("Research prompt", "discover me a new model")
    c1, c2, c3 = st.columns(3)
    design_budget = c1.number_input("Design sessions", 1, 10_000, 11, key="design_budget")
    verify_budget = c2.number_input("Verifications at the lowest rung", 0, 10_000, 8, key="verify_budget")
    seed = c3.number_input("Seed", 0, 2**31 - 1, 0)
    c4, c5, c6 = st.columns(3)
    backend = c4.selectbox("Designer", ["offline", "openai", "anthropic"])
    corpus = c5.text_input("Corpus", "synthetic", help="'synthetic', a file or folder, or a name under "
                                                        "$MODIS_DATA_DIR/corpus (e.g. gutenberg)")
    blimp = c6.text_input("Minimal pairs", "synthetic", help="'synthetic', blimp, blimp_filtered, or 'none'")
    c7, c9, c8 = st.columns([1, 1, 2])
    workers = c7.number_input("Verification workers", 1, 256, 1, key="workers",
                              help="verifications running at once, in worker processes beside the design sessions")
    synthesis = c9.checkbox("Synthesize operators", True, key="synthesis",
                            help="the offline designer invents token and channel mixers from the operator grammar")
    folder = c8.text_input("Run folder", str(runs_root() / time.strftime("ui-%Y%m%d-%H%M%S")), key="folder")
    if st.form_submit_button("Start"):
        if Path(folder, "config.json").exists():
            st.error(f"{folder} already holds a run: resume it below.")
        else:
            start(Path(folder), ["discover", prompt, "--run-dir", folder, "--design-budget", str(design_budget),
                                 "--verify-budget", str(verify_budget), "--seed", str(seed), "--backend", backend,
                                 "--corpus", corpus, "--blimp", blimp, "--workers", str(workers),
                                 "--synthesis", "on" if synthesis else "off"])
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
