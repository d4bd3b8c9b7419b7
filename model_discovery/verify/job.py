"""One verification job, run inside the sandbox child: train the design at a rung and evaluate it.

The parent (:mod:`model_discovery.verify.run`) prepares the work directory with everything the job reads —
``design.py``, ``tokenizer.json``, ``train.bin``/``valid.bin`` (int32 token ids), ``token_bytes.npy``, the held-out
splits of other corpora (``eval-<i>.bin``, scored in bits per byte), ``pairs.json`` — so the job
needs nothing outside it. It writes ``model.safetensors``, ``config.json``, ``metrics.json`` and, while
training, ``checkpoint.pt`` (a killed job resumes from it) and ``curve.jsonl``: the held-out loss at the probe steps the
parent asks for (``payload["probes"]``). With ``payload["until"]`` (one of them) the job stops there, after the probe,
and returns the curve so far: the parent decides whether it goes on (early stopping), and a later call resumes;
``until`` equal to the last step stops after the training, before the evaluation (``payload["phenomena"]`` then
names the minimal-pair phenomena it scores).
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


CURVE = "curve.jsonl"
PROBE_WINDOWS = 128  # held-out windows a probe scores: a quarter of the final evaluation's


def read_curve(folder: str | Path, steps: int) -> list[dict]:
    """The probes recorded so far in a job folder for a training of ``steps`` (a resumed job does not score them
    again; a longer budget resumes the training, and its probes fall at other fractions)."""
    path = Path(folder) / CURVE
    points = [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []
    return [p for p in points if p["fraction"] == round(p["step"] / steps, 4)]


def probe(model: DiscoveryLM, scale: Scale, step: int, config: TrainConfig) -> dict:
    """The held-out loss part-way through training: the first :data:`PROBE_WINDOWS` windows of the validation split."""
    val = validation_loss(model, PackedBatches(_tokens("valid.bin"), scale.context), max_windows=PROBE_WINDOWS)
    return {"step": step, "fraction": round(step / config.steps, 4),
            "tokens": step * config.batch_size * config.context, "val_loss": val["val_loss"]}


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
    data = PackedBatches(_tokens("train.bin"), scale.context)
    progress, resumed = payload.get("progress", False), None
    curve = read_curve(".", config.steps)
    until = payload.get("until")
    for step in payload.get("probes", []):  # train to each probe's step, and score a slice of the held-out split
        result = train(model, data, config, ".", stop_at=step, progress=progress)
        resumed = result.resumed_from if resumed is None else resumed
        if step not in {p["step"] for p in curve} and result.resumed_from <= step:  # (not if resumed past it)
            note(f"probe at step {step}")
            curve.append(probe(model, scale, step, config))
            atomic_write(CURVE, "".join(json.dumps(p) + "\n" for p in curve))
        if step == until:  # the parent decides whether the training goes on
            return {"partial": True, "curve": curve}
        note("train")
    result = train(model, data, config, ".", progress=progress)
    resumed = result.resumed_from if resumed is None else resumed
    if until == config.steps:  # trained: the parent decides what the evaluation scores
        return {"partial": True, "curve": curve}
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
    every = {p["UID"] for p in pairs}
    if payload.get("phenomena") is not None:  # only those that separate at this rung (the parent's rule)
        pairs = [p for p in pairs if p["UID"] in set(payload["phenomena"])]
    blimp = pair_accuracy(model, tokenizer, pairs, batch_size=128) if pairs else None
    eval_s = time.perf_counter() - t1
    save_model(".", model, design.name)
    metrics = {
        **val, "blimp": blimp, "pairs_skipped": len(every) - len({p["UID"] for p in pairs}),
        **({"transfer": transfer} if transfer else {}), "params": fit.params,
        "n_block": fit.n_block, "scale": scale.name,
        "train_tokens": config.steps * config.batch_size * config.context, "final_train_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s, "train_s": train_s, "eval_s": eval_s,
        "resumed_from_step": resumed, "curve": curve, "device": str(device), **payload.get("provenance", {}),
    }
    atomic_write("metrics.json", json.dumps(metrics, indent=2))
    return metrics
