"""Design: proposal and reviews (the agent dialog), unit tree, code, check findings, metrics per rung with loss
curves and minimal pairs by phenomenon, lineage; export to Hugging Face, queue the next rung."""

from pathlib import Path

import pandas as pd
import streamlit as st

from model_discovery.design.tree import slot_paths
from model_discovery.evolution.store import Store
from model_discovery.ui.common import current_run, live_refresh
from model_discovery.ui.data import metrics_of
from model_discovery.verify.kinds import kind_of

st.title("Design")
run = current_run()
if run is not None:
    live_refresh(run)
    names = list(run.designs["name"])
    wanted = st.session_state.pop("design", None) or st.query_params.get("design")  # a link, else the URL
    name = st.selectbox("Design", names, index=names.index(wanted) if wanted in names else len(names) - 1)
    st.query_params["design"] = name
    store = Store(run.config.get("store") or run.run_dir)
    design = store.design(name)
    row = run.design_row(name)
    fit = "-" if pd.isna(row["fitness"]) else f"{row['fitness']:.3f} at {row['rung']}"
    st.markdown(f"**{name}** — {design.status}, made by {design.mode}"
                f"{' of ' + ', '.join(design.parents) if design.parents else ''}; fitness {fit}")

    lineage, chain = [], design.parents[:1]
    while chain:  # first parents back to a reference
        lineage.append(chain[0])
        chain = store.design(chain[0]).parents[:1]
    children = [d["name"] for _, d in run.designs.iterrows() if name in d["parents"]]
    st.caption(f"Lineage: {' ← '.join([name, *lineage])}" + (f" · children: {', '.join(children)}" if children else ""))

    verifications = metrics_of(run, name)  # read once: the Metrics and Actions tabs share it
    tabs = st.tabs(["Proposal & reviews", "Unit tree & code", "Checks", "Metrics", "Actions"])
    with tabs[0]:
        proposal = design.proposal or {}
        if proposal:
            st.markdown(f"#### {proposal.get('title', '')}")
            st.write(proposal.get("motivation", ""))
            st.write(proposal.get("change", ""))
        sessions = [s for s in store.sessions() if s.design_id == design.id]
        for session in sessions:
            st.caption(f"session {session.id}: {session.operator} → {session.outcome} ({session.wall_s:.1f} s, "
                       f"${session.cost_usd:.4f})")
            for turn in session.dialog:
                content = turn.get("content")
                label = turn["role"] + (f" (attempt {turn['attempt']})" if "attempt" in turn else "")
                if turn["role"] == "reviewer" and isinstance(content, dict):
                    label += f" — rating {content.get('rating')}"
                with st.expander(label):
                    st.json(content, expanded=False) if isinstance(content, dict | list) else st.write(content)
        if not sessions and design.status == "reference":
            st.info("A reference design from the library.")
    with tabs[1]:
        tree = design.unit_tree()
        lines = [f"{'  ' * (path.count('/') + bool(path))}{name} [{spec.slot}] {spec.args or ''} — "
                 f"{spec.origin or 'written here'}" for path, name in slot_paths(tree) for spec in [tree.units[name]]]
        st.code("\n".join(lines), language="text")
        st.code(design.source, language="python", line_numbers=True)
    with tabs[2]:
        checks = store.checks(design.id)
        if not checks:
            st.info("No check recorded (references are checked by the test suite).")
        for check in checks:
            st.markdown(f"**{'accepted' if check.accepted else 'rejected'}** — params {check.params}")
            if check.findings:
                st.dataframe(pd.DataFrame(check.findings), hide_index=True, width="stretch")
            if check.metrics:
                st.json(check.metrics, expanded=False)
    with tabs[3]:
        if not verifications:
            st.info("Not verified yet.")
        for v in verifications:
            m = v["metrics"]
            seed = v["metrics"].get("seed")
            st.markdown(f"#### {v['scale']} — {v['status']}" + (f" (training seed {seed})" if seed else ""))
            st.caption(v["data"])
            if v["status"] == "stopped":  # early stopping: its probes so far, and the rule that stopped it
                stop = m.get("stopped") or {}
                st.warning(f"stopped early at step {stop.get('step')} ({stop.get('fraction', 0):.0%} of its "
                           f"tokens): {stop.get('rule', '')}")
                probes = pd.DataFrame(m.get("curve") or [])
                if len(probes):
                    st.line_chart(probes.set_index("step")[["val_loss"]])
                continue
            if v["status"] != "done":
                st.error(v["error"][-1500:])
                continue
            cols = st.columns(4)
            cols[0].metric("held-out loss", f"{m['val_loss']:.3f}")
            kind = kind_of(m)
            accuracy = kind.accuracy(m)
            cols[1].metric(kind.accuracy_of, f"{accuracy if accuracy is not None else float('nan'):.3f}")
            cols[2].metric("params", f"{m.get('params', 0):,}")
            cols[3].metric("tokens/s", f"{m.get('tokens_per_s', 0):,.0f}")
            if v["curve"]:
                curve = pd.DataFrame(v["curve"])
                st.line_chart(curve.set_index("step")[["loss"]] if "step" in curve else curve[["loss"]])
            if items := kind.by_item(m):
                st.bar_chart(pd.Series(items, name="accuracy"), horizontal=True)
    with tabs[4]:
        done = [v for v in verifications if v["status"] == "done" and v["artifacts"]
                and "://" not in v["artifacts"] and (Path(v["artifacts"]) / "model.safetensors").is_file()]
        if done:
            target = Path(run.run_dir) / "exports" / f"{name}-{done[-1]['scale']}"
            if st.button(f"Export {name} ({done[-1]['scale']}) to Hugging Face format"):
                from model_discovery.export.hf import export_hf

                out = export_hf(done[-1]["artifacts"], target)
                st.success(f"Wrote {out}: AutoModelForCausalLM.from_pretrained('{out}', trust_remote_code=True)")
        else:
            st.caption("Export needs a verified model in the run folder.")
        if run.config and design.status != "check_failed":
            from model_discovery.workflow.build import make_policy, open_run

            policy = make_policy(open_run(run.run_dir).resolved())
            rungs = [r.name for r in policy.ladder.rungs]
            have = {v["scale"] for v in verifications} | set(
                run.jobs.loc[run.jobs["name"] == name, "scale"])
            nxt = next((r for r in rungs if r not in have), None)
            if nxt and st.button(f"Queue verification at {nxt}"):
                from model_discovery.workflow.policy import Plan, Todo
                from model_discovery.workflow.snapshot import Reader

                plan = Plan("verify", [Todo(design.id, nxt, priority=50)])
                for job in policy.jobs(Reader(store).snapshot(), plan):
                    store.enqueue(*job)
                st.success(f"Queued {name} at {nxt}: `modis worker --store {store.url}` or a running "
                           "`modis evolve` will take it.")
    store.engine.dispose()
