"""The evolution loop as a LangGraph graph, checkpointed in the run folder::

    decide ─┬─ design ─┐
      ↑     ├─ verify ─┴→ update ─┐
      │     └─ report → END       │
      └───────────────────────────┘

``decide`` reads the store and picks the next step: design while the design budget lasts and few designs wait for
verification, otherwise verify (references at a rung first, then every design at the lowest rung, then
promotions as the ladder's budgets allow). ``design`` runs one design session, ``verify`` one verification job,
``update`` scores the rungs, ``report`` writes the report. All state that matters lives in the store, and each step
is idempotent against it, so a run killed at any moment resumes from the checkpoint without losing a design or
verifying one twice.
"""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from model_discovery.agents.offline import GeneticDesigner, features, knn_surrogate
from model_discovery.evolution.selector import Candidate, make_selector, promotable, rung_budgets
from model_discovery.evolution.store import Store
from model_discovery.evolution.worker import Worker, data_key
from model_discovery.lm import Ladder
from model_discovery.verify.fitness import FitnessReport, Verified, compute_fitness

REFERENCE_PRIORITY, PROMOTION_PRIORITY, FIRST_RUNG_PRIORITY = 100, 20, 10


@dataclass
class Plan:
    """What the store says should happen next."""

    action: str  # design | verify | wait | report
    todo: list[tuple[int, str, int]] = field(default_factory=list)  # (design id, rung, priority) to enqueue


