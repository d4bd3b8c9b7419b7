"""Parent selection, mode choice and ladder budgets."""

import random
from collections import Counter

import pytest

from model_discovery.agents.operators import ModePolicy
from model_discovery.evolution.selector import Candidate, make_selector, promotable, rung_budgets

TREE = [Candidate("strong", 1.4, 1.0), Candidate("good", 1.1, 0.5), Candidate("weak", 0.3, 1.0),
        Candidate("poor", 0.5, 0.5), Candidate("fresh", None, 0.0)]


def _draws(name: str, n: int = 4000, **kwargs) -> Counter:
    selector, rng = make_selector(name, **kwargs), random.Random(0)
    return Counter(selector.select(TREE, 1, rng)[0].name for _ in range(n))


def test_quadrant_exploits_good_confident_designs_and_explores_a_little():
    counts = _draws("quadrant", explore=0.2)
    assert counts["strong"] > counts["good"] > counts["weak"]
    explored = counts["weak"] + counts["poor"] + counts["fresh"]
    assert 0.15 < explored / 4000 < 0.25  # the explore probability
    assert counts["weak"] > counts["poor"]  # among poor designs, the well-measured ones
    assert counts["fresh"] > 0  # an unverified design is never locked out


def test_random_is_uniform_and_ucb_tries_the_unexplored():
    counts = _draws("random")
    assert min(counts.values()) > 700 and len(counts) == 5
    tree = [Candidate("best", 1.2, 1.0, children=30), Candidate("untried", 0.9, 1.0, children=0)]
    assert make_selector("ucb", c=0.5).select(tree, 1, random.Random(0))[0].name == "untried"
    assert make_selector("ucb", c=0.0).select(tree, 1, random.Random(0))[0].name == "best"


def test_selectors_return_distinct_parents():
    for name in ("quadrant", "ucb", "random"):
        picks = make_selector(name).select(TREE, 2, random.Random(1))
        assert len(picks) == 2 and picks[0] != picks[1]
    with pytest.raises(KeyError, match="unknown selector"):
        make_selector("best")


def test_modes_unlock_as_the_tree_grows():
    policy, rng = ModePolicy(), random.Random(0)
    assert {policy.choose(0, rng) for _ in range(200)} == {"mutation"}
    assert {policy.choose(2, rng) for _ in range(200)} == {"mutation", "crossover"}
    assert {policy.choose(4, rng) for _ in range(300)} == {"mutation", "crossover", "scratch"}


def test_budgets_narrow_by_the_ratio():
    assert rung_budgets(["a", "b", "c"], 8, 0.25) == {"a": 8, "b": 2, "c": 0}
    assert rung_budgets(["a", "b", "c"], 64, 0.25) == {"a": 64, "b": 16, "c": 4}
    assert rung_budgets(["a", "b"], {"b": 1}, 0.25) == {"a": 0, "b": 1}
    with pytest.raises(KeyError, match="unknown rungs"):
        rung_budgets(["a"], {"z": 1}, 0.25)


def test_promotion_waits_for_evidence_then_fills_the_budget():
    ranked = ["d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8"]
    assert promotable(ranked[:3], set(), 2, 0.25, settled=False) == []  # fewer than 1/ratio verified
    assert promotable(ranked[:4], set(), 2, 0.25, settled=False) == ["d1"]  # the top quarter
    assert promotable(ranked, {"d1"}, 2, 0.25, settled=False) == ["d2"]
    assert promotable(ranked[:3], set(), 2, 0.25, settled=True) == ["d1", "d2"]  # nothing more coming: fill
    assert promotable(ranked, {"d1", "d5"}, 2, 0.25, settled=True) == []  # budget spent
