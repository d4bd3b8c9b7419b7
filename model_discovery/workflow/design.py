"""One design session as a LangGraph graph, for every designer: the roles (:class:`~model_discovery.agents.roles.
Roles`) are played offline by the genetic designer or by LLMs, and the graph is the same::

    select → propose ⇄ review ─┬─ accepted ──→ plan ⇄ implement → check → observe → register
                               └─ rejected (attempts used up) ─────────────────────→ register

``select`` draws the operator (mutation, crossover, scratch: one policy for ``modis design`` and ``modis
discover``) and the parents among every design that passed its checks, and builds the brief: the run's unit
catalogue, the tree's structural features and hashes for novelty, earlier proposals for the reviewer.
``implement`` writes one unit (offline designs have none to write): the coder's code is composed into the tree
(units not written yet are identity placeholders), filtered statically, checked in the sandbox, and the findings go
back to the coder; a unit that cannot be fixed within its attempts rolls the session back. ``check`` checks the
composed design (once more only when the last unit's check did not already cover it). ``register`` writes the
outcome, and the design with its check, in one transaction. A failing LLM call or a spent cost cap ends the
session with that outcome.
"""

from __future__ import annotations

import ast
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from model_discovery.agents.knowledge import Document, KnowledgeBase
from model_discovery.agents.llm import BudgetExceeded, UnparseableOutput
from model_discovery.agents.offline import GeneticDesigner
from model_discovery.agents.operators import OPERATORS, ModePolicy, applicable
from model_discovery.agents.roles import Brief, Draft, LLMRoles, OfflineRoles, Roles, with_unit
from model_discovery.agents.spec import AgentSpec
from model_discovery.checker import DEFAULT_SCALE, CheckReport, check_design
from model_discovery.checker.static import static_check
from model_discovery.design import compose
from model_discovery.design.parse import parse_design
from model_discovery.design.tree import UnitTree
from model_discovery.evolution.index import TreeIndex
from model_discovery.evolution.store import DesignRow, Store, design_fields


@dataclass
class SessionResult:
    operator: str
    outcome: str
    reason: str
    design: str | None
    check_passed: bool
    wall_s: float
    cost_usd: float = 0.0
    designer: str = "offline"


@dataclass
class SessionContext:
    """What one session needs: the store and its index (designs, catalogue), the roles, the policies."""

    store: Store
    index: TreeIndex
    roles: Roles
    specs: dict[str, AgentSpec]
    rng: random.Random
    prompt: str = ""
    scale: str = DEFAULT_SCALE
    check: bool = True
    modes: ModePolicy = field(default_factory=ModePolicy)
    select_parents: Callable[[list, int, random.Random], list] | None = None  # (names, k, rng) -> names
    surrogate: Callable[[set[str]], float] | None = None
    operator: str | None = None
    check_fn: Callable[[str], CheckReport] | None = None

    def run_check(self, source: str) -> CheckReport:
        return (self.check_fn or (lambda s: check_design(s, self.scale)))(source)


class SessionState(TypedDict, total=False):
    """What a session carries from node to node."""

    brief: Brief  # the operator, the parents and what the roles may read
    draft: Draft  # the proposer's latest proposal, as a tree
    feedback: str  # why the last proposal was sent back (for the next one)
    attempt: int  # proposals made
    accepted: bool  # the reviewer accepted the last one
    tree: UnitTree  # the design as it grows: the draft's tree, then one written unit after another
    todo: list[str]  # units left to write, the next first
    done: list[str]  # units written
    attempt_source: str  # the coder's last attempt, composed (what its findings are about)
    report: CheckReport | None  # the last check, of ``report_source`` (None: checks are off)
    report_source: str
    source: str  # the composed design that ``check`` checked
    outcome: str  # registered, rejected, check_failed (budget and error end the graph by exception)
    reason: str
    next: str  # where a node sends the session next


def _session(config: RunnableConfig) -> tuple[SessionContext, Callable[..., None]]:
    """The session's context and its ``turn`` (a role's turn appended to the transcript, which lives outside the
    state so that a session cut short keeps its record), injected through the graph's config."""
    session = config["configurable"]
    dialog = session["dialog"]
    return session["ctx"], lambda role, content, **extra: dialog.append({"role": role, **extra, "content": content})