@dataclass
class Loop:
    """Everything the nodes share: the store, the worker, the settings (:class:`~.build.DiscoveryConfig`)."""

    store: Store
    worker: Worker
    config: Any
    ladder: Ladder
    knowledge: Any = None
    on_step: Any = None  # called with (action, message) after each step: the progress display

    # -- the ladder --------------------------------------------------------------------------------------------
    def budgets(self) -> dict[str, int]:
        return rung_budgets([r.name for r in self.ladder.rungs], self.config.verify_budget,
                            self.ladder.selection_ratio)

    def data(self, rung: str) -> str:
        scale = self.ladder.rung(rung)
        return data_key(self.config.corpus, self.config.blimp, self.steps(rung) * scale.batch_tokens)

    def steps(self, rung: str) -> int:
        scale = self.ladder.rung(rung)
        return max(1, round(scale.steps * self.config.train_fraction))

    def payload(self, rung: str) -> dict:
        blimp = None if self.config.blimp in (None, "none") else self.config.blimp
        return {"corpus": self.config.corpus, "blimp": blimp, "seed": self.config.seed, "max_steps": self.steps(rung)}

    # -- scores ------------------------------------------------------------------------------------------------
    def fitness(self, rung: str) -> FitnessReport | None:
        """Fitness of every design verified at ``rung`` (on this run's data) against the references there."""
        rows = self.store.verifications(scale=rung, data=self.data(rung))
        if not rows:
            return None
        by_id = {d.id: d for d in self.store.designs()}
        records = [Verified(name=by_id[v.design_id].name, metrics=v.metrics,
                            reference=by_id[v.design_id].status == "reference") for v in rows]
        if not any(r.reference for r in records):
            return None
        return compute_fitness(records, self.ladder.rung(rung).vocab)

    def candidates(self) -> list[Candidate]:
        """Parents the selector may draw: designs with a genome that passed their check, with their fitness at the
        highest rung they were verified at."""
        rows = [d for d in self.store.designs() if d.genome and d.status != "check_failed"]
        rungs = [r for r, b in self.budgets().items() if b > 0] or [self.ladder.rungs[0].name]
        best: dict[str, tuple[float, float]] = {}
        for i, rung in enumerate(rungs):
            report = self.fitness(rung)
            for score in report.scores if report else []:
                best[score.name] = (score.fitness, (i + 1) / len(rungs))
        children: dict[str, int] = {}
        for d in self.store.designs():
            for parent in d.parents:
                children[parent] = children.get(parent, 0) + 1
        return [Candidate(d.name, *best.get(d.name, (None, 0.0)), children=children.get(d.name, 0)) for d in rows]

    def surrogate(self):
        lowest = self.ladder.rungs[0].name
        report = self.fitness(lowest)
        if report is None:
            return None
        genomes = {d.name: d.genome for d in self.store.designs() if d.genome}
        verified = [(features(genomes[s.name]), s.fitness) for s in report.scores if s.name in genomes]
        return knn_surrogate(verified) if verified else None

    # -- planning ----------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        budgets = self.budgets()
        designs = self.store.designs()
        refs = {d.id for d in designs if d.status == "reference"}
        ref_ids = [d.id for d in designs if d.name in self.config.references]
        names = {d.id: d.name for d in designs}
        ids = {d.name: d.id for d in designs}
        jobs = self.store.jobs()
        design_left = self.config.design_budget - self.store.n_sessions()
        todo: list[tuple[int, str, int]] = []
        settled_below = True
        for k, scale in enumerate(self.ladder.rungs):
            rung, budget = scale.name, budgets[scale.name]
            data = self.data(rung)
            here = [j for j in jobs if j.scale == rung and j.data == data]
            have = {j.design_id for j in here}
            already = {j.design_id for j in here if j.design_id not in refs}
            active = any(j.status in ("queued", "running") for j in here)
            if k == 0:
                waiting = [d.id for d in designs if d.status == "checked" and d.id not in have]
                picks = waiting[:max(0, budget - len(already))]
                settled = not active and not picks and (len(already) >= budget or design_left <= 0)
                priority = FIRST_RUNG_PRIORITY
            else:
                below = self.ladder.rungs[k - 1].name
                report = self.fitness(below)
                if report:
                    ranked = [s.name for s in sorted(report.scores, key=lambda s: -s.fitness)
                              if ids[s.name] not in refs]
                else:  # no reference verified there (they failed): rank by held-out loss
                    done = [v for v in self.store.verifications(scale=below, data=self.data(below))
                            if v.design_id not in refs]
                    ranked = [names[v.design_id] for v in sorted(done, key=lambda v: v.metrics["val_loss"])]
                picks = [ids[n] for n in promotable(ranked, {names[i] for i in already}, budget,
                                                    self.ladder.selection_ratio, settled_below)]
                settled = settled_below and not active and not picks
                priority = PROMOTION_PRIORITY + k
            if picks or already:
                todo += [(i, rung, REFERENCE_PRIORITY + k) for i in ref_ids if i not in have]
            todo += [(i, rung, priority) for i in picks]
            settled_below = settled
        queued = [j for j in jobs if j.status == "queued"]
        running = [j for j in jobs if j.status == "running"]
        waiting_first = sum(1 for _, rung, p in todo if p == FIRST_RUNG_PRIORITY)
        waiting_first += sum(1 for j in queued if j.scale == self.ladder.rungs[0].name and j.design_id not in refs)
        if design_left > 0 and waiting_first < self.config.lookahead:
            return Plan("design", todo)
        if todo or queued:
            return Plan("verify", todo)
        if design_left > 0:
            return Plan("design", todo)
        if running:
            return Plan("wait", todo)
        return Plan("report", todo)

    # -- steps -------------------------------------------------------------------------------------------------
    def design(self) -> str:
        from model_discovery.agents.spec import load_specs
        from model_discovery.workflow.design import run_session

        cfg = self.config
        index = self.store.n_sessions()
        designer = GeneticDesigner(cfg.prompt, seed=cfg.seed * 100_003 + index, knowledge=self.knowledge)
        selector = make_selector(cfg.selector, **cfg.selector_args)
        candidates = {c.name: c for c in self.candidates()}

        def select_parents(rows, k):
            chosen = selector.select([candidates[r.name] for r in rows if r.name in candidates], k, designer.rng)
            by_name = {r.name: r for r in rows}
            return [by_name[c.name] for c in chosen]

        if cfg.backend == "offline":
            produced = sum(1 for d in self.store.designs() if d.status != "reference")
            result = run_session(self.store, designer, load_specs(), cfg.prompt, cfg.check_scale, cfg.check,
                                 select_parents=select_parents, surrogate=self.surrogate(),
                                 operator=cfg.modes.choose(produced, designer.rng))
        else:
            result = self._llm_session(designer.rng, select_parents)
        return f"session {index + 1}: {result.operator} → {result.outcome} ({result.reason[:80]})"

    def _llm_session(self, rng: random.Random, select_parents):
        from model_discovery.agents.llm import CostMeter, make_backend
        from model_discovery.agents.llm_session import run_llm_session
        from model_discovery.agents.session import _default_model
        from model_discovery.agents.spec import load_specs

        cfg = self.config
        specs = load_specs(backend=cfg.backend, model=cfg.model, base_url=cfg.base_url)
        cap = None if cfg.cost_cap is None else max(0.0, cfg.cost_cap - self.store.costs()["llm_usd"])
        meter = CostMeter(cap_usd=cap)
        backends = {role: make_backend(cfg.backend, spec.model or _default_model(cfg.backend), spec.base_url,
                                       meter=meter, temperature=spec.temperature, max_tokens=spec.max_tokens,
                                       max_reprompts=spec.max_reprompts) for role, spec in specs.items()}
        parent = select_parents([d for d in self.store.designs() if d.genome and d.status != "check_failed"], 1)[0]
        return run_llm_session(self.store, backends, specs, parent, cfg.prompt, self.knowledge, cfg.check_scale)

    def verify(self, plan: Plan) -> str:
        for design_id, rung, priority in plan.todo:
            self.store.enqueue(design_id, rung, self.data(rung), self.payload(rung), priority)
        job = self.worker.run_one()
        if job is None:
            time.sleep(self.config.poll_s)
            return "waiting for verifications running elsewhere"
        name = self.store.design(job.design_id).name
        if job.status == "done":
            (row,) = [v for v in self.store.verifications(scale=job.scale, data=job.data)
                      if v.design_id == job.design_id]
            blimp = (row.metrics.get("blimp") or {}).get("acc")
            pairs = f", pairs {blimp:.3f}" if blimp is not None else ""
            return f"verified {name} at {job.scale}: val loss {row.metrics['val_loss']:.3f}{pairs}"
        return f"{name} at {job.scale}: {job.status} {job.error[-120:]}"


