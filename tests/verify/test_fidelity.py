"""Proxy fidelity: rank correlations between rungs with bootstrap intervals, and `modis fidelity` over a run whose
designs were verified at two rungs."""

import json
import random

import pytest
from scipy.stats import kendalltau, spearmanr

from model_discovery.cli import main
from model_discovery.verify.fidelity import fidelity, rank_agreement
from model_discovery.workflow.build import DiscoveryConfig, make_loop


def test_perfect_reversed_and_too_few():
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    same = rank_agreement(x, [10, 20, 30, 40, 50])
    assert same.spearman == pytest.approx(1) and same.kendall == pytest.approx(1)
    assert same.spearman_ci == pytest.approx((1, 1))
    flipped = rank_agreement(x, [5, 4, 3, 2, 1])
    assert flipped.spearman == pytest.approx(-1) and flipped.kendall_ci == pytest.approx((-1, -1))
    assert rank_agreement([1.0, 2.0], [2.0, 1.0]) is None


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
            store.enqueue(store.design(name).id, rung, loop.data(rung), loop.payload(rung))
            job = store.claim("fixture")
            store.complete(job.id, "fixture", {"val_loss": loss, "params": 1}, 1.0)
    run = [str(tmp_path)] if positional else ["--run-dir", str(tmp_path)]
    assert main(["fidelity", *run, "--json"]) == 0
    (pair,) = json.loads(capsys.readouterr().out)["pairs"]
    assert (pair["low"], pair["high"]) == ("cpu-1m", "cpu-2m") and len(pair["designs"]) == 5
    assert pair["agreement"]["val_loss"]["spearman"] == pytest.approx(0.9)
    assert pair["agreement"]["fitness"]["spearman"] == pytest.approx(0.9)  # fitness = normalised loss here
    assert (tmp_path / "fidelity.png").read_bytes()[:4] == b"\x89PNG"
