"""The offline designer: genetic programming over a run's unit catalogue, on unit trees.

Every design is a :class:`~model_discovery.design.tree.UnitTree`; every unit of the catalogue (library units, and
units written by LLMs or users that passed the checker) declares its slot, its children's slots and its
hyperparameter space. Operators:

- ``mutation``: swap a unit for another catalogue unit of its slot, tune one hyperparameter within its declared
  values, or change the block structure (swap the root block, keeping the children whose slots it has);
- ``crossover``: one parent's subtree in some slot replaced by the other parent's subtree of that slot;
- ``scratch``: a new tree composed from the catalogue.

With synthesis on (the default), it also invents operators (:mod:`model_discovery.agents.grammar`): a mutation may
replace a token or channel mixer by a unit decoded from a gene — the mixer's own gene (synthesized units carry
theirs; library mixers have one) after point mutations, or a gene sampled from scratch — and a crossover of two
designs whose mixers have genes may cross the genes. Synthesized units that pass the checker join the run's
catalogue like any other, so later sessions compose, mutate and recombine them.

The research prompt steers it: units whose name, tags or doc match its words are drawn more often (e.g.
"linear-time", "mixture of experts", "memory", "recurrent", "hierarchical"). The offline proposer and reviewer are
here too: the proposal is written from the operator and the units' docs; the review rates novelty (content hash,
then structural distance to every design in the tree), feasibility and promise (a surrogate over verified designs,
when one is given).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from model_discovery.agents import grammar
from model_discovery.agents.operators import OPERATORS, applicable
from model_discovery.agents.schemas import Proposal, Review, UnitChange
from model_discovery.design import compose, content_hash
from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.decl import UnitDecl
from model_discovery.design.library import unit_catalogue
from model_discovery.design.tree import UNKNOWN_SLOT, UnitTree, describe, distance, features, slot_paths

MAX_DEPTH = 3
QUADRATIC = "quadratic"


@dataclass
class Candidate:
    tree: UnitTree
    operator: str
    parents: list[str]
    selected_unit: str
    change: str
    edits: list[str] = field(default_factory=list)


class Steering:
    """Weights units by how well their name, tags and doc match the research prompt."""

    def __init__(self, prompt: str, catalogue: UnitCatalogue):
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
    """Proposes candidate trees; deterministic for a seed and a catalogue."""

    SYNTHESIS_SLOTS: ClassVar[dict[str, float]] = {"token_mixer": 2.0, "channel_mixer": 1.0}

    def __init__(self, prompt: str = "", seed: int = 0, catalogue: UnitCatalogue | None = None, knowledge=None,
                 synthesis: bool = True):
        """``catalogue``: the run's units (default: the library's); ``knowledge``: a
        :class:`~model_discovery.agents.knowledge.KnowledgeBase` the proposer cites; ``synthesis``: invent
        operators from the grammar (False: only recombine and tune catalogue units)."""
        self.catalogue = catalogue or UnitCatalogue(unit_catalogue())
        self.knowledge = knowledge
        self.rng = random.Random(seed)
        self.prompt = prompt
        self.steering = Steering(prompt, self.catalogue)
        self.synthesis = synthesis
        self.constraints = grammar.Constraints.from_prompt(prompt)

    # -- helpers ------------------------------------------------------------------------------------------------
    def child_slots(self, unit: str) -> dict[str, str]:
        """Child name -> slot of a catalogue unit (children it declares no slot for fill the child's own)."""
        spec = self.catalogue.get(unit)
        declared = spec.decl.children if spec.decl else {}
        own = {c: self.catalogue.get(c).slot for c in spec.children if c in self.catalogue}
        return {c: declared.get(c) or own.get(c, "") for c in spec.children}

    def usable(self, slot: str, depth: int) -> list[str]:
        """Catalogue units of ``slot`` that can be built below ``depth`` (every child slot known)."""
        return [u for u in self.catalogue.by_slot(slot)
                if all(self.child_slots(u).values()) and (depth + 1 < MAX_DEPTH or not self.catalogue.get(u).children)]

    def _choose(self, options: list[str]) -> str:
        return self.rng.choices(options, weights=[self.steering.weight(o) for o in options])[0]

    def fragment(self, unit: str, depth: int = 0, keep: dict[str, UnitTree] | None = None) -> UnitTree:
        """A tree rooted at the catalogue unit ``unit``: each child is the subtree ``keep`` holds for its slot,
        else the unit it was composed with (half the time, when the catalogue has it), else drawn from the slot."""
        keep = dict(keep or {})
        spec = self.catalogue.get(unit)
        subtrees: dict[str, UnitTree] = {}
        for child, slot in self.child_slots(unit).items():
            if slot in keep:
                subtrees[child] = keep.pop(slot)
                continue
            if child in self.catalogue and child != unit and self.rng.random() < 0.5:
                pick = child
            else:
                options = [u for u in self.usable(slot, depth) if u != unit]
                if not options:
                    raise ValueError(f"no catalogue unit fills the {slot} of {unit}")
                pick = self._choose(options)
            subtrees[child] = self.fragment(pick, depth + 1)
        root = spec.bind({c: t.root for c, t in subtrees.items()})
        root.args = dict(spec.args)
        for key, values in (spec.decl.space if spec.decl else {}).items():
            if key not in spec.decl.width and len(values) > 1 and self.rng.random() < 0.3:
                root.args[key] = self.rng.choice(values)
        units = {unit: root}
        for sub in subtrees.values():
            for name, other in sub.units.items():
                if name in units and (units[name].source != other.source or units[name].args != other.args):
                    raise ValueError(f"unit {name} would be used twice with different children or arguments")
                units[name] = other
        return UnitTree(name=unit, root=unit, units=units)

    def sites(self, tree: UnitTree) -> list[tuple[str, str, str]]:
        """(parent, child, slot) of every implemented unit below the root."""
        return [(parent, child, tree.child_slot(parent, child)) for parent in tree.preorder()
                for child in tree.units[parent].children if child in tree.units]

    def _kept(self, tree: UnitTree, unit: str) -> dict[str, UnitTree]:
        return {tree.child_slot(unit, c): tree.subtree(c) for c in tree.units[unit].children if c in tree.units}

    @staticmethod
    def _depth(tree: UnitTree, unit: str) -> int:
        return next(path.count("/") + 1 for path, name in slot_paths(tree) if name == unit and path) \
            if unit != tree.root else 0

    # -- operators ----------------------------------------------------------------------------------------------
    def swap(self, tree: UnitTree, parent: str) -> Candidate | None:
        sites = [(p, c, s) for p, c, s in self.sites(tree) if len(self.usable(s, 0)) > 1]
        if not sites:
            return None
        weights = [max(self.steering.weight(u) for u in self.usable(s, 0)) for _, _, s in sites]
        at, old, slot = self.rng.choices(sites, weights=weights)[0]
        new_unit = self._choose([u for u in self.usable(slot, self._depth(tree, old) - 1) if u != old] or [old])
        if new_unit == old:
            return None
        new = tree.graft(old, self.fragment(new_unit, self._depth(tree, old), self._kept(tree, old)), at)
        return Candidate(new, "mutation", [parent], new_unit, f"replace {old} by {new_unit} as the {slot} of {at}")

    def tune(self, tree: UnitTree, parent: str) -> Candidate | None:
        sites = [(name, k, v) for name in tree.preorder() for k, v in
                 ((tree.units[name].decl.space if tree.units[name].decl else {}) or {}).items()
                 if k not in tree.units[name].decl.width and len(v) > 1]
        if not sites:
            return None
        unit, key, values = self.rng.choice(sites)
        current = tree.units[unit].args.get(key)
        value = self.rng.choice([v for v in values if v != current])
        units = {k: v.model_copy(deep=True) for k, v in tree.units.items()}
        units[unit].args[key] = value
        new = UnitTree(name=tree.name, root=tree.root, units=units)
        new.config()
        return Candidate(new, "mutation", [parent], unit,
                         f"set {unit}.{key} = {value!r} (was {current if current is not None else 'default'})")

    def restructure(self, tree: UnitTree, parent: str) -> Candidate | None:
        others = [u for u in self.usable(tree.units[tree.root].slot, -1) if u != tree.root]
        if not others:
            return None
        new_unit = self._choose(others)
        kept = self._kept(tree, tree.root)
        added = sorted(set(self.child_slots(new_unit).values()) - set(kept))
        removed = sorted(set(kept) - set(self.child_slots(new_unit).values()))
        change = f"make the block a {new_unit}"
        change += f"; insert a {', '.join(added)}" if added else ""
        change += f"; remove the {', '.join(removed)}" if removed else ""
        new = tree.graft(tree.root, self.fragment(new_unit, 0, kept))
        return Candidate(new, "mutation", [parent], new_unit, change)

    def _mixer_sites(self, tree: UnitTree) -> list[tuple[str, str, str]]:
        return [(p, c, s) for p, c, s in self.sites(tree) if s in self.SYNTHESIS_SLOTS]

    def _synthesized(self, tree: UnitTree, site: tuple[str, str, str], gene: grammar.Gene, parents: list[str],
                     operator: str, change: str) -> Candidate:
        at, old, slot = site
        spec = grammar.decode(gene)
        new = tree.graft(old, UnitTree(name=spec.name, root=spec.name, units={spec.name: spec}), at)
        return Candidate(new, operator, parents, spec.name, f"{change} as the {slot} of {at}: {spec.name}, "
                         f"{gene.words()[0].lower()}{gene.words()[1:].rstrip('.')}")

    def invent(self, tree: UnitTree, parent: str) -> Candidate | None:
        """Replaces a mixer by a synthesized one: its gene mutated, or (no gene, or one time in five) sampled."""
        sites = self._mixer_sites(tree)
        if not sites:
            return None
        site = self.rng.choices(sites, weights=[self.SYNTHESIS_SLOTS[s] for _, _, s in sites])[0]
        old_gene = grammar.gene_of(tree.units[site[1]])
        if old_gene is not None and self.rng.random() < 0.8:
            gene = grammar.mutate(old_gene, self.rng, self.constraints, n=self.rng.choice([1, 1, 2]))
            changed = [k for k, v in gene.model_dump().items() if old_gene.model_dump()[k] != v]
            change = f"mutate the gene of {site[1]} ({', '.join(changed)})"
        else:
            gene = grammar.sample(site[2], self.rng, self.constraints)
            change = f"synthesize a new {site[2].replace('_', ' ')} in place of {site[1]}"
        return self._synthesized(tree, site, gene, [parent], "mutation", change)

    def mutate(self, tree: UnitTree, parent: str) -> Candidate:
        ops, weights = [self.swap, self.tune, self.restructure], [0.55, 0.3, 0.15]
        if self.synthesis:
            ops, weights = [*ops, self.invent], [0.25, 0.15, 0.1, 0.5]
        for _ in range(20):
            op = self.rng.choices(ops, weights=weights)[0]
            try:
                candidate = op(tree, parent)
            except ValueError:  # a unit used twice in different ways, or a slot nothing fills
                continue
            if candidate is not None:
                return candidate
        raise ValueError(f"no mutation applies to {describe(tree)}")

    def cross_genes(self, a: UnitTree, b: UnitTree, parents: list[str]) -> Candidate | None:
        """A mixer of ``a`` replaced by the crossover of its gene with the gene of ``b``'s mixer of that slot, when
        one of the two was synthesized (two library mixers recombine as subtrees)."""
        mixers_b = {s: b.units[c] for _, c, s in self._mixer_sites(b)}
        options = []
        for site in self._mixer_sites(a):
            mine, theirs = a.units[site[1]], mixers_b.get(site[2])
            genes = (grammar.gene_of(mine), grammar.gene_of(theirs) if theirs else None)
            if all(genes) and ((mine.decl and mine.decl.gene) or (theirs.decl and theirs.decl.gene)):
                options.append((site, *genes))
        if not options:
            return None
        site, gene_a, gene_b = self.rng.choice(options)
        gene = grammar.crossover(gene_a, gene_b, self.rng, self.constraints)
        if gene in (gene_a, gene_b):
            return None
        return self._synthesized(a, site, gene, parents, "crossover", f"cross the genes of {site[1]} and "
                                 f"{parents[1]}'s {site[2].replace('_', ' ')}")

    def crossover(self, a: UnitTree, b: UnitTree, parents: list[str]) -> Candidate | None:
        if self.synthesis and self.rng.random() < 0.5:
            try:
                candidate = self.cross_genes(a, b, parents)
            except ValueError:
                candidate = None
            if candidate is not None:
                return candidate
        donors: dict[str, list[str]] = {}
        for _, child, slot in self.sites(b):
            donors.setdefault(slot, []).append(child)
        sites = [(p, c, s) for p, c, s in self.sites(a) if s in donors]
        for _ in range(10):
            if not sites:
                return None
            at, old, slot = self.rng.choice(sites)
            donor = b.subtree(self.rng.choice(donors[slot]))
            try:
                new = a.graft(old, donor, at)
            except ValueError:
                continue
            return Candidate(new, "crossover", parents, donor.root,
                             f"take the {slot} subtree {describe(donor)} from {parents[1]} in place of {old}")
        return None

    def scratch(self) -> Candidate:
        for _ in range(20):
            root = self._choose(self.usable("block", -1))
            try:
                tree = self.fragment(root)
                tree.config()  # hyperparameters shared by name must agree
            except ValueError:
                continue
            if self.synthesis and self.rng.random() < 0.5:
                sites = [s for s in self._mixer_sites(tree) if s[2] == "token_mixer"]
                if sites:
                    gene = grammar.sample("token_mixer", self.rng, self.constraints)
                    try:
                        return self._synthesized(tree, sites[0], gene, [], "scratch",
                                                 f"compose {describe(tree)} and synthesize its token mixer")
                    except ValueError:
                        pass
            return Candidate(tree, "scratch", [], root, f"compose {describe(tree)} from the catalogue")
        raise ValueError("the catalogue composes no block")

    def propose(self, operator: str, parents: list[tuple[str, UnitTree]]) -> Candidate:
        """A candidate by ``operator``'s offline implementation (with fewer parents than it takes, by what it falls
        back to); when it finds none, a mutation of the first parent (from scratch without one)."""
        op = OPERATORS.get(applicable(operator, len(parents)))
        candidate = op().offline(self, parents) if len(parents) >= op.parents else None
        if candidate is None:
            candidate = self.mutate(parents[0][1], parents[0][0]) if parents else self.scratch()
        return candidate

    def revise(self, candidate: Candidate) -> Candidate:
        """One more mutation on top (what the proposer does after a review asks for more novelty)."""
        more = self.mutate(candidate.tree, candidate.parents[0] if candidate.parents else "scratch")
        return Candidate(more.tree, candidate.operator, candidate.parents, more.selected_unit,
                         f"{candidate.change}; then {more.change}", [*candidate.edits, candidate.change])

    # -- offline roles ------------------------------------------------------------------------------------------
    def proposal(self, candidate: Candidate) -> Proposal:
        """The proposer's text, from the operator and the selected unit's documentation."""
        decl = candidate.tree.units[candidate.selected_unit].decl or UnitDecl(slot=UNKNOWN_SLOT)
        doc = (decl.doc or "").strip().split(". ")[0].rstrip(".")
        steer = sorted(self.steering.favoured & set(candidate.tree.units))
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
        tree = candidate.tree
        units = [UnitChange(name=n, action="new" if n == candidate.selected_unit and spec.decl and spec.decl.gene
                            and n not in self.catalogue else "reused",
                            children={c: tree.child_slot(n, c) for c in spec.children}, args=spec.args)
                 for n in tree.preorder() for spec in [tree.units[n]]]
        return Proposal(title=f"{candidate.operator}: {candidate.change.split(';')[0]} ({parents})",
                        motivation=motivation, operator=candidate.operator, parents=candidate.parents,
                        selected_unit=candidate.selected_unit,
                        change=candidate.change + f". Result: {describe(candidate.tree)}.", units=units)

    def review(self, candidate: Candidate, known: dict[str, set[str]], known_hashes: set[str],
               surrogate: Callable[[set[str]], float] | None = None) -> tuple[Review, UnitTree | None]:
        """Rates novelty, feasibility and promise; a duplicate (same composed code) gets 0."""
        tree = candidate.tree
        try:
            source = compose(tree)
        except (ValueError, KeyError) as exc:
            return Review(rating=0, concerns=[f"does not compose: {exc}"], novelty="incremental",
                          scores={"feasibility": 0.0}), None
        digest = content_hash(source, tree.config())
        if digest in known_hashes:
            return Review(rating=0, concerns=["the same code as a design already in the tree"], novelty="duplicate",
                          scores={"novelty": 0.0}), tree
        mine = features(tree)
        nearest = min(known, key=lambda k: distance(mine, known[k])) if known else None
        d = distance(mine, known[nearest]) if nearest else 1.0
        novelty = min(1.0, d / 0.3)
        concerns, strengths = [], []
        feasibility = 1.0
        units = set(tree.units)
        quadratic = [u for u in units if tree.units[u].decl and tree.units[u].decl.complexity == QUADRATIC]
        if "linear" in self.prompt.lower() and quadratic:
            feasibility -= 0.4
            concerns.append("the prompt asks for linear time but a unit is quadratic")
        if len(tree.units) > 9:
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
