"""A design session with LLM roles: propose ⇄ review (the reviewer sees the most similar earlier proposals and the
siblings), then unit-by-unit implementation — the planner names the next unit, the coder writes it, the design is
composed (units not written yet are identity placeholders) and checked, and the findings go back to the coder —
then the observer compares code and proposal. Only the planned units may be written (the others are protected); a
unit that cannot be fixed within its attempts is rolled back and the session ends with the reason."""

from __future__ import annotations

import ast
import json
import time
from collections.abc import Callable

from model_discovery.agents.knowledge import Document, KnowledgeBase
from model_discovery.agents.llm import BudgetExceeded, LLMBackend, UnparseableOutput
from model_discovery.agents.offline import build_tree, describe
from model_discovery.agents.prompts import render
from model_discovery.agents.schemas import Observation, Plan, Proposal, Review, UnitCode
from model_discovery.agents.spec import AgentSpec
from model_discovery.checker import DEFAULT_SCALE, CheckReport, check_design
from model_discovery.checker.static import static_check
from model_discovery.design import compose, content_hash
from model_discovery.design.library import unit_catalogue
from model_discovery.design.tree import UnitSpec, UnitTree
from model_discovery.evolution.store import DesignRow, Store
from model_discovery.workflow.design import SessionResult, finish_session


def _similar(store: Store, proposal: Proposal, k: int = 3) -> str:
    earlier = [d for d in store.designs() if d.proposal]
    if not earlier:
        return "(none)"
    kb = KnowledgeBase([Document("proposal", d.name, f"{d.proposal['title']} {d.proposal['change']}")
                        for d in earlier])
    hits = kb.search(f"{proposal.title} {proposal.change}", k)
    return "\n".join(f"- {h.document.name}: {h.document.text}" for h in hits) or "(none)"


def _siblings(store: Store, parent: str) -> str:
    rows = [d for d in store.designs() if parent in (d.parents or []) and d.proposal]
    return "\n".join(f"- {d.name}: {d.proposal['title']}" for d in rows) or "(none)"


def _with_unit(tree: UnitTree, code: UnitCode, proposal: Proposal) -> UnitTree:
    """The tree with ``code`` as the unit it names: replacing the selected unit wherever it is used."""
    change = next(u for u in proposal.units if u.name == code.unit)
    spec = UnitSpec(name=code.unit, source=code.source, children=list(change.children), args=dict(change.args))
    units = {k: v.model_copy(deep=True) for k, v in tree.units.items()}
    units[code.unit] = spec
    catalogue = unit_catalogue()
    for child in spec.children:  # library units it names come with it; unknown ones stay placeholders
        if child not in units and child in catalogue:
            units[child] = catalogue.get(child).model_copy(deep=True)
    root = tree.root
    old = proposal.selected_unit
    if old != code.unit and old in units:
        parents = [u for u in units.values() if old in u.children]
        tree = UnitTree(name=tree.name, root=root, units=units)
        for parent in parents:
            tree = tree.replace_child(parent.name, old, spec)
        if root == old:
            tree = UnitTree(name=tree.name, root=code.unit, units={**tree.units, code.unit: spec})
        return tree
    return UnitTree(name=tree.name, root=root, units=units)


def run_llm_session(store: Store, backends: dict[str, LLMBackend], specs: dict[str, AgentSpec], parent: DesignRow,
                    prompt: str = "", knowledge: KnowledgeBase | None = None, scale: str = DEFAULT_SCALE,
                    check: Callable[[str], CheckReport] | None = None) -> SessionResult:
    """Runs the session; whatever happens it ends with a recorded outcome and the dollars it cost."""
    import anthropic
    import openai

    meters = {id(b.meter): b.meter for b in backends.values()}
    spent = sum(m.spent_usd for m in meters.values())
    start = time.perf_counter()
    dialog: list[dict] = []

    def finish(outcome: str, reason: str, design: dict | None = None, check: dict | None = None,
               passed: bool = False) -> SessionResult:
        cost = sum(m.spent_usd for m in meters.values()) - spent
        return finish_session(store, "llm", outcome, reason, dialog, start, design, check, passed, cost)

    try:
        return _session(store, backends, specs, parent, prompt, knowledge, scale,
                        check or (lambda source: check_design(source, scale)), dialog, finish)
    except BudgetExceeded as exc:
        return finish("budget", str(exc))
    except UnparseableOutput as exc:
        return finish("error", str(exc))
    except (openai.APIError, anthropic.APIError) as exc:  # after our retries: the provider is down or refuses
        return finish("error", f"LLM call failed after retries: {type(exc).__name__}: {exc}")


