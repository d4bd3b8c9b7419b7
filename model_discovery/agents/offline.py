"""The offline designer: genetic programming over the library's unit catalogue.

A design is a **genome**: a nested ``{"unit", "args", "children": {abstract child name: genome}}`` whose units
come from the catalogue (each declares its slot, its children's slots and its hyperparameter space). Operators:

- ``mutation``: swap a unit for another of its slot, tune one hyperparameter within its declared values, or
  change the block structure (e.g. pre-norm block with a channel mixer ⇄ residual block without: inserting or
  removing an optional unit);
- ``crossover``: one parent's subtree of some slot replaced by the other parent's subtree of that slot;
- ``scratch``: a new genome composed from the catalogue.

The research prompt steers it: units whose name, tags or doc match its words are drawn more often (e.g.
"linear-time", "mixture of experts", "memory", "recurrent", "hierarchical"). The offline proposer, reviewer and
coder are here too: the proposal is written from the operator and the units' docs; the review rates novelty
(content hash, then structural distance to every design in the tree), feasibility and promise (a surrogate over
verified designs, when one is given); the coder composes library units.
"""

from __future__ import annotations

import copy
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from model_discovery.agents.schemas import Proposal, Review, UnitChange
from model_discovery.design import compose, content_hash
from model_discovery.design.library import design_meta, unit_catalogue
from model_discovery.design.tree import UnitSpec, UnitTree, rename_identifier
from model_discovery.registry import Registry

Genome = dict[str, Any]
MAX_DEPTH = 3
QUADRATIC = "quadratic"


def genome_from_library(name: str, catalogue: Registry[UnitSpec] | None = None) -> Genome:
    """The genome of a library design (its ``meta.yaml``: root, bindings, hyperparameters)."""
    catalogue = catalogue or unit_catalogue()
    meta = design_meta(name)

    def node(unit: str) -> Genome:
        spec = catalogue.get(unit)
        return {"unit": unit, "args": {}, "children": {c: node(meta.bind.get(c, c)) for c in spec.children}}

    genome = node(meta.root)
    for key, value in meta.args.items():  # the first unit (pre-order) that declares or takes the argument
        for n in walk(genome):
            spec = catalogue.get(n["unit"])
            if key in (spec.decl.space if spec.decl else {}) or re.search(rf"\b{key}\b", spec.source):
                n["args"][key] = value
                break
    return genome


def walk(genome: Genome, path: tuple[str, ...] = ()) -> Iterable[Genome]:
    """Pre-order nodes."""
    yield genome
    for child in genome["children"].values():
        yield from walk(child)


def nodes_with_paths(genome: Genome, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Genome]]:
    out = [(path, genome)]
    for name, child in genome["children"].items():
        out += nodes_with_paths(child, (*path, name))
    return out


def _set(genome: Genome, path: tuple[str, ...], node: Genome) -> Genome:
    if not path:
        return node
    new = copy.deepcopy(genome)
    parent = new
    for name in path[:-1]:
        parent = parent["children"][name]
    parent["children"][path[-1]] = node
    return new


def build_tree(genome: Genome, name: str, catalogue: Registry[UnitSpec] | None = None) -> UnitTree:
    """The unit tree of a genome. A unit used twice must be used the same way (same children, same arguments):
    the composed file has one class per unit name."""
    catalogue = catalogue or unit_catalogue()
    units: dict[str, UnitSpec] = {}
    shapes: dict[str, Any] = {}

    def add(node: Genome) -> None:
        shape = (sorted(node["args"].items()), {k: c["unit"] for k, c in node["children"].items()})
        if node["unit"] in shapes:
            if shapes[node["unit"]] != shape:
                raise ValueError(f"unit {node['unit']} is used twice with different children or arguments")
            return
        shapes[node["unit"]] = shape
        spec = catalogue.get(node["unit"]).model_copy(deep=True)
        for abstract, child in node["children"].items():
            spec.source = rename_identifier(spec.source, abstract, child["unit"])
        spec.children = [node["children"][c]["unit"] for c in spec.children]
        spec.args = dict(node["args"])
        units[spec.name] = spec
        for child in node["children"].values():
            add(child)

    add(genome)
    tree = UnitTree(name=name, root=genome["unit"], units=units)
    tree.config()  # hyperparameters shared by name must agree
    return tree


def features(genome: Genome) -> set[str]:
    """What the structural distance compares: each unit at its position, and each hyperparameter setting."""
    out = set()
    for path, node in nodes_with_paths(genome):
        out.add(f"{'/'.join(path)}={node['unit']}")
        out.update(f"{node['unit']}.{k}={v}" for k, v in node["args"].items())
    return out


