import os
from pathlib import Path

import pytest
import torch

from model_discovery.verify.data import PackedBatches, encode, load_corpus, synthetic_corpus, train_tokenizer

SMALL = {"train": 3000, "valid": 200}
DATA = os.environ.get("MODIS_DATA_DIR")


def test_synthetic_corpus_is_reproducible():
    a, b = synthetic_corpus(0, SMALL), synthetic_corpus(0, SMALL)
    assert a.hash == b.hash and a.train != a.valid
    assert synthetic_corpus(1, SMALL).hash != a.hash


def test_folder_with_splits_and_a_single_file(tmp_path):
    (tmp_path / "train.txt").write_text("a b c\n" * 30)
    (tmp_path / "valid.txt").write_text("d e\n")
    corpus = load_corpus(tmp_path)
    assert corpus.valid == "d e\n" and corpus.source == str(tmp_path)
    single = tmp_path / "one.txt"
    single.write_text("".join(f"line {i}\n" for i in range(100)))
    split = load_corpus(single)
    assert split.valid.split("\n")[:2] == ["line 19", "line 39"] and "line 19" not in split.train
    assert load_corpus(single).hash == split.hash


def test_missing_corpus_names_the_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="Use 'synthetic', a path, or hf:NAME"):
        load_corpus(tmp_path / "nope")


def test_hub_dataset_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(RuntimeError, match="needs the network"):
        load_corpus("hf:some-user/some-dataset-that-is-not-cached")


@pytest.mark.skipif(not DATA, reason="MODIS_DATA_DIR is not set (real corpora live in ../shared/data)")
def test_named_corpus_from_the_data_dir():
    corpus = load_corpus("tinyshakespeare")
    assert "ROMEO" in corpus.train and corpus.source.endswith("corpus/tinyshakespeare")


def test_tokenizer_round_trip_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MODIS_CACHE", str(tmp_path))
    corpus = synthetic_corpus(0, SMALL)
    tok = train_tokenizer(corpus, 300)
    assert tok.get_vocab_size() <= 300
    line = corpus.valid.splitlines()[0]
    assert tok.decode(tok.encode(line).ids) == line
    assert list(Path(tmp_path, "tokenizers").glob(f"{corpus.hash}-300.json"))
    assert train_tokenizer(corpus, 300).get_vocab() == tok.get_vocab()


def test_packed_batches():
    tokens = torch.arange(1000)
    batches = PackedBatches(tokens, 16)
    a = batches.sample(4, torch.Generator().manual_seed(0))
    b = batches.sample(4, torch.Generator().manual_seed(0))
    assert a.shape == (4, 16) and torch.equal(a, b)
    assert torch.equal(a[:, 1:] - a[:, :-1], torch.ones(4, 15, dtype=torch.long))  # contiguous windows
    windows = list(batches.windows(8))
    assert sum(w.shape[0] for w in windows) == 999 // 16 and torch.equal(windows[0][0], torch.arange(16))
    with pytest.raises(ValueError, match="fewer than one window"):
        PackedBatches(torch.arange(5), 16)


def test_encode_ends_documents_with_eos(tmp_path, monkeypatch):
    monkeypatch.setenv("MODIS_CACHE", str(tmp_path))
    corpus = synthetic_corpus(0, SMALL)
    tok = train_tokenizer(corpus, 300)
    ids = encode(tok, "The dog sleeps.\nThe cats sleep.\n")
    eos = tok.token_to_id("<|endoftext|>")
    assert (ids == eos).sum() == 2 and ids[-1] == eos


def test_bits_per_byte_count_the_bytes_each_token_stands_for(tmp_path, monkeypatch):
    """Byte-level BPE: the byte counts of a line's tokens add up to its UTF-8 length; a model that spreads its
    probability evenly scores ln(V) nats per token, i.e. ln(V) / ln 2 * tokens / bytes bits per byte."""
    import math

    from torch import nn

    from model_discovery.lm import LMOutput
    from model_discovery.verify.data import token_bytes
    from model_discovery.verify.evaluate import validation_loss

    monkeypatch.setenv("MODIS_CACHE", str(tmp_path))
    tok = train_tokenizer(synthetic_corpus(0, SMALL), 512)
    lengths = token_bytes(tok)
    for line in ("the cat sleeps .", "naïve café — ünïcode"):
        assert int(lengths[tok.encode(line).ids].sum()) == len(line.encode())

    class Uniform(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(1))

        def forward(self, ids):
            return LMOutput(logits=torch.zeros(*ids.shape, 512) + self.w)

    ids = encode(tok, "the cat sleeps .\nthe dog runs .\n" * 50)
    out = validation_loss(Uniform(), PackedBatches(ids, 16), token_bytes=torch.from_numpy(lengths).long())
    windows = ids[:(ids.numel() - 1) // 16 * 16].view(-1, 16)[:, 1:]
    expected = math.log(512) / math.log(2) * windows.numel() / int(lengths[windows].sum())
    assert out["val_loss"] == pytest.approx(math.log(512)) and out["bpb"] == pytest.approx(expected)
