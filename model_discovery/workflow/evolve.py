"""The evolution loop as a LangGraph graph, checkpointed in the run folder::

    decide ─┬─ design ─┐
      ↑     ├─ verify ─┴→ update ─┐
      │     └─ report → END       │
      └───────────────────────────┘

``decide`` takes a snapshot of the store, asks the run's planning policy (:mod:`.policy`) for the next step and
queues the verifications it asks for: design while the design budget lasts and what the next session may see is
verified, otherwise verify (references at a rung first, then every design at the lowest rung, then promotions as the
ladder's budgets allow). ``design`` runs one design session; ``verify`` runs one job here (the inline executor) or
waits until the workers (local processes or Ray actors, running beside the sessions) finish some; ``update``
records the step; ``report`` ends the graph. All state that matters lives in the store, and each step is idempotent
against it, so a run killed at any moment resumes from the checkpoint without losing a design or verifying one
twice.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.executors import Executor
from model_discovery.evolution.index import TreeIndex
from model_discovery.evolution.selector import make_selector
from model_discovery.evolution.store import Store
from model_discovery.workflow.design import Designers, SessionContext, run_session
from model_discovery.workflow.policy import Plan, Policy, Todo
from model_discovery.workflow.snapshot import Reader, Snapshot


@dataclass
class Loop:
    """The runner: applies the :class:`Policy`'s plans to the run's store with its executor and design sessions
    (the settings are ``policy.config``, a :class:`~.config.DiscoveryConfig`)."""

    store: Store
    executor: Executor
    artifacts: Artifacts
    policy: Policy
    knowledge: Any = None
    on_step: Any = None  # called with (action, message) after each step: the progress display
    designers: Designers | None = None  # who plays the design sessions; made at the first one
    reader: Reader = field(init=False)

    def __post_init__(self):
        self.reader = Reader(self.store)

    @property
    def index(self) -> TreeIndex:
        return self.reader.index

    def snapshot(self) -> Snapshot:
        return self.reader.snapshot()

    def plan(self) -> Plan:
        return self.policy.plan(self.snapshot())

    def enqueue(self, plan: Plan, snap: Snapshot | None = None) -> None:
        """Queues what the plan asks for (a job already queued, running or done is not queued twice)."""
        for job in self.policy.jobs(snap or self.snapshot(), plan):
            self.store.enqueue(*job)

    # -- steps -------------------------------------------------------------------------------------------------
    def design(self) -> str:
        """One design session, by the offline designer or the LLMs (``offline_share`` of an LLM run's sessions go
        to the offline designer), with parents from the selector."""
        cfg, snap = self.policy.config, self.snapshot()
        n = snap.index.n_sessions
        if self.designers is None:
            spent = self.store.costs()["llm_usd"]
            cap = None if cfg.cost_cap is None else max(0.0, cfg.cost_cap - spent)
            self.designers = Designers(cfg.backend, cfg.model, cfg.base_url, cap, cfg.offline_share,
                                       self.knowledge, cfg.prompt, cfg.synthesis)
        rng = random.Random(cfg.seed * 100_003 + n)
        roles, specs = self.designers.roles(rng, snap.index.catalogue)
        selector = make_selector(cfg.selector, **cfg.selector_args)
        candidates = {c.name: c for c in self.policy.candidates(snap)}

        def select_parents(names, k, rng):
            return [c.name for c in selector.select([candidates[n] for n in names if n in candidates], k, rng)]

        ctx = SessionContext(self.store, self.index, roles, specs, rng, cfg.prompt, cfg.check_scale, cfg.check,
                             cfg.modes, select_parents, self.policy.surrogate(snap))
        result = run_session(ctx)
        return (f"session {n + 1} ({result.designer}): {result.operator} → {result.outcome} "
                f"({result.reason[:80]})")

    def verify(self) -> str:
        """Runs one job here (inline), or waits for the workers to finish some (concurrent executors)."""
        finished = self.executor.step(self.policy.config.poll_s)
        if finished:
            return "; ".join(self._describe(job) for job in finished)
        states = [status for _, status in self.store.job_states()]
        return f"waiting: {states.count('running')} verifications running, {states.count('queued')} queued"

    def _describe(self, job) -> str:
        name = self.index.refresh().by_id[job.design_id].name
        if job.status != "done":
            return f"{name} at {job.scale}: {job.status} {job.error[-120:]}"
        (row,) = [v for v in self.store.verifications(scale=job.scale, data=job.data, status=None)
                  if v.design_id == job.design_id]
        if row.status == "stopped":
            return f"stopped {name} at {job.scale} ({row.worker}): {row.metrics['stopped'].get('rule', '')}"
        blimp = row.metrics.get("blimp") or {}
        pairs = f", pairs {blimp['acc']:.3f} ({len(blimp['by_phenomenon'])} phenomena)" if blimp.get("acc") else ""
        return f"verified {name} at {job.scale} ({row.worker}): val loss {row.metrics['val_loss']:.3f}{pairs}"


class EvolveState(TypedDict, total=False):
    """What the evolve graph checkpoints (plain data: the store holds everything else)."""

    action: str  # the plan's next step: design | verify | wait | report
    todo: list[list]  # the plan's verifications, as [design id, rung, priority, seed]
    steps: int
    last: str  # what the last step did


def _loop(config: RunnableConfig) -> Loop:
    """The run's :class:`Loop`, injected through the graph's config."""
    return config["configurable"]["loop"]


def decide(state: EvolveState, config: RunnableConfig) -> dict:
    loop = _loop(config)
    snap = loop.snapshot()
    plan = loop.policy.plan(snap)
    loop.enqueue(plan, snap)  # concurrent workers take jobs while the loop designs
    return {"action": plan.action, "todo": [list(t) for t in plan.todo]}


def design(state: EvolveState, config: RunnableConfig) -> dict:
    return {"last": _loop(config).design()}


def verify(state: EvolveState, config: RunnableConfig) -> dict:
    loop = _loop(config)
    # the plan decided on (a checkpoint written before plans were kept in the state: planned again from the store)
    plan = Plan(state["action"], [Todo(*t) for t in state["todo"]]) if "todo" in state else loop.plan()
    loop.enqueue(plan)
    return {"last": loop.verify() if plan.action in ("verify", "wait") else "nothing to verify"}


def update(state: EvolveState, config: RunnableConfig) -> dict:
    loop = _loop(config)
    steps = state.get("steps", 0) + 1
    loop.store.add_event("step", state.get("last", ""), step=steps, action=state.get("action"))
    if loop.on_step:
        loop.on_step(state.get("action"), state.get("last", ""))
    return {"steps": steps}


def report(state: EvolveState) -> dict:
    return {"last": "report"}


def evolve_graph(checkpoint: Path):
    """The compiled evolve graph, checkpointed in the SQLite file ``checkpoint``; invoke it with the run's
    :class:`Loop` as ``config["configurable"]["loop"]``."""
    conn = sqlite3.connect(str(checkpoint), check_same_thread=False)
    return EVOLVE_GRAPH.compile(checkpointer=SqliteSaver(conn))


def _evolve_graph() -> StateGraph:
    graph = StateGraph(EvolveState)
    for node in (decide, design, verify, update, report):
        graph.add_node(node.__name__, node)
    graph.add_edge(START, "decide")
    graph.add_conditional_edges("decide", lambda s: {"wait": "verify"}.get(s["action"], s["action"]),
                                ["design", "verify", "report"])
    graph.add_edge("design", "update")
    graph.add_edge("verify", "update")
    graph.add_edge("update", "decide")
    graph.add_edge("report", END)
    return graph


EVOLVE_GRAPH = _evolve_graph()
