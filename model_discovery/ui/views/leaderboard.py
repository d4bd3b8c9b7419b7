"""Leaderboard: designs and references per rung, sortable; fitness over time, loss against parameters, promotions."""

import pandas as pd
import plotly.express as px
import streamlit as st

from model_discovery.ui.common import current_run, design_link, live_refresh

st.title("Leaderboard")
run = current_run()
if run is not None:
    live_refresh(run)
    designs = run.designs
    done = run.verifications[run.verifications["status"] == "done"]
    if done.empty:
        st.info("Nothing verified yet.")
        st.stop()
    rungs = [r for r in run.budgets if r in set(done["scale"])] or sorted(done["scale"].unique())
    rung = st.radio("Rung", rungs, horizontal=True)
    kind = dict(zip(designs["name"], designs["status"]))
    at = done[(done["scale"] == rung) & ~done["noise_run"].astype(bool)].copy()
    at["reference"] = at["name"].map(kind).eq("reference")
    at["fitness"] = [run.fitness.get((name, rung)) for name in at["name"]]
    table = at[["name", "reference", "fitness", "val_loss", "accuracy", "params", "wall_s"]].sort_values(
        "fitness", ascending=False, na_position="last")
    others = int((done["noise_run"].astype(bool) & (done["scale"] == rung)).sum())
    if others:
        st.caption(f"{others} more verifications at {rung} with other training seeds (the noise floor and the best "
                   "design's confirmation) are on the overview.")
    event = st.dataframe(table, hide_index=True, width="stretch", on_select="rerun",
                         selection_mode="single-row", key="board")
    rows = getattr(getattr(event, "selection", None), "rows", []) if event else []
    if rows:
        design_link(table.iloc[rows[0]]["name"])

    left, right = st.columns(2)
    with left:
        produced = at[~at["reference"] & at["fitness"].notna()].sort_values("created")
        if not produced.empty:
            produced = produced.assign(order=range(1, len(produced) + 1), best=produced["fitness"].cummax())
            fig = px.scatter(produced, x="order", y="fitness", hover_name="name",
                             title=f"Fitness over time ({rung})", labels={"order": "design (in order of verification)"})
            fig.add_scatter(x=produced["order"], y=produced["best"], mode="lines", name="best so far")
            st.plotly_chart(fig, width="stretch")
    with right:
        fig = px.scatter(at, x="params", y="val_loss", color="reference", hover_name="name",
                         title=f"Held-out loss against parameters ({rung})")
        st.plotly_chart(fig, width="stretch")
    st.subheader("Promotions")
    ladder = pd.crosstab(done["name"], done["scale"]).reindex(columns=list(run.budgets), fill_value=0)
    promoted = ladder[(ladder.iloc[:, 1:].sum(axis=1) > 0)] if ladder.shape[1] > 1 else ladder.iloc[0:0]
    st.bar_chart(ladder.sum(axis=0).rename("designs verified"))
    st.dataframe(promoted.astype(bool), width="stretch")
