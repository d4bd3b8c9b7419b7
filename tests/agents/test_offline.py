"""The offline designer over unit trees: operators stay inside the catalogue's declarations and give buildable
trees, the prompt steers, the reviewer rejects duplicates, and units written outside the library (an LLM's, a
user's) are mutated, crossed and composed like library units once they are in the catalogue."""

from collections import Counter

import pytest

from model_discovery.agents.offline import GeneticDesigner, knn_surrogate
from model_discovery.design import compose, content_hash, load_design
from model_discovery.design.catalogue import UnitCatalogue
from model_discovery.design.library import library_tree, unit_catalogue
from model_discovery.design.parse import parse_design
from model_discovery.design.tree import describe, distance, features
from tests.conftest import LIBRARY

FIXTURE = "tests/fixtures/external_design.py"


@pytest.fixture
def parents():
    return [(n, library_tree(n)) for n in LIBRARY]


def _declared(tree, inherited):
    """Every argument is a declared value of its unit, or one a parent already had."""
    for name, spec in tree.units.items():
        space = spec.decl.space if spec.decl else {}
        for key, value in spec.args.items():
            assert (key in space and value in space[key]) or (name, key, repr(value)) in inherited, (name, key, value)


def test_operators_give_buildable_trees_within_declared_spaces(parents):
    designer = GeneticDesigner(seed=3)
    inherited = {(n, k, repr(v)) for _, t in parents for n, s in t.units.items() for k, v in s.args.items()}
    for i in range(60):
        op = ("mutation", "crossover", "scratch")[i % 3]
        cand = designer.propose(op, [parents[i % len(parents)], parents[(i + 3) % len(parents)]])
        _declared(cand.tree, inherited)
        for parent in cand.tree.preorder():  # every child fills a slot its parent declares
            for child in cand.tree.units[parent].children:
                assert cand.tree.child_slot(parent, child) == cand.tree.units[child].slot, (parent, child)
        load_design(compose(cand.tree))  # composes and imports (trusted: catalogue units only)


def test_swap_keeps_the_slot_and_tune_changes_one_value(parents):
    designer = GeneticDesigner(seed=0)
    llama = dict(parents)["llama"]
    for _ in range(20):
        cand = designer.swap(llama, "llama")
        slot = cand.change.split(" as the ")[1].split(" of ")[0]
        assert cand.tree.units[cand.selected_unit].slot == slot
        tuned = designer.tune(llama, "llama")
        diff = features(tuned.tree) ^ features(llama)
        assert 1 <= len(diff) <= 2  # one setting changed (or one added where the default was used)


def test_crossover_takes_a_subtree_from_the_second_parent(parents):
    designer = GeneticDesigner(seed=1)
    a, b = dict(parents)["llama"], dict(parents)["lightbulb_moe"]
    cand = designer.crossover(a, b, ["llama", "lightbulb_moe"])
    assert cand.selected_unit in b.units and cand.parents == ["llama", "lightbulb_moe"]
    assert cand.tree.units[cand.selected_unit].source == b.units[cand.selected_unit].source


def test_same_seed_same_candidates(parents):
    def run(seed):
        d = GeneticDesigner("memory", seed=seed)
        return [describe(d.propose(op, parents[:2]).tree) for op in ("mutation", "crossover", "scratch") * 4]

    assert run(7) == run(7) and run(7) != run(8)


def test_prompt_steers_towards_matching_units():
    def units(prompt):
        d = GeneticDesigner(prompt, seed=0)
        return Counter(n for _ in range(300) for n in d.scratch().tree.units)

    neutral, moe = units(""), units("mixture of experts")
    assert moe["SwitchMoE"] > 1.5 * neutral["SwitchMoE"]
    recurrent = units("linear-time recurrent")
    assert recurrent["CausalAttention"] < neutral["CausalAttention"]


def test_reviewer_rejects_duplicates_and_rewards_distance(parents):
    designer = GeneticDesigner(seed=0)
    known = {n: features(t) for n, t in parents}
    llama = dict(parents)["llama"]
    hashes = {content_hash(compose(llama), llama.config())}
    cand = designer.tune(llama, "llama")
    cand.tree = llama  # the same design again
    review, _ = designer.review(cand, known, hashes)
    assert review.rating == 0 and review.novelty == "duplicate"
    small = designer.tune(llama, "llama")
    big = designer.scratch()
    r_small, _ = designer.review(small, known, set())
    assert r_small.scores["distance"] < 0.24 and r_small.rating < 4  # one hyperparameter: not enough on its own
    r_big, _ = designer.review(big, known, set())
    assert r_big.scores["novelty"] >= r_small.scores["novelty"]


def test_proposal_text_comes_from_unit_docs_and_papers(parents):
    from model_discovery.agents.knowledge import default_knowledge

    designer = GeneticDesigner("recurrent", seed=2, knowledge=default_knowledge())
    cand = designer.swap(dict(parents)["llama"], "llama")
    proposal = designer.proposal(cand)
    assert proposal.selected_unit == cand.selected_unit and proposal.parents == ["llama"]
    doc = cand.tree.units[cand.selected_unit].decl.doc.split(". ")[0]
    assert doc[:40] in proposal.motivation and "Background" in proposal.motivation


