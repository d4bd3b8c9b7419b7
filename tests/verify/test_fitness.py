"""Fitness: 0 at the random floor, 1 at the reference mean, non-separating metrics dropped."""

import math

import pytest

from model_discovery.verify.fitness import Verified, compute_fitness

VOCAB = 4096


def _rec(name, loss, pairs=None, reference=False, n_per=1000):
    blimp = {"by_phenomenon": pairs, "n_pairs": n_per * len(pairs), "acc": 0} if pairs else None
    return Verified(name=name, metrics={"val_loss": loss, "blimp": blimp}, reference=reference)


def test_floor_is_zero_and_reference_mean_is_one():
    floor = math.log(VOCAB)
    report = compute_fitness([_rec("ref_a", 4.0, reference=True), _rec("ref_b", 5.0, reference=True),
                              _rec("random", floor), _rec("avg", 4.5), _rec("better", 3.5)], VOCAB)
    assert report.of("random").fitness == pytest.approx(0.0)
    assert report.of("avg").fitness == pytest.approx(1.0)
    assert report.of("better").fitness > report.of("ref_a").fitness > report.of("avg").fitness


def test_phenomena_at_chance_or_without_spread_are_dropped():
    refs = [_rec("ref", 4.0, {"agree": 0.9, "chance": 0.5, "flat": 0.8, "spread": 0.7}, reference=True)]
    cand = [_rec("cand", 4.0, {"agree": 0.6, "chance": 0.52, "flat": 0.801, "spread": 0.9})]
    report = compute_fitness(refs + cand, VOCAB)
    assert set(report.dropped) == {"pairs/chance", "pairs/flat", "val_loss"}  # equal losses: within noise
    assert "random floor" in report.dropped["pairs/chance"] and "within noise" in report.dropped["pairs/flat"]
    norm = report.of("cand").normalised
    assert set(norm) == {"pairs/agree", "pairs/spread"}
    assert norm["pairs/agree"] == pytest.approx((0.6 - 0.5) / (0.9 - 0.5))
    assert report.of("cand").fitness == pytest.approx((norm["pairs/agree"] + norm["pairs/spread"]) / 2)
    assert report.of("ref").fitness == pytest.approx(1.0)


def test_a_phenomenon_the_references_do_below_chance_is_dropped():
    # normalising by (0.3 - 0.5) would flip the sign: a design at 0.45 would score above the references
    refs = [_rec("ref", 4.0, {"agree": 0.9, "inverted": 0.3}, reference=True)]
    report = compute_fitness([*refs, _rec("cand", 3.5, {"agree": 0.8, "inverted": 0.45})], VOCAB)
    assert "random floor" in report.dropped["pairs/inverted"]
    assert set(report.of("cand").normalised) == {"val_loss", "pairs/agree"}


def test_loss_and_pairs_are_weighted():
    refs = [_rec("ref", 4.0, {"agree": 0.9}, reference=True)]
    cand = [_rec("cand", 3.0, {"agree": 0.7})]
    report = compute_fitness(refs + cand, VOCAB, loss_weight=0.5)
    floor = math.log(VOCAB)
    expected = 0.5 * (3.0 - floor) / (4.0 - floor) + 0.5 * (0.7 - 0.5) / (0.9 - 0.5)
    assert report.of("cand").fitness == pytest.approx(expected)


def test_references_are_required():
    with pytest.raises(ValueError, match="reference"):
        compute_fitness([_rec("cand", 4.0)], VOCAB)
