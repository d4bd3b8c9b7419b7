"""The Streamlit app: ``streamlit run model_discovery/ui/app.py`` (``./run_demo.sh`` does it for you)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from model_discovery.ui.common import VIEWS, run_dir
from model_discovery.ui.data import list_runs

st.set_page_config(page_title="Model Discovery", page_icon=":material/genetics:", layout="wide")

with st.sidebar:
    st.markdown("### Model Discovery")
    runs = list_runs()
    current = run_dir()
    options = list(dict.fromkeys([str(p) for p in ([current] if current else []) + runs]))
    if options:
        st.session_state["run_dir"] = st.selectbox("Run", options, index=0)
    typed = st.text_input("…or a run folder", value="", placeholder="runs/discover-…")
    if typed and Path(typed, "store.db").is_file():
        st.session_state["run_dir"] = typed

here = VIEWS
pages = [st.Page(here / "overview.py", title="Overview", icon=":material/monitoring:", default=True),
         st.Page(here / "tree.py", title="Tree", icon=":material/account_tree:"),
         st.Page(here / "design.py", title="Design", icon=":material/biotech:"),
         st.Page(here / "leaderboard.py", title="Leaderboard", icon=":material/leaderboard:"),
         st.Page(here / "units.py", title="Units", icon=":material/extension:"),
         st.Page(here / "library.py", title="Library", icon=":material/menu_book:"),
         st.Page(here / "launch.py", title="Launch", icon=":material/rocket_launch:")]
st.navigation(pages).run()
