"""Sandbox targets behind the ``modis`` lm-eval model: each loads a verified model (design code included) in the
sandbox child and answers one batch of lm-eval requests, so the evaluating process never runs design code."""

from __future__ import annotations

import torch

from model_discovery.verify.artifacts import load_verified
from model_discovery.verify.evaluate import greedy_generate, score_continuations


def _model(payload: dict):
    torch.set_num_threads(payload.get("threads", torch.get_num_threads()))
    return load_verified(payload["model_dir"], payload.get("device", "cpu"))


def loglikelihood(payload: dict) -> list[tuple[float, bool]]:
    """``payload["requests"]``: ``[context_ids, continuation_ids]`` pairs."""
    model, _, config = _model(payload)
    return score_continuations(model, payload["requests"], config["scale"]["context"], payload.get("batch_size", 64))


def generate(payload: dict) -> list[str]:
    """``payload["requests"]``: ``{"context": ids, "until": [str], "max_gen_toks": int}``."""
    model, tokenizer, _ = _model(payload)
    return [greedy_generate(model, tokenizer, r["context"], r["max_gen_toks"], r["until"])
            for r in payload["requests"]]
