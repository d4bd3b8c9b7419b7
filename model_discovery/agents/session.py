"""One design session with the offline roles: select parents → propose ⇄ review → plan → implement ⇄ check →
register. Every step is appended to the session's dialog; the session ends with a recorded outcome whatever
happens (rejected after its attempts, check failed, registered)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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


def choose_operator(designer: GeneticDesigner, n_designs: int) -> str:
    """Mutation always; crossover once the tree has two designs; scratch with its own weight."""
    weights = dict(designer.OPERATOR_WEIGHTS)
    if n_designs < 2:
        weights.pop("crossover")
    ops = list(weights)
    return designer.rng.choices(ops, weights=[weights[o] for o in ops])[0]


def run_session(store: Store, designer: GeneticDesigner, specs: dict[str, AgentSpec], prompt: str = "",
                scale: str = DEFAULT_SCALE, check: bool = True,
                select_parents: Callable[[list, int], list] | None = None,
                surrogate: Callable[[set[str]], float] | None = None) -> SessionResult:
    """One offline session; ``surrogate`` predicts promise from genome features (see
    :func:`~model_discovery.agents.offline.knn_surrogate`) once some designs are verified."""
    start = time.perf_counter()
    dialog: list[dict] = []
    designs = [d for d in store.designs() if d.genome]  # designs with LLM-written units are not genomes
    operator = choose_operator(designer, len(designs))
    pick = select_parents or (lambda rows, n: designer.rng.sample(rows, min(n, len(rows))))
    parents = [(row.name, row.genome) for row in pick(designs, 2 if operator == "crossover" else 1)]
    known = {row.name: features(row.genome) for row in designs}
    hashes = store.hashes()
    candidate = designer.propose(operator, parents)
    threshold = specs["reviewer"].accept_threshold or 4
    review, tree = None, None
    for attempt in range(specs["proposer"].max_attempts):
        proposal = designer.proposal(candidate)
        review, tree = designer.review(candidate, known, hashes, surrogate)
        dialog += [{"role": "proposer", "attempt": attempt, "content": proposal.model_dump()},
                   {"role": "reviewer", "attempt": attempt, "content": review.model_dump()}]
        if review.rating >= threshold and tree is not None:
            break
        candidate = designer.revise(candidate)
    else:
        reason = f"proposal rejected {specs['proposer'].max_attempts} times (last rating {review.rating:.2f}: " \
                 f"{'; '.join(review.concerns) or review.novelty})"
        return _finish(store, operator, "rejected", reason, None, dialog, start)

    # plan and implement: the offline coder composes library units, one planned unit at a time
    order = tree.walk()
    for unit in order:
        plan = Plan(next_unit=unit, reason="children before parents")
        dialog.append({"role": "planner", "content": plan.model_dump()})
        dialog.append({"role": "coder", "content": {"unit": unit, "source": "library unit (composed)"}})
    dialog.append({"role": "planner", "content": Plan(next_unit=None, reason="all units implemented").model_dump()})
    name = store.next_name()
    tree = build_tree(candidate.genome, name, designer.catalogue)
    source = compose(tree)
    report = check_design(source, scale) if check else None
    passed = report.accepted if report else True
    if report:
        dialog.append({"role": "checker", "content": {"accepted": report.accepted, "summary": report.summary(),
                                                      "params": report.params}})
    units = sorted({n["unit"] for n in walk(candidate.genome)})
    dialog.append({"role": "observer", "content": Observation(
        rating=5 if passed else 1, issues=[] if passed else [f.message for f in report.errors()]).model_dump()})
    store.add_design(name=name, genome=candidate.genome, source=source,
                     content_hash=content_hash(source, tree.config()), parents=[p for p, _ in parents],
                     mode=operator, status="checked" if passed else "check_failed", prompt=prompt,
                     proposal=designer.proposal(candidate).model_dump(),
                     check=report.model_dump(include={"accepted", "findings", "params", "metrics"}) if report else None)
    outcome = "registered" if passed else "check_failed"
    return _finish(store, operator, outcome, f"{name}: {', '.join(units)}", name, dialog, start, passed)


def _finish(store: Store, operator: str, outcome: str, reason: str, design: str | None, dialog: list,
            start: float, passed: bool = False, cost_usd: float = 0.0) -> SessionResult:
    wall = time.perf_counter() - start
    design_id = next((d.id for d in store.designs() if d.name == design), None) if design else None
    store.add_session(design_id=design_id, operator=operator, outcome=outcome, reason=reason, dialog=dialog,
                      cost_usd=cost_usd, wall_s=wall)
    return SessionResult(operator, outcome, reason, design, passed, wall, cost_usd)


def _default_model(backend: str) -> str:
    return {"openai": "gpt-4o-mini", "anthropic": "claude-3-5-haiku-latest"}[backend]


def design_sessions(prompt: str, n: int, run_dir: str, backend: str = "offline", seed: int = 0,
                    scale: str = DEFAULT_SCALE, check: bool = True, progress: bool = True, model: str | None = None,
                    base_url: str | None = None, cost_cap: float | None = None, parent: str | None = None) -> dict:
    """``modis design``: ``n`` sessions into the run's store; returns the summary."""
    from tqdm.auto import tqdm

    from model_discovery.agents.knowledge import default_knowledge
    from model_discovery.agents.spec import load_specs

    store = Store(run_dir)
    designer = GeneticDesigner(prompt, seed=seed + len(store.sessions()), knowledge=default_knowledge())
    results, meter = [], None
    editable = [d for d in store.designs() if d.genome]
    if parent is not None and parent not in {d.name for d in editable}:
        raise ValueError(f"no design {parent!r} with a unit genome in {store.url}")

    def pick(rows, k):
        first = [r for r in rows if r.name == parent]
        rest = [r for r in rows if r.name != parent]
        return (first + designer.rng.sample(rest, min(len(rest), k)))[:k]

    if backend == "offline":
        specs = load_specs()
        for _ in tqdm(range(n), desc="design sessions", disable=not progress):
            results.append(run_session(store, designer, specs, prompt, scale, check,
                                       select_parents=pick if parent else None))
    else:
        from model_discovery.agents.llm import CostMeter, make_backend
        from model_discovery.agents.llm_session import run_llm_session

        specs = load_specs(backend=backend, model=model, base_url=base_url)
        meter = CostMeter(cap_usd=cost_cap)
        backends = {role: make_backend(backend, spec.model or _default_model(backend), spec.base_url, meter=meter,
                                       temperature=spec.temperature, max_tokens=spec.max_tokens,
                                       max_reprompts=spec.max_reprompts) for role, spec in specs.items()}
        for _ in tqdm(range(n), desc="design sessions", disable=not progress):
            row = pick([d for d in store.designs() if d.genome], 1)[0]
            result = run_llm_session(store, backends, specs, row, prompt, default_knowledge(), scale)
            results.append(result)
            if result.outcome == "budget":
                break
    registered = [r for r in results if r.design]
    produced = [d for d in store.designs() if d.name in {r.design for r in registered}]
    operators: dict[str, int] = {}
    for r in results:
        operators[r.operator] = operators.get(r.operator, 0) + 1
    return {"sessions": len(results), "accepted": len(registered),
            "check_passed": sum(r.check_passed for r in results), "unique": len({d.content_hash for d in produced}),
            "cost_usd": meter.spent_usd if meter else 0.0, "operators": operators,
            "outcomes": {o: sum(r.outcome == o for r in results) for o in {r.outcome for r in results}},
            "mean_session_s": sum(r.wall_s for r in results) / max(1, len(results)), "store": store.url}
