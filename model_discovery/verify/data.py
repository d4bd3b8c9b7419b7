"""Training data: where text comes from, the tokenizer trained on it, and packed batches.

Sources (``load_corpus(spec)``):

- ``synthetic`` — the built-in grammar (:mod:`model_discovery.verify.grammar`), no files, no network;
- a file or folder — a folder with ``train.txt``/``valid.txt`` uses them as splits; otherwise every text file in it
  (or the one file) is split deterministically, one line in twenty held out;
- ``NAME`` — ``$MODIS_DATA_DIR/corpus/NAME`` when that folder exists;
- ``hf:NAME[:CONFIG]`` — a Hugging Face dataset's ``text`` column (needs the network).

The run records the corpus's source and hash, so fitness compares only like with like.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from model_discovery.design.library import cache_dir
from model_discovery.files import atomic_path, atomic_write
from model_discovery.verify import grammar as grammar_module
from model_discovery.verify.grammar import Grammar

EOS = "<|endoftext|>"
HELD_OUT_EVERY = 20
SYNTHETIC_SENTENCES = {"train": 200_000, "valid": 5_000}


@dataclass(frozen=True)
class Corpus:
    """Train and validation text, and where they came from."""

    source: str
    train: str
    valid: str

    @property
    def hash(self) -> str:
        digest = hashlib.sha256(self.train.encode())
        digest.update(b"\0")
        digest.update(self.valid.encode())
        return digest.hexdigest()[:16]


def _split(lines: list[str]) -> tuple[str, str]:
    train = [line for i, line in enumerate(lines) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1]
    valid = [line for i, line in enumerate(lines) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return "\n".join(train) + "\n", "\n".join(valid) + "\n"


def _from_path(path: Path) -> Corpus:
    if path.is_dir() and (path / "train.txt").is_file() and (path / "valid.txt").is_file():
        return Corpus(str(path), (path / "train.txt").read_text(), (path / "valid.txt").read_text())
    files = sorted(path.rglob("*.txt")) if path.is_dir() else [path]
    if not files:
        raise FileNotFoundError(f"no .txt files under {path}; give a text file, or a folder of them.")
    lines = [line for f in files for line in f.read_text().splitlines() if line.strip()]
    if len(lines) < HELD_OUT_EVERY:
        raise ValueError(f"{path} has {len(lines)} non-empty lines; at least {HELD_OUT_EVERY} are needed to hold "
                         "some out for validation.")
    return Corpus(str(path), *_split(lines))


def _from_hub(spec: str) -> Corpus:
    import datasets

    name, _, config = spec.removeprefix("hf:").partition(":")
    try:
        ds = datasets.load_dataset(name, config or None)
    except Exception as err:  # offline, unknown name, gated...
        raise RuntimeError(f"could not load the Hugging Face dataset {name!r} ({type(err).__name__}: {err}). "
                           "It needs the network; use a local corpus or 'synthetic' offline.") from err
    valid_split = next((s for s in ("validation", "valid", "test") if s in ds), None)
    if valid_split is None:
        return Corpus(spec, *_split(list(ds["train"]["text"])))
    return Corpus(spec, "\n".join(ds["train"]["text"]), "\n".join(ds[valid_split]["text"]))


def synthetic_corpus(seed: int = 0, sentences: dict[str, int] | None = None) -> Corpus:
    """The built-in grammar's text; generating it takes seconds, so it is cached by grammar version, seed and size
    (every verification of a run reads the same corpus)."""
    sizes = sentences or SYNTHETIC_SENTENCES
    grammar = hashlib.sha256(Path(grammar_module.__file__).read_bytes()).hexdigest()[:12]
    stem = cache_dir() / "corpora" / f"synthetic-{grammar}-{seed}-{sizes['train']}-{sizes['valid']}"
    paths = {split: stem.with_name(f"{stem.name}-{split}.txt") for split in ("train", "valid")}
    if not all(path.is_file() for path in paths.values()):
        for (split, path), offset in zip(paths.items(), (0, 1)):
            atomic_write(path, Grammar(seed + offset).text(sizes[split]))
    return Corpus(f"synthetic:{seed}", paths["train"].read_text(), paths["valid"].read_text())


def load_corpus(spec: str | Path = "synthetic", seed: int = 0) -> Corpus:
    """The corpus named by ``spec`` (see the module docstring)."""
    spec = str(spec)
    if spec == "synthetic":
        return synthetic_corpus(seed)
    if spec.startswith("hf:"):
        return _from_hub(spec)
    path = Path(spec).expanduser()
    if not path.exists() and os.environ.get("MODIS_DATA_DIR"):
        path = Path(os.environ["MODIS_DATA_DIR"]) / "corpus" / spec
    if not path.exists():
        raise FileNotFoundError(f"no corpus {spec!r}: not a file or folder, and not under $MODIS_DATA_DIR/corpus. "
                                "Use 'synthetic', a path, or hf:NAME.")
    return _from_path(path)


def train_tokenizer(corpus: Corpus, vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained on the training split, cached by corpus hash and vocabulary size."""
    path = cache_dir() / "tokenizers" / f"{corpus.hash}-{vocab_size}.json"
    if path.is_file():
        return Tokenizer.from_file(str(path))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus.train.splitlines(), trainer=trainer)
    with atomic_path(path) as tmp:
        tok.save(str(tmp))
    return tok


def encode(tokenizer: Tokenizer, text: str) -> torch.Tensor:
    """Token ids of ``text``, each line a document followed by the end-of-text token, as one 1-D tensor."""
    eos = tokenizer.token_to_id(EOS)
    ids: list[int] = []
    for enc in tokenizer.encode_batch([line for line in text.splitlines() if line.strip()]):
        ids.extend(enc.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def token_bytes(tokenizer: Tokenizer) -> np.ndarray:
    """Bytes of text each token id stands for (byte-level BPE: one alphabet character per byte; the end-of-text
    token stands for the newline it replaced), so a loss in nats per token converts to bits per byte."""
    lengths = np.ones(tokenizer.get_vocab_size(), dtype=np.int32)
    for token, i in tokenizer.get_vocab().items():
        if token != EOS:
            lengths[i] = len(token)
    return lengths


class PackedBatches:
    """Fixed-length windows of a packed token stream: random windows for training (seeded), and consecutive
    non-overlapping windows for evaluation."""

    def __init__(self, tokens: torch.Tensor, context: int):
        if tokens.numel() < context + 1:
            raise ValueError(f"the split has {tokens.numel()} tokens, fewer than one window of {context + 1}.")
        self.tokens, self.context = tokens, context

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        starts = torch.randint(0, self.tokens.numel() - self.context, (batch_size,), generator=generator)
        return torch.stack([self.tokens[s:s + self.context] for s in starts.tolist()])

    def windows(self, batch_size: int, max_windows: int | None = None):
        n = (self.tokens.numel() - 1) // self.context
        n = min(n, max_windows) if max_windows else n
        chunks = self.tokens[:n * self.context].view(n, self.context)
        yield from chunks.split(batch_size)
