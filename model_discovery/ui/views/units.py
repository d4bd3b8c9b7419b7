"""Units: which inventions pay. Every unit of the run's catalogue with its origin, the design that introduced it, how
many checked and verified designs use it and their fitness per rung, sortable; a unit's designs, each a link."""

from pathlib import Path

import pandas as pd
import streamlit as st

from model_discovery.ui.common import current_run, design_link, live_refresh
from model_discovery.workflow.units import ORIGINS, unit_uses


@st.cache_data(ttl=3, show_spinner=False)
def _rows(path: str, store: str | None) -> list[dict]:
    return unit_uses(path, store)


st.title("Units")
run = current_run()
if run is not None:
    live_refresh(run)
    rows = _rows(str(run.run_dir), run.config.get("store"))
    origins = st.multiselect("Origin", ORIGINS, default=list(ORIGINS), key="origins")
    shown = [r for r in rows if r["origin"] in origins]
    table = pd.DataFrame(shown, columns=list(rows[0]) if rows else None).drop(columns=["designs"])
    st.caption(f"{len(shown)} of {len(rows)} units. *checked*: the run's designs that passed their checks and use "
               "the unit (the references aside); *verified*: those verified at some rung; *best* and *mean*: their "
               "fitness at each rung. Click a column's header to sort, a row to see the unit's designs.")
    names = [r["unit"] for r in shown]

    def pick() -> None:  # a click on a row chooses its unit below
        clicked = st.session_state["units"].selection.rows
        if clicked:
            st.session_state["unit"] = names[clicked[0]]

    st.dataframe(table, hide_index=True, width="stretch", on_select=pick, selection_mode="single-row", key="units")
    unit = st.selectbox("Unit", names, index=None, placeholder="choose a unit", key="unit")
    if unit:
        row = next(r for r in shown if r["unit"] == unit)
        if row["introduced_by"]:
            st.markdown(f"**{unit}** ({row['slot']}): {row['origin']}, introduced by **{row['introduced_by']}**, "
                        "whose Design page shows its code.")
            if st.button(f"Open {row['introduced_by']}"):
                design_link(row["introduced_by"])
        else:
            st.markdown(f"**{unit}** ({row['slot']}): from the library, `{row['source']}`")
            with st.expander("Code"):
                st.code(Path(row["source"]).read_text(), language="python")
        users = run.designs[run.designs["name"].isin(row["designs"])]
        st.subheader(f"Designs that use {unit}")
        if users.empty:
            st.info("No design of the run that passed its checks uses it.")
        else:
            lineage = users[["name", "mode", "parents", "fitness", "rung", "val_loss"]]
            chosen = st.dataframe(lineage, hide_index=True, width="stretch", on_select="rerun",
                                  selection_mode="single-row", key="unit_designs")
            clicked = getattr(getattr(chosen, "selection", None), "rows", []) if chosen else []
            if clicked:
                design_link(lineage.iloc[clicked[0]]["name"])
            name = st.selectbox("Open a design", ["", *lineage["name"]], index=0, key="unit_design")
            if name:
                design_link(name)
