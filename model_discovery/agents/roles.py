"""The roles of a design session behind one interface, whoever plays them.

A session (the graph in :mod:`model_discovery.workflow.design`) asks its :class:`Roles` for a proposal (with the
candidate tree it implies), a review, a plan, each unit's code and an observation, all as the
:mod:`~model_discovery.agents.schemas` models. :class:`OfflineRoles` plays them with the genetic designer (its
trees are made of catalogue units, so it writes no code); :class:`LLMRoles` plays them with LLM backends, which
may rewrite any unit of any parent, write new units and reuse any catalogue unit by name.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from model_discovery.agents.llm import LLMBackend
from model_discovery.agents.offline import Candidate, GeneticDesigner
from model_discovery.agents.operators import OPERATORS
from model_discovery.agents.prompts import (
    EXAMPLE_UNIT,
    interface,
    numbered,
    render,
    render_catalogue,
    render_tree,
)
from model_discovery.agents.schemas import Observation, Plan, Proposal, Review, UnitChange, UnitCode
from model_discovery.agents.spec import AgentSpec
from model_discovery.design import compose
from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.composer import placeholder
from model_discovery.design.decl import UnitDecl
from model_discovery.design.parse import unit_decl
from model_discovery.design.tree import UNKNOWN_SLOT, UnitSpec, UnitTree


@dataclass
class Brief:
    """What a session starts from: the operator, its parents and everything the roles may consult."""

    operator: str
    parents: list[tuple[str, UnitTree]]
    catalogue: UnitCatalogue
    name: str  # the new design's name
    prompt: str = ""
    known: dict[str, set[str]] = field(default_factory=dict)  # structural features of the designs in the tree
    hashes: set[str] = field(default_factory=set)
    similar: Callable[[str], str] = lambda text: "(none)"  # earlier proposals like a text
    siblings: str = "(none)"
    surrogate: Callable[[set[str]], float] | None = None


@dataclass
class Draft:
    """A proposal and the tree it implies: units still to write are identity placeholders, listed in ``todo``.
    ``problem`` says why the proposal does not make a tree (the proposer gets it back)."""

    proposal: Proposal
    tree: UnitTree | None
    todo: list[str] = field(default_factory=list)
    problem: str = ""
    candidate: Candidate | None = None
    slots: dict[str, str] = field(default_factory=dict)  # the slot each unit to write fills


class Roles(Protocol):
    kind: str  # offline | llm

    def propose(self, brief: Brief, previous: Draft | None, feedback: str) -> Draft: ...
    def review(self, brief: Brief, draft: Draft) -> Review: ...
    def plan(self, brief: Brief, draft: Draft, done: list[str], todo: list[str]) -> Plan: ...
    def code(self, brief: Brief, draft: Draft, design: str, unit: str, findings: str) -> UnitCode: ...
    def observe(self, brief: Brief, draft: Draft, source: str, passed: bool, issues: list[str]) -> Observation: ...
    def spent_usd(self) -> float: ...


class OfflineRoles:
    """The genetic designer as proposer and reviewer; its units come from the catalogue, so nothing is coded."""

    kind = "offline"

    def __init__(self, designer: GeneticDesigner):
        self.designer = designer

    def propose(self, brief: Brief, previous: Draft | None, feedback: str) -> Draft:
        if previous is None:
            candidate = self.designer.propose(brief.operator, brief.parents)
        else:
            candidate = self.designer.revise(previous.candidate)
        tree = candidate.tree.model_copy(update={"name": brief.name})
        return Draft(self.designer.proposal(candidate), tree, [], "", candidate)

    def review(self, brief: Brief, draft: Draft) -> Review:
        review, tree = self.designer.review(draft.candidate, brief.known, brief.hashes, brief.surrogate)
        if tree is None:
            draft.tree = None
        return review

    def plan(self, brief: Brief, draft: Draft, done: list[str], todo: list[str]) -> Plan:
        return Plan(next_unit=None, reason="every unit comes from the catalogue")

    def code(self, brief: Brief, draft: Draft, design: str, unit: str, findings: str) -> UnitCode:
        raise RuntimeError("the offline designer writes no code")

    def observe(self, brief: Brief, draft: Draft, source: str, passed: bool, issues: list[str]) -> Observation:
        return Observation(rating=5 if passed else 1, issues=issues)

    def spent_usd(self) -> float:
        return 0.0


class LLMRoles:
    """Each role an LLM backend, with the prompts of :mod:`~model_discovery.agents.prompts`."""

    kind = "llm"

    def __init__(self, backends: dict[str, LLMBackend], specs: dict[str, AgentSpec], knowledge=None):
        self.backends, self.specs, self.knowledge = backends, specs, knowledge
        self._meters = {id(b.meter): b.meter for b in backends.values()}
        self._start = self._spent()

    def _spent(self) -> float:
        return sum(m.spent_usd for m in self._meters.values())

    def spent_usd(self) -> float:
        return self._spent() - self._start

    def ask(self, role: str, schema, **fields):
        system, user = render(role, **fields)
        return self.backends[role].complete(system, user, schema)

    def _parents(self, brief: Brief) -> str:
        if not brief.parents:
            return "No parent: a design from scratch."
        labels = ["Parent", "Second parent"] if len(brief.parents) > 1 else ["Parent"]
        return "\n\n".join(f"{label}: {render_tree(name, tree)}"
                           for label, (name, tree) in zip(labels, brief.parents))

    def propose(self, brief: Brief, previous: Draft | None, feedback: str) -> Draft:
        hits = self.knowledge.search(brief.prompt or brief.operator, 3) if self.knowledge else []
        facts = "\n".join(f"- {h.document.name}: {h.document.text[:300]}" for h in hits) or "(none)"
        proposal = self.ask("proposer", Proposal, prompt=brief.prompt, operator=brief.operator,
                            instruction=OPERATORS.get(brief.operator).instruction, parents=self._parents(brief),
                            catalogue=render_catalogue(brief.catalogue), knowledge=facts, feedback=feedback)
        return assemble(proposal, brief)

    def review(self, brief: Brief, draft: Draft) -> Review:
        return self.ask("reviewer", Review, proposal=draft.proposal.model_dump_json(indent=1),
                        parents=self._parents(brief), similar=brief.similar(
                            f"{draft.proposal.title} {draft.proposal.change}"), siblings=brief.siblings)

    def plan(self, brief: Brief, draft: Draft, done: list[str], todo: list[str]) -> Plan:
        return self.ask("planner", Plan, proposal=draft.proposal.model_dump_json(indent=1), done=done, todo=todo)

    def code(self, brief: Brief, draft: Draft, design: str, unit: str, findings: str) -> UnitCode:
        """``design``: the composed design the findings' lines refer to (or the current one, before any)."""
        pool = _pool(brief)
        change = next(u for u in draft.proposal.units if u.name == unit)
        current = _current(draft, brief, unit)
        children = [interface(pool[c]) if c in pool else f"- {c} [{slot}]: a new unit of this proposal"
                    for c, slot in change.children.items()]
        example = brief.catalogue.get(EXAMPLE_UNIT).source if EXAMPLE_UNIT in brief.catalogue else ""
        return self.ask("coder", UnitCode, proposal=draft.proposal.model_dump_json(indent=1), unit=unit,
                        slot=draft.slots.get(unit, UNKNOWN_SLOT), current=current,
                        children="\n".join(children) or "(none)", catalogue=", ".join(brief.catalogue.names()),
                        example=example, design=numbered(design)[:14000], findings=findings)

    def observe(self, brief: Brief, draft: Draft, source: str, passed: bool, issues: list[str]) -> Observation:
        return self.ask("observer", Observation, proposal=draft.proposal.model_dump_json(indent=1), code=source[:8000])