def distance(a: set[str], b: set[str]) -> float:
    """Jaccard distance."""
    return 1.0 - len(a & b) / max(1, len(a | b))


def describe(genome: Genome) -> str:
    def text(node: Genome) -> str:
        inner = ", ".join(text(c) for c in node["children"].values())
        args = ", ".join(f"{k}={v}" for k, v in sorted(node["args"].items()))
        parts = ", ".join(p for p in (args, inner) if p)
        return f"{node['unit']}({parts})" if parts else node["unit"]

    return text(genome)


@dataclass
class Candidate:
    genome: Genome
    operator: str
    parents: list[str]
    selected_unit: str
    change: str
    edits: list[str] = field(default_factory=list)


class Steering:
    """Weights units by how well their name, tags and doc match the research prompt."""

    def __init__(self, prompt: str, catalogue: Registry[UnitSpec]):
        text = prompt.lower()
        words = set(re.findall(r"[a-z][a-z\-]+", text))
        self.weights: dict[str, float] = {}
        for name in catalogue.names():
            decl = catalogue.get(name).decl
            tags = [t.lower() for t in (decl.tags if decl else [])]
            hits = sum(1 for t in tags if t in text or t in words)
            hits += sum(1 for w in words if len(w) > 4 and w in (decl.doc.lower() if decl else ""))
            self.weights[name] = 1.0 + 2.0 * min(hits, 3)
        self.favoured = {n for n, w in self.weights.items() if w > 1.0}

    def weight(self, unit: str) -> float:
        return self.weights.get(unit, 1.0)


