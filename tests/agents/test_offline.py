"""The offline designer: genomes round-trip the library, operators stay inside the catalogue's declarations,
the prompt steers, the reviewer rejects duplicates."""

from collections import Counter

import pytest

from model_discovery.agents.offline import (
    GeneticDesigner,
    build_tree,
    describe,
    features,
    genome_from_library,
    nodes_with_paths,
    walk,
)
from model_discovery.design import compose, content_hash
from model_discovery.design.library import library_design_path, library_tree
from tests.conftest import LIBRARY


@pytest.mark.parametrize("name", LIBRARY)
def test_library_genomes_compose_to_the_library_file(name):
    tree = build_tree(genome_from_library(name), name)
    assert compose(tree) == library_design_path(name).read_text()
    assert tree.config() == library_tree(name).config()


@pytest.fixture
def parents():
    return [(n, genome_from_library(n)) for n in LIBRARY]


def test_operators_give_buildable_trees_within_declared_spaces(parents):
    designer = GeneticDesigner(seed=3)
    inherited = {(n["unit"], k, repr(v)) for _, g in parents for n in walk(g) for k, v in n["args"].items()}
    built = 0
    for i in range(60):
        op = ("mutation", "crossover", "scratch")[i % 3]
        cand = designer.propose(op, [parents[i % len(parents)], parents[(i + 3) % len(parents)]])
        for _, node in nodes_with_paths(cand.genome):
            decl = designer.decl(node["unit"])
            assert set(node["children"]) == set(decl.children), node["unit"]
            for key, value in node["args"].items():
                declared = key in decl.space and value in decl.space[key]
                assert declared or (node["unit"], key, repr(value)) in inherited, (node["unit"], key, value)
        try:
            build_tree(cand.genome, "x")
            built += 1
        except ValueError:
            pass  # a unit used twice in different ways: the reviewer scores it 0
    assert built >= 54


def test_swap_keeps_the_slot_and_tune_changes_one_value(parents):
    designer = GeneticDesigner(seed=0)
    llama = dict(parents)["llama"]
    for _ in range(20):
        cand = designer.swap(llama, "llama")
        slot = cand.change.split(" as the ")[1].split(" at ")[0]
        assert designer.decl(cand.selected_unit).slot == slot
        tuned = designer.tune(llama, "llama")
        diff = features(tuned.genome) ^ features(llama)
        assert 1 <= len(diff) <= 2  # one setting changed (or one added where the default was used)


def test_crossover_takes_a_subtree_from_the_second_parent(parents):
    designer = GeneticDesigner(seed=1)
    a, b = dict(parents)["llama"], dict(parents)["lightbulb_moe"]
    cand = designer.crossover(a, b, ["llama", "lightbulb_moe"])
    donor_units = {n["unit"] for n in walk(b)}
    assert cand.selected_unit in donor_units and cand.parents == ["llama", "lightbulb_moe"]


def test_same_seed_same_candidates(parents):
    def run(seed):
        d = GeneticDesigner("memory", seed=seed)
        return [describe(d.propose(op, parents[:2]).genome) for op in ("mutation", "crossover", "scratch") * 4]

    assert run(7) == run(7) and run(7) != run(8)


def test_prompt_steers_towards_matching_units():
    def units(prompt):
        d = GeneticDesigner(prompt, seed=0)
        return Counter(n["unit"] for _ in range(300) for n in walk(d.scratch().genome))

    neutral, moe = units(""), units("mixture of experts")
    assert moe["SwitchMoE"] > 1.5 * neutral["SwitchMoE"]
    recurrent = units("linear-time recurrent")
    assert recurrent["CausalAttention"] < neutral["CausalAttention"]


def test_reviewer_rejects_duplicates_and_rewards_distance(parents):
    designer = GeneticDesigner(seed=0)
    known = {n: features(g) for n, g in parents}
    tree = build_tree(dict(parents)["llama"], "llama")
    hashes = {content_hash(compose(tree), tree.config())}
    cand = designer.tune(dict(parents)["llama"], "llama")
    cand.genome = dict(parents)["llama"]  # the same design again
    review, _ = designer.review(cand, known, hashes)
    assert review.rating == 0 and review.novelty == "duplicate"
    small = designer.tune(dict(parents)["llama"], "llama")
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
    doc = designer.decl(cand.selected_unit).doc.split(". ")[0]
    assert doc[:40] in proposal.motivation and "Background" in proposal.motivation


def test_surrogate_promise_follows_the_fitness_of_similar_designs(parents):
    from model_discovery.agents.offline import knn_surrogate

    genomes = dict(parents)
    predict = knn_surrogate([(features(genomes["mamba2"]), 1.6), (features(genomes["llama"]), 0.4)], k=1)
    designer = GeneticDesigner(seed=0)
    near_mamba = designer.tune(genomes["mamba2"], "mamba2").genome
    near_llama = designer.tune(genomes["llama"], "llama").genome
    assert predict(features(near_mamba)) == pytest.approx(0.8) and predict(features(near_llama)) == pytest.approx(0.2)
    review, _ = designer.review(designer.tune(genomes["mamba2"], "mamba2"), {}, set(), predict)
    assert review.scores["promise"] == pytest.approx(0.8)
    assert not any("no verified designs" in c for c in review.concerns)
