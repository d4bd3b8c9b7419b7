"""``modis design``: design sessions into a run's store, without training. One offline session is the LangGraph
graph of :mod:`model_discovery.workflow.design`; LLM sessions are :mod:`model_discovery.agents.llm_session`."""

from __future__ import annotations

from model_discovery.agents.offline import GeneticDesigner
from model_discovery.checker import DEFAULT_SCALE
from model_discovery.evolution.store import Store
from model_discovery.workflow.design import SessionResult, run_session

__all__ = ["SessionResult", "design_sessions", "run_session"]


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
