"""One verification job, run inside the sandbox child: train the design at a rung and evaluate it.

The parent (:mod:`model_discovery.verify.run`) prepares the work directory with everything the job reads —
``design.py``, ``tokenizer.json``, ``train.bin``/``valid.bin`` (int32 token ids), ``token_bytes.npy``, the held-out
splits of other corpora (``eval-<i>.bin``, scored in bits per byte), ``pairs.json`` — so the job
needs nothing outside it. It writes ``model.safetensors``, ``config.json``, ``metrics.json`` and, while
training, ``checkpoint.pt`` (a killed job resumes from it).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from model_discovery.design import load_design
from model_discovery.files import atomic_write
from model_discovery.lm import DiscoveryLM, Scale, fit_to_scale
from model_discovery.sandbox.progress import note
from model_discovery.verify.artifacts import save_model
from model_discovery.verify.data import PackedBatches
from model_discovery.verify.evaluate import pair_accuracy, validation_loss
from model_discovery.verify.trainer import TrainConfig, train


def _tokens(name: str) -> torch.Tensor:
    return torch.from_numpy(np.fromfile(name, dtype=np.int32).astype(np.int64))


def run(payload: dict) -> dict:
    """Trains and evaluates; returns (and writes) the metrics."""
    torch.set_num_threads(payload.get("threads", torch.get_num_threads()))
    scale = Scale(**payload["scale"])
    design = load_design(Path("design.py").resolve(), name=payload.get("name", "design"))
    tokenizer = Tokenizer.from_file("tokenizer.json")
    fit = fit_to_scale(design, scale)
    torch.manual_seed(payload.get("seed", 0))
    device = payload.get("device") or ("cuda" if torch.cuda.is_available() else "cpu")
    model = DiscoveryLM(design.gab_cls, fit.gab_config, scale, vocab_size=tokenizer.get_vocab_size(),
                        n_block=fit.n_block).to(device)
    config = TrainConfig.from_scale(scale, seed=payload.get("seed", 0), **payload.get("train", {}))
    t0 = time.perf_counter()
    note("train")
    result = train(model, PackedBatches(_tokens("train.bin"), scale.context), config, ".",
                   progress=payload.get("progress", False))
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    note("evaluate")
    per_token = torch.from_numpy(np.load("token_bytes.npy").astype(np.int64))
    val = validation_loss(model, PackedBatches(_tokens("valid.bin"), scale.context), max_windows=512,
                          token_bytes=per_token)
    val["val_bpb"] = val.pop("bpb")
    transfer = {name: validation_loss(model, PackedBatches(_tokens(f"eval-{i}.bin"), scale.context), max_windows=512,
                                      token_bytes=per_token)
                for i, name in enumerate(payload.get("eval_corpora", []))}
    pairs = json.loads(Path("pairs.json").read_text())
    blimp = pair_accuracy(model, tokenizer, pairs, batch_size=128) if pairs else None
    eval_s = time.perf_counter() - t1
    save_model(".", model, design.name)
    metrics = {
        **val, "blimp": blimp, **({"transfer": transfer} if transfer else {}), "params": fit.params,
        "n_block": fit.n_block, "scale": scale.name,
        "train_tokens": config.steps * config.batch_size * config.context, "final_train_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s, "train_s": train_s, "eval_s": eval_s,
        "resumed_from_step": result.resumed_from, "device": str(device), **payload.get("provenance", {}),
    }
    atomic_write("metrics.json", json.dumps(metrics, indent=2))
    return metrics