class GeneticDesigner:
    """Proposes candidate genomes; deterministic for a seed."""

    OPERATOR_WEIGHTS: ClassVar[dict[str, float]] = {"mutation": 0.6, "crossover": 0.25, "scratch": 0.15}

    def __init__(self, prompt: str = "", seed: int = 0, catalogue: Registry[UnitSpec] | None = None,
                 knowledge=None):
        """``knowledge``: a :class:`~model_discovery.agents.knowledge.KnowledgeBase` the proposer cites."""
        self.catalogue = catalogue or unit_catalogue()
        self.knowledge = knowledge
        self.rng = random.Random(seed)
        self.prompt = prompt
        self.steering = Steering(prompt, self.catalogue)
        self.by_slot: dict[str, list[str]] = {}
        for name in self.catalogue.names():
            decl = self.catalogue.get(name).decl
            if decl:
                self.by_slot.setdefault(decl.slot, []).append(name)

    # -- helpers ------------------------------------------------------------------------------------------------
    def decl(self, unit: str):
        return self.catalogue.get(unit).decl

    def child_slot(self, parent: str, abstract: str) -> str:
        return self.decl(parent).children.get(abstract) or self.decl(abstract).slot

    def _choose(self, options: list[str]) -> str:
        return self.rng.choices(options, weights=[self.steering.weight(o) for o in options])[0]

    def random_node(self, unit: str, depth: int = 0, keep: dict[str, Genome] | None = None) -> Genome:
        """A node for ``unit`` whose children are kept from ``keep`` where the slot matches, else drawn."""
        keep = keep or {}
        children = {}
        for abstract, slot in self.decl(unit).children.items():
            if abstract in keep:
                children[abstract] = keep[abstract]
                continue
            options = [u for u in self.by_slot.get(slot, []) if depth + 1 < MAX_DEPTH or not self.decl(u).children]
            options = [u for u in options if u != unit] or options
            children[abstract] = self.random_node(self._choose(options), depth + 1)
        args = {}
        for key, values in (self.decl(unit).space or {}).items():
            if key not in (self.decl(unit).width or []) and len(values) > 1 and self.rng.random() < 0.3:
                args[key] = self.rng.choice(values)
        return {"unit": unit, "args": args, "children": children}

    def _slots(self, genome: Genome) -> list[tuple[tuple[str, ...], Genome, str]]:
        """(path, node, slot) of every node; the root's slot is its own."""
        out = []
        for path, node in nodes_with_paths(genome):
            if not path:
                out.append((path, node, self.decl(node["unit"]).slot))
            else:
                parent = genome
                for name in path[:-1]:
                    parent = parent["children"][name]
                out.append((path, node, self.child_slot(parent["unit"], path[-1])))
        return out

    # -- operators ----------------------------------------------------------------------------------------------
    def swap(self, genome: Genome, parent: str) -> Candidate | None:
        sites = [(p, n, s) for p, n, s in self._slots(genome) if p and len(self.by_slot.get(s, [])) > 1]
        if not sites:
            return None
        weights = [1.0 + max(self.steering.weight(u) for u in self.by_slot[s]) - 1.0 for _, _, s in sites]
        path, node, slot = self.rng.choices(sites, weights=weights)[0]
        new_unit = self._choose([u for u in self.by_slot[slot] if u != node["unit"]])
        keep = {k: v for k, v in node["children"].items() if k in self.decl(new_unit).children}
        new = self.random_node(new_unit, len(path), keep)
        return Candidate(_set(genome, path, new), "mutation", [parent], new_unit,
                         f"replace {node['unit']} by {new_unit} as the {slot} at {'/'.join(path)}")

    def tune(self, genome: Genome, parent: str) -> Candidate | None:
        sites = [(p, n, k, v) for p, n in nodes_with_paths(genome)
                 for k, v in (self.decl(n["unit"]).space or {}).items()
                 if k not in (self.decl(n["unit"]).width or []) and len(v) > 1]
        if not sites:
            return None
        path, node, key, values = self.rng.choice(sites)
        current = node["args"].get(key)
        value = self.rng.choice([v for v in values if v != current])
        new = copy.deepcopy(node)
        new["args"][key] = value
        return Candidate(_set(genome, path, new), "mutation", [parent], node["unit"],
                         f"set {node['unit']}.{key} = {value!r} (was {current if current is not None else 'default'})")

    def restructure(self, genome: Genome, parent: str) -> Candidate | None:
        slot = self.decl(genome["unit"]).slot
        others = [u for u in self.by_slot.get(slot, []) if u != genome["unit"]]
        if not others:
            return None
        new_unit = self._choose(others)
        keep = {k: v for k, v in genome["children"].items() if k in self.decl(new_unit).children}
        added = sorted(set(self.decl(new_unit).children) - set(keep))
        removed = sorted(set(genome["children"]) - set(keep))
        change = f"make the block a {new_unit}"
        change += f"; insert {', '.join(added)}" if added else ""
        change += f"; remove {', '.join(removed)}" if removed else ""
        return Candidate(self.random_node(new_unit, 0, keep), "mutation", [parent], new_unit, change)

    def mutate(self, genome: Genome, parent: str) -> Candidate:
        for _ in range(20):
            op = self.rng.choices([self.swap, self.tune, self.restructure], weights=[0.55, 0.3, 0.15])[0]
            candidate = op(genome, parent)
            if candidate is not None:
                return candidate
        raise ValueError(f"no mutation applies to {describe(genome)}")

    def crossover(self, a: Genome, b: Genome, parents: list[str]) -> Candidate | None:
        sites_b: dict[str, list] = {}
        for path, node, slot in self._slots(b):
            if path:
                sites_b.setdefault(slot, []).append(node)
        sites = [(p, n, s) for p, n, s in self._slots(a) if p and s in sites_b]
        if not sites:
            return None
        path, node, slot = self.rng.choice(sites)
        donor = copy.deepcopy(self.rng.choice(sites_b[slot]))
        return Candidate(_set(a, path, donor), "crossover", parents, donor["unit"],
                         f"take the {slot} subtree {describe(donor)} from {parents[1]} in place of {node['unit']}")

    def scratch(self) -> Candidate:
        root = self._choose(self.by_slot["block"])
        genome = self.random_node(root)
        return Candidate(genome, "scratch", [], root, f"compose {describe(genome)} from the catalogue")

    def propose(self, operator: str, parents: list[tuple[str, Genome]]) -> Candidate:
        """A candidate from ``operator`` (``mutation`` needs one parent, ``crossover`` two)."""
        if operator == "scratch" or not parents:
            return self.scratch()
        if operator == "crossover" and len(parents) >= 2:
            candidate = self.crossover(parents[0][1], parents[1][1], [parents[0][0], parents[1][0]])
            if candidate is not None:
                return candidate
        return self.mutate(parents[0][1], parents[0][0])

    def revise(self, candidate: Candidate) -> Candidate:
        """One more mutation on top (what the proposer does after a review asks for more novelty)."""
        more = self.mutate(candidate.genome, candidate.parents[0] if candidate.parents else "scratch")
        return Candidate(more.genome, candidate.operator, candidate.parents, more.selected_unit,
                         f"{candidate.change}; then {more.change}", [*candidate.edits, candidate.change])

    # -- offline roles ------------------------------------------------------------------------------------------
    def proposal(self, candidate: Candidate) -> Proposal:
        """The proposer's text, from the operator and the selected unit's documentation."""
        decl = self.decl(candidate.selected_unit)
        doc = (decl.doc or "").strip().split(". ")[0].rstrip(".")
        steer = sorted(self.steering.favoured & {n["unit"] for n in walk(candidate.genome)})
        motivation = f"{candidate.selected_unit}: {doc}." if doc else candidate.selected_unit
        if decl.complexity:
            motivation += f" Its cost is {decl.complexity} in sequence length."
        if steer and self.prompt:
            motivation += f" The research prompt ({self.prompt!r}) points at {', '.join(steer)}."
        if self.knowledge is not None:
            hits = self.knowledge.search(f"{candidate.selected_unit} {' '.join(decl.tags)}", 1, {"paper"})
            if hits:
                note = hits[0].document.text.splitlines()
                motivation += f" Background, {note[0].lstrip('# ')}: {note[1].split('. ')[0].rstrip('.')}."
        parents = " × ".join(candidate.parents) or "the catalogue"
        units = [UnitChange(name=n["unit"], action="reused", children={k: self.child_slot(n["unit"], k)
                                                                       for k in n["children"]}, args=n["args"])
                 for n in walk(candidate.genome)]
        return Proposal(title=f"{candidate.operator}: {candidate.change.split(';')[0]} ({parents})",
                        motivation=motivation, operator=candidate.operator, parents=candidate.parents,
                        selected_unit=candidate.selected_unit,
                        change=candidate.change + f". Result: {describe(candidate.genome)}.", units=units)

    def review(self, candidate: Candidate, known: dict[str, set[str]], known_hashes: set[str],
               surrogate: Callable[[set[str]], float] | None = None) -> tuple[Review, UnitTree | None]:
        """Rates novelty, feasibility and promise; a duplicate (same composed code) gets 0."""
        try:
            tree = build_tree(candidate.genome, "candidate", self.catalogue)
            source = compose(tree)
        except (ValueError, KeyError) as exc:
            return Review(rating=0, concerns=[f"does not compose: {exc}"], novelty="incremental",
                          scores={"feasibility": 0.0}), None
        digest = content_hash(source, tree.config())
        if digest in known_hashes:
            return Review(rating=0, concerns=["the same code as a design already in the tree"], novelty="duplicate",
                          scores={"novelty": 0.0}), tree
        mine = features(candidate.genome)
        nearest = min(known, key=lambda k: distance(mine, known[k])) if known else None
        d = distance(mine, known[nearest]) if nearest else 1.0
        novelty = min(1.0, d / 0.3)
        concerns, strengths = [], []
        feasibility = 1.0
        units = {n["unit"] for n in walk(candidate.genome)}
        if "linear" in self.prompt.lower() and any(self.decl(u).complexity == QUADRATIC for u in units):
            feasibility -= 0.4
            concerns.append("the prompt asks for linear time but a unit is quadratic")
        if sum(1 for _ in walk(candidate.genome)) > 9:
            feasibility -= 0.3
            concerns.append("a deep tree: slow at the lowest rung")
        promise = surrogate(mine) if surrogate else 0.5
        if not surrogate:
            concerns.append("no verified designs yet to predict fitness from")
        if nearest:
            (strengths if d >= 0.24 else concerns).append(f"structural distance {d:.2f} to the nearest design "
                                                          f"({nearest})")
        favoured = self.steering.favoured & units
        if favoured:
            strengths.append(f"follows the prompt with {', '.join(sorted(favoured))}")
        rating = 5 * (0.5 * novelty + 0.3 * max(feasibility, 0.0) + 0.2 * promise)
        verdict = "novel" if d >= 0.24 else "incremental"
        return Review(rating=round(rating, 2), strengths=strengths, concerns=concerns, novelty=verdict,
                      scores={"novelty": novelty, "feasibility": feasibility, "promise": promise,
                              "distance": d}), tree


def knn_surrogate(verified: list[tuple[set[str], float]], k: int = 3) -> Callable[[set[str]], float]:
    """Promise in [0, 1] from verified designs (features, fitness): the similarity-weighted mean fitness of the
    ``k`` nearest, halved and clipped, so a design like an average reference (fitness 1) scores 0.5."""
    if not verified:
        raise ValueError("a surrogate needs at least one verified design")

    def predict(feats: set[str]) -> float:
        nearest = sorted(verified, key=lambda v: distance(feats, v[0]))[:k]
        weights = [1.0 - distance(feats, f) + 1e-6 for f, _ in nearest]
        mean = sum(w * fit for w, (_, fit) in zip(weights, nearest)) / sum(weights)
        return min(1.0, max(0.0, mean / 2))

    return predict
