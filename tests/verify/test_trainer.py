import itertools
import json

import pytest
import torch

from model_discovery.lm import DiscoveryLM, Scale
from model_discovery.verify.data import PackedBatches, encode, synthetic_corpus, train_tokenizer
from model_discovery.verify.evaluate import pair_accuracy, sentence_logprobs, validation_loss
from model_discovery.verify.grammar import PHENOMENA, minimal_pairs
from model_discovery.verify.trainer import LOG, TrainConfig, train

SCALE = Scale(name="tiny", d_model=64, n_block=2, context=32, vocab=300, train_tokens=40 * 8 * 32,
              batch_tokens=8 * 32, lr=3e-3, warmup=4, ref_params=1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    import os

    os.environ.setdefault("MODIS_CACHE", str(tmp_path_factory.mktemp("cache")))
    corpus = synthetic_corpus(0, {"train": 4000, "valid": 300})
    tok = train_tokenizer(corpus, 300)
    return tok, PackedBatches(encode(tok, corpus.train), SCALE.context), PackedBatches(encode(tok, corpus.valid),
                                                                                      SCALE.context)


def _model(library_design, vocab):
    llama = library_design("llama")
    torch.manual_seed(0)
    return DiscoveryLM(llama.gab_cls, llama.gab_config, SCALE, vocab_size=vocab)


def test_schedule_warms_up_then_decays_to_the_floor():
    cfg = TrainConfig(steps=100, batch_size=1, context=8, lr=1.0, warmup=10, min_lr_ratio=0.1)
    assert cfg.lr_at(0) == pytest.approx(0.1) and cfg.lr_at(9) == pytest.approx(1.0)
    assert cfg.lr_at(10) == pytest.approx(1.0) and cfg.lr_at(100) == pytest.approx(0.1)
    lrs = [cfg.lr_at(s) for s in range(10, 100)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path, data, library_design):
    tok, batches, _ = data
    cfg = TrainConfig.from_scale(SCALE, steps=24, checkpoint_every=5, log_every=4)
    whole = _model(library_design, tok.get_vocab_size())
    full = train(whole, batches, cfg, tmp_path / "whole", progress=False)
    split = _model(library_design, tok.get_vocab_size())
    first = train(split, batches, cfg, tmp_path / "split", stop_at=10, progress=False)
    fresh = _model(library_design, tok.get_vocab_size())  # a new process would start from scratch
    second = train(fresh, batches, cfg, tmp_path / "split", progress=False)
    assert first.steps == 10 and second.resumed_from == 10 and second.steps == 24
    assert second.final_loss == pytest.approx(full.final_loss, abs=1e-5)
    for a, b in zip(whole.parameters(), fresh.parameters()):
        assert torch.allclose(a, b, atol=1e-5)
    steps = [json.loads(line)["step"] for line in (tmp_path / "whole" / LOG).read_text().splitlines()]
    assert steps == [4, 8, 12, 16, 20, 24]


def test_training_on_the_grammar_lowers_loss_and_beats_chance(tmp_path, library_design):
    """~12 s of training on the built-in grammar: a tiny llama learns local agreement, NPIs and transitivity."""
    corpus = synthetic_corpus(0, {"train": 20_000, "valid": 300})
    tok = train_tokenizer(corpus, 300)
    scale = SCALE.model_copy(update={"context": 64, "batch_tokens": 16 * 64, "train_tokens": 600 * 16 * 64,
                                     "warmup": 20})
    llama = library_design("llama")
    torch.manual_seed(0)
    model = DiscoveryLM(llama.gab_cls, llama.gab_config, scale, vocab_size=tok.get_vocab_size())
    valid = PackedBatches(encode(tok, corpus.valid), scale.context)
    before = validation_loss(model, valid, max_windows=32)["val_loss"]
    train(model, PackedBatches(encode(tok, corpus.train), scale.context), TrainConfig.from_scale(scale), tmp_path,
          progress=False)
    after = validation_loss(model, valid, max_windows=32)
    assert after["val_loss"] < before - 3.0 and after["perplexity"] == pytest.approx(2.718281828 ** after["val_loss"])
    acc = pair_accuracy(model, tok, [p for ph in PHENOMENA for p in minimal_pairs(ph, 100)])
    assert set(acc["by_phenomenon"]) == set(PHENOMENA) and acc["n_pairs"] >= 900
    assert acc["acc"] > 0.6, acc
    for easy in ("npi_licensing", "transitivity", "determiner_noun_agreement"):
        assert acc["by_phenomenon"][easy] > 0.75, acc


def test_batched_scores_equal_one_at_a_time(data, library_design):
    tok, _, _ = data
    model = _model(library_design, tok.get_vocab_size())
    sentences = ["The dog sleeps.", "These horses that the boy saw wait.", "No cat has ever fallen."]
    batched = sentence_logprobs(model, tok, sentences, batch_size=3)
    single = [sentence_logprobs(model, tok, [s], batch_size=1)[0] for s in sentences]
    assert batched == pytest.approx(single, abs=1e-4)
    assert all(s < 0 for s in single)
