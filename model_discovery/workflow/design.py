"""One design session as a LangGraph graph, with the offline roles::

    select → propose → review ─┬─ accepted ──→ plan ⇄ implement → compose → check → register
                ↑______________├─ revise
                               └─ rejected (attempts used up) ───────────────────────→ register

Every node appends its turn to the session's dialog; ``register`` writes the outcome (and the design with its check
when one was made) to the store in one transaction. The offline coder takes units from the library, so the sandboxed
check runs once, on the composed design; the LLM session (:mod:`model_discovery.agents.llm_session`) checks unit by
unit instead.
"""

from __future__ import annotations

import operator as op
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

from model_discovery.agents.offline import GeneticDesigner, build_tree, features, walk
from model_discovery.agents.schemas import Observation, Plan
from model_discovery.agents.spec import AgentSpec
from model_discovery.checker import DEFAULT_SCALE, check_design
from model_discovery.design import compose, content_hash
from model_discovery.evolution.store import Store


@dataclass
class SessionResult:
    operator: str
    outcome: str
    reason: str
    design: str | None
    check_passed: bool
    wall_s: float
    cost_usd: float = 0.0


def finish_session(store: Store, operator: str, outcome: str, reason: str, dialog: list, start: float,
                   design: dict | None = None, check: dict | None = None, passed: bool = False,
                   cost_usd: float = 0.0) -> SessionResult:
    """Records a session (and its design and check, if any) atomically and returns its result."""
    wall = time.perf_counter() - start
    store.record_session(design=design, check=check, operator=operator, outcome=outcome, reason=reason,
                         dialog=dialog, cost_usd=cost_usd, wall_s=wall)
    return SessionResult(operator, outcome, reason, design["name"] if design else None, passed, wall, cost_usd)


class SessionState(TypedDict, total=False):
    operator: str
    parents: list[tuple[str, dict]]
    candidate: Any
    attempt: int
    accepted: bool
    tree: Any
    todo: list[str]
    source: str
    report: Any
    result: SessionResult
    dialog: Annotated[list[dict], op.add]


@dataclass
class SessionContext:
    store: Store
    designer: GeneticDesigner
    specs: dict[str, AgentSpec]
    prompt: str = ""
    scale: str = DEFAULT_SCALE
    check: bool = True
    select_parents: Callable[[list, int], list] | None = None
    surrogate: Callable[[set[str]], float] | None = None
    choose_operator: Callable[[int], str] | None = None


def build_session_graph(ctx: SessionContext):
    """The compiled graph for one offline session over ``ctx``; invoke it with ``{}`` (or an ``operator``)."""
    designer, store = ctx.designer, ctx.store
    known: dict[str, set[str]] = {}
    start = time.perf_counter()

    def select(state: SessionState) -> dict:
        rows = [d for d in store.designs() if d.genome]  # designs with LLM-written units are not genomes
        known.update({row.name: features(row.genome) for row in rows})
        produced = sum(1 for r in rows if r.status != "reference")
        operator = state.get("operator") or (ctx.choose_operator(produced) if ctx.choose_operator
                                             else _default_operator(designer, len(rows)))
        pick = ctx.select_parents or (lambda rs, n: designer.rng.sample(rs, min(n, len(rs))))
        parents = [(row.name, row.genome) for row in pick(rows, 2 if operator == "crossover" else 1)]
        return {"operator": operator, "parents": parents, "attempt": 0,
                "dialog": [{"role": "selector", "content": {"operator": operator, "parents": [p for p, _ in parents]}}]}

    def propose(state: SessionState) -> dict:
        if state["attempt"] == 0:
            candidate = designer.propose(state["operator"], state["parents"])
        else:
            candidate = designer.revise(state["candidate"])
        return {"candidate": candidate, "dialog": [{"role": "proposer", "attempt": state["attempt"],
                                                    "content": designer.proposal(candidate).model_dump()}]}

    def review(state: SessionState) -> dict:
        result, tree = designer.review(state["candidate"], known, store.hashes(), ctx.surrogate)
        accepted = result.rating >= (ctx.specs["reviewer"].accept_threshold or 4) and tree is not None
        return {"attempt": state["attempt"] + 1, "accepted": accepted, "tree": tree,
                "todo": tree.walk() if accepted else [],
                "dialog": [{"role": "reviewer", "attempt": state["attempt"], "content": result.model_dump()}]}

    def after_review(state: SessionState) -> str:
        if state["accepted"]:
            return "plan"
        return "register" if state["attempt"] >= ctx.specs["proposer"].max_attempts else "propose"

    def plan(state: SessionState) -> dict:
        unit = state["todo"][0] if state["todo"] else None
        reason = "children before parents" if unit else "all units implemented"
        return {"dialog": [{"role": "planner", "content": Plan(next_unit=unit, reason=reason).model_dump()}]}

    def implement(state: SessionState) -> dict:
        unit, *rest = state["todo"]
        return {"todo": rest, "dialog": [{"role": "coder", "content": {"unit": unit,
                                                                       "source": "library unit (composed)"}}]}

    def compose_node(state: SessionState) -> dict:
        tree = build_tree(state["candidate"].genome, store.next_name(), designer.catalogue)
        return {"tree": tree, "source": compose(tree)}

    def check(state: SessionState) -> dict:
        report = check_design(state["source"], ctx.scale) if ctx.check else None
        passed = report.accepted if report else True
        turns = [{"role": "checker", "content": {"accepted": report.accepted, "summary": report.summary(),
                                                 "params": report.params}}] if report else []
        turns.append({"role": "observer", "content": Observation(
            rating=5 if passed else 1, issues=[] if passed else [f.message for f in report.errors()]).model_dump()})
        return {"report": report, "dialog": turns}

    def register(state: SessionState) -> dict:
        return {"result": _record(ctx, state, start)}

    graph = StateGraph(SessionState)
    for name, fn in (("select", select), ("propose", propose), ("review", review), ("plan", plan),
                     ("implement", implement), ("compose", compose_node), ("check", check),
                     ("register", register)):
        graph.add_node(name, fn)
    graph.add_edge(START, "select")
    graph.add_edge("select", "propose")
    graph.add_edge("propose", "review")
    graph.add_conditional_edges("review", after_review, ["plan", "propose", "register"])
    graph.add_conditional_edges("plan", lambda s: "implement" if s["todo"] else "compose", ["implement", "compose"])
    graph.add_edge("implement", "plan")
    graph.add_edge("compose", "check")
    graph.add_edge("check", "register")
    graph.add_edge("register", END)
    return graph.compile()


