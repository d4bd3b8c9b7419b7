"""Evaluation without lm-eval: held-out loss and perplexity, and minimal-pair accuracy by summed log-probability
(the BLiMP protocol: a pair is right when the model gives the good sentence the higher total log-likelihood, each
sentence scored after an end-of-text token). A tie counts as right, as with lm-eval's argmax over the two choices,
so both agree (blimp_filtered has 7 pairs whose two sentences are the same)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from model_discovery.lm import DiscoveryLM
from model_discovery.verify.data import EOS, PackedBatches


@torch.no_grad()
def validation_loss(model: DiscoveryLM, batches: PackedBatches, batch_size: int = 16,
                    max_windows: int | None = 256, token_bytes: torch.Tensor | None = None) -> dict[str, float]:
    """Mean next-token loss over consecutive windows of the validation split; with ``token_bytes`` (bytes per
    token id) also bits per byte, which compares across tokenizers and corpora."""
    model.eval()
    total, count, n_bytes = 0.0, 0, 0
    device = next(model.parameters()).device
    for ids in batches.windows(batch_size, max_windows):
        ids = ids.to(device)
        logits = model(ids).logits[:, :-1].float()
        total += F.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten(), reduction="sum").item()
        count += ids[:, 1:].numel()
        if token_bytes is not None:
            n_bytes += int(token_bytes[ids[:, 1:].cpu()].sum())
    loss = total / count
    out = {"val_loss": loss, "perplexity": math.exp(min(loss, 50.0))}
    if token_bytes is not None:
        out["bpb"] = total / math.log(2) / max(n_bytes, 1)
    return out


@torch.no_grad()
def score_continuations(model: DiscoveryLM, requests: Sequence[tuple[Sequence[int], Sequence[int]]],
                        max_length: int, batch_size: int = 64) -> list[tuple[float, bool]]:
    """For each ``(context_ids, continuation_ids)``: the continuation's total log-probability given the context, and
    whether it is the greedy continuation. The context is cut from the left to fit ``max_length``; the context must
    hold at least one token (lm-eval passes the end-of-text token for an empty one)."""
    model.eval()
    device = next(model.parameters()).device
    inputs, spans = [], []
    for context, continuation in requests:
        if not context or not continuation:
            raise ValueError("each request needs a non-empty context and continuation")
        whole = [*context, *continuation][-(max_length + 1):]
        inputs.append(whole)
        spans.append(min(len(continuation), len(whole) - 1))
    order = sorted(range(len(inputs)), key=lambda i: len(inputs[i]))  # similar lengths share a batch
    results: list[tuple[float, bool]] = [(0.0, False)] * len(inputs)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        width = max(len(inputs[i]) for i in idx) - 1
        ids = torch.zeros(len(idx), width + 1, dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, :len(inputs[i])] = torch.tensor(inputs[i])
        logp = torch.log_softmax(model(ids[:, :-1].to(device)).logits.float(), dim=-1).cpu()
        for row, i in enumerate(idx):
            end, n = len(inputs[i]) - 1, spans[i]
            rows, targets = logp[row, end - n:end], ids[row, end - n + 1:end + 1]
            results[i] = (rows.gather(-1, targets[:, None]).sum().item(), bool((rows.argmax(-1) == targets).all()))
    return results


def sentence_logprobs(model: DiscoveryLM, tokenizer: Tokenizer, sentences: list[str],
                      batch_size: int = 64) -> list[float]:
    """Total log-probability of each sentence, conditioned on the end-of-text token."""
    eos = tokenizer.token_to_id(EOS)
    requests = [([eos], e.ids) for e in tokenizer.encode_batch(sentences)]
    return [lp for lp, _ in score_continuations(model, requests, model.scale.context, batch_size)]


def greedy_generate(model: DiscoveryLM, tokenizer: Tokenizer, context: Sequence[int], max_new_tokens: int,
                    until: Sequence[str] = (), use_cache: bool = True) -> str:
    """Greedy continuation of ``context`` (decoded), stopped at end-of-text, at the first of ``until`` (which is
    cut off) or after ``max_new_tokens``; with a cache when the design allows it (:meth:`DiscoveryLM.greedy`)."""
    model.eval()
    eos = tokenizer.token_to_id(EOS)
    new: list[int] = []
    text = ""
    steps = model.greedy(list(context) or [eos], use_cache=use_cache)
    for _, token in zip(range(max_new_tokens), steps):
        if token == eos:
            break
        new.append(token)
        text = tokenizer.decode(new)
        cut = min((text.find(s) for s in until if s and s in text), default=-1)
        if cut >= 0:
            return text[:cut]
    return text


def pair_accuracy(model: DiscoveryLM, tokenizer: Tokenizer, pairs: Iterable[dict],
                  batch_size: int = 64) -> dict:
    """Accuracy overall (mean over phenomena) and by phenomenon (``UID``) on BLiMP-format pairs."""
    pairs = list(pairs)
    good = sentence_logprobs(model, tokenizer, [p["sentence_good"] for p in pairs], batch_size)
    bad = sentence_logprobs(model, tokenizer, [p["sentence_bad"] for p in pairs], batch_size)
    right: dict[str, list[bool]] = defaultdict(list)
    for pair, g, b in zip(pairs, good, bad):
        right[pair["UID"]].append(g >= b)
    by = {uid: sum(v) / len(v) for uid, v in sorted(right.items())}
    return {"acc": sum(by.values()) / len(by) if by else float("nan"), "by_phenomenon": by, "n_pairs": len(pairs)}