class EvolveState(TypedDict, total=False):
    action: str
    steps: int
    last: str


def build_evolve_graph(loop: Loop, checkpoint: Path):
    """The compiled evolve graph over ``loop``, checkpointed in the SQLite file ``checkpoint``."""
    plans: dict[str, Plan] = {}

    def decide(state: EvolveState) -> dict:
        plan = loop.plan()
        plans["current"] = plan
        return {"action": plan.action}

    def design(state: EvolveState) -> dict:
        return {"last": loop.design()}

    def verify(state: EvolveState) -> dict:
        plan = plans.get("current") or loop.plan()  # after a resume the plan is made again from the store
        return {"last": loop.verify(plan) if plan.action in ("verify", "wait") else "nothing to verify"}

    def update(state: EvolveState) -> dict:
        plans.pop("current", None)
        steps = state.get("steps", 0) + 1
        loop.store.add_event("step", state.get("last", ""), step=steps, action=state.get("action"))
        if loop.on_step:
            loop.on_step(state.get("action"), state.get("last", ""))
        return {"steps": steps}

    def report(state: EvolveState) -> dict:
        return {"last": "report"}

    graph = StateGraph(EvolveState)
    for name, fn in (("decide", decide), ("design", design), ("verify", verify), ("update", update),
                     ("report", report)):
        graph.add_node(name, fn)
    graph.add_edge(START, "decide")
    graph.add_conditional_edges("decide", lambda s: {"wait": "verify"}.get(s["action"], s["action"]),
                                ["design", "verify", "report"])
    graph.add_edge("design", "update")
    graph.add_edge("verify", "update")
    graph.add_edge("update", "decide")
    graph.add_edge("report", END)
    conn = sqlite3.connect(str(checkpoint), check_same_thread=False)
    return graph.compile(checkpointer=SqliteSaver(conn))
