"""Pre-training a DiscoveryLM: AdamW, warmup then cosine decay, gradient clipping, bf16 autocast on CUDA, fixed
seeds, periodic checkpoints that a killed run resumes from exactly, a progress bar and metrics in JSON lines (and
Weights & Biases when a run is given)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from model_discovery.files import atomic_path
from model_discovery.lm import DiscoveryLM, Scale

# bound at import, before a sandbox guard (which disarms torch's native file I/O for design code) is installed
_torch_save, _torch_load = torch.save, torch.load

CHECKPOINT = "checkpoint.pt"


class Batches(Protocol):
    """Training data: :class:`~model_discovery.verify.data.PackedBatches`, or a task's stream of ``(ids, labels)``."""

    def sample(self, batch_size: int, generator: torch.Generator) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        ...
LOG = "train_log.jsonl"


class TrainConfig(BaseModel):
    """How to train; :meth:`from_scale` takes a rung's budget."""

    model_config = ConfigDict(extra="forbid")

    steps: int = Field(gt=0)
    batch_size: int = Field(gt=0)
    context: int = Field(gt=0)
    lr: float = Field(gt=0)
    warmup: int = Field(0, ge=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1, description="final learning rate as a fraction of lr")
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(50, gt=0, description="steps between checkpoints")
    log_every: int = Field(10, gt=0)

    @classmethod
    def from_scale(cls, scale: Scale, **overrides: Any) -> TrainConfig:
        fields = dict(steps=scale.steps, batch_size=scale.batch_size, context=scale.context, lr=scale.lr,
                      warmup=scale.warmup)
        return cls(**{**fields, **overrides})

    def lr_at(self, step: int) -> float:
        """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio * lr``."""
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        progress = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.lr * (self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


@dataclass
class TrainResult:
    steps: int
    final_loss: float
    tokens: int
    wall_s: float
    tokens_per_s: float
    resumed_from: int


def _optimizer(model: DiscoveryLM, config: TrainConfig) -> torch.optim.AdamW:
    """Weight decay on matrices only (not on norms, biases, gains or decay rates)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.95), fused=None)


def _save(path: Path, state: dict) -> None:
    with atomic_path(path) as tmp:  # a kill mid-write leaves the previous checkpoint intact
        _torch_save(state, tmp)


def train(model: DiscoveryLM, batches: Batches, config: TrainConfig, out_dir: str | Path,
          stop_at: int | None = None, progress: bool = True, wandb_run: Any = None) -> TrainResult:
    """Trains ``model`` in place, resuming from ``out_dir/checkpoint.pt`` when it exists. ``batches.sample`` gives
    token ids (language modelling: the labels are the ids) or ``(ids, labels)``.

    ``stop_at`` ends this call early at that step (after checkpointing), as a preemption would; calling again
    resumes. The same config and data give the same final loss whether or not the run was interrupted.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    device = next(model.parameters()).device
    opt = _optimizer(model, config)
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    start_step = 0
    if (out / CHECKPOINT).is_file():
        state = _torch_load(out / CHECKPOINT, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["data_rng"])
        torch.set_rng_state(state["torch_rng"])
        start_step = state["step"]
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else _nullcontext()
    last = stop_at if stop_at is not None else config.steps
    model.train()
    t0, loss_value = time.perf_counter(), float("nan")
    bar = tqdm(range(start_step, last), total=config.steps, initial=start_step, disable=not progress,
               desc="train", unit="step")
    with open(out / LOG, "a") as log:
        for step in bar:
            for group in opt.param_groups:
                group["lr"] = config.lr_at(step)
            batch = batches.sample(config.batch_size, gen)
            ids, labels = batch if isinstance(batch, tuple) else (batch, batch)
            with autocast:
                loss = model(ids.to(device), labels=labels.to(device)).loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise FloatingPointError(f"the loss became {loss_value} at step {step}; lower the learning rate.")
            if (step + 1) % config.log_every == 0 or step + 1 == last:
                record = {"step": step + 1, "loss": loss_value, "lr": config.lr_at(step),
                          "grad_norm": float(grad_norm), "tokens": (step + 1) * config.batch_size * config.context}
                log.write(json.dumps(record) + "\n")
                log.flush()
                bar.set_postfix(loss=f"{loss_value:.3f}")
                if wandb_run is not None:
                    wandb_run.log(record, step=step + 1)
            if (step + 1) % config.checkpoint_every == 0 or step + 1 == last:
                _save(out / CHECKPOINT, {"model": model.state_dict(), "optimizer": opt.state_dict(),
                                         "data_rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
                                         "step": step + 1})
    wall = time.perf_counter() - t0
    tokens = (last - start_step) * config.batch_size * config.context
    return TrainResult(steps=last, final_loss=loss_value, tokens=tokens, wall_s=wall,
                       tokens_per_s=tokens / wall if wall > 0 else 0.0, resumed_from=start_step)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
