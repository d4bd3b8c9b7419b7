"""Proxy fidelity: rank correlations between rungs with bootstrap intervals, and `modis fidelity` over a run whose
designs were verified at two rungs."""

import itertools
import json
import math
import random

import pytest
from scipy.stats import kendalltau, spearmanr

from model_discovery.cli import main
from model_discovery.verify import fidelity as fidelity_module
from model_discovery.verify.fidelity import (
    EXACT_UP_TO,
    MIN_INTERVAL,
    FidelityReport,
    RungPair,
    fidelity,
    permutation_p,
    rank_agreement,
)
from model_discovery.workflow.build import DiscoveryConfig, make_loop


def test_perfect_reversed_and_too_few():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    same = rank_agreement(x, [10, 20, 30, 40, 50])
    assert same.spearman == pytest.approx(1) and same.kendall == pytest.approx(1)
    assert same.p == pytest.approx(1 / 120)  # one ordering of five in 120 agrees this well
    flipped = rank_agreement(x, [5, 4, 3, 2, 1])
    assert flipped.spearman == pytest.approx(-1) and flipped.p == pytest.approx(1)
    assert rank_agreement([1.0, 2.0], [2.0, 1.0]) is None


@pytest.mark.parametrize("n", [3, 5, 9])
def test_few_designs_get_no_interval_but_an_exact_p_value(n):
    """A percentile bootstrap over a handful of designs said [+1.00, +1.00] for three in perfect agreement; below
    MIN_INTERVAL there is no interval, and the p-value says what a perfect ranking of n designs is worth."""
    a = rank_agreement(list(range(n)), [10 * i for i in range(n)])
    assert a.spearman == pytest.approx(1) and a.spearman_ci is None and a.kendall_ci is None
    assert a.p == pytest.approx(1 / math.factorial(n), rel=0.0, abs=1e-4 if n > EXACT_UP_TO else 1e-12)
    assert f"too few (<{MIN_INTERVAL})" in FidelityReport(pairs=[RungPair(
        low="a", high="b", designs=list("abcdefghi"[:n]), agreement={"val_loss": a})]).table()
    assert rank_agreement(list(range(MIN_INTERVAL)), list(range(MIN_INTERVAL))).spearman_ci is not None


def test_the_permutation_p_value_counts_orderings_with_ties():
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3.0, 1.0, 1.0, 2.0, 5.0, 4.0]  # a tie in y
    observed = spearmanr(x, y).statistic
    orders = list(itertools.permutations(y))
    exact = sum(spearmanr(x, o).statistic >= observed - 1e-12 for o in orders) / len(orders)
    assert permutation_p(x, y) == pytest.approx(exact)
    assert permutation_p([1, 2, 3, 4], [1, 1, 2, 2]) == pytest.approx(4 / 24)  # the tied orderings agree as well
    rng = random.Random(1)
    x, y = [rng.random() for _ in range(8)], [rng.random() for _ in range(8)]
    exact = permutation_p(x, y)
    fidelity_module.EXACT_UP_TO, saved = 0, fidelity_module.EXACT_UP_TO
    try:
        assert permutation_p(x, y) == pytest.approx(exact, abs=0.01)  # the sampled p-value agrees with the exact
    finally:
        fidelity_module.EXACT_UP_TO = saved


def test_estimates_equal_scipy_and_intervals_hold_them():
    rng = random.Random(0)
    x = [rng.random() for _ in range(15)]
    y = [v + rng.gauss(0, 0.3) for v in x]
    a = rank_agreement(x, y, n_boot=500)
    assert a.spearman == pytest.approx(spearmanr(x, y).statistic)
    assert a.kendall == pytest.approx(kendalltau(x, y).statistic)
    assert -1 <= a.spearman_ci[0] <= a.spearman <= a.spearman_ci[1] <= 1
    assert a.spearman_ci[1] - a.spearman_ci[0] > 0.1  # 15 noisy designs: not a tight interval
    noise = rank_agreement(x, [rng.random() for _ in x], n_boot=500)
    assert noise.spearman_ci[0] < 0 < noise.spearman_ci[1] or abs(noise.spearman) < 0.6


def test_pairs_are_every_two_rungs_over_shared_designs():
    scores = {"a": {n: {"fitness": i, "val_loss": -i} for i, n in enumerate("pqrst")},
              "b": {n: {"fitness": i, "val_loss": -i} for i, n in enumerate("pqrs")},
              "c": {"p": {"val_loss": 1.0}}}
    report = fidelity(scores, ["a", "b", "c"], n_boot=100)
    assert [(p.low, p.high) for p in report.pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    ab = report.pairs[0]
    assert ab.designs == list("pqrs") and ab.agreement["fitness"].spearman == pytest.approx(1)
    assert report.pairs[1].agreement["val_loss"] is None  # one shared design
    assert "fewer than 3 designs" in report.table()
    assert ab.agreement["fitness"].spearman_ci is None and "too few" in report.table()  # four designs


@pytest.mark.parametrize("positional", [False, True], ids=["--run-dir", "positional"])
def test_cli_fidelity_of_a_run(tmp_path, capsys, positional):
    """Five designs (two references, three produced) verified at cpu-1m and cpu-2m with losses that keep their
    order but one swap: Spearman 0.9 on held-out loss. The run is named by --run-dir, or by the older positional
    spelling."""
    cfg = DiscoveryConfig(run_dir=tmp_path, references=["llama", "rwkv6"], check=False, train_fraction=0.004,
                          blimp="none", rungs=["cpu-1m", "cpu-2m"], noise_seeds=1).resolved()
    (tmp_path / "config.json").write_text(cfg.model_dump_json())
    loop = make_loop(cfg)
    store = loop.store
    low = {"llama": 5.0, "rwkv6": 4.8, "gpt2": 5.2, "retnet": 4.9, "mamba2": 4.7}
    high = {"llama": 4.5, "rwkv6": 4.3, "gpt2": 4.7, "retnet": 4.25, "mamba2": 4.2}  # retnet and rwkv6 swap
    for rung, losses in (("cpu-1m", low), ("cpu-2m", high)):
        for name, loss in losses.items():
            store.enqueue(store.design(name).id, rung, loop.policy.data(rung), loop.policy.payload(rung))
            job = store.claim("fixture")
            store.complete(job.id, "fixture", {"val_loss": loss, "params": 1}, 1.0)
    run = [str(tmp_path)] if positional else ["--run-dir", str(tmp_path)]
    assert main(["fidelity", *run, "--json"]) == 0
    (pair,) = json.loads(capsys.readouterr().out)["pairs"]
    assert (pair["low"], pair["high"]) == ("cpu-1m", "cpu-2m") and len(pair["designs"]) == 5
    assert pair["agreement"]["val_loss"]["spearman"] == pytest.approx(0.9)
    assert pair["agreement"]["fitness"]["spearman"] == pytest.approx(0.9)  # fitness = normalised loss here
    assert (tmp_path / "fidelity.png").read_bytes()[:4] == b"\x89PNG"
