"""Rung ``mad``: mechanistic tasks in the spirit of MAD (Poli et al. 2024), generated here, scored in seconds.

Six token-manipulation tasks probe what a block can do at all, before any language modelling: each trains a fresh
small model on its own stream of examples and reports held-out accuracy at the positions that test the skill.

- ``recall`` — key/value pairs (keys and values from disjoint vocabularies, a fresh mapping per example); a
  value is a target when its key already appeared in the example, so it can only be recalled from context.
- ``fuzzy_recall`` — the same with keys and values of two tokens each.
- ``noisy_recall`` — recall with noise tokens (their own vocabulary) between the pairs.
- ``selective_copy`` — data tokens scattered among blanks, then a copy token: output the data tokens in order.
- ``compression`` — a random sequence, then a compress token; a two-layer decoder reads the model's output at
  that one position and must reconstruct the whole sequence (an information bottleneck, as in MAD).
- ``memorization`` — one fixed table of 1024 two-token keys for the whole task: values come from the weights.

Chance is one over the number of possible answers. The examples are a pure function of the task and the seed,
so every design sees the same data. Everything runs inside the sandbox child (:func:`run`, the job entry point).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model_discovery.files import atomic_write
from model_discovery.lm import DiscoveryLM, LMOutput, Scale, fit_to_scale
from model_discovery.lm.loss import IGNORE_INDEX
from model_discovery.verify.kinds import RUNG_KINDS, RungKind
from model_discovery.verify.trainer import TrainConfig, train

KEYS, VALUES, NOISE = 16, 16, 8  # token budgets of each vocabulary part (MAD's recall tasks use 16)
TEST_EXAMPLES = 256
MEMORY_BASE = KEYS + VALUES  # memorization keys are two tokens of this range


@dataclass(frozen=True)
class Batch:
    inputs: Tensor  # (B, L) token ids
    labels: Tensor  # (B, L) the token expected at each position (IGNORE_INDEX where nothing is tested)


def _pairs(keys: Tensor, values: Tensor) -> Tensor:
    """Interleaves (B, N, k) keys and (B, N, v) values into (B, N * (k + v)) tokens."""
    return torch.cat([keys, values], dim=-1).flatten(1)


def _recall(n: int, length: int, gen: torch.Generator, key_len: int = 1, noise: float = 0.0) -> Batch:
    """Pairs drawn with replacement from a per-example mapping of ``KEYS`` keys (each ``key_len`` tokens long);
    values of repeated keys are the targets. ``noise``: share of positions given to noise tokens, between pairs."""
    width = 2 * key_len
    pairs = length // width
    n_keys = KEYS if key_len == 1 else KEYS * 2  # multi-token keys: more keys than single tokens allow
    table_keys = torch.stack([torch.randperm(KEYS ** key_len, generator=gen)[:n_keys] for _ in range(n)])
    mapping = torch.randint(0, VALUES ** key_len, (n, n_keys), generator=gen)
    slot = torch.randint(0, max(2, n_keys // 2), (n, pairs), generator=gen)  # half the keys: repeats are common
    key_code, value_code = table_keys.gather(1, slot), mapping.gather(1, slot)
    digits = KEYS ** torch.arange(key_len - 1, -1, -1)
    keys = (key_code[..., None] // digits) % KEYS  # (n, pairs, key_len) in [0, KEYS)
    values = KEYS + (value_code[..., None] // digits) % VALUES  # in [KEYS, KEYS + VALUES)
    seen = torch.zeros(n, pairs, dtype=torch.bool)
    for i in range(1, pairs):
        seen[:, i] = (slot[:, :i] == slot[:, i:i + 1]).any(1)
    targets = torch.where(seen[..., None], values, torch.full_like(values, IGNORE_INDEX))
    tokens = _pairs(keys, values)
    labels = _pairs(torch.full_like(keys, IGNORE_INDEX), targets)
    if noise:
        tokens, labels = _insert_noise(tokens, labels, width, noise, length, gen)
    return Batch(tokens[:, :length], labels[:, :length])


def _insert_noise(tokens: Tensor, labels: Tensor, width: int, share: float, length: int,
                  gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """Puts noise tokens between whole pairs until ``share`` of the ``length`` positions are noise."""
    n = tokens.shape[0]
    pairs_kept = max(1, int(length * (1 - share)) // width)
    n_noise = length - pairs_kept * width
    rows_t, rows_l = [], []
    for b in range(n):
        gaps = torch.randint(0, pairs_kept + 1, (n_noise,), generator=gen).sort().values.tolist()
        noise = (KEYS + VALUES + torch.randint(0, NOISE, (n_noise,), generator=gen)).tolist()
        seq, lab, j = [], [], 0
        for p in range(pairs_kept + 1):
            while j < n_noise and gaps[j] == p:
                seq.append(noise[j])
                lab.append(IGNORE_INDEX)
                j += 1
            if p < pairs_kept:
                seq += tokens[b, p * width:(p + 1) * width].tolist()
                lab += labels[b, p * width:(p + 1) * width].tolist()
        rows_t.append(seq)
        rows_l.append(lab)
    return torch.tensor(rows_t), torch.tensor(rows_l)


def _selective_copy(n: int, length: int, gen: torch.Generator, n_data: int = 8) -> Batch:
    """``n_data`` data tokens at random places among blanks, a copy token, then the data tokens again."""
    blank, copy = KEYS + VALUES, KEYS + VALUES + 1
    span = length - n_data - 1
    data = torch.randint(0, KEYS + VALUES, (n, n_data), generator=gen)
    places = torch.stack([torch.randperm(span, generator=gen)[:n_data].sort().values for _ in range(n)])
    tokens = torch.full((n, length), blank)
    tokens.scatter_(1, places, data)
    tokens[:, span] = copy
    tokens[:, span + 1:] = data
    labels = torch.full_like(tokens, IGNORE_INDEX)
    labels[:, span + 1:] = data
    return Batch(tokens, labels)


def _memorization(n: int, length: int, gen: torch.Generator, table: Tensor) -> Batch:
    """Two-token keys (1024 of them) from the task's fixed table, each followed by its value (the
    target): more facts than a few hundred steps show each often, so the score measures how fast they are stored."""
    code = torch.randint(0, table.numel(), (n, length // 3, 1), generator=gen)
    keys = torch.cat([code // MEMORY_BASE, code % MEMORY_BASE], -1)
    values = table[code]
    return Batch(_pairs(keys, values), _pairs(torch.full_like(keys, IGNORE_INDEX), values))


def _compression(n: int, length: int, gen: torch.Generator) -> Batch:
    """A random sequence closed by the compress token; the labels are the sequence itself (see ``Compressor``)."""
    seq = torch.randint(0, KEYS, (n, length - 1), generator=gen)
    return Batch(torch.cat([seq, torch.full((n, 1), KEYS + VALUES)], 1), seq)


@dataclass(frozen=True)
class Task:
    name: str
    make: Callable[[int, int, torch.Generator], Batch]
    chance: float
    length: int  # sequence length (at most the rung's context)


def tasks(context: int, seed: int) -> list[Task]:
    """The six tasks at a rung's context; ``seed`` fixes the memorization table."""
    table = KEYS + torch.randint(0, VALUES, (MEMORY_BASE ** 2,), generator=torch.Generator().manual_seed(10_000 + seed))
    short = max(8, context // 4)
    return [
        Task("recall", lambda n, L, g: _recall(n, L, g), 1 / VALUES, context),
        Task("fuzzy_recall", lambda n, L, g: _recall(n, L, g, key_len=2), 1 / VALUES, context),
        Task("noisy_recall", lambda n, L, g: _recall(n, L, g, noise=0.3), 1 / VALUES, context),
        Task("selective_copy", _selective_copy, 1 / (KEYS + VALUES), context),
        Task("compression", _compression, 1 / KEYS, short + 1),
        Task("memorization", lambda n, L, g: _memorization(n, L, g, table), 1 / VALUES, context),
    ]


VOCAB = KEYS + VALUES + NOISE  # every task's tokens fit (specials reuse the noise range)


class Stream:
    """Training batches of a task, generated on demand (the trainer's ``sample`` protocol)."""

    def __init__(self, task: Task):
        self.task = task

    def sample(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        batch = self.task.make(batch_size, self.task.length, generator)
        return batch.inputs, batch.labels


class Compressor(nn.Module):
    """The LM's output at the last position, decoded by a two-layer MLP into every token of the sequence."""

    def __init__(self, lm: DiscoveryLM, length: int):
        super().__init__()
        self.lm, self.length = lm, length
        d = lm.scale.d_model
        self.decoder = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, length * lm.vocab_size))

    def forward(self, input_ids: Tensor, labels: Tensor | None = None) -> LMOutput:
        hidden, aux = self.lm.hidden(input_ids)
        logits = self.decoder(hidden[:, -1]).view(input_ids.shape[0], self.length, self.lm.vocab_size)
        loss = None if labels is None else F.cross_entropy(logits.flatten(0, 1), labels.flatten())
        if loss is not None and aux is not None:
            loss = loss + aux
        return LMOutput(logits=logits, loss=loss, aux_loss=aux)


