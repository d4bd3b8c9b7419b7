"""What every page shares: which run is open, loading it (cached for a few seconds), the live-refresh switch."""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from model_discovery.ui.data import Run, latest_run, load_run

VIEWS = Path(__file__).parent / "views"


def run_dir() -> Path | None:
    """The open run: chosen in the sidebar, else ``MODIS_RUN_DIR`` (set by ``./run_demo.sh``), else the latest."""
    chosen = st.session_state.get("run_dir") or os.environ.get("MODIS_RUN_DIR")
    if chosen:
        return Path(chosen)
    return latest_run()


@st.cache_data(ttl=3, show_spinner=False)
def _load(path: str, mtime: float) -> Run:
    return load_run(path)


def current_run() -> Run | None:
    """The open run, or None (after telling the user how to start one)."""
    path = run_dir()
    if path is None or not (path / "store.db").is_file():
        st.info("No run yet. Start one on the **Launch** page, or run `make discover`, then reload.")
        return None
    return _load(str(path), _stamp(path))


def _stamp(path: Path) -> float:
    return max((path / n).stat().st_mtime for n in ("store.db", "store.db-wal") if (path / n).exists())


def live_refresh(run: Run) -> None:
    """While the run is going, the page reruns whenever the store changes (checked every 5 s); the sidebar
    switch turns it off."""
    if run.running and st.sidebar.toggle("Live refresh", value=True, key="live"):
        _watch(str(run.run_dir))


@st.fragment(run_every=5)
def _watch(path: str) -> None:
    stamp = _stamp(Path(path))
    if st.session_state.setdefault("_stamp", stamp) != stamp:
        st.session_state["_stamp"] = stamp
        st.rerun(scope="app")


def design_link(name: str) -> None:
    """Opens ``name`` on the Design page."""
    st.session_state["design"] = name
    st.switch_page(VIEWS / "design.py")
