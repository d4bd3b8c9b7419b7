"""Evaluation without lm-eval: held-out loss and perplexity, and minimal-pair accuracy by summed log-probability
(the BLiMP protocol: a pair is right when the model gives the good sentence the higher total log-likelihood, each
sentence scored after an end-of-text token)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from model_discovery.lm import DiscoveryLM
from model_discovery.verify.data import EOS, PackedBatches


@torch.no_grad()
def validation_loss(model: DiscoveryLM, batches: PackedBatches, batch_size: int = 16,
                    max_windows: int | None = 256) -> dict[str, float]:
    """Mean next-token loss over consecutive windows of the validation split."""
    model.eval()
    total, count = 0.0, 0
    device = next(model.parameters()).device
    for ids in batches.windows(batch_size, max_windows):
        ids = ids.to(device)
        logits = model(ids).logits[:, :-1].float()
        total += F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum").item()
        count += ids[:, 1:].numel()
    loss = total / count
    return {"val_loss": loss, "perplexity": math.exp(min(loss, 50.0))}


@torch.no_grad()
def sentence_logprobs(model: DiscoveryLM, tokenizer: Tokenizer, sentences: list[str],
                      batch_size: int = 64) -> list[float]:
    """Total log-probability of each sentence, conditioned on the end-of-text token."""
    model.eval()
    device = next(model.parameters()).device
    eos = tokenizer.token_to_id(EOS)
    encoded = [[eos, *e.ids] for e in tokenizer.encode_batch(sentences)]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths share a batch
    scores = [0.0] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), eos, dtype=torch.long)
        mask = torch.zeros(len(idx), width - 1, dtype=torch.bool)
        for row, i in enumerate(idx):
            ids[row, :len(encoded[i])] = torch.tensor(encoded[i])
            mask[row, :len(encoded[i]) - 1] = True
        logp = torch.log_softmax(model(ids.to(device)).logits[:, :-1].float(), dim=-1)
        picked = logp.gather(-1, ids[:, 1:, None].to(device)).squeeze(-1).cpu() * mask
        for row, i in enumerate(idx):
            scores[i] = picked[row].sum().item()
    return scores


def pair_accuracy(model: DiscoveryLM, tokenizer: Tokenizer, pairs: Iterable[dict],
                  batch_size: int = 64) -> dict:
    """Accuracy overall (mean over phenomena) and by phenomenon (``UID``) on BLiMP-format pairs."""
    pairs = list(pairs)
    good = sentence_logprobs(model, tokenizer, [p["sentence_good"] for p in pairs], batch_size)
    bad = sentence_logprobs(model, tokenizer, [p["sentence_bad"] for p in pairs], batch_size)
    right: dict[str, list[bool]] = defaultdict(list)
    for pair, g, b in zip(pairs, good, bad):
        right[pair["UID"]].append(g > b)
    by = {uid: sum(v) / len(v) for uid, v in sorted(right.items())}
    return {"acc": sum(by.values()) / len(by) if by else float("nan"), "by_phenomenon": by, "n_pairs": len(pairs)}