@torch.no_grad()
def evaluate(model: nn.Module, batch: Batch, compression: bool, batch_size: int = 64) -> tuple[float, float]:
    """(accuracy, mean loss) at the tested positions of ``batch``."""
    model.eval()
    right = total = 0
    loss = 0.0
    for inputs, labels in zip(batch.inputs.split(batch_size), batch.labels.split(batch_size)):
        logits = model(inputs).logits.float()
        if compression:
            targets = labels
        else:  # position t predicts the label of t + 1, as in training
            logits, targets = logits[:, :-1], labels[:, 1:]
        mask = targets != IGNORE_INDEX
        right += (logits.argmax(-1)[mask] == targets[mask]).sum().item()
        total += mask.sum().item()
        loss += F.cross_entropy(logits[mask], targets[mask], reduction="sum").item()
    model.train()
    return right / max(total, 1), loss / max(total, 1)


def run(payload: dict) -> dict:
    """The ``mad`` job: every task trained from scratch and scored on held-out examples; returns the metrics."""
    from model_discovery.design import load_design

    torch.set_num_threads(payload.get("threads", torch.get_num_threads()))
    scale = Scale(**payload["scale"])
    seed = payload.get("seed", 0)
    design = load_design(Path("design.py").resolve(), name=payload.get("name", "design"))
    fit = fit_to_scale(design, scale)
    steps = payload.get("train", {}).get("steps") or scale.steps
    by_task, chance, loss, n_targets = {}, {}, {}, {}
    t0 = time.perf_counter()
    train_s = 0.0
    chosen, every = payload.get("tasks"), tasks(scale.context, seed)  # a kind may run some of them (None: all)
    if chosen is not None and (not chosen or set(chosen) - {task.name for task in every}):
        raise ValueError(f"tasks {chosen} are not some of the tasks {[task.name for task in every]}")
    for k, task in enumerate(every):
        if chosen is not None and task.name not in chosen:
            continue
        torch.manual_seed(seed * 1000 + k)
        lm = DiscoveryLM(design.gab_cls, fit.gab_config, scale, vocab_size=VOCAB, n_block=fit.n_block)
        model = Compressor(lm, task.length - 1) if task.name == "compression" else lm
        config = TrainConfig.from_scale(scale, steps=steps, seed=seed * 1000 + k, checkpoint_every=10**9)
        t = time.perf_counter()
        train(model, Stream(task), config, Path("mad") / task.name, progress=payload.get("progress", False))
        train_s += time.perf_counter() - t
        test = task.make(TEST_EXAMPLES, task.length, torch.Generator().manual_seed(2**31 - 1 - seed * 1000 - k))
        by_task[task.name], loss[task.name] = evaluate(model, test, task.name == "compression")
        chance[task.name] = task.chance
        n_targets[task.name] = int((test.labels != IGNORE_INDEX).sum())
    metrics = {
        "val_loss": sum(loss.values()) / len(loss),
        "mad": {"acc": sum(by_task.values()) / len(by_task), "by_task": by_task, "loss": loss, "chance": chance,
                "n_examples": TEST_EXAMPLES, "n_targets": n_targets},
        "params": fit.params, "n_block": fit.n_block, "scale": scale.name,
        "train_tokens": steps * scale.batch_tokens * len(by_task), "train_s": train_s,
        "tokens_per_s": steps * scale.batch_tokens * len(by_task) / max(train_s, 1e-9),
        "eval_s": time.perf_counter() - t0 - train_s, "device": "cpu", **payload.get("provenance", {}),
    }
    atomic_write("metrics.json", json.dumps(metrics, indent=2))
    return metrics


@RUNG_KINDS.register("mad")
class MechanisticTasks(RungKind):
    """The rung of the six tasks: each trained for the rung's tokens, every design on the same examples; fitness
    is the mean normalised task accuracy (the loss has no weight)."""

    job = "model_discovery.verify.mad:run"
    tasks = "mad"
    loss_weight = 0.0
