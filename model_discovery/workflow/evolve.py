"""The evolution loop as a LangGraph graph, checkpointed in the run folder::

    decide ─┬─ design ─┐
      ↑     ├─ verify ─┴→ update ─┐
      │     └─ report → END       │
      └───────────────────────────┘

``decide`` reads the store and picks the next step: design while the design budget lasts and what the next session
may see is verified, otherwise verify (references at a rung first, then every design at the lowest rung, then
promotions as the ladder's budgets allow), and queues the verifications it asks for. ``design`` runs one design
session; ``verify`` runs one job here (the inline executor) or waits until the workers (local processes or Ray
actors, running beside the sessions) finish some; ``update`` records the step; ``report`` ends the graph. All
state that matters lives in the store, and each step is idempotent against it, so a run killed at any moment
resumes from the checkpoint without losing a design or verifying one twice.

The schedule is deterministic: what a decision sees never depends on which job happened to finish first, so a seed
grows the same tree with any executor and any number of workers.

- A design session draws its parents (and the surrogate its predictions) from the lowest rung's verifications of
  the references and of every design but the newest ``lookahead``, waiting for them where needed: a fixed lag, not
  "whatever finished by now".
- Promotions replay the rung below in queue order: its results are taken one at a time, as far as every earlier
  one is finished, and each step promotes what a one-job-at-a-time run would have promoted then.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass, field
from itertools import islice, takewhile
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from model_discovery.agents.offline import knn_surrogate
from model_discovery.evolution.artifacts import Artifacts
from model_discovery.evolution.early_stop import StopSettings
from model_discovery.evolution.executors import Executor
from model_discovery.evolution.index import PARENT_STATUSES, TreeIndex
from model_discovery.evolution.key import DataKey
from model_discovery.evolution.selector import Candidate, make_selector, promotable
from model_discovery.evolution.store import Store
from model_discovery.lm import Ladder
from model_discovery.lm.baselines import Standing, known_best, load_baselines
from model_discovery.verify.fitness import FitnessReport, Verified, compute_fitness
from model_discovery.verify.kinds import corpus_tokens, rung_kind
from model_discovery.workflow.design import Designers, SessionContext, run_session

REFERENCE_PRIORITY, PROMOTION_PRIORITY, FIRST_RUNG_PRIORITY, NOISE_PRIORITY = 100, 20, 10, 5


class Todo(NamedTuple):
    """A verification the plan asks for: ``seed`` None is the run's seed; another is a noise or confirmation run."""

    design_id: int
    rung: str
    priority: int
    seed: int | None = None


@dataclass
class Plan:
    """What the store says should happen next."""

    action: str  # design | verify | wait | report
    todo: list[Todo] = field(default_factory=list)  # verifications to enqueue


