"""Tree: parents → children, colour by fitness, shape by status; click a node to open its design."""

import streamlit as st

from model_discovery.ui.common import current_run, design_link, live_refresh
from model_discovery.ui.tree import figure

st.title("Tree")
run = current_run()
if run is not None:
    live_refresh(run)
    designs = run.designs
    c1, c2, c3 = st.columns([2, 2, 3])
    statuses = c1.multiselect("Status", sorted(designs["status"].unique()), default=sorted(designs["status"].unique()))
    modes = c2.multiselect("Made by", sorted(designs["mode"].unique()), default=sorted(designs["mode"].unique()))
    search = c3.text_input("Name contains", "")
    shown = designs[designs["status"].isin(statuses) & designs["mode"].isin(modes)]
    if search:
        shown = shown[shown["name"].str.contains(search, case=False, regex=False)]
    if st.checkbox("Only verified designs"):
        shown = shown[shown["fitness"].notna()]
    st.caption(f"{len(shown)} of {len(designs)} designs. Click a node to open it; drag to pan, scroll to zoom.")
    event = st.plotly_chart(figure(shown), on_select="rerun", selection_mode="points", key="tree",
                            width="stretch")
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", [])
    picked = [p.get("customdata") for p in points if p.get("customdata")]
    if picked:
        design_link(picked[0] if isinstance(picked[0], str) else picked[0][0])
    name = st.selectbox("Open a design", ["", *shown["name"]], index=0)
    if name:
        design_link(name)
