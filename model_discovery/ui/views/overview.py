"""Overview: budgets used and left, designs by status, costs, the best design against the references."""

import time
from pathlib import Path

import pandas as pd
import streamlit as st

from model_discovery.lm.baselines import Standing
from model_discovery.ui.common import current_run, design_link, live_refresh
from model_discovery.verify.fidelity import MIN_INTERVAL, ci_text
from model_discovery.verify.noise import sign_flip_text


def _table_section(title: str, caption: str, rows: list[dict]) -> None:
    st.subheader(title)
    st.caption(caption)
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


st.title("Overview")
run = current_run()
if run is not None:
    live_refresh(run)
    designs = run.designs
    produced = designs[designs["status"] != "reference"]
    st.caption(f"`{run.run_dir}` — prompt: *{run.config.get('prompt', '?')}*"
               + (" — **running**" if run.running else ""))
    verified = run.verifications[run.verifications["status"] == "done"]
    lowest = next(iter(run.budgets), None)
    cols = st.columns(5)
    cols[0].metric("Designs", len(produced))
    cols[1].metric("Passed the checker", int((produced["status"] == "checked").sum()))
    stopped = int((run.verifications["status"] == "stopped").sum())
    cols[2].metric("Verified (lowest rung)", int(verified[(verified["scale"] == lowest)
                                                           & verified["name"].isin(produced["name"])].shape[0]),
                   help=f"and {stopped} stopped early (worse than the references by more than their noise, "
                        "or than most designs before them at half of their tokens)")
    cols[3].metric("CPU time", f"{run.costs['cpu_s'] / 60:.1f} min",
                   help=f"GPU time {run.costs['gpu_s'] / 60:.1f} min")
    cols[4].metric("LLM cost", f"${run.costs['llm_usd']:.2f}")

    left, right = st.columns(2)
    with left:
        st.subheader("Budgets per rung")
        for rung, b in run.budgets.items():
            share = b["used"] / b["budget"] if b["budget"] else 1.0
            st.progress(min(1.0, share), text=f"{rung}: {b['used']} of {b['budget']} used, "
                                              f"{max(0, b['budget'] - b['used'])} left")
        st.subheader("Designs by status")
        st.bar_chart(designs["status"].value_counts())
        jobs = run.jobs["status"].value_counts().to_dict()
        st.caption("Verification jobs: " + (", ".join(f"{k} {v}" for k, v in jobs.items()) or "none yet"))
    with right:
        st.subheader("Best design against the references")
        ranked = designs.dropna(subset=["fitness"])
        ranked = ranked[ranked["status"] != "reference"]
        if ranked.empty:
            st.info("No design verified against the references yet.")
        else:
            top_rung = ranked["rung"].map(list(run.budgets).index).max()
            at_top = ranked[ranked["rung"] == list(run.budgets)[top_rung]].sort_values("fitness", ascending=False)
            best = at_top.iloc[0]
            refs = designs[(designs["status"] == "reference") & (designs["rung"] == best["rung"])]
            table = pd.concat([at_top.head(1), refs]).loc[:, ["name", "status", "fitness", "val_loss", "accuracy",
                                                              "params"]]
            st.markdown(f"**{best['name']}** at {best['rung']}: fitness {best['fitness']:.3f}, held-out loss "
                        f"{best['val_loss']:.3f}")
            st.dataframe(table, hide_index=True, width="stretch")
            if st.button(f"Open {best['name']}"):
                design_link(best["name"])
        fid = (run.report or {}).get("fidelity")
        if fid:
            _table_section("Proxy fidelity", "Does a lower rung rank designs as a higher one does? Rank "
                           "correlations over the designs verified at both, with a permutation p-value "
                           f"and, from {MIN_INTERVAL} designs, bootstrap 95% intervals (`modis fidelity`).", [
                               {"rungs": f"{p['low']} → {p['high']}", "metric": metric, "n": a["n"],
                                "Spearman": round(a["spearman"], 2), "p": a.get("p"),
                                "95% CI": ci_text(a["spearman_ci"]), "Kendall": round(a["kendall"], 2)}
                               for p in fid["pairs"] for metric, a in p["agreement"].items() if a])
            plot = Path(run.run_dir) / "fidelity.png"
            if plot.is_file():
                st.image(str(plot))
        known = (run.report or {}).get("best_known")
        if known:
            _table_section("Best known designs", "Every library design's standing at each rung on this corpus and "
                           "budget (mean held-out loss over its measured seeds), from the ladder's table: the "
                           "reference `best` is the first of each rung.", [
                               {"rung": rung, "rank": i + 1, "design": name, "mean val loss": round(loss, 4),
                                "seeds": len(standing["losses"][name])}
                               for rung, standing in known.items()
                               for i, (name, loss) in enumerate(Standing(**standing).ranked())])
        noise = (run.report or {}).get("noise")
        if noise:
            _table_section("Seed noise", "The references' held-out loss with each training seed, and their "
                           "pooled seed-to-seed standard deviation: a win smaller than that is not a finding.", [
                               {"rung": rung, "reference": name,
                                **{f"seed {s}": x for s, x in zip(floor["seeds"], losses)},
                                "std (pooled)": floor["std"], "designs spread": floor["spread"]}
                               for rung, floor in noise.items() for name, losses in floor["losses"].items()])
            claim = ((run.report or {}).get("best") or {}).get("confirmation")
            if claim:
                verdict = "confirmed" if claim["confirmed"] else "not confirmed"
                st.markdown(f"**Claim {verdict}** at {claim['rung']}: margin {claim['mean']:+.3f} nats over seeds "
                            f"{', '.join(map(str, claim['seeds']))} (95% t-interval {claim['low']:+.3f} to "
                            f"{claim['high']:+.3f}; {sign_flip_text(claim.get('p_exact'), len(claim['seeds']))}; "
                            f"noise floor {claim['noise'] or 0:.4f}).")
        st.subheader("Recent events")
        for event in reversed(run.events[-8:]):
            st.text(f"{time.strftime('%H:%M:%S', time.localtime(event['created']))}  {event['message'][:110]}")