@dataclass
class Loop:
    """Everything the nodes share: the store, the executor, the settings (:class:`~.config.DiscoveryConfig`)."""

    store: Store
    executor: Executor
    artifacts: Artifacts
    config: Any
    ladder: Ladder
    knowledge: Any = None
    on_step: Any = None  # called with (action, message) after each step: the progress display
    index: TreeIndex = None  # type: ignore[assignment]
    designers: Designers | None = None  # who plays the design sessions; made at the first one
    _fitness: dict = field(default_factory=dict)  # rung -> (verification ids, report)
    _candidates: dict = field(default_factory=dict)  # name -> Candidate, kept up to date incrementally
    _candidates_state: tuple = (0, {})  # (designs seen, best fitness by name) when they were last updated
    _view_fitness: tuple = (None, None)  # (verification ids, report) of the view's designs at the lowest rung
    _replays: dict = field(default_factory=dict)  # rung -> (results replayed, designs promoted from it)
    _best_known: dict | None = None  # rung -> Standing (see best_known)
    _priors: dict | None = None  # name -> the fitness the ladder's table gives a library design (see priors)

    def __post_init__(self):
        self.index = self.index or TreeIndex(self.store)

    # -- the ladder --------------------------------------------------------------------------------------------
    def budgets(self) -> dict[str, int]:
        """Verifications allowed at each rung (resolved once, in the config)."""
        return dict(self.config.verify_budget)

    def data(self, rung: str, seed: int | None = None) -> str:
        """What a verification at ``rung`` is comparable with: the data and the budget, and a training seed other
        than the run's (noise-floor and confirmation runs never enter the rung's fitness)."""
        scale = self.ladder.rung(rung)
        kind = rung_kind(scale)
        key = DataKey.of(kind.data(self.config.corpus), self.config.blimp if kind.corpus else None,
                         self.steps(rung) * scale.batch_tokens)
        return key.on_seed(None if seed in (None, self.config.seed) else seed).text

    @property
    def extra_seeds(self) -> list[int]:
        """The seeds beside the run's that measure the noise floor and confirm the best design."""
        return [self.config.seed + i for i in range(1, self.config.noise_seeds)]

    def steps(self, rung: str) -> int:
        """Training steps at ``rung`` for the run's train fraction (as the rung's kind counts them)."""
        scale = self.ladder.rung(rung)
        return rung_kind(scale).steps(scale, self.config.train_fraction)

    def early_stop(self, design_id: int, rung: str, seed: int | None) -> dict:
        """The stopping rule's settings for a design's verification on the run's seed (references, noise and
        confirmation runs always finish and score everything): the references' verifications it is compared with,
        for early stopping and for the minimal pairs worth scoring."""
        cfg, index = self.config, self.index.refresh()
        if ((not cfg.early_stop and cfg.pairs_everywhere) or seed not in (None, cfg.seed)
                or design_id in index.references or not rung_kind(self.ladder.rung(rung)).corpus):
            return {}
        refs = [index.by_name[n].id for n in cfg.references if n in index.by_name]
        keys = [(i, self.data(rung, s)) for i in refs for s in [None, *self.extra_seeds]]
        data = self.data(rung)  # the designs queued before this one at the rung, on the run's seed
        earlier = [(j[1], data) for j in self.store.job_keys() if j[2] == rung and j[3] == data
                   and j[1] not in index.references and j[1] != design_id]
        settings = StopSettings(stop=cfg.early_stop, select_pairs=not cfg.pairs_everywhere, k=cfg.early_stop_k,
                                against=cfg.early_stop_against, references=keys, seed_data=data,
                                rank_at=0.5 if cfg.early_stop_rank else None,
                                rank_quantile=cfg.early_stop_rank or 0.5, earlier=earlier)
        return {"early_stop": settings.model_dump(mode="json")}

    def payload(self, rung: str, seed: int | None = None) -> dict:
        blimp = None if self.config.blimp in (None, "none") else self.config.blimp
        extra = {"eval_corpora": self.config.eval_corpora} if self.config.eval_corpora else {}
        if self.config.verify_cache not in (None, "none"):
            extra["cache"] = str(self.config.verify_cache)
        if self.config.threads:
            extra["threads"] = self.config.threads
        return {"corpus": self.config.corpus, "blimp": blimp, "seed": self.config.seed if seed is None else seed,
                "max_steps": self.steps(rung), **extra}

    # -- scores ------------------------------------------------------------------------------------------------
    def fitness(self, rung: str) -> FitnessReport | None:
        """Fitness of every design verified at ``rung`` (on this run's data) against the references there;
        computed again only when the rung's verifications change."""
        key = self.store.verification_ids(rung, self.data(rung))
        if self._fitness.get(rung, (None,))[0] != key:
            rows = self.store.verifications(scale=rung, data=self.data(rung))
            self._fitness[rung] = ([v.id for v in rows], self._score(rung, rows))
        return self._fitness[rung][1]

    def _score(self, rung: str, rows: list) -> FitnessReport | None:
        if not rows:
            return None
        by_id = self.index.refresh().by_id
        records = [Verified(name=by_id[v.design_id].name, metrics=v.metrics, reference=by_id[v.design_id].reference)
                   for v in rows]
        if not any(r.reference for r in records):
            return None
        scale = self.ladder.rung(rung)
        return rung_kind(scale).fitness(records, scale.vocab)

    def candidates(self) -> list[Candidate]:
        """Parents the selector may draw: the references and the designs that passed their checks, with their
        fitness at the lowest rung where the next session sees it (:meth:`view`; None for the newest designs)."""
        index = self.index.refresh()
        report = self.view_fitness()
        rungs = [r for r, b in self.budgets().items() if b > 0] or [self.ladder.rungs[0].name]
        best = {s.name: (s.fitness, 1 / len(rungs)) for s in report.scores} if report else {}
        # a library design the view has not verified: its standing in the ladder's table, where there is one
        best = {**{n: (f, 1 / len(rungs)) for n, f in self.priors().items() if n in index.by_name}, **best}
        if best:  # a design stopped early ranks with the worst of what the session sees
            first, view, worst = self.ladder.rungs[0].name, self.view(), min(f for f, _ in best.values())
            for v in self.store.verifications(scale=first, data=self.data(first), status="stopped"):
                if v.design_id in view:
                    best[index.by_id[v.design_id].name] = (worst, 1 / len(rungs))
        # only new designs, their parents (one more child) and designs whose fitness moved are rebuilt
        seen, best_before = self._candidates_state
        stale = {n for n in best.keys() | best_before.keys() if best.get(n) != best_before.get(n)}
        for d in index.designs[seen:]:
            if d.status in PARENT_STATUSES:
                self._candidates[d.name] = None
            stale.update((d.name, *d.parents))
        for name in stale & self._candidates.keys():
            self._candidates[name] = Candidate(name, *best.get(name, (None, 0.0)), children=index.children[name])
        self._candidates_state = (len(index.designs), best)
        return list(self._candidates.values())

    def best_known(self) -> dict[str, Standing]:
        """Rung -> the library's standing there on this run's corpus and budget, from the ladder's table of best
        known designs (read once; rungs without a row are left out)."""
        if self._best_known is None:
            cfg = self.config
            self._best_known = known_best(load_baselines(cfg.ladder), cfg.corpus,
                                          corpus_tokens(self.ladder.rungs, cfg.train_fraction))
        return self._best_known

    def priors(self) -> dict[str, float]:
        """Fitness the library designs are known to have at the lowest rung on this run's corpus and budget, from
        the ladder's table of best known designs (:mod:`model_discovery.lm.baselines`), on the table's own scale
        (its references' mean held-out loss is 1, as a rung's references' is): the selector's prior for the designs
        the run has not verified yet, so a run's first parents are not a blind draw. Empty without a table row."""
        if self._priors is None:
            scale = self.ladder.rungs[0]
            row = self.best_known().get(scale.name)
            records = [Verified(name=n, metrics={"val_loss": loss}, reference=n in self.config.references)
                       for n, loss in (row.ranked() if row else [])]
            self._priors = {s.name: s.fitness for s in compute_fitness(records, scale.vocab).scores} \
                if any(r.reference for r in records) else {}
        return self._priors

    def surrogate(self):
        report = self.view_fitness()
        if report is None:
            return None
        by_name = self.index.refresh().by_name
        verified = [(set(by_name[s.name].features), s.fitness) for s in report.scores if s.name in by_name]
        return knn_surrogate(verified) if verified else None

    # -- planning ----------------------------------------------------------------------------------------------
    def plan(self) -> Plan:
        budgets = self.budgets()
        index = self.index.refresh()
        refs = index.references
        ref_ids = [index.by_name[n].id for n in self.config.references if n in index.by_name]
        jobs = self.store.job_keys()  # (id, design id, rung, data, status)
        design_left = self.config.design_budget - index.n_sessions
        todo: list[Todo] = []
        keys = {(j[1], j[2], j[3]) for j in jobs}
        settled_below = True
        for k, scale in enumerate(self.ladder.rungs):
            rung, budget = scale.name, budgets[scale.name]
            data = self.data(rung)
            here = [j for j in jobs if j[2] == rung and j[3] == data]
            have = {j[1] for j in here}
            already = have - refs
            active = any(j[4] in ("queued", "running") for j in here)
            if k == 0:
                waiting = (i for i in index.checked if i not in have)
                picks = list(islice(waiting, max(0, budget - len(already))))
                settled = not active and not picks and (len(already) >= budget or design_left <= 0)
                priority = FIRST_RUNG_PRIORITY
            else:
                promoted = self.promoted(self.ladder.rungs[k - 1].name, jobs, budget, settled_below)
                picks = [index.by_name[n].id for n in promoted if index.by_name[n].id not in already]
                settled = settled_below and not active and not picks
                priority = PROMOTION_PRIORITY + k
            if picks or already:  # the rung is reached: its references, and their noise floor
                todo += [Todo(i, rung, REFERENCE_PRIORITY + k) for i in ref_ids if i not in have]
                # the noise seeds before the designs: early stopping compares with them
                todo += [Todo(i, rung, REFERENCE_PRIORITY + k, s) for i in ref_ids for s in self.extra_seeds
                         if (i, rung, self.data(rung, s)) not in keys]
            todo += [Todo(i, rung, priority) for i in picks]
            settled_below = settled
        queued = [j for j in jobs if j[4] == "queued"]
        running = [j for j in jobs if j[4] == "running"]
        if design_left > 0 and self.view_ready(jobs, todo):
            return Plan("design", todo)
        if todo or queued:
            return Plan("verify", todo)
        if running:
            return Plan("wait", todo)
        confirm = self.confirmations(keys)
        return Plan("verify", confirm) if confirm else Plan("report", todo)

    def confirmations(self, keys: set[tuple[int, str, str]]) -> list[Todo]:
        """Once everything else is done: the best design at its rung with the noise seeds, when it beats every
        reference there on the run's seed (the claim the report is about to make)."""
        best = self.best()
        if best is None or not best[2]:
            return []
        design_id, rung, _ = best
        return [Todo(design_id, rung, NOISE_PRIORITY, s) for s in self.extra_seeds
                if (design_id, rung, self.data(rung, s)) not in keys]

    def best(self) -> tuple[int, str, bool] | None:
        """(design id, rung, beats every reference on held-out loss) of the best design at the highest rung where
        designs and references were verified; None before that."""
        by_name = self.index.refresh().by_name
        for scale in reversed(self.ladder.rungs):
            report = self.fitness(scale.name)
            mine = [s for s in report.scores if not by_name[s.name].reference] if report else []
            if not mine:
                continue
            top = max(mine, key=lambda s: s.fitness)
            losses = {v.design_id: v.metrics["val_loss"]
                      for v in self.store.verifications(scale=scale.name, data=self.data(scale.name))}
            refs = [losses[by_name[s.name].id] for s in report.scores if by_name[s.name].reference]
            return by_name[top.name].id, scale.name, all(losses[by_name[top.name].id] < r for r in refs)
        return None

    def promoted(self, below: str, jobs: list, budget: int, settled: bool) -> list[str]:
        """The designs promoted from rung ``below``, in order: its results replayed one at a time in queue order, as
        far as every earlier one is finished (once the references there are), each step promoting what
        :func:`promotable` allows then; when ``below`` is ``settled``, the best fill what is left of ``budget``.
        Which jobs finished first never matters, so the same seed promotes the same designs with any executor."""
        refs = self.index.refresh().references
        data = self.data(below)
        here = [j for j in jobs if j[2] == below and j[3] == data]
        if any(j[4] not in ("done", "failed") for j in here if j[1] in refs):
            return []
        entries = [j for j in here if j[1] not in refs]  # job ids grow in the order they were queued
        finished = list(takewhile(lambda j: j[4] in ("done", "failed"), entries))
        done_at, promoted = self._replays.get(below, (0, []))
        if done_at > len(finished):  # a job went back to the queue (a resume): replay from the start
            done_at, promoted = 0, []
        rows = {v.design_id: v for v in self.store.verifications(scale=below, data=data)}
        ratio = self.ladder.selection_ratio
        for n in range(done_at + 1, len(finished) + 1):
            ranked = self._ranked(below, rows, refs | {j[1] for j in finished[:n]})
            promoted = promoted + promotable(ranked, set(promoted), budget, ratio, settled=False)
        self._replays[below] = (len(finished), promoted)
        if settled and len(finished) == len(entries):
            ranked = self._ranked(below, rows, refs | {j[1] for j in entries})
            promoted = promoted + promotable(ranked, set(promoted), budget, ratio, settled=True)
        return promoted

    def _ranked(self, rung: str, rows: dict, ids: set[int]) -> list[str]:
        """The designs (not references) among ``ids`` verified at ``rung``, best first: by fitness against the
        references there, or by held-out loss when no reference was verified (they failed)."""
        by_id, refs = self.index.by_id, self.index.references
        report = self._score(rung, [rows[i] for i in sorted(ids) if i in rows])
        if report:
            return [s.name for s in sorted(report.scores, key=lambda s: -s.fitness)
                    if self.index.by_name[s.name].id not in refs]
        mine = [rows[i] for i in sorted(ids) if i in rows and i not in refs]
        return [by_id[v.design_id].name for v in sorted(mine, key=lambda v: v.metrics["val_loss"])]

    # -- what a design session sees ------------------------------------------------------------------------------
    def view(self) -> set[int]:
        """The designs whose lowest-rung verifications the next design session sees: every design but the newest
        ``lookahead``, and the references they are measured against (none before that: the first sessions need
        not wait for the references' training)."""
        index = self.index.refresh()
        mine = [d.id for d in index.designs if not d.reference]
        seen = set(mine[:max(0, len(mine) - self.config.lookahead)])
        return index.references | seen if seen else set()

    def view_ready(self, jobs: list, todo: list[Todo]) -> bool:
        """Whether every lowest-rung verification of the view's designs (on the run's data and seed) is finished,
        so the next design session sees the same results with any executor."""
        view, first = self.view(), self.ladder.rungs[0].name
        data = self.data(first)
        if any(t.design_id in view and t.rung == first and t.seed is None for t in todo):
            return False
        return not any(j[1] in view and j[2] == first and j[3] == data and j[4] in ("queued", "running")
                       for j in jobs)

    def view_fitness(self) -> FitnessReport | None:
        """Fitness at the lowest rung of the view's designs, against the references (see :meth:`view`)."""
        first = self.ladder.rungs[0].name
        view = self.view()
        rows = [v for v in self.store.verifications(scale=first, data=self.data(first)) if v.design_id in view]
        key = tuple(v.id for v in rows)
        if self._view_fitness[0] != key:
            self._view_fitness = (key, self._score(first, rows))
        return self._view_fitness[1]

    def enqueue(self, plan: Plan) -> None:
        """Queues what the plan asks for (a job already queued, running or done is not queued twice)."""
        for t in plan.todo:  # the job carries its rung: a custom ladder's rungs run on any executor
            payload = {"scale": self.ladder.rung(t.rung).model_dump(), **self.payload(t.rung, t.seed),
                       **self.early_stop(t.design_id, t.rung, t.seed)}
            self.store.enqueue(t.design_id, t.rung, self.data(t.rung, t.seed), payload, t.priority)

    # -- steps -------------------------------------------------------------------------------------------------
    def design(self) -> str:
        """One design session, by the offline designer or the LLMs (``offline_share`` of an LLM run's sessions go
        to the offline designer), with parents from the selector."""
        cfg = self.config
        index = self.index.refresh()
        n = index.n_sessions
        if self.designers is None:
            spent = self.store.costs()["llm_usd"]
            cap = None if cfg.cost_cap is None else max(0.0, cfg.cost_cap - spent)
            self.designers = Designers(cfg.backend, cfg.model, cfg.base_url, cap, cfg.offline_share,
                                       self.knowledge, cfg.prompt, cfg.synthesis)
        rng = random.Random(cfg.seed * 100_003 + n)
        roles, specs = self.designers.roles(rng, index.catalogue)
        selector = make_selector(cfg.selector, **cfg.selector_args)
        candidates = {c.name: c for c in self.candidates()}

        def select_parents(names, k, rng):
            return [c.name for c in selector.select([candidates[n] for n in names if n in candidates], k, rng)]

        ctx = SessionContext(self.store, self.index, roles, specs, rng, cfg.prompt, cfg.check_scale, cfg.check,
                             cfg.modes, select_parents, self.surrogate())
        result = run_session(ctx)
        return (f"session {n + 1} ({result.designer}): {result.operator} → {result.outcome} "
                f"({result.reason[:80]})")

    def verify(self) -> str:
        """Runs one job here (inline), or waits for the workers to finish some (concurrent executors)."""
        finished = self.executor.step(self.config.poll_s)
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
    plan = loop.plan()
    loop.enqueue(plan)  # concurrent workers take jobs while the loop designs
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