# -- from a proposal to a tree --------------------------------------------------------------------------------------

def _pool(brief: Brief) -> dict[str, UnitSpec]:
    """Units a proposal may name: the catalogue's, and the parents' own (by the names they have there)."""
    pool = dict(brief.catalogue.units)
    for _, tree in reversed(brief.parents):
        pool.update(tree.units)
    return pool


def _current(draft: Draft, brief: Brief, unit: str) -> str:
    """What the coder rewrites: the unit's current source, or the source of the unit it replaces."""
    pool, selected = _pool(brief), draft.proposal.selected_unit
    change = next(u for u in draft.proposal.units if u.name == unit)
    if change.action == "modified" and unit in pool:
        return f"The current source of {unit}, to rewrite:\n```python\n{pool[unit].source}```"
    if draft.proposal.units[0].name == unit and selected in pool:
        return f"It replaces {selected}, whose source is:\n```python\n{pool[selected].source}```"
    return "It is a new unit."


def assemble(proposal: Proposal, brief: Brief) -> Draft:
    """The tree a proposal implies, with the units it marks new or modified as the ones to write."""
    pool = _pool(brief)
    base = brief.parents[0][1] if brief.parents else None
    changes = {u.name: u for u in proposal.units}
    if not proposal.units:
        return Draft(proposal, None, problem="`units` is empty: list the unit that takes selected_unit's place.")
    for u in proposal.units:
        if u.action == "new" and u.name in pool:
            return Draft(proposal, None, problem=f"{u.name} is marked new but a unit of that name exists; choose "
                                                 "another class name, or mark it modified to rewrite it.")
        if u.action != "new" and u.name not in pool:
            return Draft(proposal, None, problem=f"{u.name} is marked {u.action} but no catalogue or parent unit has "
                                                 "that name; mark it new, or reuse one of the catalogue's units.")
    top = proposal.units[0]
    if base is not None and proposal.selected_unit not in base.units:
        return Draft(proposal, None, problem=f"selected_unit {proposal.selected_unit!r} is not in "
                                             f"{brief.parents[0][0]}; choose one of {', '.join(base.preorder())}.")
    slot = "block" if base is None or proposal.selected_unit == base.root else \
        base.child_slot(base.parents_of(proposal.selected_unit)[0], proposal.selected_unit)
    todo = [u.name for u in proposal.units if u.action != "reused"]
    slots = {child: s for u in proposal.units for child, s in u.children.items()} | {top.name: slot}
    try:
        fragment = _fragment(top.name, slot, changes, pool, brief.name)
        if base is None:
            tree = fragment.model_copy(update={"name": brief.name})
        else:
            tree = base.model_copy(update={"name": brief.name}).graft(proposal.selected_unit, fragment)
        compose(tree)
    except (ValueError, KeyError, SyntaxError) as exc:
        return Draft(proposal, None, problem=f"the proposal does not make a tree: {exc}")
    return Draft(proposal, tree, todo, slots=slots)