def test_surrogate_promise_follows_the_fitness_of_similar_designs(parents):
    trees = dict(parents)
    predict = knn_surrogate([(features(trees["mamba2"]), 1.6), (features(trees["llama"]), 0.4)], k=1)
    designer = GeneticDesigner(seed=0)
    near_mamba = designer.tune(trees["mamba2"], "mamba2").tree
    near_llama = designer.tune(trees["llama"], "llama").tree
    assert predict(features(near_mamba)) == pytest.approx(0.8) and predict(features(near_llama)) == pytest.approx(0.2)
    review, _ = designer.review(designer.tune(trees["mamba2"], "mamba2"), {}, set(), predict)
    assert review.scores["promise"] == pytest.approx(0.8)
    assert not any("no verified designs" in c for c in review.concerns)


def test_units_from_outside_the_library_compound():
    """A user's design joins the catalogue: its channel mixer is swapped into library designs and its block
    composes with library mixers, by mutation, crossover and scratch."""
    catalogue = UnitCatalogue(unit_catalogue())
    external = parse_design(open(FIXTURE).read(), "external")
    added = catalogue.harvest(external, "external")
    assert {"GatedConvMixer", "ConvMLP", "SparseGate"} <= set(added)
    assert catalogue.get("ConvMLP").origin == "external" and catalogue.get("ConvMLP").slot == "channel_mixer"
    designer = GeneticDesigner(seed=0, catalogue=catalogue)
    used = Counter()
    for i in range(150):
        op = ("mutation", "crossover", "scratch")[i % 3]
        cand = designer.propose(op, [("llama", library_tree("llama")), ("external", external)])
        used.update(n for n in ("ConvMLP", "SparseGate", "GatedConvMixer") if n in cand.tree.units)
        if "ConvMLP" in cand.tree.units and "GatedConvMixer" not in cand.tree.units:
            load_design(compose(cand.tree))  # the user's unit inside a library block builds
    assert used["ConvMLP"] >= 5, used


def _synthesized(tree):
    return [n for n, s in tree.units.items() if s.decl and s.decl.gene]


def test_synthesis_invents_mixers_that_compose_and_off_keeps_the_catalogue(parents):
    from model_discovery.agents import grammar
    from model_discovery.checker import static_check

    on, off = GeneticDesigner("a linear-time model", seed=5), GeneticDesigner(seed=5, synthesis=False)
    invented = set()
    for i in range(40):
        pair = [parents[i % len(parents)], parents[(i + 3) % len(parents)]]
        op = ("mutation", "crossover", "scratch")[i % 3]
        cand = on.propose(op, pair)
        for name in _synthesized(cand.tree):
            invented.add(name)
            gene = grammar.gene_of(cand.tree.units[name])
            assert not gene.quadratic  # the prompt asks for linear time
        assert static_check(compose(cand.tree)) == []
        assert not _synthesized(off.propose(op, pair).tree)
    assert len(invented) >= 8


def test_a_synthesized_mixer_is_mutated_and_crossed_through_its_gene(parents):
    from model_discovery.agents import grammar

    designer = GeneticDesigner(seed=2)
    llama = dict(parents)["llama"]
    first = designer.invent(llama, "llama")
    (name,) = _synthesized(first.tree)
    gene = grammar.gene_of(first.tree.units[name])
    proposal = designer.proposal(first)
    assert {u.name: u.action for u in proposal.units}[name] == "new" and gene.words()[2:30] in proposal.change
    mutated = [designer.invent(first.tree, "d1") for _ in range(30)]
    near = [grammar.gene_distance(gene, grammar.gene_of(c.tree.units[c.selected_unit]))
            for c in mutated if c.change.startswith(f"mutate the gene of {name} ")]
    assert near and max(near) <= 0.5 and min(near) > 0  # point mutations of the parent's gene
    crossed = designer.cross_genes(dict(parents)["rwkv6"], first.tree, ["rwkv6", "d1"])
    child = grammar.gene_of(crossed.tree.units[crossed.selected_unit])
    if child.kind == "token_mixer":
        a = grammar.LIBRARY_GENES["RWKV6TimeMix"]
        assert all(getattr(child, f) in (getattr(a, f), getattr(gene, f)) for f in ("q", "k", "v", "heads"))
    # novelty sees the gene: two designs that differ in one gene field are near, not at distance 1
    other = designer.mutate(first.tree, "d1")
    assert 0 < distance(features(first.tree), features(other.tree)) < 1


def test_synthesized_units_join_the_catalogue_with_their_genes(parents):
    from model_discovery.agents import grammar

    designer = GeneticDesigner(seed=4)
    first = designer.invent(dict(parents)["llama"], "llama")
    (name,) = _synthesized(first.tree)
    catalogue = UnitCatalogue(unit_catalogue())
    assert catalogue.harvest(first.tree, "d0001") == [name]  # what a design that passed its checks adds
    joined = catalogue.get(name)
    assert grammar.gene_of(joined) == grammar.gene_of(first.tree.units[name]) and joined.origin == "d0001"
    later = GeneticDesigner(seed=0, catalogue=catalogue)
    assert name in later.usable(joined.slot, 0)  # swapped in by name like any unit, by every later session
