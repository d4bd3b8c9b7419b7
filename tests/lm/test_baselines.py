"""The best known designs: the ladder's table, the reference ``best`` it resolves, and a run's standings."""

import shutil

import pytest
import yaml

from model_discovery.lm.baselines import (
    BEST,
    BaselineTable,
    Standing,
    baselines_path,
    known_best,
    load_baselines,
    resolve_references,
    save_baselines,
)
from model_discovery.lm.scale import ETC, load_ladder
from model_discovery.verify.kinds import corpus_tokens
from model_discovery.workflow.config import DiscoveryConfig

CPU_1M_SYNTHETIC = 32 * 4096  # cpu-1m's 256 steps of 4096 tokens, an eighth of them on the synthetic corpus


def _standing(rung="cpu-1m", tokens=CPU_1M_SYNTHETIC, corpus="synthetic", **losses):
    return Standing(corpus=corpus, rung=rung, tokens=tokens, losses=losses)


def test_a_standing_ranks_by_mean_loss_and_a_table_keeps_one_row_per_corpus_rung_and_budget():
    row = _standing(llama=[4.0, 4.2], mamba2=[3.9, 4.1001], rwkv6=[4.5])
    assert row.ranked()[0][0] == "mamba2" and row.best == "mamba2" and [n for n, _ in row.ranked()][-1] == "rwkv6"
    table = BaselineTable(ladder="cpu").with_standing(row, "first")
    table = table.with_standing(_standing(llama=[3.0]), "second")  # the same key: replaced
    table = table.with_standing(_standing(tokens=64, llama=[5.0]), "second")  # another budget: kept apart
    assert len(table.standings) == 2 and table.how == "first\nsecond"
    assert table.find("synthetic", "cpu-1m", CPU_1M_SYNTHETIC).best == "llama"
    assert table.find("gutenberg", "cpu-1m", CPU_1M_SYNTHETIC) is None


def test_load_save_and_a_broken_table(tmp_path):
    assert baselines_path("cpu") == ETC / "baselines_cpu.yaml"
    assert baselines_path(tmp_path / "ladder_mine.yaml") == tmp_path / "baselines_mine.yaml"
    assert load_baselines(tmp_path / "ladder_mine.yaml").standings == []  # none measured: empty
    table = BaselineTable(ladder="mine", how="by hand").with_standing(_standing(llama=[4.0]), "by hand")
    path = save_baselines(table, tmp_path / "baselines_mine.yaml")
    assert load_baselines(tmp_path / "ladder_mine.yaml") == table
    path.write_text("ladder: mine\nstandings: [{corpus: synthetic}]\n")
    with pytest.raises(ValueError, match=r"baselines_mine\.yaml: not a table of best known designs"):
        load_baselines(tmp_path / "ladder_mine.yaml")


def test_best_resolves_to_the_best_known_design_at_each_rung_or_the_fallback():
    rungs = load_ladder("cpu").only(["mad", "cpu-1m", "cpu-2m"]).rungs
    fraction = {"cpu-1m": 0.125, "cpu-2m": 0.05}
    table = BaselineTable(ladder="cpu", standings=[_standing(mamba2=[3.9], llama=[4.0]),
                                                   _standing(rung="cpu-2m", tokens=26 * 8192, retnet=[3.0])])
    known = known_best(table, "synthetic", corpus_tokens(rungs, fraction))
    assert {r: s.best for r, s in known.items()} == {"cpu-1m": "mamba2", "cpu-2m": "retnet"}
    assert resolve_references(["llama", BEST], known, "rwkv6") == ["llama", "mamba2", "retnet"]
    assert resolve_references(["mamba2", BEST], known, "rwkv6") == ["mamba2", "retnet"]  # each once
    assert known_best(table, "synthetic", corpus_tokens(rungs, {"cpu-1m": 0.5})) == {}  # another budget: not known
    assert resolve_references(["llama", BEST], {}, "rwkv6") == ["llama", "rwkv6"]


def test_a_run_on_a_ladder_with_a_table_takes_its_best_known_design_as_reference(tmp_path):
    ladder = tmp_path / "ladder_mine.yaml"
    shutil.copy(ETC / "ladder_cpu.yaml", ladder)
    assert DiscoveryConfig(ladder=str(ladder), rungs=["cpu-1m"]).resolved().references == ["llama", "rwkv6"]
    save_baselines(BaselineTable(ladder="mine", standings=[_standing(llama=[4.0], mamba2=[3.8])]),
                   tmp_path / "baselines_mine.yaml")
    assert DiscoveryConfig(ladder=str(ladder), rungs=["cpu-1m"]).resolved().references == ["llama", "mamba2"]
    on_text = DiscoveryConfig(ladder=str(ladder), rungs=["cpu-1m"], corpus="gutenberg").resolved()
    assert on_text.references == ["llama", "rwkv6"]  # no row for Gutenberg: the fallback
    assert DiscoveryConfig(ladder=str(ladder), references=["gpt2"]).resolved().references == ["gpt2"]
    assert yaml.safe_load(ladder.read_text())["defaults"]["references"] == ["llama", BEST]