def _record(ctx: SessionContext, state: dict, start: float) -> SessionResult:
    """The session's outcome from the graph's final state, written to the store."""
    operator, dialog = state["operator"], state["dialog"]
    if not state.get("accepted"):
        last = next(t["content"] for t in reversed(dialog) if t["role"] == "reviewer")
        reason = (f"proposal rejected {state['attempt']} times (last rating {last['rating']:.2f}: "
                  f"{'; '.join(last['concerns']) or last['novelty']})")
        return finish_session(ctx.store, operator, "rejected", reason, dialog, start)
    tree, report, candidate = state["tree"], state.get("report"), state["candidate"]
    passed = report.accepted if report else True
    units = sorted({n["unit"] for n in walk(candidate.genome)})
    design = dict(name=tree.name, genome=candidate.genome, source=state["source"],
                  content_hash=content_hash(state["source"], tree.config()),
                  parents=list(candidate.parents), mode=operator,
                  status="checked" if passed else "check_failed", prompt=ctx.prompt,
                  proposal=ctx.designer.proposal(candidate).model_dump())
    check = report.model_dump(include={"accepted", "findings", "params", "metrics"}) if report else None
    return finish_session(ctx.store, operator, "registered" if passed else "check_failed",
                          f"{tree.name}: {', '.join(units)}", dialog, start, design=design, check=check,
                          passed=passed)


def _default_operator(designer: GeneticDesigner, n_designs: int) -> str:
    """Mutation always; crossover once the tree has two designs; scratch with its own weight."""
    weights = dict(designer.OPERATOR_WEIGHTS)
    if n_designs < 2:
        weights.pop("crossover")
    return designer.rng.choices(list(weights), weights=list(weights.values()))[0]


def run_session(store: Store, designer: GeneticDesigner, specs: dict[str, AgentSpec], prompt: str = "",
                scale: str = DEFAULT_SCALE, check: bool = True,
                select_parents: Callable[[list, int], list] | None = None,
                surrogate: Callable[[set[str]], float] | None = None,
                choose_operator: Callable[[int], str] | None = None, operator: str | None = None) -> SessionResult:
    """One offline session through the graph; ``surrogate`` predicts promise from genome features (see
    :func:`~model_discovery.agents.offline.knn_surrogate`) once some designs are verified."""
    ctx = SessionContext(store, designer, specs, prompt, scale, check, select_parents, surrogate, choose_operator)
    state = build_session_graph(ctx).invoke({"operator": operator} if operator else {}, {"recursion_limit": 200})
    return state["result"]
