"""Rung `mad`: the tasks test what they claim to (targets only where the skill decides the answer), the job trains
and scores every task in the sandbox, and fitness is over the task accuracies with chance as the floor."""

import pytest
import torch

from model_discovery.lm import find_scale, load_ladder
from model_discovery.lm.loss import IGNORE_INDEX
from model_discovery.verify import mad
from model_discovery.verify.fitness import Verified
from model_discovery.verify.kinds import lowest_corpus_rung, rung_kind
from model_discovery.verify.run import verify

CONTEXT = 32


def _task(name, seed=0):
    return next(t for t in mad.tasks(CONTEXT, seed) if t.name == name)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("name", ["recall", "fuzzy_recall", "noisy_recall"])
def test_a_recall_target_is_the_value_its_key_had_earlier_in_the_example(name):
    task = _task(name)
    batch = task.make(64, task.length, _gen())
    assert batch.inputs.shape == batch.labels.shape == (64, CONTEXT)
    assert batch.inputs.max() < mad.VOCAB and batch.inputs.min() >= 0
    n_targets = 0
    for tokens, labels in zip(batch.inputs.tolist(), batch.labels.tolist()):
        for i, label in enumerate(labels):
            if label == IGNORE_INDEX:
                continue
            n_targets += 1
            assert mad.KEYS <= label < mad.KEYS + mad.VALUES and tokens[i] == label  # a value, teacher-forced
            if name == "recall":  # the key just before it was seen earlier in the example, with this value
                key = tokens[i - 1]
                assert label in [tokens[j + 1] for j in range(i - 1) if tokens[j] == key]
    assert n_targets > 64  # several recalls per example


def test_noise_tokens_sit_only_between_pairs():
    task = _task("noisy_recall")
    batch = task.make(32, task.length, _gen(1))
    noise = batch.inputs >= mad.KEYS + mad.VALUES
    assert 0.2 < noise.float().mean() < 0.4
    for tokens in batch.inputs.tolist():
        clean = [t for t in tokens if t < mad.KEYS + mad.VALUES]
        assert all((t < mad.KEYS) == (i % 2 == 0) for i, t in enumerate(clean))  # key, value, key, value...


def test_selective_copy_asks_for_the_data_tokens_in_order_after_the_copy_token():
    task = _task("selective_copy")
    batch = task.make(16, task.length, _gen())
    blank, copy = mad.KEYS + mad.VALUES, mad.KEYS + mad.VALUES + 1
    for tokens, labels in zip(batch.inputs.tolist(), batch.labels.tolist()):
        at = tokens.index(copy)
        data = [t for t in tokens[:at] if t != blank]
        assert tokens[at + 1:] == data and labels[at + 1:] == data
        assert set(labels[:at + 1]) == {IGNORE_INDEX}


def test_memorization_uses_one_table_for_every_example_and_seed_dependent_tables_differ():
    task = _task("memorization")
    first, second = task.make(64, task.length, _gen(0)), task.make(64, task.length, _gen(1))
    table = {}
    for batch in (first, second):
        for tokens in batch.inputs.tolist():
            for i in range(0, len(tokens) - 2, 3):
                key, value = (tokens[i], tokens[i + 1]), tokens[i + 2]
                assert table.setdefault(key, value) == value  # the same key always has the same value
    other = _task("memorization", seed=5).make(64, task.length, _gen(0))
    clash = sum(table.get((t[i], t[i + 1]), t[i + 2]) != t[i + 2] for t in other.inputs.tolist()
                for i in range(0, len(t) - 2, 3))
    assert clash > 0


def test_the_compressor_reads_one_position_only():
    torch.manual_seed(0)
    from model_discovery.design import load_design
    from model_discovery.design.library import library_design_path
    from model_discovery.lm import DiscoveryLM

    design = load_design(library_design_path("llama"))
    lm = DiscoveryLM(design.gab_cls, design.gab_config, find_scale("mad"), vocab_size=mad.VOCAB, n_block=1)
    model = mad.Compressor(lm, 8).eval()
    ids = torch.randint(0, mad.KEYS, (2, 9))
    out = model(ids).logits
    assert out.shape == (2, 8, mad.VOCAB)
    changed = ids.clone()
    changed[:, 0] = (changed[:, 0] + 1) % mad.KEYS  # the first token reaches the last position through attention
    assert not torch.allclose(model(changed).logits, out)


def test_the_mad_rung_is_in_both_ladders_and_climbed_only_when_asked():
    assert load_ladder("cpu").rungs[0].name == "mad" and lowest_corpus_rung(load_ladder("cpu")).name == "cpu-1m"
    for name in ("cpu", "gpu"):
        ladder = load_ladder(name)
        assert "mad" in [r.name for r in ladder.rungs] and "mad" not in ladder.defaults.rungs
    # a job names its rung only, and find_scale looks names up across ladders: both must be the same rung
    assert load_ladder("cpu").rung("mad") == load_ladder("gpu").rung("mad") == find_scale("mad")


def test_the_job_scores_every_task_in_the_sandbox(tmp_path):
    """Two steps per task: the point is the plumbing (sandbox, per-task metrics, resume), not the accuracy."""
    metrics = verify("llama", "mad", out=tmp_path, max_steps=2)
    assert set(metrics["mad"]["by_task"]) == {t.name for t in mad.tasks(CONTEXT, 0)}
    assert all(0 <= a <= 1 for a in metrics["mad"]["by_task"].values())
    assert metrics["mad"]["chance"]["recall"] == pytest.approx(1 / mad.VALUES)
    assert metrics["isolation"] and metrics["corpus"] == "mad" and metrics["scale"] == "mad"
    again = verify("llama", "mad", out=tmp_path, max_steps=2)  # resumed from each task's final checkpoint
    assert again["mad"]["by_task"] == metrics["mad"]["by_task"]


def _mad(name, accs, reference=False):
    return Verified(name=name, reference=reference, metrics={
        "val_loss": 2.0, "mad": {"by_task": accs, "chance": {k: 1 / 16 for k in accs}, "n_examples": 256}})


def test_fitness_at_mad_is_the_mean_normalised_task_accuracy_with_chance_as_floor():
    ref = _mad("llama", {"recall": 0.5, "copy": 0.3, "flat": 0.06}, reference=True)
    better = _mad("d1", {"recall": 0.9, "copy": 0.3, "flat": 0.07})
    chance = _mad("d2", {"recall": 1 / 16, "copy": 1 / 16, "flat": 0.065})
    report = rung_kind("mad").fitness([ref, better, chance], 40)
    assert "tasks/flat" in report.dropped and "val_loss" in report.dropped  # at chance; every loss equal
    assert report.of("llama").fitness == pytest.approx(1.0)
    assert report.of("d2").fitness == pytest.approx(0.0)
    recall = (0.9 - 1 / 16) / (0.5 - 1 / 16)
    assert report.of("d1").fitness == pytest.approx((recall + 1.0) / 2)
    # another seed of the reference, scored on the same scale
    assert report.score("llama@1", _mad("x", {"recall": 0.5, "copy": 0.3, "flat": 0.5}).metrics).fitness == \
        pytest.approx(1.0)