def _fragment(name: str, slot: str, changes: dict[str, UnitChange], pool: dict[str, UnitSpec],
              origin: str) -> UnitTree:
    """The subtree for one unit of a proposal: reused units bring their children; units to write start as
    placeholders (a modified unit as its current code)."""
    change = changes.get(name)
    if change is None or change.action == "reused":
        spec = pool[name].model_copy(deep=True)
        if change and change.args:
            spec.args = {**spec.args, **change.args}
    elif change.action == "modified":
        spec = pool[name].model_copy(deep=True)
    else:
        spec = UnitSpec(name=name, source=placeholder(name), args=dict(change.args),
                        decl=UnitDecl(slot=slot, children=dict(change.children)), origin=origin)
    units = {name: spec}
    for child in spec.children:
        if child in pool or child in changes:
            child_slot = (spec.decl.children.get(child) if spec.decl else None) or UNKNOWN_SLOT
            units.update(_fragment(child, child_slot, changes, pool, origin).units)
    return UnitTree(name=name, root=name, units=units)


def with_unit(tree: UnitTree, code: UnitCode, draft: Draft, brief: Brief) -> UnitTree:
    """The tree with ``code`` as the unit it names: its children are the units its source names (from the tree,
    the proposal or the catalogue), its declaration is its slot, its children's slots and its signature's space."""
    pool, changes = _pool(brief), {u.name: u for u in draft.proposal.units}
    module = ast.parse(code.source)
    names = [n.id for n in ast.walk(module) if isinstance(n, ast.Name)]
    known = set(tree.units) | set(changes) | set(pool)
    children = list(dict.fromkeys(n for n in names if n in known and n != code.unit))
    change = changes[code.unit]
    old = tree.units.get(code.unit)
    slot = draft.slots.get(code.unit) or (old.slot if old is not None else UNKNOWN_SLOT)
    slots = {c: change.children.get(c) or (tree.units[c].slot if c in tree.units else pool[c].slot
                                           if c in pool else UNKNOWN_SLOT) for c in children}
    decl = unit_decl(code.source, code.unit, slot, children=slots)
    spec = UnitSpec(name=code.unit, source=code.source, children=children, args=dict(change.args),
                    doc=decl.doc, decl=decl, origin=brief.name)
    units = {k: v.model_copy(deep=True) for k, v in tree.units.items()}
    units[code.unit] = spec
    for child in children:
        if child not in units:
            units.update(_fragment(child, slots[child], changes, pool, brief.name).units)
    new = UnitTree(name=tree.name, root=tree.root, units=units).pruned()
    new.config()
    return new