def select(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    index = ctx.index.refresh()
    parents = index.parents()
    produced = sum(1 for d in index.designs if not d.reference)
    operator = applicable(ctx.operator or ctx.modes.choose(produced, ctx.rng), len(parents))
    k = OPERATORS.get(operator).parents
    names = [d.name for d in parents]
    picked = (ctx.select_parents or (lambda ns, n, rng: rng.sample(ns, min(n, len(ns)))))(names, k, ctx.rng)
    store = ctx.store
    trees = [(name, store.design(name).unit_tree()) for name in picked]
    brief = Brief(operator=operator, parents=trees, catalogue=index.catalogue, name=store.next_name(),
                  prompt=ctx.prompt, known={d.name: set(d.features) for d in index.designs},
                  hashes=store.hashes(), similar=_similar(store), siblings=_siblings(store, picked),
                  surrogate=ctx.surrogate)
    turn("selector", {"operator": operator, "parents": picked, "designer": ctx.roles.kind})
    return {"brief": brief, "attempt": 0, "done": []}


def propose(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    attempt = state["attempt"]
    draft = ctx.roles.propose(state["brief"], state.get("draft") if attempt else None, state.get("feedback", ""))
    turn("proposer", draft.proposal.model_dump(), attempt=attempt)
    if draft.problem:
        turn("assembler", {"problem": draft.problem})
        return {"draft": draft, "feedback": f"Your previous proposal cannot be built: {draft.problem}\n\n",
                "attempt": attempt + 1, "accepted": False, "next": "propose"}
    return {"draft": draft, "next": "review"}


def review(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    draft, attempt = state["draft"], state["attempt"]
    result = ctx.roles.review(state["brief"], draft)
    turn("reviewer", result.model_dump(), attempt=attempt)
    accepted = (result.rating >= (ctx.specs["reviewer"].accept_threshold or 4) and result.novelty != "duplicate"
                and draft.tree is not None)
    return {"attempt": attempt + 1, "accepted": accepted, "todo": list(draft.todo), "tree": draft.tree,
            "feedback": (f"Your previous proposal was rated {result.rating}: "
                         f"{'; '.join(result.concerns) or result.novelty}. Revise it.\n\n")}


def after_proposal(state: SessionState, config: RunnableConfig) -> str:
    if state.get("next") == "review":
        return "review"
    return "register" if state["attempt"] >= _session(config)[0].specs["proposer"].max_attempts else "propose"


def after_review(state: SessionState, config: RunnableConfig) -> str:
    if state["accepted"]:
        return "plan"
    return "register" if state["attempt"] >= _session(config)[0].specs["proposer"].max_attempts else "propose"


def plan(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    todo = state["todo"]
    if not todo:
        return {"next": "check"}
    result = ctx.roles.plan(state["brief"], state["draft"], state["done"], todo)
    turn("planner", result.model_dump())
    unit = result.next_unit if result.next_unit in todo else todo[0]
    return {"todo": [unit, *(u for u in todo if u != unit)], "next": "implement"}


def implement(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    unit, *rest = state["todo"]
    findings, update = "", {}
    attempts = ctx.specs["coder"].max_attempts
    for _ in range(attempts):
        design = update.get("attempt_source", state.get("attempt_source")) if findings else None
        code = ctx.roles.code(state["brief"], state["draft"], design or compose(state["tree"]), unit, findings)
        turn("coder", code.model_dump())
        tree, findings, checked = _try_unit(ctx, turn, state["tree"], code, unit, state["draft"], state["brief"])
        update.update(checked)
        if tree is not None:
            return {**update, "tree": tree, "todo": rest, "done": [*state["done"], unit]}
    return {**update, "outcome": "check_failed", "reason": f"unit {unit} failed its checks {attempts} times; "
                                                           "rolled back"}


def after_implement(state: SessionState) -> str:
    return "register" if state.get("outcome") else "plan"


def check(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    source = compose(state["tree"])
    report = state.get("report")
    if ctx.check and (report is None or state.get("report_source") != source):
        report = ctx.run_check(source)
        turn("checker", {"accepted": report.accepted, "summary": report.summary(), "params": report.params})
    return {"report": report if ctx.check else None, "source": source}


def observe(state: SessionState, config: RunnableConfig) -> dict:
    ctx, turn = _session(config)
    report = state["report"]
    passed = report.accepted if report else True
    issues = [] if passed else [f.message for f in report.errors()]
    if not passed:
        return {"outcome": "check_failed", "reason": f"{state['tree'].name}: {'; '.join(issues)[:300]}"}
    result = ctx.roles.observe(state["brief"], state["draft"], state["source"], passed, issues)
    turn("observer", result.model_dump())
    if result.rating < (ctx.specs["observer"].accept_threshold or 3):
        return {"outcome": "rejected", "reason": f"observer rated {result.rating}: {'; '.join(result.issues)}"}
    return {"outcome": "registered"}


def register(state: SessionState, config: RunnableConfig) -> dict:
    if not state.get("outcome"):
        dialog = config["configurable"]["dialog"]
        last = next((t["content"] for t in reversed(dialog) if t["role"] in ("reviewer", "assembler")), {})
        reason = last.get("problem") or (f"last rating {last.get('rating', 0):.2f}: "
                                         f"{'; '.join(last.get('concerns', [])) or last.get('novelty')}")
        return {"outcome": "rejected", "reason": f"proposal rejected {state['attempt']} times ({reason})"}
    return {}


def _try_unit(ctx: SessionContext, turn, tree: UnitTree, code, unit: str, draft: Draft, brief: Brief
              ) -> tuple[UnitTree | None, str, dict]:
    """(the tree with the unit, "", the state's new check fields) when the code passes its checks, else (None,
    findings for the coder, the composed attempt)."""
    if code.unit != unit:
        return None, f"You wrote {code.unit}, but only {unit} may be written now (others are protected).\n", {}
    try:
        ast.parse(code.source)
    except SyntaxError as exc:
        return None, (f"SyntaxError at line {exc.lineno} of {unit}: {exc.msg}. The code is incomplete or malformed "
                      "(truncated?); send the whole unit.\n"), {}
    try:
        tree = with_unit(tree, code, draft, brief)
        source = compose(tree)
    except (ValueError, KeyError, SyntaxError) as exc:
        return None, f"The unit does not compose: {exc}\n", {}
    attempt = {"attempt_source": source}
    static = [f for f in static_check(source) if f.severity == "error"]  # cheap, before the sandbox
    if static:
        return None, "Findings (lines of the composed design):\n" + "\n".join(
            f"- {f.check} (line {f.line}): {f.message}" for f in static) + "\n", attempt
    if not ctx.check:  # dry runs: the static filter only
        return tree, "", attempt
    report = ctx.run_check(source)
    turn("checker", {"unit": unit, "accepted": report.accepted, "summary": report.summary()})
    if not report.accepted:
        return None, "Findings from the checker (lines of the composed design):\n" + report.summary() + "\n", attempt
    return tree, "", {**attempt, "report": report, "report_source": source}


def _similar(store: Store) -> Callable[[str], str]:
    def similar(text: str, k: int = 3) -> str:
        earlier = [d for d in store.designs() if d.proposal]
        if not earlier:
            return "(none)"
        kb = KnowledgeBase([Document("proposal", d.name, f"{d.proposal['title']} {d.proposal['change']}")
                            for d in earlier])
        return "\n".join(f"- {h.document.name}: {h.document.text}" for h in kb.search(text, k)) or "(none)"

    return similar


def _siblings(store: Store, parents: list[str]) -> str:
    rows = [d for d in store.designs() if set(parents) & set(d.parents or []) and d.proposal]
    return "\n".join(f"- {d.name}: {d.proposal['title']}" for d in rows) or "(none)"


def run_session(ctx: SessionContext) -> SessionResult:
    """One session through the graph; whatever happens it ends with a recorded outcome and what it cost."""
    start = time.perf_counter()
    dialog: list[dict] = []
    state: dict = {}
    config = {"recursion_limit": 200, "configurable": {"ctx": ctx, "dialog": dialog}}
    try:
        for step in SESSION_GRAPH.stream({}, config, stream_mode="values"):  # kept after each step
            state = step
    except BudgetExceeded as exc:
        state = {**state, "outcome": "budget", "reason": str(exc)}
    except UnparseableOutput as exc:
        state = {**state, "outcome": "error", "reason": str(exc)}
    except _provider_errors(ctx.roles) as exc:  # after our retries: the provider is down or refuses
        state = {**state, "outcome": "error", "reason": f"LLM call failed after retries: {type(exc).__name__}: {exc}"}
    return _record(ctx, dialog, state, start)


def _provider_errors(roles: Roles) -> tuple[type[Exception], ...]:
    """The API errors of the roles' LLM backends (offline sessions import no SDK)."""
    if roles.kind != "llm":
        return ()
    return tuple({error for backend in roles.backends.values() for error in type(backend).api_errors()})


def _record(ctx: SessionContext, dialog: list, state: dict, start: float) -> SessionResult:
    """The session's outcome written to the store: a design when the composed tree was checked (passed or not)."""
    brief, draft = state.get("brief"), state.get("draft")
    operator = brief.operator if brief else "?"
    outcome, reason = state["outcome"], state.get("reason", "")
    design = check = None
    report = state.get("report")
    checked = "source" in state and outcome in ("registered", "check_failed") and (report is not None or not ctx.check)
    if checked:
        tree: UnitTree = state["tree"]
        fields = design_fields(tree)
        if fields["content_hash"] in ctx.store.hashes():
            outcome, reason, checked = "rejected", "the code equals a design already in the tree", False
        else:
            passed = report.accepted if report else True
            design = dict(**fields, parents=[name for name, _ in brief.parents],
                          mode=operator, status="checked" if passed else "check_failed", prompt=ctx.prompt,
                          proposal=draft.proposal.model_dump())
            if outcome == "registered":
                reason = f"{tree.name}: {', '.join(tree.preorder())}"
            check = report.model_dump(include={"accepted", "findings", "params", "metrics"}) if report else None
    wall, cost = time.perf_counter() - start, ctx.roles.spent_usd()
    ctx.store.record_session(design=design, check=check, operator=operator, outcome=outcome, reason=reason,
                             dialog=dialog, cost_usd=cost, wall_s=wall)
    passed = bool(design) and design["status"] == "checked"
    return SessionResult(operator, outcome, reason, design["name"] if design else None, passed, wall, cost,
                         ctx.roles.kind)


def import_design(store: Store, path: str | Path, name: str | None = None, scale: str = DEFAULT_SCALE,
                  check: bool = True) -> DesignRow:
    """Adds a user's design file to the tree: parsed into its units, checked in the sandbox, stored like any
    design (mode ``import``); a file already in the tree (same content hash) is returned as it is."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"design file {str(path)!r} does not exist")
    name = name or (path.parent.name if path.name == "design.py" else path.stem)
    tree = parse_design(path.read_text(), name)
    fields = design_fields(tree)
    if (row := store.design_by_hash(fields["content_hash"])) is not None:
        return row
    if name in {d.name for d in store.designs()}:
        raise ValueError(f"the tree already has a design named {name!r}; pass another name")
    report = check_design(fields["source"], scale) if check else None
    passed = report.accepted if report else True
    check_row = report.model_dump(include={"accepted", "findings", "params", "metrics"}) if report else None
    return store.add_design(check=check_row, **fields, parents=[], mode="import",
                            status="checked" if passed else "check_failed", prompt=f"imported from {path}")


# -- which roles play a session ---------------------------------------------------------------------------------------

class Designers:
    """Who plays each session of a run: the offline designer, LLMs, or both (``offline_share`` of an LLM run's
    sessions go to the offline designer, drawn per session). LLM backends share one cost meter."""

    def __init__(self, backend: str = "offline", model: str | None = None, base_url: str | None = None,
                 cost_cap: float | None = None, offline_share: float = 0.0, knowledge=None, prompt: str = "",
                 synthesis: bool = True):
        from model_discovery.agents.spec import load_specs

        self.backend, self.offline_share, self.knowledge, self.prompt = backend, offline_share, knowledge, prompt
        self.synthesis = synthesis
        self.offline_specs = load_specs()
        self.backends = None
        if backend != "offline":
            from model_discovery.agents.llm import CostMeter, make_backend

            self.llm_specs = load_specs(backend=backend, model=model, base_url=base_url)
            self.meter = CostMeter(cap_usd=cost_cap)
            self.backends = {role: make_backend(backend, spec.model, spec.base_url,
                                                meter=self.meter, temperature=spec.temperature,
                                                max_tokens=spec.max_tokens, max_reprompts=spec.max_reprompts)
                             for role, spec in self.llm_specs.items()}

    def spent_usd(self) -> float:
        return self.meter.spent_usd if self.backends else 0.0

    def roles(self, rng: random.Random, catalogue) -> tuple[Roles, dict[str, AgentSpec]]:
        """The roles of the next session: the first draw of ``rng`` says who plays it, the second seeds the
        offline designer (so a run is reproducible)."""
        offline = self.backends is None or rng.random() < self.offline_share
        seed = rng.randrange(2**31)
        if offline:
            designer = GeneticDesigner(self.prompt, seed=seed, catalogue=catalogue, knowledge=self.knowledge,
                                       synthesis=self.synthesis)
            return OfflineRoles(designer), self.offline_specs
        return LLMRoles(self.backends, self.llm_specs, self.knowledge), self.llm_specs


def design_sessions(prompt: str, n: int, run_dir: str, backend: str = "offline", seed: int = 0,
                    scale: str = DEFAULT_SCALE, check: bool = True, progress: bool = True, model: str | None = None,
                    base_url: str | None = None, cost_cap: float | None = None, parent: str | None = None,
                    offline_share: float = 0.0, modes: ModePolicy | None = None, synthesis: bool = True) -> dict:
    """``modis design``: ``n`` sessions into the run's store, no training; returns the summary."""
    from tqdm.auto import tqdm

    from model_discovery.agents.knowledge import default_knowledge

    store = Store(run_dir, seed_references=True)
    index = TreeIndex(store).refresh()
    if parent is not None and parent not in {d.name for d in index.parents()}:
        raise ValueError(f"no design {parent!r} that passed its checks in {store.url}")
    designers = Designers(backend, model, base_url, cost_cap, offline_share, default_knowledge(), prompt, synthesis)

    def pick(names, k, rng):
        first = [parent] if parent in names and k else []
        rest = [n for n in names if n != parent]
        return (first + rng.sample(rest, min(len(rest), k)))[:k]

    results = []
    for _ in tqdm(range(n), desc="design sessions", disable=not progress):
        rng = random.Random(seed * 100_003 + index.refresh().n_sessions)
        roles, specs = designers.roles(rng, index.catalogue)
        ctx = SessionContext(store, index, roles, specs, rng, prompt, scale, check, modes or ModePolicy(), pick)
        result = run_session(ctx)
        results.append(result)
        if result.outcome == "budget":
            break
    produced = [d for d in store.designs() if d.name in {r.design for r in results if r.design}]
    count = lambda key: {v: sum(getattr(r, key) == v for r in results) for v in {getattr(r, key) for r in results}}  # noqa: E731
    return {"sessions": len(results), "accepted": sum(r.outcome == "registered" for r in results),
            "check_passed": sum(r.check_passed for r in results), "unique": len({d.content_hash for d in produced}),
            "cost_usd": designers.spent_usd(), "operators": count("operator"), "designers": count("designer"),
            "outcomes": count("outcome"),
            "mean_session_s": sum(r.wall_s for r in results) / max(1, len(results)), "store": store.url}


def _session_graph():
    graph = StateGraph(SessionState)
    for node in (select, propose, review, plan, implement, check, observe, register):
        graph.add_node(node.__name__, node)
    graph.add_edge(START, "select")
    graph.add_edge("select", "propose")
    graph.add_conditional_edges("propose", after_proposal, ["review", "propose", "register"])
    graph.add_conditional_edges("review", after_review, ["plan", "propose", "register"])
    graph.add_conditional_edges("plan", lambda s: s["next"], ["implement", "check"])
    graph.add_conditional_edges("implement", after_implement, ["plan", "register"])
    graph.add_edge("check", "observe")
    graph.add_edge("observe", "register")
    graph.add_edge("register", END)
    # never the evolve graph's checkpointer: a session's data live in this process, so a session cut short by a
    # crash starts again from ``select`` when the evolve graph resumes, never from its own last step
    return graph.compile(checkpointer=False)


SESSION_GRAPH = _session_graph()