def _session(store, backends, specs, parent, prompt, knowledge, scale, check, dialog, finish) -> SessionResult:

    def ask(role: str, schema, **fields):
        system, user = render(role, **fields)
        out = backends[role].complete(system, user, schema)
        dialog.append({"role": role, "content": out.model_dump()})
        return out

    hits = (knowledge.search(prompt or parent.name, 3) if knowledge else [])
    facts = "\n".join(f"- {h.document.name}: {h.document.text[:300]}" for h in hits) or "(none)"
    threshold = specs["reviewer"].accept_threshold or 4
    feedback, review = "", None
    for _ in range(specs["proposer"].max_attempts):
        proposal = ask("proposer", Proposal, prompt=prompt, parent=parent.name,
                       parent_tree=describe(parent.genome) if parent.genome else parent.source[:3000],
                       knowledge=facts, feedback=feedback)
        units = set(build_tree(parent.genome, parent.name).units) if parent.genome else set()
        if units and proposal.selected_unit not in units:
            feedback = (f"selected_unit {proposal.selected_unit!r} is not in {parent.name}; choose one of "
                        f"{', '.join(sorted(units))}.\n\n")
            continue
        review = ask("reviewer", Review, proposal=proposal.model_dump_json(indent=1),
                     similar=_similar(store, proposal), siblings=_siblings(store, parent.name))
        if review.rating >= threshold and review.novelty != "duplicate":
            break
        feedback = (f"Your previous proposal was rated {review.rating}: "
                    f"{'; '.join(review.concerns) or review.novelty}. Revise it.\n\n")
    else:
        last = f"last rating {review.rating}" if review else "no valid selected unit"
        return finish("rejected", f"proposal rejected {specs['proposer'].max_attempts} times ({last})")

    tree = build_tree(parent.genome, store.next_name()) if parent.genome else None
    if tree is None:
        return finish("error", "the parent has no genome to edit")
    todo = [u.name for u in proposal.units if u.action != "reused"]
    done: list[str] = []
    report = None
    while todo:
        plan = ask("planner", Plan, proposal=proposal.model_dump_json(indent=1), done=done, todo=todo)
        unit = plan.next_unit if plan.next_unit in todo else todo[0]
        findings, accepted_tree = "", None
        for _ in range(specs["coder"].max_attempts):
            code = ask("coder", UnitCode, proposal=proposal.model_dump_json(indent=1), unit=unit,
                       children=next(u.children for u in proposal.units if u.name == unit), findings=findings)
            if code.unit != unit:
                findings = f"You wrote {code.unit}, but only {unit} may be written now (others are protected).\n"
                continue
            try:
                ast.parse(code.source)
            except SyntaxError as exc:
                findings = (f"SyntaxError at line {exc.lineno} of {unit}: {exc.msg}. The code is incomplete or "
                            "malformed (truncated?); send the whole unit.\n")
                continue
            try:
                candidate = _with_unit(tree, code, proposal)
                source = compose(candidate)
            except (ValueError, KeyError, SyntaxError) as exc:
                findings = f"The unit does not compose: {exc}\n"
                continue
            static = [f for f in static_check(source) if f.severity == "error"]  # cheap, before the sandbox
            if static:
                findings = "Findings:\n" + "\n".join(f"- {f.check} (line {f.line}): {f.message}" for f in static)
                continue
            report = check(source)
            dialog.append({"role": "checker", "content": {"unit": unit, "accepted": report.accepted,
                                                          "summary": report.summary()}})
            if report.accepted:
                accepted_tree = candidate
                break
            findings = "Findings from the checker:\n" + report.summary() + "\n"
        if accepted_tree is None:  # roll back: the tree stays as it was before this unit
            return finish("check_failed", f"unit {unit} failed its checks {specs['coder'].max_attempts} times; "
                          "rolled back")
        tree = accepted_tree
        todo.remove(unit)
        done.append(unit)
    source = compose(tree)
    observation = ask("observer", Observation, proposal=proposal.model_dump_json(indent=1), code=source[:8000])
    if observation.rating < (specs["observer"].accept_threshold or 3):
        return finish("rejected", f"observer rated {observation.rating}: {'; '.join(observation.issues)}")
    digest = content_hash(source, tree.config())
    if digest in store.hashes():
        return finish("rejected", "the code equals a design already in the tree")
    design = dict(name=tree.name, genome=None, source=source, content_hash=digest, parents=[parent.name],
                  mode="mutation", status="checked", prompt=prompt, proposal=json.loads(proposal.model_dump_json()))
    check = report.model_dump(include={"accepted", "findings", "params", "metrics"}) if report else None
    return finish("registered", f"{tree.name}: {', '.join(done)}", design, check, passed=True)
